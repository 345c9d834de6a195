// SPDX-License-Identifier: GPL-2.0-only
/*
 * The agent's life cycle and the ideas every layer depends on: the order
 * of start-up (policy, egressd's cgroup, loop, DNS proxy, BPF, coverage,
 * nftables, frames, API), the all-or-nothing apply of a policy and its
 * rollback, the coverage model (does BPF judge the whole namespace, and
 * who takes over when it stops doing so) and egressd's own exemption.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <netinet/in.h>

#include "egressd/agent.h"
#include "egressd/api.h"
#include "egressd/attached.h"
#include "egressd/bpfsync.h"
#include "egressd/cgwatch.h"
#include "egressd/compiled.h"
#include "egressd/dnsproxy.h"
#include "egressd/events.h"
#include "egressd/learned.h"
#include "egressd/liveness.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/netns.h"
#include "egressd/nflog.h"
#include "egressd/persist.h"
#include "egressd/selfsock.h"
#include "egressd/util.h"
#include "egressd/webhook.h"

#define COVERAGE_SCAN_MS 1000
#define EXEMPT_WATCH_MS 1000

const double agent_apply_bounds[AGENT_APPLY_BUCKETS] = {
	0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
};

static const char *const nft_state_names[] = {
	[AGENT_NFT_UNAVAILABLE] = "unavailable",
	[AGENT_NFT_OFF] = "off",
	[AGENT_NFT_ON] = "on",
};

static const char *const frames_state_names[] = {
	[AGENT_FRAMES_OFF] = "off",
	[AGENT_FRAMES_ON] = "on",
	[AGENT_FRAMES_UNAVAILABLE] = "unavailable",
};

static const char *const bpf_state_names[] = {
	[AGENT_BPF_OFF] = "off",
	[AGENT_BPF_ENFORCE] = "enforce",
	[AGENT_BPF_OBSERVE] = "observe",
	[AGENT_BPF_UNAVAILABLE] = "unavailable",
};

static const char *const dns_redirect_names[] = {
	[AGENT_REDIRECT_NONE] = "none",
	[AGENT_REDIRECT_BPF] = "bpf",
	[AGENT_REDIRECT_BPF_NFT] = "bpf+nft",
	[AGENT_REDIRECT_NFT] = "nft",
};

#define NAME_OF(table, i)                                             \
	((size_t)(i) < sizeof(table) / sizeof(table[0]) && table[i] ? \
		 table[i] :                                           \
		 "?")

const char *agent_nft_state_name(enum agent_nft_state s)
{
	return NAME_OF(nft_state_names, s);
}

const char *agent_frames_state_name(enum agent_frames_state s)
{
	return NAME_OF(frames_state_names, s);
}

const char *agent_bpf_state_name(enum agent_bpf_state s)
{
	return NAME_OF(bpf_state_names, s);
}

const char *agent_dns_redirect_name(enum agent_dns_redirect r)
{
	return NAME_OF(dns_redirect_names, r);
}

bool agent_nft_up(const struct agent *a)
{
	return a->nft && a->nft_state != AGENT_NFT_UNAVAILABLE;
}

static void apply_time_record(struct agent *a, uint64_t us)
{
	double s = us / 1e6;
	int i;

	a->applies_ok++;
	a->apply_sum_s += s;
	for (i = 0; i < AGENT_APPLY_BUCKETS && s > agent_apply_bounds[i]; i++)
		;
	a->apply_hist[i]++;
}

/* The settings do not change while egressd runs: said once, at start. */
static void warn_ignored(const struct policy_compiled *pc)
{
	const char *const *ign;
	size_t i, n;

	ign = policy_compiled_ignored(pc, &n);
	for (i = 0; i < n; i++)
		log_warnx(
			"OPENSANDBOX_EGRESS_DOH_BLOCKLIST: ignoring \"%s\": not an IP address or CIDR",
			ign[i]);
}

/*
 * Compile the effective policy (one struct policy_compiled) and hand its
 * projections to every enforcer, all or nothing: the BPF maps first, then nftables, then the DNS proxy (which
 * cannot fail). When nftables refuses, the BPF maps already hold the new
 * policy: the caller puts the previous policy back and calls
 * agent_apply_rollback(), so the previous one is in force everywhere.
 */
int agent_apply_policy(struct agent *a, const char *why, char *err,
		       size_t errlen)
{
	uint64_t t0 = util_clock_us();
	struct policy_compiled *pc;
	struct policy_addr *rv = NULL;
	size_t nrv = 0;
	int ret;

	ret = policy_compiled_new(&pc, a->policy, a->always[0].rules,
				  a->always[0].n, a->always[1].rules,
				  a->always[1].n, a->cfg, err, errlen);
	if (ret) {
		log_errorx("policy: cannot compile the policy: %s", err);
		a->applies_failed++;
		return ret;
	}
	if (!a->compiled)
		warn_ignored(pc);
	/* Learned addresses of names the new policy no longer allows. */
	ret = agent_learned_revoked(a, policy_compiled_matcher(pc), &rv, &nrv);
	if (ret)
		snprintf(err, errlen, "out of memory");
	/* BPF first: its only failures (full maps, no memory) leave the
	 * active slot untouched, so nothing needs undoing when it fails. */
	if (!ret && a->bpf)
		ret = agent_bpf_apply(a, pc, a->generation + 1, err, errlen);
	if (!ret && a->nft && a->nft_state == AGENT_NFT_ON)
		ret = agent_nft_apply(a, pc, rv, nrv, err, errlen);
	if (ret) {
		log_emit(LOG_LVL_ERROR, "policy",
			 json_pack("{s:s, s:s, s:s}", "result", "failed",
				   "trigger", why, "error", err));
		policy_compiled_free(pc);
		free(rv);
		a->applies_failed++;
		return ret;
	}
	agent_learned_revoke(a, rv, nrv);
	free(rv);
	if (a->proxy) {
		dnsproxy_set_matcher(a->proxy, policy_compiled_matcher(pc));
		dnsproxy_set_addr_rules(a->proxy, a->policy, a->always[0].rules,
					a->always[0].n, a->always[1].rules,
					a->always[1].n);
	}
	policy_compiled_free(a->compiled);
	a->compiled = pc;
	a->generation++;
	log_emit(LOG_LVL_INFO, "policy",
		 json_pack("{s:s, s:s, s:I, s:s, s:i, s:i, s:i, s:s}", "result",
			   "applied", "trigger", why, "generation",
			   (json_int_t)a->generation, "source",
			   a->policy_source, "rules", (int)a->policy->n_rules,
			   "denyAlways", (int)a->always[0].n, "allowAlways",
			   (int)a->always[1].n, "defaultAction",
			   a->policy->default_action == POLICY_ALLOW ? "allow" :
								       "deny"));
	apply_time_record(a, util_clock_us() - t0);
	return 0;
}

/*
 * After a failed apply the caller has put the previous policy back: the
 * DNS proxy and nftables never left it, but the BPF maps may hold the
 * new one (they are written first), so write the previous compiled
 * policy, still the one in force, again.
 */
void agent_apply_rollback(struct agent *a)
{
	char err[512];

	if (a->bpf && a->compiled &&
	    agent_bpf_apply(a, a->compiled, a->generation, err, sizeof(err)))
		log_errorx(
			"policy: cannot restore the previous policy in the BPF maps: %s",
			err);
}

static bool op_ready(void *arg)
{
	return ((struct agent *)arg)->ready;
}

static const struct policy *op_policy(void *arg)
{
	return ((struct agent *)arg)->policy;
}

enum egressd_mode agent_effective_mode(const struct agent *a)
{
	return a->nft_state == AGENT_NFT_ON ? a->cfg->mode : EGRESSD_MODE_DNS;
}

static const char *op_enforcement_mode(void *arg)
{
	return config_mode_name(agent_effective_mode(arg));
}

/*
 * A new user policy: written to a temporary file next to the policy file,
 * applied everywhere or nowhere, then the file renamed into place. A
 * policy that cannot be written is never enforced; if the rename fails
 * the previous policy comes back, so the file and what is enforced never
 * disagree.
 */
int agent_replace_policy(struct agent *a, struct policy *p, const char *source,
			 char *err, size_t errlen)
{
	struct policy *old = a->policy;
	const char *old_src = a->policy_source;
	char err2[512], tmp[PATH_MAX + 16];
	int ret;

	if (agent_check_ipv6_rules(a, p->rules, p->n_rules, "", true, err,
				   errlen))
		return -EINVAL;
	ret = persist_prepare(a->cfg->policy_file, p, tmp, sizeof(tmp), err,
			      errlen);
	if (ret) {
		log_emit(LOG_LVL_ERROR, "policy",
			 json_pack("{s:s, s:s, s:s}", "result", "failed",
				   "trigger", source, "error", err));
		a->applies_failed++;
		return ret;
	}
	a->policy = p;
	a->policy_source = source;
	ret = agent_apply_policy(a, source, err, errlen);
	if (!ret) {
		ret = persist_commit(a->cfg->policy_file, tmp, err, errlen);
		if (!ret) {
			policy_free(old);
			return 0;
		}
		a->policy = old;
		a->policy_source = old_src;
		if (agent_apply_policy(a, "api-rollback", err2, sizeof(err2)))
			log_errorx(
				"policy: cannot restore the previous policy: %s",
				err2);
		return ret;
	}
	persist_abort(tmp);
	a->policy = old;
	a->policy_source = old_src;
	agent_apply_rollback(a);
	return ret;
}

static int op_replace(void *arg, struct policy *p, char *err, size_t errlen)
{
	return agent_replace_policy(arg, p, "api", err, errlen);
}

static json_t *op_status(void *arg)
{
	return status_json(arg);
}

static int op_metrics(void *arg, struct api_buf *b)
{
	return status_metrics(arg, b);
}

/* What judges the processes BPF does not cover, for /status. */
void agent_coverage_describe(struct agent *a)
{
	bool nft = agent_nft_up(a);
	bool filter = nft && a->cfg->mode == EGRESSD_MODE_DNS_NFT;

	switch (a->cov.state) {
	case COVERAGE_NAMESPACE:
		snprintf(
			a->cov.rest, sizeof(a->cov.rest),
			"nothing else: every socket of the namespace is below the attach cgroup (no nftables chain, no nat)");
		break;
	case COVERAGE_PARTIAL:
		snprintf(
			a->cov.rest, sizeof(a->cov.rest), "%s",
			filter ?
				"nftables judges every other process of the namespace (chain egress hands the attach cgroup to BPF) and redirects its DNS (nat)" :
			nft ? "nftables redirects the DNS of every other process of the namespace (nat); mode dns: their packets are not judged" :
			      "nothing: nftables is unavailable, processes outside the attach cgroup are not covered");
		break;
	default:
		snprintf(
			a->cov.rest, sizeof(a->cov.rest), "%s",
			filter ?
				"nftables judges every packet of the namespace and redirects its DNS (nat)" :
			nft ? "nftables redirects the namespace's DNS (nat); mode dns: packets are not judged" :
			      "nothing: neither BPF nor nftables is available, only queries sent to the proxy directly are filtered");
		break;
	}
}

/* Coverage lost: nftables takes the processes outside the attach cgroup
 * (hand-off chain, nat redirect). Never undone while egressd runs. */
void agent_coverage_lost(struct agent *a, const char *what)
{
	char err[1024];

	a->cov.state = COVERAGE_PARTIAL;
	snprintf(a->cov.how, sizeof(a->cov.how), "%s", what);
	loop_timer_free(a->cov.timer);
	a->cov.timer = NULL;
	agent_dns_redirect_update(a);
	agent_coverage_describe(a);
	log_warnx("%s: BPF no longer covers the whole namespace; %s", what,
		  a->cov.rest);
	if (a->nft_state == AGENT_NFT_ON)
		a->nft_why[0] = '\0';
	if (agent_nft_up(a) &&
	    agent_nft_apply(a, a->compiled, NULL, 0, err, sizeof(err)))
		log_errorx(
			"nftables cannot take over the processes outside the BPF attach cgroup: %s",
			err);
}

static void cov_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct agent *a = arg;
	char what[PATH_MAX + 128];
	uint64_t foreign;
	int ret;

	ret = coverage_scan(a->cov.scan, &foreign, NULL);
	if (!ret) {
		loop_timer_arm(t, COVERAGE_SCAN_MS);
		return;
	}
	if (ret == 1) {
		a->cov.foreign = foreign;
		snprintf(
			what, sizeof(what),
			"a socket of cgroup id %llu is outside the BPF attach cgroup %s",
			(unsigned long long)foreign,
			a->workload.host_path[0] ? a->workload.host_path :
						   a->workload.dir);
	} else {
		snprintf(what, sizeof(what),
			 "the sockets' cgroups can no longer be read (%s)",
			 strerror(-ret));
	}
	agent_coverage_lost(a, what);
}

/*
 * Does the BPF attach cgroup hold every socket of the namespace? At the
 * host's root (egressd in the host's cgroup namespace) it does by
 * construction; elsewhere a sock_diag scan says so now, and again every
 * second: the fast path ends within a second of a foreign socket.
 */
static int coverage_start(struct agent *a, char *err, size_t errlen)
{
	char serr[256], what[256];
	uint64_t foreign = 0;
	int ret;

	a->cov.state = COVERAGE_NONE;
	if (!a->bpf) {
		snprintf(a->cov.how, sizeof(a->cov.how), "BPF is %s",
			 agent_bpf_state_name(a->bpf_state));
		return 0;
	}
	a->cov.state = COVERAGE_PARTIAL;
	if (!a->workload.level) {
		a->cov.state = COVERAGE_NAMESPACE;
		snprintf(
			a->cov.how, sizeof(a->cov.how),
			"attached at the host's cgroup2 root (egressd shares the host's cgroup namespace); other namespaces are skipped by netns cookie");
		return 0;
	}
	ret = coverage_new(&a->cov.scan, a->workload.dir, a->workload.id,
			   a->cg.id, serr, sizeof(serr));
	if (!ret)
		ret = coverage_scan(a->cov.scan, &foreign, NULL);
	if (ret < 0) {
		snprintf(a->cov.how, sizeof(a->cov.how),
			 "the sockets' cgroups cannot be read (%s)",
			 a->cov.scan ? strerror(-ret) : serr);
		return 0;
	}
	if (ret == 1) {
		a->cov.foreign = foreign;
		snprintf(
			what, sizeof(what),
			"a socket of cgroup id %llu is outside the attach cgroup",
			(unsigned long long)foreign);
		snprintf(a->cov.how, sizeof(a->cov.how), "%s", what);
		return 0;
	}
	a->cov.state = COVERAGE_NAMESPACE;
	snprintf(
		a->cov.how, sizeof(a->cov.how),
		"every socket of the namespace is below the attach cgroup (sock_diag scan, repeated every second)");
	a->cov.timer = loop_timer_new(a->loop, cov_timer_cb, a);
	if (!a->cov.timer)
		return util_err(err, errlen, -ENOMEM, "out of memory");
	loop_timer_arm(a->cov.timer, COVERAGE_SCAN_MS);
	return 0;
}

/*
 * The API's port and who may reach it over loopback: egressd's cgroup,
 * or, where egressd made a child of its container's cgroup (a writable
 * cgroupfs in a private cgroup namespace), the container's: `docker exec
 * … egressctl` lands there.
 */
static void api_setup(struct agent *a)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char why[128];
	bool any;

	if (!config_parse_listen_addr(a->cfg->http_addr, &ss, &sl, &any, why,
				      sizeof(why)))
		a->api_port =
			ntohs(ss.ss_family == AF_INET6 ?
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
 * A foreign process in egressd's dedicated cgroup (the cgwatch callback):
 * nftables stops exempting that cgroup, for good while egressd runs (fail
 * closed). BPF never exempted it: its exemption is by socket.
 */
static void exempt_withdraw(void *arg, long pid, const char *what)
{
	struct agent *a = arg;
	char err[1024];

	a->agent_foreign = true;
	/* Whatever the order the write and the scan came in, a write seen is
	 * said (the process may be gone already), and so is the pid found. */
	if (what && pid > 0)
		snprintf(a->exempt_why, sizeof(a->exempt_why),
			 "%s %s (process %ld found there)", what,
			 agent_cgroup_name(a), pid);
	else if (what)
		snprintf(a->exempt_why, sizeof(a->exempt_why), "%s %s", what,
			 agent_cgroup_name(a));
	else
		snprintf(a->exempt_why, sizeof(a->exempt_why),
			 "process %ld, not egressd, is in egressd's cgroup %s",
			 pid, agent_cgroup_name(a));
	log_warnx(
		"%s: nftables no longer exempts that cgroup (fail closed): %s; restart egressd in a cgroup only it lives in",
		a->exempt_why,
		a->cov.state == COVERAGE_NAMESPACE ?
			"BPF exempts egressd's own sockets only, so the intruder gets nothing" :
			"the intruder's packets are judged like the workload's, and so are egressd's own new upstream flows and webhook calls (DNS answers SERVFAIL once its open upstream flows expire)");
	if (agent_nft_up(a) &&
	    agent_nft_apply(a, a->compiled, NULL, 0, err, sizeof(err)))
		log_errorx("nftables cannot withdraw the agent exemption: %s",
			   err);
}

/*
 * Watch egressd's cgroup where it is one egressd has to itself
 * (agent/cgwatch.c). A read-only container cgroup egressd stays in is
 * shared by design with the tools exec'd into the container; the
 * workload, in a sibling cgroup namespace, cannot join it.
 */
static int exempt_start(struct agent *a, char *err, size_t errlen)
{
	long pid;

	if (a->view.agent_shared) {
		snprintf(
			a->exempt_why, sizeof(a->exempt_why),
			"egressd shares its container's read-only cgroup with the tools exec'd into the container; not watched");
		return 0;
	}
	pid = cgwatch_foreign_pid(a->cg.dir);
	if (pid > 0)
		exempt_withdraw(a, pid, NULL);
	else if (cgwatch_new(&a->exempt_watch, a->loop, a->cg.dir,
			     EXEMPT_WATCH_MS, exempt_withdraw, a))
		return util_err(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

static void signal_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;
	bool hup = false;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			loop_stop(loop);
		else if (si.ssi_signo == SIGHUP)
			hup = true;
	}
	/* Several SIGHUPs read at once: one reload does for all. */
	if (hup)
		agent_reload(arg, "sighup");
}

/*
 * SIGTERM and SIGINT stop the loop; SIGHUP reads the policy file and the
 * always-rules again. A shell starts background jobs with SIGINT
 * ignored, and an ignored signal never reaches a signalfd: the defaults
 * come back first.
 */
static int signals_start(struct agent *a, char *err, size_t errlen)
{
	sigset_t mask;

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	a->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a->sigfd < 0 ||
	    loop_add_fd(a->loop, a->sigfd, EPOLLIN, signal_cb, a))
		return util_err(err, errlen, -errno, "cannot watch signals: %s",
				strerror(errno));
	return 0;
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
const char *agent_cgroup_name(const struct agent *a)
{
	const char *rel = a->cg.dir + strlen(a->view.mount);

	return a->cg.host_path[0] ? a->cg.host_path : *rel ? rel : "/";
}

int agent_alloc(struct agent **out, const struct egressd_config *cfg)
{
	struct agent *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a || learned_new(&a->learned, cfg->learn_max, NULL, 0)) {
		free(a);
		return -ENOMEM;
	}
	a->cfg = cfg;
	a->sigfd = -1;
	a->early_socks_fd = -1;
	a->start_us = util_clock_us();
	a->bpf_ops = &agent_bpf_default_ops;
	a->always[0] = (struct agent_always_file){ .name = "deny.always",
						   .action = POLICY_DENY };
	a->always[1] = (struct agent_always_file){ .name = "allow.always",
						   .action = POLICY_ALLOW };
	a->nft_state = AGENT_NFT_UNAVAILABLE;
	a->frames_state = AGENT_FRAMES_OFF;
	a->bpf_state = AGENT_BPF_OFF;
	a->dns_redirect = AGENT_REDIRECT_NONE;
	*out = a;
	return 0;
}

int agent_cleanup(const struct egressd_config *cfg, char *err, size_t errlen)
{
	const char *pdir = cfg->bpf_pin_dir ? cfg->bpf_pin_dir :
					      BPFSYNC_DEFAULT_PIN_DIR;
	struct nftsync *nft = NULL;
	char why[1024];
	uint64_t owner;
	int lock_fd, ret;

	/* Nothing is removed while an egressd runs here. */
	lock_fd = liveness_cleanup_guard(cfg->bpf_pin_dir, why, sizeof(why));
	if (lock_fd < 0 && lock_fd != -ENOENT)
		return util_err(err, errlen, lock_fd, "cleanup refused: %s",
				why);
	/* Only what egressd owns: its table and its pins. */
	ret = nftsync_new(&nft, why, sizeof(why));
	if (!ret)
		ret = nftsync_cleanup(nft, why, sizeof(why));
	nftsync_free(nft);
	if (ret) {
		util_err(err, errlen, ret, "cleanup: %s", why);
		goto out;
	}
	/* Another sandbox's pins: not this namespace's to remove (its
	 * programs enforce there). */
	if (bpfsync_pins_owner(cfg->bpf_pin_dir, &owner, NULL) == 1) {
		ret = util_err(
			err, errlen, -EBUSY,
			"removed table inet %s, but the pins in %s belong to another network namespace (netns cookie %llu): run --cleanup there, or remove the directory by hand if that sandbox is gone",
			NFTSYNC_TABLE, pdir, (unsigned long long)owner);
		goto out;
	}
	ret = lock_fd >= 0 ? bpfsync_cleanup_locked(cfg->bpf_pin_dir, lock_fd) :
			     0;
	if (ret == -ENOENT)
		ret = 0;
	if (ret)
		util_err(err, errlen, ret, "cleanup of %s: %s", pdir,
			 strerror(-ret));
	else
		util_err(err, errlen, 0,
			 "removed table inet %s and the pins in %s",
			 NFTSYNC_TABLE, pdir);
	return ret;
out:
	if (lock_fd >= 0)
		close(lock_fd);
	return ret;
}

/*
 * A private cgroup namespace hides how deep egressd's cgroup is, and
 * kernels differ in how nft counts a rule's level there: ask the kernel
 * itself.
 */
static int cgroup_level_probe(struct agent *a, char *err, size_t errlen)
{
	char why[1024];
	uint32_t level;
	int ret;

	ret = nftsync_new(&a->nft, why, sizeof(why));
	if (!ret)
		ret = nftsync_probe_cgroup_level(a->nft, a->cg.id, &level, why,
						 sizeof(why));
	if (!ret) {
		cgroup_apply_probe(&a->view, &a->cg, level);
		return 0;
	}
	if (!a->cg.level_known)
		return util_err(
			err, errlen, ret,
			"egressd runs in a private cgroup namespace and cannot tell how deep its cgroup (id %llu) is (%s): it needs CAP_NET_ADMIN, or the host's cgroup2 mounted into the sidecar (OPENSANDBOX_EGRESS_HOST_CGROUP2)",
			(unsigned long long)a->cg.id, why);
	log_warnx(
		"the nft cgroup level probe failed (%s): nftables rules count levels from the host's root",
		why);
	a->cg.nft_level = a->cg.level;
	a->cg.nft_ok = true;
	return 0;
}

/* The policy and egressd's place in the cgroup tree, before the loop. */
static int start_policy_and_cgroups(struct agent *a, char *err, size_t errlen)
{
	char why[1024];
	int i, ret;

	/* Before anything is installed: never program the host's network. */
	ret = netns_looks_like_host(why, sizeof(why));
	if (ret < 0)
		return util_err(err, errlen, ret,
				"cannot list this namespace's interfaces: %s",
				strerror(-ret));
	if (ret && !a->cfg->allow_host_network)
		return util_err(
			err, errlen, -EPERM,
			"this network namespace looks like the host's (%s); egressd belongs in the sandbox's namespace. Set OPENSANDBOX_EGRESS_ALLOW_HOST_NETWORK=1 (--allow-host-network 1) if this is intended",
			why);

	config_warn_unsupported(a->cfg); /* settings egressd lacks */
	ret = agent_load_initial_policy(a, err, errlen);
	if (ret)
		return ret;
	ret = agent_check_ipv6_rules(a, a->policy->rules, a->policy->n_rules,
				     a->policy_source[0] == 'f' ?
					     "policy file: " :
					     "OPENSANDBOX_EGRESS_RULES: ",
				     true, err, errlen);
	if (ret)
		return ret;
	for (i = 0; i < 2; i++) {
		ret = agent_always_reload(a, &a->always[i], false,
					  &a->always[i].rules, &a->always[i].n,
					  why, sizeof(why));
		if (ret < 0)
			return util_err(err, errlen, ret, "always rules: %s",
					why);
	}

	ret = cgroup_setup(a->cfg, &a->view, &a->cg, err, errlen);
	if (ret)
		return ret;
	if (a->view.private_ns) {
		ret = cgroup_level_probe(a, err, errlen);
		if (ret)
			return ret;
	}
	ret = cgroup_attach_point(a->cfg, &a->view, &a->cg, &a->workload,
				  a->attach_how, sizeof(a->attach_how), err,
				  errlen);
	if (ret < 0)
		return ret;
	a->has_attach = ret == 0;
	if (a->has_attach)
		cgroup_nft_level(&a->view, &a->workload);
	return 0;
}

/*
 * The layers in order: the policy into the DNS proxy, BPF (before
 * nftables: the hand-off rule needs to know it enforces), the coverage
 * model, the exemption watch, nftables, table netdev.
 */
static int start_layers(struct agent *a, char *err, size_t errlen)
{
	int ret;

	ret = agent_apply_policy(a, "start", err, errlen);
	if (!ret)
		ret = agent_bpf_start(a, err, errlen);
	if (ret)
		return ret;
	if (!a->bpf)
		selfsock_set_map(-1, 0);
	if (a->early_socks_fd >= 0) {
		/* this run's map (or none) from now on */
		close(a->early_socks_fd);
		a->early_socks_fd = -1;
	}
	ret = coverage_start(a, err, errlen);
	if (!ret)
		ret = exempt_start(a, err, errlen);
	if (!ret)
		ret = agent_nft_start(a, err, errlen);
	if (!ret)
		ret = agent_frames_start(a, err, errlen);
	if (ret)
		return ret;
	agent_dns_redirect_update(a);
	agent_coverage_describe(a);
	/* Now that nftables judges alone, what an earlier run left attached
	 * must go: it would go on judging with maps nobody updates. */
	if (!a->bpf)
		agent_bpf_remove_stale(a);
	/* Programs of other egressd runs would judge next to ours. */
	status_attached(a, true);
	return 0;
}

int agent_new(struct agent **out, const struct egressd_config *cfg, char *err,
	      size_t errlen)
{
	/* Static: the API keeps the pointer. One agent per process. */
	static struct api_ops ops = {
		.ready = op_ready,
		.policy = op_policy,
		.enforcement_mode = op_enforcement_mode,
		.replace = op_replace,
		.status = op_status,
		.metrics = op_metrics,
	};
	struct agent *a;
	int ret;

	*out = NULL;
	ret = agent_alloc(&a, cfg);
	if (ret)
		return util_err(err, errlen, ret, "out of memory");
	ret = start_policy_and_cgroups(a, err, errlen);
	if (ret)
		goto fail;

	ret = loop_new(&a->loop);
	if (ret) {
		util_err(err, errlen, ret, "cannot create the event loop: %s",
			 strerror(-ret));
		goto fail;
	}
	/* Before anything is installed: --cleanup now sees us running. */
	if (liveness_hold(a->loop, &a->live) ||
	    events_new(&a->events, a->loop, err, errlen) ||
	    log_attach_loop(a->loop)) {
		ret = util_err(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	loop_add_before_sleep(a->loop, flush_hook, a);
	ret = signals_start(a, err, errlen);
	if (ret)
		goto fail;

	/*
	 * The bind guard of an earlier run may still be attached (kill -9):
	 * egressd's sockets are written into its pinned map from the first
	 * one on, so that egressd gets its own ports back.
	 */
	a->early_socks_fd = bpfsync_agent_socks_pinned(cfg->bpf_pin_dir);
	if (a->early_socks_fd >= 0)
		selfsock_set_map(a->early_socks_fd, 1);
	api_setup(a);
	ret = dnsproxy_new(&a->proxy, a->loop, cfg, err, errlen);
	if (ret)
		goto fail;
	dnsproxy_set_events(a->proxy, a->events);
	ret = agent_learned_start(a);
	if (ret) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	dnsproxy_set_answer_hook(a->proxy, agent_answer_hook, a);
	dnsproxy_set_block_doh_names(a->proxy, true);
	dnsproxy_set_aaaa_nodata(a->proxy, cfg->ipv6 == EGRESSD_IPV6_DENY);
	ret = start_layers(a, err, errlen);
	if (ret)
		goto fail;

	if (cfg->deny_webhook && cfg->deny_webhook[0]) {
		ret = webhook_new(&a->webhook, a->loop, cfg->deny_webhook,
				  cfg->sandbox_id, err, errlen);
		if (ret)
			goto fail;
		events_set_dns_deny_hook(a->events, deny_webhook_hook,
					 a->webhook);
	}
	ret = agent_sources_start(a);
	if (ret) {
		util_err(err, errlen, ret, "out of memory");
		goto fail;
	}
	ops.arg = a;
	ret = api_new(&a->api, a->loop, cfg->http_addr, cfg->token,
		      cfg->max_rules, &ops, err, errlen);
	if (ret)
		goto fail;
	a->ready = true;
	status_emit_start(a);
	log_flush();
	*out = a;
	return 0;
fail:
	agent_free(a);
	return ret;
}

int agent_run(struct agent *a)
{
	int ret;

	ret = loop_run(a->loop);
	if (ret)
		log_errorx("event loop failed: %s", strerror(-ret));

	/* Held (folded) violation lines go out before the last line. */
	if (a->fold_timer) {
		bpfsync_events_consume(a->bpf);
		bpfsync_fold_drain(a->bpf, util_clock_ns(), true);
	}
	events_flush(a->events);
	log_folded_flush();
	log_emit(LOG_LVL_INFO, "stop", json_pack("{s:s}", "reason", "signal"));
	log_flush();
	return ret;
}

void agent_free(struct agent *a)
{
	int i;

	if (!a)
		return;
	api_free(a->api);
	if (a->events)
		events_set_dns_deny_hook(a->events, NULL, NULL);
	webhook_free(a->webhook);
	liveness_free(a->live);
	dnsproxy_free(a->proxy);
	/* The table stays: the sandbox remains protected (fail closed). */
	nflog_free(a->nflog);
	nftsync_free(a->nft);
	/* The pins and the link stay: the program keeps enforcing. */
	if (a->bpf && a->loop)
		loop_del_fd(a->loop, bpfsync_events_fd(a->bpf));
	bpfsync_free(a->bpf);
	loop_timer_free(a->bpf_timer);
	loop_timer_free(a->cov.timer);
	cgwatch_free(a->exempt_watch);
	if (a->early_socks_fd >= 0)
		close(a->early_socks_fd);
	selfsock_set_map(-1, 0);
	selfsock_fini();
	coverage_free(a->cov.scan);
	loop_timer_free(a->fold_timer);
	loop_timer_free(a->gc_timer);
	learned_free(a->learned);
	loop_timer_free(a->frames_timer);
	policy_compiled_free(a->compiled);
	policy_free(a->policy);
	for (i = 0; i < 2; i++)
		policy_rules_free(a->always[i].rules, a->always[i].n);
	loop_timer_free(a->always_timer);
	if (a->sigfd >= 0)
		close(a->sigfd);
	if (a->loop) {
		events_free(a->events);
		log_close(1000); /* a stalled log reader delays 1 s at most */
		loop_free(a->loop);
	}
	free(a);
}
