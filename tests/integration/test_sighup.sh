#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# SIGHUP: egressd reads the policy file and the always-rules again and
# applies them at once (a "policy" line with "trigger":"sighup"), and keeps
# running. A policy file that became invalid leaves the policy in force.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
rules=$OPENSANDBOX_EGRESS_RULES_DIR
export OPENSANDBOX_EGRESS_POLICY_FILE=$T/policy.json
printf '%s\n' '{"defaultAction":"deny","egress":[{"action":"allow","target":"files.pypi.org"}]}' >"$T/policy.json"
start_egressd --mode dns+nft

q @"$DNS4" files.pypi.org A
assert_eq "policy file at start: its allow applies" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" api.github.com A
assert_eq "policy file at start: not allowed yet" NXDOMAIN "$Q_STATUS"

# New policy file and a new allow.always; only SIGHUP reads the policy file.
printf '%s\n' '{"defaultAction":"deny","egress":[{"action":"allow","target":"api.github.com"}]}' >"$T/policy.json"
printf 'evil.example.com\n' >"$rules/allow.always"
kill -HUP "$EGRESSD_PID"
wait_json_line "policy line with trigger sighup" "$T/egressd.out" \
	event=policy result=applied trigger=sighup source=file allowAlways=1
assert_contains "an info line says what SIGHUP re-reads" \
	"$(grep '"event":"info"' "$T/egressd.out")" "sighup: reading the policy file $T/policy.json"
if kill -0 "$EGRESSD_PID" 2>/dev/null; then
	pass "egressd still runs after SIGHUP"
else
	fail "egressd still runs after SIGHUP" "$(tail -5 "$T/egressd.err")"
fi
q @"$DNS4" api.github.com A
assert_eq "after SIGHUP: the new policy file's allow applies" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" files.pypi.org A
assert_eq "after SIGHUP: the old allow is gone" NXDOMAIN "$Q_STATUS"
q @"$DNS4" evil.example.com A
assert_eq "after SIGHUP: the new allow.always applies" "NOERROR 10.200.$X.66" "$Q_STATUS $Q_ANSWER"

# A broken policy file: warned about, the policy in force stays.
printf '{"defaultAction":' >"$T/policy.json"
kill -HUP "$EGRESSD_PID"
if wait_for 3 grep -q "not reloaded" "$T/egressd.out"; then
	pass "broken policy file on SIGHUP: a warning"
else
	fail "broken policy file on SIGHUP: a warning" "$(tail -5 "$T/egressd.out")"
fi
q @"$DNS4" api.github.com A
assert_eq "broken policy file on SIGHUP: the policy in force stays" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" evil.example.com A
assert_eq "broken policy file on SIGHUP: allow.always stays" "NOERROR 10.200.$X.66" "$Q_STATUS $Q_ANSWER"
if kill -0 "$EGRESSD_PID" 2>/dev/null; then
	pass "egressd still runs after the second SIGHUP"
else
	fail "egressd still runs after the second SIGHUP" "$(tail -5 "$T/egressd.err")"
fi
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
