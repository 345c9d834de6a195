/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What an answer may teach: DNS rebinding protection for the DNS proxy.
 * An allowed name must not hand the sandbox an address that reaches the
 * sandbox itself or its host's services: loopback, unspecified, link-local,
 * the namespace's own interface addresses and the cloud metadata
 * addresses, plus (OPENSANDBOX_EGRESS_BLOCK_PRIVATE_ANSWERS=1) RFC 1918,
 * 100.64.0.0/10 and fc00::/7. Such records are stripped from answers
 * unless an explicit IP/CIDR allow rule allows the address
 * (docs/dns-proxy.md, "Rebinding").
 */
#ifndef __EGRESSD_DNSGUARD_H
#define __EGRESSD_DNSGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egressd/policy.h"

struct dnsguard;

/* 0 or -ENOMEM (the only failure: no err buffer). */
int dnsguard_new(struct dnsguard **out, bool block_private);
void dnsguard_free(struct dnsguard *g);

/*
 * Keep the IP/CIDR rules of the effective list (policy.h: deny_always,
 * allow_always, then user's), in that order: the first one containing an
 * address decides whether it may be answered. Same arguments as
 * policy_matcher_new. 0 or -ENOMEM (the previous rules stay).
 */
int dnsguard_set_rules(struct dnsguard *g, const struct policy *user,
		       const struct policy_rule *deny_always, size_t n_deny,
		       const struct policy_rule *allow_always, size_t n_allow);

/*
 * Pure: is family/addr (4 or 16 network-order bytes; IPv4-mapped IPv6
 * counts as IPv4) loopback, unspecified, link-local or a metadata address,
 * or with block_private an RFC 1918, shared (100.64/10) or ULA address?
 * The namespace's own addresses are not known here.
 */
bool dnsguard_addr_special(int family, const uint8_t *addr, bool block_private);

/*
 * Must an answer not carry this address? Special (above) or one of the
 * namespace's interface addresses (re-read at most once a second, now_ms
 * monotonic), and no IP/CIDR allow rule is the first to contain it.
 */
bool dnsguard_refuses(struct dnsguard *g, int family, const uint8_t *addr,
		      uint64_t now_ms);

#endif /* __EGRESSD_DNSGUARD_H */
