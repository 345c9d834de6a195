#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Upstreams are tried in order: with the first one dead (never answers) or
# refusing (nothing listens: ICMP port unreachable), the second answers.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
write_zone "$T/zone"
start_fakedns dead --listen "$DNS4B" --drop
start_fakedns up --zone "$T/zone" --listen "$DNS4"
export OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT=1

start_egressd --rules "$POLICY" --dns-upstream "$DNS4B,$DNS4"
q +time=5 @"$DNS4" api.github.com A
assert_eq "first upstream dead: second one answers (udp)" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
# Tried first, unless its start probe (1 s here) failed before the query
# came: then it is skipped (test_dns_upstream_probe).
if upstream_saw api.github.com dead || grep -q '^udp \. NS$' "$T/fakedns-dead.log"; then
	pass "the dead upstream was tried first, or probed first"
else
	fail "the dead upstream was tried first, or probed first" "$(fakedns_log dead)"
fi
assert_contains "the second upstream answered" "$(fakedns_log up)" "api.github.com A"
q +time=5 +tcp @"$DNS4" files.pypi.org A
assert_eq "first upstream dead: second one answers (tcp client)" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
stop_egressd

# First upstream refuses (no server on that port): ICMP unreachable.
start_egressd --rules "$POLICY" --dns-upstream "$GW4:5353,[$DNS6B]:5353,$DNS4"
q +time=5 @"$DNS4" api.github.com A
assert_eq "first upstreams refuse: third one answers" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
stop_egressd

# v6 upstream with a port, after a dead one.
start_fakedns up6 --zone "$T/zone" --listen "[$DNS6]:5300"
start_egressd --rules "$POLICY" --dns-upstream "$DNS4B,[$DNS6]:5300"
q +time=5 @"$DNS4" api.github.com AAAA
assert_eq "failover to a v6 upstream with a port" "NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
assert_contains "the v6 upstream answered" "$(fakedns_log up6)" "api.github.com AAAA"
egit_finish
