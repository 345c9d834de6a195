#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# scripts/deps.sh installs what the command needs and no more: `make demo`
# asks for the demo set (no dnsperf, dnsdist, valgrind), `make test` for
# the test set (no benchmark tools), `make deps` for all. Played with a
# dpkg-query that reports every package missing and a non-root id, so
# nothing is installed: deps.sh then names what it would install.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

T=$(mktemp -d "/tmp/egit-$EGIT_ID-XXXXXX") || die "mktemp"
trap 'rm -rf "$T"' EXIT
mkdir "$T/bin"
printf '#!/bin/sh\nexit 1\n' >"$T/bin/dpkg-query"
printf '#!/bin/sh\necho 1000\n' >"$T/bin/id"
chmod +x "$T/bin/dpkg-query" "$T/bin/id"
deps=$EGIT_ROOT/scripts/deps.sh

would_install() { # SET...: the packages deps.sh says are missing
	PATH=$T/bin:$PATH "$deps" --if-missing "$@" 2>&1 >/dev/null |
		sed -n 's/^deps: missing packages: //p'
}

demo=" $(would_install demo) "
for p in clang libbpf-dev bpftool nftables iproute2 dnsutils util-linux curl; do
	assert_contains "demo set has $p" "$demo" " $p "
done
for p in dnsperf dnsdist iperf3 valgrind check python3-dnslib; do
	assert_not_contains "demo set has no $p" "$demo" " $p "
done

tst=" $(would_install test) "
for p in clang check valgrind python3-dnslib nftables man-db; do
	assert_contains "test set has $p" "$tst" " $p "
done
for p in dnsperf dnsdist iperf3; do
	assert_not_contains "test set has no $p" "$tst" " $p "
done

all=" $(would_install) "
for p in dnsperf dnsdist iperf3 valgrind clang; do
	assert_contains "the default (make deps) has $p" "$all" " $p "
done

assert_contains "make demo asks for the demo set" \
	"$(make -s -n -C "$EGIT_ROOT" demo 2>/dev/null)" "deps.sh --if-missing demo"
assert_contains "make test asks for the test set" \
	"$(make -s -n -C "$EGIT_ROOT" test 2>/dev/null)" "deps.sh --if-missing test"
PATH=$T/bin:$PATH "$deps" --if-missing nope >/dev/null 2>&1
assert_eq "an unknown set is a usage error" 2 "$?"
egit_finish
