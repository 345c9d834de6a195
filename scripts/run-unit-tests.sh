#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run the Check unit suites given as arguments (after the output dir), with
# TAP logs under OUTPUT/tests, and print one closing line
# "unit: N passed, M failed". Exit non-zero when any suite fails.
set -u
out=$1
shift
pass=0
fail=0
failed=()
for bin in "$@"; do
	name=$(basename "$bin")
	log="$out/tests/$name.log"
	if "$bin" >"$log" 2>&1; then
		res=PASS
	else
		res=FAIL
		failed+=("$name")
	fi
	# Check prints "NN%: Checks: X, Failures: Y, Errors: Z".
	line=$(grep -E '^[0-9]+%: Checks:' "$log" | tail -1)
	checks=$(sed -nE 's/.*Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' <<<"$line")
	read -r c f e <<<"${checks:-0 0 0}"
	bad=$((f + e))
	if [ "$res" = FAIL ] && [ "$bad" -eq 0 ]; then
		bad=1 # crashed before Check could count
	fi
	pass=$((pass + c - (f + e)))
	fail=$((fail + bad))
	printf '  %-4s %-22s %s\n' "$res" "$name" "${line:-no summary (see $log)}"
	if [ "$res" = FAIL ]; then
		grep -E ':(F|E):' "$log" | head -20 | sed 's/^/        /'
	fi
done
echo "unit: $pass passed, $fail failed"
[ ${#failed[@]} -eq 0 ]
