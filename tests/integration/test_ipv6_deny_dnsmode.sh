#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# OPENSANDBOX_EGRESS_IPV6=deny in --mode dns: the DNS layer alone would
# leave IPv6 open, so nftables gets a minimal chain egress (established,
# loopback, ICMPv6 for the link, the IPv6 rejects, accept the rest):
# - start line: "ipv6":"deny", layers.nft.state off;
# - the chain holds only those rules, no set exists, counter ipv6_drop does;
# - a v6 TCP connect fails fast (ECONNREFUSED) with a packet violation
#   (reason ipv6_disabled, family 6); a v6 UDP send fails at once;
# - IPv4 is not filtered at L3 (dns mode): a literal non-allowed v4 address
#   connects; AAAA is NODATA, A works and connects;
# - the same with the BPF layer on (it only observes in dns mode);
# - a switch from dns+nft to dns replaces the full chain by the minimal
#   one, and IPv6 allowed again removes it.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_IPV6=deny
H4=10.200.$X.81
start_upstream
start_servers s "tcp:$WEB4:80" "tcp:[$WEB6]:80" "tcp:$H4:80" "udp:[$WEB6]:9999"

# check_dns_mode TAG: the assertions, for one running egressd in dns mode.
check_dns_mode() {
	local tag=$1 rules n
	assert_eq "$tag: start line: ipv6 deny" deny "$(json_field "$T/egressd.out" start ipv6)"
	assert_eq "$tag: start line: mode dns" dns "$(json_field "$T/egressd.out" start mode)"
	assert_eq "$tag: start line: nft off" off "$(json_field "$T/egressd.out" start layers.nft.state)"
	rules=$(nft_egress_rules)
	n=$(wc -l <<<"$rules")
	# the 2 API rules, lo, 12 ICMPv6, 2 rejects, accept; with the nat
	# redirect also the 2 loopback-destination accepts, with the BPF
	# redirect the 4 port-53 rules instead. No "ct state": open IPv6
	# flows are cut too.
	local want=20
	[ "$(json_field "$T/egressd.out" start layers.dns.redirect)" = bpf ] && want=22
	assert_eq "$tag: chain egress has only the $want IPv6-off (and port-53) rules" "$want" "$n"
	assert_not_contains "$tag: no ct rule" "$rules" "ct state"
	assert_contains "$tag: it ends with accept" "$(tail -n 1 <<<"$rules")" \
		'accept comment "dns mode: nothing else is filtered here"'
	assert_contains "$tag: IPv6 TCP reset" "$rules" 'meta nfproto ipv6 meta l4proto tcp counter name "ipv6_drop"'
	assert_eq "$tag: no set in table inet egressd" "" \
		"$(nft_sb list sets table inet egressd 2>/dev/null | grep -w set)"
	assert_eq "$tag: counter ipv6_drop exists" 0 "$(nft_counter ipv6_drop)"
	# default_drop: a process's ICMPv6 NS/NA off the link scope
	assert_eq "$tag: no other counter" "" "$(nft_counter dot_drop)$(nft_counter deny_drop)"

	q @"$DNS4" api.github.com AAAA
	assert_eq "$tag: AAAA for an allowed name: NODATA" "NOERROR " "$Q_STATUS $Q_ANSWER"
	wait_json_line "$tag: dns violation: ipv6_disabled, nodata" "$T/egressd.out" \
		event=violation layer=dns reason=ipv6_disabled action=nodata \
		qname~=api.github.com qtype=AAAA
	q @"$DNS4" api.github.com A
	assert_eq "$tag: A for the same name works" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	assert_connects "$tag: its IPv4 address connects" "$WEB4" 80
	assert_connects "$tag: IPv4 is not filtered at L3 in dns mode ($H4)" "$H4" 80

	assert_fails_fast "$tag: v6 TCP connect to [$WEB6]:80 fails fast" \
		ECONNREFUSED tcp "$WEB6" 80
	wait_json_line "$tag: packet violation: ipv6_disabled, tcp, family 6" \
		"$T/egressd.out" event=violation layer=packet \
		reason=ipv6_disabled action=drop proto=tcp family=6 \
		dst="$WEB6" dport=80 src="$SB6"
	assert_fails_fast "$tag: v6 UDP send to [$WEB6]:9999 fails fast" EPERM \
		udp "$WEB6" 9999
	n=$(nft_counter ipv6_drop)
	if [ "${n:-0}" -ge 2 ]; then pass "$tag: nft counter ipv6_drop = $n"; else fail "$tag: nft counter ipv6_drop >= 2" "it is '$n'"; fi
	if server_got s "$WEB6"; then
		fail "$tag: nothing from the workload reached [$WEB6]" "$(cat "$T/servers-s.log")"
	else
		pass "$tag: nothing from the workload reached [$WEB6]"
	fi
	assert_all_json "$tag: stdout holds only JSON lines" "$T/egressd.out"
}

# --- BPF off
start_egressd --mode dns --bpf off --rules "$POLICY"
check_dns_mode "bpf off"
stop_egressd
nft_sb delete table inet egressd

# --- BPF on (observes only, in dns mode)
command -v bpftool >/dev/null || die "'bpftool' not found"
start_egressd --mode dns --rules "$POLICY"
assert_eq "bpf on: start line: layers.bpf.state observe" observe \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
check_dns_mode "bpf on"
stop_egressd

# --- mode switches across restarts
start_egressd --mode dns+nft --bpf off --rules "$POLICY"
n=$(nft_egress_rules | wc -l)
if [ "$n" -gt 12 ]; then pass "dns+nft: the full chain ($n rules)"; else fail "dns+nft: the full chain" "$n rules"; fi
stop_egressd
start_egressd --mode dns --bpf off --rules "$POLICY"
assert_eq "dns+nft -> dns: only the 18 IPv6-off rules and the 2 API rules" 20 "$(nft_egress_rules | wc -l)"
assert_contains "dns+nft -> dns: the chain's comment says so" \
	"$(nft_sb list chain inet egressd egress)" "egressd IPv6 off (dns mode)"
assert_fails_fast "dns+nft -> dns: v6 TCP connect still fails fast" \
	ECONNREFUSED tcp "$WEB6" 80
stop_egressd
start_egressd --mode dns+nft --bpf off --rules "$POLICY"
assert_contains "dns -> dns+nft: the chain's comment is the dns+nft one" \
	"$(nft_sb list chain inet egressd egress)" "egressd output filter (dns+nft mode)"
stop_egressd
OPENSANDBOX_EGRESS_IPV6=allow start_egressd --mode dns --bpf off --rules "$POLICY"
# The API rules (docs/security.md, class 5) keep a minimal chain in dns mode.
rules=$(nft_sb list chain inet egressd egress 2>&1)
assert_contains "IPv6 allowed again (dns mode): only the API's chain is left" \
	"$rules" "egressd dns mode: the API port is egressd's, accepts the rest"
assert_not_contains "IPv6 allowed again (dns mode): no IPv6 reject left" "$rules" "ipv6_drop"
assert_eq "IPv6 allowed again: counter ipv6_drop removed" "" "$(nft_counter ipv6_drop)"
egit_finish
