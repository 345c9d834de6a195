#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, class 2: a root workload with Docker's default capabilities
# (CAP_NET_RAW, no CAP_NET_ADMIN), in the sidecar topology, forges the
# upstream's answers to egressd's upstream socket (found in /proc/net/udp),
# carrying "A <a blocked address>":
#   brute  ~2000 queries for one allowed name in flight, then an answer for
#          each of the 65536 ids, through a raw socket to its own address
#          and a packet socket on lo;
#   sniff  egressd's query read off the veth with a packet socket, then a
#          perfect answer (id, letter case) the same two ways.
# The upstream never answers, so the forgeries are all there is. nftables
# drops the raw-socket copies (forged source, chain antispoof); egressd
# drops the packet-socket ones (they came in on lo). Nothing
# may be learned, the blocked address stays blocked, the client never sees
# the forged address, egressd says it dropped forged answers; the allowed
# path works afterwards.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=sidecar.sh
. "$(dirname "$0")/sidecar.sh"

FORGE=$EGIT_DIR/../tools/forge-dns.py
TARGET=10.200.$X.81
DOCKER_CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap

attacker() {
	run_workload setpriv --bounding-set="$DOCKER_CAPS" --inh-caps=-all -- \
		"$PY" "$FORGE" "$@"
}

sidecar_init
write_zone "$T/zone"
start_fakedns drop --zone "$T/zone" --listen "$DNS4" --drop
start_servers web tcp:"$WEB4":80 tcp:"$TARGET":80
start_egressd_sidecar nohost --mode dns+nft --rules "$POLICY" ||
	die "egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"

assert_blocked "before: $TARGET blocked" "$TARGET" 80

out=$(attacker brute "$DNS4" files.pypi.org "$TARGET" 2>"$T/brute.err")
egit_log "brute: $(cat "$T/brute.err") / $(grep -c . <<<"$out") client answers"
assert_eq "brute: no client answer carries the forged address" 0 \
	"$(grep -c " $TARGET" <<<"$out")"
assert_contains "brute: the forgeries were sent" "$(cat "$T/brute.err")" "sent"
if nft_learned_has "$TARGET"; then
	fail "brute: forged address not learned" "$TARGET is in the learned set"
else
	pass "brute: forged address not learned"
fi
assert_blocked "brute: $TARGET still blocked" "$TARGET" 80

# The raw-socket copies never got past nftables' chain antispoof (forged
# source); the packet-socket ones skip that hook and met egressd's filter.
spoofed=$(nft_sb list chain inet egressd antispoof 2>/dev/null |
	grep "forged IPv4" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
if [ "${spoofed:-0}" -ge 65536 ]; then
	pass "brute: nftables dropped the raw-socket forgeries ($spoofed)"
else
	fail "brute: nftables dropped the raw-socket forgeries" \
		"chain antispoof counted '${spoofed}': $(nft_sb list chain inet egressd antispoof 2>&1 | head -n 8)"
fi

out=$(attacker sniff "$DNS4" sniffed.pypi.org "$TARGET" "$VS" 2>"$T/sniff.err")
egit_log "sniff: $(cat "$T/sniff.err") / $out"
assert_contains "sniff: egressd's query was seen" "$(cat "$T/sniff.err")" "sniffed id"
assert_not_contains "sniff: the client never gets the forged address" \
	"$out" "$TARGET"
if nft_learned_has "$TARGET"; then
	fail "sniff: forged address not learned" "$TARGET is in the learned set"
else
	pass "sniff: forged address not learned"
fi
assert_blocked "sniff: $TARGET still blocked" "$TARGET" 80
# The packet-socket copies on lo: table netdev egressd drops them as raw
# frames before anything receives them; where that table is missing,
# egressd's socket filter on the upstream sockets refuses them, warns and
# counts.
frames=$(nft_sb list counter netdev egressd raw_frame_drop 2>/dev/null |
	awk '$1 == "packets" { print $2; exit }')
if [ "${frames:-0}" -ge 65536 ]; then
	pass "brute: table netdev egressd dropped the packet-socket forgeries ($frames)"
elif wait_for 3 grep -q "arrived on the loopback interface" "$T/egressd.out"; then
	pass "egressd warns about forged answers on lo"
	forged=$(metric egressd_dns_forged_answers_total)
	if [ "${forged:-0}" -gt 0 ]; then
		pass "/metrics counts the forged answers ($forged)"
	else
		fail "/metrics counts the forged answers" "egressd_dns_forged_answers_total '$forged'"
	fi
else
	fail "the packet-socket forgeries were stopped" \
		"raw_frame_drop '${frames}', and no warning in egressd.out"
fi

# The allowed path: a real upstream at the same address.
kill "$(cat "$T/fakedns-drop.pid")" 2>/dev/null
sleep 0.2
start_upstream
q @"$DNS4" api.github.com A
assert_eq "allowed name answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "allowed address reachable" "$WEB4" 80
assert_blocked "$TARGET still blocked at the end" "$TARGET" 80
egit_finish
