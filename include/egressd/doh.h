/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Well-known DNS-over-HTTPS / DNS-over-TLS provider names. A workload that
 * can resolve through one of them bypasses the DNS layer entirely, so the
 * DNS proxy answers them NXDOMAIN (reason "doh") unless a rule names the
 * provider exactly (docs/nftables.md, "DoH and DoT"). Their well-known
 * anycast addresses are listed here too: the nftables layer blocks them
 * on 443 (set doh_v4/doh_v6), so a client that skips DNS and dials
 * 1.1.1.1 directly meets the same wall.
 */
#ifndef __EGRESSD_DOH_H
#define __EGRESSD_DOH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Is name (lower case, optional trailing dot, as dnswire produces) a DoH
 * or DoT provider name: one of the listed names, or any name below a
 * domain that exists only to serve DNS (e.g. *.cloudflare-dns.com)?
 */
bool doh_is_provider_name(const char *name, size_t len);

/* The lists, for docs and tests. */
const char *const *doh_provider_names(size_t *n);
const char *const *doh_provider_domains(size_t *n);

/* The providers' anycast addresses, IPv4 and IPv6 in text form (each one
 * address, no prefix); OPENSANDBOX_EGRESS_DOH_BLOCKLIST adds to them. */
const char *const *doh_provider_addrs(size_t *n);

#endif /* __EGRESSD_DOH_H */
