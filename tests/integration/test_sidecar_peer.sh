#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# egressd as a sidecar container beside the app (sidecar.sh), peer variant:
# the OpenSandbox sidecar's spec (only CAP_NET_ADMIN, read-only cgroupfs): egressd starts, nftables enforces for the whole namespace, BPF is unavailable.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sidecar.sh"
sidecar_init
sidecar_scenario peer none
egit_finish
