#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns mode: a full learned table never fails a query. With room for 16
# addresses per family (OPENSANDBOX_EGRESS_LEARN_MAX), 40 allowed names
# with 40 distinct addresses are all answered NOERROR (nothing enforces
# them at L3 in dns mode; BPF only observes). The registry stays at its
# cap, the failures are counted (egressd_learned_failures_total with
# answer="sent", never "servfail") and reported in folded warnings (kind
# learn_failed), not one line per query. Before, a full table answered SERVFAIL in dns mode too
# and the dns-mode registry had no cap.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
egit_require_dnslib
write_zone "$T/zone"
for i in $(seq 0 39); do
	echo "n$i.many.test A 10.200.$X.$((100 + i)) 300" >>"$T/zone"
done
start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]"
start_egressd_api --mode dns --learn-max 16 --rules '{"defaultAction":"deny","egress":[
 {"action":"allow","target":"*.many.test"}]}'
assert_eq "start line: mode dns" dns "$(json_field "$T/egressd.out" start mode)"
assert_eq "start line: layers.bpf.state observe" observe \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"

out=$(dns_burst "$DNS4" 40 'n{i}.many.test')
assert_eq "40 allowed names, 40 addresses, learn-max 16: all NOERROR" \
	'{"NOERROR": 40}' "$(json_eval "$out" 'json.dumps(o["rcodes"])')"
assert_eq "egressd counted no SERVFAIL" 0 \
	"$(metric 'egressd_dns_queries_total{result="servfail"}')"
assert_eq "learned addresses held: the cap" 16 \
	"$(metric 'egressd_learned_addresses{family="4"}')"
assert_eq "egressd_learned_capacity" 16 "$(metric egressd_learned_capacity)"
sent=$(metric 'egressd_learned_failures_total{answer="sent"}')
if [ "${sent:-0}" -ge 24 ]; then
	pass "failures counted as answered: $sent"
else
	fail "failures counted as answered (>= 24)" "got '$sent'"
fi
assert_eq "no failure answered SERVFAIL" 0 \
	"$(metric 'egressd_learned_failures_total{answer="servfail"}')"
sleep 1.2 # the fold window ends: held counts are written
read -r nl nc <<<"$(folded_kind learn_failed)"
assert_eq "folded warnings count every failure" "$sent" "$nc"
if [ "$nl" -ge 1 ] && [ "$nl" -lt "$nc" ]; then
	pass "folded: $nl warning line(s) for $nc failures"
else
	fail "folded: fewer warning lines than failures" "$nl lines, $nc failures"
fi
# A name learned while there was room still has its domain.
api GET /status
assert_eq "/status: learned.v4 is the cap" 16 \
	"$(json_eval "$API_BODY" 'o["learned"]["v4"]')"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
