# SPDX-License-Identifier: GPL-2.0-only
"""What the forging tools (forge-dns.py, forge-icmp.py) share: finding
egressd's upstream socket as a workload would, and DNS messages in wire
form. Imported from the tools' own directory."""
import ipaddress
import socket
import struct
import sys


def proc_udp_socket(up):
    """(local address, port) of the UDP socket connected to UP:53, read
    off /proc/net/udp or /proc/net/udp6 as any process can."""
    a = ipaddress.ip_address(up)
    raw = a.packed
    if a.version == 4:
        path, want = "/proc/net/udp", raw[::-1].hex().upper()
    else:
        # Four host-order (little-endian) 32-bit words.
        path = "/proc/net/udp6"
        want = "".join(raw[i:i + 4][::-1].hex() for i in range(0, 16, 4)).upper()
    for line in open(path).read().splitlines()[1:]:
        f = line.split()
        if f[2] == want + ":0035":
            ip, port = f[1].split(":")
            b = bytes.fromhex(ip)
            if a.version == 4:
                me = socket.inet_ntop(socket.AF_INET, b[::-1])
            else:
                me = socket.inet_ntop(socket.AF_INET6, b"".join(
                    b[i:i + 4][::-1] for i in range(0, 16, 4)))
            return me, int(port, 16)
    sys.exit("no socket connected to %s:53 in %s" % (up, path))


def qname_wire(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def query(qid, name):
    """An A query for NAME with id QID, RD set."""
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + \
        qname_wire(name) + struct.pack("!HH", 1, 1)


def parse_answer(m):
    """(rcode, [IPv4 addresses of its A records]) of a DNS answer."""
    rcode = m[3] & 15
    an = struct.unpack("!H", m[6:8])[0]
    off = 12
    while m[off]:
        off += m[off] + 1
    off += 5
    addrs = []
    for _ in range(an):
        if m[off] & 0xc0:
            off += 2
        else:
            while m[off]:
                off += m[off] + 1
            off += 1
        typ, _, _, rdlen = struct.unpack("!HHIH", m[off:off + 10])
        if typ == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(m[off + 10:off + 14]))
        off += 10 + rdlen
    return rcode, addrs
