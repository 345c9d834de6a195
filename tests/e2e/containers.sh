#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# End-to-end test with real containers, deployed the way docs/deploy.md
# tells users to: it builds the image from the repository's Dockerfile,
# starts a fake upstream resolver, two "web" hosts and an unprivileged "app"
# container on a private internal network (10.200.N.0/24, no route out),
# then egressd in dns+nft mode in the app's network namespace (--network
# container:app, NET_ADMIN and BPF only), and checks from inside the app
# that a denied name gets NXDOMAIN without ever reaching the upstream, that
# an allowed one resolves and its address is then reachable while an
# address never resolved through egressd is not, and that egressd reports
# the denial. Everything it creates (containers, network,
# cgroups, BPF pins, images, temporary files) is named after its pid and
# removed on exit, even on failure. Root only; not part of `make test`.
#
# Exit status: 0 pass, 1 fail, 77 skip (no usable podman or docker, not
# root, or no debian:12 image on this machine and E2E_MAKE_BASE unset).
#
# Settings (environment):
#   E2E_ENGINE        podman or docker; default: the first of the two that
#                     answers `ENGINE info`
#   E2E_BASE_IMAGE    base image of the Dockerfile (default debian:12)
#   E2E_MAKE_BASE=1   if the base image is missing, make it from Debian
#                     packages (mmdebstrap bookworm, then ENGINE import);
#                     E2E_DEBIAN_MIRROR is passed to mmdebstrap as its
#                     mirror argument when set
#   E2E_BPF           egressd's OPENSANDBOX_EGRESS_BPF: off (default) or
#                     enforce. enforce also mounts bpffs (egressd finds the
#                     sandbox cgroup in the host's hierarchy) and runs egressd
#                     without the engine's seccomp filter, which on Debian
#                     12's podman allows bpf() only with CAP_SYS_ADMIN.
#   E2E_NET           third octet of the private network (default 250)
#   E2E_KEEP_IMAGES=1 keep the images it built (faster reruns)

set -u

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
ID=$$
NAME=egressd-e2e-$ID
NET=${E2E_NET:-250}
SUB=10.200.$NET
UP_IP=$SUB.53
APP_IP=$SUB.10
WEB_IP=$SUB.80	# api.github.com: allowed, learned through egressd
EVIL_IP=$SUB.66	# evil.example.com: denied, never learned
WEB_PORT=8080	# a fakedns on TCP/UDP 8080 plays each "web" host
BASE=${E2E_BASE_IMAGE:-debian:12}
BPF=${E2E_BPF:-off}
IMG=localhost/egressd-e2e:$ID
BUILD_IMG=localhost/egressd-e2e-build:$ID
TOOLS_IMG=localhost/egressd-e2e-tools:$ID
TOKEN=e2e-token-$ID
RULES='{"defaultAction":"deny","egress":[{"action":"allow","target":"api.github.com"},{"action":"deny","target":"evil.example.com"}]}'

ENGINE=
GLOBAL=()	# engine options before the subcommand (podman --runtime)
RUNOPTS=()	# options every `run` needs on this machine
PASSED=0
FAILED=0
T=
CREATED_NET=
CG_PARENT=
SANDBOX_CG=
CG_FS=
EG_OPTS=()	# egressd's container options but its name (reused by --cleanup)
EG_ENV=()

say() { printf 'e2e: %s\n' "$*"; }
skip() {
	printf 'SKIP: %s\n' "$*"
	exit 77
}
die() {
	printf 'e2e: error: %s\n' "$*" >&2
	exit 1
}
eng() { "$ENGINE" "${GLOBAL[@]}" "$@"; }

pass() {
	PASSED=$((PASSED + 1))
	printf 'ok   %s\n' "$1"
}
fail() {
	FAILED=$((FAILED + 1))
	printf 'FAIL %s\n' "$1"
	[ $# -gt 1 ] && printf '     %s\n' "${@:2}"
	return 0
}

# ---- environment ----------------------------------------------------------

pick_engine() {
	local e why=
	for e in ${E2E_ENGINE:-podman docker}; do
		if ! command -v "$e" >/dev/null 2>&1; then
			why+="$e is not installed; "
			continue
		fi
		if "$e" info >/dev/null 2>&1; then
			ENGINE=$e
			return 0
		fi
		why+="$e is installed but '$e info' fails (no daemon?); "
	done
	skip "no usable container engine: ${why}install podman (apt-get install podman) or docker"
}

# The name an imported base image must carry for `FROM $BASE` to find it.
base_ref() {
	case $BASE in
	*/*) printf '%s\n' "$BASE" ;;
	*) printf 'docker.io/library/%s\n' "$BASE" ;;
	esac
}

make_base() {
	command -v mmdebstrap >/dev/null 2>&1 ||
		die "E2E_MAKE_BASE=1 needs mmdebstrap (apt-get install mmdebstrap)"
	say "making $(base_ref) from Debian packages (mmdebstrap bookworm)"
	# shellcheck disable=SC2086 # an unset mirror must be no argument
	mmdebstrap --quiet --variant=minbase --include=ca-certificates \
		bookworm "$T/rootfs.tar" ${E2E_DEBIAN_MIRROR:-} ||
		die "mmdebstrap failed"
	eng import --change 'CMD ["/bin/bash"]' "$T/rootfs.tar" "$(base_ref)" \
		>"$T/import.log" 2>&1 || { cat "$T/import.log"; die "$ENGINE import failed"; }
	rm -f "$T/rootfs.tar"
}

# Find the engine options this machine needs to run a container at all:
# Debian 12's crun refuses a hybrid cgroup layout (runc copes), and a root
# without CAP_SYS_RESOURCE cannot raise the rlimits podman asks for.
probe_run() {
	local g u
	local -a globals=("") ulimits=("" "--ulimit nofile=1024:1024 --ulimit nproc=4096:4096")
	if [ "$ENGINE" = podman ] && command -v runc >/dev/null 2>&1; then
		globals+=("--runtime runc")
	fi
	for g in "${globals[@]}"; do
		for u in "${ulimits[@]}"; do
			# shellcheck disable=SC2206 # split into words on purpose
			GLOBAL=($g)
			# shellcheck disable=SC2206
			RUNOPTS=($u)
			if eng run --rm --network none "${RUNOPTS[@]}" "$BASE" true \
				>"$T/probe.log" 2>&1; then
				return 0
			fi
		done
	done
	GLOBAL=()
	RUNOPTS=()
	eng run --rm --network none "$BASE" true >"$T/probe.log" 2>&1
	skip "$ENGINE cannot run a container here: $(tail -n 1 "$T/probe.log")"
}

# Where the host's cgroup2 hierarchy is, and how egressd sees it: on a
# cgroup v2 host the runtime gives the container its own cgroup at
# /sys/fs/cgroup, so the host's is mounted read-only at /host/sys/fs/cgroup
# (docs/deploy.md); on a hybrid host (v1 controllers, cgroup2 beside them)
# containers get no cgroup2 at all and share the host's cgroup namespace,
# so the host's cgroup2 is mounted at the same path.
CGMOUNT=()
HOSTCG=
setup_cgroups() {
	local mgr
	CG_FS=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$CG_FS" ] || skip "no cgroup2 hierarchy on this host: egressd needs cgroup v2"
	if [ "$CG_FS" = /sys/fs/cgroup ]; then
		CGMOUNT=(-v /sys/fs/cgroup:/host/sys/fs/cgroup:ro)
		HOSTCG=/host/sys/fs/cgroup
	else
		CGMOUNT=(-v "$CG_FS:$CG_FS:ro")
		HOSTCG=$CG_FS
	fi
	# One parent cgroup per sandbox (--cgroup-parent), holding only the
	# app and egressd: the cgroup a BPF attach can cover.
	if [ "$ENGINE" = podman ]; then
		mgr=$(eng info --format '{{.Host.CgroupManager}}' 2>/dev/null)
	else
		mgr=$(eng info --format '{{.CgroupDriver}}' 2>/dev/null)
	fi
	if [ "$mgr" = systemd ]; then
		CG_PARENT=egressde2e$ID.slice
		SANDBOX_CG=/egressde2e$ID.slice
	else
		CG_PARENT=/$NAME
		SANDBOX_CG=/$NAME
	fi
}

# ---- clean-up -------------------------------------------------------------

cleanup() {
	local c d
	trap - EXIT INT TERM
	[ -n "$ENGINE" ] || return 0
	if eng inspect "$NAME-eg" >/dev/null 2>&1; then
		eng stop -t 5 "$NAME-eg" >/dev/null 2>&1
		eng rm -f "$NAME-eg" >/dev/null 2>&1
	fi
	# A clean stop leaves the BPF pins (and their links) on purpose;
	# --cleanup removes them while the app's namespace still exists.
	if [ "$BPF" != off ] && eng inspect "$NAME-app" >/dev/null 2>&1; then
		eng run --rm "${RUNOPTS[@]}" "${EG_OPTS[@]}" "${EG_ENV[@]}" \
			--no-healthcheck "$IMG" --cleanup >/dev/null 2>&1 ||
			say "egressd --cleanup failed: remove /sys/fs/bpf/$NAME by hand"
	fi
	for c in app up web evil; do
		eng rm -f -t 0 "$NAME-$c" >/dev/null 2>&1 ||
			eng rm -f "$NAME-$c" >/dev/null 2>&1
	done
	[ -n "$CREATED_NET" ] && eng network rm "$NAME" >/dev/null 2>&1
	# cgroupfs parents are left behind by the engine (v1 and v2).
	if [ "$CG_PARENT" = "/$NAME" ]; then
		for d in /sys/fs/cgroup/*/"$NAME" "$CG_FS/$NAME"; do
			[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
		done
	fi
	if [ "${E2E_KEEP_IMAGES:-0}" != 1 ]; then
		eng rmi "$TOOLS_IMG" "$BUILD_IMG" "$IMG" >/dev/null 2>&1
	fi
	[ -n "$T" ] && rm -rf "$T"
	return 0
}

# ---- checks ---------------------------------------------------------------

# dig from inside the app container; sets Q_STATUS and Q_ANSWER.
q() {
	local out
	out=$(eng exec "$NAME-app" dig +time=3 +tries=1 "$@" 2>&1)
	Q_STATUS=$(printf '%s\n' "$out" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p' | head -n 1)
	# answer lines are the only ones without a leading ';'
	Q_ANSWER=$(printf '%s\n' "$out" | awk '!/^;/ && NF >= 5 { print $5 }' | tr '\n' ' ' | sed 's/ $//')
	[ -n "$Q_STATUS" ] || Q_STATUS="no answer: $(printf '%s' "$out" | tail -n 1)"
}

wait_healthy() {
	local _
	for _ in $(seq 1 60); do
		if eng exec "$NAME-eg" egressctl health >/dev/null 2>&1; then
			return 0
		fi
		if [ "$(eng inspect -f '{{.State.Running}}' "$NAME-eg" 2>/dev/null)" != true ]; then
			return 1
		fi
		sleep 0.5
	done
	return 1
}

# ---- main -----------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || skip "needs root (container networks, cgroups, NET_ADMIN)"
case $BPF in
off | enforce | observe) ;;
*) die "E2E_BPF must be off, enforce or observe, not '$BPF'" ;;
esac
pick_engine
T=$(mktemp -d /tmp/egressd-e2e.XXXXXX) || die "mktemp failed"
trap cleanup EXIT
trap 'exit 1' INT TERM

if ! eng image inspect "$BASE" >/dev/null 2>&1; then
	if [ "${E2E_MAKE_BASE:-0}" = 1 ]; then
		make_base
	else
		skip "the base image $BASE is not on this machine (this script never pulls); run with E2E_MAKE_BASE=1 to make it from Debian packages with mmdebstrap (docs/deploy.md), or $ENGINE pull $BASE where a registry is reachable"
	fi
fi
probe_run
setup_cgroups
say "engine: $ENGINE ${GLOBAL[*]}, base $BASE, cgroup2 at $CG_FS, sandbox cgroup $SANDBOX_CG, BPF $BPF"

BUILDOPTS=(--build-arg "BASE_IMAGE=$BASE")
# .git is not in the build context: hand over what the Makefile would take
version=$(git describe --tags --always --dirty 2>/dev/null) &&
	BUILDOPTS+=(--build-arg "EGRESSD_VERSION=$version")
[ "$ENGINE" = podman ] && BUILDOPTS+=(--pull=never --format docker)
say "building the image (Dockerfile)"
eng build "${BUILDOPTS[@]}" -t "$IMG" "$ROOT" >"$T/build.log" 2>&1 ||
	{ tail -n 30 "$T/build.log"; die "image build failed"; }
eng build "${BUILDOPTS[@]}" --target build -t "$BUILD_IMG" "$ROOT" \
	>>"$T/build.log" 2>&1 || { tail -n 30 "$T/build.log"; die "build stage failed"; }
eng build "${BUILDOPTS[@]}" --build-arg "BUILD_IMAGE=$BUILD_IMG" \
	-t "$TOOLS_IMG" -f tests/e2e/Containerfile.tools tests/e2e \
	>>"$T/build.log" 2>&1 || { tail -n 30 "$T/build.log"; die "tools image build failed"; }

eng network create --internal --subnet "$SUB.0/24" "$NAME" >/dev/null ||
	die "cannot create the network $SUB.0/24 (in use? set E2E_NET)"
CREATED_NET=1

cat >"$T/zone" <<EOF
api.github.com    A  $WEB_IP
evil.example.com  A  $EVIL_IP
EOF
: >"$T/upstream.log"
eng run -d --name "$NAME-up" "${RUNOPTS[@]}" --network "$NAME" --ip "$UP_IP" \
	-v "$T:/e2e" "$TOOLS_IMG" \
	fakedns --listen "$UP_IP" --zone /e2e/zone --log /e2e/upstream.log \
	--pidfile /e2e/up.pid >/dev/null || die "cannot start the upstream"

# Two hosts to reach: what an allowed name resolves to, and one address
# the app never got from egressd. Port 8080 is not DNS, so nothing
# redirects it: only the dns+nft filter decides.
for h in web:$WEB_IP evil:$EVIL_IP; do
	eng run -d --name "$NAME-${h%%:*}" "${RUNOPTS[@]}" --network "$NAME" \
		--ip "${h#*:}" -v "$T:/e2e:ro" "$TOOLS_IMG" \
		fakedns --listen "${h#*:}:$WEB_PORT" --zone /e2e/zone >/dev/null ||
		die "cannot start the ${h%%:*} host"
done

# The app: unprivileged (nobody, no NET_RAW), in the sandbox cgroup.
eng run -d --name "$NAME-app" "${RUNOPTS[@]}" --cgroup-parent "$CG_PARENT" \
	--network "$NAME" --ip "$APP_IP" --cap-drop NET_RAW --user 65534:65534 \
	"$TOOLS_IMG" sh -c 'trap "exit 0" TERM; sleep infinity & wait' \
	>/dev/null || die "cannot start the app container"

EG_OPTS=(--network "container:$NAME-app"
	--cgroup-parent "$CG_PARENT" --cap-add NET_ADMIN --cap-add BPF
	"${CGMOUNT[@]}")
EG_ENV=(-e OPENSANDBOX_EGRESS_MODE=dns+nft
	-e "OPENSANDBOX_EGRESS_RULES=$RULES"
	-e "OPENSANDBOX_EGRESS_DNS_UPSTREAM=$UP_IP"
	-e "OPENSANDBOX_EGRESS_TOKEN=$TOKEN"
	-e "OPENSANDBOX_EGRESS_BPF=$BPF"
	-e "OPENSANDBOX_EGRESS_HOST_CGROUP2=$HOSTCG"
	-e "OPENSANDBOX_EGRESS_BPF_PIN_DIR=/sys/fs/bpf/$NAME")
if [ "$BPF" != off ]; then
	# No OPENSANDBOX_EGRESS_CGROUP: egressd finds the sandbox cgroup (its
	# container cgroup's parent) in the host's hierarchy itself.
	EG_OPTS+=(-v /sys/fs/bpf:/sys/fs/bpf --security-opt seccomp=unconfined)
fi
eng run -d --name "$NAME-eg" "${RUNOPTS[@]}" "${EG_OPTS[@]}" "${EG_ENV[@]}" \
	--no-healthcheck "$IMG" >/dev/null || die "cannot start egressd"

if wait_healthy; then
	pass "egressd is healthy (egressctl health in its container)"
else
	fail "egressd is healthy" "$(eng logs "$NAME-eg" 2>&1 | tail -n 20)"
	printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
	exit 1
fi
eng logs "$NAME-eg" >"$T/egressd.log" 2>&1
start=$(grep '"event":"start"' "$T/egressd.log" | head -n 1)
say "start line: $start"
case $start in
*'"nft":{"state":"on"'*) pass "nftables layer on (dns+nft)" ;;
*) fail "nftables layer on (dns+nft)" "$start" ;;
esac
if [ "$BPF" = enforce ]; then
	case $start in
	*'"bpf":{"state":"enforce"'*) pass "BPF layer enforcing" ;;
	*) fail "BPF layer enforcing" "$start" ;;
	esac
	case $start in
	*'"coverage":{"state":"namespace","attachCgroup":{"path":"'"$SANDBOX_CG"'"'*)
		pass "BPF attached at the sandbox cgroup it found, covering the namespace" ;;
	*) fail "BPF attached at the sandbox cgroup it found, covering the namespace" "$start" ;;
	esac
fi

q @"$UP_IP" evil.example.com A
if [ "$Q_STATUS" = NXDOMAIN ] && [ -z "$Q_ANSWER" ]; then
	pass "denied name (deny rule) gets NXDOMAIN"
else
	fail "denied name (deny rule) gets NXDOMAIN" "got: $Q_STATUS $Q_ANSWER"
fi
q @"$UP_IP" exfil.attacker.example A
if [ "$Q_STATUS" = NXDOMAIN ]; then
	pass "unlisted name (default deny) gets NXDOMAIN"
else
	fail "unlisted name (default deny) gets NXDOMAIN" "got: $Q_STATUS"
fi
q +tcp @"$UP_IP" evil.example.com A
if [ "$Q_STATUS" = NXDOMAIN ]; then
	pass "denied name over TCP gets NXDOMAIN"
else
	fail "denied name over TCP gets NXDOMAIN" "got: $Q_STATUS"
fi
q @"$UP_IP" api.github.com A
if [ "$Q_STATUS $Q_ANSWER" = "NOERROR $WEB_IP" ]; then
	pass "allowed name resolves through the upstream"
else
	fail "allowed name resolves through the upstream" "got: $Q_STATUS $Q_ANSWER"
fi

# dns+nft: the allowed name's address was learned before the answer was
# released, so the app reaches it; the other one stays unreachable.
q +tcp -p "$WEB_PORT" @"$WEB_IP" api.github.com A
if [ "$Q_STATUS" = NOERROR ]; then
	pass "learned address of the allowed name is reachable (TCP $WEB_PORT)"
else
	fail "learned address of the allowed name is reachable (TCP $WEB_PORT)" "got: $Q_STATUS"
fi
q +tcp -p "$WEB_PORT" @"$EVIL_IP" api.github.com A
case $Q_STATUS in
NOERROR | NXDOMAIN | SERVFAIL | REFUSED)
	fail "address never resolved through egressd is unreachable (TCP $WEB_PORT)" "got: $Q_STATUS" ;;
*) pass "address never resolved through egressd is unreachable (TCP $WEB_PORT)" ;;
esac
q -p "$WEB_PORT" @"$EVIL_IP" api.github.com A
case $Q_STATUS in
NOERROR | NXDOMAIN | SERVFAIL | REFUSED)
	fail "address never resolved through egressd is unreachable (UDP $WEB_PORT)" "got: $Q_STATUS" ;;
*) pass "address never resolved through egressd is unreachable (UDP $WEB_PORT)" ;;
esac

if grep -q 'api.github.com' "$T/upstream.log"; then
	pass "the upstream saw the allowed query"
else
	fail "the upstream saw the allowed query" "$(cat "$T/upstream.log")"
fi
if grep -Eq 'evil.example.com|exfil.attacker' "$T/upstream.log"; then
	fail "denied names never reach the upstream" "$(cat "$T/upstream.log")"
else
	pass "denied names never reach the upstream"
fi

sleep 0.5
eng logs "$NAME-eg" >"$T/egressd.log" 2>/dev/null
if grep '"event":"violation"' "$T/egressd.log" | grep -q 'evil.example.com'; then
	pass "egressd logged a violation line for the denied name"
else
	fail "egressd logged a violation line for the denied name" "$(tail -n 5 "$T/egressd.log")"
fi

if eng exec "$NAME-eg" egressctl policy get >"$T/policy.txt" 2>&1 &&
	grep -q 'api.github.com' "$T/policy.txt"; then
	pass "egressctl policy get (token from the container's environment)"
else
	fail "egressctl policy get" "$(cat "$T/policy.txt")"
fi
eng exec "$NAME-eg" egressctl status >"$T/status.txt" 2>&1
sed 's/^/     /' "$T/status.txt"

printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
[ "$FAILED" -eq 0 ]
