// SPDX-License-Identifier: GPL-2.0-only
/*
 * The nftables and BPF views of the effective policy (user policy plus
 * always-rules): the address lists each kernel layer needs, built from
 * the same rules so the two can never disagree, and the learned-address
 * revocation that follows a policy change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egressd/agent.h"
#include "egressd/bpfsync.h"
#include "egressd/doh.h"
#include "egressd/learned.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/util.h"

int agent_addr_push(struct agent_addr_list *l, const struct policy_addr *addr)
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
static int addr_collect(struct agent_addr_list *l, const struct policy_rule *rules,
			size_t n, enum policy_action action)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rule_is_ip(&rules[i]) && rules[i].action == action &&
		    agent_addr_push(l, &rules[i].addr))
			return -ENOMEM;
	return 0;
}

struct nft_lists {
	struct agent_addr_list allow, deny, doh_exc;
};

static void nft_lists_free(struct nft_lists *l)
{
	free(l->allow.v);
	free(l->deny.v);
	free(l->doh_exc.v);
}

/*
 * The rules that keep the workload off the API, and the state of
 * egressd's exemption: where nft can name the workload cgroup only the workload is kept off
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
	c->dns_port = a->cfg->dns_listen_port;
	c->agent_cgroup_id = a->cg.id;
	c->agent_cgroup_level = a->cg.nft_level;
	c->filter = a->cfg->mode == EGRESSD_MODE_DNS_NFT;
	c->default_accept = p->default_action == POLICY_ALLOW;
	c->ipv6_deny = a->cfg->ipv6 == EGRESSD_IPV6_DENY;
	c->block_doh_443 = a->cfg->block_doh_443;
	/* The fast path only while BPF covers the whole namespace. */
	c->bpf_covers_all = a->cov.state == COVERAGE_NAMESPACE;
	/* A hand-off by cgroup only where nft can name the cgroup (not the
	 * sandbox above a namespace root on kernels that count from it):
	 * otherwise nftables judges the workload too, before BPF does. */
	c->bpf_handoff = a->bpf_state == AGENT_BPF_ENFORCE &&
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

/*
 * Program nftables for the current policy, removing the learned addresses
 * of forget[] in the same batch (agent_learned_revoked()); 0 or -errno.
 * When the learned sets were emptied or replaced, the next answers write
 * every address again.
 */
int agent_nft_apply(struct agent *a, const struct policy_addr *forget,
		    size_t n_forget, char *err, size_t errlen)
{
	struct nftsync_update upd = { .forget = forget,
				      .n_forget = n_forget };
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
	if (!ret && nftsync_learned_reset(a->nft))
		learned_mark_stale(a->learned);
	return ret;
}

static int prefixes_from(const struct agent_addr_list *l, bool exact_only,
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
int agent_bpf_apply(struct agent *a, uint64_t generation, char *err,
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
		bp.ipv6_deny = a->cfg->ipv6 == EGRESSD_IPV6_DENY;
		ret = a->bpf_ops->apply_policy(a->bpf, &bp);
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

/* Addresses of the DoH blocklist and of the upstreams, parsed once. */
int agent_addr_lists_prepare(struct agent *a, char *err, size_t errlen)
{
	const char *const *builtin;
	struct policy_rule r;
	char *copy, *tok, *save = NULL;
	char perr[256];
	size_t k, nb;
	int i, ret = 0;

	for (i = 0; i < a->cfg->n_upstreams; i++) {
		struct policy_addr pa;

		if (!nftsync_addr_from_sockaddr(
			    (struct sockaddr *)&a->cfg->upstreams[i].addr, &pa) &&
		    agent_addr_push(&a->upstreams, &pa))
			return util_err(err, errlen, -ENOMEM, "out of memory");
	}
	builtin = doh_provider_addrs(&nb);
	for (k = 0; k < nb; k++) {
		memset(&r, 0, sizeof(r));
		ret = !policy_parse_target(builtin[k], &r, perr, sizeof(perr)) &&
		      rule_is_ip(&r) && agent_addr_push(&a->doh_all, &r.addr);
		free(r.target);
		free(r.name);
		if (ret)
			return util_err(err, errlen, -ENOMEM, "out of memory");
	}
	if (!a->cfg->doh_blocklist)
		return 0;
	copy = strdup(a->cfg->doh_blocklist);
	if (!copy)
		return util_err(err, errlen, -ENOMEM, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (!*tok)
			continue;
		memset(&r, 0, sizeof(r));
		if (policy_parse_target(tok, &r, perr, sizeof(perr)) ||
		    !rule_is_ip(&r)) {
			log_warnx("OPENSANDBOX_EGRESS_DOH_BLOCKLIST: ignoring \"%s\": not an IP address or CIDR",
				  tok);
		} else if (agent_addr_push(&a->doh, &r.addr) ||
			   agent_addr_push(&a->doh_all, &r.addr)) {
			ret = util_err(err, errlen, -ENOMEM, "out of memory");
		}
		free(r.target);
		free(r.name);
		if (ret)
			break;
	}
	free(copy);
	return ret;
}

const struct agent_bpf_ops agent_bpf_default_ops = {
	.apply_policy = bpfsync_apply_policy,
	.forget = bpfsync_forget,
};
