#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# IPv6 twin of test_bpf_enforce: dns+nft with BPF enforcing, hosts in
# fd00:200:X::/64. A blocked TCP connect to a literal non-allowed IPv6
# address and a blocked UDP send (the listener receives nothing) give
# family 6 packet violation lines; an allowed connect after resolving the
# AAAA gives none; nftables' default_drop stays 0 (BPF judged).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
H6=fd00:200:$X::81
start_servers web "tcp:[$WEB6]:80" "tcp:[$H6]:80" "udp:[$H6]:9999"
start_egressd_bpf --rules "$POLICY"
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
code=$(ip netns exec "$NET" curl -g -s -m 2 -o /dev/null -w '%{http_code}' "http://[$H6]/")
assert_eq "control: web host [$H6]:80 serves" 200 "$code"

dd0=$(nft_counter default_drop)
assert_blocked "literal IPv6 of a non-allowed host is blocked" "$H6" 80
assert_eq "the connect timed out (dropped, curl exit 28)" 28 "$H_RC"
wait_json_line "violation line for the v6 TCP connect" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop \
	proto=tcp family=6 dst="$H6" dport=80 src="$SB6" domain=null
udp_send "$H6" 9999 bpf-blocked-udp6
wait_json_line "violation line for the v6 UDP send" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop \
	proto=udp family=6 dst="$H6" dport=9999 src="$SB6"
sleep 0.3
if server_got web bpf-blocked-udp6 || server_got web "tcp $H6 80 $SB6"; then
	fail "nothing from the workload reached [$H6]" "$(cat "$T/servers-web.log")"
else
	pass "nothing from the workload reached [$H6]"
fi

q @"$DNS6" api.github.com AAAA
assert_eq "api.github.com AAAA answered" "NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
if bpf_map_has learned_v6 "$WEB6"; then pass "$WEB6 in learned_v6"; else fail "$WEB6 in learned_v6" "$(bpf_map_text learned_v6)"; fi
assert_connects "right after resolving: [$WEB6]:80 connects" "$WEB6" 80
sleep 1.1
assert_eq "no violation line for the allowed destination" "" "$(violations_for "$T/egressd.out" "$WEB6")"
assert_eq "nftables counter default_drop unchanged (BPF judged)" "$dd0" "$(nft_counter default_drop)"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
