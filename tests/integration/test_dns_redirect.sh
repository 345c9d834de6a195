#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Every port-53 query leaving the sandbox is answered by egressd, whatever
# address the workload sends it to: the "official" resolver and an
# arbitrary address where no DNS server exists, over UDP and TCP, IPv4 and
# IPv6. A denied name sent to the arbitrary address is answered NXDOMAIN
# (by egressd) rather than timing out.
#
# Run twice: with the BPF redirect (sock_addr programs; the default when
# BPF loads) and with --bpf off (the nftables nat redirect). Both must also
# hide the redirect from the workload: the answer to an unconnected
# sendto() comes from the address the query went to (resolvers such as
# musl's drop answers from anywhere else), getpeername() of a TCP
# connection shows that address, and a dual-stack socket's IPv4-mapped
# query works. A raw-socket query, which no socket hook sees, never
# reaches the upstream. The BPF redirect leaves no nat chain (no conntrack).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_dnslib
start_upstream

for variant in bpf nft; do
	if [ "$variant" = bpf ]; then
		start_egressd --rules "$POLICY"
		if ! grep -q '"redirect":"bpf"' "$T/egressd.out"; then
			egit_log "SKIP bpf variant: the BPF redirect is not available here ($(grep -o '"bpf":{[^}]*}' "$T/egressd.out"))"
			stop_egressd
			continue
		fi
	else
		start_egressd --rules "$POLICY" --bpf off
		assert_contains "nft: start line says the redirect is nat" \
			"$(grep '"event":"start"' "$T/egressd.out")" '"redirect":"nft"'
	fi
	table=$(nsenter --net="/run/netns/$SB" -- nft list table inet egressd 2>&1)
	if [ "$variant" = bpf ]; then
		assert_not_contains "bpf: no nat chain in the table" "$table" "type nat"
		assert_not_contains "bpf: no conntrack expression in the table" "$table" " ct "
	else
		assert_contains "nft: the nat chain redirects" "$table" "redirect to :15353"
	fi

	for proto in udp tcp; do
		opt=+notcp
		[ "$proto" = tcp ] && opt=+tcp
		for server in "$DNS4" "$ARB4" 10.200.77.77; do
			q "$opt" @"$server" api.github.com A
			assert_eq "$variant: $proto to $server:53: allowed name answered" \
				"NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
		done
		for server in "$DNS6" "$ARB6" fd00:200:77::77; do
			q "$opt" @"$server" api.github.com AAAA
			assert_eq "$variant: $proto to [$server]:53: allowed name answered" \
				"NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
		done
		q "$opt" @"$ARB4" evil.example.com A
		assert_eq "$variant: $proto to $ARB4:53: denied name gets NXDOMAIN" NXDOMAIN "$Q_STATUS"
		q "$opt" @"$ARB6" exfil.attacker.net A
		assert_eq "$variant: $proto to [$ARB6]:53: denied name gets NXDOMAIN" NXDOMAIN "$Q_STATUS"
	done

	# Loopback resolvers are redirected as well (a stub resolver on 127.0.0.53).
	q @127.0.0.53 api.github.com A
	assert_eq "$variant: udp to 127.0.0.53:53 answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"

	assert_file_not_contains_i "$variant: denied names never reached the upstream" "$T/fakedns-up.log" evil.example.com
	assert_file_not_contains_i "$variant: denied names never reached the upstream (v6)" "$T/fakedns-up.log" exfil.attacker.net

	out=$(run_workload "$PY" - "$ARB4" "$ARB6" "$variant" "$DNS4" 2>&1 <<'PY'
import socket, struct, sys
from dnslib import DNSRecord, RCODE
arb4, arb6, tag, up4 = sys.argv[1:5]

def udp(fam, dst, name):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(DNSRecord.question(name).pack(), dst)
    try:
        data, src = s.recvfrom(4096)
    except socket.timeout:
        return "TIMEOUT"
    return "%s from %s:%d" % (RCODE[DNSRecord.parse(data).header.rcode],
                              src[0], src[1])

print("udp4", udp(socket.AF_INET, (arb4, 53), "api.github.com"))
print("udp6", udp(socket.AF_INET6, (arb6, 53), "api.github.com"))
print("mapped", udp(socket.AF_INET6, ("::ffff:" + arb4, 53), "api.github.com"))
t = socket.create_connection((arb4, 53), timeout=3)
print("tcp4 peer %s:%d" % t.getpeername())
t.close()
t = socket.create_connection((arb6, 53), timeout=3)
print("tcp6 peer %s:%d" % t.getpeername()[:2])
t.close()
# A raw UDP packet straight to the real upstream: no socket hook sees it.
q = DNSRecord.question("raw-%s.exfil.attacker.net" % tag).pack()
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
try:
    r.sendto(struct.pack("!HHHH", 40000, 53, 8 + len(q), 0) + q, (up4, 0))
    print("raw sent")
except PermissionError:
    print("raw refused")  # dropped by chain egress on the way out
PY
)
	assert_contains "$variant: udp4 answer comes from the address queried" "$out" "udp4 NOERROR from $ARB4:53"
	assert_contains "$variant: udp6 answer comes from the address queried" "$out" "udp6 NOERROR from $ARB6:53"
	assert_contains "$variant: IPv4-mapped query answered from that address" "$out" "mapped NOERROR from ::ffff:$ARB4:53"
	assert_contains "$variant: tcp4 getpeername shows the address connected to" "$out" "tcp4 peer $ARB4:53"
	assert_contains "$variant: tcp6 getpeername shows the address connected to" "$out" "tcp6 peer $ARB6:53"
	assert_contains "$variant: raw packet sent or refused" "$out" "raw "
	sleep 0.5
	assert_not_forwarded "$variant: a raw-socket query never reaches the upstream" "raw-$variant.exfil.attacker.net"
	stop_egressd
done
egit_finish
