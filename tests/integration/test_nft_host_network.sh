#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Host-network refusal. `egressd --check-host-network` only lists the
# namespace's links (it installs nothing), so it is safe to run in the
# host's namespace: there it exits 1 naming a device-backed interface; in
# a fresh sandbox namespace it exits 0. A full egressd is never started in
# the host's namespace here; a full start in a sandbox namespace (nothing
# device-backed in it) works, as every other test shows, and is checked
# once more below. A sandbox into which a device-backed interface was moved
# is not built (that would take a NIC away from the host).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
egit_require_egressd

# Device-backed interfaces of the host's namespace (a NIC has a parent
# device in sysfs; veth, loopback, bridges do not).
devs=
for l in /sys/class/net/*; do
	[ -e "$l/device" ] && devs="$devs ${l##*/}"
done

out=$("$EGRESSD" --check-host-network 2>&1)
rc=$?
if [ -z "$devs" ]; then
	echo "  $EGIT_NAME: SKIP host part: the host namespace has no device-backed interface"
	egit_log "(--check-host-network in the host namespace said: rc $rc: $out)"
else
	assert_eq "host namespace: --check-host-network exits 1" 1 "$rc"
	named=
	for d in $devs; do
		grep -qw -- "$d" <<<"$out" && named=$d
	done
	if [ -n "$named" ]; then
		pass "host namespace: the message names device-backed interface $named"
	else
		fail "host namespace: the message names a device-backed interface (one of:$devs)" "it said: $out"
	fi
fi

out=$(nsenter --net="/run/netns/$SB" -- "$EGRESSD" --check-host-network 2>&1)
rc=$?
assert_eq "sandbox namespace: --check-host-network exits 0" 0 "$rc"
egit_log "(it said: $out)"
assert_eq "--check-host-network installed nothing in the sandbox" "" "$(nft_sb list tables 2>&1)"

start_upstream
start_egressd_nft --rules "$POLICY"
assert_json_line "full start in the sandbox namespace: start line, dns+nft" \
	"$T/egressd.out" event=start mode=dns+nft
egit_finish
