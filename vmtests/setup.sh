#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Prepare the VM test matrix (root): install qemu, static busybox, kmod and
# the decompressors if missing, then fetch the default kernels into
# $VMT_CACHE (default /var/cache/egressd-vmtests):
#   6.1   bookworm-security   linux-image-amd64        (Debian 12's kernel)
#   6.12  bookworm-security   linux-image-6.12-amd64   (bookworm-backports if absent)
#   6.16  trixie-backports    linux-image-6.16.12+deb13-amd64 (the oldest
#         in Debian's archive that gives cgroup_skb bpf_get_netns_cookie())
#   newest trixie-backports   linux-image-amd64
# Every suite uses private apt lists under the cache; the system's sources
# are not touched. Kernels already fetched are kept (fetch-kernel.sh -f to
# refresh one); the lists are refreshed once a day. About 330 MB of
# downloads the first time.
#
# usage: setup.sh [--no-install]

set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ "$(id -u)" -eq 0 ] || vmt_die "setup.sh needs root (apt-get, /lib/modules)"

if [ "${1:-}" != --no-install ]; then
	need=
	command -v qemu-system-x86_64 >/dev/null || need="$need qemu-system-x86"
	{ command -v busybox >/dev/null && ! ldd "$(command -v busybox)" >/dev/null 2>&1; } ||
		need="$need busybox-static"
	command -v depmod >/dev/null || need="$need kmod"
	command -v xz >/dev/null || need="$need xz-utils"
	command -v zstd >/dev/null || need="$need zstd"
	if [ -n "$need" ]; then
		vmt_log "apt-get install$need"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
	fi
fi
# The guest mounts the kernel's modules over the host tree's /lib/modules.
mkdir -p /lib/modules "$VMT_KDIR"

fetch() { "$here/fetch-kernel.sh" "$@"; }
got=
k=$(fetch -s bookworm-security linux-image-amd64) && got="$got $k"
k=$(fetch -s bookworm-security linux-image-6.12-amd64 ||
    fetch -s bookworm-backports linux-image-amd64) && got="$got $k"
k=$(fetch -s trixie-backports linux-image-6.16.12+deb13-amd64) && got="$got $k"
k=$(fetch -s trixie-backports linux-image-amd64) && got="$got $k"

vmt_log "kernels in $VMT_KDIR:"
vmt_kernel_list | sed 's/^/    /' >&2
[ "$(echo $got | wc -w)" -eq 4 ] || vmt_die "some kernels could not be fetched (see above)"
