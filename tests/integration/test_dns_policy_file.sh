#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Policy sources at start: a valid OPENSANDBOX_EGRESS_POLICY_FILE wins over
# OPENSANDBOX_EGRESS_RULES; an invalid file gives a warning and the RULES
# policy is used; with neither, everything is denied.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream

export OPENSANDBOX_EGRESS_RULES='{"defaultAction":"deny","egress":[{"action":"allow","target":"api.github.com"}]}'
printf '%s\n' '{"defaultAction":"deny","egress":[{"action":"allow","target":"files.pypi.org"}]}' >"$T/policy.json"
export OPENSANDBOX_EGRESS_POLICY_FILE=$T/policy.json
start_egressd
q @"$DNS4" files.pypi.org A
assert_eq "valid policy file: its allow applies" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" api.github.com A
assert_eq "valid policy file: RULES ignored" NXDOMAIN "$Q_STATUS"
stop_egressd

printf '%s\n' '{"defaultAction":"deny","egress":[{"action":"maybe","target":"files.pypi.org"}]}' >"$T/policy.json"
start_egressd
q @"$DNS4" api.github.com A
assert_eq "invalid policy file: RULES used" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" files.pypi.org A
assert_eq "invalid policy file: its rules not used" NXDOMAIN "$Q_STATUS"
if grep -qE '"level" *: *"warn' "$T/egressd.out" || grep -qiE 'warn' "$T/egressd.err"; then
	pass "invalid policy file: a warning is logged"
else
	fail "invalid policy file: a warning is logged" "stdout: $(cat "$T/egressd.out")" \
		"stderr: $(cat "$T/egressd.err")"
fi
assert_contains "the warning names the bad rule" "$(cat "$T/egressd.out" "$T/egressd.err")" "egress[0]"
stop_egressd

printf '{"defaultAction":' >"$T/policy.json"
start_egressd
q @"$DNS4" api.github.com A
assert_eq "truncated JSON policy file: RULES used" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
stop_egressd

export OPENSANDBOX_EGRESS_POLICY_FILE=$T/missing.json
start_egressd
q @"$DNS4" api.github.com A
assert_eq "missing policy file: RULES used" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
stop_egressd

unset OPENSANDBOX_EGRESS_POLICY_FILE OPENSANDBOX_EGRESS_RULES
start_egressd
q @"$DNS4" api.github.com A
assert_eq "no policy at all: deny all" NXDOMAIN "$Q_STATUS"
wait_json_line "no policy at all: default_deny violation" "$T/egressd.out" \
	event=violation layer=dns qname~=api.github.com reason=default_deny

# The option wins over the environment variable.
export OPENSANDBOX_EGRESS_RULES='{"defaultAction":"deny"}'
stop_egressd
start_egressd --rules '{"defaultAction":"allow"}'
q @"$DNS4" github.com A
assert_eq "--rules wins over OPENSANDBOX_EGRESS_RULES" "NOERROR 10.200.$X.81" "$Q_STATUS $Q_ANSWER"
egit_finish
