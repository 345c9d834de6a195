# SPDX-License-Identifier: GPL-2.0-only
#
# egressd's container image: the sidecar that enforces a sandbox's egress
# policy (docs/deploy.md). Two stages from Debian 12: the first installs the
# build packages and runs `make`, exactly what CI builds; the second holds
# only the shared libraries the two binaries link and ca-certificates (for
# an https deny webhook). The BPF object is built into egressd itself (a
# bpftool skeleton), so nothing else is copied. Tests are not run here: they
# need root in namespaces the build cannot create (`make test` on a host).
#
#   docker build -t egressd .        (or: podman build -t egressd .)
#
# .git is not sent to the build, so pass the version the Makefile would take
# from git describe: --build-arg EGRESSD_VERSION="$(git describe --tags
# --always --dirty)" (unset: the Makefile's fallback). BASE_IMAGE lets a
# machine without a registry build from a debian:12 made locally
# (tests/e2e/containers.sh, docs/deploy.md).

ARG BASE_IMAGE=debian:12

FROM ${BASE_IMAGE} AS build
# The build group of scripts/deps.sh (keep in sync); the Makefile's
# pkg-config checks name any package that goes missing here.
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		build-essential pkg-config clang llvm bpftool \
		libnftnl-dev libmnl-dev libjansson-dev libbpf-dev \
		libmicrohttpd-dev libcurl4-openssl-dev libpsl-dev \
	&& rm -rf /var/lib/apt/lists/*
ARG EGRESSD_VERSION=
WORKDIR /src
COPY . .
RUN make clean \
	&& make -j"$(nproc)" ${EGRESSD_VERSION:+EGRESSD_VERSION="$EGRESSD_VERSION"}

FROM ${BASE_IMAGE}
# The runtime halves of the build's -dev packages (ldd build/egressd).
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		libbpf1 libnftnl11 libmnl0 libjansson4 libmicrohttpd12 libcurl4 libpsl5 \
		ca-certificates \
	&& rm -rf /var/lib/apt/lists/* \
	&& mkdir -p /var/egress/rules
COPY --from=build /src/build/egressd /src/build/egressctl /usr/local/bin/
COPY LICENSE /usr/share/doc/egressd/LICENSE
LABEL org.opencontainers.image.title="egressd" \
	org.opencontainers.image.description="eBPF-assisted egress enforcement sidecar, drop-in for the OpenSandbox egress sidecar" \
	org.opencontainers.image.licenses="GPL-2.0-only"
# 18080: the policy API (OPENSANDBOX_EGRESS_HTTP_ADDR). The DNS proxy
# listens on 127.0.0.1/::1:15353 inside the shared namespace only.
EXPOSE 18080
# egressctl reads OPENSANDBOX_EGRESS_HTTP_ADDR and _TOKEN like egressd.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s \
	CMD ["/usr/local/bin/egressctl", "health"]
ENTRYPOINT ["/usr/local/bin/egressd"]
