/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Settings of the agent. Every setting has an OPENSANDBOX_EGRESS_*
 * environment variable and a long option; the option wins
 * (docs/configuration.md lists them all). Parsed once at start into one
 * struct egressd_config that is passed down; no module reads the
 * environment itself.
 */
#ifndef __EGRESSD_CONFIG_H
#define __EGRESSD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "egressd/log.h"

/* EGRESSD_VERSION comes from the Makefile (git describe at build time). */
#ifndef EGRESSD_VERSION
#error "EGRESSD_VERSION is not defined: build with make"
#endif
#define EGRESSD_MAX_UPSTREAMS 10

enum egressd_mode {
	EGRESSD_MODE_DNS = 0,
	EGRESSD_MODE_DNS_NFT = 1,
};

enum egressd_bpf_mode {
	EGRESSD_BPF_ENFORCE = 0,
	EGRESSD_BPF_OBSERVE = 1,
	EGRESSD_BPF_OFF = 2,
};

enum egressd_ipv6 {
	EGRESSD_IPV6_ALLOW = 0,
	EGRESSD_IPV6_DENY = 1,
};

struct egressd_upstream {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[64]; /* "10.0.0.1:53", "[fd00::1]:53" */
};

/* Bounds of OPENSANDBOX_EGRESS_LEARN_MAX. */
#define CONFIG_LEARN_MAX_MIN 16
#define CONFIG_LEARN_MAX_MAX 1048576

struct egressd_config {
	enum egressd_mode mode;
	char *rules_json; /* OPENSANDBOX_EGRESS_RULES, may be NULL */
	char *policy_file; /* OPENSANDBOX_EGRESS_POLICY_FILE, may be NULL */
	char *rules_dir; /* always-rules directory */
	unsigned long max_rules; /* 0 = unlimited */

	struct egressd_upstream upstreams[EGRESSD_MAX_UPSTREAMS];
	int n_upstreams;
	bool upstreams_from_resolv_conf;
	unsigned int upstream_timeout_ms;
	/* health probe: "" asks ". NS", else "name A" (lower case, no
	 * trailing dot); every upstream, at start and every interval */
	char upstream_probe[254];
	unsigned int upstream_probe_interval_s;
	uint16_t dns_listen_port;
	char *resolv_conf;

	char *agent_cgroup; /* cgroup the agent runs in (NULL: its own) */
	char *workload_cgroup; /* BPF attach point (NULL: the sandbox cgroup) */
	/* where the host's cgroup2 hierarchy is mounted (NULL: not visible) */
	char *host_cgroup2;
	enum egressd_bpf_mode bpf_mode;
	char *bpf_pin_dir;
	enum egressd_ipv6 ipv6;

	unsigned int learn_ttl_min, learn_ttl_max, learn_grace;
	/* learned addresses per family: registry and BPF maps */
	unsigned int learn_max;
	bool block_private_answers;
	/* table netdev egressd: frames of packet sockets judged (default) */
	bool frame_guard;
	bool allow_host_network;
	bool block_doh_443;
	char *doh_blocklist;

	char *http_addr;
	char *token;
	char *deny_webhook;
	char *sandbox_id;

	enum log_level log_level;
	bool cleanup; /* --cleanup: remove what egressd owns, then exit */
	bool check_host_network; /* --check-host-network: report, exit */
};

/*
 * Fill cfg from the environment and argv. Returns 0 to run, 1 when the
 * caller should exit 0 (--help, --version printed), or -EINVAL with err
 * set to a message that says what to fix (and nothing left to free).
 */
int config_load(struct egressd_config *cfg, int argc, char **argv, char *err,
		size_t errlen);
void config_fini(struct egressd_config *cfg);

/*
 * Parse the API listen address: ":port" (all interfaces, IPv6 dual stack;
 * *any set), "a.b.c.d:port", "localhost:port", "[v6]:port". NULL or ""
 * means EGRESSD_DEFAULT_HTTP_ADDR. 0, or -EINVAL with err saying what is
 * wrong (the caller names the address and the setting).
 */
int config_parse_listen_addr(const char *addr, struct sockaddr_storage *ss,
			     socklen_t *sslen, bool *any, char *err,
			     size_t errlen);

/*
 * Parse "IP", "IP:port", "[v6]:port", "[v6]" or a bare v6 address list,
 * comma separated. Host names are rejected. 0 or -EINVAL with err.
 */
int config_parse_upstreams(const char *s, struct egressd_upstream *out, int max,
			   int *n, char *err, size_t errlen);

/* nameserver lines of a resolv.conf (port option honoured); 0 or -errno. */
int config_read_resolv_conf(const char *path, struct egressd_upstream *out,
			    int max, int *n, char *err, size_t errlen);

const char *config_mode_name(enum egressd_mode mode);

/*
 * One warning line for each setting of the OpenSandbox sidecar that is
 * set in the environment and that egressd does not implement (MITM, the
 * credential vault, NAMESERVER_EXEMPT, OTLP, log sinks), saying what
 * egressd does instead; and for cfg's settings read but not acted on
 * (block_private_answers). Call once the log level is set. The number
 * of lines, or -ENOMEM.
 */
int config_warn_unsupported(const struct egressd_config *cfg);

#endif /* __EGRESSD_CONFIG_H */
