#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# BPF enforcing: the same checks as test_nft_rule_name, with the rule id
# the program copies from the deny or DoH map entry into its event
# (docs/bpf.md, "Rule ids") named on the violation line; and a line for
# packets folded before a kill -9, reported by the next run from the fold
# map alone, names the rule too.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
# shellcheck source=rule_name.sh
. "$(dirname "$0")/rule_name.sh"
rule_name_setup
start_egressd_bpf --rules "$RULE_NAME_POLICY"
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
rule_name_checks

# Packets folded in the kernel when egressd died are reported by the next
# run, from the fold map alone (no record of them at hand): the line still
# names the rule, looked up, never a made-up egress[0].
run_workload "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20):
    try:
        s.sendto(b"x", (sys.argv[1], 9))
    except OSError:
        pass' "10.200.$X.66"
kill -KILL "$EGRESSD_PID"
wait "$EGRESSD_PID" 2>/dev/null
EGRESSD_PID=
start_egressd_bpf --rules "$RULE_NAME_POLICY"
wait_json_line "after kill -9: the folded datagrams' line names egress[2]" \
	"$T/egressd.out" event=violation layer=packet reason=deny_rule \
	dst="10.200.$X.66" dport=9 rule="egress[2]"
egit_finish
