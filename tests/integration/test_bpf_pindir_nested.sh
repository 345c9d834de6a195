#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A pin dir whose parents do not exist yet (OPENSANDBOX_EGRESS_BPF_PIN_DIR
# two levels below a fresh directory on bpffs) is created like `mkdir -p`:
# BPF enforces and the maps and links are pinned there, instead of the BPF
# layer being "unavailable: No such file or directory". The whole tree is
# below the test's own /sys/fs/bpf/egit-$EGIT_ID, which lib.sh removes at exit.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
PIN=$PIN/a/b
export OPENSANDBOX_EGRESS_BPF_PIN_DIR=$PIN
start_egressd_bpf --rules "$POLICY"
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
if [ -e "$PIN/config" ] && [ -d "$PIN/links" ]; then
	pass "maps and links pinned under the nested $PIN"
else
	fail "maps and links pinned under the nested $PIN" "$(ls -R "${PIN%/a/b}" 2>&1)"
fi
stop_egressd
out=$(nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup --bpf-pin-dir "$PIN" 2>&1)
assert_eq "egressd --cleanup of the nested pin dir exits 0" 0 "$?"
if [ -e "$PIN" ]; then fail "the nested pin dir is gone" "$out"; else pass "the nested pin dir is gone"; fi
egit_finish
