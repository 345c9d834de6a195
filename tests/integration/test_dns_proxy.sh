#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Proxy mechanics: large answers (EDNS0 buffer passed through; a UDP client
# without EDNS gets TC=1 and its TCP retry gets everything), pipelined TCP
# queries answered each with its own id, and concurrent clients using the
# same query id never get each other's answers.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_dnslib
start_upstream --big big.pypi.org=30 --big huge.pypi.org=60
start_egressd --rules "$POLICY"

# 30 TXT records of 100 bytes: ~3.4 kB, over 1232 and 512, under 4096.
q +ignore +noedns @"$DNS4" big.pypi.org TXT
assert_contains "no EDNS: big answer truncated (TC=1)" "$Q_OUT" " tc"
q +ignore +bufsize=4096 @"$DNS4" big.pypi.org TXT
assert_eq "EDNS 4096: big answer complete over UDP" "NOERROR 30" "$Q_STATUS $(wc -w <<<"$Q_ANSWER")"
assert_not_contains "EDNS 4096: not truncated" "$Q_OUT" " tc"
q +noedns @"$DNS4" big.pypi.org TXT
assert_eq "dig retries over TCP after TC and gets all 30" "NOERROR 30" "$Q_STATUS $(wc -w <<<"$Q_ANSWER")"
q +tcp @"$DNS4" huge.pypi.org TXT
assert_eq "TCP client: 60 records (~6.8 kB) complete" "NOERROR 60" "$Q_STATUS $(wc -w <<<"$Q_ANSWER")"
q +tcp +bufsize=4096 @"$DNS4" huge.pypi.org TXT
assert_eq "TCP client with EDNS: complete" "NOERROR 60" "$Q_STATUS $(wc -w <<<"$Q_ANSWER")"

# Pipelined TCP: 6 queries in one write, answers matched by id.
out=$(run_workload "$PY" - "$DNS4" 2>&1 <<'PY'
import socket, struct, sys
from dnslib import DNSRecord, QTYPE, RCODE
names = [("api.github.com", "A"), ("evil.example.com", "A"),
         ("files.pypi.org", "A"), ("exfil.attacker.net", "AAAA"),
         ("big.pypi.org", "TXT"), ("api.github.com", "AAAA")]
buf, want = b"", {}
for i, (n, t) in enumerate(names):
    q = DNSRecord.question(n, t)
    q.header.id = 1000 + i
    want[1000 + i] = (n, t)
    p = q.pack()
    buf += struct.pack("!H", len(p)) + p
s = socket.create_connection((sys.argv[1], 53), timeout=5)
s.sendall(buf)
data, got = b"", {}
while len(got) < len(names):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
    while len(data) >= 2 and len(data) >= 2 + struct.unpack("!H", data[:2])[0]:
        n = struct.unpack("!H", data[:2])[0]
        r = DNSRecord.parse(data[2:2 + n])
        data = data[2 + n:]
        got[r.header.id] = r
for i in sorted(want):
    r = got.get(i)
    if r is None:
        print(i, "missing")
        continue
    qn = str(r.q.qname).rstrip(".")
    print(i, qn, QTYPE[r.q.qtype], RCODE[r.header.rcode], len(r.rr))
PY
)
expect="1000 api.github.com A NOERROR 1
1001 evil.example.com A NXDOMAIN 0
1002 files.pypi.org A NOERROR 1
1003 exfil.attacker.net AAAA NXDOMAIN 0
1004 big.pypi.org TXT NOERROR 30
1005 api.github.com AAAA NOERROR 1"
assert_eq "pipelined TCP: 6 queries in one write, 6 right answers" "$expect" "$out"

# Concurrent clients, same id, different names: 20 UDP sockets, id 4242.
out=$(run_workload "$PY" - "$DNS4" 2>&1 <<'PY'
import socket, sys, select
from dnslib import DNSRecord
names = ["api.github.com", "files.pypi.org", "a.b.pypi.org"] * 7
socks = []
for n in names[:20]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    q = DNSRecord.question(n)
    q.header.id = 4242
    s.sendto(q.pack(), (sys.argv[1], 53))
    socks.append((s, n))
bad = ok = 0
for s, n in socks:
    s.settimeout(3)
    try:
        r = DNSRecord.parse(s.recv(4096))
    except socket.timeout:
        bad += 1
        print("timeout for", n)
        continue
    if r.header.id != 4242 or str(r.q.qname).rstrip(".") != n:
        bad += 1
        print("wrong answer for", n, r.header.id, r.q.qname)
    else:
        ok += 1
print("ok", ok, "bad", bad)
PY
)
assert_eq "20 concurrent clients with one id: each gets its own answer" "ok 20 bad 0" "$(tail -n 1 <<<"$out")"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
