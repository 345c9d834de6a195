/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The learned-address registry: every address an allowed DNS answer
 * taught, with the names that taught it and how long it may be reached.
 * It is the one place that knows an address's domain, whichever layers
 * are up: the agent asks it before writing (is the address still fresh
 * in the kernel, is there room), drives nftsync and bpfsync as writers,
 * records the outcome here, asks it which addresses a new policy revokes,
 * and asks it for the domain of a violation line (nflog and BPF alike).
 * Pure userspace state, no I/O: unit-tested without a kernel. Capacity is
 * bounded per family; when a family is full, expired entries are
 * reclaimed before an add is refused (-ENOSPC, counted).
 */
#ifndef __EGRESSD_LEARNED_H
#define __EGRESSD_LEARNED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egressd/policy.h"

/* Domains remembered per learned address (most recent first). */
#define LEARNED_MAX_TEACHERS 4
/* An expired entry is kept this long for the domain of late log lines. */
#define LEARNED_LINGER_MS (10 * 60 * 1000)

struct learned;

struct learned_stats {
	size_t v4, v6; /* entries held (alive or lingering) */
	uint64_t added; /* addresses that got an entry */
	uint64_t full; /* adds refused: family full (-ENOSPC) */
	uint64_t reclaimed; /* expired entries dropped to make room */
	uint64_t revoked; /* entries expired by learned_forget() */
};

/*
 * A registry holding at most max_per_family addresses of each family
 * (0: EGRESSD_MAX_LEARNED, the BPF maps' default size too). 0 or -errno with err set.
 */
int learned_new(struct learned **out, size_t max_per_family, char *err,
		size_t errlen);
void learned_free(struct learned *lr);

size_t learned_max(const struct learned *lr);

/*
 * Is addr held with more than half of lifetime_s left of what the layers
 * were last told (learned_add's expiry), and were they not told to drop
 * it since (learned_mark_stale)? Then writing it again is not needed.
 * now_ms is CLOCK_MONOTONIC in ms (util_clock_ms()).
 */
bool learned_is_fresh(const struct learned *lr, uint64_t now_ms,
		      const struct policy_addr *addr, unsigned int lifetime_s);

/* Does the registry hold addr at all (alive, lingering or stale)? */
bool learned_is_known(const struct learned *lr, const struct policy_addr *addr);

/*
 * Make sure the addresses of v[] the registry does not hold yet fit:
 * when a family would overflow, its expired entries are dropped first.
 * 0, or -ENOSPC (counted in learned_stats.full, once per call) when they
 * still do not fit. Nothing is added.
 */
int learned_make_room(struct learned *lr, uint64_t now_ms,
		      const struct policy_addr *v, size_t n);

/*
 * Record that domain (may be NULL) taught addr and that the layers were
 * told to hold it until expiry_ms; expiry_ms 0 keeps the entry's expiry
 * (a fresh address taught again). Creates the entry when needed (call
 * learned_make_room() first). 0, -ENOSPC (full) or -ENOMEM.
 */
int learned_add(struct learned *lr, uint64_t now_ms, const char *domain,
		const struct policy_addr *addr, uint64_t expiry_ms);

/*
 * A layer keeps addr reachable until alive_ms (the BPF sweep extends an
 * entry in use): the entry (and its latest teacher) stays alive that
 * long for revocation, domains and counts. Freshness is not changed.
 */
void learned_extend(struct learned *lr, const struct policy_addr *addr,
		    uint64_t alive_ms);

/*
 * The domain that most recently taught addr (AF_INET: 4 bytes, AF_INET6:
 * 16), or NULL. Valid until the next call that changes the registry.
 */
const char *learned_domain_of(const struct learned *lr, int family,
			      const void *addr);

/*
 * Addresses alive at now_ms none of whose alive teachers keep() accepts
 * (typically "does the new policy still allow this name"), as a malloc'd
 * array in *out (NULL when none). The registry is not changed: the
 * caller drops them from the layers, then calls learned_forget(). 0 or
 * -ENOMEM.
 */
int learned_revoked(const struct learned *lr, uint64_t now_ms,
		    bool (*keep)(const char *domain, void *arg), void *arg,
		    struct policy_addr **out, size_t *n);

/*
 * addr was removed from every layer (revoked): its entry expires now. It
 * is reclaimed first when room is needed and keeps its names for
 * LEARNED_LINGER_MS (the domain of a line about a revoked address).
 */
void learned_forget(struct learned *lr, uint64_t now_ms,
		    const struct policy_addr *addr);

/*
 * The layers lost their copies (a flushed or replaced nft table): the
 * next answer writes every address again. Domains are kept.
 */
void learned_mark_stale(struct learned *lr);

/* Drop entries expired for more than LEARNED_LINGER_MS. */
void learned_gc(struct learned *lr, uint64_t now_ms);

/* Entries alive at now_ms per family (the metric "in use"). */
void learned_counts(const struct learned *lr, uint64_t now_ms, size_t *v4,
		    size_t *v6);

void learned_get_stats(const struct learned *lr, struct learned_stats *out);

#endif /* __EGRESSD_LEARNED_H */
