#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# An idle sandbox costs little kernel memory: with egressd enforcing
# (dns+nft, BPF) and nothing resolved yet, the maps pinned under the pin
# dir hold at most 2 MiB together, as bpftool map show counts them
# (bytes_memlock). The learned maps (and every other hash map that can)
# allocate entries as they are learned instead of preallocating their
# capacity. The figure is printed (EGIT_VERBOSE=1) for bench/RESULTS.md.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
start_egressd_bpf --rules "$POLICY"
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"

total=0
detail=
for f in "$PIN"/*; do
	[ -f "$f" ] || continue
	b=$(bpf_tool map show pinned "$f" | "$PY" -c '
import json, sys
print(json.load(sys.stdin).get("bytes_memlock", 0))') || continue
	total=$((total + b))
	detail="$detail $(basename "$f")=$b"
done
egit_log "bytes_memlock of the pinned maps: $total ($detail )"
if [ "$total" -le $((2 * 1024 * 1024)) ]; then
	pass "idle sandbox: pinned maps hold $total bytes (<= 2 MiB)"
else
	fail "idle sandbox: pinned maps hold <= 2 MiB" "$total bytes:$detail"
fi

# The learned maps do not preallocate: no flags, no room taken.
for m in learned_v4 learned_v6; do
	flags=$(bpf_tool map show pinned "$PIN/$m" | "$PY" -c '
import json, sys
print(json.load(sys.stdin).get("flags", 0))')
	assert_eq "$m is BPF_F_NO_PREALLOC" 1 "$((flags & 1))"
done

egit_finish
