// SPDX-License-Identifier: GPL-2.0-only
/*
 * The learned-address registry (include/egressd/learned.h): a chained hash
 * of addresses, each with the expiry the layers were last told, how long
 * a layer keeps it alive beyond that (the BPF sweep extends entries in
 * use), and up to LEARNED_MAX_TEACHERS names that taught it. It does no
 * I/O: the agent writes the layers and records the outcome here, so the
 * registry outlives any layer being down and the answer to "which name
 * taught this address" never depends on nftables being up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/types.h>

#include "egressd/learned.h"
#include "egressd/shared.h"
#include "egressd/util.h"

struct teacher {
	char *domain;
	uint64_t expiry_ms;
};

struct entry {
	struct entry *next;
	uint8_t family;
	bool stale; /* the layers were told to drop it */
	uint8_t addr[16];
	uint64_t expiry_ms; /* what the layers were last told */
	uint64_t alive_ms; /* >= expiry_ms: a layer keeps it that long */
	struct teacher t[LEARNED_MAX_TEACHERS];
};

struct learned {
	struct entry **bucket;
	size_t nbucket; /* power of two */
	size_t count[2]; /* [0] IPv4, [1] IPv6 */
	size_t max;
	/*
	 * A family found full with nothing expired: no entry can expire
	 * before this time, so adds fail without another scan until then.
	 */
	uint64_t full_until_ms[2];
	struct learned_stats stats;
};

static size_t alen_of(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

static int fam_idx(int family)
{
	return family == AF_INET6;
}

static bool family_ok(int family)
{
	return family == AF_INET || family == AF_INET6;
}

int learned_new(struct learned **out, size_t max_per_family, char *err,
		size_t errlen)
{
	struct learned *lr;

	*out = NULL;
	lr = calloc(1, sizeof(*lr));
	if (!lr)
		return util_err(err, errlen, -ENOMEM,
				"learned registry: out of memory");
	lr->nbucket = 64;
	lr->bucket = calloc(lr->nbucket, sizeof(*lr->bucket));
	if (!lr->bucket) {
		free(lr);
		return util_err(err, errlen, -ENOMEM,
				"learned registry: out of memory");
	}
	lr->max = max_per_family ? max_per_family : EGRESSD_MAX_LEARNED;
	*out = lr;
	return 0;
}

static void entry_free(struct entry *e)
{
	int i;

	for (i = 0; i < LEARNED_MAX_TEACHERS; i++)
		free(e->t[i].domain);
	free(e);
}

void learned_free(struct learned *lr)
{
	struct entry *e, *next;
	size_t i;

	if (!lr)
		return;
	for (i = 0; i < lr->nbucket; i++)
		for (e = lr->bucket[i]; e; e = next) {
			next = e->next;
			entry_free(e);
		}
	free(lr->bucket);
	free(lr);
}

size_t learned_max(const struct learned *lr)
{
	return lr->max;
}

/* FNV-1a over family and address bytes. */
static size_t addr_hash(int family, const uint8_t *a)
{
	uint8_t f = (uint8_t)family;

	return util_fnv1a(util_fnv1a(UTIL_FNV1A_INIT, &f, 1), a,
			  alen_of(family));
}

static struct entry **slot(const struct learned *lr, int family,
			   const uint8_t *a)
{
	struct entry **pp;

	pp = &lr->bucket[addr_hash(family, a) & (lr->nbucket - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->family == family &&
		    !memcmp((*pp)->addr, a, alen_of(family)))
			break;
	return pp;
}

static struct entry *find(const struct learned *lr, int family, const void *a)
{
	if (!family_ok(family))
		return NULL;
	return *slot(lr, family, a);
}

/* Twice the buckets once chains average two; on ENOMEM chains grow. */
static void resize(struct learned *lr)
{
	size_t n = lr->nbucket * 2, i;
	struct entry **nb, *e, *next;

	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (i = 0; i < lr->nbucket; i++)
		for (e = lr->bucket[i]; e; e = next) {
			size_t h = addr_hash(e->family, e->addr) & (n - 1);

			next = e->next;
			e->next = nb[h];
			nb[h] = e;
		}
	free(lr->bucket);
	lr->bucket = nb;
	lr->nbucket = n;
}

static void unlink_entry(struct learned *lr, struct entry **pp)
{
	struct entry *e = *pp;

	*pp = e->next;
	lr->count[fam_idx(e->family)]--;
	lr->full_until_ms[fam_idx(e->family)] = 0;
	entry_free(e);
}

/* Drop every entry for which drop() says so. */
static size_t sweep(struct learned *lr,
		    bool (*drop)(const struct entry *, uint64_t, int),
		    uint64_t now_ms, int family)
{
	struct entry **pp;
	size_t i, n = 0;

	for (i = 0; i < lr->nbucket; i++) {
		pp = &lr->bucket[i];
		while (*pp) {
			if (drop(*pp, now_ms, family)) {
				unlink_entry(lr, pp);
				n++;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	return n;
}

bool learned_is_fresh(const struct learned *lr, uint64_t now_ms,
		      const struct policy_addr *addr, unsigned int lifetime_s)
{
	const struct entry *e = find(lr, addr->family, addr->addr);
	uint64_t tmo = (uint64_t)lifetime_s * 1000;

	return e && !e->stale && e->expiry_ms > now_ms &&
	       e->expiry_ms - now_ms > tmo / 2;
}

bool learned_is_known(const struct learned *lr, const struct policy_addr *addr)
{
	return find(lr, addr->family, addr->addr) != NULL;
}

static bool is_expired(const struct entry *e, uint64_t now_ms, int family)
{
	return e->family == family && e->alive_ms <= now_ms;
}

/* Earliest time an entry of family can expire (UINT64_MAX: none held). */
static uint64_t first_expiry(const struct learned *lr, int family)
{
	uint64_t first = UINT64_MAX;
	const struct entry *e;
	size_t i;

	for (i = 0; i < lr->nbucket; i++)
		for (e = lr->bucket[i]; e; e = e->next)
			if (e->family == family && e->alive_ms < first)
				first = e->alive_ms;
	return first;
}

/* Room for want more entries of family, reclaiming expired ones. */
static bool room_for(struct learned *lr, uint64_t now_ms, int family,
		     size_t want)
{
	int f = fam_idx(family);

	if (lr->count[f] + want <= lr->max)
		return true;
	if (now_ms < lr->full_until_ms[f])
		return false;
	lr->stats.reclaimed += sweep(lr, is_expired, now_ms, family);
	if (lr->count[f] + want <= lr->max)
		return true;
	lr->full_until_ms[f] = first_expiry(lr, family);
	return false;
}

int learned_make_room(struct learned *lr, uint64_t now_ms,
		      const struct policy_addr *v, size_t n)
{
	size_t want[2] = { 0, 0 }, i, j;

	for (i = 0; i < n; i++) {
		if (!family_ok(v[i].family) || learned_is_known(lr, &v[i]))
			continue;
		for (j = 0; j < i; j++)
			if (v[j].family == v[i].family &&
			    !memcmp(v[j].addr, v[i].addr, alen_of(v[i].family)))
				break;
		if (j == i)
			want[fam_idx(v[i].family)]++;
	}
	if ((want[0] && !room_for(lr, now_ms, AF_INET, want[0])) ||
	    (want[1] && !room_for(lr, now_ms, AF_INET6, want[1]))) {
		lr->stats.full++;
		return -ENOSPC;
	}
	return 0;
}

/* Record domain as the latest teacher of e, valid until expiry_ms. */
static void teach(struct entry *e, const char *domain, uint64_t expiry_ms)
{
	struct teacher t = { NULL, 0 };
	int i, last = LEARNED_MAX_TEACHERS - 1;

	if (!domain)
		return;
	for (i = 0; i < LEARNED_MAX_TEACHERS; i++)
		if (e->t[i].domain && !strcmp(e->t[i].domain, domain)) {
			t = e->t[i];
			last = i;
			break;
		}
	if (!t.domain) {
		t.domain = strdup(domain);
		if (!t.domain)
			return; /* the address stays, without this name */
		free(e->t[last].domain);
	}
	memmove(&e->t[1], &e->t[0], last * sizeof(e->t[0]));
	if (expiry_ms > t.expiry_ms)
		t.expiry_ms = expiry_ms;
	e->t[0] = t;
}

int learned_add(struct learned *lr, uint64_t now_ms, const char *domain,
		const struct policy_addr *addr, uint64_t expiry_ms)
{
	struct entry **pp, *e;
	int f;

	if (!family_ok(addr->family))
		return -EINVAL;
	f = fam_idx(addr->family);
	pp = slot(lr, addr->family, addr->addr);
	e = *pp;
	if (!e) {
		if (!room_for(lr, now_ms, addr->family, 1)) {
			lr->stats.full++;
			return -ENOSPC;
		}
		/* room_for() may have swept: find the slot again */
		pp = slot(lr, addr->family, addr->addr);
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->family = addr->family;
		memcpy(e->addr, addr->addr, alen_of(addr->family));
		*pp = e;
		lr->count[f]++;
		lr->stats.added++;
		if (lr->count[0] + lr->count[1] > 2 * lr->nbucket)
			resize(lr);
	}
	if (expiry_ms) {
		e->expiry_ms = expiry_ms;
		e->stale = false;
		if (expiry_ms > e->alive_ms)
			e->alive_ms = expiry_ms;
	}
	teach(e, domain, e->expiry_ms);
	return 0;
}

void learned_extend(struct learned *lr, const struct policy_addr *addr,
		    uint64_t alive_ms)
{
	struct entry *e = find(lr, addr->family, addr->addr);

	if (!e || alive_ms <= e->alive_ms)
		return;
	e->alive_ms = alive_ms;
	/* the name that taught it last is the one it is still used under */
	if (e->t[0].domain && e->t[0].expiry_ms < alive_ms)
		e->t[0].expiry_ms = alive_ms;
}

const char *learned_domain_of(const struct learned *lr, int family,
			      const void *addr)
{
	const struct entry *e = find(lr, family, addr);

	return e ? e->t[0].domain : NULL;
}

int learned_revoked(const struct learned *lr, uint64_t now_ms,
		    bool (*keep)(const char *domain, void *arg), void *arg,
		    struct policy_addr **out, size_t *n)
{
	struct policy_addr *v = NULL, *nv;
	size_t cap = 0, k = 0, i;
	const struct entry *e;
	int t;

	*out = NULL;
	*n = 0;
	for (i = 0; i < lr->nbucket; i++)
		for (e = lr->bucket[i]; e; e = e->next) {
			if (e->alive_ms <= now_ms)
				continue; /* gone from the layers already */
			for (t = 0; t < LEARNED_MAX_TEACHERS; t++)
				if (e->t[t].domain &&
				    e->t[t].expiry_ms > now_ms &&
				    keep(e->t[t].domain, arg))
					break;
			if (t < LEARNED_MAX_TEACHERS)
				continue;
			if (k == cap) {
				cap = cap ? cap * 2 : 64;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			memset(&v[k], 0, sizeof(v[k]));
			v[k].family = e->family;
			v[k].prefixlen = e->family == AF_INET ? 32 : 128;
			memcpy(v[k].addr, e->addr, alen_of(e->family));
			k++;
		}
	*out = v;
	*n = k;
	return 0;
}

void learned_forget(struct learned *lr, uint64_t now_ms,
		    const struct policy_addr *addr)
{
	struct entry *e = find(lr, addr->family, addr->addr);
	int t;

	if (!e || e->alive_ms <= now_ms)
		return;
	/* Expired now: reclaimable at once, its names kept a while */
	e->expiry_ms = e->alive_ms = now_ms;
	for (t = 0; t < LEARNED_MAX_TEACHERS; t++)
		if (e->t[t].expiry_ms > now_ms)
			e->t[t].expiry_ms = now_ms;
	lr->full_until_ms[fam_idx(e->family)] = 0;
	lr->stats.revoked++;
}

void learned_mark_stale(struct learned *lr)
{
	struct entry *e;
	size_t i;

	for (i = 0; i < lr->nbucket; i++)
		for (e = lr->bucket[i]; e; e = e->next)
			e->stale = true;
}

static bool is_gone(const struct entry *e, uint64_t now_ms, int family)
{
	return e->alive_ms + LEARNED_LINGER_MS < now_ms;
}

void learned_gc(struct learned *lr, uint64_t now_ms)
{
	sweep(lr, is_gone, now_ms, 0);
}

void learned_counts(const struct learned *lr, uint64_t now_ms, size_t *v4,
		    size_t *v6)
{
	const struct entry *e;
	size_t i;

	*v4 = *v6 = 0;
	for (i = 0; i < lr->nbucket; i++)
		for (e = lr->bucket[i]; e; e = e->next)
			if (e->alive_ms > now_ms)
				(*(e->family == AF_INET ? v4 : v6))++;
}

void learned_get_stats(const struct learned *lr, struct learned_stats *out)
{
	*out = lr->stats;
	out->v4 = lr->count[0];
	out->v6 = lr->count[1];
}
