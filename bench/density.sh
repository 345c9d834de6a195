#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/density.sh — what other sandboxes' egressd cost a namespace that
# has nothing to do with them (issue 10, "Per-sandbox cost"). Not part of
# `make test`. Run as root: bench/density.sh
#
# An unrelated pair of network namespaces ($UA -> $UB over a veth, sender
# in a cgroup of its own outside every sandbox) measures its small-packet
# rate: iperf3 -u -l 64 -b 0 for $DURATION s, packets/s the sender got
# through (and per second of its own CPU time). Per variant, $N sandboxes
# run beside it, each a network namespace with its own sandbox cgroup
# ($CG/sN with children agent and app) and an egressd in dns+nft mode with
# BPF enforcing:
#   none     no sandbox at all: the reference
#   sandbox  egressd at its default attach point, the sandbox cgroup (the
#            parent of its own cgroup): its programs run only for that
#            sandbox's processes
#   root     each egressd attached at the host's cgroup2 root (--cgroup
#            <cgroup2 mount>; netns-cookie filtering, kernel 6.15+): every
#            sandbox's programs run for every packet and socket call of
#            every process of the node, the unrelated namespace's included
# Variants are interleaved within each rep. Figures: median over REPS of
# each variant's rate divided by "none"'s in the same rep, and, counted by
# the kernel (kernel.bpf_stats_enabled=1 for the run), how often egressd's
# programs ran during the unrelated namespace's blast: the noise-free
# answer to "do other sandboxes' programs run for it".
#
# Settings (environment): N [8], REPS [5], DURATION [5], CPU_SEND [0],
# CPU_RECV [1], VARIANTS [none sandbox root], OUT [a temp dir].
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/integration/cgroup.sh
. "$ROOT/tests/integration/cgroup.sh"
EGRESSD_SRC=${EGRESSD:-$ROOT/build/egressd}
PY=/usr/bin/python3
N=${N:-8}
REPS=${REPS:-5}
DURATION=${DURATION:-5}
CPU_SEND=${CPU_SEND:-0}
CPU_RECV=${CPU_RECV:-1}
VARIANTS=${VARIANTS:-none sandbox root}

TAG=bden-$$
UA=$TAG-ua
UB=$TAG-ub
SUB=248
UA4=10.200.$SUB.2
UB4=10.200.$SUB.1
PIDS=()
EG_PIDS=()
CG=
TMP=

die() { echo "density: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

for c in ip nsenter iperf3 taskset "$PY"; do
	command -v "$c" >/dev/null 2>&1 || die "missing command $c"
done
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$EGRESSD_SRC" ] || die "build egressd first: make"

sandboxes_stop() {
	local p i
	for p in "${EG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${EG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	EG_PIDS=()
	for i in $(seq 1 "$N"); do
		[ -e "/run/netns/$TAG-s$i" ] || continue
		nsenter --net="/run/netns/$TAG-s$i" -- "$EGRESSD" --cleanup \
			--bpf-pin-dir "/sys/fs/bpf/$TAG-s$i" >/dev/null 2>&1
	done
}

cleanup() {
	local p i
	set +e
	sandboxes_stop
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for i in $(seq 1 "$N"); do
		[ -e "/run/netns/$TAG-s$i" ] && ip netns del "$TAG-s$i"
		rm -rf "/sys/fs/bpf/$TAG-s$i"
	done
	[ -e "/run/netns/$UA" ] && ip netns del "$UA"
	[ -e "/run/netns/$UB" ] && ip netns del "$UB"
	if [ -n "$CG" ] && [ -d "$CG" ]; then
		egit_rmcg "$CG" || echo "density: warning: could not remove $CG" >&2
	fi
	[ -n "${STATS0:-}" ] && sysctl -qw kernel.bpf_stats_enabled="$STATS0"
	[ -n "$TMP" ] && [ "${KEEP:-0}" = 0 ] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TMP=$(mktemp -d "/tmp/$TAG.XXXX")
OUT=${OUT:-$TMP}
mkdir -p "$OUT"
EGRESSD=$TMP/egressd
cp "$EGRESSD_SRC" "$EGRESSD" || die "cp $EGRESSD_SRC"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || die "bpffs"
command -v bpftool >/dev/null || die "missing command bpftool"
STATS0=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1 || die "cannot enable kernel.bpf_stats_enabled"

CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG2" ] || die "no cgroup2 mount"
CG=$CG2/$TAG
mkdir "$CG" "$CG/unrelated" || die "mkdir $CG"

# The unrelated namespace pair.
ip netns add "$UA" && ip netns add "$UB" || die "ip netns add"
VA=bda$$
VB=bdb$$
ip link add "$VA" netns "$UA" type veth peer name "$VB" netns "$UB" || die "veth"
ip -n "$UA" addr add "$UA4/24" dev "$VA" && ip -n "$UA" link set "$VA" up &&
	ip -n "$UA" link set lo up && ip -n "$UB" addr add "$UB4/24" dev "$VB" &&
	ip -n "$UB" link set "$VB" up && ip -n "$UB" link set lo up || die "addresses"
ip netns exec "$UB" taskset -c "$CPU_RECV" iperf3 -s -B "$UB4" >/dev/null 2>"$TMP/iperf3-s.err" &
PIDS+=($!)
sleep 0.5

# The sandboxes' namespaces and cgroups (egressd started per variant).
for i in $(seq 1 "$N"); do
	ip netns add "$TAG-s$i" || die "ip netns add $TAG-s$i"
	ip -n "$TAG-s$i" link set lo up
	mkdir "$CG/s$i" "$CG/s$i/agent" "$CG/s$i/app" || die "mkdir $CG/s$i"
done

# sandboxes_start VARIANT: N egressd, each in its sandbox's agent cgroup.
sandboxes_start() {
	local i cgopt=() pid
	[ "$1" = root ] && cgopt=(--cgroup "$CG2")
	for i in $(seq 1 "$N"); do
		: >"$TMP/eg$i.out"
		# shellcheck disable=SC2016 # expands in the child
		nsenter --net="/run/netns/$TAG-s$i" -- sh -c \
			'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$CG/s$i/agent" \
			taskset -c "$CPU_RECV" "$EGRESSD" --mode dns+nft --bpf enforce \
			"${cgopt[@]}" --dns-upstream 10.200.$SUB.53 \
			--rules '{"defaultAction":"deny","egress":[{"action":"allow","target":"*.example.com"}]}' \
			--rules-dir "$TMP" --bpf-pin-dir "/sys/fs/bpf/$TAG-s$i" \
			--http-addr 127.0.0.1:18080 >"$TMP/eg$i.out" 2>"$TMP/eg$i.err" &
		pid=$!
		EG_PIDS+=("$pid")
		for _ in $(seq 200); do
			grep -q '"event":"start"' "$TMP/eg$i.out" && break
			kill -0 "$pid" 2>/dev/null || die "egressd $i: $(cat "$TMP/eg$i.err")"
			sleep 0.05
		done
		grep -q '"bpf":{"state":"enforce"' "$TMP/eg$i.out" ||
			die "egressd $i ($1): BPF not enforcing: $(grep -o '"bpf":{[^}]*}' "$TMP/eg$i.out")"
	done
}

# Runs (run_cnt, bpf_stats) of the programs this bench's egressd attached:
# at the sandboxes' cgroups, or at the root (other jobs on the machine may
# run egressd too: only ours count).
prog_runs() {
	local d ids=""
	for d in "$CG2" "$CG"/s*; do
		ids="$ids $(bpftool -j cgroup show "$d" 2>/dev/null | "$PY" -c '
import json, sys
try:
    print(" ".join(str(p["id"]) for p in json.load(sys.stdin)
                   if p.get("name", "") in ("egress_filter", "ingress_track") or p.get("name", "").startswith("dns_")))
except ValueError:
    pass')"
	done
	bpftool -j prog show 2>/dev/null | "$PY" -c '
import json, sys
ids = set(int(i) for i in sys.argv[1:])
print(sum(p.get("run_cnt", 0) for p in json.load(sys.stdin) if p["id"] in ids))' $ids
}

# measure VARIANT REP
measure() {
	local j pps cpu r0 r1
	# shellcheck disable=SC2016
	nsenter --net="/run/netns/$UA" -- sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/unrelated" taskset -c "$CPU_SEND" iperf3 -c "$UB4" -u -l 64 -b 0 -t 1 >/dev/null 2>&1
	j=$OUT/$1-$2.json
	r0=$(prog_runs)
	# shellcheck disable=SC2016
	nsenter --net="/run/netns/$UA" -- sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/unrelated" taskset -c "$CPU_SEND" iperf3 -c "$UB4" -u -l 64 -b 0 \
		-t "$DURATION" -J >"$j" 2>&1
	read -r pps cpu < <("$PY" -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]
s = e["sum_sent"]
busy = e["cpu_utilization_percent"]["host_total"] / 100.0
print(round(s["packets"] / s["seconds"]),
      round(s["packets"] / (s["seconds"] * busy)) if busy > 0 else "nan")' "$j" 2>/dev/null)
	r1=$(prog_runs)
	log "rep $2 $1: ${pps:-?} pkt/s (${cpu:-?} per sender CPU-second), egressd programs ran $((r1 - r0)) times"
	echo "$1 $2 ${pps:-nan} ${cpu:-nan} $((r1 - r0))" >>"$OUT/results.txt"
}

for rep in $(seq 1 "$REPS"); do
	for v in $VARIANTS; do
		case $v in none | sandbox | root) ;; *) die "unknown variant $v" ;; esac
		[ "$v" != none ] && sandboxes_start "$v"
		measure "$v" "$rep"
		sandboxes_stop
	done
done

"$PY" - "$OUT/results.txt" "$N" <<'EOF_PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
runs = {}
for v, rep, pps, cpu, r in rows:
    by.setdefault(rep, {})[v] = (float(pps), float(cpu))
    runs.setdefault(v, []).append(int(r))
print("| variant (%s sandboxes) | pkt/s (median) | x none (median of per-rep ratios) | x none per sender CPU-second | egressd program runs during the blast (median) |" % sys.argv[2])
print("|---|---:|---:|---:|---:|")
for v in ["none", "sandbox", "root"]:
    vals = [r[v] for r in by.values() if v in r and "none" in r]
    if not vals:
        continue
    ratios = [r[v][0] / r["none"][0] for r in by.values() if v in r and "none" in r]
    cratios = [r[v][1] / r["none"][1] for r in by.values() if v in r and "none" in r]
    print("| %s | %d | %.3f | %.3f | %d |" % (v, statistics.median(x[0] for x in vals),
          statistics.median(ratios), statistics.median(cratios),
          statistics.median(runs[v])))
EOF_PY
echo "density: per-rep figures in $OUT/results.txt"
