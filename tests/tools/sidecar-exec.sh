#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Play a container runtime's part for a sidecar on a cgroup v2 node: run
# inside fresh cgroup and mount namespaces (unshare --cgroup --mount
# --propagation slave, in the container's cgroup), mount what the
# container sees, then exec the command. Used by the integration tests
# (tests/integration/sidecar.sh) and bench/datapath.sh.
#
# Usage: sidecar-exec.sh [--ro] [--host DIR] [--net-admin-only] TMPDIR CMD...
#   --ro              cgroup2 mounted read-only (Docker's default)
#   --host DIR        bind the host's cgroup2 hierarchy at DIR first (a
#                     hostPath volume) and export
#                     OPENSANDBOX_EGRESS_HOST_CGROUP2=DIR
#   --net-admin-only  exec CMD with CAP_NET_ADMIN alone (the OpenSandbox
#                     sidecar's spec)
#   TMPDIR            a directory for a bind of the host's bpffs
set -e
ro= host= caps=
while :; do
	case $1 in
	--ro) ro=1; shift ;;
	--host) host=$2; shift 2 ;;
	--net-admin-only) caps=1; shift ;;
	*) break ;;
	esac
done
tmp=$1
shift
cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$cg2" ] || { echo "sidecar-exec: no cgroup2 mount" >&2; exit 1; }
if [ -n "$host" ]; then
	mkdir -p "$host"
	mount --bind "$cg2" "$host"
fi
mkdir -p "$tmp/bpffs"
mount --bind /sys/fs/bpf "$tmp/bpffs"
# The network namespace's own /sys (its interfaces), as a runtime mounts.
mount -t sysfs sysfs /sys
case $cg2 in
/sys/fs/cgroup) ;;
*) mount -t tmpfs tmpfs /sys/fs/cgroup; mkdir -p "$cg2" ;;
esac
# Mounted afresh inside the cgroup namespace: its root is our cgroup.
mount -t cgroup2 ${ro:+-o ro} cgroup2 "$cg2"
mount --bind "$tmp/bpffs" /sys/fs/bpf
[ -n "$host" ] && export OPENSANDBOX_EGRESS_HOST_CGROUP2="$host"
set +e
if [ -n "$caps" ]; then
	exec setpriv --bounding-set=-all,+net_admin --inh-caps=-all -- "$@"
fi
exec "$@"
