#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install every package egressd needs to build, run, test and benchmark on
# Debian 12, with apt. `--if-missing` installs only when something is
# missing (fast no-op otherwise); that is what `make test` and `make demo`
# call. Needs root when something has to be installed.
set -eu

PACKAGES=(
	# build
	build-essential pkg-config clang llvm
	# libFuzzer and clang's sanitizer runtimes (make fuzz, make test)
	libclang-rt-dev
	libnftnl-dev libmnl-dev libjansson-dev libbpf-dev bpftool libmicrohttpd-dev libcurl4-openssl-dev
	# unit tests
	check libsubunit-dev valgrind
	# integration tests and demo
	iproute2 nftables dnsutils util-linux python3 python3-dnslib procps curl
	# benchmarks (bench/)
	dnsperf dnsdist iperf3
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "${1:-}" = "--if-missing" ] && [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PACKAGES[@]} packages are installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run 'make deps' as root (or apt-get install them)" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
