#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
#
# Does this kernel report each socket's cgroup v2 id over sock_diag
# (INET_DIAG_CGROUP_ID, what egressd reads to tell whose socket is whose)?
# Moves itself into a fresh child cgroup, opens a TCP listener, a TCP
# connection and a UDP socket there, dumps TCP and UDP sockets (IPv4 and
# IPv6) through NETLINK_SOCK_DIAG and checks that each of its sockets
# comes back with the child cgroup's id (the inode of its directory).
# Prints one line per socket and "sockdiag: N passed, M failed"; exit 0
# when all pass. Root only (cgroup moves). Run it under another kernel
# with: vmtests/vmrun.sh KERNEL /usr/bin/python3 vmtests/probes/sockdiag_cgroup.py
import os
import socket
import struct
import sys

SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_CGROUP_ID = 21
ALL_STATES = 0xFFFFFFFF
NETLINK_SOCK_DIAG = 4  # not in every Python's socket module


def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return mnt
    sys.exit("sockdiag: no cgroup2 mount")


def self_cgroup(mnt):
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return mnt + line[3:].strip().rstrip("/")
    sys.exit("sockdiag: not in a cgroup v2")


def move_self(cg):
    with open(cg + "/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))


def dump(family, proto):
    """{inode: cgroup id or None} of every socket of (family, proto)."""
    req = struct.pack("=BBBBI", family, proto, 0, 0, ALL_STATES)
    req += b"\0" * 48  # struct inet_diag_sockid: any
    hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY,
                      NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                       NETLINK_SOCK_DIAG)
    nl.sendto(hdr + req, (0, 0))
    out = {}
    while True:
        buf = nl.recv(65536)
        off = 0
        while off + 16 <= len(buf):
            ln, typ = struct.unpack_from("=IH", buf, off)
            if typ == NLMSG_DONE:
                nl.close()
                return out
            if typ == NLMSG_ERROR:
                err = struct.unpack_from("=i", buf, off + 16)[0]
                nl.close()
                raise OSError(-err, os.strerror(-err))
            msg = off + 16
            inode = struct.unpack_from("=I", buf, msg + 68)[0]
            cgid = None
            a = msg + 72
            while a + 4 <= off + ln:
                alen, atype = struct.unpack_from("=HH", buf, a)
                if alen < 4:
                    break
                if atype == INET_DIAG_CGROUP_ID:
                    cgid = struct.unpack_from("=Q", buf, a + 4)[0]
                a += (alen + 3) & ~3
            out[inode] = cgid
            off += (ln + 3) & ~3


def main():
    mnt = cgroup2_mount()
    orig = self_cgroup(mnt)
    child = "%s/sockdiag-probe.%d" % (mnt, os.getpid())
    os.mkdir(child)
    want = os.stat(child).st_ino
    socks = []
    try:
        move_self(child)
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cli.connect(lst.getsockname())
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        udp6.bind(("::1", 0))
        socks = [("tcp listen", lst, socket.AF_INET, socket.IPPROTO_TCP),
                 ("tcp connected", cli, socket.AF_INET, socket.IPPROTO_TCP),
                 ("udp", udp, socket.AF_INET, socket.IPPROTO_UDP),
                 ("udp6", udp6, socket.AF_INET6, socket.IPPROTO_UDP)]
        move_self(orig)
        print("sockdiag: kernel %s, child cgroup id %d" %
              (os.uname().release, want))
        passed = failed = 0
        for name, s, fam, proto in socks:
            ino = os.fstat(s.fileno()).st_ino
            got = dump(fam, proto).get(ino, "missing")
            ok = got == want
            print("%s:%s: inode %d cgroup id %s" %
                  ("PASS" if ok else "FAIL", name, ino, got))
            passed += ok
            failed += not ok
        print("sockdiag: %d passed, %d failed" % (passed, failed))
        return 1 if failed else 0
    finally:
        for _, s, _, _ in socks:
            s.close()
        try:
            move_self(orig)
        except OSError:
            pass
        os.rmdir(child)


if __name__ == "__main__":
    sys.exit(main())
