#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/nft.sh — cost of DNS-learned nftables elements (issue 3). Not part
# of `make test`. Run as root from anywhere: bench/nft.sh
#
# (a) Learning. egressd --mode dns, egressd --mode dns+nft and dnsdist (same
#     allowlist, no learning) in the same run, policy of 10 rules, every
#     query allowed (each answer is something dns+nft must learn):
#       steady  100 names, each with its own address, re-resolved over and
#               over (dns+nft learns them once; later answers must cost no
#               netlink traffic)
#       cold    $COLD_N names, each with its own address, every name asked
#               once per egressd start (learned sets emptied between runs by
#               `egressd --cleanup` + restart): every answer a new element
#     Shapes: sat (no rate cap, -c $CLIENTS -q $OUTSTANDING), cap
#     (-Q $CAP_QPS for steady, -Q $COLD_CAP_QPS for cold). CPU µs/query =
#     CPU time of the server process over the run / queries completed.
#     Latency: bench/dnslat (one query at a time, no other load) over the
#     warm names and over $LAT_N cold names; "added latency" of learning =
#     p50(dns+nft) - p50(dns).
# (b) Policy apply time. A 4,096-rule policy (exact and wildcard names,
#     IPv4/IPv6 addresses and CIDRs, 1 in 16 deny) in a fresh network
#     namespace each time: egressd --mode dns+nft exec -> "start" line (ts
#     of the line minus a timestamp taken just before exec), with that
#     policy and with an empty one; versus `nft -f` (wall time of the
#     command) of the table egressd itself produced for each policy (dumped
#     with `nft list table inet egressd`), also in a fresh namespace.
# Server under test pinned to CPU $CPU_SUT; dnsperf, dnslat and fakedns on
# CPU $CPU_LOAD. CPU time = sum of /proc/PID/task/*/schedstat (the ns
# figure behind utime+stime; stat's ticks kept beside it). Settings
# (environment): REPS [5], APPLY_REPS [11], DURATION [3], CAP_QPS [30000], COLD_CAP_QPS [10000], COLD_N [50000],
# LAT_N [5000], CLIENTS [8], OUTSTANDING [200], PROFILE [0] (1: perf record
# egressd dns+nft during one extra cold saturated run), RESULTS_DIR.
set -u
. "$(dirname "$0")/lib.sh"

REPS=${REPS:-5}
APPLY_REPS=${APPLY_REPS:-11}
DURATION=${DURATION:-3}
CAP_QPS=${CAP_QPS:-30000}
COLD_CAP_QPS=${COLD_CAP_QPS:-10000}
COLD_N=${COLD_N:-50000}
LAT_N=${LAT_N:-5000}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-200}
PROFILE=${PROFILE:-0}

bl_need dnsperf dnsdist dig nft taskset cc
bl_setup bnft 251
T_START=$(date +%s)
bl_log "nft bench: reps=$REPS apply_reps=$APPLY_REPS duration=${DURATION}s cold_n=$COLD_N lat_n=$LAT_N cap=$CAP_QPS cold_cap=$COLD_CAP_QPS"

cc -O2 -Wall -Wextra -o "$TMP/dnslat" "$BL_ROOT/bench/dnslat.c" || bl_die "cannot build dnslat"
/usr/bin/python3 "$BL_ROOT/bench/gen.py" learn "$UP" "$TMP" "$COLD_N"
/usr/bin/python3 "$BL_ROOT/bench/gen.py" policy4096 "$TMP"
# cold names: the first LAT_N for the latency client, the rest for dnsperf
head -n "$LAT_N" "$TMP/cold_names.txt" >"$TMP/cold_lat.txt"
tail -n +"$((LAT_N + 1))" "$TMP/cold.txt" >"$TMP/cold_perf.txt"
for i in $(seq 20); do sed 's/ A$//' "$TMP/steady.txt"; done >"$TMP/warm_lat.txt"
bl_fakedns --zone "$TMP/zone"

RES=$TMP/results.tsv
LAT=$TMP/latency.tsv
printf "server\tload\tshape\trep\t$BL_MEASURE_HDR\n" >"$RES"
printf 'server\tload\trep\tn\tok\ttimeouts\tp50_us\tp90_us\tp99_us\tmean_us\n' >"$LAT"

# perf_run SERVER LOAD SHAPE REP PID DEST PORT
perf_run() {
	local qf=$TMP/steady.txt args
	[ "$2" = cold ] && qf=$TMP/cold_perf.txt
	args=(-d "$qf" -c "$CLIENTS" -q "$OUTSTANDING" -t 2)
	if [ "$2" = cold ]; then args+=(-n 1 -l 60); else args+=(-l "$DURATION"); fi
	if [ "$3" = cap ]; then
		if [ "$2" = cold ]; then args+=(-Q "$COLD_CAP_QPS"); else args+=(-Q "$CAP_QPS"); fi
	fi
	bl_measure "$RES" "$1	$2	$3	$4" "$5" "$6" "$7" "${args[@]}"
}

# lat_run SERVER LOAD REP DEST PORT NAMEFILE
lat_run() {
	local line
	line=$(bl_in workload "$CPU_LOAD" timeout 120 "$TMP/dnslat" "$4" "$5" "$6") ||
		bl_die "dnslat failed: $line"
	echo "  $1 $2 latency: $line" >&2
	echo "$line" | awk -v k="$1	$2	$3" '{
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[i] = kv[2] }
		printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k, v[1], v[2], v[3], v[4], v[5], v[6], v[7] }' >>"$LAT"
}

learned_count() {
	nsenter --net="/run/netns/$SB" -- nft list set inet egressd learned_v4 2>/dev/null |
		grep -o '10\.200\.[0-9]*\.[0-9]*' | wc -l
}

for rep in $(seq "$REPS"); do
	bl_log "rep $rep/$REPS (learning)"
	for mode in dns dns+nft; do
		bl_egressd "$mode" "$TMP/policy.json"
		perf_run "$mode" steady sat "$rep" "$EG_PID" "$UP" 53
		perf_run "$mode" steady cap "$rep" "$EG_PID" "$UP" 53
		lat_run "$mode" steady "$rep" "$UP" 53 "$TMP/warm_lat.txt"
		lat_run "$mode" cold "$rep" "$UP" 53 "$TMP/cold_lat.txt"
		perf_run "$mode" cold sat "$rep" "$EG_PID" "$UP" 53
		[ "$mode" = dns+nft ] && bl_log "learned_v4 holds $(learned_count) elements (expected >= $COLD_N + 100)"
		bl_egressd_stop
		bl_egressd "$mode" "$TMP/policy.json"
		perf_run "$mode" cold cap "$rep" "$EG_PID" "$UP" 53
		if [ "$PROFILE" = 1 ] && [ "$rep" = 1 ] && [ "$mode" = dns+nft ]; then
			bl_egressd_stop
			bl_egressd "$mode" "$TMP/policy.json"
			bl_log "profiling egressd dns+nft, cold, saturated"
			bl_profile "$EG_PID" "$TMP/profile-cold.txt" bl_dnsperf "$TMP/prof-cold.txt" "$UP" 53 \
				-d "$TMP/cold_perf.txt" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 -n 1 -l 60
		fi
		bl_egressd_stop
	done
	bl_dnsdist "$TMP/dnsdist.conf"
	perf_run dnsdist steady sat "$rep" "$DD_PID" 127.0.0.1 5300
	perf_run dnsdist steady cap "$rep" "$DD_PID" 127.0.0.1 5300
	lat_run dnsdist steady "$rep" 127.0.0.1 5300 "$TMP/warm_lat.txt"
	lat_run dnsdist cold "$rep" 127.0.0.1 5300 "$TMP/cold_lat.txt"
	perf_run dnsdist cold sat "$rep" "$DD_PID" 127.0.0.1 5300
	perf_run dnsdist cold cap "$rep" "$DD_PID" 127.0.0.1 5300
	bl_dnsdist_stop
done

# ---- (b) policy apply time ----------------------------------------------
APPLY=$TMP/apply.tsv
printf 'what\tpolicy\trep\tms\tcpu_ms\n' >"$APPLY"
FRESH=$BL_TAG-fresh
BL_EXTRA_NS+=("$FRESH")
ts_us() { date -d "$1" +%s%6N; }

# egressd_apply POLICYNAME REP: exec -> start line, in a fresh namespace
egressd_apply() {
	local pol=$TMP/$1.json pid i t0 ts line cpu
	ip netns add "$FRESH"
	ip -n "$FRESH" link set lo up
	: >"$TMP/ap.out"
	(exec nsenter --net="/run/netns/$FRESH" -- sh -c \
		'echo $$ >"$0/cgroup.procs" && date +%s%6N >"$1" && c=$2 && shift 2 && exec taskset -c "$c" "$@"' \
		"$CGB/agent" "$TMP/ap.t0" "$CPU_SUT" "$EGRESSD" --mode dns+nft --dns-upstream "$UP" \
		--policy-file "$pol" --max-rules 0 --rules-dir "$TMP/rules" --bpf off \
		--http-addr 127.0.0.1:18080 >"$TMP/ap.out" 2>"$TMP/ap.err") &
	pid=$!
	BL_PIDS+=("$pid")
	for i in $(seq 400); do
		grep -q '"event":"start"' "$TMP/ap.out" && break
		sleep 0.025
	done
	line=$(grep '"event":"start"' "$TMP/ap.out") || bl_die "egressd did not start: $(cat "$TMP/ap.err")"
	echo "$line" | grep -q '"nft":{"state":"on"' || bl_die "nft layer not on: $line"
	cpu=$(bl_cpu_ns "$pid")
	t0=$(cat "$TMP/ap.t0")
	ts=$(ts_us "$(echo "$line" | sed 's/.*"ts":"\([^"]*\)".*/\1/')")
	printf 'egressd\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(awk -v a="$t0" -v b="$ts" 'BEGIN{printf "%.2f", (b-a)/1000}')" \
		"$(awk -v c="$cpu" 'BEGIN{printf "%.2f", c/1e6}')" >>"$APPLY"
	if [ ! -s "$TMP/$1.nft" ]; then
		nsenter --net="/run/netns/$FRESH" -- nft list table inet egressd >"$TMP/$1.nft"
	fi
	kill -TERM "$pid"; wait "$pid"
	ip netns del "$FRESH"
}

# nft_apply POLICYNAME REP: nft -f of egressd's own table, fresh namespace
# each time; wall time of one run, CPU time (task-clock of nsenter+taskset+
# nft, the same exec chain egressd's pid goes through) of another.
nft_apply() {
	local t c
	ip netns add "$FRESH"
	ip -n "$FRESH" link set lo up
	t=$(nsenter --net="/run/netns/$FRESH" -- bash -c \
		't0=$EPOCHREALTIME; taskset -c '"$CPU_SUT"' nft -f "$0" || exit 1; t1=$EPOCHREALTIME
		 echo "($t1 - $t0) * 1000" | bc -l' "$TMP/$1.nft") || bl_die "nft -f $1.nft failed"
	ip netns del "$FRESH"
	ip netns add "$FRESH"
	ip -n "$FRESH" link set lo up
	c=$(perf stat -x, -e task-clock -- nsenter --net="/run/netns/$FRESH" -- \
		taskset -c "$CPU_SUT" nft -f "$TMP/$1.nft" 2>&1 >/dev/null | awk -F, '/task-clock/{print $1}')
	ip netns del "$FRESH"
	printf 'nft-f\t%s\t%s\t%.2f\t%.2f\n' "$1" "$2" "$t" "${c:-nan}" >>"$APPLY"
}

bl_log "policy apply time ($APPLY_REPS reps)"
for rep in $(seq "$APPLY_REPS"); do
	egressd_apply policy0 "$rep"
	egressd_apply policy4096 "$rep"
done
bl_log "egressd's table: $(grep -c . "$TMP/policy0.nft") lines (empty policy), $(grep -c . "$TMP/policy4096.nft") lines (4,096 rules)"
for rep in $(seq "$APPLY_REPS"); do
	nft_apply policy0 "$rep"
	nft_apply policy4096 "$rep"
done

# ---- summary ------------------------------------------------------------
m() { bl_med "$RES" "$1" server="$2" load="$3" shape="$4"; }
l() { bl_med "$LAT" "$1" server="$2" load="$3"; }
a() { bl_med "$APPLY" ms what="$1" policy="$2"; }
ac() { bl_med "$APPLY" cpu_ms what="$1" policy="$2"; }
echo
echo "== bench/nft.sh $(date -u +%FT%TZ) $(uname -r) $(nproc) CPUs"
echo "   server on CPU $CPU_SUT, dnsperf/dnslat/fakedns on CPU $CPU_LOAD; medians of $REPS reps (apply: $APPLY_REPS)"
echo "   steady: 100 names re-resolved, ${DURATION}s per run; cold: $((COLD_N - LAT_N)) new names per run"
echo "   sat: -c $CLIENTS -q $OUTSTANDING; cap: -Q $CAP_QPS (steady), -Q $COLD_CAP_QPS (cold)"
printf '%-8s %-6s | %9s %7s %8s | %9s %7s %8s | %s\n' server load "sat qps" "µs/q" "lat µs" "cap qps" "µs/q" "lat µs" "max lost"
for s in dns dns+nft dnsdist; do
	for ld in steady cold; do
		printf '%-8s %-6s | %9.0f %7s %8s | %9.0f %7s %8s | %s\n' "$s" "$ld" \
			"$(m qps "$s" "$ld" sat)" "$(m cpu_us_per_q "$s" "$ld" sat)" "$(m avglat_us "$s" "$ld" sat)" \
			"$(m qps "$s" "$ld" cap)" "$(m cpu_us_per_q "$s" "$ld" cap)" "$(m avglat_us "$s" "$ld" cap)" \
			"$(bl_max "$RES" lost server="$s" load="$ld")"
	done
done
echo
echo "unloaded latency (dnslat, one query at a time), µs:"
printf '%-8s %-6s | %7s %7s %7s %7s | %s\n' server load p50 p90 p99 mean timeouts
for s in dns dns+nft dnsdist; do
	for ld in steady cold; do
		printf '%-8s %-6s | %7s %7s %7s %7s | %s\n' "$s" "$ld" "$(l p50_us "$s" "$ld")" "$(l p90_us "$s" "$ld")" \
			"$(l p99_us "$s" "$ld")" "$(l mean_us "$s" "$ld")" "$(bl_max "$LAT" timeouts server="$s" load="$ld")"
	done
done
echo
echo "policy apply time, ms (median of $APPLY_REPS, fresh namespace each):"
printf '  %-28s %8s %8s %8s | %8s %8s %8s\n' "" "wall: 0" 4096 delta "cpu: 0" 4096 delta
for w in egressd nft-f; do
	e=$(a "$w" policy0); f=$(a "$w" policy4096); ce=$(ac "$w" policy0); cf=$(ac "$w" policy4096)
	label="$w"; [ "$w" = egressd ] && label="egressd exec->start"
	[ "$w" = nft-f ] && label="nft -f (egressd's table)"
	printf '  %-28s %8.2f %8.2f %8.2f | %8.2f %8.2f %8.2f\n' "$label" "$e" "$f" "$(echo "$f - $e" | bc -l)" \
		"$ce" "$cf" "$(echo "$cf - $ce" | bc -l)"
done
echo "  (rules 0 = empty policy; egressd's table for it has chains and built-in sets only)"
echo
echo "targets (issue 3):"
awk -v s="$(m cpu_us_per_q dns+nft steady sat)" -v d="$(m cpu_us_per_q dns steady sat)" \
	-v sc="$(m cpu_us_per_q dns+nft steady cap)" -v dc="$(m cpu_us_per_q dns steady cap)" 'BEGIN{
	r = s / d; rc = sc / dc
	printf "  steady CPU dns+nft/dns: sat %.2f, cap %.2f (target <= 1.2: %s)\n", r, rc,
		(r <= 1.2 && rc <= 1.2) ? "MET" : "MISSED" }'
awk -v n="$(l p50_us dns+nft cold)" -v d="$(l p50_us dns cold)" 'BEGIN{
	x = n - d; printf "  cold p50 added latency: %.1f us (dns+nft %.1f - dns %.1f; target <= 100: %s)\n", x, n, d,
		(x <= 100 ? "MET" : sprintf("MISSED by %.0f us", x - 100)) }'
awk -v e="$(a egressd policy4096)" -v n="$(a nft-f policy4096)" -v e0="$(a egressd policy0)" -v n0="$(a nft-f policy0)" \
	-v ce="$(ac egressd policy4096)" -v cn="$(ac nft-f policy4096)" 'BEGIN{
	printf "  4,096-rule apply, wall: egressd %.2f ms vs nft -f %.2f ms (%s, ratio %.2f); delta over empty %.2f vs %.2f ms\n",
		e, n, (e <= n ? "MET" : "MISSED"), e / n, e - e0, n - n0
	printf "  4,096-rule apply, cpu:  egressd %.2f ms vs nft -f %.2f ms (%s, ratio %.2f)\n",
		ce, cn, (ce <= cn ? "MET" : "MISSED"), ce / cn }'
echo "  lost queries: dns+nft max $(bl_max "$RES" lost server=dns+nft), dns max $(bl_max "$RES" lost server=dns)"
if [ -f "$TMP/profile-cold.txt" ]; then
	echo; echo "== perf profile of egressd dns+nft, cold, saturated"
	cat "$TMP/profile-cold.txt"
fi
if [ -n "${RESULTS_DIR:-}" ]; then
	mkdir -p "$RESULTS_DIR" && cp "$RES" "$LAT" "$APPLY" "$TMP"/perf-*.txt "$RESULTS_DIR"/ 2>/dev/null
	cp "$TMP"/profile-*.txt "$TMP"/policy4096.nft "$RESULTS_DIR"/ 2>/dev/null
fi
bl_log "done in $(($(date +%s) - T_START))s; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
