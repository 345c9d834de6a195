#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Every C source and header of the tree is formatted as the checked-in
# .clang-format says (kernel style): `make format` writes what this
# checks. One line per file that differs, then the summary line
# `format: N passed, M failed` that scripts/run-tests.sh adds up.
# Exit status 0 only when every file is formatted. Needs clang-format
# (Debian's clang-format package; scripts/deps.sh installs it for tests).
set -u
cd "$(dirname "$0")/.." || exit 1

if ! command -v clang-format >/dev/null 2>&1; then
	echo "format: clang-format not found (apt-get install clang-format)" >&2
	echo "format: 0 passed, 1 failed"
	exit 1
fi

# Keep in sync with FORMAT_SRCS in the Makefile.
mapfile -t files < <(ls agent/*.c agent/*.h include/egressd/*.h \
	tools/*.c tools/*.h bpf/*.c bpf/*.h tests/*.c tests/bpf/*.c \
	tests/tools/*.c tests/fuzz/*.c bench/*.c 2>/dev/null)
pass=0 fail=0
for f in "${files[@]}"; do
	if clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		pass=$((pass + 1))
	else
		echo "FAIL $f: not formatted (make format; $(clang-format --dry-run "$f" 2>&1 | grep -c 'warning:') place(s))"
		fail=$((fail + 1))
	fi
done
echo "format: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
