#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# --mode dns with OPENSANDBOX_EGRESS_BPF=enforce: nothing is dropped at L3;
# BPF observes and reports what dns+nft would drop (DESIGN.md 2). Traffic
# from the workload to a non-allowed IP passes (TCP and UDP) and a packet
# violation line with "action":"observe" appears; an allowed destination
# gets no line; names are still filtered.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.81:80" "udp:10.200.$X.81:9999" \
	"tcp:[fd00:200:$X::81]:80"
inet_addr "10.200.$X.66"
start_egressd --mode dns --bpf enforce --rules "$POLICY"
assert_eq "start line: mode dns" dns "$(json_field "$T/egressd.out" start mode)"
assert_eq "start line: layers.bpf.state observe" observe \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
assert_contains "start line: layers.bpf.why says why" \
	"$(json_field "$T/egressd.out" start layers.bpf.why)" "mode dns"
# With the BPF redirect, dns mode keeps only the port-53 rules of chain
# egress (no set, no ct): nothing else is filtered by nftables.
assert_eq "start line: port 53 redirected by BPF" bpf \
	"$(json_field "$T/egressd.out" start layers.dns.redirect)"
rules=$(nft_egress_rules)
assert_eq "dns mode: chain egress holds only the API rules, lo, 12 ICMPv6, port 53, accept" 20 "$(wc -l <<<"$rules")"
assert_not_contains "dns mode: no set lookup" "$rules" "@"
assert_not_contains "dns mode: no ct rule" "$rules" "ct state"
assert_not_contains "dns mode: no nat chain" "$(nft_sb list table inet egressd)" "type nat"

assert_connects "TCP to the non-allowed 10.200.$X.81:80 passes" "10.200.$X.81" 80
wait_json_line "violation line: action observe, tcp" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=observe proto=tcp \
	family=4 dst="10.200.$X.81" dport=80 src="$SB4"
udp_send "10.200.$X.81" 9999 dns-mode-udp
wait_for 2 server_got web dns-mode-udp
if server_got web "udp 10.200.$X.81 9999 $SB4 dns-mode-udp"; then pass "UDP to the non-allowed 10.200.$X.81:9999 arrives"; else fail "UDP to the non-allowed 10.200.$X.81:9999 arrives" "$(cat "$T/servers-web.log")"; fi
wait_json_line "violation line: action observe, udp" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=observe proto=udp \
	dst="10.200.$X.81" dport=9999
assert_connects "TCP to the non-allowed [fd00:200:$X::81]:80 passes" "fd00:200:$X::81" 80
wait_json_line "violation line: action observe, tcp, family 6" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=observe proto=tcp \
	family=6 dst="fd00:200:$X::81" dport=80
if json_match "$T/egressd.out" event=violation layer=packet action=drop; then
	fail "no packet line says drop" "$(grep '"drop"' "$T/egressd.out" | head -3)"
else
	pass "no packet line says drop"
fi
dd=$(bpf_counter default_deny)
if [ "$dd" -ge 3 ]; then pass "BPF counter default_deny counts the observed violations ($dd)"; else fail "BPF counter default_deny >= 3" "$(bpf_counters_all)"; fi

# Names are still filtered, and an allowed destination gets no line.
q @"$DNS4" exfil.attacker.net A
assert_eq "non-allowed name: NXDOMAIN" NXDOMAIN "$Q_STATUS"
q @"$DNS4" api.github.com A
assert_eq "api.github.com A answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "$WEB4:80 connects" "$WEB4" 80
sleep 1.1
assert_eq "no violation line for the allowed destination" "" "$(violations_for "$T/egressd.out" "$WEB4")"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
