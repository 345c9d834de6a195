// SPDX-License-Identifier: GPL-2.0-only
/*
 * Table netdev egressd (nftsync_build_netdev(), docs/nftables.md): one
 * egress chain per interface of the namespace against frames that went
 * around the IP stack. Its own table, the same rules in every mode and
 * independent of the policy, so it has its own file beside the inet
 * rulesets (nftruleset.c).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "egressd/nftbatch.h"
#include "egressd/nftrule.h"
#include "egressd/nftsync.h"

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
 * else is dropped too. Policy-independent: the same rules in every mode,
 * one chain per interface (lo too: packet sockets write there).
 */

static const struct nftbatch_counter netdev_counters[] = {
	{ "raw_frame_drop",
	  "frames not routed by the IP stack (packet sockets)" },
	{ "nd_drop", "ICMPv6 NS/NA a process sent off the link scope" },
};

/* The names chains carry: what nft list shows and an error names. */
static int netdev_chain_name(char *buf, size_t len, const char *ifname)
{
	size_t n = strlen(ifname);

	if (!n || n >= 16 || strchr(ifname, '/'))
		return -EINVAL;
	snprintf(buf, len, NFTSYNC_NETDEV_CHAIN_PREFIX "%s", ifname);
	return 0;
}

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
	struct nftrule r;
	size_t i;
	int err;

	nftrule_start(&r, c, NFPROTO_NETDEV);
	nftrule_l4proto_not(&r, IPPROTO_ICMPV6);
	nftrule_routed(&r);
	nftrule_verdict(&r, NF_ACCEPT);
	err = nftrule_emit(
		b, &r,
		"routed by the IP stack: judged by chain egress or the BPF program");
	for (i = 0; i < sizeof(nd) && !err; i++) {
		nftrule_start(&r, c, NFPROTO_NETDEV);
		nftrule_icmpv6_type(&r, nd[i]);
		nftrule_from_user_socket(&r);
		nftrule_daddr6_cmp(&r, NFT_CMP_NEQ, "fe80::", 10);
		nftrule_daddr6_cmp(&r, NFT_CMP_NEQ, "ff02::", 16);
		nftrule_drop(&r, "nd_drop", "default_deny", grp);
		err = nftrule_emit(
			b, &r,
			nd[i] == 135 ?
				"neighbour solicitation from a process, off the link scope" :
				"neighbour advertisement from a process, off the link scope");
	}
	if (err)
		return err;
	nftrule_start(&r, c, NFPROTO_NETDEV);
	nftrule_routed(&r);
	nftrule_verdict(&r, NF_ACCEPT);
	err = nftrule_emit(b, &r, "routed by the IP stack (ICMPv6)");
	if (err)
		return err;
	nftrule_start(&r, c, NFPROTO_NETDEV);
	nftrule_from_user_socket(&r);
	nftrule_drop(&r, "raw_frame_drop", "raw_frame", grp);
	err = nftrule_emit(
		b, &r,
		"a process's frame the IP stack did not route: packet socket");
	if (err)
		return err;
	nftrule_start(&r, c, NFPROTO_NETDEV);
	nftrule_ether_arp(&r);
	nftrule_verdict(&r, NF_ACCEPT);
	err = nftrule_emit(b, &r, "the kernel's ARP");
	if (err)
		return err;
	nftrule_start(&r, c, NFPROTO_NETDEV);
	nftrule_drop(&r, "raw_frame_drop", "raw_frame", grp);
	return nftrule_emit(b, &r, "neither routed nor ARP");
}

int nftsync_build_netdev(struct nftsync_batch *b, const char *const *ifnames,
			 size_t n, uint16_t grp)
{
	struct nftbatch_chain cs = {
		.type = "filter",
		.family = NFPROTO_NETDEV,
		.hook = NF_NETDEV_EGRESS,
		.comment =
			"frames leaving this interface: only what the IP stack routed, and the kernel's ARP",
	};
	char chain[64];
	size_t i;
	int err;

	if (n > NFTSYNC_NETDEV_MAX_IFS || (n && !ifnames))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (netdev_chain_name(chain, sizeof(chain), ifnames[i]))
			return -EINVAL;
	err = nftbatch_begin(b);
	/* Replace in one transaction: frames meet the old chains or the new,
	 * never none; an interface gone since is gone from the table. */
	if (!err)
		err = nftbatch_table(b, NFPROTO_NETDEV, NFT_MSG_NEWTABLE);
	if (!err)
		err = nftbatch_table(b, NFPROTO_NETDEV, NFT_MSG_DELTABLE);
	if (!err && n)
		err = nftbatch_table(b, NFPROTO_NETDEV, NFT_MSG_NEWTABLE);
	for (i = 0; i < 2 && n && !err; i++)
		err = nftbatch_counter(b, NFPROTO_NETDEV, &netdev_counters[i],
				       NFT_MSG_NEWOBJ);
	for (i = 0; i < n && !err; i++) {
		/* Descriptions keep the name past this call: the batch's. */
		netdev_chain_name(chain, sizeof(chain), ifnames[i]);
		cs.name = nftbatch_keep(b, chain);
		cs.dev = ifnames[i];
		err = cs.name ? nftbatch_chain(b, &cs, NFT_MSG_NEWCHAIN) :
				-ENOMEM;
		if (!err)
			err = build_netdev_rules(b, cs.name, grp);
	}
	if (!err)
		err = nftbatch_end(b);
	return err;
}
