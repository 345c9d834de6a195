#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Log conventions a deployment relies on: with --sandbox-id every line,
# violations and the start line included, carries "sandboxId"; each of the
# peer's settings egressd does not implement, when set, gives one warning
# line at start saying what egressd does instead (docs/configuration.md);
# and egressd still starts and enforces.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
start_upstream
export OPENSANDBOX_EGRESS_BPF=off
export OPENSANDBOX_EGRESS_SANDBOX_ID="sb-$$"
export OPENSANDBOX_EGRESS_NAMESERVER_EXEMPT=10.200.0.53
export OPENSANDBOX_EGRESS_MITMPROXY_TRANSPARENT=true
export OTEL_EXPORTER_OTLP_ENDPOINT=http://10.200.0.9:4318
export OPENSANDBOX_LOG_OUTPUT=stdout
start_egressd --rules "$POLICY"

q @"$DNS4" evil.example.com A
assert_eq "a denied name is still NXDOMAIN" NXDOMAIN "$Q_STATUS"
wait_json_line "the violation line" "$T/egressd.out" event=violation
stop_egressd

assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
missing=$("$PY" - "$T/egressd.out" "sb-$$" <<'EOF_PY'
import json, sys
bad = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    keys = list(o)
    if o.get("sandboxId") != sys.argv[2] or keys[3] != "sandboxId":
        bad += 1
        print(line.strip()[:200])
EOF_PY
)
assert_eq "every line has sandboxId right after event" "" "$missing"
for e in start violation stop; do
	assert_json_line "$e line has sandboxId" "$T/egressd.out" event=$e \
		sandboxId="sb-$$"
done

warned() {
	grep -c "\"event\":\"warning\".*$1 is set but not supported" "$T/egressd.out"
}
assert_eq "one warning for NAMESERVER_EXEMPT" 1 \
	"$(warned OPENSANDBOX_EGRESS_NAMESERVER_EXEMPT)"
assert_file_contains_i "NAMESERVER_EXEMPT: says the app would be unfiltered" \
	"$T/egressd.out" "unfiltered"
assert_eq "one warning for MITMPROXY_TRANSPARENT" 1 \
	"$(warned OPENSANDBOX_EGRESS_MITMPROXY_TRANSPARENT)"
assert_eq "one warning for OTEL_EXPORTER_OTLP_ENDPOINT" 1 \
	"$(warned OTEL_EXPORTER_OTLP_ENDPOINT)"
assert_eq "OPENSANDBOX_LOG_OUTPUT=stdout: what egressd does, no warning" 0 \
	"$(warned OPENSANDBOX_LOG_OUTPUT)"
egit_finish
