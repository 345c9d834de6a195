#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# An upstream that never answers: clients get SERVFAIL once the upstream
# timeout (1 s here) has passed, over UDP and TCP; egressd keeps running
# and denied names are still answered at once.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
write_zone "$T/zone"
start_fakedns up --zone "$T/zone" --listen "$DNS4" --drop
export OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT=1
start_egressd --rules "$POLICY"

limit=2500 # ms: 1 s timeout + margin for nsenter, dig and a loaded machine
q +time=5 @"$DNS4" api.github.com A
assert_eq "udp: dead upstream gives SERVFAIL" SERVFAIL "$Q_STATUS"
if [ "$Q_MS" -le "$limit" ]; then
	pass "udp: SERVFAIL within $limit ms (${Q_MS} ms)"
else
	fail "udp: SERVFAIL within $limit ms" "took ${Q_MS} ms"
fi
q +time=5 +tcp @"$DNS4" files.pypi.org A
assert_eq "tcp: dead upstream gives SERVFAIL" SERVFAIL "$Q_STATUS"
if [ "$Q_MS" -le "$limit" ]; then
	pass "tcp: SERVFAIL within $limit ms (${Q_MS} ms)"
else
	fail "tcp: SERVFAIL within $limit ms" "took ${Q_MS} ms"
fi
assert_contains "the query was tried on the upstream" "$(fakedns_log)" "api.github.com A"
wait_json_line "the dead upstream is reported" "$T/egressd.out" event=warning
assert_contains "the report names the upstream" "$(grep -E '"event" *: *"warning"' "$T/egressd.out")" "$DNS4"

q +time=5 @"$DNS4" evil.example.com A
assert_eq "denied name still NXDOMAIN" NXDOMAIN "$Q_STATUS"
if [ "$Q_MS" -le 1000 ]; then
	pass "denied name answered without waiting for the upstream (${Q_MS} ms)"
else
	fail "denied name answered without waiting for the upstream" "took ${Q_MS} ms"
fi
if kill -0 "$EGRESSD_PID" 2>/dev/null; then
	pass "egressd still running"
else
	fail "egressd still running"
fi
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
