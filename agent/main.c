// SPDX-License-Identifier: GPL-2.0-only
/*
 * egressd: wiring only. Reads the settings, loads the policy, puts the
 * agent in its own cgroup, starts the DNS proxy and the kernel layers, then
 * runs the event loop until SIGTERM/SIGINT. Errors before the loop runs go
 * to stderr with a non-zero exit; everything after is a JSON log line.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <limits.h>
#include <unistd.h>
#include <netinet/in.h>

#include "egressd/api.h"
#include "egressd/attached.h"
#include "egressd/bpfsync.h"
#include "egressd/cgroup.h"
#include "egressd/cgwatch.h"
#include "egressd/config.h"
#include "egressd/coverage.h"
#include "egressd/dnsproxy.h"
#include "egressd/doh.h"
#include "egressd/events.h"
#include "egressd/liveness.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/netns.h"
#include "egressd/nflog.h"
#include "egressd/nftsync.h"
#include "egressd/policy.h"
#include "egressd/selfsock.h"
#include "egressd/webhook.h"

#define ALWAYS_POLL_MS 2000
#define FRAMES_POLL_MS 1000 /* interfaces for table netdev egressd */
#define LEARNED_GC_MS 30000
#define BPF_EXPIRE_MS 1000
#define BPF_EXPIRE_BUDGET 4096
#define COVERAGE_SCAN_MS 1000
#define BPF_FOLD_DRAIN_MS 250
#define EXEMPT_WATCH_MS 1000
#define NS_PER_S 1000000000ULL

/* egressd_policy_apply_seconds buckets (upper bounds, seconds). */
#define APPLY_BUCKETS 8
static const double apply_bounds[APPLY_BUCKETS] = {
	0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
};

struct addr_list {
	struct policy_addr *v;
	size_t n, cap;
};

struct always_file {
	const char *name;
	enum policy_action action;
	struct stat st; /* what was loaded; st_ino 0 = missing */
	struct policy_rule *rules;
	size_t n;
};

struct agent {
	struct egressd_config cfg;
	struct loop *loop;
	struct cgroup_view view;
	struct cgroup_info cg; /* egressd's own cgroup */
	struct dnsproxy *proxy;
	struct policy *policy;
	const char *policy_source;
	struct always_file always[2]; /* [0] deny.always, [1] allow.always */
	struct policy_matcher *matcher;
	uint64_t generation;
	struct loop_timer *always_timer;
	struct loop_timer *gc_timer;
	/* nftables layer */
	struct nftsync *nft;
	struct nflog *nflog;
	const char *nft_state; /* "on", "off", "unavailable" */
	char nft_why[1024];
	/* table netdev egressd (frames around the IP stack): "on",
	 * "unavailable"; the interfaces it has chains for, comma-joined */
	const char *frames_state;
	char frames_why[512];
	char frames_ifs[NFTSYNC_NETDEV_MAX_IFS * 17];
	struct loop_timer *frames_timer;
	bool frames_many; /* warned: more interfaces than chains */
	/* BPF layer */
	struct bpfsync *bpf;
	const char *bpf_state; /* "enforce", "observe", "off", "unavailable" */
	char bpf_why[1024];
	/* who redirects port 53 to the proxy: "bpf", "bpf+nft" (BPF for
	 * the attach cgroup, nat for the rest), "nft" or "none" */
	const char *dns_redirect;
	bool bpf_redirect; /* the BPF sock_addr redirect is attached */
	/* BPF attach point (the sandbox cgroup); has_attach false: none. */
	struct cgroup_info workload;
	bool has_attach;
	char attach_how[1024];
	/* Who judges which process (docs/design.md, coverage). */
	enum coverage_state cov;
	char cov_how[PATH_MAX + 256];
	char cov_rest[512];
	uint64_t cov_foreign; /* cgroup id of a socket found outside */
	struct coverage *covscan;
	struct loop_timer *cov_timer;
	struct loop_timer *bpf_timer;
	struct loop_timer *fold_timer; /* bpfsync_fold_drain() */
	struct addr_list doh_all;   /* built-in DoH addresses + blocklist */
	struct addr_list doh;	    /* OPENSANDBOX_EGRESS_DOH_BLOCKLIST */
	struct addr_list upstreams; /* cfg upstreams as addresses */
	int sigfd;
	int exit_code;
	struct api *api;
	struct liveness *live; /* holds this netns's egressd name */
	struct webhook *webhook; /* OPENSANDBOX_EGRESS_DENY_WEBHOOK, or NULL */
	/* Who may reach the API over loopback (issue 12, class 5): egressd's
	 * cgroup, or its container's when egressd made a child of it. */
	uint16_t api_port;
	struct cgroup_info api_cg;
	/* egressd's exemption (issue 12, class 4): by socket in BPF, by
	 * cgroup in nftables, withdrawn there once a foreign process is
	 * found in egressd's dedicated cgroup. */
	bool agent_foreign;
	char exempt_why[PATH_MAX + 128];
	struct cgwatch *exempt_watch;
	int early_socks_fd; /* pinned agent_socks of an earlier run, or -1 */
	uint64_t bind_refused; /* bind guard refusals already reported */
	bool ready;	   /* enforcement installed: /healthz 200 */
	uint64_t start_us; /* for /status uptime */
	/* policy applies, for /metrics */
	uint64_t applies_ok, applies_failed;
	uint64_t bpf_errors; /* BPF map writes that failed */
	uint64_t apply_hist[APPLY_BUCKETS + 1]; /* last: +Inf */
	double apply_sum_s;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static uint64_t clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("egressd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILURE);
}

/* Read a whole small file; NULL with errno set. */
static char *read_file(const char *path, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0, n = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);

		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static bool is_blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* Start-up policy: policy file > OPENSANDBOX_EGRESS_RULES > deny all. */
static void load_initial_policy(struct agent *a)
{
	char err[512];
	size_t len;
	char *buf;
	int ret;

	if (a->cfg.policy_file) {
		buf = read_file(a->cfg.policy_file, &len);
		if (!buf && errno != ENOENT)
			die("cannot read policy file %s: %s",
			    a->cfg.policy_file, strerror(errno));
		if (buf && is_blank(buf, len)) {
			log_warnx("policy file %s is empty: using OPENSANDBOX_EGRESS_RULES",
				  a->cfg.policy_file);
		} else if (buf) {
			ret = policy_parse_json(buf, len, a->cfg.max_rules,
						&a->policy, err, sizeof(err));
			if (ret)
				log_warnx("policy file %s is not a valid policy (%s): using OPENSANDBOX_EGRESS_RULES",
					  a->cfg.policy_file, err);
			else
				a->policy_source = "file";
		}
		free(buf);
		if (a->policy)
			return;
	}
	if (a->cfg.rules_json) {
		ret = policy_parse_json(a->cfg.rules_json,
					strlen(a->cfg.rules_json),
					a->cfg.max_rules, &a->policy, err,
					sizeof(err));
		if (ret)
			die("OPENSANDBOX_EGRESS_RULES: %s", err);
		a->policy_source = "env";
		return;
	}
	a->policy = policy_new(POLICY_DENY);
	if (!a->policy)
		die("out of memory");
	a->policy_source = "default";
}

/*
 * IPv6 off: an allow rule for an IPv6 address could never take effect.
 * 0, or -EINVAL with err naming the rule.
 */
static int check_ipv6_rules(const struct agent *a,
			    const struct policy_rule *rules, size_t n,
			    const char *where, bool egress_index, char *err,
			    size_t errlen)
{
	long i;

	if (a->cfg.ipv6 != EGRESSD_IPV6_DENY)
		return 0;
	i = policy_find_ipv6_allow(rules, n);
	if (i < 0)
		return 0;
	if (egress_index)
		snprintf(err, errlen,
			 "%segress[%ld]: target \"%s\": IPv6 cannot be allowed while OPENSANDBOX_EGRESS_IPV6=deny",
			 where, i, rules[i].target);
	else
		snprintf(err, errlen,
			 "%s: \"%s\": IPv6 cannot be allowed while OPENSANDBOX_EGRESS_IPV6=deny",
			 where, rules[i].target);
	return -EINVAL;
}

static void always_path(const struct agent *a, const struct always_file *f,
			char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", a->cfg.rules_dir, f->name);
}

/*
 * Load one always-rules file if it changed since the last look. Returns 1
 * with the new rules in *rules and *n (the caller swaps them in), 0 when
 * unchanged, <0 on error (err set). Either way f->st records what was
 * seen, so a broken file is reported once per change, not every poll.
 */
static int always_reload(struct agent *a, struct always_file *f,
			 struct policy_rule **rules, size_t *n, char *err,
			 size_t errlen)
{
	char path[4096];
	struct stat st;
	int ret;

	*rules = NULL;
	*n = 0;
	always_path(a, f, path, sizeof(path));
	if (stat(path, &st) < 0)
		memset(&st, 0, sizeof(st));
	if (st.st_ino == f->st.st_ino && st.st_size == f->st.st_size &&
	    st.st_mtim.tv_sec == f->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == f->st.st_mtim.tv_nsec &&
	    st.st_ctim.tv_sec == f->st.st_ctim.tv_sec &&
	    st.st_ctim.tv_nsec == f->st.st_ctim.tv_nsec)
		return 0;
	f->st = st;
	ret = policy_load_always_file(path, f->action, rules, n, err, errlen);
	if (ret)
		return ret;
	ret = check_ipv6_rules(a, *rules, *n, path, false, err, errlen);
	if (ret) {
		policy_rules_free(*rules, *n);
		*rules = NULL;
		*n = 0;
		return ret;
	}
	return 1;
}

static int addr_push(struct addr_list *l, const struct policy_addr *addr)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct policy_addr *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *addr;
	return 0;
}

static bool rule_is_ip(const struct policy_rule *r)
{
	return r->kind == POLICY_KIND_IP || r->kind == POLICY_KIND_CIDR;
}

/* IP and CIDR rules of rules[] with the given action into l. */
static int addr_collect(struct addr_list *l, const struct policy_rule *rules,
			size_t n, enum policy_action action)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rule_is_ip(&rules[i]) && rules[i].action == action &&
		    addr_push(l, &rules[i].addr))
			return -ENOMEM;
	return 0;
}

struct nft_lists {
	struct addr_list allow, deny, doh_exc;
};

static void nft_lists_free(struct nft_lists *l)
{
	free(l->allow.v);
	free(l->deny.v);
	free(l->doh_exc.v);
}

/*
 * The API rules (issue 12, class 5) and the exemption's state (class 4):
 * where nft can name the workload cgroup only the workload is kept off
 * the API (operators' tools elsewhere in the namespace keep it), else
 * every cgroup but the API cgroup.
 */
static void api_nft_fill(const struct agent *a, struct nftsync_config *c)
{
	c->agent_withdrawn = a->agent_foreign;
	if (!a->api_port || !a->api_cg.nft_ok || a->api_cg.id <= 1)
		return;
	c->api_port = a->api_port;
	c->api_cgroup_id = a->api_cg.id;
	c->api_cgroup_level = a->api_cg.nft_level;
	c->api_workload_only = a->has_attach && a->workload.nft_ok &&
			       a->workload.level > 0 && a->workload.id > 1;
}

/* The nftables view of the effective policy (docs/nftables.md). */
static int nft_config_fill(struct agent *a, struct nftsync_config *c,
			   struct nft_lists *l)
{
	const struct policy *p = a->policy;

	memset(c, 0, sizeof(*c));
	memset(l, 0, sizeof(*l));
	c->dns_port = a->cfg.dns_listen_port;
	c->agent_cgroup_id = a->cg.id;
	c->agent_cgroup_level = a->cg.nft_level;
	c->filter = a->cfg.mode == EGRESSD_MODE_DNS_NFT;
	c->default_accept = p->default_action == POLICY_ALLOW;
	c->ipv6_deny = a->cfg.ipv6 == EGRESSD_IPV6_DENY;
	c->block_doh_443 = a->cfg.block_doh_443;
	/* The fast path only while BPF covers the whole namespace. */
	c->bpf_covers_all = a->cov == COVERAGE_NAMESPACE;
	/* A hand-off by cgroup only where nft can name the cgroup (not the
	 * sandbox above a namespace root on kernels that count from it):
	 * otherwise nftables judges the workload too, before BPF does. */
	c->bpf_handoff = !strcmp(a->bpf_state, "enforce") &&
			 (c->bpf_covers_all || a->workload.nft_ok);
	c->bpf_redirect = a->bpf_redirect && c->bpf_covers_all;
	c->workload_cgroup_id = a->workload.id;
	c->workload_cgroup_level = a->workload.nft_level;
	api_nft_fill(a, c);
	/* At the IP layer deny beats allow, whatever the order. */
	if (addr_collect(&l->deny, a->always[0].rules, a->always[0].n,
			 POLICY_DENY) ||
	    addr_collect(&l->deny, p->rules, p->n_rules, POLICY_DENY) ||
	    addr_collect(&l->allow, a->always[1].rules, a->always[1].n,
			 POLICY_ALLOW) ||
	    addr_collect(&l->allow, p->rules, p->n_rules, POLICY_ALLOW) ||
	    addr_collect(&l->doh_exc, p->rules, p->n_rules, POLICY_ALLOW)) {
		nft_lists_free(l);
		return -ENOMEM;
	}
	c->allow = l->allow.v;
	c->n_allow = l->allow.n;
	c->deny = l->deny.v;
	c->n_deny = l->deny.n;
	c->doh_exceptions = l->doh_exc.v;
	c->n_doh_exceptions = l->doh_exc.n;
	c->doh = a->doh.v;
	c->n_doh = a->doh.n;
	c->upstreams = a->upstreams.v;
	c->n_upstreams = a->upstreams.n;
	return 0;
}

/* Learned addresses stay while the new policy still allows their name. */
static bool keep_learned(const char *domain, void *arg)
{
	const struct policy_matcher *m = arg;
	struct policy_match pm;

	policy_matcher_lookup(m, domain, strlen(domain), &pm);
	return pm.action == POLICY_ALLOW;
}

/* A learned address whose name is no longer allowed leaves BPF too. */
static void revoked_learned(const struct policy_addr *addr, void *arg)
{
	struct agent *a = arg;

	if (a->bpf)
		bpfsync_forget(a->bpf, addr->family == AF_INET6 ? 6 : 4,
			       addr->addr);
}

/* Program nftables for the current policy with matcher m; 0 or -errno. */
static int nft_apply(struct agent *a, const struct policy_matcher *m,
		     char *err, size_t errlen)
{
	struct nftsync_update upd = { .keep = keep_learned,
				      .keep_arg = (void *)m,
				      .revoked = revoked_learned,
				      .revoked_arg = a };
	struct nftsync_config c;
	struct nft_lists l;
	int ret;

	ret = nft_config_fill(a, &c, &l);
	if (ret) {
		snprintf(err, errlen, "out of memory");
		return ret;
	}
	upd.now_ms = loop_clock_ms();
	ret = nftsync_apply(a->nft, &c, &upd, err, errlen);
	nft_lists_free(&l);
	return ret;
}

static int prefixes_from(const struct addr_list *l, bool exact_only,
			 struct bpfsync_prefix **out, size_t *n)
{
	struct bpfsync_prefix *v;
	size_t i, k = 0;

	*out = NULL;
	*n = 0;
	if (!l->n)
		return 0;
	v = calloc(l->n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < l->n; i++) {
		const struct policy_addr *pa = &l->v[i];
		bool full = pa->prefixlen == (pa->family == AF_INET ? 32 : 128);

		if (exact_only && !full)
			continue;
		v[k].family = pa->family == AF_INET6 ? 6 : 4;
		v[k].prefixlen = pa->prefixlen;
		v[k].rule = i;
		memcpy(v[k].addr, pa->addr, 16);
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

/* The BPF view of the effective policy: the same lists as nftables. */
static int bpf_apply(struct agent *a, uint64_t generation, char *err,
		     size_t errlen)
{
	struct bpfsync_prefix *sets[BPFSYNC_SET_MAX] = { 0 };
	struct bpfsync_policy bp = { 0 };
	struct nftsync_config c;
	struct nft_lists l;
	bool filled;
	int i, ret;

	ret = nft_config_fill(a, &c, &l);
	filled = !ret;
	if (!ret)
		ret = prefixes_from(&l.allow, false, &sets[BPFSYNC_SET_ALLOW],
				    &bp.n[BPFSYNC_SET_ALLOW]);
	if (!ret)
		ret = prefixes_from(&l.deny, false, &sets[BPFSYNC_SET_DENY],
				    &bp.n[BPFSYNC_SET_DENY]);
	if (!ret)
		ret = prefixes_from(&a->doh_all, false, &sets[BPFSYNC_SET_DOH],
				    &bp.n[BPFSYNC_SET_DOH]);
	if (!ret)
		ret = prefixes_from(&l.doh_exc, true,
				    &sets[BPFSYNC_SET_DOH_ALLOW],
				    &bp.n[BPFSYNC_SET_DOH_ALLOW]);
	if (!ret) {
		for (i = 0; i < BPFSYNC_SET_MAX; i++)
			bp.set[i] = sets[i];
		bp.generation = generation;
		bp.default_allow = a->policy->default_action == POLICY_ALLOW;
		bp.ipv6_deny = a->cfg.ipv6 == EGRESSD_IPV6_DENY;
		ret = bpfsync_apply_policy(a->bpf, &bp);
		if (ret)
			a->bpf_errors++;
		if (ret)
			snprintf(err, errlen, "BPF maps: %s%s", strerror(-ret),
				 ret == -E2BIG ? " (a set has more prefixes than the maps hold)" : "");
	} else {
		snprintf(err, errlen, "out of memory");
	}
	for (i = 0; i < BPFSYNC_SET_MAX; i++)
		free(sets[i]);
	if (filled)
		nft_lists_free(&l);
	return ret;
}

static void apply_time_record(struct agent *a, uint64_t us)
{
	double s = us / 1e6;
	int i;

	a->applies_ok++;
	a->apply_sum_s += s;
	for (i = 0; i < APPLY_BUCKETS && s > apply_bounds[i]; i++)
		;
	a->apply_hist[i]++;
}

/*
 * Compile the effective policy and hand it to every enforcer, all or
 * nothing: nftables first (the only step that can fail), then the DNS
 * proxy. On failure the previous policy stays in force everywhere.
 */
static int apply_policy(struct agent *a, const char *why, char *err,
			size_t errlen)
{
	uint64_t t0 = clock_us();
	struct policy_matcher *m;
	int ret;

	m = policy_matcher_new(a->policy, a->always[0].rules, a->always[0].n,
			       a->always[1].rules, a->always[1].n);
	if (!m) {
		ret = -errno;
		snprintf(err, errlen, "cannot compile the policy: %s",
			 strerror(-ret));
		log_errorx("policy: %s", err);
		a->applies_failed++;
		return ret;
	}
	/* BPF first: its only failures (full maps, no memory) leave the
	 * active slot untouched, and nftables is the step that can fail. */
	ret = 0;
	if (a->bpf)
		ret = bpf_apply(a, a->generation + 1, err, errlen);
	if (!ret && a->nft && !strcmp(a->nft_state, "on"))
		ret = nft_apply(a, m, err, errlen);
	if (ret) {
		log_emit(LOG_LVL_ERROR, "policy",
			 json_pack("{s:s, s:s, s:s}", "result", "failed",
				   "trigger", why, "error", err));
		policy_matcher_free(m);
		a->applies_failed++;
		return ret;
	}
	if (a->proxy) {
		dnsproxy_set_matcher(a->proxy, m);
		dnsproxy_set_addr_rules(a->proxy, a->policy,
					a->always[0].rules, a->always[0].n,
					a->always[1].rules, a->always[1].n);
	}
	policy_matcher_free(a->matcher);
	a->matcher = m;
	a->generation++;
	log_emit(LOG_LVL_INFO, "policy",
		 json_pack("{s:s, s:s, s:I, s:s, s:i, s:i, s:i, s:s}",
			   "result", "applied", "trigger", why, "generation",
			   (json_int_t)a->generation, "source",
			   a->policy_source, "rules", (int)a->policy->n_rules,
			   "denyAlways", (int)a->always[0].n, "allowAlways",
			   (int)a->always[1].n, "defaultAction",
			   a->policy->default_action == POLICY_ALLOW ?
				   "allow" : "deny"));
	apply_time_record(a, clock_us() - t0);
	return 0;
}

/*
 * After a failed apply the caller has put the previous policy back: the
 * DNS proxy and nftables never left it, but the BPF maps may hold the
 * new one (they are written first), so write the previous one again.
 */
static void apply_rollback(struct agent *a)
{
	char err[512];

	if (a->bpf && bpf_apply(a, a->generation, err, sizeof(err)))
		log_errorx("policy: cannot restore the previous policy in the BPF maps: %s",
			   err);
}

/*
 * Write the user policy to OPENSANDBOX_EGRESS_POLICY_FILE atomically: a
 * temporary file in the same directory, fsync, rename, fsync of the
 * directory. A crash leaves the old file or the new one, never half of
 * one. Same format as the peer: 2-space indented JSON and a newline.
 */
static int persist_policy(struct agent *a, char *err, size_t errlen)
{
	const char *path = a->cfg.policy_file;
	char tmp[PATH_MAX + 16], dir[PATH_MAX];
	struct stat st;
	json_t *j;
	char *text = NULL, *slash;
	size_t len, off = 0;
	int fd = -1, dfd, ret = 0;

	if (!path)
		return 0;
	j = policy_to_json(a->policy);
	if (j)
		text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text) {
		snprintf(err, errlen, "failed to persist policy: out of memory");
		return -ENOMEM;
	}
	len = strlen(text);
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	/* Keep the mode of an existing file, 0600 otherwise. */
	if (fchmod(fd, stat(path, &st) ? 0600 : (st.st_mode & 07777)) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_unlink;
		}
		off += w;
	}
	if (text[len - 1] != '\n' && write(fd, "\n", 1) != 1) {
		ret = -EIO;
		goto out_unlink;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		ret = -errno;
		fd = -1;
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	goto out;
out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	if (ret)
		snprintf(err, errlen, "failed to persist policy to %s: %s", path,
			 strerror(-ret));
	free(text);
	return ret;
}

static bool op_ready(void *arg)
{
	return ((struct agent *)arg)->ready;
}

static const struct policy *op_policy(void *arg)
{
	return ((struct agent *)arg)->policy;
}

static enum egressd_mode effective_mode(const struct agent *a)
{
	return !strcmp(a->nft_state, "on") ? a->cfg.mode : EGRESSD_MODE_DNS;
}

static const char *op_enforcement_mode(void *arg)
{
	return config_mode_name(effective_mode(arg));
}

/*
 * A new user policy from the API: applied everywhere or nowhere, then
 * persisted; if it cannot be persisted the previous policy comes back, so
 * the file and what is enforced never disagree.
 */
static int op_replace(void *arg, struct policy *p, char *err, size_t errlen)
{
	struct agent *a = arg;
	struct policy *old = a->policy;
	const char *old_src = a->policy_source;
	char err2[512];
	int ret;

	if (check_ipv6_rules(a, p->rules, p->n_rules, "", true, err, errlen))
		return -EINVAL;
	a->policy = p;
	a->policy_source = "api";
	ret = apply_policy(a, "api", err, errlen);
	if (!ret) {
		ret = persist_policy(a, err, errlen);
		if (!ret) {
			policy_free(old);
			return 0;
		}
		a->policy = old;
		a->policy_source = old_src;
		if (apply_policy(a, "api-rollback", err2, sizeof(err2)))
			log_errorx("policy: cannot restore the previous policy: %s",
				   err2);
		return ret;
	}
	a->policy = old;
	a->policy_source = old_src;
	apply_rollback(a);
	return ret;
}

static json_t *coverage_json(const struct agent *a);
static const char *agent_cgroup_name(const struct agent *a);
static json_t *exemption_json(const struct agent *a);

static json_t *layers_json(const struct agent *a)
{
	json_t *l, *b;

	l = json_pack("{s:{s:s, s:s}, s:{s:s, s:s*}, s:{s:s, s:s*}}", "dns",
		      "state", "on", "redirect", a->dns_redirect, "nft",
		      "state", a->nft_state, "why",
		      a->nft_why[0] ? a->nft_why : NULL, "bpf", "state",
		      a->bpf_state, "why", a->bpf_why[0] ? a->bpf_why : NULL);
	/* Do the programs skip other namespaces' packets (kernel 6.15+)? */
	b = l ? json_object_get(l, "bpf") : NULL;
	if (b && a->bpf)
		json_object_set_new(b, "netnsGuard",
				    json_boolean(bpfsync_filters_netns(a->bpf)));
	b = l ? json_object_get(l, "nft") : NULL;
	if (b)
		json_object_set_new(b, "frames",
				    json_pack("{s:s, s:s, s:s*}", "state",
					      a->frames_state, "interfaces",
					      a->frames_ifs, "why",
					      a->frames_why[0] ? a->frames_why :
								 NULL));
	return l;
}

/*
 * The programs on the cgroups egressd attaches to (the workload cgroup
 * and, for the DNS redirect, the cgroup2 root): with check, list them in
 * the log and detach stale ones of other egressd runs (attached.h);
 * otherwise the /status "attached" array.
 */
static json_t *attached_run(struct agent *a, bool check)
{
	/* The BPF attach cgroup: the skb and the DNS redirect programs. */
	const char *cgs[1] = { a->workload.dir };
	uint32_t ours[32];
	char names[32][BPFSYNC_NAME_LEN];
	struct attached_scope s = { .cgroups = cgs,
				    .n_cgroups = a->has_attach ? 1 : 0,
				    .ours = ours, .our_names = names };

	if (a->bpf) {
		s.n_ours = bpfsync_prog_ids(a->bpf, ours, names, 32);
		s.own_pin_dir = bpfsync_pin_dir(a->bpf);
	}
	if (check) {
		int ret = attached_check(&s);

		if (ret < 0)
			log_warnx("cannot list the programs attached to %s: %s",
				  a->workload.dir, strerror(-ret));
		return NULL;
	}
	return attached_json(&s);
}

static json_t *op_status(void *arg)
{
	struct agent *a = arg;
	struct dnsproxy_upstream_stats us;
	struct dnsproxy_stats ds;
	json_t *ups = json_array(), *viol = json_object(), *st, *attached;
	size_t v4 = 0, v6 = 0;
	int i;

	if (a->nft)
		nftsync_learned_counts(a->nft, loop_clock_ms(), &v4, &v6);
	for (i = 0; dnsproxy_get_upstream(a->proxy, i, &us); i++)
		json_array_append_new(
			ups, json_pack("{s:s, s:b, s:I, s:I, s:I}", "addr",
				       us.addr, "healthy", us.healthy,
				       "queries", (json_int_t)us.queries,
				       "timeouts", (json_int_t)us.timeouts,
				       "errors", (json_int_t)us.errors));
	for (i = 0; i < EVENTS_REASON_MAX; i++)
		json_object_set_new(
			viol, events_reason_name(i),
			json_integer((json_int_t)(events_count("dns", i) +
						  events_count("packet", i))));
	dnsproxy_get_stats(a->proxy, &ds);
	st = json_pack(
		"{s:s, s:I, s:s, s:s, s:s, s:o, s:{s:I, s:i, s:i, s:i, s:s, s:s}, s:{s:i, s:i}, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}}",
		"version", EGRESSD_VERSION, "uptime_s",
		(json_int_t)((clock_us() - a->start_us) / 1000000), "mode",
		config_mode_name(effective_mode(a)), "requestedMode",
		config_mode_name(a->cfg.mode), "ipv6",
		a->cfg.ipv6 == EGRESSD_IPV6_DENY ? "deny" : "allow", "layers",
		layers_json(a), "policy", "generation",
		(json_int_t)a->generation, "rules", (int)a->policy->n_rules,
		"denyAlways", (int)a->always[0].n, "allowAlways",
		(int)a->always[1].n, "defaultAction",
		a->policy->default_action == POLICY_ALLOW ? "allow" : "deny",
		"source", a->policy_source, "learned", "v4", (int)v4, "v6",
		(int)v6, "upstreams", ups, "violations", viol, "dns",
		"queries", (json_int_t)ds.queries, "allowed",
		(json_int_t)ds.allowed, "denied", (json_int_t)ds.denied,
		"servfail", (json_int_t)ds.servfail, "malformed",
		(json_int_t)ds.malformed);
	if (!st)
		return NULL;
	json_object_set_new(st, "coverage", coverage_json(a));
	json_object_set_new(st, "exemption", exemption_json(a));
	/* What the layers say must still be in the kernel. */
	liveness_layers_verify(a->live, json_object_get(st, "layers"), a->nft,
			       a->bpf);
	attached = attached_run(a, false);
	json_object_set_new(st, "attached", attached ? attached : json_array());
	return st;
}

static int metrics_hist(struct api_buf *b, const char *name,
			const double *bounds, int n, const uint64_t *hist,
			double sum, const char *help)
{
	uint64_t cum = 0;
	int i, ret;

	ret = api_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name,
			     help, name);
	for (i = 0; i < n && !ret; i++) {
		cum += hist[i];
		ret = api_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
				     bounds[i], (unsigned long long)cum);
	}
	cum += hist[n];
	if (!ret)
		ret = api_buf_printf(b,
				     "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
				     name, (unsigned long long)cum, name, sum,
				     name, (unsigned long long)cum);
	return ret;
}

/* GET /metrics: Prometheus text exposition (docs/api.md). */
static int op_metrics(void *arg, struct api_buf *b)
{
	struct agent *a = arg;
	uint64_t bpfc[EGRESSD_CNT_MAX] = { 0 };
	struct nftsync_stats ns = { 0 };
	struct dnsproxy_stats ds;
	uint64_t dropped = 0;
	size_t v4 = 0, v6 = 0;
	int i, ret = 0;

	dnsproxy_get_stats(a->proxy, &ds);
	if (a->nft) {
		nftsync_learned_counts(a->nft, loop_clock_ms(), &v4, &v6);
		nftsync_get_stats(a->nft, &ns);
	}
	if (a->bpf && !bpfsync_read_counters(a->bpf, bpfc))
		dropped += bpfc[EGRESSD_CNT_RINGBUF_DROPS];
	if (a->nflog)
		dropped += nflog_lost(a->nflog);

	ret |= api_buf_printf(b,
		"# HELP egressd_build_info Build information.\n# TYPE egressd_build_info gauge\n"
		"egressd_build_info{version=\"%s\"} 1\n", EGRESSD_VERSION);
	ret |= api_buf_printf(b,
		"# HELP egressd_dns_queries_total DNS queries by outcome.\n# TYPE egressd_dns_queries_total counter\n"
		"egressd_dns_queries_total{result=\"allowed\"} %llu\n"
		"egressd_dns_queries_total{result=\"denied\"} %llu\n"
		"egressd_dns_queries_total{result=\"servfail\"} %llu\n"
		"egressd_dns_queries_total{result=\"malformed\"} %llu\n",
		(unsigned long long)ds.allowed, (unsigned long long)ds.denied,
		(unsigned long long)ds.servfail,
		(unsigned long long)ds.malformed);
	ret |= api_buf_printf(b,
		"# HELP egressd_dns_coalesced_total DNS queries that waited for an identical one in flight.\n"
		"# TYPE egressd_dns_coalesced_total counter\n"
		"egressd_dns_coalesced_total %llu\n"
		"# HELP egressd_dns_forged_answers_total Upstream answers dropped: they came in on lo from a remote upstream.\n"
		"# TYPE egressd_dns_forged_answers_total counter\n"
		"egressd_dns_forged_answers_total %llu\n",
		(unsigned long long)ds.coalesced,
		(unsigned long long)ds.forged);
	ret |= metrics_hist(b, "egressd_dns_upstream_seconds",
			    dnsproxy_rtt_bounds, DNSPROXY_RTT_BUCKETS,
			    ds.rtt_hist, ds.rtt_sum_s,
			    "Upstream DNS round trips of answered queries.");
	ret |= api_buf_printf(b,
		"# HELP egressd_violations_total Policy violations by layer and reason.\n"
		"# TYPE egressd_violations_total counter\n");
	for (i = 0; i < EVENTS_REASON_MAX; i++)
		ret |= api_buf_printf(b,
			"egressd_violations_total{layer=\"dns\",reason=\"%s\"} %llu\n"
			"egressd_violations_total{layer=\"packet\",reason=\"%s\"} %llu\n",
			events_reason_name(i),
			(unsigned long long)events_count("dns", i),
			events_reason_name(i),
			(unsigned long long)events_count("packet", i));
	ret |= api_buf_printf(b,
		"# HELP egressd_learned_addresses Addresses learned from allowed answers, alive.\n"
		"# TYPE egressd_learned_addresses gauge\n"
		"egressd_learned_addresses{family=\"4\"} %zu\n"
		"egressd_learned_addresses{family=\"6\"} %zu\n", v4, v6);
	ret |= api_buf_printf(b,
		"# HELP egressd_policy_applies_total Policy applies by result.\n"
		"# TYPE egressd_policy_applies_total counter\n"
		"egressd_policy_applies_total{result=\"ok\"} %llu\n"
		"egressd_policy_applies_total{result=\"failed\"} %llu\n",
		(unsigned long long)a->applies_ok,
		(unsigned long long)a->applies_failed);
	ret |= metrics_hist(b, "egressd_policy_apply_seconds", apply_bounds,
			    APPLY_BUCKETS, a->apply_hist, a->apply_sum_s,
			    "Time to apply a policy to every layer.");
	ret |= api_buf_printf(b,
		"# HELP egressd_sync_errors_total Batches a kernel layer refused.\n"
		"# TYPE egressd_sync_errors_total counter\n"
		"egressd_sync_errors_total{backend=\"nft\"} %llu\n"
		"egressd_sync_errors_total{backend=\"bpf\"} %llu\n",
		(unsigned long long)ns.batch_errors,
		(unsigned long long)a->bpf_errors);
	if (a->api) {
		struct api_stats as;

		api_get_stats(a->api, &as);
		/* Disjoint outcomes that sum to the total, no total among
		 * them (sum() over the family would count twice). */
		ret |= api_buf_printf(b,
			"# HELP egressd_api_requests_total Policy API requests by outcome.\n"
			"# TYPE egressd_api_requests_total counter\n"
			"egressd_api_requests_total{result=\"ok\"} %llu\n"
			"egressd_api_requests_total{result=\"unauthorized\"} %llu\n"
			"egressd_api_requests_total{result=\"error\"} %llu\n",
			as.requests > as.unauthorized + as.errors ?
				as.requests - as.unauthorized - as.errors : 0,
			as.unauthorized, as.errors);
	}
	{
		struct webhook_stats ws;

		webhook_get_stats(a->webhook, &ws);
		ret |= api_buf_printf(b,
			"# HELP egressd_webhook_total Deny webhook events by outcome.\n"
			"# TYPE egressd_webhook_total counter\n"
			"egressd_webhook_total{result=\"sent\"} %llu\n"
			"egressd_webhook_total{result=\"failed\"} %llu\n"
			"egressd_webhook_total{result=\"dropped\"} %llu\n"
			"egressd_webhook_total{result=\"folded\"} %llu\n"
			"# HELP egressd_webhook_retries_total Deny webhook attempts after the first.\n"
			"# TYPE egressd_webhook_retries_total counter\n"
			"egressd_webhook_retries_total %llu\n",
			(unsigned long long)ws.sent,
			(unsigned long long)ws.failed,
			(unsigned long long)ws.dropped,
			(unsigned long long)ws.folded,
			(unsigned long long)ws.retries);
	}
	ret |= api_buf_printf(b,
		"# HELP egressd_events_dropped_total Violation reports lost (ring buffer full, nflog overrun).\n"
		"# TYPE egressd_events_dropped_total counter\n"
		"egressd_events_dropped_total %llu\n"
		"# HELP egressd_log_dropped_total Log lines dropped because stdout did not keep up.\n"
		"# TYPE egressd_log_dropped_total counter\n"
		"egressd_log_dropped_total %llu\n",
		(unsigned long long)dropped,
		(unsigned long long)log_dropped_total());
	return ret ? -ENOMEM : 0;
}

static void always_timer_cb(struct loop *loop, struct loop_timer *t,
			    void *arg)
{
	struct policy_rule *nr[2] = { NULL, NULL }, *old[2];
	struct agent *a = arg;
	size_t nn[2] = { 0, 0 }, on[2];
	bool changed[2] = { false, false };
	char err[1024];
	int i, ret;

	for (i = 0; i < 2; i++) {
		ret = always_reload(a, &a->always[i], &nr[i], &nn[i], err,
				    sizeof(err));
		if (ret < 0)
			log_warnx("always rules not reloaded, previous rules stay: %s",
				  err);
		changed[i] = ret > 0;
	}
	if (changed[0] || changed[1]) {
		for (i = 0; i < 2; i++) {
			old[i] = a->always[i].rules;
			on[i] = a->always[i].n;
			if (changed[i]) {
				a->always[i].rules = nr[i];
				a->always[i].n = nn[i];
			}
		}
		ret = apply_policy(a, "always-rules", err, sizeof(err));
		for (i = 0; i < 2; i++) {
			if (!changed[i])
				continue;
			/* Keep the winner, free the loser. */
			if (ret) {
				a->always[i].rules = old[i];
				a->always[i].n = on[i];
				policy_rules_free(nr[i], nn[i]);
			} else {
				policy_rules_free(old[i], on[i]);
			}
		}
		if (ret)
			apply_rollback(a);
	}
	loop_timer_arm(t, ALWAYS_POLL_MS);
}

static void gc_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct agent *a = arg;

	nftsync_learned_gc(a->nft, loop_clock_ms());
	loop_timer_arm(t, LEARNED_GC_MS);
}

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					     0xff, 0xff };

/*
 * Every A/AAAA of an allowed answer is written to the learned sets before
 * the reply leaves; TTLs the client sees are lowered to the lifetime
 * egressd grants, so a client never caches an address longer than it is
 * reachable. A failed write answers SERVFAIL, never an unusable answer.
 */
static int answer_hook(void *arg, const char *qname,
		       const struct dnswire_response *r, uint8_t *msg,
		       size_t len)
{
	struct policy_addr addrs[DNSWIRE_MAX_ADDRS];
	bool fresh[DNSWIRE_MAX_ADDRS] = { false };
	struct agent *a = arg;
	bool nft_on = a->nft && nftsync_is_filtering(a->nft);
	uint64_t expires;
	char err[512];
	uint32_t ttl;
	size_t i, n = 0;
	int ret;

	if (!r->n_addrs || (!a->nft && !a->bpf))
		return 0;
	ttl = r->min_ttl;
	if (ttl < a->cfg.learn_ttl_min)
		ttl = a->cfg.learn_ttl_min;
	if (ttl > a->cfg.learn_ttl_max)
		ttl = a->cfg.learn_ttl_max;
	/* Only where an L3 layer holds the address does its lifetime bind
	 * the client's cache. */
	if ((nft_on || a->bpf) && dnswire_cap_ttls(msg, len, ttl))
		return -EBADMSG;
	for (i = 0; i < r->n_addrs; i++) {
		const struct dnswire_addr *d = &r->addrs[i];
		struct policy_addr *p = &addrs[n++];

		memset(p, 0, sizeof(*p));
		/* Bytes, not IN6_IS_ADDR_V4MAPPED: d->addr is at an odd
		 * offset, and the macro reads it as 32-bit words (UBSan). */
		if (d->family == AF_INET6 &&
		    !memcmp(d->addr, v4mapped_prefix, sizeof(v4mapped_prefix))) {
			/* ::ffff:a.b.c.d is reached as a.b.c.d. */
			p->family = AF_INET;
			p->prefixlen = 32;
			memcpy(p->addr, d->addr + 12, 4);
		} else if (d->family == AF_INET) {
			p->family = AF_INET;
			p->prefixlen = 32;
			memcpy(p->addr, d->addr, 4);
		} else {
			p->family = AF_INET6;
			p->prefixlen = 128;
			memcpy(p->addr, d->addr, 16);
		}
	}
	/*
	 * An address nftables' cache holds fresh is fresh in the BPF map as
	 * well (written together, same lifetime): no bpf() calls for it.
	 * Asked before anything is learned. BPF goes first, so that when it
	 * fails the cache stays as it was and the next answer writes again.
	 */
	if (a->bpf && a->nft)
		for (i = 0; i < n; i++)
			fresh[i] = nftsync_learn_is_fresh(
				a->nft, loop_clock_ms(), &addrs[i],
				ttl + a->cfg.learn_grace);
	if (a->bpf) {
		expires = bpfsync_now_ns() +
			  (uint64_t)(ttl + a->cfg.learn_grace) * NS_PER_S;
		for (i = 0; i < n; i++) {
			if (fresh[i])
				continue;
			ret = bpfsync_learn(a->bpf,
					    addrs[i].family == AF_INET6 ? 6 : 4,
					    addrs[i].addr, expires, 0,
					    (uint32_t)a->generation);
			if (ret) {
				log_warnx("cannot learn the addresses of %s into the BPF maps, answering SERVFAIL: %s",
					  qname, strerror(-ret));
				return ret;
			}
		}
	}
	/* In dns mode this only records the name for violation lines. */
	if (a->nft) {
		ret = nftsync_learn(a->nft, loop_clock_ms(), qname, addrs, n,
				    ttl + a->cfg.learn_grace, err,
				    sizeof(err));
		if (ret) {
			log_warnx("cannot learn the addresses of %s, answering SERVFAIL: %s",
				  qname, err);
			return ret;
		}
	}
	return 0;
}

/* Addresses of the DoH blocklist and of the upstreams, parsed once. */
static void prepare_addr_lists(struct agent *a)
{
	const char *const *builtin;
	struct policy_rule r;
	char *copy, *tok, *save = NULL;
	char err[256];
	size_t k, nb;
	int i;

	for (i = 0; i < a->cfg.n_upstreams; i++) {
		struct policy_addr pa;

		if (!nftsync_addr_from_sockaddr(
			    (struct sockaddr *)&a->cfg.upstreams[i].addr, &pa) &&
		    addr_push(&a->upstreams, &pa))
			die("out of memory");
	}
	builtin = doh_provider_addrs(&nb);
	for (k = 0; k < nb; k++) {
		memset(&r, 0, sizeof(r));
		if (!policy_parse_target(builtin[k], &r, err, sizeof(err)) &&
		    rule_is_ip(&r) && addr_push(&a->doh_all, &r.addr))
			die("out of memory");
		free(r.target);
		free(r.name);
	}
	if (!a->cfg.doh_blocklist)
		return;
	copy = strdup(a->cfg.doh_blocklist);
	if (!copy)
		die("out of memory");
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (!*tok)
			continue;
		memset(&r, 0, sizeof(r));
		if (policy_parse_target(tok, &r, err, sizeof(err)) ||
		    !rule_is_ip(&r)) {
			log_warnx("OPENSANDBOX_EGRESS_DOH_BLOCKLIST: ignoring \"%s\": not an IP address or CIDR",
				  tok);
		} else if (addr_push(&a->doh, &r.addr) ||
			   addr_push(&a->doh_all, &r.addr)) {
			die("out of memory");
		}
		free(r.target);
		free(r.name);
	}
	free(copy);
}

/* A violation the BPF program reported: one log line (folded again). */
static int bpf_event_cb(void *ctx, const struct egressd_event *e)
{
	struct agent *a = ctx;
	const char *domain = NULL;
	int af = e->family == 6 ? AF_INET6 : AF_INET;

	if (a->nft)
		domain = nftsync_learned_domain(a->nft, af, e->dst);
	events_packet_violation((enum events_reason)e->reason,
				e->family == 6 ? 6 : 4, e->proto, e->src,
				e->sport, e->dst, e->dport, domain,
				e->action == EGRESSD_ACTION_OBSERVE ? "observe" :
								      "drop",
				e->count ? e->count : 1);
	return 0;
}

static void bpf_events_ready(struct loop *loop, int fd, uint32_t events,
			     void *arg)
{
	struct agent *a = arg;

	bpfsync_events_consume(a->bpf);
}

/*
 * A bind refused by the bind guard is not a packet, so it has no violation
 * line: one warning per second in which some were, and at start those
 * since the pins were made (a squatter that tried while egressd was down).
 */
static void bind_guard_report(struct agent *a, bool start)
{
	uint64_t c[EGRESSD_CNT_MAX];

	if (bpfsync_read_counters(a->bpf, c) ||
	    c[EGRESSD_CNT_BIND_REFUSED] <= a->bind_refused)
		return;
	log_warnx("the bind guard refused %llu bind(s) to egressd's DNS or API port %s (a process of the sandbox tried to take them)",
		  (unsigned long long)(c[EGRESSD_CNT_BIND_REFUSED] -
				       a->bind_refused),
		  start ? "since its pins were made" : "in the last second");
	a->bind_refused = c[EGRESSD_CNT_BIND_REFUSED];
}

/* Expired learned entries leave the maps in bounded batches. */
static void bpf_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct agent *a = arg;
	bool done;
	int ret;

	ret = bpfsync_expire(a->bpf, bpfsync_now_ns(),
			     (uint64_t)a->cfg.learn_grace * NS_PER_S,
			     BPF_EXPIRE_BUDGET, &done);
	if (ret < 0)
		log_warnx("BPF learned map sweep failed: %s", strerror(-ret));
	bind_guard_report(a, false);
	loop_timer_arm(t, BPF_EXPIRE_MS);
}

/* Folded counts the program holds go out a window after their burst. */
static void fold_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct agent *a = arg;

	bpfsync_fold_drain(a->bpf, bpfsync_now_ns(), false);
	loop_timer_arm(t, BPF_FOLD_DRAIN_MS);
}

static void bpf_fail(struct agent *a, const char *what, int ret)
{
	snprintf(a->bpf_why, sizeof(a->bpf_why), "%s: %s%s", what,
		 strerror(-ret),
		 ret == -EBUSY ? " (another egressd holds the pin directory)" :
		 ret == -EXDEV ? " (the pin directory belongs to another network namespace)" :
		 ret == -EPERM ? " (needs CAP_BPF and CAP_NET_ADMIN)" :
		 ret == -ENOMEDIUM ? " (no bpffs at /sys/fs/bpf, and egressd may not mount one: mount the host's /sys/fs/bpf into the container)" :
		 ret == -ENOTSUP ? " (the pin directory is not on a bpffs)" : "");
	log_warnx("BPF layer unavailable (%s): %s", a->bpf_why,
		  a->cfg.mode == EGRESSD_MODE_DNS_NFT ?
			  "nftables enforces and reports drops alone" :
			  "packet violations are not observed");
	selfsock_set_map(a->early_socks_fd, 0);
	bpfsync_free(a->bpf);
	a->bpf = NULL;
	a->bpf_state = "unavailable";
}

/*
 * The BPF layer is off or unavailable in this run: programs and maps an
 * earlier run pinned would keep enforcing a policy nobody updates (and
 * hand DNS to the proxy on their own), so they are removed, with a line
 * saying so. Another egressd holding the directory keeps it.
 */
static void bpf_remove_stale(struct agent *a)
{
	const char *dir = a->cfg.bpf_pin_dir ? a->cfg.bpf_pin_dir :
					       BPFSYNC_DEFAULT_PIN_DIR;
	uint64_t owner;
	int ret;

	if (access(dir, F_OK))
		return;
	/* Another sandbox's pins (a shared pin dir) are not ours to remove. */
	if (bpfsync_pins_owner(dir, &owner, NULL) == 1) {
		log_warnx("BPF pins in %s belong to another network namespace (netns cookie %llu): left alone",
			  dir, (unsigned long long)owner);
		return;
	}
	ret = bpfsync_cleanup(dir);
	if (ret)
		log_warnx("BPF pins of an earlier run in %s could not be removed: %s",
			  dir, strerror(-ret));
	else
		log_info("BPF programs and maps of an earlier run removed from %s (BPF is %s in this run)",
			 dir, a->bpf_state);
}

/*
 * Bring up the BPF layer: load (reusing compatible pins), program the
 * maps, attach to the workload cgroup (or swap into the pinned link), and
 * read the ring buffer in the loop. In dns mode it only observes: it
 * reports what dns+nft would drop. Failure degrades with one warning.
 */
static void bpf_start(struct agent *a)
{
	struct bpfsync_config bc = { 0 };
	char err[1024];
	int ret;

	if (a->cfg.bpf_mode == EGRESSD_BPF_OFF) {
		a->bpf_state = "off";
		return;
	}
	if (!a->has_attach) {
		/* Nothing safe to attach to: nftables covers the namespace. */
		snprintf(a->bpf_why, sizeof(a->bpf_why), "%s", a->attach_how);
		log_warnx("BPF layer not attached (%s): %s", a->attach_how,
			  a->cfg.mode == EGRESSD_MODE_DNS_NFT ?
				  "nftables judges every packet of the namespace" :
				  "packet violations are not observed");
		a->bpf_state = "unavailable";
		return;
	}
	if (!a->cg.level_known) {
		/* The programs exempt egressd by its cgroup at an absolute
		 * level, which this private cgroup namespace hides. */
		snprintf(a->bpf_why, sizeof(a->bpf_why),
			 "the level of egressd's cgroup in the host's hierarchy is unknown: set OPENSANDBOX_EGRESS_HOST_CGROUP2");
		log_warnx("BPF layer not attached (%s)", a->bpf_why);
		a->bpf_state = "unavailable";
		return;
	}
	ret = bpfsync_open(&a->bpf, a->cfg.bpf_pin_dir);
	if (ret) {
		a->bpf = NULL;
		bpf_fail(a, "cannot load the BPF program", ret);
		return;
	}
	/* At the host's root the programs run for every namespace of the
	 * node: only with the netns cookie to tell ours apart. */
	if (!a->workload.level && !bpfsync_filters_netns(a->bpf)) {
		bpf_fail(a,
			 "the attach point is the host's root cgroup, and this kernel's cgroup_skb programs cannot compare the netns cookie (6.15+); set OPENSANDBOX_EGRESS_CGROUP to the sandbox's cgroup",
			 -EOPNOTSUPP);
		return;
	}
	bc.observe = a->cfg.bpf_mode == EGRESSD_BPF_OBSERVE ||
		     a->cfg.mode == EGRESSD_MODE_DNS;
	bc.agent_cgid = a->cg.id;
	bc.agent_level = a->cg.level;
	if (a->api_port && a->api_cg.level_known) {
		bc.api_port = a->api_port;
		bc.api_cgid = a->api_cg.id;
		bc.api_level = a->api_cg.level;
	}
	/* egressd's sockets, noted since start, exempt from now on */
	ret = selfsock_set_map(bpfsync_agent_socks_fd(a->bpf), 1);
	if (!ret)
		ret = bpfsync_set_config(a->bpf, &bc);
	if (ret) {
		bpf_fail(a, "cannot configure the BPF maps", ret);
		return;
	}
	ret = bpf_apply(a, a->generation, err, sizeof(err));
	if (ret) {
		bpf_fail(a, "cannot fill the BPF maps", ret);
		return;
	}
	ret = bpfsync_attach(a->bpf, a->workload.dir);
	if (ret) {
		bpf_fail(a, "cannot attach to the workload cgroup", ret);
		return;
	}
	/*
	 * The port-53 redirect by sock_addr programs at the same cgroup,
	 * without nat (which turns conntrack on for every packet). Processes
	 * outside it are redirected by nftables (coverage).
	 */
	ret = bpfsync_redirect_attach(a->bpf, a->workload.dir,
				      a->cfg.dns_listen_port);
	if (ret)
		log_warnx("the BPF DNS redirect cannot be attached at %s (%s): nftables redirects port 53 (nat)",
			  a->workload.dir, strerror(-ret));
	else
		a->bpf_redirect = true;
	/* egressd's ports stay egressd's while it is down (class 8). */
	ret = bpfsync_guard_attach(a->bpf, a->workload.dir,
				   a->cfg.dns_listen_port, a->api_port);
	if (ret)
		log_warnx("the BPF bind guard cannot be attached at %s (%s): while egressd is down, a process of the sandbox can bind its DNS and API ports",
			  a->workload.dir, strerror(-ret));
	else
		bind_guard_report(a, true);
	ret = bpfsync_events_open(a->bpf, bpf_event_cb, a);
	if (!ret)
		ret = loop_add_fd(a->loop, bpfsync_events_fd(a->bpf), EPOLLIN,
				  bpf_events_ready, a);
	if (ret)
		log_warnx("BPF violations are enforced but not reported: %s",
			  strerror(-ret));
	else if ((a->fold_timer = loop_timer_new(a->loop, fold_timer_cb, a)))
		loop_timer_arm(a->fold_timer, BPF_FOLD_DRAIN_MS);
	a->bpf_timer = loop_timer_new(a->loop, bpf_timer_cb, a);
	if (!a->bpf_timer)
		die("out of memory");
	loop_timer_arm(a->bpf_timer, BPF_EXPIRE_MS);
	a->bpf_state = bc.observe ? "observe" : "enforce";
	if (bc.observe && a->cfg.mode == EGRESSD_MODE_DNS &&
	    a->cfg.bpf_mode == EGRESSD_BPF_ENFORCE)
		snprintf(a->bpf_why, sizeof(a->bpf_why),
			 "mode dns: reports what dns+nft would drop");
}

/* Who redirects port 53, in the words of /status. */
static void dns_redirect_update(struct agent *a)
{
	bool nat = a->nft && strcmp(a->nft_state, "unavailable");

	if (a->bpf_redirect && (a->cov == COVERAGE_NAMESPACE || !nat))
		a->dns_redirect = "bpf";
	else if (a->bpf_redirect)
		a->dns_redirect = "bpf+nft";
	else
		a->dns_redirect = nat ? "nft" : "none";
}

/* What judges the processes BPF does not cover, for /status. */
static void coverage_describe(struct agent *a)
{
	bool nft = a->nft && strcmp(a->nft_state, "unavailable");
	bool filter = nft && a->cfg.mode == EGRESSD_MODE_DNS_NFT;

	switch (a->cov) {
	case COVERAGE_NAMESPACE:
		snprintf(a->cov_rest, sizeof(a->cov_rest),
			 "nothing else: every socket of the namespace is below the attach cgroup (no nftables chain, no nat)");
		break;
	case COVERAGE_PARTIAL:
		snprintf(a->cov_rest, sizeof(a->cov_rest), "%s",
			 filter ? "nftables judges every other process of the namespace (chain egress hands the attach cgroup to BPF) and redirects its DNS (nat)" :
			 nft ? "nftables redirects the DNS of every other process of the namespace (nat); mode dns: their packets are not judged" :
			       "nothing: nftables is unavailable, processes outside the attach cgroup are not covered");
		break;
	default:
		snprintf(a->cov_rest, sizeof(a->cov_rest), "%s",
			 filter ? "nftables judges every packet of the namespace and redirects its DNS (nat)" :
			 nft ? "nftables redirects the namespace's DNS (nat); mode dns: packets are not judged" :
			       "nothing: neither BPF nor nftables is available, only queries sent to the proxy directly are filtered");
		break;
	}
}

/* Coverage lost: nftables takes the processes outside the attach cgroup
 * (hand-off chain, nat redirect). Never undone while egressd runs. */
static void coverage_lost(struct agent *a, const char *what)
{
	char err[1024];

	a->cov = COVERAGE_PARTIAL;
	snprintf(a->cov_how, sizeof(a->cov_how), "%s", what);
	loop_timer_free(a->cov_timer);
	a->cov_timer = NULL;
	dns_redirect_update(a);
	coverage_describe(a);
	log_warnx("%s: BPF no longer covers the whole namespace; %s", what,
		  a->cov_rest);
	if (!strcmp(a->nft_state, "on"))
		a->nft_why[0] = '\0';
	if (a->nft && strcmp(a->nft_state, "unavailable") &&
	    nft_apply(a, a->matcher, err, sizeof(err)))
		log_errorx("nftables cannot take over the processes outside the BPF attach cgroup: %s",
			   err);
}

static void cov_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct agent *a = arg;
	char what[PATH_MAX + 128];
	uint64_t foreign;
	int ret;

	ret = coverage_scan(a->covscan, &foreign, NULL);
	if (!ret) {
		loop_timer_arm(t, COVERAGE_SCAN_MS);
		return;
	}
	if (ret == 1) {
		a->cov_foreign = foreign;
		snprintf(what, sizeof(what),
			 "a socket of cgroup id %llu is outside the BPF attach cgroup %s",
			 (unsigned long long)foreign,
			 a->workload.host_path[0] ? a->workload.host_path :
						    a->workload.dir);
	} else {
		snprintf(what, sizeof(what),
			 "the sockets' cgroups can no longer be read (%s)",
			 strerror(-ret));
	}
	coverage_lost(a, what);
}

/*
 * Does the BPF attach cgroup hold every socket of the namespace? At the
 * host's root (egressd in the host's cgroup namespace) it does by
 * construction; elsewhere a sock_diag scan says so now, and again every
 * second: the fast path ends within a second of a foreign socket.
 */
static void coverage_start(struct agent *a)
{
	char err[256], what[256];
	uint64_t foreign = 0;
	int ret;

	a->cov = COVERAGE_NONE;
	if (!a->bpf) {
		snprintf(a->cov_how, sizeof(a->cov_how), "BPF is %s",
			 a->bpf_state);
		return;
	}
	a->cov = COVERAGE_PARTIAL;
	if (!a->workload.level) {
		a->cov = COVERAGE_NAMESPACE;
		snprintf(a->cov_how, sizeof(a->cov_how),
			 "attached at the host's cgroup2 root (egressd shares the host's cgroup namespace); other namespaces are skipped by netns cookie");
		return;
	}
	ret = coverage_new(&a->covscan, a->workload.dir, a->workload.id,
			   a->cg.id, err, sizeof(err));
	if (!ret)
		ret = coverage_scan(a->covscan, &foreign, NULL);
	if (ret < 0) {
		snprintf(a->cov_how, sizeof(a->cov_how),
			 "the sockets' cgroups cannot be read (%s)",
			 a->covscan ? strerror(-ret) : err);
		return;
	}
	if (ret == 1) {
		a->cov_foreign = foreign;
		snprintf(what, sizeof(what),
			 "a socket of cgroup id %llu is outside the attach cgroup",
			 (unsigned long long)foreign);
		snprintf(a->cov_how, sizeof(a->cov_how), "%s", what);
		return;
	}
	a->cov = COVERAGE_NAMESPACE;
	snprintf(a->cov_how, sizeof(a->cov_how),
		 "every socket of the namespace is below the attach cgroup (sock_diag scan, repeated every second)");
	a->cov_timer = loop_timer_new(a->loop, cov_timer_cb, a);
	if (!a->cov_timer)
		die("out of memory");
	loop_timer_arm(a->cov_timer, COVERAGE_SCAN_MS);
}

/*
 * The API's port and who may reach it over loopback (issue 12, class 5):
 * egressd's cgroup, or, where egressd made a child of its container's
 * cgroup (a writable cgroupfs in a private cgroup namespace), the
 * container's: `docker exec … egressctl` lands there.
 */
static void api_setup(struct agent *a)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char why[128];
	bool any;

	if (!config_parse_listen_addr(a->cfg.http_addr, &ss, &sl, &any, why,
				      sizeof(why)))
		a->api_port = ntohs(ss.ss_family == AF_INET6 ?
				    ((struct sockaddr_in6 *)&ss)->sin6_port :
				    ((struct sockaddr_in *)&ss)->sin_port);
	a->api_cg = a->cg;
	if (a->view.agent_moved && a->view.private_ns && a->cg.level > 0 &&
	    a->view.mount_root_id > 1) {
		a->api_cg.id = a->view.mount_root_id;
		a->api_cg.level = a->cg.level - 1;
		a->api_cg.nft_ok = a->cg.nft_ok && a->cg.nft_level > 0;
		a->api_cg.nft_level = a->cg.nft_ok ? a->cg.nft_level - 1 : 0;
	}
}

/*
 * A foreign process in egressd's dedicated cgroup (issue 12, class 4; the
 * cgwatch callback): nftables stops exempting that cgroup, for good while
 * egressd runs (fail closed). BPF never exempted it: its exemption is by
 * socket.
 */
static void exempt_withdraw(void *arg, long pid, const char *what)
{
	struct agent *a = arg;
	char err[1024];

	a->agent_foreign = true;
	if (pid > 0 || !what)
		snprintf(a->exempt_why, sizeof(a->exempt_why),
			 "process %ld, not egressd, is in egressd's cgroup %s",
			 pid, agent_cgroup_name(a));
	else
		snprintf(a->exempt_why, sizeof(a->exempt_why), "%s %s", what,
			 agent_cgroup_name(a));
	log_warnx("%s: nftables no longer exempts that cgroup (fail closed): %s; restart egressd in a cgroup only it lives in",
		  a->exempt_why,
		  a->cov == COVERAGE_NAMESPACE ?
			  "BPF exempts egressd's own sockets only, so the intruder gets nothing" :
			  "the intruder's packets are judged like the workload's, and so are egressd's own new upstream flows and webhook calls (DNS answers SERVFAIL once its open upstream flows expire)");
	if (a->nft && strcmp(a->nft_state, "unavailable") &&
	    nft_apply(a, a->matcher, err, sizeof(err)))
		log_errorx("nftables cannot withdraw the agent exemption: %s",
			   err);
}

/*
 * Watch egressd's cgroup where it is one egressd has to itself
 * (agent/cgwatch.c). A read-only container cgroup egressd stays in is
 * shared by design with the tools exec'd into the container; the
 * workload, in a sibling cgroup namespace, cannot join it.
 */
static void exempt_start(struct agent *a)
{
	long pid;

	if (a->view.agent_shared) {
		snprintf(a->exempt_why, sizeof(a->exempt_why),
			 "egressd shares its container's read-only cgroup with the tools exec'd into the container; not watched");
		return;
	}
	pid = cgwatch_foreign_pid(a->cg.dir);
	if (pid > 0)
		exempt_withdraw(a, pid, NULL);
	else if (cgwatch_start(a->loop, a->cg.dir, EXEMPT_WATCH_MS,
			       exempt_withdraw, a, &a->exempt_watch))
		die("out of memory");
}

/* /status and start line: how egressd's own traffic is exempt. */
static json_t *exemption_json(const struct agent *a)
{
	bool nft = a->nft && strcmp(a->nft_state, "unavailable");

	return json_pack("{s:s*, s:s*, s:s*, s:I}", "bpf",
			 a->bpf ? "socket" : NULL, "nft",
			 !nft ? NULL : a->agent_foreign ? "withdrawn" : "cgroup",
			 "why", a->exempt_why[0] ? a->exempt_why : NULL,
			 "sockets", (json_int_t)selfsock_count());
}

static json_t *coverage_json(const struct agent *a)
{
	json_t *att = json_null();

	if (a->has_attach)
		att = json_pack("{s:s*, s:I, s:i}", "path",
				a->workload.host_path[0] ?
					a->workload.host_path : NULL,
				"id", (json_int_t)a->workload.id, "level",
				(int)a->workload.level);
	json_t *o;

	o = json_pack("{s:s, s:o, s:s, s:s, s:s}", "state",
		      coverage_state_name(a->cov), "attachCgroup", att,
		      "attach", a->attach_how, "how", a->cov_how, "rest",
		      a->cov_rest);
	if (o && a->cov_foreign)
		json_object_set_new(o, "foreignCgroupId",
				    json_integer((json_int_t)a->cov_foreign));
	return o;
}

/*
 * Bring up the nftables layer: the DNS redirect always, the filter in
 * dns+nft mode. Failure degrades to the DNS layer with one warning.
 */
static void nft_start(struct agent *a)
{
	char err[1024];
	int ret = 0;

	a->nft_state = "unavailable";
	/* Already open when the cgroup level probe needed it. */
	if (!a->nft)
		ret = nftsync_new(&a->nft, err, sizeof(err));
	if (!ret) {
		ret = nft_apply(a, a->matcher, err, sizeof(err));
		if (ret) {
			nftsync_free(a->nft);
			a->nft = NULL;
		}
	}
	if (ret) {
		snprintf(a->nft_why, sizeof(a->nft_why), "%s", err);
		if (a->bpf_redirect)
			log_warnx("nftables cannot be programmed (%s): only the DNS layer runs (port 53 is redirected by BPF%s)",
				  err, a->cov == COVERAGE_NAMESPACE ? "" :
				  " for the attach cgroup only");
		else
			log_warnx("nftables cannot be programmed (%s): only the DNS layer runs, and without the port-53 redirect it only sees queries sent to it directly",
				  err);
		return;
	}
	if (a->cfg.mode != EGRESSD_MODE_DNS_NFT) {
		bool v6off = a->cfg.ipv6 == EGRESSD_IPV6_DENY;
		bool bpf53 = a->bpf_redirect && a->cov == COVERAGE_NAMESPACE;

		a->nft_state = "off";
		snprintf(a->nft_why, sizeof(a->nft_why), "mode dns: only %s",
			 !bpf53 ? (v6off ? "the port-53 redirect and the IPv6-off rules are installed" :
					   "the port-53 redirect is installed") :
				  (v6off ? "the port-53 and IPv6-off rules are installed" :
					   "the port-53 rules are installed"));
		/* Their drops are reported like any nftables drop. */
		if (!v6off && !bpf53)
			return;
	} else {
		a->nft_state = "on";
		if (!strcmp(a->bpf_state, "enforce") &&
		    a->cov == COVERAGE_NAMESPACE &&
		    a->cfg.ipv6 != EGRESSD_IPV6_DENY)
			snprintf(a->nft_why, sizeof(a->nft_why),
				 "BPF judges every packet of the namespace: sets kept, chain egress not installed");
	}
	ret = nflog_open(&a->nflog, a->loop, NFTSYNC_DEFAULT_LOG_GROUP, a->nft,
			 err, sizeof(err));
	if (ret)
		log_warnx("packet drops are enforced but not reported: %s", err);
	if (a->cfg.mode != EGRESSD_MODE_DNS_NFT)
		return;
	a->gc_timer = loop_timer_new(a->loop, gc_timer_cb, a);
	if (!a->gc_timer)
		die("out of memory");
	loop_timer_arm(a->gc_timer, LEARNED_GC_MS);
}

/*
 * Table netdev egressd follows the namespace's interfaces: a frame a
 * packet socket writes leaves through whichever interface it names, so
 * every interface needs its chain, and one that appears later (only
 * someone with CAP_NET_ADMIN can add one: the runtime, never the
 * workload) gets its chain within FRAMES_POLL_MS. The table is replaced
 * only when the list changed.
 */
static void frames_sync(struct agent *a)
{
	const char *names[NFTSYNC_NETDEV_MAX_IFS];
	char ifs[sizeof(a->frames_ifs)] = "", err[512];
	struct netns_link *l = NULL;
	size_t n = 0, k = 0, i;
	int ret;

	ret = netns_list_links(&l, &n);
	if (ret) {
		snprintf(err, sizeof(err), "cannot list interfaces: %s",
			 strerror(-ret));
		goto fail;
	}
	if (n > NFTSYNC_NETDEV_MAX_IFS && !a->frames_many) {
		log_warnx("the namespace has %zu interfaces: frames are judged on the first %d only",
			  n, NFTSYNC_NETDEV_MAX_IFS);
		a->frames_many = true;
	}
	for (i = 0; i < n && k < NFTSYNC_NETDEV_MAX_IFS; i++) {
		names[k++] = l[i].name;
		snprintf(ifs + strlen(ifs), sizeof(ifs) - strlen(ifs), "%s%s",
			 k > 1 ? "," : "", l[i].name);
	}
	if (!strcmp(a->frames_state, "on") && !strcmp(ifs, a->frames_ifs)) {
		free(l);
		return;
	}
	ret = nftsync_netdev_apply(a->nft, names, k, err, sizeof(err));
	free(l);
	if (ret)
		goto fail;
	if (strcmp(a->frames_state, "on") && a->frames_why[0])
		log_info("table netdev egressd installed: frames the IP stack did not route are dropped again");
	a->frames_state = "on";
	a->frames_why[0] = '\0';
	snprintf(a->frames_ifs, sizeof(a->frames_ifs), "%s", ifs);
	return;
fail:
	/* Once per change of reason: a kernel without the hook says so once. */
	if (strcmp(a->frames_why, err))
		log_warnx("frames sent around the IP stack (packet sockets) are not judged: %s",
			  err);
	a->frames_state = "unavailable";
	snprintf(a->frames_why, sizeof(a->frames_why), "%s", err);
}

static void frames_timer_cb(struct loop *loop, struct loop_timer *t,
			    void *arg)
{
	struct agent *a = arg;

	(void)loop;
	frames_sync(a);
	loop_timer_arm(t, FRAMES_POLL_MS);
}

/* In every mode where nftables can be programmed (docs/nftables.md). */
static void frames_start(struct agent *a)
{
	char err[512];
	int ret;

	a->frames_state = "off";
	if (!a->nft)
		return;
	frames_sync(a);
	if (!a->nflog) {
		ret = nflog_open(&a->nflog, a->loop, NFTSYNC_DEFAULT_LOG_GROUP,
				 a->nft, err, sizeof(err));
		if (ret)
			log_warnx("dropped frames are not reported: %s", err);
	}
	a->frames_timer = loop_timer_new(a->loop, frames_timer_cb, a);
	if (!a->frames_timer)
		die("out of memory");
	loop_timer_arm(a->frames_timer, FRAMES_POLL_MS);
}

static void signal_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;
	struct agent *a = arg;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			loop_stop(loop);
	}
	(void)a;
}

static void deny_webhook_hook(void *arg, const char *qname)
{
	webhook_dns_denied(arg, qname);
}

static void flush_hook(struct loop *loop, void *arg)
{
	log_flush();
}

/* egressd's cgroup as the host names it, else as egressd sees it. */
static const char *agent_cgroup_name(const struct agent *a)
{
	const char *rel = a->cg.dir + strlen(a->view.mount);

	return a->cg.host_path[0] ? a->cg.host_path : *rel ? rel : "/";
}

static void emit_start(struct agent *a)
{
	bool nft_on = !strcmp(a->nft_state, "on");
	json_t *ups = json_array(), *layers;
	int i;

	for (i = 0; i < a->cfg.n_upstreams; i++)
		json_array_append_new(ups, json_string(a->cfg.upstreams[i].text));
	layers = layers_json(a);
	log_emit(LOG_LVL_INFO, "start",
		 json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:i, s:s, s:I, s:i}",
			   "version", EGRESSD_VERSION, "mode",
			   config_mode_name(nft_on ? a->cfg.mode :
						     EGRESSD_MODE_DNS),
			   "requestedMode", config_mode_name(a->cfg.mode),
			   "layers", layers, "coverage", coverage_json(a),
			   "exemption", exemption_json(a),
			   "upstreams", ups, "ipv6",
			   a->cfg.ipv6 == EGRESSD_IPV6_DENY ? "deny" : "allow",
			   "dnsListenPort", a->cfg.dns_listen_port,
			   "agentCgroup", agent_cgroup_name(a),
			   "agentCgroupId", (json_int_t)a->cg.id, "pid",
			   (int)getpid()));
}

int main(int argc, char **argv)
{
	struct agent a = { .sigfd = -1, .start_us = clock_us(),
			   .early_socks_fd = -1 };
	char err[1024];
	sigset_t mask;
	int i, ret;

	a.always[0] = (struct always_file){ .name = "deny.always",
					    .action = POLICY_DENY };
	a.always[1] = (struct always_file){ .name = "allow.always",
					    .action = POLICY_ALLOW };

	ret = config_load(&a.cfg, argc, argv, err, sizeof(err));
	if (ret == 1)
		return EXIT_SUCCESS;
	if (ret < 0)
		die("%s", err);
	log_set_level(a.cfg.log_level);
	log_set_sandbox_id(a.cfg.sandbox_id); /* checked by config_load */

	if (a.cfg.check_host_network) {
		ret = netns_looks_like_host(err, sizeof(err));
		if (ret < 0)
			die("cannot list this namespace's interfaces: %s",
			    strerror(-ret));
		fprintf(stderr, "egressd: %s\n",
			ret ? err : "this namespace does not look like the host's");
		config_fini(&a.cfg);
		return ret ? EXIT_FAILURE : EXIT_SUCCESS;
	}

	if (a.cfg.cleanup) {
		const char *pdir = a.cfg.bpf_pin_dir ? a.cfg.bpf_pin_dir :
						       BPFSYNC_DEFAULT_PIN_DIR;
		int lock_fd;

		/* Nothing is removed while an egressd runs here. */
		lock_fd = liveness_cleanup_guard(a.cfg.bpf_pin_dir, err,
						 sizeof(err));
		if (lock_fd < 0 && lock_fd != -ENOENT)
			die("cleanup refused: %s", err);
		/* Only what egressd owns: its table and its pins. */
		ret = nftsync_new(&a.nft, err, sizeof(err));
		if (!ret)
			ret = nftsync_cleanup(a.nft, err, sizeof(err));
		nftsync_free(a.nft);
		if (ret)
			die("cleanup: %s", err);
		{
			uint64_t owner;

			/* Another sandbox's pins: not this namespace's to
			 * remove (its programs enforce there). */
			if (bpfsync_pins_owner(a.cfg.bpf_pin_dir, &owner,
					       NULL) == 1)
				die("removed table inet %s, but the pins in %s belong to another network namespace (netns cookie %llu): run --cleanup there, or remove the directory by hand if that sandbox is gone",
				    NFTSYNC_TABLE, pdir,
				    (unsigned long long)owner);
		}
		ret = lock_fd >= 0 ? bpfsync_cleanup_locked(a.cfg.bpf_pin_dir,
							    lock_fd) : 0;
		if (ret && ret != -ENOENT)
			die("cleanup of %s: %s", pdir,
			    strerror(-ret));
		fprintf(stderr, "egressd: removed table inet %s and the pins in %s\n",
			NFTSYNC_TABLE, pdir);
		config_fini(&a.cfg);
		return EXIT_SUCCESS;
	}

	/* Before anything is installed: never program the host's network. */
	ret = netns_looks_like_host(err, sizeof(err));
	if (ret < 0)
		die("cannot list this namespace's interfaces: %s",
		    strerror(-ret));
	if (ret && !a.cfg.allow_host_network)
		die("this network namespace looks like the host's (%s); egressd belongs in the sandbox's namespace. Set OPENSANDBOX_EGRESS_ALLOW_HOST_NETWORK=1 (--allow-host-network 1) if this is intended",
		    err);

	config_warn_unsupported(&a.cfg); /* settings egressd lacks */
	load_initial_policy(&a);
	if (check_ipv6_rules(&a, a.policy->rules, a.policy->n_rules,
			     a.policy_source[0] == 'f' ? "policy file: " :
							 "OPENSANDBOX_EGRESS_RULES: ",
			     true, err, sizeof(err)))
		die("%s", err);
	for (i = 0; i < 2; i++) {
		ret = always_reload(&a, &a.always[i], &a.always[i].rules,
				    &a.always[i].n, err, sizeof(err));
		if (ret < 0)
			die("always rules: %s", err);
	}

	ret = cgroup_setup(&a.cfg, &a.view, &a.cg, err, sizeof(err));
	if (ret)
		die("%s", err);
	if (a.view.private_ns) {
		uint32_t level;

		/*
		 * A private cgroup namespace hides how deep egressd's cgroup
		 * is, and kernels differ in how nft counts a rule's level
		 * there: ask the kernel itself.
		 */
		ret = nftsync_new(&a.nft, err, sizeof(err));
		if (!ret)
			ret = nftsync_probe_cgroup_level(a.nft, a.cg.id, &level,
							 err, sizeof(err));
		if (!ret)
			cgroup_apply_probe(&a.view, &a.cg, level);
		else if (!a.cg.level_known)
			die("egressd runs in a private cgroup namespace and cannot tell how deep its cgroup (id %llu) is (%s): it needs CAP_NET_ADMIN, or the host's cgroup2 mounted into the sidecar (OPENSANDBOX_EGRESS_HOST_CGROUP2)",
			    (unsigned long long)a.cg.id, err);
		else
			log_warnx("the nft cgroup level probe failed (%s): nftables rules count levels from the host's root",
				  err);
		if (ret) {
			a.cg.nft_level = a.cg.level;
			a.cg.nft_ok = true;
		}
	}
	ret = cgroup_attach_point(&a.cfg, &a.view, &a.cg, &a.workload,
				  a.attach_how, sizeof(a.attach_how), err,
				  sizeof(err));
	if (ret < 0)
		die("%s", err);
	a.has_attach = ret == 0;
	if (a.has_attach)
		cgroup_nft_level(&a.view, &a.workload);

	a.loop = loop_new();
	if (!a.loop)
		die("cannot create the event loop: %s", strerror(errno));
	/* Before anything is installed: --cleanup now sees us running. */
	if (liveness_hold(a.loop, &a.live))
		die("out of memory");
	if (events_init(a.loop) || log_attach_loop(a.loop))
		die("out of memory");
	loop_add_before_sleep(a.loop, flush_hook, &a);

	/* A shell starts background jobs with SIGINT ignored, and an ignored
	 * signal never reaches a signalfd: restore the defaults first. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	a.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a.sigfd < 0 || loop_add_fd(a.loop, a.sigfd, EPOLLIN, signal_cb, &a))
		die("cannot watch signals: %s", strerror(errno));

	/*
	 * The bind guard of an earlier run may still be attached (kill -9):
	 * egressd's sockets are written into its pinned map from the first
	 * one on, so that egressd gets its own ports back.
	 */
	a.early_socks_fd = bpfsync_agent_socks_pinned(a.cfg.bpf_pin_dir);
	if (a.early_socks_fd >= 0)
		selfsock_set_map(a.early_socks_fd, 1);
	api_setup(&a);
	ret = dnsproxy_new(a.loop, &a.cfg, &a.proxy, err, sizeof(err));
	if (ret)
		die("%s", err);
	dnsproxy_set_answer_hook(a.proxy, answer_hook, &a);
	dnsproxy_set_block_doh_names(a.proxy, true);
	dnsproxy_set_aaaa_nodata(a.proxy, a.cfg.ipv6 == EGRESSD_IPV6_DENY);
	prepare_addr_lists(&a);
	a.nft_state = "unavailable";
	a.frames_state = "off";
	a.bpf_state = "off";
	a.dns_redirect = "none";
	if (apply_policy(&a, "start", err, sizeof(err)))
		die("%s", err);
	/* BPF before nftables: the hand-off rule needs to know it enforces. */
	bpf_start(&a);
	if (!a.bpf)
		selfsock_set_map(-1, 0);
	if (a.early_socks_fd >= 0) {
		/* this run's map (or none) from now on */
		close(a.early_socks_fd);
		a.early_socks_fd = -1;
	}
	coverage_start(&a);
	exempt_start(&a);
	nft_start(&a);
	frames_start(&a);
	dns_redirect_update(&a);
	coverage_describe(&a);
	/* Now that nftables judges alone, what an earlier run left attached
	 * must go: it would go on judging with maps nobody updates. */
	if (!a.bpf)
		bpf_remove_stale(&a);
	/* Programs of other egressd runs would judge next to ours. */
	attached_run(&a, true);

	if (a.cfg.deny_webhook && a.cfg.deny_webhook[0]) {
		ret = webhook_new(a.loop, a.cfg.deny_webhook, a.cfg.sandbox_id,
				  &a.webhook, err, sizeof(err));
		if (ret)
			die("%s", err);
		events_set_dns_deny_hook(deny_webhook_hook, a.webhook);
	}

	a.always_timer = loop_timer_new(a.loop, always_timer_cb, &a);
	if (!a.always_timer)
		die("out of memory");
	loop_timer_arm(a.always_timer, ALWAYS_POLL_MS);

	{
		/* Static: the API may keep the pointer. */
		static struct api_ops ops = {
			.ready = op_ready,
			.policy = op_policy,
			.enforcement_mode = op_enforcement_mode,
			.replace = op_replace,
			.status = op_status,
			.metrics = op_metrics,
		};

		ops.arg = &a;
		ret = api_new(a.loop, a.cfg.http_addr, a.cfg.token,
			      a.cfg.max_rules, &ops, &a.api, err, sizeof(err));
		if (ret)
			die("%s", err);
	}
	a.ready = true;
	emit_start(&a);
	log_flush();

	ret = loop_run(a.loop);
	if (ret)
		log_errorx("event loop failed: %s", strerror(-ret));

	/* Held (folded) violation lines go out before the last line. */
	if (a.fold_timer) {
		bpfsync_events_consume(a.bpf);
		bpfsync_fold_drain(a.bpf, bpfsync_now_ns(), true);
	}
	events_fini();
	log_emit(LOG_LVL_INFO, "stop", json_pack("{s:s}", "reason", "signal"));
	log_flush();
	api_free(a.api);
	events_set_dns_deny_hook(NULL, NULL);
	webhook_free(a.webhook);
	liveness_free(a.live);
	dnsproxy_free(a.proxy);
	/* The table stays: the sandbox remains protected (fail closed). */
	nflog_close(a.nflog);
	nftsync_free(a.nft);
	/* The pins and the link stay: the program keeps enforcing. */
	if (a.bpf)
		loop_del_fd(a.loop, bpfsync_events_fd(a.bpf));
	bpfsync_free(a.bpf);
	loop_timer_free(a.bpf_timer);
	loop_timer_free(a.cov_timer);
	cgwatch_free(a.exempt_watch);
	selfsock_set_map(-1, 0);
	selfsock_fini();
	coverage_free(a.covscan);
	loop_timer_free(a.fold_timer);
	free(a.doh_all.v);
	loop_timer_free(a.gc_timer);
	loop_timer_free(a.frames_timer);
	free(a.doh.v);
	free(a.upstreams.v);
	policy_matcher_free(a.matcher);
	policy_free(a.policy);
	for (i = 0; i < 2; i++)
		policy_rules_free(a.always[i].rules, a.always[i].n);
	loop_timer_free(a.always_timer);
	close(a.sigfd);
	log_close(1000); /* a stalled log reader delays the exit 1 s at most */
	loop_free(a.loop);
	config_fini(&a.cfg);
	return ret ? EXIT_FAILURE : EXIT_SUCCESS;
}
