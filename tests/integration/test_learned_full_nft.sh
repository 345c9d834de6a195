#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft with a learned table of 16 addresses per family
# (OPENSANDBOX_EGRESS_LEARN_MAX): 16 names fill it; when it is truly full
# the next new address fails closed: SERVFAIL, not reachable, folded
# warnings (kind learn_failed) that count every such failure, and the
# metrics say so (entries in use, failures). Once the entries expired (lifetime 4 s), they are reclaimed
# before a write fails: the same name then resolves and connects.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
egit_require_dnslib
write_zone "$T/zone"
for i in $(seq 0 19); do
	echo "n$i.many.test A 10.200.$X.$((100 + i)) 300" >>"$T/zone"
done
start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]"
NEW4=10.200.$X.116
inet_addr "$NEW4"
start_servers web "tcp:$NEW4:80"
export OPENSANDBOX_EGRESS_LEARN_TTL_MIN=4 OPENSANDBOX_EGRESS_LEARN_TTL_MAX=4 \
	OPENSANDBOX_EGRESS_LEARN_GRACE=0
start_egressd_api --mode dns+nft --bpf enforce --learn-max 16 --rules '{"defaultAction":"deny","egress":[
 {"action":"allow","target":"*.many.test"}]}'
assert_eq "start line: mode dns+nft" dns+nft "$(json_field "$T/egressd.out" start mode)"

t0=$(now_ms)
out=$(dns_burst "$DNS4" 16 'n{i}.many.test')
assert_eq "16 names fill the table: all NOERROR" '{"NOERROR": 16}' \
	"$(json_eval "$out" 'json.dumps(o["rcodes"])')"
out=$(dns_burst "$DNS4" 4 'n1{i}.many.test')
# n10..n13 are held already: answered from the table
assert_eq "names it holds still resolve" '{"NOERROR": 4}' \
	"$(json_eval "$out" 'json.dumps(o["rcodes"])')"
q @"$DNS4" n16.many.test A
assert_eq "truly full: a new address fails closed (SERVFAIL)" SERVFAIL "$Q_STATUS"
q @"$DNS4" n17.many.test A
assert_eq "and the next one too" SERVFAIL "$Q_STATUS"
if [ $(($(now_ms) - t0)) -lt 3500 ]; then
	assert_blocked "the address refused is not reachable" "$NEW4" 80
	assert_eq "learned addresses in use: the cap" 16 \
		"$(metric 'egressd_learned_addresses{family="4"}')"
else
	egit_log "too slow to check before the entries expired: skipped"
fi
assert_eq "failures that answered SERVFAIL" 2 \
	"$(metric 'egressd_learned_failures_total{answer="servfail"}')"
sleep 1.2 # the fold window ends: held counts are written
assert_eq "folded warnings: count 2 in all" 2 "$(folded_kind learn_failed | cut -d' ' -f2)"
if nft_learned_has "$NEW4" || bpf_map_has learned_v4 "$NEW4"; then
	fail "the refused address is in no learned set" \
		"$(nft_sb list set inet egressd learned_v4 2>&1) $(bpf_map_text learned_v4)"
else
	pass "the refused address is in no learned set"
fi

# The 16 entries expire (4 s): the registry and the BPF map reclaim them
# before a write fails.
sleep $(( (t0 + 4500 - $(now_ms)) / 1000 + 1 ))
q @"$DNS4" n16.many.test A
assert_eq "after expiry: the name resolves (expired entries reclaimed)" \
	"NOERROR $NEW4" "$Q_STATUS $Q_ANSWER"
assert_connects "and its address connects" "$NEW4" 80
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
