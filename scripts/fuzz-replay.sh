#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Replay the committed fuzz corpora: every file of tests/fuzz/corpus_<name>/
# through OUTPUT/fuzz/fuzz_<name> once, no mutation (`make fuzz-replay`,
# and part of `make test`). A seed that crashes or breaks an invariant
# fails. Prints one line per target and a closing line
# "fuzz: N passed, M failed" (N, M count corpus files).
set -u
out=${1:-.output}
cd "$(dirname "$0")/.."

pass=0
fail=0
for dir in tests/fuzz/corpus_*/; do
	name=$(basename "$dir")
	name=${name#corpus_}
	bin="$out/fuzz/fuzz_$name"
	files=("$dir"*)
	log="$out/fuzz/replay_$name.log"
	if [ ! -x "$bin" ]; then
		printf '  FAIL %-8s not built (%s)\n' "$name" "$bin"
		fail=$((fail + ${#files[@]}))
		continue
	fi
	# One process per corpus; libFuzzer stops at the first bad input.
	if "$bin" -runs=1 "${files[@]}" >"$log" 2>&1; then
		printf '  PASS %-8s %d inputs\n' "$name" "${#files[@]}"
		pass=$((pass + ${#files[@]}))
	else
		printf '  FAIL %-8s see %s\n' "$name" "$log"
		grep -E 'ERROR|invariant broken|runtime error|^Running:' "$log" |
			tail -4 | sed 's/^/        /'
		fail=$((fail + 1))
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
