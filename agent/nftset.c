// SPDX-License-Identifier: GPL-2.0-only
/*
 * The named sets of table inet egressd (include/egressd/nftset.h): their
 * specs and their contents, computed from the nftables config. Interval
 * sets (allow, deny, DoH) get masked, sorted and merged ranges in nft's
 * interval encoding; the others get single addresses, deduplicated. Also
 * the address checks every builder runs first, and the conversion of a
 * socket address into a policy address.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nf_tables.h>

#include "egressd/nftset.h"
#include "egressd/util.h"

const struct nftbatch_set nftset_specs[NFTSET_MAX] = {
	[NFTSET_ALLOW4] = { "allow_v4", AF_INET, NFT_SET_INTERVAL,
			    "static allow: IP/CIDR rules and allow.always" },
	[NFTSET_ALLOW6] = { "allow_v6", AF_INET6, NFT_SET_INTERVAL,
			    "static allow: IP/CIDR rules and allow.always" },
	[NFTSET_DENY4] = { "deny_v4", AF_INET, NFT_SET_INTERVAL,
			   "static deny: beats every allow" },
	[NFTSET_DENY6] = { "deny_v6", AF_INET6, NFT_SET_INTERVAL,
			   "static deny: beats every allow" },
	[NFTSET_LEARNED4] = { "learned_v4", AF_INET, NFT_SET_TIMEOUT,
			      "answers to allowed names, per-element lifetime" },
	[NFTSET_LEARNED6] = { "learned_v6", AF_INET6, NFT_SET_TIMEOUT,
			      "answers to allowed names, per-element lifetime" },
	[NFTSET_DOH4] = { "doh_v4", AF_INET, NFT_SET_INTERVAL,
			  "DoH providers: built-in list + DOH_BLOCKLIST" },
	[NFTSET_DOH6] = { "doh_v6", AF_INET6, NFT_SET_INTERVAL,
			  "DoH providers: built-in list + DOH_BLOCKLIST" },
	[NFTSET_DOH_ALLOW4] = { "doh_allow_v4", AF_INET, 0,
				"named exactly by an allow rule: DoH/DoT ok" },
	[NFTSET_DOH_ALLOW6] = { "doh_allow_v6", AF_INET6, 0,
				"named exactly by an allow rule: DoH/DoT ok" },
	[NFTSET_UPSTREAM4] = { "upstream_v4", AF_INET, 0,
			       "upstream resolvers, port 53 for egressd only" },
	[NFTSET_UPSTREAM6] = { "upstream_v6", AF_INET6, 0,
			       "upstream resolvers, port 53 for egressd only" },
};

int nftsync_addr_from_sockaddr(const struct sockaddr *sa,
			       struct policy_addr *out)
{
	const struct sockaddr_in6 *s6;
	const struct sockaddr_in *s4;

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)sa;
		out->family = AF_INET;
		out->prefixlen = 32;
		memcpy(out->addr, &s4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family != AF_INET6)
		return -EAFNOSUPPORT;
	s6 = (const struct sockaddr_in6 *)sa;
	if (util_is_v4mapped(&s6->sin6_addr)) {
		out->family = AF_INET;
		out->prefixlen = 32;
		memcpy(out->addr, (const uint8_t *)&s6->sin6_addr + 12, 4);
		return 0;
	}
	out->family = AF_INET6;
	out->prefixlen = 128;
	memcpy(out->addr, &s6->sin6_addr, 16);
	return 0;
}

/* ---- address normalisation ------------------------------------------ */

struct range {
	uint8_t lo[16];
	uint8_t hi[16];
};

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return memcmp(x->lo, y->lo, 16);
}

/* b + 1 over len big-endian bytes; true on wrap-around. */
static bool be_inc(uint8_t *b, size_t len)
{
	while (len--) {
		if (++b[len])
			return false;
	}
	return true;
}

/*
 * Append the ranges of v's family-f entries to *out: masked, sorted,
 * overlapping and adjacent ranges merged (so contained prefixes and
 * duplicates disappear). -EINVAL on a bad prefix length.
 */
static int ranges_build(const struct policy_addr *v, size_t n, int f,
			struct range **out, size_t *nout)
{
	size_t alen = nftbatch_alen(f), i, m = 0, bits, k;
	struct range *r;
	uint8_t mask;

	*out = NULL;
	*nout = 0;
	if (!n)
		return 0;
	r = calloc(n, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (v[i].family != f)
			continue;
		if (v[i].prefixlen > alen * 8) {
			free(r);
			return -EINVAL;
		}
		for (k = 0; k < alen; k++) {
			bits = v[i].prefixlen > k * 8 ? v[i].prefixlen - k * 8 :
							0;
			mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));

			r[m].lo[k] = v[i].addr[k] & mask;
			r[m].hi[k] = v[i].addr[k] | (uint8_t)~mask;
		}
		m++;
	}
	qsort(r, m, sizeof(*r), range_cmp);
	for (i = 0, k = 0; i < m; i++) {
		uint8_t next[16];
		bool wrap;

		if (k) {
			memcpy(next, r[k - 1].hi, 16);
			wrap = be_inc(next, alen);
			/* overlapping or adjacent to the previous range */
			if (wrap || memcmp(r[i].lo, next, 16) <= 0) {
				if (memcmp(r[i].hi, r[k - 1].hi, 16) > 0)
					memcpy(r[k - 1].hi, r[i].hi, 16);
				continue;
			}
		}
		r[k++] = r[i];
	}
	*out = r;
	*nout = k;
	return 0;
}

/* Interval-set encoding: start element, then an INTERVAL_END element one
 * past the range (omitted when the range reaches the top address). */
static int ranges_to_elems(const struct range *r, size_t n, int f,
			   struct nftbatch_elem **out, size_t *nout)
{
	size_t alen = nftbatch_alen(f), i, m = 0;
	struct nftbatch_elem *e;

	*out = NULL;
	*nout = 0;
	if (!n)
		return 0;
	e = calloc(2 * n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		memcpy(e[m++].key, r[i].lo, alen);
		memcpy(e[m].key, r[i].hi, alen);
		if (!be_inc(e[m].key, alen))
			e[m++].end = true;
	}
	*out = e;
	*nout = m;
	return 0;
}

static bool ranges_cover(const struct range *r, size_t n, const uint8_t *a)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (memcmp(r[i].lo, a, 16) <= 0 && memcmp(a, r[i].hi, 16) <= 0)
			return true;
	return false;
}

static int elem_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct nftbatch_elem));
}

/*
 * Single addresses of family f, deduplicated; entries inside deny are
 * skipped. Prefix lengths are not looked at: every list given here holds
 * addresses only (the compiled policy's DoH exceptions and upstreams,
 * learned and forgotten addresses).
 */
static int hosts_build(const struct policy_addr *v, size_t n, int f,
		       const struct range *deny, size_t n_deny,
		       struct nftbatch_elem **out, size_t *nout)
{
	size_t alen = nftbatch_alen(f), i, m = 0, k;
	struct nftbatch_elem *e;

	*out = NULL;
	*nout = 0;
	if (!n)
		return 0;
	e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (v[i].family != f)
			continue;
		memcpy(e[m].key, v[i].addr, alen);
		if (deny && ranges_cover(deny, n_deny, e[m].key))
			continue;
		m++;
	}
	qsort(e, m, sizeof(*e), elem_cmp);
	for (i = 0, k = 0; i < m; i++)
		if (!k || memcmp(&e[i], &e[k - 1], sizeof(*e)))
			e[k++] = e[i];
	*out = e;
	*nout = k;
	return 0;
}

int nftset_check_addrs(const struct policy_addr *v, size_t n)
{
	size_t i;

	if (n && !v)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (v[i].family != AF_INET && v[i].family != AF_INET6)
			return -EINVAL;
		if (v[i].prefixlen > nftbatch_alen(v[i].family) * 8)
			return -EINVAL;
	}
	return 0;
}

void nftset_contents_free(struct nftset_contents *sc)
{
	int i;

	for (i = 0; i < NFTSET_MAX; i++)
		free(sc->e[i]);
}

static int intervals_into(struct nftset_contents *sc, enum nftset_idx idx,
			  const struct policy_addr *v, size_t n,
			  struct range **keep, size_t *nkeep)
{
	struct range *r;
	size_t nr;
	int err;

	err = ranges_build(v, n, nftset_specs[idx].family, &r, &nr);
	if (err)
		return err;
	err = ranges_to_elems(r, nr, nftset_specs[idx].family, &sc->e[idx],
			      &sc->n[idx]);
	if (keep && !err) {
		*keep = r;
		*nkeep = nr;
	} else {
		free(r);
	}
	return err;
}

int nftset_contents_build(const struct nftsync_config *cfg,
			  struct nftset_contents *sc)
{
	struct range *deny[2] = { NULL, NULL };
	size_t ndeny[2] = { 0, 0 };
	int err = 0, f;

	memset(sc, 0, sizeof(*sc));
	for (f = 0; f < 2 && !err; f++) {
		int fam = f ? AF_INET6 : AF_INET;

		err = intervals_into(sc, NFTSET_ALLOW4 + f, cfg->allow,
				     cfg->n_allow, NULL, NULL);
		if (!err)
			err = intervals_into(sc, NFTSET_DENY4 + f, cfg->deny,
					     cfg->n_deny, &deny[f], &ndeny[f]);
		if (!err)
			err = intervals_into(sc, NFTSET_DOH4 + f, cfg->doh,
					     cfg->n_doh, NULL, NULL);
		if (!err)
			err = hosts_build(cfg->doh_exceptions,
					  cfg->n_doh_exceptions, fam, deny[f],
					  ndeny[f],
					  &sc->e[NFTSET_DOH_ALLOW4 + f],
					  &sc->n[NFTSET_DOH_ALLOW4 + f]);
		if (!err)
			err = hosts_build(cfg->upstreams, cfg->n_upstreams, fam,
					  NULL, 0, &sc->e[NFTSET_UPSTREAM4 + f],
					  &sc->n[NFTSET_UPSTREAM4 + f]);
	}
	free(deny[0]);
	free(deny[1]);
	if (err)
		nftset_contents_free(sc);
	return err;
}

int nftset_hosts(const struct policy_addr *v, size_t n, int f,
		 struct nftbatch_elem **out, size_t *nout)
{
	return hosts_build(v, n, f, NULL, 0, out, nout);
}
