#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft: an address inside an IP/CIDR allow rule connects at once, with
# no DNS lookup at all; an address just outside the CIDR is blocked.
# IPv4 and IPv6; a single-IP rule as well.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
start_upstream
inet_addr "10.200.$X.82" "10.200.$X.90" "fd00:200:$X::82" "fd00:200:$X::90"
start_servers web "tcp:10.200.$X.81:80" "tcp:10.200.$X.82:80" "tcp:10.200.$X.90:80" \
	"tcp:[fd00:200:$X::81]:80" "tcp:[fd00:200:$X::82]:80" "tcp:[fd00:200:$X::90]:80"
start_egressd_nft --rules '{"defaultAction":"deny","egress":[
 {"action":"allow","target":"10.200.'"$X"'.80/31"},
 {"action":"allow","target":"fd00:200:'"$X"'::80/127"},
 {"action":"allow","target":"10.200.'"$X"'.90"}]}'

assert_connects "10.200.$X.81 (in 10.200.$X.80/31) connects without DNS" "10.200.$X.81" 80
assert_connects "fd00:200:$X::81 (in fd00:200:$X::80/127) connects without DNS" "fd00:200:$X::81" 80
assert_connects "10.200.$X.90 (single-IP rule) connects" "10.200.$X.90" 80
assert_blocked "10.200.$X.82 (just outside the /31) blocked" "10.200.$X.82" 80
assert_blocked "fd00:200:$X::82 (just outside the /127) blocked" "fd00:200:$X::82" 80
wait_json_line "violation line for 10.200.$X.82" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop dst="10.200.$X.82" dport=80
if nft_sb list set inet egressd allow_v4 | grep -q "10.200.$X.80/31"; then
	pass "allow_v4 holds 10.200.$X.80/31"
else
	fail "allow_v4 holds 10.200.$X.80/31" "$(nft_sb list set inet egressd allow_v4 2>&1)"
fi
assert_eq "no DNS query reached the upstream" "" "$(fakedns_queries)"
assert_eq "learned_v4 is empty" "" \
	"$(nft_sb list set inet egressd learned_v4 | sed -n 's/.*elements = //p')"
egit_finish
