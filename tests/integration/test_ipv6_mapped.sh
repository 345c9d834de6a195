#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# IPv4-mapped IPv6 destinations: a v6 socket connecting to ::ffff:a.b.c.d
# sends IPv4, so both layers judge it as the IPv4 address it is, with
# OPENSANDBOX_EGRESS_IPV6=deny (the IPv6 reject must not catch it):
# - after resolving an allowed name (A), ::ffff:<its address> connects;
# - ::ffff:<a non-allowed address> is blocked with reason default_deny and
#   family 4 (dst the plain IPv4 address);
# - an allow rule written as ::ffff:a.b.c.d counts as IPv4 (not refused
#   while IPv6 is denied) and opens a.b.c.d to v4 and v6 sockets alike.
# Once with nftables alone (BPF off), once with BPF enforcing.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
export OPENSANDBOX_EGRESS_IPV6=deny
H4=10.200.$X.81
R4=10.200.$X.82
inet_addr "$R4"
start_upstream
start_servers s "tcp:$WEB4:80" "tcp:$H4:80" "tcp:$R4:80"
RULES='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"::ffff:'"$R4"'"}]}'

# check_mapped TAG
check_mapped() {
	local tag=$1
	assert_eq "$tag: the ::ffff: allow rule is accepted at start (IPv4)" deny \
		"$(json_field "$T/egressd.out" start ipv6)"
	sock_try tcp "::ffff:$WEB4" 80 0.7
	assert_eq "$tag: before resolving: ::ffff:$WEB4 blocked (timeout)" timeout "$TRY_RESULT"
	q @"$DNS4" api.github.com A
	assert_eq "$tag: api.github.com resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	sock_try tcp "::ffff:$WEB4" 80
	assert_eq "$tag: v6 socket to ::ffff:$WEB4 (learned) connects" ok "$TRY_RESULT"
	if wait_for 2 server_got s "tcp $WEB4 80 $SB4"; then
		pass "$tag: it arrived as IPv4 from $SB4"
	else
		fail "$tag: it arrived as IPv4 from $SB4" "$(cat "$T/servers-s.log")"
	fi
	sock_try tcp "::ffff:$H4" 80 0.7
	assert_eq "$tag: v6 socket to ::ffff:$H4 (not allowed) blocked" timeout "$TRY_RESULT"
	wait_json_line "$tag: violation default_deny, family 4, dst $H4" "$T/egressd.out" \
		event=violation layer=packet reason=default_deny action=drop \
		proto=tcp family=4 dst="$H4" dport=80
	assert_eq "$tag: no ipv6_disabled line for a mapped address" "" \
		"$(violations_for "$T/egressd.out" "$H4" | grep ipv6_disabled)"
	sock_try tcp "::ffff:$R4" 80
	assert_eq "$tag: ::ffff:$R4 (allow rule ::ffff:$R4) connects" ok "$TRY_RESULT"
	sock_try tcp "$R4" 80
	assert_eq "$tag: $R4 (v4 socket, same rule) connects" ok "$TRY_RESULT"
}

start_egressd_nft --rules "$RULES"
dd0=$(nft_counter default_drop)
check_mapped "nft"
dd1=$(nft_counter default_drop)
if [ "${dd1:-0}" -gt "${dd0:-0}" ]; then pass "nft: default_drop counted it ($dd0 -> $dd1)"; else fail "nft: default_drop counted it" "$dd0 -> $dd1"; fi
assert_eq "nft: ipv6_drop did not count it" 0 "$(nft_counter ipv6_drop)"
stop_egressd
nft_sb delete table inet egressd
: >"$T/servers-s.log"

start_egressd_bpf --rules "$RULES"
assert_eq "bpf: start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
b0=$(bpf_counter default_deny)
check_mapped "bpf"
b1=$(bpf_counter default_deny)
if [ "$b1" -gt "$b0" ]; then pass "bpf: the program judged it (default_deny $b0 -> $b1)"; else fail "bpf: the program judged it" "default_deny $b0 -> $b1"; fi
assert_eq "bpf: BPF ipv6_disabled 0" 0 "$(bpf_counter ipv6_disabled)"
assert_eq "bpf: nft ipv6_drop 0" 0 "$(nft_counter ipv6_drop)"
if bpf_map_has learned_v4 "$WEB4"; then pass "bpf: $WEB4 in learned_v4"; else fail "bpf: $WEB4 in learned_v4" "$(bpf_map_text learned_v4)"; fi
egit_finish
