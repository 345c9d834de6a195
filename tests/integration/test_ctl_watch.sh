#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# egressctl watch follows egressd's violation lines: `watch --log FILE`
# tails the log file and pretty-prints each violation as it comes (the
# start line and other events are not shown); `watch` reads a pipe the
# same way; --json passes the violation lines through unchanged; --layer
# and --reason filter; --from-start --no-follow reads what is there and
# exits; a missing file is exit 1, misused options exit 2.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_egressctl
start_upstream
start_egressd --rules "$POLICY"
LOG=$T/egressd.out

# Follow the file from its end, as an operator would.
"$EGRESSCTL" watch --log "$LOG" >"$T/watch.out" 2>"$T/watch.err" &
EGIT_PIDS+=("$!")
# Follow through a pipe too (egressd | egressctl watch), with --json.
"$EGRESSCTL" --json watch < <(tail --pid=$$ -n +1 -f "$LOG") >"$T/pipe.out" 2>&1 &
EGIT_PIDS+=("$!")
sleep 0.5

q @"$DNS4" evil.example.com A
assert_eq "evil.example.com refused" NXDOMAIN "$Q_STATUS"
q @"$DNS4" exfil.attacker.net A
assert_eq "exfil.attacker.net refused" NXDOMAIN "$Q_STATUS"
q @"$DNS4" api.github.com A
assert_eq "api.github.com resolves (no violation)" NOERROR "$Q_STATUS"

watch_has() { grep -qF -- "$2" "$1"; }
if wait_for 3 watch_has "$T/watch.out" exfil.attacker.net; then
	pass "watch --log: the violation shows up while following"
else
	fail "watch --log: the violation shows up while following" \
		"watch.out: $(cat "$T/watch.out")" "watch.err: $(cat "$T/watch.err")"
fi
out=$(cat "$T/watch.out")
if grep -qE 'dns +deny_rule +nxdomain +evil\.example\.com A +from (10\.200\.[0-9]+\.2|127\.0\.0\.1):[0-9]+' <<<"$out"; then
	pass "watch: pretty line (layer, reason, action, name, type, client)"
else
	fail "watch: pretty line (layer, reason, action, name, type, client)" "$out"
fi
assert_contains "watch: default_deny for exfil.attacker.net" "$out" "default_deny"
assert_not_contains "watch: allowed names are not shown" "$out" "api.github.com"
assert_eq "watch: one line per violation, nothing else" 2 "$(wc -l <"$T/watch.out")"

wait_for 3 watch_has "$T/pipe.out" exfil.attacker.net
assert_all_json "watch --json from a pipe: JSON lines only" "$T/pipe.out"
assert_json_line "watch --json: the deny_rule line as egressd wrote it" "$T/pipe.out" \
	event=violation layer=dns reason=deny_rule qname~=evil.example.com action=nxdomain
if grep -vqF '"event":"violation"' "$T/pipe.out"; then
	fail "watch --json: only violation lines" "$(grep -vF '"event":"violation"' "$T/pipe.out")"
else
	pass "watch --json: only violation lines (start line filtered out)"
fi
vline=$(grep -F exfil.attacker.net "$LOG" | head -n 1)
assert_eq "watch --json: lines passed through byte for byte" "$vline" \
	"$(grep -F exfil.attacker.net "$T/pipe.out" | head -n 1)"

# Whole file, then exit; filters.
ctl watch --log "$LOG" --from-start --no-follow
assert_eq "--from-start --no-follow: exit 0" 0 "$CTL_RC"
assert_contains "--from-start: the earlier violation is there" "$CTL_OUT" evil.example.com
ctl w --log "$LOG" --from-start --no-follow --reason deny_rule
assert_eq "--reason deny_rule (prefix w): only evil.example.com" 1 "$(grep -c . <<<"$CTL_OUT")"
assert_contains "--reason deny_rule: evil.example.com" "$CTL_OUT" evil.example.com
ctl watch --log "$LOG" --from-start --no-follow --layer packet
assert_eq "--layer packet: no DNS lines" "" "$CTL_OUT"
ctl_in "$LOG" watch
assert_contains "watch from stdin (a file)" "$CTL_OUT" exfil.attacker.net
assert_eq "watch from stdin: exit 0 at EOF" 0 "$CTL_RC"

# A DNS flood's summary line is a violation too (docs/logs.md).
printf '%s\n' '{"ts":"t","level":"warn","event":"violation_summary","layer":"dns","reason":"default_deny","domain":"flood.example","qname":"x9.flood.example","qtype":"A","action":"nxdomain","client":"127.0.0.1:5","count":120}' >"$T/summary.log"
ctl_in "$T/summary.log" watch
assert_contains "watch shows violation_summary lines" "$CTL_OUT" \
	"x9.flood.example A  from 127.0.0.1:5  (summary: names under flood.example)  x120"

# Errors.
assert_ctl "watch --log of a missing file" 1 watch --log "$T/nope.log"
assert_contains "missing file: named on stderr" "$CTL_ERR" "$T/nope.log"
assert_ctl "--from-start without --log" 2 watch --from-start
assert_ctl "--layer with a bad value" 2 watch --layer ip --log "$LOG"
assert_ctl "watch takes no arguments" 2 watch "$LOG"

egit_finish
