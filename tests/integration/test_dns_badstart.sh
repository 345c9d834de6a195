#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# Configuration errors stop egressd at start, quickly, with a non-zero exit,
# a message on stderr and no "start" line: a hostname as upstream, no
# upstream at all (resolv.conf without nameserver), and the proxy port
# already taken.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
egit_require_egressd
start_upstream

# try_start DESC STDERR-REGEX ARGS...: egressd must exit non-zero in 5 s.
try_start() {
	local desc=$1 re=$2 rc t0 ms
	shift 2
	t0=$(now_ms)
	# shellcheck disable=SC2016 # expands in the child
	timeout -k 1 5 nsenter --net="/run/netns/$SB" -- sh -c \
		'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		sh "$CG/agent" "$EGRESSD" "$@" >"$T/bad.out" 2>"$T/bad.err"
	rc=$?
	ms=$(($(now_ms) - t0))
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		fail "$desc: exits at start" "still running after 5 s"
		return
	fi
	if [ "$rc" != 0 ]; then
		pass "$desc: exits non-zero ($rc) in ${ms} ms"
	else
		fail "$desc: exits non-zero" "exit status 0"
	fi
	if grep -qiE -- "$re" "$T/bad.err"; then
		pass "$desc: stderr says why: $(head -n 1 "$T/bad.err")"
	else
		fail "$desc: stderr mentions /$re/" "stderr: $(head -c 400 "$T/bad.err")"
	fi
	if grep -qE '"event" *: *"start"' "$T/bad.out"; then
		fail "$desc: no start line" "$(cat "$T/bad.out")"
	else
		pass "$desc: no start line"
	fi
}

try_start "hostname as upstream" "upstream|dns.example.com" \
	--rules "$POLICY" --dns-upstream dns.example.com
try_start "hostname among upstreams" "upstream|resolver.example.net" \
	--rules "$POLICY" --dns-upstream "$DNS4,resolver.example.net:53"

unset OPENSANDBOX_EGRESS_DNS_UPSTREAM
printf '# no nameserver here\nsearch example.com\noptions ndots:1\n' >"$T/resolv.conf"
try_start "resolv.conf without nameserver" "nameserver|upstream" \
	--rules "$POLICY" --resolv-conf "$T/resolv.conf"
try_start "missing resolv.conf" "does-not-exist.conf" \
	--rules "$POLICY" --resolv-conf "$T/does-not-exist.conf"
export OPENSANDBOX_EGRESS_DNS_UPSTREAM=$DNS4

# Something already listens on 127.0.0.1:15353 (UDP and TCP) in the sandbox.
ip netns exec "$SB" "$FAKEDNS" --listen 127.0.0.1:15353 --listen '[::1]:15353' \
	--pidfile "$T/squat.pid" >/dev/null 2>"$T/squat.err" &
EGIT_PIDS+=("$!")
wait_for 5 test -s "$T/squat.pid" || die "squatter did not start: $(cat "$T/squat.err")"
try_start "port 15353 in use" "15353|in use|bind" --rules "$POLICY"

# The resolv.conf fallback works when it names a literal nameserver.
unset OPENSANDBOX_EGRESS_DNS_UPSTREAM
printf 'search example.com\nnameserver %s\n' "$DNS4" >"$T/resolv-ok.conf"
start_egressd --rules "$POLICY" --resolv-conf "$T/resolv-ok.conf" --dns-listen-port 15354
q @"$DNS4" api.github.com A
assert_eq "resolv.conf upstream and --dns-listen-port used" "NOERROR $WEB4" "$Q_STATUS $Q_ANSWER"
egit_finish
