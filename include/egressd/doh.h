/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Well-known DNS-over-HTTPS / DNS-over-TLS provider names. A workload that
 * can resolve through one of them bypasses the DNS layer entirely, so the
 * DNS proxy answers them NXDOMAIN (reason "doh") unless a rule names the
 * provider exactly (docs/nftables.md, "DoH and DoT"). Their addresses are
 * blocked on 443/853 by the nftables layer (nftsync_doh_builtin()).
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

#endif /* __EGRESSD_DOH_H */
