// SPDX-License-Identifier: GPL-2.0-only
/*
 * What egressd counts as DoH/DoT: the built-in provider names and their
 * addresses. Two name lists: exact names of resolver endpoints on domains
 * that also serve other things (dns.quad9.net, not www.quad9.net), and
 * domains that exist only to serve DNS, where every name below counts too
 * (per-profile names like abc123.dns.nextdns.io). A lookup walks the
 * query's label suffixes; the lists are short, so a linear compare per
 * suffix is cheaper than hashing. The address list feeds the nftables
 * layer's DoH sets.
 */
#include <string.h>

#include "egressd/doh.h"

static const char *const provider_names[] = {
	"dns.google",
	"dns64.dns.google",
	"dns.quad9.net",
	"dns9.quad9.net",
	"dns10.quad9.net",
	"dns11.quad9.net",
	"dns12.quad9.net",
	"doh.opendns.com",
	"dns.opendns.com",
	"doh.familyshield.opendns.com",
	"dns.adguard.com",
	"dns-family.adguard.com",
	"dns-unfiltered.adguard.com",
	"doh.cleanbrowsing.org",
	"doh.mullvad.net",
	"dns.mullvad.net",
	"adblock.dns.mullvad.net",
	"base.dns.mullvad.net",
	"doh.dns.sb",
	"dot.sb",
	"dns.alidns.com",
	"doh.pub",
	"dot.pub",
	"dns.twnic.tw",
	"doh.libredns.gr",
	"dot.libredns.gr",
	"dns.switch.ch",
	"dns.digitale-gesellschaft.ch",
	"doh.ffmuc.net",
	"dot.ffmuc.net",
	"dns.njal.la",
	"dns.brahma.world",
	"odvr.nic.cz",
	"doh.applied-privacy.net",
	"dot1.applied-privacy.net",
	"dns.aa.net.uk",
	"chrome.cloudflare-dns.com",
	"mozilla.cloudflare-dns.com",
	"one.one.one.one",
	"1dot1dot1dot1.cloudflare-dns.com",
	"doh.xfinity.com",
	"dns.comss.one",
	"dns.decloudus.com",
	"doh.seby.io",
	"dns.rubyfish.cn",
	"doh.360.cn",
	"dns.umbrella.com",
	"dns.cloudflare.com",
	"security.cloudflare-dns.com",
	"family.cloudflare-dns.com",
};

/* Domains that serve nothing but DNS: the domain and all names below. */
static const char *const provider_domains[] = {
	"cloudflare-dns.com", "dns.google",	  "dns.nextdns.io",
	"adguard-dns.com",    "adguard-dns.io",	  "dns0.eu",
	"controld.com",	      "dns.controld.com", "doh.dns.apple.com",
	"dns.quad9.net",      "mask.icloud.com",  "mask-h2.icloud.com",
};

/*
 * Well-known DoH/DoT provider anycast addresses (docs/nftables.md lists
 * them with their operators). Blocked on 443 and, like every address, on
 * 853; OPENSANDBOX_EGRESS_DOH_BLOCKLIST adds to this list.
 */
static const char *const provider_addrs[] = {
	/* Cloudflare */
	"1.1.1.1",
	"1.0.0.1",
	"1.1.1.2",
	"1.0.0.2",
	"1.1.1.3",
	"1.0.0.3",
	"2606:4700:4700::1111",
	"2606:4700:4700::1001",
	"2606:4700:4700::1112",
	"2606:4700:4700::1002",
	"2606:4700:4700::1113",
	"2606:4700:4700::1003",
	/* Google */
	"8.8.8.8",
	"8.8.4.4",
	"2001:4860:4860::8888",
	"2001:4860:4860::8844",
	/* Quad9 */
	"9.9.9.9",
	"149.112.112.112",
	"9.9.9.10",
	"149.112.112.10",
	"9.9.9.11",
	"149.112.112.11",
	"2620:fe::fe",
	"2620:fe::9",
	"2620:fe::10",
	"2620:fe::fe:10",
	"2620:fe::11",
	"2620:fe::fe:11",
	/* OpenDNS (Cisco Umbrella) */
	"208.67.222.222",
	"208.67.220.220",
	"208.67.222.123",
	"208.67.220.123",
	"2620:119:35::35",
	"2620:119:53::53",
	/* AdGuard */
	"94.140.14.14",
	"94.140.15.15",
	"94.140.14.15",
	"94.140.15.16",
	"94.140.14.140",
	"94.140.14.141",
	"2a10:50c0::ad1:ff",
	"2a10:50c0::ad2:ff",
	/* CleanBrowsing */
	"185.228.168.9",
	"185.228.169.9",
	"185.228.168.168",
	"185.228.169.168",
	"185.228.168.10",
	"185.228.169.11",
	/* Mullvad */
	"194.242.2.2",
	"194.242.2.3",
	"194.242.2.4",
	"2a07:e340::2",
	/* NextDNS anycast */
	"45.90.28.0",
	"45.90.30.0",
	"2a07:a8c0::",
	"2a07:a8c1::",
	/* Control D */
	"76.76.2.0",
	"76.76.10.0",
	"2606:1a40::",
	"2606:1a40:1::",
	/* DNS.SB */
	"185.222.222.222",
	"45.11.45.11",
	"2a09::",
	"2a11::",
	/* AliDNS, DNSPod, TWNIC, 360 */
	"223.5.5.5",
	"223.6.6.6",
	"2400:3200::1",
	"2400:3200:baba::1",
	"1.12.12.12",
	"120.53.53.53",
	"101.101.101.101",
	"101.102.103.104",
	"2001:de4::101",
	"2001:de4::102",
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

const char *const *doh_provider_addrs(size_t *n)
{
	*n = sizeof(provider_addrs) / sizeof(provider_addrs[0]);
	return provider_addrs;
}
