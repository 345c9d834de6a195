#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# HTTP API conformance, PATCH and DELETE /policy: a patched rule goes first
# and beats an older wildcard (allow www.x.com over deny *.x.com makes it
# resolve), same targets are replaced case-insensitively, the rule cap
# applies to the merged list; DELETE removes exact targets in any case and
# answers "no matching targets found" when nothing matched; error bodies as
# the peer's.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
cat >"$T/zone" <<EOF_ZONE
www.x.com    A 10.200.$X.91
other.x.com  A 10.200.$X.92
y.com        A 10.200.$X.93
EOF_ZONE
start_fakedns up --zone "$T/zone" --listen "$DNS4"
export OPENSANDBOX_EGRESS_TOKEN=patch-token
API_TOKEN=patch-token
start_egressd_api --max-rules 4 --rules \
	'{"defaultAction":"allow","egress":[{"action":"deny","target":"*.x.com"},{"action":"deny","target":"y.com"}]}'

q @"$DNS4" www.x.com A
assert_eq "before: www.x.com denied by *.x.com" NXDOMAIN "$Q_STATUS"

api_json PATCH /policy '[{"action":"allow","target":"www.x.com"}]'
assert_api "PATCH allow www.x.com" 200 $'{"status":"ok","mode":"enforcing","enforcementMode":"dns"}\n'
q @"$DNS4" www.x.com A
assert_eq "after PATCH: www.x.com resolves (patch first)" "NOERROR 10.200.$X.91" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" other.x.com A
assert_eq "other.x.com still denied by *.x.com" NXDOMAIN "$Q_STATUS"
assert_eq "merged order: patch, then old rules" \
	'[{"action":"allow","target":"www.x.com"},{"action":"deny","target":"*.x.com"},{"action":"deny","target":"y.com"}]' \
	"$(api_egress)"

# Same target in another case replaces the old rule, first patch rule wins.
api_json PATCH /policy '[{"action":"allow","target":"Y.COM"},{"action":"deny","target":"y.com"}]'
assert_eq "PATCH replacing y.com" 200 "$API_CODE"
assert_eq "y.com replaced by the first patch rule" \
	'[{"action":"allow","target":"Y.COM"},{"action":"allow","target":"www.x.com"},{"action":"deny","target":"*.x.com"}]' \
	"$(api_egress)"
q @"$DNS4" y.com A
assert_eq "y.com now resolves" "NOERROR 10.200.$X.93" "$Q_STATUS $Q_ANSWER"

# Errors.
api PATCH /policy --data-binary ''
assert_api "PATCH empty body" 400 $'empty body\n'
api_json PATCH /policy '[]'
assert_api "PATCH []" 400 $'invalid patch rules: empty array\n'
api_json PATCH /policy '{"action":"allow","target":"a.com"}'
assert_api "PATCH with an object" 400 $'invalid patch rules: must be a JSON array, got object\n'
api_json PATCH /policy '[{"action":"allow"'
assert_api_prefix "PATCH malformed JSON" 400 'invalid patch rules: invalid JSON'
api_json PATCH /policy '[{"action":"allow","target":"a.com"},{"action":"allow","target":"exa mple.com"}]'
assert_api_prefix "PATCH invalid target names patch[1]" 400 \
	'invalid patch rules: patch[1]: invalid domain name "exa mple.com"'
api_json PATCH /policy '[{"action":"allow","target":"n1.com"},{"action":"allow","target":"n2.com"}]'
assert_api "PATCH: merged list over the cap (5 > 4): 413" 413 \
	$'egress rule total count 5 exceeds limit 4\n'
api OPTIONS /policy
assert_eq "405 with the token" 405 "$API_CODE"
assert_eq "failed PATCHes changed nothing" \
	'[{"action":"allow","target":"Y.COM"},{"action":"allow","target":"www.x.com"},{"action":"deny","target":"*.x.com"}]' \
	"$(api_egress)"

# DELETE.
api_json DELETE /policy '["nothere.com","x.com"]'
assert_api "DELETE unknown targets" 200 \
	$'{"status":"ok","mode":"enforcing","enforcementMode":"dns","reason":"no matching targets found"}\n'
api_json DELETE /policy '["www.x.com"]'
assert_eq "DELETE www.x.com" 200 "$API_CODE"
q @"$DNS4" www.x.com A
assert_eq "after DELETE: www.x.com denied again by *.x.com" NXDOMAIN "$Q_STATUS"
api_json DELETE /policy '["  *.X.com "]'
assert_api "DELETE trims and ignores case" 200 $'{"status":"ok","mode":"enforcing","enforcementMode":"dns"}\n'
q @"$DNS4" other.x.com A
assert_eq "after deleting *.x.com: other.x.com resolves (default allow)" "NOERROR 10.200.$X.92" "$Q_STATUS $Q_ANSWER"
api_json DELETE /policy '["y.com"]'
assert_api "deleting the last rule: allow_all" 200 $'{"status":"ok","mode":"allow_all","enforcementMode":"dns"}\n'
assert_eq "egress is [] after deleting everything" '[]' "$(api_egress)"

api DELETE /policy --data-binary ''
assert_api "DELETE empty body" 400 $'empty body\n'
api_json DELETE /policy '[]'
assert_api "DELETE []" 400 $'invalid delete targets: empty array\n'
api_json DELETE /policy '["a.com",1]'
assert_api "DELETE with a number" 400 $'invalid delete targets: [1]: must be a string, got number\n'
api_json DELETE /policy '"a.com"'
assert_api "DELETE with a string" 400 $'invalid delete targets: must be a JSON array, got string\n'

API_TOKEN=
api_json PATCH /policy '[{"action":"deny","target":"www.x.com"}]'
assert_api "PATCH without the token: 401" 401 $'unauthorized\n'
api_json DELETE /policy '["y.com"]'
assert_api "DELETE without the token: 401" 401 $'unauthorized\n'

assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
