// SPDX-License-Identifier: GPL-2.0-only
/*
 * Settings: every one has an OPENSANDBOX_EGRESS_* environment variable and
 * a long option, and the option wins. Values are validated here, once, so a
 * typo stops egressd at start with a message naming the setting instead of
 * surfacing later as a silent hole. docs/configuration.md and --help list
 * the same table; keep the three in step.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <linux/types.h>

#include "egressd/config.h"
#include "egressd/defaults.h"
#include "egressd/shared.h"
#include "egressd/util.h"

enum opt_id {
	OPT_MODE,
	OPT_RULES,
	OPT_POLICY_FILE,
	OPT_RULES_DIR,
	OPT_MAX_RULES,
	OPT_DNS_UPSTREAM,
	OPT_DNS_UPSTREAM_TIMEOUT,
	OPT_DNS_UPSTREAM_PROBE,
	OPT_DNS_UPSTREAM_PROBE_INTERVAL,
	OPT_DNS_LISTEN_PORT,
	OPT_RESOLV_CONF,
	OPT_AGENT_CGROUP,
	OPT_CGROUP,
	OPT_HOST_CGROUP2,
	OPT_BPF,
	OPT_BPF_PIN_DIR,
	OPT_IPV6,
	OPT_LEARN_TTL_MIN,
	OPT_LEARN_TTL_MAX,
	OPT_LEARN_GRACE,
	OPT_LEARN_MAX,
	OPT_BLOCK_PRIVATE_ANSWERS,
	OPT_FRAME_GUARD,
	OPT_ALLOW_HOST_NETWORK,
	OPT_BLOCK_DOH_443,
	OPT_DOH_BLOCKLIST,
	OPT_HTTP_ADDR,
	OPT_TOKEN,
	OPT_DENY_WEBHOOK,
	OPT_SANDBOX_ID,
	OPT_LOG_LEVEL,
	OPT_MAX,
	/* options without an environment variable */
	OPT_CLEANUP = 100,
	OPT_HELP,
	OPT_VERSION,
	OPT_CHECK_HOST_NETWORK,
};

struct opt_def {
	const char *name;
	const char *env;
	const char *def; /* default value, NULL for unset */
};

static const struct opt_def opt_defs[OPT_MAX] = {
	[OPT_MODE] = { "mode", "OPENSANDBOX_EGRESS_MODE", "dns" },
	[OPT_RULES] = { "rules", "OPENSANDBOX_EGRESS_RULES", NULL },
	[OPT_POLICY_FILE] = { "policy-file", "OPENSANDBOX_EGRESS_POLICY_FILE",
			      NULL },
	[OPT_RULES_DIR] = { "rules-dir", "OPENSANDBOX_EGRESS_RULES_DIR",
			    "/var/egress/rules" },
	[OPT_MAX_RULES] = { "max-rules", "OPENSANDBOX_EGRESS_MAX_RULES",
			    "4096" },
	[OPT_DNS_UPSTREAM] = { "dns-upstream",
			       "OPENSANDBOX_EGRESS_DNS_UPSTREAM", NULL },
	[OPT_DNS_UPSTREAM_TIMEOUT] = { "dns-upstream-timeout",
				       "OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT",
				       "5" },
	[OPT_DNS_UPSTREAM_PROBE] = { "dns-upstream-probe",
				     "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE",
				     "." },
	[OPT_DNS_UPSTREAM_PROBE_INTERVAL] = { "dns-upstream-probe-interval",
					      "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC",
					      "30" },
	[OPT_DNS_LISTEN_PORT] = { "dns-listen-port",
				  "OPENSANDBOX_EGRESS_DNS_LISTEN_PORT",
				  EGRESSD_DEFAULT_DNS_LISTEN_PORT_STR },
	[OPT_RESOLV_CONF] = { "resolv-conf", "OPENSANDBOX_EGRESS_RESOLV_CONF",
			      "/etc/resolv.conf" },
	[OPT_AGENT_CGROUP] = { "agent-cgroup",
			       "OPENSANDBOX_EGRESS_AGENT_CGROUP", NULL },
	[OPT_CGROUP] = { "cgroup", "OPENSANDBOX_EGRESS_CGROUP", NULL },
	[OPT_HOST_CGROUP2] = { "host-cgroup2",
			       "OPENSANDBOX_EGRESS_HOST_CGROUP2", NULL },
	[OPT_BPF] = { "bpf", "OPENSANDBOX_EGRESS_BPF", "enforce" },
	[OPT_BPF_PIN_DIR] = { "bpf-pin-dir", "OPENSANDBOX_EGRESS_BPF_PIN_DIR",
			      EGRESSD_DEFAULT_PIN_DIR },
	[OPT_IPV6] = { "ipv6", "OPENSANDBOX_EGRESS_IPV6", "allow" },
	[OPT_LEARN_TTL_MIN] = { "learn-ttl-min",
				"OPENSANDBOX_EGRESS_LEARN_TTL_MIN", "60" },
	[OPT_LEARN_TTL_MAX] = { "learn-ttl-max",
				"OPENSANDBOX_EGRESS_LEARN_TTL_MAX", "300" },
	[OPT_LEARN_GRACE] = { "learn-grace", "OPENSANDBOX_EGRESS_LEARN_GRACE",
			      "30" },
	/* shared.h's EGRESSD_MAX_LEARNED: one number for egressd and its maps. */
	[OPT_LEARN_MAX] = { "learn-max", "OPENSANDBOX_EGRESS_LEARN_MAX",
			    EGRESSD_STRINGIFY(EGRESSD_MAX_LEARNED) },
	[OPT_BLOCK_PRIVATE_ANSWERS] = { "block-private-answers",
					"OPENSANDBOX_EGRESS_BLOCK_PRIVATE_ANSWERS",
					"0" },
	[OPT_FRAME_GUARD] = { "frame-guard", "OPENSANDBOX_EGRESS_FRAME_GUARD",
			      "1" },
	[OPT_ALLOW_HOST_NETWORK] = { "allow-host-network",
				     "OPENSANDBOX_EGRESS_ALLOW_HOST_NETWORK",
				     "0" },
	[OPT_BLOCK_DOH_443] = { "block-doh-443",
				"OPENSANDBOX_EGRESS_BLOCK_DOH_443", "0" },
	[OPT_DOH_BLOCKLIST] = { "doh-blocklist",
				"OPENSANDBOX_EGRESS_DOH_BLOCKLIST", NULL },
	[OPT_HTTP_ADDR] = { "http-addr", "OPENSANDBOX_EGRESS_HTTP_ADDR",
			    EGRESSD_DEFAULT_HTTP_ADDR },
	[OPT_TOKEN] = { "token", "OPENSANDBOX_EGRESS_TOKEN", NULL },
	[OPT_DENY_WEBHOOK] = { "deny-webhook",
			       "OPENSANDBOX_EGRESS_DENY_WEBHOOK", NULL },
	[OPT_SANDBOX_ID] = { "sandbox-id", "OPENSANDBOX_EGRESS_SANDBOX_ID",
			     NULL },
	[OPT_LOG_LEVEL] = { "log-level", "OPENSANDBOX_EGRESS_LOG_LEVEL",
			    "info" },
};

static const char usage_text[] =
	"Usage: egressd [OPTION]...\n"
	"Enforce an egress policy (domains, IPs, CIDRs) in this network namespace.\n"
	"Every option also has an environment variable; the option wins.\n"
	"\n"
	"  --mode dns|dns+nft          OPENSANDBOX_EGRESS_MODE [dns]\n"
	"  --rules JSON                OPENSANDBOX_EGRESS_RULES: initial policy [deny all]\n"
	"  --policy-file PATH          OPENSANDBOX_EGRESS_POLICY_FILE: policy source, wins over --rules\n"
	"  --rules-dir DIR             OPENSANDBOX_EGRESS_RULES_DIR: deny.always, allow.always [/var/egress/rules]\n"
	"  --max-rules N               OPENSANDBOX_EGRESS_MAX_RULES: 0 = unlimited [4096]\n"
	"  --dns-upstream LIST         OPENSANDBOX_EGRESS_DNS_UPSTREAM: IP[:port],[v6]:port,... [resolv.conf]\n"
	"  --dns-upstream-probe NAME   OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE: health probe, . = \". NS\", else \"NAME A\" [.]\n"
	"  --dns-upstream-probe-interval S\n"
	"                              OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC: 1-3600 [30]\n"
	"  --dns-upstream-timeout S    OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT: seconds per try [5]\n"
	"  --dns-listen-port N         OPENSANDBOX_EGRESS_DNS_LISTEN_PORT: proxy port on 127.0.0.1/::1 [" EGRESSD_DEFAULT_DNS_LISTEN_PORT_STR
	"]\n"
	"  --resolv-conf PATH          OPENSANDBOX_EGRESS_RESOLV_CONF: upstreams when none given [/etc/resolv.conf]\n"
	"  --agent-cgroup PATH         OPENSANDBOX_EGRESS_AGENT_CGROUP: cgroup v2 to run egressd in [its own]\n"
	"  --cgroup PATH               OPENSANDBOX_EGRESS_CGROUP: cgroup to attach BPF to [the sandbox cgroup]\n"
	"  --host-cgroup2 DIR          OPENSANDBOX_EGRESS_HOST_CGROUP2: where the host's cgroup2 is mounted [unset]\n"
	"  --bpf enforce|observe|off   OPENSANDBOX_EGRESS_BPF [enforce]\n"
	"  --bpf-pin-dir DIR           OPENSANDBOX_EGRESS_BPF_PIN_DIR [" EGRESSD_DEFAULT_PIN_DIR
	"]\n"
	"  --ipv6 allow|deny           OPENSANDBOX_EGRESS_IPV6 [allow]\n"
	"  --learn-ttl-min S           OPENSANDBOX_EGRESS_LEARN_TTL_MIN [60]\n"
	"  --learn-ttl-max S           OPENSANDBOX_EGRESS_LEARN_TTL_MAX [300]\n"
	"  --learn-grace S             OPENSANDBOX_EGRESS_LEARN_GRACE [30]\n"
	"  --learn-max N               OPENSANDBOX_EGRESS_LEARN_MAX: learned addresses per family [" EGRESSD_STRINGIFY(
		EGRESSD_MAX_LEARNED) "]\n"
				     "  --block-private-answers B   OPENSANDBOX_EGRESS_BLOCK_PRIVATE_ANSWERS: strip private-range answers too [0]\n"
				     "  --frame-guard B             OPENSANDBOX_EGRESS_FRAME_GUARD: judge frames of packet sockets (table netdev egressd) [1]\n"
				     "  --allow-host-network B      OPENSANDBOX_EGRESS_ALLOW_HOST_NETWORK [0]\n"
				     "  --block-doh-443 B           OPENSANDBOX_EGRESS_BLOCK_DOH_443 [0]\n"
				     "  --doh-blocklist LIST        OPENSANDBOX_EGRESS_DOH_BLOCKLIST: extra DoH IPs/CIDRs\n"
				     "  --http-addr ADDR            OPENSANDBOX_EGRESS_HTTP_ADDR [" EGRESSD_DEFAULT_HTTP_ADDR
				     "]\n"
				     "  --token TOKEN               OPENSANDBOX_EGRESS_TOKEN: API token (header or Bearer)\n"
				     "  --deny-webhook URL          OPENSANDBOX_EGRESS_DENY_WEBHOOK\n"
				     "  --sandbox-id ID             OPENSANDBOX_EGRESS_SANDBOX_ID\n"
				     "  --log-level LEVEL           OPENSANDBOX_EGRESS_LOG_LEVEL: debug|info|warn|error [info]\n"
				     "  --cleanup                   remove the nftables tables and BPF pins egressd owns, then exit\n"
				     "                              (refused while an egressd runs in this namespace)\n"
				     "  --check-host-network        only say whether this namespace looks like the host's (exit 1) or not (0)\n"
				     "  -h, --help                  show this help and exit\n"
				     "  --version                   show the version and exit\n"
				     "\n"
				     "B is a boolean: 1/true/yes/on or 0/false/no/off. stdout carries only JSON\n"
				     "log lines (docs/logs.md); start-up errors go to stderr with a non-zero exit.\n";

const char *config_mode_name(enum egressd_mode mode)
{
	return mode == EGRESSD_MODE_DNS_NFT ? "dns+nft" : "dns";
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "y", "on" };
	static const char *const no[] = { "0", "false", "no", "n", "off", "" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	return -EINVAL;
}

static int parse_uint(const char *v, unsigned long min, unsigned long max,
		      unsigned long *out)
{
	unsigned long n;
	char *end;

	if (!*v || *v == '-' || *v == '+')
		return -EINVAL;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n < min || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

/* "1", "0.5", "2.25" seconds -> ms. */
static int parse_seconds_ms(const char *v, unsigned int min_ms,
			    unsigned int max_ms, unsigned int *out)
{
	double d;
	char *end;

	if (!*v)
		return -EINVAL;
	errno = 0;
	d = strtod(v, &end);
	if (errno || *end || d != d || d * 1000 < min_ms || d * 1000 > max_ms)
		return -EINVAL;
	*out = (unsigned int)(d * 1000 + 0.5);
	return 0;
}

static int parse_mode(const char *v, enum egressd_mode *out)
{
	bool dns = false, nft = false;
	char buf[64], *tok, *save = NULL;

	if (strlen(v) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, v);
	for (tok = strtok_r(buf, "+", &save); tok;
	     tok = strtok_r(NULL, "+", &save)) {
		tok = trim(tok);
		if (!strcasecmp(tok, "dns"))
			dns = true;
		else if (!strcasecmp(tok, "nft"))
			nft = true;
		else
			return -EINVAL;
	}
	if (!dns)
		return -EINVAL;
	*out = nft ? EGRESSD_MODE_DNS_NFT : EGRESSD_MODE_DNS;
	return 0;
}

static void upstream_format(struct egressd_upstream *u)
{
	char ip[INET6_ADDRSTRLEN];

	if (u->addr.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&u->addr;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(u->text, sizeof(u->text), "%s:%u", ip,
			 ntohs(sin->sin_port));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&u->addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(u->text, sizeof(u->text), "[%s]:%u", ip,
			 ntohs(sin6->sin6_port));
	}
}

/*
 * One "IP", "IP:port", "[v6]", "[v6]:port" or bare v6 into u. On -EINVAL
 * *why says what is wrong, so a bad port is not reported as a host name.
 */
static int parse_one_upstream(const char *s, struct egressd_upstream *u,
			      const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL, *p;
	unsigned long portnum = EGRESSD_PORT_DNS;
	size_t hlen;

	memset(u, 0, sizeof(*u));
	*why = "not an IP address with an optional port (host names are not accepted: egressd would need DNS to find its DNS)";
	if (*s == '[') {
		p = strchr(s, ']');
		if (!p) {
			*why = "has no closing ] after the IPv6 address";
			return -EINVAL;
		}
		hlen = p - s - 1;
		if (p[1] == ':')
			port = p + 2;
		else if (p[1])
			return -EINVAL;
		s++;
	} else if ((p = strchr(s, ':')) && !strchr(p + 1, ':')) {
		hlen = p - s; /* exactly one colon: IPv4:port */
		port = p + 1;
	} else {
		hlen = strlen(s); /* bare IPv4 or IPv6 */
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (port && parse_uint(port, 1, 65535, &portnum)) {
		*why = "has a bad port: expected 1-65535";
		return -EINVAL;
	}

	if (strchr(host, '%')) {
		*why = "has an IPv6 zone (%...): zoned addresses are not supported";
		return -EINVAL;
	}
	if (inet_pton(AF_INET, host,
		      &((struct sockaddr_in *)&u->addr)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&u->addr;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(portnum);
		u->addrlen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host,
			     &((struct sockaddr_in6 *)&u->addr)->sin6_addr) ==
		   1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&u->addr;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(portnum);
		u->addrlen = sizeof(*sin6);
	} else {
		return -EINVAL;
	}
	upstream_format(u);
	return 0;
}

static bool upstream_is_unspecified(const struct egressd_upstream *u)
{
	if (u->addr.ss_family == AF_INET)
		return ((struct sockaddr_in *)&u->addr)->sin_addr.s_addr ==
		       htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(
		&((struct sockaddr_in6 *)&u->addr)->sin6_addr);
}

static int upstream_add(struct egressd_upstream *out, int max, int *n,
			const struct egressd_upstream *u)
{
	int i;

	for (i = 0; i < *n; i++)
		if (!strcmp(out[i].text, u->text))
			return 0; /* duplicate */
	if (*n >= max)
		return -E2BIG;
	out[(*n)++] = *u;
	return 0;
}

int config_parse_upstreams(const char *s, struct egressd_upstream *out, int max,
			   int *n, char *err, size_t errlen)
{
	char *copy, *tok, *save = NULL;
	struct egressd_upstream u;
	const char *why;
	int ret = 0;

	*n = 0;
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		if (!*tok)
			continue;
		if (parse_one_upstream(tok, &u, &why)) {
			ret = util_err(err, errlen, -EINVAL,
				       "DNS upstream \"%s\" %s", tok, why);
			break;
		}
		if (upstream_is_unspecified(&u)) {
			ret = util_err(
				err, errlen, -EINVAL,
				"DNS upstream \"%s\" is the unspecified address: give the resolver's own address",
				tok);
			break;
		}
		if (upstream_add(out, max, n, &u)) {
			ret = util_err(err, errlen, -EINVAL,
				       "more than %d DNS upstreams given", max);
			break;
		}
	}
	free(copy);
	if (!ret && *n == 0)
		ret = util_err(err, errlen, -EINVAL,
			       "the DNS upstream list is empty");
	return ret;
}

int config_read_resolv_conf(const char *path, struct egressd_upstream *out,
			    int max, int *n, char *err, size_t errlen)
{
	struct egressd_upstream u;
	const char *why;
	char line[512];
	FILE *f;
	int ret = 0;

	*n = 0;
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path,
			 strerror(-ret));
		return ret;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p = trim(line), *addr;

		if (strncmp(p, "nameserver", 10) ||
		    (p[10] != ' ' && p[10] != '\t'))
			continue;
		addr = trim(p + 10);
		addr[strcspn(addr, " \t#;")] = '\0';
		/* resolv.conf holds bare addresses; a port is not allowed. */
		if (strchr(addr, '[') || parse_one_upstream(addr, &u, &why) ||
		    upstream_is_unspecified(&u))
			continue;
		if (upstream_add(out, max, n, &u))
			break; /* the rest is ignored, as libc does */
	}
	fclose(f);
	if (*n == 0)
		ret = util_err(
			err, errlen, -EINVAL,
			"no usable nameserver line in %s: set OPENSANDBOX_EGRESS_DNS_UPSTREAM (or --dns-upstream) to the resolver(s) egressd should forward to",
			path);
	return ret;
}

/*
 * getopt_long's ':' (value missing) or '?' (anything else) for arg, the
 * word it stopped at, as a message: "--help=1" is a known option given a
 * value, "-x" an unknown short one (reported by its letter, as it may sit
 * in a cluster).
 */
static int option_error(int c, const char *arg, const struct option *longopts,
			char *err, size_t errlen)
{
	const char *eq;
	size_t i;

	if (c == ':')
		return util_err(err, errlen, -EINVAL,
				"option %s needs a value (see --help)", arg);
	if (strncmp(arg, "--", 2))
		return util_err(err, errlen, -EINVAL,
				"unknown option -%c (see --help)", optopt);
	eq = strchr(arg, '=');
	for (i = 0; eq && longopts[i].name; i++)
		if (strlen(longopts[i].name) == (size_t)(eq - arg - 2) &&
		    !strncmp(longopts[i].name, arg + 2, eq - arg - 2))
			return util_err(
				err, errlen, -EINVAL,
				"option --%s takes no value (see --help)",
				longopts[i].name);
	return util_err(err, errlen, -EINVAL, "unknown option %s (see --help)",
			arg);
}

/* A TCP port, decimal, 0-65535 (0: any free port, for tests). */
static int parse_port(const char *s, int *port)
{
	unsigned long v = 0;
	size_t i, n = strlen(s);

	if (!n || n > 5)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

int config_parse_listen_addr(const char *addr, struct sockaddr_storage *ss,
			     socklen_t *sslen, bool *any, char *err,
			     size_t errlen)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	char host[INET6_ADDRSTRLEN + 8];
	const char *colon, *p;
	size_t hlen;
	int port;

	if (!addr || !*addr)
		addr = EGRESSD_DEFAULT_HTTP_ADDR;
	memset(ss, 0, sizeof(*ss));
	*any = false;
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return util_err(err, errlen, -EINVAL,
					"expected [IPv6]:port");
		hlen = close - addr - 1;
		p = close + 2;
		if (hlen >= sizeof(host))
			goto bad_host;
		memcpy(host, addr + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto bad_host;
		if (parse_port(p, &port))
			goto bad_port;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*sslen = sizeof(*s6);
		return 0;
	}
	colon = strrchr(addr, ':');
	if (!colon)
		return util_err(
			err, errlen, -EINVAL,
			"missing port (expected HOST:PORT, :PORT or [IPv6]:PORT)");
	hlen = colon - addr;
	p = colon + 1;
	if (memchr(addr, ':', hlen))
		return util_err(err, errlen, -EINVAL,
				"write an IPv6 address as [addr]:port");
	if (parse_port(p, &port))
		goto bad_port;
	if (!hlen) {
		/* All interfaces: IPv6 socket accepting IPv4 too. */
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;
		s6->sin6_port = htons(port);
		*sslen = sizeof(*s6);
		*any = true;
		return 0;
	}
	if (hlen >= sizeof(host))
		goto bad_host;
	memcpy(host, addr, hlen);
	host[hlen] = '\0';
	if (!strcasecmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		goto bad_host;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	*sslen = sizeof(*s4);
	return 0;

bad_host:
	return util_err(err, errlen, -EINVAL,
			"host must be an IP address, \"localhost\" or empty");
bad_port:
	return util_err(err, errlen, -EINVAL, "port must be a number 0-65535");
}

/*
 * The upstream health probe's name: "." (or blanks) asks ". NS", as the
 * peer does; anything else is a host name asked as "NAME A", stored
 * lower-case without its trailing dot ("" for the root). A name the
 * probe could not carry is refused here rather than making every probe
 * fail, which would look like dead upstreams.
 */
static int parse_probe_name(const char *v, char *out, size_t outlen)
{
	size_t b = strspn(v, " \t"), n = strlen(v + b), label = 0, i;

	while (n && (v[b + n - 1] == ' ' || v[b + n - 1] == '\t'))
		n--;
	if (n && v[b + n - 1] == '.')
		n--;
	if (n > 253 || n >= outlen)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		char c = v[b + i];

		if (c == '.') {
			if (!label)
				return -EINVAL;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
		out[i] = (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
	}
	/* "." alone trims to "", the root; "a..b" and ".a" were refused. */
	if (n && !label)
		return -EINVAL;
	out[n] = '\0';
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int load(struct egressd_config *cfg, int argc, char **argv, char *err,
		size_t errlen)
{
	struct option longopts[OPT_MAX + 5];
	const char *vals[OPT_MAX];
	unsigned long ul;
	const char *v;
	bool flag_help = false, flag_version = false;
	int i, c, ret;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < OPT_MAX; i++) {
		v = getenv(opt_defs[i].env);
		/* Set to "" or blanks: unset, as the peer reads it (a
		 * template that renders an empty value means "default"). */
		vals[i] = v && v[strspn(v, " \t")] ? v : opt_defs[i].def;
		longopts[i] = (struct option){ opt_defs[i].name,
					       required_argument, NULL, i };
	}
	longopts[OPT_MAX] =
		(struct option){ "cleanup", no_argument, NULL, OPT_CLEANUP };
	longopts[OPT_MAX + 1] =
		(struct option){ "help", no_argument, NULL, OPT_HELP };
	longopts[OPT_MAX + 2] =
		(struct option){ "version", no_argument, NULL, OPT_VERSION };
	longopts[OPT_MAX + 3] = (struct option){ "check-host-network",
						 no_argument, NULL,
						 OPT_CHECK_HOST_NETWORK };
	longopts[OPT_MAX + 4] = (struct option){ NULL, 0, NULL, 0 };

	/* The leading ':' makes a missing value ':' and anything else '?',
	 * so neither is told apart by optopt (0 is --mode's id). */
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c >= 0 && c < OPT_MAX)
			vals[c] = optarg;
		else if (c == OPT_CLEANUP)
			cfg->cleanup = true;
		else if (c == OPT_HELP || c == 'h')
			flag_help = true;
		else if (c == OPT_VERSION)
			flag_version = true;
		else if (c == OPT_CHECK_HOST_NETWORK)
			cfg->check_host_network = true;
		else
			return option_error(c, argv[optind - 1], longopts, err,
					    errlen);
	}
	if (optind < argc)
		return util_err(err, errlen, -EINVAL,
				"unexpected argument \"%s\" (see --help)",
				argv[optind]);
	if (flag_help) {
		fputs(usage_text, stdout);
		return 1;
	}
	if (flag_version) {
		printf("egressd %s\n", EGRESSD_VERSION);
		return 1;
	}

#define BAD(id, what)                                                         \
	util_err(err, errlen, -EINVAL, "%s / --%s: invalid value \"%s\": %s", \
		 opt_defs[id].env, opt_defs[id].name, vals[id], what)

	if (parse_mode(vals[OPT_MODE], &cfg->mode))
		return BAD(OPT_MODE, "expected dns or dns+nft");
	if (parse_uint(vals[OPT_MAX_RULES], 0, INT_MAX, &ul))
		return BAD(OPT_MAX_RULES,
			   "expected a whole number, 0 = unlimited");
	cfg->max_rules = ul;
	if (parse_seconds_ms(vals[OPT_DNS_UPSTREAM_TIMEOUT], 1, 120000,
			     &cfg->upstream_timeout_ms))
		return BAD(OPT_DNS_UPSTREAM_TIMEOUT,
			   "expected seconds, more than 0 and at most 120");
	if (parse_probe_name(vals[OPT_DNS_UPSTREAM_PROBE], cfg->upstream_probe,
			     sizeof(cfg->upstream_probe)))
		return BAD(OPT_DNS_UPSTREAM_PROBE,
			   "expected \".\" (root NS) or a domain name "
			   "(letters, digits, '-', '_'; labels of 1-63, "
			   "at most 253 in all)");
	if (parse_uint(vals[OPT_DNS_UPSTREAM_PROBE_INTERVAL], 1, 3600, &ul))
		return BAD(OPT_DNS_UPSTREAM_PROBE_INTERVAL,
			   "expected whole seconds 1-3600");
	cfg->upstream_probe_interval_s = ul;
	if (parse_uint(vals[OPT_DNS_LISTEN_PORT], 1, 65535, &ul))
		return BAD(OPT_DNS_LISTEN_PORT, "expected a port 1-65535");
	cfg->dns_listen_port = ul;

	if (!strcasecmp(vals[OPT_BPF], "enforce"))
		cfg->bpf_mode = EGRESSD_BPF_ENFORCE;
	else if (!strcasecmp(vals[OPT_BPF], "observe"))
		cfg->bpf_mode = EGRESSD_BPF_OBSERVE;
	else if (!strcasecmp(vals[OPT_BPF], "off"))
		cfg->bpf_mode = EGRESSD_BPF_OFF;
	else
		return BAD(OPT_BPF, "expected enforce, observe or off");

	if (!strcasecmp(vals[OPT_IPV6], "allow"))
		cfg->ipv6 = EGRESSD_IPV6_ALLOW;
	else if (!strcasecmp(vals[OPT_IPV6], "deny"))
		cfg->ipv6 = EGRESSD_IPV6_DENY;
	else
		return BAD(OPT_IPV6, "expected allow or deny");

	if (parse_uint(vals[OPT_LEARN_TTL_MIN], 1, 86400, &ul))
		return BAD(OPT_LEARN_TTL_MIN, "expected seconds 1-86400");
	cfg->learn_ttl_min = ul;
	if (parse_uint(vals[OPT_LEARN_TTL_MAX], 1, 86400, &ul))
		return BAD(OPT_LEARN_TTL_MAX, "expected seconds 1-86400");
	cfg->learn_ttl_max = ul;
	/* Blame the one that was set: a minimum above the default maximum
	 * is the minimum's fault. */
	if (cfg->learn_ttl_max < cfg->learn_ttl_min) {
		char why[96];

		if (vals[OPT_LEARN_TTL_MAX] ==
		    opt_defs[OPT_LEARN_TTL_MAX].def) {
			snprintf(
				why, sizeof(why),
				"must not be above OPENSANDBOX_EGRESS_LEARN_TTL_MAX (%u)",
				cfg->learn_ttl_max);
			return BAD(OPT_LEARN_TTL_MIN, why);
		}
		snprintf(
			why, sizeof(why),
			"must not be below OPENSANDBOX_EGRESS_LEARN_TTL_MIN (%u)",
			cfg->learn_ttl_min);
		return BAD(OPT_LEARN_TTL_MAX, why);
	}
	if (parse_uint(vals[OPT_LEARN_GRACE], 0, 86400, &ul))
		return BAD(OPT_LEARN_GRACE, "expected seconds 0-86400");
	cfg->learn_grace = ul;
	if (parse_uint(vals[OPT_LEARN_MAX], CONFIG_LEARN_MAX_MIN,
		       CONFIG_LEARN_MAX_MAX, &ul))
		return BAD(OPT_LEARN_MAX, "expected a number of addresses "
					  "16-1048576");
	cfg->learn_max = ul;

	if (parse_bool(vals[OPT_BLOCK_PRIVATE_ANSWERS],
		       &cfg->block_private_answers))
		return BAD(OPT_BLOCK_PRIVATE_ANSWERS, "expected a boolean");
	if (parse_bool(vals[OPT_FRAME_GUARD], &cfg->frame_guard))
		return BAD(OPT_FRAME_GUARD, "expected a boolean");
	if (parse_bool(vals[OPT_ALLOW_HOST_NETWORK], &cfg->allow_host_network))
		return BAD(OPT_ALLOW_HOST_NETWORK, "expected a boolean");
	if (parse_bool(vals[OPT_BLOCK_DOH_443], &cfg->block_doh_443))
		return BAD(OPT_BLOCK_DOH_443, "expected a boolean");

	if (log_parse_level(vals[OPT_LOG_LEVEL], &cfg->log_level))
		return BAD(OPT_LOG_LEVEL,
			   "expected debug, info, warn or error");
	if (vals[OPT_SANDBOX_ID]) {
		const char *p;
		size_t n = 0;

		if (strlen(vals[OPT_SANDBOX_ID]) > 256)
			return BAD(OPT_SANDBOX_ID, "longer than 256 bytes");
		for (p = vals[OPT_SANDBOX_ID]; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return BAD(OPT_SANDBOX_ID,
					   "contains a control character");
		if (log_json_str(NULL, 0, &n, vals[OPT_SANDBOX_ID]))
			return BAD(OPT_SANDBOX_ID, "not valid UTF-8");
	}
	/* Checked here, before any kernel layer is installed; api_new
	 * parses it again when it binds. */
	{
		struct sockaddr_storage ss;
		socklen_t sslen;
		char why[160];
		bool any;

		if (config_parse_listen_addr(vals[OPT_HTTP_ADDR], &ss, &sslen,
					     &any, why, sizeof(why)))
			return BAD(OPT_HTTP_ADDR, why);
	}
#undef BAD

	cfg->rules_json = dup_or_null(vals[OPT_RULES]);
	cfg->policy_file = vals[OPT_POLICY_FILE] && *vals[OPT_POLICY_FILE] ?
				   strdup(vals[OPT_POLICY_FILE]) :
				   NULL;
	cfg->rules_dir = dup_or_null(vals[OPT_RULES_DIR]);
	cfg->resolv_conf = dup_or_null(vals[OPT_RESOLV_CONF]);
	cfg->agent_cgroup = vals[OPT_AGENT_CGROUP] && *vals[OPT_AGENT_CGROUP] ?
				    strdup(vals[OPT_AGENT_CGROUP]) :
				    NULL;
	cfg->workload_cgroup = vals[OPT_CGROUP] && *vals[OPT_CGROUP] ?
				       strdup(vals[OPT_CGROUP]) :
				       NULL;
	cfg->host_cgroup2 = vals[OPT_HOST_CGROUP2] && *vals[OPT_HOST_CGROUP2] ?
				    strdup(vals[OPT_HOST_CGROUP2]) :
				    NULL;
	cfg->bpf_pin_dir = dup_or_null(vals[OPT_BPF_PIN_DIR]);
	cfg->doh_blocklist = dup_or_null(vals[OPT_DOH_BLOCKLIST]);
	cfg->http_addr = dup_or_null(vals[OPT_HTTP_ADDR]);
	cfg->token = vals[OPT_TOKEN] && *vals[OPT_TOKEN] ?
			     strdup(vals[OPT_TOKEN]) :
			     NULL;
	cfg->deny_webhook = vals[OPT_DENY_WEBHOOK] && *vals[OPT_DENY_WEBHOOK] ?
				    strdup(vals[OPT_DENY_WEBHOOK]) :
				    NULL;
	cfg->sandbox_id = dup_or_null(vals[OPT_SANDBOX_ID]);

	if (cfg->cleanup || cfg->check_host_network)
		return 0; /* these need no upstream */

	if (vals[OPT_DNS_UPSTREAM] && strspn(vals[OPT_DNS_UPSTREAM], " \t,") !=
					      strlen(vals[OPT_DNS_UPSTREAM])) {
		ret = config_parse_upstreams(vals[OPT_DNS_UPSTREAM],
					     cfg->upstreams,
					     EGRESSD_MAX_UPSTREAMS,
					     &cfg->n_upstreams, err, errlen);
		if (ret)
			return ret;
	} else {
		ret = config_read_resolv_conf(cfg->resolv_conf, cfg->upstreams,
					      EGRESSD_MAX_UPSTREAMS,
					      &cfg->n_upstreams, err, errlen);
		if (ret)
			return ret;
		cfg->upstreams_from_resolv_conf = true;
	}
	/* IPv6 off rejects the agent's own v6 packets too. */
	for (i = 0; cfg->ipv6 == EGRESSD_IPV6_DENY && i < cfg->n_upstreams; i++)
		if (cfg->upstreams[i].addr.ss_family == AF_INET6 &&
		    !util_is_v4mapped(
			    &((struct sockaddr_in6 *)&cfg->upstreams[i].addr)
				     ->sin6_addr))
			return util_err(
				err, errlen, -EINVAL,
				"DNS upstream %s is IPv6 but OPENSANDBOX_EGRESS_IPV6=deny: egressd could not reach it; use an IPv4 upstream%s",
				cfg->upstreams[i].text,
				cfg->upstreams_from_resolv_conf ?
					" (set OPENSANDBOX_EGRESS_DNS_UPSTREAM)" :
					"");
	return 0;
}

/*
 * Settings of the peer that egressd does not implement. Accepting one
 * silently would let a deployment believe it is in force; each gets one
 * warning line at start saying what egressd does instead. A boolean
 * (is_bool) set to a false value asks for nothing egressd lacks, and
 * OPENSANDBOX_LOG_OUTPUT=stdout is what egressd does: no line for those.
 * docs/configuration.md, "Settings egressd does not implement", lists them.
 */
#define NO_MITM                                                            \
	"egressd has no TLS interception (mitmproxy): HTTPS is judged by " \
	"the name it resolved and the address it goes to, and nothing is " \
	"injected into requests"
#define NO_VAULT                                                             \
	"egressd has no credential vault: /credential-vault answers 404 to " \
	"reads and 412 to writes, as the peer does without mitmproxy"
#define NO_OTLP                                                             \
	"egressd exports no OTLP metrics: scrape GET /metrics (Prometheus " \
	"text, docs/api.md) instead"

static const struct unsupported_setting {
	const char *env;
	bool is_bool;
	const char *instead;
} unsupported[] = {
	{ "OPENSANDBOX_EGRESS_NAMESERVER_EXEMPT", false,
	  "the peer lets the sandbox query these resolvers directly, "
	  "unfiltered, which egressd does not allow on purpose: every query "
	  "of the sandbox is judged by the policy. egressd's own queries to "
	  "its upstreams are never filtered; to forward to these resolvers, "
	  "list them in OPENSANDBOX_EGRESS_DNS_UPSTREAM" },
	{ "OPENSANDBOX_EGRESS_MITMPROXY_TRANSPARENT", true, NO_MITM },
	{ "OPENSANDBOX_EGRESS_MITMPROXY_PORT", false, NO_MITM },
	{ "OPENSANDBOX_EGRESS_MITMPROXY_SCRIPT", false, NO_MITM },
	{ "OPENSANDBOX_EGRESS_MITMPROXY_UPSTREAM_TRUST_DIR", false, NO_MITM },
	{ "OPENSANDBOX_EGRESS_MITMPROXY_SSL_INSECURE", true, NO_MITM },
	{ "OPENSANDBOX_EGRESS_MITMPROXY_EXTRA_PORTS", false, NO_MITM },
	{ "OPENSANDBOX_CREDENTIAL_PROXY_SOCKET", false, NO_VAULT },
	{ "OPENSANDBOX_EGRESS_CREDENTIAL_VAULT_REQUIRE_TLS", true, NO_VAULT },
	{ "OPENSANDBOX_EGRESS_CREDENTIAL_VAULT_REQUIRE_SCOPED_MATCH", true,
	  NO_VAULT },
	{ "OPENSANDBOX_EGRESS_CREDENTIAL_VAULT_TRUSTED_PROXY_CIDRS", false,
	  NO_VAULT },
	{ "OTEL_EXPORTER_OTLP_ENDPOINT", false, NO_OTLP },
	{ "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", false, NO_OTLP },
	{ "OPENSANDBOX_EGRESS_METRICS_EXTRA_ATTRS", false,
	  "/metrics and the log carry no extra attributes: add labels when "
	  "scraping (Prometheus relabel_configs)" },
	{ "OPENSANDBOX_LOG_OUTPUT", false,
	  "egressd writes its log to stdout only (docs/logs.md): let the "
	  "container runtime collect it, or redirect stdout" },
};

int config_warn_unsupported(const struct egressd_config *cfg)
{
	const struct unsupported_setting *u;
	const char *v;
	char *copy;
	bool b;
	int n = 0;

	for (u = unsupported;
	     u < unsupported + sizeof(unsupported) / sizeof(unsupported[0]);
	     u++) {
		v = getenv(u->env);
		if (!v || !v[strspn(v, " \t")])
			continue;
		copy = strdup(v);
		if (!copy)
			return -ENOMEM;
		if ((u->is_bool && !parse_bool(trim(copy), &b) && !b) ||
		    (!strcmp(u->env, "OPENSANDBOX_LOG_OUTPUT") &&
		     !strcasecmp(trim(copy), "stdout"))) {
			free(copy);
			continue;
		}
		free(copy);
		log_warnx("%s is set but not supported, and is ignored: %s",
			  u->env, u->instead);
		n++;
	}
	return n;
}

/* A refused configuration leaves nothing allocated (LeakSanitizer). */
int config_load(struct egressd_config *cfg, int argc, char **argv, char *err,
		size_t errlen)
{
	int ret = load(cfg, argc, argv, err, errlen);

	if (ret < 0)
		config_fini(cfg);
	return ret;
}

void config_fini(struct egressd_config *cfg)
{
	free(cfg->rules_json);
	free(cfg->policy_file);
	free(cfg->rules_dir);
	free(cfg->resolv_conf);
	free(cfg->agent_cgroup);
	free(cfg->workload_cgroup);
	free(cfg->host_cgroup2);
	free(cfg->bpf_pin_dir);
	free(cfg->doh_blocklist);
	free(cfg->http_addr);
	free(cfg->token);
	free(cfg->deny_webhook);
	free(cfg->sandbox_id);
	memset(cfg, 0, sizeof(*cfg));
}
