// SPDX-License-Identifier: GPL-2.0-only
/*
 * The nftables layer's batch buffer and object emitters
 * (include/egressd/nftbatch.h). Messages are written in place by libnftnl
 * into one growing buffer, each command numbered and described for the
 * error that may name it; nothing here knows which objects the ruleset
 * needs (nftruleset.c) or how a batch reaches the kernel (nftsync.c).
 * Tables, chains and counters of both families (inet, netdev) go through
 * the same emitters; the family is written into the message header,
 * which is where the kernel reads it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "egressd/nftbatch.h"

/* nft's datatype ids for set keys, so `nft list` prints addresses. */
#define NFT_TYPE_IPADDR 7
#define NFT_TYPE_IP6ADDR 8

/* Room kept free for one table, chain, counter, set or rule message;
 * element messages reserve what their elements need (nftbatch_elems()). */
#define MSG_RESERVE (64 * 1024 + 4096)
#define ELEMS_PER_MSG 256

/* ---- batch buffer ----------------------------------------------------- */

#define DESC_TEXT_MAX 256

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

static void names_free(struct nftsync_batch *b)
{
	while (b->nnames)
		free(b->names[--b->nnames]);
}

void nftsync_batch_reset(struct nftsync_batch *b, uint32_t seq)
{
	names_free(b);
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
	names_free(b);
	free(b->names);
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

const char *nftsync_batch_describe(const struct nftsync_batch *b, uint32_t seq)
{
	uint32_t i = seq - b->seq_base;
	const struct nftbatch_desc *d;
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

const char *nftbatch_keep(struct nftsync_batch *b, const char *s)
{
	char **v, *copy;

	if (b->nnames == b->names_cap) {
		size_t n = b->names_cap ? b->names_cap * 2 : 16;

		v = realloc(b->names, n * sizeof(*v));
		if (!v)
			return NULL;
		b->names = v;
		b->names_cap = n;
	}
	copy = strdup(s);
	if (copy)
		b->names[b->nnames++] = copy;
	return copy;
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
static int batch_note(struct nftsync_batch *b, const struct nftbatch_desc *d)
{
	struct nftbatch_desc *nd;

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
				  uint8_t family, uint16_t flags, size_t need,
				  const struct nftbatch_desc *d)
{
	struct nlmsghdr *nlh;

	if (batch_reserve(b, need) || batch_note(b, d))
		return NULL;
	nlh = nftnl_nlmsg_build_hdr(b->buf + b->len, type, family,
				    flags | NLM_F_ACK, b->seq++);
	b->ncmds++;
	return nlh;
}

/* Shorthand for commands on a named object (no comment, no range). */
static struct nlmsghdr *obj_start(struct nftsync_batch *b, uint16_t type,
				  uint8_t family, uint16_t flags,
				  const char *verb, const char *what,
				  const char *name)
{
	struct nftbatch_desc d = { verb, what, name, NULL, 0, 0, 0 };

	return cmd_start(b, type, family, flags, MSG_RESERVE, &d);
}

static void msg_end(struct nftsync_batch *b, struct nlmsghdr *nlh)
{
	/* Past the promised room the heap is already corrupt. */
	if (nlh->nlmsg_len > b->room)
		abort();
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
}

int nftbatch_begin(struct nftsync_batch *b)
{
	static const struct nftbatch_desc d = { .what = "batch begin" };
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

int nftbatch_end(struct nftsync_batch *b)
{
	static const struct nftbatch_desc d = { .what = "batch end" };
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

int nftbatch_table(struct nftsync_batch *b, uint8_t family, uint16_t type)
{
	const char *what = family == NFPROTO_NETDEV ? "table netdev" :
						      "table inet";
	const char *comment =
		family == NFPROTO_NETDEV ?
			"egressd: frames the IP stack did not route are dropped" :
			"egressd: removed only by egressd --cleanup";
	struct nftnl_udata_buf *u = NULL;
	struct nftnl_table *t = NULL;
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
		nlh = obj_start(b, type, family, NLM_F_CREATE, "add", what,
				NFTSYNC_TABLE);
	} else {
		nlh = obj_start(b, type, family, 0, "delete", what,
				NFTSYNC_TABLE);
	}
	if (!nlh)
		goto out;
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

int nftbatch_chain(struct nftsync_batch *b, const struct nftbatch_chain *cs,
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
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, cs->family);
	if (type == NFT_MSG_NEWCHAIN) {
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, cs->hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, cs->prio);
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, cs->type);
		if (cs->dev)
			nftnl_chain_set_str(c, NFTNL_CHAIN_DEV, cs->dev);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
		u = comment_udata(NFTNL_UDATA_CHAIN_COMMENT, cs->comment);
		if (!u)
			goto out;
		nftnl_chain_set_data(c, NFTNL_CHAIN_USERDATA,
				     nftnl_udata_buf_data(u),
				     nftnl_udata_buf_len(u));
		nlh = obj_start(b, type, cs->family, NLM_F_CREATE, "add",
				"chain", cs->name);
	} else {
		nlh = obj_start(b, type, cs->family, 0, "delete", "chain",
				cs->name);
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

int nftbatch_counter(struct nftsync_batch *b, uint8_t family,
		     const struct nftbatch_counter *cs, uint16_t type)
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
	nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, family);
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
		nlh = obj_start(b, type, family, NLM_F_CREATE, "add", "counter",
				cs->name);
	} else {
		nlh = obj_start(b, type, family, 0, "delete", "counter",
				cs->name);
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

int nftbatch_set(struct nftsync_batch *b, const struct nftbatch_set *ss,
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
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN,
				  nftbatch_alen(ss->family));
		nftnl_set_set_u32(s, NFTNL_SET_ID, b->set_id++);
		u = comment_udata(NFTNL_UDATA_SET_COMMENT, ss->comment);
		if (!u)
			goto out;
		nftnl_set_set_data(s, NFTNL_SET_USERDATA,
				   nftnl_udata_buf_data(u),
				   nftnl_udata_buf_len(u));
		nlh = obj_start(b, type, NFPROTO_INET, NLM_F_CREATE, "add",
				"set", ss->name);
	} else {
		nlh = obj_start(b, type, NFPROTO_INET, 0, "delete", "set",
				ss->name);
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

/*
 * Upper bounds for an element message (libnftnl writes in place): header,
 * nfgenmsg, table and set names (set names are short) and the list nest,
 * then per element its nest, flags, timeout and key.
 */
#define ELEM_MSG_HDR 256
#define ELEM_MSG_PER 128

/* In messages of at most ELEMS_PER_MSG elements. */
int nftbatch_elems(struct nftsync_batch *b, const struct nftbatch_set *ss,
		   enum nftbatch_elem_op op, const struct nftbatch_elem *v,
		   size_t n, uint64_t timeout_ms)
{
	static const char *const verb[] = {
		[NFTBATCH_ELEM_ADD] = "add",
		[NFTBATCH_ELEM_CREATE] = "create",
		[NFTBATCH_ELEM_DELETE] = "delete",
	};
	static const uint16_t flag[] = {
		[NFTBATCH_ELEM_ADD] = NLM_F_CREATE,
		[NFTBATCH_ELEM_CREATE] = NLM_F_CREATE | NLM_F_EXCL,
		[NFTBATCH_ELEM_DELETE] = 0,
	};
	uint16_t type = op == NFTBATCH_ELEM_DELETE ? NFT_MSG_DELSETELEM :
						     NFT_MSG_NEWSETELEM;
	struct nftbatch_desc d = {
		.verb = verb[op],
		.what = "elements",
		.name = ss->name,
	};
	struct nftnl_set_elem *e;
	struct nftnl_set *s;
	struct nlmsghdr *nlh;
	size_t i, j, k;

	if (n == 0 && op != NFTBATCH_ELEM_DELETE)
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
					   nftbatch_alen(ss->family));
			if (v[j].end)
				nftnl_set_elem_set_u32(
					e, NFTNL_SET_ELEM_FLAGS,
					NFT_SET_ELEM_INTERVAL_END);
			if (timeout_ms)
				nftnl_set_elem_set_u64(
					e, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
			nftnl_set_elem_add(s, e);
		}
		if (n) {
			d.first = i + 1;
			d.last = i + k;
			d.total = n;
		}
		nlh = cmd_start(b, type, NFPROTO_INET, flag[op],
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

int nftbatch_rule(struct nftsync_batch *b, struct nftnl_rule *r,
		  const char *chain, const char *comment)
{
	struct nftbatch_desc d = { "add", "rule", chain, comment, 0, 0, 0 };
	struct nftnl_udata_buf *u;
	struct nlmsghdr *nlh;
	int err = -ENOMEM;

	u = comment_udata(NFTNL_UDATA_RULE_COMMENT, comment);
	if (!u)
		return -ENOMEM;
	nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u),
			    nftnl_udata_buf_len(u));
	nlh = cmd_start(b, NFT_MSG_NEWRULE,
			(uint8_t)nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY),
			NLM_F_CREATE | NLM_F_APPEND, MSG_RESERVE, &d);
	if (nlh) {
		nftnl_rule_nlmsg_build_payload(nlh, r);
		msg_end(b, nlh);
		err = 0;
	}
	nftnl_udata_buf_free(u);
	return err;
}
