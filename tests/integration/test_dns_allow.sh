#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Allowed names are forwarded and answered with the upstream's records over
# UDP and TCP, v4 and v6 clients; names match in any case. That these
# answers arrive at all also shows egressd's own upstream queries are not
# redirected back to itself (exempt by its cgroup).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
start_egressd --rules "$POLICY"

q @"$DNS4" api.github.com A
assert_eq "udp: allowed A answered by the upstream" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q +tcp @"$DNS4" api.github.com A
assert_eq "tcp: allowed A answered by the upstream" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" api.github.com AAAA
assert_eq "udp: allowed AAAA answered" "NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
q +tcp @"$DNS6" api.github.com AAAA
assert_eq "tcp over v6: allowed AAAA answered" "NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" api.github.com TXT
assert_eq "allowed name, type the upstream lacks: NODATA passed through" \
	"NOERROR " "$Q_STATUS $Q_ANSWER"

# (d) mixed case query matches the lower-case rule, over UDP and TCP.
q @"$DNS4" API.GitHub.COM A
assert_eq "udp: API.GitHub.COM matches rule api.github.com" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q +tcp @"$DNS4" Api.GITHUB.com A
assert_eq "tcp: Api.GITHUB.com matches rule api.github.com" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
# A trailing dot is part of every dig query; an explicit FQDN works too.
q @"$DNS4" api.github.com. A
assert_eq "fully qualified name answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"

log=$(fakedns_log)
assert_contains "upstream saw the UDP query" "$log" "api.github.com A"
assert_contains "upstream saw the mixed-case query" "$(tr '[:upper:]' '[:lower:]' <<<"$log")" "api.github.com txt"

# Allowed name the upstream does not know: its NXDOMAIN is passed through.
start_fakedns nx --listen "$DNS4B" --zone /dev/null
stop_egressd
start_egressd --rules '{"defaultAction":"allow"}' --dns-upstream "$DNS4B"
q @"$DNS4" unknown.example.org A
assert_eq "upstream NXDOMAIN passed through (default allow)" NXDOMAIN "$Q_STATUS"
assert_contains "and the query did reach that upstream" "$(fakedns_log nx)" "unknown.example.org A"

assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
