#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# The policy file's directory read-only, then full (docs/security.md
# "Faults"): OPENSANDBOX_EGRESS_POLICY_FILE lives on a small tmpfs of the
# test's, remounted read-only, then filled up. A POST /policy is refused
# as a whole before anything is enforced: 500 naming the error, no
# "applied" line for it (the new policy is never in force, not even for
# an instant), one "policy" line with result "failed",
# egressd_policy_applies_total{result="failed"} moves, the file and GET
# /policy keep the previous policy, an address only the refused policy
# allows stays blocked, allowed names keep working, egressd keeps
# running. With room again the same POST applies and is persisted.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
PD=$T/pol
mkdir "$PD" || die "mkdir $PD"
mount -t tmpfs -o size=64k,mode=0700 egit-pol "$PD" || die "mount tmpfs on $PD"
_pol_exit() {
	local rc=$?
	mountpoint -q "$PD" && umount "$PD"
	(exit "$rc")
	egit_cleanup
}
trap _pol_exit EXIT

start_upstream
inet_addr "10.200.$X.66"
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.66:80"
printf '%s\n' "$POLICY" >"$PD/policy.json"
export OPENSANDBOX_EGRESS_POLICY_FILE=$PD/policy.json
export OPENSANDBOX_EGRESS_BPF=off
start_egressd_api --mode dns+nft --bpf off
assert_contains "the policy file is the source at start" "$(api_egress)" \
	'{"action":"deny","target":"evil.example.com"}'

NEW='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"10.200.'$X'.66/32"}]}'

applied_lines() {
	grep -cE '"event" *: *"policy".*"result" *: *"applied"' "$T/egressd.out"
}

# refused WHAT ERRNO-TEXT: POST $NEW must be refused with ERRNO-TEXT and
# change nothing.
refused() {
	local what=$1 why=$2 file0 ap0 af0 af1 fl0
	file0=$(cat "$PD/policy.json")
	ap0=$(applied_lines)
	af0=$(metric 'egressd_policy_applies_total{result="failed"}')
	fl0=$(grep -cE '"result" *: *"failed"' "$T/egressd.out")
	api_json POST /policy "$NEW"
	assert_eq "$what: POST /policy is refused" 500 "$API_CODE"
	assert_contains "$what: the answer names the error" "$API_BODY" "$why"
	assert_eq "$what: the refused policy was never applied (no applied line)" \
		"$ap0" "$(applied_lines)"
	wait_for 3 test "$(grep -cE '"result" *: *"failed"' "$T/egressd.out")" -gt "$fl0"
	if "$PY" - "$T/egressd.out" "$fl0" "$why" <<'EOF_PY'
import json, sys
n, seen = int(sys.argv[2]), 0
for l in open(sys.argv[1], errors="replace"):
    try:
        o = json.loads(l)
    except ValueError:
        continue
    if o.get("event") == "policy" and o.get("result") == "failed":
        seen += 1
        if seen > n and sys.argv[3] in o.get("error", ""):
            sys.exit(0)
sys.exit(1)
EOF_PY
	then
		pass "$what: a policy line says failed, with the error"
	else
		fail "$what: a policy line says failed, with the error" "$(tail -3 "$T/egressd.out")"
	fi
	af1=$(metric 'egressd_policy_applies_total{result="failed"}')
	if [ "$af1" -gt "$af0" ] 2>/dev/null; then
		pass "$what: egressd_policy_applies_total{result=failed} ($af0 -> $af1)"
	else
		fail "$what: egressd_policy_applies_total{result=failed}" "$af0 -> $af1"
	fi
	assert_eq "$what: the policy file is unchanged" "$file0" "$(cat "$PD/policy.json")"
	assert_contains "$what: GET /policy is the previous policy" "$(api_egress)" \
		'{"action":"deny","target":"evil.example.com"}'
	assert_blocked "$what: 10.200.$X.66:80 (only the refused policy allows it) stays blocked" \
		"10.200.$X.66" 80
	q @"$DNS4" files.pypi.org A
	assert_eq "$what: the previous policy still answers (files.pypi.org)" \
		"NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
	if kill -0 "$EGRESSD_PID" 2>/dev/null; then
		pass "$what: egressd still running"
	else
		fail "$what: egressd still running"
	fi
}

mount -o remount,ro "$PD" || die "remount $PD read-only"
refused "read-only" "Read-only file system"

mount -o remount,rw "$PD" || die "remount $PD read-write"
dd if=/dev/zero of="$PD/fill" bs=4k 2>/dev/null
refused "full" "No space left on device"
left=("$PD"/policy.json.*)
if [ -e "${left[0]}" ]; then
	fail "full: no temporary file left behind" "$(ls -la "$PD")"
else
	pass "full: no temporary file left behind"
fi

rm -f "$PD/fill"
api_json POST /policy "$NEW"
assert_eq "with room again: the policy applies" 200 "$API_CODE"
assert_contains "with room again: the file holds it" "$(cat "$PD/policy.json")" "10.200.$X.66/32"
assert_connects "with room again: 10.200.$X.66:80 connects" "10.200.$X.66" 80
if server_got web "tcp 10.200.$X.66 80" &&
	[ "$(grep -c "tcp 10.200.$X.66 80" "$T/servers-web.log")" = 1 ]; then
	pass "10.200.$X.66 saw only the connection made once it was allowed"
else
	fail "10.200.$X.66 saw only the connection made once it was allowed" "$(cat "$T/servers-web.log")"
fi
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
