#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft: a literal IP of a host no rule allows is blocked (the connect
# times out), over IPv4 and IPv6; each drop becomes a packet violation line
# (reason default_deny, action drop, dst, dport) and counts in default_drop.
# The same web hosts answer when reached from the internet namespace side,
# so the block is egressd's doing. Folded drop lines are all written, and
# before the stop line.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
start_upstream
# github.com (10.200.X.81) is not allowed by $POLICY.
start_servers web "tcp:10.200.$X.81:80" "tcp:[fd00:200:$X::81]:80"
start_egressd_nft --rules "$POLICY"
assert_json_line "start line: mode dns+nft, nft layer on" "$T/egressd.out" \
	event=start mode=dns+nft

# Control: the web hosts are up (reachable from inside the internet netns).
code=$(ip netns exec "$NET" curl -s -m 2 -o /dev/null -w '%{http_code}' "http://10.200.$X.81/")
assert_eq "control: web host 10.200.$X.81:80 serves" 200 "$code"

before=$(nft_counter default_drop)
assert_blocked "literal IPv4 of a non-allowed host is blocked" "10.200.$X.81" 80
assert_eq "the connect timed out (dropped, curl exit 28)" 28 "$H_RC"
wait_json_line "packet violation line for the v4 connect" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop \
	proto=tcp family=4 dst="10.200.$X.81" dport=80 src="$SB4" domain=null
assert_blocked "literal IPv6 of a non-allowed host is blocked" "fd00:200:$X::81" 80
wait_json_line "packet violation line for the v6 connect" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop \
	proto=tcp family=6 dst="fd00:200:$X::81" dport=80
after=$(nft_counter default_drop)
if [ -n "$after" ] && [ "$after" -gt "${before:-0}" ] && [ "$after" -gt 0 ]; then
	pass "nft counter default_drop moved: ${before:-?} -> $after"
else
	fail "nft counter default_drop > 0 and increased" "before '$before' after '$after'" \
		"$(nft_sb list counters table inet egressd 2>&1 | tr -s '\n\t' '  ')"
fi
if server_got web "tcp 10.200.$X.81 80 $SB4" || server_got web "tcp fd00:200:$X::81 80"; then
	fail "no connection from the sandbox reached the web host" "$(cat "$T/servers-web.log")"
else
	pass "no connection from the sandbox reached the web host"
fi

# A burst of 5 blocked datagrams: one line at once, the rest folded into
# later lines; on SIGTERM the folded remainder is written before the stop
# line (the stop line stays the last line) and the counts add up to 5.
for _ in 1 2 3 4 5; do udp_send "10.200.$X.81" 9999 x; done
wait_for 3 json_match "$T/egressd.out" event=violation layer=packet dst="10.200.$X.81" dport=9999
sleep 0.3
stop_egressd
assert_eq "SIGTERM: exit status 0" 0 "$EGRESSD_RC"
last=$(tail -n 1 "$T/egressd.out")
assert_contains "after SIGTERM the stop line is the last line" "$(tr -d ' ' <<<"$last")" '"event":"stop"'
sum=$("$PY" - "$T/egressd.out" "10.200.$X.81" <<'EOF_PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("event") == "violation" and o.get("dst") == sys.argv[2] and o.get("dport") == 9999:
        n += o.get("count", 0)
print(n)
EOF_PY
)
assert_eq "the folded lines for the 5 datagrams count 5 in all" 5 "$sum"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
