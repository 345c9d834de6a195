#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run one command as root in a qemu guest (TCG: KVM does not work on this
# machine kind) under a fetched Debian kernel. The guest sees the host's /
# read-only, starts in the host's cwd and has no network card (loopback,
# netns and veth only). The command's stdout and stderr stream back
# separately; its exit code is vmrun.sh's. 125 = no result: the guest did
# not boot, panicked, or the run hit the timeout.
#
# usage: vmrun.sh [-s] [-t SECONDS] KERNEL [COMMAND [ARG...]]
#   KERNEL      a release under $VMT_CACHE/kernels (see setup.sh) or a directory
#   -s          interactive shell on the serial console instead of COMMAND
#   -t SECONDS  timeout (default $VMT_TIMEOUT or 300)
# environment:
#   VMT_ENV="A B"    host variables to pass to the command
#   VMT_RWDIR=DIR    share DIR read-write at the same path (the rest is read-only)
#   VMT_CONSOLE=1    show the guest console (kernel messages) live
#   VMT_LOGDIR=DIR   keep stdout, stderr, console.log and dmesg of the run there
#   VMT_MEM (2G), VMT_SMP (2), VMT_QEMU_ARGS (extra qemu arguments)

set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

shell='' timeout=${VMT_TIMEOUT:-300}
while getopts st:h opt; do
	case $opt in
	s) shell=1 ;;
	t) timeout=$OPTARG ;;
	*) sed -n '3,21s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || vmt_die "usage: vmrun.sh [-s] [-t SECONDS] KERNEL [COMMAND [ARG...]]"
kdir=$(vmt_kernel_dir "$1")
shift
[ -n "$shell" ] || [ $# -ge 1 ] || vmt_die "no command given (or -s for a shell)"
[ -e "$kdir/vmtest.env" ] || vmt_die "$kdir: not a fetched kernel (run vmtests/setup.sh)"
. "$kdir/vmtest.env"
# A cached initramfs older than the scripts that build it is rebuilt.
initrd=$kdir/vmtest-initrd.gz
if [ ! -e "$initrd" ] || [ "$here/initramfs-init" -nt "$initrd" ] ||
   [ "$here/mkinitramfs.sh" -nt "$initrd" ]; then
	"$here/mkinitramfs.sh" "$kdir" >&2
fi
command -v qemu-system-x86_64 >/dev/null || vmt_die "qemu-system-x86_64 not found (run vmtests/setup.sh)"
modules=$(readlink -f "$kdir/lib/modules")

# The guest mounts the modules on /lib/modules of the host's tree.
if [ ! -d /lib/modules ]; then
	mkdir -p /lib/modules 2>/dev/null ||
		vmt_log "warning: no /lib/modules on the host: the guest cannot load modules on demand"
fi
case $PWD/ in
/tmp/*) vmt_log "warning: cwd is under /tmp, which the guest hides behind a tmpfs" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/vmtest-run.XXXXXX")
qpid='' tails=''
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	[ -n "$tails" ] && kill $tails 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The command as the host's bash will run it, quoted by bash itself.
{
	printf 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'
	printf 'export HOME=/tmp TERM=%q VMTEST=1\n' "${TERM:-dumb}"
	for v in ${VMT_ENV:-}; do
		[ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
	done
	printf 'cd %q || exit 125\n' "$PWD"
	if [ -n "$shell" ]; then
		printf 'exec /bin/bash -i\n'
	else
		printf 'exec'
		printf ' %q' "$@"
		printf '\n'
	fi
} >"$work/cmd.sh"

# PID 1 after switch_root (busybox sh from the initramfs, copied to tmpfs).
cat >"$work/guest-init.sh" <<'EOF'
bb=/run/vmtest-bin/busybox
if [ -e /run/vmtest/shell ]; then
	$bb setsid $bb cttyhack /bin/bash /run/vmtest/cmd.sh
	rc=$?
else
	/bin/bash /run/vmtest/cmd.sh </dev/null >/run/vmtest/stdout 2>/run/vmtest/stderr
	rc=$?
fi
$bb dmesg >/run/vmtest/dmesg 2>/dev/null
echo $rc >/run/vmtest/rc.tmp && $bb mv /run/vmtest/rc.tmp /run/vmtest/rc
$bb sync
$bb poweroff -f
EOF
: >"$work/stdout"
: >"$work/stderr"
[ -n "$shell" ] && : >"$work/shell"

share=local,security_model=none,multidevs=remap
args=(-nodefaults -no-user-config -no-reboot
      -accel tcg,thread=multi -cpu max -machine pc
      -smp "${VMT_SMP:-2}" -m "${VMT_MEM:-2G}" -display none -monitor none
      -kernel "$kdir/$KERNEL" -initrd "$kdir/vmtest-initrd.gz"
      -append "console=ttyS0 panic=-1 oops=panic rdinit=/init quiet loglevel=4 tsc=reliable no_timer_check mitigations=off nokaslr"
      -virtfs "$share,path=/,mount_tag=hostroot,readonly=on"
      -virtfs "$share,path=$modules,mount_tag=kmods,readonly=on"
      -virtfs "$share,path=$work,mount_tag=vmtest")
if [ -n "${VMT_RWDIR:-}" ]; then
	rw=$(cd "$VMT_RWDIR" && pwd)
	args+=(-virtfs "$share,path=$rw,mount_tag=vmtest_rw")
	printf 'mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vmtest_rw %q || exit 125\n' \
		"$rw" | cat - "$work/cmd.sh" >"$work/cmd.tmp" && mv "$work/cmd.tmp" "$work/cmd.sh"
fi
# shellcheck disable=SC2206
args+=(${VMT_QEMU_ARGS:-})

if [ -n "$shell" ]; then
	qemu-system-x86_64 "${args[@]}" -serial stdio || true
else
	if [ "${VMT_CONSOLE:-}" = 1 ]; then
		args+=(-serial stdio)
	else
		args+=(-serial "file:$work/console.log")
	fi
	timeout -k 5 "$timeout" qemu-system-x86_64 "${args[@]}" </dev/null &
	qpid=$!
	tail -n +1 -s 0.2 -f --pid="$qpid" "$work/stdout" &
	tails=$!
	tail -n +1 -s 0.2 -f --pid="$qpid" "$work/stderr" >&2 &
	tails="$tails $!"
	qrc=0
	wait "$qpid" || qrc=$?
	qpid=
	wait $tails 2>/dev/null || true
	tails=
	[ "$qrc" -eq 124 ] && vmt_log "$KVER: timed out after ${timeout}s"
fi

if [ -n "${VMT_LOGDIR:-}" ]; then
	mkdir -p "$VMT_LOGDIR"
	for f in stdout stderr console.log dmesg; do
		[ -e "$work/$f" ] && cp "$work/$f" "$VMT_LOGDIR/"
	done
fi
if [ ! -s "$work/rc" ]; then
	vmt_log "$KVER: no result (the guest did not finish); console:"
	[ -e "$work/console.log" ] && tail -n 25 "$work/console.log" | tr -d '\r' >&2
	exit 125
fi
exit "$(cat "$work/rc")"
