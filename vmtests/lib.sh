# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Shared settings of the vmtests scripts (sourced, never run). The cache
# holds everything downloaded or generated: private apt lists, .debs, the
# unpacked kernels with their vmlinux and initramfs. Nothing of it belongs
# in the repository.

VMT_CACHE=${VMT_CACHE:-/var/cache/egressd-vmtests}
VMT_MIRROR=${VMT_MIRROR:-http://deb.debian.org/debian}
VMT_SECURITY_MIRROR=${VMT_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
VMT_KDIR=$VMT_CACHE/kernels

vmt_log() { printf 'vmtests: %s\n' "$*" >&2; }
vmt_die() { vmt_log "$*"; exit 1; }

# Directory of a kernel: an absolute path, or a name under $VMT_KDIR
# (kernel release, e.g. 6.1.0-56-amd64).
vmt_kernel_dir() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$VMT_KDIR" "$1" ;;
	esac
}

# Fetched kernels, oldest first (sort -V on the release), or $VMT_KERNELS.
vmt_kernel_list() {
	if [ -n "${VMT_KERNELS:-}" ]; then
		printf '%s\n' $VMT_KERNELS
		return
	fi
	[ -d "$VMT_KDIR" ] || return 0
	for d in "$VMT_KDIR"/*/vmtest.env; do
		[ -e "$d" ] || continue
		basename "$(dirname "$d")"
	done | sort -V
}
