#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# egressd as a sidecar container beside the app (sidecar.sh), host variant:
# the host's hierarchy mounted into the sidecar: BPF attaches at the sandbox cgroup and covers the namespace until a process shows up outside it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sidecar.sh"
sidecar_init
sidecar_scenario host namespace
egit_finish
