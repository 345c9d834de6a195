#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# shellcheck source-path=SCRIPTDIR disable=SC2034,SC2119,SC2317
#
# The README's main job (`make demo`, root): a sandbox network namespace
# whose egress egressd enforces with a sample policy, in `dns+nft` mode
# (names filtered by the DNS proxy, and only addresses learned from allowed
# answers or allowed by IP/CIDR rules reachable). The workload's packets are
# judged by the BPF program where the kernel can load it, by
# nftables otherwise; the start line says which. A second namespace plays
# the internet: a fake
# upstream resolver (fakedns) and two tiny web servers. A short scripted
# workload in the sandbox looks names up (allowed and denied, through the
# official resolver and through arbitrary ones), fetches a page by name,
# connects to the allowed name's web host and to a literal non-allowed IP;
# then egressd's log lines are printed. Everything is removed on exit. Exit
# status is non-zero if anything did not turn out as shown. Uses the
# topology helpers of tests/integration/lib.sh.

EGIT_NAME=demo
# shellcheck source=../tests/integration/lib.sh
. "$(dirname "$0")/../tests/integration/lib.sh"

DEMO_POLICY='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"*.pypi.org"},
 {"action":"deny","target":"*.attacker.net"}]}'

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

egit_init
egit_require_egressd
OTHER4=10.200.$X.81	# a second web host no rule allows

bold "== setup"
echo "sandbox netns $SB ($SB4, $SB6) <-veth-> internet netns $NET ($GW4)"
echo "internet: resolver $DNS4 / $DNS6 (fakedns), web servers $WEB4:80 (api.github.com) and $OTHER4:80"
start_upstream
mkdir -p "$T/www"
echo "hello from the (fake) internet" >"$T/www/index.html"
for a in "$WEB4" "$OTHER4"; do
	ip netns exec "$NET" "$PY" -m http.server 80 --bind "$a" \
		--directory "$T/www" >"$T/http-$a.log" 2>&1 &
	EGIT_PIDS+=("$!")
done
web_up() { [ "$(ip netns exec "$NET" ss -Hltn "sport = :80" | grep -c .)" -ge 2 ]; }
wait_for 10 web_up || die "web servers did not start: $(cat "$T"/http-*.log)"
echo "policy: $(tr -d '\n' <<<"$DEMO_POLICY")"
start_egressd --mode dns+nft --rules "$DEMO_POLICY" --dns-upstream "$DNS4"
BPF_STATE=$(json_field "$T/egressd.out" start layers.bpf.state)
echo "egressd running in the sandbox (pid $EGRESSD_PID, mode dns+nft, BPF layer: ${BPF_STATE:-?}), cgroup ${CG#"$CG2"}/agent"

bold "== workload (in the sandbox, cgroup ${CG#"$CG2"}/workload)"
bad=0
# look NAME TYPE SERVER [+tcp] EXPECT-STATUS VERDICT [EXPECT-ANSWER]
look() {
	local name=$1 type=$2 server=$3 proto=$4 want=$5 verdict=$6 answer=${7:-} shown
	q "$proto" @"$server" "$name" "$type"
	shown=$Q_STATUS
	[ "$Q_STATUS" = NOERROR ] && shown=${Q_ANSWER:-NODATA}
	local via=udp
	[ "$proto" = +tcp ] && via=tcp
	printf '  workload: dig %-18s %-4s @%-15s %s -> %s (%s)\n' "$name" "$type" \
		"$server" "$via" "$shown" "$verdict"
	if [ "$Q_STATUS" != "$want" ] || { [ -n "$answer" ] && [ "$Q_ANSWER" != "$answer" ]; }; then
		echo "    !! expected $want${answer:+ $answer}"
		bad=$((bad + 1))
	fi
}

look api.github.com     A    "$DNS4" +notcp NOERROR allowed "$WEB4"
look files.pypi.org     A    "$DNS4" +notcp NOERROR "allowed by *.pypi.org" "10.200.$X.82"
look pypi.org           A    "$DNS4" +notcp NXDOMAIN "denied: *.pypi.org does not cover the apex"
look evil.example.com   A    "$DNS4" +notcp NXDOMAIN "denied by default"
look exfil.attacker.net TXT  "$ARB4" +notcp NXDOMAIN "denied by rule; sent to $ARB4 where no DNS server exists"
look api.github.com     AAAA "$ARB6" +tcp NOERROR "allowed; arbitrary v6 resolver, TCP, answered by egressd" "$WEB6"

# A page fetched by name through the sandbox's ordinary resolver
# (/etc/resolv.conf: whatever it names, port 53 lands at egressd). Only an
# address inside the demo network is ever connected to.
fetch() {
	local host=$1 want=$2 verdict=$3 out
	out=$(run_workload "$PY" - "$host" 2>&1 <<'PY'
import http.client, ipaddress, socket, sys
host = sys.argv[1]
try:
    addr = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
except socket.gaierror as e:
    print("not resolved (%s)" % e.strerror)
    sys.exit(0)
if ipaddress.ip_address(addr) not in ipaddress.ip_network("10.200.0.0/16"):
    print("resolved to %s, outside the demo network: not fetched" % addr)
    sys.exit(0)
c = http.client.HTTPConnection(addr, 80, timeout=3)
c.request("GET", "/", headers={"Host": host})
r = c.getresponse()
print("HTTP %d from %s: %s" % (r.status, addr, r.read().decode().strip()))
PY
)
	printf '  workload: fetch http://%s/ -> %s (%s)\n' "$host" "$out" "$verdict"
	if ! grep -q -- "$want" <<<"$out"; then
		echo "    !! expected: $want"
		bad=$((bad + 1))
	fi
}
fetch api.github.com "HTTP 200 from $WEB4" allowed
fetch files.evil.attacker.net "not resolved" denied

# Plain TCP connects by address (nftables, dns+nft): the allowed name's
# web host was learned from the answer above; a literal IP no rule allows
# is dropped however it was obtained.
# connect ADDR WANT(ok|blocked) VERDICT
connect() {
	local addr=$1 want=$2 verdict=$3 code got
	code=$(run_workload curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$addr/" 2>/dev/null)
	got=blocked
	[ "$code" = 200 ] && got=ok
	printf '  workload: connect %-14s -> %s (%s)\n' "$addr:80" \
		"$([ "$got" = ok ] && echo "HTTP 200" || echo "no connection, dropped")" "$verdict"
	if [ "$got" != "$want" ]; then
		echo "    !! expected: $want"
		bad=$((bad + 1))
	fi
}
connect "$WEB4" ok "api.github.com's address, learned when it resolved"
connect "$OTHER4" blocked "literal IP, no rule allows it: default deny"

bold "== upstream resolver's query log (what left the sandbox)"
sed 's/^/  /' "$T/fakedns-up.log"
for n in pypi.org evil.example.com exfil.attacker.net files.evil.attacker.net; do
	if upstream_saw "$n"; then
		echo "  !! denied name $n reached the upstream"
		bad=$((bad + 1))
	fi
done
[ "$bad" = 0 ] && echo "  (no denied name ever reached it)"

bold "== nftables in the sandbox (table inet egressd)"
nsenter --net="/run/netns/$SB" -- nft list set inet egressd learned_v4 |
	sed -n 's/^[[:space:]]*elements = /  learned_v4: /p'
nsenter --net="/run/netns/$SB" -- nft list counters table inet egressd |
	awk '/counter/ { n = $2 } /packets/ && $2 > 0 { printf "  counter %s: %s packets\n", n, $2 }'
if [ "$BPF_STATE" = enforce ]; then
	bold "== BPF maps (pinned in $OPENSANDBOX_EGRESS_BPF_PIN_DIR; the workload's packets are judged here)"
	bpftool -j map dump pinned "$OPENSANDBOX_EGRESS_BPF_PIN_DIR/learned_v4" 2>/dev/null |
		"$PY" -c 'import json, sys
for e in json.load(sys.stdin):
    k = e.get("formatted", e)["key"]["addr"]
    v = e.get("formatted", e)["value"]
    print("  learned_v4: %s  expires_ns=%s last_seen_ns=%s" % (
        ".".join(str(int(b, 0) if isinstance(b, str) else b) for b in k),
        v["expires_ns"], v["last_seen_ns"]))'
fi
# The drop of the literal IP is reported as a packet violation line.
wait_for 3 json_match "$T/egressd.out" event=violation layer=packet \
	reason=default_deny action=drop dst="$OTHER4" dport=80 || {
	echo "  !! no packet violation line for $OTHER4:80"
	bad=$((bad + 1))
}

stop_egressd
bold "== egressd log (stdout, one JSON object per line; compact view)"
"$PY" - "$T/egressd.out" <<'PY'
import json, sys
def flat(v):
    if isinstance(v, dict):
        return ",".join("%s:%s" % (k, flat(x)) for k, x in v.items())
    if isinstance(v, list):
        return ",".join(flat(x) for x in v)
    return str(v)
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        print("  (not JSON) " + line.rstrip())
        continue
    ts = o.pop("ts", "")[11:23]
    ev = o.pop("event", "?")
    o.pop("level", None)
    if ev == "violation" and o.get("layer") == "dns":
        print("  %s %-9s dns  %-23s %-4s %-12s -> %s" % (ts, ev, o.pop("qname", "?"),
              o.pop("qtype", "?"), o.pop("reason", "?"), o.pop("action", "?")))
        continue
    if ev == "violation" and o.get("layer") == "packet":
        dst = o.pop("dst", "?")
        dst = "[%s]" % dst if ":" in str(dst) else dst
        print("  %s %-9s pkt  %-23s %-4s %-12s -> %s%s" % (ts, ev,
              "%s:%s" % (dst, o.pop("dport", "?")), o.pop("proto", "?"),
              o.pop("reason", "?"), o.pop("action", "?"),
              " (x%s)" % o["count"] if o.get("count", 1) != 1 else ""))
        continue
    if ev == "start":
        o = {k: o[k] for k in ("version", "mode", "upstreams", "layers", "dnsListenPort")
             if k in o}
        if "layers" in o:
            o["layers"] = {k: v.get("state") + ("(redirect %s)" % v["redirect"]
                                                 if "redirect" in v else "")
                           for k, v in o["layers"].items()}
    print("  %s %-9s %s" % (ts, ev, " ".join("%s=%s" % (k, flat(v)) for k, v in o.items())))
PY
echo "  (egressd exit status after SIGTERM: $EGRESSD_RC)"
[ "$EGRESSD_RC" = 0 ] || bad=$((bad + 1))

bold "== result"
if [ "$bad" = 0 ]; then
	echo "demo: every allowed name resolved, every denied name got NXDOMAIN and never left the sandbox;"
	echo "      only the allowed name's address was reachable, the literal IP was dropped and logged"
	exit 0
fi
EGIT_FAIL=$bad
echo "demo: $bad expectation(s) not met (see !! above)"
exit 1
