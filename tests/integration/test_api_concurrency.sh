#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317,SC2016
# SPDX-License-Identifier: GPL-2.0-only
#
# Policy updates under DNS load: POST /policy at 20/s for 30 s, alternating
# two policies (A allows api.github.com, B denies it and allows github.com),
# while the workload queries a mix of names as fast as answers come. Every
# answer must be one that A or B gives (never an address for a name
# neither allows, never SERVFAIL or a timeout), every POST 200, egressd
# alive at the end and answering per the last policy. Then the same for
# 5 s under valgrind (deny webhook on): no errors, no definite leaks at a
# clean SIGTERM stop. dns+nft with BPF off, so every apply reprograms
# nftables too.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_dnslib
start_upstream
start_webhook_receiver r "$GW4" 8080

PA='{"defaultAction":"deny","egress":[{"action":"allow","target":"api.github.com"},{"action":"allow","target":"*.pypi.org"}]}'
PB='{"defaultAction":"deny","egress":[{"action":"deny","target":"api.github.com"},{"action":"allow","target":"github.com"},{"action":"allow","target":"*.pypi.org"}]}'
NAMES=(api.github.com github.com files.pypi.org evil.example.com exfil.attacker.net)

export OPENSANDBOX_EGRESS_RULES=$PA
export OPENSANDBOX_EGRESS_DENY_WEBHOOK=http://$GW4:8080/deny
export OPENSANDBOX_EGRESS_BPF=off

# check_answers DESC LOAD-JSON [timeouts-ok]: every answer is one A or B
# gives (and, unless timeouts-ok, every query got one).
check_answers() {
	local out
	out=$("$PY" - "$2" "$X" "${3:-}" <<'EOF_PY'
import json, sys
res, x, to_ok = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "timeouts-ok"
ok = {
    "api.github.com": {"NOERROR 10.200.%s.80" % x, "NXDOMAIN"},
    "github.com": {"NOERROR 10.200.%s.81" % x, "NXDOMAIN"},
    "files.pypi.org": {"NOERROR 10.200.%s.82" % x},
    "evil.example.com": {"NXDOMAIN"},
    "exfil.attacker.net": {"NXDOMAIN"},
}
bad = ["%s: %r x%d" % (n, k, c) for n, v in res.items() if n != "_n"
       for k, c in v.items()
       if k not in ok[n] and not (to_ok and k == "TIMEOUT")]
seen_a = res["api.github.com"].get("NOERROR 10.200.%s.80" % x, 0)
seen_b = res["github.com"].get("NOERROR 10.200.%s.81" % x, 0)
print("bad: " + "; ".join(bad) if bad else
      "ok %d %s" % (res["_n"], "both" if seen_a and seen_b else "one-policy-only"))
EOF_PY
)
	case $out in
	"ok "*" both") pass "$1: ${out#ok }" ;;
	*) fail "$1" "$out" "load: $(head -c 600 <<<"$2")" ;;
	esac
}

# check_flip DESC FLIP-JSON MIN: every POST answered 200, at least MIN.
check_flip() {
	local out
	out=$("$PY" -c '
import json, sys
o = json.loads(sys.argv[1])
c = o["codes"]
print("ok" if list(c) == ["200"] and c["200"] >= int(sys.argv[2]) else "bad")' "$2" "$3")
	if [ "$out" = ok ]; then
		pass "$1"
	else
		fail "$1" "$2"
	fi
}

# ---- 30 s at 20 updates/s ----------------------------------------------
start_egressd_api --mode dns+nft --bpf off
api_flip 30 20 "$PA" "$PB" >"$T/flip.json" &
flip=$!
load=$(dns_load "$DNS4" 31 2000000 "${NAMES[@]}")
wait "$flip"
flip_res=$(cat "$T/flip.json")
egit_log "updates: $flip_res"
check_flip "30 s of updates at 20/s: every POST 200" "$flip_res" 500
check_answers "30 s of DNS load: every answer is A's or B's" "$load"
if kill -0 "$EGRESSD_PID" 2>/dev/null; then
	pass "egressd alive after the run"
else
	fail "egressd alive after the run" "$(tail -3 "$T/egressd.err")"
fi
last=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["last"])' "$flip_res")
q @"$DNS4" api.github.com A
if [ "$last" = A ]; then
	assert_eq "answers per the last policy (A)" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
else
	assert_eq "answers per the last policy (B)" NXDOMAIN "$Q_STATUS"
fi
q @"$DNS4" files.pypi.org A
assert_eq "still answers" "NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"
failed=$(metric 'egressd_policy_applies_total{result="failed"}')
assert_eq "no failed apply" 0 "$failed"
stop_egressd
assert_eq "clean stop after the run" 0 "$EGRESSD_RC"

# ---- the same for 5 s under valgrind ---------------------------------------
# An ASan build (make test SANITIZE=1) cannot run under valgrind; ASan and
# LeakSanitizer watched the run above instead.
if [ "${EGRESSD_SANITIZED:-0}" = 1 ]; then
	egit_finish
fi
if ! command -v valgrind >/dev/null; then
	fail "valgrind run" "valgrind not installed (scripts/deps.sh installs it)"
	egit_finish
fi
cat >"$T/vg-egressd" <<EOF
#!/bin/sh
exec valgrind --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite \
	--log-file="$T/vg.log" "$EGRESSD" "\$@"
EOF
chmod +x "$T/vg-egressd"
# start_egressd's 10 s is short for valgrind on a busy machine: the same
# start, given 60 s.
: >"$T/egressd.out"
: >"$T/egressd.err"
nsenter --net="/run/netns/$SB" -- env --default-signal=INT,QUIT sh -c \
	'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
	sh "$CG/agent" "$T/vg-egressd" --mode dns+nft --bpf off \
	>"$T/egressd.out" 2>"$T/egressd.err" &
EGRESSD_PID=$!
wait_for 60 has_start_line || die "egressd under valgrind: no start line after 60 s"
wait_for 10 api_healthy || die "egressd under valgrind: /healthz not 200"
api_flip 5 20 "$PA" "$PB" >"$T/flip.json" &
flip=$!
load=$(dns_load "$DNS4" 6 2000000 "${NAMES[@]}")
wait "$flip"
# valgrind is slow (an apply can take seconds on a busy machine): a few
# updates are enough to look for errors and leaks.
check_flip "valgrind: every POST 200" "$(cat "$T/flip.json")" 5
# Under valgrind on a loaded machine one apply can hold the (single) loop
# longer than the client's 2 s: a timeout is slowness, not a wrong answer.
check_answers "valgrind: every answer is A's or B's" "$load" timeouts-ok
# Let the webhook's POSTs of the run finish, so the stop is the usual one.
sleep 0.5
sent=$(metric 'egressd_webhook_total{result="sent"}')
if [ "${sent:-0}" -ge 1 ] && [ "$(webhook_count r)" -ge "$sent" ]; then
	pass "valgrind: the deny webhook ran too ($sent POSTs)"
else
	fail "valgrind: the deny webhook ran too" "sent: '$sent', received: $(webhook_count r)"
fi
t0=$(now_ms)
kill -TERM "$EGRESSD_PID"
for _ in $(seq 1 300); do
	kill -0 "$EGRESSD_PID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$EGRESSD_PID" 2>/dev/null; then
	kill -KILL "$EGRESSD_PID"
	rc=killed
else
	wait "$EGRESSD_PID"
	rc=$?
fi
EGRESSD_PID=
egit_log "valgrind stop took $(($(now_ms) - t0)) ms"
assert_eq "valgrind: clean exit (99 = valgrind errors)" 0 "$rc"
summary=$(grep -E 'ERROR SUMMARY|definitely lost' "$T/vg.log" | sed 's/^==[0-9]*== //')
assert_contains "valgrind: no errors" "$summary" "ERROR SUMMARY: 0 errors"
if grep -qE 'definitely lost: [1-9]' "$T/vg.log"; then
	fail "valgrind: no definite leaks" "$(grep -A3 'definitely lost' "$T/vg.log" | head -20)"
else
	pass "valgrind: no definite leaks"
fi
[ "$EGIT_FAIL" -gt 0 ] && sed -n '1,80p' "$T/vg.log" | sed 's/^/  vg| /'

egit_finish
