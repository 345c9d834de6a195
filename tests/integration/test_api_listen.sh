#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# HTTP API listen address: the default ":18080" serves every interface over
# IPv4 and IPv6 (loopback and the sandbox's own addresses, also from the
# peer namespace); "[::1]:PORT" serves IPv6 loopback; a port in use or a
# malformed address stops egressd at start with an error naming the
# address and the setting (a malformed one in the configuration step,
# before anything is installed).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# code_from NETNS URL: HTTP status of GET URL from NETNS (000: no answer).
code_from() {
	ip netns exec "$1" curl -g -s -m 3 -o /dev/null -w '%{http_code}' "$2" 2>/dev/null
}

egit_init
start_upstream

# Default address.
unset OPENSANDBOX_EGRESS_HTTP_ADDR
start_egressd --rules "$POLICY"
ok=0
wait_for 5 test "$(code_from "$SB" http://127.0.0.1:18080/healthz)" = 200 && ok=1
assert_eq "default :18080 answers on 127.0.0.1" 1 "$ok"
assert_eq "default :18080 answers on [::1]" 200 "$(code_from "$SB" 'http://[::1]:18080/healthz')"
assert_eq "default :18080 answers on the sandbox's IPv4 address from outside" \
	200 "$(code_from "$NET" "http://$SB4:18080/healthz")"
assert_eq "default :18080 answers on the sandbox's IPv6 address from outside" \
	200 "$(code_from "$NET" "http://[$SB6]:18080/healthz")"
stop_egressd

# A loopback-only IPv6 address.
API_ADDR='[::1]:18082'
start_egressd_api --rules "$POLICY"
assert_eq "[::1]:18082 answers on ::1" 200 "$(code_from "$SB" 'http://[::1]:18082/healthz')"
assert_eq "[::1]:18082 does not answer on 127.0.0.1" 000 "$(code_from "$SB" http://127.0.0.1:18082/healthz)"
stop_egressd

# 127.0.0.1 only: not reachable from outside.
API_ADDR=127.0.0.1:18080
start_egressd_api --rules "$POLICY"
assert_eq "127.0.0.1:18080 not reachable on the sandbox address" 000 \
	"$(code_from "$NET" "http://$SB4:18080/healthz")"
stop_egressd

# Port in use: a listener holds 127.0.0.1:18081 in the sandbox netns.
ip netns exec "$SB" "$PY" -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 18081))
s.listen(1)
open(sys.argv[1], "w").close()
time.sleep(60)' "$T/holder.ready" &
EGIT_PIDS+=("$!")
wait_for 5 test -e "$T/holder.ready" || die "port holder did not start"
export OPENSANDBOX_EGRESS_HTTP_ADDR=127.0.0.1:18081
egressd_bad_start "port in use" "127.0.0.1:18081" --rules "$POLICY"
assert_file_contains_i "port in use: stderr says who and which setting" \
	"$T/bad.err" "another process, perhaps another egressd, holds this port: stop it or choose another address with OPENSANDBOX_EGRESS_HTTP_ADDR"
export OPENSANDBOX_EGRESS_HTTP_ADDR=bogus
# A pin dir no earlier run made (lib.sh removes /sys/fs/bpf/egit-$EGIT_ID).
export OPENSANDBOX_EGRESS_BPF_PIN_DIR=$OPENSANDBOX_EGRESS_BPF_PIN_DIR/fresh
egressd_bad_start "malformed address" "bogus" --rules "$POLICY"
assert_file_contains_i "malformed address: stderr names the setting" \
	"$T/bad.err" 'OPENSANDBOX_EGRESS_HTTP_ADDR / --http-addr: invalid value "bogus": missing port'
if [ -e "$OPENSANDBOX_EGRESS_BPF_PIN_DIR" ]; then
	fail "malformed address: refused before any BPF pin is made" "$(ls "$OPENSANDBOX_EGRESS_BPF_PIN_DIR")"
else
	pass "malformed address: refused before any BPF pin is made"
fi
export OPENSANDBOX_EGRESS_HTTP_ADDR='::1:18080'
egressd_bad_start "IPv6 without brackets" "::1:18080" --rules "$POLICY"

egit_finish
