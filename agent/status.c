// SPDX-License-Identifier: GPL-2.0-only
/*
 * What the agent says about itself: GET /status (layers, coverage,
 * exemption, policy, learned addresses, upstreams, counters), GET
 * /metrics (Prometheus text, docs/api.md) and the start line. Read-only
 * over struct agent.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "egressd/agent.h"
#include "egressd/api.h"
#include "egressd/attached.h"
#include "egressd/bpfsync.h"
#include "egressd/dnsproxy.h"
#include "egressd/events.h"
#include "egressd/learned.h"
#include "egressd/liveness.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/nflog.h"
#include "egressd/selfsock.h"
#include "egressd/util.h"
#include "egressd/webhook.h"

static json_t *exemption_json(const struct agent *a);
static json_t *coverage_json(const struct agent *a);

static json_t *layers_json(const struct agent *a)
{
	json_t *l, *b;

	l = json_pack("{s:{s:s, s:s}, s:{s:s, s:s*}, s:{s:s, s:s*}}", "dns",
		      "state", "on", "redirect",
		      agent_dns_redirect_name(a->dns_redirect), "nft", "state",
		      agent_nft_state_name(a->nft_state), "why",
		      a->nft_why[0] ? a->nft_why : NULL, "bpf", "state",
		      agent_bpf_state_name(a->bpf_state), "why",
		      a->bpf_why[0] ? a->bpf_why : NULL);
	/* Do the programs skip other namespaces' packets (kernel 6.15+)? */
	b = l ? json_object_get(l, "bpf") : NULL;
	if (b && a->bpf)
		json_object_set_new(
			b, "netnsGuard",
			json_boolean(bpfsync_filters_netns(a->bpf)));
	b = l ? json_object_get(l, "nft") : NULL;
	if (b)
		json_object_set_new(
			b, "frames",
			json_pack("{s:s, s:s, s:s*}", "state",
				  agent_frames_state_name(a->frames_state),
				  "interfaces", a->frames_ifs, "why",
				  a->frames_why[0] ? a->frames_why : NULL));
	return l;
}

/*
 * The programs on the cgroups egressd attaches to (the workload cgroup
 * and, for the DNS redirect, the cgroup2 root): with check, list them in
 * the log and detach stale ones of other egressd runs (attached.h);
 * otherwise the /status "attached" array.
 */
json_t *status_attached(struct agent *a, bool check)
{
	/* The BPF attach cgroup: the skb and the DNS redirect programs. */
	const char *cgs[1] = { a->workload.dir };
	uint32_t ours[32];
	char names[32][BPFSYNC_NAME_LEN];
	struct attached_scope s = { .cgroups = cgs,
				    .n_cgroups = a->has_attach ? 1 : 0,
				    .ours = ours,
				    .our_names = names };

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

json_t *status_json(struct agent *a)
{
	struct dnsproxy_upstream_stats us;
	struct dnsproxy_stats ds;
	json_t *ups = json_array(), *viol = json_object(), *st, *attached;
	size_t v4 = 0, v6 = 0;
	int i;

	learned_counts(a->learned, util_clock_ms(), &v4, &v6);
	for (i = 0; dnsproxy_get_upstream(a->proxy, i, &us); i++)
		json_array_append_new(
			ups,
			json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I}", "addr",
				  us.addr, "healthy", us.healthy, "queries",
				  (json_int_t)us.queries, "timeouts",
				  (json_int_t)us.timeouts, "errors",
				  (json_int_t)us.errors, "probes",
				  (json_int_t)us.probes, "probeFailures",
				  (json_int_t)us.probe_failures));
	for (i = 0; i < EVENTS_REASON_MAX; i++)
		json_object_set_new(
			viol, reason_name(i),
			json_integer(
				(json_int_t)(events_count(a->events, "dns", i) +
					     events_count(a->events, "packet",
							  i))));
	dnsproxy_get_stats(a->proxy, &ds);
	st = json_pack(
		"{s:s, s:I, s:s, s:s, s:s, s:o, s:{s:I, s:i, s:i, s:i, s:s, s:s}, s:{s:i, s:i}, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}}",
		"version", EGRESSD_VERSION, "uptime_s",
		(json_int_t)((util_clock_us() - a->start_us) / 1000000), "mode",
		config_mode_name(agent_effective_mode(a)), "requestedMode",
		config_mode_name(a->cfg->mode), "ipv6",
		a->cfg->ipv6 == EGRESSD_IPV6_DENY ? "deny" : "allow", "layers",
		layers_json(a), "policy", "generation",
		(json_int_t)a->generation, "rules", (int)a->policy->n_rules,
		"denyAlways", (int)a->always[0].n, "allowAlways",
		(int)a->always[1].n, "defaultAction",
		a->policy->default_action == POLICY_ALLOW ? "allow" : "deny",
		"source", a->policy_source, "learned", "v4", (int)v4, "v6",
		(int)v6, "upstreams", ups, "violations", viol, "dns", "queries",
		(json_int_t)ds.queries, "allowed", (json_int_t)ds.allowed,
		"denied", (json_int_t)ds.denied, "servfail",
		(json_int_t)ds.servfail, "malformed", (json_int_t)ds.malformed);
	if (!st)
		return NULL;
	json_object_set_new(st, "coverage", coverage_json(a));
	json_object_set_new(st, "exemption", exemption_json(a));
	/* What the layers say must still be in the kernel. */
	liveness_layers_verify(a->live, json_object_get(st, "layers"), a->nft,
			       a->bpf);
	attached = status_attached(a, false);
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
		ret = api_buf_printf(
			b,
			"%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
			name, (unsigned long long)cum, name, sum, name,
			(unsigned long long)cum);
	return ret;
}

/* GET /metrics: Prometheus text exposition (docs/api.md). */
int status_metrics(struct agent *a, struct api_buf *b)
{
	uint64_t bpfc[EGRESSD_CNT_MAX] = { 0 };
	struct nftsync_stats ns = { 0 };
	struct dnsproxy_upstream_stats us;
	struct bpfsync_learned_stats bls = { 0 };
	struct learned_stats ls;
	struct dnsproxy_stats ds;
	uint64_t dropped = 0;
	size_t v4 = 0, v6 = 0;
	int i, ret = 0;

	dnsproxy_get_stats(a->proxy, &ds);
	learned_counts(a->learned, util_clock_ms(), &v4, &v6);
	learned_get_stats(a->learned, &ls);
	if (a->bpf)
		bpfsync_get_learned_stats(a->bpf, &bls);
	if (a->nft)
		nftsync_get_stats(a->nft, &ns);
	if (a->bpf && !bpfsync_read_counters(a->bpf, bpfc))
		dropped += bpfc[EGRESSD_CNT_RINGBUF_DROPS];
	if (a->nflog)
		dropped += nflog_lost(a->nflog);

	ret |= api_buf_printf(
		b,
		"# HELP egressd_build_info Build information.\n# TYPE egressd_build_info gauge\n"
		"egressd_build_info{version=\"%s\"} 1\n",
		EGRESSD_VERSION);
	ret |= api_buf_printf(
		b,
		"# HELP egressd_dns_queries_total DNS queries by outcome.\n# TYPE egressd_dns_queries_total counter\n"
		"egressd_dns_queries_total{result=\"allowed\"} %llu\n"
		"egressd_dns_queries_total{result=\"denied\"} %llu\n"
		"egressd_dns_queries_total{result=\"servfail\"} %llu\n"
		"egressd_dns_queries_total{result=\"malformed\"} %llu\n",
		(unsigned long long)ds.allowed, (unsigned long long)ds.denied,
		(unsigned long long)ds.servfail,
		(unsigned long long)ds.malformed);
	ret |= api_buf_printf(
		b,
		"# HELP egressd_dns_coalesced_total DNS queries that waited for an identical one in flight.\n"
		"# TYPE egressd_dns_coalesced_total counter\n"
		"egressd_dns_coalesced_total %llu\n"
		"# HELP egressd_dns_forged_answers_total Upstream answers dropped: they came in on lo from a remote upstream; and ICMP errors for a remote upstream sent from an address of this namespace.\n"
		"# TYPE egressd_dns_forged_answers_total counter\n"
		"egressd_dns_forged_answers_total %llu\n"
		"# HELP egressd_dns_bad_answers_total Upstream packets dropped: unknown id (late or forged), wrong question or letter case, in on lo, or a forged ICMP error.\n"
		"# TYPE egressd_dns_bad_answers_total counter\n"
		"egressd_dns_bad_answers_total %llu\n",
		(unsigned long long)ds.coalesced, (unsigned long long)ds.forged,
		(unsigned long long)ds.bad_answers);
	ret |= api_buf_printf(
		b,
		"# HELP egressd_dns_upstream_healthy Whether an upstream answered its last query or probe (1) or is tried last (0).\n"
		"# TYPE egressd_dns_upstream_healthy gauge\n");
	for (i = 0; dnsproxy_get_upstream(a->proxy, i, &us); i++)
		ret |= api_buf_printf(
			b, "egressd_dns_upstream_healthy{upstream=\"%s\"} %d\n",
			us.addr, us.healthy ? 1 : 0);
	ret |= api_buf_printf(
		b,
		"# HELP egressd_dns_upstream_probes_total Health probes sent to an upstream, by outcome.\n"
		"# TYPE egressd_dns_upstream_probes_total counter\n");
	for (i = 0; dnsproxy_get_upstream(a->proxy, i, &us); i++)
		ret |= api_buf_printf(
			b,
			"egressd_dns_upstream_probes_total{upstream=\"%s\",result=\"answered\"} %llu\n"
			"egressd_dns_upstream_probes_total{upstream=\"%s\",result=\"failed\"} %llu\n",
			us.addr, (unsigned long long)us.probe_answers, us.addr,
			(unsigned long long)us.probe_failures);
	ret |= metrics_hist(b, "egressd_dns_upstream_seconds",
			    dnsproxy_rtt_bounds, DNSPROXY_RTT_BUCKETS,
			    ds.rtt_hist, ds.rtt_sum_s,
			    "Upstream DNS round trips of answered queries.");
	ret |= api_buf_printf(
		b,
		"# HELP egressd_violations_total Policy violations by layer and reason.\n"
		"# TYPE egressd_violations_total counter\n");
	for (i = 0; i < EVENTS_REASON_MAX; i++)
		ret |= api_buf_printf(
			b,
			"egressd_violations_total{layer=\"dns\",reason=\"%s\"} %llu\n"
			"egressd_violations_total{layer=\"packet\",reason=\"%s\"} %llu\n",
			reason_name(i),
			(unsigned long long)events_count(a->events, "dns", i),
			reason_name(i),
			(unsigned long long)events_count(a->events, "packet",
							 i));
	ret |= api_buf_printf(
		b,
		"# HELP egressd_learned_addresses Addresses learned from allowed answers, alive.\n"
		"# TYPE egressd_learned_addresses gauge\n"
		"egressd_learned_addresses{family=\"4\"} %zu\n"
		"egressd_learned_addresses{family=\"6\"} %zu\n",
		v4, v6);
	ret |= api_buf_printf(
		b,
		"# HELP egressd_learned_capacity Learned addresses held at most, per family (OPENSANDBOX_EGRESS_LEARN_MAX).\n"
		"# TYPE egressd_learned_capacity gauge\n"
		"egressd_learned_capacity %zu\n"
		"# HELP egressd_learned_failures_total Answers whose addresses could not all be learned, by what the client got.\n"
		"# TYPE egressd_learned_failures_total counter\n"
		"egressd_learned_failures_total{answer=\"servfail\"} %llu\n"
		"egressd_learned_failures_total{answer=\"sent\"} %llu\n"
		"# HELP egressd_learned_reclaimed_total Expired learned entries dropped early to make room.\n"
		"# TYPE egressd_learned_reclaimed_total counter\n"
		"egressd_learned_reclaimed_total{layer=\"registry\"} %llu\n"
		"egressd_learned_reclaimed_total{layer=\"bpf\"} %llu\n",
		learned_max(a->learned),
		(unsigned long long)a->learn_fail_servfail,
		(unsigned long long)a->learn_fail_sent,
		(unsigned long long)ls.reclaimed,
		(unsigned long long)bls.reclaimed);
	ret |= api_buf_printf(
		b,
		"# HELP egressd_policy_applies_total Policy applies by result.\n"
		"# TYPE egressd_policy_applies_total counter\n"
		"egressd_policy_applies_total{result=\"ok\"} %llu\n"
		"egressd_policy_applies_total{result=\"failed\"} %llu\n",
		(unsigned long long)a->applies_ok,
		(unsigned long long)a->applies_failed);
	ret |= metrics_hist(b, "egressd_policy_apply_seconds",
			    agent_apply_bounds, AGENT_APPLY_BUCKETS,
			    a->apply_hist, a->apply_sum_s,
			    "Time to apply a policy to every layer.");
	ret |= api_buf_printf(
		b,
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
		ret |= api_buf_printf(
			b,
			"# HELP egressd_api_requests_total Policy API requests by outcome.\n"
			"# TYPE egressd_api_requests_total counter\n"
			"egressd_api_requests_total{result=\"ok\"} %llu\n"
			"egressd_api_requests_total{result=\"unauthorized\"} %llu\n"
			"egressd_api_requests_total{result=\"error\"} %llu\n",
			as.requests > as.unauthorized + as.errors ?
				as.requests - as.unauthorized - as.errors :
				0,
			as.unauthorized, as.errors);
	}
	{
		struct webhook_stats ws;

		webhook_get_stats(a->webhook, &ws);
		ret |= api_buf_printf(
			b,
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
	ret |= api_buf_printf(
		b,
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

/* /status and start line: how egressd's own traffic is exempt. */
static json_t *exemption_json(const struct agent *a)
{
	bool nft = agent_nft_up(a);

	return json_pack("{s:s*, s:s*, s:s*, s:I}", "bpf",
			 a->bpf ? "socket" : NULL, "nft",
			 !nft		  ? NULL :
			 a->agent_foreign ? "withdrawn" :
					    "cgroup",
			 "why", a->exempt_why[0] ? a->exempt_why : NULL,
			 "sockets", (json_int_t)selfsock_count());
}

static json_t *coverage_json(const struct agent *a)
{
	json_t *att = json_null();

	if (a->has_attach)
		att = json_pack(
			"{s:s*, s:I, s:i}", "path",
			a->workload.host_path[0] ? a->workload.host_path : NULL,
			"id", (json_int_t)a->workload.id, "level",
			(int)a->workload.level);
	json_t *o;

	o = json_pack("{s:s, s:o, s:s, s:s, s:s}", "state",
		      coverage_state_name(a->cov.state), "attachCgroup", att,
		      "attach", a->attach_how, "how", a->cov.how, "rest",
		      a->cov.rest);
	if (o && a->cov.foreign)
		json_object_set_new(o, "foreignCgroupId",
				    json_integer((json_int_t)a->cov.foreign));
	return o;
}

void status_emit_start(struct agent *a)
{
	bool nft_on = a->nft_state == AGENT_NFT_ON;
	json_t *ups = json_array(), *layers;
	int i;

	for (i = 0; i < a->cfg->n_upstreams; i++)
		json_array_append_new(ups,
				      json_string(a->cfg->upstreams[i].text));
	layers = layers_json(a);
	log_emit(
		LOG_LVL_INFO, "start",
		json_pack(
			"{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:i, s:s, s:I, s:i}",
			"version", EGRESSD_VERSION, "mode",
			config_mode_name(nft_on ? a->cfg->mode :
						  EGRESSD_MODE_DNS),
			"requestedMode", config_mode_name(a->cfg->mode),
			"layers", layers, "coverage", coverage_json(a),
			"exemption", exemption_json(a), "upstreams", ups,
			"ipv6",
			a->cfg->ipv6 == EGRESSD_IPV6_DENY ? "deny" : "allow",
			"dnsListenPort", a->cfg->dns_listen_port, "agentCgroup",
			agent_cgroup_name(a), "agentCgroupId",
			(json_int_t)a->cg.id, "pid", (int)getpid()));
}
