// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for the nftables layer (agent/nft*.c) without a kernel:
 * batches are built, every netlink message is parsed back with libnftnl's
 * nftnl_*_nlmsg_parse() and rendered as one line of text ("rule egress tcp
 * dport 853 …"), and the tests assert on those lines: objects, order,
 * flags, set elements (interval encoding), comments, and the
 * learned-address cache driven through a fake talker.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "egressd/nftsync.h"

#define MAX_LINES 512

/* The batch as text, one line per message. */
struct trace {
	char *line[MAX_LINES];
	uint16_t flags[MAX_LINES];
	uint32_t seq[MAX_LINES];
	int n;
};

static void trace_free(struct trace *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		free(t->line[i]);
	t->n = 0;
}

struct sbuf {
	char s[4096];
	size_t len;
};

static void sb_add(struct sbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_add(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(sb->s + sb->len, sizeof(sb->s) - sb->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb->len += (size_t)n;
	ck_assert_uint_lt(sb->len, sizeof(sb->s));
}

static void sb_hex(struct sbuf *sb, const void *p, uint32_t len)
{
	const uint8_t *b = p;
	uint32_t i;

	for (i = 0; i < len; i++)
		sb_add(sb, "%02x", b[i]);
}

struct comment_q {
	uint8_t type;
	const char *text;
};

static int udata_cb(const struct nftnl_udata *attr, void *data)
{
	struct comment_q *q = data;

	if (nftnl_udata_type(attr) == q->type)
		q->text = nftnl_udata_get(attr);
	return 0;
}

/* The comment in an object's userdata (type: NFTNL_UDATA_*_COMMENT). */
static const char *comment_of(const void *ud, uint32_t len, uint8_t type)
{
	struct comment_q q = { type, NULL };

	if (ud)
		nftnl_udata_parse(ud, len, udata_cb, &q);
	return q.text ? q.text : "";
}

static int expr_cb(struct nftnl_expr *e, void *data)
{
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
	struct sbuf *sb = data;
	const void *p;
	uint32_t len;

	sb_add(sb, " %s(", name);
	if (!strcmp(name, "meta")) {
		sb_add(sb, "%u", nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY));
	} else if (!strcmp(name, "cmp")) {
		p = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
		sb_add(sb, "%u,", nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP));
		sb_hex(sb, p, len);
	} else if (!strcmp(name, "payload")) {
		sb_add(sb, "%u,%u,%u",
		       nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE),
		       nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET),
		       nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN));
	} else if (!strcmp(name, "lookup")) {
		sb_add(sb, "@%s", nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET));
	} else if (!strcmp(name, "socket")) {
		sb_add(sb, "%u,%u",
		       nftnl_expr_get_u32(e, NFTNL_EXPR_SOCKET_KEY),
		       nftnl_expr_get_u32(e, NFTNL_EXPR_SOCKET_LEVEL));
	} else if (!strcmp(name, "objref")) {
		/* libnftnl 1.2.4 writes this name without its NUL, so its
		 * parser may read on when the length is a multiple of 4 (the
		 * kernel bounds it by the attribute): every counter name
		 * ends in "_drop", stop there. */
		const char *on =
			nftnl_expr_get_str(e, NFTNL_EXPR_OBJREF_IMM_NAME);
		const char *end = strstr(on, "_drop");

		sb_add(sb, "%u,%.*s",
		       nftnl_expr_get_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE),
		       end ? (int)(end - on + 5) : (int)strlen(on), on);
	} else if (!strcmp(name, "log")) {
		sb_add(sb, "%s,%u",
		       nftnl_expr_get_str(e, NFTNL_EXPR_LOG_PREFIX),
		       nftnl_expr_get_u16(e, NFTNL_EXPR_LOG_GROUP));
	} else if (!strcmp(name, "immediate")) {
		if (nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG) ==
		    NFT_REG_VERDICT) {
			int v = (int)nftnl_expr_get_u32(e,
							NFTNL_EXPR_IMM_VERDICT);

			sb_add(sb, "%s",
			       v == NF_ACCEPT  ? "accept" :
			       v == NF_DROP    ? "drop" :
			       v == NFT_RETURN ? "return" :
						 "?");
		} else {
			p = nftnl_expr_get(e, NFTNL_EXPR_IMM_DATA, &len);
			sb_hex(sb, p, len);
		}
	} else if (!strcmp(name, "redir")) {
		sb_add(sb, "%u",
		       nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN));
	} else if (!strcmp(name, "bitwise")) {
		p = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &len);
		sb_hex(sb, p, len);
	} else if (!strcmp(name, "ct")) {
		sb_add(sb, "%u", nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY));
	} else if (!strcmp(name, "reject")) {
		uint32_t rt = nftnl_expr_get_u32(e, NFTNL_EXPR_REJECT_TYPE);

		sb_add(sb, "%s",
		       rt == NFT_REJECT_TCP_RST	      ? "tcp-reset" :
		       rt == NFT_REJECT_ICMPX_UNREACH ? "icmpx" :
		       rt == NFT_REJECT_ICMP_UNREACH  ? "icmp" :
							"?");
		if (nftnl_expr_is_set(e, NFTNL_EXPR_REJECT_CODE))
			sb_add(sb, ",%u",
			       nftnl_expr_get_u8(e, NFTNL_EXPR_REJECT_CODE));
	}
	sb_add(sb, ")");
	return 0;
}

static int elem_cb(struct nftnl_set_elem *e, void *data)
{
	struct sbuf *sb = data;
	char txt[64];
	const void *k;
	uint32_t len;

	k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
	inet_ntop(len == 4 ? AF_INET : AF_INET6, k, txt, sizeof(txt));
	sb_add(sb, " %s", txt);
	if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
	    (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) &
	     NFT_SET_ELEM_INTERVAL_END))
		sb_add(sb, "/end");
	if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_TIMEOUT))
		sb_add(sb, "/t=%llu",
		       (unsigned long long)nftnl_set_elem_get_u64(
			       e, NFTNL_SET_ELEM_TIMEOUT));
	return 0;
}

/*
 * libnftnl 1.2.4 numbers the element nests 1, 2, 3… when building (the
 * kernel ignores the nest type) but its parser wants NFTA_LIST_ELEM for
 * each: parse a copy with the nest types normalised.
 */
static void render_elems(struct sbuf *sb, const struct nlmsghdr *orig)
{
	struct nlmsghdr *nlh;
	struct nftnl_set *s;
	struct nlattr *a, *e;

	nlh = malloc(orig->nlmsg_len);
	ck_assert_ptr_nonnull(nlh);
	memcpy(nlh, orig, orig->nlmsg_len);
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(e, a)
			e->nla_type = (e->nla_type & ~NLA_TYPE_MASK) |
				      NFTA_LIST_ELEM;
	}
	s = nftnl_set_alloc();
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(nftnl_set_elems_nlmsg_parse(nlh, s), 0);
	sb_add(sb, " %s", nftnl_set_get_str(s, NFTNL_SET_NAME));
	nftnl_set_elem_foreach(s, elem_cb, sb);
	nftnl_set_free(s);
	free(nlh);
}

static void render(struct sbuf *sb, const struct nlmsghdr *nlh)
{
	uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
	struct nftnl_table *t;
	struct nftnl_chain *c;
	struct nftnl_rule *r;
	struct nftnl_set *s;
	struct nftnl_obj *o;
	const void *ud;
	uint32_t len;

	if (nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN ||
	    nlh->nlmsg_type == NFNL_MSG_BATCH_END) {
		sb_add(sb, nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN ? "begin" :
								     "end");
		return;
	}
	ck_assert_uint_eq(nlh->nlmsg_type >> 8, NFNL_SUBSYS_NFTABLES);
	switch (type) {
	case NFT_MSG_NEWTABLE:
	case NFT_MSG_DELTABLE:
		t = nftnl_table_alloc();
		ck_assert_int_eq(nftnl_table_nlmsg_parse(nlh, t), 0);
		sb_add(sb, "table%c %s", type == NFT_MSG_NEWTABLE ? '+' : '-',
		       nftnl_table_get_str(t, NFTNL_TABLE_NAME));
		if (nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY) ==
		    NFPROTO_NETDEV)
			sb_add(sb, " netdev");
		if (nftnl_table_is_set(t, NFTNL_TABLE_USERDATA)) {
			ud = nftnl_table_get_data(t, NFTNL_TABLE_USERDATA,
						  &len);
			sb_add(sb, " \"%s\"",
			       comment_of(ud, len, NFTNL_UDATA_TABLE_COMMENT));
		}
		nftnl_table_free(t);
		break;
	case NFT_MSG_NEWCHAIN:
	case NFT_MSG_DELCHAIN:
		c = nftnl_chain_alloc();
		ck_assert_int_eq(nftnl_chain_nlmsg_parse(nlh, c), 0);
		sb_add(sb, "chain%c %s", type == NFT_MSG_NEWCHAIN ? '+' : '-',
		       nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
		if (type == NFT_MSG_NEWCHAIN) {
			ud = nftnl_chain_get_data(c, NFTNL_CHAIN_USERDATA,
						  &len);
			sb_add(sb, " %s hook=%u prio=%d policy=%u \"%s\"",
			       nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE),
			       nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM),
			       nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO),
			       nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY),
			       comment_of(ud, len, NFTNL_UDATA_CHAIN_COMMENT));
			if (nftnl_chain_is_set(c, NFTNL_CHAIN_DEV))
				sb_add(sb, " dev=%s",
				       nftnl_chain_get_str(c, NFTNL_CHAIN_DEV));
		}
		nftnl_chain_free(c);
		break;
	case NFT_MSG_NEWRULE:
	case NFT_MSG_DELRULE:
		r = nftnl_rule_alloc();
		ck_assert_int_eq(nftnl_rule_nlmsg_parse(nlh, r), 0);
		if (type == NFT_MSG_DELRULE) {
			sb_add(sb, "flush %s",
			       nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
		} else {
			sb_add(sb, "rule %s",
			       nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
			nftnl_expr_foreach(r, expr_cb, sb);
			ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
			sb_add(sb, " \"%s\"",
			       comment_of(ud, len, NFTNL_UDATA_RULE_COMMENT));
		}
		nftnl_rule_free(r);
		break;
	case NFT_MSG_NEWSET:
	case NFT_MSG_DELSET:
		s = nftnl_set_alloc();
		ck_assert_int_eq(nftnl_set_nlmsg_parse(nlh, s), 0);
		sb_add(sb, "set%c %s", type == NFT_MSG_NEWSET ? '+' : '-',
		       nftnl_set_get_str(s, NFTNL_SET_NAME));
		if (type == NFT_MSG_NEWSET) {
			ud = nftnl_set_get_data(s, NFTNL_SET_USERDATA, &len);
			sb_add(sb, " flags=%u klen=%u ktype=%u \"%s\"",
			       nftnl_set_get_u32(s, NFTNL_SET_FLAGS),
			       nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN),
			       nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE),
			       comment_of(ud, len, NFTNL_UDATA_SET_COMMENT));
		}
		nftnl_set_free(s);
		break;
	case NFT_MSG_NEWSETELEM:
	case NFT_MSG_DELSETELEM:
		sb_add(sb, "elem%c", type == NFT_MSG_NEWSETELEM ? '+' : '-');
		render_elems(sb, nlh);
		break;
	case NFT_MSG_NEWOBJ:
	case NFT_MSG_DELOBJ:
		o = nftnl_obj_alloc();
		ck_assert_int_eq(nftnl_obj_nlmsg_parse(nlh, o), 0);
		sb_add(sb, "obj%c %s type=%u",
		       type == NFT_MSG_NEWOBJ ? '+' : '-',
		       nftnl_obj_get_str(o, NFTNL_OBJ_NAME),
		       nftnl_obj_get_u32(o, NFTNL_OBJ_TYPE));
		nftnl_obj_free(o);
		break;
	default:
		sb_add(sb, "unknown %u", type);
	}
}

static void trace_batch(const struct nftsync_batch *b, struct trace *t)
{
	const struct nlmsghdr *nlh;
	struct sbuf sb;
	const void *data;
	size_t len;
	int left;

	data = nftsync_batch_data(b, &len);
	ck_assert_ptr_nonnull(data);
	left = (int)len;
	t->n = 0;
	for (nlh = data; mnl_nlmsg_ok(nlh, left);
	     nlh = mnl_nlmsg_next(nlh, &left)) {
		ck_assert_int_lt(t->n, MAX_LINES);
		sb.len = 0;
		sb.s[0] = 0;
		render(&sb, nlh);
		t->flags[t->n] = nlh->nlmsg_flags;
		t->seq[t->n] = nlh->nlmsg_seq;
		t->line[t->n++] = strdup(sb.s);
	}
	ck_assert_int_eq(left, 0);
	/* NFTSYNC_TEST_DUMP=1 CK_FORK=no: print what a test sees. */
	if (getenv("NFTSYNC_TEST_DUMP"))
		for (left = 0; left < t->n; left++)
			fprintf(stderr, "%s\n", t->line[left]);
}

/* Index of the first line at or after from starting with prefix, or -1. */
static int find(const struct trace *t, int from, const char *prefix)
{
	int i;

	for (i = from; i < t->n; i++)
		if (!strncmp(t->line[i], prefix, strlen(prefix)))
			return i;
	return -1;
}

/* Index of the first line containing sub, or -1. */
static int find_sub(const struct trace *t, const char *sub)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (strstr(t->line[i], sub))
			return i;
	return -1;
}

static int count(const struct trace *t, const char *prefix)
{
	int i, n = 0;

	for (i = 0; i < t->n; i++)
		if (!strncmp(t->line[i], prefix, strlen(prefix)))
			n++;
	return n;
}

static int count_sub(const struct trace *t, const char *prefix, const char *sub)
{
	int i, n = 0;

	for (i = 0; i < t->n; i++)
		if (!strncmp(t->line[i], prefix, strlen(prefix)) &&
		    strstr(t->line[i], sub))
			n++;
	return n;
}

static struct policy_addr A(const char *s) {
	struct policy_addr a = { 0 };
	char buf[64], *sl;

	snprintf(buf, sizeof(buf), "%s", s);
	sl = strchr(buf, '/');
	if (sl)
		*sl++ = 0;
	if (inet_pton(AF_INET, buf, a.addr) == 1) {
		a.family = AF_INET;
		a.prefixlen = sl ? atoi(sl) : 32;
	} else {
		ck_assert_int_eq(inet_pton(AF_INET6, buf, a.addr), 1);
		a.family = AF_INET6;
		a.prefixlen = sl ? atoi(sl) : 128;
	}
	return a;
}

static struct nftsync_config
base_cfg(void)
{
	struct nftsync_config c = {
		.dns_port = 15353,
		.agent_cgroup_id = 0x1122334455667788ULL,
		.agent_cgroup_level = 2,
		.filter = true,
	};
	return c;
}

static void build_apply(const struct nftsync_config *cfg,
			const struct policy_addr *forget, size_t nf,
			unsigned int flags, struct trace *t)
{
	struct nftsync_batch *b = nftsync_batch_new(1000);

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(nftsync_build_apply(b, cfg, forget, nf, flags), 0);
	trace_batch(b, t);
	nftsync_batch_free(b);
}

/* Rule lines of one chain, in order, comments only. */
static int chain_comments(const struct trace *t, const char *chain,
			  const char **out, int max)
{
	char prefix[64];
	int i, n = 0;

	snprintf(prefix, sizeof(prefix), "rule %s ", chain);
	for (i = 0; i < t->n && n < max; i++)
		if (!strncmp(t->line[i], prefix, strlen(prefix)))
			out[n++] = strchr(t->line[i], '"');
	return n;
}

/* The comments of the ICMPv6 rules (build_icmp6_rules), in order. */
#define ICMP6_RULES                                                                  \
	"ICMPv6 router solicitation to all-routers",                                 \
		"ICMPv6 neighbour solicitation to a solicited-node address",         \
		"ICMPv6 neighbour solicitation to link-local",                       \
		"ICMPv6 neighbour advertisement to all-nodes",                       \
		"ICMPv6 neighbour advertisement to link-local",                      \
		"MLDv2 report to all MLDv2 routers",                                 \
		"MLDv1 report, link-scope group",                                    \
		"MLDv1 done, link-scope group",                                      \
		"neighbour solicitation from a process, off the link scope",         \
		"neighbour advertisement from a process, off the link scope",        \
		"the kernel's neighbour solicitation (NUD) to an on-link neighbour", \
		"the kernel's neighbour advertisement to an on-link neighbour"

START_TEST(test_nftsync_batch_framing)
{
	struct nftsync_config cfg = base_cfg();
	struct nftsync_batch *b;
	struct trace t;
	int i;

	b = nftsync_batch_new(1000);
	ck_assert_int_eq(nftsync_build_apply(b, &cfg, NULL, 0, 0), 0);
	trace_batch(b, &t);
	ck_assert_str_eq(t.line[0], "begin");
	ck_assert_str_eq(t.line[t.n - 1], "end");
	ck_assert_uint_eq(nftsync_batch_ncmds(b), (size_t)t.n - 2);
	for (i = 0; i < t.n; i++) {
		ck_assert_uint_eq(t.seq[i], 1000 + (uint32_t)i);
		if (i > 0 && i < t.n - 1)
			ck_assert(t.flags[i] & NLM_F_ACK);
	}
	ck_assert_str_eq(nftsync_batch_describe(b, 1000), "batch begin");
	ck_assert_str_eq(nftsync_batch_describe(b, 1001),
			 "add table inet egressd");
	i = find(&t, 0, "rule egress");
	ck_assert_str_eq(
		nftsync_batch_describe(b, 1000 + i),
		"add rule egress \"loopback: egressd DNS proxy and API\"");
	i = find(&t, 0, "chain- egress");
	ck_assert_str_eq(nftsync_batch_describe(b, 1000 + i),
			 "delete chain egress");
	ck_assert_ptr_null(nftsync_batch_describe(b, 1000 + t.n));
	/* a batch is built once */
	ck_assert_int_eq(nftsync_build_apply(b, &cfg, NULL, 0, 0), -EINVAL);
	trace_free(&t);
	nftsync_batch_free(b);
}
END_TEST

/*
 * The chain that gets the rules is deleted and created again in the
 * batch, with its comment. Adding a chain that exists keeps its old
 * comment, so a reused chain said "egressd dns mode: ..." after a switch
 * to dns+nft.
 */
static void assert_fresh_chain(const struct trace *t, const char *name,
			       const char *want)
{
	char add[64], del[64];
	int i, d, first_rule;

	snprintf(add, sizeof(add), "chain+ %s ", name);
	snprintf(del, sizeof(del), "chain- %s", name);
	i = find(t, 0, add);
	ck_assert_msg(i > 0, "no %s", add);
	d = find(t, i, del);
	ck_assert_msg(d > 0, "no %s after the first %s", del, add);
	i = find(t, d, add);
	ck_assert_msg(i > d, "%s not created again after %s", name, del);
	ck_assert_str_eq(t->line[i], want);
	snprintf(add, sizeof(add), "rule %s ", name);
	first_rule = find(t, 0, add);
	ck_assert_int_lt(i, first_rule);
	ck_assert_int_eq(find(t, i + 1, del), -1);
	snprintf(add, sizeof(add), "flush %s", name);
	ck_assert_int_eq(count(t, add), 0);
}

START_TEST(test_nftsync_table_and_chains)
{
	struct nftsync_config cfg = base_cfg();
	struct trace t;

	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_str_eq(
		t.line[1],
		"table+ egressd \"egressd: removed only by egressd --cleanup\"");
	ck_assert_int_eq(count(&t, "table-"), 0);
	assert_fresh_chain(
		&t, "dns_redirect",
		"chain+ dns_redirect nat hook=3 prio=-100 policy=1 \"port-53 traffic of the netns goes to the egressd DNS proxy\"");
	assert_fresh_chain(
		&t, "egress",
		"chain+ egress filter hook=3 prio=0 policy=1 \"egressd output filter (dns+nft mode); ends with an explicit verdict\"");
	assert_fresh_chain(
		&t, "antispoof",
		"chain+ antispoof filter hook=3 prio=-200 policy=1 \"egressd: packets sent through lo must carry one of the netns's own source addresses\"");
	ck_assert_int_eq(count(&t, "chain-"), 3);
	trace_free(&t);

	/* dns mode with the BPF redirect, as before a switch to dns+nft */
	cfg.filter = false;
	cfg.bpf_redirect = true;
	build_apply(&cfg, NULL, 0, 0, &t);
	assert_fresh_chain(
		&t, "egress",
		"chain+ egress filter hook=3 prio=0 policy=1 \"egressd dns mode: port 53 only through the redirect, accepts the rest\"");
	trace_free(&t);
}
END_TEST

/* Forged sources are dropped in every mode. */
START_TEST(test_nftsync_antispoof_every_mode)
{
	struct nftsync_config cfg = base_cfg();
	const char *rules[8];
	struct trace t;

	for (int mode = 0; mode < 3; mode++) {
		cfg.filter = mode == 0;
		cfg.bpf_redirect = mode == 2;
		build_apply(&cfg, NULL, 0, 0, &t);
		ck_assert_int_eq(chain_comments(&t, "antispoof", rules, 8), 2);
		ck_assert_str_eq(
			rules[0],
			"\"forged IPv4 source (not an address of this netns)\"");
		ck_assert_str_eq(
			rules[1],
			"\"forged IPv6 source (not an address of this netns)\"");
		trace_free(&t);
	}
}
END_TEST

START_TEST(test_nftsync_redirect_rules)
{
	struct nftsync_config cfg = base_cfg();
	char want[256];
	struct trace t;
	int i;

	cfg.filter = false;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(count(&t, "rule dns_redirect"), 3);
	i = find(&t, 0, "rule dns_redirect");
	/* socket cgroupv2 level 2, id compared in host byte order */
	snprintf(want, sizeof(want), "rule dns_redirect socket(%u,2) cmp(0,",
		 NFT_SOCKET_CGROUPV2);
	ck_assert_msg(!strncmp(t.line[i], want, strlen(want)), "%s", t.line[i]);
	ck_assert_ptr_nonnull(strstr(
		t.line[i],
		"8877665544332211) immediate(return) \"egressd agent's own DNS queries\""));
	ck_assert_str_eq(
		t.line[i + 1],
		"rule dns_redirect meta(16) cmp(0,11) payload(2,2,2) cmp(0,0035) immediate(3bf9) redir(1) \"DNS over UDP to the egressd proxy\"");
	ck_assert_str_eq(
		t.line[i + 2],
		"rule dns_redirect meta(16) cmp(0,06) payload(2,2,2) cmp(0,0035) immediate(3bf9) redir(1) \"DNS over TCP to the egressd proxy\"");
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_dns_mode_removes_filter)
{
	struct nftsync_config cfg = base_cfg();
	struct trace t;

	cfg.filter = false;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_gt(
		find(&t, find(&t, 0, "chain+ egress"), "chain- egress"), 0);
	ck_assert_int_eq(count(&t, "rule egress"), 0);
	ck_assert_int_eq(count(&t, "set+"), 12);
	ck_assert_int_eq(count(&t, "set-"), 12);
	ck_assert_int_eq(count(&t, "elem"), 0);
	ck_assert_int_eq(count(&t, "obj+"), 7);
	ck_assert_int_eq(count(&t, "obj-"), 7);
	trace_free(&t);
}
END_TEST

/*
 * docs/security.md, class 5: the API rules head chain egress (before the loopback
 * accept), accept the API cgroup's SYNs and drop everyone else's (or only
 * the workload's where nft can name it), counted in api_drop, reason api;
 * in dns mode a minimal chain carries them.
 */
START_TEST(test_nftsync_api_rules)
{
	struct nftsync_config cfg = base_cfg();
	const char *got[64];
	struct trace t;
	int n;

	cfg.api_port = 18080;
	cfg.api_cgroup_id = 0x99;
	cfg.api_cgroup_level = 1;
	build_apply(&cfg, NULL, 0, 0, &t);
	n = chain_comments(&t, "egress", got, 64);
	ck_assert_int_ge(n, 3);
	ck_assert_str_eq(
		got[0],
		"\"egressd API: egressd's cgroup (egressctl) may connect\"");
	ck_assert_str_eq(
		got[1],
		"\"egressd API: never from another cgroup, whatever the token\"");
	ck_assert_str_eq(got[2], "\"loopback: egressd DNS proxy and API\"");
	/* lo, tcp, dport 18080 (0x46a0), SYN without ACK, then the cgroup */
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"payload(2,2,2) cmp(0,46a0) payload(2,13,1) bitwise(12) cmp(0,02) socket("),
		1);
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"cmp(0,02) objref(1,api_drop) log(egressd:api,180) immediate(drop)"),
		1);
	ck_assert_int_gt(find(&t, 0, "obj+ api_drop type=1"), 0);
	trace_free(&t);

	/* the workload cgroup known: only it is dropped */
	cfg.api_workload_only = true;
	cfg.workload_cgroup_id = 0x77;
	cfg.workload_cgroup_level = 2;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(count_sub(&t, "rule egress", "cmp(0,02) socket("), 2);
	n = chain_comments(&t, "egress", got, 64);
	ck_assert_str_eq(
		got[1],
		"\"egressd API: never from the workload, whatever the token\"");
	trace_free(&t);

	/* dns mode: a chain of its own for them, api_drop kept */
	cfg.filter = false;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_ge(
		find(&t, 0,
		     "chain+ egress filter hook=3 prio=0 policy=1 \"egressd dns mode: the API port is egressd's, accepts the rest\""),
		0);
	ck_assert_int_eq(count_sub(&t, "rule egress", "objref(1,api_drop)"), 1);
	ck_assert_int_eq(count(&t, "obj- api_drop"), 0);
	trace_free(&t);

	/* no API cgroup: refused rather than a rule that matches nobody */
	{
		struct nftsync_batch *b = nftsync_batch_new(1);

		cfg.api_cgroup_id = 0;
		ck_assert_int_eq(nftsync_build_apply(b, &cfg, NULL, 0, 0),
				 -EINVAL);
		nftsync_batch_free(b);
	}
}
END_TEST

/*
 * docs/security.md, class 4: with a foreign process in egressd's cgroup the rules
 * exempting that cgroup go (the port-53 accept and "agent's own traffic"),
 * the port-53 drops stay, and the nat redirect still skips the agent (its
 * own queries never loop back into its proxy). In dns mode the port-53
 * rules come in.
 */
START_TEST(test_nftsync_agent_withdrawn)
{
	struct nftsync_config cfg = base_cfg();
	struct trace t;

	cfg.agent_withdrawn = true;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(
		count_sub(&t, "rule egress",
			  "\"egressd agent to its upstream resolvers\""),
		0);
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"\"egressd agent's own traffic (upstream DNS, webhook)\""),
		0);
	ck_assert_int_eq(
		count_sub(&t, "rule egress",
			  "\"port 53 only through the egressd redirect\""),
		2);
	ck_assert_int_eq(count_sub(&t, "rule dns_redirect",
				   "\"egressd agent's own DNS queries\""),
			 1);
	trace_free(&t);

	cfg.filter = false;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(
		count_sub(&t, "rule egress",
			  "\"port 53 only through the egressd redirect\""),
		2);
	ck_assert_int_eq(
		count_sub(&t, "rule egress",
			  "\"egressd agent to its upstream resolvers\""),
		0);
	ck_assert_int_eq(count(&t, "obj- dns_drop"), 0);
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_filter_chain_order)
{
	static const char *const want[] = {
		"loopback: egressd DNS proxy and API",
		"loopback destination: DNS redirected to egressd",
		"loopback destination: DNS redirected to egressd",
		ICMP6_RULES,
		"flows already allowed continue",
		"egressd agent to its upstream resolvers",
		"egressd agent to its upstream resolvers",
		"port 53 only through the egressd redirect",
		"egressd agent to its upstream resolvers",
		"egressd agent to its upstream resolvers",
		"port 53 only through the egressd redirect",
		"egressd agent's own traffic (upstream DNS, webhook)",
		"named exactly by an allow rule: exempt from DoT/DoH",
		"named exactly by an allow rule: exempt from DoT/DoH",
		"DNS over TLS",
		"DNS over QUIC/DTLS",
		"DNS over HTTPS to a known provider",
		"DNS over HTTPS to a known provider",
		"DNS over HTTP/3 to a known provider",
		"DNS over HTTP/3 to a known provider",
		"deny rules beat every allow",
		"deny rules beat every allow",
		"learned from answers to allowed names",
		"learned from answers to allowed names",
		"allowed by IP/CIDR rule",
		"allowed by IP/CIDR rule",
		"defaultAction deny",
	};
	struct nftsync_config cfg = base_cfg();
	const char *got[64];
	char q[160];
	struct trace t;
	size_t i;
	int n;

	build_apply(&cfg, NULL, 0, 0, &t);
	n = chain_comments(&t, "egress", got, 64);
	ck_assert_int_eq(n, (int)(sizeof(want) / sizeof(want[0])));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		snprintf(q, sizeof(q), "\"%s\"", want[i]);
		ck_assert_str_eq(got[i], q);
	}
	/* last rule: counted, logged drop */
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"objref(1,default_drop) log(egressd:default_deny,180) immediate(drop) \"defaultAction deny\""),
		1);
	ck_assert_int_eq(count_sub(&t, "rule egress",
				   "log(egressd:dot,180) immediate(drop)"),
			 2);
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"lookup(@doh_v4) objref(1,doh_drop) log(egressd:doh,180)"),
		2);
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"lookup(@deny_v6) objref(1,deny_drop) log(egressd:deny_rule,180)"),
		1);
	/* every drop counts and logs; no accept does */
	ck_assert_int_eq(count_sub(&t, "rule egress", "immediate(drop)"),
			 count_sub(&t, "rule egress", "objref(1,"));
	ck_assert_int_eq(count_sub(&t, "rule egress", "immediate(drop)"),
			 count_sub(&t, "rule egress", "log(egressd:"));
	/* ct state established,related */
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"ct(0) bitwise(06000000) cmp(1,00000000) immediate(accept)"),
		1);
	/* upstream accepts: port 53 compared first, then cgroup and set */
	ck_assert_int_eq(count_sub(&t, "rule egress",
				   "payload(2,2,2) cmp(0,0035) socket("),
			 4);
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"meta(15) cmp(0,02) payload(1,16,4) lookup(@upstream_v4) immediate(accept)"),
		2);
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_bpf_handoff)
{
	struct nftsync_config cfg = base_cfg();
	struct trace t;
	int handoff;

	/* Off: no rule mentions BPF. */
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_lt(find_sub(&t, "judged by the egressd BPF program"), 0);
	trace_free(&t);

	/* On, workload cgroup at level 3: right after loopback. */
	cfg.bpf_handoff = true;
	cfg.bpf_redirect = true;
	cfg.workload_cgroup_id = 4242;
	cfg.workload_cgroup_level = 3;
	build_apply(&cfg, NULL, 0, 0, &t);
	handoff = find_sub(
		&t, "\"workload cgroup: judged by the egressd BPF program\"");
	ck_assert_int_ge(handoff, 0);
	ck_assert_ptr_nonnull(strstr(t.line[handoff], "socket("));
	ck_assert_ptr_nonnull(strstr(t.line[handoff], "immediate(accept)"));
	/* the first rule: a workload packet walks one rule */
	ck_assert_int_eq(handoff, find_sub(&t, "rule egress"));
	ck_assert_int_lt(
		handoff,
		find_sub(
			&t,
			"\"egressd agent's own traffic (upstream DNS, webhook)\""));
	ck_assert_int_lt(
		handoff,
		find_sub(&t, "\"port 53 only through the egressd redirect\""));
	ck_assert_int_lt(
		handoff,
		find_sub(&t, "\"ICMPv6 router solicitation to all-routers\""));
	ck_assert_int_lt(handoff, find_sub(&t, "\"DNS over TLS\""));
	/* the rest of the namespace is still judged statefully */
	ck_assert_int_eq(count_sub(&t, "rule egress", " ct(0) "), 1);
	trace_free(&t);

	/* A hand-off by cgroup needs the cgroup. */
	cfg.workload_cgroup_id = 0;
	{
		struct nftsync_batch *b = nftsync_batch_new(1);

		ck_assert_int_eq(nftsync_build_apply(b, &cfg, NULL, 0, 0),
				 -EINVAL);
		nftsync_batch_free(b);
	}

	/* BPF covers the whole namespace: it judges every packet, so there
	 * is no chain egress at all (its hook would cost every packet);
	 * the sets stay. */
	cfg.bpf_covers_all = true;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(count(&t, "rule egress"), 0);
	ck_assert_int_eq(count(&t, "chain- egress"), 1);
	ck_assert_int_eq(count(&t, "rule dns_redirect"), 0);
	ck_assert_int_eq(count(&t, "set- learned_v4"), 0);
	ck_assert_int_ge(find(&t, 0, "set+ allow_v4"), 0);
	trace_free(&t);

	/* ... unless IPv6 is off: IPv4 handed off first, then the rejects */
	cfg.ipv6_deny = true;
	build_apply(&cfg, NULL, 0, 0, &t);
	handoff = find_sub(
		&t,
		"\"workload = every cgroup, IPv4: judged by the egressd BPF program\"");
	ck_assert_int_eq(handoff, find_sub(&t, "rule egress"));
	ck_assert_ptr_null(strstr(t.line[handoff], "socket("));
	ck_assert_int_lt(
		find_sub(&t, "\"IPv6 disabled\""),
		find_sub(
			&t,
			"\"workload = every cgroup: judged by the egressd BPF program\""));
	/* nobody is left for nftables to judge: no conntrack */
	ck_assert_int_eq(count_sub(&t, "rule egress", " ct(0) "), 0);
	trace_free(&t);
}
END_TEST

/*
 * The redirect by BPF sock_addr programs: no nat chain at all (its
 * existence alone turns conntrack on), and port 53 off loopback is
 * dropped for everyone but the agent, in dns mode too.
 */
START_TEST(test_nftsync_bpf_redirect)
{
	static const char *const want_dns[] = {
		"loopback: egressd DNS proxy and API",
		ICMP6_RULES,
		"egressd agent to its upstream resolvers",
		"port 53 only through the egressd redirect",
		"egressd agent to its upstream resolvers",
		"port 53 only through the egressd redirect",
		"dns mode: nothing else is filtered here",
	};
	struct nftsync_config cfg = base_cfg();
	const char *got[64];
	char q[160];
	struct trace t;
	int i, n;

	cfg.bpf_redirect = true;
	cfg.bpf_handoff = true;
	cfg.workload_cgroup_level = 2;
	cfg.workload_cgroup_id = 77;
	build_apply(&cfg, NULL, 0, 0, &t);
	/* created if missing, then deleted in the same batch */
	ck_assert_int_eq(count(&t, "chain- dns_redirect"), 1);
	ck_assert_int_eq(count(&t, "rule dns_redirect"), 0);
	/* no loopback-daddr rules: the rewrite happens before routing */
	ck_assert_int_lt(find_sub(&t, "\"loopback destination"), 0);
	ck_assert_int_eq(
		count_sub(&t, "rule egress",
			  "\"port 53 only through the egressd redirect\""),
		2);
	trace_free(&t);

	/* dns mode: a chain egress with only the port-53 rules */
	cfg.filter = false;
	cfg.bpf_handoff = false;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_ge(
		find(&t, 0,
		     "chain+ egress filter hook=3 prio=0 policy=1 \"egressd dns mode: port 53 only through the redirect, accepts the rest\""),
		0);
	n = chain_comments(&t, "egress", got, 64);
	ck_assert_int_eq(n, (int)(sizeof(want_dns) / sizeof(want_dns[0])));
	for (i = 0; i < n; i++) {
		snprintf(q, sizeof(q), "\"%s\"", want_dns[i]);
		ck_assert_str_eq(got[i], q);
	}
	/* the agent is exempt by cgroup, on any address (no upstream set) */
	ck_assert_int_eq(count_sub(&t, "rule egress", "lookup("), 0);
	ck_assert_int_eq(count_sub(&t, "rule egress", "cmp(0,0035) socket("),
			 2);
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"objref(1,dns_drop) log(egressd:default_deny,180) immediate(drop)"),
		2);
	ck_assert_int_eq(count(&t, "obj- dns_drop"), 0);
	ck_assert_int_eq(count(&t, "obj- ipv6_drop"), 1);
	ck_assert_int_eq(count_sub(&t, "rule egress", " ct(0) "), 0);
	trace_free(&t);

	/* dns mode with IPv6 off as well */
	cfg.ipv6_deny = true;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_ge(
		find(&t, 0,
		     "chain+ egress filter hook=3 prio=0 policy=1 \"egressd dns mode: IPv6 off, port 53 only through the redirect, accepts the rest\""),
		0);
	ck_assert_int_eq(count_sub(&t, "rule egress", "reject("), 2);
	ck_assert_int_eq(count_sub(&t, "rule egress", "objref(1,dns_drop)"), 2);
	ck_assert_int_eq(count(&t, "obj- "), 4);
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_default_accept_ipv6_deny)
{
	struct nftsync_config cfg = base_cfg();
	const char *got[64];
	struct trace t;
	int n;

	cfg.default_accept = true;
	cfg.ipv6_deny = true;
	cfg.log_group = 7;
	build_apply(&cfg, NULL, 0, 0, &t);
	n = chain_comments(&t, "egress", got, 64);
	ck_assert_str_eq(got[n - 1], "\"defaultAction allow\"");
	/* IPv6 deny is absolute: ahead of the agent and of every allow. */
	ck_assert_int_ge(find_sub(&t, "\"IPv6 disabled\""), 0);
	ck_assert_int_lt(
		find_sub(&t, "\"IPv6 disabled\""),
		find_sub(&t, "\"egressd agent to its upstream resolvers\""));
	ck_assert_int_lt(find_sub(&t, "\"IPv6 disabled\""),
			 find_sub(&t, "\"allowed by IP/CIDR rule\""));
	ck_assert_int_eq(
		count_sub(&t, "rule egress",
			  " immediate(accept) \"defaultAction allow\""),
		1);
	ck_assert_int_eq(count_sub(&t, "rule egress", "\"defaultAction deny\""),
			 0);
	trace_free(&t);
}
END_TEST

/* The IPv6-off rules of chain egress as rendered lines, in order. */
static const char *const v6off_rules[] = {
	/* meta nfproto ipv6 meta l4proto tcp … reject with tcp reset */
	"rule egress meta(15) cmp(0,0a) meta(16) cmp(0,06) objref(1,ipv6_drop) log(egressd:ipv6_disabled,180) reject(tcp-reset) \"IPv6 disabled: TCP reset\"",
	/* meta nfproto ipv6 … reject with icmpx admin-prohibited */
	"rule egress meta(15) cmp(0,0a) objref(1,ipv6_drop) log(egressd:ipv6_disabled,180) reject(icmpx,3) \"IPv6 disabled\"",
};

START_TEST(test_nftsync_ipv6_deny_rejects)
{
	struct nftsync_config cfg = base_cfg();
	struct trace t;
	int i;

	cfg.ipv6_deny = true;
	build_apply(&cfg, NULL, 0, 0, &t);
	/* Rejected, not dropped: a connect or send fails at once. */
	i = find(&t, 0, v6off_rules[0]);
	ck_assert_int_gt(i, 0);
	ck_assert_str_eq(t.line[i + 1], v6off_rules[1]);
	ck_assert_int_eq(count_sub(&t, "rule egress", "reject("), 2);
	ck_assert_int_eq(count_sub(&t, "rule egress", "ipv6_disabled"), 2);
	ck_assert_int_eq(
		count_sub(
			&t, "rule egress",
			"ipv6_drop) log(egressd:ipv6_disabled,180) immediate(drop)"),
		0);
	/* right after the ICMPv6 accepts, ahead of the agent and the rest */
	ck_assert_str_eq(
		strchr(t.line[i - 1], '"'),
		"\"the kernel's neighbour advertisement to an on-link neighbour\"");
	ck_assert_int_lt(
		i, find_sub(&t, "\"egressd agent to its upstream resolvers\""));
	ck_assert_int_lt(
		i,
		find_sub(
			&t,
			"\"egressd agent's own traffic (upstream DNS, webhook)\""));
	/* ND stays allowed ahead of the IPv6 reject */
	ck_assert_int_lt(
		find(&t, 0,
		     "rule egress meta(15) cmp(0,0a) meta(16) cmp(0,3a) payload(2,0,1) cmp(0,87)"),
		i);
	ck_assert_int_eq(count(&t, "obj+ ipv6_drop"), 1);
	ck_assert_int_eq(count(&t, "obj- "), 0);
	trace_free(&t);

	/* the same ahead of the BPF hand-off */
	cfg.bpf_handoff = true;
	cfg.workload_cgroup_level = 2;
	cfg.workload_cgroup_id = 42;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_lt(
		find(&t, 0, v6off_rules[1]),
		find_sub(
			&t,
			"\"workload cgroup: judged by the egressd BPF program"));
	/* only IPv4 is handed off ahead of them */
	i = find_sub(
		&t,
		"\"workload cgroup, IPv4: judged by the egressd BPF program");
	ck_assert_int_lt(i, find(&t, 0, v6off_rules[0]));
	ck_assert_ptr_nonnull(strstr(t.line[i], "meta(15) cmp(0,02) socket("));
	trace_free(&t);

	/* allow mode: no reject at all */
	cfg.ipv6_deny = false;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(count_sub(&t, "rule egress", "reject("), 0);
	ck_assert_int_eq(count_sub(&t, "rule egress", "ipv6_drop"), 0);
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_dns_mode_ipv6_deny)
{
	static const char *const want[] = {
		"loopback: egressd DNS proxy and API",
		"loopback destination: DNS redirected to egressd",
		"loopback destination: DNS redirected to egressd",
		ICMP6_RULES,
		"IPv6 disabled: TCP reset",
		"IPv6 disabled",
		"dns mode: nothing else is filtered here",
	};
	struct nftsync_config cfg = base_cfg();
	struct policy_addr allow = A("192.0.2.0/24");
	const char *got[64];
	char q[160];
	struct trace t;
	int i, del, add, n;

	cfg.filter = false;
	cfg.ipv6_deny = true;
	cfg.allow = &allow;
	cfg.n_allow = 1;
	build_apply(&cfg, NULL, 0, 0, &t);
	/* the old chain goes, a fresh one comes in the same batch */
	del = find(&t, find(&t, 0, "chain+ egress"), "chain- egress");
	ck_assert_int_gt(del, 0);
	add = find(&t, del, "chain+ egress");
	ck_assert_int_gt(add, del);
	ck_assert_str_eq(
		t.line[add],
		"chain+ egress filter hook=3 prio=0 policy=1 \"egressd IPv6 off (dns mode): rejects IPv6, accepts the rest\"");
	ck_assert_int_eq(count(&t, "chain- egress"), 1);
	ck_assert_int_lt(add, find(&t, 0, "rule egress"));
	/* only the IPv6-off rules, ending in an explicit accept */
	n = chain_comments(&t, "egress", got, 64);
	ck_assert_int_eq(n, (int)(sizeof(want) / sizeof(want[0])));
	for (i = 0; i < n; i++) {
		snprintf(q, sizeof(q), "\"%s\"", want[i]);
		ck_assert_str_eq(got[i], q);
	}
	i = find(&t, 0, v6off_rules[0]);
	ck_assert_int_gt(i, 0);
	ck_assert_str_eq(t.line[i + 1], v6off_rules[1]);
	ck_assert_str_eq(
		t.line[i + 2],
		"rule egress immediate(accept) \"dns mode: nothing else is filtered here\"");
	/* IPv6 off is absolute: no "established" rule lets old flows on */
	ck_assert_int_eq(count_sub(&t, "rule egress", " ct(0) "), 0);
	/* no rule uses a set; the sets are gone, the counter stays */
	ck_assert_int_eq(count_sub(&t, "rule egress", "lookup("), 0);
	ck_assert_int_eq(count_sub(&t, "rule egress", "socket("), 0);
	ck_assert_int_eq(count(&t, "set-"), 12);
	ck_assert_int_eq(count(&t, "elem"), 0);
	ck_assert_int_eq(count(&t, "obj+"), 7);
	/* default_drop stays for the ICMPv6 rules */
	ck_assert_int_eq(count(&t, "obj-"), 5);
	ck_assert_int_eq(count(&t, "obj- ipv6_drop"), 0);
	/* the redirect is unchanged */
	ck_assert_int_eq(count(&t, "rule dns_redirect"), 3);
	trace_free(&t);

	/* IPv6 allowed again: the chain and the counter go */
	cfg.ipv6_deny = false;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(count(&t, "rule egress"), 0);
	ck_assert_int_eq(count(&t, "chain+ egress"), 1);
	ck_assert_int_eq(count(&t, "obj- ipv6_drop"), 1);
	trace_free(&t);
}
END_TEST

/*
 * ICMPv6: the link types only to link-scope destinations with
 * the RFC hop limit; a process's NS/NA anywhere else dropped; the
 * kernel's own NS/NA (no user socket) to on-link neighbours accepted;
 * no type accepted unconditionally, errors included.
 */
START_TEST(test_nftsync_icmp6_link_scope)
{
	static const char *const want[] = {
		/* icmpv6 type 133 ip6 hoplimit 255 ip6 daddr ff02::2 */
		"meta(15) cmp(0,0a) meta(16) cmp(0,3a) payload(2,0,1) cmp(0,85) payload(1,7,1) cmp(0,ff) payload(1,24,16) cmp(0,ff020000000000000000000000000002) immediate(accept)",
		/* NS to ff02::1:ff00:0/104 */
		"cmp(0,87) payload(1,7,1) cmp(0,ff) payload(1,24,16) bitwise(ffffffffffffffffffffffffff000000) cmp(0,ff0200000000000000000001ff000000) immediate(accept)",
		/* NS to fe80::/10 */
		"cmp(0,87) payload(1,7,1) cmp(0,ff) payload(1,24,16) bitwise(ffc00000000000000000000000000000) cmp(0,fe800000000000000000000000000000) immediate(accept)",
		/* MLDv2 report, hop limit 1, to ff02::16 */
		"cmp(0,8f) payload(1,7,1) cmp(0,01) payload(1,24,16) cmp(0,ff020000000000000000000000000016) immediate(accept)",
		/* a process's NS elsewhere: meta skuid >= 0, dropped */
		"cmp(0,87) meta(10) cmp(5,00000000) objref(1,default_drop) log(egressd:default_deny,180) immediate(drop)",
		/* the kernel's NA (no user socket) with hop limit 255 */
		"cmp(0,88) payload(1,7,1) cmp(0,ff) immediate(accept) \"the kernel's",
	};
	struct nftsync_config cfg = base_cfg();
	struct trace t;
	size_t i;
	int u, k;

	build_apply(&cfg, NULL, 0, 0, &t);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(count_sub(&t, "rule egress", want[i]) == 1,
			      "missing: %s", want[i]);
	/* the process's drop comes before the kernel's accept */
	u = find_sub(&t, "\"neighbour advertisement from a process");
	k = find_sub(&t, "\"the kernel's neighbour advertisement");
	ck_assert_int_gt(u, 0);
	ck_assert_int_lt(u, k);
	/* no ICMPv6 type is accepted without a destination or hop limit
	 * check: packet too big (2) and echo (128) are judged as usual */
	ck_assert_int_eq(
		count_sub(&t, "rule egress", "payload(2,0,1) cmp(0,02)"), 0);
	ck_assert_int_eq(
		count_sub(&t, "rule egress", "cmp(0,3a) payload(2,0,1)"), 12);
	ck_assert_int_eq(count_sub(&t, "rule egress", "payload(1,7,1)"), 10);
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_blanket_443)
{
	struct policy_addr doh = A("192.0.2.1");
	struct nftsync_config cfg = base_cfg();
	struct trace t;

	cfg.block_all_443 = true;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(
		count_sub(&t, "rule egress",
			  "\"BLOCK_DOH_443 without blocklist: all 443\""),
		2);
	ck_assert_int_eq(count_sub(&t, "rule egress", "lookup(@doh_v"), 0);
	trace_free(&t);
	/* with a blocklist BLOCK_DOH_443 keeps its upstream meaning (the
	 * compiled policy's call): only the listed providers */
	cfg.block_all_443 = false;
	cfg.doh = &doh;
	cfg.n_doh = 1;
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_int_eq(count_sub(&t, "rule egress", "all 443"), 0);
	ck_assert_int_eq(count_sub(&t, "rule egress", "lookup(@doh_v"), 4);
	ck_assert_int_eq(
		count_sub(&t, "elem+ doh_v4", " 192.0.2.1 192.0.2.2/end"), 1);
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_sets_and_counters)
{
	struct nftsync_config cfg = base_cfg();
	struct trace t;
	int i;

	build_apply(&cfg, NULL, 0, 0, &t);
	/* static sets: created if missing, deleted, recreated */
	i = find(&t, 0, "set+ allow_v4 flags=4 klen=4 ktype=7");
	ck_assert_int_gt(i, 0);
	ck_assert_str_eq(t.line[i + 1], "set- allow_v4");
	ck_assert(!strncmp(t.line[i + 2], "set+ allow_v4 flags=4", 21));
	ck_assert_int_gt(find(&t, 0, "set+ deny_v6 flags=4 klen=16 ktype=8"),
			 0);
	ck_assert_int_gt(find(&t, 0, "set+ doh_allow_v4 flags=0 klen=4"), 0);
	ck_assert_int_gt(find(&t, 0, "set+ upstream_v6 flags=0 klen=16"), 0);
	/* learned sets: created if missing, never deleted nor flushed */
	ck_assert_int_eq(count(&t, "set+ learned_v4 flags=16 klen=4 ktype=7"),
			 1);
	ck_assert_int_eq(count(&t, "set+ learned_v6 flags=16 klen=16 ktype=8"),
			 1);
	ck_assert_int_eq(count(&t, "set- learned"), 0);
	ck_assert_int_eq(count(&t, "elem- learned"), 0);
	ck_assert_int_eq(count(&t, "set+"), 12 + 10);
	/* set removal comes after the rules using them were flushed */
	ck_assert_int_lt(find(&t, 0, "flush egress"), find(&t, 0, "set-"));
	ck_assert_int_eq(count(&t, "obj+"), 7);
	ck_assert_int_eq(count(&t, "obj-"), 0);
	ck_assert_int_gt(find(&t, 0, "obj+ default_drop type=1"), 0);
	ck_assert_int_gt(find(&t, 0, "obj+ dns_drop type=1"), 0);
	/* every object carries a comment */
	for (i = 0; i < t.n; i++)
		if (!strncmp(t.line[i], "set+", 4) ||
		    !strncmp(t.line[i], "rule", 4) ||
		    !strncmp(t.line[i], "chain+", 6))
			ck_assert_msg(!strstr(t.line[i], "\"\""), "%s",
				      t.line[i]);
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_interval_normalisation)
{
	struct policy_addr allow[] = {
		A("10.0.0.0/24"),
		A("10.0.0.7"), /* contained */
		A("10.0.1.0/24"), /* adjacent */
		A("10.0.0.0/24"), /* duplicate */
		A("10.0.3.5/24"), /* unmasked */
		A("10.0.3.128/25"), /* contained */
		A("192.168.0.0/16"),
		A("192.168.255.0/23"), /* overlap */
		A("255.255.255.255"), /* top: no end */
		A("2001:db8::/32"),
		A("2001:db8:1::1"),
		A("2001:db9::/32"), /* adjacent */
		A("::/0"),
	};
	struct policy_addr deny[] = { A("0.0.0.0/0") };
	struct nftsync_config cfg = base_cfg();
	struct trace t;
	int i;

	cfg.allow = allow;
	cfg.n_allow = sizeof(allow) / sizeof(allow[0]);
	cfg.deny = deny;
	cfg.n_deny = 1;
	build_apply(&cfg, NULL, 0, 0, &t);
	i = find(&t, 0, "elem+ allow_v4");
	ck_assert_str_eq(
		t.line[i],
		"elem+ allow_v4 10.0.0.0 10.0.2.0/end 10.0.3.0 10.0.4.0/end 192.168.0.0 192.169.0.0/end 255.255.255.255");
	/* ::/0 swallows the rest; it reaches the top: one start element */
	ck_assert_str_eq(t.line[find(&t, 0, "elem+ allow_v6")],
			 "elem+ allow_v6 ::");
	ck_assert_str_eq(t.line[find(&t, 0, "elem+ deny_v4")],
			 "elem+ deny_v4 0.0.0.0");
	ck_assert_int_eq(count(&t, "elem+ deny_v6"), 0);
	trace_free(&t);

	cfg.n_allow = 12; /* without ::/0 */
	build_apply(&cfg, NULL, 0, 0, &t);
	ck_assert_str_eq(t.line[find(&t, 0, "elem+ allow_v6")],
			 "elem+ allow_v6 2001:db8:: 2001:dba::/end");
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_many_elements_split)
{
	struct policy_addr *allow;
	struct nftsync_config cfg = base_cfg();
	struct trace t;
	int i;

	allow = calloc(1000, sizeof(*allow));
	for (i = 0; i < 1000; i++) {
		allow[i].family = AF_INET;
		allow[i].prefixlen = 32;
		/* 10.N.0.2k: distinct, none adjacent to another */
		allow[i].addr[0] = 10;
		allow[i].addr[1] = (uint8_t)(i / 125);
		allow[i].addr[3] = (uint8_t)((i % 125) * 2);
	}
	cfg.allow = allow;
	cfg.n_allow = 1000;
	build_apply(&cfg, NULL, 0, 0, &t);
	/* 1000 isolated addresses: 2000 elements in 256-element messages */
	ck_assert_int_eq(count(&t, "elem+ allow_v4"), 8);
	trace_free(&t);
	free(allow);
}
END_TEST

START_TEST(test_nftsync_doh_exceptions)
{
	/* the compiled policy's exceptions: addresses only */
	struct policy_addr exc[] = { A("8.8.8.8"), A("10.1.2.3"), A("9.9.9.9"),
				     A("10.1.2.3"),
				     A("2001:4860:4860::8888/128") };
	struct policy_addr deny[] = { A("9.9.9.0/24") };
	/* the compiled policy's DoH list: built-in providers, blocklist */
	struct policy_addr doh[] = { A("8.8.8.8"), A("2606:4700:4700::1111"),
				     A("203.0.113.0/24") };
	struct nftsync_config cfg = base_cfg();
	struct trace t;

	cfg.doh_exceptions = exc;
	cfg.n_doh_exceptions = 5;
	cfg.deny = deny;
	cfg.n_deny = 1;
	cfg.doh = doh;
	cfg.n_doh = 3;
	build_apply(&cfg, NULL, 0, 0, &t);
	/* each once, and a deny still wins */
	ck_assert_str_eq(t.line[find(&t, 0, "elem+ doh_allow_v4")],
			 "elem+ doh_allow_v4 8.8.8.8 10.1.2.3");
	ck_assert_str_eq(t.line[find(&t, 0, "elem+ doh_allow_v6")],
			 "elem+ doh_allow_v6 2001:4860:4860::8888");
	ck_assert_int_eq(count_sub(&t, "elem+ doh_v4", " 8.8.8.8 8.8.8.9/end"),
			 1);
	ck_assert_int_eq(count_sub(&t, "elem+ doh_v4",
				   " 203.0.113.0 203.0.114.0/end"),
			 1);
	ck_assert_int_eq(
		count_sub(&t, "elem+ doh_v6", " 2606:4700:4700::1111 "), 1);
	/* exceptions are checked before the DoT and DoH drops */
	ck_assert_int_lt(
		find(&t, 0,
		     "rule egress meta(15) cmp(0,02) payload(1,16,4) lookup(@doh_allow_v4)"),
		find(&t, 0,
		     "rule egress meta(16) cmp(0,06) payload(2,2,2) cmp(0,0355)"));
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_forget_and_flush_learned)
{
	struct policy_addr forget[] = { A("192.0.2.7"), A("2001:db8::7"),
					A("192.0.2.7") };
	struct nftsync_config cfg = base_cfg();
	struct trace t;
	int i;

	build_apply(&cfg, forget, 3, 0, &t);
	i = find(&t, 0, "elem+ learned_v4");
	ck_assert_str_eq(t.line[i], "elem+ learned_v4 192.0.2.7/t=1000");
	ck_assert_str_eq(t.line[i + 1], "elem- learned_v4 192.0.2.7");
	i = find(&t, 0, "elem+ learned_v6");
	ck_assert_str_eq(t.line[i], "elem+ learned_v6 2001:db8::7/t=1000");
	ck_assert_str_eq(t.line[i + 1], "elem- learned_v6 2001:db8::7");
	trace_free(&t);

	build_apply(&cfg, forget, 3, NFTSYNC_BUILD_FLUSH_LEARNED, &t);
	ck_assert_int_eq(count(&t, "elem- learned_v4"), 1);
	ck_assert_str_eq(t.line[find(&t, 0, "elem- learned_v4")],
			 "elem- learned_v4");
	ck_assert_int_eq(count(&t, "elem+ learned"), 0);
	trace_free(&t);

	build_apply(&cfg, NULL, 0, NFTSYNC_BUILD_REPLACE, &t);
	ck_assert_str_eq(
		t.line[1],
		"table+ egressd \"egressd: removed only by egressd --cleanup\"");
	ck_assert_str_eq(t.line[2], "table- egressd");
	ck_assert(!strncmp(t.line[3], "table+ egressd", 14));
	trace_free(&t);
}
END_TEST

START_TEST(test_nftsync_learn_batch)
{
	struct policy_addr a[] = { A("192.0.2.1"), A("2001:db8::1"),
				   A("192.0.2.2") };
	struct nftsync_batch *b = nftsync_batch_new(5);
	struct trace t;

	a[0].prefixlen = 0; /* ignored for learned addresses */
	ck_assert_int_eq(nftsync_build_learn(b, a, 3, 90), 0);
	trace_batch(b, &t);
	ck_assert_int_eq(t.n, 8);
	ck_assert_str_eq(
		t.line[1],
		"elem+ learned_v4 192.0.2.1/t=90000 192.0.2.2/t=90000");
	ck_assert_str_eq(t.line[2], "elem- learned_v4 192.0.2.1 192.0.2.2");
	ck_assert_str_eq(
		t.line[3],
		"elem+ learned_v4 192.0.2.1/t=90000 192.0.2.2/t=90000");
	ck_assert_str_eq(t.line[4], "elem+ learned_v6 2001:db8::1/t=90000");
	ck_assert_str_eq(t.line[5], "elem- learned_v6 2001:db8::1");
	ck_assert_str_eq(t.line[6], "elem+ learned_v6 2001:db8::1/t=90000");
	ck_assert_str_eq(nftsync_batch_describe(b, 6),
			 "add elements learned_v4 [1..2 of 2]");
	trace_free(&t);
	nftsync_batch_free(b);
	b = nftsync_batch_new(5);
	ck_assert_int_eq(nftsync_build_learn(b, a, 3, 0), -EINVAL);
	nftsync_batch_free(b);
}
END_TEST

START_TEST(test_nftsync_learn_split_batch)
{
	struct policy_addr known[] = { A("192.0.2.1") };
	struct policy_addr fresh[] = { A("192.0.2.2"), A("2001:db8::2"),
				       A("192.0.2.3") };
	struct nftsync_batch *b = nftsync_batch_new(10);
	struct trace t;

	ck_assert_int_eq(nftsync_build_learn_split(b, known, 1, fresh, 3, 90),
			 0);
	trace_batch(b, &t);
	ck_assert_int_eq(t.n, 7);
	ck_assert_str_eq(t.line[1], "elem+ learned_v4 192.0.2.1/t=90000");
	ck_assert_str_eq(t.line[2], "elem- learned_v4 192.0.2.1");
	ck_assert_str_eq(t.line[3], "elem+ learned_v4 192.0.2.1/t=90000");
	ck_assert(!(t.flags[1] & NLM_F_EXCL));
	ck_assert(!(t.flags[3] & NLM_F_EXCL));
	/* fresh ones: one exclusive add each set, no delete */
	ck_assert_str_eq(
		t.line[4],
		"elem+ learned_v4 192.0.2.2/t=90000 192.0.2.3/t=90000");
	ck_assert_uint_eq(t.flags[4] & (NLM_F_EXCL | NLM_F_CREATE | NLM_F_ACK),
			  NLM_F_EXCL | NLM_F_CREATE | NLM_F_ACK);
	ck_assert_str_eq(t.line[5], "elem+ learned_v6 2001:db8::2/t=90000");
	ck_assert(t.flags[5] & NLM_F_EXCL);
	ck_assert_str_eq(nftsync_batch_describe(b, 14),
			 "create elements learned_v4 [1..2 of 2]");
	ck_assert_str_eq(nftsync_batch_describe(b, 12),
			 "delete elements learned_v4 [1..1 of 1]");
	ck_assert_str_eq(nftsync_batch_describe(b, 16), "batch end");
	trace_free(&t);
	nftsync_batch_free(b);
}
END_TEST

/* A reused batch carries nothing over from the previous build. */
START_TEST(test_nftsync_batch_reuse)
{
	struct policy_addr a[] = { A("192.0.2.1"), A("192.0.2.2"),
				   A("2001:db8::1") };
	struct policy_addr c = A("198.51.100.7");
	struct nftsync_config cfg = base_cfg();
	struct nftsync_batch *b = nftsync_batch_new(100), *fb;
	const void *d1, *d2;
	size_t len, len2;
	struct trace t;

	/* a large batch first, then smaller ones into the same memory */
	ck_assert_int_eq(nftsync_build_apply(b, &cfg, NULL, 0, 0), 0);
	trace_batch(b, &t);
	ck_assert_int_gt(t.n, 40);
	trace_free(&t);

	nftsync_batch_reset(b, 500);
	ck_assert_ptr_null(nftsync_batch_data(b, &len));
	ck_assert_ptr_null(nftsync_batch_describe(b, 100));
	ck_assert_int_eq(nftsync_build_learn_split(b, NULL, 0, a, 3, 60), 0);
	trace_batch(b, &t);
	ck_assert_int_eq(t.n, 4);
	ck_assert_str_eq(t.line[0], "begin");
	ck_assert_str_eq(
		t.line[1],
		"elem+ learned_v4 192.0.2.1/t=60000 192.0.2.2/t=60000");
	ck_assert_str_eq(t.line[2], "elem+ learned_v6 2001:db8::1/t=60000");
	ck_assert_str_eq(t.line[3], "end");
	ck_assert_uint_eq(t.seq[0], 500);
	ck_assert_uint_eq(t.seq[3], 503);
	ck_assert_uint_eq(nftsync_batch_ncmds(b), 2);
	ck_assert_str_eq(nftsync_batch_describe(b, 502),
			 "create elements learned_v6 [1..1 of 1]");
	ck_assert_ptr_null(nftsync_batch_describe(b, 504));
	trace_free(&t);

	nftsync_batch_reset(b, 600);
	ck_assert_int_eq(nftsync_build_learn_split(b, &c, 1, NULL, 0, 30), 0);
	trace_batch(b, &t);
	ck_assert_int_eq(t.n, 5);
	ck_assert_str_eq(t.line[1], "elem+ learned_v4 198.51.100.7/t=30000");
	ck_assert_str_eq(t.line[2], "elem- learned_v4 198.51.100.7");
	ck_assert_str_eq(t.line[3], "elem+ learned_v4 198.51.100.7/t=30000");
	ck_assert_str_eq(t.line[4], "end");
	ck_assert_uint_eq(t.seq[4], 604);
	ck_assert_uint_eq(nftsync_batch_ncmds(b), 3);
	ck_assert_str_eq(nftsync_batch_describe(b, 601),
			 "add elements learned_v4 [1..1 of 1]");
	ck_assert_ptr_null(nftsync_batch_describe(b, 605));
	trace_free(&t);

	/* byte for byte what a new batch holds, padding included */
	nftsync_batch_reset(b, 700);
	ck_assert_int_eq(nftsync_build_learn_split(b, a, 1, &a[2], 1, 45), 0);
	fb = nftsync_batch_new(700);
	ck_assert_int_eq(nftsync_build_learn_split(fb, a, 1, &a[2], 1, 45), 0);
	d1 = nftsync_batch_data(b, &len);
	d2 = nftsync_batch_data(fb, &len2);
	ck_assert_uint_eq(len, len2);
	ck_assert_mem_eq(d1, d2, len);
	nftsync_batch_free(fb);
	nftsync_batch_free(b);
}
END_TEST

/*
 * The cgroup level probe: one drop rule per level, each matching its own
 * port and the id at that level, in a chain ahead of egressd's others;
 * its cleanup removes only that chain.
 */
START_TEST(test_nftsync_level_probe_batch)
{
	struct nftsync_batch *b = nftsync_batch_new(1);
	struct trace t;
	int i, r;

	ck_assert_int_eq(nftsync_build_level_probe(b, 0, 4), -EINVAL);
	/* level 0: the namespace root, where a kernel counts from there */
	ck_assert_int_eq(nftsync_build_level_probe(b, 77,
						   NFTSYNC_PROBE_MAX_LEVEL + 1),
			 -EINVAL);
	ck_assert_int_eq(nftsync_build_level_probe(b, 77, 3), 0);
	trace_batch(b, &t);
	ck_assert_int_eq(count(&t, "rule " NFTSYNC_CHAIN_PROBE), 4);
	ck_assert_int_eq(count(&t, "rule egress"), 0);
	ck_assert_int_eq(count(&t, "table- egressd"), 0);
	r = find(&t, 0, "rule " NFTSYNC_CHAIN_PROBE);
	ck_assert_int_ge(r, 0);
	for (i = 0; i <= 3; i++) {
		char want[64];

		/* port PROBE_PORT + L, then socket cgroupv2 level L == id */
		snprintf(
			want, sizeof(want),
			"cmp(0,%04x) socket(3,%d) cmp(0,4d00000000000000) immediate(drop)",
			NFTSYNC_PROBE_PORT + i, i);
		ck_assert_ptr_nonnull(strstr(t.line[r + i], want));
	}
	trace_free(&t);
	nftsync_batch_reset(b, 1);
	ck_assert_int_eq(nftsync_build_probe_cleanup(b), 0);
	trace_batch(b, &t);
	ck_assert_int_eq(t.n, 3);
	ck_assert_ptr_nonnull(strstr(t.line[1], NFTSYNC_CHAIN_PROBE));
	trace_free(&t);
	nftsync_batch_free(b);
}
END_TEST

START_TEST(test_nftsync_cleanup_batch)
{
	struct nftsync_batch *b = nftsync_batch_new(1);
	struct trace t;

	ck_assert_int_eq(nftsync_build_cleanup(b), 0);
	trace_batch(b, &t);
	/* both tables, each added first so that a missing one is fine */
	ck_assert_int_eq(t.n, 6);
	ck_assert_str_eq(t.line[2], "table- egressd");
	ck_assert_str_eq(t.line[4], "table- egressd netdev");
	trace_free(&t);
	nftsync_batch_free(b);
}
END_TEST

/*
 * Table netdev egressd: one egress chain per interface, each
 * accepting what the IP stack routed and the kernel's ARP, dropping a
 * process's unrouted frames and anything else, counted and logged as
 * raw_frame; replaced in one transaction.
 */
START_TEST(test_nftsync_netdev_table)
{
	static const char *const ifs[] = { "lo", "eth0" };
	static const char *const want[] = {
		/* meta l4proto != ipv6-icmp meta rtclassid >= 0 accept */
		"rule frames_eth0 meta(16) cmp(1,3a) meta(13) cmp(5,00000000) immediate(accept)",
		/* a process's NS off the link scope */
		"rule frames_eth0 meta(16) cmp(0,3a) payload(2,0,1) cmp(0,87) meta(10) cmp(5,00000000) payload(1,24,16) bitwise(ffc00000000000000000000000000000) cmp(1,fe800000000000000000000000000000) payload(1,24,16) bitwise(ffff0000000000000000000000000000) cmp(1,ff020000000000000000000000000000) objref(1,nd_drop) log(egressd:default_deny,180) immediate(drop)",
		"rule frames_eth0 meta(16) cmp(0,3a) payload(2,0,1) cmp(0,88) meta(10)",
		/* the rest of what the IP stack routed (ICMPv6) */
		"rule frames_eth0 meta(13) cmp(5,00000000) immediate(accept)",
		/* meta skuid >= 0: a process's socket, no route */
		"rule frames_eth0 meta(10) cmp(5,00000000) objref(1,raw_frame_drop) log(egressd:raw_frame,180) immediate(drop)",
		/* @ll,96,16 0x0806: ARP by the Ethernet header */
		"rule frames_eth0 payload(0,12,2) cmp(0,0806) immediate(accept)",
		"rule frames_eth0 objref(1,raw_frame_drop) log(egressd:raw_frame,180) immediate(drop) \"neither routed nor ARP\"",
	};
	struct nftsync_batch *b = nftsync_batch_new(1);
	const char *bad[] = { "" };
	struct trace t;
	size_t i;
	int lo, eth;

	ck_assert_int_eq(nftsync_build_netdev(b, ifs, 2, 180), 0);
	trace_batch(b, &t);
	ck_assert_int_eq(strncmp(t.line[1], "table+ egressd netdev", 21), 0);
	ck_assert_str_eq(t.line[2], "table- egressd netdev");
	ck_assert_str_eq(
		t.line[3],
		"table+ egressd netdev \"egressd: frames the IP stack did not route are dropped\"");
	ck_assert_int_eq(count(&t, "obj+ raw_frame_drop"), 1);
	ck_assert_int_eq(count(&t, "obj+ nd_drop"), 1);
	lo = find(&t, 0, "chain+ frames_lo filter hook=1 prio=0 policy=1");
	eth = find(&t, 0, "chain+ frames_eth0 filter hook=1 prio=0 policy=1");
	ck_assert_int_gt(lo, 0);
	ck_assert_int_gt(eth, lo);
	ck_assert_ptr_nonnull(strstr(t.line[lo], " dev=lo"));
	ck_assert_ptr_nonnull(strstr(t.line[eth], " dev=eth0"));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_int_eq(find(&t, eth, want[i]), eth + 1 + (int)i);
	ck_assert_int_eq(count(&t, "rule frames_lo"), 7);
	ck_assert_int_eq(count(&t, "rule frames_eth0"), 7);
	/* nothing of table inet egressd */
	ck_assert_int_eq(count(&t, "set"), 0);
	ck_assert_str_eq(t.line[t.n - 1], "end");
	trace_free(&t);

	/* no interfaces: the table only goes */
	nftsync_batch_reset(b, 2);
	ck_assert_int_eq(nftsync_build_netdev(b, ifs, 0, 180), 0);
	trace_batch(b, &t);
	ck_assert_int_eq(t.n, 4);
	ck_assert_str_eq(t.line[2], "table- egressd netdev");
	trace_free(&t);

	nftsync_batch_reset(b, 3);
	ck_assert_int_eq(nftsync_build_netdev(b, bad, 1, 180), -EINVAL);
	nftsync_batch_free(b);
}
END_TEST

/* Commands of b whose header family is not family (BEGIN/END excluded:
 * they carry AF_UNSPEC). */
static int headers_not_of(const struct nftsync_batch *b, uint8_t family)
{
	const struct nlmsghdr *nlh;
	const struct nfgenmsg *nfg;
	int left, bad = 0, i = 0;
	const void *data;
	size_t len;

	data = nftsync_batch_data(b, &len);
	ck_assert_ptr_nonnull(data);
	left = (int)len;
	for (nlh = data; mnl_nlmsg_ok(nlh, left);
	     nlh = mnl_nlmsg_next(nlh, &left), i++) {
		if (nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN ||
		    nlh->nlmsg_type == NFNL_MSG_BATCH_END)
			continue;
		nfg = mnl_nlmsg_get_payload(nlh);
		if (nfg->nfgen_family != family)
			bad++;
	}
	ck_assert_int_gt(i, 2);
	return bad;
}

/*
 * Tables, chains, counters and rules of both families go through the same
 * emitters: the kernel reads the family from the message header, so every
 * command of table netdev egressd carries NFPROTO_NETDEV there and every
 * command of table inet egressd NFPROTO_INET.
 */
START_TEST(test_nftsync_family_in_every_header)
{
	static const char *const ifs[] = { "lo", "eth0" };
	struct nftsync_config cfg = base_cfg();
	struct nftsync_batch *b = nftsync_batch_new(1);

	ck_assert_int_eq(nftsync_build_netdev(b, ifs, 2, 180), 0);
	ck_assert_int_eq(headers_not_of(b, NFPROTO_NETDEV), 0);
	nftsync_batch_reset(b, 1);
	cfg.ipv6_deny = true;
	ck_assert_int_eq(nftsync_build_apply(b, &cfg, NULL, 0,
					     NFTSYNC_BUILD_REPLACE),
			 0);
	ck_assert_int_eq(headers_not_of(b, NFPROTO_INET), 0);
	nftsync_batch_reset(b, 1);
	ck_assert_int_eq(nftsync_build_level_probe(b, 42, 3), 0);
	ck_assert_int_eq(headers_not_of(b, NFPROTO_INET), 0);
	nftsync_batch_free(b);
}
END_TEST

/* Writes over the stack below the caller: what a build left there. */
static __attribute__((noinline)) void clobber_stack(void)
{
	volatile char junk[8192];
	size_t i;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (char)0xa5;
}

/*
 * A netdev chain's name ("frames_<ifname>") is made during the build;
 * the descriptions an error ACK is named by must outlive the build (they
 * pointed into the builder's stack frame).
 */
START_TEST(test_nftsync_netdev_names_outlive_build)
{
	static const char *const ifs[] = { "eth0", "veth-x" };
	struct nftsync_batch *b = nftsync_batch_new(1);
	const char *d;

	/* begin, table+ table- table+, two counters, then per interface
	 * one chain and 7 rules */
	ck_assert_int_eq(nftsync_build_netdev(b, ifs, 2, 180), 0);
	clobber_stack();
	ck_assert_str_eq(nftsync_batch_describe(b, 7), "add chain frames_eth0");
	d = nftsync_batch_describe(b, 8);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(strncmp(d, "add rule frames_eth0 \"routed", 28), 0);
	ck_assert_str_eq(nftsync_batch_describe(b, 15),
			 "add chain frames_veth-x");
	ck_assert_str_eq(nftsync_batch_describe(b, 22),
			 "add rule frames_veth-x \"neither routed nor ARP\"");
	nftsync_batch_free(b);
}
END_TEST

START_TEST(test_nftsync_bad_config)
{
	struct policy_addr bad = A("10.0.0.0/8");
	struct nftsync_config cfg = base_cfg();
	struct nftsync_batch *b;

	cfg.agent_cgroup_id = 1; /* the root cgroup is everyone */
	cfg.agent_cgroup_level = 0;
	b = nftsync_batch_new(1);
	ck_assert_int_eq(nftsync_build_apply(b, &cfg, NULL, 0, 0), -EINVAL);
	nftsync_batch_free(b);
	cfg = base_cfg();
	bad.prefixlen = 33;
	cfg.allow = &bad;
	cfg.n_allow = 1;
	b = nftsync_batch_new(1);
	ck_assert_int_eq(nftsync_build_apply(b, &cfg, NULL, 0, 0), -EINVAL);
	nftsync_batch_free(b);
}
END_TEST

/* ---- state, through a fake talker ----------------------------------- */

struct fake {
	int calls;
	int fail_next; /* -errno for the next call(s) */
	int fail_count;
	struct trace last;
};

static int fake_talk(const struct nftsync_batch *b, void *arg, char *err,
		     size_t errlen)
{
	struct fake *f = arg;

	f->calls++;
	trace_free(&f->last);
	trace_batch(b, &f->last);
	if (f->fail_count) {
		f->fail_count--;
		snprintf(err, errlen, "fake refusal");
		return f->fail_next;
	}
	return 0;
}

/* An address in the kernel although the registry does not know it (say,
 * adopted after a restart): the exclusive add is refused, the batch resent
 * as refresh; for timeout_s, new addresses are refreshed directly. */
START_TEST(test_nftsync_learn_exists_falls_back)
{
	struct policy_addr a[] = { A("192.0.2.1"), A("192.0.2.2"),
				   A("192.0.2.3") };
	bool unknown[] = { false, false, false };
	struct nftsync_config cfg = base_cfg();
	struct nftsync_stats st;
	struct fake f = { 0 };
	struct nftsync *ns;
	char err[256];

	ck_assert_int_eq(nftsync_new_with_talker(&ns, fake_talk, &f), 0);
	ck_assert_int_eq(nftsync_apply(ns, &cfg, NULL, err, sizeof(err)), 0);
	f.fail_next = -EEXIST;
	f.fail_count = 1;
	ck_assert_int_eq(nftsync_learn_write(ns, 1000, a, unknown, 1, 100, err,
					     sizeof(err)),
			 0);
	ck_assert_int_eq(f.calls, 3);
	ck_assert_int_eq(f.last.n, 5);
	ck_assert_str_eq(f.last.line[1], "elem+ learned_v4 192.0.2.1/t=100000");
	ck_assert_str_eq(f.last.line[2], "elem- learned_v4 192.0.2.1");
	ck_assert_str_eq(f.last.line[3], "elem+ learned_v4 192.0.2.1/t=100000");
	nftsync_get_stats(ns, &st);
	ck_assert_uint_eq(st.learn_exists, 1);
	ck_assert_uint_eq(st.learn_sent, 1);
	/* more may be there: for timeout_s, new addresses are refreshed */
	ck_assert_int_eq(nftsync_learn_write(ns, 50000, &a[1], unknown, 1, 100,
					     err, sizeof(err)),
			 0);
	ck_assert_int_eq(f.calls, 4);
	ck_assert_int_eq(count(&f.last, "elem-"), 1);
	/* then probed with a single exclusive add again */
	ck_assert_int_eq(nftsync_learn_write(ns, 102000, &a[2], unknown, 1, 100,
					     err, sizeof(err)),
			 0);
	ck_assert_int_eq(f.calls, 5);
	ck_assert_int_eq(f.last.n, 3);
	ck_assert(f.last.flags[1] & NLM_F_EXCL);
	/* another error is not retried */
	f.fail_next = -ENOENT;
	f.fail_count = 1;
	ck_assert_int_eq(nftsync_learn_write(ns, 103000, a, unknown, 1, 30, err,
					     sizeof(err)),
			 -ENOENT);
	ck_assert_str_eq(err, "fake refusal");
	ck_assert_int_eq(f.calls, 6);
	/* the same address twice in one answer is written once */
	a[1] = a[0];
	ck_assert_int_eq(nftsync_learn_write(ns, 103000, a, unknown, 2, 30, err,
					     sizeof(err)),
			 0);
	ck_assert_int_eq(f.last.n, 3);
	ck_assert_int_eq(nftsync_learn_write(ns, 103000, a, unknown, 1, 0, err,
					     sizeof(err)),
			 -EINVAL);
	trace_free(&f.last);
	nftsync_free(ns);
}
END_TEST

/*
 * The writer the agent drives: nothing before the filter is installed;
 * then known addresses are refreshed and new ones created exclusively;
 * an apply that flushes the learned sets says so.
 */
START_TEST(test_nftsync_learn_write_and_reset)
{
	struct policy_addr a[] = { A("192.0.2.1"), A("192.0.2.2") };
	bool known[] = { true, false };
	struct nftsync_config cfg = base_cfg();
	struct nftsync_update upd = { .flush_learned = true };
	struct fake f = { 0 };
	struct nftsync *ns;
	char err[256];

	ck_assert_int_eq(nftsync_new_with_talker(&ns, fake_talk, &f), 0);
	ck_assert_int_eq(nftsync_learn_write(ns, 1000, a, known, 2, 100, err,
					     sizeof(err)),
			 0);
	ck_assert_int_eq(f.calls, 0);
	/* the first filter: what the sets hold was not written by us */
	ck_assert_int_eq(nftsync_apply(ns, &cfg, NULL, err, sizeof(err)), 0);
	ck_assert(nftsync_learned_reset(ns));
	ck_assert_int_eq(nftsync_learn_write(ns, 1000, a, known, 2, 100, err,
					     sizeof(err)),
			 0);
	ck_assert_int_eq(f.calls, 2);
	ck_assert_str_eq(f.last.line[1], "elem+ learned_v4 192.0.2.1/t=100000");
	ck_assert_str_eq(f.last.line[2], "elem- learned_v4 192.0.2.1");
	ck_assert_str_eq(f.last.line[3], "elem+ learned_v4 192.0.2.1/t=100000");
	ck_assert_str_eq(f.last.line[4], "elem+ learned_v4 192.0.2.2/t=100000");
	ck_assert(f.last.flags[4] & NLM_F_EXCL);
	ck_assert_int_eq(nftsync_apply(ns, &cfg, &upd, err, sizeof(err)), 0);
	ck_assert(nftsync_learned_reset(ns));
	ck_assert_int_eq(nftsync_apply(ns, &cfg, NULL, err, sizeof(err)), 0);
	ck_assert(!nftsync_learned_reset(ns));
	trace_free(&f.last);
	nftsync_free(ns);
}
END_TEST

/*
 * One answer with duplicates, of both families and both writes: each
 * address is written once, in its set and with its write (the builder
 * merges them, nftsync_learn_write() does not). An answer with an
 * address nftables cannot hold sends nothing and says why; the next
 * answer is written as usual.
 */
START_TEST(test_nftsync_learn_duplicates_and_invalid)
{
	struct policy_addr a[] = { A("192.0.2.1"),   A("2001:db8::1"),
				   A("192.0.2.9"),   A("192.0.2.1"),
				   A("2001:db8::1"), A("192.0.2.9"),
				   A("2001:db8::2"), A("192.0.2.1") };
	bool known[] = { false, true, true, false, true, true, false, false };
	struct nftsync_config cfg = base_cfg();
	struct nftsync_stats st;
	struct fake f = { 0 };
	struct nftsync *ns;
	char err[256];
	int calls;

	ck_assert_int_eq(nftsync_new_with_talker(&ns, fake_talk, &f), 0);
	ck_assert_int_eq(nftsync_apply(ns, &cfg, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(nftsync_learn_write(ns, 1000, a, known, 8, 60, err,
					     sizeof(err)),
			 0);
	ck_assert_int_eq(f.calls, 2);
	ck_assert_int_eq(f.last.n, 10);
	ck_assert_str_eq(f.last.line[1], "elem+ learned_v4 192.0.2.9/t=60000");
	ck_assert_str_eq(f.last.line[2], "elem- learned_v4 192.0.2.9");
	ck_assert_str_eq(f.last.line[3], "elem+ learned_v4 192.0.2.9/t=60000");
	ck_assert_str_eq(f.last.line[4], "elem+ learned_v4 192.0.2.1/t=60000");
	ck_assert(f.last.flags[4] & NLM_F_EXCL);
	ck_assert_str_eq(f.last.line[5],
			 "elem+ learned_v6 2001:db8::1/t=60000");
	ck_assert_str_eq(f.last.line[6], "elem- learned_v6 2001:db8::1");
	ck_assert_str_eq(f.last.line[7],
			 "elem+ learned_v6 2001:db8::1/t=60000");
	ck_assert_str_eq(f.last.line[8],
			 "elem+ learned_v6 2001:db8::2/t=60000");
	ck_assert(f.last.flags[8] & NLM_F_EXCL);

	/* a bad family, then a prefix length too long: nothing is sent */
	calls = f.calls;
	a[3].family = AF_UNIX;
	ck_assert_int_eq(nftsync_learn_write(ns, 2000, a, known, 4, 60, err,
					     sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "nftsync_learn: bad arguments");
	a[3] = A("192.0.2.1");
	a[3].prefixlen = 33;
	ck_assert_int_eq(nftsync_learn_write(ns, 2000, a, known, 4, 60, err,
					     sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(f.calls, calls);
	nftsync_get_stats(ns, &st);
	ck_assert_uint_eq(st.batch_errors, 0);
	/* the next answer goes through */
	ck_assert_int_eq(nftsync_learn_write(ns, 3000, a, known, 3, 60, err,
					     sizeof(err)),
			 0);
	ck_assert_int_eq(f.calls, calls + 1);
	ck_assert_str_eq(f.last.line[4], "elem+ learned_v4 192.0.2.1/t=60000");
	trace_free(&f.last);
	nftsync_free(ns);
}
END_TEST

/* Addresses the registry revoked leave the learned sets in the apply's
 * own batch; the sets are not flushed, so nothing must be rewritten. */
START_TEST(test_nftsync_apply_revokes_learned)
{
	struct policy_addr gone = A("192.0.2.3");
	struct nftsync_config cfg = base_cfg();
	struct nftsync_update upd = { .forget = &gone, .n_forget = 1 };
	struct fake f = { 0 };
	struct nftsync *ns;
	char err[256];
	int i;

	ck_assert_int_eq(nftsync_new_with_talker(&ns, fake_talk, &f), 0);
	ck_assert_int_eq(nftsync_apply(ns, &cfg, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(nftsync_apply(ns, &cfg, &upd, err, sizeof(err)), 0);
	i = find(&f.last, 0, "elem- learned_v4");
	ck_assert_int_gt(i, 0);
	ck_assert_str_eq(f.last.line[i], "elem- learned_v4 192.0.2.3");
	ck_assert_int_eq(count(&f.last, "elem- learned_v6"), 0);
	ck_assert(!nftsync_learned_reset(ns));
	trace_free(&f.last);
	nftsync_free(ns);
}
END_TEST

START_TEST(test_nftsync_apply_falls_back_to_replace)
{
	struct nftsync_config cfg = base_cfg();
	struct fake f = { 0 };
	struct nftsync *ns;
	char err[256];

	ck_assert_int_eq(nftsync_new_with_talker(&ns, fake_talk, &f), 0);
	f.fail_next = -EEXIST;
	f.fail_count = 1;
	ck_assert_int_eq(nftsync_apply(ns, &cfg, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(f.calls, 2);
	ck_assert_str_eq(f.last.line[2], "table- egressd");
	/* a refusal for lack of privilege is not retried */
	f.fail_next = -EPERM;
	f.fail_count = 2;
	ck_assert_int_eq(nftsync_apply(ns, &cfg, NULL, err, sizeof(err)),
			 -EPERM);
	ck_assert_int_eq(f.calls, 3);
	ck_assert(!nftsync_is_filtering(ns));
	trace_free(&f.last);
	nftsync_free(ns);
}
END_TEST

START_TEST(test_nftsync_addr_from_sockaddr)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct policy_addr a;

	inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
	ck_assert_int_eq(nftsync_addr_from_sockaddr((struct sockaddr *)&s6, &a),
			 0);
	ck_assert_int_eq(a.family, AF_INET);
	ck_assert_int_eq(a.prefixlen, 32);
	ck_assert_mem_eq(a.addr, "\x0a\x01\x02\x03", 4);
	inet_pton(AF_INET6, "2001:db8::5", &s6.sin6_addr);
	ck_assert_int_eq(nftsync_addr_from_sockaddr((struct sockaddr *)&s6, &a),
			 0);
	ck_assert_int_eq(a.family, AF_INET6);
	ck_assert_int_eq(a.prefixlen, 128);
}
END_TEST

static Suite *nftsync_suite(void)
{
	Suite *s = suite_create("nftsync");
	TCase *tc;

	tc = tcase_create("build");
	tcase_add_test(tc, test_nftsync_batch_framing);
	tcase_add_test(tc, test_nftsync_table_and_chains);
	tcase_add_test(tc, test_nftsync_antispoof_every_mode);
	tcase_add_test(tc, test_nftsync_redirect_rules);
	tcase_add_test(tc, test_nftsync_dns_mode_removes_filter);
	tcase_add_test(tc, test_nftsync_filter_chain_order);
	tcase_add_test(tc, test_nftsync_api_rules);
	tcase_add_test(tc, test_nftsync_agent_withdrawn);
	tcase_add_test(tc, test_nftsync_default_accept_ipv6_deny);
	tcase_add_test(tc, test_nftsync_ipv6_deny_rejects);
	tcase_add_test(tc, test_nftsync_dns_mode_ipv6_deny);
	tcase_add_test(tc, test_nftsync_bpf_handoff);
	tcase_add_test(tc, test_nftsync_bpf_redirect);
	tcase_add_test(tc, test_nftsync_icmp6_link_scope);
	tcase_add_test(tc, test_nftsync_netdev_table);
	tcase_add_test(tc, test_nftsync_blanket_443);
	tcase_add_test(tc, test_nftsync_sets_and_counters);
	tcase_add_test(tc, test_nftsync_forget_and_flush_learned);
	tcase_add_test(tc, test_nftsync_learn_batch);
	tcase_add_test(tc, test_nftsync_learn_split_batch);
	tcase_add_test(tc, test_nftsync_batch_reuse);
	tcase_add_test(tc, test_nftsync_cleanup_batch);
	tcase_add_test(tc, test_nftsync_level_probe_batch);
	tcase_add_test(tc, test_nftsync_netdev_names_outlive_build);
	tcase_add_test(tc, test_nftsync_family_in_every_header);
	tcase_add_test(tc, test_nftsync_bad_config);
	suite_add_tcase(s, tc);

	tc = tcase_create("addresses");
	tcase_add_test(tc, test_nftsync_interval_normalisation);
	tcase_add_test(tc, test_nftsync_many_elements_split);
	tcase_add_test(tc, test_nftsync_doh_exceptions);
	tcase_add_test(tc, test_nftsync_addr_from_sockaddr);
	suite_add_tcase(s, tc);

	tc = tcase_create("state");
	tcase_add_test(tc, test_nftsync_learn_exists_falls_back);
	tcase_add_test(tc, test_nftsync_learn_write_and_reset);
	tcase_add_test(tc, test_nftsync_learn_duplicates_and_invalid);
	tcase_add_test(tc, test_nftsync_apply_revokes_learned);
	tcase_add_test(tc, test_nftsync_apply_falls_back_to_replace);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(nftsync_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
