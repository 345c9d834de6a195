#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# HTTP API conformance, applying: a policy the agent refuses in this
# configuration (an IPv6 allow rule with OPENSANDBOX_EGRESS_IPV6=deny) is a
# 400 and leaves the old policy in force; an accepted change is written to
# OPENSANDBOX_EGRESS_POLICY_FILE, a refused one is not, and a restart
# starts from the file.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
export OPENSANDBOX_EGRESS_IPV6=deny
export OPENSANDBOX_EGRESS_POLICY_FILE=$T/policy.json
start_egressd_api --rules "$POLICY"

api_json POST /policy '{"egress":[{"action":"allow","target":"api.github.com"},{"action":"allow","target":"2001:db8::/32"}]}'
assert_api_prefix "IPv6 allow under IPV6=deny: 400 naming egress[1]" 400 \
	'invalid policy: egress[1]'
assert_contains "the reason says why" "$API_BODY" "IPv6"
api_json PATCH /policy '[{"action":"allow","target":"2001:db8::1"}]'
assert_api_prefix "the same through PATCH: 400" 400 'invalid policy: egress[0]'
api_json POST /policy '{"egress":[{"action":"deny","target":"2001:db8::/32"}]}'
assert_eq "an IPv6 deny rule is fine" 200 "$API_CODE"
api_json POST /policy "$POLICY"
assert_eq "back to the sample policy" 200 "$API_CODE"
q @"$DNS4" api.github.com A
assert_eq "sample policy in force: api.github.com resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"

api_json POST /policy '{"defaultAction":"deny","egress":[{"action":"allow","target":"github.com"}]}'
assert_eq "POST github.com only" 200 "$API_CODE"
file=$("$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$T/policy.json" 2>&1)
assert_eq "the policy file holds the applied policy" \
	'{"defaultAction": "deny", "egress": [{"action": "allow", "target": "github.com"}]}' "$file"
assert_eq "the policy file ends in exactly one newline" "0a7d0a" \
	"$(tail -c 3 "$T/policy.json" | od -An -tx1 | tr -d ' \n' | tail -c 6)"
api_json POST /policy '{"egress":[{"action":"allow","target":"a..com"}]}'
assert_eq "invalid POST refused" 400 "$API_CODE"
file2=$("$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$T/policy.json" 2>&1)
assert_eq "a refused POST leaves the file alone" "$file" "$file2"

stop_egressd
start_egressd_api --rules "$POLICY"
assert_eq "after a restart the file wins over the env/option policy" \
	'[{"action":"allow","target":"github.com"}]' "$(api_egress)"
q @"$DNS4" api.github.com A
assert_eq "and is enforced: api.github.com refused" NXDOMAIN "$Q_STATUS"

assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
