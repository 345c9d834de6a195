/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nftables layer: keeps table "inet egressd" equal to the compiled policy
 * through libnftnl/libmnl batches (never by exec'ing nft). The table holds
 * the DNS redirect (chain dns_redirect, always) and, in dns+nft mode, the
 * output filter (chain egress) with its named sets and counters (in dns
 * mode with IPv6 denied, chain egress holds only the IPv6 rules); layout,
 * chain order and lifecycle are in docs/nftables.md. Every change is one
 * netlink batch: the kernel applies it atomically, every ACK is read and
 * an error names the command that failed. Builders (nftsync_build_*,
 * agent/nftruleset.c) only write netlink messages into a struct
 * nftsync_batch, so unit tests parse them back without a kernel; the
 * talker (agent/nftsync.c) sends a batch and drains its ACKs.
 * Learned (DNS-taught) addresses live in timeout sets that a policy apply
 * never flushes; nftsync only writes them (nftsync_learn_write): which
 * addresses need writing, and which name taught them, is the learned
 * registry's (include/egressd/learned.h).
 */
#ifndef __EGRESSD_NFTSYNC_H
#define __EGRESSD_NFTSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "egressd/policy.h"

#define NFTSYNC_TABLE "egressd"
#define NFTSYNC_CHAIN_REDIRECT "dns_redirect"
#define NFTSYNC_CHAIN_FILTER "egress"
/* Start-up only: the cgroup level probe (nftsync_probe_cgroup_level). */
#define NFTSYNC_CHAIN_PROBE "cgroup_probe"
#define NFTSYNC_PROBE_PORT 1 /* probe datagrams: 127.0.0.1:PORT+L */
#define NFTSYNC_PROBE_MAX_LEVEL 32
/* NFLOG group the drop rules log to (nflog.c subscribes to it). */
#define NFTSYNC_DEFAULT_LOG_GROUP 180
/* Drop rules log with prefix NFTSYNC_LOG_PREFIX "<reason>". */
#define NFTSYNC_LOG_PREFIX "egressd:"
/*
 * Table netdev egressd: one egress chain per interface of the namespace
 * (NFTSYNC_NETDEV_CHAIN_PREFIX + name) that drops frames the IP stack did
 * not route (packet sockets), docs/nftables.md.
 */
#define NFTSYNC_NETDEV_CHAIN_PREFIX "frames_"
#define NFTSYNC_NETDEV_MAX_IFS 64

/*
 * What the table must say. Address lists are borrowed for the call only;
 * prefixlen counts (a policy_addr with prefixlen 32/128 is one address).
 * IPv4-mapped IPv6 must already be stored as IPv4 (policy.h does so).
 */
struct nftsync_config {
	uint16_t dns_port; /* DNS proxy port (host order) */
	uint64_t agent_cgroup_id; /* inode number of the agent's cgroup2 dir */
	uint32_t agent_cgroup_level; /* nft level (cgroup.h: nft_level) */
	bool filter; /* dns+nft mode: install chain egress */
	bool default_accept; /* defaultAction allow */
	/*
	 * OPENSANDBOX_EGRESS_IPV6=deny: IPv6 other than loopback and the
	 * ICMPv6 the link needs is rejected (TCP reset, else ICMPv6
	 * admin-prohibited), counted in ipv6_drop and logged with reason
	 * ipv6_disabled. Also without filter: chain egress then holds only
	 * those rules and accepts the rest.
	 */
	bool ipv6_deny;
	/*
	 * BPF enforces: packets of the workload cgroup are accepted here
	 * and judged by the cgroup/skb program. The hand-off is the chain's
	 * first rule. With bpf_covers_all every packet that gets that far is
	 * handed off, the chain is stateless (no "ct state established"
	 * rule: any ct expression turns conntrack on for the whole
	 * namespace, and the BPF program keeps established flows itself),
	 * and with IPv6 allowed it is not installed at all.
	 */
	bool bpf_handoff;
	/*
	 * BPF covers every socket of the namespace (coverage "namespace"):
	 * the hand-off takes every packet, the chain is stateless, and with
	 * IPv6 allowed it is not installed. Otherwise the hand-off matches
	 * the workload cgroup (level >= 1) and the rest is judged here.
	 */
	bool bpf_covers_all;
	/*
	 * The port-53 redirect is done by the BPF sock_addr programs: no
	 * nat chain (and so no conntrack) here; chain egress drops port 53
	 * off loopback for everyone but the agent, in dns mode too.
	 */
	bool bpf_redirect;
	uint64_t workload_cgroup_id;
	uint32_t workload_cgroup_level;
	/*
	 * Every 443 (tcp and udp) is dropped, not only 443 to the doh list:
	 * OPENSANDBOX_EGRESS_BLOCK_DOH_443 without an address in
	 * OPENSANDBOX_EGRESS_DOH_BLOCKLIST ("strict", its upstream meaning).
	 * The compiled policy decides it (policy_compiled_nft()).
	 */
	bool block_all_443;
	uint16_t log_group; /* 0: NFTSYNC_DEFAULT_LOG_GROUP */

	/* Static allow and deny (always-rules and user IP/CIDR rules). At the
	 * IP layer deny beats allow whatever the rule order. */
	const struct policy_addr *allow;
	size_t n_allow;
	const struct policy_addr *deny;
	size_t n_deny;
	/* The DoH providers blocked on 443: the built-in list, then
	 * OPENSANDBOX_EGRESS_DOH_BLOCKLIST (the compiled policy's). */
	const struct policy_addr *doh;
	size_t n_doh;
	/*
	 * Addresses that user allow rules name exactly (IP, /32, /128: the
	 * compiled policy keeps only those): those not covered by a deny
	 * entry are reachable on 443 and 853 despite the DoH/DoT rules.
	 */
	const struct policy_addr *doh_exceptions;
	size_t n_doh_exceptions;
	/* Configured upstream resolvers: only the agent reaches them on 53. */
	const struct policy_addr *upstreams;
	size_t n_upstreams;
	/*
	 * egressd's API is not the workload's, in every mode: a TCP SYN to
	 * api_port leaving through lo is accepted from api_cgroup (egressd's
	 * cgroup, or its container's) and dropped (counter api_drop, reason
	 * api) from the workload cgroup (workload_cgroup_id, when
	 * api_workload_only) or from everyone else. api_port 0: no rules.
	 */
	uint16_t api_port;
	uint64_t api_cgroup_id;
	uint32_t api_cgroup_level;
	bool api_workload_only;
	/*
	 * A process other than egressd was found in egressd's dedicated
	 * cgroup (a tool exec'd into egressd's container, a workload that
	 * joined it): the rules that exempt the agent's cgroup from the
	 * filter (its upstream queries, its own traffic) are withdrawn, in
	 * dns mode too, so the intruder gets nothing and
	 * egressd's own upstream queries are dropped (fail closed: the DNS
	 * layer answers SERVFAIL). The nat redirect keeps skipping the agent,
	 * so that its queries are never looped back into its own proxy.
	 */
	bool agent_withdrawn;
};

/* Learned-address changes that ride in the same batch as an apply. */
struct nftsync_update {
	/* Remove these learned addresses (the registry's learned_revoked()). */
	const struct policy_addr *forget;
	size_t n_forget;
	bool flush_learned; /* empty the learned sets */
};

/* ---- builders: no I/O ------------------------------------------------ */

struct nftsync_batch;

/* A batch whose messages are numbered from seq; NULL on ENOMEM. */
struct nftsync_batch *nftsync_batch_new(uint32_t seq);
/* Empty b for the next build, numbered from seq; its memory is kept. */
void nftsync_batch_reset(struct nftsync_batch *b, uint32_t seq);
void nftsync_batch_free(struct nftsync_batch *b);
/* The whole batch (BEGIN … END) as one buffer; NULL if not finished. */
const void *nftsync_batch_data(const struct nftsync_batch *b, size_t *len);
/* Number of commands between BEGIN and END (each asks for an ACK). */
size_t nftsync_batch_ncmds(const struct nftsync_batch *b);
/*
 * What the message with that sequence number does, or NULL. The text is
 * formatted on demand; valid until the next call for b or until b is
 * reset or freed.
 */
const char *nftsync_batch_describe(const struct nftsync_batch *b, uint32_t seq);

#define NFTSYNC_BUILD_REPLACE (1U << 0) /* delete the table first */
#define NFTSYNC_BUILD_FLUSH_LEARNED (1U << 1) /* empty learned sets */

/*
 * The full table for cfg into an empty batch: table, chains (rules
 * flushed and rewritten), counters, static sets recreated with their
 * elements, learned sets kept (created if missing) minus forget[]. With
 * cfg->filter false, chain egress and every set and counter are removed,
 * unless cfg->ipv6_deny: then chain egress is recreated with only the
 * IPv6-off rules, and counter ipv6_drop is kept.
 * 0, -EINVAL on a bad config, -ENOMEM.
 */
int nftsync_build_apply(struct nftsync_batch *b,
			const struct nftsync_config *cfg,
			const struct policy_addr *forget, size_t n_forget,
			unsigned int flags);

/*
 * (Re)write addrs into the learned sets with the given lifetime, whether
 * they exist or not: add, delete, add in one batch (refreshes the expiry
 * on every kernel). 0, -EINVAL, -ENOMEM.
 */
int nftsync_build_learn(struct nftsync_batch *b,
			const struct policy_addr *addrs, size_t n,
			unsigned int timeout_s);

/*
 * The same for known[], plus one exclusive add (NLM_F_EXCL, "create") per
 * fresh[] address: for addresses known not to be in the learned sets.
 * Should one be there after all, the kernel refuses the whole batch with
 * -EEXIST and changes nothing. An address must not be in both lists.
 * 0, -EINVAL, -ENOMEM.
 */
int nftsync_build_learn_split(struct nftsync_batch *b,
			      const struct policy_addr *known, size_t nknown,
			      const struct policy_addr *fresh, size_t nfresh,
			      unsigned int timeout_s);

/*
 * The cgroup level probe (chain NFTSYNC_CHAIN_PROBE): for L in
 * 0..max_level, a UDP datagram to port NFTSYNC_PROBE_PORT + L from a
 * socket whose cgroup has id at ancestor level L is dropped. Creates the
 * table if missing. 0, -EINVAL, -ENOMEM.
 */
int nftsync_build_level_probe(struct nftsync_batch *b, uint64_t id,
			      uint32_t max_level);
/* Remove the probe chain. */
int nftsync_build_probe_cleanup(struct nftsync_batch *b);

/* Delete table inet egressd and table netdev egressd (if there). */
int nftsync_build_cleanup(struct nftsync_batch *b);

/*
 * Table netdev egressd, replaced in one transaction: an egress chain for
 * each of the n interfaces ifnames (at most NFTSYNC_NETDEV_MAX_IFS, names
 * shorter than IFNAMSIZ) that accepts what the IP stack routed and the
 * kernel's ARP, and drops (counter raw_frame_drop, NFLOG group grp with
 * reason raw_frame) every other frame. n 0: the table is only removed.
 * 0, -EINVAL, -ENOMEM.
 */
int nftsync_build_netdev(struct nftsync_batch *b, const char *const *ifnames,
			 size_t n, uint16_t grp);

/* AF_INET/AF_INET6 sockaddr (v4-mapped folded to v4) to a host address. */
int nftsync_addr_from_sockaddr(const struct sockaddr *sa,
			       struct policy_addr *out);

/* ---- talker and state ------------------------------------------------ */

struct nftsync;

/*
 * A transport for batches: the real one sends on a NETLINK_NETFILTER
 * socket and drains the ACKs; tests and dry runs pass their own.
 * Returns 0 or -errno with err set.
 */
typedef int (*nftsync_talk_fn)(const struct nftsync_batch *b, void *arg,
			       char *err, size_t errlen);

/*
 * Open the netlink socket. -EPERM/-EPROTONOSUPPORT/… with err set when
 * nftables cannot be used; the caller keeps the DNS layer.
 */
int nftsync_new(struct nftsync **out, char *err, size_t errlen);
/* Same state, but batches go to talk(b, arg, …) (no socket): tests and
 * dry runs. 0 or -ENOMEM. */
int nftsync_new_with_talker(struct nftsync **out, nftsync_talk_fn talk,
			    void *arg);
void nftsync_free(struct nftsync *ns);

/*
 * Make the table match cfg in one batch, with upd's learned-address
 * changes in the same batch (upd may be NULL). If the incremental batch
 * is refused (an incompatible table left by another version), the table
 * is replaced in one batch instead (learned elements and counters are
 * then lost). 0 or -errno with err naming the failing command.
 */
int nftsync_apply(struct nftsync *ns, const struct nftsync_config *cfg,
		  const struct nftsync_update *upd, char *err, size_t errlen);

/*
 * Write n learned addresses into the learned sets with a lifetime of
 * timeout_s seconds, in one batch. Synchronous: returns once the kernel
 * ACKed, so the DNS answer may be released afterwards. known[i] says
 * whether the registry holds addrs[i] (learned_is_known()): such an
 * address gets add, delete, add (refresh), the others one exclusive add;
 * if one of those exists after all (adopted after a restart), the refused
 * batch is resent as a refresh (docs/nftables.md, "Learned elements").
 * An address listed twice is written once. Nothing is sent (0) before a
 * successful apply with cfg->filter set. now_ms is CLOCK_MONOTONIC in ms
 * (util_clock_ms()). 0 or -errno with err set (-EINVAL: timeout_s 0, or
 * an address nftset_check_addrs() refuses; then nothing is sent).
 */
int nftsync_learn_write(struct nftsync *ns, uint64_t now_ms,
			const struct policy_addr *addrs, const bool *known,
			size_t n, unsigned int timeout_s, char *err,
			size_t errlen);

/*
 * Did the last successful nftsync_apply() (or nftsync_cleanup()) empty,
 * replace or remove the learned sets? Then every learned address must be
 * written again (learned_mark_stale()).
 */
bool nftsync_learned_reset(const struct nftsync *ns);

/* Whether the filter is installed (last apply succeeded with filter). */
bool nftsync_is_filtering(const struct nftsync *ns);

struct nftsync_stats {
	uint64_t batches; /* batches sent (or handed to the talker) */
	uint64_t batch_errors; /* batches the kernel refused */
	/* addresses in learn batches the kernel took (as the callers
	 * listed them: an answer's duplicates count each time) */
	uint64_t learn_sent;
	/* Learn batches refused with EEXIST because an address the registry
	 * did not know was in a learned set; each was rewritten by a second
	 * batch (add, delete, add). Counted in batch_errors too. */
	uint64_t learn_exists;
};
void nftsync_get_stats(const struct nftsync *ns, struct nftsync_stats *out);

/* Delete table inet egressd (absent is fine). 0 or -errno with err. */
int nftsync_cleanup(struct nftsync *ns, char *err, size_t errlen);

/*
 * Program table netdev egressd for these interfaces (nftsync_build_netdev
 * with the default log group). 0 or -errno with err: -EOPNOTSUPP or
 * -ENOENT on kernels without the netdev egress hook (before 5.16) or an
 * interface that went away meanwhile.
 */
int nftsync_netdev_apply(struct nftsync *ns, const char *const *ifnames,
			 size_t n, char *err, size_t errlen);

/*
 * The level at which nft rules match cgroup id (the caller's own: it
 * sends the probe datagrams), as this kernel counts it: from the host's
 * root or from the caller's cgroup namespace root (cgroup.h). Installs
 * and removes chain cgroup_probe. 0 with *level set, -ENOENT when no
 * level matched, -errno with err set.
 */
int nftsync_probe_cgroup_level(struct nftsync *ns, uint64_t id, uint32_t *level,
			       char *err, size_t errlen);

/*
 * Is table inet egressd in the kernel right now? 1 yes, 0 no, -errno
 * (-ENOTSUP without a socket: nftsync_new_with_talker()).
 */
int nftsync_table_exists(struct nftsync *ns);

#endif /* __EGRESSD_NFTSYNC_H */
