#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft: learned addresses expire. With LEARN_TTL_MIN=1, LEARN_TTL_MAX=2,
# LEARN_GRACE=1 and a zone TTL of 1 s, an address connects right after its
# name is resolved, is gone from learned_v4 (and blocked) a few seconds
# later, and connects again after the name is resolved again; resolving it
# again before it expires extends its lifetime. The TTL the
# client sees is never above LEARN_TTL_MAX, even for a 3600 s record.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
SHORT4=10.200.$X.85
write_zone "$T/zone"
cat >>"$T/zone" <<ZONE
short.pypi.org A $SHORT4 1
long.pypi.org  A 10.200.$X.86 3600
ZONE
start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]"
inet_addr "$SHORT4"
start_servers web "tcp:$SHORT4:80"
export OPENSANDBOX_EGRESS_LEARN_TTL_MIN=1 OPENSANDBOX_EGRESS_LEARN_TTL_MAX=2 \
	OPENSANDBOX_EGRESS_LEARN_GRACE=1
start_egressd_nft --rules "$POLICY"

# answer_ttls: the TTL field of each answer record of the last q.
answer_ttls() {
	awk '!/^;/ && NF >= 5 { printf "%s%s", sep, $2; sep = " " }' <<<"$Q_OUT"
}
ttls_at_most() {
	local t
	for t in $1; do [ "$t" -le "$2" ] || return 1; done
	[ -n "$1" ]
}

q @"$DNS4" short.pypi.org A
t0=$(now_ms)
assert_eq "short.pypi.org resolves" "NOERROR $SHORT4" "$Q_STATUS $Q_ANSWER"
assert_connects "right after resolving: $SHORT4:80 connects" "$SHORT4" 80
if nft_learned_has "$SHORT4"; then pass "$SHORT4 in learned_v4"; else fail "$SHORT4 in learned_v4" "$(nft_sb list set inet egressd learned_v4 2>&1)"; fi

gone() { ! nft_learned_has "$SHORT4"; }
if wait_for 5 gone; then
	pass "element expired from learned_v4 after $(($(now_ms) - t0)) ms"
else
	fail "element expired from learned_v4 within 5 s" "$(nft_sb list set inet egressd learned_v4 2>&1)"
fi
# 4 s after the answer, a new connection is dropped.
while [ $(($(now_ms) - t0)) -lt 4000 ]; do sleep 0.1; done
assert_blocked "4 s after resolving: $SHORT4:80 blocked" "$SHORT4" 80
wait_json_line "and logged as a default_deny drop" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop dst="$SHORT4" dport=80

q @"$DNS4" short.pypi.org A
assert_eq "re-resolving short.pypi.org" "NOERROR $SHORT4" "$Q_STATUS $Q_ANSWER"
assert_connects "after re-resolving: $SHORT4:80 connects again" "$SHORT4" 80
if nft_learned_has "$SHORT4"; then pass "$SHORT4 back in learned_v4"; else fail "$SHORT4 back in learned_v4" "$(nft_sb list set inet egressd learned_v4 2>&1)"; fi

ttls=$(answer_ttls)
t1=$(now_ms)
if ttls_at_most "$ttls" 2; then pass "TTL seen by the client ($ttls) <= LEARN_TTL_MAX 2"; else fail "TTL seen by the client <= 2" "answer: $Q_OUT"; fi
# Re-resolving refreshes the expiry: resolved again 1.3 s into its 2 s
# lifetime, the element is still there 2.6 s after the first answer.
while [ $(($(now_ms) - t1)) -lt 1300 ]; do sleep 0.05; done
q @"$DNS4" short.pypi.org A
assert_eq "re-resolving before expiry" "NOERROR $SHORT4" "$Q_STATUS $Q_ANSWER"
while [ $(($(now_ms) - t1)) -lt 2600 ]; do sleep 0.05; done
if nft_learned_has "$SHORT4"; then
	pass "refreshed: still in learned_v4 $(($(now_ms) - t1)) ms after the first of two answers"
else
	fail "refreshed: still in learned_v4 2.6 s after the first of two answers" \
		"$(nft_sb list set inet egressd learned_v4 2>&1)"
fi

q @"$DNS4" long.pypi.org A
ttls=$(answer_ttls)
assert_eq "long.pypi.org resolves" "NOERROR 10.200.$X.86" "$Q_STATUS $Q_ANSWER"
if ttls_at_most "$ttls" 2; then pass "3600 s record: TTL seen by the client ($ttls) <= 2"; else fail "3600 s record: TTL seen by the client <= 2" "answer: $Q_OUT"; fi
egit_finish
