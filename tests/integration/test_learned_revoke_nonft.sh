#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A policy change revokes learned addresses whether nftables is up or
# not: here egressd runs without CAP_NET_ADMIN (nftables unavailable) and
# BPF enforces alone. files.pypi.org becomes denied (deny.always): its
# address leaves the BPF learned map and is blocked, while api.github.com's
# stays learned and connects without a new lookup. The drop line of the
# revoked address names the domain that taught it: domains come from the
# learned registry, not from nftables. Before the registry had a module of
# its own, the BPF entry stayed (the sweep kept extending it) and BPF lines
# had no domain without nftables.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
command -v setpriv >/dev/null || die "setpriv (util-linux) not found"
start_upstream
PYPI4=10.200.$X.82
inet_addr "$PYPI4"
start_servers web "tcp:$WEB4:80" "tcp:$PYPI4:80"
real=$EGRESSD
EGRESSD=$T/egressd-nonft
cat >"$EGRESSD" <<EOS
#!/bin/sh
exec setpriv --inh-caps=-net_admin --ambient-caps=-net_admin --bounding-set=-net_admin -- "$real" "\$@"
EOS
chmod +x "$EGRESSD"
start_egressd_bpf --rules "$POLICY"
assert_eq "start line: layers.nft.state unavailable" unavailable \
	"$(json_field "$T/egressd.out" start layers.nft.state)"
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"

q @"$DNS4" api.github.com A
assert_eq "api.github.com resolves" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
q @"$DNS4" files.pypi.org A
assert_eq "files.pypi.org resolves" "NOERROR $PYPI4" "$Q_STATUS $Q_ANSWER"
assert_connects "before the change: $WEB4:80 connects" "$WEB4" 80
assert_connects "before the change: $PYPI4:80 connects" "$PYPI4" 80
if bpf_map_has learned_v4 "$PYPI4" && bpf_map_has learned_v4 "$WEB4"; then
	pass "both addresses in the BPF map learned_v4"
else
	fail "both addresses in the BPF map learned_v4" "$(bpf_map_text learned_v4)"
fi

printf '# revoked\nfiles.pypi.org\n' >"$OPENSANDBOX_EGRESS_RULES_DIR/deny.always.new"
mv "$OPENSANDBOX_EGRESS_RULES_DIR/deny.always.new" "$OPENSANDBOX_EGRESS_RULES_DIR/deny.always"
wait_json_line "policy line for the reload" "$T/egressd.out" event=policy result=applied denyAlways=1
gone() { ! bpf_map_has learned_v4 "$PYPI4"; }
if wait_for 2 gone; then
	pass "revoked name's address left learned_v4 (nftables unavailable)"
else
	fail "revoked name's address left learned_v4" "$(bpf_map_text learned_v4)"
fi
if bpf_map_has learned_v4 "$WEB4"; then
	pass "still-allowed name's address stayed in learned_v4"
else
	fail "still-allowed name's address stayed in learned_v4" "$(bpf_map_text learned_v4)"
fi
assert_connects "after the change, without resolving again: $WEB4:80 connects" "$WEB4" 80
assert_blocked "after the change: $PYPI4:80 blocked by BPF" "$PYPI4" 80
wait_json_line "the BPF drop line names the domain that taught the address" \
	"$T/egressd.out" event=violation layer=packet action=drop \
	dst="$PYPI4" dport=80 domain=files.pypi.org
q @"$DNS4" files.pypi.org A
assert_eq "revoked name: NXDOMAIN" NXDOMAIN "$Q_STATUS"
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
