#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/datapath.sh — cost of egressd on the packet path (issue 4,
# "Benchmark"). Not part of `make test`. Run as root: bench/datapath.sh
#
# Two network namespaces over a veth pair: the sandbox $SB (egressd, and
# the iperf3 client in the workload cgroup the BPF program is attached to)
# and the peer $NET (iperf3 server, fakedns). Per variant:
#   udp64  iperf3 -u -l 64 -b 0 for $DURATION s: 64-byte UDP payloads as
#          fast as one sender can go. Figure: packets/s the sender got
#          through (end.sum_sent). Every per-packet cost of the egress path
#          (netfilter, conntrack, the cgroup/skb program) is paid in the
#          sender's syscall, on its CPU; the receiving iperf3 drops most
#          of them (one recv per packet), which does not slow the sender.
#          Second figure: packets sent per second of the sender's own CPU
#          time (iperf3's cpu_utilization_percent.host_total: utime +
#          stime, softirq work done in its context included), which is
#          robust to CPU taken by other load on the machine.
#   tcp    iperf3 TCP for $DURATION s: Gbit/s received (noisy over veth).
# Sender pinned to CPU $CPU_SEND, server (and egressd) to CPU $CPU_RECV.
#
# Variants (VARIANTS, all by default, interleaved within each rep so that
# drift of the machine's load hits all of them alike):
#   baseline  no egressd at all (no table, no program)
#   enforce   egressd --mode dns+nft --bpf enforce, default attach point
#             (the sandbox cgroup $CG, the parent of egressd's cgroup; a
#             sock_diag scan finds every socket of the namespace below it,
#             so BPF judges every packet and nftables installs no chain):
#             the target. Policy of
#             $N_CIDR static CIDRs (80% allow, 20% deny, in the LPM maps
#             and the nft interval sets) plus the wildcard *.bench.test;
#             $N_LEARN + 1 names resolved through egressd before measuring
#             (learned into the BPF maps and the nft sets), the iperf3
#             server's address being one of them
#   sidecar   the same, egressd started as a sidecar container is: its
#             own cgroup and mount namespaces, cgroup2 remounted, the
#             host's hierarchy at OPENSANDBOX_EGRESS_HOST_CGROUP2
#             (tests/tools/sidecar-exec.sh); same attach point, found there
#   enforceroot  the same with --cgroup <cgroup2 root>: the attach point
#             egressd used by default before it knew its sandbox cgroup
#             (netns-cookie filtering; 6.15+)
#   noframes  DIAGNOSTIC: "enforce", then table netdev egressd deleted by
#             hand: what the packet-socket guard (one netdev egress chain
#             per interface) costs every packet
#   framesfloor DIAGNOSTIC: "enforce", then every chain of table netdev
#             egressd flushed (the chains stay, policy accept, no rule):
#             what the netdev egress hook costs before any rule runs, the
#             floor of any guard built on it
#   enforceb  "enforce" with another build, $EGRESSD_B (for example the
#             tree before a change): both builds measured in the same reps,
#             interleaved, which separate runs cannot give on a noisy VM
#   framesone DIAGNOSTIC: "enforce", then every chain of table netdev
#             egressd reduced to one rule, "meta rtclassid >= 0 accept":
#             what one rule costs above the floor
#   enforcecg the same with --cgroup <workload cgroup> and a process of
#             another cgroup holding a socket in the namespace: coverage is
#             partial, nftables hands the workload cgroup's packets to BPF
#             in its first rule and judges the rest of the namespace itself
#   nft       the same with --bpf off: nftables judges every packet
#   dns       egressd --mode dns --bpf off: only the nat port-53 redirect
#             (which turns on conntrack in the namespace)
#   bpfonly   DIAGNOSTIC, not a supported configuration: "enforce", then
#             egressd killed (-9) and table inet egressd deleted by hand,
#             so only the pinned BPF program and its maps ($N_CIDR +
#             $N_LEARN entries) remain: the BPF datapath without nftables
#             and conntrack
# Checks: in enforce and bpfonly the BPF counter "allowed" must grow by at
# least the packets sent and default_deny must not move (the packets were
# judged by BPF and allowed); the learned maps/sets must hold >= $N_LEARN.
#
# Settings (environment): REPS [3], DURATION [5], N_CIDR [10000],
# N_LEARN [10000], CPU_SEND [0], CPU_RECV [1], VARIANTS, TCP [1] (0: skip
# the TCP runs), OUT [a temp dir; per-run JSON and the table land there],
# EGRESSD (the build, default build/egressd), EGRESSD_B (variant enforceb).
# Prints the per-rep figures and a Markdown table of medians.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/integration/cgroup.sh
. "$ROOT/tests/integration/cgroup.sh"
EGRESSD_SRC=${EGRESSD:-$ROOT/build/egressd}
FAKEDNS=${FAKEDNS:-$ROOT/.output/tests/tools/fakedns}
PY=/usr/bin/python3
REPS=${REPS:-3}
DURATION=${DURATION:-5}
N_CIDR=${N_CIDR:-10000}
N_LEARN=${N_LEARN:-10000}
CPU_SEND=${CPU_SEND:-0}
CPU_RECV=${CPU_RECV:-1}
VARIANTS=${VARIANTS:-baseline enforce sidecar enforceroot enforcecg nft dns bpfonly}
TCP=${TCP:-1}

TAG=bdp-$$
SB=$TAG-sb
NET=$TAG-net
VA=bdpa$$
VB=bdpb$$
SUB=249
SB4=10.200.$SUB.2
GW4=10.200.$SUB.1
UP4=10.200.$SUB.53
SRV4=10.200.$SUB.80
PIN=/sys/fs/bpf/$TAG
PIDS=()
CG=
TMP=

die() { echo "datapath: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

for c in ip nsenter iperf3 dnsperf taskset bpftool nft "$PY"; do
	command -v "$c" >/dev/null 2>&1 || die "missing command $c"
done
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$EGRESSD_SRC" ] || die "build egressd first: make"
[ -x "$FAKEDNS" ] || die "build fakedns first: make tests"

cleanup() {
	local p
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if [ -e "/run/netns/$SB" ]; then
		nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup \
			--bpf-pin-dir "$PIN" >/dev/null 2>&1
		ip netns del "$SB"
	fi
	[ -e "/run/netns/$NET" ] && ip netns del "$NET"
	[ -d "$PIN" ] && rm -rf "$PIN"
	if [ -n "$CG" ] && [ -d "$CG" ]; then
		egit_rmcg "$CG" || echo "datapath: warning: could not remove $CG" >&2
	fi
	[ -n "$TMP" ] && [ "${KEEP:-0}" = 0 ] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TMP=$(mktemp -d "/tmp/$TAG.XXXX")
OUT=${OUT:-$TMP}
mkdir -p "$OUT"
# A snapshot: other people rebuild build/egressd meanwhile.
EGRESSD=$TMP/egressd
cp "$EGRESSD_SRC" "$EGRESSD" || die "cp $EGRESSD_SRC"
EGRESSD_B_BIN=
if [ -n "${EGRESSD_B:-}" ]; then
	EGRESSD_B_BIN=$TMP/egressd-b
	cp "$EGRESSD_B" "$EGRESSD_B_BIN" || die "cp $EGRESSD_B"
fi

# ---- topology ----------------------------------------------------------
ip netns add "$SB" || die "ip netns add $SB"
ip netns add "$NET" || die "ip netns add $NET"
ip link add "$VA" netns "$SB" type veth peer name "$VB" netns "$NET" || die "veth"
if ! { ip -n "$SB" addr add "$SB4/24" dev "$VA" &&
	ip -n "$SB" link set "$VA" up && ip -n "$SB" link set lo up &&
	ip -n "$SB" route add default via "$GW4" &&
	ip -n "$NET" addr add "$GW4/24" dev "$VB" &&
	ip -n "$NET" addr add "$UP4/24" dev "$VB" &&
	ip -n "$NET" addr add "$SRV4/24" dev "$VB" &&
	ip -n "$NET" link set "$VB" up && ip -n "$NET" link set lo up; }; then
	die "addresses/routes"
fi
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG2" ] || die "no cgroup2 mount"
CG=$CG2/$TAG
mkdir "$CG" "$CG/agent" "$CG/workload" "$CG/other" || die "mkdir $CG"
mkdir "$TMP/rules"

# in_sb CGROUP CPU CMD...: run CMD in the sandbox netns, in $CG/CGROUP,
# pinned to CPU (nsenter, sh and taskset exec: $! of "in_sb ... &" is CMD).
# shellcheck disable=SC2016 # expands in the child, on purpose
IN_SB_SH='echo $$ >"$0/cgroup.procs" && c=$1 && shift && exec taskset -c "$c" "$@"'
in_sb() {
	local cg=$1 cpu=$2
	shift 2
	nsenter --net="/run/netns/$SB" -- sh -c "$IN_SB_SH" "$CG/$cg" "$cpu" "$@"
}

# ---- zone, names, policy -----------------------------------------------
"$PY" - "$TMP" "$N_CIDR" "$N_LEARN" "$SRV4" <<'EOF_PY' || die "cannot generate the policy"
import json, sys
tmp, n_cidr, n_learn, srv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rules = [{"action": "allow", "target": "*.bench.test"}]
n_deny = n_cidr // 5
for i in range(n_cidr - n_deny):     # 172.16.0.0/25 ... (never adjacent)
    rules.append({"action": "allow",
                  "target": "172.%d.%d.0/25" % (16 + i // 256, i % 256)})
for i in range(n_deny):              # 100.64.0.0/26 ...
    rules.append({"action": "deny",
                  "target": "100.%d.%d.64/26" % (64 + i // 256, i % 256)})
json.dump({"defaultAction": "deny", "egress": rules}, open(tmp + "/policy.json", "w"))
with open(tmp + "/zone", "w") as z, open(tmp + "/names.txt", "w") as n:
    z.write("srv.bench.test A %s 3600\n" % srv)
    n.write("srv.bench.test A\n")
    for i in range(n_learn):         # 10.64.0.0 ... (outside every CIDR)
        z.write("n%d.bench.test A 10.%d.%d.%d 3600\n" % (i, 64 + i // 65536, i // 256 % 256, i % 256))
        n.write("n%d.bench.test A\n" % i)
EOF_PY

ip netns exec "$NET" taskset -c "$CPU_RECV" "$FAKEDNS" --listen "$UP4" \
	--zone "$TMP/zone" --pidfile "$TMP/fake.pid" >/dev/null 2>"$TMP/fake.err" &
PIDS+=($!)
ip netns exec "$NET" taskset -c "$CPU_RECV" iperf3 -s -B "$SRV4" >/dev/null 2>"$TMP/iperf3-s.err" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/fake.pid" ] && break; sleep 0.05; done
[ -s "$TMP/fake.pid" ] || die "fakedns did not start: $(cat "$TMP/fake.err")"

# ---- egressd -------------------------------------------------------------
EG_PID=
HOLDER=

# eg_start MODE BPF [CGROUP|sidecar]: start egressd, wait for its start
# line. Without CGROUP, egressd's default attach point (the sandbox
# cgroup $CG); "sidecar": the same, started as a sidecar container.
eg_start() {
	local cgopt=() wrap=()
	case ${3:-} in
	"") ;;
	sidecar)
		wrap=(unshare --cgroup --mount --propagation slave
			"$ROOT/tests/tools/sidecar-exec.sh" --host "$TMP/hostcg" "$TMP")
		;;
	*) cgopt=(--cgroup "$3") ;;
	esac
	: >"$TMP/eg.out"
	# Not through in_sb: $! must be egressd itself (nsenter, sh, taskset,
	# unshare and sidecar-exec exec), not a subshell running a function.
	nsenter --net="/run/netns/$SB" -- sh -c "$IN_SB_SH" "$CG/agent" "$CPU_RECV" \
		"${wrap[@]}" "${EG_BIN:-$EGRESSD}" --mode "$1" --bpf "$2" "${cgopt[@]}" \
		--dns-upstream "$UP4" --policy-file "$TMP/policy.json" --max-rules 0 \
		--rules-dir "$TMP/rules" --bpf-pin-dir "$PIN" \
		--http-addr 127.0.0.1:18080 --learn-ttl-min 3600 --learn-ttl-max 3600 \
		>"$TMP/eg.out" 2>"$TMP/eg.err" &
	EG_PID=$!
	PIDS+=("$EG_PID")
	for _ in $(seq 600); do
		grep -q '"event":"start"' "$TMP/eg.out" && return 0
		kill -0 "$EG_PID" 2>/dev/null || break
		sleep 0.05
	done
	die "egressd did not start: $(cat "$TMP/eg.err")"
}

eg_stop() {
	[ -n "$EG_PID" ] && kill -TERM "$EG_PID" 2>/dev/null && wait "$EG_PID" 2>/dev/null
	EG_PID=
	nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup --bpf-pin-dir "$PIN" \
		>/dev/null 2>&1 || die "egressd --cleanup failed"
	[ -e "$PIN" ] && die "$PIN still there after --cleanup"
	return 0
}

# Resolve every name through egressd (port 53 is redirected to it).
learn_all() {
	local n
	in_sb workload "$CPU_SEND" dnsperf -s "$UP4" -d "$TMP/names.txt" -n 1 \
		-c 4 -q 200 -t 3 >"$TMP/dnsperf.out" 2>&1 || true
	n=$(awk '/Queries completed/ { print $3 }' "$TMP/dnsperf.out")
	[ "${n:-0}" -ge "$N_LEARN" ] || {
		# Retry the stragglers once (dnsperf does not retry timeouts).
		in_sb workload "$CPU_SEND" dnsperf -s "$UP4" -d "$TMP/names.txt" -n 1 \
			-c 2 -q 50 -t 3 >"$TMP/dnsperf2.out" 2>&1 || true
	}
}

# Index of the "allowed" counter (shared.h; CNT_ALLOWED=5 for binaries
# built before the API and raw-frame reasons).
CNT_ALLOWED=${CNT_ALLOWED:-$(awk '$2 == "EGRESSD_CNT_ALLOWED" { print $3 }' "$ROOT/include/egressd/shared.h")}

bpf_counter() {
	bpftool -j map lookup pinned "$PIN/counters" key "$1" 0 0 0 2>/dev/null |
		"$PY" -c 'import json,sys; print(sum(v["value"] for v in json.load(sys.stdin)["formatted"]["values"]))'
}
bpf_count() {
	bpftool -j map dump pinned "$PIN/$1" 2>/dev/null |
		"$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
nft_set_count() {
	nsenter --net="/run/netns/$SB" -- nft -j list set inet egressd "$1" 2>/dev/null |
		"$PY" -c '
import json, sys
for o in json.load(sys.stdin)["nftables"]:
    if "set" in o:
        print(len(o["set"].get("elem", [])))'
}

# ---- measurements ----------------------------------------------------------

is_bpf_variant() {
	case $1 in enforce | sidecar | enforceroot | enforcecg | bpfonly | noframes | framesfloor | framesone | enforceb) return 0 ;; esac
	return 1
}

# measure VARIANT REP: the UDP and TCP runs; figures appended to results.
measure() {
	local v=$1 rep=$2 j pps rx cpu tcp a0 a1 d0 d1 check=
	# Warm-up (ARP, iperf3 control connection, caches).
	in_sb workload "$CPU_SEND" iperf3 -c "$SRV4" -u -l 64 -b 0 -t 1 >/dev/null 2>&1
	if is_bpf_variant "$v"; then
		a0=$(bpf_counter "$CNT_ALLOWED")
		d0=$(bpf_counter 0)
	fi
	j=$OUT/$v-$rep-udp.json
	in_sb workload "$CPU_SEND" iperf3 -c "$SRV4" -u -l 64 -b 0 -t "$DURATION" -J >"$j" 2>&1
	# pps: packets sent per wall-clock second; cpu: packets sent per
	# second of the sender's own CPU time (utime + stime, which includes
	# the softirq work done in its context), robust to CPU stolen by other
	# load on the machine.
	read -r pps rx cpu < <("$PY" -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]
s, r = e["sum_sent"], e["sum_received"]
busy = e["cpu_utilization_percent"]["host_total"] / 100.0
print(round(s["packets"] / s["seconds"]), round(r["packets"] / r["seconds"]),
      round(s["packets"] / (s["seconds"] * busy)) if busy > 0 else "nan")' "$j" 2>/dev/null)
	if is_bpf_variant "$v"; then
		a1=$(bpf_counter "$CNT_ALLOWED")
		d1=$(bpf_counter 0)
		local sent
		sent=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_sent"]["packets"])' "$j")
		if [ $((a1 - a0)) -ge "$sent" ] && [ "$d1" = "$d0" ]; then
			check="bpf-allowed+$((a1 - a0))>=sent $sent, default_deny +0"
		else
			check="CHECK FAILED: allowed +$((a1 - a0)) sent $sent default_deny $d0->$d1"
		fi
	fi
	tcp=
	if [ "$TCP" = 1 ]; then
		j=$OUT/$v-$rep-tcp.json
		in_sb workload "$CPU_SEND" iperf3 -c "$SRV4" -t "$DURATION" -J >"$j" 2>&1
		tcp=$("$PY" -c '
import json, sys
print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$j" 2>/dev/null)
	fi
	log "rep $rep $v: udp64 ${pps:-?} pkt/s sent (${rx:-?} received; ${cpu:-?} per sender CPU-second), tcp ${tcp:--} Gbit/s${check:+; $check}"
	echo "$v $rep ${pps:-nan} ${rx:-nan} ${tcp:-nan} ${cpu:-nan}" >>"$OUT/results.txt"
	case $check in "CHECK FAILED"*) echo "$v $rep $check" >>"$OUT/checks.txt" ;; esac
}

# setup VARIANT: bring egressd into the variant's state.
setup() {
	case $1 in
	baseline) return 0 ;;
	enforce | bpfonly | noframes | framesfloor | framesone) eg_start dns+nft enforce ;;
	enforceb)
		[ -n "$EGRESSD_B_BIN" ] || die "enforceb: set EGRESSD_B to the other build"
		EG_BIN=$EGRESSD_B_BIN eg_start dns+nft enforce
		;;
	sidecar) eg_start dns+nft enforce sidecar ;;
	enforceroot) eg_start dns+nft enforce "$CG2" ;;
	enforcecg)
		# A socket outside the workload cgroup, from before the start.
		nsenter --net="/run/netns/$SB" -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
			"$CG/other" "$PY" -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 0)); time.sleep(3600)' &
		HOLDER=$!
		PIDS+=("$HOLDER")
		sleep 0.3
		eg_start dns+nft enforce "$CG/workload"
		;;
	nft) eg_start dns+nft off "$CG/workload" ;;
	dns) eg_start dns off "$CG/workload" ;;
	*) die "unknown variant $1" ;;
	esac
	learn_all
	local st
	st=$(grep -o '"bpf":{"state":"[a-z]*"' "$TMP/eg.out" | head -n 1)
	case $1 in
	enforce | sidecar | enforceroot | enforcecg | bpfonly | noframes | framesfloor | framesone | enforceb)
		[ "$st" = '"bpf":{"state":"enforce"' ] || die "$1: BPF not enforcing: $st"
		local cov want=namespace
		[ "$1" = enforcecg ] && want=partial
		cov=$(grep -o '"coverage":{"state":"[a-z]*"' "$TMP/eg.out" | head -n 1)
		[ "$cov" = "\"coverage\":{\"state\":\"$want\"" ] ||
			die "$1: coverage is not $want: $cov"
		local l
		l=$(bpf_count learned_v4)
		[ "${l:-0}" -ge "$N_LEARN" ] || die "$1: only ${l:-0} learned_v4 entries"
		echo "$1: learned_v4 $l entries, allow_v4 $(bpf_count allow_v4), deny_v4 $(bpf_count deny_v4)" >>"$OUT/state.txt"
		;;
	nft)
		local l
		l=$(nft_set_count learned_v4)
		[ "${l:-0}" -ge "$N_LEARN" ] || die "nft: only ${l:-0} learned_v4 elements"
		echo "nft: learned_v4 $l elements, allow_v4 $(nft_set_count allow_v4), deny_v4 $(nft_set_count deny_v4)" >>"$OUT/state.txt"
		;;
	esac
	if [ "$1" = noframes ]; then
		nsenter --net="/run/netns/$SB" -- nft delete table netdev egressd ||
			die "noframes: cannot delete table netdev egressd"
	fi
	if [ "$1" = framesfloor ] || [ "$1" = framesone ]; then
		local ch
		for ch in $(nsenter --net="/run/netns/$SB" -- nft list table netdev egressd |
			awk '$1 == "chain" { print $2 }'); do
			nsenter --net="/run/netns/$SB" -- nft flush chain netdev egressd "$ch" ||
				die "framesfloor: cannot flush chain $ch"
		done
		[ -n "${ch:-}" ] || die "framesfloor: table netdev egressd has no chain"
		if [ "$1" = framesone ]; then
			for ch in $(nsenter --net="/run/netns/$SB" -- nft list table netdev egressd |
				awk '$1 == "chain" { print $2 }'); do
				nsenter --net="/run/netns/$SB" -- nft add rule netdev egressd "$ch" \
					meta rtclassid '>=' 0 accept || die "framesone: cannot add the rule"
			done
		fi
	fi
	if [ "$1" = bpfonly ]; then
		kill -KILL "$EG_PID"
		wait "$EG_PID" 2>/dev/null
		EG_PID=
		nsenter --net="/run/netns/$SB" -- nft delete table inet egressd ||
			die "bpfonly: cannot delete the table"
	fi
}

teardown() {
	[ "$1" = baseline ] && return 0
	eg_stop
	if [ -n "$HOLDER" ]; then
		kill -9 "$HOLDER" 2>/dev/null
		wait "$HOLDER" 2>/dev/null
		HOLDER=
	fi
}

log "datapath bench: reps=$REPS duration=${DURATION}s cidrs=$N_CIDR learned=$N_LEARN variants='$VARIANTS' send CPU $CPU_SEND, server CPU $CPU_RECV"
log "machine: $(uname -r), $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), load average $(cut -d' ' -f1-3 /proc/loadavg); egressd sha256 $(sha256sum "$EGRESSD" | cut -c1-12), tree $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
: >"$OUT/results.txt"
for rep in $(seq 1 "$REPS"); do
	for v in $VARIANTS; do
		setup "$v"
		measure "$v" "$rep"
		teardown "$v"
	done
done
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
sort -u "$OUT/state.txt" 2>/dev/null | sed 's/^/state: /' >&2
[ -s "$OUT/checks.txt" ] && sed 's/^/CHECK: /' "$OUT/checks.txt" >&2

"$PY" - "$OUT/results.txt" "$VARIANTS" <<'EOF_PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
order = sys.argv[2].split()
def med(v, col):
    xs = [float(r[col]) for r in rows if r[0] == v and r[col] != "nan"]
    return (statistics.median(xs), xs) if xs else (float("nan"), [])
base_pps, _ = med("baseline", 2)
base_tcp, _ = med("baseline", 4)
base_cpu, _ = med("baseline", 5)
def ratio(a, b):
    return a / b if b == b and b else float("nan")
print("| variant | UDP 64 B pkt/s sent (median) | x baseline | reps | pkt per sender CPU-s (median) | x baseline | reps | TCP Gbit/s (median) | x baseline | reps |")
print("|---|---:|---:|---|---:|---:|---|---:|---:|---|")
for v in order:
    p, ps = med(v, 2)
    c, cs = med(v, 5)
    t, ts = med(v, 4)
    print("| %s | %.0f | %.3f | %s | %.0f | %.3f | %s | %.2f | %.2f | %s |" % (
        v, p, ratio(p, base_pps), " ".join("%.0f" % x for x in ps),
        c, ratio(c, base_cpu), " ".join("%.0f" % x for x in cs),
        t, ratio(t, base_tcp), " ".join("%.2f" % x for x in ts)))
EOF_PY
