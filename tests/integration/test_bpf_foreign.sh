#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317,SC2016
# SPDX-License-Identifier: GPL-2.0-only
#
# Programs another egressd run left on the workload cgroup. An egressd
# with pin dir A (policy: deny all) is killed; an egressd with pin dir B
# (policy: allow $WEB4) on the same cgroup detaches A's programs, with a
# warning line naming each, and the allowed traffic goes through (A's
# stale program would drop it). The same when A's link is pinned nowhere
# any more (its pins removed while a process still holds the link), and
# when A's program is attached without a link (BPF_PROG_ATTACH). An
# egressd running in another network namespace with pin dir A on the same
# cgroup is maintained by a live agent and judges only its namespace: its
# programs are listed as foreign-egressd and left attached.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
PINA=/sys/fs/bpf/egit-$EGIT_ID-a
foreign_exit() {
	local rc=$?
	[ -n "${OTH_PID:-}" ] && stop_pid "$OTH_PID"
	rm -rf "$PINA"
	_bpf_status "$rc"
	bpf_exit
}
trap foreign_exit EXIT

DENY='{"defaultAction":"deny","egress":[]}'
ALLOW='{"defaultAction":"deny","egress":[{"action":"allow","target":"'$WEB4'"}]}'
WL=$(cgroup_id "$CG/workload")
start_upstream
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.81:80"

# egress_prog_id DIR: prog id of the egress link pinned in pin dir DIR.
egress_prog_id() {
	bpf_tool link show pinned "$1/links/cgroup_$WL" | "$PY" -c '
import json, sys
print(json.load(sys.stdin)["prog_id"])'
}

# egress_progs: the prog ids attached as cgroup_inet_egress to the
# workload cgroup, sorted, space-separated.
egress_progs() {
	bpf_tool cgroup show "$CG/workload" | "$PY" -c '
import json, sys
print(" ".join(sorted(str(p["id"]) for p in json.load(sys.stdin)
                      if p.get("attach_type") == "cgroup_inet_egress")))'
}

kill_egressd() {
	kill -KILL "$EGRESSD_PID"
	wait "$EGRESSD_PID" 2>/dev/null
	EGRESSD_PID=
}

# ---- a killed egressd with pin dir A, then one with pin dir B ----------
start_egressd_bpf --bpf-pin-dir "$PINA" --rules "$DENY"
a_prog=$(egress_prog_id "$PINA")
assert_tcp_blocked "egressd A (deny all): $WEB4:80 blocked" "$WEB4" 80
kill_egressd
assert_eq "A killed: its egress program stays attached" "$a_prog" "$(egress_progs)"

start_egressd_api --mode dns+nft --bpf enforce --rules "$ALLOW"
b_prog=$(egress_prog_id "$PIN")
assert_json_line "a warning line names A's egress_filter, detached" "$T/egressd.out" \
	event=warning name=egress_filter progId="$a_prog" attachType=cgroup_inet_egress \
	cgroup="$CG/workload" action=detached
if grep -q "\"event\":\"warning\".*stale policy of pin directory $PINA" "$T/egressd.out"; then
	pass "the warning says A's pin dir is stale"
else
	fail "the warning says A's pin dir is stale" "$(grep warning "$T/egressd.out" | head -3)"
fi
assert_json_line "A's ingress_track is detached too" "$T/egressd.out" \
	event=warning name=ingress_track attachType=cgroup_inet_ingress action=detached
assert_eq "only B's egress program is attached" "$b_prog" "$(egress_progs)"
assert_connects "egressd B (allow $WEB4): $WEB4:80 connects" "$WEB4" 80
assert_tcp_blocked "egressd B: 10.200.$X.81:80 blocked" "10.200.$X.81" 80
api GET /status
assert_eq "/status: no foreign-egressd program on the workload cgroup" 0 \
	"$(json_eval "$API_BODY" 'len([a for a in o["attached"] if a["cgroup"] == "'"$CG/workload"'" and a["owner"] != "ours"])')"
if [ -e "$PINA/links/cgroup_$WL" ]; then
	pass "A's pins are left in place (A's --cleanup removes them)"
else
	fail "A's pins are left in place" "$(ls -R "$PINA" 2>&1)"
fi

# ---- the other way round: B stopped, A restarted; then A's link is held
# by a process only, its pins removed, and B starts again --------------
stop_egressd
start_egressd_bpf --bpf-pin-dir "$PINA" --rules "$DENY"
assert_json_line "A restarted: B's stale egress program is detached" "$T/egressd.out" \
	event=warning name=egress_filter progId="$b_prog" action=detached
a_prog=$(egress_prog_id "$PINA")
assert_eq "A restarted: only A's egress program is attached" "$a_prog" "$(egress_progs)"
rm -f "$T/hold.ready"
"$PY" - "$PINA/links/cgroup_$WL" "$T/hold.ready" >"$T/hold.err" 2>&1 <<'EOF_PY' &
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
path = ctypes.create_string_buffer(sys.argv[1].encode())
class Attr(ctypes.Structure):
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32),
                ("file_flags", ctypes.c_uint32), ("path_fd", ctypes.c_int32)]
attr = Attr(ctypes.addressof(path), 0, 0, 0)
fd = libc.syscall(321, 7, ctypes.byref(attr), ctypes.sizeof(attr))  # bpf(BPF_OBJ_GET)
if fd < 0:
    print("BPF_OBJ_GET failed, errno", ctypes.get_errno())
    sys.exit(1)
open(sys.argv[2], "w").close()
time.sleep(120)
EOF_PY
EGIT_PIDS+=("$!")
wait_for 5 test -e "$T/hold.ready" || die "could not hold A's link: $(cat "$T/hold.err")"
kill_egressd
rm -rf "$PINA/links"
assert_eq "A's pins removed, its link held by a process: still attached" "$a_prog" "$(egress_progs)"
start_egressd_api --mode dns+nft --bpf enforce --rules "$ALLOW"
assert_json_line "a warning line names A's unpinned egress_filter, detached" "$T/egressd.out" \
	event=warning name=egress_filter progId="$a_prog" action=detached
if grep -q '"event":"warning".*is pinned nowhere on bpffs: detached' "$T/egressd.out"; then
	pass "the warning says the link is pinned nowhere"
else
	fail "the warning says the link is pinned nowhere" "$(grep warning "$T/egressd.out" | head -3)"
fi
assert_connects "egressd B again: $WEB4:80 connects" "$WEB4" 80
stop_egressd

# ---- A's program attached without a link (legacy BPF_PROG_ATTACH) -----
start_egressd_bpf --bpf-pin-dir "$PINA" --rules "$DENY"
a_prog=$(egress_prog_id "$PINA")
bpftool prog pin id "$a_prog" "$PINA/egress_prog" || fail "bpftool prog pin id $a_prog" "failed"
kill_egressd
rm -rf "$PINA/links"
bpftool cgroup attach "$CG/workload" egress pinned "$PINA/egress_prog" multi ||
	fail "bpftool cgroup attach (legacy) of A's program" "failed"
assert_eq "A's program attached without a link" "$a_prog" "$(egress_progs)"
assert_tcp_blocked "A's linkless program (deny all): $WEB4:80 blocked" "$WEB4" 80
start_egressd_api --mode dns+nft --bpf enforce --rules "$ALLOW"
assert_json_line "a warning line names A's linkless egress_filter, detached" "$T/egressd.out" \
	event=warning name=egress_filter progId="$a_prog" action=detached
if grep -q '"event":"warning".*was attached without a link (nothing maintains it): detached' "$T/egressd.out"; then
	pass "the warning says it was attached without a link"
else
	fail "the warning says it was attached without a link" "$(grep warning "$T/egressd.out" | head -3)"
fi
assert_connects "egressd B once more: $WEB4:80 connects" "$WEB4" 80
# Attached again while B runs: /status lists it and warns, once.
bpftool cgroup attach "$CG/workload" egress pinned "$PINA/egress_prog" multi ||
	fail "bpftool cgroup attach (legacy) of A's program, B running" "failed"
api GET /status
assert_eq "/status: A's program attached at run time is foreign-egressd" '["foreign-egressd"]' \
	"$(json_eval "$API_BODY" '[a["owner"] for a in o["attached"] if a["progId"] == '"$a_prog"']')"
api GET /status
assert_eq "/status warned once about it, not once per request" 1 \
	"$(grep -c "\"event\":\"warning\".*prog id $a_prog.*is attached next to this agent's" "$T/egressd.out")"
bpftool cgroup detach "$CG/workload" egress pinned "$PINA/egress_prog"
stop_egressd

# ---- a live egressd of another namespace on the same cgroup ----------
rm -rf "$PINA"
bpf_other_init
start_other_servers oth "tcp:$OTHHOST4:80"
code=$(run_other curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$OTHHOST4/" 2>/dev/null)
assert_eq "control: the other namespace reaches $OTHHOST4:80 with no egressd there" 200 "$code"
nsenter --net="/run/netns/$OTH" -- env --default-signal=INT,QUIT sh -c \
	'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
	sh "$CG/agent" "$EGRESSD" --mode dns+nft --bpf enforce --bpf-pin-dir "$PINA" \
	--rules "$DENY" >"$T/oth.out" 2>"$T/oth.err" &
OTH_PID=$!
wait_for 10 grep -q '"event":"start"' "$T/oth.out" ||
	die "egressd in $OTH did not start: $(cat "$T/oth.err") $(tail -3 "$T/oth.out")"
o_prog=$(egress_prog_id "$PINA")
: >"$T/egressd.out"
start_egressd_api --mode dns+nft --bpf enforce --rules "$ALLOW"
b_prog=$(egress_prog_id "$PIN")
assert_eq "the other namespace's egress program stays attached next to ours" \
	"$(printf '%s\n' "$o_prog" "$b_prog" | sort | tr '\n' ' ' | sed 's/ $//')" "$(egress_progs)"
if grep -q "\"event\":\"warning\".*prog id $o_prog" "$T/egressd.out"; then
	fail "no warning about the other namespace's program" "$(grep "prog id $o_prog" "$T/egressd.out")"
else
	pass "no warning about the other namespace's program"
fi
api GET /status
assert_eq "/status: the other namespace's egress_filter is foreign-egressd" '["foreign-egressd"]' \
	"$(json_eval "$API_BODY" '[a["owner"] for a in o["attached"] if a["progId"] == '"$o_prog"']')"
assert_connects "our workload: $WEB4:80 connects" "$WEB4" 80
code=$(run_other curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$OTHHOST4/" 2>/dev/null)
assert_eq "the other namespace's egressd (deny all) still enforces there" 000 "$code"
egit_finish
