// SPDX-License-Identifier: GPL-2.0-only
/*
 * The rulesets of the nftables layer: which tables, chains, counters,
 * sets and rules egressd installs, in which order, for each mode
 * (docs/nftables.md explains every step). The nftsync_build_* functions
 * of include/egressd/nftsync.h live here (table netdev egressd's in
 * nftnetdev.c): each writes one whole batch and does no I/O, so tests
 * parse the batch back. Each rule is spelled out in nftrule.h's
 * vocabulary; objects go through nftbatch.h's emitters and set contents
 * come from nftset.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>

#include "egressd/nftbatch.h"
#include "egressd/nftrule.h"
#include "egressd/nftset.h"
#include "egressd/nftsync.h"
#include "egressd/shared.h"

/* Learned addresses being forgotten are re-added with this timeout first
 * so that the delete never fails on an element that already expired. */
#define FORGET_TIMEOUT_MS 1000

/* ---- objects of table inet egressd ------------------------------------ */

/* Every chain of table inet egressd hooks output. */
static const struct nftbatch_chain chain_redirect = {
	.name = NFTSYNC_CHAIN_REDIRECT,
	.type = "nat",
	.prio = -100,
	.family = NFPROTO_INET,
	.hook = NF_INET_LOCAL_OUT,
	.comment = "port-53 traffic of the netns goes to the egressd DNS proxy",
};

static const struct nftbatch_chain chain_filter = {
	.name = NFTSYNC_CHAIN_FILTER,
	.type = "filter",
	.prio = 0,
	.family = NFPROTO_INET,
	.hook = NF_INET_LOCAL_OUT,
	.comment =
		"egressd output filter (dns+nft mode); ends with an explicit verdict",
};

/*
 * The same chain in dns mode holds only what the DNS layer needs; its
 * comment says which of those rules this configuration has.
 */
static struct nftbatch_chain chain_dns(bool dns53, bool ipv6_deny)
{
	struct nftbatch_chain cs = chain_filter;

	cs.comment =
		dns53 ? (ipv6_deny ?
				 "egressd dns mode: IPv6 off, port 53 only through the redirect, accepts the rest" :
				 "egressd dns mode: port 53 only through the redirect, accepts the rest") :
		ipv6_deny ?
			"egressd IPv6 off (dns mode): rejects IPv6, accepts the rest" :
			"egressd dns mode: the API port is egressd's, accepts the rest";
	return cs;
}

/* Every mode: forged source addresses (build_antispoof_rules). */
static const struct nftbatch_chain chain_antispoof = {
	.name = "antispoof",
	.type = "filter",
	.prio = -200,
	.family = NFPROTO_INET,
	.hook = NF_INET_LOCAL_OUT,
	.comment =
		"egressd: packets sent through lo must carry one of the netns's own source addresses",
};

/* Start-up only (nftsync_build_level_probe), before every other chain. */
static const struct nftbatch_chain chain_probe = {
	.name = NFTSYNC_CHAIN_PROBE,
	.type = "filter",
	.prio = -300,
	.family = NFPROTO_INET,
	.hook = NF_INET_LOCAL_OUT,
	.comment =
		"egressd start-up: finds its cgroup's level (removed at once)",
};

/* Every drop rule counts into one of these (`nft list counters`). */
static const struct nftbatch_counter counters[] = {
	{ "dns_drop", "port 53 not through the egressd redirect" },
	{ "dot_drop", "DNS over TLS/QUIC (port 853)" },
	{ "doh_drop", "DNS over HTTPS (443 to DoH providers)" },
	{ "deny_drop", "deny rules and deny.always" },
	{ "ipv6_drop", "IPv6 disabled (OPENSANDBOX_EGRESS_IPV6=deny)" },
	{ "default_drop", "no rule allowed it (defaultAction deny)" },
	{ "api_drop", "the workload connecting to the egressd API port" },
};

#define N_COUNTERS (sizeof(counters) / sizeof(counters[0]))

static const struct nftbatch_set *set_of(enum nftset_idx i)
{
	return &nftset_specs[i];
}

/* A rule for a chain of table inet egressd. */
static void inet_rule(struct nftrule *r, const char *chain)
{
	nftrule_start(r, chain, NFPROTO_INET);
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
	err = nftset_check_addrs(cfg->allow, cfg->n_allow);
	if (!err)
		err = nftset_check_addrs(cfg->deny, cfg->n_deny);
	if (!err)
		err = nftset_check_addrs(cfg->doh, cfg->n_doh);
	if (!err)
		err = nftset_check_addrs(cfg->doh_exceptions,
					 cfg->n_doh_exceptions);
	if (!err)
		err = nftset_check_addrs(cfg->upstreams, cfg->n_upstreams);
	return err;
}

/* ---- chain dns_redirect ----------------------------------------------- */

static int build_redirect_rules(struct nftsync_batch *b,
				const struct nftsync_config *cfg)
{
	static const uint8_t protos[] = { IPPROTO_UDP, IPPROTO_TCP };
	const char *c = NFTSYNC_CHAIN_REDIRECT;
	struct nftrule r;
	size_t i;
	int err;

	inet_rule(&r, c);
	nftrule_cgroup(&r, cfg->agent_cgroup_level, cfg->agent_cgroup_id);
	nftrule_verdict(&r, NFT_RETURN);
	err = nftrule_emit(b, &r, "egressd agent's own DNS queries");
	for (i = 0; i < 2 && !err; i++) {
		inet_rule(&r, c);
		nftrule_l4proto(&r, protos[i]);
		nftrule_dport(&r, EGRESSD_PORT_DNS);
		nftrule_redirect(&r, cfg->dns_port);
		err = nftrule_emit(b, &r,
				   protos[i] == IPPROTO_UDP ?
					   "DNS over UDP to the egressd proxy" :
					   "DNS over TCP to the egressd proxy");
	}
	return err;
}

/* ---- chain egress ----------------------------------------------------- */

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
	static const struct {
		uint8_t type;
		const char *process; /* sent by a process, off link scope */
		const char *kernel; /* the kernel's, to an on-link neighbour */
	} nd[] = {
		{ 135,
		  "neighbour solicitation from a process, off the link scope",
		  "the kernel's neighbour solicitation (NUD) to an on-link neighbour" },
		{ 136,
		  "neighbour advertisement from a process, off the link scope",
		  "the kernel's neighbour advertisement to an on-link neighbour" },
	};
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct nftrule r;
	size_t i;
	int err = 0;

	for (i = 0; i < sizeof(link) / sizeof(link[0]) && !err; i++) {
		inet_rule(&r, c);
		nftrule_icmpv6_type(&r, link[i].type);
		nftrule_hoplimit(&r, link[i].hoplimit);
		nftrule_daddr6_cmp(&r, NFT_CMP_EQ, link[i].daddr, link[i].plen);
		nftrule_verdict(&r, NF_ACCEPT);
		err = nftrule_emit(b, &r, link[i].comment);
	}
	for (i = 0; i < sizeof(nd) / sizeof(nd[0]) && !err; i++) {
		inet_rule(&r, c);
		nftrule_icmpv6_type(&r, nd[i].type);
		nftrule_from_user_socket(&r);
		nftrule_drop(&r, "default_drop", "default_deny", grp);
		err = nftrule_emit(b, &r, nd[i].process);
	}
	for (i = 0; i < sizeof(nd) / sizeof(nd[0]) && !err; i++) {
		inet_rule(&r, c);
		nftrule_icmpv6_type(&r, nd[i].type);
		nftrule_hoplimit(&r, 255);
		nftrule_verdict(&r, NF_ACCEPT);
		err = nftrule_emit(b, &r, nd[i].kernel);
	}
	return err;
}

/*
 * egressd's API is not the workload's: a connection attempt to the API
 * port through lo (127.0.0.1, ::1 or one of the namespace's own
 * addresses) is accepted from egressd's cgroup (or its container's:
 * egressctl) and dropped from the workload, or from every other cgroup
 * where nft cannot name the workload. Ahead of the loopback accept. An
 * accept and a drop rather than one "!=" rule: a socket whose cgroup is
 * shallower than the level asked cannot be compared, and the rule would
 * not match. Only SYNs: the replies and the closing packets of the API's
 * own connections (some from the kernel's control sockets) are not
 * concerned. A packet not on lo leaves both rules after one compare.
 */
static int build_api_rules(struct nftsync_batch *b,
			   const struct nftsync_config *cfg, uint16_t grp)
{
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct nftrule r;
	int err;

	if (!cfg->api_port)
		return 0;
	inet_rule(&r, c);
	nftrule_oifname(&r, "lo");
	nftrule_l4proto(&r, IPPROTO_TCP);
	nftrule_dport(&r, cfg->api_port);
	nftrule_tcp_syn(&r);
	nftrule_cgroup(&r, cfg->api_cgroup_level, cfg->api_cgroup_id);
	nftrule_verdict(&r, NF_ACCEPT);
	err = nftrule_emit(
		b, &r, "egressd API: egressd's cgroup (egressctl) may connect");
	if (err)
		return err;
	inet_rule(&r, c);
	nftrule_oifname(&r, "lo");
	nftrule_l4proto(&r, IPPROTO_TCP);
	nftrule_dport(&r, cfg->api_port);
	nftrule_tcp_syn(&r);
	if (cfg->api_workload_only)
		nftrule_cgroup(&r, cfg->workload_cgroup_level,
			       cfg->workload_cgroup_id);
	nftrule_drop(&r, "api_drop", "api", grp);
	return nftrule_emit(
		b, &r,
		cfg->api_workload_only ?
			"egressd API: never from the workload, whatever the token" :
			"egressd API: never from another cgroup, whatever the token");
}

#define HEAD_STATEFUL 0x1 /* "ct state established,related accept" */
#define HEAD_ICMP6 0x2 /* the ICMPv6 accepts (always with ipv6_deny) */

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
	struct nftrule r;
	int err, f;

	err = build_api_rules(b, cfg, grp);
	if (err)
		return err;
	inet_rule(&r, c);
	nftrule_oifname(&r, "lo");
	nftrule_verdict(&r, NF_ACCEPT);
	err = nftrule_emit(b, &r, "loopback: egressd DNS proxy and API");
	/* The output hook's device is fixed before nat: DNS redirected to
	 * the proxy by nat still shows its original oif, but a loopback
	 * daddr. (The BPF redirect rewrites before routing: oif is lo.) */
	for (f = 0; f < 2 && !cfg->bpf_redirect && !err; f++) {
		inet_rule(&r, c);
		nftrule_daddr_loopback(&r, f ? AF_INET6 : AF_INET);
		nftrule_verdict(&r, NF_ACCEPT);
		err = nftrule_emit(
			b, &r,
			"loopback destination: DNS redirected to egressd");
	}
	if (!err && ((flags & HEAD_ICMP6) || cfg->ipv6_deny))
		err = build_icmp6_rules(b, grp);
	/* IPv6 off means off: nothing but loopback and neighbour discovery,
	 * whatever the allow rules, open flows or the agent say. Rejected,
	 * not dropped: a dropped SYN leaves connect() retransmitting for
	 * minutes. */
	if (!err && cfg->ipv6_deny) {
		inet_rule(&r, c);
		nftrule_nfproto(&r, AF_INET6);
		nftrule_l4proto(&r, IPPROTO_TCP);
		nftrule_reject(&r, "ipv6_drop", "ipv6_disabled", grp, true);
		err = nftrule_emit(b, &r, "IPv6 disabled: TCP reset");
		if (!err) {
			inet_rule(&r, c);
			nftrule_nfproto(&r, AF_INET6);
			nftrule_reject(&r, "ipv6_drop", "ipv6_disabled", grp,
				       false);
			err = nftrule_emit(b, &r, "IPv6 disabled");
		}
	}
	if (!err && (flags & HEAD_STATEFUL)) {
		inet_rule(&r, c);
		nftrule_ct_state(&r, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) |
					     NF_CT_STATE_BIT(IP_CT_RELATED));
		nftrule_verdict(&r, NF_ACCEPT);
		err = nftrule_emit(b, &r, "flows already allowed continue");
	}
	return err;
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
	int nfam = cfg->agent_withdrawn ? 0 : cfg->filter ? 2 : 1;
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct nftrule r;
	int err = 0, f;
	size_t p;

	for (p = 0; p < 2 && !err; p++) {
		for (f = 0; f < nfam && !err; f++) {
			inet_rule(&r, c);
			nftrule_l4proto(&r, protos[p]);
			nftrule_dport(&r, EGRESSD_PORT_DNS);
			nftrule_cgroup(&r, cfg->agent_cgroup_level,
				       cfg->agent_cgroup_id);
			if (cfg->filter)
				nftrule_daddr_set(&r,
						  set_of(NFTSET_UPSTREAM4 + f));
			nftrule_verdict(&r, NF_ACCEPT);
			err = nftrule_emit(
				b, &r,
				"egressd agent to its upstream resolvers");
		}
		if (err)
			break;
		inet_rule(&r, c);
		nftrule_l4proto(&r, protos[p]);
		nftrule_dport(&r, EGRESSD_PORT_DNS);
		nftrule_drop(&r, "dns_drop", "default_deny", grp);
		err = nftrule_emit(b, &r,
				   "port 53 only through the egressd redirect");
	}
	return err;
}

/*
 * dns mode: chain egress holds only what the DNS layer needs (IPv6 off,
 * and with the BPF redirect the port-53 rules), then an explicit accept.
 * IPv4 is left to the DNS layer, as in dns mode.
 */
static int build_dnsmode_rules(struct nftsync_batch *b,
			       const struct nftsync_config *cfg, uint16_t grp)
{
	struct nftrule r;
	int err;

	err = build_head_rules(b, cfg, grp, HEAD_ICMP6);
	if (!err && (cfg->bpf_redirect || cfg->agent_withdrawn))
		err = build_dns_rules(b, cfg, grp);
	if (err)
		return err;
	inet_rule(&r, NFTSYNC_CHAIN_FILTER);
	nftrule_verdict(&r, NF_ACCEPT);
	return nftrule_emit(b, &r, "dns mode: nothing else is filtered here");
}

/*
 * The BPF hand-off: the workload cgroup's packets (family: only those of
 * that family, 0 for both) are accepted here and judged by the cgroup/skb
 * program. When BPF covers the whole namespace, every packet.
 */
static int build_handoff_rule(struct nftsync_batch *b,
			      const struct nftsync_config *cfg, int family)
{
	struct nftrule r;

	inet_rule(&r, NFTSYNC_CHAIN_FILTER);
	if (family)
		nftrule_nfproto(&r, family);
	if (!cfg->bpf_covers_all)
		nftrule_cgroup(&r, cfg->workload_cgroup_level,
			       cfg->workload_cgroup_id);
	nftrule_verdict(&r, NF_ACCEPT);
	return nftrule_emit(
		b, &r,
		family == AF_INET ?
			(!cfg->bpf_covers_all ?
				 "workload cgroup, IPv4: judged by the egressd BPF program" :
				 "workload = every cgroup, IPv4: judged by the egressd BPF program") :
		!cfg->bpf_covers_all ?
			"workload cgroup: judged by the egressd BPF program" :
			"workload = every cgroup: judged by the egressd BPF program");
}

/* One rule per family: daddr in set idx (v4) / idx + 1 (v6), then accept
 * (counter NULL) or count, log and drop. */
static int build_set_rules(struct nftsync_batch *b, enum nftset_idx idx,
			   const char *counter, const char *reason,
			   uint16_t grp, const char *comment)
{
	struct nftrule r;
	int err = 0, f;

	for (f = 0; f < 2 && !err; f++) {
		inet_rule(&r, NFTSYNC_CHAIN_FILTER);
		nftrule_daddr_set(&r, set_of(idx + f));
		if (counter)
			nftrule_drop(&r, counter, reason, grp);
		else
			nftrule_verdict(&r, NF_ACCEPT);
		err = nftrule_emit(b, &r, comment);
	}
	return err;
}

/*
 * DoT (853) to anyone, DoH (443) to the known providers (set doh), or
 * every 443 with block_all_443 ("strict"). The addresses an allow
 * rule names exactly are accepted before (set doh_allow).
 */
static int build_encrypted_dns_rules(struct nftsync_batch *b,
				     const struct nftsync_config *cfg,
				     uint16_t grp)
{
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP };
	const char *c = NFTSYNC_CHAIN_FILTER;
	struct nftrule r;
	int err, f;
	size_t p;

	err = build_set_rules(
		b, NFTSET_DOH_ALLOW4, NULL, NULL, grp,
		"named exactly by an allow rule: exempt from DoT/DoH");
	for (p = 0; p < 2 && !err; p++) {
		inet_rule(&r, c);
		nftrule_l4proto(&r, protos[p]);
		nftrule_dport(&r, EGRESSD_PORT_DOT);
		nftrule_drop(&r, "dot_drop", "dot", grp);
		err = nftrule_emit(b, &r,
				   protos[p] == IPPROTO_TCP ?
					   "DNS over TLS" :
					   "DNS over QUIC/DTLS");
	}
	for (p = 0; p < 2 && !err; p++) {
		if (cfg->block_all_443) {
			inet_rule(&r, c);
			nftrule_l4proto(&r, protos[p]);
			nftrule_dport(&r, EGRESSD_PORT_DOH);
			nftrule_drop(&r, "doh_drop", "doh", grp);
			err = nftrule_emit(
				b, &r,
				"BLOCK_DOH_443 without blocklist: all 443");
			continue;
		}
		for (f = 0; f < 2 && !err; f++) {
			inet_rule(&r, c);
			nftrule_l4proto(&r, protos[p]);
			nftrule_dport(&r, EGRESSD_PORT_DOH);
			nftrule_daddr_set(&r, set_of(NFTSET_DOH4 + f));
			nftrule_drop(&r, "doh_drop", "doh", grp);
			err = nftrule_emit(
				b, &r,
				protos[p] == IPPROTO_TCP ?
					"DNS over HTTPS to a known provider" :
					"DNS over HTTP/3 to a known provider");
		}
	}
	return err;
}

/*
 * The egress chain, in order (docs/nftables.md explains each step).
 * Every drop counts into a named counter and logs to nflog.
 */
static int build_filter_rules(struct nftsync_batch *b,
			      const struct nftsync_config *cfg, uint16_t grp)
{
	struct nftrule r;
	int err;

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
			err = build_head_rules(
				b, cfg, grp,
				!cfg->bpf_covers_all ? HEAD_STATEFUL : 0);
		if (!err && cfg->ipv6_deny)
			err = build_handoff_rule(b, cfg, 0);
		if (!err && !cfg->ipv6_deny)
			err = build_icmp6_rules(b, grp);
	} else {
		err = build_head_rules(b, cfg, grp, HEAD_STATEFUL | HEAD_ICMP6);
	}
	if (!err)
		err = build_dns_rules(b, cfg, grp);
	if (!err && !cfg->agent_withdrawn) {
		inet_rule(&r, NFTSYNC_CHAIN_FILTER);
		nftrule_cgroup(&r, cfg->agent_cgroup_level,
			       cfg->agent_cgroup_id);
		nftrule_verdict(&r, NF_ACCEPT);
		err = nftrule_emit(
			b, &r,
			"egressd agent's own traffic (upstream DNS, webhook)");
	}
	if (!err)
		err = build_encrypted_dns_rules(b, cfg, grp);
	if (!err)
		err = build_set_rules(b, NFTSET_DENY4, "deny_drop", "deny_rule",
				      grp, "deny rules beat every allow");
	if (!err)
		err = build_set_rules(b, NFTSET_LEARNED4, NULL, NULL, grp,
				      "learned from answers to allowed names");
	if (!err)
		err = build_set_rules(b, NFTSET_ALLOW4, NULL, NULL, grp,
				      "allowed by IP/CIDR rule");
	if (err)
		return err;
	inet_rule(&r, NFTSYNC_CHAIN_FILTER);
	if (cfg->default_accept)
		nftrule_verdict(&r, NF_ACCEPT);
	else
		nftrule_drop(&r, "default_drop", "default_deny", grp);
	return nftrule_emit(b, &r,
			    cfg->default_accept ? "defaultAction allow" :
						  "defaultAction deny");
}

/* ---- chain antispoof -------------------------------------------------- */

/*
 * Chain antispoof, in every mode: a packet the namespace sends through lo
 * must carry one of the namespace's own addresses as its source ("fib
 * saddr type local"). A root workload with CAP_NET_RAW can write any
 * source; sent to its own address, such a packet comes back in through lo
 * and looks like it came from that source to every local service
 * (answers "from" the DNS upstream). Unspecified and link-local sources
 * and packets without a socket (the kernel's own: reject's TCP resets
 * carry the remote address as source) are left alone
 * (nftrule_saddr_not_local). Drops are logged as default_deny: no rule
 * can allow a forged source. Packet sockets skip this hook; the DNS proxy
 * checks the device its answers came in on itself (dnsproxy.c,
 * dp_up_filter). Not installed when BPF judges every packet of the
 * namespace.
 */
static int build_antispoof_rules(struct nftsync_batch *b, uint16_t grp)
{
	struct nftrule r;
	int err = 0, f;

	for (f = 0; f < 2 && !err; f++) {
		int fam = f ? AF_INET6 : AF_INET;

		inet_rule(&r, chain_antispoof.name);
		nftrule_saddr_not_local(&r, fam);
		nftrule_drop_anon(&r, "default_deny", grp);
		err = nftrule_emit(
			b, &r,
			fam == AF_INET ?
				"forged IPv4 source (not an address of this netns)" :
				"forged IPv6 source (not an address of this netns)");
	}
	return err;
}

/* ---- whole batches ---------------------------------------------------- */

/*
 * Whether counter i goes away with this config: every counter is added
 * (so that the delete cannot fail) and, unless a chain of this mode
 * still counts into it, deleted again.
 */
static bool counter_unused(const struct nftsync_config *cfg, size_t i,
			   bool dnschain, bool dns53)
{
	const char *name = counters[i].name;

	if (cfg->filter)
		return false;
	if (!dnschain)
		return true;
	return !(cfg->ipv6_deny && !strcmp(name, "ipv6_drop")) &&
	       !(dns53 && !strcmp(name, "dns_drop")) &&
	       !(cfg->api_port && !strcmp(name, "api_drop")) &&
	       strcmp(name, "default_drop");
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
	const struct nftbatch_chain dcs = chain_dns(dns53, cfg->ipv6_deny);
	/*
	 * BPF judges every packet of the namespace (hand-off at the cgroup2
	 * root) and IPv6 is not off: chain egress would only accept, and its
	 * hook alone costs every packet; it goes (the sets stay, so that
	 * nftables is ready if BPF is not there next time).
	 */
	bool chain = cfg->filter && !(cfg->bpf_handoff && cfg->bpf_covers_all &&
				      !cfg->ipv6_deny);
	/* BPF judges every packet: no output hook here at all (the same
	 * reason chain egress goes); forged sources are then BPF's. */
	bool antispoof = !(cfg->bpf_handoff && cfg->bpf_covers_all);
	struct nftset_contents sc = { 0 };
	struct nftbatch_elem *fe = NULL;
	size_t nfe, i;
	int err;

	err = check_config(cfg);
	if (!err)
		err = nftset_check_addrs(forget, n_forget);
	if (err)
		return err;
	if (cfg->filter) {
		err = nftset_contents_build(cfg, &sc);
		if (err)
			return err;
	}
	err = nftbatch_begin(b);
	if (!err && (flags & NFTSYNC_BUILD_REPLACE)) {
		err = nftbatch_table(b, NFPROTO_INET, NFT_MSG_NEWTABLE);
		if (!err)
			err = nftbatch_table(b, NFPROTO_INET, NFT_MSG_DELTABLE);
	}
	if (!err)
		err = nftbatch_table(b, NFPROTO_INET, NFT_MSG_NEWTABLE);
	/*
	 * Each chain is added (so that the delete cannot fail), deleted
	 * with its rules and, when this mode uses it, added again: fresh,
	 * with the comment of this mode. Adding a chain that exists keeps
	 * its old comment, so a flushed and reused chain went on saying
	 * "egressd dns mode: ..." after a switch to dns+nft. All in one
	 * transaction: packets meet the old chain or the new, never none.
	 */
	if (!err)
		err = nftbatch_chain(b, &chain_redirect, NFT_MSG_NEWCHAIN);
	if (!err)
		err = nftbatch_chain(b, &chain_redirect, NFT_MSG_DELCHAIN);
	if (!err && !cfg->bpf_redirect)
		err = nftbatch_chain(b, &chain_redirect, NFT_MSG_NEWCHAIN);
	if (!err)
		err = nftbatch_chain(b, &chain_filter, NFT_MSG_NEWCHAIN);
	if (!err)
		err = nftbatch_chain(b, &chain_filter, NFT_MSG_DELCHAIN);
	if (!err)
		err = nftbatch_chain(b, &chain_antispoof, NFT_MSG_NEWCHAIN);
	if (!err)
		err = nftbatch_chain(b, &chain_antispoof, NFT_MSG_DELCHAIN);
	if (!err && antispoof)
		err = nftbatch_chain(b, &chain_antispoof, NFT_MSG_NEWCHAIN);
	/* dns mode: only the IPv6-off and port-53 rules (see dcs). */
	if (!err && (chain || dnschain))
		err = nftbatch_chain(b, chain ? &chain_filter : &dcs,
				     NFT_MSG_NEWCHAIN);
	for (i = 0; i < N_COUNTERS && !err; i++) {
		err = nftbatch_counter(b, NFPROTO_INET, &counters[i],
				       NFT_MSG_NEWOBJ);
		if (!err && counter_unused(cfg, i, dnschain, dns53))
			err = nftbatch_counter(b, NFPROTO_INET, &counters[i],
					       NFT_MSG_DELOBJ);
	}
	/* Static sets are recreated (no rule uses them any more at this
	 * point); learned sets are only created if missing. */
	for (i = 0; i < NFTSET_MAX && !err; i++) {
		err = nftbatch_set(b, set_of(i), NFT_MSG_NEWSET);
		if (err || (cfg->filter && nftset_is_learned(i)))
			continue;
		err = nftbatch_set(b, set_of(i), NFT_MSG_DELSET);
		if (!err && cfg->filter)
			err = nftbatch_set(b, set_of(i), NFT_MSG_NEWSET);
		if (!err && cfg->filter)
			err = nftbatch_elems(b, set_of(i), NFTBATCH_ELEM_ADD,
					     sc.e[i], sc.n[i], 0);
	}
	for (i = 0; i < 2 && !err && cfg->filter; i++) {
		const struct nftbatch_set *ss = set_of(NFTSET_LEARNED4 + i);

		if (flags & NFTSYNC_BUILD_FLUSH_LEARNED) {
			err = nftbatch_elems(b, ss, NFTBATCH_ELEM_DELETE, NULL,
					     0, 0);
			continue;
		}
		err = nftset_hosts(forget, n_forget, ss->family, &fe, &nfe);
		/* Add first, so that deleting an expired one cannot fail. */
		if (!err && nfe)
			err = nftbatch_elems(b, ss, NFTBATCH_ELEM_ADD, fe, nfe,
					     FORGET_TIMEOUT_MS);
		if (!err && nfe)
			err = nftbatch_elems(b, ss, NFTBATCH_ELEM_DELETE, fe,
					     nfe, 0);
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
		err = nftbatch_end(b);
	nftset_contents_free(&sc);
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
	struct nftbatch_elem *e = NULL;
	size_t ne, i;
	int err;

	if (!timeout_s || nftset_check_addrs(known, nknown) ||
	    nftset_check_addrs(fresh, nfresh))
		return -EINVAL;
	err = nftbatch_begin(b);
	for (i = 0; i < 2 && !err; i++) {
		const struct nftbatch_set *ss = set_of(NFTSET_LEARNED4 + i);

		err = nftset_hosts(known, nknown, ss->family, &e, &ne);
		if (!err && ne)
			err = nftbatch_elems(b, ss, NFTBATCH_ELEM_ADD, e, ne,
					     ms);
		if (!err && ne)
			err = nftbatch_elems(b, ss, NFTBATCH_ELEM_DELETE, e, ne,
					     0);
		if (!err && ne)
			err = nftbatch_elems(b, ss, NFTBATCH_ELEM_ADD, e, ne,
					     ms);
		free(e);
		e = NULL;
		if (!err)
			err = nftset_hosts(fresh, nfresh, ss->family, &e, &ne);
		if (!err && ne)
			err = nftbatch_elems(b, ss, NFTBATCH_ELEM_CREATE, e, ne,
					     ms);
		free(e);
		e = NULL;
	}
	if (!err)
		err = nftbatch_end(b);
	return err;
}

int nftsync_build_cleanup(struct nftsync_batch *b)
{
	static const uint8_t families[] = { NFPROTO_INET, NFPROTO_NETDEV };
	size_t i;
	int err;

	/* Each added first, so that a missing one cannot fail the batch
	 * (and keep the other). */
	err = nftbatch_begin(b);
	for (i = 0; i < sizeof(families) && !err; i++) {
		err = nftbatch_table(b, families[i], NFT_MSG_NEWTABLE);
		if (!err)
			err = nftbatch_table(b, families[i], NFT_MSG_DELTABLE);
	}
	if (!err)
		err = nftbatch_end(b);
	return err;
}

/* ---- chain cgroup_probe ----------------------------------------------- */

/*
 * The cgroup level probe: chain cgroup_probe (filter, output, before
 * every other egressd chain) drops a UDP datagram to port
 * NFTSYNC_PROBE_PORT + L when the sender's cgroup has id at ancestor
 * level L. The caller sends one datagram per level; the send that fails
 * with EPERM names the absolute level of its cgroup, which a private
 * cgroup namespace hides. The rules carry no "egressd agent" meaning:
 * they only ever drop probe datagrams.
 */
int nftsync_build_level_probe(struct nftsync_batch *b, uint64_t id,
			      uint32_t max_level)
{
	struct nftrule r;
	uint32_t l;
	int err;

	if (!id || max_level > NFTSYNC_PROBE_MAX_LEVEL)
		return -EINVAL;
	err = nftbatch_begin(b);
	if (!err)
		err = nftbatch_table(b, NFPROTO_INET, NFT_MSG_NEWTABLE);
	/* Created, deleted and created again: empty whatever a crashed
	 * probe left, in the same transaction. */
	if (!err)
		err = nftbatch_chain(b, &chain_probe, NFT_MSG_NEWCHAIN);
	if (!err)
		err = nftbatch_chain(b, &chain_probe, NFT_MSG_DELCHAIN);
	if (!err)
		err = nftbatch_chain(b, &chain_probe, NFT_MSG_NEWCHAIN);
	for (l = 0; l <= max_level && !err; l++) {
		inet_rule(&r, NFTSYNC_CHAIN_PROBE);
		nftrule_l4proto(&r, IPPROTO_UDP);
		nftrule_dport(&r, NFTSYNC_PROBE_PORT + l);
		nftrule_cgroup(&r, l, id);
		nftrule_verdict(&r, NF_DROP);
		err = nftrule_emit(b, &r, "probe: cgroup at this level");
	}
	if (!err)
		err = nftbatch_end(b);
	return err;
}

int nftsync_build_probe_cleanup(struct nftsync_batch *b)
{
	int err;

	err = nftbatch_begin(b);
	if (!err)
		err = nftbatch_chain(b, &chain_probe, NFT_MSG_DELCHAIN);
	if (!err)
		err = nftbatch_end(b);
	return err;
}
