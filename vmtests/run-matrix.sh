#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run one command under every fetched kernel (vmrun.sh, one guest at a
# time) and print a line per kernel, then "vmtests: N passed, M failed".
# A kernel passes when the command exits 0. Output of each run is kept
# under the log directory; a failing BPF load also shows the verifier's
# verdict line (the one before "processed N insns").
#
# usage: run-matrix.sh COMMAND [ARG...]
# environment:
#   VMT_KERNELS="a b"   kernels to run (default: all in $VMT_CACHE/kernels)
#   VMT_MATRIX_LOGS=DIR where to keep the logs (default $VMT_CACHE/logs/last)
#   VMT_VERBOSE=1       also stream each guest's output
#   and everything vmrun.sh reads (VMT_TIMEOUT, VMT_ENV, ...)

set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ $# -ge 1 ] || vmt_die "usage: run-matrix.sh COMMAND [ARG...]"
kernels=$(vmt_kernel_list)
[ -n "$kernels" ] || vmt_die "no kernels in $VMT_KDIR (run vmtests/setup.sh)"
logs=${VMT_MATRIX_LOGS:-$VMT_CACHE/logs/last}
rm -rf "$logs"
mkdir -p "$logs"

# The line that says what happened: the verifier's verdict for a refused
# program, else the last summary-looking line of stdout or stderr.
summary() {
	local d=$1 v
	v=$(awk '/^processed [0-9]+ insns/ { print prev; exit } { prev = $0 }' "$d/stderr" 2>/dev/null)
	[ -n "$v" ] && { printf 'verifier: %s' "$v"; return; }
	cat "$d/stdout" "$d/stderr" 2>/dev/null | tr -d '\r' |
		grep -E 'passed|failed|SKIP|[Ee]rror|refused' | tail -n1
}

passed=0 failed=0 start=$SECONDS
for k in $kernels; do
	d=$logs/$k
	mkdir -p "$d"
	t0=$(date +%s%N)
	rc=0
	if [ "${VMT_VERBOSE:-}" = 1 ]; then
		VMT_LOGDIR=$d "$here/vmrun.sh" "$k" "$@" || rc=$?
	else
		VMT_LOGDIR=$d "$here/vmrun.sh" "$k" "$@" >/dev/null 2>"$d/vmrun.err" || rc=$?
	fi
	secs=$(( ($(date +%s%N) - t0) / 100000000 ))
	secs="$((secs / 10)).$((secs % 10))s"
	if [ "$rc" -eq 0 ]; then
		res=PASS
		passed=$((passed + 1))
	else
		res=FAIL
		[ "$rc" -eq 125 ] && res=NORESULT
		failed=$((failed + 1))
	fi
	printf '%-8s %-24s rc=%-3s %6s  %s\n' "$res" "$k" "$rc" "$secs" "$(summary "$d")"
done
printf 'vmtests: %ds, logs in %s\n' $((SECONDS - start)) "$logs"
printf 'vmtests: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
