#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Floods stay readable: a workload asking thousands of distinct denied
# names under one registered domain (<random>.tunnel.example, as a DNS
# tunnel does) gets at most 10 violation lines per second for that domain,
# plus one violation_summary line per second counting the rest; a flood
# over thousands of registered domains gets at most 100 DNS lines per
# second plus a catch-all summary ("domain":null). Nothing is lost: the
# counts of the lines add up to the denied queries egressd counted, about
# a second after the flood. A name asked after the flood gets its own line
# again.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_dnslib
start_upstream
start_egressd_api --rules "$POLICY" --bpf off

# flood COUNT FMT: COUNT queries for FMT ({i}: 0..COUNT-1, {r}: random
# hex) from the workload, 64 in flight, 30 s at most. Prints
# {"sent":…,"nxdomain":…,"secs":…}.
flood() {
	run_workload "$PY" - "$DNS4" "$@" <<'EOF_PY'
import json, os, select, socket, sys, time
import dnslib
server, count, fmt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent = answered = nx = 0
t0 = time.monotonic()
end = t0 + 30
while answered < count and time.monotonic() < end:
    while sent < count and sent - answered < 64:
        name = fmt.replace("{i}", str(sent)).replace("{r}", os.urandom(6).hex())
        q = dnslib.DNSRecord.question(name, "A")
        q.header.id = sent & 0xffff
        s.sendto(q.pack(), (server, 53))
        sent += 1
    r, _, _ = select.select([s], [], [], 0.5)
    if not r:
        answered = sent
        continue
    while True:
        try:
            d = s.recv(4096)
        except BlockingIOError:
            break
        answered += 1
        if dnslib.DNSRecord.parse(d).header.rcode == 3:
            nx += 1
print(json.dumps({"sent": sent, "nxdomain": nx,
                  "secs": round(time.monotonic() - t0, 2)}))
EOF_PY
}

# tally SUFFIX: over the log lines whose qname ends in SUFFIX, prints
# "violation-lines summary-lines sum-of-counts bytes domains" (domains: the
# distinct "domain" values of the summaries, comma-separated).
tally() {
	"$PY" - "$T/egressd.out" "$1" <<'EOF_PY'
import json, sys
path, suffix = sys.argv[1], sys.argv[2]
nv = ns = total = size = 0
doms = set()
for l in open(path, errors="replace"):
    try:
        o = json.loads(l)
    except ValueError:
        continue
    if not o.get("qname", "").endswith(suffix):
        continue
    if o.get("event") == "violation":
        nv += 1
    elif o.get("event") == "violation_summary":
        ns += 1
        doms.add(str(o.get("domain")))
    else:
        continue
    total += o.get("count", 0)
    size += len(l)
print(nv, ns, total, size, ",".join(sorted(doms)) or "-")
EOF_PY
}

denied() { metric 'egressd_dns_queries_total{result="denied"}'; }

# ---- one registered domain --------------------------------------------
N=${EGIT_FLOOD_N:-4000} # EGIT_FLOOD_N=100000: the figure of docs/logs.md
d0=$(denied)
res=$(flood "$N" '{r}-{i}.tunnel.example')
egit_log "flood: $res"
secs=$("$PY" -c 'import json, sys, math; print(math.ceil(json.loads(sys.argv[1])["secs"]))' "$res")
nx=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["nxdomain"])' "$res")
if [ "$nx" -ge $((N * 9 / 10)) ]; then
	pass "the flood was answered ($nx of $N NXDOMAIN in ${secs} s or less)"
else
	fail "the flood is answered" "$res"
fi
d1=$(denied)
want=$((d1 - d0))
sum_is() { [ "$(tally "$1" | cut -d' ' -f3)" = "$2" ]; }
wait_for 3 sum_is .tunnel.example "$want"
read -r nv ns total size doms <<<"$(tally .tunnel.example)"
egit_log "one domain: $want denied queries -> $nv violation + $ns summary lines, $size bytes; domains $doms"
assert_eq "the counts of the lines add up to the denied queries" "$want" "$total"
# 10 lines and one summary per started second, the tail's second too.
max=$(((secs + 2) * 11))
if [ $((nv + ns)) -le "$max" ] && [ "$ns" -ge 1 ]; then
	pass "$want distinct names under one domain: $((nv + ns)) lines (at most $max)"
else
	fail "a flood under one domain costs at most 11 lines a second" \
		"$nv violation + $ns summary lines for ${secs} s"
fi
assert_eq "the summaries name the registered domain" tunnel.example "$doms"
assert_json_line "a summary line's shape" "$T/egressd.out" \
	event=violation_summary level=warn layer=dns reason=default_deny \
	domain=tunnel.example qtype=A action=nxdomain qname=* count=*

# ---- many registered domains ------------------------------------------
sleep 1.2
N=3000
d0=$(denied)
res=$(flood "$N" 'x.{r}{i}-many.test')
egit_log "flood over many domains: $res"
secs=$("$PY" -c 'import json, sys, math; print(math.ceil(json.loads(sys.argv[1])["secs"]))' "$res")
d1=$(denied)
want=$((d1 - d0))
wait_for 3 sum_is -many.test "$want"
read -r nv ns total size doms <<<"$(tally -many.test)"
egit_log "many domains: $want denied queries -> $nv violation + $ns summary lines, $size bytes; domains $doms"
assert_eq "many domains: the counts add up to the denied queries" "$want" "$total"
max=$(((secs + 2) * 102))
if [ $((nv + ns)) -le "$max" ] && [[ ",$doms," == *,None,* ]]; then
	pass "$want names over as many domains: $((nv + ns)) lines (at most $max), a catch-all summary"
else
	fail "a flood over many domains costs at most ~100 lines a second" \
		"$nv violation + $ns summary lines for ${secs} s; domains $doms"
fi

# ---- afterwards ---------------------------------------------------------
sleep 1.2
q @"$DNS4" after.tunnel.example A
assert_eq "a denied name after the flood: NXDOMAIN" NXDOMAIN "$Q_STATUS"
wait_json_line "a denied name after the flood has its own line" \
	"$T/egressd.out" event=violation qname~=after.tunnel.example count=1
assert_all_json "the stream holds whole JSON lines only" "$T/egressd.out"
stop_egressd
assert_eq "clean stop" 0 "$EGRESSD_RC"
egit_finish
