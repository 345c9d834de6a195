#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft with BPF enforcing: nftables hands the workload cgroup's packets
# to the cgroup/skb program, which drops and reports them. From the
# workload: a blocked TCP connect (literal non-allowed IP), a blocked UDP
# send (the listener must receive nothing) and an allowed connect after
# resolving an allowed name. stdout has a packet violation line for each
# blocked one and none for the allowed one; the BPF counters moved and the
# nftables counter default_drop did not (BPF judged, not nftables).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
# github.com (10.200.X.81) is not allowed by $POLICY; api.github.com is.
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.81:80" "udp:10.200.$X.81:9999"
# A process of another cgroup of the namespace is there from the start:
# BPF covers only the workload cgroup, nftables the rest.
bpf_foreign_holder other
start_egressd_bpf --rules "$POLICY"
assert_eq "start line: coverage partial" partial \
	"$(json_field "$T/egressd.out" start coverage.state)"
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
assert_eq "start line: mode dns+nft" dns+nft "$(json_field "$T/egressd.out" start mode)"
assert_contains "nftables hands the workload cgroup to BPF" \
	"$(nft_sb list chain inet egressd egress 2>&1)" \
	"workload cgroup: judged by the egressd BPF program"
wl=$(cgroup_id "$CG/workload")
if [ -e "$PIN/links/cgroup_$wl" ]; then
	pass "link pinned for the workload cgroup ($PIN/links/cgroup_$wl)"
else
	fail "link pinned for the workload cgroup" "$(ls -R "$PIN" 2>&1)"
fi
assert_eq "the link is attached to the workload cgroup" "$wl" "$(bpf_link_field cgroup_id)"

# Control: the hosts serve (from inside the internet namespace).
code=$(ip netns exec "$NET" curl -s -m 2 -o /dev/null -w '%{http_code}' "http://10.200.$X.81/")
assert_eq "control: web host 10.200.$X.81:80 serves" 200 "$code"
ip netns exec "$NET" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"control", (sys.argv[1], 9999))' "10.200.$X.81"
wait_for 2 server_got web "udp 10.200.$X.81 9999 10.200.$X.1 control"
if server_got web control; then pass "control: UDP listener records datagrams"; else fail "control: UDP listener records datagrams" "$(cat "$T/servers-web.log")"; fi

dd0=$(nft_counter default_drop)
dd_bpf0=$(bpf_counter default_deny)
allowed0=$(bpf_counter allowed)

# Blocked TCP connect to a literal non-allowed IP.
assert_blocked "literal IPv4 of a non-allowed host is blocked" "10.200.$X.81" 80
assert_eq "the connect timed out (dropped, curl exit 28)" 28 "$H_RC"
wait_json_line "violation line for the TCP connect" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop \
	proto=tcp family=4 dst="10.200.$X.81" dport=80 src="$SB4" domain=null count=1

# Blocked UDP send.
udp_send "10.200.$X.81" 9999 bpf-blocked-udp
wait_json_line "violation line for the UDP send" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop \
	proto=udp family=4 dst="10.200.$X.81" dport=9999 src="$SB4" domain=null
sleep 0.3
if server_got web bpf-blocked-udp; then
	fail "the UDP listener received nothing from the workload" "$(cat "$T/servers-web.log")"
else
	pass "the UDP listener received nothing from the workload"
fi
if server_got web "tcp 10.200.$X.81 80 $SB4"; then
	fail "no TCP connection from the workload reached 10.200.$X.81" "$(cat "$T/servers-web.log")"
else
	pass "no TCP connection from the workload reached 10.200.$X.81"
fi

# Allowed: resolve, then connect at once.
q @"$DNS4" api.github.com A
assert_eq "api.github.com A answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "right after resolving: $WEB4:80 connects" "$WEB4" 80
if server_got web "tcp $WEB4 80 $SB4"; then pass "the web host saw the allowed connection"; else fail "the web host saw the allowed connection" "$(cat "$T/servers-web.log")"; fi

sleep 1.1	# a folded line would be written by now
assert_eq "no violation line for the allowed destination" "" "$(violations_for "$T/egressd.out" "$WEB4")"

# BPF judged: its counters moved, nftables' default_drop did not.
dd_bpf1=$(bpf_counter default_deny)
allowed1=$(bpf_counter allowed)
if [ "$dd_bpf1" -ge $((dd_bpf0 + 2)) ]; then
	pass "BPF counter default_deny counts the TCP SYN(s) and the datagram: $dd_bpf0 -> $dd_bpf1"
else
	fail "BPF counter default_deny grew by >= 2" "$dd_bpf0 -> $dd_bpf1" "$(bpf_counters_all)"
fi
if [ "$allowed1" -gt "$allowed0" ]; then
	pass "BPF counter allowed counts the allowed flow: $allowed0 -> $allowed1"
else
	fail "BPF counter allowed grew" "$allowed0 -> $allowed1"
fi
dd1=$(nft_counter default_drop)
assert_eq "nftables counter default_drop unchanged (BPF judged the workload)" "$dd0" "$dd1"
assert_eq "nftables counter default_drop is 0" 0 "$dd1"
# DoT from the workload: BPF drops it with reason dot.
assert_tcp_blocked "DoT (10.200.$X.81:853) from the workload is blocked" "10.200.$X.81" 853
wait_json_line "violation line: reason dot, layer packet" "$T/egressd.out" \
	event=violation layer=packet reason=dot action=drop proto=tcp dst="10.200.$X.81" dport=853

# Another cgroup of the same namespace (neither agent nor workload) is not
# handed to BPF: nftables judges it, drops and reports it.
dd_bpf2=$(bpf_counter default_deny)
code=$(run_in_cgroup other curl -s -m 2 -o /dev/null -w '%{http_code}' "http://10.200.$X.81:8080/")
assert_eq "another cgroup of the sandbox: 10.200.$X.81:8080 blocked too" 000 "$code"
dd2=$(nft_counter default_drop)
if [ "${dd2:-0}" -gt "${dd1:-0}" ]; then pass "... by nftables (default_drop $dd1 -> $dd2)"; else fail "... by nftables (default_drop grew)" "$dd1 -> $dd2"; fi
assert_eq "... not by BPF (default_deny unchanged)" "$dd_bpf2" "$(bpf_counter default_deny)"
wait_json_line "... and reported (layer packet, action drop)" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop proto=tcp \
	dst="10.200.$X.81" dport=8080 src="$SB4"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
