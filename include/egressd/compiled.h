/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The compiled policy: one value built per apply from the user policy, the
 * always-rules and the settings, that every enforcer reads. It holds the
 * name matcher (DNS proxy), the address lists of the IP and CIDR rules
 * (allow, deny, DoH, DoH exceptions), each entry tagged with the rule it
 * came from (shared.h, EGRESSD_RULE_*), and the upstream resolvers. The
 * nftables config and the BPF policy are projections of it, so both layers
 * enforce the same lists and a violation can name the rule that decided
 * it: the BPF program reports the rule it found, nftables' drops are
 * looked up here by address. Immutable once built; the agent keeps the
 * applied one (and puts it back on rollback).
 */
#ifndef __EGRESSD_COMPILED_H
#define __EGRESSD_COMPILED_H

#include <stddef.h>
#include <stdint.h>

#include "egressd/bpfsync.h"
#include "egressd/config.h"
#include "egressd/nftsync.h"
#include "egressd/policy.h"

/* The address lists of a compiled policy. */
enum policy_compiled_list {
	/* allow.always, then the user's allow rules */
	POLICY_COMPILED_ALLOW = 0,
	/* deny.always, then the user's deny rules; beats allow at the IP
	 * layer whatever the order */
	POLICY_COMPILED_DENY = 1,
	/* the built-in DoH providers, then OPENSANDBOX_EGRESS_DOH_BLOCKLIST:
	 * blocked on 443 */
	POLICY_COMPILED_DOH = 2,
	/* the user's allow rules that name one address (a full prefix):
	 * they lift the DoH and DoT blocks for it (docs/nftables.md) */
	POLICY_COMPILED_DOH_EXC = 3,
	POLICY_COMPILED_LIST_MAX,
};

struct policy_compiled;

/*
 * Compile user (NULL: deny-all), the deny.always and allow.always rules
 * and cfg's settings (mode, IPv6, DoH blocklist, upstreams). The result
 * copies what it needs: the inputs may be freed afterwards. Entries of
 * OPENSANDBOX_EGRESS_DOH_BLOCKLIST that are not an address or CIDR are
 * left out (policy_compiled_ignored() lists them). 0, -ENOMEM, or -E2BIG
 * when a rule index does not fit a rule id (EGRESSD_RULE_INDEX_MASK);
 * err says which.
 */
int policy_compiled_new(struct policy_compiled **out, const struct policy *user,
			const struct policy_rule *deny_always, size_t n_deny,
			const struct policy_rule *allow_always, size_t n_allow,
			const struct egressd_config *cfg, char *err,
			size_t errlen);
void policy_compiled_free(struct policy_compiled *pc);

/* The name matcher, owned by pc (valid while pc is). */
const struct policy_matcher *
policy_compiled_matcher(const struct policy_compiled *pc);

/*
 * One list: n addresses and, for each, the rule id (EGRESSD_RULE_*) of the
 * rule that put it there. Owned by pc.
 */
const struct policy_addr *
policy_compiled_addrs(const struct policy_compiled *pc,
		      enum policy_compiled_list list, const uint32_t **rules,
		      size_t *n);

/*
 * The nftables projection: sets the policy fields of c (filter,
 * default_accept, ipv6_deny, block_all_443, the address lists, the DoH
 * list with the built-in providers included, and the upstreams) and leaves the others (cgroups, hand-off, API) to the
 * caller. The lists point into pc.
 */
void policy_compiled_nft(const struct policy_compiled *pc,
			 struct nftsync_config *c);

/*
 * The BPF projection, stamped with generation: the four static sets with
 * each prefix's rule id, the default verdict and the IPv6 mode. The sets
 * point into pc.
 */
void policy_compiled_bpf(const struct policy_compiled *pc, uint64_t generation,
			 struct bpfsync_policy *out);

/*
 * Which rule of list puts addr (family AF_INET or AF_INET6, 4 or 16
 * bytes, network order; IPv4-mapped IPv6 is looked up as IPv4) in it, as
 * the BPF maps answer: the longest prefix, and of equal prefixes the one
 * listed first. EGRESSD_RULE_NONE when none does. For nftables' drops,
 * which carry no rule: reason deny_rule asks POLICY_COMPILED_DENY, doh
 * POLICY_COMPILED_DOH.
 */
uint32_t policy_compiled_lookup(const struct policy_compiled *pc,
				enum policy_compiled_list list, int family,
				const void *addr);

/* A rule id's name on log lines: reason_rule_name() (reason.h). */

/* The OPENSANDBOX_EGRESS_DOH_BLOCKLIST entries left out, as written. */
const char *const *policy_compiled_ignored(const struct policy_compiled *pc,
					   size_t *n);

#endif /* __EGRESSD_COMPILED_H */
