#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft with OPENSANDBOX_EGRESS_BPF=observe (docs/bpf.md "Observe mode",
# DESIGN.md 1-2): BPF drops nothing, so nftables keeps the full verdict for
# everyone, the workload included: no hand-off rule, a blocked connect is
# dropped and reported by nftables (action drop, counter default_drop), and
# BPF never sees that packet (nftables runs first), so its default_deny
# counter stays 0. BPF still runs for the workload: it counts what passes.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
export OPENSANDBOX_EGRESS_BPF=observe
start_upstream
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.81:80" "udp:10.200.$X.81:9999"
start_egressd --mode dns+nft --rules "$POLICY"
assert_eq "start line: layers.bpf.state observe" observe \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
assert_eq "start line: mode dns+nft" dns+nft "$(json_field "$T/egressd.out" start mode)"
assert_not_contains "no hand-off rule: nftables judges the workload" \
	"$(nft_sb list chain inet egressd egress 2>&1)" "judged by the egressd BPF program"
if [ -n "$(bpf_link_pin)" ]; then pass "the program is attached (link pinned)"; else fail "the program is attached (link pinned)" "$(ls -R "$PIN" 2>&1)"; fi

dd0=$(nft_counter default_drop)
assert_blocked "literal IPv4 of a non-allowed host is still blocked" "10.200.$X.81" 80
udp_send "10.200.$X.81" 9999 observe-mode-udp
wait_json_line "violation line (nftables): action drop, tcp" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop proto=tcp \
	dst="10.200.$X.81" dport=80
wait_json_line "violation line (nftables): action drop, udp" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop proto=udp \
	dst="10.200.$X.81" dport=9999
sleep 0.3
if server_got web observe-mode-udp || server_got web "tcp 10.200.$X.81 80 $SB4"; then
	fail "nothing from the workload reached 10.200.$X.81" "$(cat "$T/servers-web.log")"
else
	pass "nothing from the workload reached 10.200.$X.81"
fi
dd1=$(nft_counter default_drop)
if [ "${dd1:-0}" -ge $((${dd0:-0} + 2)) ]; then
	pass "nftables counter default_drop counts them: $dd0 -> $dd1"
else
	fail "nftables counter default_drop grew by >= 2" "$dd0 -> $dd1"
fi
assert_eq "BPF never saw the dropped packets (default_deny 0)" 0 "$(bpf_counter default_deny)"
if json_match "$T/egressd.out" event=violation action=observe; then
	fail "no observe line (nftables dropped first)" "$(grep observe "$T/egressd.out" | head -3)"
else
	pass "no observe line (nftables dropped first)"
fi

q @"$DNS4" api.github.com A
assert_eq "api.github.com A answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
a0=$(bpf_counter allowed)
assert_connects "allowed after resolving: $WEB4:80 connects" "$WEB4" 80
a1=$(bpf_counter allowed)
if [ "$a1" -gt "$a0" ]; then pass "BPF counts the allowed flow ($a0 -> $a1)"; else fail "BPF counts the allowed flow" "$a0 -> $a1"; fi
sleep 1.1
assert_eq "no violation line for the allowed destination" "" "$(violations_for "$T/egressd.out" "$WEB4")"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
