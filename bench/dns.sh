#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/dns.sh — DNS proxy throughput and CPU cost (issue 2). Not part of
# `make test`. Run as root from anywhere: bench/dns.sh
#
# In one run, for 10 and 10,000 rules, with dnsperf sending a query file
# that mixes allowed (80 %) and denied (20 %) names:
#   base     fakedns (the upstream) queried directly
#   egressd  egressd --mode dns --bpf off, queries sent to the upstream's
#            address, so the nat redirect of table inet egressd brings them
#            to :15353 (the fallback when BPF is unavailable)
#   egressd-bpf  egressd --mode dns with its BPF layer (observe in dns
#            mode): port 53 is redirected by the sock_addr programs, no
#            nat, no conntrack (the default whenever BPF loads)
#   dnsdist  dnsdist 1.7 on 127.0.0.1:5300 forwarding to the same upstream,
#            same allowlist (DNSNameSet + SuffixMatchNode, NXDOMAIN else)
#   dnsdist-nat  the same dnsdist reached through a nat redirect like
#            egressd's (diagnosis: same kernel path, different user space)
# Two load shapes per server: "sat" (no rate cap, -q outstanding: the server
# saturates its CPU) and "cap" (-Q $CAP_QPS, well below every server's
# limit). The server under test is pinned to CPU $CPU_SUT alone; dnsperf and
# fakedns share CPU $CPU_LOAD (for "base" fakedns is the server under test
# and moves to CPU $CPU_SUT). CPU µs/query = CPU time of the server process
# (all threads) over the run / queries completed; the CPU time is the sum of
# /proc/PID/task/*/schedstat (the ns figure utime+stime are derived from),
# with /proc/PID/stat utime+stime kept beside it as a cross-check.
# Repetitions are interleaved (rep 1 of every server, then rep 2, ...);
# the report gives medians. Settings (environment): REPS [5], DURATION [3]
# seconds per dnsperf run, CAP_QPS [30000], CLIENTS [8], OUTSTANDING [200],
# RULES ["10 10000"], PROFILE [0] (1: perf record egressd during one extra
# saturated run and print its top functions), RESULTS_DIR (keep raw output).
set -u
. "$(dirname "$0")/lib.sh"

REPS=${REPS:-5}
DURATION=${DURATION:-3}
CAP_QPS=${CAP_QPS:-30000}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-200}
RULES=${RULES:-10 10000}
PROFILE=${PROFILE:-0}

bl_need dnsperf dnsdist dig nft taskset
bl_setup bdns 250
T_START=$(date +%s)
bl_log "dns bench: reps=$REPS duration=${DURATION}s cap=$CAP_QPS qps clients=$CLIENTS outstanding=$OUTSTANDING rules=($RULES)"

for n in $RULES; do
	mkdir -p "$TMP/r$n"
	/usr/bin/python3 "$BL_ROOT/bench/gen.py" dnsmix "$n" "$UP" 10.200.250.80 "$TMP/r$n" 20000 80
done
# One zone serves every rule count (wildcard *.allow.bench).
bl_fakedns --zone "$TMP/r${RULES%% *}/zone" --listen "$UP2"
for n in $RULES; do
	sed "s/$UP:53/$UP2:53/" "$TMP/r$n/dnsdist.conf" >"$TMP/r$n/dnsdist-nat.conf"
done
# (d) dnsdist behind the same kind of nat redirect egressd uses (workload
# sends to $UP3:53, redirected to dnsdist on 127.0.0.1:5300, which forwards
# to the upstream's second address $UP2 so it is not redirected itself):
# same kernel path as egressd, so (d) vs (b) compares the user-space code.
redir_on() {
	nsenter --net="/run/netns/$SB" -- nft -f - <<-EOF2 || bl_die "cannot install the bench redirect"
		table ip benchredir {
			chain out {
				type nat hook output priority -100; policy accept;
				ip daddr $UP3 udp dport 53 redirect to :5300
			}
		}
	EOF2
}
redir_off() { nsenter --net="/run/netns/$SB" -- nft delete table ip benchredir; }

BPIN=/sys/fs/bpf/$BL_TAG
RES=$TMP/results.tsv
printf "server\trules\tshape\trep\t$BL_MEASURE_HDR\n" >"$RES"

# egressd's /status (its DNS counters say whether queries reached it).
eg_status() { nsenter --net="/run/netns/$SB" -- curl -s -m 2 http://127.0.0.1:18080/status; }

# measure SERVER RULES SHAPE REP PID DEST PORT QUERYFILE
measure() {
	local args=(-d "$8" -c "$CLIENTS" -q "$OUTSTANDING" -l "$DURATION" -t 2) s0 lost
	[ "$3" = cap ] && args+=(-Q "$CAP_QPS")
	case $1 in egressd*) s0=$(eg_status) ;; esac
	bl_measure "$RES" "$1	$2	$3	$4" "$5" "$6" "$7" "${args[@]}"
	# A run that lost queries: keep what egressd saw, for the record.
	# (The known cause, a stale conntrack entry of the dnsdist-nat
	# redirect, is avoided by $UP3; see bench/lib.sh.)
	lost=$(tail -n 1 "$RES" | cut -f8)
	case $1 in egressd*)
		if [ "${lost:-0}" -gt 0 ]; then
			{
				echo "== $1 $2 $3 rep $4: $lost lost"
				echo "status before: $s0"
				echo "status after:  $(eg_status)"
				tail -n 25 "$TMP/perf-$1_$2_$3_$4.txt"
			} >>"$TMP/lost.txt"
			bl_log "$1 $2 $3 rep $4: $lost queries lost; egressd's status kept (lost.txt)"
		fi
		;;
	esac
}

for rep in $(seq "$REPS"); do
	bl_log "rep $rep/$REPS"
	# (a) baseline: the upstream itself is the server under test
	bl_pin "$FAKE_PID" "$CPU_SUT"
	for shape in sat cap; do
		measure base - "$shape" "$rep" "$FAKE_PID" "$UP" 53 "$TMP/r${RULES%% *}/queries.txt"
	done
	bl_pin "$FAKE_PID" "$CPU_LOAD"
	for n in $RULES; do
		# (b) egressd, dns mode, through the nat redirect
		bl_egressd dns "$TMP/r$n/policy.json"
		for shape in sat cap; do
			measure egressd "$n" "$shape" "$rep" "$EG_PID" "$UP" 53 "$TMP/r$n/queries.txt"
		done
		if [ "$PROFILE" = 1 ] && [ "$rep" = 1 ]; then
			for shape in sat cap; do
				bl_log "profiling egressd ($n rules, $shape)"
				pargs=(-d "$TMP/r$n/queries.txt" -c "$CLIENTS" -q "$OUTSTANDING" -l "$DURATION" -t 2)
				[ "$shape" = cap ] && pargs+=(-Q "$CAP_QPS")
				bl_profile "$EG_PID" "$TMP/profile-$n-$shape.txt" \
					bl_dnsperf "$TMP/prof-$n.perf" "$UP" 53 "${pargs[@]}"
			done
		fi
		bl_egressd_stop
		# (b2) egressd, dns mode, through the BPF sock_addr redirect
		bl_egressd dns "$TMP/r$n/policy.json" --bpf observe \
			--bpf-pin-dir "$BPIN" --cgroup "$CGB/workload"
		grep -q '"redirect":"bpf"' "$TMP/eg.out" ||
			bl_die "egressd-bpf: port 53 not redirected by BPF: $(grep -o '"layers":{[^}]*}[^}]*}' "$TMP/eg.out")"
		for shape in sat cap; do
			measure egressd-bpf "$n" "$shape" "$rep" "$EG_PID" "$UP" 53 "$TMP/r$n/queries.txt"
		done
		bl_egressd_stop --bpf-pin-dir "$BPIN"
		# (c) dnsdist with the same allowlist
		bl_dnsdist "$TMP/r$n/dnsdist.conf"
		for shape in sat cap; do
			measure dnsdist "$n" "$shape" "$rep" "$DD_PID" 127.0.0.1 5300 "$TMP/r$n/queries.txt"
		done
		bl_dnsdist_stop
		# (d) dnsdist behind a nat redirect
		bl_dnsdist "$TMP/r$n/dnsdist-nat.conf"
		redir_on
		for shape in sat cap; do
			measure dnsdist-nat "$n" "$shape" "$rep" "$DD_PID" "$UP3" 53 "$TMP/r$n/queries.txt"
		done
		redir_off
		bl_dnsdist_stop
	done
done

# ---- summary ------------------------------------------------------------
med() { bl_med "$RES" "$4" server="$1" rules="$2" shape="$3"; }
maxcol() { bl_max "$RES" "$3" server="$1" rules="$2"; }
echo
echo "== bench/dns.sh $(date -u +%FT%TZ) $(uname -r) $(nproc) CPUs; load before/after: see log"
echo "   server pinned to CPU $CPU_SUT, dnsperf+fakedns on CPU $CPU_LOAD; medians of $REPS reps;"
echo "   sat = no rate cap (-c $CLIENTS -q $OUTSTANDING), cap = -Q $CAP_QPS; ${DURATION}s per run; 80% allowed / 20% denied"
printf '%-12s %5s | %8s %6s %5s %6s | %6s %6s %6s | %s\n' server rules "sat qps" "µs/q" "util" "lat" \
	"µs/q" "lat" "qps" "lost"
for row in "base -" $(for n in $RULES; do echo "egressd:$n egressd-bpf:$n dnsdist:$n dnsdist-nat:$n"; done); do
	s=${row%%[: ]*}; n=${row##*[: ]}
	q=$(med "$s" "$n" sat qps); c=$(med "$s" "$n" sat cpu_us_per_q)
	printf '%-12s %5s | %8.0f %6s %5.2f %6.0f | %6s %6.0f %6.0f | %s\n' "$s" "$n" \
		"$q" "$c" "$(echo "$q * $c / 1000000" | bc -l)" "$(med "$s" "$n" sat avglat_us)" \
		"$(med "$s" "$n" cap cpu_us_per_q)" "$(med "$s" "$n" cap avglat_us)" "$(med "$s" "$n" cap qps)" \
		"$(maxcol "$s" "$n" lost)"
done
echo "  (µs/q: server CPU per query; util: server CPUs busy = qps x µs/q (1.00 = its core"
echo "   saturated); lat: dnsperf average latency, µs; lost: max over reps and both shapes)"
echo
echo "targets (issue 2): egressd CPU/query <= 0.65 x dnsdist, qps >= dnsdist, 0 lost"
for eg in egressd egressd-bpf; do
for n in $RULES; do
	for shape in sat cap; do
		e=$(med "$eg" "$n" "$shape" cpu_us_per_q); d=$(med dnsdist "$n" "$shape" cpu_us_per_q)
		dn=$(med dnsdist-nat "$n" "$shape" cpu_us_per_q)
		eq=$(med "$eg" "$n" "$shape" qps); dq=$(med dnsdist "$n" "$shape" qps)
		awk -v g="$eg" -v n="$n" -v h="$shape" -v e="$e" -v d="$d" -v dn="$dn" -v eq="$eq" -v dq="$dq" -v l="$(maxcol "$eg" "$n" lost)" 'BEGIN{
			r = e / d
			printf "  %-11s %5s rules %s: cpu ratio %.2f (%s)  qps %.0f vs %.0f (%s)  lost %d (%s)\n", g, n, h, r,
				(r <= 0.65 ? "MET" : sprintf("MISSED by %.0f%%", (r / 0.65 - 1) * 100)),
				eq, dq, (h == "cap" ? "rate-capped" : (eq >= dq ? "MET" : sprintf("MISSED by %.1f%%", (1 - eq / dq) * 100))),
				l, (l == 0 ? "MET" : "MISSED")
			printf "                          (vs dnsdist behind the same nat redirect: cpu ratio %.2f)\n", e / dn }'
	done
done
done
if [ "$PROFILE" = 1 ]; then
	for n in $RULES; do
		for shape in sat cap; do
			[ -f "$TMP/profile-$n-$shape.txt" ] || continue
			echo; echo "== perf profile of egressd --mode dns, $n rules, $shape"
			cat "$TMP/profile-$n-$shape.txt"
		done
	done
fi
if [ -n "${RESULTS_DIR:-}" ]; then
	mkdir -p "$RESULTS_DIR" && cp "$RES" "$TMP"/perf-*.txt "$RESULTS_DIR"/ 2>/dev/null
	cp "$TMP"/lost.txt "$RESULTS_DIR"/ 2>/dev/null
	cp "$TMP"/profile-*.txt "$RESULTS_DIR"/ 2>/dev/null
fi
bl_log "done in $(($(date +%s) - T_START))s; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
