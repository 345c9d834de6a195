#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A full ring buffer (docs/security.md "Faults"): egressd is stopped
# (SIGSTOP, a stalled consumer) while the workload sends datagrams to
# 4,000 distinct ports of a blocked address, each a new fold key and so a
# new record, more than the 256 KiB events ring holds (~2,500). The
# verdict never changes: nothing reaches the blocked host, the program
# counts every drop and every record it could not queue
# (ringbuf_drops). Once egressd runs again it is alive, reports
# egressd_events_dropped_total, says so in one warning, and the violation
# lines for the address account for every packet (the records that did
# not fit were kept folded and drained later).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

N=4000
BLOCKED=10.200.$X.81

bpf_init
start_upstream
start_servers blk "udp:$BLOCKED:1000" "tcp:$BLOCKED:80"
export OPENSANDBOX_EGRESS_HTTP_ADDR=$API_ADDR
start_egressd_bpf --rules "$POLICY"
wait_for 5 api_healthy || die "the API does not answer /healthz"
assert_eq "layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"

rd0=$(bpf_counter ringbuf_drops)
dd0=$(bpf_counter default_deny)
kill -STOP "$EGRESSD_PID"
run_workload "$PY" -c '
import socket, sys
a, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in range(1000, 1000 + n):
    try:
        s.sendto(b"ring-%d" % p, (a, p))
    except OSError:
        pass' "$BLOCKED" "$N"
rd1=$(bpf_counter ringbuf_drops)
dd1=$(bpf_counter default_deny)
egit_log "while stopped: default_deny $dd0 -> $dd1, ringbuf_drops $rd0 -> $rd1"
assert_eq "while stopped: every datagram dropped and counted" "$N" $((dd1 - dd0))
if [ $((rd1 - rd0)) -gt 0 ]; then
	pass "while stopped: the ring buffer filled, records not queued are counted ($((rd1 - rd0)))"
else
	fail "while stopped: the ring buffer filled" "ringbuf_drops $rd0 -> $rd1"
fi
assert_tcp_blocked "while stopped: $BLOCKED:80 blocked" "$BLOCKED" 80
kill -CONT "$EGRESSD_PID"

wait_for 5 grep -q 'the events ring buffer was full' "$T/egressd.out"
assert_contains "a warning says records were not queued" \
	"$(grep -E '"event" *: *"warning"' "$T/egressd.out")" "the events ring buffer was full: "
dropped=$(metric egressd_events_dropped_total)
if [ "${dropped:-0}" -ge $((rd1 - rd0)) ] 2>/dev/null; then
	pass "egressd_events_dropped_total counts them ($dropped)"
else
	fail "egressd_events_dropped_total counts them" "metric '$dropped', drops $((rd1 - rd0))"
fi
if kill -0 "$EGRESSD_PID" 2>/dev/null && api_healthy; then
	pass "egressd running, /healthz 200"
else
	fail "egressd running, /healthz 200" "code $API_CODE"
fi

# Every packet is in some line: records that fit, and drained folds.
sum_counts() {
	"$PY" - "$T/egressd.out" "$BLOCKED" <<'EOF_PY'
import json, sys
n = 0
for l in open(sys.argv[1], errors="replace"):
    try:
        o = json.loads(l)
    except ValueError:
        continue
    if o.get("event") == "violation" and o.get("dst") == sys.argv[2] and o.get("dport") != 80:
        n += o.get("count", 1)
print(n)
EOF_PY
}
counts_complete() { [ "$(sum_counts)" -ge "$N" ]; }
wait_for 10 counts_complete
assert_eq "violation lines for $BLOCKED account for all $N datagrams" "$N" "$(sum_counts)"

if [ -s "$T/servers-blk.log" ]; then
	fail "the blocked host received nothing" "$(head -3 "$T/servers-blk.log")"
else
	pass "the blocked host received nothing"
fi
q @"$DNS4" api.github.com A
assert_eq "DNS answers" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
