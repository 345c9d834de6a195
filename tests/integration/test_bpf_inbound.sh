#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A server inside the sandbox (a workload process, like OpenSandbox's
# execd) answers clients that connect to it from outside, although the
# policy allows none of their addresses: replies to a peer that opened
# the flow pass, as nftables' "ct state established" lets them. Checked
# with BPF enforcing (the BPF ingress tracker opens
# the reply direction; at the default attach point nftables has no chain
# at all) and with nftables alone (conntrack), over TCP and
# UDP, IPv4 and IPv6. The workload still cannot open a connection to that
# same client address on another port.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
start_servers web "tcp:$GW4:80"

# A TCP echo and a UDP echo server in the sandbox's workload cgroup, on v4
# and v6 (dual-stack sockets).
run_workload "$PY" - >"$T/srv.log" 2>&1 <<'PY' &
import socket, threading
def tcp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 8080)); s.listen(16)
    while True:
        c, _ = s.accept()
        c.settimeout(2)
        try:
            c.sendall(b"echo " + c.recv(100))
        except OSError:
            pass
        c.close()
def udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 9090))
    while True:
        data, a = s.recvfrom(100)
        s.sendto(b"echo " + data, a)
threading.Thread(target=tcp, daemon=True).start()
print("ready", flush=True)
udp()
PY
EGIT_PIDS+=($!)
wait_for 5 grep -q ready "$T/srv.log" || die "sandbox server did not start: $(cat "$T/srv.log")"

# client ADDR PROTO: from the peer namespace, one request, prints the reply.
client() {
	ip netns exec "$NET" "$PY" - "$1" "$2" <<'PY'
import socket, sys
addr, proto = sys.argv[1], sys.argv[2]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
try:
    if proto == "tcp":
        s = socket.create_connection((addr, 8080), timeout=2)
        s.sendall(b"hi")
        print(s.recv(100).decode())
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(b"hi", (addr, 9090))
        print(s.recv(100).decode())
except Exception as e:
    print("ERR", type(e).__name__)
PY
}

for variant in bpf-root bpf nft; do
	case $variant in
	bpf-root)
		# The default attach point: BPF judges every packet of the
		# namespace, nftables has no chain, so no conntrack: only the
		# BPF ingress tracker knows who called in.
		start_egressd_bpf --rules "$POLICY" --cgroup "$CG2"
		assert_eq "$variant: layers.bpf.state enforce" enforce \
			"$(json_field "$T/egressd.out" start layers.bpf.state)"
		assert_not_contains "$variant: no chain egress, no conntrack" \
			"$(nft_sb list table inet egressd)" "hook output"
		;;
	bpf)
		start_egressd_bpf --rules "$POLICY"
		assert_eq "$variant: layers.bpf.state enforce" enforce \
			"$(json_field "$T/egressd.out" start layers.bpf.state)"
		;;
	nft)
		start_egressd --mode dns+nft --bpf off --rules "$POLICY"
		# nftables alone: nothing of the BPF variants is left attached
		assert_eq "$variant: no egressd program on the workload cgroup" "" \
			"$(bpftool cgroup show "$CG/workload" 2>/dev/null | grep -E 'egress_filter|ingress_track')"
		;;
	esac
	for addr in "$SB4" "$SB6"; do
		for proto in tcp udp; do
			assert_eq "$variant: $proto client at the peer gets the sandbox server's reply ($addr)" \
				"echo hi" "$(client "$addr" "$proto")"
		done
	done
	# The client's address is still not reachable by the workload itself.
	assert_blocked "$variant: the workload cannot connect out to the client's address" "$GW4" 80
	stop_egressd
	nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup >/dev/null 2>&1
done
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
