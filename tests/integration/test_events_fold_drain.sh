#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# No folded count is lost: a burst of N blocked UDP datagrams to one
# address and port, and nothing after it, gives violation lines whose
# counts add up to N within 2 s of the burst; so does a burst of blocked
# TCP connects, whose lines add up to the SYNs the layer's drop counter
# counted. Whichever layer dropped them:
# nftables (dns+nft, BPF off: nflog reports each packet, egressd folds) and
# the BPF program (which folds in the kernel; egressd must fetch what is
# still folded there once the window is over, as no later packet of the
# key comes to carry it).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
inet_addr "10.200.$X.91" "10.200.$X.92"
N=50

# burst ADDR PORT N: N datagrams from the workload, as fast as it can.
burst() {
	run_workload "$PY" -c '
import socket, sys
a, p, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    try:
        s.sendto(b"x", (a, p))
    except OSError:
        pass' "$@"
}

# count_sum ADDR PORT: the counts of the packet violation lines for
# ADDR:PORT, added up.
count_sum() {
	"$PY" - "$T/egressd.out" "$1" "$2" <<'EOF_PY'
import json, sys
out, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
for l in open(out, errors="replace"):
    try:
        o = json.loads(l)
    except ValueError:
        continue
    if o.get("event") == "violation" and o.get("layer") == "packet" \
            and o.get("dst") == dst and o.get("dport") == dport:
        n += o.get("count", 0)
print(n)
EOF_PY
}

sum_is() { [ "$(count_sum "$1" "$2")" = "$3" ]; }

# connects ADDR PORT N: N non-blocking TCP connects from the workload, each
# abandoned after 0.3 s (before a SYN is sent again).
connects() {
	run_workload "$PY" -c '
import socket, sys, time
a, p, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((a, p))
    except OSError:
        pass
    socks.append(s)
time.sleep(0.3)
for s in socks:
    s.close()' "$@"
}

# drops: the drop counter of the layer under test ($LAYER).
drops() {
	if [ "$LAYER" = bpf ]; then
		bpf_counter default_deny
	else
		nft_counter default_drop
	fi
}

# check LAYER ADDR: burst N to ADDR:9999, then the counts must add up to N
# within 2 s, and stay there; then the same for TCP connects to ADDR:80.
check() {
	local t0 ms d0 d1 want
	LAYER=$1
	d0=$(drops)
	burst "$2" 9999 "$N"
	t0=$(now_ms)
	wait_for 3 sum_is "$2" 9999 "$N"
	ms=$(($(now_ms) - t0))
	if sum_is "$2" 9999 "$N" && [ "$ms" -le 2000 ]; then
		pass "$1: $N blocked datagrams, line counts add up to $N after $ms ms"
	else
		fail "$1: line counts add up to $N within 2 s of the burst" \
			"sum $(count_sum "$2" 9999) after $ms ms" \
			"$(grep -F "\"dst\":\"$2\"" "$T/egressd.out")"
	fi
	sleep 1.2
	assert_eq "$1: and nothing more is reported later" "$N" "$(count_sum "$2" 9999)"
	d1=$(drops)
	assert_eq "$1: the layer's drop counter saw the $N datagrams" "$N" "$((d1 - d0))"

	connects "$2" 80 20
	t0=$(now_ms)
	want=$(($(drops) - d1))
	if [ "$want" -lt 20 ]; then
		fail "$1: 20 connects sent 20 SYNs or more" "$want"
	fi
	wait_for 3 sum_is "$2" 80 "$want"
	ms=$(($(now_ms) - t0))
	if sum_is "$2" 80 "$want" && [ "$ms" -le 2000 ]; then
		pass "$1: 20 blocked connects ($want SYNs), line counts add up after $ms ms"
	else
		fail "$1: connect line counts add up to the $want SYNs within 2 s" \
			"sum $(count_sum "$2" 80) after $ms ms"
	fi
}

# nftables drops and reports (nflog); egressd folds.
start_egressd_nft --rules "$POLICY"
assert_eq "start line: layers.bpf.state off" off \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"
check nftables "10.200.$X.91"
stop_egressd

# The BPF program drops and folds in the kernel.
start_egressd_bpf --rules "$POLICY"
state=$(json_field "$T/egressd.out" start layers.bpf.state)
if [ "$state" = enforce ]; then
	check bpf "10.200.$X.92"
else
	egit_log "BPF layer $state here: its part is skipped"
fi
stop_egressd
egit_finish
