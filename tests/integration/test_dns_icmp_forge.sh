#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, class 2, at the transport: a root workload with
# Docker's default capabilities (CAP_NET_RAW, no CAP_NET_ADMIN), in the
# sidecar topology, finds egressd's upstream socket in /proc/net/udp and
# sprays it for 2 s with ICMP port-unreachable errors that quote a
# datagram from that socket to the upstream, sent through a raw socket to
# egressd's own address (so from an address of the namespace, through lo,
# which chain antispoof lets pass). Meanwhile it resolves an allowed name
# again and again. The upstream is remote and answers: every query must
# be answered with the zone's address, the upstream must stay healthy,
# and egressd must count and warn about the forged errors (kind
# forged_icmp); the probe rounds (every second here) that fall in the
# spray must not fail either. Once over IPv4 (upstream $DNS4), once over IPv6 (upstream
# $DNS6). A real refusal still fails over at once: test_dns_upstream_probe,
# test_fault_upstream, test_dns_failover.
#
# Class 2b, the forged source: the same errors with the whole IP header
# written (IP_HDRINCL, an IPPROTO_RAW IPv6 socket), the UPSTREAM as their
# source, sent to 127.0.0.1/::1 ("lo") or to egressd's own address
# ("self"). egressd would take such an error for the upstream's own. With
# nftables in the output path (nohost) chain antispoof drops them; with BPF
# covering the namespace (host: no nftables output hook at all) the BPF
# egress program drops them. Either way the workload's send fails, a
# default_deny packet violation names the destination, egressd never sees
# them, and DNS keeps answering. The kernel's own errors through lo (a UDP
# send to a closed local port) still reach the workload as ECONNREFUSED.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=sidecar.sh
. "$(dirname "$0")/sidecar.sh"

FORGE=$EGIT_DIR/../tools/forge-icmp.py
DOCKER_CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap

attacker() {
	run_workload setpriv --bounding-set="$DOCKER_CAPS" --inh-caps=-all -- \
		"$PY" "$FORGE" "$@"
}

# container_get PATH: GET PATH from egressd's container cgroup, as
# `docker exec` would (status_field).
container_get() {
	run_in_container curl -s -m 2 "http://127.0.0.1:18080$1"
}

# healthy ADDR: the "healthy" of upstream ADDR in GET /status.
healthy() {
	container_get /status | "$PY" -c '
import json, sys
for u in json.load(sys.stdin).get("upstreams", []):
    if u.get("addr") == sys.argv[1]:
        print(json.dumps(u.get("healthy")))' "$1" 2>/dev/null
}

container_metric() {
	container_get /metrics | awk -v m="$1" '$1 == m { print $2; exit }'
}

# spray LABEL UPSTREAM UPSTREAM_TEXT [lo|self]: without the last argument
# egressd's own address is the source (egressd sees the errors and ignores
# them); with it the upstream is the source and the datapath must drop them
# on the way to 127.0.0.1/::1 (lo) or egressd's own address (self).
spray() {
	local label=$1 up=$2 text=$3 spoof=${4:-} out n ok sent bad forged probes
	local errs to forged0 args=()
	[ -n "$spoof" ] && args=(--spoof "$spoof")
	forged0=$(container_metric egressd_dns_forged_answers_total)
	q @"$DNS4" api.github.com A
	assert_eq "$label: answered before the spray" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	out=$(attacker "${args[@]}" "$up" "$DNS4" api.github.com 2 2>"$T/forge-$label.err")
	egit_log "$label: $out $(cat "$T/forge-$label.err")"
	n=$(json_eval "$out" 'sum(o["answers"].values())')
	ok=$(json_eval "$out" 'o["answers"].get("NOERROR '"$WEB4"'", 0)')
	sent=$(json_eval "$out" 'o["sent"]')
	errs=$(json_eval "$out" 'o["send_errors"]')
	to=$(json_eval "$out" 'o["to"]')
	if [ -z "$spoof" ] && [ "${sent:-0}" -ge 100 ]; then
		pass "$label: the forged errors were sent ($sent)"
	elif [ -n "$spoof" ] && [ "${errs:-0}" -ge 100 ] && [ "$sent" = 0 ]; then
		pass "$label: every forged error to $to refused at send ($errs, $(json_eval "$out" 'o["send_error"]'))"
	else
		fail "$label: the forged errors were ${spoof:+refused at }sent" "$out $(cat "$T/forge-$label.err")"
	fi
	if [ "${n:-0}" -ge 20 ] && [ "$ok" = "$n" ]; then
		pass "$label: every query answered during the spray ($ok of $n)"
	else
		fail "$label: every query answered during the spray" "$ok of $n: $out"
	fi
	assert_eq "$label: the upstream is still healthy" true "$(healthy "$text")"
	q @"$DNS4" api.github.com A
	assert_eq "$label: answered after the spray" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	forged=$(container_metric egressd_dns_forged_answers_total)
	if [ -n "$spoof" ]; then
		assert_eq "$label: egressd never saw a forged error" "${forged0:-0}" "${forged:-0}"
		wait_json_line "$label: a default_deny packet violation names $to" \
			"$T/egressd.out" event=violation layer=packet \
			reason=default_deny dst="$to"
	elif [ "${forged:-0}" -gt 0 ]; then
		pass "$label: /metrics counts the forged errors ($forged)"
	else
		fail "$label: /metrics counts the forged errors" "egressd_dns_forged_answers_total '$forged'"
	fi
	bad=$(egressd_line_count "upstream $text unusable")
	assert_eq "$label: no 'unusable' line for the upstream" 0 "$bad"
	# A probe round every second: those during the spray answered too.
	bad=$(egressd_line_count "upstream probe $text failed")
	assert_eq "$label: no failed probe" 0 "$bad"
	probes=$(container_metric "egressd_dns_upstream_probes_total{upstream=\"$text\",result=\"answered\"}")
	if [ "${probes:-0}" -ge 3 ]; then
		pass "$label: the probes during the spray answered ($probes)"
	else
		fail "$label: the probes during the spray answered" "answered '$probes'"
	fi
	[ -n "$spoof" ] && return
	if wait_for 3 grep -q '"kind":"forged_icmp"' "$T/egressd.out"; then
		pass "$label: egressd warns about the forged errors (forged_icmp)"
	else
		fail "$label: egressd warns about the forged errors (forged_icmp)" \
			"$(grep -i icmp "$T/egressd.out" | head -n 3)"
	fi
}

egressd_line_count() {
	grep -cF -- "$1" "$T/egressd.out"
}

# kernel_refusals LABEL ADDR...: from the workload, a connected UDP socket
# sends to a closed port of each ADDR (reached through lo); the kernel's
# port unreachable must come back as ECONNREFUSED.
kernel_refusals() {
	local label=$1 a r
	shift
	for a in "$@"; do
		r=$(run_workload "$PY" - "$a" <<'PY'
import socket, sys
a = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET,
                  socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((a, 9))
try:
    s.send(b"x")
    s.recv(16)
    print("answered")
except ConnectionRefusedError:
    print("ECONNREFUSED")
except OSError as e:
    print(type(e).__name__, e)
PY
)
		assert_eq "$label: the kernel's port unreachable from $a still arrives" ECONNREFUSED "$r"
	done
}

# pings LABEL ADDR...: an echo request from the workload (raw socket, as
# ping) through lo still gets the kernel's echo reply (neither is an
# error).
pings() {
	local label=$1 a r
	shift
	for a in "$@"; do
		r=$(run_workload "$PY" - "$a" <<'PY'
import socket, struct, sys, time
a = sys.argv[1]
v6 = ":" in a
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
s.settimeout(2)
body = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, 0x4567, 1) + b"egit"
if not v6:
    c = sum(struct.unpack("!6H", body))
    c = (c >> 16) + (c & 0xffff)
    c = ~(c + (c >> 16)) & 0xffff
    body = body[:2] + struct.pack("!H", c) + body[4:]
try:
    s.sendto(body, (a, 0))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        m = s.recv(256)
        if not v6:
            m = m[(m[0] & 15) * 4:]
        if m[0] == (129 if v6 else 0) and m[4:6] == b"\x45\x67":
            print("reply")
            break
    else:
        print("no reply")
except OSError as e:
    print(type(e).__name__, e)
PY
)
		assert_eq "$label: an echo request to $a is answered" reply "$r"
	done
}

# cleanup_egressd: what egressd left attached and pinned, removed between
# variants.
cleanup_egressd() {
	nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup >/dev/null 2>"$T/cleanup.err" ||
		fail "egressd --cleanup" "$(cat "$T/cleanup.err")"
}

sidecar_init
start_upstream
export OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT=3
export OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC=1

# nftables in the output path: chain antispoof.
start_egressd_sidecar nohost --mode dns+nft --rules "$POLICY" \
	--dns-upstream "$DNS4" ||
	die "egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"
spray ipv4 "$DNS4" "$DNS4:53"
spray ipv4-spoofed-lo "$DNS4" "$DNS4:53" lo
spray ipv4-spoofed-self "$DNS4" "$DNS4:53" self
kernel_refusals ipv4 127.0.0.1 "$SB4"
stop_egressd

start_egressd_sidecar nohost --mode dns+nft --rules "$POLICY" \
	--dns-upstream "[$DNS6]" ||
	die "egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"
spray ipv6 "$DNS6" "[$DNS6]:53"
spray ipv6-spoofed-lo "$DNS6" "[$DNS6]:53" lo
spray ipv6-spoofed-self "$DNS6" "[$DNS6]:53" self
kernel_refusals ipv6 ::1 "$SB6"
stop_egressd
cleanup_egressd

# BPF covering the namespace: no nftables output hook, antispoof included.
start_egressd_sidecar host --mode dns+nft --rules "$POLICY" \
	--dns-upstream "$DNS4" ||
	die "host: egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"
assert_eq "host: BPF covers the namespace" namespace \
	"$(json_field "$T/egressd.out" start coverage.state)"
spray host-ipv4-spoofed-lo "$DNS4" "$DNS4:53" lo
spray host-ipv4-spoofed-self "$DNS4" "$DNS4:53" self
# (The sandbox's own address is not loopback to the BPF program: this
# policy does not allow it, so the send itself is dropped there.)
kernel_refusals host-ipv4 127.0.0.1
pings host-ipv4 127.0.0.1
stop_egressd

start_egressd_sidecar host --mode dns+nft --rules "$POLICY" \
	--dns-upstream "[$DNS6]" ||
	die "host: egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"
spray host-ipv6-spoofed-lo "$DNS6" "[$DNS6]:53" lo
spray host-ipv6-spoofed-self "$DNS6" "[$DNS6]:53" self
kernel_refusals host-ipv6 ::1
pings host-ipv6 ::1
stop_egressd
cleanup_egressd
egit_finish
