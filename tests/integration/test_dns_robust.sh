#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Hostile and odd clients do not stop egressd or leak denied names:
# malformed UDP packets, a compression loop, responses sent as queries, a
# TCP client that stalls mid-message, and an oversized length prefix. Reply
# shape for a denied name: id, RD and the question echoed, OPT record only
# when the query had one.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_dnslib
start_upstream
start_egressd --rules "$POLICY"

q @"$DNS4" evil.example.com A
assert_contains "NXDOMAIN echoes RD" "$Q_OUT" "flags: qr rd"
assert_contains "NXDOMAIN carries OPT when the query had EDNS" "$Q_OUT" "; EDNS: version: 0"
q +noedns @"$DNS4" evil.example.com A
assert_not_contains "NXDOMAIN without OPT when the query had none" "$Q_OUT" "EDNS:"
q +nord @"$DNS4" evil.example.com A
assert_not_contains "NXDOMAIN without RD when the query had none" "$Q_OUT" " rd"

# Garbage over UDP and TCP; a stalled TCP client stays connected meanwhile.
out=$(run_workload "$PY" - "$DNS4" 2>&1 <<'PY'
import os, socket, struct, sys, time
from dnslib import DNSRecord
srv = (sys.argv[1], 53)
def hdr(id, flags, qd, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", id, flags, qd, an, ns, ar)
q = DNSRecord.question("evil.example.com").pack()
bad = [
    b"", b"\x00", hdr(1, 0x0100, 1)[:11],               # short
    hdr(2, 0x0100, 1),                                   # question missing
    hdr(3, 0x0100, 1) + b"\xc0\x0c\x00\x01\x00\x01",     # pointer loop
    hdr(4, 0x0100, 1) + b"\x3fabc",                      # label past end
    hdr(5, 0x0100, 0),                                   # no question
    hdr(6, 0x0100, 2) + q[12:] + q[12:],                 # two questions
    bytes([q[0], q[1], q[2] | 0x80]) + q[3:],            # a response
    q[:12] + b"\x40" + q[13:],                           # bad label type
    hdr(7, 0x0100, 1, ar=1) + q[12:] + b"\x00\x00\x29",  # cut OPT
    os.urandom(300), os.urandom(12), b"\xff" * 512,
]
stall = socket.create_connection(srv, timeout=3)
stall.sendall(b"\x00")                                   # half a length
big = socket.create_connection(srv, timeout=3)
big.sendall(b"\xff\xff" + b"\x00" * 100)                 # 64 KiB promised
for p in bad:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(p, srv)
    s.close()
    t = socket.create_connection(srv, timeout=3)
    try:
        t.sendall(struct.pack("!H", len(p)) + p)
    except OSError:
        pass
    t.close()
time.sleep(0.3)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(DNSRecord.question("api.github.com").pack(), srv)
print("after garbage:", DNSRecord.parse(u.recv(4096)).short())
PY
)
assert_eq "answers after garbage, with a stalled TCP client connected" \
	"after garbage: $WEB4" "$(tail -n 1 <<<"$out")"
q +tcp @"$DNS4" api.github.com A
assert_eq "TCP still served" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
if kill -0 "$EGRESSD_PID" 2>/dev/null; then pass "egressd still running"; else fail "egressd still running"; fi
assert_not_forwarded "denied name never forwarded" evil.example.com
if grep -q ' - -$' "$T/fakedns-up.log"; then
	fail "no malformed packet forwarded upstream" "$(grep -c ' - -$' "$T/fakedns-up.log") reached it"
else
	pass "no malformed packet forwarded upstream"
fi
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
