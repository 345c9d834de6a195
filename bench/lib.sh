# SPDX-License-Identifier: GPL-2.0-only
# Shared helpers for bench/dns.sh and bench/nft.sh (sourced, not run).
#
# Topology made by bl_setup (all names carry the script's pid, all removed
# by the EXIT trap even on failure):
#   netns $SB  (sandbox) 10.200.$SUB.2/24 on veth, default route via .1
#   netns $NET (peer)    10.200.$SUB.1 and the upstream 10.200.$SUB.53
#   cgroups  $CGB/{agent,workload,dnsdist} under the cgroup2 mount
# Load generator on CPU $CPU_LOAD, server under test on CPU $CPU_SUT.

BL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EGRESSD=${EGRESSD:-$BL_ROOT/build/egressd}
FAKEDNS=${FAKEDNS:-$BL_ROOT/.output/tests/tools/fakedns}
CPU_LOAD=${CPU_LOAD:-0}
CPU_SUT=${CPU_SUT:-1}
BL_PIDS=()
BL_EXTRA_NS=()

bl_die() { echo "bench: $*" >&2; exit 1; }
bl_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

bl_need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || bl_die "missing command $c (apt-get install it)"
	done
	[ -x "$EGRESSD" ] || bl_die "build egressd first: make"
	[ -x "$FAKEDNS" ] || bl_die "build fakedns first: make .output/tests/tools/fakedns"
	[ "$(id -u)" = 0 ] || bl_die "run as root"
}

# bl_setup PREFIX SUBNET_OCTET
bl_setup() {
	BL_TAG="$1-$$"
	SUB=$2
	SB=$BL_TAG-sb
	NET=$BL_TAG-net
	UP=10.200.$SUB.53
	CG2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
	[ -n "$CG2" ] || bl_die "no cgroup2 mount in /proc/mounts"
	CGB=$CG2/$BL_TAG
	TMP=$(mktemp -d "/tmp/$BL_TAG.XXXX")
	trap bl_cleanup EXIT
	trap 'exit 130' INT TERM
	ip netns add "$SB" || bl_die "ip netns add"
	ip netns add "$NET" || bl_die "ip netns add"
	ip link add "b$$a" netns "$SB" type veth peer name "b$$b" netns "$NET"
	ip -n "$SB" addr add 10.200.$SUB.2/24 dev "b$$a"
	ip -n "$NET" addr add 10.200.$SUB.1/24 dev "b$$b"
	ip -n "$NET" addr add "$UP"/24 dev "b$$b"
	UP2=10.200.$SUB.54	# second upstream address (for a redirect that must not catch it)
	ip -n "$NET" addr add "$UP2"/24 dev "b$$b"
	# Where dnsdist-nat's clients send: not $UP, so that no conntrack
	# entry of that redirect (to :5300, alive for up to 120 s) can be
	# matched by a later egressd run's dnsperf socket reusing its source
	# port, which would black-hole that socket (the "400 lost" runs).
	UP3=10.200.$SUB.55
	ip -n "$NET" addr add "$UP3"/24 dev "b$$b"
	ip -n "$SB" link set "b$$a" up
	ip -n "$SB" link set lo up
	ip -n "$NET" link set "b$$b" up
	ip -n "$NET" link set lo up
	ip -n "$SB" route add default via 10.200.$SUB.1
	mkdir -p "$CGB/agent" "$CGB/workload" "$CGB/dnsdist" "$CGB/tool"
	mkdir -p "$TMP/rules"
	# Snapshot the binary: other people rebuild build/egressd meanwhile.
	BL_EGRESSD_SRC=$EGRESSD
	cp "$EGRESSD" "$TMP/egressd" && EGRESSD=$TMP/egressd
	bl_log "egressd: $BL_EGRESSD_SRC (mtime $(date -r "$BL_EGRESSD_SRC" +%FT%T), sha256 $(sha256sum "$EGRESSD" | cut -c1-12)), tree $(git -C "$BL_ROOT" rev-parse --short HEAD 2>/dev/null)+$(git -C "$BL_ROOT" status --porcelain agent include 2>/dev/null | wc -l) changed files in agent/ include/"
	bl_log "machine: $(uname -r), $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)); load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

bl_cleanup() {
	local p d
	set +e
	for p in "${BL_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${BL_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	if [ -n "${SB:-}" ] && [ -e "/run/netns/$SB" ]; then
		nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup >/dev/null 2>&1
		[ -n "${BPIN:-}" ] && nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup \
			--bpf-pin-dir "$BPIN" >/dev/null 2>&1
		ip netns del "$SB"
	fi
	[ -n "${NET:-}" ] && [ -e "/run/netns/$NET" ] && ip netns del "$NET"
	if [ -n "${CGB:-}" ] && [ -d "$CGB" ]; then
		for d in "$CGB"/*/; do
			[ -f "$d/cgroup.procs" ] || continue
			while read -r p; do echo "$p" >"$CG2/cgroup.procs"; done <"$d/cgroup.procs"
			rmdir "$d"
		done
		rmdir "$CGB"
	fi
	for d in "${BL_EXTRA_NS[@]}"; do [ -e "/run/netns/$d" ] && ip netns del "$d"; done
	[ -n "${TMP:-}" ] && [ "${KEEP_TMP:-0}" = 0 ] && rm -rf "$TMP"
}

# Run a command in the sandbox, inside cgroup $1, pinned to cpu list $2.
# bl_in runs it in the foreground; "bl_in_exec ... &" starts it in the
# background with $! being the command's own pid (nsenter, sh and taskset
# all exec, they do not fork).
BL_IN_SH='echo $$ >"$0/cgroup.procs" && c=$1 && shift && exec taskset -c "$c" "$@"'
bl_in() {
	local cg=$1 cpu=$2
	shift 2
	nsenter --net="/run/netns/$SB" -- sh -c "$BL_IN_SH" "$CGB/$cg" "$cpu" "$@"
}
bl_in_exec() {
	local cg=$1 cpu=$2
	shift 2
	exec nsenter --net="/run/netns/$SB" -- sh -c "$BL_IN_SH" "$CGB/$cg" "$cpu" "$@"
}

# utime+stime of a whole process (all threads), in clock ticks.
bl_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
BL_HZ=$(getconf CLK_TCK)
# The same quantity in nanoseconds: the kernel derives utime+stime from the
# scheduler's on-CPU time (sum_exec_runtime), which /proc/PID/task/*/schedstat
# gives unrounded (field 1). Runs of < 1 s need this precision.
bl_cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END{printf "%.0f\n", s}'; }

# Fake upstream in $NET. Sets FAKE_PID.
bl_fakedns() {
	ip netns exec "$NET" taskset -c "$CPU_LOAD" "$FAKEDNS" --listen "$UP" "$@" \
		--pidfile "$TMP/fake.pid" >/dev/null 2>"$TMP/fake.err" &
	FAKE_PID=$!
	BL_PIDS+=("$FAKE_PID")
	local i
	for i in $(seq 100); do [ -s "$TMP/fake.pid" ] && break; sleep 0.05; done
	[ -s "$TMP/fake.pid" ] || bl_die "fakedns did not start: $(cat "$TMP/fake.err")"
	rm -f "$TMP/fake.pid"
}

bl_pin() { taskset -a -p -c "$2" "$1" >/dev/null; }

# bl_egressd MODE POLICYFILE [extra args]. Sets EG_PID; waits for "start".
bl_egressd() {
	local mode=$1 pol=$2 i
	shift 2
	: >"$TMP/eg.out"
	(bl_in_exec agent "$CPU_SUT" "$EGRESSD" --mode "$mode" --dns-upstream "$UP" \
		--policy-file "$pol" --max-rules 0 --rules-dir "$TMP/rules" \
		--bpf off --http-addr 127.0.0.1:18080 "$@" >"$TMP/eg.out" 2>"$TMP/eg.err") &
	EG_PID=$!
	BL_PIDS+=("$EG_PID")
	for i in $(seq 400); do
		grep -q '"event":"start"' "$TMP/eg.out" && return 0
		kill -0 "$EG_PID" 2>/dev/null || break
		sleep 0.025
	done
	bl_die "egressd did not start: $(cat "$TMP/eg.err")"
}

# bl_egressd_stop [--bpf-pin-dir DIR]: SIGTERM, then --cleanup.
bl_egressd_stop() {
	kill -TERM "$EG_PID" 2>/dev/null
	wait "$EG_PID" 2>/dev/null
	nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup "$@" >/dev/null 2>&1 ||
		bl_die "egressd --cleanup failed"
	if nsenter --net="/run/netns/$SB" -- nft list table inet egressd >/dev/null 2>&1; then
		bl_die "table inet egressd survived --cleanup"
	fi
}

# bl_dnsdist CONF. Sets DD_PID; waits until it answers on 127.0.0.1:5300.
bl_dnsdist() {
	local i
	(bl_in_exec dnsdist "$CPU_SUT" dnsdist -C "$1" --supervised --disable-syslog \
		>"$TMP/dd.out" 2>&1) &
	DD_PID=$!
	BL_PIDS+=("$DD_PID")
	for i in $(seq 200); do
		if nsenter --net="/run/netns/$SB" -- dig +tries=1 +time=1 -p 5300 @127.0.0.1 \
			probe.invalid >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$DD_PID" 2>/dev/null || break
		sleep 0.1
	done
	bl_die "dnsdist did not start: $(tail -5 "$TMP/dd.out")"
}

bl_dnsdist_stop() {
	kill -TERM "$DD_PID" 2>/dev/null
	wait "$DD_PID" 2>/dev/null
}

# bl_dnsperf OUTFILE SERVER PORT dnsperf-args... (runs in the workload cgroup)
bl_dnsperf() {
	local out=$1 srv=$2 port=$3
	shift 3
	bl_in workload "$CPU_LOAD" timeout 120 dnsperf -s "$srv" -p "$port" "$@" >"$out" 2>&1
}

# Field from a dnsperf report: qps sent completed lost avglat_us
bl_perf_field() {
	case $2 in
	qps) awk '/Queries per second:/{print $4}' "$1" ;;
	sent) awk '/Queries sent:/{print $3}' "$1" ;;
	completed) awk '/Queries completed:/{print $3}' "$1" ;;
	lost) awk '/Queries lost:/{print $3}' "$1" ;;
	avglat) awk '/Average Latency/{printf "%.1f", $4 * 1e6}' "$1" ;;
	esac
}

# Median of numbers on stdin.
bl_median() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "nan"}else if(NR%2){print a[(NR+1)/2]}else{printf "%.6g\n",(a[NR/2]+a[NR/2+1])/2}}'; }

# bl_measure RESFILE KEY PID DEST PORT dnsperf-args...
# One dnsperf run against DEST:PORT; appends "KEY<TAB>qps sent completed
# lost avglat_us cpu_us_per_q cpu_us_per_q_ticks" to RESFILE: PID's CPU time
# (all threads) over the run divided by the queries completed, from
# schedstat (ns) and, as a cross-check, from /proc/PID/stat utime+stime.
# The workload cgroup's CPU time (dnsperf, incl. the kernel work done in
# its context, e.g. the nat redirect of its packets) goes in a last column.
BL_MEASURE_HDR='qps\tsent\tcompleted\tlost\tavglat_us\tcpu_us_per_q\tcpu_us_per_q_ticks\tclient_us_per_q'
bl_cg_usec() { awk '$1=="usage_usec"{print $2}' "$CGB/$1/cpu.stat"; }
bl_measure() {
	local res=$1 key=$2 pid=$3 dst=$4 port=$5 out t0 t1 n0 n1 w0 w1 c
	shift 5
	out=$TMP/perf-$(printf '%s' "$key" | tr '\t/' '__').txt
	t0=$(bl_ticks "$pid"); n0=$(bl_cpu_ns "$pid"); w0=$(bl_cg_usec workload)
	bl_dnsperf "$out" "$dst" "$port" "$@" || bl_die "dnsperf failed: $(tail -3 "$out")"
	t1=$(bl_ticks "$pid"); n1=$(bl_cpu_ns "$pid"); w1=$(bl_cg_usec workload)
	c=$(bl_perf_field "$out" completed)
	[ -n "$c" ] && [ "$c" -gt 0 ] || bl_die "no answers: $(tail -5 "$out")"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" \
		"$(bl_perf_field "$out" qps)" "$(bl_perf_field "$out" sent)" "$c" \
		"$(bl_perf_field "$out" lost)" "$(bl_perf_field "$out" avglat)" \
		"$(awk -v a="$n0" -v b="$n1" -v c="$c" 'BEGIN{printf "%.2f", (b-a)/1000/c}')" \
		"$(awk -v a="$t0" -v b="$t1" -v c="$c" -v hz="$BL_HZ" 'BEGIN{printf "%.2f", (b-a)*1e6/hz/c}')" \
		"$(awk -v a="$w0" -v b="$w1" -v c="$c" 'BEGIN{printf "%.2f", (b-a)/c}')" \
		| tee -a "$res" | sed 's/^/  /' >&2
}

# bl_med RESFILE COLUMN KEYFIELD=VALUE... : median of COLUMN over the rows
# whose named fields equal the given values.
bl_med() {
	local res=$1 col=$2
	shift 2
	awk -F'\t' -v col="$col" -v conds="$*" '
		NR==1 { for (i = 1; i <= NF; i++) idx[$i] = i; n = split(conds, c, " "); next }
		{ ok = 1; for (j = 1; j <= n; j++) { split(c[j], kv, "="); if ($(idx[kv[1]]) != kv[2]) ok = 0 }
		  if (ok) print $(idx[col]) }' "$res" | bl_median
}
bl_max() {
	local res=$1 col=$2
	shift 2
	awk -F'\t' -v col="$col" -v conds="$*" '
		NR==1 { for (i = 1; i <= NF; i++) idx[$i] = i; n = split(conds, c, " "); next }
		{ ok = 1; for (j = 1; j <= n; j++) { split(c[j], kv, "="); if ($(idx[kv[1]]) != kv[2]) ok = 0 }
		  if (ok && $(idx[col]) > m) m = $(idx[col]) }
		END { print m + 0 }' "$res"
}

# bl_profile PID REPORT cmd...: perf record (DWARF call graphs) PID while
# cmd runs; REPORT gets the top self-time symbols and the user-space
# functions by inclusive ("children") time.
bl_profile() {
	local pid=$1 rep=$2 data pp
	shift 2
	data=$TMP/prof.$$.data
	rm -f "$data"
	perf record -F 2000 --call-graph dwarf,16384 -o "$data" -p "$pid" >"$TMP/perf-record.log" 2>&1 &
	pp=$!
	sleep 1
	"$@"
	kill -INT "$pp" 2>/dev/null
	wait "$pp"
	{
		echo "-- self time, top symbols (share of the process's samples):"
		perf report -i "$data" --no-children --sort dso,symbol -g none --percent-limit 0.7 \
			--stdio 2>/dev/null | grep '%' | head -30
		echo "-- user-space functions, inclusive time (children):"
		perf report -i "$data" --children --sort symbol -g none --stdio 2>/dev/null |
			grep '%' | grep '\[\.\]' | grep -v -E '_start|main|loop_run|libc_start' | head -30
		echo "-- kernel entry points, inclusive time:"
		perf report -i "$data" --children --sort symbol -g none --stdio 2>/dev/null |
			grep '%' | grep -E '\[k\] (__x64_sys_|__sys_|do_softirq|net_rx_action|nfnetlink_rcv_batch|nf_conntrack_in|nft_do_chain)' | head -20
	} >"$rep"
	grep -q '%' "$rep" || { echo "-- perf record failed:"; cat "$TMP/perf-record.log"; ls -l "$data"; } >>"$rep" 2>&1
	rm -f "$data"
}
