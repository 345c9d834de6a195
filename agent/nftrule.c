// SPDX-License-Identifier: GPL-2.0-only
/*
 * The rule mini-language of the nftables layer (include/egressd/nftrule.h):
 * each function appends the libnftnl expressions of one `nft` phrase to
 * the rule being built. Which rules a chain holds, and why, is
 * nftruleset.c's; this file only knows how a phrase is spelled in
 * expressions and registers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>

#include "egressd/nftrule.h"

void nftrule_start(struct nftrule *r, const char *chain, uint8_t family)
{
	r->err = 0;
	r->chain = chain;
	r->family = family;
	r->r = nftnl_rule_alloc();
	if (!r->r) {
		r->err = -ENOMEM;
		return;
	}
	nftnl_rule_set_str(r->r, NFTNL_RULE_TABLE, NFTSYNC_TABLE);
	nftnl_rule_set_str(r->r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r->r, NFTNL_RULE_FAMILY, family);
}

int nftrule_emit(struct nftsync_batch *b, struct nftrule *r,
		 const char *comment)
{
	int err = r->err;

	if (!err)
		err = nftbatch_rule(b, r->r, r->chain, comment);
	if (r->r)
		nftnl_rule_free(r->r);
	r->r = NULL;
	return err;
}

struct nftnl_expr *nftrule_expr(struct nftrule *r, const char *name)
{
	struct nftnl_expr *e;

	if (r->err)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		r->err = -ENOMEM;
		return NULL;
	}
	nftnl_rule_add_expr(r->r, e);
	return e;
}

void nftrule_cmp(struct nftrule *r, uint32_t op, const void *data, size_t len)
{
	struct nftnl_expr *e = nftrule_expr(r, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
}

void nftrule_meta(struct nftrule *r, uint32_t key)
{
	struct nftnl_expr *e = nftrule_expr(r, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
}

void nftrule_payload(struct nftrule *r, uint32_t base, uint32_t off,
		     uint32_t len)
{
	struct nftnl_expr *e = nftrule_expr(r, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
}

/* register 1 = (register 1 & mask) ^ xor, over len bytes */
static void bitwise(struct nftrule *r, const void *mask, const void * xor,
		    uint32_t len)
{
	struct nftnl_expr *e = nftrule_expr(r, "bitwise");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor, len);
}

/* ---- matchers ------------------------------------------------------- */

void nftrule_nfproto(struct nftrule *r, int family)
{
	uint8_t p = family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;

	nftrule_meta(r, NFT_META_NFPROTO);
	nftrule_cmp(r, NFT_CMP_EQ, &p, 1);
}

void nftrule_l4proto(struct nftrule *r, uint8_t proto)
{
	nftrule_meta(r, NFT_META_L4PROTO);
	nftrule_cmp(r, NFT_CMP_EQ, &proto, 1);
}

void nftrule_l4proto_not(struct nftrule *r, uint8_t proto)
{
	nftrule_meta(r, NFT_META_L4PROTO);
	nftrule_cmp(r, NFT_CMP_NEQ, &proto, 1);
}

void nftrule_dport(struct nftrule *r, uint16_t port)
{
	uint16_t be = htons(port);

	nftrule_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
	nftrule_cmp(r, NFT_CMP_EQ, &be, 2);
}

/* meta nfproto F, then the destination address into register 1 */
static void daddr_load(struct nftrule *r, int family)
{
	nftrule_nfproto(r, family);
	if (family == AF_INET)
		nftrule_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
	else
		nftrule_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
}

void nftrule_daddr_set(struct nftrule *r, const struct nftbatch_set *ss)
{
	struct nftnl_expr *e;

	daddr_load(r, ss->family);
	e = nftrule_expr(r, "lookup");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, ss->name) < 0)
		r->err = -ENOMEM;
}

void nftrule_daddr_loopback(struct nftrule *r, int family)
{
	static const uint8_t v6[16] = { [15] = 1 };
	const uint8_t mask[4] = { 0xff, 0, 0, 0 }, net[4] = { 127, 0, 0, 0 };
	const uint8_t zero[4] = { 0 };

	daddr_load(r, family);
	if (family == AF_INET6) {
		nftrule_cmp(r, NFT_CMP_EQ, v6, sizeof(v6));
		return;
	}
	bitwise(r, mask, zero, sizeof(mask));
	nftrule_cmp(r, NFT_CMP_EQ, net, sizeof(net));
}

void nftrule_daddr6_cmp(struct nftrule *r, uint32_t op, const char *prefix,
			int plen)
{
	uint8_t net[16], mask[16] = { 0 }, zero[16] = { 0 };
	int i;

	if (inet_pton(AF_INET6, prefix, net) != 1) {
		r->err = -EINVAL;
		return;
	}
	nftrule_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
	if (plen < 128) {
		for (i = 0; i < plen; i++)
			mask[i / 8] |= 0x80 >> (i % 8);
		bitwise(r, mask, zero, sizeof(mask));
	}
	nftrule_cmp(r, op, net, sizeof(net));
}

void nftrule_tcp_syn(struct nftrule *r)
{
	uint8_t mask = 0x12, syn = 0x02, zero = 0;

	nftrule_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1);
	bitwise(r, &mask, &zero, 1);
	nftrule_cmp(r, NFT_CMP_EQ, &syn, 1);
}

/* The socket's cgroup ancestor at level L is cgroup id (the kernel
 * compares cgroup ids). */
void nftrule_cgroup(struct nftrule *r, uint32_t level, uint64_t id)
{
	struct nftnl_expr *e = nftrule_expr(r, "socket");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_KEY, NFT_SOCKET_CGROUPV2);
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_LEVEL, level);
	nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_DREG, NFT_REG_1);
	nftrule_cmp(r, NFT_CMP_EQ, &id, sizeof(id)); /* host order, as stored */
}

void nftrule_ct_state(struct nftrule *r, uint32_t mask)
{
	uint32_t zero = 0;
	struct nftnl_expr *e;

	e = nftrule_expr(r, "ct");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	bitwise(r, &mask, &zero, sizeof(mask));
	nftrule_cmp(r, NFT_CMP_NEQ, &zero, sizeof(zero));
}

void nftrule_oifname(struct nftrule *r, const char *name)
{
	char buf[16] = { 0 };

	strncpy(buf, name, sizeof(buf) - 1);
	nftrule_meta(r, NFT_META_OIFNAME);
	nftrule_cmp(r, NFT_CMP_EQ, buf, sizeof(buf));
}

/*
 * At the netdev hook meta nfproto is the hook's family, never IPv6, so a
 * netdev rule leaves that check out; meta l4proto still names the
 * frame's transport protocol there.
 */
void nftrule_icmpv6_type(struct nftrule *r, uint8_t type)
{
	if (r->family != NFPROTO_NETDEV)
		nftrule_nfproto(r, AF_INET6);
	nftrule_l4proto(r, IPPROTO_ICMPV6);
	nftrule_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
	nftrule_cmp(r, NFT_CMP_EQ, &type, 1);
}

void nftrule_hoplimit(struct nftrule *r, uint8_t hl)
{
	nftrule_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 7, 1);
	nftrule_cmp(r, NFT_CMP_EQ, &hl, 1);
}

/*
 * True only when a socket opened by a process sent the packet. The
 * expression breaks (no match) for the kernel's own packets (neighbour
 * discovery has no socket; the ICMP and TCP control sockets have no
 * file), which is what makes it useful.
 */
void nftrule_from_user_socket(struct nftrule *r)
{
	uint32_t zero = 0;

	nftrule_meta(r, NFT_META_SKUID);
	nftrule_cmp(r, NFT_CMP_GTE, &zero, sizeof(zero));
}

/*
 * "fib saddr type != local" for packets a process sends through lo, with
 * 0.0.0.0 and :: (DHCP, duplicate address detection) and fe80::/10
 * (link-local, which the fib cannot type without an interface) left
 * alone. lo only: what leaves through another interface leaves the
 * namespace and is judged there, and the fib lookup stays off the
 * datapath. Only packets of a socket: the TCP resets that reject sends
 * in the name of the remote address (IPv6 off) have none, and must pass.
 */
void nftrule_saddr_not_local(struct nftrule *r, int family)
{
	static const uint8_t zero[16] = { 0 };
	static const uint8_t ll[2] = { 0xfe, 0x80 }, llmask[2] = { 0xff, 0xc0 };
	uint32_t local = RTN_LOCAL;
	struct nftnl_expr *e;

	nftrule_nfproto(r, family);
	nftrule_oifname(r, "lo");
	nftrule_from_user_socket(r);
	if (family == AF_INET6) {
		nftrule_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 2);
		bitwise(r, llmask, zero, 2);
		nftrule_cmp(r, NFT_CMP_NEQ, ll, 2);
	}
	nftrule_payload(r, NFT_PAYLOAD_NETWORK_HEADER,
			family == AF_INET ? 12 : 8, family == AF_INET ? 4 : 16);
	nftrule_cmp(r, NFT_CMP_NEQ, zero, family == AF_INET ? 4 : 16);
	e = nftrule_expr(r, "fib");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_SADDR);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
	nftrule_cmp(r, NFT_CMP_NEQ, &local, sizeof(local));
}

/* The route's class id loads only when the skb has a route. */
void nftrule_routed(struct nftrule *r)
{
	uint32_t zero = 0;

	nftrule_meta(r, NFT_META_RTCLASSID);
	nftrule_cmp(r, NFT_CMP_GTE, &zero, sizeof(zero));
}

/* The Ethernet header the peer will read, not skb->protocol (which the
 * sender of a packet socket chooses). */
void nftrule_ether_arp(struct nftrule *r)
{
	uint16_t arp = htons(0x0806);

	nftrule_payload(r, NFT_PAYLOAD_LL_HEADER, 12, 2);
	nftrule_cmp(r, NFT_CMP_EQ, &arp, sizeof(arp));
}

/* ---- actions -------------------------------------------------------- */

void nftrule_verdict(struct nftrule *r, int verdict)
{
	struct nftnl_expr *e = nftrule_expr(r, "immediate");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, verdict);
}

/* log prefix "egressd:<reason>" group G (headers are all nflog.c reads) */
static void log_to(struct nftrule *r, const char *reason, uint16_t group)
{
	struct nftnl_expr *e;
	char prefix[64];

	e = nftrule_expr(r, "log");
	if (!e)
		return;
	snprintf(prefix, sizeof(prefix), NFTSYNC_LOG_PREFIX "%s", reason);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix) < 0)
		r->err = -ENOMEM;
	nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, group);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_SNAPLEN, 128);
}

/* counter name "C" log prefix "egressd:<reason>" group G */
static void count_log(struct nftrule *r, const char *counter,
		      const char *reason, uint16_t group)
{
	struct nftnl_expr *e;

	e = nftrule_expr(r, "objref");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, counter) < 0)
		r->err = -ENOMEM;
	log_to(r, reason, group);
}

void nftrule_drop(struct nftrule *r, const char *counter, const char *reason,
		  uint16_t group)
{
	count_log(r, counter, reason, group);
	nftrule_verdict(r, NF_DROP);
}

void nftrule_drop_anon(struct nftrule *r, const char *reason, uint16_t group)
{
	nftrule_expr(r, "counter");
	log_to(r, reason, group);
	nftrule_verdict(r, NF_DROP);
}

/*
 * Reject rather than drop: the sender learns at once (connect() gets
 * ECONNREFUSED, a send EPERM, then EACCES on a connected socket) instead
 * of retransmitting into silence. The kernel still drops the packet
 * itself; the reply goes to the local socket through lo.
 */
void nftrule_reject(struct nftrule *r, const char *counter, const char *reason,
		    uint16_t group, bool tcp_rst)
{
	struct nftnl_expr *e;

	count_log(r, counter, reason, group);
	e = nftrule_expr(r, "reject");
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

void nftrule_redirect(struct nftrule *r, uint16_t port)
{
	uint16_t be = htons(port);
	struct nftnl_expr *e;

	e = nftrule_expr(r, "immediate");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
	e = nftrule_expr(r, "redir");
	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
}
