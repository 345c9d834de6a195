#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run every tests/integration/test_*.sh, each in its own process (each builds
# and removes its own namespaces and cgroups), and print one summary line:
#   integration: N passed, M failed
# Exit status 0 only when none failed. A test that exits 77 is skipped
# (reported, counted in neither number). A test that leaves a cgroup, a
# network namespace, a bpffs pin or a temp dir of its own behind fails.
#
# Usage: tests/integration/run.sh [OUTPUT_DIR] [TEST_NAME_PATTERN...]
#   OUTPUT_DIR  the Makefile's object dir (default .output), for fakedns
#   env: EGRESSD (binary, default build/egressd), EGIT_JOBS (tests run at
#        once, default 2), EGIT_TIMEOUT (seconds per test, default 90),
#        EGIT_KEEP=1 (keep temp dirs), EGIT_VERBOSE=1 (show PASS lines too),
#        EGRESSD_SKIP_ROOT_TESTS=1 (when not root: skip instead of failing)

set -u

dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$dir/../.." && pwd)
# shellcheck source=cgroup.sh
. "$dir/cgroup.sh"

if [ $# -gt 0 ] && [ -d "$1" ]; then
	EGIT_OUTPUT=$(cd "$1" && pwd)
	export EGIT_OUTPUT
	shift
fi

if [ "$(id -u)" != 0 ]; then
	if [ "${EGRESSD_SKIP_ROOT_TESTS:-0}" = 1 ]; then
		echo "integration: skipped (needs root)"
		exit 0
	fi
	echo "integration: the integration tests need root (network namespaces," \
		"cgroups, nftables); run them as root, or set" \
		"EGRESSD_SKIP_ROOT_TESTS=1 to skip them" >&2
	echo "integration: 0 passed, 1 failed"
	exit 1
fi

export EGRESSD=${EGRESSD:-$root/build/egressd}
export FAKEDNS=${FAKEDNS:-${EGIT_OUTPUT:-$root/.output}/tests/tools/fakedns}
missing=
for b in "$EGRESSD" "$FAKEDNS"; do
	[ -x "$b" ] || missing="$missing $b"
done
if [ -n "$missing" ]; then
	echo "integration: not built:$missing (run 'make tests')" >&2
	echo "integration: 0 passed, 1 failed"
	exit 1
fi

jobs=${EGIT_JOBS:-2}
tmo=${EGIT_TIMEOUT:-90}
work=$(mktemp -d /tmp/egit-run-XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tests=()
for t in "$dir"/test_*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	if [ $# -gt 0 ]; then
		keep=0
		for pat in "$@"; do
			# shellcheck disable=SC2053 # the pattern is a glob on purpose
			[[ $name == $pat || $name == *"$pat"* ]] && keep=1
		done
		[ "$keep" = 1 ] || continue
	fi
	tests+=("$t")
done

if [ "${#tests[@]}" = 0 ]; then
	echo "integration: no test matches: $*" >&2
	echo "integration: 0 passed, 1 failed"
	exit 1
fi

# What test ID left behind (lib.sh names all it makes after its EGIT_ID):
# cgroups, network namespaces, bpffs pins, temp dirs. Each is printed and
# removed.
leftovers() {
	local id=$1 cg2 d ns
	cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	for d in "$cg2/egit-$id" "$cg2/egit-$id"-*; do
		[ -d "$d" ] || continue
		echo "cgroup $d"
		egit_rmcg "$d" 2>&1
	done
	for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
		case $ns in egit-"$id"-*)
			echo "netns $ns"
			ip netns del "$ns"
			;;
		esac
	done
	for d in /sys/fs/bpf/egit-"$id" /sys/fs/bpf/egit-"$id"-* /tmp/egit-"$id"-*; do
		[ -e "$d" ] || continue
		[ "${EGIT_KEEP:-0}" = 1 ] && [ "${d#/tmp/}" != "$d" ] && continue
		echo "path $d"
		rm -rf "$d"
	done
}

# Run one test; its output and status land in $work/NAME.{out,rc,ms}. Its
# EGIT_ID is this run's pid and the test's index: unique among the tests
# of this run whatever pids they get, and among concurrent runs.
run_one() {
	local t=$1 id=$$t$2 name t0 rc left
	name=$(basename "$t" .sh)
	t0=${EPOCHREALTIME/./}
	EGIT_ID=$id timeout -k 5 "$tmo" bash "$t" >"$work/$name.out" 2>&1 </dev/null
	rc=$?
	echo $(((${EPOCHREALTIME/./} - t0) / 1000)) >"$work/$name.ms"
	# A test cleans up after itself, even when it fails.
	left=$(leftovers "$id")
	if [ -n "$left" ]; then
		{
			echo "  $name: left behind (removed now):"
			echo "$left" | sed 's/^/    /'
		} >>"$work/$name.out"
		[ "$rc" = 0 ] && rc=1
	fi
	echo "$rc" >"$work/$name.rc"
}

report() {
	local name=$1 rc ms
	rc=$(cat "$work/$name.rc")
	ms=$(cat "$work/$name.ms")
	case $rc in
	0)
		passed=$((passed + 1))
		if [ "${EGIT_VERBOSE:-0}" = 1 ]; then cat "$work/$name.out"; fi
		printf 'ok      %s (%d.%ds)\n' "$name" $((ms / 1000)) $((ms % 1000 / 100))
		;;
	77)
		skipped=$((skipped + 1))
		grep -i skip "$work/$name.out" | head -n 3
		printf 'skip    %s\n' "$name"
		;;
	*)
		failed=$((failed + 1))
		cat "$work/$name.out"
		[ "$rc" = 124 ] && echo "  $name: timed out after ${tmo}s"
		printf 'FAILED  %s (exit %s, %d.%ds)\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000 / 100))
		;;
	esac
}

passed=0
failed=0
skipped=0
pids=()
names=()
next=0
# A small pool: at most $jobs tests at a time, reported in start order.
while [ "$next" -lt "${#tests[@]}" ] || [ "${#pids[@]}" -gt 0 ]; do
	while [ "$next" -lt "${#tests[@]}" ] && [ "${#pids[@]}" -lt "$jobs" ]; do
		run_one "${tests[$next]}" "$next" &
		pids+=($!)
		names+=("$(basename "${tests[$next]}" .sh)")
		next=$((next + 1))
	done
	wait "${pids[0]}"
	report "${names[0]}"
	pids=("${pids[@]:1}")
	names=("${names[@]:1}")
done

[ "$skipped" -gt 0 ] && echo "integration: $skipped skipped"
echo "integration: $passed passed, $failed failed"
[ "$failed" = 0 ]
