#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Every port-53 query leaving the sandbox is answered by egressd, whatever
# address the workload sends it to: the "official" resolver and an
# arbitrary address where no DNS server exists, over UDP and TCP, IPv4 and
# IPv6. A denied name sent to the arbitrary address is answered NXDOMAIN
# (by egressd) rather than timing out.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
start_egressd --rules "$POLICY"

for proto in udp tcp; do
	opt=+notcp
	[ "$proto" = tcp ] && opt=+tcp
	for server in "$DNS4" "$ARB4" 10.200.77.77; do
		q "$opt" @"$server" api.github.com A
		assert_eq "$proto to $server:53: allowed name answered" \
			"NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	done
	for server in "$DNS6" "$ARB6" fd00:200:77::77; do
		q "$opt" @"$server" api.github.com AAAA
		assert_eq "$proto to [$server]:53: allowed name answered" \
			"NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
	done
	q "$opt" @"$ARB4" evil.example.com A
	assert_eq "$proto to $ARB4:53: denied name gets NXDOMAIN" NXDOMAIN "$Q_STATUS"
	q "$opt" @"$ARB6" exfil.attacker.net A
	assert_eq "$proto to [$ARB6]:53: denied name gets NXDOMAIN" NXDOMAIN "$Q_STATUS"
done

# Loopback resolvers are redirected as well (a stub resolver on 127.0.0.53).
q @127.0.0.53 api.github.com A
assert_eq "udp to 127.0.0.53:53 answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"

assert_file_not_contains_i "denied names never reached the upstream" "$T/fakedns-up.log" evil.example.com
assert_file_not_contains_i "denied names never reached the upstream (v6)" "$T/fakedns-up.log" exfil.attacker.net
egit_finish
