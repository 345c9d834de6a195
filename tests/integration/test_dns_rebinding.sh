#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, classes 6 and 7, in the sidecar topology (dns+nft). Rebinding:
# answers of allowed names pointing at loopback, the sandbox's own
# address or the metadata address lose those records (NODATA when nothing
# is left), are never learned, and say so (reason rebinding, action
# stripped); an IP allow rule keeps an address; RFC 1918 answers stay
# unless OPENSANDBOX_EGRESS_BLOCK_PRIVATE_ANSWERS=1. CNAME through a
# denied name: NXDOMAIN, nothing learned, a violation line for the denied
# name in the chain.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=sidecar.sh
. "$(dirname "$0")/sidecar.sh"
sidecar_init
write_zone "$T/zone"
cat >>"$T/zone" <<EOF
lo.pypi.org        A     127.0.0.53
self.pypi.org      A     $SB4
meta.pypi.org      A     169.254.169.254
mixed.pypi.org     A     127.0.0.1
mixed.pypi.org     A     10.200.$X.84
kept.pypi.org      A     127.0.0.9
cname.pypi.org     CNAME evil.example.com
EOF
start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]"
RULES='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"*.pypi.org"},
 {"action":"allow","target":"127.0.0.9"},
 {"action":"deny","target":"evil.example.com"}]}'
start_egressd_sidecar nohost --mode dns+nft --rules "$RULES" ||
	die "egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"

for n in lo self meta; do
	q @"$DNS4" "$n.pypi.org" A
	assert_eq "$n: NOERROR with an empty answer (NODATA)" "NOERROR " \
		"$Q_STATUS $Q_ANSWER"
done
wait_json_line "rebinding violation line" "$T/egressd.out" event=violation \
	layer=dns reason=rebinding action=stripped qname~=lo.pypi.org qtype=A
for a in 127.0.0.53 "$SB4" 169.254.169.254 127.0.0.1; do
	if nft_learned_has "$a"; then
		fail "$a never learned" "it is in the learned set"
	else
		pass "$a never learned"
	fi
done

q @"$DNS4" mixed.pypi.org A
assert_eq "mixed: only the outside address is left" "NOERROR 10.200.$X.84" \
	"$Q_STATUS $Q_ANSWER"
q @"$DNS4" kept.pypi.org A
assert_eq "an IP allow rule keeps its loopback address" "NOERROR 127.0.0.9" \
	"$Q_STATUS $Q_ANSWER"
q @"$DNS4" files.pypi.org A
assert_eq "RFC 1918 answers stay by default (fake internet is 10.200/16)" \
	"NOERROR 10.200.$X.82" "$Q_STATUS $Q_ANSWER"

q @"$DNS4" cname.pypi.org A
assert_eq "CNAME to a denied name: NXDOMAIN" "NXDOMAIN" "$Q_STATUS"
assert_eq "CNAME to a denied name: no answer records" "" "$Q_ANSWER"
wait_json_line "violation line names the denied name in the chain" \
	"$T/egressd.out" event=violation layer=dns reason=deny_rule \
	action=nxdomain qname~=evil.example.com
if nft_learned_has 10.200.$X.66; then
	fail "the denied name's address is not learned" "10.200.$X.66 learned"
else
	pass "the denied name's address is not learned"
fi

# OPENSANDBOX_EGRESS_BLOCK_PRIVATE_ANSWERS=1: RFC 1918 goes too.
stop_egressd
egit_rmcg "$CG/agent/egressd"
OPENSANDBOX_EGRESS_BLOCK_PRIVATE_ANSWERS=1 \
	start_egressd_sidecar nohost --mode dns+nft --rules "$RULES" ||
	die "egressd (block private) did not start: $(cat "$T/egressd.err")"
q @"$DNS4" files.pypi.org A
assert_eq "BLOCK_PRIVATE_ANSWERS=1: RFC 1918 answer stripped" "NOERROR " \
	"$Q_STATUS $Q_ANSWER"
q @"$DNS4" kept.pypi.org A
assert_eq "BLOCK_PRIVATE_ANSWERS=1: the IP allow rule still keeps" \
	"NOERROR 127.0.0.9" "$Q_STATUS $Q_ANSWER"
egit_finish
