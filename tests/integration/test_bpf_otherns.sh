#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# The program only acts on packets of egressd's own network namespace. A
# process of a second namespace ($OTH, with its own peer $OTHP) that runs
# in the SAME workload cgroup the program is attached to is unaffected:
# its TCP connect and UDP datagram to a non-allowed address of its peer go
# through, its port-53 datagrams are not redirected, the BPF counters do not move (not even "allowed": the program
# returns before judging), and no violation line mentions it. Meanwhile the
# sandbox's workload, in that same cgroup, is still blocked.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
bpf_other_init
start_upstream
start_servers web "tcp:10.200.$X.81:80"
start_other_servers oth "tcp:$OTHHOST4:80" "udp:$OTHHOST4:9999" "tcp:[$OTHHOST6]:80" \
	"udp:$OTHHOST4:53"
start_egressd_bpf --rules "$POLICY"
# Before 6.15 the programs cannot tell namespaces apart (docs/kernels.md):
# a second namespace's process in the attach cgroup is judged too, which
# is why egressd attaches only at a cgroup of its own sandbox there.
if [ "$(json_field "$T/egressd.out" start layers.bpf.netnsGuard)" = false ]; then
	echo "$EGIT_NAME: skipped: this kernel gives cgroup_skb programs no netns cookie"
	exit 77
fi
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
assert_eq "the link is attached to the workload cgroup" \
	"$(cgroup_id "$CG/workload")" "$(bpf_link_field cgroup_id)"

# Control: the sandbox workload (same cgroup) is blocked.
assert_blocked "sandbox workload: 10.200.$X.81:80 blocked" "10.200.$X.81" 80
wait_json_line "sandbox workload: violation line" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop dst="10.200.$X.81" dport=80

# A process of the other namespace, in the same workload cgroup.
inside=$(run_other sh -c 'cat /proc/self/cgroup' | sed -n 's/^0:://p')
assert_eq "the other namespace's process is in the workload cgroup" \
	"${CG#"$CG2"}/workload" "$inside"
before=$(bpf_counters_all)
code=$(run_other curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$OTHHOST4/")
assert_eq "other netns: TCP to non-allowed $OTHHOST4:80 goes through" 200 "$code"
code=$(run_other curl -g -s -m 2 -o /dev/null -w '%{http_code}' "http://[$OTHHOST6]/")
assert_eq "other netns: TCP to non-allowed [$OTHHOST6]:80 goes through" 200 "$code"
run_other "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"other-ns-udp", (sys.argv[1], 9999))' "$OTHHOST4"
wait_for 2 server_got oth other-ns-udp
if server_got oth "udp $OTHHOST4 9999 $OTH4 other-ns-udp"; then
	pass "other netns: UDP datagram to $OTHHOST4:9999 arrived"
else
	fail "other netns: UDP datagram to $OTHHOST4:9999 arrived" "$(cat "$T/servers-oth.log")"
fi
# The DNS redirect programs sit at the cgroup2 root: port 53 of the other
# namespace must reach its own server, not egressd's proxy.
run_other "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"other-ns-dns", (sys.argv[1], 53))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect((sys.argv[1], 53))
c.send(b"other-ns-dns-connected")' "$OTHHOST4"
wait_for 2 server_got oth other-ns-dns-connected
if server_got oth "udp $OTHHOST4 53 $OTH4 other-ns-dns" &&
	server_got oth "udp $OTHHOST4 53 $OTH4 other-ns-dns-connected"; then
	pass "other netns: port 53 is not redirected (sendto and connect)"
else
	fail "other netns: port 53 is not redirected (sendto and connect)" "$(cat "$T/servers-oth.log")"
fi
after=$(bpf_counters_all)
assert_eq "BPF counters unchanged by the other namespace's traffic" "$before" "$after"
sleep 1.1
assert_eq "no violation line mentions $OTHHOST4" "" "$(violations_for "$T/egressd.out" "$OTHHOST4")"
assert_eq "no violation line mentions $OTHHOST6" "" "$(violations_for "$T/egressd.out" "$OTHHOST6")"
assert_eq "no violation line mentions $OTH4" "" "$(violations_for "$T/egressd.out" "$OTH4")"

# And the sandbox workload is still blocked afterwards.
assert_blocked "sandbox workload: still blocked" "10.200.$X.81" 80
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
