#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the small initramfs (about 1.5 MB) vmrun.sh boots a fetched kernel
# with: static busybox, vmtests/initramfs-init as /init, and the modules
# needed to mount the host's / over virtio-9p, in dependency order. Module
# files are stored uncompressed because busybox insmod cannot read .ko.xz
# or .ko.zst.
#
# usage: mkinitramfs.sh KERNEL_DIR     (writes KERNEL_DIR/vmtest-initrd.gz)

set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ $# -eq 1 ] || vmt_die "usage: mkinitramfs.sh KERNEL_DIR"
kdir=$(vmt_kernel_dir "$1")
[ -e "$kdir/vmtest.env" ] || vmt_die "$kdir: not a fetched kernel (no vmtest.env)"
. "$kdir/vmtest.env"
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || vmt_die "busybox not found (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
	vmt_die "$busybox is dynamically linked (apt-get install busybox-static)"
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/vmtest-initrd.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,newroot,modules}
cp "$busybox" "$root/bin/busybox"
cp "$here/initramfs-init" "$root/init"
chmod 755 "$root/init"

# virtio_pci is a module in 6.1 and built in from 6.12 on; "builtin" lines
# of --show-depends are skipped.
: >"$root/modules/order"
for m in virtio_pci 9pnet_virtio 9p; do
	modprobe -d "$kdir" -S "$KVER" --show-depends "$m" ||
		vmt_die "$KVER: modprobe --show-depends $m failed"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' |
while read -r ko; do
	name=$(basename "$ko")
	case $name in
	*.ko.xz) name=${name%.xz}; xz -dc "$ko" >"$root/modules/$name" ;;
	*.ko.zst) name=${name%.zst}; zstd -dcq "$ko" >"$root/modules/$name" ;;
	*.ko.gz) name=${name%.gz}; gzip -dc "$ko" >"$root/modules/$name" ;;
	*) cp "$ko" "$root/modules/$name" ;;
	esac
	echo "$name" >>"$root/modules/order"
done

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	"$root/bin/busybox" cpio -o -H newc 2>/dev/null) |
	gzip -6 >"$kdir/vmtest-initrd.gz.tmp"
mv "$kdir/vmtest-initrd.gz.tmp" "$kdir/vmtest-initrd.gz"
vmt_log "$KVER: initramfs $(du -h "$kdir/vmtest-initrd.gz" | cut -f1)," \
	"modules: $(tr '\n' ' ' <"$root/modules/order")"
