// SPDX-License-Identifier: GPL-2.0-only
/*
 * The built-in DoH/DoT provider names. Two lists: exact names of resolver
 * endpoints on domains that also serve other things (dns.quad9.net, not
 * www.quad9.net), and domains that exist only to serve DNS, where every
 * name below counts too (per-profile names like abc123.dns.nextdns.io).
 * A lookup walks the query's label suffixes; the lists are short, so a
 * linear compare per suffix is cheaper than hashing.
 */
#include <string.h>

#include "egressd/doh.h"

static const char *const provider_names[] = {
	"dns.google",		"dns64.dns.google",
	"dns.quad9.net",	"dns9.quad9.net",
	"dns10.quad9.net",	"dns11.quad9.net",
	"dns12.quad9.net",	"doh.opendns.com",
	"dns.opendns.com",	"doh.familyshield.opendns.com",
	"dns.adguard.com",	"dns-family.adguard.com",
	"dns-unfiltered.adguard.com", "doh.cleanbrowsing.org",
	"doh.mullvad.net",	"dns.mullvad.net",
	"adblock.dns.mullvad.net", "base.dns.mullvad.net",
	"doh.dns.sb",		"dot.sb",
	"dns.alidns.com",	"doh.pub",
	"dot.pub",		"dns.twnic.tw",
	"doh.libredns.gr",	"dot.libredns.gr",
	"dns.switch.ch",	"dns.digitale-gesellschaft.ch",
	"doh.ffmuc.net",	"dot.ffmuc.net",
	"dns.njal.la",		"dns.brahma.world",
	"odvr.nic.cz",		"doh.applied-privacy.net",
	"dot1.applied-privacy.net", "dns.aa.net.uk",
	"chrome.cloudflare-dns.com", "mozilla.cloudflare-dns.com",
	"one.one.one.one",	"1dot1dot1dot1.cloudflare-dns.com",
	"doh.xfinity.com",	"dns.comss.one",
	"dns.decloudus.com",	"doh.seby.io",
	"dns.rubyfish.cn",	"doh.360.cn",
	"dns.umbrella.com",	"dns.cloudflare.com",
	"security.cloudflare-dns.com", "family.cloudflare-dns.com",
};

/* Domains that serve nothing but DNS: the domain and all names below. */
static const char *const provider_domains[] = {
	"cloudflare-dns.com", "dns.google",	  "dns.nextdns.io",
	"adguard-dns.com",    "adguard-dns.io",	  "dns0.eu",
	"controld.com",	      "dns.controld.com", "doh.dns.apple.com",
	"dns.quad9.net",      "mask.icloud.com",  "mask-h2.icloud.com",
};

const char *const *doh_provider_names(size_t *n)
{
	*n = sizeof(provider_names) / sizeof(provider_names[0]);
	return provider_names;
}

const char *const *doh_provider_domains(size_t *n)
{
	*n = sizeof(provider_domains) / sizeof(provider_domains[0]);
	return provider_domains;
}

static bool in_list(const char *const *list, size_t n, const char *s,
		    size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strlen(list[i]) == len && !memcmp(list[i], s, len))
			return true;
	return false;
}

bool doh_is_provider_name(const char *name, size_t len)
{
	size_t nd = sizeof(provider_domains) / sizeof(provider_domains[0]);
	size_t nn = sizeof(provider_names) / sizeof(provider_names[0]);
	size_t i;

	if (len && name[len - 1] == '.')
		len--;
	if (in_list(provider_names, nn, name, len))
		return true;
	/* The name itself, then every suffix right of a dot. */
	if (in_list(provider_domains, nd, name, len))
		return true;
	for (i = 0; i < len; i++)
		if (name[i] == '.' &&
		    in_list(provider_domains, nd, name + i + 1, len - i - 1))
			return true;
	return false;
}
