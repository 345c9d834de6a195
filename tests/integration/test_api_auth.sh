#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# HTTP API conformance, auth and routing: with a token every endpoint but
# /healthz needs OPENSANDBOX-EGRESS-AUTH (401 "unauthorized" otherwise,
# checked before the method); 405 with Allow; Go's 404 text for unknown
# paths; the credential vault answers as the peer without MITM; /status
# and /metrics are served. Without a token no header is needed.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
export OPENSANDBOX_EGRESS_TOKEN=s3cret-token
start_egressd_api --rules "$POLICY"

# /healthz: never authenticated; a header sent anyway is ignored.
api GET /healthz
assert_api "healthz 200 ok after start (no header)" 200 ok
assert_eq "healthz content type" "text/plain; charset=utf-8" "$API_CT"
API_TOKEN=wrong
api GET /healthz
assert_api "healthz ignores a wrong token" 200 ok

API_TOKEN=
api GET /policy
assert_api "GET /policy without the header: 401" 401 $'unauthorized\n'
assert_eq "401 is text/plain" "text/plain; charset=utf-8" "$API_CT"
assert_contains "401 has nosniff" "$API_HDRS" "X-Content-Type-Options: nosniff"
API_TOKEN=wrong
api GET /policy
assert_api "wrong token: 401" 401 $'unauthorized\n'
API_TOKEN=s3cret-tokenX
api GET /policy
assert_api "token with a suffix: 401" 401 $'unauthorized\n'
API_TOKEN=s3cret-toke
api GET /policy
assert_api "token prefix: 401" 401 $'unauthorized\n'
API_TOKEN=wrong
api OPTIONS /policy
assert_api "bad token + unsupported method: 401 (auth before method)" 401 $'unauthorized\n'
api_json POST /policy '{}'
assert_api "bad token: POST refused" 401 $'unauthorized\n'
api GET /status
assert_api "bad token: /status refused" 401 $'unauthorized\n'
api GET /metrics
assert_api "bad token: /metrics refused" 401 $'unauthorized\n'
api GET /credential-vault
assert_api "bad token: /credential-vault refused" 401 $'unauthorized\n'

API_TOKEN=s3cret-token
api GET /policy
assert_eq "right token: 200" 200 "$API_CODE"
assert_eq "GET /policy is application/json" application/json "$API_CT"
assert_contains "GET /policy body" "$API_BODY" '{"status":"ok","mode":"enforcing","enforcementMode":"dns","policy":{"egress":[{"action":"allow","target":"api.github.com"},'
# Header name in another case (only that header sent).
API_TOKEN=
api GET /policy -H "opensandbox-egress-auth: s3cret-token"
assert_eq "header name matched in any case" 200 "$API_CODE"
API_TOKEN=s3cret-token

api OPTIONS /policy
assert_api "OPTIONS /policy: 405" 405 $'method not allowed\n'
assert_contains "405 carries Allow" "$API_HDRS" "Allow: GET, POST, PUT, PATCH, DELETE"
api TRACE /policy
assert_eq "TRACE /policy: 405" 405 "$API_CODE"

api GET /policy/
assert_api "/policy/ is not /policy: Go's 404" 404 $'404 page not found\n'
api GET /nothing
assert_api "unknown path: 404" 404 $'404 page not found\n'

api GET /credential-vault
assert_api "vault GET: 404" 404 $'credential vault not found\n'
api GET /credential-vault/credentials
assert_api "vault sub-path GET: 404" 404 $'credential vault not found\n'
api_json POST /credential-vault/credentials '{"name":"x"}'
assert_api "vault write: 412" 412 $'credential vault requires transparent mitmproxy\n'
api DELETE /credential-vault/bindings/x
assert_api "vault delete: 412" 412 $'credential vault requires transparent mitmproxy\n'

api GET /status
assert_eq "GET /status: 200" 200 "$API_CODE"
assert_eq "/status is JSON" application/json "$API_CT"
if "$PY" -c 'import json, sys; o = json.loads(sys.argv[1]); sys.exit(not isinstance(o, dict))' "$API_BODY" 2>/dev/null; then
	pass "/status body is a JSON object"
else
	fail "/status body is a JSON object" "got: $(head -c 300 <<<"$API_BODY")"
fi
api GET /metrics
assert_eq "GET /metrics: 200" 200 "$API_CODE"
assert_eq "/metrics content type" "text/plain; version=0.0.4; charset=utf-8" "$API_CT"
assert_eq "/metrics: no total mixed into api_requests_total's labels" "" \
	"$(grep 'egressd_api_requests_total{result="all"}' <<<"$API_BODY")"
assert_eq "/metrics: api_requests_total by result ok, unauthorized, error" \
	"error ok unauthorized" \
	"$(sed -n 's/^egressd_api_requests_total{result="\([a-z]*\)"}.*/\1/p' <<<"$API_BODY" | sort | xargs)"
assert_contains "/metrics: DNS round trips have sub-millisecond buckets" \
	"$API_BODY" 'egressd_dns_upstream_seconds_bucket{le="0.0001"}'
api POST /status
assert_eq "POST /status: 405" 405 "$API_CODE"

# Without a token nothing needs the header.
stop_egressd
unset OPENSANDBOX_EGRESS_TOKEN
API_TOKEN=
start_egressd_api --rules "$POLICY"
api GET /policy
assert_eq "no token configured: GET /policy without header is 200" 200 "$API_CODE"
API_TOKEN=anything
api GET /policy
assert_eq "no token configured: any header value is fine" 200 "$API_CODE"

assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
