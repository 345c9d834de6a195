#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A clean stop (SIGTERM) leaves enforcement in place: the link and the maps
# stay pinned and the workload stays blocked. `egressd --cleanup
# --bpf-pin-dir DIR` then removes what egressd owns: table inet egressd,
# the link (the program leaves the workload cgroup) and every pin, and the
# workload is no longer filtered.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
start_servers web "tcp:10.200.$X.81:80"
start_egressd_bpf --rules "$POLICY"
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
stop_egressd
assert_eq "SIGTERM: egressd exits 0" 0 "$EGRESSD_RC"
assert_json_line "stop line" "$T/egressd.out" event=stop
if [ -n "$(bpf_link_pin)" ]; then pass "after a clean stop: the link is still pinned"; else fail "after a clean stop: the link is still pinned" "$(ls -R "$PIN" 2>&1)"; fi
if bpftool cgroup show "$CG/workload" 2>/dev/null | grep -q cgroup_inet_egress; then
	pass "after a clean stop: the program is still attached"
else
	fail "after a clean stop: the program is still attached" "$(bpftool cgroup show "$CG/workload" 2>&1)"
fi
assert_tcp_blocked "after a clean stop: 10.200.$X.81:80 still blocked" "10.200.$X.81" 80

dns_ids=$(bpf_dns_links | cut -d= -f2)
assert_eq "after a clean stop: 8 DNS redirect links still pinned" 8 "$(grep -c . <<<"$dns_ids")"
out=$(nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup --bpf-pin-dir "$PIN" 2>&1)
rc=$?
assert_eq "egressd --cleanup exits 0" 0 "$rc"
assert_contains "--cleanup says what it removed" "$out" "$PIN"
left=
for id in $dns_ids; do
	bpftool link show id "$id" >/dev/null 2>&1 && left="$left $id"
done
assert_eq "the 8 DNS redirect links are gone (detached at the cgroup2 root)" "" "$left"
if [ -e "$PIN" ]; then fail "the pin dir is gone" "$(ls -R "$PIN" 2>&1)"; else pass "the pin dir is gone"; fi
assert_eq "table inet egressd is gone" 0 "$(nft_tables_named egressd)"
assert_eq "no egress program on the workload cgroup" "" \
	"$(bpftool cgroup show "$CG/workload" 2>/dev/null | grep cgroup_inet_egress)"
assert_connects "after --cleanup: 10.200.$X.81:80 connects (nothing filters)" "10.200.$X.81" 80
out=$(nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup --bpf-pin-dir "$PIN" 2>&1)
assert_eq "a second --cleanup (nothing left) exits 0" 0 "$?"
egit_finish
