#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft: a deny CIDR beats an address learned from an allowed name,
# whatever the rule order: api.github.com is allowed (first rule) but its
# addresses lie inside deny CIDRs (later rules), so after resolving it the
# connect is still dropped, with reason deny_rule and the deny_drop counter.
# Another allowed name outside the CIDRs connects (control).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
start_upstream
inet_addr "10.200.$X.82"
start_servers web "tcp:$WEB4:80" "tcp:[$WEB6]:80" "tcp:10.200.$X.82:80"
start_egressd_nft --rules '{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"*.pypi.org"},
 {"action":"deny","target":"10.200.'"$X"'.80/31"},
 {"action":"deny","target":"fd00:200:'"$X"'::80/127"}]}'

q @"$DNS4" api.github.com A
assert_eq "allowed name resolves (the DNS layer allows it)" NOERROR "$Q_STATUS"
# The address is learned (it is a learned IP that the deny set beats).
if nft_learned_has "$WEB4"; then
	pass "$WEB4 is in learned_v4"
else
	fail "$WEB4 is in learned_v4" "$(nft_sb list set inet egressd learned_v4 2>&1)"
fi
before=$(nft_counter deny_drop)
assert_blocked "its address $WEB4 (inside a deny CIDR) is blocked" "$WEB4" 80
wait_json_line "violation with reason deny_rule for $WEB4:80" "$T/egressd.out" \
	event=violation layer=packet reason=deny_rule action=drop dst="$WEB4" dport=80
q @"$DNS4" api.github.com AAAA
assert_eq "allowed name resolves AAAA" NOERROR "$Q_STATUS"
assert_blocked "its address $WEB6 (inside a deny CIDR) is blocked" "$WEB6" 80
wait_json_line "violation with reason deny_rule for [$WEB6]:80" "$T/egressd.out" \
	event=violation layer=packet reason=deny_rule action=drop dst="$WEB6" dport=80
after=$(nft_counter deny_drop)
if [ -n "$after" ] && [ "$after" -gt "${before:-0}" ]; then
	pass "nft counter deny_drop moved: $before -> $after"
else
	fail "nft counter deny_drop increased" "before '$before' after '$after'"
fi
assert_eq "default_drop did not count these" 0 "$(nft_counter default_drop)"

q @"$DNS4" files.pypi.org A
assert_eq "control: files.pypi.org resolves" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
assert_connects "control: 10.200.$X.82 (outside the deny CIDRs) connects" "10.200.$X.82" 80
egit_finish
