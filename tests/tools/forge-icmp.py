#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Forge ICMP "port unreachable" errors for egressd's upstream socket.

Plays a root workload with CAP_NET_RAW (docs/security.md, class 2): finds
egressd's UDP socket connected to UPSTREAM:53 in /proc/net/udp (or udp6)
and, for SECONDS, sends it ICMP destination-unreachable/port-unreachable
errors (ICMPv6 type 1 code 4 for an IPv6 upstream) quoting a datagram from
that socket to UPSTREAM:53, through a raw socket to egressd's own address
(so from an address of this namespace, through lo). Meanwhile it asks
SERVER (the resolver address the workload uses) for NAME, one query after
the other.

  forge-icmp.py [--spoof TO] UPSTREAM SERVER NAME SECONDS

--spoof TO writes the whole IP header instead (IP_HDRINCL for IPv4, an
IPPROTO_RAW socket for IPv6) with UPSTREAM as the outer SOURCE, so that
the error seems to come from the upstream itself (docs/security.md, class
2b), sent to TO: "lo" (127.0.0.1 or ::1) or "self" (egressd's own
address, which the kernel routes through lo too).

Prints one JSON object: {"socket": "ADDR:PORT", "to": "ADDR", "spoofed":
bool, "sent": N, "send_errors": N, "send_error": "first errno name",
"answers": {"NOERROR 10.200.1.80": n, "SERVFAIL": n, "TIMEOUT": n}}.
"""
import errno
import json
import random
import socket
import struct
import sys
import threading
import time

from forgelib import parse_answer, proc_udp_socket, query


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def icmp4(me, port, up):
    """Port unreachable quoting me:port -> up:53 (UDP)."""
    udp = struct.pack("!HHHH", port, 53, 8 + 30, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 30, 0, 0, 64, 17, 0,
                     socket.inet_aton(me), socket.inet_aton(up))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    body = struct.pack("!BBHI", 3, 3, 0, 0) + ip + udp
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]


def icmp6(me, port, up):
    """ICMPv6 port unreachable quoting me:port -> up:53 (the kernel fills
    in the checksum of a raw ICMPv6 socket)."""
    udp = struct.pack("!HHHH", port, 53, 8 + 30, 0)
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, 8 + 30, 17, 64,
                      socket.inet_pton(socket.AF_INET6, me),
                      socket.inet_pton(socket.AF_INET6, up))
    return struct.pack("!BBHI", 1, 4, 0, 0) + ip6 + udp


def ip4(src, dst, body):
    """IPv4 header (the kernel fills in length and checksum) + body."""
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64,
                       socket.IPPROTO_ICMP, 0, socket.inet_aton(src),
                       socket.inet_aton(dst)) + body


def ip6(src, dst, icmp):
    """IPv6 header + ICMPv6 with its checksum: on an IPPROTO_RAW socket
    the kernel fills in nothing."""
    s6 = socket.inet_pton(socket.AF_INET6, src)
    d6 = socket.inet_pton(socket.AF_INET6, dst)
    pseudo = s6 + d6 + struct.pack("!I3xB", len(icmp), socket.IPPROTO_ICMPV6)
    icmp = icmp[:2] + struct.pack("!H", csum(pseudo + icmp)) + icmp[4:]
    return struct.pack("!IHBB16s16s", 6 << 28, len(icmp),
                       socket.IPPROTO_ICMPV6, 64, s6, d6) + icmp


def result(m):
    rcode, addrs = parse_answer(m)
    names = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}
    return " ".join([names.get(rcode, "RCODE%d" % rcode)] + sorted(addrs))


def main():
    args = sys.argv[1:]
    spoof = None
    if args[:1] == ["--spoof"]:
        spoof, args = args[1], args[2:]
        if spoof not in ("lo", "self"):
            sys.exit("--spoof: lo or self, not %r" % spoof)
    up, server, name, secs = args[0], args[1], args[2], float(args[3])
    me, port = proc_udp_socket(up)
    v6 = ":" in up
    to = me
    if spoof == "lo":
        to = "::1" if v6 else "127.0.0.1"
    if v6 and spoof:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW,
                            socket.IPPROTO_RAW)
        pkt = ip6(up, to, icmp6(me, port, up))
    elif v6:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW,
                            socket.IPPROTO_ICMPV6)
        pkt = icmp6(me, port, up)
    elif spoof:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                            socket.IPPROTO_ICMP)
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        pkt = ip4(up, to, icmp4(me, port, up))
    else:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                            socket.IPPROTO_ICMP)
        pkt = icmp4(me, port, up)
    dst = (to, 0, 0, 0) if v6 else (to, 0)
    st = {"sent": 0, "send_errors": 0, "send_error": None}
    stop = time.monotonic() + secs

    def spray():
        while time.monotonic() < stop:
            try:
                raw.sendto(pkt, dst)
                st["sent"] += 1
            except OSError as e:
                st["send_errors"] += 1
                if not st["send_error"]:
                    st["send_error"] = errno.errorcode.get(e.errno, str(e))
            time.sleep(0.005)

    t = threading.Thread(target=spray)
    t.start()
    c = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET,
                      socket.SOCK_DGRAM)
    c.connect((server, 53))
    answers = {}
    while time.monotonic() < stop:
        qid = random.randrange(65536)
        c.send(query(qid, name))
        deadline = time.monotonic() + 2
        r = "TIMEOUT"
        while time.monotonic() < deadline:
            c.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                m = c.recv(4096)
            except OSError:
                break
            if len(m) >= 12 and struct.unpack("!H", m[:2])[0] == qid:
                r = result(m)
                break
        answers[r] = answers.get(r, 0) + 1
        time.sleep(0.01)
    t.join()
    print(json.dumps({"socket": "%s:%d" % (me, port), "to": to,
                      "spoofed": bool(spoof), "sent": st["sent"],
                      "send_errors": st["send_errors"],
                      "send_error": st["send_error"], "answers": answers}))


if __name__ == "__main__":
    main()
