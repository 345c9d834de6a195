#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Upstream health probes (the peer's smoke-dns-upstream-probe): a dead
# first upstream is found by the probe at start, so the first query after
# start is answered by the second well under the 10 s timeout, with the
# peer's log line; an upstream where nothing listens (ICMP port
# unreachable) costs no timeout at all; and an upstream that answers the
# probe again is used again.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
write_zone "$T/zone"
start_fakedns up --zone "$T/zone" --listen "$DNS4"
start_fakedns dead --listen "$DNS4B" --drop
export OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT=10

# 1. Dead first upstream; the first query right after the start line.
start_egressd --rules "$POLICY" --dns-upstream "$DNS4B,$DNS4"
q +time=15 @"$DNS4" api.github.com A
assert_eq "dead first upstream: the second answers" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
if [ "$Q_MS" -le 4000 ]; then
	pass "first query after start: no 10 s timeout behind the dead upstream (${Q_MS} ms)"
else
	fail "first query after start: no 10 s timeout behind the dead upstream" "took ${Q_MS} ms"
fi
wait_json_line "the peer's probe line names the dead upstream" "$T/egressd.out" \
	event=error "msg=[dns] upstream probe $DNS4B:53 failed: i/o timeout (no answer within 2000 ms)"
assert_contains "the probe reached the dead upstream" "$(fakedns_log dead)" "udp . NS"
assert_contains "and the live one" "$(fakedns_log up)" "udp . NS"
api GET /metrics
assert_contains "metrics: the dead upstream is not healthy" "$API_BODY" \
	"egressd_dns_upstream_healthy{upstream=\"$DNS4B:53\"} 0"
assert_contains "metrics: the live one is" "$API_BODY" \
	"egressd_dns_upstream_healthy{upstream=\"$DNS4:53\"} 1"
assert_contains "metrics: the dead upstream's failed probe is counted" "$API_BODY" \
	"egressd_dns_upstream_probes_total{upstream=\"$DNS4B:53\",result=\"failed\"} 1"
assert_contains "metrics: the live one's probe answered" "$API_BODY" \
	"egressd_dns_upstream_probes_total{upstream=\"$DNS4:53\",result=\"answered\"} 1"
api GET /status
assert_contains "status: probe failures per upstream" "$API_BODY" '"probeFailures":1'
# As the peer's smoke test: once the probe has run, no wait at all.
q +time=15 @"$DNS4" files.pypi.org A
assert_eq "after the probe: answered" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
if [ "$Q_MS" -le 1000 ]; then
	pass "after the probe: the dead upstream is skipped (${Q_MS} ms)"
else
	fail "after the probe: the dead upstream is skipped" "took ${Q_MS} ms"
fi
if upstream_saw files.pypi.org dead; then
	fail "after the probe: the dead upstream is not asked" "$(fakedns_log dead)"
else
	pass "after the probe: the dead upstream is not asked"
fi
stop_egressd

# 2. The first upstream answers the start probe, then stops listening:
# the next query meets ICMP port unreachable and moves on at once.
stop_pid "$(cat "$T/fakedns-dead.pid")"
start_fakedns first --zone "$T/zone" --listen "$DNS4B"
start_egressd --rules "$POLICY" --dns-upstream "$DNS4B,$DNS4" \
	--dns-upstream-probe-interval 3600
wait_for 3 grep -q ' \. NS' "$T/fakedns-first.log"
sleep 0.3
stop_pid "$(cat "$T/fakedns-first.pid")"
q +time=15 @"$DNS4" api.github.com A
assert_eq "refusing first upstream: the second answers" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
if [ "$Q_MS" -le 1000 ]; then
	pass "port unreachable: immediate failover (${Q_MS} ms)"
else
	fail "port unreachable: immediate failover" "took ${Q_MS} ms"
fi
wait_json_line "the refusing upstream is reported" "$T/egressd.out" event=warning \
	"msg=dns upstream $DNS4B:53 unusable: Connection refused; trying it last until it answers"
stop_egressd

# 3. Probe every second: the refusing upstream is marked dead by a
# round, comes back, and the next round puts it first again.
start_egressd --rules "$POLICY" --dns-upstream "$DNS4B,$DNS4" \
	--dns-upstream-probe-interval 1 --dns-upstream-probe health.example.org
wait_json_line "round: the refusing upstream fails its probe" "$T/egressd.out" \
	event=error "msg=[dns] upstream probe $DNS4B:53 failed: Connection refused"
assert_contains "the configured probe name is asked" "$(fakedns_log up)" "udp health.example.org A"
start_fakedns revived --zone "$T/zone" --listen "$DNS4B"
wait_for 3 grep -q 'health.example.org' "$T/fakedns-revived.log"
wait_json_line "it answers again" "$T/egressd.out" event=info \
	"msg=dns upstream $DNS4B:53 answering again"
q +time=15 @"$DNS4" a.b.pypi.org A
assert_eq "revived upstream answers" "NOERROR 10.200.$X.83" "$Q_STATUS $Q_ANSWER"
if upstream_saw a.b.pypi.org revived; then
	pass "the revived upstream is used again, first"
else
	fail "the revived upstream is used again, first" "$(fakedns_log revived)"
fi
# Every answer here was the reply to a question egressd asked, probes
# included: none may count as late or forged.
assert_eq "no answer counted as bad (probes and queries alike)" 0 \
	"$(metric egressd_dns_bad_answers_total)"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
