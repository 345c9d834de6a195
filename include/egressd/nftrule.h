/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Inside the nftables layer: a rule being built and the expressions it is
 * made of, named after what `nft list` prints ("meta l4proto tcp", "tcp
 * dport 53", "counter name … log … drop"). A rule is started, matchers
 * and one action are appended in order, and nftrule_emit() writes it into
 * the batch. The first allocation failure sticks in the rule and is
 * returned by nftrule_emit(), so a builder checks once per rule.
 */
#ifndef __EGRESSD_NFTRULE_H
#define __EGRESSD_NFTRULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egressd/nftbatch.h"

struct nftnl_expr;
struct nftnl_rule;

struct nftrule {
	struct nftnl_rule *r;
	const char *chain; /* static: named in error messages */
	uint8_t family; /* NFPROTO_INET, NFPROTO_NETDEV */
	int err;
};

/* A rule for chain (static string) of table egressd of family
 * (NFPROTO_INET, NFPROTO_NETDEV). */
void nftrule_start(struct nftrule *r, const char *chain, uint8_t family);
/* Append r with its comment (what `nft list` shows) and free it. 0, or
 * the rule's first error, or the batch's. */
int nftrule_emit(struct nftsync_batch *b, struct nftrule *r,
		 const char *comment);

/* Primitives: an expression appended (NULL after an error), register 1
 * loaded, register 1 compared (op NFT_CMP_*). */
struct nftnl_expr *nftrule_expr(struct nftrule *r, const char *name);
void nftrule_meta(struct nftrule *r, uint32_t key);
void nftrule_payload(struct nftrule *r, uint32_t base, uint32_t off,
		     uint32_t len);
void nftrule_cmp(struct nftrule *r, uint32_t op, const void *data, size_t len);

/* ---- matchers ---- */
/* meta nfproto ipv4|ipv6 (family AF_INET, AF_INET6) */
void nftrule_nfproto(struct nftrule *r, int family);
/* meta l4proto tcp|udp|ipv6-icmp */
void nftrule_l4proto(struct nftrule *r, uint8_t proto);
/* meta l4proto != P */
void nftrule_l4proto_not(struct nftrule *r, uint8_t proto);
/* th dport N (after nftrule_l4proto) */
void nftrule_dport(struct nftrule *r, uint16_t port);
/* ip daddr @set / ip6 daddr @set (the set's key family) */
void nftrule_daddr_set(struct nftrule *r, const struct nftbatch_set *ss);
/* ip daddr 127.0.0.0/8 / ip6 daddr ::1 */
void nftrule_daddr_loopback(struct nftrule *r, int family);
/* ip6 daddr (!=) prefix/plen (plen 128: the address itself); op
 * NFT_CMP_EQ or NFT_CMP_NEQ. No nfproto check: the caller's. */
void nftrule_daddr6_cmp(struct nftrule *r, uint32_t op, const char *prefix,
			int plen);
/* tcp flags & (syn | ack) == syn: a connection attempt (after l4proto) */
void nftrule_tcp_syn(struct nftrule *r);
/* socket cgroupv2 level L <id> */
void nftrule_cgroup(struct nftrule *r, uint32_t level, uint64_t id);
/* ct state & mask != 0 */
void nftrule_ct_state(struct nftrule *r, uint32_t mask);
/* oifname "NAME" */
void nftrule_oifname(struct nftrule *r, const char *name);
/* meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type T; in a netdev
 * rule without the nfproto check (the hook's, not the packet's). */
void nftrule_icmpv6_type(struct nftrule *r, uint8_t type);
/* ip6 hoplimit N (after nftrule_nfproto ipv6) */
void nftrule_hoplimit(struct nftrule *r, uint8_t hl);
/* meta skuid >= 0: a process's socket sent the packet */
void nftrule_from_user_socket(struct nftrule *r);
/* through lo, from a process, with a source that is not the netns's own */
void nftrule_saddr_not_local(struct nftrule *r, int family);
/* meta rtclassid >= 0: the IP stack routed the packet (netdev) */
void nftrule_routed(struct nftrule *r);
/* @ll,96,16 == 0x0806: ARP by its Ethernet header (netdev) */
void nftrule_ether_arp(struct nftrule *r);

/* ---- actions ---- */
/* accept, drop, return, … (NF_ACCEPT, NF_DROP, NFT_RETURN) */
void nftrule_verdict(struct nftrule *r, int verdict);
/* counter name "C" log prefix "egressd:<reason>" group G drop */
void nftrule_drop(struct nftrule *r, const char *counter, const char *reason,
		  uint16_t group);
/* counter log prefix "egressd:<reason>" group G drop (anonymous counter) */
void nftrule_drop_anon(struct nftrule *r, const char *reason, uint16_t group);
/* The same as nftrule_drop, but reject with tcp reset (tcp_rst) or with
 * icmpx admin-prohibited. */
void nftrule_reject(struct nftrule *r, const char *counter, const char *reason,
		    uint16_t group, bool tcp_rst);
/* redirect to :PORT */
void nftrule_redirect(struct nftrule *r, uint16_t port);

#endif /* __EGRESSD_NFTRULE_H */
