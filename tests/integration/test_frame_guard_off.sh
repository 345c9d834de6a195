#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# OPENSANDBOX_EGRESS_FRAME_GUARD=0, for apps whose container drops
# CAP_NET_RAW (docs/nftables.md, "Its cost, and turning it off"): egressd
# installs no table netdev egressd, removes the one an earlier run left
# (kill -9 keeps it, fail closed), says so in a warning and in /status,
# and the rest works. Without the setting the table is there.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream

# 1. Default: the guard is on.
start_egressd --mode dns+nft --rules "$POLICY"
assert_eq "default: table netdev egressd installed" 0 \
	"$(nft_sb list table netdev egressd >/dev/null 2>&1; echo $?)"
api GET /status
assert_contains "default: /status frames on" "$API_BODY" '"frames":{"state":"on"'
# kill -9: the tables stay, as after any crash.
kill -KILL "$EGRESSD_PID"
wait "$EGRESSD_PID" 2>/dev/null
EGRESSD_PID=

# 2. Restart with the guard off: the stale table goes, nothing replaces it.
OPENSANDBOX_EGRESS_FRAME_GUARD=0 start_egressd --mode dns+nft --rules "$POLICY"
assert_eq "off: no table netdev egressd (the earlier run's removed)" 1 \
	"$(nft_sb list table netdev egressd >/dev/null 2>&1; echo $?)"
wait_json_line "off: a warning says frames are not judged" "$T/egressd.out" \
	event=warning
assert_contains "off: the warning names the setting and CAP_NET_RAW" \
	"$(grep '"event":"warning"' "$T/egressd.out")" \
	"OPENSANDBOX_EGRESS_FRAME_GUARD=0: frames a packet socket writes around the IP stack are not judged"
api GET /status
assert_contains "off: /status frames off, with why" "$API_BODY" \
	'"frames":{"state":"off","interfaces":"","why":"OPENSANDBOX_EGRESS_FRAME_GUARD=0"}'
assert_contains "off: the start line says so too" \
	"$(grep '"event":"start"' "$T/egressd.out")" '"frames":{"state":"off"'
# The rest is unaffected: allowed names resolve, others do not.
q @"$DNS4" api.github.com A
assert_eq "off: an allowed name resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" evil.example.com A
assert_eq "off: a denied name is NXDOMAIN" NXDOMAIN "$Q_STATUS"
# Still off a second later (the interface poll does not bring it back).
sleep 1.5
assert_eq "off: still no table after the interface poll" 1 \
	"$(nft_sb list table netdev egressd >/dev/null 2>&1; echo $?)"
stop_egressd

# 3. A bad value is a start error naming the variable.
OPENSANDBOX_EGRESS_FRAME_GUARD=maybe egressd_cmd --mode dns+nft >"$T/bad.out" 2>"$T/bad.err"
assert_eq "bad value: exit 1 (a start-up error)" 1 "$?"
assert_contains "bad value: the error names the variable" "$(cat "$T/bad.err")" \
	OPENSANDBOX_EGRESS_FRAME_GUARD
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
