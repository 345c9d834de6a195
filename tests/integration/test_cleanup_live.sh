#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Nothing live is removed, and /status does not report what is gone.
# `egressd --cleanup` while egressd runs in the namespace: exit 1, a
# message naming the running pid, and the table, the pins and enforcement
# all still there. /status after `nft delete table inet egressd` and after
# `bpftool link detach` done behind egressd's back: that layer "missing"
# (a detached DNS redirect link: said in the dns layer's why),
# with one warning line each. After a stop, --cleanup succeeds. With the
# abstract name squatted by another process, egressd still starts (with a
# warning) and --cleanup refuses by the pin dir's lock alone.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.81:80"
POL='{"defaultAction":"deny","egress":[{"action":"allow","target":"'$WEB4'"}]}'

cleanup_in_sb() {
	CLEAN_OUT=$(nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup --bpf-pin-dir "$PIN" 2>&1)
	CLEAN_RC=$?
}

status_field() {
	api GET /status
	json_eval "$API_BODY" "$1"
}

start_egressd_api --mode dns+nft --bpf enforce --rules "$POL"
pid=$EGRESSD_PID
assert_connects "before: the allowed $WEB4:80 connects" "$WEB4" 80
assert_tcp_blocked "before: 10.200.$X.81:80 is blocked" "10.200.$X.81" 80
link_id=$(bpf_link_field id)

cleanup_in_sb
assert_eq "--cleanup while egressd runs exits 1" 1 "$CLEAN_RC"
assert_contains "--cleanup names the running egressd" "$CLEAN_OUT" \
	"egressd (pid $pid) is running in this network namespace and holds table inet egressd: stop it first"
assert_eq "the table is still there" 1 "$(nft_tables_named egressd inet)"
assert_eq "the link is still pinned and the same" "$link_id" "$(bpf_link_field id)"
if kill -0 "$pid" 2>/dev/null; then pass "egressd still runs"; else fail "egressd still runs" "pid $pid is gone"; fi
assert_connects "after the refusal: the allowed $WEB4:80 connects" "$WEB4" 80
assert_tcp_blocked "after the refusal: 10.200.$X.81:80 is still blocked" "10.200.$X.81" 80
assert_eq "/status: nft on" on "$(status_field 'o["layers"]["nft"]["state"]')"
assert_eq "/status: bpf enforce" enforce "$(status_field 'o["layers"]["bpf"]["state"]')"
assert_eq "/status: attached lists our egress_filter on the workload cgroup" \
	'["ours"]' "$(status_field '[a["owner"] for a in o["attached"] if a["name"] == "egress_filter" and a["cgroup"] == "'"$CG/workload"'"]')"
assert_eq "/status: 8 DNS redirect programs are ours" 8 \
	"$(status_field 'len([a for a in o["attached"] if a["name"].startswith("dns_") and a["owner"] == "ours"])')"

# Behind egressd's back: the table goes.
nft_sb delete table inet egressd
assert_eq "/status: nft missing once the table is deleted" missing \
	"$(status_field 'o["layers"]["nft"]["state"]')"
assert_contains "/status: nft why says the table is gone" \
	"$(status_field 'o["layers"]["nft"]["why"]')" "no longer in the kernel"
status_field 1 >/dev/null
assert_eq "one warning line for the missing table (not one per /status)" 1 \
	"$(grep -c '"event":"warning".*table inet egressd is no longer in the kernel' "$T/egressd.out")"


# Behind egressd's back: a DNS redirect link is detached.
dns_id=$(bpf_dns_links | head -n 1 | cut -d= -f2)
bpftool link detach id "$dns_id" || fail "bpftool link detach id $dns_id" "failed"
assert_contains "/status: dns why names the detached redirect link" \
	"$(status_field 'o["layers"]["dns"].get("why", "")')" "link (id $dns_id) was detached"
assert_eq "/status: bpf still enforce (the filter links are there)" enforce \
	"$(status_field 'o["layers"]["bpf"]["state"]')"

# Behind egressd's back: the egress link is detached.
bpftool link detach id "$link_id" || fail "bpftool link detach id $link_id" "failed"
assert_eq "/status: bpf missing once the link is detached" missing \
	"$(status_field 'o["layers"]["bpf"]["state"]')"
assert_contains "/status: bpf why names the detached link" \
	"$(status_field 'o["layers"]["bpf"]["why"]')" "link (id $link_id) was detached"
wait_for 2 grep -q '"event":"warning".*was detached from its cgroup' "$T/egressd.out"
if grep -q '"event":"warning".*was detached from its cgroup' "$T/egressd.out"; then
	pass "a warning line for the detached link"
else
	fail "a warning line for the detached link" "$(tail -5 "$T/egressd.out")"
fi

stop_egressd
cleanup_in_sb
assert_eq "after the stop: --cleanup exits 0" 0 "$CLEAN_RC"
if [ -e "$PIN" ]; then fail "after the stop: the pin dir is gone" "$(ls -R "$PIN" 2>&1)"; else pass "after the stop: the pin dir is gone"; fi

# A squatter on the name: egressd starts anyway, --cleanup relies on the lock.
: >"$T/squat.ready"
rm -f "$T/squat.ready"
nsenter --net="/run/netns/$SB" -- "$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0egressd.table.inet.egressd")
s.listen(64)
open(sys.argv[1], "w").close()
time.sleep(60)' "$T/squat.ready" >"$T/squat.err" 2>&1 &
EGIT_PIDS+=("$!")
wait_for 5 test -e "$T/squat.ready" || die "squatter did not bind: $(cat "$T/squat.err")"
start_egressd_api --mode dns+nft --bpf enforce --rules "$POL"
assert_eq "squatted name: egressd still starts, BPF enforcing" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
if grep -q '"event":"warning".*not by egressd' "$T/egressd.out"; then
	pass "squatted name: a warning says who holds it"
else
	fail "squatted name: a warning says who holds it" "$(head -5 "$T/egressd.out")"
fi
cleanup_in_sb
assert_eq "squatted name: --cleanup while egressd runs still exits 1" 1 "$CLEAN_RC"
assert_contains "squatted name: --cleanup says it relies on the lock" "$CLEAN_OUT" \
	"relying on the lock of $PIN alone"
assert_contains "squatted name: --cleanup names the lock" "$CLEAN_OUT" \
	"an egressd holds the lock of $PIN"
assert_eq "squatted name: the table is still there" 1 "$(nft_tables_named egressd inet)"
assert_tcp_blocked "squatted name: 10.200.$X.81:80 is still blocked" "10.200.$X.81" 80
stop_egressd
cleanup_in_sb
assert_eq "squatted name, after the stop: --cleanup exits 0" 0 "$CLEAN_RC"
assert_eq "squatted name, after the stop: the table is gone" 0 "$(nft_tables_named egressd)"
egit_finish
