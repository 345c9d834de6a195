#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# A DNS-learned address expires from the BPF map. With LEARN_TTL_MIN=1,
# _MAX=2, _GRACE=1 and a zone TTL of 1 the entry lives 2 s: the address
# connects right after resolving, and after ~5 s without traffic (idle, so
# the grace period does not extend it) the agent has removed it from
# learned_v4 and a new connect is dropped by BPF, reported with the name
# that taught the address.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bpflib.sh
. "$(dirname "$0")/bpflib.sh"

bpf_init
cat >"$T/zone" <<ZONE
api.github.com A $WEB4 1
ZONE
start_fakedns up --zone "$T/zone" --listen "$DNS4" --listen "[$DNS6]"
start_servers web "tcp:$WEB4:80"
export OPENSANDBOX_EGRESS_LEARN_TTL_MIN=1 OPENSANDBOX_EGRESS_LEARN_TTL_MAX=2 \
	OPENSANDBOX_EGRESS_LEARN_GRACE=1
start_egressd_bpf --rules "$POLICY"
assert_eq "start line: layers.bpf.state enforce" enforce \
	"$(json_field "$T/egressd.out" start layers.bpf.state)"

assert_tcp_blocked "before resolving: $WEB4:80 blocked" "$WEB4" 80
q @"$DNS4" api.github.com A
assert_eq "api.github.com A answered (TTL 1)" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
t_learn=$(now_ms)
assert_connects "right after resolving: $WEB4:80 connects" "$WEB4" 80
if bpf_map_has learned_v4 "$WEB4"; then pass "$WEB4 in learned_v4"; else fail "$WEB4 in learned_v4" "$(bpf_map_text learned_v4)"; fi
exp=$(bpf_learned_val "$WEB4" expires_ns)
now=$("$PY" -c 'import time; print(time.monotonic_ns())')
left_ms=$(( (${exp:-0} - now) / 1000000 ))
if [ "$left_ms" -gt 0 ] && [ "$left_ms" -le 2100 ]; then
	pass "learned entry expires in ${left_ms} ms (TTL 1 + grace 1)"
else
	fail "learned entry expires within 2 s" "expires_ns '$exp' now $now (${left_ms} ms)"
fi

# Idle: the agent's sweep (every second) removes the entry once expired.
wait_for 7 sh -c "! bpftool map dump pinned '$PIN/learned_v4' 2>/dev/null | tr -d ' \n' | grep -qF '[${WEB4//./,}]'"
gone_ms=$(($(now_ms) - t_learn))
if bpf_map_has learned_v4 "$WEB4"; then
	fail "the agent removed $WEB4 from learned_v4 (idle)" "$(bpf_map_text learned_v4)"
else
	pass "the agent removed $WEB4 from learned_v4 after ${gone_ms} ms idle"
fi
# ~5 s after resolving, without traffic since.
while [ $(($(now_ms) - t_learn)) -lt 5000 ]; do sleep 0.2; done
dd0=$(bpf_counter default_deny)
assert_blocked "~5 s later, idle: $WEB4:80 blocked" "$WEB4" 80
dd1=$(bpf_counter default_deny)
if [ "$dd1" -gt "$dd0" ]; then pass "dropped by BPF (default_deny $dd0 -> $dd1)"; else fail "dropped by BPF" "default_deny $dd0 -> $dd1"; fi
wait_json_line "violation line for the expired address, naming its domain" "$T/egressd.out" \
	event=violation layer=packet reason=default_deny action=drop dst="$WEB4" dport=80 \
	domain~=api.github.com
assert_all_json "stdout holds only JSON lines" "$T/egressd.out"
egit_finish
