#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Does this kernel let table netdev egressd (docs/nftables.md) judge the
# frames a packet socket writes? Builds two namespaces joined by a veth,
# installs the same rules egressd does (routed and not ICMPv6: accept; a
# process's NS/NA off the link scope: drop; routed: accept; a process's
# socket without a route: drop; ARP: accept; the rest: drop) on the
# sender's veth, then sends routed UDP datagrams over IPv4 and IPv6
# (after flushing the neighbour cache, so the kernel's ARP and ND go
# through the chain too), a raw socket's NS to the peer's global address,
# and AF_PACKET frames: plain, with PACKET_QDISC_BYPASS, and with a
# forged sll_protocol. Prints one line per check and "netdev: N passed, M
# failed"; exit 0 when all pass. Root only. Under another kernel:
#   vmtests/vmrun.sh KERNEL /bin/bash vmtests/probes/netdev_egress.sh
set -u
PY=/usr/bin/python3
A=ndp-a-$$ B=ndp-b-$$
pass=0 failed=0

check() {
	if [ "$2" = yes ]; then
		echo "PASS: $1"
		pass=$((pass + 1))
	else
		echo "FAIL: $1${3:+ ($3)}"
		failed=$((failed + 1))
	fi
}

cleanup() {
	ip netns del "$A" 2>/dev/null
	ip netns del "$B" 2>/dev/null
}
trap cleanup EXIT

ip netns add "$A" && ip netns add "$B" &&
	ip link add a0 netns "$A" type veth peer name b0 netns "$B" &&
	ip -n "$A" addr add 10.200.250.1/24 dev a0 &&
	ip -n "$A" addr add fd00:200:250::1/64 dev a0 nodad &&
	ip -n "$B" addr add fd00:200:250::2/64 dev b0 nodad &&
	ip -n "$A" link set a0 up && ip -n "$A" link set lo up &&
	ip -n "$B" addr add 10.200.250.2/24 dev b0 &&
	ip -n "$B" link set b0 up || { echo "FAIL: topology"; exit 1; }
echo "kernel: $(uname -r)"

BMAC=$(ip -n "$B" -j link show b0 | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
LOG=$(mktemp)
ip netns exec "$B" $PY -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", 7000))
s.settimeout(60)  # killed at the end; TCG guests are slow
print("ready", flush=True)
try:
    while True:
        print(s.recv(100).decode(), flush=True)
except OSError:
    pass' >"$LOG" 2>&1 &
LPID=$!
for _ in $(seq 50); do grep -q ready "$LOG" && break; sleep 0.1; done

# send_frames PREFIX: the AF_PACKET frames, payloads PREFIX<kind>.
send_frames() {
ip netns exec "$A" $PY - "$BMAC" "$1" <<'PY'
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
for tag, bypass, proto in (("plain", 0, 0x0800), ("bypass", 1, 0x0800),
                           ("forged", 1, 0x0806), ("forged-nobypass", 0, 0x0806)):
    data = (sys.argv[2] + tag).encode()
    udp = struct.pack("!HHHH", 40001, 7000, 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton("10.200.250.1"), socket.inet_aton("10.200.250.2"))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(263, 20, bypass)  # PACKET_QDISC_BYPASS
    s.bind(("a0", 0))
    frame = bytes.fromhex(sys.argv[1].replace(":", "")) + s.getsockname()[4] + b"\x08\x00" + ip + udp
    try:
        s.sendto(frame, ("a0", proto))
    except OSError:
        pass
PY
}

# Control: without the chain, every frame arrives.
send_frames control-
sleep 0.3
for k in plain bypass forged; do
	case $(cat "$LOG") in
	*control-$k*) check "without the chain the $k frame arrives" yes ;;
	*) check "without the chain the $k frame arrives" no ;;
	esac
done

if ! ip netns exec "$A" nft -f - <<'EOF'
table netdev egressd {
	chain frames_a0 {
		type filter hook egress device "a0" priority 0; policy accept;
		meta l4proto != ipv6-icmp meta rtclassid >= 0 counter accept comment "routed"
		meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit meta skuid >= 0 ip6 daddr != fe80::/10 ip6 daddr != ff02::/16 counter drop comment "process NS"
		meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert meta skuid >= 0 ip6 daddr != fe80::/10 ip6 daddr != ff02::/16 counter drop comment "process NA"
		meta rtclassid >= 0 counter accept comment "routed ICMPv6"
		meta skuid >= 0 counter drop comment "packet socket"
		ether type arp counter accept comment "kernel ARP"
		counter drop comment "rest"
	}
}
EOF
then
	check "netdev egress chain with meta rtclassid/skuid loads" no
	kill "$LPID" 2>/dev/null
	echo "netdev: $pass passed, $failed failed"
	exit 1
fi
check "netdev egress chain with meta rtclassid/skuid loads" yes

ip -n "$A" neigh flush dev a0
ip netns exec "$A" $PY -c '
import socket, struct
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"routed", ("10.200.250.2", 7000))
socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"routed6", ("fd00:200:250::2", 7000))
# a raw socket NS to the global address, cargo in the option
r = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
r.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
try:
    r.sendto(struct.pack("!BBH4x", 135, 0, 0) + socket.inet_pton(socket.AF_INET6, "fd00:200:250::2") + bytes.fromhex("010102deadbeef01"), ("fd00:200:250::2", 0))
except OSError:
    pass  # the drop reports ENOBUFS'
send_frames ""
sleep 0.5
got=$(cat "$LOG")
kill "$LPID" 2>/dev/null
wait "$LPID" 2>/dev/null
rm -f "$LOG"
counters=$(ip netns exec "$A" nft list chain netdev egressd frames_a0 |
	awk '/counter packets/ { for (i = 1; i <= NF; i++) if ($i == "packets") printf "%s ", $(i + 1) }')
echo "counters (rule order): $counters"
echo "received: $(tr '\n' ' ' <<<"$got")"
set -- $counters
got=$(grep -v '^control-' <<<"$got")
has() { grep -qx -- "$1" <<<"$got" && echo yes || echo no; }
hasnt() { grep -qx -- "$1" <<<"$got" && echo no || echo yes; }
check "routed datagram arrives" "$(has routed)"
check "routed IPv6 datagram arrives (the kernel's ND passes)" "$(has routed6)"
check "kernel ARP accepted by the ARP rule" "$([ "${6:-0}" -ge 1 ] && echo yes || echo no)" "counters $counters"
check "a raw socket's NS to a global address dropped" "$([ "${2:-0}" -ge 1 ] && echo yes || echo no)" "counters $counters"
check "plain packet-socket frame dropped" "$(hasnt "plain")"
check "PACKET_QDISC_BYPASS frame dropped (seen by the egress hook)" "$(hasnt "bypass")"
check "forged sll_protocol + bypass frame dropped" "$(hasnt "forged")"
check "forged sll_protocol frame dropped" "$(hasnt "forged-nobypass")"
check "packet-socket drops counted by the skuid rule" "$([ "${5:-0}" -ge 4 ] && echo yes || echo no)" "counters $counters"
echo "netdev: $pass passed, $failed failed"
[ "$failed" = 0 ]
