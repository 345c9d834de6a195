# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash disable=SC2034,SC2016
#
# Helpers for the BPF-layer integration tests (tests/integration/test_bpf_*.sh),
# sourced after lib.sh:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/bpflib.sh"
#   bpf_init            # egit_init + $PIN + cleanup of what this file adds
#
# lib.sh already points OPENSANDBOX_EGRESS_CGROUP at $CG/workload and
# OPENSANDBOX_EGRESS_BPF_PIN_DIR at /sys/fs/bpf/egit-$EGIT_ID (removed by its
# cleanup). This file adds: egressd in dns+nft mode with BPF enforcing,
# readers of the pinned maps, counters and link (bpftool -j, BTF-formatted),
# a bounded TCP connect probe, a line echo server for long-lived
# connections, extra cgroups of the sandbox (neither agent nor workload),
# and an optional second namespace pair ($OTH with its own peer $OTHP)
# whose processes run in the same workload cgroup. What it creates is
# removed at exit, before lib.sh's own cleanup runs.
# (SC2034: variables are used by the tests; SC2016: sh -c snippets expand
# in the child, on purpose.)

BPF_NSS=()	# network namespaces created here (removed at exit)
BPF_CGS=()	# extra cgroups created here (removed at exit)

# bpf_init: egit_init, then chain our cleanup in front of egit_cleanup.
bpf_init() {
	command -v bpftool >/dev/null || die "'bpftool' not found"
	command -v nft >/dev/null || die "'nft' not found"
	egit_init
	PIN=$OPENSANDBOX_EGRESS_BPF_PIN_DIR
	case $PIN in
	/sys/fs/bpf/egit-*) ;;
	*) die "the pin dir '$PIN' is not test-private" ;;
	esac
	trap bpf_exit EXIT
}

_bpf_status() { return "$1"; }

bpf_exit() {
	local rc=$?
	bpf_cleanup
	_bpf_status "$rc"
	egit_cleanup
}

# Our extra cgroups (emptied, removed: egit_cleanup could not remove $CG
# otherwise), then our namespaces. The background processes (servers, in
# EGIT_PIDS) are stopped first, as egit_cleanup would (it runs right after
# and finds them gone); anything else left in them is in our cgroups, which
# egit_cleanup empties.
bpf_cleanup() {
	local ns p d
	for d in "${BPF_CGS[@]}"; do
		egit_rmcg "$d" || echo "  $EGIT_NAME: warning: could not remove $d" >&2
	done
	BPF_CGS=()
	[ "${#BPF_NSS[@]}" -gt 0 ] || return 0
	for p in "${EGIT_PIDS[@]}"; do stop_pid "$p"; done
	for ns in "${BPF_NSS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	BPF_NSS=()
}

# bpf_cgroup NAME: make $CG/NAME (a sibling of agent and workload: neither
# the agent nor the workload), removed at exit.
bpf_cgroup() {
	mkdir "$CG/$1" || die "mkdir $CG/$1"
	BPF_CGS+=("$CG/$1")
}

# bpf_foreign_holder NAME: a process in a new cgroup $CG/NAME (neither
# agent nor workload) holding a UDP socket of the sandbox namespace, from
# before egressd starts: BPF at the workload cgroup then covers only part
# of the namespace (coverage "partial") and nftables judges the rest.
bpf_foreign_holder() {
	bpf_cgroup "$1"
	run_in_cgroup "$1" "$PY" -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
open("'"$T/holder-$1"'", "w").close()
time.sleep(600)' &
	EGIT_PIDS+=($!)
	wait_for 5 test -e "$T/holder-$1" || die "socket holder in $CG/$1 did not start"
}

# run_in_cgroup NAME CMD...: CMD in the sandbox netns, in $CG/NAME.
run_in_cgroup() {
	local cg=$1
	shift
	nsenter --net="/run/netns/$SB" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/$cg" "$@"
}

# start_egressd_bpf ARGS...: egressd in dns+nft mode, BPF enforcing (the
# option repeats it so that nothing in the environment can change it).
start_egressd_bpf() {
	start_egressd --mode dns+nft --bpf enforce "$@"
}

# bpf_tool ARGS...: bpftool with JSON output.
bpf_tool() {
	bpftool -j "$@" 2>/dev/null
}

# bpf_map_has MAP ADDR [PREFIXLEN]: does pinned map MAP (learned_v4/6,
# allow_v4/6, deny_v4/6, ...) hold a key whose formatted addr is ADDR (and,
# for LPM maps, whose prefixlen is PREFIXLEN, in bpftool's terms: the CIDR
# length + 8 slot bits)? Reads bpftool's BTF-formatted dump, so it also
# checks that the map is readable by name.
bpf_map_has() {
	bpf_tool map dump pinned "$PIN/$1" | "$PY" -c '
import ipaddress, json, sys
want = list(ipaddress.ip_address(sys.argv[1]).packed)
plen = int(sys.argv[2]) if len(sys.argv) > 2 else None
for e in json.load(sys.stdin):
    k = e.get("formatted", e)["key"]
    if k.get("addr") == want and (plen is None or k.get("prefixlen") == plen):
        sys.exit(0)
sys.exit(1)' "$2" ${3:+"$3"}
}

# bpf_learned_val ADDR FIELD: a field of the learned entry of ADDR
# (expires_ns, last_seen_ns, generation); empty if absent.
bpf_learned_val() {
	local map=learned_v4
	case $1 in *:*) map=learned_v6 ;; esac
	bpf_tool map dump pinned "$PIN/$map" | "$PY" -c '
import ipaddress, json, sys
want = list(ipaddress.ip_address(sys.argv[1]).packed)
for e in json.load(sys.stdin):
    f = e.get("formatted", e)
    if f["key"].get("addr") == want:
        print(f["value"][sys.argv[2]])
        break' "$1" "$2"
}

# bpf_map_text MAP: the plain bpftool dump (for failure messages).
bpf_map_text() {
	bpftool map dump pinned "$PIN/$1" 2>&1 | tr -s ' \n\t' ' ' | head -c 800
}

# Counter indexes (docs/bpf.md, EGRESSD_CNT_*).
declare -A BPF_CNT=([default_deny]=0 [deny_rule]=1 [dot]=2 [doh]=3
	[ipv6_disabled]=4 [api]=6 [allowed]=7 [ringbuf_drops]=8
	[bind_refused]=9)

# bpf_counter NAME: the per-CPU counter NAME summed over the CPUs.
bpf_counter() {
	local i=${BPF_CNT[$1]}
	bpf_tool map lookup pinned "$PIN/counters" key "$i" 0 0 0 | "$PY" -c '
import json, sys
o = json.load(sys.stdin)
print(sum(v["value"] for v in o["formatted"]["values"]))'
}

# bpf_counters_all: every counter, "name=value ..." (one snapshot).
bpf_counters_all() {
	local n out=
	for n in default_deny deny_rule dot doh ipv6_disabled allowed; do
		out="$out $n=$(bpf_counter "$n")"
	done
	echo "${out# }"
}

# bpf_link_pin: the path of the pinned cgroup link (empty if none).
bpf_link_pin() {
	local f
	for f in "$PIN"/links/cgroup_*; do
		[ -e "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

# bpf_link_field FIELD: id, prog_id, cgroup_id ... of the pinned link.
bpf_link_field() {
	local l
	l=$(bpf_link_pin) || return 1
	bpf_tool link show pinned "$l" | "$PY" -c '
import json, sys
print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

# bpf_dns_links: "<pin name>=<link id>" of each pinned DNS redirect link,
# sorted, one per line (empty if none).
bpf_dns_links() {
	local f
	for f in "$PIN"/links/dns_*; do
		[ -e "$f" ] || continue
		printf '%s=%s\n' "$(basename "$f")" "$(bpf_tool link show pinned "$f" |
			"$PY" -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
	done | sort
}

# bpf_map_id MAP: the kernel id of a pinned map.
bpf_map_id() {
	bpf_tool map show pinned "$PIN/$1" | "$PY" -c '
import json, sys
print(json.load(sys.stdin)["id"])'
}

# cgroup_id DIR: the id of a cgroup v2 directory (its inode number).
cgroup_id() {
	stat -c %i "$1"
}

# tcp_probe NS CGROUP ADDR PORT TRIES INTERVAL_S TIMEOUT_S: from a process
# in netns NS and cgroup CGROUP, try TRIES TCP connects to ADDR:PORT, one
# every INTERVAL_S, each given TIMEOUT_S; prints one line per try
# ("ok N" or "blocked N <error>"). Bounded: at most TRIES * (INTERVAL_S +
# TIMEOUT_S) seconds.
tcp_probe() {
	nsenter --net="/run/netns/$1" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$2" "$PY" -c '
import socket, sys, time
a, p, n, iv, to = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
fam = socket.AF_INET6 if ":" in a else socket.AF_INET
for i in range(n):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(to)
    try:
        s.connect((a, p))
        print("ok %d" % i, flush=True)
    except OSError as e:
        print("blocked %d %s" % (i, e.__class__.__name__), flush=True)
    finally:
        s.close()
    time.sleep(iv)' "$3" "$4" "$5" "$6" "$7"
}

# violations_for FILE DST: the violation lines of FILE whose dst is DST.
violations_for() {
	"$PY" - "$1" "$2" <<'EOF_PY'
import json, sys
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and o.get("event") == "violation" and \
           (o.get("dst") == sys.argv[2] or sys.argv[2] in line):
            print(line.rstrip())
EOF_PY
}

# ---- a second namespace pair -------------------------------------------
#
#   $OTH (10.200.$Y.2, fd00:200:$Y::2)  --veth--  $OTHP (10.200.$Y.1,
#   fd00:200:$Y::1 and host .81)
#
# Not the sandbox: egressd does not run there, but processes started with
# run_other are in the same workload cgroup as the sandbox's workload.

Y=$((X + 100))
OTH=egit-$EGIT_ID-oth
OTHP=egit-$EGIT_ID-othp
VO=ego$EGIT_ID
VP=egp$EGIT_ID
OTH4=10.200.$Y.2
OTHP4=10.200.$Y.1
OTHHOST4=10.200.$Y.81
OTH6=fd00:200:$Y::2
OTHP6=fd00:200:$Y::1
OTHHOST6=fd00:200:$Y::81

bpf_other_init() {
	local ns
	for ns in "$OTH" "$OTHP"; do
		ip netns del "$ns" 2>/dev/null # left by a killed test of this id
		ip netns add "$ns" || die "ip netns add $ns"
		BPF_NSS+=("$ns")
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
			net.ipv6.conf.default.accept_dad=0 >/dev/null 2>&1
		ip -n "$ns" link set lo up || die "lo up in $ns"
	done
	ip link add "$VO" netns "$OTH" type veth peer name "$VP" netns "$OTHP" ||
		die "veth $VO/$VP"
	if ! { ip -n "$OTH" addr add "$OTH4/24" dev "$VO" &&
		ip -n "$OTH" addr add "$OTH6/64" dev "$VO" nodad &&
		ip -n "$OTH" link set "$VO" up &&
		ip -n "$OTH" route add default via "$OTHP4" &&
		ip -n "$OTH" -6 route add default via "$OTHP6" &&
		ip -n "$OTHP" addr add "$OTHP4/24" dev "$VP" &&
		ip -n "$OTHP" addr add "$OTHP6/64" dev "$VP" nodad &&
		ip -n "$OTHP" addr add "$OTHHOST4/24" dev "$VP" &&
		ip -n "$OTHP" addr add "$OTHHOST6/64" dev "$VP" nodad &&
		ip -n "$OTHP" link set "$VP" up; }; then
		die "second namespace pair addresses/routes"
	fi
}

# run_other CMD...: CMD in $OTH, in the workload cgroup.
run_other() {
	nsenter --net="/run/netns/$OTH" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/workload" "$@"
}

# start_other_servers TAG SPEC...: start_servers (lib.sh) in $OTHP.
start_other_servers() {
	NET=$OTHP start_servers "$@"
}

# assert_tcp_blocked DESC ADDR PORT: one quick TCP connect from the sandbox
# workload (0.7 s; a dropped SYN times out) must not succeed. Faster than
# assert_blocked (curl, 2 s) where the HTTP exchange adds nothing.
assert_tcp_blocked() {
	local out
	out=$(tcp_probe "$SB" "$CG/workload" "$2" "$3" 1 0 0.7 2>&1)
	case $out in
	"blocked 0 "*) pass "$1" ;;
	*) fail "$1" "workload: TCP connect to $2:$3: '$out'" ;;
	esac
}

# start_echo_server TAG ADDR PORT: a TCP line echo server in the internet
# namespace, one thread per connection, connections kept open; accepts are
# logged to $T/echo-TAG.log. Returns once bound.
start_echo_server() {
	local tag=$1 pid
	rm -f "$T/echo-$tag.ready"
	ip netns exec "$NET" "$PY" - "$T/echo-$tag.log" "$T/echo-$tag.ready" "$2" "$3" \
		>"$T/echo-$tag.err" 2>&1 <<'EOF_PY' &
import socket, sys, threading
log, ready, addr, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = open(log, "a", buffering=1)
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(16)
open(ready, "w").close()
def serve(c):
    with c:
        f = c.makefile("rwb", buffering=0)
        for line in f:
            f.write(line)
while True:
    c, src = s.accept()
    out.write("accept %s\n" % src[0])
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF_PY
	pid=$!
	EGIT_PIDS+=("$pid")
	wait_for 5 test -e "$T/echo-$tag.ready" || die "echo server $tag did not start: $(cat "$T/echo-$tag.err")"
}

# echo_session ADDR PORT IDLE_S: from the workload, one TCP connection:
# echo a line, stay idle IDLE_S seconds, echo another line on the SAME
# connection. Prints "first ok|fail ..." and "second ok|fail ...".
echo_session() {
	run_workload "$PY" -c '
import socket, sys, time
a, p, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect((a, p))
    s.sendall(b"one\n")
    print("first", "ok" if s.recv(100) == b"one\n" else "fail bad-echo", flush=True)
except OSError as e:
    print("first fail", e.__class__.__name__, flush=True)
    sys.exit(0)
time.sleep(idle)
s.settimeout(3)
try:
    s.sendall(b"two\n")
    print("second", "ok" if s.recv(100) == b"two\n" else "fail bad-echo", flush=True)
except OSError as e:
    print("second fail", e.__class__.__name__, flush=True)' "$@"
}
