#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# kill -9 under DNS and connect load (docs/security.md "Faults"), in
# dns+nft mode with nftables alone (BPF off), then with BPF enforcing. A
# workload queries an allowed name every
# 20 ms and, as often, tries TCP and UDP to a blocked address and TCP to a
# learned one, from before the kill until well after the restart. While
# egressd is dead and while the new one starts: no packet reaches the
# blocked host (every try fails, its listeners log nothing), DNS gets no
# answer rather than an unfiltered one (the redirect outlives egressd),
# the learned address stays reachable (the table and the pinned maps
# outlive egressd). The new process answers DNS within 1 s of being
# started.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

BLOCKED=10.200.$X.81
bpf_init
start_upstream
start_servers web "tcp:$WEB4:80" "tcp:$BLOCKED:80" "udp:$BLOCKED:9999"
cat >"$T/load.py" <<'EOF_PY'
import socket, sys, threading, time
import dnslib
dns, blocked, learned, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
end = time.monotonic() + secs
lock = threading.Lock()
def out(kind, res):
    with lock:
        print("%s %d %s" % (kind, int(time.time() * 1000), res), flush=True)
def dnsloop():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    while time.monotonic() < end:
        q = dnslib.DNSRecord.question("api.github.com", "A")
        try:
            s.sendto(q.pack(), (dns, 53))
            while True:
                r = dnslib.DNSRecord.parse(s.recv(4096))
                if r.header.id == q.header.id:
                    break
            out("dns", dnslib.RCODE.get(r.header.rcode))
        except socket.timeout:
            out("dns", "TIMEOUT")
        except OSError as e:
            out("dns", "ERR-%s" % e.__class__.__name__)
            time.sleep(0.02)
        time.sleep(0.02)
def tcploop(kind, addr):
    while time.monotonic() < end:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(0.2)
        try:
            c.connect((addr, 80))
            out(kind, "ok")
        except OSError as e:
            out(kind, "blocked")
        finally:
            c.close()
        time.sleep(0.02)
def udploop():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    n = 0
    while time.monotonic() < end:
        try:
            u.sendto(b"kill9-%d" % n, (blocked, 9999))
        except OSError:
            pass
        n += 1
        time.sleep(0.02)
ts = [threading.Thread(target=dnsloop), threading.Thread(target=udploop),
      threading.Thread(target=tcploop, args=("blocked", blocked)),
      threading.Thread(target=tcploop, args=("learned", learned))]
for t in ts:
    t.start()
for t in ts:
    t.join()
EOF_PY

# scenario NAME START-FUNCTION: the whole kill -9 story with egressd
# started by START-FUNCTION.
scenario() {
	local m=$1 start=$2 load t_kill t_start t_line tries first after bad lt
	$start --rules "$POLICY"
	q @"$DNS4" api.github.com A
	assert_eq "$m: before: api.github.com answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	: >"$T/servers-web.log"
	# One line per try, "KIND EPOCH_MS RESULT" (DNS: the time the answer
	# came, or the time the 200 ms timeout ran out).
	run_workload "$PY" "$T/load.py" "$DNS4" "$BLOCKED" "$WEB4" 9 \
		>"$T/load.log" 2>"$T/load.err" &
	load=$!
	EGIT_PIDS+=("$load")
	sleep 2
	t_kill=$(now_ms)
	kill -KILL "$EGRESSD_PID"
	wait "$EGRESSD_PID" 2>/dev/null
	EGRESSD_PID=
	cp "$T/egressd.out" "$T/egressd.out.$m"
	sleep 2
	t_start=$(now_ms)
	$start --rules "$POLICY"
	t_line=$(now_ms)
	egit_log "$m: killed at +0, restarted at +$((t_start - t_kill)) ms, start line after $((t_line - t_start)) ms"
	wait "$load"
	[ -s "$T/load.err" ] && egit_log "load stderr: $(head -c 300 "$T/load.err")"
	tries=$(awk '$1 == "blocked"' "$T/load.log" | wc -l)
	assert_eq "$m: no TCP connect to the blocked host succeeded ($tries tries)" 0 "$(count blocked ok)"
	if [ "$(count blocked blocked "$t_kill" "$t_start")" -ge 5 ]; then
		pass "$m: the blocked host was tried while egressd was dead ($(count blocked blocked "$t_kill" "$t_start") TCP tries, UDP every 20 ms)"
	else
		fail "$m: the blocked host was tried while egressd was dead" "$(count blocked blocked "$t_kill" "$t_start") tries"
	fi
	if grep -q "$BLOCKED" "$T/servers-web.log"; then
		fail "$m: the blocked host's listeners saw nothing (TCP, UDP)" "$(grep "$BLOCKED" "$T/servers-web.log" | head -3)"
	else
		pass "$m: the blocked host's listeners saw nothing (TCP, UDP)"
	fi
	# While dead (after a 300 ms grace for queries in flight): no answers.
	assert_eq "$m: while dead, DNS got no answer at all" 0 \
		"$(count dns NOERROR $((t_kill + 300)) "$t_start")"
	lt=$(awk '$1 == "learned"' "$T/load.log" | wc -l)
	assert_eq "$m: the learned address stayed reachable throughout ($lt tries)" "$lt" "$(count learned ok)"
	first=$(awk -v s="$t_start" '$1 == "dns" && $3 == "NOERROR" && $2 >= s { print $2; exit }' "$T/load.log")
	if [ -n "$first" ] && [ $((first - t_start)) -le 1000 ]; then
		pass "$m: DNS answered again $((first - t_start)) ms after the new process started (<= 1000)"
	else
		fail "$m: DNS answered again within 1 s of the new process starting" \
			"first answer at ${first:-never} (start at $t_start, +$((${first:-0} - t_start)) ms)"
	fi
	after=$(count dns NOERROR "$((t_line + 200))")
	bad=$(awk -v a="$((t_line + 200))" '$1 == "dns" && $2 >= a && $3 != "NOERROR"' "$T/load.log" | wc -l)
	if [ "$after" -gt 10 ] && [ "$bad" = 0 ]; then
		pass "$m: after the restart every query is answered ($after)"
	else
		fail "$m: after the restart every query is answered" "$after answered, $bad not"
	fi
	if kill -0 "$EGRESSD_PID" 2>/dev/null; then
		pass "$m: the new egressd is running"
	else
		fail "$m: the new egressd is running"
	fi
	wait_json_line "$m: the new egressd reports the blocked tries" "$T/egressd.out" \
		event=violation layer=packet reason=default_deny dst="$BLOCKED"
	assert_all_json "$m: stdout holds only JSON lines (restart)" "$T/egressd.out"
	stop_egressd
}

count() { awk -v k="$1" -v r="$2" -v a="${3:-0}" -v b="${4:-99999999999999}" \
	'$1 == k && $3 == r && $2 >= a && $2 < b { n++ } END { print n + 0 }' "$T/load.log"; }

# nftables alone first (no pins yet), then BPF on top.
scenario nft start_egressd_nft
scenario bpf start_egressd_bpf
assert_eq "bpf: the new egressd enforces with BPF" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
egit_finish
