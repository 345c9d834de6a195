#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# HTTP API conformance, POST/PUT /policy: a POST changes what DNS answers
# at once; GET /policy always has an egress array; reset semantics (empty
# body, {}, null); malformed JSON and invalid targets are 400 naming the
# rule; 413 over the rule cap and over the 1 MiB body limit (declared or
# chunked), and a rejected policy leaves the old one in force.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
start_egressd_api --max-rules 3

api GET /policy
assert_api "deny-all at start (no policy given)" 200 \
	$'{"status":"ok","mode":"deny_all","enforcementMode":"dns","policy":{"egress":[],"defaultAction":"deny"}}\n'
q @"$DNS4" api.github.com A
assert_eq "deny-all: api.github.com refused" NXDOMAIN "$Q_STATUS"

api_json POST /policy '{"defaultAction":"deny","egress":[{"action":"allow","target":"api.github.com"}]}'
assert_api "POST a policy" 200 $'{"status":"ok","mode":"enforcing","enforcementMode":"dns"}\n'
assert_eq "POST reply is JSON" application/json "$API_CT"
q @"$DNS4" api.github.com A
assert_eq "right after the POST: api.github.com resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" github.com A
assert_eq "github.com still falls to the default" NXDOMAIN "$Q_STATUS"
assert_eq "GET /policy shows the rule" '[{"action":"allow","target":"api.github.com"}]' "$(api_egress)"

# Reset, three ways.
api POST /policy --data-binary ''
assert_api "empty body resets to deny-all" 200 \
	$'{"status":"ok","mode":"deny_all","reason":"policy reset to default deny-all"}\n'
assert_eq "after the reset egress is [] (never null)" '[]' "$(api_egress)"
q @"$DNS4" api.github.com A
assert_eq "after the reset: api.github.com refused" NXDOMAIN "$Q_STATUS"

api_json PUT /policy '{"defaultAction":"allow"}'
assert_api "PUT is POST: allow_all" 200 $'{"status":"ok","mode":"allow_all","enforcementMode":"dns"}\n'
assert_eq "allow-all: egress is []" '[]' "$(api_egress)"
q @"$DNS4" github.com A
assert_eq "allow-all: github.com resolves" "NOERROR 10.200.$X.81" "$Q_STATUS $Q_ANSWER"
api_json POST /policy $' \n\t '
assert_api "blank body resets too" 200 \
	$'{"status":"ok","mode":"deny_all","reason":"policy reset to default deny-all"}\n'

api_json PUT /policy '{"defaultAction":"allow"}'
api_json POST /policy '{}'
assert_api "{} is deny-all through the normal path" 200 \
	$'{"status":"ok","mode":"deny_all","enforcementMode":"dns"}\n'
q @"$DNS4" github.com A
assert_eq "after {}: github.com refused" NXDOMAIN "$Q_STATUS"
api_json PUT /policy '{"defaultAction":"allow"}'
api_json POST /policy 'null'
assert_api "null is deny-all through the normal path" 200 \
	$'{"status":"ok","mode":"deny_all","enforcementMode":"dns"}\n'
assert_eq "after null: egress is []" '[]' "$(api_egress)"

# Errors leave the policy in force.
api_json POST /policy '{"defaultAction":"allow","egress":[{"action":"deny","target":"github.com"}]}'
assert_eq "set a known policy" 200 "$API_CODE"
api_json POST /policy '{"defaultAction":"deny",'
assert_api_prefix "malformed JSON: 400" 400 "invalid policy: invalid JSON"
assert_eq "400 is text/plain" "text/plain; charset=utf-8" "$API_CT"
api_json POST /policy '[{"action":"allow","target":"a.com"}]'
assert_api "top-level array: 400" 400 $'invalid policy: policy must be a JSON object, got array\n'
api_json POST /policy '{"egress":[{"action":"allow","target":"ok.com"},{"action":"allow","target":"a.*.com"}]}'
assert_api_prefix "invalid target: 400 naming egress[1]" 400 \
	'invalid policy: egress[1]: malformed wildcard "a.*.com"'
api_json POST /policy '{"egress":[{"action":"permit","target":"a.com"}]}'
assert_api "bad action: 400 naming egress[0]" 400 \
	$'invalid policy: egress[0]: action "permit": must be "allow" or "deny"\n'
api_json POST /policy '{"defaultAction":"block"}'
assert_api_prefix "bad defaultAction: 400" 400 'invalid policy: defaultAction "block"'
api_json POST /policy '{"egress":[{"target":"a.com"},{"target":"b.com"},{"target":"c.com"},{"target":"d.com"}]}'
assert_api "4 rules over a cap of 3: 413" 413 $'egress rule total count 4 exceeds limit 3\n'

# Over 1 MiB: valid JSON padded with blanks, so truncation would show.
"$PY" -c 'import sys; sys.stdout.write("{" + " " * (1 << 20) + "}")' >"$T/big.json"
api POST /policy -H 'Content-Type: application/json' --data-binary @"$T/big.json"
assert_api "1 MiB + 2 bytes body (Content-Length): 413" 413 \
	$'request body too large (limit 1048576 bytes)\n'
api POST /policy -H 'Content-Type: application/json' \
	-H 'Transfer-Encoding: chunked' --data-binary @"$T/big.json"
assert_api "the same body chunked: 413" 413 \
	$'request body too large (limit 1048576 bytes)\n'
"$PY" -c 'import sys; sys.stdout.write("{" + " " * ((1 << 20) - 2) + "}")' >"$T/max.json"
api POST /policy -H 'Content-Type: application/json' --data-binary @"$T/max.json"
assert_api "exactly 1 MiB is accepted ({} = deny-all)" 200 \
	$'{"status":"ok","mode":"deny_all","enforcementMode":"dns"}\n'
api_json POST /policy '{"defaultAction":"allow","egress":[{"action":"deny","target":"github.com"}]}'

assert_eq "after the rejected requests the policy is unchanged" \
	'[{"action":"deny","target":"github.com"}]' "$(api_egress)"
q @"$DNS4" github.com A
assert_eq "and still enforced: github.com denied" NXDOMAIN "$Q_STATUS"
q @"$DNS4" api.github.com A
assert_eq "and api.github.com allowed by default" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"

assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
