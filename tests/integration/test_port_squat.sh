#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, class 8: egressd's ports are egressd's. After a kill -9 a root
# workload with Docker's default capabilities tries to bind egressd's DNS
# port (15353) and API port (18080), TCP and UDP, on 127.0.0.1, ::1 and
# the wildcard, with SO_REUSEADDR/SO_REUSEPORT, so as to answer the
# sandbox's DNS and make the restart fail. In the sidecar topology with
# the host's hierarchy (BPF at the sandbox cgroup), the pinned bind guard
# refuses every such bind (EPERM, counted in bind_refused) while egressd
# is down and while it runs; other ports still bind; the restart gets its
# ports and DNS works. Without BPF nothing can refuse a bind (nftables has
# no hook for it): docs/bpf.md says what remains.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sidecar.sh"
sidecar_init

DOCKER_CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap
root_workload() {
	run_workload setpriv --bounding-set="$DOCKER_CAPS" --inh-caps=-all -- "$@"
}

# squat PORT...: the workload binds each PORT every way it can and keeps
# what it got briefly; prints one line per attempt:
# "<proto> <addr> <port> bound|refused <errno name>".
squat() {
	root_workload "$PY" - "$@" <<'PY'
import errno, socket, sys, time
held = []
for port in map(int, sys.argv[1:]):
    for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"),
                      (socket.AF_INET6, "::1"), (socket.AF_INET6, "::"),
                      (socket.AF_INET6, "::ffff:127.0.0.1")):
        for typ, name in ((socket.SOCK_DGRAM, "udp"), (socket.SOCK_STREAM, "tcp")):
            s = socket.socket(fam, typ)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                s.bind((addr, port))
                if typ == socket.SOCK_STREAM:
                    s.listen(1)
                held.append(s)
                print(name, addr, port, "bound")
            except OSError as e:
                print(name, addr, port, "refused", errno.errorcode.get(e.errno, e.errno))
                s.close()
sys.stdout.flush()
time.sleep(0.2)
PY
}

bind_refused() {
	bpftool -j map lookup pinned "$OPENSANDBOX_EGRESS_BPF_PIN_DIR/counters" key 9 0 0 0 2>/dev/null |
		"$PY" -c 'import json,sys
try: print(sum(v["value"] for v in json.load(sys.stdin)["formatted"]["values"]))
except Exception: print(-1)'
}

start_upstream
start_egressd_sidecar host --mode dns+nft --rules "$POLICY" ||
	die "egressd exited with status $SC_RC: $(cat "$T/egressd.err")"
assert_eq "coverage namespace" namespace "$(json_field "$T/egressd.out" start coverage.state)"
q @"$DNS4" api.github.com
assert_eq "allowed name resolves" "$WEB4" "$Q_ANSWER"

# While egressd runs: no second socket on its ports (SO_REUSEADDR on UDP
# or SO_REUSEPORT would otherwise share them).
out=$(squat 15353 18080)
assert_eq "egressd up: no bind to its ports succeeds" "" "$(grep bound <<<"$out")"
assert_eq "egressd up: each is refused with EPERM" 20 "$(grep -c 'refused EPERM' <<<"$out")"
if wait_for 3 grep -q 'the bind guard refused 20 bind(s) to egressd.s DNS or API port in the last second' "$T/egressd.out"; then
	pass "egressd up: a warning says the guard refused them"
else
	fail "egressd up: a warning says the guard refused them" "$(grep warning "$T/egressd.out" | tail -3)"
fi

kill -KILL "$EGRESSD_PID"
wait "$EGRESSD_PID" 2>/dev/null
EGRESSD_PID=
before=$(bind_refused)
out=$(squat 15353 18080)
assert_eq "egressd down: no bind to its DNS or API port succeeds" "" "$(grep bound <<<"$out")"
assert_eq "egressd down: all 20 refused with EPERM" 20 "$(grep -c 'refused EPERM' <<<"$out")"
after=$(bind_refused)
if [ "$after" -ge $((before + 20)) ]; then
	pass "the refusals are counted (bind_refused $before -> $after)"
else
	fail "the refusals are counted" "bind_refused $before -> $after"
fi
out=$(squat 15354)
assert_eq "other ports still bind (the guard is only for egressd's)" 10 "$(grep -c bound <<<"$out")"

# Nothing could be squatted: the restart gets its ports, and nothing but
# egressd answers the sandbox's DNS.
start_egressd_sidecar host --mode dns+nft --rules "$POLICY" ||
	die "the restart failed: $(cat "$T/egressd.err")"
pass "the restart after kill -9 gets its ports"
assert_contains "restarted: a warning tells of the squatting attempts while it was down" \
	"$(grep '"event":"warning"' "$T/egressd.out")" "since its pins were made"
q @"$DNS4" api.github.com
assert_eq "restarted: allowed name resolves" "$WEB4" "$Q_ANSWER"
q @"$DNS4" evil.example.com
assert_eq "restarted: denied name refused (egressd answers, no squatter)" NXDOMAIN "$Q_STATUS"
stop_egressd
assert_eq "clean stop exits 0" 0 "$EGRESSD_RC"
out=$(squat 15353 18080)
assert_eq "after a clean stop too, no bind to egressd's ports" "" "$(grep bound <<<"$out")"
egit_finish
