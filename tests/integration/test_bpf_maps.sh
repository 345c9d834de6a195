#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# The pinned maps read well with bpftool (BTF-typed keys and values):
# after the workload resolves an allowed name, `bpftool map dump pinned
# <pin dir>/learned_v4` (and learned_v6) shows the address with an expiry
# of about TTL + grace ahead; the LPM maps allow_v4/allow_v6/deny_v4 show
# the static CIDR rules of the policy (prefixlen = CIDR length + 8 slot
# bits), and those rules act: the allowed CIDR connects, the denied
# address is dropped with reason deny_rule.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
start_upstream
inet_addr "10.200.$X.66" "10.200.7.5"
start_servers web "tcp:$WEB4:80" "tcp:10.200.$X.66:80" "tcp:10.200.7.5:80"
export OPENSANDBOX_EGRESS_LEARN_TTL_MIN=60 OPENSANDBOX_EGRESS_LEARN_TTL_MAX=120 \
	OPENSANDBOX_EGRESS_LEARN_GRACE=30
start_egressd_bpf --rules '{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"10.200.7.0/24"},
 {"action":"allow","target":"fd00:200:7::/64"},
 {"action":"deny","target":"10.200.'"$X"'.66"},
 {"action":"allow","target":"10.200.'"$X"'.0/24"}]}'
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"

# Every map of docs/bpf.md is pinned by name.
missing=
for m in config counters events event_fold allow_v4 allow_v6 deny_v4 deny_v6 \
	doh_v4 doh_v6 doh_allow_v4 doh_allow_v6 learned_v4 learned_v6; do
	[ -e "$PIN/$m" ] || missing="$missing $m"
done
assert_eq "every map pinned under $PIN" "" "$missing"

# Static CIDR rules in the LPM maps, readable by name.
if bpf_map_has allow_v4 10.200.7.0 32; then
	pass "allow_v4 shows 10.200.7.0/24 (prefixlen 32 = 24 + slot)"
else
	fail "allow_v4 shows 10.200.7.0/24" "$(bpf_map_text allow_v4)"
fi
if bpf_map_has allow_v6 fd00:200:7:: 72; then
	pass "allow_v6 shows fd00:200:7::/64 (prefixlen 72)"
else
	fail "allow_v6 shows fd00:200:7::/64" "$(bpf_map_text allow_v6)"
fi
if bpf_map_has deny_v4 "10.200.$X.66" 40; then
	pass "deny_v4 shows 10.200.$X.66/32 (prefixlen 40)"
else
	fail "deny_v4 shows 10.200.$X.66/32" "$(bpf_map_text deny_v4)"
fi
txt=$(bpftool map dump pinned "$PIN/allow_v4" 2>&1)
assert_contains "plain bpftool dump of allow_v4 names the key fields" "$txt" '"prefixlen": 32'
assert_contains "plain bpftool dump of allow_v4 shows the address" "$(tr -d ' \n' <<<"$txt")" '"addr":[10,200,7,0]'

# The rules act: the allowed CIDR connects, deny beats the wider allow.
assert_connects "10.200.7.5 (allowed CIDR) connects" 10.200.7.5 80
assert_blocked "10.200.$X.66 (deny rule inside an allowed CIDR) is blocked" "10.200.$X.66" 80
wait_json_line "violation line: deny_rule for 10.200.$X.66" "$T/egressd.out" \
	event=violation layer=packet reason=deny_rule action=drop proto=tcp \
	dst="10.200.$X.66" dport=80

# Learned addresses.
if bpf_map_has learned_v4 "$WEB4"; then
	fail "$WEB4 not in learned_v4 before resolving" "$(bpf_map_text learned_v4)"
else
	pass "$WEB4 not in learned_v4 before resolving"
fi
q @"$DNS4" api.github.com A
assert_eq "api.github.com A answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" api.github.com AAAA
assert_eq "api.github.com AAAA answered" "NOERROR $WEB6" "$Q_STATUS $Q_ANSWER"
if bpf_map_has learned_v4 "$WEB4"; then
	pass "bpftool map dump learned_v4 shows $WEB4"
else
	fail "bpftool map dump learned_v4 shows $WEB4" "$(bpf_map_text learned_v4)"
fi
if bpf_map_has learned_v6 "$WEB6"; then
	pass "bpftool map dump learned_v6 shows $WEB6"
else
	fail "bpftool map dump learned_v6 shows $WEB6" "$(bpf_map_text learned_v6)"
fi
txt=$(bpftool map dump pinned "$PIN/learned_v4" 2>&1 | tr -d ' \n')
assert_contains "plain dump of learned_v4: readable key" "$txt" \
	"\"addr\":[${WEB4//./,}]"
assert_contains "plain dump of learned_v4: readable value" "$txt" '"expires_ns":'
# The zone's TTL is 300, clamped to MAX 120, + grace 30: 150 s ahead.
exp=$(bpf_learned_val "$WEB4" expires_ns)
now=$("$PY" -c 'import time; print(time.monotonic_ns())')
left=$(( (${exp:-0} - now) / 1000000000 ))
if [ "$left" -ge 140 ] && [ "$left" -le 150 ]; then
	pass "learned $WEB4 expires in ${left}s (TTL clamped to 120 + grace 30)"
else
	fail "learned $WEB4 expires in 140..150 s" "expires_ns '$exp' now $now: ${left}s"
fi
assert_connects "$WEB4 connects after resolving" "$WEB4" 80
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
