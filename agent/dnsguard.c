// SPDX-License-Identifier: GPL-2.0-only
/*
 * DNS rebinding protection (dnsguard.h): decides, per A/AAAA record of an
 * upstream answer, whether the sandbox may be told that address. The
 * checks run for every answer record, so they are a few compares on the
 * raw bytes; the namespace's own addresses come from getifaddrs(), read
 * again at most once a second (interfaces rarely change, and a stale list
 * errs only for a second after a change). IP/CIDR rules are kept in
 * effective order and searched linearly: they are few, and consulted only
 * for addresses already found special.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egressd/dnsguard.h"
#include "egressd/util.h"

#define DG_MAX_LOCAL 64
#define DG_LOCAL_REFRESH_MS 1000

struct dg_rule {
	struct policy_addr addr;
	bool allow;
};

struct dnsguard {
	bool block_private;
	struct dg_rule *rules;
	size_t n_rules;
	/* The namespace's interface addresses (16 bytes; IPv4 in [0..3]). */
	uint8_t local[DG_MAX_LOCAL][16];
	uint8_t local_fam[DG_MAX_LOCAL];
	size_t n_local;
	uint64_t local_at;
	bool local_valid;
};

int dnsguard_new(struct dnsguard **out, bool block_private)
{
	struct dnsguard *g;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->block_private = block_private;
	*out = g;
	return 0;
}

void dnsguard_free(struct dnsguard *g)
{
	if (!g)
		return;
	free(g->rules);
	free(g);
}

static size_t dg_count_addr_rules(const struct policy_rule *r, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += r[i].kind == POLICY_KIND_IP ||
		     r[i].kind == POLICY_KIND_CIDR;
	return k;
}

static void dg_copy_rules(struct dg_rule *out, size_t *k,
			  const struct policy_rule *r, size_t n, int force)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].kind != POLICY_KIND_IP &&
		    r[i].kind != POLICY_KIND_CIDR)
			continue;
		out[*k].addr = r[i].addr;
		/* force: 0 deny-always, 1 allow-always, -1 the rule says */
		out[*k].allow = force >= 0 ? force == 1 :
					     r[i].action == POLICY_ALLOW;
		(*k)++;
	}
}

int dnsguard_set_rules(struct dnsguard *g, const struct policy *user,
		       const struct policy_rule *deny_always, size_t n_deny,
		       const struct policy_rule *allow_always, size_t n_allow)
{
	size_t nu = user ? user->n_rules : 0, n, k = 0;
	struct dg_rule *nr = NULL;

	n = dg_count_addr_rules(deny_always, n_deny) +
	    dg_count_addr_rules(allow_always, n_allow) +
	    (user ? dg_count_addr_rules(user->rules, nu) : 0);
	if (n) {
		nr = calloc(n, sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		dg_copy_rules(nr, &k, deny_always, n_deny, 0);
		dg_copy_rules(nr, &k, allow_always, n_allow, 1);
		if (user)
			dg_copy_rules(nr, &k, user->rules, nu, -1);
	}
	free(g->rules);
	g->rules = nr;
	g->n_rules = n;
	return 0;
}

static bool dg_in4(const uint8_t *a, uint32_t net, unsigned int plen)
{
	uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
		     (uint32_t)a[2] << 8 | a[3];
	uint32_t mask = plen ? ~0u << (32 - plen) : 0;

	return (v & mask) == net;
}

static bool dg_special4(const uint8_t *a, bool block_private)
{
	if (dg_in4(a, 0x00000000, 8) || /* "this network", 0.0.0.0 */
	    dg_in4(a, 0x7f000000, 8) || /* loopback */
	    dg_in4(a, 0xa9fe0000, 16) || /* link-local, 169.254.169.254 */
	    dg_in4(a, 0xffffffff, 32)) /* limited broadcast */
		return true;
	return block_private &&
	       (dg_in4(a, 0x0a000000, 8) || dg_in4(a, 0xac100000, 12) ||
		dg_in4(a, 0xc0a80000, 16) || dg_in4(a, 0x64400000, 10));
}

bool dnsguard_addr_special(int family, const uint8_t *addr, bool block_private)
{
	static const uint8_t metadata6[16] = { 0xfd, 0x00,	  0x0e,
					       0xc2, [15] = 0x54, [14] = 0x02 };
	const struct in6_addr *a6 = (const void *)addr;

	if (family == AF_INET)
		return dg_special4(addr, block_private);
	if (util_is_v4mapped(addr))
		return dg_special4(addr + 12, block_private);
	if (IN6_IS_ADDR_UNSPECIFIED(a6) || IN6_IS_ADDR_LOOPBACK(a6) ||
	    IN6_IS_ADDR_LINKLOCAL(a6) || !memcmp(addr, metadata6, 16))
		return true;
	return block_private && (addr[0] & 0xfe) == 0xfc;
}

static void dg_local_refresh(struct dnsguard *g, uint64_t now_ms)
{
	struct ifaddrs *ifa, *i;

	if (g->local_valid && now_ms - g->local_at < DG_LOCAL_REFRESH_MS)
		return;
	g->local_at = now_ms;
	if (getifaddrs(&ifa) < 0)
		return; /* keep the last list */
	g->n_local = 0;
	for (i = ifa; i && g->n_local < DG_MAX_LOCAL; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;
		uint8_t *d = g->local[g->n_local];

		if (!sa)
			continue;
		memset(d, 0, 16);
		if (sa->sa_family == AF_INET)
			memcpy(d, &((const struct sockaddr_in *)sa)->sin_addr,
			       4);
		else if (sa->sa_family == AF_INET6)
			memcpy(d, &((const struct sockaddr_in6 *)sa)->sin6_addr,
			       16);
		else
			continue;
		g->local_fam[g->n_local++] = (uint8_t)sa->sa_family;
	}
	freeifaddrs(ifa);
	g->local_valid = true;
}

static bool dg_is_local(struct dnsguard *g, int family, const uint8_t *addr,
			uint64_t now_ms)
{
	dg_local_refresh(g, now_ms);
	for (size_t i = 0; i < g->n_local; i++)
		if (g->local_fam[i] == family &&
		    !memcmp(g->local[i], addr, family == AF_INET ? 4 : 16))
			return true;
	return false;
}

static bool dg_rule_has(const struct policy_addr *r, int family,
			const uint8_t *addr)
{
	unsigned int full = r->prefixlen / 8, rest = r->prefixlen % 8;

	if (r->family != family)
		return false;
	if (memcmp(r->addr, addr, full))
		return false;
	return !rest ||
	       !((r->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest)));
}

bool dnsguard_refuses(struct dnsguard *g, int family, const uint8_t *addr,
		      uint64_t now_ms)
{
	/* ::ffff:a.b.c.d is reached as a.b.c.d; rules store it so too. */
	if (family == AF_INET6 && util_is_v4mapped(addr)) {
		family = AF_INET;
		addr += 12;
	}
	if (!dnsguard_addr_special(family, addr, g->block_private) &&
	    !dg_is_local(g, family, addr, now_ms))
		return false;
	for (size_t i = 0; i < g->n_rules; i++)
		if (dg_rule_has(&g->rules[i].addr, family, addr))
			return !g->rules[i].allow;
	return true;
}
