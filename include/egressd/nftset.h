/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Inside the nftables layer: the named address sets of table inet egressd
 * and what they hold. Policy address lists become set elements here:
 * masked, sorted, merged into intervals (so contained prefixes and
 * duplicates disappear), or single addresses deduplicated.
 */
#ifndef __EGRESSD_NFTSET_H
#define __EGRESSD_NFTSET_H

#include <stdbool.h>
#include <stddef.h>

#include "egressd/nftbatch.h"
#include "egressd/policy.h"

enum nftset_idx {
	NFTSET_ALLOW4,
	NFTSET_ALLOW6,
	NFTSET_DENY4,
	NFTSET_DENY6,
	NFTSET_LEARNED4,
	NFTSET_LEARNED6,
	NFTSET_DOH4,
	NFTSET_DOH6,
	NFTSET_DOH_ALLOW4,
	NFTSET_DOH_ALLOW6,
	NFTSET_UPSTREAM4,
	NFTSET_UPSTREAM6,
	NFTSET_MAX,
};

/* Each pair is v4 then v6: NFTSET_ALLOW4 + 1 is NFTSET_ALLOW6. */
extern const struct nftbatch_set nftset_specs[NFTSET_MAX];

static inline bool nftset_is_learned(enum nftset_idx i)
{
	return i == NFTSET_LEARNED4 || i == NFTSET_LEARNED6;
}

/* Contents of every static set (learned sets stay empty here). */
struct nftset_contents {
	struct nftbatch_elem *e[NFTSET_MAX];
	size_t n[NFTSET_MAX];
};

/* From cfg (addresses checked by nftset_check_addrs() first). 0, -EINVAL
 * (a bad prefix length), -ENOMEM. */
int nftset_contents_build(const struct nftsync_config *cfg,
			  struct nftset_contents *sc);
void nftset_contents_free(struct nftset_contents *sc);

/* Single addresses of v of family f, deduplicated, as set elements. */
int nftset_hosts(const struct policy_addr *v, size_t n, int f,
		 struct nftbatch_elem **out, size_t *nout);

/* Every entry AF_INET or AF_INET6 with a prefix length that fits: 0 or
 * -EINVAL. */
int nftset_check_addrs(const struct policy_addr *v, size_t n);

#endif /* __EGRESSD_NFTSET_H */
