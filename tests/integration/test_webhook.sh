#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Deny webhook (OPENSANDBOX_EGRESS_DENY_WEBHOOK, docs/webhook.md), against a
# receiver in the internet namespace:
#  - dns+nft, default deny, the receiver's address not allowed: a denied
#    name gives exactly the peer's POST (the agent's own traffic is exempt,
#    while the workload cannot reach the receiver); allowed names give none;
#    repeats within a second are folded; a 500 is retried after 1 s, a 400
#    is not; /metrics counts it all.
#  - a black-holed receiver: denied queries still answer NXDOMAIN at once
#    (every one under 100 ms), the queue overflows into counted drops with
#    one warning, and SIGTERM still stops egressd promptly.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_dnslib
# The usual zone plus the receiver's host name (phase 3).
write_zone "$T/zone"
echo "hook.internal A 10.200.$X.81" >>"$T/zone"
start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]"

RCV=10.200.$X.81 # github.com: not allowed by $POLICY
start_webhook_receiver r "$RCV" 8080

export OPENSANDBOX_EGRESS_RULES=$POLICY
export OPENSANDBOX_EGRESS_DENY_WEBHOOK=http://$RCV:8080/deny
export OPENSANDBOX_EGRESS_SANDBOX_ID=sb-webhook-1
export OPENSANDBOX_EGRESS_BPF=off
start_egressd_api --mode dns+nft --bpf off

# ---- the exact POST ----------------------------------------------------
t0=$(date +%s)
q @"$DNS4" EXFIL.Attacker.NET. A
assert_eq "denied name answers NXDOMAIN" NXDOMAIN "$Q_STATUS"
wait_for 5 test "$(webhook_count r)" -ge 1
assert_eq "exactly one POST for the denied name" 1 "$(webhook_count r)"
check=$("$PY" - "$T/webhook-r.log" "$t0" <<'EOF_PY'
import json, re, sys, calendar, time
o = json.loads(open(sys.argv[1]).readline())
b = json.loads(o["body"])
ts = b.get("timestamp", "")
ok_ts = re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ts) is not None
if ok_ts:
    t = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    ok_ts = int(sys.argv[2]) - 1 <= t <= time.time() + 1
print(o["method"], o["path"], o["ct"], json.dumps(list(b.keys()), separators=(",", ":")),
      b.get("hostname"), b.get("source"), b.get("sandboxId"),
      "ts-ok" if ok_ts else "ts-bad:" + ts)
EOF_PY
)
assert_eq "POST body and headers are the peer's" \
	'POST /deny application/json ["hostname","timestamp","source","sandboxId"] exfil.attacker.net opensandbox-egress sb-webhook-1 ts-ok' \
	"$check"

q @"$DNS4" api.github.com A
assert_eq "allowed name resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
# Three queries from one process, well within a second.
dns_burst "$DNS4" 3 evil.example.com >/dev/null
wait_for 3 test "$(webhook_count r evil.example.com)" -ge 1
sleep 0.5
assert_eq "three denials of one name within a second: one POST (folded)" 1 \
	"$(webhook_count r evil.example.com)"
assert_eq "no POST for the allowed name" 0 "$(webhook_count r api.github.com)"

# The agent's POSTs got through a default-deny dns+nft policy; the
# workload's own connection to the receiver does not.
assert_blocked "workload cannot reach the receiver (default deny)" "$RCV" 8080

# ---- retries -------------------------------------------------------------
q @"$DNS4" r500.retry.test A
wait_for 5 test "$(webhook_count r r500.retry.test)" -ge 2
gap=$("$PY" - "$T/webhook-r.log" <<'EOF_PY'
import json, sys
t = [json.loads(l) for l in open(sys.argv[1])]
t = [o for o in t if json.loads(o["body"])["hostname"] == "r500.retry.test"]
print("%s %s %d" % (t[0]["code"], t[1]["code"], int((t[1]["t"] - t[0]["t"]) * 1000)) if len(t) >= 2 else "missing")
EOF_PY
)
read -r c1 c2 gap_ms <<<"$gap"
assert_eq "500 then 200" "500 200" "$c1 $c2"
if [ -n "${gap_ms:-}" ] && [ "$gap_ms" -ge 900 ] && [ "$gap_ms" -le 1900 ]; then
	pass "retry after the 1 s backoff ($gap_ms ms)"
else
	fail "retry after the 1 s backoff" "gap: '${gap_ms:-}' ms"
fi
q @"$DNS4" r400.client.test A
wait_for 3 test "$(webhook_count r r400.client.test)" -ge 1
sleep 1.5
assert_eq "a 400 is not retried" 1 "$(webhook_count r r400.client.test)"
sleep 1
assert_eq "retried POST stays at 2" 2 "$(webhook_count r r500.retry.test)"

assert_eq "metrics: sent" 3 "$(metric 'egressd_webhook_total{result="sent"}')"
assert_eq "metrics: failed (the 400)" 1 "$(metric 'egressd_webhook_total{result="failed"}')"
assert_eq "metrics: folded" 2 "$(metric 'egressd_webhook_total{result="folded"}')"
assert_eq "metrics: retries" 1 "$(metric 'egressd_webhook_retries_total')"
assert_eq "metrics: dropped" 0 "$(metric 'egressd_webhook_total{result="dropped"}')"
stop_egressd
assert_eq "clean stop" 0 "$EGRESSD_RC"

# ---- a black-holed receiver never delays DNS ---------------------------
BH=10.200.$X.98
inet_addr "$BH"
ip netns exec "$NET" nft -f - <<EOF || die "black hole in the internet namespace"
table ip egit_bh {
	chain in { type filter hook input priority 0; ip daddr $BH drop; }
}
EOF
export OPENSANDBOX_EGRESS_DENY_WEBHOOK=http://$BH:8080/deny
start_egressd_api --bpf off
# 300 distinct names: 4 in flight, 256 queued, the rest dropped.
res=$(dns_burst "$DNS4" 300 'n{i}.blocked.test')
summary=$("$PY" -c '
import json, sys
o = json.loads(sys.argv[1])
print(o["rcodes"].get("NXDOMAIN"), o["timeouts"], (o["max_ms"] or 1e9) < 100)' "$res")
assert_eq "300 denied queries: all NXDOMAIN, no timeout, each under 100 ms" "300 0 True" "$summary"
egit_log "burst: $res"
q @"$DNS4" api.github.com A
assert_eq "allowed names still resolve" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_eq "queue overflow is counted" 40 "$(metric 'egressd_webhook_total{result="dropped"}')"
assert_eq "one warning for the burst of drops" 1 \
	"$(grep -c 'deny webhook: queue full' "$T/egressd.out")"
# After the first attempts' 5 s timeout: retries are running, DNS is not
# slowed either.
sleep 5.5
res=$(dns_burst "$DNS4" 50 'm{i}.blocked.test')
summary=$("$PY" -c '
import json, sys
o = json.loads(sys.argv[1])
print(o["rcodes"].get("NXDOMAIN"), o["timeouts"], (o["max_ms"] or 1e9) < 100)' "$res")
assert_eq "while attempts time out and retry: 50 NXDOMAIN, each under 100 ms" "50 0 True" "$summary"
# Attempts time out at 5 s, then wait 1 s before the first retry.
retries_at_least() { retries=$(metric 'egressd_webhook_retries_total'); [ "${retries:-0}" -ge "$1" ]; }
wait_for 3 retries_at_least 4
if [ "${retries:-0}" -ge 4 ]; then
	pass "each in-flight POST timed out and is retried ($retries retries)"
else
	fail "timed-out POSTs are retried" "egressd_webhook_retries_total: '$retries'"
fi
stop_egressd
assert_eq "stops cleanly with POSTs in flight" 0 "$EGRESSD_RC"
if [ "$EGRESSD_STOP_MS" -lt 2000 ]; then
	pass "stop with POSTs in flight took $EGRESSD_STOP_MS ms"
else
	fail "stop with POSTs in flight is prompt" "$EGRESSD_STOP_MS ms"
fi

# ---- a host name in the URL -------------------------------------------------
# libcurl resolves it with getaddrinfo (in its resolver thread) through the
# agent's resolv.conf; the agent's port-53 traffic to its upstream is exempt
# from the redirect and from the policy, so a name the policy denies still
# resolves for the webhook. egressd gets its own mount namespace with a
# resolv.conf naming the upstream (unshare execs: the pid stays egressd's).
echo "nameserver $DNS4" >"$T/resolv.conf"
cat >"$T/egressd-resolv" <<EOF
#!/bin/sh
exec unshare --mount sh -c 'mount --bind "\$0" /etc/resolv.conf && exec "\$@"' \
	"$T/resolv.conf" "$EGRESSD" "\$@"
EOF
chmod +x "$T/egressd-resolv"
export OPENSANDBOX_EGRESS_DENY_WEBHOOK=http://hook.internal:8080/by-name
EGRESSD=$T/egressd-resolv start_egressd_api --mode dns+nft --bpf off
q @"$DNS4" hook.internal A
assert_eq "the policy denies the webhook's host name to the workload" NXDOMAIN "$Q_STATUS"
q @"$DNS4" byname.denied.test A
wait_for 5 test "$(webhook_count r byname.denied.test)" -ge 1
assert_eq "URL with a host name: the POST arrives" 1 "$(webhook_count r byname.denied.test)"
path=$("$PY" -c '
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if json.loads(o["body"])["hostname"] == "byname.denied.test":
        print(o["path"])' "$T/webhook-r.log")
assert_eq "at the URL's path" /by-name "$path"
if json_match "$T/egressd.out" event=violation qname=hook.internal client="*"; then
	n=$(grep -c '"qname":"hook.internal"' "$T/egressd.out")
else
	n=0
fi
assert_eq "only the workload's lookup of the host name was judged by the proxy" 1 "$n"
stop_egressd
assert_eq "clean stop (host name URL)" 0 "$EGRESSD_RC"

# ---- a bad URL is a start-up error ----------------------------------------
egressd_bad_start "ftp webhook URL" "only http:// and https://" \
	--bpf off --deny-webhook ftp://10.0.0.1/x

egit_finish
