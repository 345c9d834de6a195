#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# egressctl against a running egressd (API with a token): policy
# set/get/patch/delete/reset round trip changes what DNS answers; --json
# output parses; status and health; prefix matching of objects and verbs;
# --help everywhere; exit codes: a wrong token is 1 with the 401 message on
# stderr, an API 400 is 1, usage errors are 2, egressd not running is 3.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_egressctl
start_upstream
export OPENSANDBOX_EGRESS_TOKEN=ctl-secret-$$
start_egressd_api

assert_ctl "health" 0 health
assert_eq "health prints ok" ok "$CTL_OUT"

assert_ctl "policy get at start" 0 policy get
assert_contains "policy get: deny-all at start" "$CTL_OUT" "mode deny_all"
assert_contains "policy get: no rules" "$CTL_OUT" "no rules"

# set FILE
cat >"$T/pol.json" <<'EOP'
{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"deny","target":"*.pypi.org"}]}
EOP
assert_ctl "policy set FILE" 0 policy set "$T/pol.json"
assert_contains "policy set prints the status" "$CTL_OUT" "ok: mode enforcing, enforcement dns"
q @"$DNS4" api.github.com A
assert_eq "after set: api.github.com resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" github.com A
assert_eq "after set: github.com falls to the default" NXDOMAIN "$Q_STATUS"

assert_ctl "policy get" 0 policy get
assert_contains "policy get: header" "$CTL_OUT" "mode enforcing, enforcement dns, defaultAction deny"
if grep -qE '^ +0 +allow +api\.github\.com$' <<<"$CTL_OUT" &&
	grep -qE '^ +1 +deny +\*\.pypi\.org$' <<<"$CTL_OUT"; then
	pass "policy get: table rows # action target"
else
	fail "policy get: table rows # action target" "$CTL_OUT"
fi

assert_ctl "--json policy get" 0 --json policy get
assert_eq "--json policy get is the API JSON" \
	'[{"action":"allow","target":"api.github.com"},{"action":"deny","target":"*.pypi.org"}]' \
	"$(json_eval "$CTL_OUT" 'o["policy"]["egress"]')"
assert_ctl "policy get --json (option after the verb), --pretty" 0 policy get --pretty
assert_eq "--pretty parses too" deny "$(json_eval "$CTL_OUT" 'o["policy"]["defaultAction"]')"

# patch from stdin
echo '[{"action":"allow","target":"github.com"}]' >"$T/patch.json"
ctl_in "$T/patch.json" policy patch -
assert_eq "policy patch - (stdin): exit 0" 0 "$CTL_RC"
q @"$DNS4" github.com A
assert_eq "after patch: github.com resolves" "NOERROR 10.200.$X.81" "$Q_STATUS $Q_ANSWER"
ctl --json policy get
assert_eq "after patch: the patch rule comes first" \
	'["github.com","api.github.com","*.pypi.org"]' \
	"$(json_eval "$CTL_OUT" '[r["target"] for r in o["policy"]["egress"]]')"

# delete
assert_ctl "policy delete TARGET" 0 policy delete GitHub.com
q @"$DNS4" github.com A
assert_eq "after delete: github.com refused again" NXDOMAIN "$Q_STATUS"
assert_ctl "--json policy delete of an unknown target" 0 --json policy delete nothere.example
assert_eq "unknown target: reason in the JSON" "no matching targets found" \
	"$(json_eval "$CTL_OUT" 'o["reason"]')"
q @"$DNS4" api.github.com A
assert_eq "api.github.com still resolves" NOERROR "$Q_STATUS"

# API errors: exit 1, the message on stderr, policy unchanged.
echo '{"defaultAction":"deny",' >"$T/bad.json"
assert_ctl "policy set of malformed JSON" 1 policy set "$T/bad.json"
assert_contains "malformed JSON: egressd's 400 message on stderr" "$CTL_ERR" \
	"400 invalid policy: invalid JSON"
assert_eq "malformed JSON: nothing on stdout" "" "$CTL_OUT"
echo '[{"action":"allow","target":"-a.com"}]' >"$T/badpatch.json"
assert_ctl "policy patch with an invalid target" 1 policy patch "$T/badpatch.json"
assert_contains "invalid patch: the message names patch[0]" "$CTL_ERR" "patch[0]"
: >"$T/empty.json"
assert_ctl "policy set of an empty file is refused locally" 1 policy set "$T/empty.json"
assert_contains "empty file: points at reset" "$CTL_ERR" "policy reset"
q @"$DNS4" api.github.com A
assert_eq "after the errors: api.github.com still resolves" NOERROR "$Q_STATUS"

# Wrong token.
assert_ctl "wrong token" 1 --token wrong policy get
assert_contains "wrong token: 401 message on stderr" "$CTL_ERR" "401 unauthorized"
assert_ctl "wrong token with --json" 1 --json -t wrong status
assert_eq "wrong token --json: error object on stdout" 1 \
	"$(json_eval "$CTL_OUT" 'o["exit"]')"
assert_ctl "wrong token: health needs none" 0 --token wrong health

# status
assert_ctl "status" 0 status
assert_contains "status: mode" "$CTL_OUT" "mode        dns"
assert_contains "status: layers" "$CTL_OUT" "dns on"
assert_contains "status: upstream health" "$CTL_OUT" "$DNS4:53 healthy"
assert_contains "status: violations per reason" "$CTL_OUT" "default_deny"
assert_ctl "--json status" 0 --json status
assert_eq "--json status: policy.rules" 2 "$(json_eval "$CTL_OUT" 'o["policy"]["rules"]')"
assert_eq "--json status: layers.dns.state" on "$(json_eval "$CTL_OUT" 'o["layers"]["dns"]["state"]')"

# Prefix matching (bpftool is_prefix: first match in table order).
assert_ctl "prefix: pol g" 0 pol g
assert_contains "pol g is policy get" "$CTL_OUT" "api.github.com"
assert_ctl "prefix: p g -j" 0 p g -j
assert_eq "p g -j is policy get --json" deny "$(json_eval "$CTL_OUT" 'o["policy"]["defaultAction"]')"
assert_ctl "prefix: st" 0 st
assert_contains "st is status" "$CTL_OUT" "upstreams"
assert_ctl "prefix: he" 0 he
assert_eq "he is health" ok "$CTL_OUT"
assert_ctl "no verb: policy = policy get" 0 policy
assert_contains "policy alone lists the rules" "$CTL_OUT" "api.github.com"
assert_ctl "prefix: po del" 0 po del api.github.com
q @"$DNS4" api.github.com A
assert_eq "po del removed the rule" NXDOMAIN "$Q_STATUS"

# reset
assert_ctl "policy set again" 0 policy set "$T/pol.json"
assert_ctl "policy reset" 0 policy reset
assert_contains "reset: deny_all" "$CTL_OUT" "mode deny_all (policy reset to default deny-all)"
q @"$DNS4" api.github.com A
assert_eq "after reset: api.github.com refused" NXDOMAIN "$Q_STATUS"

# --help on every object and command: exit 0, usage on stdout.
for c in "" "policy" "policy get" "policy set" "policy patch" "policy delete" \
	"policy reset" "status" "maps" "maps show" "maps dump" "watch" "health" "help"; do
	# shellcheck disable=SC2086 # split the command words on purpose
	ctl $c --help
	if [ "$CTL_RC" = 0 ] && grep -q '^Usage' <<<"$CTL_OUT" && [ -z "$CTL_ERR" ]; then
		pass "egressctl $c --help"
	else
		fail "egressctl $c --help" "exit $CTL_RC" "$(head -3 <<<"$CTL_OUT")" "$CTL_ERR"
	fi
done

# Usage errors: exit 2, message on stderr.
assert_ctl "no object" 2
assert_ctl "unknown object" 2 frobnicate
assert_contains "unknown object: named on stderr" "$CTL_ERR" "unknown object 'frobnicate'"
assert_ctl "unknown verb" 2 policy frob
assert_ctl "policy set without FILE" 2 policy set
assert_ctl "policy delete without TARGET" 2 policy delete
assert_ctl "policy get with an argument" 2 policy get extra
assert_ctl "unknown option" 2 --bogus policy get
assert_ctl "option of another command" 2 status --log /dev/null
assert_ctl "bad --addr" 2 --addr nothing status

# egressd not running: exit 3.
stop_egressd
assert_ctl "egressd stopped: policy get" 3 policy get
assert_contains "not running: stderr says it" "$CTL_ERR" "cannot reach egressd"
assert_ctl "egressd stopped: health" 3 health
assert_ctl "egressd stopped: --json status" 3 --json status
assert_eq "not running --json: error object" 3 "$(json_eval "$CTL_OUT" 'o["exit"]')"

egit_finish
