#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# egressd as a sidecar container beside the app (sidecar.sh), nohost variant:
# no host hierarchy visible: BPF has no sandbox cgroup to attach to, nftables judges the whole namespace.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sidecar.sh"
sidecar_init
sidecar_scenario nohost none
assert_contains "nohost: BPF says why it is not attached" \
	"$(json_field "$T/egressd.out" start layers.bpf.why)" "private cgroup namespace"
egit_finish
