# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash disable=SC2034,SC2016
#
# Helpers for the integration tests (tests/integration/test_*.sh) and the
# demo (scripts/demo.sh). A test sources this file, calls egit_init, builds
# the topology it needs and asserts real outcomes:
#
#   sandbox netns  $SB (10.200.X.2, fd00:200:X::2)  -- egressd + workload
#        | veth
#   internet netns $NET (10.200.X.1, fd00:200:X::1 and "host" addresses
#                  .53/.54 resolvers, .80 web)       -- fakedns, web server
#
# cgroups: <cgroup2 mount>/egit-$EGIT_ID/{agent,workload}. egressd runs in the
# agent cgroup (its upstream queries are exempted from the port-53 redirect
# by that cgroup's id); workload commands run in the workload cgroup.
#
# Everything a test creates is named after $EGIT_ID (run.sh gives each test
# its own; a test run alone uses its pid) and removed by egit_cleanup, registered on EXIT (and INT/TERM lead to EXIT), whether the
# assertions passed or not. Only loopback and addresses inside the
# namespaces created here are ever sent traffic.


# (SC2034: variables defined here are used by the scripts that source this
# file; SC2016: the sh -c snippets expand in the child, on purpose.)
set -u

EGIT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=cgroup.sh
. "$EGIT_DIR/cgroup.sh"
EGIT_ROOT=$(cd "$EGIT_DIR/../.." && pwd)
EGIT_OUTPUT=${EGIT_OUTPUT:-$EGIT_ROOT/.output}
EGRESSD=${EGRESSD:-$EGIT_ROOT/build/egressd}
FAKEDNS=${FAKEDNS:-$EGIT_OUTPUT/tests/tools/fakedns}
# Debian's python (sees python3-dnslib); the python3 on PATH may not.
PY=/usr/bin/python3

EGIT_NAME=${EGIT_NAME:-$(basename "$0" .sh)}
EGIT_PASS=0
EGIT_FAIL=0
EGIT_PIDS=()		# background processes to stop at cleanup
EGRESSD_PID=
EGIT_CLEANED=0
# The name of everything this test creates. Pids are reused within one
# run.sh (pid_max is 32768 on Debian), so run.sh hands out its own; <= 12
# characters, for the veth names.
EGIT_ID=${EGIT_ID:-$$}
case $EGIT_ID in
*[!0-9a-z]* | "") echo "EGIT_ID '$EGIT_ID': only 0-9 and a-z" >&2; exit 1 ;;
esac
[ "${#EGIT_ID}" -le 12 ] || { echo "EGIT_ID '$EGIT_ID': over 12 characters" >&2; exit 1; }

# Subnet number X in 10.200.X.0/24 and fd00:200:X::/64. The namespaces are
# private to the test, so every test may use the same X.
X=${EGIT_NET:-1}
SB=egit-$EGIT_ID-sb
NET=egit-$EGIT_ID-net
VS=egs$EGIT_ID		# veth end in the sandbox (<= 15 chars)
VN=egn$EGIT_ID		# veth end in the internet namespace
SB4=10.200.$X.2
GW4=10.200.$X.1
DNS4=10.200.$X.53	# the "official" resolver (fakedns)
DNS4B=10.200.$X.54	# a second resolver address (failover tests)
WEB4=10.200.$X.80
ARB4=10.200.$X.99	# nothing listens here
SB6=fd00:200:$X::2
GW6=fd00:200:$X::1
DNS6=fd00:200:$X::53
DNS6B=fd00:200:$X::54
WEB6=fd00:200:$X::80
ARB6=fd00:200:$X::99
CG2=
CG=
T=

# Start from a clean egressd environment: only what a test sets counts.
while IFS='=' read -r _egit_var _; do
	case $_egit_var in
	OPENSANDBOX_EGRESS_*) unset "$_egit_var" ;;
	esac
done < <(env)
unset _egit_var

# ---- output and assertions ---------------------------------------------

egit_log() { printf '  %s: %s\n' "$EGIT_NAME" "$*"; }

pass() {
	EGIT_PASS=$((EGIT_PASS + 1))
	printf 'PASS %s: %s\n' "$EGIT_NAME" "$1"
}

fail() {
	EGIT_FAIL=$((EGIT_FAIL + 1))
	printf 'FAIL %s: %s\n' "$EGIT_NAME" "$1"
	shift
	local l
	for l in "$@"; do
		printf '     %s\n' "$l"
	done
}

# Setup failed: nothing after this can be meaningful.
die() {
	fail "setup: $*"
	exit 1
}

# assert_eq DESC EXPECTED ACTUAL
assert_eq() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1" "expected: '$2'" "actual:   '$3'"
	fi
}

# assert_contains DESC HAYSTACK NEEDLE (fixed string)
assert_contains() {
	if grep -qF -- "$3" <<<"$2"; then
		pass "$1"
	else
		fail "$1" "expected to contain: '$3'" "in: '$(head -c 600 <<<"$2")'"
	fi
}

# assert_not_contains DESC HAYSTACK NEEDLE (fixed string)
assert_not_contains() {
	if grep -qF -- "$3" <<<"$2"; then
		fail "$1" "must not contain: '$3'" \
			"found: '$(grep -F -- "$3" <<<"$2" | head -3)'"
	else
		pass "$1"
	fi
}

# assert_file_not_contains_i DESC FILE NEEDLE (fixed string, any case)
assert_file_not_contains_i() {
	if grep -qiF -- "$3" "$2" 2>/dev/null; then
		fail "$1" "$2 must not mention '$3'" \
			"found: '$(grep -iF -- "$3" "$2" | head -3)'"
	else
		pass "$1"
	fi
}

# assert_file_contains_i DESC FILE NEEDLE (fixed string, any case)
assert_file_contains_i() {
	if grep -qiF -- "$3" "$2" 2>/dev/null; then
		pass "$1"
	else
		fail "$1" "$2 should mention '$3'" \
			"it has: '$(tail -5 "$2" 2>/dev/null)'"
	fi
}

# json_match FILE KEY=VALUE...: true if one JSON line of FILE has every
# KEY equal to VALUE (strings compared as is; numbers, true/false/null as
# their JSON text). KEY=* only requires the key. KEY~=NAME compares a DNS
# name: any case, one trailing dot ignored.
json_match() {
	"$PY" - "$@" <<'EOF'
import json, sys
path, conds = sys.argv[1], [c.split("=", 1) for c in sys.argv[2:]]
def text(v):
    return v if isinstance(v, str) else json.dumps(v)
def name(v):
    return text(v).lower().rstrip(".")
def ok(o, k, v):
    if k.endswith("~"):
        k = k[:-1]
        return k in o and name(o[k]) == name(v)
    return k in o and (v == "*" or text(o[k]) == v)
with open(path, errors="replace") as f:
    for line in f:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and all(ok(o, k, v) for k, v in conds):
            sys.exit(0)
sys.exit(1)
EOF
}

# wait_json_line DESC FILE KEY=VALUE...: like assert_json_line, but gives
# egressd up to 3 s to write the line.
wait_json_line() {
	local desc=$1
	shift
	wait_for 3 json_match "$@"
	assert_json_line "$desc" "$@"
}

# assert_json_line DESC FILE KEY=VALUE...
assert_json_line() {
	local desc=$1
	shift
	if json_match "$@"; then
		pass "$desc"
	else
		local file=$1
		shift
		fail "$desc" "no JSON line in $(basename "$file") with: $*" \
			"last lines:" "$(tail -5 "$file" 2>/dev/null)"
	fi
}

# assert_all_json DESC FILE: every line of FILE is a JSON object.
assert_all_json() {
	local err
	if err=$("$PY" -c '
import json, sys
for n, l in enumerate(sys.stdin, 1):
    try:
        if not isinstance(json.loads(l), dict):
            raise ValueError("not an object")
    except ValueError as e:
        sys.exit("line %d: %s: %r" % (n, e, l[:200]))
' <"$2" 2>&1); then
		pass "$1"
	else
		fail "$1" "$err"
	fi
}

# wait_for TIMEOUT_S CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local deadline=$(($(now_ms) + ${1%.*} * 1000))
	shift
	while ! "$@"; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((10#$t / 1000))
}

# ---- topology -----------------------------------------------------------

cgroup2_mount() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts
}

# The cgroup this script runs in (to park stray processes at cleanup).
self_cgroup() {
	sed -n 's/^0:://p' /proc/self/cgroup
}

egit_require() {
	[ "$(id -u)" = 0 ] || die "needs root"
	local b
	for b in ip nsenter dig awk "$PY"; do
		command -v "$b" >/dev/null || die "'$b' not found"
	done
	[ -x "$FAKEDNS" ] || die "$FAKEDNS not built (make .output/tests/tools/fakedns)"
}

# For tests that craft DNS packets in Python (Debian package python3-dnslib).
egit_require_dnslib() {
	"$PY" -c 'import dnslib' 2>/dev/null ||
		die "$PY cannot import dnslib: apt-get install python3-dnslib (scripts/deps.sh should)"
}

egit_require_egressd() {
	[ -x "$EGRESSD" ] || die "$EGRESSD not built (make)"
}

# egit_init: temp dir, traps, namespaces, veth, addresses, routes, cgroups.
egit_init() {
	egit_require
	T=$(mktemp -d "/tmp/egit-$EGIT_ID-XXXXXX") || die "mktemp"
	trap egit_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP

	# What an earlier test of this id left when it was killed before its
	# cleanup (no test of this id runs now: ids are unique among live
	# tests); the cgroups are handled below.
	ip netns del "$SB" 2>/dev/null
	ip netns del "$NET" 2>/dev/null
	rm -rf "/sys/fs/bpf/egit-$EGIT_ID"
	ip netns add "$SB" || die "ip netns add $SB"
	ip netns add "$NET" || die "ip netns add $NET"
	ip link add "$VS" netns "$SB" type veth peer name "$VN" netns "$NET" ||
		die "veth $VS/$VN"
	local ns
	for ns in "$SB" "$NET"; do
		# No DAD: v6 addresses are usable at once.
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
			net.ipv6.conf.default.accept_dad=0 >/dev/null 2>&1
		ip -n "$ns" link set lo up || die "lo up in $ns"
	done
	if ! { ip -n "$SB" addr add "$SB4/24" dev "$VS" &&
		ip -n "$SB" addr add "$SB6/64" dev "$VS" nodad &&
		ip -n "$SB" link set "$VS" up &&
		ip -n "$SB" route add default via "$GW4" &&
		ip -n "$SB" -6 route add default via "$GW6"; }; then
		die "sandbox addresses/routes"
	fi
	local a
	ip -n "$NET" addr add "$GW4/24" dev "$VN" || die "addr $GW4"
	ip -n "$NET" addr add "$GW6/64" dev "$VN" nodad || die "addr $GW6"
	for a in 53 54 80 81; do
		ip -n "$NET" addr add "10.200.$X.$a/24" dev "$VN" ||
			die "host address 10.200.$X.$a"
		ip -n "$NET" addr add "fd00:200:$X::$a/64" dev "$VN" nodad ||
			die "host address fd00:200:$X::$a"
	done
	ip -n "$NET" link set "$VN" up || die "link up $VN"

	CG2=$(cgroup2_mount)
	[ -n "$CG2" ] || die "no cgroup2 mount in /proc/mounts"
	CG=$CG2/egit-$EGIT_ID
	if [ -d "$CG" ]; then
		egit_rmcg "$CG" || die "a stale $CG cannot be removed"
	fi
	mkdir "$CG" "$CG/agent" "$CG/workload" || die "mkdir $CG/{agent,workload}"

	mkdir -p "$T/rules"
	# Settings every egressd in a test gets unless the test overrides them.
	# Nothing may touch the host's defaults (/var/egress/rules, the root
	# cgroup, /sys/fs/bpf/egressd).
	export OPENSANDBOX_EGRESS_MODE=dns
	export OPENSANDBOX_EGRESS_DNS_UPSTREAM=$DNS4
	export OPENSANDBOX_EGRESS_RULES_DIR=$T/rules
	export OPENSANDBOX_EGRESS_CGROUP=$CG/workload
	export OPENSANDBOX_EGRESS_BPF_PIN_DIR=/sys/fs/bpf/egit-$EGIT_ID
}

# Our cgroups, with whatever still runs in them.
egit_cgroup_cleanup() {
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	egit_rmcg "$CG" || echo "  $EGIT_NAME: warning: could not remove $CG" >&2
}

stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

egit_dump() {
	local f
	for f in "$T/egressd.err" "$T/egressd.out" "$T"/fakedns-*.err "$T"/fakedns-*.log; do
		[ -s "$f" ] || continue
		echo "  --- $(basename "$f") (last 15 lines)"
		tail -n 15 "$f" | sed 's/^/  | /'
	done
}

egit_cleanup() {
	local rc=$?
	[ "$EGIT_CLEANED" = 1 ] && return
	EGIT_CLEANED=1
	trap - INT TERM HUP
	if [ "$EGIT_FAIL" -gt 0 ] && [ -n "$T" ]; then
		egit_dump
	fi
	local p
	[ -n "$EGRESSD_PID" ] && stop_pid "$EGRESSD_PID"
	for p in "${EGIT_PIDS[@]}"; do stop_pid "$p"; done
	egit_cgroup_cleanup
	ip netns del "$SB" 2>/dev/null
	ip netns del "$NET" 2>/dev/null
	[ -d "/sys/fs/bpf/egit-$EGIT_ID" ] && rm -rf "/sys/fs/bpf/egit-$EGIT_ID"
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "${EGIT_KEEP:-0}" = 1 ]; then
			echo "  $EGIT_NAME: kept $T"
		else
			rm -rf "$T"
		fi
	fi
	if [ "$rc" = 0 ] && [ "$EGIT_FAIL" -gt 0 ]; then
		rc=1
	fi
	exit "$rc"
}

# egit_finish: summary line; the exit status says whether all passed.
egit_finish() {
	echo "$EGIT_NAME: $EGIT_PASS passed, $EGIT_FAIL failed"
	[ "$EGIT_FAIL" = 0 ] && [ "$EGIT_PASS" -gt 0 ]
	exit $?
}

# ---- fakedns --------------------------------------------------------------

# The zone the tests and the demo answer from.
write_zone() {
	cat >"$1" <<EOF
# name TYPE value [ttl]
api.github.com    A     $WEB4
api.github.com    AAAA  $WEB6
github.com        A     10.200.$X.81
files.pypi.org    A     10.200.$X.82
a.b.pypi.org      A     10.200.$X.83
pypi.org          A     10.200.$X.84
evil.example.com  A     10.200.$X.66
exfil.attacker.net A    10.200.$X.67
alias.github.com  CNAME api.github.com
EOF
}

# start_fakedns TAG FAKEDNS-ARGS...: run fakedns in the internet namespace,
# query log in $T/fakedns-TAG.log; returns once its sockets are bound.
start_fakedns() {
	local tag=$1 pid
	shift
	: >"$T/fakedns-$tag.log"
	ip netns exec "$NET" "$FAKEDNS" --log "$T/fakedns-$tag.log" \
		--pidfile "$T/fakedns-$tag.pid" "$@" \
		>"$T/fakedns-$tag.out" 2>"$T/fakedns-$tag.err" &
	pid=$!
	EGIT_PIDS+=("$pid")
	if ! wait_for 5 test -s "$T/fakedns-$tag.pid"; then
		cat "$T/fakedns-$tag.err" >&2
		die "fakedns $tag did not start"
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$T/fakedns-$tag.err" >&2
		die "fakedns $tag exited"
	fi
}

# The usual upstream: the zone above on $DNS4 and $DNS6, port 53.
start_upstream() {
	write_zone "$T/zone"
	start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]" "$@"
}

# ---- egressd --------------------------------------------------------------

# The sample policy most tests use: two allows, one explicit deny, default
# deny (exfil.attacker.net, pypi.org, github.com fall to the default).
POLICY='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"*.pypi.org"},
 {"action":"deny","target":"evil.example.com"}]}'

# egressd_cmd ARGS...: run egressd in the foreground, in the sandbox netns
# and the agent cgroup (nsenter --net keeps /sys/fs/cgroup* visible).
egressd_cmd() {
	nsenter --net="/run/netns/$SB" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/agent" "$EGRESSD" "$@"
}

has_start_line() {
	grep -qE '"event" *: *"start"' "$T/egressd.out" 2>/dev/null
}

# start_egressd ARGS...: start egressd in the background and wait for its
# "start" line (listeners bound, redirect installed). Output goes to
# $T/egressd.out and $T/egressd.err.
start_egressd() {
	egit_require_egressd
	: >"$T/egressd.out"
	: >"$T/egressd.err"
	# Not through egressd_cmd: a backgrounded function is a subshell, and
	# EGRESSD_PID must be egressd itself (nsenter and sh exec into it).
	# env --default-signal: a background job of a script starts with
	# SIGINT ignored; give egressd the disposition a service manager would.
	nsenter --net="/run/netns/$SB" -- env --default-signal=INT,QUIT sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/agent" "$EGRESSD" "$@" >"$T/egressd.out" 2>"$T/egressd.err" &
	EGRESSD_PID=$!
	local deadline=$(($(now_ms) + ${EGIT_START_MS:-10000}))
	while ! has_start_line; do
		if ! kill -0 "$EGRESSD_PID" 2>/dev/null; then
			wait "$EGRESSD_PID"
			echo "egressd exited with status $? before its start line; stderr:" >&2
			sed 's/^/  | /' "$T/egressd.err" >&2
			EGRESSD_PID=
			die "egressd did not start"
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "no start line after 10 s; stderr:" >&2
			sed 's/^/  | /' "$T/egressd.err" >&2
			die "egressd did not start"
		fi
		sleep 0.05
	done
}

# stop_egressd: SIGTERM; sets EGRESSD_RC and EGRESSD_STOP_MS.
stop_egressd() {
	local t0
	EGRESSD_RC=
	[ -n "$EGRESSD_PID" ] || return 0
	t0=$(now_ms)
	kill -TERM "$EGRESSD_PID" 2>/dev/null
	for _ in $(seq 1 50); do
		kill -0 "$EGRESSD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$EGRESSD_PID" 2>/dev/null; then
		kill -KILL "$EGRESSD_PID"
		EGRESSD_RC=killed
		wait "$EGRESSD_PID" 2>/dev/null
	else
		wait "$EGRESSD_PID"
		EGRESSD_RC=$?
	fi
	EGRESSD_STOP_MS=$(($(now_ms) - t0))
	EGRESSD_PID=
}

# ---- workload -------------------------------------------------------------

# run_workload CMD...: run CMD in the sandbox netns, in the workload cgroup.
run_workload() {
	nsenter --net="/run/netns/$SB" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/workload" "$@"
}

# q [DIG-OPTIONS] @SERVER NAME [TYPE]: one dig from the workload. Sets
# Q_STATUS (NOERROR, NXDOMAIN, SERVFAIL, ... or TIMEOUT), Q_ANSWER (the
# rdata of the answer records, space separated), Q_OUT (dig's output) and
# Q_MS (wall time).
q() {
	local t0
	t0=$(now_ms)
	Q_OUT=$(run_workload dig +tries=1 +time=2 +noall +comments +answer "$@" 2>&1)
	Q_MS=$(($(now_ms) - t0))
	Q_STATUS=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$Q_OUT" | head -n 1)
	[ -n "$Q_STATUS" ] || Q_STATUS=TIMEOUT
	Q_ANSWER=$(awk '!/^;/ && NF >= 5 { printf "%s%s", sep, $5; sep = " " }' <<<"$Q_OUT")
}

# Query log of a fakedns instance (default: the usual upstream).
fakedns_log() {
	cat "$T/fakedns-${1:-up}.log"
}

# folded_kind KIND: "LINES COUNT" of the folded warnings of that kind in
# egressd's output so far (docs/logs.md, "Repeated warnings"): how many
# lines, and the occurrences their counts add up to.
folded_kind() {
	"$PY" -c '
import json, sys
n = c = 0
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("kind") == sys.argv[2]:
        n += 1
        c += o.get("count", 1)
print(n, c)' "$T/egressd.out" "$1"
}

# fakedns_queries [TAG]: that fakedns's log without egressd's own upstream
# health probes (". NS", OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE's default):
# the queries the sandbox's clients caused.
fakedns_queries() {
	grep -vE '^(udp|tcp) \. NS$' "$T/fakedns-${1:-up}.log"
}

# upstream_saw NAME [TAG]: did that fakedns receive a query for exactly NAME
# (any case, trailing dot ignored)?
upstream_saw() {
	awk -v n="$1" 'BEGIN { n = tolower(n); sub(/\.$/, "", n) }
		{ q = tolower($2); sub(/\.$/, "", q); if (q == n) f = 1 }
		END { exit !f }' "$T/fakedns-${2:-up}.log"
}

# assert_not_forwarded DESC NAME [TAG]
assert_not_forwarded() {
	if upstream_saw "$2" "${3:-up}"; then
		fail "$1" "the upstream's query log has: $(grep -iF -- "$2" "$T/fakedns-${3:-up}.log" | head -n 3)"
	else
		pass "$1"
	fi
}

# ---- dns+nft: nftables, internet hosts, connects -------------------------
#
# For the test_nft_* scenarios: egressd in `dns+nft` mode with the BPF layer
# off, so nftables judges every packet and its counters and sets tell what
# happened. Hosts of the internet namespace beyond the ones egit_init adds
# come from inet_addr; start_servers runs TCP (tiny HTTP) and UDP listeners
# there that write what they got to a log.

# start_egressd_nft ARGS...: start_egressd in dns+nft mode with BPF off.
# (The caller also exports OPENSANDBOX_EGRESS_BPF=off; the option says it
# again so that nothing in the environment can turn BPF on.)
start_egressd_nft() {
	start_egressd --mode dns+nft --bpf off "$@"
}

# nft_sb ARGS...: the nft command in the sandbox netns.
nft_sb() {
	nsenter --net="/run/netns/$SB" -- nft "$@"
}

# nft_counter NAME: packets of the named counter of table inet egressd
# (empty if there is no such counter).
nft_counter() {
	nft_sb list counter inet egressd "$1" 2>/dev/null |
		awk '$1 == "packets" { print $2; exit }'
}

# nft_learned_has ADDR: is ADDR an element of learned_v4/learned_v6?
nft_learned_has() {
	local set=learned_v4
	case $1 in *:*) set=learned_v6 ;; esac
	nft_sb list set inet egressd "$set" 2>/dev/null |
		grep -qE "(^|[ {,])$1( |,|$)"
}

# nft_egress_rules: the rules of chain egress, one a line, handles and
# anonymous counter values stripped (to count and compare listings).
nft_egress_rules() {
	nft_sb -a list chain inet egressd egress 2>/dev/null |
		awk '/^\t\t/ && / # handle [0-9]+$/ {
			sub(/ # handle [0-9]+$/, ""); sub(/^\t+/, "")
			gsub(/packets [0-9]+ bytes [0-9]+/, "")
			print }'
}

# nft_tables_named NAME [FAMILY]: how many tables called NAME (of FAMILY,
# or of any family: egressd has inet and netdev) exist in the sandbox netns.
nft_tables_named() {
	nft_sb list tables 2>/dev/null |
		awk -v n="$1" -v f="${2:-}" '$3 == n && (f == "" || $2 == f) { c++ } END { print c + 0 }'
}

# inet_addr ADDR...: add host addresses to the internet namespace (v4 in
# its /24, v6 in its /64).
inet_addr() {
	local a
	for a in "$@"; do
		case $a in
		*:*) ip -n "$NET" addr add "$a/64" dev "$VN" nodad ;;
		*) ip -n "$NET" addr add "$a/24" dev "$VN" ;;
		esac || die "internet host address $a"
	done
}

# start_servers TAG SPEC...: listeners in the internet namespace, SPEC is
# tcp:ADDR:PORT or udp:ADDR:PORT (v6 as tcp:[ADDR]:PORT). A TCP listener
# answers any request with "HTTP/1.0 200 OK" and "hello ADDR PORT"; every
# TCP accept and UDP datagram is logged to $T/servers-TAG.log as
# "tcp ADDR PORT SRC" / "udp ADDR PORT SRC PAYLOAD". Returns once all are
# bound.
start_servers() {
	local tag=$1 pid
	shift
	: >"$T/servers-$tag.log"
	rm -f "$T/servers-$tag.ready"
	ip netns exec "$NET" "$PY" - "$T/servers-$tag.log" "$T/servers-$tag.ready" "$@" \
		>"$T/servers-$tag.err" 2>&1 <<'EOF_PY' &
import os, select, socket, sys
log, ready, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
out = open(log, "a", buffering=1)
socks = {}
for spec in specs:
    proto, rest = spec.split(":", 1)
    addr, port = rest.rsplit(":", 1)
    addr = addr.strip("[]")
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    typ = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, typ)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    if proto == "tcp":
        s.listen(64)
    socks[s.fileno()] = (s, proto, addr, int(port))
open(ready, "w").close()
while True:
    r, _, _ = select.select([v[0] for v in socks.values()], [], [])
    for s in r:
        _, proto, addr, port = socks[s.fileno()]
        if proto == "udp":
            data, src = s.recvfrom(65535)
            out.write("udp %s %d %s %s\n" % (addr, port, src[0],
                      data.decode(errors="replace").strip()))
            continue
        c, src = s.accept()
        out.write("tcp %s %d %s\n" % (addr, port, src[0]))
        c.settimeout(1)
        try:
            c.recv(4096)
        except OSError:
            pass
        body = "hello %s %d\n" % (addr, port)
        try:
            c.sendall(("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n%s" % (len(body), body)).encode())
        except OSError:
            pass
        c.close()
EOF_PY
	pid=$!
	EGIT_PIDS+=("$pid")
	local deadline=$(($(now_ms) + 5000))
	while [ ! -e "$T/servers-$tag.ready" ]; do
		if ! kill -0 "$pid" 2>/dev/null || [ "$(now_ms)" -ge "$deadline" ]; then
			cat "$T/servers-$tag.err" >&2
			die "servers $tag did not start (an address not added with inet_addr?)"
		fi
		sleep 0.05
	done
}

# http_get ADDR PORT: a TCP connect + HTTP GET from the workload. Sets
# H_CODE (200 when it got through, 000 when it did not) and H_RC (curl's
# exit status: 28 = timed out, i.e. dropped); true when H_CODE is 200.
http_get() {
	local host=$1
	case $host in *:*) host="[$host]" ;; esac
	H_CODE=$(run_workload curl -g -s -m 2 -o /dev/null -w '%{http_code}' \
		"http://$host:$2/" 2>/dev/null)
	H_RC=$?
	[ "$H_CODE" = 200 ]
}

# assert_connects DESC ADDR PORT / assert_blocked DESC ADDR PORT
assert_connects() {
	if http_get "$2" "$3"; then
		pass "$1"
	else
		fail "$1" "workload: curl http://$2:$3/ -> code $H_CODE, curl exit $H_RC"
	fi
}
assert_blocked() {
	if http_get "$2" "$3"; then
		fail "$1" "workload: curl http://$2:$3/ got through (HTTP $H_CODE)"
	else
		pass "$1"
	fi
}

# udp_send ADDR PORT PAYLOAD: one datagram from the workload (a send the
# kernel refuses, as nftables does with EPERM, is not an error here).
udp_send() {
	run_workload "$PY" -c '
import socket, sys
a, p, m = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(m.encode(), (a, p))
except OSError:
    pass' "$@"
}

# server_got TAG PAYLOAD|ADDR...: does the servers-TAG log have a line
# with that text (fixed string)?
server_got() {
	grep -qF -- "$2" "$T/servers-$1.log"
}

# run_in_agent_cgroup CMD...: run CMD in the sandbox netns, in egressd's
# (the agent's) cgroup, as egressd's own traffic would be.
run_in_agent_cgroup() {
	nsenter --net="/run/netns/$SB" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/agent" "$@"
}

# json_field FILE EVENT PATH: the value at dotted PATH (e.g. layers.nft.state)
# of the first line of FILE whose "event" is EVENT, as JSON text for
# non-strings; empty if absent.
json_field() {
	"$PY" - "$@" <<'EOF_PY'
import json, sys
path, ev, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(".")
with open(path, errors="replace") as f:
    for line in f:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if not isinstance(o, dict) or o.get("event") != ev:
            continue
        for k in keys:
            if not isinstance(o, dict) or k not in o:
                sys.exit(0)
            o = o[k]
        print(o if isinstance(o, str) else json.dumps(o))
        sys.exit(0)
EOF_PY
}

# ---- IPv6 (test_ipv6_*) ---------------------------------------------------

# sock_try tcp|udp ADDR PORT [TIMEOUT_S]: from the workload, one TCP connect
# or one UDP sendto to ADDR:PORT, given TIMEOUT_S (default 2). An ADDR with
# a colon gets an AF_INET6 socket, so ::ffff:a.b.c.d is a v6 socket sending
# IPv4. Sets TRY_RESULT to "ok", the errno name (ECONNREFUSED, EPERM, ...)
# or "timeout", and TRY_MS to how long the call took (ms, measured around
# the call itself, not the process start).
sock_try() {
	local out
	out=$(run_workload "$PY" -c '
import errno, socket, sys, time
proto, a, p, to = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in a else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(to)
t0 = time.monotonic()
try:
    if proto == "tcp":
        s.connect((a, p))
    else:
        s.sendto(b"sock-try-%s-%d" % (a.encode(), p), (a, p))
    r = "ok"
except socket.timeout:
    r = "timeout"
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
print(r, int((time.monotonic() - t0) * 1000))' "$1" "$2" "$3" "${4:-2}" 2>&1)
	TRY_RESULT=${out%% *}
	TRY_MS=${out##* }
	case $TRY_MS in '' | *[!0-9]*) TRY_RESULT="error: $out" TRY_MS=99999 ;; esac
}

# assert_fails_fast DESC ERRNO tcp|udp ADDR PORT: sock_try must fail with
# ERRNO in under 1 s (not time out).
assert_fails_fast() {
	local desc=$1 want=$2
	shift 2
	sock_try "$@" 3
	if [ "$TRY_RESULT" = "$want" ] && [ "$TRY_MS" -lt 1000 ]; then
		pass "$desc: $want in $TRY_MS ms"
	else
		fail "$desc" "expected $want within 1000 ms" \
			"got: $TRY_RESULT after $TRY_MS ms"
	fi
}

# egressd_bad_start DESC STDERR-FIXED-STRING ARGS...: egressd must exit
# non-zero within 5 s, with the string on stderr and no start line.
egressd_bad_start() {
	local desc=$1 want=$2 rc
	shift 2
	egit_require_egressd
	timeout -k 1 5 nsenter --net="/run/netns/$SB" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/agent" "$EGRESSD" "$@" >"$T/bad.out" 2>"$T/bad.err"
	rc=$?
	if [ "$rc" = 0 ] || [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		fail "$desc: egressd exits non-zero at start" "exit status $rc"
	else
		pass "$desc: egressd exits non-zero ($rc)"
	fi
	assert_file_contains_i "$desc: stderr names it" "$T/bad.err" "$want"
	if grep -qE '"event" *: *"start"' "$T/bad.out"; then
		fail "$desc: no start line" "$(head -c 400 "$T/bad.out")"
	else
		pass "$desc: no start line"
	fi
}

# ---- HTTP API (test_api_*) ---------------------------------------------

# Where egressd's API listens inside the sandbox netns (the test exports
# OPENSANDBOX_EGRESS_HTTP_ADDR=$API_ADDR before start_egressd), and the
# token api() sends as OPENSANDBOX-EGRESS-AUTH (empty: no header).
API_ADDR=127.0.0.1:18080
API_TOKEN=

# api METHOD PATH [CURL-ARGS...]: one request from inside the sandbox netns
# (outside the workload cgroup). Sets API_CODE (000: no answer), API_BODY
# (the body exactly, trailing newline kept), API_HDRS (response headers,
# CR stripped) and API_CT (the Content-Type value).
api() {
	local method=$1 path=$2 auth=()
	shift 2
	[ -n "$API_TOKEN" ] && auth=(-H "OPENSANDBOX-EGRESS-AUTH: $API_TOKEN")
	rm -f "$T/api.body" "$T/api.hdrs"
	# From the test's own cgroup: not egressd's (joining it is an
	# intrusion egressd answers: docs/nftables.md), so a process of the
	# namespace outside the BPF attach cgroup, which ends the
	# whole-namespace coverage within a second (docs/design.md).
	API_CODE=$(nsenter --net="/run/netns/$SB" -- curl -s -m 5 \
		-X "$method" "${auth[@]}" -o "$T/api.body" -D "$T/api.hdrs" \
		-w '%{http_code}' "$@" "http://$API_ADDR$path" 2>/dev/null)
	API_BODY=$(cat "$T/api.body" 2>/dev/null; echo x)
	API_BODY=${API_BODY%x}
	API_HDRS=$(tr -d '\r' <"$T/api.hdrs" 2>/dev/null)
	API_CT=$(sed -n 's/^[Cc]ontent-[Tt]ype: *//p' <<<"$API_HDRS" | tail -n 1)
}

# api_json METHOD PATH BODY: api with BODY as a JSON request body.
api_json() {
	api "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3"
}

# assert_api DESC CODE BODY: the last api() answered CODE with exactly BODY.
assert_api() {
	if [ "$API_CODE" = "$2" ] && [ "$API_BODY" = "$3" ]; then
		pass "$1"
	else
		fail "$1" "expected: $2 '$3'" "actual:   $API_CODE '$API_BODY'"
	fi
}

# assert_api_prefix DESC CODE PREFIX: same, the body starting with PREFIX.
assert_api_prefix() {
	if [ "$API_CODE" = "$2" ] && [ "${API_BODY#"$3"}" != "$API_BODY" ]; then
		pass "$1"
	else
		fail "$1" "expected: $2 '$3…'" "actual:   $API_CODE '$API_BODY'"
	fi
}

api_healthy() {
	api GET /healthz
	[ "$API_CODE" = 200 ]
}

# start_egressd_api ARGS...: start_egressd with the API on $API_ADDR, and
# wait (5 s) until /healthz answers 200.
start_egressd_api() {
	export OPENSANDBOX_EGRESS_HTTP_ADDR=$API_ADDR
	start_egressd "$@"
	wait_for 5 api_healthy ||
		die "the API on $API_ADDR does not answer /healthz 200 (last: $API_CODE '$API_BODY')"
}

# api_egress: the egress array of GET /policy as compact JSON ("null" when
# it is null or missing), e.g. [{"action":"allow","target":"a.com"}].
api_egress() {
	api GET /policy
	"$PY" -c '
import json, sys
try:
    p = json.loads(sys.argv[1]).get("policy", {})
    print(json.dumps(p.get("egress"), separators=(",", ":")))
except (ValueError, AttributeError) as e:
    print("unparsable: %s" % e)' "$API_BODY"
}

# ---- egressctl (test_ctl_*) ----------------------------------------------

EGRESSCTL=${EGRESSCTL:-$EGIT_ROOT/build/egressctl}

egit_require_egressctl() {
	[ -x "$EGRESSCTL" ] || die "$EGRESSCTL not built (make)"
}

# ctl ARGS...: egressctl in the sandbox netns (where the API listens), with
# the environment of the test (OPENSANDBOX_EGRESS_HTTP_ADDR, _TOKEN,
# _BPF_PIN_DIR). Sets CTL_RC, CTL_OUT (stdout) and CTL_ERR (stderr).
ctl() {
	CTL_OUT=$(nsenter --net="/run/netns/$SB" -- "$EGRESSCTL" "$@" 2>"$T/ctl.err")
	CTL_RC=$?
	CTL_ERR=$(cat "$T/ctl.err")
}

# ctl_in FILE ARGS...: ctl with stdin from FILE.
ctl_in() {
	local in=$1
	shift
	ctl "$@" <"$in"
}

# assert_ctl DESC RC ARGS...: egressctl ARGS exits RC.
assert_ctl() {
	local desc=$1 want=$2
	shift 2
	ctl "$@"
	if [ "$CTL_RC" = "$want" ]; then
		pass "$desc (exit $want)"
	else
		fail "$desc" "egressctl $* exited $CTL_RC, expected $want" \
			"stdout: $(head -c 400 <<<"$CTL_OUT")" \
			"stderr: $(head -c 400 <<<"$CTL_ERR")"
	fi
}

# json_eval JSON EXPR: print the Python expression EXPR over the parsed
# JSON text (bound to o), or "unparsable: ..." when it is not JSON.
json_eval() {
	"$PY" -c '
import json, sys
try:
    o = json.loads(sys.argv[1])
except ValueError as e:
    print("unparsable: %s" % e)
    sys.exit(0)
try:
    r = eval(sys.argv[2])
except Exception as e:
    r = "error: %r" % e
print(r if isinstance(r, str) else json.dumps(r, separators=(",", ":")))' "$1" "$2"
}

# ---- deny webhook, DNS load, API load (test_webhook, test_api_*) ---------

# start_webhook_receiver TAG ADDR PORT: an HTTP receiver in the internet
# namespace. Every request is one JSON line in $T/webhook-TAG.log:
# {"t":epoch_s,"method":…,"path":…,"ct":…,"body":…,"code":N}. It answers by
# the body's hostname: "r500.*" gets 500 on its first POST and 200 after,
# "r400.*" always 400, anything else 200. Returns once it listens.
start_webhook_receiver() {
	local tag=$1 pid
	: >"$T/webhook-$tag.log"
	rm -f "$T/webhook-$tag.ready"
	ip netns exec "$NET" "$PY" - "$T/webhook-$tag.log" "$T/webhook-$tag.ready" "$2" "$3" \
		>"$T/webhook-$tag.err" 2>&1 <<'EOF_PY' &
import json, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log, ready, addr, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = open(log, "a", buffering=1)
lock = threading.Lock()
seen = {}
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode(errors="replace")
        try:
            host = json.loads(body).get("hostname", "")
        except (ValueError, AttributeError):
            host = ""
        with lock:
            k = seen.get(host, 0)
            seen[host] = k + 1
            code = 200
            if host.startswith("r500.") and k == 0:
                code = 500
            elif host.startswith("r400."):
                code = 400
            out.write(json.dumps({"t": time.time(), "method": "POST",
                                  "path": self.path,
                                  "ct": self.headers.get("Content-Type"),
                                  "body": body, "code": code}) + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
class S(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
srv = S((addr, port), H)
open(ready, "w").close()
srv.serve_forever()
EOF_PY
	pid=$!
	EGIT_PIDS+=("$pid")
	wait_for 5 test -e "$T/webhook-$tag.ready" || {
		cat "$T/webhook-$tag.err" >&2
		die "webhook receiver $tag did not start"
	}
}

# webhook_count TAG [HOSTNAME]: POSTs the receiver got (for HOSTNAME).
webhook_count() {
	"$PY" - "$T/webhook-$1.log" "${2:-}" <<'EOF_PY'
import json, sys
n = 0
for l in open(sys.argv[1]):
    o = json.loads(l)
    try:
        h = json.loads(o["body"]).get("hostname")
    except (ValueError, AttributeError):
        h = None
    if not sys.argv[2] or h == sys.argv[2]:
        n += 1
print(n)
EOF_PY
}

# metric NAME_WITH_LABELS: its value from GET /metrics (empty if absent),
# e.g. metric 'egressd_webhook_total{result="sent"}'.
metric() {
	api GET /metrics
	awk -v m="$1" '$1 == m { print $2; exit }' <<<"$API_BODY"
}

# dns_burst SERVER COUNT FMT [QTYPE]: from the workload, COUNT queries one
# after the other for FMT with {i} replaced by 0..COUNT-1, each given 2 s.
# Prints one JSON object: {"n":…,"rcodes":{"NXDOMAIN":…},"timeouts":…,
# "max_ms":…,"p50_ms":…} (latencies measured around each exchange).
dns_burst() {
	run_workload "$PY" - "$@" <<'EOF_PY'
import json, socket, sys, time
import dnslib
server, count, fmt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
qtype = sys.argv[4] if len(sys.argv) > 4 else "A"
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET,
                  socket.SOCK_DGRAM)
s.settimeout(2)
rc, lat, to = {}, [], 0
for i in range(count):
    q = dnslib.DNSRecord.question(fmt.replace("{i}", str(i)), qtype)
    t0 = time.monotonic()
    s.sendto(q.pack(), (server, 53))
    while True:
        try:
            r = dnslib.DNSRecord.parse(s.recv(4096))
        except socket.timeout:
            r = None
            break
        if r.header.id == q.header.id:
            break
    if r is None:
        to += 1
        continue
    lat.append((time.monotonic() - t0) * 1000)
    n = dnslib.RCODE.get(r.header.rcode)
    rc[n] = rc.get(n, 0) + 1
lat.sort()
print(json.dumps({"n": count, "rcodes": rc, "timeouts": to,
                  "max_ms": round(lat[-1], 1) if lat else None,
                  "p50_ms": round(lat[len(lat) // 2], 1) if lat else None}))
EOF_PY
}

# dns_load SERVER SECONDS MAXQ NAME...: from the workload, query the NAMEs
# (A) round robin for SECONDS or MAXQ queries, whichever ends first, each
# given 2 s. Prints one JSON object {"NAME": {"RCODE ANSWERS": count, …},
# …, "_n": total}; ANSWERS are the sorted A rdata, space separated, and a
# timeout is "TIMEOUT".
dns_load() {
	run_workload "$PY" - "$@" <<'EOF_PY'
import json, socket, sys, time
import dnslib
server, secs, maxq, names = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
res = {n: {} for n in names}
end = time.monotonic() + secs
i = 0
while i < maxq and time.monotonic() < end:
    name = names[i % len(names)]
    i += 1
    q = dnslib.DNSRecord.question(name, "A")
    s.sendto(q.pack(), (server, 53))
    key = "TIMEOUT"
    while True:
        try:
            r = dnslib.DNSRecord.parse(s.recv(4096))
        except socket.timeout:
            break
        if r.header.id != q.header.id:
            continue
        a = sorted(str(x.rdata) for x in r.rr if x.rtype == dnslib.QTYPE.A)
        key = " ".join([dnslib.RCODE.get(r.header.rcode)] + a)
        break
    res[name][key] = res[name].get(key, 0) + 1
res["_n"] = i
print(json.dumps(res, sort_keys=True))
EOF_PY
}

# api_flip SECONDS RATE BODY_A BODY_B: from the sandbox netns, POST /policy
# alternating BODY_A and BODY_B at RATE per second for SECONDS. Prints
# {"n":…,"codes":{"200":…},"max_ms":…,"last":"A"|"B"}.
api_flip() {
	nsenter --net="/run/netns/$SB" -- "$PY" - "$API_ADDR" "$API_TOKEN" "$@" <<'EOF_PY'
import http.client, json, sys, time
addr, token, secs, rate, bodies = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5:7]
host, port = addr.rsplit(":", 1)
hdrs = {"Content-Type": "application/json"}
if token:
    hdrs["OPENSANDBOX-EGRESS-AUTH"] = token
codes, worst, n, last = {}, 0.0, 0, None
t_end = time.monotonic() + secs
nxt = time.monotonic()
while time.monotonic() < t_end:
    k = n % 2
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=5)
        c.request("POST", "/policy", bodies[k], hdrs)
        code = str(c.getresponse().status)
        c.close()
    except OSError as e:
        code = "error: %s" % e
    worst = max(worst, (time.monotonic() - t0) * 1000)
    codes[code] = codes.get(code, 0) + 1
    if code == "200":
        last = "AB"[k]
    n += 1
    nxt += 1.0 / rate
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
print(json.dumps({"n": n, "codes": codes, "max_ms": round(worst, 1), "last": last}))
EOF_PY
}
