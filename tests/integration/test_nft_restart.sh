#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft fails closed: after kill -9 the table stays and keeps blocking; a
# restart adopts it in one transaction (a workload probing all the while
# gets nothing through) and leaves exactly one table inet egressd with the
# same rules, none duplicated. A clean SIGTERM stop leaves the table too;
# only `egressd --cleanup` removes it.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
start_upstream
start_servers web "tcp:$WEB4:80" "udp:$WEB4:9999"
start_egressd_nft --rules "$POLICY"

rules1=$(nft_egress_rules)
n1=$(grep -c . <<<"$rules1")
if [ "$n1" -ge 10 ]; then pass "chain egress has $n1 rules"; else fail "chain egress has rules" "$(nft_sb -a list chain inet egressd egress 2>&1)"; fi
assert_eq "one table inet egressd" 1 "$(nft_tables_named egressd inet)"

# A workload that keeps sending to a non-allowed address, every 20 ms,
# from before the kill until after the restart.
run_workload "$PY" -c '
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = 0
while not os.path.exists(sys.argv[2]):
    n += 1
    try:
        s.sendto(b"probe %d" % n, (sys.argv[1], 9999))
    except OSError:
        pass
    time.sleep(0.02)
open(sys.argv[3], "w").write("%d\n" % n)' "$WEB4" "$T/probe.stop" "$T/probe.count" &
probe=$!
EGIT_PIDS+=("$probe")
sleep 0.3

kill -KILL "$EGRESSD_PID"
wait "$EGRESSD_PID" 2>/dev/null
EGRESSD_PID=
assert_eq "after kill -9: table inet egressd still there" 1 "$(nft_tables_named egressd inet)"
before=$(nft_counter default_drop)
assert_blocked "while egressd is down: $WEB4:80 blocked" "$WEB4" 80
after=$(nft_counter default_drop)
if [ "${after:-0}" -gt "${before:-0}" ]; then pass "while down: default_drop still counts ($before -> $after)"; else fail "while down: default_drop still counts" "before '$before' after '$after'"; fi
q +time=1 @"$DNS4" api.github.com A
assert_eq "while down: DNS is still redirected (no answer)" TIMEOUT "$Q_STATUS"

start_egressd_nft --rules "$POLICY"
sleep 0.3
touch "$T/probe.stop"
wait "$probe"
if [ -s "$T/probe.count" ] && [ "$(cat "$T/probe.count")" -gt 20 ]; then
	pass "probe sent $(cat "$T/probe.count") datagrams across kill -9 and restart"
else
	fail "probe ran across kill -9 and restart" "count: '$(cat "$T/probe.count" 2>/dev/null)'"
fi
if grep -q probe "$T/servers-web.log"; then
	fail "no probe got through at any moment" "$(grep -c probe "$T/servers-web.log") arrived: $(grep probe "$T/servers-web.log" | head -3)"
else
	pass "no probe got through at any moment"
fi
assert_eq "after restart: exactly one table inet egressd" 1 "$(nft_tables_named egressd inet)"
rules2=$(nft_egress_rules)
assert_eq "after restart: same number of rules in chain egress" "$n1" "$(grep -c . <<<"$rules2")"
assert_eq "after restart: same rules, none duplicated" "$rules1" "$rules2"
assert_eq "after restart: no rule appears twice" "" "$(sort <<<"$rules2" | uniq -d)"
assert_blocked "after restart: $WEB4:80 blocked" "$WEB4" 80
q @"$DNS4" api.github.com A
assert_eq "after restart: serving DNS" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "after restart: learning works ($WEB4:80 connects)" "$WEB4" 80

# Clean stop: the table stays (fail closed).
stop_egressd
assert_eq "SIGTERM: exit status 0" 0 "$EGRESSD_RC"
assert_eq "after SIGTERM: table inet egressd still there" 1 "$(nft_tables_named egressd inet)"
assert_eq "after SIGTERM: same rules" "$rules1" "$(nft_egress_rules)"
assert_blocked "after SIGTERM: github.com's 10.200.$X.81:80 blocked" "10.200.$X.81" 80

# --cleanup removes it (and exits 0).
out=$(egressd_cmd --cleanup 2>&1)
rc=$?
assert_eq "egressd --cleanup: exit status 0" 0 "$rc"
assert_eq "after --cleanup: no table inet egressd" 0 "$(nft_tables_named egressd)"
if [ "$(nft_sb list tables 2>/dev/null)" = "" ]; then
	pass "after --cleanup: no table at all in the sandbox netns"
else
	fail "after --cleanup: no table at all in the sandbox netns" "$(nft_sb list tables 2>&1)" "--cleanup said: $out"
fi
out=$(egressd_cmd --cleanup 2>&1)
assert_eq "egressd --cleanup again (nothing to remove): exit status 0" "0" "$?"
egit_finish
