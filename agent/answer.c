// SPDX-License-Identifier: GPL-2.0-only
/*
 * DNS learning: the DNS proxy calls this hook with every allowed answer
 * before it replies, and the answer's addresses become reachable in
 * every L3 layer that is up (BPF learned map, nftables learned sets) for
 * the lifetime egressd grants, to which the client's TTLs are lowered.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "egressd/agent.h"
#include "egressd/bpfsync.h"
#include "egressd/dnswire.h"
#include "egressd/log.h"
#include "egressd/loop.h"

#define NS_PER_S 1000000000ULL

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					     0xff, 0xff };

/*
 * Every A/AAAA of an allowed answer is written to the learned sets before
 * the reply leaves; TTLs the client sees are lowered to the lifetime
 * egressd grants, so a client never caches an address longer than it is
 * reachable. A failed write answers SERVFAIL, never an unusable answer.
 */
int agent_answer_hook(void *arg, const char *qname,
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
	if (ttl < a->cfg->learn_ttl_min)
		ttl = a->cfg->learn_ttl_min;
	if (ttl > a->cfg->learn_ttl_max)
		ttl = a->cfg->learn_ttl_max;
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
				ttl + a->cfg->learn_grace);
	if (a->bpf) {
		expires = bpfsync_now_ns() +
			  (uint64_t)(ttl + a->cfg->learn_grace) * NS_PER_S;
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
				    ttl + a->cfg->learn_grace, err,
				    sizeof(err));
		if (ret) {
			log_warnx("cannot learn the addresses of %s, answering SERVFAIL: %s",
				  qname, err);
			return ret;
		}
	}
	return 0;
}
