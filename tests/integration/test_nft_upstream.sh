#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft upstream hardening. The workload's port-53 queries to the
# upstream are answered through the redirect, but the upstream's address is
# not an allowed destination: a TCP connect to one of its other ports is
# dropped. Only egressd's cgroup reaches the configured upstream on 53, and
# only while egressd is alone there: a process that joins it (docs/security.md,
# class 4) makes egressd withdraw that exemption (fail closed), and its
# queries, to the upstream or another resolver, are dropped (dns_drop).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
start_upstream
# A second, real resolver on $DNS4B that is NOT a configured upstream.
start_fakedns other --zone "$T/zone" --listen "$DNS4B"
start_servers s "tcp:$DNS4:80"
start_egressd_nft --rules "$POLICY"

# aq DIG-ARGS: dig from the agent's cgroup (as egressd's own traffic).
aq() {
	Q_OUT=$(run_in_agent_cgroup dig +tries=1 +time=2 +noall +comments +answer "$@" 2>&1)
	Q_STATUS=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$Q_OUT" | head -n 1)
	[ -n "$Q_STATUS" ] || Q_STATUS=TIMEOUT
	Q_ANSWER=$(awk '!/^;/ && NF >= 5 { printf "%s%s", sep, $5; sep = " " }' <<<"$Q_OUT")
}

# Workload side.
q @"$DNS4" api.github.com A
assert_eq "workload: dig @upstream is answered (through the redirect)" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_blocked "workload: tcp to the upstream's port 80 blocked" "$DNS4" 80
wait_json_line "and logged as a default_deny drop" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop dst="$DNS4" dport=80
if server_got s "tcp $DNS4 80"; then fail "no connection reached $DNS4:80" "$(cat "$T/servers-s.log")"; else pass "no connection reached $DNS4:80"; fi
q @"$DNS4B" api.github.com A
assert_eq "workload: dig @another resolver is answered by egressd" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_eq "and never reached that resolver" "" "$(fakedns_log other)"

# Agent side. Only egressd's cgroup reaches the upstreams on 53: the rule
# is there while egressd is alone in its cgroup.
assert_contains "chain egress: egressd's cgroup reaches the upstreams on 53" \
	"$(nft_sb list chain inet egressd egress 2>&1)" "egressd agent to its upstream resolvers"
# A process that joins egressd's cgroup is not egressd (docs/security.md, class 4):
# within a second the cgroup's exemption is withdrawn, so what it sends on
# 53 (to the upstream or elsewhere) is dropped like the workload's.
run_in_agent_cgroup sleep 4 &
intruder=$!
if wait_for 3 grep -q "nftables no longer exempts that cgroup" "$T/egressd.out"; then
	pass "a foreign process in egressd's cgroup is reported within a second or so"
else
	fail "a foreign process in egressd's cgroup is reported" "$(tail -3 "$T/egressd.out")"
fi
assert_not_contains "the agent's upstream rule is withdrawn" \
	"$(nft_sb list chain inet egressd egress 2>&1)" "egressd agent to its upstream resolvers"
aq @"$DNS4" agent-check.pypi.org A
assert_eq "agent cgroup: query straight to the upstream dropped now" TIMEOUT "$Q_STATUS"
assert_not_forwarded "... and never at the upstream" agent-check.pypi.org
before=$(nft_counter dns_drop)
aq @"$DNS4B" api.github.com A
assert_eq "agent cgroup: udp query to a non-upstream resolver dropped" TIMEOUT "$Q_STATUS"
aq +tcp @"$DNS4B" api.github.com A
assert_eq "agent cgroup: tcp query to a non-upstream resolver dropped" TIMEOUT "$Q_STATUS"
after=$(nft_counter dns_drop)
if [ -n "$after" ] && [ "$after" -gt "${before:-0}" ]; then
	pass "nft counter dns_drop moved: $before -> $after"
else
	fail "nft counter dns_drop increased" "before '$before' after '$after'"
fi
assert_eq "the non-upstream resolver got nothing" "" "$(fakedns_log other)"
wait_json_line "packet violation line for the agent's port-53 drop" "$T/egressd.out" \
	event=violation layer=packet action=drop dst="$DNS4B" dport=53
api GET /status
assert_eq "/status: the nft exemption is withdrawn" withdrawn \
	"$(json_eval "$API_BODY" 'o["exemption"]["nft"]')"
wait "$intruder" 2>/dev/null
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
