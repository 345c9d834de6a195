// SPDX-License-Identifier: GPL-2.0-only
/*
 * DNS learning: the DNS proxy calls this hook with every allowed answer
 * before it replies, and the answer's addresses become reachable in
 * every L3 layer that is up (BPF learned map, nftables learned sets) for
 * the lifetime egressd grants, to which the client's TTLs are lowered.
 * The learned registry (agent/learned.c) decides what must be written and
 * whether it fits; the layers are its writers. Revocation on a policy
 * change, the registry's GC and the BPF sweep's extensions are here too:
 * they work the same whichever layers are up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egressd/agent.h"
#include "egressd/bpfsync.h"
#include "egressd/dnswire.h"
#include "egressd/learned.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/util.h"

#define NS_PER_S 1000000000ULL

/*
 * Counted by what the client got, and folded (kind learn_failed): a flood
 * of answers that cannot be learned is a few lines, not one per query.
 */
static void learn_failed(struct agent *a, const char *qname, bool servfail,
			 const char *why)
{
	if (servfail)
		a->learn_fail_servfail++;
	else
		a->learn_fail_sent++;
	log_folded(
		LOG_LVL_WARN, "learn_failed",
		"cannot learn the addresses of %s (%s): %s", qname, why,
		servfail ?
			"answered SERVFAIL, its new addresses stay unreachable" :
			"answered anyway (nothing enforces them here), without their domain on violation lines");
}

/*
 * A write failed after some layer took w[0..n-1]: the registry must know
 * them (to revoke them, to name their domain) but not call them fresh, so
 * that the next answer writes every layer again.
 */
static void learn_partial(struct agent *a, uint64_t now, const char *qname,
			  const struct policy_addr *w, size_t n,
			  unsigned int lifetime)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!learned_add(a->learned, now, qname, &w[i], 0))
			learned_extend(a->learned, &w[i],
				       now + (uint64_t)lifetime * 1000);
}

/*
 * Every A/AAAA of an allowed answer is written to the layers that enforce
 * at L3 and recorded in the registry before the reply leaves; TTLs the
 * client sees are lowered to the lifetime egressd grants, so a client
 * never caches an address longer than it is reachable. Where a layer
 * enforces, a failed write answers SERVFAIL, never an unusable answer
 * (fail closed). Where none does (dns mode: BPF only observes), a full
 * table never fails a query: the answer goes out, the failure is counted.
 */
int agent_answer_hook(void *arg, const char *qname,
		      const struct dnswire_response *r, uint8_t *msg,
		      size_t len)
{
	struct policy_addr addrs[DNSWIRE_MAX_ADDRS], w[DNSWIRE_MAX_ADDRS];
	bool known[DNSWIRE_MAX_ADDRS];
	struct agent *a = arg;
	bool nft_on = a->nft && nftsync_is_filtering(a->nft);
	bool enforce = nft_on || a->bpf_state == AGENT_BPF_ENFORCE;
	uint64_t now = util_clock_ms(), expires;
	unsigned int lifetime;
	char err[512];
	uint32_t ttl;
	size_t i, n = 0, nw = 0;
	int ret;

	if (!r->n_addrs)
		return 0;
	ttl = r->min_ttl;
	if (ttl < a->cfg->learn_ttl_min)
		ttl = a->cfg->learn_ttl_min;
	if (ttl > a->cfg->learn_ttl_max)
		ttl = a->cfg->learn_ttl_max;
	lifetime = ttl + a->cfg->learn_grace;
	/* Only where an L3 layer holds the address does its lifetime bind
	 * the client's cache. */
	if ((nft_on || a->bpf) && dnswire_cap_ttls(msg, len, ttl))
		return -EBADMSG;
	for (i = 0; i < r->n_addrs; i++) {
		const struct dnswire_addr *d = &r->addrs[i];
		struct policy_addr *p = &addrs[n++];

		memset(p, 0, sizeof(*p));
		if (d->family == AF_INET6 && util_is_v4mapped(d->addr)) {
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
	 * An address the registry holds fresh is fresh in every layer
	 * (written together, same lifetime): no system call for it. Room
	 * for the others is made before anything is written, so that a
	 * layer never holds an address the registry cannot revoke.
	 */
	for (i = 0; i < n; i++) {
		if (learned_is_fresh(a->learned, now, &addrs[i], lifetime)) {
			learned_add(a->learned, now, qname, &addrs[i], 0);
			continue;
		}
		known[nw] = learned_is_known(a->learned, &addrs[i]);
		w[nw++] = addrs[i];
	}
	if (!nw)
		return 0;
	if (learned_make_room(a->learned, now, w, nw)) {
		learn_failed(a, qname, enforce, "the learned table is full");
		return enforce ? -ENOSPC : 0;
	}
	if (a->bpf) {
		expires = util_clock_ns() + (uint64_t)lifetime * NS_PER_S;
		for (i = 0; i < nw; i++) {
			ret = bpfsync_learn(a->bpf, w[i].family, w[i].addr,
					    expires, (uint32_t)a->generation);
			if (ret && enforce) {
				snprintf(err, sizeof(err), "BPF maps: %s",
					 strerror(-ret));
				learn_failed(a, qname, true, err);
				learn_partial(a, now, qname, w, i, lifetime);
				return ret;
			}
			if (ret) {
				learn_failed(a, qname, false,
					     "the BPF learned map is full");
				break;
			}
		}
	}
	if (a->nft) {
		ret = nftsync_learn_write(a->nft, now, w, known, nw, lifetime,
					  err, sizeof(err));
		if (ret) {
			learn_failed(a, qname, true, err);
			learn_partial(a, now, qname, w, a->bpf ? nw : 0,
				      lifetime);
			return ret;
		}
	}
	for (i = 0; i < nw; i++)
		(void)learned_add(a->learned, now, qname, &w[i],
				  now + (uint64_t)lifetime * 1000);
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

int agent_learned_revoked(struct agent *a, const struct policy_matcher *m,
			  struct policy_addr **out, size_t *n)
{
	return learned_revoked(a->learned, util_clock_ms(), keep_learned,
			       (void *)m, out, n);
}

void agent_learned_revoke(struct agent *a, const struct policy_addr *v,
			  size_t n)
{
	uint64_t now = util_clock_ms();
	size_t i;

	for (i = 0; i < n; i++) {
		if (a->bpf)
			a->bpf_ops->forget(a->bpf, v[i].family, v[i].addr);
		learned_forget(a->learned, now, &v[i]);
	}
}

/* The registry's expired entries go, in every mode. */
static void gc_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct agent *a = arg;

	learned_gc(a->learned, util_clock_ms());
	loop_timer_arm(t, AGENT_LEARNED_GC_MS);
}

int agent_learned_start(struct agent *a)
{
	a->gc_timer = loop_timer_new(a->loop, gc_timer_cb, a);
	if (!a->gc_timer)
		return -ENOMEM;
	loop_timer_arm(a->gc_timer, AGENT_LEARNED_GC_MS);
	return 0;
}

void agent_learned_extended(void *arg, int family, const void *addr,
			    uint64_t until_ns)
{
	struct agent *a = arg;
	struct policy_addr pa = { .family = family };

	memcpy(pa.addr, addr, family == AF_INET6 ? 16 : 4);
	pa.prefixlen = family == AF_INET6 ? 128 : 32;
	learned_extend(a->learned, &pa, until_ns / 1000000);
}
