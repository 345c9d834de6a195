#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A policy the validator accepts but the kernel cannot hold is refused as
# a whole: with OPENSANDBOX_EGRESS_MAX_RULES=0 (no rule limit), 20,000
# posted IPv4 allow prefixes on top of 50,000 in allow.always exceed the
# BPF maps (65,536 per set and family).
# The API answers 413 naming the BPF maps, the previous policy stays in
# force in every layer (DNS answers, nftables sets, BPF maps, GET
# /policy), the policy file is not rewritten, a "policy" line says
# "failed", and the next valid policy applies normally.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
export OPENSANDBOX_EGRESS_POLICY_FILE=$T/policy.json
export OPENSANDBOX_EGRESS_MAX_RULES=0
start_egressd_api --mode dns+nft --bpf enforce --rules "$POLICY"
assert_eq "layers.bpf.state enforce" enforce "$(json_field "$T/egressd.out" start layers.bpf.state)"

api_json POST /policy '{"defaultAction":"deny","egress":[{"action":"allow","target":"api.github.com"},{"action":"allow","target":"10.200.99.0/24"}]}'
assert_eq "a small policy applies" 200 "$API_CODE"
before=$(cat "$T/policy.json")

# allow.always holds 50,000 and the posted policy 20,000 more distinct,
# non-adjacent /32s (never merged into ranges): together over the 65,536
# of allow_v4, each part alone within it and within the API's 1 MiB body
# limit. Policy entries only: no traffic is sent to them.
"$PY" - "$T/big.json" "$T/rules/allow.always" <<'PY'
import json, sys
def addr(i):
    return "172.%d.%d.%d" % (16 + (i >> 14), (i >> 6) & 255, (i & 63) * 4 + 1)
with open(sys.argv[2], "w") as f:
    for i in range(50000):
        f.write(addr(i) + "\n")
rules = [{"action": "allow", "target": "api.github.com"}]
rules += [{"action": "allow", "target": addr(i)} for i in range(50000, 70000)]
json.dump({"defaultAction": "deny", "egress": rules}, open(sys.argv[1], "w"),
          separators=(",", ":"))
PY
wait_json_line "allow.always (50,000 entries) applied" "$T/egressd.out" \
	event=policy result=applied trigger=always-rules allowAlways=50000
gen0=$(bpf_tool map dump pinned "$PIN/config" | "$PY" -c '
import json, sys
c = json.load(sys.stdin)[0]["value"]
print(c["slot"][c["active"]]["generation"])')
api POST /policy -H 'Content-Type: application/json' --data-binary "@$T/big.json" -m 60
# E2BIG from the kernel is a 413 (the policy is too large to hold), like
# a rule count over OPENSANDBOX_EGRESS_MAX_RULES; other kernel errors 500.
assert_eq "over the BPF map size: 413" 413 "$API_CODE"
assert_contains "the error names the BPF maps" "$API_BODY" "BPF maps"
wait_json_line "a policy line says failed" "$T/egressd.out" event=policy result=failed

assert_eq "GET /policy: still the small policy" \
	'[{"action":"allow","target":"api.github.com"},{"action":"allow","target":"10.200.99.0/24"}]' \
	"$(api_egress)"
assert_eq "the policy file was not rewritten" "$before" "$(cat "$T/policy.json")"
q @"$DNS4" api.github.com A
assert_eq "DNS: api.github.com still resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" files.pypi.org A
assert_eq "DNS: the old default still denies files.pypi.org" NXDOMAIN "$Q_STATUS"
allow=$(nft_sb list set inet egressd allow_v4)
assert_contains "nftables: the old allow set" "$allow" "10.200.99.0/24"
assert_not_contains "nftables: nothing of the refused policy" "$allow" "$("$PY" -c 'i = 60000; print("172.%d.%d.%d" % (16 + (i >> 14), (i >> 6) & 255, (i & 63) * 4 + 1))')"
gen1=$(bpf_tool map dump pinned "$PIN/config" | "$PY" -c '
import json, sys
c = json.load(sys.stdin)[0]["value"]
print(c["slot"][c["active"]]["generation"])')
assert_eq "BPF: the active slot still holds the old generation" "$gen0" "$gen1"
n=$(bpf_tool map dump pinned "$PIN/allow_v4" | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))')
assert_eq "BPF: allow_v4 holds the old policy only (50,000 always + 1)" 50001 "$n"

api_json POST /policy "$POLICY"
assert_eq "the next valid policy applies" 200 "$API_CODE"
q @"$DNS4" files.pypi.org A
assert_eq "and is enforced: files.pypi.org resolves" NOERROR "$Q_STATUS"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
