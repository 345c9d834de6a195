#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A netlink batch the kernel refuses (docs/security.md "Faults"): a
# foreign chain put into table inet egressd holds a reference to the
# static set allow_v4, so the policy apply's incremental batch (which
# recreates that set) is refused with EBUSY, as a whole. egressd then
# replaces the table whole in one transaction: the policy applies, the
# foreign chain is gone, learned addresses are forgotten (blocked until
# their name is answered again: fail closed), and a warning names the
# refusal; egressd_sync_errors_total{backend="nft"} counts the refused
# batch. Never is a blocked address reachable, and egressd keeps running.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
inet_addr "10.200.$X.66"
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.66:80" "tcp:10.200.$X.81:80"
export OPENSANDBOX_EGRESS_BPF=off
start_egressd_api --mode dns+nft --bpf off --rules "$POLICY"

NEW='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"*.pypi.org"},
 {"action":"allow","target":"10.200.'$X'.66/32"}]}'

assert_blocked "before: 10.200.$X.66:80 blocked" "10.200.$X.66" 80
se0=$(metric 'egressd_sync_errors_total{backend="nft"}')
af0=$(metric 'egressd_policy_applies_total{result="failed"}')

# The conflicting object: a chain of someone else's referring to allow_v4.
nft_sb add chain inet egressd foreign ||
	die "cannot add a chain to table inet egressd"
nft_sb add rule inet egressd foreign ip daddr @allow_v4 counter ||
	die "cannot add a rule using @allow_v4"

q @"$DNS4" api.github.com A
assert_connects "before: learned $WEB4:80 connects" "$WEB4" 80
api_json POST /policy "$NEW"
assert_eq "refused batch: the policy still applies (table replaced)" 200 "$API_CODE"
wait_json_line "refused batch: a policy line says applied" "$T/egressd.out" \
	event=policy result=applied trigger=api
wait_for 3 grep -q 'nftables refused the update of table inet egressd' "$T/egressd.out"
assert_contains "refused batch: a warning names the refusal and the replacement" \
	"$(grep -E '"event" *: *"warning"' "$T/egressd.out")" \
	"nftables refused the update of table inet egressd ("
se1=$(metric 'egressd_sync_errors_total{backend="nft"}')
if [ "$se1" -gt "$se0" ]; then
	pass "refused batch: egressd_sync_errors_total{backend=nft} counts it ($se0 -> $se1)"
else
	fail "refused batch: egressd_sync_errors_total{backend=nft} counts it" "$se0 -> $se1"
fi
assert_eq "refused batch: no failed apply" "$af0" \
	"$(metric 'egressd_policy_applies_total{result="failed"}')"
if kill -0 "$EGRESSD_PID" 2>/dev/null; then
	pass "refused batch: egressd still running"
else
	fail "refused batch: egressd still running"
fi
if nft_sb list chain inet egressd foreign >/dev/null 2>&1; then
	fail "refused batch: the foreign chain is gone" "$(nft_sb list chain inet egressd foreign)"
else
	pass "refused batch: the foreign chain is gone"
fi
assert_eq "refused batch: one table inet egressd" 1 "$(nft_tables_named egressd inet)"
assert_contains "refused batch: GET /policy is the new policy" "$(api_egress)" \
	'{"action":"allow","target":"10.200.'"$X"'.66/32"}'
assert_connects "refused batch: 10.200.$X.66:80 (allowed by the new policy) connects" \
	"10.200.$X.66" 80
if nft_learned_has "$WEB4"; then
	fail "refused batch: learned addresses are forgotten" "$WEB4 still in learned_v4"
else
	pass "refused batch: learned addresses are forgotten"
fi
assert_blocked "refused batch: so $WEB4:80 is blocked until answered again" "$WEB4" 80
assert_blocked "refused batch: 10.200.$X.81:80 (github.com, never allowed) blocked" "10.200.$X.81" 80
q @"$DNS4" api.github.com A
assert_eq "refused batch: allowed names still resolve" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "refused batch: and their addresses are learned again" "$WEB4" 80
q @"$DNS4" evil.example.com A
assert_eq "refused batch: denied names still NXDOMAIN" NXDOMAIN "$Q_STATUS"
if server_got web "tcp 10.200.$X.81 80"; then
	fail "the blocked host saw no connection" "$(cat "$T/servers-web.log")"
else
	pass "the blocked host saw no connection"
fi
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
