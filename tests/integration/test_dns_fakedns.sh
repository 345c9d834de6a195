#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# The test bench itself, without egressd: the sandbox reaches fakedns in the
# internet namespace over v4 and v6, UDP and TCP, and fakedns answers and
# logs as the other tests expect. When this fails, the other failures are
# about the bench, not egressd.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream --big big.test=40

q @"$DNS4" api.github.com A
assert_eq "udp v4 answer" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q +tcp @"$DNS6" API.GitHub.COM AAAA
assert_eq "tcp v6 answer, mixed case" "NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" nope.example.org A
assert_eq "unknown name is NXDOMAIN" "NXDOMAIN" "$Q_STATUS"
q @"$DNS4" pypi.org TXT
assert_eq "known name, other type is NODATA" "NOERROR " "$Q_STATUS $Q_ANSWER"
q @"$DNS4" alias.github.com A
assert_eq "CNAME chain" "NOERROR api.github.com. $WEB4" "$Q_STATUS $Q_ANSWER"
q +ignore +noedns @"$DNS4" big.test TXT
assert_contains "big answer truncated over UDP" "$Q_OUT" "flags: qr aa tc"
q +tcp @"$DNS4" big.test TXT
assert_eq "big answer complete over TCP" 40 "$(wc -w <<<"$Q_ANSWER")"

log=$(fakedns_log)
assert_contains "query log: udp line" "$log" "udp api.github.com A"
# Names are logged lower-cased (egressd sends them in random case, 0x20).
assert_contains "query log: tcp line, name lower-cased" "$log" "tcp api.github.com AAAA"

# A dead upstream: --drop logs and never answers.
start_fakedns dead --listen "$DNS4B" --drop
q @"$DNS4B" api.github.com A
assert_eq "--drop never answers" TIMEOUT "$Q_STATUS"
assert_contains "--drop still logs" "$(fakedns_log dead)" "udp api.github.com A"

# Nothing listens on the arbitrary address.
q +time=1 @"$ARB4" api.github.com A
assert_eq "no DNS server at $ARB4" TIMEOUT "$Q_STATUS"

egit_finish
