#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# SIGTERM (and SIGINT) stop egressd promptly with exit status 0 and a
# "stop" line as the last line of its log, which stays pure JSON.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
start_egressd --rules "$POLICY"
assert_json_line "start line names the upstream" "$T/egressd.out" event=start mode=dns
q @"$DNS4" api.github.com A
assert_eq "working before the signal" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" evil.example.com A

stop_egressd
assert_eq "SIGTERM: exit status 0" 0 "$EGRESSD_RC"
if [ "$EGRESSD_STOP_MS" -le 2000 ]; then
	pass "SIGTERM: stopped in ${EGRESSD_STOP_MS} ms"
else
	fail "SIGTERM: stopped within 2 s" "took ${EGRESSD_STOP_MS} ms"
fi
last=$(tail -n 1 "$T/egressd.out")
assert_contains "last line is the stop event" "$(tr -d ' ' <<<"$last")" '"event":"stop"'
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"

# Fail closed: the redirect outlives the agent, so with egressd stopped a
# port-53 query is not answered by anyone and never reaches the upstream.
q +time=1 @"$DNS4" stopped.exfil.attacker.net A
assert_eq "after stop: port 53 still redirected (no answer)" TIMEOUT "$Q_STATUS"
assert_not_forwarded "after stop: query never reached the upstream" stopped.exfil.attacker.net
# A restart adopts the table left behind and serves again.
start_egressd --rules "$POLICY"
q @"$DNS4" api.github.com A
assert_eq "restart over the leftover table: serving" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" evil.example.com A
assert_eq "restart over the leftover table: still filtering" NXDOMAIN "$Q_STATUS"
stop_egressd

# SIGINT behaves the same, also with a TCP client connected and idle.
start_egressd --rules "$POLICY"
run_workload "$PY" -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], 53))
time.sleep(30)' "$DNS4" &
EGIT_PIDS+=("$!")
sleep 0.3
t0=$(now_ms)
kill -INT "$EGRESSD_PID"
wait_for 3 sh -c "! kill -0 $EGRESSD_PID 2>/dev/null"
wait "$EGRESSD_PID"
rc=$?
EGRESSD_PID=
assert_eq "SIGINT with an open TCP client: exit status 0" 0 "$rc"
ms=$(($(now_ms) - t0))
if [ "$ms" -le 2000 ]; then pass "SIGINT: stopped in $ms ms"; else fail "SIGINT: stopped within 2 s" "took $ms ms"; fi
assert_contains "SIGINT: stop event" "$(tail -n 1 "$T/egressd.out" | tr -d ' ')" '"event":"stop"'
egit_finish
