#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# /healthz and the policy file under stress:
#  - /healthz, polled every few ms from before egressd is started, never
#    answers 200 before the start line is in the log (enforcement is in
#    place by then).
#  - the policy file survives a crash mid-write: egressd is killed -9 in a
#    loop while policies are POSTed as fast as they are answered; after
#    each kill the file is a complete, valid policy equal to one that was
#    posted (old or new, never half of one), and the next egressd loads it.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
export OPENSANDBOX_EGRESS_HTTP_ADDR=$API_ADDR
export OPENSANDBOX_EGRESS_BPF=off

# ---- /healthz only after the start line ----------------------------------
rm -f "$T/poll.stop" "$T/poll.stop.ready"
nsenter --net="/run/netns/$SB" -- "$PY" - "$API_ADDR" "$T/egressd.out" "$T/poll.stop" \
	>"$T/poll.json" 2>"$T/poll.err" <<'EOF_PY' &
import http.client, json, os, re, sys, time
addr, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = addr.rsplit(":", 1)
start = re.compile(r'"event" *: *"start"')
codes, early, first_ok = {}, 0, None
t_end = time.monotonic() + 20
ready = stop + ".ready"
while time.monotonic() < t_end and not os.path.exists(stop):
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=2)
        c.request("GET", "/healthz")
        r = c.getresponse()
        code, body = r.status, r.read()
        c.close()
    except OSError:
        code = "refused"
    if code == 200:
        try:
            seen = bool(start.search(open(out, errors="replace").read()))
        except OSError:
            seen = False
        if not seen:
            early += 1
        if first_ok is None:
            first_ok = time.monotonic()
    codes[str(code)] = codes.get(str(code), 0) + 1
    if not os.path.exists(ready):
        open(ready, "w").close()
    time.sleep(0.003)
print(json.dumps({"codes": codes, "early": early}))
EOF_PY
poller=$!
EGIT_PIDS+=("$poller")
# Start egressd once the poller has been answered (refused) at least once.
wait_for 5 test -e "$T/poll.stop.ready" || die "healthz poller did not start"
start_egressd --bpf off
wait_for 5 api_healthy
sleep 0.3
touch "$T/poll.stop"
wait "$poller"
poll=$(cat "$T/poll.json")
egit_log "healthz poll: $poll"
res=$("$PY" -c '
import json, sys
o = json.loads(sys.argv[1])
c = o["codes"]
print("refused-first" if c.get("refused") else "no-refusal",
      "got-200" if c.get("200") else "no-200", "early=%d" % o["early"])' "$poll")
assert_eq "healthz: refused before start, 200 after, never 200 before the start line" \
	"refused-first got-200 early=0" "$res"
stop_egressd

# ---- the policy file survives kill -9 mid-write ----------------------------
# Two big policies (so each write takes a while) and a tiny one.
"$PY" - "$T" <<'EOF_PY'
import json, sys
t = sys.argv[1]
def pol(tag, n):
    return {"defaultAction": "deny",
            "egress": [{"action": "allow", "target": "h%d.%s.example.com" % (i, tag)}
                       for i in range(n)]}
for tag, n in (("a", 1500), ("b", 1200), ("c", 1)):
    json.dump(pol(tag, n), open("%s/pol-%s.json" % (t, tag), "w"))
EOF_PY
PF=$T/policy.json
export OPENSANDBOX_EGRESS_POLICY_FILE=$PF

# policy_file_is: which posted policy the file holds (a, b, c), or why not.
policy_file_is() {
	"$PY" - "$PF" "$T" <<'EOF_PY'
import json, sys
pf, t = sys.argv[1], sys.argv[2]
try:
    got = json.load(open(pf))
except FileNotFoundError:
    print("missing"); sys.exit(0)
except ValueError as e:
    print("invalid JSON: %s (size %d)" % (e, len(open(pf, "rb").read()))); sys.exit(0)
for tag in "abc":
    if json.load(open("%s/pol-%s.json" % (t, tag))) == got:
        print(tag); sys.exit(0)
print("valid JSON but not a posted policy")
EOF_PY
}

# A POST loop alternating the three policies until killed.
post_loop() {
	# exec: the background job's pid is the poster itself (nsenter execs
	# python), so killing it stops the POSTs.
	exec nsenter --net="/run/netns/$SB" -- "$PY" - "$API_ADDR" "$T" <<'EOF_PY'
import http.client, sys
addr, t = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(":", 1)
bodies = [open("%s/pol-%s.json" % (t, k), "rb").read() for k in "abc"]
i = 0
while True:
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=2)
        c.request("POST", "/policy", bodies[i % 3],
                  {"Content-Type": "application/json"})
        c.getresponse().read()
        c.close()
    except OSError:
        pass
    i += 1
EOF_PY
}

# First a known state: c persisted.
start_egressd --bpf off
wait_for 5 api_healthy || die "API not up"
api_json POST /policy "$(cat "$T/pol-c.json")"
assert_eq "POST of the first policy" 200 "$API_CODE"
assert_eq "file holds it" c "$(policy_file_is)"

# kill_on_new_temp PID: SIGKILL PID as soon as a policy.json.* file that
# was not there before appears (prints "mid-write"), or after 3 s
# ("timeout").
kill_on_new_temp() {
	"$PY" - "$1" "$T" <<'EOF_PY'
import os, signal, sys, time
pid, d = int(sys.argv[1]), sys.argv[2]
old = {f for f in os.listdir(d) if f.startswith("policy.json.")}
end = time.monotonic() + 3
while time.monotonic() < end:
    if any(f.startswith("policy.json.") and f not in old for f in os.listdir(d)):
        os.kill(pid, signal.SIGKILL)
        print("mid-write")
        sys.exit(0)
print("timeout")
EOF_PY
}

bad=0
kills=0
midwrite=0
declare -A held=()
for i in 1 2 3 4 5 6 7 8; do
	[ -n "$EGRESSD_PID" ] || start_egressd --bpf off
	wait_for 5 api_healthy || { fail "round $i: API up after restart" "$API_CODE"; break; }
	if [ "$i" -gt 1 ]; then
		# The previous round's file is what this egressd started with.
		src=$(json_field "$T/egressd.out" policy source)
		if [ "$src" != file ]; then
			bad=$((bad + 1))
			fail "round $i: restarted egressd loads the policy file" "source: '$src'"
		fi
	fi
	post_loop &
	poster=$!
	EGIT_PIDS+=("$poster")
	if [ $((i % 2)) = 1 ]; then
		# Odd rounds: kill the moment a new temporary file appears, i.e.
		# between the temp file's creation and its rename.
		how=$(kill_on_new_temp "$EGRESSD_PID")
		[ "$how" = mid-write ] && midwrite=$((midwrite + 1))
	else
		sleep "0.$((RANDOM % 6 + 2))"
	fi
	kill -KILL "$EGRESSD_PID" 2>/dev/null
	wait "$EGRESSD_PID" 2>/dev/null
	EGRESSD_PID=
	kills=$((kills + 1))
	kill "$poster" 2>/dev/null
	wait "$poster" 2>/dev/null
	got=$(policy_file_is)
	case $got in
	a | b | c) held[$got]=1 ;;
	*)
		bad=$((bad + 1))
		fail "round $i: after kill -9 the file is a complete posted policy" "$got"
		;;
	esac
done
# Temporary files left behind are kills that landed mid-write.
egit_log "kills mid-write: $midwrite; temporary files left: $(find "$T" -maxdepth 1 -name 'policy.json.*' | wc -l)"
if [ "$midwrite" -ge 2 ]; then
	pass "$midwrite of the kills landed mid-write (temporary file created, not yet renamed)"
else
	fail "kills land mid-write" "only $midwrite did"
fi
if [ "$bad" = 0 ]; then
	pass "$kills kills -9 mid-POST: the file was always a complete posted policy (seen: ${!held[*]})"
fi
start_egressd --bpf off
wait_for 5 api_healthy
want=$(policy_file_is)
api GET /policy
n=$("$PY" -c 'import json, sys; print(len(json.loads(sys.argv[1])["policy"]["egress"]))' "$API_BODY")
case $want in a) wn=1500 ;; b) wn=1200 ;; c) wn=1 ;; *) wn="?" ;; esac
assert_eq "the last egressd serves the file's policy ($want)" "$wn" "$n"
stop_egressd

egit_finish
