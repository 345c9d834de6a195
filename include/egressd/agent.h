/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The agent: one egressd run. struct agent owns the settings it was given,
 * the policy sources, the enforcers (DNS proxy, nftables, BPF) and which
 * of them is up, the coverage model (which layer judges which process),
 * and the apply/rollback step that keeps all of them on one policy.
 * main.c only creates it, runs it and frees it. The struct is here, not
 * hidden, because the agent is spread over a few files along their own
 * seams (agent.c: start-up, apply, coverage; layers.c: bring-up and
 * fallback of each layer; sources.c: policy file and always-rules;
 * project.c: the nftables and BPF views of the compiled policy;
 * answer.c: DNS learning; status.c: /status and /metrics) and
 * tests/check_agent.c builds one by hand. Nothing outside those files reaches into it.
 */
#ifndef __EGRESSD_AGENT_H
#define __EGRESSD_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

#include "egressd/cgroup.h"
#include "egressd/config.h"
#include "egressd/coverage.h"
#include "egressd/nftsync.h"
#include "egressd/policy.h"

struct api;
struct api_buf;
struct bpfsync;
struct bpfsync_policy;
struct cgwatch;
struct learned;
struct dnsproxy;
struct dnswire_response;
struct liveness;
struct loop;
struct loop_timer;
struct nflog;
struct nflog_packet;
struct policy_compiled;
struct webhook;

/* Layer states; each _name() is the word /status and the start line use. */
enum agent_nft_state {
	AGENT_NFT_UNAVAILABLE, /* cannot be programmed: DNS layer only */
	AGENT_NFT_OFF, /* mode dns: redirect (and IPv6-off) rules only */
	AGENT_NFT_ON, /* mode dns+nft: the filter too */
};

enum agent_frames_state {
	AGENT_FRAMES_OFF, /* nftables unavailable: never tried */
	AGENT_FRAMES_ON, /* table netdev egressd installed */
	AGENT_FRAMES_UNAVAILABLE, /* tried, the kernel refused */
};

enum agent_bpf_state {
	AGENT_BPF_OFF, /* OPENSANDBOX_EGRESS_BPF=off */
	AGENT_BPF_ENFORCE,
	AGENT_BPF_OBSERVE,
	AGENT_BPF_UNAVAILABLE,
};

/* Who redirects port 53 to the proxy. */
enum agent_dns_redirect {
	AGENT_REDIRECT_NONE,
	AGENT_REDIRECT_BPF, /* sock_addr programs, for the whole namespace */
	AGENT_REDIRECT_BPF_NFT, /* BPF for the attach cgroup, nat for the rest */
	AGENT_REDIRECT_NFT, /* nat only */
};

const char *agent_nft_state_name(enum agent_nft_state s);
const char *agent_frames_state_name(enum agent_frames_state s);
const char *agent_bpf_state_name(enum agent_bpf_state s);
const char *agent_dns_redirect_name(enum agent_dns_redirect r);

/* egressd_policy_apply_seconds buckets (upper bounds, seconds). */
#define AGENT_APPLY_BUCKETS 8
extern const double agent_apply_bounds[AGENT_APPLY_BUCKETS];

struct agent_always_file {
	const char *name;
	enum policy_action action;
	struct stat st; /* what was loaded; st_ino 0 = missing */
	struct policy_rule *rules;
	size_t n;
};

/*
 * The coverage model (docs/design.md §1a): does BPF judge every process
 * of the namespace, and who takes the rest. It moves one way only while
 * egressd runs: from NAMESPACE to PARTIAL (agent_coverage_lost()).
 */
struct agent_coverage {
	enum coverage_state state;
	char how[PATH_MAX + 256]; /* why the state is what it is */
	char rest[512]; /* what judges the processes BPF does not */
	uint64_t foreign; /* cgroup id of a socket found outside */
	struct coverage *scan; /* the sock_diag scanner, while NAMESPACE */
	struct loop_timer *timer; /* repeats the scan */
};

/*
 * How the agent talks to the BPF layer when it applies a policy: the
 * bpfsync calls by default, a stub in tests/check_agent.c.
 */
struct agent_bpf_ops {
	int (*apply_policy)(struct bpfsync *bs, const struct bpfsync_policy *p);
	int (*forget)(struct bpfsync *bs, int family, const void *addr);
};

extern const struct agent_bpf_ops agent_bpf_default_ops;

struct agent {
	const struct egressd_config *cfg;
	struct loop *loop;
	struct cgroup_view view;
	struct cgroup_info cg; /* egressd's own cgroup */
	struct dnsproxy *proxy;
	struct policy *policy;
	const char *policy_source; /* "file", "env", "default", "api" */
	struct agent_always_file always[2]; /* [0] deny.always, [1] allow */
	/* The policy in force in every layer (rollback writes it back),
	 * and its generation. */
	struct policy_compiled *compiled;
	uint64_t generation;
	struct loop_timer *always_timer;
	/*
	 * The learned-address registry (agent/learned.c): which name taught
	 * which address, in every mode and whichever layers are up; its GC
	 * timer; answers whose addresses could not all be learned, by what
	 * the client got (answer.c).
	 */
	struct learned *learned;
	struct loop_timer *gc_timer;
	uint64_t learn_fail_servfail, learn_fail_sent;
	/* nftables layer */
	struct nftsync *nft;
	struct nflog *nflog;
	enum agent_nft_state nft_state;
	char nft_why[1024];
	/* table netdev egressd (frames around the IP stack), and the
	 * interfaces it has chains for, comma-joined */
	enum agent_frames_state frames_state;
	char frames_why[512];
	char frames_ifs[NFTSYNC_NETDEV_MAX_IFS * 17];
	struct loop_timer *frames_timer;
	bool frames_many; /* warned: more interfaces than chains */
	/* BPF layer */
	struct bpfsync *bpf;
	const struct agent_bpf_ops *bpf_ops;
	enum agent_bpf_state bpf_state;
	char bpf_why[1024];
	enum agent_dns_redirect dns_redirect;
	bool bpf_redirect; /* the BPF sock_addr redirect is attached */
	/* BPF attach point (the sandbox cgroup); has_attach false: none. */
	struct cgroup_info workload;
	bool has_attach;
	char attach_how[1024];
	struct agent_coverage cov;
	struct loop_timer *bpf_timer;
	struct loop_timer *fold_timer; /* bpfsync_fold_drain() */
	int sigfd;
	struct api *api;
	struct liveness *live; /* holds this netns's egressd name */
	struct webhook *webhook; /* OPENSANDBOX_EGRESS_DENY_WEBHOOK, or NULL */
	/* Violation lines and their counters: every layer reports here. */
	struct events *events;
	/* Who may reach the API over loopback: egressd's cgroup, or its
	 * container's when egressd made a child of it. */
	uint16_t api_port;
	struct cgroup_info api_cg;
	/* egressd's exemption: by socket in BPF, by cgroup in nftables,
	 * withdrawn there once a foreign process is found in egressd's
	 * dedicated cgroup. */
	bool agent_foreign;
	char exempt_why[PATH_MAX + 128];
	struct cgwatch *exempt_watch;
	int early_socks_fd; /* pinned agent_socks of an earlier run, or -1 */
	uint64_t bind_refused; /* bind guard refusals already reported */
	bool ready; /* enforcement installed: /healthz 200 */
	uint64_t start_us; /* for /status uptime */
	/* policy applies, for /metrics */
	uint64_t applies_ok, applies_failed;
	uint64_t bpf_errors; /* BPF map writes that failed */
	uint64_t apply_hist[AGENT_APPLY_BUCKETS + 1]; /* last: +Inf */
	double apply_sum_s;
};

/* ---- agent.c: life cycle, apply/rollback, coverage ------------------- */

/*
 * Start one egressd run with cfg (which must outlive the agent): policy
 * sources, egressd's cgroup, the event loop, the DNS proxy, the kernel
 * layers (each degrading on its own), the API. 0 or -errno with err set;
 * a partly started agent is freed.
 */
int agent_new(struct agent **out, const struct egressd_config *cfg, char *err,
	      size_t errlen);
/* Run until SIGTERM/SIGINT; 0 or the loop's -errno. */
int agent_run(struct agent *a);
/* Stop everything; what enforces in the kernel stays (fail closed). */
void agent_free(struct agent *a);

/*
 * The bare agent tests/check_agent.c builds on: cfg, the always-rules
 * slots, the BPF ops, no layer. 0 or -ENOMEM.
 */
int agent_alloc(struct agent **out, const struct egressd_config *cfg);

/* --cleanup: remove egressd's table and pins (none if another runs). */
int agent_cleanup(const struct egressd_config *cfg, char *err, size_t errlen);

/*
 * Compile a->policy with the always-rules and hand it to every enforcer,
 * all or nothing; on success the generation goes up by one. On failure
 * the caller puts the previous policy back and calls agent_apply_rollback().
 */
int agent_apply_policy(struct agent *a, const char *why, char *err,
		       size_t errlen);
void agent_apply_rollback(struct agent *a);

/*
 * A new user policy p (taken on success): applied everywhere or nowhere,
 * then persisted; if it cannot be persisted the previous policy comes back.
 */
int agent_replace_policy(struct agent *a, struct policy *p, const char *source,
			 char *err, size_t errlen);

void agent_coverage_lost(struct agent *a, const char *what);
void agent_coverage_describe(struct agent *a);
enum egressd_mode agent_effective_mode(const struct agent *a);
const char *agent_cgroup_name(const struct agent *a);
/* nftables is programmed (on, or off in mode dns). */
bool agent_nft_up(const struct agent *a);

/* ---- sources.c: the policy file, OPENSANDBOX_EGRESS_RULES, always ---- */

int agent_load_initial_policy(struct agent *a, char *err, size_t errlen);
int agent_check_ipv6_rules(const struct agent *a,
			   const struct policy_rule *rules, size_t n,
			   const char *where, bool egress_index, char *err,
			   size_t errlen);
int agent_always_reload(struct agent *a, struct agent_always_file *f,
			bool force, struct policy_rule **rules, size_t *n,
			char *err, size_t errlen);
/* Poll the always-rules files from now on; 0 or -ENOMEM. */
int agent_sources_start(struct agent *a);
/*
 * Read the policy file and the always-rules again and apply them (the
 * SIGHUP handler); trigger names the cause in the policy line. 0 or the
 * apply's -errno; a file that cannot be used keeps what is in force.
 */
int agent_reload(struct agent *a, const char *trigger);

/* ---- project.c: the nftables and BPF views of the policy ------------ */

/* Program nftables for pc, forgetting the learned addresses forget[]
 * (agent_learned_revoked()) in the same batch; 0 or -errno. */
int agent_nft_apply(struct agent *a, const struct policy_compiled *pc,
		    const struct policy_addr *forget, size_t n_forget,
		    char *err, size_t errlen);
int agent_bpf_apply(struct agent *a, const struct policy_compiled *pc,
		    uint64_t generation, char *err, size_t errlen);
/*
 * The name of the rule that decided a violation of this reason (only
 * deny_rule and doh name one) into buf: rule (an id, shared.h) as a layer
 * reported it, or with EGRESSD_RULE_NONE the rule of a->compiled that
 * puts dst (family AF_INET or AF_INET6) in the set the reason names.
 * false when no rule is known to have decided.
 */
bool agent_rule_name(const struct agent *a, int reason, int family,
		     const void *dst, uint32_t rule, char *buf, size_t len);
/* nflog's rule hook (nflog.h): agent_rule_name() by address. */
bool agent_nflog_rule(void *arg, const struct nflog_packet *pk, char *buf,
		      size_t len);

/* ---- layers.c: bring-up and fallback of each kernel layer ------------ */

int agent_bpf_start(struct agent *a, char *err, size_t errlen);
void agent_bpf_remove_stale(struct agent *a);
int agent_nft_start(struct agent *a, char *err, size_t errlen);
int agent_frames_start(struct agent *a, char *err, size_t errlen);
void agent_dns_redirect_update(struct agent *a);

/* ---- answer.c: DNS learning ------------------------------------------ */

/* The registry's GC runs this often. */
#define AGENT_LEARNED_GC_MS 30000

int agent_answer_hook(void *arg, const char *qname,
		      const struct dnswire_response *r, uint8_t *msg,
		      size_t len);
/*
 * The learned addresses of names m no longer allows, as a malloc'd array
 * (learned_revoked()); after the apply succeeded, agent_learned_revoke()
 * drops them from BPF and the registry (nftables dropped them in its
 * batch), whether nftables is up or not. 0 or -ENOMEM.
 */
int agent_learned_revoked(struct agent *a, const struct policy_matcher *m,
			  struct policy_addr **out, size_t *n);
void agent_learned_revoke(struct agent *a, const struct policy_addr *v,
			  size_t n);
/* Start the registry's GC timer (every mode). 0 or -ENOMEM. */
int agent_learned_start(struct agent *a);
/* bpfsync_set_extended_hook() callback: the registry keeps it alive. */
void agent_learned_extended(void *arg, int family, const void *addr,
			    uint64_t until_ns);

/* ---- status.c: /status, /metrics, the start line --------------------- */

json_t *status_json(struct agent *a);
int status_metrics(struct agent *a, struct api_buf *b);
json_t *status_attached(struct agent *a, bool check);
void status_emit_start(struct agent *a);

#endif /* __EGRESSD_AGENT_H */
