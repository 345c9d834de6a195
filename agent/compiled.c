// SPDX-License-Identifier: GPL-2.0-only
/*
 * The compiled policy (compiled.h): built once per apply from the user
 * policy, the always-rules and the settings. Every address list entry
 * carries the id of the rule it came from, so that the nftables config
 * and the BPF policy, both projections of the same lists, and the
 * violation lines agree on which rule decided. The BPF sets are prepared
 * here too, and each list gets a small longest-prefix index for the
 * lookups of nftables' drops, which carry no rule of their own.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "egressd/compiled.h"
#include "egressd/doh.h"
#include "egressd/util.h"

struct clist {
	struct policy_addr *addr;
	uint32_t *rule;
	size_t n, cap;
};

/* One entry of a lookup index: entries sorted by family, prefix length
 * (longest first), address, then list order. */
struct lpm_ent {
	uint8_t family;
	uint8_t plen;
	uint8_t addr[16];
	uint32_t rule;
	size_t order;
};

/* A run of entries of one family and prefix length. */
struct lpm_group {
	uint8_t family;
	uint8_t plen;
	size_t start, end;
};

struct lpm_index {
	struct lpm_ent *e;
	struct lpm_group *g;
	size_t ng;
};

struct policy_compiled {
	struct policy_matcher *matcher;
	struct clist list[POLICY_COMPILED_LIST_MAX];
	struct lpm_index idx[POLICY_COMPILED_LIST_MAX];
	struct bpfsync_prefix *bpf[BPFSYNC_SET_MAX];
	size_t n_bpf[BPFSYNC_SET_MAX];
	struct policy_addr *upstreams;
	size_t n_upstreams;
	bool filter, default_allow, ipv6_deny;
	/* BLOCK_DOH_443 without an address in the blocklist: every 443 */
	bool block_all_443;
	char **ignored;
	size_t n_ignored;
};

static int clist_push(struct clist *l, const struct policy_addr *a,
		      uint32_t rule)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct policy_addr *v = realloc(l->addr, cap * sizeof(*v));
		uint32_t *r;

		if (!v)
			return -ENOMEM;
		l->addr = v;
		r = realloc(l->rule, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		l->rule = r;
		l->cap = cap;
	}
	l->addr[l->n] = *a;
	l->rule[l->n] = rule;
	l->n++;
	return 0;
}

static bool rule_is_ip(const struct policy_rule *r)
{
	return r->kind == POLICY_KIND_IP || r->kind == POLICY_KIND_CIDR;
}

static bool is_full(const struct policy_addr *a)
{
	return a->prefixlen == (a->family == AF_INET ? 32 : 128);
}

/*
 * The IP and CIDR rules of rules[] with the given action into l, tagged
 * with their origin and index. -E2BIG when an index does not fit an id.
 */
static int collect(struct clist *l, const struct policy_rule *rules, size_t n,
		   enum policy_action action, uint32_t origin, const char *what,
		   char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!rule_is_ip(&rules[i]) || rules[i].action != action)
			continue;
		if (i > EGRESSD_RULE_INDEX_MASK) {
			snprintf(
				err, errlen,
				"%s[%zu]: too many rules for a rule id (at most %u)",
				what, i, EGRESSD_RULE_INDEX_MASK + 1);
			return -E2BIG;
		}
		if (clist_push(l, &rules[i].addr, EGRESSD_RULE_ID(origin, i)))
			goto err_nomem;
	}
	return 0;
err_nomem:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

/*
 * Keep the entries of l with a full prefix (one address), in order: an
 * allow rule lifts the DoH and DoT blocks only for an address it names
 * exactly, in both layers (docs/nftables.md).
 */
static void keep_full(struct clist *l)
{
	size_t i, k = 0;

	for (i = 0; i < l->n; i++) {
		if (!is_full(&l->addr[i]))
			continue;
		l->addr[k] = l->addr[i];
		l->rule[k] = l->rule[i];
		k++;
	}
	l->n = k;
}

/* One DoH list entry (text) into l; 1 when it is not an address. */
static int doh_push(struct clist *l, const char *text, uint32_t rule)
{
	struct policy_rule r;
	char perr[128];
	int ret = 1;

	memset(&r, 0, sizeof(r));
	if (!policy_parse_target(text, &r, perr, sizeof(perr)) &&
	    rule_is_ip(&r))
		ret = clist_push(l, &r.addr, rule);
	free(r.target);
	free(r.name);
	return ret;
}

static int ignored_push(struct policy_compiled *pc, const char *tok)
{
	char **v = realloc(pc->ignored, (pc->n_ignored + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	pc->ignored = v;
	v[pc->n_ignored] = strdup(tok);
	if (!v[pc->n_ignored])
		return -ENOMEM;
	pc->n_ignored++;
	return 0;
}

/*
 * The built-in DoH provider addresses, then the blocklist entries
 * (comma-separated, blanks around them ignored), numbered in the order
 * written. The one place either is parsed: nftables and BPF get the
 * list, and whether BLOCK_DOH_443 means every 443 (no blocklist address).
 */
static int doh_collect(struct policy_compiled *pc, const char *blocklist,
		       bool block_doh_443)
{
	struct clist *l = &pc->list[POLICY_COMPILED_DOH];
	const char *const *builtin;
	char *copy, *tok, *save = NULL;
	size_t k, nb, n_builtin, i = 0;
	int ret = 0;

	builtin = doh_provider_addrs(&nb);
	for (k = 0; k < nb; k++)
		if (doh_push(l, builtin[k],
			     EGRESSD_RULE_ID(EGRESSD_RULE_DOH_BUILTIN, k)) < 0)
			return -ENOMEM;
	n_builtin = l->n;
	pc->block_all_443 = block_doh_443;
	if (!blocklist)
		return 0;
	copy = strdup(blocklist);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && !ret;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (!*tok)
			continue;
		ret = doh_push(l, tok,
			       EGRESSD_RULE_ID(EGRESSD_RULE_DOH_BLOCKLIST, i));
		if (ret > 0)
			ret = ignored_push(pc, tok);
		i++;
	}
	free(copy);
	pc->block_all_443 = block_doh_443 && l->n == n_builtin;
	return ret;
}

static int upstreams_collect(struct policy_compiled *pc,
			     const struct egressd_config *cfg)
{
	int i;

	if (cfg->n_upstreams <= 0)
		return 0;
	pc->upstreams = calloc(cfg->n_upstreams, sizeof(*pc->upstreams));
	if (!pc->upstreams)
		return -ENOMEM;
	for (i = 0; i < cfg->n_upstreams; i++)
		if (!nftsync_addr_from_sockaddr(
			    (const struct sockaddr *)&cfg->upstreams[i].addr,
			    &pc->upstreams[pc->n_upstreams]))
			pc->n_upstreams++;
	return 0;
}

/* The BPF view of a list. */
static int bpf_set(const struct clist *l, struct bpfsync_prefix **out,
		   size_t *n)
{
	struct bpfsync_prefix *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!l->n)
		return 0;
	v = calloc(l->n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < l->n; i++) {
		const struct policy_addr *pa = &l->addr[i];

		v[i].family = pa->family;
		v[i].prefixlen = pa->prefixlen;
		v[i].rule = l->rule[i];
		memcpy(v[i].addr, pa->addr, 16);
	}
	*out = v;
	*n = l->n;
	return 0;
}

static int lpm_cmp(const void *pa, const void *pb)
{
	const struct lpm_ent *a = pa, *b = pb;
	int c;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->plen != b->plen)
		return a->plen > b->plen ? -1 : 1; /* longest first */
	c = memcmp(a->addr, b->addr, sizeof(a->addr));
	if (c)
		return c;
	return a->order < b->order ? -1 : a->order > b->order;
}

static int lpm_build(struct lpm_index *x, const struct clist *l)
{
	size_t i;

	if (!l->n)
		return 0;
	x->e = calloc(l->n, sizeof(*x->e));
	x->g = calloc(l->n, sizeof(*x->g));
	if (!x->e || !x->g)
		return -ENOMEM;
	for (i = 0; i < l->n; i++) {
		x->e[i].family = l->addr[i].family;
		x->e[i].plen = l->addr[i].prefixlen;
		memcpy(x->e[i].addr, l->addr[i].addr, 16);
		x->e[i].rule = l->rule[i];
		x->e[i].order = i;
	}
	qsort(x->e, l->n, sizeof(*x->e), lpm_cmp);
	for (i = 0; i < l->n; i++) {
		struct lpm_group *g = x->ng ? &x->g[x->ng - 1] : NULL;

		if (!g || g->family != x->e[i].family ||
		    g->plen != x->e[i].plen) {
			g = &x->g[x->ng++];
			g->family = x->e[i].family;
			g->plen = x->e[i].plen;
			g->start = i;
		}
		g->end = i + 1;
	}
	return 0;
}

static void mask(uint8_t *out, const uint8_t *addr, unsigned int plen)
{
	unsigned int k;

	memset(out, 0, 16);
	for (k = 0; k < 16 && plen >= 8; k++, plen -= 8)
		out[k] = addr[k];
	if (k < 16 && plen)
		out[k] = addr[k] & (uint8_t)(0xff << (8 - plen));
}

/* First entry of [start, end) with this address (any order), or -1. */
static long lpm_find(const struct lpm_ent *e, size_t start, size_t end,
		     const uint8_t *addr)
{
	size_t lo = start, hi = end;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(e[mid].addr, addr, 16) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < end && !memcmp(e[lo].addr, addr, 16))
		return (long)lo;
	return -1;
}

/*
 * Only the lists nftables' drops are named from get an index: sorting
 * costs more than the rest of the compilation, on every apply.
 */
static bool is_indexed(enum policy_compiled_list list)
{
	return list == POLICY_COMPILED_DENY || list == POLICY_COMPILED_DOH;
}

/* The index's answer by a walk over the list: longest, then first. */
static uint32_t lookup_scan(const struct clist *l, int family, const uint8_t *a)
{
	uint32_t rule = EGRESSD_RULE_NONE;
	int best = -1;
	uint8_t m[16];
	size_t i;

	for (i = 0; i < l->n; i++) {
		const struct policy_addr *e = &l->addr[i];

		if (e->family != family || (int)e->prefixlen <= best)
			continue;
		mask(m, a, e->prefixlen);
		if (!memcmp(m, e->addr, 16)) {
			best = e->prefixlen;
			rule = l->rule[i];
		}
	}
	return rule;
}

uint32_t policy_compiled_lookup(const struct policy_compiled *pc,
				enum policy_compiled_list list, int family,
				const void *addr)
{
	const struct lpm_index *x;
	uint8_t a[16] = { 0 }, m[16];
	size_t i;
	long hit;

	if (!pc || (unsigned int)list >= POLICY_COMPILED_LIST_MAX)
		return EGRESSD_RULE_NONE;
	if (family == AF_INET6 && util_is_v4mapped(addr)) {
		family = AF_INET;
		memcpy(a, (const uint8_t *)addr + 12, 4);
	} else if (family == AF_INET) {
		memcpy(a, addr, 4);
	} else if (family == AF_INET6) {
		memcpy(a, addr, 16);
	} else {
		return EGRESSD_RULE_NONE;
	}
	if (!is_indexed(list))
		return lookup_scan(&pc->list[list], family, a);
	x = &pc->idx[list];
	for (i = 0; i < x->ng; i++) {
		const struct lpm_group *g = &x->g[i];

		if (g->family != family)
			continue;
		mask(m, a, g->plen);
		hit = lpm_find(x->e, g->start, g->end, m);
		if (hit >= 0)
			return x->e[hit].rule;
	}
	return EGRESSD_RULE_NONE;
}

int policy_compiled_new(struct policy_compiled **out, const struct policy *user,
			const struct policy_rule *deny_always, size_t n_deny,
			const struct policy_rule *allow_always, size_t n_allow,
			const struct egressd_config *cfg, char *err,
			size_t errlen)
{
	const struct policy_rule *urules = user ? user->rules : NULL;
	size_t nu = user ? user->n_rules : 0;
	struct policy_compiled *pc;
	int i, ret;

	*out = NULL;
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		goto err_nomem;
	ret = policy_matcher_new(&pc->matcher, user, deny_always, n_deny,
				 allow_always, n_allow);
	if (ret) {
		snprintf(err, errlen, "cannot compile the names: %s",
			 strerror(-ret));
		goto err_free;
	}
	pc->filter = cfg->mode == EGRESSD_MODE_DNS_NFT;
	pc->default_allow = user && user->default_action == POLICY_ALLOW;
	pc->ipv6_deny = cfg->ipv6 == EGRESSD_IPV6_DENY;

	/* The always-file rules keep their file's verdict (policy.h). */
	ret = collect(&pc->list[POLICY_COMPILED_DENY], deny_always, n_deny,
		      POLICY_DENY, EGRESSD_RULE_DENY_ALWAYS, "deny.always", err,
		      errlen);
	if (!ret)
		ret = collect(&pc->list[POLICY_COMPILED_DENY], urules, nu,
			      POLICY_DENY, EGRESSD_RULE_USER, "egress", err,
			      errlen);
	if (!ret)
		ret = collect(&pc->list[POLICY_COMPILED_ALLOW], allow_always,
			      n_allow, POLICY_ALLOW, EGRESSD_RULE_ALLOW_ALWAYS,
			      "allow.always", err, errlen);
	if (!ret)
		ret = collect(&pc->list[POLICY_COMPILED_ALLOW], urules, nu,
			      POLICY_ALLOW, EGRESSD_RULE_USER, "egress", err,
			      errlen);
	if (!ret)
		ret = collect(&pc->list[POLICY_COMPILED_DOH_EXC], urules, nu,
			      POLICY_ALLOW, EGRESSD_RULE_USER, "egress", err,
			      errlen);
	if (ret)
		goto err_free;
	keep_full(&pc->list[POLICY_COMPILED_DOH_EXC]);
	if (doh_collect(pc, cfg->doh_blocklist, cfg->block_doh_443) ||
	    upstreams_collect(pc, cfg))
		goto err_nomem;

	if (bpf_set(&pc->list[POLICY_COMPILED_ALLOW],
		    &pc->bpf[BPFSYNC_SET_ALLOW],
		    &pc->n_bpf[BPFSYNC_SET_ALLOW]) ||
	    bpf_set(&pc->list[POLICY_COMPILED_DENY], &pc->bpf[BPFSYNC_SET_DENY],
		    &pc->n_bpf[BPFSYNC_SET_DENY]) ||
	    bpf_set(&pc->list[POLICY_COMPILED_DOH], &pc->bpf[BPFSYNC_SET_DOH],
		    &pc->n_bpf[BPFSYNC_SET_DOH]) ||
	    bpf_set(&pc->list[POLICY_COMPILED_DOH_EXC],
		    &pc->bpf[BPFSYNC_SET_DOH_ALLOW],
		    &pc->n_bpf[BPFSYNC_SET_DOH_ALLOW]))
		goto err_nomem;
	for (i = 0; i < POLICY_COMPILED_LIST_MAX; i++)
		if (is_indexed(i) && lpm_build(&pc->idx[i], &pc->list[i]))
			goto err_nomem;
	*out = pc;
	return 0;

err_nomem:
	ret = -ENOMEM;
	snprintf(err, errlen, "out of memory");
err_free:
	policy_compiled_free(pc);
	return ret;
}

void policy_compiled_free(struct policy_compiled *pc)
{
	size_t k;
	int i;

	if (!pc)
		return;
	policy_matcher_free(pc->matcher);
	for (i = 0; i < POLICY_COMPILED_LIST_MAX; i++) {
		free(pc->list[i].addr);
		free(pc->list[i].rule);
		free(pc->idx[i].e);
		free(pc->idx[i].g);
	}
	for (i = 0; i < BPFSYNC_SET_MAX; i++)
		free(pc->bpf[i]);
	free(pc->upstreams);
	for (k = 0; k < pc->n_ignored; k++)
		free(pc->ignored[k]);
	free(pc->ignored);
	free(pc);
}

const struct policy_matcher *
policy_compiled_matcher(const struct policy_compiled *pc)
{
	return pc->matcher;
}

const struct policy_addr *
policy_compiled_addrs(const struct policy_compiled *pc,
		      enum policy_compiled_list list, const uint32_t **rules,
		      size_t *n)
{
	const struct clist *l = &pc->list[list];

	if (rules)
		*rules = l->rule;
	*n = l->n;
	return l->addr;
}

void policy_compiled_nft(const struct policy_compiled *pc,
			 struct nftsync_config *c)
{
	c->filter = pc->filter;
	c->default_accept = pc->default_allow;
	c->ipv6_deny = pc->ipv6_deny;
	c->block_all_443 = pc->block_all_443;
	c->allow = pc->list[POLICY_COMPILED_ALLOW].addr;
	c->n_allow = pc->list[POLICY_COMPILED_ALLOW].n;
	c->deny = pc->list[POLICY_COMPILED_DENY].addr;
	c->n_deny = pc->list[POLICY_COMPILED_DENY].n;
	c->doh = pc->list[POLICY_COMPILED_DOH].addr;
	c->n_doh = pc->list[POLICY_COMPILED_DOH].n;
	c->doh_exceptions = pc->list[POLICY_COMPILED_DOH_EXC].addr;
	c->n_doh_exceptions = pc->list[POLICY_COMPILED_DOH_EXC].n;
	c->upstreams = pc->upstreams;
	c->n_upstreams = pc->n_upstreams;
}

void policy_compiled_bpf(const struct policy_compiled *pc, uint64_t generation,
			 struct bpfsync_policy *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < BPFSYNC_SET_MAX; i++) {
		out->set[i] = pc->bpf[i];
		out->n[i] = pc->n_bpf[i];
	}
	out->generation = generation;
	out->default_allow = pc->default_allow;
	out->ipv6_deny = pc->ipv6_deny;
}

const char *const *policy_compiled_ignored(const struct policy_compiled *pc,
					   size_t *n)
{
	*n = pc->n_ignored;
	return (const char *const *)pc->ignored;
}
