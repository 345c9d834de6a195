#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# OPENSANDBOX_EGRESS_IPV6=allow (the default): the v6 twins that the other
# tests lack, with nftables alone (BPF off) and with BPF enforcing:
# - DoT over IPv6: TCP and UDP 853 to an allowed (learned) v6 address are
#   blocked, reason dot, family 6;
# - a v6 deny CIDR beats a learned v6 address (BPF; test_nft_deny_cidr
#   covers nftables);
# - the learned v6 entry is visible with bpftool (learned_v6);
# - ICMPv6 neighbour discovery keeps working: after the sandbox's
#   neighbour cache is flushed, an allowed v6 connect still works;
# - the start line says "ipv6":"allow".

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
D6=fd00:200:$X::81	# github.com's v6 address here, inside the deny CIDR
write_zone "$T/zone"
echo "github.com AAAA $D6" >>"$T/zone"
start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]"
start_servers s "tcp:[$WEB6]:80" "tcp:[$WEB6]:853" "udp:[$WEB6]:853" \
	"udp:[$WEB6]:5353" "tcp:[$D6]:80"
RULES='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"github.com"},
 {"action":"deny","target":"fd00:200:'"$X"'::81/128"}]}'

# check_allow TAG
check_allow() {
	local tag=$1
	assert_eq "$tag: start line: ipv6 allow" allow "$(json_field "$T/egressd.out" start ipv6)"
	q @"$DNS6" api.github.com AAAA
	assert_eq "$tag: api.github.com AAAA (via a v6 resolver address)" \
		"NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
	assert_connects "$tag: [$WEB6]:80 connects" "$WEB6" 80

	# DoT over IPv6
	sock_try tcp "$WEB6" 853 0.7
	assert_eq "$tag: DoT: tcp [$WEB6]:853 blocked" timeout "$TRY_RESULT"
	wait_json_line "$tag: violation reason dot (tcp, family 6)" "$T/egressd.out" \
		event=violation layer=packet reason=dot action=drop proto=tcp \
		family=6 dst="$WEB6" dport=853
	# Both layers fold reports per (reason, dst, dport) and second.
	sleep 1.1
	sock_try udp "$WEB6" 5353
	sock_try udp "$WEB6" 853
	wait_for 2 server_got s "udp $WEB6 5353"
	if server_got s "udp $WEB6 5353"; then pass "$tag: control: udp [$WEB6]:5353 arrives"; else fail "$tag: control: udp [$WEB6]:5353 arrives" "$(cat "$T/servers-s.log")"; fi
	if server_got s "udp $WEB6 853"; then fail "$tag: DoQ: udp [$WEB6]:853 blocked" "it arrived"; else pass "$tag: DoQ: udp [$WEB6]:853 blocked"; fi
	wait_json_line "$tag: violation reason dot (udp, family 6)" "$T/egressd.out" \
		event=violation layer=packet reason=dot action=drop proto=udp \
		family=6 dst="$WEB6" dport=853

	# a v6 deny CIDR beats a learned v6 address
	q @"$DNS4" github.com AAAA
	assert_eq "$tag: github.com AAAA answered" "NOERROR $D6" "$Q_STATUS $Q_ANSWER"
	sock_try tcp "$D6" 80 0.7
	assert_eq "$tag: its address [$D6] (deny /128) blocked" timeout "$TRY_RESULT"
	wait_json_line "$tag: violation reason deny_rule (family 6)" "$T/egressd.out" \
		event=violation layer=packet reason=deny_rule action=drop \
		family=6 dst="$D6" dport=80

	# neighbour discovery
	ip -n "$SB" -6 neigh flush all
	ip -n "$NET" -6 neigh flush all
	assert_eq "$tag: the sandbox's v6 neighbour cache is empty" "" \
		"$(ip -n "$SB" -6 neigh show | grep -v FAILED)"
	assert_connects "$tag: after the flush, [$WEB6]:80 still connects (ND works)" "$WEB6" 80
	assert_contains "$tag: the neighbour was resolved again" \
		"$(ip -n "$SB" -6 neigh show "$WEB6")" lladdr
}

export OPENSANDBOX_EGRESS_BPF=off
start_egressd_nft --rules "$RULES"
check_allow "nft"
if nft_learned_has "$D6"; then pass "nft: $D6 is in learned_v6 (and still blocked)"; else fail "nft: $D6 in learned_v6" "$(nft_sb list set inet egressd learned_v6 2>&1)"; fi
n=$(nft_counter dot_drop)
if [ "${n:-0}" -ge 2 ]; then pass "nft: counter dot_drop = $n"; else fail "nft: counter dot_drop >= 2" "it is '$n'"; fi
stop_egressd
nft_sb delete table inet egressd
: >"$T/servers-s.log"

unset OPENSANDBOX_EGRESS_BPF
start_egressd_bpf --rules "$RULES"
assert_eq "bpf: start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
check_allow "bpf"
if bpf_map_has learned_v6 "$WEB6"; then pass "bpf: bpftool map dump learned_v6 shows $WEB6"; else fail "bpf: learned_v6 shows $WEB6" "$(bpf_map_text learned_v6)"; fi
if bpf_map_has learned_v6 "$D6"; then pass "bpf: learned_v6 shows $D6 (and it is still blocked)"; else fail "bpf: learned_v6 shows $D6" "$(bpf_map_text learned_v6)"; fi
n=$(bpf_counter dot)
if [ "${n:-0}" -ge 2 ]; then pass "bpf: the program counted dot = $n"; else fail "bpf: BPF counter dot >= 2" "it is '$n'"; fi
n=$(bpf_counter deny_rule)
if [ "${n:-0}" -ge 1 ]; then pass "bpf: the program counted deny_rule = $n"; else fail "bpf: BPF counter deny_rule >= 1" "it is '$n'"; fi
egit_finish
