#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# shellcheck source-path=SCRIPTDIR disable=SC2034,SC2119,SC2317
#
# The README's main job (`make demo`, root): a sandbox network namespace
# whose DNS egressd filters with a sample policy. A second namespace plays
# the internet: a fake upstream resolver (fakedns) and a tiny web server.
# A short scripted workload in the sandbox looks names up (allowed and
# denied, through the official resolver and through arbitrary ones) and
# fetches a page by name; then egressd's log lines are printed. Everything
# is removed on exit. Exit status is non-zero if anything did not turn out
# as shown. Uses the topology helpers of tests/integration/lib.sh.

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

bold "== setup"
echo "sandbox netns $SB ($SB4, $SB6) <-veth-> internet netns $NET ($GW4)"
echo "internet: resolver $DNS4 / $DNS6 (fakedns), web server $WEB4:80"
start_upstream
mkdir -p "$T/www"
echo "hello from the (fake) internet" >"$T/www/index.html"
ip netns exec "$NET" "$PY" -m http.server 80 --bind "$WEB4" \
	--directory "$T/www" >"$T/http.log" 2>&1 &
EGIT_PIDS+=("$!")
web_up() { ip netns exec "$NET" ss -Hltn "sport = :80" | grep -q .; }
wait_for 10 web_up || die "web server did not start: $(cat "$T/http.log")"
echo "policy: $(tr -d '\n' <<<"$DEMO_POLICY")"
start_egressd --rules "$DEMO_POLICY" --dns-upstream "$DNS4"
echo "egressd running in the sandbox (pid $EGRESSD_PID), cgroup ${CG#"$CG2"}/agent"

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

bold "== upstream resolver's query log (what left the sandbox)"
sed 's/^/  /' "$T/fakedns-up.log"
for n in pypi.org evil.example.com exfil.attacker.net files.evil.attacker.net; do
	if upstream_saw "$n"; then
		echo "  !! denied name $n reached the upstream"
		bad=$((bad + 1))
	fi
done
[ "$bad" = 0 ] && echo "  (no denied name ever reached it)"

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
    if ev == "start":
        o = {k: o[k] for k in ("version", "mode", "upstreams", "layers", "dnsListenPort")
             if k in o}
        if "layers" in o:
            o["layers"] = {k: v.get("state") for k, v in o["layers"].items()}
    print("  %s %-9s %s" % (ts, ev, " ".join("%s=%s" % (k, flat(v)) for k, v in o.items())))
PY
echo "  (egressd exit status after SIGTERM: $EGRESSD_RC)"
[ "$EGRESSD_RC" = 0 ] || bad=$((bad + 1))

bold "== result"
if [ "$bad" = 0 ]; then
	echo "demo: every allowed name resolved, every denied name got NXDOMAIN and never left the sandbox"
	exit 0
fi
EGIT_FAIL=$bad
echo "demo: $bad expectation(s) not met (see !! above)"
exit 1
