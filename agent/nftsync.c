// SPDX-License-Identifier: GPL-2.0-only
/*
 * nftables layer (include/egressd/nftsync.h, docs/nftables.md): builds
 * netlink batches for table "inet egressd" with libnftnl and sends them
 * with libmnl. The first half of the file only writes messages into a
 * struct nftsync_batch (tests parse them back); the second half is the
 * talker (send one batch, drain every ACK, name the failing command by its
 * sequence number) and the learned-address cache that lets the DNS proxy
 * skip netlink traffic for addresses that are already fresh enough.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "egressd/log.h"
#include "egressd/nftsync.h"

/* nft's datatype ids for set keys, so `nft list` prints addresses. */
#define NFT_TYPE_IPADDR 7
#define NFT_TYPE_IP6ADDR 8

/* Room kept free for one table, chain, counter, set or rule message;
 * element messages reserve what their elements need (emit_elems()). */
#define MSG_RESERVE (64 * 1024 + 4096)
#define ELEMS_PER_MSG 256
/* Learned addresses being forgotten are re-added with this timeout first
 * so that the delete never fails on an element that already expired. */
#define FORGET_TIMEOUT_MS 1000
/* Cache entries outlive their expiry this long (domain for log lines). */
#define CACHE_LINGER_MS (10 * 60 * 1000)
#define ACK_TIMEOUT_MS 5000

/*
 * Well-known DoH/DoT provider anycast addresses (docs/nftables.md lists
 * them with their operators). Blocked on 443 and, like every address, on
 * 853; OPENSANDBOX_EGRESS_DOH_BLOCKLIST adds to this list.
 */
static const char *const doh_builtin[] = {
	/* Cloudflare */
	"1.1.1.1", "1.0.0.1", "1.1.1.2", "1.0.0.2", "1.1.1.3", "1.0.0.3",
	"2606:4700:4700::1111", "2606:4700:4700::1001",
	"2606:4700:4700::1112", "2606:4700:4700::1002",
	"2606:4700:4700::1113", "2606:4700:4700::1003",
	/* Google */
	"8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844",
	/* Quad9 */
	"9.9.9.9", "149.112.112.112", "9.9.9.10", "149.112.112.10",
	"9.9.9.11", "149.112.112.11", "2620:fe::fe", "2620:fe::9",
	"2620:fe::10", "2620:fe::fe:10", "2620:fe::11", "2620:fe::fe:11",
	/* OpenDNS (Cisco Umbrella) */
	"208.67.222.222", "208.67.220.220", "208.67.222.123",
	"208.67.220.123", "2620:119:35::35", "2620:119:53::53",
	/* AdGuard */
	"94.140.14.14", "94.140.15.15", "94.140.14.15", "94.140.15.16",
	"94.140.14.140", "94.140.14.141", "2a10:50c0::ad1:ff",
	"2a10:50c0::ad2:ff",
	/* CleanBrowsing */
	"185.228.168.9", "185.228.169.9", "185.228.168.168",
	"185.228.169.168", "185.228.168.10", "185.228.169.11",
	/* Mullvad */
	"194.242.2.2", "194.242.2.3", "194.242.2.4", "2a07:e340::2",
	/* NextDNS anycast */
	"45.90.28.0", "45.90.30.0", "2a07:a8c0::", "2a07:a8c1::",
	/* Control D */
	"76.76.2.0", "76.76.10.0", "2606:1a40::", "2606:1a40:1::",
	/* DNS.SB */
	"185.222.222.222", "45.11.45.11", "2a09::", "2a11::",
	/* AliDNS, DNSPod, TWNIC, 360 */
	"223.5.5.5", "223.6.6.6", "2400:3200::1", "2400:3200:baba::1",
	"1.12.12.12", "120.53.53.53", "101.101.101.101", "101.102.103.104",
	"2001:de4::101", "2001:de4::102",
};

const char *const *nftsync_doh_builtin(size_t *n)
{
	*n = sizeof(doh_builtin) / sizeof(doh_builtin[0]);
	return doh_builtin;
}

int nftsync_addr_from_sockaddr(const struct sockaddr *sa,
			       struct policy_addr *out)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0,
					    0, 0, 0, 0, 0xff, 0xff };
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
	if (!memcmp(&s6->sin6_addr, mapped, sizeof(mapped))) {
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

/* ---- batch buffer ----------------------------------------------------- */

/*
 * What a message does, kept as pointers to static strings and numbers and
 * only turned into text when an ACK reports an error (or a test asks):
 * "<verb> <what> <name>[ \"<comment>\"][ [<first>..<last> of <total>]]",
 * or just <what> when verb is NULL ("batch begin").
 */
struct cmd_desc {
	const char *verb;
	const char *what;
	const char *name;
	const char *comment;
	uint32_t first, last, total; /* element range, total 0: none */
};

#define DESC_TEXT_MAX 256

struct nftsync_batch {
	char *buf;
	size_t len, cap;
	uint32_t seq_base; /* sequence number of BEGIN */
	uint32_t seq;	   /* next sequence number */
	struct cmd_desc *desc; /* desc[i] describes seq_base + i */
	size_t ndesc, desc_cap;
	size_t ncmds;
	size_t room;	   /* bytes promised to the message being built */
	size_t dirty;	   /* buf[dirty..cap) is zero, see batch_reserve() */
	uint32_t set_id;
	bool finished;
	char *text;	   /* DESC_TEXT_MAX bytes for nftsync_batch_describe */
};

struct nftsync_batch *nftsync_batch_new(uint32_t seq)
{
	struct nftsync_batch *b;

	b = calloc(1, sizeof(*b) + DESC_TEXT_MAX);
	if (!b)
		return NULL;
	b->text = (char *)(b + 1);
	nftsync_batch_reset(b, seq);
	return b;
}

void nftsync_batch_reset(struct nftsync_batch *b, uint32_t seq)
{
	/* Memory is kept; only what the last build touched is zeroed. */
	if (b->dirty)
		memset(b->buf, 0, b->dirty);
	b->dirty = 0;
	b->len = 0;
	b->ndesc = 0;
	b->ncmds = 0;
	b->seq_base = seq;
	b->seq = seq;
	b->set_id = 1;
	b->finished = false;
}

void nftsync_batch_free(struct nftsync_batch *b)
{
	if (!b)
		return;
	free(b->desc);
	free(b->buf);
	free(b);
}

const void *nftsync_batch_data(const struct nftsync_batch *b, size_t *len)
{
	if (!b->finished)
		return NULL;
	*len = b->len;
	return b->buf;
}

size_t nftsync_batch_ncmds(const struct nftsync_batch *b)
{
	return b->ncmds;
}

const char *nftsync_batch_describe(const struct nftsync_batch *b,
				   uint32_t seq)
{
	uint32_t i = seq - b->seq_base;
	const struct cmd_desc *d;
	int n;

	if (i >= b->ndesc)
		return NULL;
	d = &b->desc[i];
	if (!d->verb)
		return d->what;
	n = snprintf(b->text, DESC_TEXT_MAX, "%s %s %s", d->verb, d->what,
		     d->name);
	if (d->comment && n >= 0 && n < DESC_TEXT_MAX)
		n += snprintf(b->text + n, DESC_TEXT_MAX - n, " \"%s\"",
			      d->comment);
	if (d->total && n >= 0 && n < DESC_TEXT_MAX)
		snprintf(b->text + n, DESC_TEXT_MAX - n, " [%u..%u of %u]",
			 d->first, d->last, d->total);
	return b->text;
}

/*
 * Make room for a message of at most need bytes at the end of the batch.
 * libnftnl writes messages in place without bounds, so need must be an
 * upper bound (msg_end checks it). The room must be zero: libmnl before
 * 1.0.5 skips attribute padding instead of writing zeros, and those bytes
 * go to the kernel. So buf[dirty..cap) is kept zero: new capacity is
 * zeroed when it is added (once per batch, not per build, when the batch
 * is reused) and a reset zeroes only buf[0..dirty), what the previous
 * build may have touched.
 */
static int batch_reserve(struct nftsync_batch *b, size_t need)
{
	size_t cap;
	char *p;

	b->room = need;
	if (b->cap - b->len < need) {
		cap = b->cap ? b->cap * 2 : 4096;
		while (cap - b->len < need)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (!p)
			return -ENOMEM;
		memset(p + b->cap, 0, cap - b->cap);
		b->buf = p;
		b->cap = cap;
	}
	if (b->dirty < b->len + need)
		b->dirty = b->len + need;
	return 0;
}

/* Record what the next message (sequence number b->seq) does. */
static int batch_note(struct nftsync_batch *b, const struct cmd_desc *d)
{
	struct cmd_desc *nd;

	if (b->ndesc == b->desc_cap) {
		size_t n = b->desc_cap ? b->desc_cap * 2 : 64;

		nd = realloc(b->desc, n * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		b->desc = nd;
		b->desc_cap = n;
	}
	b->desc[b->ndesc++] = *d;
	return 0;
}

/*
 * Start a command message (ACK requested) of at most need bytes at the
 * end of the batch and record what it does under its sequence number.
 */
static struct nlmsghdr *cmd_start(struct nftsync_batch *b, uint16_t type,
				  uint16_t flags, size_t need,
				  const struct cmd_desc *d)
{
	struct nlmsghdr *nlh;

	if (batch_reserve(b, need) || batch_note(b, d))
		return NULL;
	nlh = nftnl_nlmsg_build_hdr(b->buf + b->len, type, NFPROTO_INET,
				    flags | NLM_F_ACK, b->seq++);
	b->ncmds++;
	return nlh;
}

/* Shorthand for commands on a named object (no comment, no range). */
static struct nlmsghdr *obj_start(struct nftsync_batch *b, uint16_t type,
				  uint16_t flags, const char *verb,
				  const char *what, const char *name)
{
	struct cmd_desc d = { verb, what, name, NULL, 0, 0, 0 };

	return cmd_start(b, type, flags, MSG_RESERVE, &d);
}

static void msg_end(struct nftsync_batch *b, struct nlmsghdr *nlh)
{
	/* Past the promised room the heap is already corrupt. */
	if (nlh->nlmsg_len > b->room)
		abort();
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
}

static int batch_begin(struct nftsync_batch *b)
{
	static const struct cmd_desc d = { .what = "batch begin" };
	struct nlmsghdr *nlh;

	if (b->len || b->finished)
		return -EINVAL;
	if (batch_reserve(b, NLMSG_HDRLEN + sizeof(struct nfgenmsg)) ||
	    batch_note(b, &d))
		return -ENOMEM;
	nlh = nftnl_batch_begin(b->buf + b->len, b->seq++);
	msg_end(b, nlh);
	return 0;
}

static int batch_end(struct nftsync_batch *b)
{
	static const struct cmd_desc d = { .what = "batch end" };
	struct nlmsghdr *nlh;

	if (batch_reserve(b, NLMSG_HDRLEN + sizeof(struct nfgenmsg)) ||
	    batch_note(b, &d))
		return -ENOMEM;
	nlh = nftnl_batch_end(b->buf + b->len, b->seq++);
	msg_end(b, nlh);
	b->finished = true;
	return 0;
}

/* ---- objects -------------------------------------------------------- */

static struct nftnl_udata_buf *comment_udata(uint8_t type, const char *text)
{
	struct nftnl_udata_buf *u;

	u = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
	if (!u)
		return NULL;
	if (!nftnl_udata_put_strz(u, type, text)) {
		nftnl_udata_buf_free(u);
		return NULL;
	}
	return u;
}

/* Table egressd of a family (inet: the filter; netdev: the packet-socket
 * guard) created or deleted; the family goes in the message header too,
 * which is where the kernel reads it. */
static int emit_table_of(struct nftsync_batch *b, uint16_t type,
			 uint8_t family, const char *what, const char *comment)
{
	struct nftnl_udata_buf *u = NULL;
	struct nftnl_table *t = NULL;
	struct nfgenmsg *nfg;
	struct nlmsghdr *nlh;
	int err = -ENOMEM;

	t = nftnl_table_alloc();
	if (!t)
		goto out;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFTSYNC_TABLE);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, family);
	if (type == NFT_MSG_NEWTABLE) {
		u = comment_udata(NFTNL_UDATA_TABLE_COMMENT, comment);
		if (!u)
			goto out;
		nftnl_table_set_data(t, NFTNL_TABLE_USERDATA,
				     nftnl_udata_buf_data(u),
				     nftnl_udata_buf_len(u));
		nlh = obj_start(b, type, NLM_F_CREATE, "add", what,
				NFTSYNC_TABLE);
	} else {
		nlh = obj_start(b, type, 0, "delete", what, NFTSYNC_TABLE);
	}
	if (!nlh)
		goto out;
	nfg = mnl_nlmsg_get_payload(nlh);
	nfg->nfgen_family = family;
	nftnl_table_nlmsg_build_payload(nlh, t);
	msg_end(b, nlh);
	err = 0;
out:
	if (u)
		nftnl_udata_buf_free(u);
	if (t)
		nftnl_table_free(t);
	return err;
}

static int emit_table(struct nftsync_batch *b, uint16_t type)
{
	return emit_table_of(b, type, NFPROTO_INET, "table inet",
			     "egressd: removed only by egressd --cleanup");
}

struct chain_spec {
	const char *name;
	const char *type;
	int prio;
	const char *comment;
};

static const struct chain_spec chain_redirect = {
	NFTSYNC_CHAIN_REDIRECT, "nat", -100,
	"port-53 traffic of the netns goes to the egressd DNS proxy",
};

static const struct chain_spec chain_filter = {
	NFTSYNC_CHAIN_FILTER, "filter", 0,
	"egressd output filter (dns+nft mode); ends with an explicit verdict",
};

/* The same chain in dns mode: only what the DNS layer needs. */
static const struct chain_spec chain_dns_v6off = {
	NFTSYNC_CHAIN_FILTER, "filter", 0,
	"egressd IPv6 off (dns mode): rejects IPv6, accepts the rest",
};
static const struct chain_spec chain_dns_53 = {
	NFTSYNC_CHAIN_FILTER, "filter", 0,
	"egressd dns mode: port 53 only through the redirect, accepts the rest",
};
static const struct chain_spec chain_dns_53_v6off = {
	NFTSYNC_CHAIN_FILTER, "filter", 0,
	"egressd dns mode: IPv6 off, port 53 only through the redirect, accepts the rest",
};
static const struct chain_spec chain_dns_api = {
	NFTSYNC_CHAIN_FILTER, "filter", 0,
	"egressd dns mode: the API port is egressd's, accepts the rest",
};

/* Every mode: forged source addresses (build_antispoof_rules). */
static const struct chain_spec chain_antispoof = {
	"antispoof", "filter", -200,
	"egressd: packets sent through lo must carry one of the netns's own source addresses",
};

/* type: NFT_MSG_NEWCHAIN (create if missing; an existing chain keeps its
 * comment) or NFT_MSG_DELCHAIN (with its rules). */
static int emit_chain(struct nftsync_batch *b, const struct chain_spec *cs,
		      uint16_t type)
{
	struct nftnl_udata_buf *u = NULL;
	struct nftnl_chain *c = NULL;
	struct nlmsghdr *nlh;
	int err = -ENOMEM;

	c = nftnl_chain_alloc();
	if (!c)
		goto out;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFTSYNC_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, cs->name);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	if (type == NFT_MSG_NEWCHAIN) {
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_OUT);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, cs->prio);
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, cs->type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
		u = comment_udata(NFTNL_UDATA_CHAIN_COMMENT, cs->comment);
		if (!u)
			goto out;
		nftnl_chain_set_data(c, NFTNL_CHAIN_USERDATA,
				     nftnl_udata_buf_data(u),
				     nftnl_udata_buf_len(u));
		nlh = obj_start(b, type, NLM_F_CREATE, "add", "chain",
				cs->name);
	} else {
		nlh = obj_start(b, type, 0, "delete", "chain", cs->name);
	}
	if (!nlh)
		goto out;
	nftnl_chain_nlmsg_build_payload(nlh, c);
	msg_end(b, nlh);
	err = 0;
out:
	if (u)
		nftnl_udata_buf_free(u);
	if (c)
		nftnl_chain_free(c);
	return err;
}

struct counter_spec {
	const char *name;
	const char *comment;
};

/* Every drop rule counts into one of these (`nft list counters`). */
static const struct counter_spec counters[] = {
	{ "dns_drop", "port 53 not through the egressd redirect" },
	{ "dot_drop", "DNS over TLS/QUIC (port 853)" },
	{ "doh_drop", "DNS over HTTPS (443 to DoH providers)" },
	{ "deny_drop", "deny rules and deny.always" },
	{ "ipv6_drop", "IPv6 disabled (OPENSANDBOX_EGRESS_IPV6=deny)" },
	{ "default_drop", "no rule allowed it (defaultAction deny)" },
	{ "api_drop", "the workload connecting to the egressd API port" },
};

#define N_COUNTERS (sizeof(counters) / sizeof(counters[0]))

static int emit_counter(struct nftsync_batch *b, const struct counter_spec *cs,
			uint16_t type)
{
	struct nftnl_udata_buf *u = NULL;
	struct nftnl_obj *o = NULL;
	struct nlmsghdr *nlh;
	int err = -ENOMEM;

	o = nftnl_obj_alloc();
	if (!o)
		goto out;
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, NFTSYNC_TABLE);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, cs->name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, NFPROTO_INET);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	if (type == NFT_MSG_NEWOBJ) {
		/* Only used when the counter is created: an existing one
		 * keeps its numbers across applies. */
		nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_PKTS, 0);
		nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_BYTES, 0);
		u = comment_udata(NFTNL_UDATA_OBJ_COMMENT, cs->comment);
		if (!u)
			goto out;
		nftnl_obj_set_data(o, NFTNL_OBJ_USERDATA,
				   nftnl_udata_buf_data(u),
				   nftnl_udata_buf_len(u));
		nlh = obj_start(b, type, NLM_F_CREATE, "add", "counter",
				cs->name);
	} else {
		nlh = obj_start(b, type, 0, "delete", "counter", cs->name);
	}
	if (!nlh)
		goto out;
	nftnl_obj_nlmsg_build_payload(nlh, o);
	msg_end(b, nlh);
	err = 0;
out:
	if (u)
		nftnl_udata_buf_free(u);
	if (o)
		nftnl_obj_free(o);
	return err;
}

enum set_idx {
	SET_ALLOW4,
	SET_ALLOW6,
	SET_DENY4,
	SET_DENY6,
	SET_LEARNED4,
	SET_LEARNED6,
	SET_DOH4,
	SET_DOH6,
	SET_DOH_ALLOW4,
	SET_DOH_ALLOW6,
	SET_UPSTREAM4,
	SET_UPSTREAM6,
	SET_MAX,
};

struct set_spec {
	const char *name;
	int family;
	uint32_t flags;
	const char *comment;
};

static const struct set_spec sets[SET_MAX] = {
	[SET_ALLOW4] = { "allow_v4", AF_INET, NFT_SET_INTERVAL,
			 "static allow: IP/CIDR rules and allow.always" },
	[SET_ALLOW6] = { "allow_v6", AF_INET6, NFT_SET_INTERVAL,
			 "static allow: IP/CIDR rules and allow.always" },
	[SET_DENY4] = { "deny_v4", AF_INET, NFT_SET_INTERVAL,
			"static deny: beats every allow" },
	[SET_DENY6] = { "deny_v6", AF_INET6, NFT_SET_INTERVAL,
			"static deny: beats every allow" },
	[SET_LEARNED4] = { "learned_v4", AF_INET, NFT_SET_TIMEOUT,
			   "answers to allowed names, per-element lifetime" },
	[SET_LEARNED6] = { "learned_v6", AF_INET6, NFT_SET_TIMEOUT,
			   "answers to allowed names, per-element lifetime" },
	[SET_DOH4] = { "doh_v4", AF_INET, NFT_SET_INTERVAL,
		       "DoH providers: built-in list + DOH_BLOCKLIST" },
	[SET_DOH6] = { "doh_v6", AF_INET6, NFT_SET_INTERVAL,
		       "DoH providers: built-in list + DOH_BLOCKLIST" },
	[SET_DOH_ALLOW4] = { "doh_allow_v4", AF_INET, 0,
			     "named exactly by an allow rule: DoH/DoT ok" },
	[SET_DOH_ALLOW6] = { "doh_allow_v6", AF_INET6, 0,
			     "named exactly by an allow rule: DoH/DoT ok" },
	[SET_UPSTREAM4] = { "upstream_v4", AF_INET, 0,
			    "upstream resolvers, port 53 for egressd only" },
	[SET_UPSTREAM6] = { "upstream_v6", AF_INET6, 0,
			    "upstream resolvers, port 53 for egressd only" },
};

static size_t alen_of(int family)
{
	return family == AF_INET ? 4 : 16;
}

static int emit_set(struct nftsync_batch *b, const struct set_spec *ss,
		    uint16_t type)
{
	struct nftnl_udata_buf *u = NULL;
	struct nftnl_set *s = NULL;
	struct nlmsghdr *nlh;
	int err = -ENOMEM;

	s = nftnl_set_alloc();
	if (!s)
		goto out;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, NFTSYNC_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, ss->name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (type == NFT_MSG_NEWSET) {
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, ss->flags);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE,
				  ss->family == AF_INET ? NFT_TYPE_IPADDR :
							  NFT_TYPE_IP6ADDR);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, alen_of(ss->family));
		nftnl_set_set_u32(s, NFTNL_SET_ID, b->set_id++);
		u = comment_udata(NFTNL_UDATA_SET_COMMENT, ss->comment);
		if (!u)
			goto out;
		nftnl_set_set_data(s, NFTNL_SET_USERDATA,
				   nftnl_udata_buf_data(u),
				   nftnl_udata_buf_len(u));
		nlh = obj_start(b, type, NLM_F_CREATE, "add", "set", ss->name);
	} else {
		nlh = obj_start(b, type, 0, "delete", "set", ss->name);
	}
	if (!nlh)
		goto out;
	nftnl_set_nlmsg_build_payload(nlh, s);
	msg_end(b, nlh);
	err = 0;
out:
	if (u)
		nftnl_udata_buf_free(u);
	if (s)
		nftnl_set_free(s);
	return err;
}

/* One set element: a key, and for interval sets maybe an interval end. */
struct elem {
	uint8_t key[16];
	bool end;
};

/*
 * Upper bounds for an element message (libnftnl writes in place): header,
 * nfgenmsg, table and set names (set names are short, see sets[]) and the
 * list nest, then per element its nest, flags, timeout and key.
 */
#define ELEM_MSG_HDR 256
#define ELEM_MSG_PER 128

/* What an element command does to the set. */
enum elem_op {
	ELEM_ADD,    /* NEWSETELEM: create, or keep an existing element */
	ELEM_CREATE, /* NEWSETELEM | NLM_F_EXCL: EEXIST if it exists */
	ELEM_DELETE, /* DELSETELEM; with n == 0 flushes the set */
};

/*
 * Element commands for v[0..n) in messages of at most ELEMS_PER_MSG
 * elements. ELEM_DELETE with n == 0 flushes the set.
 */
static int emit_elems(struct nftsync_batch *b, const struct set_spec *ss,
		      enum elem_op op, const struct elem *v, size_t n,
		      uint64_t timeout_ms)
{
	static const char *const verb[] = {
		[ELEM_ADD] = "add",
		[ELEM_CREATE] = "create",
		[ELEM_DELETE] = "delete",
	};
	uint16_t type = op == ELEM_DELETE ? NFT_MSG_DELSETELEM :
					    NFT_MSG_NEWSETELEM;
	uint16_t flags = op == ELEM_ADD	   ? NLM_F_CREATE :
			 op == ELEM_CREATE ? NLM_F_CREATE | NLM_F_EXCL :
					     0;
	struct cmd_desc d = { verb[op], "elements", ss->name, NULL, 0, 0, 0 };
	struct nftnl_set_elem *e;
	struct nftnl_set *s;
	struct nlmsghdr *nlh;
	size_t i, j, k;

	if (n == 0 && op != ELEM_DELETE)
		return 0;
	if (n == 0) {
		d.verb = "flush";
		d.what = "set";
	}
	i = 0;
	do {
		k = n - i < ELEMS_PER_MSG ? n - i : ELEMS_PER_MSG;
		s = nftnl_set_alloc();
		if (!s)
			return -ENOMEM;
		nftnl_set_set_str(s, NFTNL_SET_TABLE, NFTSYNC_TABLE);
		nftnl_set_set_str(s, NFTNL_SET_NAME, ss->name);
		nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
		for (j = i; j < i + k; j++) {
			e = nftnl_set_elem_alloc();
			if (!e) {
				nftnl_set_free(s);
				return -ENOMEM;
			}
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, v[j].key,
					   alen_of(ss->family));
			if (v[j].end)
				nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS,
						       NFT_SET_ELEM_INTERVAL_END);
			if (timeout_ms)
				nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT,
						       timeout_ms);
			nftnl_set_elem_add(s, e);
		}
		if (n) {
			d.first = i + 1;
			d.last = i + k;
			d.total = n;
		}
		nlh = cmd_start(b, type, flags,
				ELEM_MSG_HDR + k * ELEM_MSG_PER, &d);
		if (!nlh) {
			nftnl_set_free(s);
			return -ENOMEM;
		}
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		msg_end(b, nlh);
		nftnl_set_free(s);
		i += k;
	} while (i < n);
	return 0;
}

/* ---- rules ---------------------------------------------------------- */

/* A rule being built; the first allocation failure sticks in err. */
struct rb {
	struct nftnl_rule *r;
	const char *chain; /* static: named in error messages */
	int err;
};

static struct nftnl_expr *rb_expr(struct rb *rb, const char *name)
{
	struct nftnl_expr *e;

	if (rb->err)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		rb->err = -ENOMEM;
		return NULL;
	}
	nftnl_rule_add_expr(rb->r, e);
	return e;
}

static void rb_cmp(struct rb *rb, uint32_t op, const void *data, size_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
}

static void rb_meta(struct rb *rb, uint32_t key)
{
	struct nftnl_expr *e = rb_expr(rb, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

static void rb_payload(struct rb *rb, uint32_t base, uint32_t off,
		       uint32_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
}

/* meta nfproto ipv4|ipv6 */
static void m_nfproto(struct rb *rb, int family)
{
	uint8_t p = family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;

	rb_meta(rb, NFT_META_NFPROTO);
	rb_cmp(rb, NFT_CMP_EQ, &p, 1);
}

/* meta l4proto tcp|udp|ipv6-icmp */
static void m_l4proto(struct rb *rb, uint8_t proto)
{
	rb_meta(rb, NFT_META_L4PROTO);
	rb_cmp(rb, NFT_CMP_EQ, &proto, 1);
}

/* tcp|udp dport N (after m_l4proto) */
static void m_dport(struct rb *rb, uint16_t port)
{
	uint16_t be = htons(port);

	rb_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
	rb_cmp(rb, NFT_CMP_EQ, &be, 2);
}

static void m_daddr_load(struct rb *rb, int family)
{
	m_nfproto(rb, family);
	if (family == AF_INET)
		rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
	else
		rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
}

/* ip daddr @set / ip6 daddr @set */
static void m_daddr_set(struct rb *rb, const struct set_spec *ss)
{
	struct nftnl_expr *e;

	m_daddr_load(rb, ss->family);
	e = rb_expr(rb, "lookup");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, ss->name) < 0)
		rb->err = -ENOMEM;
}

/* ip daddr 127.0.0.0/8 / ip6 daddr ::1 */
static void m_daddr_loopback(struct rb *rb, int family)
{
	static const uint8_t v6[16] = { [15] = 1 };
	const uint8_t mask[4] = { 0xff, 0, 0, 0 }, net[4] = { 127, 0, 0, 0 };
	const uint8_t zero[4] = { 0 };
	struct nftnl_expr *e;

	m_daddr_load(rb, family);
	if (family == AF_INET6) {
		rb_cmp(rb, NFT_CMP_EQ, v6, sizeof(v6));
		return;
	}
	e = rb_expr(rb, "bitwise");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, sizeof(zero));
	rb_cmp(rb, NFT_CMP_EQ, net, sizeof(net));
}

/* tcp flags & (syn | ack) == syn: a connection attempt (after l4proto) */
static void m_tcp_syn(struct rb *rb)
{
	uint8_t mask = 0x12, syn = 0x02, zero = 0;
	struct nftnl_expr *e;

	rb_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1);
	e = rb_expr(rb, "bitwise");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 1);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, 1);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, 1);
	rb_cmp(rb, NFT_CMP_EQ, &syn, 1);
}

/* socket cgroupv2 level L <id>: the socket's cgroup ancestor at level L
 * is the agent's cgroup (the kernel compares cgroup ids). */
static void m_cgroup(struct rb *rb, uint32_t level, uint64_t id)
{
	struct nftnl_expr *e = rb_expr(rb, "socket");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_KEY, NFT_SOCKET_CGROUPV2);
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_LEVEL, level);
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_DREG, NFT_REG_1);
	rb_cmp(rb, NFT_CMP_EQ, &id, sizeof(id)); /* host order, as stored */
}

/* ct state & mask != 0 */
static void m_ct_state(struct rb *rb, uint32_t mask)
{
	uint32_t zero = 0;
	struct nftnl_expr *e;

	e = rb_expr(rb, "ct");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	e = rb_expr(rb, "bitwise");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
	rb_cmp(rb, NFT_CMP_NEQ, &zero, sizeof(zero));
}

/* oifname "NAME" */
static void m_oifname(struct rb *rb, const char *name)
{
	char buf[16] = { 0 };

	strncpy(buf, name, sizeof(buf) - 1);
	rb_meta(rb, NFT_META_OIFNAME);
	rb_cmp(rb, NFT_CMP_EQ, buf, sizeof(buf));
}

/* icmpv6 type T */
static void m_icmpv6_type(struct rb *rb, uint8_t type)
{
	m_nfproto(rb, AF_INET6);
	m_l4proto(rb, IPPROTO_ICMPV6);
	rb_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
	rb_cmp(rb, NFT_CMP_EQ, &type, 1);
}

static void a_verdict(struct rb *rb, int verdict)
{
	struct nftnl_expr *e = rb_expr(rb, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, verdict);
}

/* counter name "C" log prefix "egressd:<reason>" group G */
static void a_count_log(struct rb *rb, const char *counter,
			const char *reason, uint16_t group)
{
	char prefix[64];
	struct nftnl_expr *e;

	e = rb_expr(rb, "objref");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, counter) < 0)
		rb->err = -ENOMEM;
	e = rb_expr(rb, "log");
	if (!e)
		return;
	snprintf(prefix, sizeof(prefix), NFTSYNC_LOG_PREFIX "%s", reason);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix) < 0)
		rb->err = -ENOMEM;
	nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, group);
	/* Headers are all nflog.c reads. */
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, 128);
}

/* counter name "C" log prefix "egressd:<reason>" group G drop */
static void a_drop(struct rb *rb, const char *counter, const char *reason,
		   uint16_t group)
{
	a_count_log(rb, counter, reason, group);
	a_verdict(rb, NF_DROP);
}

/*
 * The same, but "reject with tcp reset" (tcp_rst) or "reject with icmpx
 * admin-prohibited" instead of drop: the sender learns at once (connect()
 * gets ECONNREFUSED, a send EPERM, then EACCES on a connected socket)
 * instead of retransmitting into silence. The kernel still drops the
 * packet itself; the reply goes to the local socket through lo.
 */
static void a_reject(struct rb *rb, const char *counter, const char *reason,
		     uint16_t group, bool tcp_rst)
{
	struct nftnl_expr *e;

	a_count_log(rb, counter, reason, group);
	e = rb_expr(rb, "reject");
	if (!e)
		return;
	if (tcp_rst) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE,
				   NFT_REJECT_TCP_RST);
	} else {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE,
				   NFT_REJECT_ICMPX_UNREACH);
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE,
				  NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
	}
}

/* redirect to :PORT */
static void a_redirect(struct rb *rb, uint16_t port)
{
	uint16_t be = htons(port);
	struct nftnl_expr *e;

	e = rb_expr(rb, "immediate");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
	e = rb_expr(rb, "redir");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
}

static int rb_start(struct rb *rb, const char *chain)
{
	rb->err = 0;
	rb->chain = chain;
	rb->r = nftnl_rule_alloc();
	if (!rb->r)
		return -ENOMEM;
	nftnl_rule_set_str(rb->r, NFTNL_RULE_TABLE, NFTSYNC_TABLE);
	nftnl_rule_set_str(rb->r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(rb->r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	return 0;
}

/* Append the rule with its comment (what `nft list` shows) and free it. */
static int rb_emit(struct nftsync_batch *b, struct rb *rb,
		   const char *comment)
{
	struct cmd_desc d = { "add", "rule", NULL, NULL, 0, 0, 0 };
	struct nftnl_udata_buf *u = NULL;
	struct nlmsghdr *nlh;
	int err = rb->err;

	if (err)
		goto out;
	err = -ENOMEM;
	u = comment_udata(NFTNL_UDATA_RULE_COMMENT, comment);
	if (!u)
		goto out;
	nftnl_rule_set_data(rb->r, NFTNL_RULE_USERDATA,
			    nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
	d.name = rb->chain;
	d.comment = comment;
	nlh = cmd_start(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
			MSG_RESERVE, &d);
	if (!nlh)
		goto out;
	/* table netdev egressd's rules (rb_start_netdev) */
	((struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family =
		(uint8_t)nftnl_rule_get_u32(rb->r, NFTNL_RULE_FAMILY);
	nftnl_rule_nlmsg_build_payload(nlh, rb->r);
	msg_end(b, nlh);
	err = 0;
out:
	if (u)
		nftnl_udata_buf_free(u);
	nftnl_rule_free(rb->r);
	rb->r = NULL;
	return err;
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
	size_t alen = alen_of(f), i, m = 0, bits, k;
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
			   struct elem **out, size_t *nout)
{
	size_t alen = alen_of(f), i, m = 0;
	struct elem *e;

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
	return memcmp(a, b, sizeof(struct elem));
}

/*
 * Single addresses of family f, deduplicated; with full_only, entries
 * with a shorter prefix are skipped; entries inside deny are skipped.
 */
static int hosts_build(const struct policy_addr *v, size_t n, int f,
		       bool full_only, const struct range *deny,
		       size_t n_deny, struct elem **out, size_t *nout)
{
	size_t alen = alen_of(f), i, m = 0, k;
	struct elem *e;

	*out = NULL;
	*nout = 0;
	if (!n)
		return 0;
	e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (v[i].family != f ||
		    (full_only && v[i].prefixlen != alen * 8))
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

/* ---- builders ------------------------------------------------------- */

static int check_addrs(const struct policy_addr *v, size_t n)
{
	size_t i;

	if (n && !v)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (v[i].family != AF_INET && v[i].family != AF_INET6)
			return -EINVAL;
		if (v[i].prefixlen > alen_of(v[i].family) * 8)
			return -EINVAL;
	}
	return 0;
}

static int check_config(const struct nftsync_config *cfg)
{
	int err;

	/* Level 0 is the agent's own cgroup namespace root on kernels
	 * that count from there (cgroup.h). */
	if (!cfg->dns_port || !cfg->agent_cgroup_id ||
	    cfg->agent_cgroup_id == 1 /* the root cgroup: everyone */)
		return -EINVAL;
	/* A hand-off by cgroup needs the cgroup. */
	if (cfg->bpf_handoff && !cfg->bpf_covers_all &&
	    !cfg->workload_cgroup_id)
		return -EINVAL;
	/* The API rules need the cgroups they name (not the root). */
	if (cfg->api_port &&
	    (cfg->api_cgroup_id <= 1 ||
	     (cfg->api_workload_only && !cfg->workload_cgroup_id)))
		return -EINVAL;
	err = check_addrs(cfg->allow, cfg->n_allow);
	if (!err)
		err = check_addrs(cfg->deny, cfg->n_deny);
	if (!err)
		err = check_addrs(cfg->doh, cfg->n_doh);
	if (!err)
		err = check_addrs(cfg->doh_exceptions, cfg->n_doh_exceptions);
	if (!err)
		err = check_addrs(cfg->upstreams, cfg->n_upstreams);
	return err;
}

/* The built-in DoH list plus cfg->doh. */
static int doh_addrs(const struct nftsync_config *cfg,
		     struct policy_addr **out, size_t *nout)
{
	size_t nb = sizeof(doh_builtin) / sizeof(doh_builtin[0]), i;
	struct policy_addr *v;

	v = calloc(nb + cfg->n_doh, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < nb; i++) {
		if (inet_pton(AF_INET, doh_builtin[i], v[i].addr) == 1) {
			v[i].family = AF_INET;
			v[i].prefixlen = 32;
		} else if (inet_pton(AF_INET6, doh_builtin[i], v[i].addr) == 1) {
			v[i].family = AF_INET6;
			v[i].prefixlen = 128;
		} else {
			free(v);
			return -EINVAL;
		}
	}
	if (cfg->n_doh)
		memcpy(v + nb, cfg->doh, cfg->n_doh * sizeof(*v));
	*out = v;
	*nout = nb + cfg->n_doh;
	return 0;
}

/* Contents of every static set, computed from cfg. */
struct set_contents {
	struct elem *e[SET_MAX];
	size_t n[SET_MAX];
};

static void contents_free(struct set_contents *sc)
{
	int i;

	for (i = 0; i < SET_MAX; i++)
		free(sc->e[i]);
}

static int intervals_into(struct set_contents *sc, enum set_idx idx,
			  const struct policy_addr *v, size_t n,
			  struct range **keep, size_t *nkeep)
{
	struct range *r;
	size_t nr;
	int err;

	err = ranges_build(v, n, sets[idx].family, &r, &nr);
	if (err)
		return err;
	err = ranges_to_elems(r, nr, sets[idx].family, &sc->e[idx],
			      &sc->n[idx]);
	if (keep && !err) {
		*keep = r;
		*nkeep = nr;
	} else {
		free(r);
	}
	return err;
}

static int contents_build(const struct nftsync_config *cfg,
			  struct set_contents *sc)
{
	struct range *deny[2] = { NULL, NULL };
	struct policy_addr *doh = NULL;
	size_t ndeny[2] = { 0, 0 }, ndoh;
	int err, f;

	memset(sc, 0, sizeof(*sc));
	err = doh_addrs(cfg, &doh, &ndoh);
	for (f = 0; f < 2 && !err; f++) {
		int fam = f ? AF_INET6 : AF_INET;

		err = intervals_into(sc, SET_ALLOW4 + f, cfg->allow,
				     cfg->n_allow, NULL, NULL);
		if (!err)
			err = intervals_into(sc, SET_DENY4 + f, cfg->deny,
					     cfg->n_deny, &deny[f], &ndeny[f]);
		if (!err)
			err = intervals_into(sc, SET_DOH4 + f, doh, ndoh, NULL,
					     NULL);
		if (!err)
			err = hosts_build(cfg->doh_exceptions,
					  cfg->n_doh_exceptions, fam, true,
					  deny[f],
					  ndeny[f], &sc->e[SET_DOH_ALLOW4 + f],
					  &sc->n[SET_DOH_ALLOW4 + f]);
		if (!err)
			err = hosts_build(cfg->upstreams, cfg->n_upstreams, fam,
					  false, NULL, 0,
					  &sc->e[SET_UPSTREAM4 + f],
					  &sc->n[SET_UPSTREAM4 + f]);
	}
	free(deny[0]);
	free(deny[1]);
	free(doh);
	if (err)
		contents_free(sc);
	return err;
}

static bool set_is_learned(enum set_idx i)
{
	return i == SET_LEARNED4 || i == SET_LEARNED6;
}

static int build_redirect_rules(struct nftsync_batch *b,
				const struct nftsync_config *cfg)
{
	static const uint8_t protos[] = { IPPROTO_UDP, IPPROTO_TCP };
	struct rb rb;
	size_t i;
	int err;

	err = rb_start(&rb, NFTSYNC_CHAIN_REDIRECT);
	if (err)
		return err;
	m_cgroup(&rb, cfg->agent_cgroup_level, cfg->agent_cgroup_id);
	a_verdict(&rb, NFT_RETURN);
	err = rb_emit(b, &rb, "egressd agent's own DNS queries");
	for (i = 0; i < 2 && !err; i++) {
		err = rb_start(&rb, NFTSYNC_CHAIN_REDIRECT);
		if (err)
			break;
		m_l4proto(&rb, protos[i]);
		m_dport(&rb, 53);
		a_redirect(&rb, cfg->dns_port);
		err = rb_emit(b, &rb, protos[i] == IPPROTO_UDP ?
					      "DNS over UDP to the egressd proxy" :
					      "DNS over TCP to the egressd proxy");
	}
	return err;
}

#define RULE(...)                                                        \
	do {                                                             \
		err = rb_start(&rb, c);                                  \
		if (err)                                                 \
			return err;                                      \
		__VA_ARGS__;                                             \
	} while (0)
#define EMIT(comment)                                                    \
	do {                                                             \
		err = rb_emit(b, &rb, comment);                          \
		if (err)                                                 \
			return err;                                      \
	} while (0)

/* ip6 hoplimit N (after m_nfproto ipv6) */
static void m_hoplimit(struct rb *rb, uint8_t hl)
{
	rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, 7, 1);
	rb_cmp(rb, NFT_CMP_EQ, &hl, 1);
}

/* ip6 daddr (!=) PREFIX/plen (plen 128: the address itself); op
 * NFT_CMP_EQ or NFT_CMP_NEQ */
static void m_daddr6_cmp(struct rb *rb, uint32_t op, const char *prefix,
			 int plen)
{
	uint8_t net[16], mask[16] = { 0 }, zero[16] = { 0 };
	struct nftnl_expr *e;
	int i;

	if (inet_pton(AF_INET6, prefix, net) != 1) {
		rb->err = -EINVAL;
		return;
	}
	rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
	if (plen < 128) {
		for (i = 0; i < plen; i++)
			mask[i / 8] |= 0x80 >> (i % 8);
		e = rb_expr(rb, "bitwise");
		if (!e)
			return;
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, sizeof(zero));
	}
	rb_cmp(rb, op, net, sizeof(net));
}

static void m_daddr6_prefix(struct rb *rb, const char *prefix, int plen)
{
	m_daddr6_cmp(rb, NFT_CMP_EQ, prefix, plen);
}

/*
 * meta skuid >= 0: true only when a socket opened by a process sent the
 * packet. The expression breaks (no match) for the kernel's own packets
 * (neighbour discovery has no socket; the ICMP and TCP control sockets
 * have no file), which is what makes it useful.
 */
static void m_from_user_socket(struct rb *rb)
{
	uint32_t zero = 0;

	rb_meta(rb, NFT_META_SKUID);
	rb_cmp(rb, NFT_CMP_GTE, &zero, sizeof(zero));
}

/*
 * The ICMPv6 that the link needs (accepted even when IPv6 is off), only
 * where RFC 4861 and 3810 send it: router solicitation to all-routers,
 * neighbour solicitation to a solicited-node or link-local address,
 * advertisement to all-nodes or link-local, each with hop limit 255; MLD
 * reports with hop limit 1, v2 to ff02::16, v1 to a link-scope group.
 * None of these destinations is forwarded off the link. The kernel's own
 * neighbour discovery also solicits and answers on-link neighbours at
 * their global address (NUD, replies to a solicitation from a global
 * source): accepted with hop limit 255 when no process's socket sent it,
 * and a process's NS/NA anywhere else is dropped. Every other ICMPv6
 * (errors included) is judged like any packet: errors about an allowed
 * flow pass as RELATED in the stateful chain. Keep in sync with
 * icmp6_link_verdict() in bpf/parse.bpf.h.
 */
static int build_icmp6_rules(struct nftsync_batch *b, uint16_t grp)
{
	static const struct {
		uint8_t type;
		uint8_t hoplimit;
		const char *daddr;
		int plen;
		const char *comment;
	} link[] = {
		{ 133, 255, "ff02::2", 128,
		  "ICMPv6 router solicitation to all-routers" },
		{ 135, 255, "ff02::1:ff00:0", 104,
		  "ICMPv6 neighbour solicitation to a solicited-node address" },
		{ 135, 255, "fe80::", 10,
		  "ICMPv6 neighbour solicitation to link-local" },
		{ 136, 255, "ff02::1", 128,
		  "ICMPv6 neighbour advertisement to all-nodes" },
		{ 136, 255, "fe80::", 10,
		  "ICMPv6 neighbour advertisement to link-local" },
		{ 143, 1, "ff02::16", 128,
		  "MLDv2 report to all MLDv2 routers" },
		{ 131, 1, "ff02::", 16, "MLDv1 report, link-scope group" },
		{ 132, 1, "ff02::", 16, "MLDv1 done, link-scope group" },
	};
	static const uint8_t nd[] = { 135, 136 };
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct rb rb;
	size_t i;
	int err;

	for (i = 0; i < sizeof(link) / sizeof(link[0]); i++) {
		RULE(m_icmpv6_type(&rb, link[i].type);
		     m_hoplimit(&rb, link[i].hoplimit);
		     m_daddr6_prefix(&rb, link[i].daddr, link[i].plen);
		     a_verdict(&rb, NF_ACCEPT));
		EMIT(link[i].comment);
	}
	for (i = 0; i < sizeof(nd); i++) {
		RULE(m_icmpv6_type(&rb, nd[i]); m_from_user_socket(&rb);
		     a_drop(&rb, "default_drop", "default_deny", grp));
		EMIT(nd[i] == 135 ?
			     "neighbour solicitation from a process, off the link scope" :
			     "neighbour advertisement from a process, off the link scope");
	}
	for (i = 0; i < sizeof(nd); i++) {
		RULE(m_icmpv6_type(&rb, nd[i]); m_hoplimit(&rb, 255);
		     a_verdict(&rb, NF_ACCEPT));
		EMIT(nd[i] == 135 ?
			     "the kernel's neighbour solicitation (NUD) to an on-link neighbour" :
			     "the kernel's neighbour advertisement to an on-link neighbour");
	}
	return 0;
}

/*
 * egressd's API is not the workload's (issue 12, class 5): a connection
 * attempt to the API port through lo (127.0.0.1, ::1 or one of the
 * namespace's own addresses) is accepted from egressd's cgroup (or its
 * container's: egressctl) and dropped from the workload, or from every
 * other cgroup where nft cannot name the workload. Ahead of the loopback
 * accept. An accept and a drop rather than one "!=" rule: a socket whose
 * cgroup is shallower than the level asked cannot be compared, and the
 * rule would not match. Only SYNs: the replies and the closing packets of
 * the API's own connections (some from the kernel's control sockets) are
 * not concerned. A packet not on lo leaves both rules after one compare.
 */
static int build_api_rules(struct nftsync_batch *b,
			   const struct nftsync_config *cfg, uint16_t grp)
{
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct rb rb;
	int err;

	if (!cfg->api_port)
		return 0;
	RULE(m_oifname(&rb, "lo"); m_l4proto(&rb, IPPROTO_TCP);
	     m_dport(&rb, cfg->api_port); m_tcp_syn(&rb);
	     m_cgroup(&rb, cfg->api_cgroup_level, cfg->api_cgroup_id);
	     a_verdict(&rb, NF_ACCEPT));
	EMIT("egressd API: egressd's cgroup (egressctl) may connect");
	RULE(m_oifname(&rb, "lo"); m_l4proto(&rb, IPPROTO_TCP);
	     m_dport(&rb, cfg->api_port); m_tcp_syn(&rb);
	     if (cfg->api_workload_only)
		     m_cgroup(&rb, cfg->workload_cgroup_level,
			      cfg->workload_cgroup_id);
	     a_drop(&rb, "api_drop", "api", grp));
	EMIT(cfg->api_workload_only ?
		     "egressd API: never from the workload, whatever the token" :
		     "egressd API: never from another cgroup, whatever the token");
	return 0;
}

#define HEAD_STATEFUL 0x1 /* "ct state established,related accept" */
#define HEAD_ICMP6 0x2	  /* the ICMPv6 accepts (always with ipv6_deny) */

/*
 * The head of chain egress: loopback, the ICMPv6 that the link needs,
 * with ipv6_deny the IPv6-disabled rejects (TCP reset for TCP, ICMPv6
 * administratively prohibited for the rest, so a v6 connect or send fails
 * at once, established or not), and, when stateful, established flows.
 * Stateless when BPF enforces: any ct expression turns conntrack on for
 * every packet of the namespace, and the BPF program keeps established
 * flows itself (docs/design.md).
 */
static int build_head_rules(struct nftsync_batch *b,
			    const struct nftsync_config *cfg, uint16_t grp,
			    unsigned int flags)
{
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct rb rb;
	int err, f;

	err = build_api_rules(b, cfg, grp);
	if (err)
		return err;
	RULE(m_oifname(&rb, "lo"); a_verdict(&rb, NF_ACCEPT));
	EMIT("loopback: egressd DNS proxy and API");
	/* The output hook's device is fixed before nat: DNS redirected to
	 * the proxy by nat still shows its original oif, but a loopback
	 * daddr. (The BPF redirect rewrites before routing: oif is lo.) */
	for (f = 0; f < 2 && !cfg->bpf_redirect; f++) {
		RULE(m_daddr_loopback(&rb, f ? AF_INET6 : AF_INET);
		     a_verdict(&rb, NF_ACCEPT));
		EMIT("loopback destination: DNS redirected to egressd");
	}
	if ((flags & HEAD_ICMP6) || cfg->ipv6_deny) {
		err = build_icmp6_rules(b, grp);
		if (err)
			return err;
	}
	/* IPv6 off means off: nothing but loopback and neighbour discovery,
	 * whatever the allow rules, open flows or the agent say. Rejected,
	 * not dropped: a dropped SYN leaves connect() retransmitting for
	 * minutes. */
	if (cfg->ipv6_deny) {
		RULE(m_nfproto(&rb, AF_INET6); m_l4proto(&rb, IPPROTO_TCP);
		     a_reject(&rb, "ipv6_drop", "ipv6_disabled", grp, true));
		EMIT("IPv6 disabled: TCP reset");
		RULE(m_nfproto(&rb, AF_INET6);
		     a_reject(&rb, "ipv6_drop", "ipv6_disabled", grp, false));
		EMIT("IPv6 disabled");
	}
	if (flags & HEAD_STATEFUL) {
		RULE(m_ct_state(&rb, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) |
					     NF_CT_STATE_BIT(IP_CT_RELATED));
		     a_verdict(&rb, NF_ACCEPT));
		EMIT("flows already allowed continue");
	}
	return 0;
}

/*
 * Port 53 only through the redirect: the agent reaches its upstreams (in
 * dns mode, where no upstream set exists, any address), nobody else
 * reaches port 53 off loopback (raw sockets, sockets that predate the
 * redirect). The port is compared first, so other packets leave each
 * rule after one compare.
 */
static int build_dns_rules(struct nftsync_batch *b,
			   const struct nftsync_config *cfg, uint16_t grp)
{
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP };
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct rb rb;
	size_t p;
	int err, f;

	for (p = 0; p < 2; p++) {
		for (f = 0; f < (cfg->filter ? 2 : 1) && !cfg->agent_withdrawn;
		     f++) {
			RULE(m_l4proto(&rb, protos[p]); m_dport(&rb, 53);
			     m_cgroup(&rb, cfg->agent_cgroup_level,
				      cfg->agent_cgroup_id));
			if (cfg->filter)
				m_daddr_set(&rb, &sets[SET_UPSTREAM4 + f]);
			a_verdict(&rb, NF_ACCEPT);
			EMIT("egressd agent to its upstream resolvers");
		}
		RULE(m_l4proto(&rb, protos[p]); m_dport(&rb, 53);
		     a_drop(&rb, "dns_drop", "default_deny", grp));
		EMIT("port 53 only through the egressd redirect");
	}
	return 0;
}

/*
 * dns mode: chain egress holds only what the DNS layer needs (IPv6 off,
 * and with the BPF redirect the port-53 rules), then an explicit accept.
 * IPv4 is left to the DNS layer, as in dns mode.
 */
static int build_dnsmode_rules(struct nftsync_batch *b,
			       const struct nftsync_config *cfg, uint16_t grp)
{
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct rb rb;
	int err;

	err = build_head_rules(b, cfg, grp, HEAD_ICMP6);
	if (!err && (cfg->bpf_redirect || cfg->agent_withdrawn))
		err = build_dns_rules(b, cfg, grp);
	if (err)
		return err;
	RULE(a_verdict(&rb, NF_ACCEPT));
	EMIT("dns mode: nothing else is filtered here");
	return 0;
}

/*
 * The BPF hand-off: the workload cgroup's packets (family: only those of
 * that family, 0 for both) are accepted here and judged by the cgroup/skb
 * program. When BPF covers the whole namespace, every packet.
 */
static int build_handoff_rule(struct nftsync_batch *b,
			      const struct nftsync_config *cfg, int family)
{
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct rb rb;
	int err;

	RULE();
	if (family)
		m_nfproto(&rb, family);
	if (!cfg->bpf_covers_all)
		m_cgroup(&rb, cfg->workload_cgroup_level,
			 cfg->workload_cgroup_id);
	a_verdict(&rb, NF_ACCEPT);
	EMIT(family == AF_INET ?
		     (!cfg->bpf_covers_all ?
			      "workload cgroup, IPv4: judged by the egressd BPF program" :
			      "workload = every cgroup, IPv4: judged by the egressd BPF program") :
	     !cfg->bpf_covers_all ?
		     "workload cgroup: judged by the egressd BPF program" :
		     "workload = every cgroup: judged by the egressd BPF program");
	return 0;
}

/*
 * The egress chain, in order (docs/nftables.md explains each step).
 * Every drop counts into a named counter and logs to nflog.
 */
static int build_filter_rules(struct nftsync_batch *b,
			      const struct nftsync_config *cfg, uint16_t grp)
{
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP };
	bool blanket443 = cfg->block_doh_443 && !cfg->n_doh;
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct rb rb;
	size_t p;
	int err, f;

	/*
	 * When BPF enforces, the workload's packets are judged there (it
	 * counts and reports every violation with the socket's details, and
	 * does the loopback, port-53, agent and ICMPv6 steps itself);
	 * nftables keeps the full verdict for everyone else (DESIGN.md 1).
	 * The hand-off is the first rule (after the IPv6-off rejects for
	 * IPv6), so that a workload packet walks one rule.
	 */
	if (cfg->bpf_handoff) {
		/* IPv6 off: the rejects must come first, so only IPv4 is
		 * handed off before them (the rest after). */
		err = build_handoff_rule(b, cfg, cfg->ipv6_deny ? AF_INET : 0);
		/* Everyone else is judged here, statefully. Only when BPF
		 * takes every packet (workload = cgroup2 root) is there no
		 * one left to need "established", and no ct expression. */
		if (!err)
			err = build_head_rules(b, cfg, grp,
					       !cfg->bpf_covers_all ?
						       HEAD_STATEFUL :
						       0);
		if (!err && cfg->ipv6_deny)
			err = build_handoff_rule(b, cfg, 0);
		if (!err && !cfg->ipv6_deny)
			err = build_icmp6_rules(b, grp);
	} else {
		err = build_head_rules(b, cfg, grp, HEAD_STATEFUL | HEAD_ICMP6);
	}
	if (!err)
		err = build_dns_rules(b, cfg, grp);
	if (err)
		return err;
	if (!cfg->agent_withdrawn) {
		RULE(m_cgroup(&rb, cfg->agent_cgroup_level,
			      cfg->agent_cgroup_id);
		     a_verdict(&rb, NF_ACCEPT));
		EMIT("egressd agent's own traffic (upstream DNS, webhook)");
	}
	for (f = 0; f < 2; f++) {
		RULE(m_daddr_set(&rb, &sets[SET_DOH_ALLOW4 + f]);
		     a_verdict(&rb, NF_ACCEPT));
		EMIT("named exactly by an allow rule: exempt from DoT/DoH");
	}
	for (p = 0; p < 2; p++) {
		RULE(m_l4proto(&rb, protos[p]); m_dport(&rb, 853);
		     a_drop(&rb, "dot_drop", "dot", grp));
		EMIT(protos[p] == IPPROTO_TCP ? "DNS over TLS" :
						"DNS over QUIC/DTLS");
	}
	for (p = 0; p < 2; p++) {
		if (blanket443) {
			RULE(m_l4proto(&rb, protos[p]); m_dport(&rb, 443);
			     a_drop(&rb, "doh_drop", "doh", grp));
			EMIT("BLOCK_DOH_443 without blocklist: all 443");
			continue;
		}
		for (f = 0; f < 2; f++) {
			RULE(m_l4proto(&rb, protos[p]); m_dport(&rb, 443);
			     m_daddr_set(&rb, &sets[SET_DOH4 + f]);
			     a_drop(&rb, "doh_drop", "doh", grp));
			EMIT(protos[p] == IPPROTO_TCP ?
				     "DNS over HTTPS to a known provider" :
				     "DNS over HTTP/3 to a known provider");
		}
	}
	for (f = 0; f < 2; f++) {
		RULE(m_daddr_set(&rb, &sets[SET_DENY4 + f]);
		     a_drop(&rb, "deny_drop", "deny_rule", grp));
		EMIT("deny rules beat every allow");
	}
	for (f = 0; f < 2; f++) {
		RULE(m_daddr_set(&rb, &sets[SET_LEARNED4 + f]);
		     a_verdict(&rb, NF_ACCEPT));
		EMIT("learned from answers to allowed names");
	}
	for (f = 0; f < 2; f++) {
		RULE(m_daddr_set(&rb, &sets[SET_ALLOW4 + f]);
		     a_verdict(&rb, NF_ACCEPT));
		EMIT("allowed by IP/CIDR rule");
	}
	if (cfg->default_accept) {
		RULE(a_verdict(&rb, NF_ACCEPT));
		EMIT("defaultAction allow");
	} else {
		RULE(a_drop(&rb, "default_drop", "default_deny", grp));
		EMIT("defaultAction deny");
	}
	return 0;
}
#undef RULE
#undef EMIT

/* Learned addresses split per family into set elements. */
static int learned_elems(const struct policy_addr *v, size_t n, int f,
			 struct elem **out, size_t *nout)
{
	return hosts_build(v, n, f, false, NULL, 0, out, nout);
}

/*
 * Chain antispoof, in every mode: a packet the namespace sends through lo
 * must carry one of the namespace's own addresses as its source ("fib
 * saddr type local"). A root workload with CAP_NET_RAW can write any
 * source; sent to its own address, such a packet comes back in through lo
 * and looks like it came from that source to every local service (issue
 * 12: answers "from" the DNS upstream). 0.0.0.0 and :: (DHCP, duplicate address detection) and
 * fe80::/10 (link-local, which the fib cannot type without an interface)
 * are left alone, and so are packets without a socket (the kernel's own:
 * reject's TCP resets carry the remote address as source). Drops are
 * logged as default_deny: no rule can allow a forged source. Packet
 * sockets skip this hook; the DNS proxy checks the device its answers
 * came in on itself (dnsproxy.c, dp_up_filter). Not installed when BPF
 * judges every packet of the namespace.
 */
static void m_saddr_not_local(struct rb *rb, int family)
{
	static const uint8_t zero[16] = { 0 };
	static const uint8_t ll[2] = { 0xfe, 0x80 }, llmask[2] = { 0xff, 0xc0 };
	uint32_t local = RTN_LOCAL;
	struct nftnl_expr *e;

	m_nfproto(rb, family);
	/* lo only: what leaves through another interface leaves the
	 * namespace and is judged there. Keeps the fib lookup off the
	 * datapath. */
	m_oifname(rb, "lo");
	/* Only packets of a socket: the TCP resets that reject sends in the
	 * name of the remote address (IPv6 off) have none, and must pass.
	 * "meta skuid >= 0" breaks the rule when there is no full socket. */
	rb_meta(rb, NFT_META_SKUID);
	rb_cmp(rb, NFT_CMP_GTE, zero, 4);
	if (family == AF_INET6) {
		rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, 8, 2);
		e = rb_expr(rb, "bitwise");
		if (!e)
			return;
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 2);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, llmask, 2);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, 2);
		rb_cmp(rb, NFT_CMP_NEQ, ll, 2);
	}
	rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, family == AF_INET ? 12 : 8,
		   family == AF_INET ? 4 : 16);
	rb_cmp(rb, NFT_CMP_NEQ, zero, family == AF_INET ? 4 : 16);
	e = rb_expr(rb, "fib");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_SADDR);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
	rb_cmp(rb, NFT_CMP_NEQ, &local, sizeof(local));
}

static int build_antispoof_rules(struct nftsync_batch *b, uint16_t grp)
{
	char prefix[64];
	struct nftnl_expr *e;
	struct rb rb;
	int f, err;

	snprintf(prefix, sizeof(prefix), NFTSYNC_LOG_PREFIX "default_deny");
	for (f = 0; f < 2; f++) {
		int fam = f ? AF_INET6 : AF_INET;

		err = rb_start(&rb, chain_antispoof.name);
		if (err)
			return err;
		m_saddr_not_local(&rb, fam);
		rb_expr(&rb, "counter");
		e = rb_expr(&rb, "log");
		if (e) {
			if (nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX,
					       prefix) < 0)
				rb.err = -ENOMEM;
			nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, grp);
			nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, 128);
		}
		a_verdict(&rb, NF_DROP);
		err = rb_emit(b, &rb,
			      fam == AF_INET ?
				      "forged IPv4 source (not an address of this netns)" :
				      "forged IPv6 source (not an address of this netns)");
		if (err)
			return err;
	}
	return 0;
}

int nftsync_build_apply(struct nftsync_batch *b,
			const struct nftsync_config *cfg,
			const struct policy_addr *forget, size_t n_forget,
			unsigned int flags)
{
	uint16_t grp = cfg->log_group ? cfg->log_group :
					NFTSYNC_DEFAULT_LOG_GROUP;
	/* dns mode still has a chain egress for IPv6 off and, with the BPF
	 * redirect, for the port-53 rules that nat used to make moot. */
	bool dns53 = cfg->bpf_redirect || cfg->agent_withdrawn;
	bool dnschain = !cfg->filter &&
			(cfg->ipv6_deny || dns53 || cfg->api_port);
	const struct chain_spec *dcs =
		dns53 ? (cfg->ipv6_deny ? &chain_dns_53_v6off : &chain_dns_53) :
		cfg->ipv6_deny ? &chain_dns_v6off :
				 &chain_dns_api;
	/*
	 * BPF judges every packet of the namespace (hand-off at the cgroup2
	 * root) and IPv6 is not off: chain egress would only accept, and its
	 * hook alone costs every packet; it goes (the sets stay, so that
	 * nftables is ready if BPF is not there next time).
	 */
	bool chain = cfg->filter &&
		     !(cfg->bpf_handoff && cfg->bpf_covers_all &&
		       !cfg->ipv6_deny);
	/* BPF judges every packet: no output hook here at all (the same
	 * reason chain egress goes); forged sources are then BPF's. */
	bool antispoof = !(cfg->bpf_handoff && cfg->bpf_covers_all);
	struct set_contents sc = { 0 };
	struct elem *fe = NULL;
	size_t nfe, i;
	int err;

	err = check_config(cfg);
	if (!err)
		err = check_addrs(forget, n_forget);
	if (err)
		return err;
	if (cfg->filter) {
		err = contents_build(cfg, &sc);
		if (err)
			return err;
	}
	err = batch_begin(b);
	if (!err && (flags & NFTSYNC_BUILD_REPLACE)) {
		err = emit_table(b, NFT_MSG_NEWTABLE);
		if (!err)
			err = emit_table(b, NFT_MSG_DELTABLE);
	}
	if (!err)
		err = emit_table(b, NFT_MSG_NEWTABLE);
	/*
	 * Each chain is added (so that the delete cannot fail), deleted
	 * with its rules and, when this mode uses it, added again: fresh,
	 * with the comment of this mode. Adding a chain that exists keeps
	 * its old comment, so a flushed and reused chain went on saying
	 * "egressd dns mode: ..." after a switch to dns+nft. All in one
	 * transaction: packets meet the old chain or the new, never none.
	 */
	if (!err)
		err = emit_chain(b, &chain_redirect, NFT_MSG_NEWCHAIN);
	if (!err)
		err = emit_chain(b, &chain_redirect, NFT_MSG_DELCHAIN);
	if (!err && !cfg->bpf_redirect)
		err = emit_chain(b, &chain_redirect, NFT_MSG_NEWCHAIN);
	if (!err)
		err = emit_chain(b, &chain_filter, NFT_MSG_NEWCHAIN);
	if (!err)
		err = emit_chain(b, &chain_filter, NFT_MSG_DELCHAIN);
	if (!err)
		err = emit_chain(b, &chain_antispoof, NFT_MSG_NEWCHAIN);
	if (!err)
		err = emit_chain(b, &chain_antispoof, NFT_MSG_DELCHAIN);
	if (!err && antispoof)
		err = emit_chain(b, &chain_antispoof, NFT_MSG_NEWCHAIN);
	/* dns mode: only the IPv6-off and port-53 rules (see dcs). */
	if (!err && (chain || dnschain))
		err = emit_chain(b, chain ? &chain_filter : dcs,
				 NFT_MSG_NEWCHAIN);
	for (i = 0; i < N_COUNTERS && !err; i++) {
		err = emit_counter(b, &counters[i], NFT_MSG_NEWOBJ);
		if (!err && !cfg->filter &&
		    !(dnschain && cfg->ipv6_deny &&
		      !strcmp(counters[i].name, "ipv6_drop")) &&
		    !(dnschain && dns53 &&
		      !strcmp(counters[i].name, "dns_drop")) &&
		    !(dnschain && cfg->api_port &&
		      !strcmp(counters[i].name, "api_drop")) &&
		    !(dnschain &&
		      !strcmp(counters[i].name, "default_drop")))
			err = emit_counter(b, &counters[i], NFT_MSG_DELOBJ);
	}
	/* Static sets are recreated (no rule uses them any more at this
	 * point); learned sets are only created if missing. */
	for (i = 0; i < SET_MAX && !err; i++) {
		err = emit_set(b, &sets[i], NFT_MSG_NEWSET);
		if (err || (cfg->filter && set_is_learned(i)))
			continue;
		err = emit_set(b, &sets[i], NFT_MSG_DELSET);
		if (!err && cfg->filter)
			err = emit_set(b, &sets[i], NFT_MSG_NEWSET);
		if (!err && cfg->filter)
			err = emit_elems(b, &sets[i], ELEM_ADD,
					 sc.e[i], sc.n[i], 0);
	}
	for (i = 0; i < 2 && !err && cfg->filter; i++) {
		const struct set_spec *ss = &sets[SET_LEARNED4 + i];

		if (flags & NFTSYNC_BUILD_FLUSH_LEARNED) {
			err = emit_elems(b, ss, ELEM_DELETE, NULL, 0, 0);
			continue;
		}
		err = learned_elems(forget, n_forget, ss->family, &fe, &nfe);
		/* Add first, so that deleting an expired one cannot fail. */
		if (!err && nfe)
			err = emit_elems(b, ss, ELEM_ADD, fe, nfe,
					 FORGET_TIMEOUT_MS);
		if (!err && nfe)
			err = emit_elems(b, ss, ELEM_DELETE, fe, nfe, 0);
		free(fe);
		fe = NULL;
	}
	if (!err && !cfg->bpf_redirect)
		err = build_redirect_rules(b, cfg);
	if (!err && chain)
		err = build_filter_rules(b, cfg, grp);
	else if (!err && dnschain)
		err = build_dnsmode_rules(b, cfg, grp);
	if (!err && antispoof)
		err = build_antispoof_rules(b, grp);
	if (!err)
		err = batch_end(b);
	contents_free(&sc);
	return err;
}

int nftsync_build_learn(struct nftsync_batch *b,
			const struct policy_addr *addrs, size_t n,
			unsigned int timeout_s)
{
	return nftsync_build_learn_split(b, addrs, n, NULL, 0, timeout_s);
}

/*
 * Known addresses get the refresh sequence: add (so that the delete
 * cannot fail on an element that expired meanwhile), delete, add with the
 * new timeout. Re-adding alone does not rewrite the expiry on every
 * kernel. Fresh addresses get one exclusive add: if the element exists
 * after all, the kernel refuses the whole batch with EEXIST and nothing
 * changed, so the caller can fall back to the refresh sequence.
 */
int nftsync_build_learn_split(struct nftsync_batch *b,
			      const struct policy_addr *known, size_t nknown,
			      const struct policy_addr *fresh, size_t nfresh,
			      unsigned int timeout_s)
{
	uint64_t ms = (uint64_t)timeout_s * 1000;
	struct elem *e = NULL;
	size_t ne, i;
	int err;

	if (!timeout_s || check_addrs(known, nknown) ||
	    check_addrs(fresh, nfresh))
		return -EINVAL;
	err = batch_begin(b);
	for (i = 0; i < 2 && !err; i++) {
		const struct set_spec *ss = &sets[SET_LEARNED4 + i];

		err = learned_elems(known, nknown, ss->family, &e, &ne);
		if (!err && ne)
			err = emit_elems(b, ss, ELEM_ADD, e, ne, ms);
		if (!err && ne)
			err = emit_elems(b, ss, ELEM_DELETE, e, ne, 0);
		if (!err && ne)
			err = emit_elems(b, ss, ELEM_ADD, e, ne, ms);
		free(e);
		e = NULL;
		if (!err)
			err = learned_elems(fresh, nfresh, ss->family, &e, &ne);
		if (!err && ne)
			err = emit_elems(b, ss, ELEM_CREATE, e, ne, ms);
		free(e);
		e = NULL;
	}
	if (!err)
		err = batch_end(b);
	return err;
}

static int emit_netdev_table(struct nftsync_batch *b, uint16_t type);

int nftsync_build_cleanup(struct nftsync_batch *b)
{
	int err;

	/* Each added first, so that a missing one cannot fail the batch
	 * (and keep the other). */
	err = batch_begin(b);
	if (!err)
		err = emit_table(b, NFT_MSG_NEWTABLE);
	if (!err)
		err = emit_table(b, NFT_MSG_DELTABLE);
	if (!err)
		err = emit_netdev_table(b, NFT_MSG_NEWTABLE);
	if (!err)
		err = emit_netdev_table(b, NFT_MSG_DELTABLE);
	if (!err)
		err = batch_end(b);
	return err;
}

/* ---- table netdev egressd: frames around the IP stack ----------------- */

/*
 * A packet socket (AF_PACKET, CAP_NET_RAW) writes whole frames straight
 * to a device: neither the inet output hook nor the cgroup/skb program
 * sees them. The netdev egress hook does (since 5.16; since 5.17 also
 * for PACKET_QDISC_BYPASS frames, which skip the qdisc and tc). At that
 * hook the frame's content is the sender's to choose, skb->protocol and
 * the header offsets included, so the chain does not judge content: it
 * asks where the frame came from. A packet the IP stack routed carries a
 * route (meta rtclassid loads only then), and the IP stack's own hooks
 * (chain egress, the BPF program) have judged it; a frame a process's
 * socket wrote without a route is a packet socket's: dropped. What is
 * left, neither routed nor from a process, is the kernel's own: its ARP
 * (read from the Ethernet header, not skb->protocol) passes, anything
 * else is dropped too. Policy-independent: the same four rules in every
 * mode, one chain per interface (lo too: packet sockets write there).
 */
/* cmd_start() writes family inet into the header; the kernel reads the
 * family from there, not from the object. */
static void netdev_family(struct nlmsghdr *nlh)
{
	struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);

	nfg->nfgen_family = NFPROTO_NETDEV;
}

static int emit_netdev_table(struct nftsync_batch *b, uint16_t type)
{
	return emit_table_of(b, type, NFPROTO_NETDEV, "table netdev",
			     "egressd: frames the IP stack did not route are dropped");
}

static int emit_netdev_counter(struct nftsync_batch *b, const char *name,
			       const char *comment)
{
	struct nftnl_udata_buf *u;
	struct nftnl_obj *o;
	struct nlmsghdr *nlh;
	int err = -ENOMEM;

	o = nftnl_obj_alloc();
	if (!o)
		return -ENOMEM;
	u = comment_udata(NFTNL_UDATA_OBJ_COMMENT, comment);
	if (!u)
		goto out;
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, NFTSYNC_TABLE);
	nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
	nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, NFPROTO_NETDEV);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_PKTS, 0);
	nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_BYTES, 0);
	nftnl_obj_set_data(o, NFTNL_OBJ_USERDATA, nftnl_udata_buf_data(u),
			   nftnl_udata_buf_len(u));
	nlh = obj_start(b, NFT_MSG_NEWOBJ, NLM_F_CREATE, "add", "counter",
			name);
	if (nlh) {
		netdev_family(nlh);
		nftnl_obj_nlmsg_build_payload(nlh, o);
		msg_end(b, nlh);
		err = 0;
	}
	nftnl_udata_buf_free(u);
out:
	nftnl_obj_free(o);
	return err;
}

static int emit_netdev_chain(struct nftsync_batch *b, const char *chain,
			     const char *ifname)
{
	struct nftnl_udata_buf *u;
	struct nftnl_chain *c;
	struct nlmsghdr *nlh;
	int err = -ENOMEM;

	c = nftnl_chain_alloc();
	if (!c)
		return -ENOMEM;
	u = comment_udata(NFTNL_UDATA_CHAIN_COMMENT,
			  "frames leaving this interface: only what the IP stack routed, and the kernel's ARP");
	if (!u)
		goto out;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFTSYNC_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_NETDEV);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_NETDEV_EGRESS);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_str(c, NFTNL_CHAIN_DEV, ifname);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nftnl_chain_set_data(c, NFTNL_CHAIN_USERDATA, nftnl_udata_buf_data(u),
			     nftnl_udata_buf_len(u));
	nlh = obj_start(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, "add", "chain",
			chain);
	if (nlh) {
		netdev_family(nlh);
		nftnl_chain_nlmsg_build_payload(nlh, c);
		msg_end(b, nlh);
		err = 0;
	}
	nftnl_udata_buf_free(u);
out:
	nftnl_chain_free(c);
	return err;
}

static int rb_start_netdev(struct rb *rb, const char *chain)
{
	int err = rb_start(rb, chain);

	if (!err)
		nftnl_rule_set_u32(rb->r, NFTNL_RULE_FAMILY, NFPROTO_NETDEV);
	return err;
}

/* meta rtclassid >= 0: the skb has a route (the IP stack routed it). */
static void m_routed(struct rb *rb)
{
	uint32_t zero = 0;

	rb_meta(rb, NFT_META_RTCLASSID);
	rb_cmp(rb, NFT_CMP_GTE, &zero, sizeof(zero));
}

/* @ll,96,16 == 0x0806: ARP by the Ethernet header the peer will read. */
static void m_ether_arp(struct rb *rb)
{
	uint16_t arp = htons(0x0806);

	rb_payload(rb, NFT_PAYLOAD_LL_HEADER, 12, 2);
	rb_cmp(rb, NFT_CMP_EQ, &arp, sizeof(arp));
}

/* The names chains carry: what nft list shows and an error names. */
static int netdev_chain_name(char *buf, size_t len, const char *ifname)
{
	size_t n = strlen(ifname);

	if (!n || n >= 16 || strchr(ifname, '/'))
		return -EINVAL;
	snprintf(buf, len, NFTSYNC_NETDEV_CHAIN_PREFIX "%s", ifname);
	return 0;
}

#define NRULE(...)                                                       \
	do {                                                             \
		err = rb_start_netdev(&rb, c);                           \
		if (err)                                                 \
			return err;                                      \
		__VA_ARGS__;                                             \
	} while (0)
#define NEMIT(comment)                                                   \
	do {                                                             \
		err = rb_emit(b, &rb, comment);                          \
		if (err)                                                 \
			return err;                                      \
	} while (0)

/*
 * ICMPv6 first: the BPF program cannot tell the kernel's neighbour
 * discovery from a raw socket's (both have a socket of the attach cgroup
 * when the namespace's creator is in it), so it lets NS/NA to a global
 * address pass when shaped like the kernel's; here a process's socket
 * (meta skuid loads) tells them apart, before the routed accept.
 */
static int build_netdev_rules(struct nftsync_batch *b, const char *c,
			      uint16_t grp)
{
	static const uint8_t nd[] = { 135, 136 };
	uint8_t icmp6 = IPPROTO_ICMPV6;
	struct rb rb;
	size_t i;
	int err;

	NRULE(rb_meta(&rb, NFT_META_L4PROTO);
	      rb_cmp(&rb, NFT_CMP_NEQ, &icmp6, 1); m_routed(&rb);
	      a_verdict(&rb, NF_ACCEPT));
	NEMIT("routed by the IP stack: judged by chain egress or the BPF program");
	for (i = 0; i < sizeof(nd); i++) {
		NRULE(m_l4proto(&rb, IPPROTO_ICMPV6);
		      rb_payload(&rb, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
		      rb_cmp(&rb, NFT_CMP_EQ, &nd[i], 1);
		      m_from_user_socket(&rb);
		      m_daddr6_cmp(&rb, NFT_CMP_NEQ, "fe80::", 10);
		      m_daddr6_cmp(&rb, NFT_CMP_NEQ, "ff02::", 16);
		      a_drop(&rb, "nd_drop", "default_deny", grp));
		NEMIT(nd[i] == 135 ?
			      "neighbour solicitation from a process, off the link scope" :
			      "neighbour advertisement from a process, off the link scope");
	}
	NRULE(m_routed(&rb); a_verdict(&rb, NF_ACCEPT));
	NEMIT("routed by the IP stack (ICMPv6)");
	NRULE(m_from_user_socket(&rb);
	      a_drop(&rb, "raw_frame_drop", "raw_frame", grp));
	NEMIT("a process's frame the IP stack did not route: packet socket");
	NRULE(m_ether_arp(&rb); a_verdict(&rb, NF_ACCEPT));
	NEMIT("the kernel's ARP");
	NRULE(a_drop(&rb, "raw_frame_drop", "raw_frame", grp));
	NEMIT("neither routed nor ARP");
	return 0;
}
#undef NRULE
#undef NEMIT

int nftsync_build_netdev(struct nftsync_batch *b, const char *const *ifnames,
			 size_t n, uint16_t grp)
{
	char chain[64];
	size_t i;
	int err;

	if (n > NFTSYNC_NETDEV_MAX_IFS || (n && !ifnames))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (netdev_chain_name(chain, sizeof(chain), ifnames[i]))
			return -EINVAL;
	err = batch_begin(b);
	/* Replace in one transaction: frames meet the old chains or the new,
	 * never none; an interface gone since is gone from the table. */
	if (!err)
		err = emit_netdev_table(b, NFT_MSG_NEWTABLE);
	if (!err)
		err = emit_netdev_table(b, NFT_MSG_DELTABLE);
	if (!err && n)
		err = emit_netdev_table(b, NFT_MSG_NEWTABLE);
	if (!err && n)
		err = emit_netdev_counter(b, "raw_frame_drop",
					  "frames not routed by the IP stack (packet sockets)");
	if (!err && n)
		err = emit_netdev_counter(b, "nd_drop",
					  "ICMPv6 NS/NA a process sent off the link scope");
	for (i = 0; i < n && !err; i++) {
		netdev_chain_name(chain, sizeof(chain), ifnames[i]);
		err = emit_netdev_chain(b, chain, ifnames[i]);
		if (!err)
			err = build_netdev_rules(b, chain, grp);
	}
	if (!err)
		err = batch_end(b);
	return err;
}

/*
 * The cgroup level probe: chain cgroup_probe (filter, output, before
 * every other egressd chain) drops a UDP datagram to port
 * NFTSYNC_PROBE_PORT + L when the sender's cgroup has id at ancestor
 * level L. The caller sends one datagram per level; the send that fails
 * with EPERM names the absolute level of its cgroup, which a private
 * cgroup namespace hides. The rules carry no "egressd agent" meaning:
 * they only ever drop probe datagrams.
 */
static const struct chain_spec chain_probe = {
	NFTSYNC_CHAIN_PROBE, "filter", -300,
	"egressd start-up: finds its cgroup's level (removed at once)",
};

int nftsync_build_level_probe(struct nftsync_batch *b, uint64_t id,
			      uint32_t max_level)
{
	const char *c = NFTSYNC_CHAIN_PROBE;
	struct rb rb;
	uint32_t l;
	int err;

	if (!id || max_level > NFTSYNC_PROBE_MAX_LEVEL)
		return -EINVAL;
	err = batch_begin(b);
	if (!err)
		err = emit_table(b, NFT_MSG_NEWTABLE);
	/* Created, deleted and created again: empty whatever a crashed
	 * probe left, in the same transaction. */
	if (!err)
		err = emit_chain(b, &chain_probe, NFT_MSG_NEWCHAIN);
	if (!err)
		err = emit_chain(b, &chain_probe, NFT_MSG_DELCHAIN);
	if (!err)
		err = emit_chain(b, &chain_probe, NFT_MSG_NEWCHAIN);
	for (l = 0; l <= max_level && !err; l++) {
		err = rb_start(&rb, c);
		if (err)
			break;
		m_l4proto(&rb, IPPROTO_UDP);
		m_dport(&rb, NFTSYNC_PROBE_PORT + l);
		m_cgroup(&rb, l, id);
		a_verdict(&rb, NF_DROP);
		err = rb_emit(b, &rb, "probe: cgroup at this level");
	}
	if (!err)
		err = batch_end(b);
	return err;
}

int nftsync_build_probe_cleanup(struct nftsync_batch *b)
{
	int err;

	err = batch_begin(b);
	if (!err)
		err = emit_chain(b, &chain_probe, NFT_MSG_DELCHAIN);
	if (!err)
		err = batch_end(b);
	return err;
}

/* ---- state, talker -------------------------------------------------- */

struct teacher {
	char *domain;
	uint64_t expiry_ms;
};

/* One learned address: kernel element expiry and who taught it. */
struct learned {
	struct learned *next;
	uint8_t family;
	uint8_t addr[16];
	uint64_t expiry_ms; /* 0: not (known to be) in the kernel */
	struct teacher t[NFTSYNC_MAX_TEACHERS];
};

struct nftsync {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	nftsync_talk_fn talk;
	void *talk_arg;
	bool filtering;
	struct nftsync_stats stats;
	char *rxbuf;
	size_t rxlen;
	size_t sndbuf, rcvbuf;	     /* socket buffer sizes asked for */
	struct nftsync_batch *lb;    /* reused by every learn */
	struct policy_addr *scratch; /* learn: known from the front, fresh
				      * from the back */
	size_t scratch_cap;
	/* Until then, addresses the cache does not know are refreshed too
	 * (see nftsync_learn()). */
	uint64_t refresh_until_ms;
	struct learned **bucket;
	size_t nbucket; /* power of two */
	size_t count;
};

static const char *errno_hint(int err)
{
	switch (err) {
	case EPERM:
	case EACCES:
		return " (needs CAP_NET_ADMIN in this network namespace)";
	case EPROTONOSUPPORT:
	case EAFNOSUPPORT:
		return " (nf_tables is not available in this kernel)";
	case EOPNOTSUPP:
		return " (kernel lacks an nftables feature egressd needs)";
	default:
		return "";
	}
}

/* NLMSGERR_ATTR_MSG of an extended ACK, or NULL. */
static const char *extack_msg(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);
	const struct nlattr *a;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NULL;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	mnl_attr_for_each(a, nlh, off) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			return mnl_attr_get_str(a);
	}
	return NULL;
}

/* Socket buffers at open: far above any learn batch and its ACKs. */
#define NL_SNDBUF_MIN (256 * 1024)
#define NL_RCVBUF_MIN (256 * 1024)

/* Raise a socket buffer to want bytes unless it was set that high. */
static void grow_sockbuf(int fd, int opt_force, int opt, size_t *cur,
			 size_t want)
{
	int v = want > (1U << 30) ? 1 << 30 : (int)want;

	if (want <= *cur)
		return;
	if (setsockopt(fd, SOL_SOCKET, opt_force, &v, sizeof(v)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
	*cur = want;
}

/*
 * Send one batch and read every ACK (nftables mnl_batch_talk()): the
 * kernel processes the batch inside sendmsg() and answers each command
 * (we asked for ACKs), continuing after an error so all of them are
 * reported; a refusal of the whole batch answers BEGIN only. The first
 * error is returned, named by the command its sequence number belongs to.
 */
static int nl_talk(const struct nftsync_batch *b, void *arg, char *err,
		   size_t errlen)
{
	struct nftsync *ns = arg;
	size_t len, ncmds = b->ncmds, acked = 0;
	const struct nlmsghdr *nlh;
	bool whole_batch = false;
	int fd, ret = 0, first = 0, left;
	struct pollfd pfd;
	const void *data;
	ssize_t n;

	data = nftsync_batch_data(b, &len);
	if (!data)
		return -EINVAL;
	fd = mnl_socket_get_fd(ns->nl);
	/* Only large apply batches get here with a setsockopt() to do. */
	grow_sockbuf(fd, SO_SNDBUFFORCE, SO_SNDBUF, &ns->sndbuf, len + 4096);
	grow_sockbuf(fd, SO_RCVBUFFORCE, SO_RCVBUF, &ns->rcvbuf,
		     ncmds * 1024 + 65536);
	if (mnl_socket_sendto(ns->nl, data, len) < 0) {
		ret = -errno;
		snprintf(err, errlen, "nftables: sending the batch failed: %s%s",
			 strerror(-ret), errno_hint(-ret));
		return ret;
	}
	while (acked < ncmds && !whole_batch) {
		/* The ACKs are normally queued by the time sendmsg()
		 * returns: wait only when they are not. */
		n = recv(fd, ns->rxbuf, ns->rxlen, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			pfd.fd = fd;
			pfd.events = POLLIN;
			n = poll(&pfd, 1, ACK_TIMEOUT_MS);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				ret = n ? -errno : -ETIMEDOUT;
				break;
			}
			continue;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno; /* ENOBUFS: ACKs lost, outcome unknown */
			break;
		}
		left = (int)n;
		for (nlh = (const struct nlmsghdr *)ns->rxbuf;
		     mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			const struct nlmsgerr *e;
			uint32_t i = nlh->nlmsg_seq - b->seq_base;
			const char *what, *ext;

			if (nlh->nlmsg_type != NLMSG_ERROR ||
			    i >= b->ndesc)
				continue; /* stale or not an ACK */
			if (i > 0 && i <= ncmds)
				acked++;
			else
				whole_batch = true;
			e = mnl_nlmsg_get_payload(nlh);
			if (!e->error || first)
				continue;
			first = e->error;
			what = nftsync_batch_describe(b, nlh->nlmsg_seq);
			ext = extack_msg(nlh);
			snprintf(err, errlen,
				 "nftables refused '%s' (seq %u): %s%s%s%s",
				 what ? what : "?", nlh->nlmsg_seq,
				 strerror(-first), ext ? ": " : "",
				 ext ? ext : "", errno_hint(-first));
		}
	}
	/* Every command answered once: nothing of this batch is left.
	 * Otherwise drain what is, so that it does not linger. */
	if (acked < ncmds || whole_batch)
		while (recv(fd, ns->rxbuf, ns->rxlen, MSG_DONTWAIT) > 0)
			;
	if (first)
		return first;
	if (ret)
		snprintf(err, errlen,
			 "nftables: reading ACKs failed after %zu of %zu: %s",
			 acked, ncmds, strerror(-ret));
	return ret;
}

static int ns_init(struct nftsync *ns)
{
	ns->nbucket = 256;
	ns->bucket = calloc(ns->nbucket, sizeof(*ns->bucket));
	ns->seq = (uint32_t)time(NULL) << 8;
	return ns->bucket ? 0 : -ENOMEM;
}

struct nftsync *nftsync_new_with_talker(nftsync_talk_fn talk, void *arg)
{
	struct nftsync *ns;

	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return NULL;
	if (ns_init(ns)) {
		free(ns);
		return NULL;
	}
	ns->talk = talk;
	ns->talk_arg = arg;
	return ns;
}

int nftsync_new(struct nftsync **out, char *err, size_t errlen)
{
	struct nftsync *ns = NULL;
	int one = 1, ret;

	*out = NULL;
	ns = nftsync_new_with_talker(nl_talk, NULL);
	if (!ns) {
		snprintf(err, errlen, "nftables: out of memory");
		return -ENOMEM;
	}
	ns->talk_arg = ns;
	ns->rxlen = MNL_SOCKET_BUFFER_SIZE > 65536 ? MNL_SOCKET_BUFFER_SIZE :
						     65536;
	ns->rxbuf = malloc(ns->rxlen);
	if (!ns->rxbuf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "nftables: out of memory");
		goto err_free;
	}
	ns->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!ns->nl) {
		ret = -errno;
		snprintf(err, errlen, "nftables: netlink socket: %s%s",
			 strerror(-ret), errno_hint(-ret));
		goto err_free;
	}
	if (mnl_socket_bind(ns->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		snprintf(err, errlen, "nftables: netlink bind: %s%s",
			 strerror(-ret), errno_hint(-ret));
		goto err_free;
	}
	ns->portid = mnl_socket_get_portid(ns->nl);
	/* Once here rather than per batch; nl_talk() grows them for
	 * batches that need more (large policies). */
	grow_sockbuf(mnl_socket_get_fd(ns->nl), SO_SNDBUFFORCE, SO_SNDBUF,
		     &ns->sndbuf, NL_SNDBUF_MIN);
	grow_sockbuf(mnl_socket_get_fd(ns->nl), SO_RCVBUFFORCE, SO_RCVBUF,
		     &ns->rcvbuf, NL_RCVBUF_MIN);
	/* Error ACKs carry the kernel's explanation, not our whole
	 * message back. Both are best effort on old kernels. */
	(void)mnl_socket_setsockopt(ns->nl, NETLINK_EXT_ACK, &one,
				    sizeof(one));
	(void)mnl_socket_setsockopt(ns->nl, NETLINK_CAP_ACK, &one,
				    sizeof(one));
	*out = ns;
	return 0;
err_free:
	nftsync_free(ns);
	return ret;
}

static void learned_free(struct learned *l)
{
	int i;

	for (i = 0; i < NFTSYNC_MAX_TEACHERS; i++)
		free(l->t[i].domain);
	free(l);
}

void nftsync_free(struct nftsync *ns)
{
	struct learned *l, *next;
	size_t i;

	if (!ns)
		return;
	for (i = 0; i < ns->nbucket; i++)
		for (l = ns->bucket[i]; l; l = next) {
			next = l->next;
			learned_free(l);
		}
	free(ns->bucket);
	nftsync_batch_free(ns->lb);
	free(ns->scratch);
	if (ns->nl)
		mnl_socket_close(ns->nl);
	free(ns->rxbuf);
	free(ns);
}

/* Build with build(), hand to the talker, count. */
static int run_batch(struct nftsync *ns, struct nftsync_batch *b, char *err,
		     size_t errlen)
{
	int ret;

	ns->seq = b->seq;
	ns->stats.batches++;
	ret = ns->talk(b, ns->talk_arg, err, errlen);
	if (ret)
		ns->stats.batch_errors++;
	return ret;
}

bool nftsync_is_filtering(const struct nftsync *ns)
{
	return ns->filtering;
}

void nftsync_get_stats(const struct nftsync *ns, struct nftsync_stats *out)
{
	*out = ns->stats;
}

/* ---- learned cache -------------------------------------------------- */

static size_t addr_hash(int family, const uint8_t *a)
{
	size_t len = alen_of(family), i;
	uint32_t h = 2166136261u ^ (uint32_t)family;

	for (i = 0; i < len; i++)
		h = (h ^ a[i]) * 16777619u;
	return h;
}

static struct learned **cache_slot(const struct nftsync *ns, int family,
				   const uint8_t *a)
{
	struct learned **pp;

	pp = &ns->bucket[addr_hash(family, a) & (ns->nbucket - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->family == family &&
		    !memcmp((*pp)->addr, a, alen_of(family)))
			break;
	return pp;
}

static void cache_resize(struct nftsync *ns)
{
	size_t n = ns->nbucket * 2, i;
	struct learned **nb, *l, *next;

	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return; /* longer chains, still correct */
	for (i = 0; i < ns->nbucket; i++)
		for (l = ns->bucket[i]; l; l = next) {
			size_t h = addr_hash(l->family, l->addr) & (n - 1);

			next = l->next;
			l->next = nb[h];
			nb[h] = l;
		}
	free(ns->bucket);
	ns->bucket = nb;
	ns->nbucket = n;
}

static struct learned *cache_get(struct nftsync *ns, int family,
				 const uint8_t *a, bool create)
{
	struct learned **pp = cache_slot(ns, family, a);
	struct learned *l;

	if (*pp || !create)
		return *pp;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->family = family;
	memcpy(l->addr, a, alen_of(family));
	*pp = l;
	ns->count++;
	if (ns->count > 2 * ns->nbucket)
		cache_resize(ns);
	return l;
}

static void cache_del(struct nftsync *ns, int family, const uint8_t *a)
{
	struct learned **pp = cache_slot(ns, family, a);
	struct learned *l = *pp;

	if (!l)
		return;
	*pp = l->next;
	learned_free(l);
	ns->count--;
}

/* Record domain as the latest teacher of l, valid until expiry_ms. */
static void teach(struct learned *l, const char *domain, uint64_t expiry_ms)
{
	struct teacher t = { NULL, 0 };
	int i, last = NFTSYNC_MAX_TEACHERS - 1;

	if (!domain)
		return;
	for (i = 0; i < NFTSYNC_MAX_TEACHERS; i++)
		if (l->t[i].domain && !strcmp(l->t[i].domain, domain)) {
			t = l->t[i];
			last = i;
			break;
		}
	if (!t.domain) {
		t.domain = strdup(domain);
		if (!t.domain)
			return;
		free(l->t[last].domain);
	}
	memmove(&l->t[1], &l->t[0], last * sizeof(l->t[0]));
	if (expiry_ms > t.expiry_ms)
		t.expiry_ms = expiry_ms;
	l->t[0] = t;
}

static void cache_each(struct nftsync *ns,
		       void (*fn)(struct nftsync *, struct learned *, void *),
		       void *arg)
{
	struct learned *l, *next;
	size_t i;

	for (i = 0; i < ns->nbucket; i++)
		for (l = ns->bucket[i]; l; l = next) {
			next = l->next;
			fn(ns, l, arg);
		}
}

static void forget_kernel_state(struct nftsync *ns, struct learned *l,
				void *arg)
{
	l->expiry_ms = 0;
}

static void drop_entry(struct nftsync *ns, struct learned *l, void *arg)
{
	uint64_t *now = arg;

	if (!now || l->expiry_ms + CACHE_LINGER_MS < *now)
		cache_del(ns, l->family, l->addr);
}

void nftsync_learned_gc(struct nftsync *ns, uint64_t now_ms)
{
	cache_each(ns, drop_entry, &now_ms);
}

const char *nftsync_learned_domain(const struct nftsync *ns, int family,
				   const void *addr)
{
	struct learned *l;

	if (family != AF_INET && family != AF_INET6)
		return NULL;
	l = *cache_slot(ns, family, addr);
	return l ? l->t[0].domain : NULL;
}

void nftsync_learned_counts(const struct nftsync *ns, uint64_t now_ms,
			    size_t *v4, size_t *v6)
{
	struct learned *l;
	size_t i;

	*v4 = *v6 = 0;
	for (i = 0; i < ns->nbucket; i++)
		for (l = ns->bucket[i]; l; l = l->next)
			if (l->expiry_ms > now_ms)
				(*(l->family == AF_INET ? v4 : v6))++;
}

/* Learn batches above this are not kept for the next learn. */
#define LEARN_BATCH_KEEP (256 * 1024)

/* Build one learn batch into the reused ns->lb and send it. */
static int learn_batch(struct nftsync *ns, const struct policy_addr *known,
		       size_t nknown, const struct policy_addr *fresh,
		       size_t nfresh, unsigned int timeout_s, char *err,
		       size_t errlen)
{
	int ret;

	if (ns->lb) {
		nftsync_batch_reset(ns->lb, ns->seq);
	} else {
		ns->lb = nftsync_batch_new(ns->seq);
		if (!ns->lb)
			goto oom;
	}
	ret = nftsync_build_learn_split(ns->lb, known, nknown, fresh, nfresh,
					timeout_s);
	if (ret == -ENOMEM)
		goto oom;
	if (!ret)
		ret = run_batch(ns, ns->lb, err, errlen);
	if (ns->lb->cap > LEARN_BATCH_KEEP) {
		nftsync_batch_free(ns->lb);
		ns->lb = NULL;
	}
	return ret;
oom:
	snprintf(err, errlen, "nftsync_learn: out of memory");
	return -ENOMEM;
}

static bool addr_listed(const struct policy_addr *v, size_t n,
			const struct policy_addr *a)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].family == a->family &&
		    !memcmp(v[i].addr, a->addr, alen_of(a->family)))
			return true;
	return false;
}

/*
 * Which write an address needs:
 *
 * - The cache knows it (written before, or at least taught before the
 *   filter was installed): it may be in the kernel with an older expiry,
 *   so it gets the refresh sequence (add, delete, add), the only way to
 *   rewrite an expiry on every kernel.
 * - The cache does not know it: the learned sets normally do not have it
 *   either (nftsync wrote every element it holds and caches each one
 *   until long after its expiry), so one add creates it with the right
 *   timeout. But the sets may hold it anyway: after a restart the sets
 *   were adopted with the previous agent's elements (up to
 *   LEARN_TTL_MAX + LEARN_GRACE of lifetime left), or a batch was applied
 *   although reading its ACKs failed. A plain add of an existing element
 *   succeeds without rewriting its expiry on some kernels (5.10), which
 *   would let it expire early. So the single add is exclusive
 *   (NLM_F_EXCL): if the element exists, the kernel refuses the whole
 *   batch with EEXIST, nothing changed, and the batch is sent again with
 *   every address refreshed. Correctness never depends on guessing; the
 *   guess only decides the cost. Since one such refusal means there may
 *   be more (a restart), unknown addresses are refreshed directly for
 *   the next timeout_s seconds; afterwards they are probed again.
 */
bool nftsync_learn_is_fresh(const struct nftsync *ns, uint64_t now_ms,
			    const struct policy_addr *addr,
			    unsigned int timeout_s)
{
	const struct learned *l = *cache_slot(ns, addr->family, addr->addr);
	uint64_t tmo = (uint64_t)timeout_s * 1000;

	return l && l->expiry_ms > now_ms && l->expiry_ms - now_ms > tmo / 2;
}

int nftsync_learn(struct nftsync *ns, uint64_t now_ms, const char *domain,
		  const struct policy_addr *addrs, size_t n,
		  unsigned int timeout_s, char *err, size_t errlen)
{
	uint64_t tmo = (uint64_t)timeout_s * 1000;
	struct policy_addr *known, *fresh;
	size_t nknown = 0, nfresh = 0, i;
	struct learned *l;
	int ret = 0;

	if (!timeout_s || check_addrs(addrs, n)) {
		snprintf(err, errlen, "nftsync_learn: bad arguments");
		return -EINVAL;
	}
	if (!n)
		return 0;
	if (n > ns->scratch_cap) {
		free(ns->scratch);
		ns->scratch_cap = 0;
		ns->scratch = malloc(n * sizeof(*ns->scratch));
		if (!ns->scratch) {
			snprintf(err, errlen, "nftsync_learn: out of memory");
			return -ENOMEM;
		}
		ns->scratch_cap = n;
	}
	/* known[] grows up from the front, fresh[] down from the back. */
	known = ns->scratch;
	fresh = ns->scratch + n;
	for (i = 0; i < n; i++) {
		l = cache_get(ns, addrs[i].family, addrs[i].addr, false);
		if (l && l->expiry_ms > now_ms &&
		    l->expiry_ms - now_ms > tmo / 2) {
			teach(l, domain, l->expiry_ms);
			ns->stats.learn_cached++;
			continue;
		}
		if (addr_listed(known, nknown, &addrs[i]) ||
		    addr_listed(fresh, nfresh, &addrs[i]))
			continue;
		if (l || now_ms < ns->refresh_until_ms) {
			known[nknown++] = addrs[i];
		} else {
			*--fresh = addrs[i];
			nfresh++;
		}
	}
	if ((nknown || nfresh) && ns->filtering) {
		ret = learn_batch(ns, known, nknown, fresh, nfresh, timeout_s,
				  err, errlen);
		if (ret == -EEXIST && nfresh) {
			/* In the kernel although not in the cache: refresh
			 * them all (the refused batch changed nothing). */
			ns->stats.learn_exists++;
			ns->refresh_until_ms = now_ms + tmo;
			memmove(known + nknown, fresh, nfresh * sizeof(*fresh));
			nknown += nfresh;
			nfresh = 0;
			fresh = known + nknown;
			ret = learn_batch(ns, known, nknown, NULL, 0,
					  timeout_s, err, errlen);
		}
		if (ret)
			return ret;
		ns->stats.learn_sent += nknown + nfresh;
	}
	for (i = 0; i < nknown + nfresh; i++) {
		const struct policy_addr *a = i < nknown ? &known[i] :
							   &fresh[i - nknown];

		l = cache_get(ns, a->family, a->addr, true);
		if (!l)
			break; /* kernel has it; the next answer rewrites it */
		l->expiry_ms = now_ms + tmo;
		teach(l, domain, l->expiry_ms);
	}
	return 0;
}

/* ---- apply, cleanup ------------------------------------------------- */

struct revoke_ctx {
	const struct nftsync_update *upd;
	struct policy_addr *v;
	size_t n, cap;
	int err;
};

/* Collect cached addresses none of whose live teachers is kept. */
static void revoke_one(struct nftsync *ns, struct learned *l, void *arg)
{
	struct revoke_ctx *rc = arg;
	struct policy_addr *v;
	int i;

	if (rc->err || l->expiry_ms <= rc->upd->now_ms)
		return; /* gone from the kernel already */
	for (i = 0; i < NFTSYNC_MAX_TEACHERS; i++)
		if (l->t[i].domain && l->t[i].expiry_ms > rc->upd->now_ms &&
		    rc->upd->keep(l->t[i].domain, rc->upd->keep_arg))
			return;
	if (rc->n == rc->cap) {
		rc->cap = rc->cap ? rc->cap * 2 : 64;
		v = realloc(rc->v, rc->cap * sizeof(*v));
		if (!v) {
			rc->err = -ENOMEM;
			return;
		}
		rc->v = v;
	}
	v = &rc->v[rc->n++];
	memset(v, 0, sizeof(*v));
	v->family = l->family;
	v->prefixlen = l->family == AF_INET ? 32 : 128;
	memcpy(v->addr, l->addr, alen_of(l->family));
}

static bool is_fatal(int err)
{
	return err == -EPERM || err == -EACCES || err == -ENOMEM ||
	       err == -EPROTONOSUPPORT || err == -EAFNOSUPPORT ||
	       err == -ETIMEDOUT || err == -ENOBUFS || err == -EINVAL;
}

static int apply_once(struct nftsync *ns, const struct nftsync_config *cfg,
		      const struct policy_addr *forget, size_t n_forget,
		      unsigned int flags, char *err, size_t errlen)
{
	struct nftsync_batch *b;
	int ret;

	b = nftsync_batch_new(ns->seq);
	if (!b)
		return -ENOMEM;
	ret = nftsync_build_apply(b, cfg, forget, n_forget, flags);
	if (ret == -EINVAL)
		snprintf(err, errlen,
			 "nftables: bad configuration (dns port, agent cgroup id and level >= 1, addresses)");
	if (!ret)
		ret = run_batch(ns, b, err, errlen);
	nftsync_batch_free(b);
	return ret;
}

int nftsync_apply(struct nftsync *ns, const struct nftsync_config *cfg,
		  const struct nftsync_update *upd, char *err, size_t errlen)
{
	struct revoke_ctx rc = { .upd = upd };
	unsigned int flags = 0;
	size_t i;
	int ret;

	if (upd && upd->keep)
		cache_each(ns, revoke_one, &rc);
	ret = rc.err;
	if (!ret && upd && upd->n_forget) {
		struct policy_addr *v;

		v = realloc(rc.v, (rc.n + upd->n_forget) * sizeof(*v));
		if (!v) {
			ret = -ENOMEM;
		} else {
			rc.v = v;
			memcpy(v + rc.n, upd->forget,
			       upd->n_forget * sizeof(*v));
			rc.n += upd->n_forget;
		}
	}
	if (ret) {
		snprintf(err, errlen, "nftables: out of memory");
		goto out;
	}
	if (upd && upd->flush_learned)
		flags |= NFTSYNC_BUILD_FLUSH_LEARNED;
	ret = apply_once(ns, cfg, rc.v, rc.n, flags, err, errlen);
	if (ret && !is_fatal(ret)) {
		/* An incompatible table (another version, a hand edit):
		 * replace it whole, still in one transaction. Foreign
		 * objects in it and the learned elements go: say so. */
		log_warnx("nftables refused the update of table inet egressd "
			  "(%s); replacing the table whole: objects added to "
			  "it by others are removed and learned addresses are "
			  "forgotten until answered again",
			  err);
		ret = apply_once(ns, cfg, NULL, 0,
				 flags | NFTSYNC_BUILD_REPLACE, err, errlen);
		flags |= NFTSYNC_BUILD_FLUSH_LEARNED;
	}
	if (ret) {
		ns->filtering = false;
		goto out;
	}
	/* Other datapaths (BPF) drop the same addresses. */
	if (upd && upd->revoked)
		for (i = 0; i < rc.n; i++)
			upd->revoked(&rc.v[i], upd->revoked_arg);
	if ((flags & NFTSYNC_BUILD_FLUSH_LEARNED) || !cfg->filter ||
	    !ns->filtering) {
		/* The learned sets are empty or unknown: rewrite on the
		 * next answer, keep the domains for log lines. */
		cache_each(ns, forget_kernel_state, NULL);
	} else {
		for (i = 0; i < rc.n; i++)
			cache_del(ns, rc.v[i].family, rc.v[i].addr);
	}
	ns->filtering = cfg->filter;
out:
	free(rc.v);
	return ret;
}

int nftsync_cleanup(struct nftsync *ns, char *err, size_t errlen)
{
	struct nftsync_batch *b;
	int ret;

	b = nftsync_batch_new(ns->seq);
	if (!b) {
		snprintf(err, errlen, "nftables: out of memory");
		return -ENOMEM;
	}
	ret = nftsync_build_cleanup(b);
	if (!ret)
		ret = run_batch(ns, b, err, errlen);
	nftsync_batch_free(b);
	if (ret == -ENOENT)
		ret = 0;
	if (!ret) {
		ns->filtering = false;
		cache_each(ns, forget_kernel_state, NULL);
	}
	return ret;
}

int nftsync_netdev_apply(struct nftsync *ns, const char *const *ifnames,
			 size_t n, char *err, size_t errlen)
{
	struct nftsync_batch *b;
	int ret;

	b = nftsync_batch_new(ns->seq);
	if (!b) {
		snprintf(err, errlen, "nftables: out of memory");
		return -ENOMEM;
	}
	ret = nftsync_build_netdev(b, ifnames, n, NFTSYNC_DEFAULT_LOG_GROUP);
	if (ret)
		snprintf(err, errlen, "table netdev: %s", strerror(-ret));
	else
		ret = run_batch(ns, b, err, errlen);
	nftsync_batch_free(b);
	return ret;
}

int nftsync_probe_cgroup_level(struct nftsync *ns, uint64_t id,
			       uint32_t *level, char *err, size_t errlen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct nftsync_batch *b;
	char cerr[256];
	uint32_t l;
	int fd = -1, ret;

	*level = 0;
	b = nftsync_batch_new(ns->seq);
	if (!b) {
		snprintf(err, errlen, "nftables: out of memory");
		return -ENOMEM;
	}
	ret = nftsync_build_level_probe(b, id, NFTSYNC_PROBE_MAX_LEVEL);
	if (!ret)
		ret = run_batch(ns, b, err, errlen);
	if (ret)
		goto out;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "probe socket: %s", strerror(-ret));
		goto drop;
	}
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ret = -ENOENT;
	for (l = 0; l <= NFTSYNC_PROBE_MAX_LEVEL; l++) {
		sin.sin_port = htons(NFTSYNC_PROBE_PORT + l);
		if (sendto(fd, "", 0, 0, (struct sockaddr *)&sin,
			   sizeof(sin)) < 0 &&
		    errno == EPERM) {
			*level = l;
			ret = 0;
			break;
		}
	}
	if (ret)
		snprintf(err, errlen,
			 "no level 0-%u of the cgroup hierarchy holds cgroup id %llu",
			 NFTSYNC_PROBE_MAX_LEVEL, (unsigned long long)id);
drop:
	if (fd >= 0)
		close(fd);
	nftsync_batch_reset(b, ns->seq);
	if (!nftsync_build_probe_cleanup(b))
		(void)run_batch(ns, b, cerr, sizeof(cerr));
out:
	nftsync_batch_free(b);
	return ret;
}

/*
 * One NFT_MSG_GETTABLE on the agent's own socket: a table deleted behind
 * egressd's back (nft delete table, another tool's flush ruleset) is seen
 * by /status, not only by the next batch. The answer is read here, with
 * a timeout; messages of other sequence numbers (none are expected: every
 * batch drains its ACKs) are skipped.
 */
int nftsync_table_exists(struct nftsync *ns)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_table *t;
	struct nlmsghdr *nlh;
	struct pollfd pfd;
	uint32_t seq;
	ssize_t n;
	int fd, ret;

	if (!ns->nl)
		return -ENOTSUP;
	t = nftnl_table_alloc();
	if (!t)
		return -ENOMEM;
	seq = ++ns->seq;
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, 0, seq);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFTSYNC_TABLE);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	if (mnl_socket_sendto(ns->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	fd = mnl_socket_get_fd(ns->nl);
	for (;;) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		ret = poll(&pfd, 1, ACK_TIMEOUT_MS);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			return ret ? -errno : -ETIMEDOUT;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		ret = mnl_cb_run(buf, n, seq, ns->portid, NULL, NULL);
		if (ret >= 0)
			return 1;
		if (errno == ESRCH)
			continue; /* an answer to something else */
		return errno == ENOENT ? 0 : -errno;
	}
}
