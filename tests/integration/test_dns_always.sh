#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Always-rules: deny.always beats a user allow, allow.always beats the
# user's default deny, and an edit of allow.always while egressd runs takes
# effect within 5 s.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
rules=$OPENSANDBOX_EGRESS_RULES_DIR
printf '# operator denies\napi.github.com\n' >"$rules/deny.always"
printf 'evil.example.com\n' >"$rules/allow.always"
start_egressd --rules "$POLICY"

q @"$DNS4" api.github.com A
assert_eq "deny.always beats the user's allow" NXDOMAIN "$Q_STATUS"
wait_json_line "violation line with reason deny_rule" "$T/egressd.out" \
	event=violation layer=dns qname~=api.github.com reason=deny_rule action=nxdomain
q @"$DNS4" evil.example.com A
assert_eq "allow.always beats the user's deny rule" "NOERROR 10.200.$X.66" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" files.pypi.org A
assert_eq "user allow still applies" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" exfil.attacker.net A
assert_eq "not in allow.always yet: denied" NXDOMAIN "$Q_STATUS"

# Edit allow.always while running (write a new file and rename it in, as
# an operator's tooling would; then also an in-place append).
printf 'evil.example.com\nexfil.attacker.net\n' >"$rules/allow.always.new"
mv "$rules/allow.always.new" "$rules/allow.always"
t0=$(now_ms)
allowed() {
	q @"$DNS4" exfil.attacker.net A
	[ "$Q_STATUS" = NOERROR ]
}
if wait_for 6 allowed; then
	pass "allow.always edit applied in $(($(now_ms) - t0)) ms"
else
	fail "allow.always edit applied within 5 s" "still $Q_STATUS"
fi
echo "github.com" >>"$rules/allow.always"
t0=$(now_ms)
allowed2() {
	q @"$DNS4" github.com A
	[ "$Q_STATUS" = NOERROR ]
}
if wait_for 6 allowed2; then
	pass "in-place append to allow.always applied in $(($(now_ms) - t0)) ms"
else
	fail "in-place append to allow.always applied within 5 s" "still $Q_STATUS"
fi

# Removing the deny.always entry re-enables the user's allow.
: >"$rules/deny.always"
t0=$(now_ms)
allowed3() {
	q @"$DNS4" api.github.com A
	[ "$Q_STATUS" = NOERROR ]
}
if wait_for 6 allowed3; then
	pass "emptied deny.always applied in $(($(now_ms) - t0)) ms"
else
	fail "emptied deny.always applied within 5 s" "still $Q_STATUS"
fi
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
