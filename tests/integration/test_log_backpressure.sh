#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A log reader that stops reading never stalls DNS or the API: egressd's
# stdout is a FIFO whose reader stops after the start line (it keeps the
# FIFO open, as a stuck log collector does). The workload floods denied
# names (answered in normal time; their lines fold into a few, see
# test_events_dns_flood), then sends one datagram to each of thousands of
# blocked ports: each a new packet violation line, far more than the pipe
# and egressd's log buffer hold. Meanwhile allowed names are answered in
# normal time and /healthz answers 200. Once the reader reads again, the
# stream holds whole JSON lines only, one log_dropped line whose count
# equals egressd_log_dropped_total; every blocked datagram is either in a
# violation line or counted in it, and the DNS lines' counts add up to the
# denied queries.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_dnslib
egit_require_egressd
start_upstream
export OPENSANDBOX_EGRESS_HTTP_ADDR=$API_ADDR
export OPENSANDBOX_EGRESS_BPF=off

FLOOD=6000

# flood COUNT: COUNT distinct denied names from the workload (long, so
# each line is ~400 bytes), 64 in flight, answers counted; 20 s at most.
# Prints {"sent":…,"nxdomain":…}.
flood() {
	run_workload "$PY" - "$DNS4" "$1" <<'EOF_PY'
import json, select, socket, sys, time
import dnslib
server, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
pad = "p" * 60 + "." + "q" * 60
sent = answered = 0
nx = 0
end = time.monotonic() + 20
while answered < count and time.monotonic() < end:
    while sent < count and sent - answered < 64:
        q = dnslib.DNSRecord.question("f%d.%s.flood.example" % (sent, pad), "A")
        q.header.id = sent & 0xffff
        s.sendto(q.pack(), (server, 53))
        sent += 1
    r, _, _ = select.select([s], [], [], 0.5)
    if not r:
        # No answer for 0.5 s: count what is in flight as lost.
        answered = sent
        continue
    while True:
        try:
            d = s.recv(4096)
        except BlockingIOError:
            break
        answered += 1
        if dnslib.DNSRecord.parse(d).header.rcode == 3:
            nx += 1
print(json.dumps({"sent": sent, "nxdomain": nx}))
EOF_PY
}

PORTS=10000

# scan COUNT: one UDP datagram from the workload to each of COUNT ports
# of $ARB4 (blocked: default deny), from port 20000 up.
scan() {
	run_workload "$PY" -c '
import socket, sys
a, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in range(20000, 20000 + n):
    try:
        s.sendto(b"x", (a, p))
    except OSError:
        pass' "$ARB4" "$1"
}

pkt_viol() { metric 'egressd_violations_total{layer="packet",reason="default_deny"}'; }

# The reader: copies the FIFO to $T/egressd.out up to the start line, then
# reads nothing until $T/resume exists, then everything until EOF.
mkfifo "$T/out.fifo" || die "mkfifo"
: >"$T/egressd.out"
"$PY" - "$T/out.fifo" "$T/egressd.out" "$T/resume" <<'EOF_PY' &
import os, sys, time
fifo, out, resume = sys.argv[1:4]
fd = os.open(fifo, os.O_RDONLY)
f = open(out, "ab", buffering=0)
seen = b""
while b'"event":"start"' not in seen:
    d = os.read(fd, 4096)
    if not d:
        sys.exit(0)
    f.write(d)
    seen = seen[-64:] + d
while not os.path.exists(resume):
    time.sleep(0.05)
while True:
    d = os.read(fd, 65536)
    if not d:
        break
    f.write(d)
EOF_PY
reader=$!
EGIT_PIDS+=("$reader")

# start_egressd, with stdout on the FIFO.
nsenter --net="/run/netns/$SB" -- env --default-signal=INT,QUIT sh -c \
	'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
	sh "$CG/agent" "$EGRESSD" --rules "$POLICY" --mode dns+nft --bpf off \
	>"$T/out.fifo" 2>"$T/egressd.err" &
EGRESSD_PID=$!
wait_for 10 has_start_line || die "egressd did not start: $(cat "$T/egressd.err")"
wait_for 5 api_healthy || die "API not up"

flood=$(flood "$FLOOD")
egit_log "flood: $flood"
nx=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["nxdomain"])' "$flood")
if [ "$nx" -ge $((FLOOD * 9 / 10)) ]; then
	pass "the flood was answered ($nx of $FLOOD NXDOMAIN) with the log reader stalled"
else
	fail "the flood is answered with the log reader stalled" "$flood"
fi
# The DNS lines (folded) are all in the buffer once the flood's second is
# over; then the datagrams fill it.
sleep 2.5
denied=$(metric 'egressd_dns_queries_total{result="denied"}')
p0=$(pkt_viol)
scan "$PORTS"
egit_log "$PORTS datagrams sent"

# With the reader still stalled: DNS and the API answer in normal time.
slow=0
for i in 1 2 3 4 5; do
	q @"$DNS4" api.github.com A
	if [ "$Q_STATUS $Q_ANSWER" != "NOERROR $WEB4" ] || [ "$Q_MS" -gt 1000 ]; then
		slow=$((slow + 1))
		egit_log "allowed query $i: $Q_STATUS $Q_ANSWER in $Q_MS ms"
	fi
done
assert_eq "allowed names answered within 1 s each while the log is stalled" 0 "$slow"
api GET /healthz
assert_eq "/healthz answers 200 while the log is stalled" 200 "$API_CODE"
dropped=$(metric egressd_log_dropped_total)
p1=$(pkt_viol)
egit_log "dropped=$dropped denied=$denied datagrams reported=$((p1 - p0))"
if [ -n "$dropped" ] && [ "$dropped" -gt 0 ]; then
	pass "egressd_log_dropped_total counts dropped lines ($dropped)"
else
	fail "egressd_log_dropped_total > 0 after the flood" "'$dropped'"
fi

# The reader reads again: the buffer drains and says what it dropped.
touch "$T/resume"
wait_json_line "a log_dropped line once the reader reads again" \
	"$T/egressd.out" event=log_dropped level=warn dropped=*
# A query now writes a line again (after the log_dropped line).
q @"$DNS4" after.flood.example A
wait_json_line "lines are written again after the stall" "$T/egressd.out" \
	event=violation qname~=after.flood.example
assert_all_json "the stream holds whole JSON lines only" "$T/egressd.out"
res=$("$PY" - "$T/egressd.out" "$ARB4" <<'EOF_PY'
import json, sys
pkt = dns = drop = nlines = 0
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o["event"] == "log_dropped":
        nlines += 1
        drop += o["dropped"]
    elif o["event"] in ("violation", "violation_summary") \
            and ".flood.example" in o.get("qname", "") \
            and not o["qname"].startswith("after."):
        dns += o["count"]
    elif o["event"] == "violation" and o.get("dst") == sys.argv[2]:
        pkt += o["count"]
print(nlines, drop, dns, pkt)
EOF_PY
)
read -r nlines ldrop dns pkt <<<"$res"
assert_eq "one log_dropped line for the stall" 1 "$nlines"
assert_eq "its count equals egressd_log_dropped_total" "$dropped" "$ldrop"
assert_eq "the DNS lines' counts add up to the denied queries" "$denied" "$dns"
assert_eq "no line lost silently: datagrams in lines + dropped = datagrams reported" \
	"$((p1 - p0))" "$((pkt + ldrop))"
assert_eq "egressd_log_dropped_total did not move since" "$dropped" \
	"$(metric egressd_log_dropped_total)"

stop_egressd
assert_eq "egressd exits 0 on SIGTERM" 0 "$EGRESSD_RC"
wait_json_line "stop line written" "$T/egressd.out" event=stop

# A reader that never reads: the stop is not held up by it.
mkfifo "$T/out2.fifo" || die "mkfifo"
sleep 1000 <"$T/out2.fifo" &
EGIT_PIDS+=("$!")
nsenter --net="/run/netns/$SB" -- env --default-signal=INT,QUIT sh -c \
	'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
	sh "$CG/agent" "$EGRESSD" --rules "$POLICY" --mode dns+nft --bpf off \
	>"$T/out2.fifo" 2>"$T/egressd2.err" &
EGRESSD_PID=$!
wait_for 10 api_healthy || die "second egressd: API not up"
flood=$(flood 1000)
egit_log "second flood: $flood"
scan 5000
stop_egressd
assert_eq "stalled reader: egressd exits 0 on SIGTERM" 0 "$EGRESSD_RC"
if [ "$EGRESSD_STOP_MS" -lt 2000 ]; then
	pass "stalled reader: the stop took $EGRESSD_STOP_MS ms"
else
	fail "stalled reader: the stop takes under 2 s" "$EGRESSD_STOP_MS ms"
fi
egit_finish
