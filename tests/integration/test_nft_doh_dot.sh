#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft, DoT and DoH:
# - TCP and UDP 853 to an allowed (learned) address are dropped, reason dot;
# - 443 (TCP, and UDP for DoH3) to an address on the DoH blocklist
#   (OPENSANDBOX_EGRESS_DOH_BLOCKLIST) is dropped, reason doh, although a
#   CIDR allow rule covers the address: a broader CIDR does not lift it;
#   443 to an allowed non-DoH address works;
# - a DoH provider name (dns.google) gets NXDOMAIN with reason doh although
#   *.google is allowed, and never leaves the sandbox;
# - an exact allow rule for dns.google lets it resolve, and an exact /32
#   (/128) allow rule of the DoH address lifts its 443 block.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
DOH4=10.200.$X.44
DOH6=fd00:200:$X::44
write_zone "$T/zone"
echo "dns.google A $DOH4" >>"$T/zone"
start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]"
inet_addr "$DOH4" "$DOH6"
start_servers s "tcp:$WEB4:80" "tcp:$WEB4:443" "tcp:$WEB4:853" \
	"udp:$WEB4:853" "udp:$WEB4:5353" \
	"tcp:$DOH4:80" "tcp:$DOH4:443" "udp:$DOH4:443" "tcp:[$DOH6]:443"
export OPENSANDBOX_EGRESS_DOH_BLOCKLIST="$DOH4,$DOH6"
start_egressd_nft --rules '{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"*.google"},
 {"action":"allow","target":"10.200.'"$X"'.40/29"},
 {"action":"allow","target":"fd00:200:'"$X"'::40/125"}]}'

# --- DoT: 853 to an allowed address
q @"$DNS4" api.github.com A
assert_eq "api.github.com resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "control: $WEB4:80 connects" "$WEB4" 80
assert_blocked "DoT: tcp $WEB4:853 blocked" "$WEB4" 853
wait_json_line "violation reason dot (tcp 853)" "$T/egressd.out" \
	event=violation layer=packet reason=dot action=drop proto=tcp dst="$WEB4" dport=853
udp_send "$WEB4" 5353 control-5353
udp_send "$WEB4" 853 dot-853
wait_for 2 server_got s control-5353
if server_got s control-5353; then pass "control: udp $WEB4:5353 arrives"; else fail "control: udp $WEB4:5353 arrives" "$(cat "$T/servers-s.log")"; fi
if server_got s dot-853; then fail "DoQ: udp $WEB4:853 blocked" "it arrived: $(grep dot-853 "$T/servers-s.log")"; else pass "DoQ: udp $WEB4:853 blocked"; fi
wait_json_line "violation reason dot (udp 853)" "$T/egressd.out" \
	event=violation layer=packet reason=dot action=drop proto=udp dst="$WEB4" dport=853
n=$(nft_counter dot_drop)
if [ "${n:-0}" -ge 2 ]; then pass "nft counter dot_drop = $n"; else fail "nft counter dot_drop >= 2" "it is '$n'"; fi

# --- DoH: 443 to a blocklisted address
assert_connects "443 to an allowed non-DoH address ($WEB4) works" "$WEB4" 443
assert_connects "control: $DOH4:80 connects (covered by the /29 allow)" "$DOH4" 80
assert_blocked "DoH: tcp $DOH4:443 blocked despite the /29 allow" "$DOH4" 443
wait_json_line "violation reason doh (tcp 443)" "$T/egressd.out" \
	event=violation layer=packet reason=doh action=drop proto=tcp dst="$DOH4" dport=443
assert_blocked "DoH: tcp [$DOH6]:443 blocked despite the /125 allow" "$DOH6" 443
wait_json_line "violation reason doh (tcp 443, v6)" "$T/egressd.out" \
	event=violation layer=packet reason=doh action=drop family=6 dst="$DOH6" dport=443
udp_send "$DOH4" 443 doh3-443
sleep 0.3
if server_got s doh3-443; then fail "DoH3: udp $DOH4:443 blocked" "it arrived"; else pass "DoH3: udp $DOH4:443 blocked"; fi
n=$(nft_counter doh_drop)
if [ "${n:-0}" -ge 3 ]; then pass "nft counter doh_drop = $n"; else fail "nft counter doh_drop >= 3" "it is '$n'"; fi

# --- DoH provider names at the DNS layer
q @"$DNS4" dns.google A
assert_eq "dns.google (only *.google allowed): NXDOMAIN" NXDOMAIN "$Q_STATUS"
wait_json_line "dns violation with reason doh" "$T/egressd.out" \
	event=violation layer=dns reason=doh qname~=dns.google action=nxdomain
assert_not_forwarded "dns.google never reached the upstream" dns.google

# --- exact allow rules lift both blocks
stop_egressd
start_egressd_nft --rules '{"defaultAction":"deny","egress":[
 {"action":"allow","target":"dns.google"},
 {"action":"allow","target":"'"$DOH4"'/32"},
 {"action":"allow","target":"'"$DOH6"'/128"}]}'
q @"$DNS4" dns.google A
assert_eq "exact allow rule for dns.google: it resolves" "NOERROR $DOH4" "$Q_STATUS $Q_ANSWER"
assert_connects "exact /32 allow of the DoH address: tcp $DOH4:443 connects" "$DOH4" 443
assert_connects "exact /128 allow of the DoH address: tcp [$DOH6]:443 connects" "$DOH6" 443
egit_finish
