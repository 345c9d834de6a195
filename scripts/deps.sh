#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install the Debian 12 packages egressd needs, with apt, by set:
#   build  compile egressd, egressctl and the BPF object
#   demo   build + what `make demo` runs (ip, nft, dig, nsenter, curl)
#   test   build + unit tests (check, valgrind) + integration tests
#   bench  test + the benchmarks' tools (dnsperf, dnsdist, iperf3)
#   all    every set (the default; what `make deps` installs)
# `--if-missing` installs only when a package of the sets is missing (a fast
# no-op otherwise); `make demo` asks for demo, `make test` for test.
# `--list` prints the sets' packages, one a line, and installs nothing.
# Needs root when something has to be installed.
#
# Usage: scripts/deps.sh [--if-missing|--list] [SET...]
set -eu

BUILD=(build-essential pkg-config clang llvm
	# libFuzzer and clang's sanitizer runtimes (make fuzz, make test)
	libclang-rt-dev
	libnftnl-dev libmnl-dev libjansson-dev libbpf-dev bpftool
	libmicrohttpd-dev libcurl4-openssl-dev
	# registered domains of DNS violation lines (agent/events.c)
	libpsl-dev)
RUNTIME=(iproute2 nftables dnsutils util-linux procps curl)
UNIT=(check libsubunit-dev valgrind
	# make check-format (part of make test): kernel style by .clang-format
	clang-format)
INTEGRATION=(python3 python3-dnslib man-db)
BENCH=(dnsperf dnsdist iperf3)

mode=install
case "${1:-}" in
--if-missing | --list)
	mode=${1#--}
	shift
	;;
esac
[ $# -gt 0 ] || set -- all

PACKAGES=()
for set in "$@"; do
	case "$set" in
	build) PACKAGES+=("${BUILD[@]}") ;;
	demo) PACKAGES+=("${BUILD[@]}" "${RUNTIME[@]}") ;;
	test) PACKAGES+=("${BUILD[@]}" "${RUNTIME[@]}" "${UNIT[@]}" "${INTEGRATION[@]}") ;;
	bench | all)
		PACKAGES+=("${BUILD[@]}" "${RUNTIME[@]}" "${UNIT[@]}"
			"${INTEGRATION[@]}" "${BENCH[@]}")
		;;
	*)
		echo "deps: unknown set '$set' (build, demo, test, bench, all)" >&2
		exit 2
		;;
	esac
done
mapfile -t PACKAGES < <(printf '%s\n' "${PACKAGES[@]}" | awk '!seen[$0]++')

if [ "$mode" = list ]; then
	printf '%s\n' "${PACKAGES[@]}"
	exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "$mode" = if-missing ] && [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PACKAGES[@]} packages ($*) are installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run 'scripts/deps.sh $*' as root (or apt-get install them)" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
