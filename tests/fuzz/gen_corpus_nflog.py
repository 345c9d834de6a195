#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
#
# Write the seed corpus of fuzz_nflog (tests/fuzz/corpus_nflog/): NFULNL
# packet messages as the kernel sends them for the drop rules of table
# inet egressd (prefix "egressd:<reason>", NFULA_PAYLOAD holding the IP
# header), alone and batched, plus near misses. Each file is one input:
# fuzz_nflog reads it as a recv() buffer and its tail (after byte 0) as a
# payload. Run from the repository root; the files are committed.
import os
import struct

OUT = "tests/fuzz/corpus_nflog"
NFULA_PACKET_HDR, NFULA_MARK, NFULA_PAYLOAD, NFULA_PREFIX = 1, 2, 9, 10
MSG_PACKET = (4 << 8) | 0  # NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET


def attr(t, data):
    n = 4 + len(data)
    pad = (4 - n % 4) % 4
    return struct.pack("=HH", n, t) + data + b"\0" * pad


def msg(prefix, payload, family=2, extra=b"", mtype=MSG_PACKET):
    body = struct.pack("=BBH", family, 0, struct.unpack("=H", struct.pack(">H", 1))[0])
    body += attr(NFULA_PACKET_HDR, struct.pack(">HBB", 0x0800, 3, 0))
    body += extra
    if prefix is not None:
        body += attr(NFULA_PREFIX, prefix.encode() + b"\0")
    if payload is not None:
        body += attr(NFULA_PAYLOAD, payload)
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body


def ipv4(proto, sport, dport, frag=0, ihl=5):
    h = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, 60, 1, frag, 64, proto, 0,
                    bytes([10, 200, 0, 2]), bytes([10, 200, 1, 9]))
    h += b"\1" * ((ihl - 5) * 4)
    return h + struct.pack(">HH", sport, dport) + b"\0" * 16


def ipv6(nh, exts, tail):
    src = bytes.fromhex("fd000200000000000000000000000002")
    dst = bytes.fromhex("fd000200000100000000000000000009")
    return struct.pack(">IHBB", 0x60000000, 40, nh, 64) + src + dst + exts + tail


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


tcp443 = ipv4(6, 40000, 443)
write("v4_tcp_deny_rule", msg("egressd:deny_rule", tcp443))
write("v4_udp_default_deny", msg("egressd:default_deny", ipv4(17, 5353, 53)))
write("v4_icmp_dot", msg("egressd:dot", ipv4(1, 0x0800, 0)))
write("v4_options_doh", msg("egressd:doh", ipv4(6, 1234, 443, ihl=7)))
write("v4_later_fragment", msg("egressd:deny_rule", ipv4(17, 1, 2, frag=0x00b9)))
write("v4_short_ihl", msg("egressd:deny_rule", ipv4(6, 1, 2, ihl=4)))
write("v4_truncated", msg("egressd:deny_rule", tcp443[:19]))
write("v6_tcp_ipv6_disabled",
      msg("egressd:ipv6_disabled", ipv6(6, b"", struct.pack(">HH", 40001, 443)), family=10))
# hop-by-hop, routing, fragment (first), destination options, then UDP
exts = (bytes([43, 0]) + b"\0" * 6 + bytes([44, 0]) + b"\0" * 6 +
        bytes([60, 0, 0, 0, 0, 0, 0, 1]) + bytes([17, 0]) + b"\0" * 6)
write("v6_ext_chain_udp", msg("egressd:deny_rule", ipv6(0, exts, struct.pack(">HH", 9, 53)), family=10))
write("v6_ah_tcp", msg("egressd:deny_rule", ipv6(51, bytes([6, 1]) + b"\0" * 10,
                                                  struct.pack(">HH", 7, 80)), family=10))
write("v6_later_fragment", msg("egressd:deny_rule",
                               ipv6(44, bytes([6, 0, 0, 0x08, 0, 0, 0, 1]),
                                    struct.pack(">HH", 7, 80)), family=10))
write("v6_ext_runs_off", msg("egressd:deny_rule", ipv6(0, bytes([0, 200]), b""), family=10))
write("foreign_prefix", msg("other:deny_rule", tcp443))
write("unknown_reason", msg("egressd:nope", tcp443))
write("prefix_not_nul_terminated",
      msg(None, tcp443, extra=attr(NFULA_PREFIX, b"egressd:dot")))
write("no_payload", msg("egressd:deny_rule", None))
write("not_a_packet", msg("egressd:deny_rule", tcp443, mtype=(4 << 8) | 1))
write("unknown_attr_type", msg("egressd:deny_rule", tcp443,
                               extra=attr(99, b"\xff" * 8) + attr(NFULA_MARK, b"\0\0\0\7")))
batch = (msg("egressd:deny_rule", tcp443) + msg("egressd:doh", ipv4(6, 2, 443)) +
         msg("other:x", tcp443) + msg("egressd:default_deny", ipv4(17, 3, 53))[:30])
write("batch_three_and_cut", batch)
write("nlmsg_len_past_end", struct.pack("=IHHII", 4096, MSG_PACKET, 0, 0, 0) + b"\0" * 8)
