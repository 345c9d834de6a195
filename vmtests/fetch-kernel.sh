#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fetch one Debian kernel into the vmtests cache without installing it:
# resolve a (meta) package to the versioned linux-image package, apt-get
# download it and the linux-*-<release> packages it depends on (7.x splits
# the image into linux-binary/linux-modules), dpkg -x them, run depmod, and
# extract the uncompressed vmlinux so qemu can boot it through PVH (skips
# the kernel's own decompression, several seconds under TCG).
#
# usage: fetch-kernel.sh [-s SUITE] [-f] PACKAGE
#   -s SUITE  use private apt lists for SUITE under the cache (the system's
#             sources are left alone); without -s the system's lists are used
#   -f        fetch and unpack again even if the kernel is already there
# Prints the kernel release (the directory name under $VMT_CACHE/kernels).

set -eu
. "$(dirname "$0")/lib.sh"

suite='' force=''
while getopts s:fh opt; do
	case $opt in
	s) suite=$OPTARG ;;
	f) force=1 ;;
	*) sed -n '3,15s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || vmt_die "usage: fetch-kernel.sh [-s SUITE] [-f] PACKAGE"
pkg=$1

APT=(-o APT::Sandbox::User=root -o Debug::NoLocking=1)
if [ -n "$suite" ]; then
	a=$VMT_CACHE/apt/$suite
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
	case $suite in
	*-security) url=$VMT_SECURITY_MIRROR ;;
	*) url=$VMT_MIRROR ;;
	esac
	printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
		"$url" "$suite" >"$a/sources.list"
	APT+=(-o Dir::Etc::SourceList="$a/sources.list"
	      -o Dir::Etc::SourceParts=/nonexistent
	      -o Dir::State::Lists="$a/lists"
	      -o Dir::Cache="$a/cache"
	      -o Dir::State::status=/dev/null)
	# Refresh the private lists at most once a day.
	stamp=$a/lists/.updated
	if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
		vmt_log "apt-get update ($suite)"
		apt-get "${APT[@]}" -qq update >&2 || vmt_die "apt-get update of $suite failed"
		touch "$stamp"
	fi
fi

# Direct dependencies of a package (first alternative of each).
deps() {
	apt-cache "${APT[@]}" depends --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances "$1" |
		sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \([^<][^ ]*\).*/\2/p'
}

# Meta package -> versioned image package (linux-image-<release>).
image=$pkg
for _ in 1 2 3 4; do
	case $image in
	linux-image-[0-9]*.[0-9]*.[0-9]*-amd64) break ;;
	esac
	next=$(deps "$image" | grep -E '^linux-image-[0-9]+[.][0-9]+' | grep -v -- '-dbg' | head -n1 || true)
	[ -n "$next" ] || vmt_die "$pkg: no linux-image-<release> dependency found (${suite:-system lists})"
	image=$next
done
kver=${image#linux-image-}
kver=${kver%-unsigned}
dir=$VMT_KDIR/$kver

if [ -e "$dir/vmtest.env" ] && [ -z "$force" ]; then
	vmt_log "$kver: cached"
	printf '%s\n' "$kver"
	exit 0
fi

# The image and whatever it depends on that belongs to this release.
pkgs=$image
for d in $(deps "$image"); do
	case $d in linux-*"$kver"*) pkgs="$pkgs $d" ;; esac
done

debs=$VMT_CACHE/debs
mkdir -p "$debs"
vmt_log "$kver: apt-get download $pkgs"
(cd "$debs" && apt-get "${APT[@]}" -qq download $pkgs >&2) ||
	vmt_die "$kver: apt-get download failed"

rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
for p in $pkgs; do
	f=$(ls "$debs/${p}_"*.deb 2>/dev/null | sort -V | tail -n1)
	[ -n "$f" ] || vmt_die "$p: downloaded .deb not found"
	dpkg -x "$f" "$dir.tmp"
done

# /lib/modules or, for merged-/usr packages, /usr/lib/modules.
if [ ! -d "$dir.tmp/lib/modules/$kver" ] && [ -d "$dir.tmp/usr/lib/modules/$kver" ]; then
	mkdir -p "$dir.tmp/lib"
	ln -s ../usr/lib/modules "$dir.tmp/lib/modules"
fi
[ -d "$dir.tmp/lib/modules/$kver" ] || vmt_die "$kver: no modules directory in the packages"
vmlinuz=
for f in "$dir.tmp/boot/vmlinuz-$kver" "$dir.tmp/lib/modules/$kver/vmlinuz"; do
	[ -e "$f" ] && { vmlinuz=$f; break; }
done
[ -n "$vmlinuz" ] || vmt_die "$kver: no vmlinuz in the packages"
depmod -b "$dir.tmp" "$kver"

# vmlinux = the payload of the bzImage: protected-mode code starts at
# (setup_sects + 1) * 512; payload_offset/payload_length (boot protocol
# 2.08+) at 0x248/0x24c locate the compressed ELF inside it.
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
setup_sects=$(u8 "$vmlinuz" $((0x1f1)))
[ "$setup_sects" -eq 0 ] && setup_sects=4
start=$(( (setup_sects + 1) * 512 + $(u32 "$vmlinuz" $((0x248))) ))
len=$(u32 "$vmlinuz" $((0x24c)))
magic=$(od -An -tx1 -j "$start" -N4 "$vmlinuz" | tr -d ' ')
case $magic in
fd377a58) unpack="xz -dc" ;;
28b52ffd) unpack="zstd -dcq" ;;
1f8b08*) unpack="gzip -dc" ;;
*) unpack= ;;
esac
# The payload ends with the decompressed size (4 bytes, little endian),
# which the decompressors report as trailing garbage: their exit status
# is ignored and the size is checked instead.
kernel=vmlinuz
if [ -n "$unpack" ]; then
	tail -c +$((start + 1)) "$vmlinuz" | head -c "$len" | $unpack >"$dir.tmp/vmlinux" 2>/dev/null || true
	want=$(u32 "$vmlinuz" $((start + len - 4)))
	if [ "$(od -An -c -N4 "$dir.tmp/vmlinux" | tr -d ' ')" = '177ELF' ] &&
	   [ "$(stat -c %s "$dir.tmp/vmlinux")" -eq "$want" ]; then
		kernel=vmlinux
	fi
fi
if [ "$kernel" = vmlinuz ]; then
	vmt_log "$kver: could not extract vmlinux (payload magic '$magic'); booting the bzImage"
	rm -f "$dir.tmp/vmlinux"
	cp "$vmlinuz" "$dir.tmp/vmlinuz"
fi

cat >"$dir.tmp/vmtest.env" <<EOF
# written by vmtests/fetch-kernel.sh
KVER=$kver
PACKAGE=$image
SUITE=${suite:-system}
KERNEL=$kernel
EOF
rm -rf "$dir"
mv "$dir.tmp" "$dir"
"$(dirname "$0")/mkinitramfs.sh" "$dir" >&2
vmt_log "$kver: ready ($kernel)"
printf '%s\n' "$kver"
