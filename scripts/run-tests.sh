#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The whole test run behind `make test`: the docs check (what the code can
# say is documented), unit suites (no root), then the integration
# scenarios in network namespaces (root). Prints each part's
# summary and one closing line "N passed, M failed".
set -u
out=${1:-.output}
cd "$(dirname "$0")/.."

total_pass=0
total_fail=0
add_counts() {
	# $1: a line "<what>: N passed, M failed"
	local p f
	p=$(sed -nE 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/p' <<<"$1")
	f=$(sed -nE 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/p' <<<"$1")
	total_pass=$((total_pass + ${p:-0}))
	total_fail=$((total_fail + ${f:-1}))
}

echo "== docs check"
docs_out=$(scripts/check-docs.sh)
docs_rc=$?
echo "$docs_out"
add_counts "$(tail -1 <<<"$docs_out")"
[ $docs_rc -eq 0 ] || [ "$total_fail" -gt 0 ] || total_fail=$((total_fail + 1))

echo "== unit tests"
units=()
for b in "$out"/tests/check_*; do
	case "$b" in *.o | *.d | *.log | *.tap) continue ;; esac
	[ -x "$b" ] && units+=("$b")
done
unit_out=$(scripts/run-unit-tests.sh "$out" "${units[@]}")
unit_rc=$?
echo "$unit_out"
add_counts "$(tail -1 <<<"$unit_out")"
[ $unit_rc -eq 0 ] || [ "$total_fail" -gt 0 ] || total_fail=$((total_fail + 1))

echo "== BPF verdict tests"
bpf_out=$("$out/tests/bpf/test_egress" 2>&1)
bpf_rc=$?
grep -vE '^PASS:' <<<"$bpf_out"
bpf_line=$(grep -E '^bpf: [0-9]+ passed' <<<"$bpf_out" | tail -1)
if [ -n "$bpf_line" ]; then
	add_counts "$bpf_line"
elif ! grep -q SKIP <<<"$bpf_out"; then
	total_fail=$((total_fail + 1))
fi
[ $bpf_rc -eq 0 ] || [ "$total_fail" -gt 0 ] || total_fail=$((total_fail + 1))

echo "== integration tests"
if [ "$(id -u)" -ne 0 ] && [ "${EGRESSD_SKIP_ROOT_TESTS:-0}" = 1 ]; then
	echo "integration: skipped (needs root; EGRESSD_SKIP_ROOT_TESTS=1)"
else
	int_out=$(tests/integration/run.sh 2>&1)
	int_rc=$?
	echo "$int_out"
	add_counts "$(grep -E '^integration: [0-9]+ passed' <<<"$int_out" | tail -1)"
	[ $int_rc -eq 0 ] || [ "$total_fail" -gt 0 ] || total_fail=$((total_fail + 1))
fi

echo "== summary"
echo "make test: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
