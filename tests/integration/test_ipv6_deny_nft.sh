#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# OPENSANDBOX_EGRESS_IPV6=deny in dns+nft mode, BPF off (nftables alone):
# - the start line says "ipv6":"deny";
# - AAAA for an allowed name is NOERROR with no answer (NODATA), with a dns
#   violation (reason ipv6_disabled, action nodata), and never reaches the
#   upstream; A for the same name works and connects;
# - a v6 TCP connect to the allowed name's v6 address fails fast
#   (ECONNREFUSED: nftables rejects with a TCP reset) with a packet
#   violation line (reason ipv6_disabled, family 6) and counter ipv6_drop;
# - a v6 UDP send fails at once (EPERM) and is not received;
# - DNS to a v6 resolver address still works (redirected to the proxy);
# - an IPv6 allow rule makes egressd exit non-zero naming egress[i].

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
export OPENSANDBOX_EGRESS_IPV6=deny
start_upstream
start_servers s "tcp:$WEB4:80" "tcp:[$WEB6]:80" "udp:[$WEB6]:9999" \
	"udp:$WEB4:9999"
start_egressd_nft --rules "$POLICY"
assert_eq "start line: ipv6 deny" deny "$(json_field "$T/egressd.out" start ipv6)"
assert_eq "start line: nft on" on "$(json_field "$T/egressd.out" start layers.nft.state)"
rules=$(nft_egress_rules)
assert_contains "chain egress: IPv6 TCP rejected with a reset" "$rules" \
	'meta nfproto ipv6 meta l4proto tcp counter name "ipv6_drop" log prefix "egressd:ipv6_disabled" group 180 snaplen 128 reject with tcp reset'
assert_contains "chain egress: other IPv6 rejected admin-prohibited" "$rules" \
	'meta nfproto ipv6 counter name "ipv6_drop" log prefix "egressd:ipv6_disabled" group 180 snaplen 128 reject with icmpx admin-prohibited'

# --- AAAA: NODATA, never forwarded
q @"$DNS4" api.github.com AAAA
assert_eq "AAAA for an allowed name: NOERROR, no answer" "NOERROR " "$Q_STATUS $Q_ANSWER"
wait_json_line "dns violation: ipv6_disabled, nodata" "$T/egressd.out" \
	event=violation layer=dns reason=ipv6_disabled action=nodata \
	qname~=api.github.com qtype=AAAA
assert_not_forwarded "the AAAA query never reached the upstream" api.github.com

# --- A works, and connects
q @"$DNS4" api.github.com A
assert_eq "A for the same name works" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "its IPv4 address connects" "$WEB4" 80
q @"$DNS6" api.github.com A
assert_eq "DNS to a v6 resolver address: redirected to the proxy" \
	"NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"

# --- v6 TCP and UDP fail fast
assert_fails_fast "v6 TCP connect to [$WEB6]:80 fails fast" ECONNREFUSED \
	tcp "$WEB6" 80
wait_json_line "packet violation: ipv6_disabled, tcp, family 6" "$T/egressd.out" \
	event=violation layer=packet reason=ipv6_disabled action=drop \
	proto=tcp family=6 dst="$WEB6" dport=80 src="$SB6"
assert_fails_fast "v6 UDP send to [$WEB6]:9999 fails fast" EPERM \
	udp "$WEB6" 9999
wait_json_line "packet violation: ipv6_disabled, udp, family 6" "$T/egressd.out" \
	event=violation layer=packet reason=ipv6_disabled action=drop \
	proto=udp family=6 dst="$WEB6" dport=9999
sock_try udp "$WEB4" 9999
wait_for 2 server_got s "udp $WEB4 9999 $SB4"
if server_got s "udp $WEB4 9999 $SB4"; then pass "control: v4 UDP send arrives"; else fail "control: v4 UDP send arrives" "$TRY_RESULT; $(cat "$T/servers-s.log")"; fi
if server_got s "udp $WEB6" || server_got s "tcp $WEB6"; then
	fail "nothing from the workload reached [$WEB6]" "$(cat "$T/servers-s.log")"
else
	pass "nothing from the workload reached [$WEB6]"
fi
n=$(nft_counter ipv6_drop)
if [ "${n:-0}" -ge 2 ]; then pass "nft counter ipv6_drop = $n"; else fail "nft counter ipv6_drop >= 2" "it is '$n'"; fi
stop_egressd

# --- an IPv6 allow rule is refused at start
export OPENSANDBOX_EGRESS_RULES='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"fd00:200:'"$X"'::80/126"}]}'
egressd_bad_start "IPv6 allow rule in OPENSANDBOX_EGRESS_RULES" "egress[1]" \
	--mode dns+nft --bpf off
unset OPENSANDBOX_EGRESS_RULES
egit_finish
