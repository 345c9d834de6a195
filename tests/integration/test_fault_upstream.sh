#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Upstream faults (docs/security.md "Faults"), one egressd in dns+nft mode
# living through all of them while the upstream behind $DNS4 changes:
# silent (timeout), gone (ICMP port unreachable), REFUSED, SERVFAIL, and
# truncating every UDP answer. Each failure gives the client SERVFAIL,
# moves the upstream's timeouts or errors in GET /status and the servfail
# count in /metrics, and is said in a warning line; nothing is learned
# from a failed answer, so the name's address stays blocked, and denied
# names stay NXDOMAIN without reaching any upstream. A truncated answer
# reaches a UDP client with TC set and a TCP client whole (egressd fetches
# it again over TCP). Once the upstream answers, the name resolves and its
# address connects.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
write_zone "$T/zone"
inet_addr "10.200.$X.66"
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.66:80"
export OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT=1
export OPENSANDBOX_EGRESS_BPF=off
start_egressd_api --mode dns+nft --bpf off --rules "$POLICY"

# upstream none|ok|FAKEDNS-ARGS...: replace whatever serves $DNS4 by
# nothing (the port is closed), a normal fakedns (ok) or one run with
# these arguments.
up_pid=
upstream() {
	[ -n "$up_pid" ] && stop_pid "$up_pid"
	up_pid=
	[ "$1" = none ] && return 0
	[ "$1" = ok ] && shift
	start_fakedns up --zone "$T/zone" --listen "$DNS4" "$@"
	up_pid=${EGIT_PIDS[-1]}
}

# up_stat FIELD: that field of the first upstream in GET /status.
up_stat() {
	api GET /status
	json_eval "$API_BODY" 'o["upstreams"][0]["'"$1"'"]'
}

servfails() {
	metric 'egressd_dns_queries_total{result="servfail"}'
}

# grew DESC BEFORE AFTER: AFTER > BEFORE (both integers).
grew() {
	if [ "$3" -gt "$2" ] 2>/dev/null; then
		pass "$1 ($2 -> $3)"
	else
		fail "$1" "before: '$2', after: '$3'"
	fi
}

# still_closed WHAT: egressd alive, api.github.com's address not learned
# and not reachable, the denied name NXDOMAIN without reaching upstreams.
still_closed() {
	if kill -0 "$EGRESSD_PID" 2>/dev/null; then
		pass "$1: egressd still running"
	else
		fail "$1: egressd still running"
	fi
	if nft_learned_has "$WEB4"; then
		fail "$1: nothing learned from the failed answer" "$WEB4 is in learned_v4"
	else
		pass "$1: nothing learned from the failed answer"
	fi
	assert_blocked "$1: $WEB4:80 stays blocked" "$WEB4" 80
	q @"$DNS4" "$2.exfil.attacker.net" A
	assert_eq "$1: a denied name is still NXDOMAIN" NXDOMAIN "$Q_STATUS"
	assert_not_forwarded "$1: the denied name reached no upstream" "$2.exfil.attacker.net"
}

# 1. Timeout: the upstream takes the query and never answers.
upstream --drop
sf0=$(servfails)
to0=$(up_stat timeouts)
q +time=5 @"$DNS4" api.github.com A
assert_eq "timeout: client gets SERVFAIL" SERVFAIL "$Q_STATUS"
grew "timeout: the upstream's timeouts in /status" "$to0" "$(up_stat timeouts)"
grew "timeout: egressd_dns_queries_total{result=servfail}" "$sf0" "$(servfails)"
wait_json_line "timeout: a warning says the upstream is not answering" \
	"$T/egressd.out" event=warning
# "not answering" on the timeout, or "unusable" already from the probe
# at start (the upstream's socket was not bound yet): either names it.
assert_eq "timeout: the warning names the upstream" yes \
	"$(grep -E '"event" *: *"warning"' "$T/egressd.out" |
		grep -qE "$DNS4:53 (not answering|unusable)" && echo yes)"
still_closed timeout t1

# 2. Refusal at the transport: nothing listens (ICMP port unreachable).
upstream none
sf0=$(servfails)
q +time=5 @"$DNS4" api.github.com A
assert_eq "port unreachable: client gets SERVFAIL" SERVFAIL "$Q_STATUS"
grew "port unreachable: egressd_dns_queries_total{result=servfail}" "$sf0" "$(servfails)"
still_closed "port unreachable" t2

# 3. REFUSED, then 4. SERVFAIL, from the upstream.
for mode in refuse servfail; do
	rc=REFUSED
	[ "$mode" = servfail ] && rc=SERVFAIL
	upstream --"$mode"
	sf0=$(servfails)
	er0=$(up_stat errors)
	q +time=5 @"$DNS4" api.github.com A
	assert_eq "upstream $rc: client gets SERVFAIL" SERVFAIL "$Q_STATUS"
	if [ "$Q_MS" -lt 1000 ]; then
		pass "upstream $rc: answered without waiting for a timeout (${Q_MS} ms)"
	else
		fail "upstream $rc: answered without waiting for a timeout" "took ${Q_MS} ms"
	fi
	grew "upstream $rc: the upstream's errors in /status" "$er0" "$(up_stat errors)"
	grew "upstream $rc: egressd_dns_queries_total{result=servfail}" "$sf0" "$(servfails)"
	wait_for 3 grep -q "dns upstream $DNS4:53 answered $rc" "$T/egressd.out"
	assert_contains "upstream $rc: a warning says what the upstream answered" \
		"$(grep -E '"event" *: *"warning"' "$T/egressd.out")" "dns upstream $DNS4:53 answered $rc"
	still_closed "upstream $rc" "t-$mode"
done

# 5. Truncation: every UDP answer over 100 bytes comes back with TC set.
upstream --truncate-over 100 --big big.pypi.org=20
q +time=5 +ignore +bufsize=4096 @"$DNS4" big.pypi.org TXT
if grep -qE 'flags:[^;]* tc' <<<"$Q_OUT"; then
	pass "truncated: a UDP client gets the answer with TC set"
else
	fail "truncated: a UDP client gets the answer with TC set" "$Q_OUT"
fi
q +time=5 +tcp @"$DNS4" big.pypi.org TXT
assert_eq "truncated: a TCP client gets the whole answer (20 records)" 20 \
	"$(grep -c 'TXT' <<<"$(awk '!/^;/ && NF >= 5' <<<"$Q_OUT")")"
if upstream_saw big.pypi.org up && grep -qi '^tcp big.pypi.org' "$T/fakedns-up.log"; then
	pass "truncated: egressd asked the upstream again over TCP"
else
	fail "truncated: egressd asked the upstream again over TCP" "$(cat "$T/fakedns-up.log")"
fi
still_closed truncated t5

# The upstream answers again: the name resolves, its address connects.
upstream ok
q +time=5 @"$DNS4" api.github.com A
assert_eq "healthy again: api.github.com answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "healthy again: $WEB4:80 connects" "$WEB4" 80
assert_blocked "healthy again: 10.200.$X.66:80 (evil.example.com) blocked" "10.200.$X.66" 80
if server_got web "tcp 10.200.$X.66 80"; then
	fail "no connection ever reached the blocked host" "$(cat "$T/servers-web.log")"
else
	pass "no connection ever reached the blocked host"
fi
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
