#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# One version everywhere, taken at build time from `git describe --tags
# --always --dirty` (a fixed string outside a git checkout): `egressd
# --version`, the start line, GET /status, egressd_build_info in /metrics
# and `egressctl --version` all say the same, and in a git checkout it is
# what git describe says now (a stale build fails here: run make).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_egressctl
start_upstream
export OPENSANDBOX_EGRESS_BPF=off

v=$("$EGRESSD" --version)
assert_eq "egressd --version exits 0" 0 "$?"
ver=${v#egressd }
if [ -e "$EGIT_ROOT/.git" ] && want=$(git -C "$EGIT_ROOT" describe --tags --always --dirty 2>/dev/null); then
	assert_eq "egressd --version is git describe of the source tree" "egressd $want" "$v"
else
	assert_contains "egressd --version (no git checkout): a version" "$v" "egressd "
fi

start_egressd_api --rules "$POLICY"
assert_eq "start line: version" "$ver" \
	"$(json_field "$T/egressd.out" start version)"
api GET /status
assert_eq "GET /status: version" "$ver" \
	"$(json_eval "$API_BODY" 'o["version"]')"
api GET /metrics
assert_contains "/metrics: egressd_build_info" "$API_BODY" \
	"egressd_build_info{version=\"$ver\"} 1"
ctl --version
assert_eq "egressctl --version exits 0" 0 "$CTL_RC"
assert_eq "egressctl --version: the same version" "egressctl $ver" \
	"${CTL_OUT%% (*}"
egit_finish
