#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft without CAP_NET_ADMIN (fresh sandbox netns): egressd still starts,
# says so in exactly one warning line about nftables, reports mode dns with
# layers.nft.state "unavailable", installs nothing, and its DNS layer still
# filters queries sent straight to 127.0.0.1:15353 (no redirect possible).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
egit_require_egressd
command -v setpriv >/dev/null || die "setpriv (util-linux) not found"
start_upstream
real=$EGRESSD
EGRESSD=$T/egressd-nocap
cat >"$EGRESSD" <<EOF
#!/bin/sh
exec setpriv --inh-caps=-net_admin --ambient-caps=-net_admin --bounding-set=-net_admin -- "$real" "\$@"
EOF
chmod +x "$EGRESSD"
start_egressd_nft --rules "$POLICY"

capeff=$(awk '$1 == "CapEff:" { print $2 }' "/proc/$EGRESSD_PID/status")
if [ -n "$capeff" ] && [ $((0x$capeff >> 12 & 1)) = 0 ]; then
	pass "egressd runs without CAP_NET_ADMIN (CapEff $capeff)"
else
	fail "egressd runs without CAP_NET_ADMIN" "CapEff '$capeff'"
fi
assert_json_line "start line: mode dns, requested dns+nft" "$T/egressd.out" \
	event=start mode=dns requestedMode=dns+nft
assert_eq "start line: layers.nft.state" unavailable "$(json_field "$T/egressd.out" start layers.nft.state)"
assert_eq "start line: layers.dns.state" on "$(json_field "$T/egressd.out" start layers.dns.state)"
nw=$(grep -E '"event" *: *"warning"' "$T/egressd.out" | grep -ciE 'nftables|nft')
assert_eq "exactly one warning line mentions nftables" 1 "$nw"
assert_eq "nothing installed: no nftables table in the sandbox" "" "$(nft_sb list tables 2>&1)"

# dq DIG-ARGS: dig from the sandbox straight to the proxy port.
dq() {
	Q_OUT=$(nsenter --net="/run/netns/$SB" -- dig +tries=1 +time=2 +noall +comments +answer \
		-p 15353 @127.0.0.1 "$@" 2>&1)
	Q_STATUS=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$Q_OUT" | head -n 1)
	[ -n "$Q_STATUS" ] || Q_STATUS=TIMEOUT
	Q_ANSWER=$(awk '!/^;/ && NF >= 5 { printf "%s%s", sep, $5; sep = " " }' <<<"$Q_OUT")
}
dq api.github.com A
assert_eq "DNS layer serves 127.0.0.1:15353: allowed name answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
dq evil.example.com A
assert_eq "DNS layer still filters: denied name NXDOMAIN" NXDOMAIN "$Q_STATUS"
wait_json_line "dns violation line" "$T/egressd.out" \
	event=violation layer=dns qname~=evil.example.com reason=deny_rule action=nxdomain
assert_not_forwarded "denied name not forwarded" evil.example.com
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
stop_egressd
assert_eq "SIGTERM: exit status 0" 0 "$EGRESSD_RC"
egit_finish
