# SPDX-License-Identifier: GPL-2.0-only
#
# egressd: one non-recursive Makefile. Objects go to $(OUTPUT) (.output/),
# binaries to build/. `make help` lists the targets; V=1 shows commands.

OUTPUT ?= .output
ifdef O
OUTPUT := $(O)
endif
BUILD := build

# SANITIZE=1: everything (agent, egressctl, test tools, unit tests) built
# with ASan and UBSan into its own dirs, so it never mixes with the normal
# build; `make test SANITIZE=1` runs the unit and integration suites on it
# and fails on any sanitizer report (scripts/run-tests.sh). The BPF object
# is not sanitized (clang -target bpf). clang, not gcc: gcc's UBSan ignores
# log_path when linked with ASan, so its reports would only reach stderr.
# clang does not see that a va_list helper's format comes from its caller.
ifeq ($(SANITIZE),1)
ifndef O
OUTPUT := .output-san
endif
BUILD := build-san
SAN_CC ?= clang
CC := $(SAN_CC)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	     -fno-sanitize-recover=undefined
SAN_WARNINGS := -Wno-format-nonliteral
endif

CC ?= cc
CLANG ?= clang
BPFTOOL ?= bpftool
PKG_CONFIG ?= pkg-config

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-9s %s\n' "$(1)" "$(2)";
MAKEFLAGS += --no-print-directory
endif

# The version: git describe of this tree at build time, a fixed string when
# it is not a git checkout (a release tarball). $(OUTPUT)/version is
# rewritten only when it changes, and the objects that use the version
# depend on it, so a new commit rebuilds them and nothing else.
EGRESSD_VERSION_FALLBACK := 0.1.0
ifndef EGRESSD_VERSION
EGRESSD_VERSION := $(or $(shell [ -e .git ] && git describe --tags --always --dirty 2>/dev/null),$(EGRESSD_VERSION_FALLBACK))
endif
VERSION_FILE := $(OUTPUT)/version
VERSION_USERS := $(OUTPUT)/agent/status.o $(OUTPUT)/agent/config.o \
	$(OUTPUT)/agent/webhook.o $(OUTPUT)/tools/egressctl.o \
	$(OUTPUT)/tools/ctl_http.o

CFLAGS ?= -O2 -g
ifdef SAN_FLAGS
override CFLAGS += $(SAN_FLAGS)
endif
WARNINGS := -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes \
	    -Wformat=2 -Wshadow -Wno-unused-parameter
WARNINGS += $(SAN_WARNINGS)
CPPFLAGS_ALL := -Iinclude -D_GNU_SOURCE -DEGRESSD_VERSION='"$(EGRESSD_VERSION)"'
ALL_CFLAGS = $(CFLAGS) $(WARNINGS) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(EXTRA_CFLAGS) -MMD -MP

# Library name (pkg-config) -> Debian package that provides it.
PKGS_AGENT := libnftnl:libnftnl-dev libmnl:libmnl-dev jansson:libjansson-dev libbpf:libbpf-dev libmicrohttpd:libmicrohttpd-dev libcurl:libcurl4-openssl-dev libpsl:libpsl-dev
PKGS_TEST := check:check

# Goals that must work before any library is installed.
NODEPS_GOALS := help clean deps demo test distclean check-docs check-format format uninstall
BUILD_GOALS := $(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all))

pkg_name = $(word 1,$(subst :, ,$(1)))
pkg_deb = $(word 2,$(subst :, ,$(1)))
check_pkg = $(if $(shell $(PKG_CONFIG) --exists $(call pkg_name,$(1)) && echo y),,$(error $(call pkg_name,$(1)) not found by $(PKG_CONFIG): install the Debian package $(call pkg_deb,$(1)) (or run 'make deps')))

ifneq ($(BUILD_GOALS),)
$(foreach p,$(PKGS_AGENT),$(call check_pkg,$(p)))
PKG_NAMES := $(foreach p,$(PKGS_AGENT),$(call pkg_name,$(p)))
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKG_NAMES))
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKG_NAMES))
ifneq ($(filter tests check-unit,$(BUILD_GOALS)),)
$(foreach p,$(PKGS_TEST),$(call check_pkg,$(p)))
endif
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
endif

# Agent modules (agent/<name>.c). main.c is the entry point only.
# The nftables layer (agent/nft*.c) for the unit tests and fuzzers that link
# it, with doh.c, whose provider addresses it blocks.
NFTSYNC_MODULES := nftsync nftruleset nftnetdev nftset nftrule nftbatch doh
AGENT_MODULES := log loop config policy matcher compiled dnswire doh dnsguard selfsock dnsproxy dnsupstream dnsicmp dnsprobe dnstcp dnsdecide events cgroup cgwatch coverage netns learned nftsync nftruleset nftnetdev nftset nftrule nftbatch nflog bpfsync bpfsync_pins bpfsync_policy bpfsync_learned bpfsync_events api apiroutes apiedit webhook liveness attached \
	agent sources project layers answer persist status
AGENT_OBJS := $(patsubst %,$(OUTPUT)/agent/%.o,$(AGENT_MODULES))

# Unit tests: tests/check_<module>.c linked with the objects it needs.
UNIT_TESTS := policy compiled dnswire dnsguard doh config loop netns dnsproxy learned nftsync events api webhook log attached selfsock cgwatch nflog agent
check_policy_OBJS := policy matcher log
check_compiled_OBJS := compiled policy matcher $(NFTSYNC_MODULES) log
check_dnswire_OBJS := dnswire
check_dnsguard_OBJS := dnsguard policy matcher log
check_config_OBJS := config log
check_loop_OBJS := loop
check_netns_OBJS := netns
check_doh_OBJS := doh policy matcher log
check_dnsproxy_OBJS := dnsproxy dnsupstream dnsicmp dnsprobe dnstcp dnsdecide dnsguard dnswire doh policy matcher loop events log config selfsock
check_nftsync_OBJS := $(NFTSYNC_MODULES) log
check_learned_OBJS := learned
check_events_OBJS := events log dnswire loop
check_api_OBJS := api apiroutes apiedit policy matcher log loop config selfsock
check_webhook_OBJS := webhook log loop selfsock
# check_dnsproxy fails chosen allocations (its __wrap_malloc/__wrap_calloc).
check_dnsproxy_LDFLAGS := -Wl,--wrap=malloc -Wl,--wrap=calloc
check_log_OBJS := log loop
check_attached_OBJS := attached log netns
check_selfsock_OBJS := selfsock log
check_cgwatch_OBJS := cgwatch loop
check_nflog_OBJS := nflog $(NFTSYNC_MODULES) learned events log dnswire loop
# check_agent: the whole agent, with stub BPF ops and a fake nft talker.
check_agent_OBJS := $(AGENT_MODULES)
UNIT_BINS := $(patsubst %,$(OUTPUT)/tests/check_%,$(UNIT_TESTS))
# log.o drains through the event loop (log_attach_loop): it needs loop.o.
unit_objs = $(patsubst %,$(OUTPUT)/agent/%.o,$(check_$(1)_OBJS) \
	$(if $(filter log,$(check_$(1)_OBJS)),$(if $(filter loop,$(check_$(1)_OBJS)),,loop)))

# Helpers used by integration tests and benchmarks.
TEST_TOOLS := fakedns
TEST_TOOL_BINS := $(patsubst %,$(OUTPUT)/tests/tools/%,$(TEST_TOOLS))

.PHONY: all tests check-unit check-docs check-format test demo deps fuzz bench-policy clean help format install uninstall

all: $(BUILD)/egressd $(BUILD)/egressctl

$(BUILD)/egressd: $(OUTPUT)/agent/main.o $(AGENT_OBJS) | $(BUILD)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(EXTRA_LDFLAGS)

# egressctl (tools/): the CLI, libcurl + jansson + libbpf (docs/egressctl.md).
ifneq ($(BUILD_GOALS),)
$(call check_pkg,libcurl:libcurl4-openssl-dev)
endif
# egressctl.c is the command line; ctl_http (API client), ctl_api (policy,
# status, health), ctl_maps (pinned maps), ctl_follow (watch).
CTL_PKGS := libcurl jansson libbpf
CTL_MODULES := egressctl ctl_http ctl_api ctl_maps ctl_follow
CTL_OBJS := $(patsubst %,$(OUTPUT)/tools/%.o,$(CTL_MODULES))
$(BUILD)/egressctl: $(CTL_OBJS) | $(BUILD)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs $(CTL_PKGS)) $(EXTRA_LDFLAGS)

$(OUTPUT)/tools/%.o: tools/%.c | $(OUTPUT)/tools
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(shell $(PKG_CONFIG) --cflags $(CTL_PKGS)) -c $< -o $@

$(OUTPUT)/tools:
	$(Q)mkdir -p $@

.PHONY: FORCE
$(VERSION_FILE): FORCE
	$(Q)mkdir -p $(@D)
	$(Q)echo '$(EGRESSD_VERSION)' | cmp -s - $@ || echo '$(EGRESSD_VERSION)' >$@

$(VERSION_USERS): $(VERSION_FILE)

-include $(wildcard $(OUTPUT)/tools/*.d)

$(OUTPUT)/agent/%.o: agent/%.c | $(OUTPUT)/agent
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(OUTPUT)/tests/%.o: tests/%.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c $< -o $@

$(OUTPUT)/tests/tools/%: tests/tools/%.c | $(OUTPUT)/tests/tools
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(EXTRA_LDFLAGS)

.SECONDEXPANSION:
$(OUTPUT)/tests/check_%: $(OUTPUT)/tests/check_%.o $$(call unit_objs,$$*)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) $(check_$*_LDFLAGS) $(EXTRA_LDFLAGS)

# check_attached reads the BPF object at run time (not linked in).
$(OUTPUT)/tests/check_attached: | $(OUTPUT)/bpf/egress.bpf.o

$(BUILD) $(OUTPUT)/agent $(OUTPUT)/tests $(OUTPUT)/tests/tools:
	$(Q)mkdir -p $@

# Everything the test run needs, built in one make (no library checks
# skipped).
tests: all $(UNIT_BINS) $(TEST_TOOL_BINS)

# Unit tests only (no root, no network).
check-unit: $(UNIT_BINS)
	$(Q)scripts/run-unit-tests.sh $(OUTPUT) $(UNIT_BINS)

# What the code can say (settings, log events, metrics) is documented.
check-docs:
	$(Q)scripts/check-docs.sh

# The README's test command: installs what is missing, builds, runs unit
# tests, then the integration tests (root; skipped with a message when not
# root).
test:
	$(Q)scripts/deps.sh --if-missing test
	$(Q)$(MAKE) tests
	$(Q)EGRESSD_SANITIZED=$(if $(SAN_FLAGS),1,0) scripts/run-tests.sh $(OUTPUT) $(BUILD)

# The README's main job: a sandbox namespace enforcing a sample policy.
demo:
	$(Q)scripts/deps.sh --if-missing demo
	$(Q)$(MAKE) all $(TEST_TOOL_BINS)
	$(Q)scripts/demo.sh

deps:
	$(Q)scripts/deps.sh all

# Installation: PREFIX and DESTDIR as packagers expect. Both programs are
# administration tools (man8), so they go to sbin. The BPF object is a
# skeleton compiled into egressd: there is no .bpf.o to install.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/egressd
INSTALL ?= install
INSTALL_PROGS := egressd egressctl
INSTALL_MAN8 := egressd.8 egressctl.8
INSTALL_DOCS := README.md CHANGELOG.md $(wildcard docs/*.md)

install: all
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(DOCDIR)
	$(Q)$(INSTALL) -m 0755 $(addprefix $(BUILD)/,$(INSTALL_PROGS)) \
		$(DESTDIR)$(SBINDIR)/
	$(Q)$(INSTALL) -m 0644 $(addprefix docs/,$(INSTALL_MAN8)) \
		$(DESTDIR)$(MANDIR)/man8/
	$(Q)$(INSTALL) -m 0644 $(INSTALL_DOCS) $(DESTDIR)$(DOCDIR)/

# Only what install put there; the doc directory goes when it is empty.
uninstall:
	$(call msg,UNINSTALL,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(INSTALL_PROGS)) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(INSTALL_MAN8)) \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(INSTALL_DOCS)))
	$(Q)rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# libFuzzer targets (clang, ASan+UBSan; tests/fuzz/): `make fuzz` runs
# each for FUZZ_SECONDS (default 60; FUZZ=name picks one) on a working
# corpus in $(OUTPUT)/fuzz/ seeded from tests/fuzz/corpus_<name>/;
# `make fuzz-replay` runs each over its committed corpus once, no
# mutation (`make test` does it).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := dnswire policy always nflog http
FUZZ ?= $(FUZZ_TARGETS)
FUZZ_BINS := $(patsubst %,$(OUTPUT)/fuzz/fuzz_%,$(FUZZ_TARGETS))
.PHONY: fuzz-replay
fuzz: $(patsubst %,$(OUTPUT)/fuzz/fuzz_%,$(FUZZ))
	$(Q)for t in $(FUZZ); do \
		mkdir -p $(OUTPUT)/fuzz/corpus_$$t; \
		$(OUTPUT)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 \
			-artifact_prefix=$(OUTPUT)/fuzz/$$t- \
			$(OUTPUT)/fuzz/corpus_$$t tests/fuzz/corpus_$$t || exit 1; \
	done

fuzz-replay: $(FUZZ_BINS)
	$(Q)scripts/fuzz-replay.sh $(OUTPUT)

# `make test` replays the corpora too.
tests: $(FUZZ_BINS)

FUZZ_AGENT_SRCS := agent/policy.c agent/matcher.c agent/log.c agent/loop.c
fuzz_dnswire_SRCS := tests/fuzz/fuzz_dnswire.c agent/dnswire.c
fuzz_policy_SRCS := tests/fuzz/fuzz_policy.c $(FUZZ_AGENT_SRCS)
fuzz_always_SRCS := tests/fuzz/fuzz_always.c $(FUZZ_AGENT_SRCS)
fuzz_nflog_SRCS := tests/fuzz/fuzz_nflog.c agent/nflog.c agent/learned.c \
	$(patsubst %,agent/%.c,$(NFTSYNC_MODULES)) \
	agent/events.c agent/dnswire.c $(FUZZ_AGENT_SRCS)
fuzz_http_SRCS := tests/fuzz/fuzz_http.c agent/api.c agent/apiroutes.c \
	agent/apiedit.c agent/config.c agent/selfsock.c $(FUZZ_AGENT_SRCS)
# Built from the sources in one step: any header may matter.
$(OUTPUT)/fuzz/fuzz_%: $$(fuzz_%_SRCS) $(wildcard include/egressd/*.h agent/*.h)
	$(Q)mkdir -p $(OUTPUT)/fuzz
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined $(CPPFLAGS_ALL) $(PKG_CFLAGS) \
		-o $@ $(filter %.c,$^) $(PKG_LIBS)

# Policy lookup micro-benchmark (bench/, never part of `make test`).
bench-policy: $(OUTPUT)/bench/policy_lookup
	$(Q)$(OUTPUT)/bench/policy_lookup

$(OUTPUT)/bench/policy_lookup: bench/policy_lookup.c $(OUTPUT)/agent/policy.o $(OUTPUT)/agent/matcher.o $(OUTPUT)/agent/log.o $(OUTPUT)/agent/loop.o
	$(Q)mkdir -p $(OUTPUT)/bench
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS)

# ---- BPF datapath: bpf/, agent/bpfsync*.c, tests/bpf (begin) ----
# egress.bpf.c -> clang -> bpftool gen object -> bpftool gen skeleton.
# Only agent/bpfsync.c and tests/bpf/test_egress.c include the skeleton.
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' \
	-e 's/ppc64le/powerpc/' -e 's/riscv64/riscv/' -e 's/s390x/s390/')
BPF_CFLAGS := -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(BPF_ARCH) \
	-Iinclude -I/usr/include/$(shell $(CC) -print-multiarch)
BPF_SKEL := $(OUTPUT)/egress.skel.h
BPF_TEST := $(OUTPUT)/tests/bpf/test_egress

ifneq ($(filter bpf test-bpf tests $(OUTPUT)/%,$(BUILD_GOALS)),)
$(call check_pkg,libbpf:libbpf-dev)
endif
LIBBPF_CFLAGS := $(shell $(PKG_CONFIG) --cflags libbpf 2>/dev/null)
LIBBPF_LIBS := $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null)

.PHONY: bpf test-bpf

bpf: $(BPF_SKEL)

$(OUTPUT)/bpf/egress.tmp.bpf.o: bpf/egress.bpf.c | $(OUTPUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

$(OUTPUT)/bpf/egress.bpf.o: $(OUTPUT)/bpf/egress.tmp.bpf.o
	$(call msg,GEN-OBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $<

$(BPF_SKEL): $(OUTPUT)/bpf/egress.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name egress_bpf > $@

$(OUTPUT)/agent/bpfsync.o: $(BPF_SKEL)
$(OUTPUT)/agent/bpfsync.o: ALL_CFLAGS += -I$(OUTPUT) $(LIBBPF_CFLAGS)
# The other parts of bpfsync reach the maps through agent/bpfsync_int.h.
BPFSYNC_PARTS := pins policy learned events
$(patsubst %,$(OUTPUT)/agent/bpfsync_%.o,$(BPFSYNC_PARTS)): ALL_CFLAGS += $(LIBBPF_CFLAGS)

$(BPF_TEST): tests/bpf/test_egress.c $(BPF_SKEL) | $(OUTPUT)/tests/bpf
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -I$(OUTPUT) $(LIBBPF_CFLAGS) -o $@ $< $(LIBBPF_LIBS) $(EXTRA_LDFLAGS)

# `make test` runs them too (the variable is only defined here).
tests: $(BPF_TEST)

# Verdict tests of the real object (root/CAP_BPF; the binary prints SKIP
# and exits 0 without them).
test-bpf: $(BPF_TEST)
	$(Q)$(BPF_TEST)

$(OUTPUT)/bpf $(OUTPUT)/tests/bpf:
	$(Q)mkdir -p $@

-include $(wildcard $(OUTPUT)/bpf/*.d $(OUTPUT)/tests/bpf/*.d)
# ---- BPF datapath (end) ----

# BPF verdict tests under several Debian kernels in qemu (root; run
# vmtests/setup.sh once first). Not part of `make test`: vmtests/README.md.
# Every kernel must pass (docs/kernels.md: what each one supports).
.PHONY: vmtest
# The guest has no network card: a dummy interface gives the cases that
# leave through another interface than lo one to leave through.
vmtest: $(BPF_TEST)
	$(Q)vmtests/run-matrix.sh /bin/sh -c \
		'ip link add vmt0 type dummy && ip link set vmt0 up; exec "$$0"' \
		$(BPF_TEST)

# Violation-line cost micro-benchmark (no root).
bench-events: $(OUTPUT)/bench/events_bench
	$(Q)$(OUTPUT)/bench/events_bench

$(OUTPUT)/bench/events_bench: bench/events_bench.c $(OUTPUT)/agent/events.o $(OUTPUT)/agent/log.o $(OUTPUT)/agent/dnswire.o $(OUTPUT)/agent/loop.o
	$(Q)mkdir -p $(OUTPUT)/bench
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS)

# Benchmarks (root; never part of `make test`; figures in bench/RESULTS.md).
.PHONY: bench-dns bench-nft bench-datapath bench-events
bench-dns bench-nft bench-datapath: all $(OUTPUT)/tests/tools/fakedns
	$(Q)bench/$(patsubst bench-%,%,$@).sh

# Every C file is kernel style (.clang-format); check-format fails on a
# file `make format` would change (run by `make test`). Keep in sync with
# scripts/check-format.sh.
FORMAT_SRCS = $(wildcard agent/*.c agent/*.h include/egressd/*.h tools/*.c \
	tools/*.h bpf/*.c bpf/*.h tests/*.c tests/bpf/*.c tests/tools/*.c \
	tests/fuzz/*.c bench/*.c)

format:
	$(Q)clang-format -i $(FORMAT_SRCS)

check-format:
	$(Q)scripts/check-format.sh

clean:
	$(call msg,CLEAN,)
	$(Q)rm -rf $(OUTPUT) $(BUILD)

help:
	@echo 'egressd targets:'
	@echo '  all (default)  build build/egressd and build/egressctl'
	@echo '  test           install missing packages, build, run unit and integration tests'
	@echo '  check-unit     build and run the unit tests only (no root needed)'
	@echo '  check-docs     every setting, log event and metric is documented'
	@echo '  demo           run the demo: egressd enforcing a policy in a network namespace (root)'
	@echo '  deps           install every build, runtime and test package (apt, root)'
	@echo '  install        install programs, man pages and docs (PREFIX=$(PREFIX), DESTDIR)'
	@echo '  uninstall      remove what install put there'
	@echo '  bpf            build the BPF object and its skeleton'
	@echo '  test-bpf       BPF verdict tests (BPF_PROG_TEST_RUN; root)'
	@echo '  vmtest         BPF verdict tests under Debian kernels in qemu (vmtests/; root)'
	@echo '  fuzz           run the libFuzzer targets (FUZZ_SECONDS=$(FUZZ_SECONDS) each; FUZZ=name for one)'
	@echo '  fuzz-replay    run every fuzz target over its committed corpus once'
	@echo '  bench-policy   policy lookup micro-benchmark (see bench/)'
	@echo '  bench-events   violation-line cost micro-benchmark'
	@echo '  bench-dns      DNS proxy vs dnsdist (root; bench/RESULTS.md)'
	@echo '  bench-nft      dns+nft learning cost and policy apply time (root)'
	@echo '  bench-datapath packet rate with egressd enforcing (root)'
	@echo '  format         clang-format the sources (kernel style, .clang-format)'
	@echo '  check-format   fail on a source file format would change (part of test)'
	@echo '  clean          remove $(OUTPUT)/ and $(BUILD)/'
	@echo 'variables: V=1 (show commands), O=DIR (object dir), CC, CLANG, PKG_CONFIG, EXTRA_CFLAGS, EXTRA_LDFLAGS,'
	@echo '  PREFIX, DESTDIR, SBINDIR, MANDIR, DOCDIR (install)'
	@echo '  SANITIZE=1 (ASan+UBSan build in .output-san/ and build-san/; with test: fail on any report)'

-include $(wildcard $(OUTPUT)/agent/*.d $(OUTPUT)/tests/*.d)

.DELETE_ON_ERROR:
.SECONDARY:
