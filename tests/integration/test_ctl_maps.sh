#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# egressctl maps reads the pinned BPF maps directly (pin dir from
# OPENSANDBOX_EGRESS_BPF_PIN_DIR or --pin-dir): after the workload
# resolves an allowed name, `maps` lists the address with its remaining
# lifetime (about TTL + grace ahead); `maps dump` shows the static CIDR
# sets; counters are summed over CPUs; --json parses; it keeps working
# after egressd stopped (no API needed); a pin dir with nothing pinned is
# exit 3.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
egit_require_egressctl
start_upstream
inet_addr 10.200.7.5
start_servers web "tcp:$WEB4:80" "tcp:10.200.7.5:80"
export OPENSANDBOX_EGRESS_LEARN_TTL_MIN=60 OPENSANDBOX_EGRESS_LEARN_TTL_MAX=120 \
	OPENSANDBOX_EGRESS_LEARN_GRACE=30
start_egressd_bpf --rules '{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"10.200.7.0/24"},
 {"action":"deny","target":"10.200.'"$X"'.66"}]}'

assert_ctl "maps before any lookup" 0 maps
assert_not_contains "maps: $WEB4 not learned yet" "$CTL_OUT" "$WEB4"
assert_contains "maps: learned_v4 empty" "$CTL_OUT" "learned_v4: 0 addresses"

q @"$DNS4" api.github.com A
assert_eq "api.github.com resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
assert_connects "the workload connects to $WEB4" "$WEB4" 80
assert_blocked "10.200.$X.99 is dropped" "10.200.$X.99" 80

assert_ctl "maps (prefix m)" 0 m
line=$(grep -E "^ +$WEB4 " <<<"$CTL_OUT")
secs=$(awk '{ print $2 }' <<<"$line")
if [ -n "$line" ] && [ "$secs" -gt 0 ] 2>/dev/null && [ "$secs" -le 150 ]; then
	pass "maps: $WEB4 learned, expires in $secs s (0 < s <= ttl 120 + grace 30)"
else
	fail "maps: $WEB4 learned with a remaining lifetime" "$CTL_OUT"
fi
assert_contains "maps: policy generation and default" "$CTL_OUT" "default deny"
assert_contains "maps: static set sizes" "$CTL_OUT" "allow_v4 1"
assert_contains "maps: deny set size" "$CTL_OUT" "deny_v4 1"

assert_ctl "maps --json" 0 maps --json
assert_eq "--json: learned.v4 has $WEB4" true \
	"$(json_eval "$CTL_OUT" '"'"$WEB4"'" in [e["addr"] for e in o["learned"]["v4"]]')"
assert_eq "--json: its expires_in_s is in (0, 150]" true \
	"$(json_eval "$CTL_OUT" 'all(0 < e["expires_in_s"] <= 150 for e in o["learned"]["v4"])')"
assert_eq "--json: the connect counted as allowed" true \
	"$(json_eval "$CTL_OUT" 'o["counters"]["allowed"] > 0')"
assert_eq "--json: the drop counted as default_deny" true \
	"$(json_eval "$CTL_OUT" 'o["counters"]["default_deny"] > 0')"
assert_eq "--json: sets.allow_v4" 1 "$(json_eval "$CTL_OUT" 'o["sets"]["allow_v4"]')"
assert_eq "--json: config.defaultAction" deny "$(json_eval "$CTL_OUT" 'o["config"]["defaultAction"]')"
assert_eq "--json: config.dns_redirect_port (BPF redirect on)" 15353 "$(json_eval "$CTL_OUT" 'o["config"]["dns_redirect_port"]')"
bpf_cnt=$(bpf_counter default_deny 2>/dev/null)
if [ -n "$bpf_cnt" ]; then
	assert_eq "--json: default_deny equals bpftool's sum" "$bpf_cnt" \
		"$(json_eval "$CTL_OUT" 'o["counters"]["default_deny"]')"
fi

assert_ctl "maps dump allow_v4" 0 maps dump allow_v4
assert_contains "dump allow_v4: the CIDR as written" "$CTL_OUT" "10.200.7.0/24"
assert_contains "dump allow_v4: in the active slot" "$CTL_OUT" "(active)"
assert_contains "dump allow_v4: the rule, egress[1]" "$CTL_OUT" "rule egress[1] "
assert_ctl "maps dump deny_v4 --json" 0 -j maps dump deny_v4
assert_eq "dump deny_v4 --json: the /32" "10.200.$X.66/32" \
	"$(json_eval "$CTL_OUT" '[e["prefix"] for e in o if e["active"]][0]')"
assert_eq "dump deny_v4 --json: its rule, egress[2]" "2 egress[2]" \
	"$(json_eval "$CTL_OUT" '" ".join(str(e[k]) for e in o if e["active"] for k in ("rule", "ruleName"))')"
assert_ctl "maps dump learned_v4" 0 maps d learned_v4
assert_contains "dump learned_v4 lists $WEB4" "$CTL_OUT" "$WEB4"
assert_ctl "maps dump of an unknown map" 2 maps dump nosuchmap

# No API needed: egressd stopped, the pins (and enforcement) stay.
stop_egressd
assert_ctl "maps with egressd stopped" 0 maps
assert_contains "stopped: $WEB4 still listed" "$CTL_OUT" "$WEB4"
assert_ctl "status with egressd stopped is 3" 3 status

assert_ctl "maps with an empty pin dir" 3 --pin-dir "$T" maps
assert_contains "empty pin dir: says what is missing" "$CTL_ERR" "no pinned map $T/config"
OPENSANDBOX_EGRESS_BPF_PIN_DIR=/sys/fs/bpf/egit-$EGIT_ID-none ctl maps
assert_eq "pin dir from the environment: missing is exit 3" 3 "$CTL_RC"

egit_finish
