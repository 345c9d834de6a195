#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# docs/security.md, class 2, at the transport: a root workload with
# Docker's default capabilities (CAP_NET_RAW, no CAP_NET_ADMIN), in the
# sidecar topology, finds egressd's upstream socket in /proc/net/udp and
# sprays it for 2 s with ICMP port-unreachable errors that quote a
# datagram from that socket to the upstream, sent through a raw socket to
# egressd's own address (so from an address of the namespace, through lo,
# which chain antispoof lets pass). Meanwhile it resolves an allowed name
# again and again. The upstream is remote and answers: every query must
# be answered with the zone's address, the upstream must stay healthy,
# and egressd must count and warn about the forged errors (kind
# forged_icmp); the probe rounds (every second here) that fall in the
# spray must not fail either. Once over IPv4 (upstream $DNS4), once over IPv6 (upstream
# $DNS6). A real refusal still fails over at once: test_dns_upstream_probe,
# test_fault_upstream, test_dns_failover.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=sidecar.sh
. "$(dirname "$0")/sidecar.sh"

FORGE=$EGIT_DIR/../tools/forge-icmp.py
DOCKER_CAPS=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap

attacker() {
	run_workload setpriv --bounding-set="$DOCKER_CAPS" --inh-caps=-all -- \
		"$PY" "$FORGE" "$@"
}

# container_get PATH: GET PATH from egressd's container cgroup, as
# `docker exec` would (status_field).
container_get() {
	run_in_container curl -s -m 2 "http://127.0.0.1:18080$1"
}

# healthy ADDR: the "healthy" of upstream ADDR in GET /status.
healthy() {
	container_get /status | "$PY" -c '
import json, sys
for u in json.load(sys.stdin).get("upstreams", []):
    if u.get("addr") == sys.argv[1]:
        print(json.dumps(u.get("healthy")))' "$1" 2>/dev/null
}

container_metric() {
	container_get /metrics | awk -v m="$1" '$1 == m { print $2; exit }'
}

# spray LABEL UPSTREAM UPSTREAM_TEXT
spray() {
	local label=$1 up=$2 text=$3 out n ok sent bad forged probes
	q @"$DNS4" api.github.com A
	assert_eq "$label: answered before the spray" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	out=$(attacker "$up" "$DNS4" api.github.com 2 2>"$T/forge-$label.err")
	egit_log "$label: $out $(cat "$T/forge-$label.err")"
	n=$(json_eval "$out" 'sum(o["answers"].values())')
	ok=$(json_eval "$out" 'o["answers"].get("NOERROR '"$WEB4"'", 0)')
	sent=$(json_eval "$out" 'o["sent"]')
	if [ "${sent:-0}" -ge 100 ]; then
		pass "$label: the forged errors were sent ($sent)"
	else
		fail "$label: the forged errors were sent" "$out $(cat "$T/forge-$label.err")"
	fi
	if [ "${n:-0}" -ge 20 ] && [ "$ok" = "$n" ]; then
		pass "$label: every query answered during the spray ($ok of $n)"
	else
		fail "$label: every query answered during the spray" "$ok of $n: $out"
	fi
	assert_eq "$label: the upstream is still healthy" true "$(healthy "$text")"
	q @"$DNS4" api.github.com A
	assert_eq "$label: answered after the spray" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
	forged=$(container_metric egressd_dns_forged_answers_total)
	if [ "${forged:-0}" -gt 0 ]; then
		pass "$label: /metrics counts the forged errors ($forged)"
	else
		fail "$label: /metrics counts the forged errors" "egressd_dns_forged_answers_total '$forged'"
	fi
	bad=$(egressd_line_count "upstream $text unusable")
	assert_eq "$label: no 'unusable' line for the upstream" 0 "$bad"
	# A probe round every second: those during the spray answered too.
	bad=$(egressd_line_count "upstream probe $text failed")
	assert_eq "$label: no failed probe" 0 "$bad"
	probes=$(container_metric "egressd_dns_upstream_probes_total{upstream=\"$text\",result=\"answered\"}")
	if [ "${probes:-0}" -ge 3 ]; then
		pass "$label: the probes during the spray answered ($probes)"
	else
		fail "$label: the probes during the spray answered" "answered '$probes'"
	fi
	if wait_for 3 grep -q '"kind":"forged_icmp"' "$T/egressd.out"; then
		pass "$label: egressd warns about the forged errors (forged_icmp)"
	else
		fail "$label: egressd warns about the forged errors (forged_icmp)" \
			"$(grep -i icmp "$T/egressd.out" | head -n 3)"
	fi
}

egressd_line_count() {
	grep -cF -- "$1" "$T/egressd.out"
}

sidecar_init
start_upstream
export OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT=3
export OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC=1

start_egressd_sidecar nohost --mode dns+nft --rules "$POLICY" \
	--dns-upstream "$DNS4" ||
	die "egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"
spray ipv4 "$DNS4" "$DNS4:53"
stop_egressd

start_egressd_sidecar nohost --mode dns+nft --rules "$POLICY" \
	--dns-upstream "[$DNS6]" ||
	die "egressd exited with status $SC_RC before its start line: $(cat "$T/egressd.err")"
spray ipv6 "$DNS6" "[$DNS6]:53"
stop_egressd
egit_finish
