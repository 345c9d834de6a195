/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The ABI between the cgroup/skb program (bpf/egress.bpf.c) and the agent
 * (agent/bpfsync.c): map names, limits, and the key/value/event structs
 * that cross the kernel boundary. It is the only header both sides include,
 * and it includes nothing itself: BPF includes <linux/bpf.h> first,
 * userspace <linux/types.h>. Fixed-width types only, explicit padding, no
 * pointers, bools or enums inside structs; bpfsync.c asserts every size.
 * Changing a struct here changes a pinned map's layout: bpfsync then
 * replaces the pin explicitly (docs/bpf.md, "Pinning").
 */
#ifndef __EGRESSD_SHARED_H
#define __EGRESSD_SHARED_H

/* Map names, as pinned under the pin dir (keep in sync with egress.bpf.c). */
#define EGRESSD_MAP_CONFIG "config"
#define EGRESSD_MAP_COUNTERS "counters"
#define EGRESSD_MAP_EVENTS "events"
#define EGRESSD_MAP_FOLD "event_fold"
#define EGRESSD_MAP_ALLOW_V4 "allow_v4"
#define EGRESSD_MAP_ALLOW_V6 "allow_v6"
#define EGRESSD_MAP_DENY_V4 "deny_v4"
#define EGRESSD_MAP_DENY_V6 "deny_v6"
#define EGRESSD_MAP_DOH_V4 "doh_v4"
#define EGRESSD_MAP_DOH_V6 "doh_v6"
#define EGRESSD_MAP_DOH_ALLOW_V4 "doh_allow_v4"
#define EGRESSD_MAP_DOH_ALLOW_V6 "doh_allow_v6"
#define EGRESSD_MAP_LEARNED_V4 "learned_v4"
#define EGRESSD_MAP_LEARNED_V6 "learned_v6"
#define EGRESSD_MAP_FLOWS "flows"
#define EGRESSD_MAP_DNS_ORIG "dns_orig"
#define EGRESSD_MAP_INBOUND "inbound"
#define EGRESSD_MAP_AGENT_SOCKS "agent_socks"

/* Limits (max_entries). An LPM map holds both policy slots at once. */
#define EGRESSD_MAX_PREFIXES 65536 /* per static set and family */
#define EGRESSD_LPM_ENTRIES (2 * EGRESSD_MAX_PREFIXES)
/*
 * Learned addresses per family: the default of OPENSANDBOX_EGRESS_LEARN_MAX
 * (bpfsync sets the learned maps' max_entries from it at load). The maps
 * allocate entries as they are learned (BPF_F_NO_PREALLOC): an idle
 * sandbox pays only for the hash buckets.
 */
#define EGRESSD_MAX_LEARNED 32768
#define EGRESSD_FOLD_ENTRIES 8192
#define EGRESSD_INBOUND_ENTRIES 4096 /* an LRU: preallocated, keep it small */
#define EGRESSD_EVENTS_BYTES (256 * 1024)
#define EGRESSD_AGENT_SOCKS 4096 /* egressd's own open sockets */

/* Folding window: at most one event per (reason, dst, dport) per window. */
#define EGRESSD_FOLD_NS 1000000000ULL
/*
 * A peer that sent to one of our ports may be answered from that port for
 * this long after its last packet (conntrack's UDP stream timeout); the
 * entry's time is rewritten at most every EGRESSD_LAST_SEEN_NS.
 */
#define EGRESSD_INBOUND_NS 120000000000ULL
/* last_seen of a learned entry is rewritten at most this often. */
#define EGRESSD_LAST_SEEN_NS 1000000000ULL

/* Ports the program treats as encrypted DNS (DoT also covers DoQ). */
#define EGRESSD_PORT_DOT 853
#define EGRESSD_PORT_DOH 443
/* Plain DNS: only through the redirect (to loopback), never off it. */
#define EGRESSD_PORT_DNS 53

/*
 * Violation reasons. Keep in sync with enum events_reason
 * (include/egressd/events.h): the values are the same.
 */
#define EGRESSD_REASON_DEFAULT_DENY 0
#define EGRESSD_REASON_DENY_RULE 1
#define EGRESSD_REASON_DOT 2
#define EGRESSD_REASON_DOH 3
#define EGRESSD_REASON_IPV6_DISABLED 4
/* 5 is rebinding (DNS layer only, never produced here). */
/* A workload socket reaching for egressd's API port (docs/security.md, class 5). */
#define EGRESSD_REASON_API 6

/*
 * Index into the per-CPU counters map: a violation reason (counted whether
 * dropped or observed), packets allowed by the verdict chain, and events
 * lost because the ring buffer was full. Packets of other network
 * namespaces are not counted at all.
 */
#define EGRESSD_CNT_ALLOWED 7
#define EGRESSD_CNT_RINGBUF_DROPS 8
#define EGRESSD_CNT_BIND_REFUSED 9 /* binds to egressd's ports refused */
#define EGRESSD_CNT_MAX 10

/* struct egressd_slot_cfg.default_verdict; zero is the fail-closed value. */
#define EGRESSD_DEFAULT_DENY 0
#define EGRESSD_DEFAULT_ALLOW 1

/* struct egressd_bpf_cfg.mode; zero is the fail-closed value. */
#define EGRESSD_DP_ENFORCE 0
#define EGRESSD_DP_OBSERVE 1

/* struct egressd_event.action */
#define EGRESSD_ACTION_DROP 1
#define EGRESSD_ACTION_OBSERVE 2

/*
 * Rule ids: struct egressd_rule_val.rule and struct egressd_event.rule name
 * the rule of the compiled policy (agent/compiled.c) that put a prefix in
 * a set. The high byte is where the rule comes from, the low 24 bits its
 * 0-based index there; a user rule's id is its index, so egress[i] is i.
 * The program only copies the id of the deny or DoH entry it matched into
 * the event; the agent names it ("egress[3]", docs/logs.md).
 */
#define EGRESSD_RULE_ORIGIN_SHIFT 24
#define EGRESSD_RULE_INDEX_MASK 0xffffffU
#define EGRESSD_RULE_USER 0 /* egress[i] of the user policy */
#define EGRESSD_RULE_DENY_ALWAYS 1 /* deny.always[i] */
#define EGRESSD_RULE_ALLOW_ALWAYS 2 /* allow.always[i] */
#define EGRESSD_RULE_DOH_BUILTIN 3 /* built-in DoH provider address i */
#define EGRESSD_RULE_DOH_BLOCKLIST 4 /* OPENSANDBOX_EGRESS_DOH_BLOCKLIST[i] */
/* Their names on log lines and in egressctl: "egress[3]", indexed by
 * origin (userspace only; docs/logs.md, "rule"). */
#define EGRESSD_RULE_ORIGIN_NAMES                                       \
	{                                                               \
		"egress", "deny.always", "allow.always", "doh.builtin", \
			"doh.blocklist"                                 \
	}
#define EGRESSD_RULE_ID(origin, i)                        \
	(((__u32)(origin) << EGRESSD_RULE_ORIGIN_SHIFT) | \
	 ((__u32)(i)&EGRESSD_RULE_INDEX_MASK))
/* struct egressd_event.rule when no rule decided (dot, default, ...) */
#define EGRESSD_RULE_NONE 0xffffffffU

/* struct egressd_event.flags */
#define EGRESSD_EV_V4MAPPED 0x1 /* IPv6 packet judged as its IPv4 address */
#define EGRESSD_EV_EXPIRED 0x2 /* dst was learned but has expired */
#define EGRESSD_EV_NO_L4 0x4 /* ports unknown (fragment, unparsed hdrs) */

/* struct egressd_bpf_cfg.slot[].flags */
#define EGRESSD_SLOT_IPV6_DENY 0x1

/*
 * One policy generation's scalar settings. The static LPM sets are tagged
 * with the same slot number, so flipping egressd_bpf_cfg.active switches
 * sets and settings together.
 */
struct egressd_slot_cfg {
	__u64 generation; /* policy generation loaded into this slot */
	__u8 default_verdict; /* EGRESSD_DEFAULT_* */
	__u8 flags; /* EGRESSD_SLOT_* */
	__u8 pad[6];
};

/* The one entry of the config array map. Written by the agent only. */
struct egressd_bpf_cfg {
	__u64 netns_cookie; /* act only on sockets of this netns; 0: idle */
	__u8 mode; /* EGRESSD_DP_* */
	__u8 active; /* slot the datapath reads: 0 or 1 */
	__u16 dns_port; /* DNS redirect by the sock_addr programs to this
			 * port on loopback (host order); 0: not theirs */
	__u8 pad[4];
	struct egressd_slot_cfg slot[2];
	/*
	 * egressd's API (docs/security.md, class 5): TCP SYNs to api_port over
	 * loopback are dropped (reason api) unless the sender's cgroup is
	 * api_cgid at api_level (egressd's cgroup, or its container's where
	 * egressd made a child of it: docker exec lands there) or the socket
	 * is egressd's own. api_port 0: no check.
	 */
	__u64 api_cgid;
	__u32 api_level;
	__u16 api_port; /* host order */
	/* bind4/bind6 (class 8): a bind to api_port or bind_dns_port by a
	 * socket that is not egressd's fails with EPERM; 0: not guarded */
	__u16 bind_dns_port; /* host order */
};

/*
 * LPM keys. prefixlen counts the slot byte: a /24 in slot 1 is stored as
 * prefixlen 8 + 24 = 32, slot 1. The trailing pad is never matched.
 */
struct egressd_lpm4_key {
	__u32 prefixlen;
	__u8 slot;
	__u8 addr[4];
	__u8 pad[3];
};

struct egressd_lpm6_key {
	__u32 prefixlen;
	__u8 slot;
	__u8 addr[16];
	__u8 pad[3];
};

#define EGRESSD_LPM_SLOT_BITS 8

/* Value of every static LPM set. */
struct egressd_rule_val {
	__u32 rule; /* rule id (EGRESSD_RULE_*) of the rule it came from */
	__u32 flags; /* reserved for the policy compiler, 0 today */
};

/* Learned-address keys (DNS answers). */
struct egressd_learned4_key {
	__u8 addr[4];
};

struct egressd_learned6_key {
	__u8 addr[16];
};

/*
 * Learned-address value. Times are bpf_ktime_get_coarse_ns(), which is
 * CLOCK_MONOTONIC (clock_gettime(CLOCK_MONOTONIC_COARSE) in userspace).
 * The program honours the entry while now < expires_ns and refreshes
 * last_seen_ns (at most every EGRESSD_LAST_SEEN_NS) while it is used; the
 * agent decides expiry from both. Which name taught the address is the
 * agent's learned registry's to know (agent/learned.c), not the map's.
 */
struct egressd_learned_val {
	__u64 expires_ns;
	__u64 last_seen_ns;
	__u32 generation; /* low bits of the policy generation at learn */
	__u32 pad;
};

/*
 * Value of the flows socket storage (program-internal): the destination a
 * socket was last allowed to send to. Later packets of the same socket to
 * the same destination and port are allowed as an established flow, like
 * nftables' "ct state established" rule, so a learned address expiring
 * does not cut a connection that is open (or idle in a pool).
 */
struct egressd_flow {
	__u8 dst[16];
	__u16 dport; /* host order */
	__u8 family; /* 4 or 6; 0 = nothing allowed yet */
	__u8 proto;
	__u8 pad[4];
};

/*
 * Value of the dns_orig socket storage (program-internal): where the
 * workload addressed its last DNS query before the sock_addr programs sent
 * it to the proxy, so that replies (recvmsg) and getpeername() show that
 * address again. Address in network order (IPv4 in the first 4 bytes).
 */
struct egressd_dns_orig {
	__u8 addr[16];
	__u16 port; /* network order */
	__u8 family; /* 4 or 6 (AF of the socket call, not of the packet) */
	__u8 pad[5];
};

/*
 * Key of the inbound LRU hash (program-internal): a peer that opened a
 * connection to (TCP SYN) or sent a datagram to (UDP) a local port of a
 * workload socket. Replies from that port to that peer are allowed, as
 * nftables' "ct state established" allows replies of inbound flows. The
 * value is the time of the peer's last packet (bpf_ktime_get_coarse_ns).
 */
struct egressd_inbound_key {
	__u8 peer[16]; /* network order, IPv4 in the first 4 bytes */
	__u16 peer_port; /* host order */
	__u16 local_port; /* host order */
	__u8 family; /* 4 or 6 */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[2];
};

/* Key and value of the event_fold LRU hash (program-internal). */
struct egressd_fold_key {
	__u8 dst[16];
	__u16 dport; /* host order */
	__u8 reason;
	__u8 family; /* 4 or 6 */
};

struct egressd_fold_val {
	__u64 last_emit_ns;
	__u64 folded; /* packets seen since last_emit_ns, not reported */
};

/*
 * A violation record on the events ring buffer. Addresses are in network
 * order, IPv4 in the first 4 bytes; ports in host order, 0 without L4.
 * count is the number of packets this record stands for (>= 1).
 */
struct egressd_event {
	__u64 ts_ns; /* bpf_ktime_get_coarse_ns() */
	__u64 generation; /* policy generation that judged the packet */
	__u64 cgroup_id; /* bpf_skb_cgroup_id() */
	__u64 sk_cookie; /* bpf_get_socket_cookie() */
	__u64 count;
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 family; /* 4 or 6, as on the wire */
	__u8 proto; /* IPPROTO_* (after IPv6 extension headers) */
	__u8 reason; /* EGRESSD_REASON_* */
	__u8 action; /* EGRESSD_ACTION_* */
	__u32 rule; /* rule id of the deny or DoH entry (deny_rule, doh),
		     * else EGRESSD_RULE_NONE */
	__u32 flags; /* EGRESSD_EV_* */
	__u8 pad[8];
};

#endif /* __EGRESSD_SHARED_H */
