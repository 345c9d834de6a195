# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash disable=SC2034,SC2016
#
# The sidecar topology, as a container runtime builds it on a cgroup v2
# node (tests/integration/test_sidecar_*.sh), sourced after lib.sh:
#
#   sandbox cgroup  $CG (the pod)        network namespace $SB, shared
#     $CG/agent     egressd's container: its own cgroup AND mount namespace,
#                   cgroup2 mounted afresh (its root is $CG/agent), bpffs
#                   bound back; optionally the host's hierarchy at $T/hostcg
#     $CG/workload  the app: a sibling cgroup egressd cannot see
#   $CG2/egit-$EGIT_ID-out  a third cgroup outside the sandbox, same netns
#
# Variants of egressd's container:
#   nohost  full capabilities, no host hierarchy visible
#   host    full capabilities, OPENSANDBOX_EGRESS_HOST_CGROUP2=$T/hostcg
#   peer    the OpenSandbox sidecar's spec: only CAP_NET_ADMIN, cgroup2
#           mounted read-only, no host hierarchy
# What this file creates is removed at exit, before lib.sh's cleanup.

SC_OUT=		# the third cgroup, outside the sandbox
SC_EXEC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/sidecar-exec.sh

sidecar_init() {
	command -v unshare >/dev/null || die "'unshare' not found"
	command -v setpriv >/dev/null || die "'setpriv' not found"
	egit_init
	# The attach point is found, not given.
	unset OPENSANDBOX_EGRESS_CGROUP
	# The host's bpffs is what the sidecar's hostPath volume shows.
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf ||
		die "cannot mount bpffs at /sys/fs/bpf"
	SC_OUT=$CG2/egit-$EGIT_ID-out
	if [ -d "$SC_OUT" ]; then
		egit_rmcg "$SC_OUT" || die "a stale $SC_OUT cannot be removed"
	fi
	mkdir "$SC_OUT" || die "mkdir $SC_OUT"
	trap sidecar_exit EXIT
}

_sc_status() { return "$1"; }

sidecar_exit() {
	local rc=$?
	sidecar_cleanup
	_sc_status "$rc"
	egit_cleanup
}

sidecar_cleanup() {
	[ -n "$EGRESSD_PID" ] && stop_pid "$EGRESSD_PID"
	EGRESSD_PID=
	local p
	for p in "${EGIT_PIDS[@]}"; do stop_pid "$p"; done
	EGIT_PIDS=()
	[ -n "$SC_OUT" ] && egit_rmcg "$SC_OUT"
	# egressd's own child cgroup, made inside its container's cgroup.
	[ -n "$CG" ] && egit_rmcg "$CG/agent/egressd"
}

# start_egressd_sidecar VARIANT ARGS...: egressd as a sidecar container of
# the sandbox (see above), in the background, waiting for its start line.
start_egressd_sidecar() {
	local variant=$1 ro="" host="" caps=""
	shift
	egit_require_egressd
	case $variant in
	nohost) ;;
	host) host=1 ;;
	peer) ro=1 caps=1 ;;
	*) die "start_egressd_sidecar: unknown variant $variant" ;;
	esac
	: >"$T/egressd.out"
	: >"$T/egressd.err"
	local opts=()
	[ -n "$ro" ] && opts+=(--ro)
	[ -n "$host" ] && opts+=(--host "$T/hostcg")
	[ -n "$caps" ] && opts+=(--net-admin-only)
	# Same exec chain as start_egressd: $! stays egressd's pid.
	nsenter --net="/run/netns/$SB" -- env --default-signal=INT,QUIT \
		sh -c 'echo $$ > "$1/cgroup.procs" && shift &&
		exec unshare --cgroup --mount --propagation slave "$@"' \
		sh "$CG/agent" "$SC_EXEC" "${opts[@]}" "$T" "$EGRESSD" "$@" \
		>"$T/egressd.out" 2>"$T/egressd.err" &
	EGRESSD_PID=$!
	local deadline=$(($(now_ms) + ${EGIT_START_MS:-10000}))
	while ! has_start_line; do
		if ! kill -0 "$EGRESSD_PID" 2>/dev/null; then
			wait "$EGRESSD_PID"
			SC_RC=$?
			EGRESSD_PID=
			return 1
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "no start line after ${EGIT_START_MS:-10000} ms; stderr:" >&2
			sed 's/^/  | /' "$T/egressd.err" >&2
			die "egressd did not start"
		fi
		sleep 0.05
	done
}

# run_in_container CMD...: CMD in the sandbox netns, in egressd's
# container cgroup (where `docker exec` lands; egressd itself may sit in a
# child of it).
run_in_container() {
	nsenter --net="/run/netns/$SB" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/agent" "$@"
}

# run_outside CMD...: CMD in the sandbox netns, in the third cgroup.
run_outside() {
	nsenter --net="/run/netns/$SB" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$SC_OUT" "$@"
}

# status_field PATH: a field of egressd's /status (JSON text), asked from
# egressd's container cgroup, as `docker exec` would (the API is not the
# rest of the sandbox's: docs/security.md, class 5).
status_field() {
	run_in_container curl -s -m 2 http://127.0.0.1:18080/status |
		"$PY" -c '
import json, sys
o = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    o = o.get(k) if isinstance(o, dict) else None
print(o if isinstance(o, str) else json.dumps(o))' "$1" 2>/dev/null
}

# prog_count CGROUP_DIR: BPF programs attached there (any type).
prog_count() {
	bpftool -j cgroup show "$1" 2>/dev/null |
		"$PY" -c 'import json,sys
try: print(len(json.load(sys.stdin)))
except Exception: print(0)'
}

# raw_query NAME ADDR: a UDP DNS query for NAME written on a raw socket to
# ADDR:53 from the workload (no socket hook sees it).
raw_query() {
	run_workload "$PY" - "$1" "$2" <<'PY'
import socket, struct, sys
from dnslib import DNSRecord
q = DNSRecord.question(sys.argv[1]).pack()
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
try:
    r.sendto(struct.pack("!HHHH", 40000, 53, 8 + len(q), 0) + q, (sys.argv[2], 0))
except PermissionError:
    pass
PY
}

# sidecar_scenario VARIANT EXPECTED_COVERAGE: the whole check list of a
# sidecar variant (dns+nft, BPF at its default).
sidecar_scenario() {
	local v=$1 want_cov=$2 cov
	start_upstream
	start_servers web tcp:"$WEB4":80 tcp:10.200.$X.81:80 udp:10.200.$X.81:5000
	start_egressd_sidecar "$v" --mode dns+nft --rules "$POLICY" ||
		die "$v: egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"

	cov=$(json_field "$T/egressd.out" start coverage.state)
	assert_eq "$v: start line coverage" "$want_cov" "$cov"
	assert_eq "$v: /status coverage" "$want_cov" "$(status_field coverage.state)"

	q @"$DNS4" evil.example.com
	assert_eq "$v: denied name NXDOMAIN" NXDOMAIN "$Q_STATUS"
	q @10.200.$X.54 exfil.attacker.net
	assert_eq "$v: denied name to another resolver address NXDOMAIN" NXDOMAIN "$Q_STATUS"
	raw_query raw-$v.exfil.attacker.net "$DNS4"
	sleep 0.3
	assert_not_forwarded "$v: denied name never at the upstream" evil.example.com
	assert_not_forwarded "$v: denied name via another address never at the upstream" exfil.attacker.net
	assert_not_forwarded "$v: raw-socket query never at the upstream" raw-$v.exfil.attacker.net
	wait_json_line "$v: DNS violation line" "$T/egressd.out" event=violation layer=dns qname~=evil.example.com

	assert_blocked "$v: TCP to a non-allowed address blocked" 10.200.$X.81 80
	udp_send 10.200.$X.81 5000 "sc-$v-udp"
	sleep 0.3
	if server_got web "sc-$v-udp"; then
		fail "$v: UDP to a non-allowed address blocked" "the server got it"
	else
		pass "$v: UDP to a non-allowed address blocked"
	fi
	wait_json_line "$v: packet violation line" "$T/egressd.out" event=violation layer=packet dst=10.200.$X.81

	q @"$DNS4" api.github.com
	assert_eq "$v: allowed name resolves" "$WEB4" "$Q_ANSWER"
	assert_connects "$v: learned address reachable" "$WEB4" 80

	# A process that shows up later, outside the sandbox cgroup.
	run_outside "$PY" - "10.200.$X.81" "$DNS4" >"$T/outside.out" 2>&1 <<'PY' &
import socket, subprocess, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 0))
time.sleep(2.5)  # egressd rescans every second
t = socket.socket()
t.settimeout(2)
try:
    t.connect((sys.argv[1], 80))
    print("tcp connected")
except OSError as e:
    print("tcp blocked", e)
r = subprocess.run(["dig", "+tries=1", "+time=2", "@" + sys.argv[2], "evil.example.com"],
                   capture_output=True, text=True).stdout
print("dns", "NXDOMAIN" if "NXDOMAIN" in r else "other")
PY
	wait $! 2>/dev/null
	assert_contains "$v: a process in a third cgroup is judged (TCP)" "$(cat "$T/outside.out")" "tcp blocked"
	assert_contains "$v: a process in a third cgroup has its DNS filtered" "$(cat "$T/outside.out")" "dns NXDOMAIN"
	if [ "$want_cov" = namespace ]; then
		assert_contains "$v: a warning names the foreign cgroup" \
			"$(grep '"event":"warning"' "$T/egressd.out")" \
			"socket of cgroup id $(stat -c %i "$SC_OUT") is outside"
		assert_eq "$v: coverage left the fast path" partial "$(status_field coverage.state)"
		assert_eq "$v: /status names the foreign cgroup" "$(stat -c %i "$SC_OUT")" \
			"$(status_field coverage.foreignCgroupId)"
	fi

	# Fail closed: kill -9, then a clean stop of a new instance.
	kill -KILL "$EGRESSD_PID"
	wait "$EGRESSD_PID" 2>/dev/null
	EGRESSD_PID=
	assert_blocked "$v: after kill -9, TCP still blocked" 10.200.$X.81 80
	q @"$DNS4" killed-$v.exfil.attacker.net
	assert_not_forwarded "$v: after kill -9, denied names never at the upstream" killed-$v.exfil.attacker.net
	start_egressd_sidecar "$v" --mode dns+nft --rules "$POLICY" ||
		die "$v: restart failed: $(cat "$T/egressd.err")"
	q @"$DNS4" api.github.com
	assert_eq "$v: restarted, allowed name resolves" "$WEB4" "$Q_ANSWER"
	stop_egressd
	assert_eq "$v: clean stop exits 0" 0 "$EGRESSD_RC"
	assert_blocked "$v: after a clean stop, TCP still blocked" 10.200.$X.81 80
	q @"$DNS4" stopped-$v.exfil.attacker.net
	assert_not_forwarded "$v: after a clean stop, denied names never at the upstream" stopped-$v.exfil.attacker.net

	# --cleanup removes what egressd owns, and nothing is left behind.
	nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup >/dev/null 2>"$T/cleanup.err"
	assert_eq "$v: --cleanup exits 0" 0 "$?"
	assert_eq "$v: no egressd table after --cleanup" 0 "$(nft_tables_named egressd)"
	assert_eq "$v: no programs on the sandbox cgroup" 0 "$(prog_count "$CG")"
	if [ -e "$OPENSANDBOX_EGRESS_BPF_PIN_DIR" ]; then
		fail "$v: pin dir removed" "$OPENSANDBOX_EGRESS_BPF_PIN_DIR still exists"
	else
		pass "$v: pin dir removed"
	fi
}
