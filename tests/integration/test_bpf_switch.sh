#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317,SC2016
# SPDX-License-Identifier: GPL-2.0-only
#
# What a previous run attached never outlives a change of settings:
# - restarted with another workload cgroup, egressd detaches the old
#   cgroup's programs (they would judge it with maps of the new run);
# - another sandbox (network namespace) given the same pin directory
#   neither adopts nor removes those pins, and says why;
# - restarted with BPF off, it removes every program and map an earlier
#   run pinned (they would enforce a policy nobody updates any more, and
#   keep redirecting DNS on their own), after nftables took over: the
#   workload is judged by nftables, DNS goes through the nat redirect.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
bpf_cgroup other
start_upstream
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.81:80"

prog_on() { bpftool cgroup show "$1" 2>/dev/null | grep -cE 'egress_filter|ingress_track'; }

start_egressd_bpf --rules "$POLICY"
assert_eq "run 1: two programs on the workload cgroup" 2 "$(prog_on "$CG/workload")"
stop_egressd

start_egressd_bpf --rules "$POLICY" --cgroup "$CG/other"
assert_eq "run 2 (--cgroup other): two programs on the new cgroup" 2 "$(prog_on "$CG/other")"
assert_eq "run 2: none left on the old workload cgroup" 0 "$(prog_on "$CG/workload")"
links=
for f in "$PIN"/links/cgroup_* "$PIN"/links/ingress_*; do
	[ -e "$f" ] && links="$links ${f##*/}"
done
assert_eq "run 2: only the new cgroup's links are pinned" \
	" cgroup_$(cgroup_id "$CG/other") ingress_$(cgroup_id "$CG/other")" "$links"
wait_json_line "run 2: the removal is logged" "$T/egressd.out" event=info
assert_contains "run 2: the line names the old link" \
	"$(grep 'of a previous run removed' "$T/egressd.out")" "cgroup_$(cgroup_id "$CG/workload")"
stop_egressd

# Another sandbox (network namespace) pointed at the same pin directory
# must neither adopt the pins (its cookie in their config would hand this
# sandbox's programs to it) nor remove them.
bpf_other_init
cookie0=$(bpf_tool map dump pinned "$PIN/config" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["value"]["netns_cookie"])')
oth_egressd() {
	nsenter --net="/run/netns/$OTH" -- sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/agent" timeout -s INT 3 "$EGRESSD" --mode dns+nft --dns-upstream "$OTHP4" \
		--cgroup "$CG/other" --rules "$POLICY" "$@"
}
oth_egressd --bpf enforce >"$T/oth.out" 2>"$T/oth.err"
assert_eq "other netns, same pin dir: BPF unavailable" unavailable \
	"$(json_field "$T/oth.out" start layers.bpf.state)"
assert_contains "other netns: it says why" \
	"$(json_field "$T/oth.out" start layers.bpf.why)" "another network namespace"
assert_eq "other netns: the pinned config still names this sandbox" "$cookie0" \
	"$(bpf_tool map dump pinned "$PIN/config" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["value"]["netns_cookie"])')"
oth_egressd --bpf off >"$T/oth.out" 2>"$T/oth.err"
assert_contains "other netns, --bpf off: the pins are left alone (and it says so)" \
	"$(cat "$T/oth.out")" "belong to another network namespace"
out=$(nsenter --net="/run/netns/$OTH" -- "$EGRESSD" --cleanup 2>&1)
rc=$?
assert_eq "other netns, --cleanup: refused (exit 1)" 1 "$rc"
assert_contains "other netns, --cleanup: says whose they are" "$out" "belong to another network namespace"
assert_eq "this sandbox's programs are still attached" 2 "$(prog_on "$CG/other")"

start_egressd --mode dns+nft --bpf off --rules "$POLICY"
assert_eq "run 3 (--bpf off): layers.bpf.state off" off "$(json_field "$T/egressd.out" start layers.bpf.state)"
if [ -e "$PIN" ]; then fail "run 3: the pin directory is gone" "$(ls -R "$PIN" 2>&1)"; else pass "run 3: the pin directory is gone"; fi
assert_eq "run 3: no program on the cgroup" 0 "$(prog_on "$CG/other")"
assert_contains "run 3: the removal is logged" \
	"$(grep -F 'of an earlier run removed' "$T/egressd.out")" "BPF is off"
assert_eq "run 3: port 53 through the nat redirect" nft \
	"$(json_field "$T/egressd.out" start layers.dns.redirect)"
q @"$DNS4" api.github.com A
assert_eq "run 3: DNS answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "run 3: learned $WEB4:80 connects (nftables)" "$WEB4" 80
assert_blocked "run 3: 10.200.$X.81:80 blocked (nftables)" "10.200.$X.81" 80
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
