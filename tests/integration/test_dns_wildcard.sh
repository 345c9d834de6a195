#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A "*.pypi.org" rule allows names at any depth below pypi.org but not the
# apex itself (under default deny).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
start_egressd --rules '{"defaultAction":"deny","egress":[{"action":"allow","target":"*.pypi.org"}]}'

q @"$DNS4" files.pypi.org A
assert_eq "files.pypi.org allowed by *.pypi.org" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
q +tcp @"$DNS4" a.b.pypi.org A
assert_eq "a.b.pypi.org (two levels down) allowed" "NOERROR 10.200.$X.83" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" FILES.PyPI.org A
assert_eq "wildcard matches in any case" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" pypi.org A
assert_eq "apex pypi.org not allowed by *.pypi.org" NXDOMAIN "$Q_STATUS"
q +tcp @"$DNS4" pypi.org A
assert_eq "apex denied over TCP too" NXDOMAIN "$Q_STATUS"
q @"$DNS4" notpypi.org A
assert_eq "notpypi.org is not below pypi.org" NXDOMAIN "$Q_STATUS"
q @"$DNS4" pypi.org.evil.example.com A
assert_eq "pypi.org.evil.example.com is not below pypi.org" NXDOMAIN "$Q_STATUS"

wait_for 2 grep -q "a.b.pypi.org" "$T/fakedns-up.log"
assert_file_contains_i "allowed names were forwarded" "$T/fakedns-up.log" "udp files.pypi.org A"
assert_not_forwarded "the apex never reached the upstream" pypi.org
assert_file_not_contains_i "notpypi.org never reached the upstream" "$T/fakedns-up.log" notpypi.org
wait_json_line "violation line for the apex" "$T/egressd.out" \
	event=violation layer=dns qname~=pypi.org reason=default_deny action=nxdomain
egit_finish
