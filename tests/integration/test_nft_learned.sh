#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft: an allowed name's address is unreachable until the workload
# resolves the name through egressd; right after the answer (same address,
# same port) it connects, because the address is learned before the reply
# leaves egressd. IPv4 (A) and IPv6 (AAAA), exact and wildcard rules; a
# denied name teaches nothing.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
start_upstream
inet_addr "10.200.$X.82"
start_servers web "tcp:$WEB4:80" "tcp:[$WEB6]:80" "tcp:10.200.$X.82:80"
start_egressd_nft --rules "$POLICY"
assert_eq "start line: layers.nft.state on" on "$(json_field "$T/egressd.out" start layers.nft.state)"

# IPv4
assert_blocked "before resolving: $WEB4:80 blocked" "$WEB4" 80
wait_json_line "and logged as a default_deny drop" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop dst="$WEB4" dport=80
if nft_learned_has "$WEB4"; then fail "$WEB4 not in learned_v4 before resolving"; else pass "$WEB4 not in learned_v4 before resolving"; fi
q @"$DNS4" api.github.com A
assert_eq "api.github.com A answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
# No sleep: the element must be in place when the answer arrives.
assert_connects "right after resolving: $WEB4:80 connects" "$WEB4" 80
if nft_learned_has "$WEB4"; then pass "$WEB4 in learned_v4"; else fail "$WEB4 in learned_v4" "$(nft_sb list set inet egressd learned_v4 2>&1)"; fi

# IPv6
assert_blocked "before resolving: [$WEB6]:80 blocked" "$WEB6" 80
wait_json_line "and logged as a default_deny drop (v6)" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop family=6 dst="$WEB6" dport=80
q @"$DNS6" api.github.com AAAA
assert_eq "api.github.com AAAA answered" "NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
assert_connects "right after resolving: [$WEB6]:80 connects" "$WEB6" 80
if nft_learned_has "$WEB6"; then pass "$WEB6 in learned_v6"; else fail "$WEB6 in learned_v6" "$(nft_sb list set inet egressd learned_v6 2>&1)"; fi

# A wildcard rule (*.pypi.org), over TCP DNS.
assert_blocked "before resolving: 10.200.$X.82:80 blocked" "10.200.$X.82" 80
q +tcp @"$DNS4" files.pypi.org A
assert_eq "files.pypi.org A answered over TCP" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
assert_connects "after resolving files.pypi.org: 10.200.$X.82:80 connects" "10.200.$X.82" 80

# A denied name teaches nothing: evil.example.com (10.200.X.66) stays blocked.
inet_addr "10.200.$X.66"
start_servers evil "tcp:10.200.$X.66:80"
q @"$DNS4" evil.example.com A
assert_eq "denied name: NXDOMAIN" NXDOMAIN "$Q_STATUS"
assert_blocked "denied name's address still blocked" "10.200.$X.66" 80
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
