#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, class 5: egressd's API is not the workload's. With no token
# (the default) a root workload with Docker's default capabilities tries to
# open the policy with POST {"defaultAction":"allow"} to the API on
# 127.0.0.1, ::1 and the sandbox's own address. In the sidecar topology:
#   nohost  nftables alone: the connection attempts are dropped (reason
#           api) whatever the token
#   host    BPF covers the namespace: its program drops them (reason api)
# Either way egressd warns at start that the API has no token, the policy
# stays as it was, and the operator's path (egressctl exec'd into egressd's
# container, modelled by run_in_container) keeps working. Slow or idle
# clients cannot exhaust the API: one address holds at most 8 connections,
# and one that sends no complete request is closed after 5 s.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sidecar.sh"
sidecar_init

DOCKER_CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap
root_workload() {
	run_workload setpriv --bounding-set="$DOCKER_CAPS" --inh-caps=-all -- "$@"
}

# grab URL: the workload's POST opening the policy; prints the HTTP code
# (000: no connection).
grab() {
	root_workload curl -g -s -m 2 -o /dev/null -w '%{http_code}' \
		-X POST -H 'Content-Type: application/json' \
		--data-binary '{"defaultAction":"allow"}' "$1" 2>/dev/null
}

attack() {
	local v=$1 url code
	for url in http://127.0.0.1:18080/policy "http://[::1]:18080/policy" \
		"http://$SB4:18080/policy"; do
		code=$(grab "$url")
		assert_eq "$v: the workload cannot POST $url" 000 "$code"
	done
	assert_eq "$v: the policy is unchanged" deny "$(status_field policy.defaultAction)"
	assert_blocked "$v: a non-allowed host stays blocked" 10.200.$X.81 80
	wait_json_line "$v: violation line, reason api" "$T/egressd.out" \
		event=violation layer=packet reason=api action=drop dport=18080
	code=$(run_in_container curl -s -m 2 -o /dev/null -w '%{http_code}' \
		http://127.0.0.1:18080/policy)
	assert_eq "$v: the operator (egressd's container) reaches the API" 200 "$code"
}

start_upstream
start_servers web tcp:"$WEB4":80 tcp:10.200.$X.81:80

# ---- nftables alone ----------------------------------------------------------
start_egressd_sidecar nohost --mode dns+nft --rules "$POLICY" ||
	die "nohost: egressd exited with status $SC_RC: $(cat "$T/egressd.err")"
assert_contains "nohost: a warning at start: the API has no token" \
	"$(grep '"event":"warning"' "$T/egressd.out")" "anyone who can reach this port controls the policy"
attack nohost
assert_contains "nohost: nftables counts them (api_drop)" \
	"$(nft_sb list counter inet egressd api_drop 2>&1)" "packets"

# Slow or idle clients: 12 connections from one address that never send a
# request; at most 8 are kept, and those are closed after the header
# timeout (5 s), leaving the API to everyone else.
run_in_container "$PY" - >"$T/idle.out" 2>&1 <<'PY'
import socket, time
socks, refused = [], 0
for i in range(12):
    s = socket.create_connection(("127.0.0.1", 18080), timeout=2)
    socks.append(s)
time.sleep(0.5)
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            refused += 1
    except BlockingIOError:
        pass
print("closed at once", refused)
t0 = time.time()
for s in socks:
    s.setblocking(True)
    s.settimeout(10)
    try:
        s.recv(1)
    except OSError:
        pass
print("all closed after %.1f s" % (time.time() - t0))
PY
idle=$(cat "$T/idle.out")
assert_contains "nohost: past 8 connections from one address are closed at once" "$idle" "closed at once 4"
if grep -qE 'all closed after [0-7]\.' <<<"$idle"; then
	pass "nohost: idle connections closed by the header timeout ($idle)"
else
	fail "nohost: idle connections closed by the header timeout" "$idle"
fi
# The same bound after a request: a keep-alive connection that got its
# answer and sends nothing more waits for its next headers, and is closed
# by the header timeout too, not kept for the 30 s idle timeout.
run_in_container "$PY" - >"$T/keep.out" 2>&1 <<'PY'
import socket, time
s = socket.create_connection(("127.0.0.1", 18080), timeout=2)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
t0 = time.time()
s.settimeout(40)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
print("answered", buf.split(b"\r\n")[0].decode(), "then closed after %.1f s" % (time.time() - t0))
PY
keep=$(cat "$T/keep.out")
if grep -qE 'answered HTTP/1.1 [0-9]+ .* then closed after [0-7]\.' <<<"$keep"; then
	pass "nohost: an idle keep-alive connection closed by the header timeout ($keep)"
else
	fail "nohost: an idle keep-alive connection closed by the header timeout" "$keep"
fi
assert_eq "nohost: the API still answers" deny "$(status_field policy.defaultAction)"
stop_egressd
nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup >/dev/null 2>"$T/cleanup.err" ||
	die "--cleanup: $(cat "$T/cleanup.err")"

# ---- BPF covers the namespace ----------------------------------------------
start_egressd_sidecar host --mode dns+nft --rules "$POLICY" ||
	die "host: egressd exited with status $SC_RC: $(cat "$T/egressd.err")"
assert_eq "host: coverage namespace (BPF judges, no nftables chain)" namespace \
	"$(json_field "$T/egressd.out" start coverage.state)"
attack host
stop_egressd
egit_finish
