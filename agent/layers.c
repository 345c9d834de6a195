// SPDX-License-Identifier: GPL-2.0-only
/*
 * Bring-up and fallback of each kernel layer: BPF (load or adopt pins,
 * fill the maps, attach, ring buffer and sweep timers), nftables (the
 * table, its log group) and table netdev egressd for
 * frames around the IP stack. A layer that cannot come up degrades with
 * one warning and a state word for /status; it never stops egressd.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egressd/agent.h"
#include "egressd/bpfsync.h"
#include "egressd/events.h"
#include "egressd/learned.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/netns.h"
#include "egressd/nflog.h"
#include "egressd/selfsock.h"
#include "egressd/util.h"

#define FRAMES_POLL_MS 1000 /* interfaces for table netdev egressd */
#define BPF_EXPIRE_MS 1000
#define BPF_EXPIRE_BUDGET 4096
#define BPF_FOLD_DRAIN_MS 250
#define NS_PER_S 1000000000ULL

/*
 * A violation the BPF program reported: one log line (folded again). The
 * map ABI spells the family 4/6 (shared.h); userspace speaks AF_*.
 */
static int bpf_event_cb(void *ctx, const struct egressd_event *e)
{
	struct agent *a = ctx;
	int af = e->family == 6 ? AF_INET6 : AF_INET;
	const char *domain = learned_domain_of(a->learned, af, e->dst);
	char rule[64];
	bool named;

	/* The program reports the rule id it matched (shared.h); a record
	 * drained from the fold map without one is looked up. */
	named = agent_rule_name(a, e->reason, af, e->dst, e->rule, rule,
				sizeof(rule));
	events_packet_violation_rule(
		a->events, (enum events_reason)e->reason, af, e->proto, e->src,
		e->sport, e->dst, e->dport, domain, named ? rule : NULL,
		e->action == EGRESSD_ACTION_OBSERVE ? "observe" : "drop",
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
	log_warnx(
		"the bind guard refused %llu bind(s) to egressd's DNS or API port %s (a process of the sandbox tried to take them)",
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

	ret = bpfsync_expire(a->bpf, util_clock_ns(), BPF_EXPIRE_BUDGET, &done);
	if (ret < 0)
		log_folded(LOG_LVL_WARN, "bpf_sweep",
			   "BPF learned map sweep failed: %s", strerror(-ret));
	bind_guard_report(a, false);
	loop_timer_arm(t, BPF_EXPIRE_MS);
}

/* Folded counts the program holds go out a window after their burst. */
static void fold_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct agent *a = arg;

	bpfsync_fold_drain(a->bpf, util_clock_ns(), false);
	loop_timer_arm(t, BPF_FOLD_DRAIN_MS);
}

static void bpf_fail(struct agent *a, const char *what, int ret)
{
	snprintf(
		a->bpf_why, sizeof(a->bpf_why), "%s: %s%s", what,
		strerror(-ret),
		ret == -EBUSY ?
			" (another egressd holds the pin directory)" :
		ret == -EXDEV ?
			" (the pin directory belongs to another network namespace)" :
		ret == -EPERM ?
			" (needs CAP_BPF and CAP_NET_ADMIN)" :
		ret == -ENOMEDIUM ?
			" (no bpffs at /sys/fs/bpf, and egressd may not mount one: mount the host's /sys/fs/bpf into the container)" :
		ret == -ENOTSUP ? " (the pin directory is not on a bpffs)" :
				  "");
	log_warnx("BPF layer unavailable (%s): %s", a->bpf_why,
		  a->cfg->mode == EGRESSD_MODE_DNS_NFT ?
			  "nftables enforces and reports drops alone" :
			  "packet violations are not observed");
	selfsock_set_map(a->early_socks_fd, 0);
	bpfsync_free(a->bpf);
	a->bpf = NULL;
	a->bpf_state = AGENT_BPF_UNAVAILABLE;
}

/*
 * The BPF layer is off or unavailable in this run: programs and maps an
 * earlier run pinned would keep enforcing a policy nobody updates (and
 * hand DNS to the proxy on their own), so they are removed, with a line
 * saying so. Another egressd holding the directory keeps it.
 */
void agent_bpf_remove_stale(struct agent *a)
{
	const char *dir = a->cfg->bpf_pin_dir ? a->cfg->bpf_pin_dir :
						BPFSYNC_DEFAULT_PIN_DIR;
	uint64_t owner;
	int ret;

	if (access(dir, F_OK))
		return;
	/* Another sandbox's pins (a shared pin dir) are not ours to remove. */
	if (bpfsync_pins_owner(dir, &owner, NULL) == 1) {
		log_warnx(
			"BPF pins in %s belong to another network namespace (netns cookie %llu): left alone",
			dir, (unsigned long long)owner);
		return;
	}
	ret = bpfsync_cleanup(dir);
	if (ret)
		log_warnx(
			"BPF pins of an earlier run in %s could not be removed: %s",
			dir, strerror(-ret));
	else
		log_info(
			"BPF programs and maps of an earlier run removed from %s (BPF is %s in this run)",
			dir, agent_bpf_state_name(a->bpf_state));
}

/*
 * Bring up the BPF layer: load (reusing compatible pins), program the
 * maps, attach to the workload cgroup (or swap into the pinned link), and
 * read the ring buffer in the loop. In dns mode it only observes: it
 * reports what dns+nft would drop. Failure degrades with one warning.
 */
int agent_bpf_start(struct agent *a, char *err, size_t errlen)
{
	struct bpfsync_config bc = { 0 };
	char aerr[1024];
	int ret;

	if (a->cfg->bpf_mode == EGRESSD_BPF_OFF) {
		a->bpf_state = AGENT_BPF_OFF;
		return 0;
	}
	if (!a->has_attach) {
		/* Nothing safe to attach to: nftables covers the namespace. */
		snprintf(a->bpf_why, sizeof(a->bpf_why), "%s", a->attach_how);
		log_warnx(
			"BPF layer not attached (%s): %s", a->attach_how,
			a->cfg->mode == EGRESSD_MODE_DNS_NFT ?
				"nftables judges every packet of the namespace" :
				"packet violations are not observed");
		a->bpf_state = AGENT_BPF_UNAVAILABLE;
		return 0;
	}
	if (!a->cg.level_known) {
		/* The programs exempt egressd by its cgroup at an absolute
		 * level, which this private cgroup namespace hides. */
		snprintf(
			a->bpf_why, sizeof(a->bpf_why),
			"the level of egressd's cgroup in the host's hierarchy is unknown: set OPENSANDBOX_EGRESS_HOST_CGROUP2");
		log_warnx("BPF layer not attached (%s)", a->bpf_why);
		a->bpf_state = AGENT_BPF_UNAVAILABLE;
		return 0;
	}
	ret = bpfsync_new(&a->bpf, a->cfg->bpf_pin_dir, a->cfg->learn_max);
	if (ret) {
		a->bpf = NULL;
		bpf_fail(a, "cannot load the BPF program", ret);
		return 0;
	}
	/* At the host's root the programs run for every namespace of the
	 * node: only with the netns cookie to tell ours apart. */
	if (!a->workload.level && !bpfsync_filters_netns(a->bpf)) {
		bpf_fail(
			a,
			"the attach point is the host's root cgroup, and this kernel's cgroup_skb programs cannot compare the netns cookie (6.15+); set OPENSANDBOX_EGRESS_CGROUP to the sandbox's cgroup",
			-EOPNOTSUPP);
		return 0;
	}
	bc.observe = a->cfg->bpf_mode == EGRESSD_BPF_OBSERVE ||
		     a->cfg->mode == EGRESSD_MODE_DNS;
	bc.learn_grace_ns = (uint64_t)a->cfg->learn_grace * NS_PER_S;
	/* The API port is kept from the workload in any case; its cgroup
	 * (egressctl by docker exec) passes only where its level is known. */
	bc.api_port = a->api_port;
	if (a->api_port && a->api_cg.level_known) {
		bc.api_cgid = a->api_cg.id;
		bc.api_level = a->api_cg.level;
	}
	/* egressd's sockets, noted since start, exempt from now on */
	ret = selfsock_set_map(bpfsync_agent_socks_fd(a->bpf), 1);
	if (!ret)
		ret = bpfsync_set_config(a->bpf, &bc);
	if (ret) {
		bpf_fail(a, "cannot configure the BPF maps", ret);
		return 0;
	}
	ret = agent_bpf_apply(a, a->compiled, a->generation, aerr,
			      sizeof(aerr));
	if (ret) {
		bpf_fail(a, "cannot fill the BPF maps", ret);
		return 0;
	}
	ret = bpfsync_attach(a->bpf, a->workload.dir);
	if (ret) {
		bpf_fail(a, "cannot attach to the workload cgroup", ret);
		return 0;
	}
	/*
	 * The port-53 redirect by sock_addr programs at the same cgroup,
	 * without nat (which turns conntrack on for every packet). Processes
	 * outside it are redirected by nftables (coverage).
	 */
	ret = bpfsync_redirect_attach(a->bpf, a->workload.dir,
				      a->cfg->dns_listen_port);
	if (ret)
		log_warnx(
			"the BPF DNS redirect cannot be attached at %s (%s): nftables redirects port 53 (nat)",
			a->workload.dir, strerror(-ret));
	else
		a->bpf_redirect = true;
	/* The bind guard: egressd's ports stay egressd's while it is down. */
	ret = bpfsync_guard_attach(a->bpf, a->workload.dir,
				   a->cfg->dns_listen_port);
	if (ret)
		log_warnx(
			"the BPF bind guard cannot be attached at %s (%s): while egressd is down, a process of the sandbox can bind its DNS and API ports",
			a->workload.dir, strerror(-ret));
	else
		bind_guard_report(a, true);
	ret = bpfsync_events_init(a->bpf, bpf_event_cb, a);
	if (!ret)
		ret = loop_add_fd(a->loop, bpfsync_events_fd(a->bpf), EPOLLIN,
				  bpf_events_ready, a);
	if (ret)
		log_warnx("BPF violations are enforced but not reported: %s",
			  strerror(-ret));
	else if ((a->fold_timer = loop_timer_new(a->loop, fold_timer_cb, a)))
		loop_timer_arm(a->fold_timer, BPF_FOLD_DRAIN_MS);
	bpfsync_set_extended_hook(a->bpf, agent_learned_extended, a);
	a->bpf_timer = loop_timer_new(a->loop, bpf_timer_cb, a);
	if (!a->bpf_timer)
		return util_err(err, errlen, -ENOMEM, "out of memory");
	loop_timer_arm(a->bpf_timer, BPF_EXPIRE_MS);
	a->bpf_state = bc.observe ? AGENT_BPF_OBSERVE : AGENT_BPF_ENFORCE;
	if (bc.observe && a->cfg->mode == EGRESSD_MODE_DNS &&
	    a->cfg->bpf_mode == EGRESSD_BPF_ENFORCE)
		snprintf(a->bpf_why, sizeof(a->bpf_why),
			 "mode dns: reports what dns+nft would drop");
	return 0;
}

/* Who redirects port 53, in the words of /status. */
void agent_dns_redirect_update(struct agent *a)
{
	bool nat = agent_nft_up(a);

	if (a->bpf_redirect && (a->cov.state == COVERAGE_NAMESPACE || !nat))
		a->dns_redirect = AGENT_REDIRECT_BPF;
	else if (a->bpf_redirect)
		a->dns_redirect = AGENT_REDIRECT_BPF_NFT;
	else
		a->dns_redirect = nat ? AGENT_REDIRECT_NFT :
					AGENT_REDIRECT_NONE;
}

/*
 * The log group nftables' drops come back on, as violation lines naming
 * their domain (the registry) and rule (the compiled policy); one for the
 * inet and the netdev table. 0 or -errno with err set.
 */
static int nflog_start(struct agent *a, char *err, size_t errlen)
{
	int ret = nflog_new(&a->nflog, a->loop, NFTSYNC_DEFAULT_LOG_GROUP,
			    a->learned, a->events, err, errlen);

	if (!ret)
		nflog_set_rule_hook(a->nflog, agent_nflog_rule, a);
	return ret;
}

/*
 * Bring up the nftables layer: the DNS redirect always, the filter in
 * dns+nft mode. Failure degrades to the DNS layer with one warning.
 */
int agent_nft_start(struct agent *a, char *err, size_t errlen)
{
	char nerr[1024];
	int ret = 0;

	a->nft_state = AGENT_NFT_UNAVAILABLE;
	/* Already open when the cgroup level probe needed it. */
	if (!a->nft)
		ret = nftsync_new(&a->nft, nerr, sizeof(nerr));
	if (!ret) {
		ret = agent_nft_apply(a, a->compiled, NULL, 0, nerr,
				      sizeof(nerr));
		if (ret) {
			nftsync_free(a->nft);
			a->nft = NULL;
		}
	}
	if (ret) {
		snprintf(a->nft_why, sizeof(a->nft_why), "%s", nerr);
		if (a->bpf_redirect)
			log_warnx(
				"nftables cannot be programmed (%s): only the DNS layer runs (port 53 is redirected by BPF%s)",
				nerr,
				a->cov.state == COVERAGE_NAMESPACE ?
					"" :
					" for the attach cgroup only");
		else
			log_warnx(
				"nftables cannot be programmed (%s): only the DNS layer runs, and without the port-53 redirect it only sees queries sent to it directly",
				nerr);
		return 0;
	}
	if (a->cfg->mode != EGRESSD_MODE_DNS_NFT) {
		bool v6off = a->cfg->ipv6 == EGRESSD_IPV6_DENY;
		bool bpf53 = a->bpf_redirect &&
			     a->cov.state == COVERAGE_NAMESPACE;

		a->nft_state = AGENT_NFT_OFF;
		snprintf(
			a->nft_why, sizeof(a->nft_why), "mode dns: only %s",
			!bpf53 ?
				(v6off ? "the port-53 redirect and the IPv6-off rules are installed" :
					 "the port-53 redirect is installed") :
				(v6off ? "the port-53 and IPv6-off rules are installed" :
					 "the port-53 rules are installed"));
		/* Their drops are reported like any nftables drop. */
		if (!v6off && !bpf53)
			return 0;
	} else {
		a->nft_state = AGENT_NFT_ON;
		if (a->bpf_state == AGENT_BPF_ENFORCE &&
		    a->cov.state == COVERAGE_NAMESPACE &&
		    a->cfg->ipv6 != EGRESSD_IPV6_DENY)
			snprintf(
				a->nft_why, sizeof(a->nft_why),
				"BPF judges every packet of the namespace: sets kept, chain egress not installed");
	}
	if (nflog_start(a, nerr, sizeof(nerr)))
		log_warnx("packet drops are enforced but not reported: %s",
			  nerr);
	return 0;
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
		log_warnx(
			"the namespace has %zu interfaces: frames are judged on the first %d only",
			n, NFTSYNC_NETDEV_MAX_IFS);
		a->frames_many = true;
	}
	for (i = 0; i < n && k < NFTSYNC_NETDEV_MAX_IFS; i++) {
		names[k++] = l[i].name;
		snprintf(ifs + strlen(ifs), sizeof(ifs) - strlen(ifs), "%s%s",
			 k > 1 ? "," : "", l[i].name);
	}
	if (a->frames_state == AGENT_FRAMES_ON && !strcmp(ifs, a->frames_ifs)) {
		free(l);
		return;
	}
	ret = nftsync_netdev_apply(a->nft, names, k, err, sizeof(err));
	free(l);
	if (ret)
		goto fail;
	if (a->frames_state != AGENT_FRAMES_ON && a->frames_why[0])
		log_info(
			"table netdev egressd installed: frames the IP stack did not route are dropped again");
	a->frames_state = AGENT_FRAMES_ON;
	a->frames_why[0] = '\0';
	snprintf(a->frames_ifs, sizeof(a->frames_ifs), "%s", ifs);
	return;
fail:
	/* Once per change of reason: a kernel without the hook says so once. */
	if (strcmp(a->frames_why, err))
		log_warnx(
			"frames sent around the IP stack (packet sockets) are not judged: %s",
			err);
	a->frames_state = AGENT_FRAMES_UNAVAILABLE;
	snprintf(a->frames_why, sizeof(a->frames_why), "%s", err);
}

static void frames_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct agent *a = arg;

	(void)loop;
	frames_sync(a);
	loop_timer_arm(t, FRAMES_POLL_MS);
}

/* In every mode where nftables can be programmed (docs/nftables.md). */
int agent_frames_start(struct agent *a, char *err, size_t errlen)
{
	char ferr[512];
	int ret;

	a->frames_state = AGENT_FRAMES_OFF;
	if (!a->nft)
		return 0;
	if (!a->cfg->frame_guard) {
		/* Off on purpose: no table, not even one an earlier run left. */
		snprintf(a->frames_why, sizeof(a->frames_why),
			 "OPENSANDBOX_EGRESS_FRAME_GUARD=0");
		ret = nftsync_netdev_apply(a->nft, NULL, 0, ferr, sizeof(ferr));
		if (ret)
			log_warnx("cannot remove table netdev egressd: %s",
				  ferr);
		log_warnx(
			"OPENSANDBOX_EGRESS_FRAME_GUARD=0: frames a packet socket writes around the IP stack are not judged; a process with CAP_NET_RAW can send them anywhere (drop CAP_NET_RAW from the app container; docs/security.md)");
		return 0;
	}
	frames_sync(a);
	if (!a->nflog && nflog_start(a, ferr, sizeof(ferr)))
		log_warnx("dropped frames are not reported: %s", ferr);
	a->frames_timer = loop_timer_new(a->loop, frames_timer_cb, a);
	if (!a->frames_timer)
		return util_err(err, errlen, -ENOMEM, "out of memory");
	loop_timer_arm(a->frames_timer, FRAMES_POLL_MS);
	return 0;
}
