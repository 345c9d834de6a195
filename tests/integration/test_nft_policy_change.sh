#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft: a policy change keeps the learned addresses of names that are
# still allowed and removes those of names no longer allowed. (No HTTP API
# yet: the change is a deny.always written into the rules dir while egressd
# runs.) files.pypi.org is revoked: its address leaves learned_v4 within 5 s
# and is blocked; api.github.com's address stays learned and keeps
# connecting without being resolved again.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
start_upstream
PYPI4=10.200.$X.82
inet_addr "$PYPI4"
start_servers web "tcp:$WEB4:80" "tcp:$PYPI4:80"
start_egressd_nft --rules "$POLICY"

q @"$DNS4" api.github.com A
assert_eq "api.github.com resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" files.pypi.org A
assert_eq "files.pypi.org resolves" "NOERROR $PYPI4" "$Q_STATUS $Q_ANSWER"
assert_connects "before the change: $WEB4:80 connects" "$WEB4" 80
assert_connects "before the change: $PYPI4:80 connects" "$PYPI4" 80
if nft_learned_has "$WEB4" && nft_learned_has "$PYPI4"; then
	pass "both addresses in learned_v4"
else
	fail "both addresses in learned_v4" "$(nft_sb list set inet egressd learned_v4 2>&1)"
fi

printf '# revoked\nfiles.pypi.org\n' >"$OPENSANDBOX_EGRESS_RULES_DIR/deny.always.new"
mv "$OPENSANDBOX_EGRESS_RULES_DIR/deny.always.new" "$OPENSANDBOX_EGRESS_RULES_DIR/deny.always"
t0=$(now_ms)
gone() { ! nft_learned_has "$PYPI4"; }
if wait_for 5 gone; then
	pass "revoked name's address left learned_v4 in $(($(now_ms) - t0)) ms"
else
	fail "revoked name's address left learned_v4 within 5 s" "$(nft_sb list set inet egressd learned_v4 2>&1)"
fi
wait_json_line "policy line for the reload" "$T/egressd.out" event=policy result=applied denyAlways=1
if nft_learned_has "$WEB4"; then
	pass "still-allowed name's address stayed in learned_v4"
else
	fail "still-allowed name's address stayed in learned_v4" "$(nft_sb list set inet egressd learned_v4 2>&1)"
fi
assert_connects "after the change, without resolving again: $WEB4:80 connects" "$WEB4" 80
assert_blocked "after the change: $PYPI4:80 blocked" "$PYPI4" 80
wait_json_line "and logged as a packet drop" "$T/egressd.out" \
	event=violation layer=packet action=drop dst="$PYPI4" dport=80
q @"$DNS4" files.pypi.org A
assert_eq "revoked name: NXDOMAIN" NXDOMAIN "$Q_STATUS"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
