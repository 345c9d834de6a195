#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# BPF enforcing: the same checks as test_nft_rule_name, with the rule id
# the program copies from the deny or DoH map entry into its event
# (docs/bpf.md, "Rule ids") named on the violation line.

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
egit_finish
