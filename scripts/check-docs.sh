#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The docs check of `make test` (and `make check-docs`): what the code can
# say must be documented, so the docs cannot fall behind it unnoticed.
#   - every environment variable and option in agent/config.c is in
#     docs/configuration.md (settings egressd lacks included);
#   - every "event" value the code can emit is a row of docs/logs.md's
#     events table (log_emit/log_emit_raw names, and the convenience
#     forms' warning/error/info/debug);
#   - every metric family /metrics serves (agent/status.c) is in docs/api.md.
# Prints "docs: N passed, M failed" last; exit 1 when something is missing.
set -u
cd "$(dirname "$0")/.."

pass=0
fail=0
check() { # check WHAT FILE PATTERN
	if grep -qF -- "$3" "$2"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "  FAIL $1 is not documented in $2 (looked for: $3)"
	fi
}

# Settings: environment names and long options of agent/config.c.
for v in $(grep -oE '"(OPENSANDBOX|OTEL)_[A-Z0-9_]+"' agent/config.c | tr -d '"' | sort -u); do
	check "setting $v" docs/configuration.md "\`$v\`"
done
for o in $(sed -n 's/^\t\[OPT_[A-Z0-9_]*\] = { *"\([a-z0-9-]*\)".*/\1/p' agent/config.c |
	sort -u) cleanup check-host-network; do
	check "option --$o" docs/configuration.md "\`--$o\`"
done

# Events: what log_emit()/log_emit_raw() are given, on one line per call.
events=$(cat agent/*.c | tr '\n\t' '  ' |
	grep -oE '(log_emit|log_emit_raw|line_head) *\([^;"]*LOG_LVL_[A-Z]+ *, *"[a-z_]+"' |
	grep -oE '"[a-z_]+"$' | tr -d '"')
grep -qE 'log_warnx *\(|log_vprefixed *\(' agent/*.c && events="$events warning"
grep -qE 'log_errorx *\(|log_vprefixed *\(' agent/*.c && events="$events error"
grep -qE 'log_info *\(|log_vprefixed *\(' agent/*.c && events="$events info"
grep -qE 'log_debug *\(|log_vprefixed *\(' agent/*.c && events="$events debug"
for e in $(tr ' ' '\n' <<<"$events" | sort -u); do
	check "event \"$e\"" docs/logs.md "| \`$e\` |"
done

# Metrics: every family with a # TYPE line or a histogram.
for m in $( (grep -oE '# TYPE egressd_[a-z_]+' agent/status.c | sed 's/# TYPE //'
	grep -oE 'metrics_hist\(b, "egressd_[a-z_]+"' agent/status.c | grep -oE 'egressd_[a-z_]+') | sort -u); do
	check "metric $m" docs/api.md "\`$m\`"
done

echo "docs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
