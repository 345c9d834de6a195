/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Packet parsing for the cgroup/skb egress program (BPF side only). In a
 * cgroup_skb program skb->data starts at the network header, so offsets
 * here are relative to the IP header. The common IPv4 TCP/UDP case is read
 * in place when the headers are in the linear part; everything else with
 * bpf_skb_load_bytes(), which copes with non-linear skbs and does its own
 * bounds checks; a read that fails leaves the field unknown, never guessed.
 */
#ifndef __EGRESSD_PARSE_BPF_H
#define __EGRESSD_PARSE_BPF_H

/* IPv6 extension headers walked before giving up on finding L4. */
#define EGRESS_MAX_EXTHDRS 8

#define EGRESS_IP_MF_OFFSET 0x3fff /* IPv4 MF flag + fragment offset */
#define EGRESS_IP_OFFSET 0x1fff
#define EGRESS_IP6_OFFSET 0xfff8 /* IPv6 fragment offset (host order) */

/* What the verdict chain needs to know about one packet. */
struct egress_pkt {
	__u32 src[4]; /* network order; IPv4 in src[0] */
	__u32 dst[4];
	__u16 sport; /* host order, 0 when unknown */
	__u16 dport;
	__u8 family; /* 4 or 6 as on the wire, 0 when unparsed */
	__u8 proto;
	__u8 icmp_type;
	__u8 flags; /* EGRESSD_EV_V4MAPPED | EGRESSD_EV_NO_L4 */
	__u8 tcp_flags; /* TCP header byte 13 (FIN..CWR), 0 otherwise */
	__u8 hop_limit; /* IPv6 hop limit, 0 for IPv4 */
	__u16 l4off; /* ICMP header offset (ICMP only) */
};

#define EGRESS_TCP_SYN 0x02
#define EGRESS_TCP_ACK 0x10

/* Read the ports (TCP/UDP) or the ICMP type at off; absent ones stay 0. */
static __always_inline void parse_l4(struct __sk_buff *skb, __u32 off,
				     struct egress_pkt *pkt)
{
	__be16 ports[2];
	__u8 th[14];

	switch (pkt->proto) {
	case IPPROTO_TCP:
		if (bpf_skb_load_bytes(skb, off, th, sizeof(th)) < 0)
			break;
		pkt->sport = th[0] << 8 | th[1];
		pkt->dport = th[2] << 8 | th[3];
		pkt->tcp_flags = th[13];
		return;
	case IPPROTO_UDP:
		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			break;
		pkt->sport = bpf_ntohs(ports[0]);
		pkt->dport = bpf_ntohs(ports[1]);
		return;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (bpf_skb_load_bytes(skb, off, &pkt->icmp_type, 1) < 0)
			break;
		pkt->l4off = off;
		return;
	default:
		return;
	}
	pkt->flags |= EGRESSD_EV_NO_L4;
}

/*
 * The common case read in place: a linear IPv4 header without options
 * followed by the TCP/UDP ports. Saves two bpf_skb_load_bytes() calls
 * per packet (bench/RESULTS.md, datapath). 0 when it applied, -1 to fall
 * back to the copying parser.
 */
static __always_inline int parse_ipv4_direct(struct __sk_buff *skb,
					     struct egress_pkt *pkt)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	const struct iphdr *ip = data;
	const __be16 *ports = data + sizeof(*ip);
	const __u8 *th = (const __u8 *)ports;

	if ((void *)(ports + 2) > end || ip->ihl != 5 ||
	    (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP) ||
	    (bpf_ntohs(ip->frag_off) & EGRESS_IP_OFFSET))
		return -1;
	if (ip->protocol == IPPROTO_TCP) {
		if ((void *)(th + 14) > end)
			return -1;
		pkt->tcp_flags = th[13];
	}
	pkt->family = 4;
	pkt->proto = ip->protocol;
	pkt->src[0] = ip->saddr;
	pkt->dst[0] = ip->daddr;
	pkt->sport = bpf_ntohs(ports[0]);
	pkt->dport = bpf_ntohs(ports[1]);
	return 0;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb,
				      struct egress_pkt *pkt)
{
	struct iphdr ip;

	if (!parse_ipv4_direct(skb, pkt))
		return 0;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
		return -1;
	pkt->family = 4;
	pkt->proto = ip.protocol;
	pkt->src[0] = ip.saddr;
	pkt->dst[0] = ip.daddr;
	/* A non-first fragment carries no L4 header: judge by address. */
	if (bpf_ntohs(ip.frag_off) & EGRESS_IP_OFFSET) {
		pkt->flags |= EGRESSD_EV_NO_L4;
		return 0;
	}
	parse_l4(skb, ip.ihl * 4, pkt);
	return 0;
}

static __always_inline int is_ipv6_exthdr(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT ||
	       nexthdr == IPPROTO_AH;
}

/*
 * Walk up to EGRESS_MAX_EXTHDRS extension headers (hop-by-hop, routing,
 * destination options, fragment, AH) to the upper-layer header. A longer
 * chain, a non-first fragment or a truncated header leaves the ports
 * unknown (EGRESSD_EV_NO_L4): the packet is still judged by address.
 */
static __always_inline int parse_ipv6(struct __sk_buff *skb,
				      struct egress_pkt *pkt)
{
	struct ipv6hdr ip6;
	__u32 off = sizeof(ip6);
	__u8 nexthdr;
	__u8 hdr[8];
	int i;

	if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
		return -1;
	pkt->family = 6;
	pkt->hop_limit = ip6.hop_limit;
	__builtin_memcpy(pkt->src, &ip6.saddr, 16);
	__builtin_memcpy(pkt->dst, &ip6.daddr, 16);
	nexthdr = ip6.nexthdr;

#pragma unroll
	for (i = 0; i < EGRESS_MAX_EXTHDRS; i++) {
		if (!is_ipv6_exthdr(nexthdr))
			break;
		if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0)
			goto no_l4;
		if (nexthdr == IPPROTO_FRAGMENT) {
			if ((hdr[2] << 8 | hdr[3]) & EGRESS_IP6_OFFSET) {
				nexthdr = hdr[0];
				goto no_l4;
			}
			off += 8;
		} else if (nexthdr == IPPROTO_AH) {
			off += (hdr[1] + 2) * 4;
		} else {
			off += (hdr[1] + 1) * 8;
		}
		nexthdr = hdr[0];
	}
	if (is_ipv6_exthdr(nexthdr))
		goto no_l4;
	pkt->proto = nexthdr;
	parse_l4(skb, off, pkt);
	return 0;

no_l4:
	pkt->proto = nexthdr;
	pkt->flags |= EGRESSD_EV_NO_L4;
	return 0;
}

/* ::ffff:a.b.c.d */
static __always_inline int is_v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/* 127.0.0.0/8 (a[0] is the IPv4 address) or ::1 */
static __always_inline int is_loopback(const __u32 *a, int is6)
{
	if (!is6)
		return (bpf_ntohl(a[0]) >> 24) == 127;
	return a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(1);
}

/* ICMPv6 types the link needs (RFC 4443, 4861, 2710, 3810). */
#define EGRESS_ICMP6_MLD1_REPORT 131
#define EGRESS_ICMP6_MLD1_DONE 132
#define EGRESS_ICMP6_RS 133
#define EGRESS_ICMP6_NS 135
#define EGRESS_ICMP6_NA 136
#define EGRESS_ICMP6_MLD2_REPORT 143

/* fe80::/10 (link-local unicast) */
static __always_inline int is_ll6(const __u32 *a)
{
	return (bpf_ntohl(a[0]) & 0xffc00000) == 0xfe800000;
}

/* ff02::/16 (link-scope multicast: never forwarded by a router) */
static __always_inline int is_mc_link6(const __u32 *a)
{
	return (bpf_ntohl(a[0]) & 0xffff0000) == 0xff020000;
}

/* ff02::<last> (all-nodes 1, all-routers 2, all MLDv2 routers 0x16) */
static __always_inline int is_mc6(const __u32 *a, __u32 last)
{
	return a[0] == bpf_htonl(0xff020000) && a[1] == 0 && a[2] == 0 &&
	       a[3] == bpf_htonl(last);
}

/* ff02::1:ff00:0/104 (solicited-node) */
static __always_inline int is_solicited6(const __u32 *a)
{
	return a[0] == bpf_htonl(0xff020000) && a[1] == 0 &&
	       a[2] == bpf_htonl(1) &&
	       (bpf_ntohl(a[3]) & 0xff000000) == 0xff000000;
}

/*
 * A neighbour solicitation or advertisement to a unicast address off the
 * link scope, built as the kernel's own neighbour discovery builds it:
 * NUD probes an on-link neighbour at its global address (NS, target =
 * destination) and a solicitation that came from a global address is
 * answered there (NA: solicited, not a router, target = our source).
 * Where the program sees the kernel's ND (its ndisc socket belongs to the
 * cgroup of whoever created the namespace: the host's root, or the app
 * container under Docker), it must pass. Only that exact shape passes:
 * 24 bytes, or 32 with the one link-layer address option; reserved bits
 * zero. What a raw socket could still hide in it (the option's 6-byte
 * address, the override flag) is closed by table netdev egressd, which
 * drops NS/NA that a process's socket sent off the link scope
 * (docs/nftables.md).
 */
static __always_inline int nd_unicast_shaped(struct __sk_buff *skb,
					     const struct egress_pkt *pkt)
{
	__u32 len = skb->len - pkt->l4off;
	const __u32 *want = pkt->icmp_type == EGRESS_ICMP6_NS ? pkt->dst :
								pkt->src;
	__u8 h[32];
	__u32 t[4];

	if (len == 32) {
		if (bpf_skb_load_bytes(skb, pkt->l4off, h, 32) < 0)
			return 0;
		if (h[25] != 1 ||
		    h[24] != (pkt->icmp_type == EGRESS_ICMP6_NS ? 1 : 2))
			return 0;
	} else if (len == 24) {
		if (bpf_skb_load_bytes(skb, pkt->l4off, h, 24) < 0)
			return 0;
	} else {
		return 0;
	}
	if (h[1] != 0 || h[5] != 0 || h[6] != 0 || h[7] != 0)
		return 0;
	if (pkt->icmp_type == EGRESS_ICMP6_NS ? h[4] != 0 :
						(h[4] & 0xdf) != 0x40)
		return 0;
	__builtin_memcpy(t, h + 8, 16);
	return t[0] == want[0] && t[1] == want[1] && t[2] == want[2] &&
	       t[3] == want[3];
}

/*
 * The ICMPv6 the link needs, only where RFC 4861/3810 send it: router
 * solicitation to all-routers, neighbour solicitation to a solicited-node
 * or link-local address, advertisement to all-nodes or link-local, all
 * with hop limit 255; MLD reports (v2 to ff02::16, v1 to link-scope
 * groups) with hop limit 1. None of these destinations is ever forwarded
 * off the link, so they carry nothing out. The kernel's own NS/NA to an
 * on-link neighbour's global address pass when shaped as the kernel
 * builds them (nd_unicast_shaped). 1: a link type where it belongs; -1:
 * a link type anywhere else; 0: not a link type.
 * Keep in sync with build_icmp6_rules() in agent/nftsync.c.
 */
static __always_inline int icmp6_link_verdict(struct __sk_buff *skb,
					      const struct egress_pkt *pkt)
{
	const __u32 *d = pkt->dst;
	int ok;

	if (pkt->family != 6 || pkt->proto != IPPROTO_ICMPV6 ||
	    (pkt->flags & EGRESSD_EV_NO_L4))
		return 0;
	switch (pkt->icmp_type) {
	case EGRESS_ICMP6_RS:
		ok = pkt->hop_limit == 255 && is_mc6(d, 2);
		break;
	case EGRESS_ICMP6_NS:
		ok = pkt->hop_limit == 255 &&
		     (is_ll6(d) || is_solicited6(d) ||
		      (!is_mc_link6(d) && nd_unicast_shaped(skb, pkt)));
		break;
	case EGRESS_ICMP6_NA:
		ok = pkt->hop_limit == 255 &&
		     (is_ll6(d) || is_mc6(d, 1) ||
		      (!is_mc_link6(d) && nd_unicast_shaped(skb, pkt)));
		break;
	case EGRESS_ICMP6_MLD2_REPORT:
		ok = pkt->hop_limit == 1 && is_mc6(d, 0x16);
		break;
	case EGRESS_ICMP6_MLD1_REPORT:
	case EGRESS_ICMP6_MLD1_DONE:
		ok = pkt->hop_limit == 1 && is_mc_link6(d);
		break;
	default:
		return 0;
	}
	return ok ? 1 : -1;
}

/* ICMPv6 errors: destination unreachable, packet too big, time exceeded,
 * parameter problem (RFC 4443 types 1..4). */
static __always_inline int is_icmp6_error(const struct egress_pkt *pkt)
{
	return pkt->family == 6 && pkt->proto == IPPROTO_ICMPV6 &&
	       !(pkt->flags & EGRESSD_EV_NO_L4) && pkt->icmp_type >= 1 &&
	       pkt->icmp_type <= 4;
}

/*
 * ICMP errors (RFC 792: destination unreachable 3, source quench 4,
 * redirect 5, time exceeded 11, parameter problem 12; ICMPv6 types 1..4),
 * by the packet's own family: an IPv6 packet to ::ffff:127.0.0.1 is
 * asked for ICMPv6 types.
 */
static __always_inline int is_icmp_error(const struct egress_pkt *pkt)
{
	if (!pkt->family || (pkt->flags & EGRESSD_EV_NO_L4))
		return 0;
	if (pkt->family == 6)
		return is_icmp6_error(pkt);
	if (pkt->proto != IPPROTO_ICMP)
		return 0;
	switch (pkt->icmp_type) {
	case 3:
	case 4:
	case 5:
	case 11:
	case 12:
		return 1;
	default:
		return 0;
	}
}

/*
 * An error we send is about a packet we received: the packet it embeds
 * (after the 8-byte ICMPv6 header) came from the peer the error goes to.
 * 1 when the embedded source is the error's destination; the error is
 * then judged by that destination like any packet. An error about
 * anything else (made up, or about a third party) answers no flow.
 */
static __always_inline int icmp6_error_answers(struct __sk_buff *skb,
					       const struct egress_pkt *pkt)
{
	__u32 src[4];

	if (bpf_skb_load_bytes(skb, pkt->l4off + 8 + 8, src, sizeof(src)) < 0)
		return 0;
	return src[0] == pkt->dst[0] && src[1] == pkt->dst[1] &&
	       src[2] == pkt->dst[2] && src[3] == pkt->dst[3];
}

#endif /* __EGRESSD_PARSE_BPF_H */
