#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# OPENSANDBOX_EGRESS_IPV6=deny in dns+nft mode with BPF enforcing (the
# default): nftables rejects IPv6 ahead of the hand-off to the BPF program,
# so a v6 connect from the workload still fails fast (ECONNREFUSED) with a
# packet violation (reason ipv6_disabled, family 6) and the program never
# sees it; a v6 UDP send fails at once; AAAA is NODATA and never forwarded;
# A works and connects (judged by BPF).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
export OPENSANDBOX_EGRESS_IPV6=deny
start_upstream
start_servers s "tcp:$WEB4:80" "tcp:[$WEB6]:80" "udp:[$WEB6]:9999"
# Another cgroup's socket from the start: coverage partial, so the chain
# hands off by cgroup (test_bpf_dnsmode and the benchmarks cover the
# whole-namespace case).
bpf_foreign_holder other
start_egressd --mode dns+nft --rules "$POLICY"
assert_eq "start line: layers.bpf.state enforce (the default)" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
assert_eq "start line: ipv6 deny" deny "$(json_field "$T/egressd.out" start ipv6)"
rules=$(nft_egress_rules)
v6=$(grep -n 'reject with icmpx admin-prohibited' <<<"$rules" | cut -d: -f1)
# Only IPv4 is handed off ahead of the rejects (rule 1, nfproto ipv4).
handoff=$(grep -n '"workload cgroup: judged by the egressd BPF program' <<<"$rules" | cut -d: -f1)
handoff4=$(grep -n '"workload cgroup, IPv4: judged by the egressd BPF program' <<<"$rules" | cut -d: -f1)
if [ -n "$v6" ] && [ -n "$handoff" ] && [ "$v6" -lt "$handoff" ]; then
	pass "the IPv6 reject comes before the BPF hand-off (rules $v6 < $handoff)"
else
	fail "the IPv6 reject comes before the BPF hand-off" "$rules"
fi
if [ "$handoff4" = 1 ] && grep -q 'meta nfproto ipv4' <<<"$(sed -n 1p <<<"$rules")"; then
	pass "IPv4 is handed off in the first rule"
else
	fail "IPv4 is handed off in the first rule" "$rules"
fi

q @"$DNS4" api.github.com AAAA
assert_eq "AAAA for an allowed name: NOERROR, no answer" "NOERROR " "$Q_STATUS $Q_ANSWER"
assert_not_forwarded "the AAAA query never reached the upstream" api.github.com
q @"$DNS4" api.github.com A
assert_eq "A for the same name works" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "its IPv4 address connects" "$WEB4" 80

b0=$(bpf_counter ipv6_disabled)
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
n=$(nft_counter ipv6_drop)
if [ "${n:-0}" -ge 2 ]; then pass "nft counter ipv6_drop = $n"; else fail "nft counter ipv6_drop >= 2" "it is '$n'"; fi
assert_eq "BPF counter ipv6_disabled unchanged (nftables judged first)" \
	"$b0" "$(bpf_counter ipv6_disabled)"
sleep 0.3
if server_got s "$WEB6"; then
	fail "nothing from the workload reached [$WEB6]" "$(cat "$T/servers-s.log")"
else
	pass "nothing from the workload reached [$WEB6]"
fi
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
