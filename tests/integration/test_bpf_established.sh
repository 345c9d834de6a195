#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# An established connection to a learned address outlives the address's
# lifetime (docs/nftables.md "Learned elements": "established connections
# continue through rule 1"), whichever layer judges the workload. With
# LEARN_TTL_MIN=1, _MAX=2, _GRACE=1 and zone TTL 1: the workload resolves,
# opens a TCP connection, echoes a line, stays idle 5 s (the learned entry
# expires and is removed), then echoes again on the same connection.
#   phase 1: dns+nft, BPF off (nftables judges: ct state established)
#   phase 2: dns+nft, BPF enforce (the workload is handed to BPF)
# Both must keep the connection; a new connect after expiry is blocked.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
cat >"$T/zone" <<ZONE
api.github.com A $WEB4 1
ZONE
start_fakedns up --zone "$T/zone" --listen "$DNS4"
start_echo_server web "$WEB4" 7
export OPENSANDBOX_EGRESS_LEARN_TTL_MIN=1 OPENSANDBOX_EGRESS_LEARN_TTL_MAX=2 \
	OPENSANDBOX_EGRESS_LEARN_GRACE=1

for bpf in off enforce; do
	start_egressd --mode dns+nft --bpf "$bpf" --rules "$POLICY"
	assert_eq "[bpf $bpf] start line: layers.bpf.state $bpf" "$bpf" \
		"$(json_field "$T/egressd.out" start layers.bpf.state)"
	q @"$DNS4" api.github.com A
	assert_eq "[bpf $bpf] api.github.com A answered" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	out=$(echo_session "$WEB4" 7 5)
	assert_contains "[bpf $bpf] first echo on a fresh connection" "$out" "first ok"
	assert_contains "[bpf $bpf] same connection after 5 s idle (address expired meanwhile)" "$out" "second ok"
	assert_tcp_blocked "[bpf $bpf] a new connect after expiry is blocked" "$WEB4" 7
	stop_egressd
	cp "$T/egressd.out" "$T/egressd.out.$bpf"
	nsenter --net="/run/netns/$SB" -- "$EGRESSD" --cleanup --bpf-pin-dir "$PIN" >/dev/null 2>&1 ||
		die "egressd --cleanup failed"
done
egit_finish
