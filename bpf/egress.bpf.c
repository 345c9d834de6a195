// SPDX-License-Identifier: GPL-2.0-only
/*
 * The egressd datapath: a cgroup/skb egress program that judges every IPv4
 * and IPv6 packet of the workload's sockets in egressd's own network
 * namespace against maps the agent keeps in sync with the compiled policy.
 * The verdict order mirrors the nftables chain (docs/bpf.md): the API
 * port, ICMP errors through lo, loopback, agent exemption (by socket
 * cookie), ICMPv6 (link types only to link-scope destinations, errors
 * only in answer to the peer they go to), DoT, DoH, deny set, port 53 around the redirect, learned
 * addresses, allow set, IPv6 deny mode, default verdict. Every judged
 * packet is
 * counted per reason; violations go to the events ring buffer, folded to
 * one record per second per (reason, dst, dport). Observe mode reports the
 * same violations but lets the packet pass.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "egressd/shared.h"
#include "parse.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* cgroup_skb return values */
#define EGRESS_DROP 0
#define EGRESS_ALLOW 1

/* judge() result meaning "allowed"; violations return EGRESSD_REASON_* */
#define EGRESS_VERDICT_ALLOW -1

/*
 * Set by the agent between open and load (bpfsync): 1 when this kernel
 * lets cgroup_skb programs call bpf_get_netns_cookie() (6.15 and later).
 * The value is frozen into .rodata, so with 0 the verifier sees the
 * cookie comparison as dead code and never looks at the helper: the same
 * object then loads on 6.1 and 6.12, which refuse it in cgroup_skb. The
 * guard only matters when the programs are attached where sockets of
 * other network namespaces pass (the host's cgroup2 root); at a sandbox
 * cgroup every socket is the sandbox's anyway. The sock_addr programs
 * (redirect.bpf.h) compare the cookie unconditionally: they have the
 * helper since 5.7.
 */
const volatile __u8 skb_netns_cookie = 0;

/*
 * A socket of another network namespace passes untouched, when the kernel
 * can tell (skb_netns_cookie). The hook always has a socket; should one be
 * missing, the packet is judged (fail closed) rather than trusting the
 * helper's init_net fallback.
 */
static __always_inline int is_other_netns(struct __sk_buff *skb,
					  const struct egressd_bpf_cfg *cfg)
{
	if (!skb_netns_cookie || !skb->sk)
		return 0;
	return bpf_get_netns_cookie(skb) != cfg->netns_cookie;
}

/* Settings and the active policy slot; written by the agent (bpfsync). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct egressd_bpf_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

/* Packets per EGRESSD_REASON_* / EGRESSD_CNT_*; written by this program. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EGRESSD_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

/* Violation records (struct egressd_event); written by this program. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EGRESSD_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/*
 * Last report time per (reason, dst, dport); written by this program,
 * drained by the agent. Not an LRU: an LRU is preallocated (850 KiB idle)
 * and evicting a key would lose what it folded; when this map is full a
 * new key is simply reported unfolded.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EGRESSD_FOLD_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_fold_key);
	__type(value, struct egressd_fold_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} event_fold SEC(".maps");

/* Static allowlist (user allow rules, allow.always); written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_LPM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_lpm4_key);
	__type(value, struct egressd_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} allow_v4 SEC(".maps");

/* IPv6 static allowlist; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_LPM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_lpm6_key);
	__type(value, struct egressd_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} allow_v6 SEC(".maps");

/* Static denylist (user deny rules, deny.always); written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_LPM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_lpm4_key);
	__type(value, struct egressd_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} deny_v4 SEC(".maps");

/* IPv6 static denylist; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_LPM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_lpm6_key);
	__type(value, struct egressd_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} deny_v6 SEC(".maps");

/* DoH endpoints blocked on port 443 (DoH blocklist); written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_LPM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_lpm4_key);
	__type(value, struct egressd_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} doh_v4 SEC(".maps");

/* IPv6 DoH endpoints blocked on port 443; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_LPM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_lpm6_key);
	__type(value, struct egressd_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} doh_v6 SEC(".maps");

/* Exceptions to the DoT and DoH blocks (user allow rules naming one
 * address); written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_LPM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_lpm4_key);
	__type(value, struct egressd_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} doh_allow_v4 SEC(".maps");

/* IPv6 exceptions to the DoT and DoH blocks; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, EGRESSD_LPM_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_lpm6_key);
	__type(value, struct egressd_rule_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} doh_allow_v6 SEC(".maps");

/* Addresses learned from allowed DNS answers; written by the agent
 * (max_entries set at load from OPENSANDBOX_EGRESS_LEARN_MAX). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EGRESSD_MAX_LEARNED);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_learned4_key);
	__type(value, struct egressd_learned_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} learned_v4 SEC(".maps");

/* IPv6 addresses learned from DNS; written by the agent (and last_seen
 * by this program).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EGRESSD_MAX_LEARNED);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct egressd_learned6_key);
	__type(value, struct egressd_learned_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} learned_v6 SEC(".maps");

/*
 * Per-socket memory of the destination last allowed (established flows);
 * written by this program, freed with the socket.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct egressd_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

/*
 * Peers that contacted a workload socket first (TCP SYN, UDP datagram),
 * by local port; written by ingress_track, read on the drop path.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EGRESSD_INBOUND_ENTRIES);
	__type(key, struct egressd_inbound_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} inbound SEC(".maps");

/*
 * Cookies of the sockets egressd itself opened (upstream queries, its
 * listeners, webhook calls); written by the agent (agent/selfsock.c).
 * egressd's exemption is by socket, not by cgroup: a process that joins
 * egressd's cgroup gets nothing (docs/security.md, class 4). Pinned, so that
 * after a kill -9 the new egressd is known to the bind guard of the
 * programs still attached before its own replace them.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EGRESSD_AGENT_SOCKS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} agent_socks SEC(".maps");

/* Is the socket with this cookie one of egressd's own? */
static __always_inline int is_agent_cookie(__u64 cookie)
{
	return cookie && bpf_map_lookup_elem(&agent_socks, &cookie) != 0;
}

/* What matched, for the event record. */
struct egress_hit {
	__u32 rule; /* rule id of the deny or DoH entry (shared.h) */
	__u8 flags;
};

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
}

static __always_inline struct egressd_rule_val *lpm4(void *map, __u8 slot,
						     const __u32 *addr)
{
	struct egressd_lpm4_key k = {};

	k.prefixlen = EGRESSD_LPM_SLOT_BITS + 32;
	k.slot = slot;
	__builtin_memcpy(k.addr, addr, 4);
	return bpf_map_lookup_elem(map, &k);
}

static __always_inline struct egressd_rule_val *lpm6(void *map, __u8 slot,
						     const __u32 *addr)
{
	struct egressd_lpm6_key k = {};

	k.prefixlen = EGRESSD_LPM_SLOT_BITS + 128;
	k.slot = slot;
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(map, &k);
}

/*
 * A learned entry is honoured until expires_ns even if the agent has not
 * removed it yet; an expired one falls through and is reported as such
 * (the agent knows its domain). last_seen_ns tells the agent the address is still in use, so
 * it can extend the entry instead of cutting a live flow; it is written at
 * most once per EGRESSD_LAST_SEEN_NS to keep the cache line mostly shared.
 */
static __always_inline int is_learned(int is6, const __u32 *addr, __u64 now,
				      struct egress_hit *hit)
{
	struct egressd_learned_val *v;

	if (is6) {
		struct egressd_learned6_key k;

		__builtin_memcpy(k.addr, addr, 16);
		v = bpf_map_lookup_elem(&learned_v6, &k);
	} else {
		struct egressd_learned4_key k;

		__builtin_memcpy(k.addr, addr, 4);
		v = bpf_map_lookup_elem(&learned_v4, &k);
	}
	if (!v)
		return 0;
	if (now < v->expires_ns) {
		if (now > v->last_seen_ns + EGRESSD_LAST_SEEN_NS)
			v->last_seen_ns = now;
		return 1;
	}
	hit->flags |= EGRESSD_EV_EXPIRED;
	return 0;
}

/* DoT/DoH exception lookup (e.g. the configured upstream resolvers). */
static __always_inline int is_doh_allowed(int is6, __u8 slot, const __u32 *addr)
{
	if (is6)
		return lpm6(&doh_allow_v6, slot, addr) != 0;
	return lpm4(&doh_allow_v4, slot, addr) != 0;
}

#define LOOPBACK_IFINDEX 1 /* lo is always ifindex 1 in its namespace */
#define CGROUP2_ROOT_ID 1 /* the cgroup2 root's id (kernfs root inode) */

/*
 * A TCP packet to egressd's API port on this host (loopback, or one of
 * its own addresses, which the kernel routes through lo) from a socket
 * that is neither egressd's nor in the API cgroup (egressd's, or its
 * container's: docker exec egressctl): the workload reaching for the
 * policy (docs/security.md, class 5). Dropped whatever the token, before the
 * loopback allow.
 */
static __always_inline int is_api_intrusion(struct __sk_buff *skb,
					    const struct egressd_bpf_cfg *cfg,
					    const struct egress_pkt *pkt,
					    const __u32 *addr, int is6)
{
	if (!cfg->api_port || !pkt->family || pkt->proto != IPPROTO_TCP ||
	    (pkt->flags & EGRESSD_EV_NO_L4) || pkt->dport != cfg->api_port)
		return 0;
	if (skb->ifindex != LOOPBACK_IFINDEX && !is_loopback(addr, is6))
		return 0;
	if (cfg->api_cgid &&
	    bpf_skb_ancestor_cgroup_id(skb, cfg->api_level) == cfg->api_cgid)
		return 0;
	return !is_agent_cookie(bpf_get_socket_cookie(skb));
}

/*
 * An ICMP error sent through lo (or to loopback) by a process: the
 * workload forging an error "from" a remote peer about a socket of this
 * namespace (docs/security.md, class 2b). The kernel delivers it by the
 * header it quotes, and the receiver sees the forged source as the
 * offender, so a refusal "from the DNS upstream" would fail egressd's
 * upstream over. The kernel's own errors (a UDP send to a closed local
 * port) come from its ICMP sockets, one per CPU created at boot in the
 * cgroup2 root (since 5.17): a program attached at a sandbox cgroup never
 * sees them, and one attached at the cgroup2 root lets a socket of the
 * root cgroup pass, where no process of a container lives (docs/bpf.md,
 * "Forged ICMP errors"). egressd's own sockets are let through by the
 * caller (agent_socks). Dropped before the loopback allow, as nftables'
 * chain antispoof drops a forged source through lo.
 */
static __always_inline int is_forged_local_error(struct __sk_buff *skb,
						 const struct egress_pkt *pkt,
						 const __u32 *addr, int is6)
{
	if (!is_icmp_error(pkt))
		return 0;
	if (skb->ifindex != LOOPBACK_IFINDEX && !is_loopback(addr, is6))
		return 0;
	return bpf_skb_cgroup_id(skb) != CGROUP2_ROOT_ID;
}

/*
 * The verdict chain. Returns EGRESS_VERDICT_ALLOW or the violation reason.
 * An IPv4-mapped IPv6 destination is judged as its IPv4 address (v4 maps,
 * no IPv6 deny mode). A packet whose IP header cannot be read can match no
 * rule: it gets the default verdict.
 */
static __always_inline int judge(struct __sk_buff *skb,
				 const struct egressd_bpf_cfg *cfg, __u8 slot,
				 struct egress_pkt *pkt, __u64 now,
				 struct egress_hit *hit)
{
	const struct egressd_slot_cfg *sc = &cfg->slot[slot];
	struct egressd_rule_val *r;
	const __u32 *addr = pkt->dst;
	int is6 = pkt->family == 6;
	int link;

	if (is6 && is_v4mapped(pkt->dst)) {
		addr = &pkt->dst[3];
		is6 = 0;
		pkt->flags |= EGRESSD_EV_V4MAPPED;
	}

	if (is_api_intrusion(skb, cfg, pkt, addr, is6))
		return EGRESSD_REASON_API;
	if (is_forged_local_error(skb, pkt, addr, is6))
		return EGRESSD_REASON_DEFAULT_DENY;
	if (pkt->family && is_loopback(addr, is6))
		return EGRESS_VERDICT_ALLOW;
	/* egressd's own sockets: asked by the caller, only for a packet
	 * this chain would not allow (see egress_filter) */
	if (!pkt->family)
		goto out_default;
	link = icmp6_link_verdict(skb, pkt);
	if (link > 0)
		return EGRESS_VERDICT_ALLOW;
	if (link < 0 || (is_icmp6_error(pkt) && !icmp6_error_answers(skb, pkt)))
		return EGRESSD_REASON_DEFAULT_DENY;

	if (!(pkt->flags & EGRESSD_EV_NO_L4) &&
	    (pkt->proto == IPPROTO_TCP || pkt->proto == IPPROTO_UDP)) {
		if (pkt->dport == EGRESSD_PORT_DOT &&
		    !is_doh_allowed(is6, slot, addr))
			return EGRESSD_REASON_DOT;
		if (pkt->dport == EGRESSD_PORT_DOH) {
			r = is6 ? lpm6(&doh_v6, slot, addr) :
				  lpm4(&doh_v4, slot, addr);
			if (r && !is_doh_allowed(is6, slot, addr)) {
				hit->rule = r->rule;
				return EGRESSD_REASON_DOH;
			}
		}
	}

	r = is6 ? lpm6(&deny_v6, slot, addr) : lpm4(&deny_v4, slot, addr);
	if (r) {
		hit->rule = r->rule;
		return EGRESSD_REASON_DENY_RULE;
	}
	/*
	 * Port 53 off loopback: a query that went around the redirect (a raw
	 * socket, a socket connected before the redirect). Never allowed,
	 * whatever the sets say, as in the nftables chain.
	 */
	if (!(pkt->flags & EGRESSD_EV_NO_L4) &&
	    (pkt->proto == IPPROTO_TCP || pkt->proto == IPPROTO_UDP) &&
	    pkt->dport == EGRESSD_PORT_DNS)
		return EGRESSD_REASON_DEFAULT_DENY;
	if (is_learned(is6, addr, now, hit))
		return EGRESS_VERDICT_ALLOW;
	r = is6 ? lpm6(&allow_v6, slot, addr) : lpm4(&allow_v4, slot, addr);
	if (r)
		return EGRESS_VERDICT_ALLOW;
	if (is6 && (sc->flags & EGRESSD_SLOT_IPV6_DENY))
		return EGRESSD_REASON_IPV6_DISABLED;

out_default:
	if (sc->default_verdict == EGRESSD_DEFAULT_ALLOW)
		return EGRESS_VERDICT_ALLOW;
	return EGRESSD_REASON_DEFAULT_DENY;
}

/*
 * Report a violation, folded: the first packet of a (reason, dst, dport)
 * key is reported at once, later ones within EGRESSD_FOLD_NS only bump the
 * key's folded count, and the first packet after the window is reported
 * with count = folded + 1. The folded count is reduced by what was
 * reported rather than reset, so concurrent CPUs lose nothing. If the ring
 * buffer is full the packet stays folded (it is reported with the next
 * record) and ringbuf_drops is bumped; the verdict is never affected.
 */
static __always_inline void report(struct __sk_buff *skb,
				   const struct egressd_slot_cfg *sc,
				   const struct egress_pkt *pkt,
				   const struct egress_hit *hit, int reason,
				   __u8 action, __u64 now)
{
	struct egressd_fold_key fk = {};
	struct egressd_fold_val nfv = {};
	struct egressd_fold_val *fv;
	struct egressd_event *e;
	__u64 folded = 0;

	__builtin_memcpy(fk.dst, pkt->dst, 16);
	fk.dport = pkt->dport;
	fk.reason = reason;
	fk.family = pkt->family;
	fv = bpf_map_lookup_elem(&event_fold, &fk);
	if (fv) {
		if (now - fv->last_emit_ns < EGRESSD_FOLD_NS) {
			__sync_fetch_and_add(&fv->folded, 1);
			return;
		}
		folded = fv->folded;
	}

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(EGRESSD_CNT_RINGBUF_DROPS);
		if (fv) {
			__sync_fetch_and_add(&fv->folded, 1);
		} else {
			/* last_emit_ns 0: the next packet reports at once */
			nfv.folded = 1;
			bpf_map_update_elem(&event_fold, &fk, &nfv, BPF_ANY);
		}
		return;
	}

	e->ts_ns = now;
	e->generation = sc->generation;
	e->cgroup_id = bpf_skb_cgroup_id(skb);
	e->sk_cookie = bpf_get_socket_cookie(skb);
	e->count = folded + 1;
	__builtin_memcpy(e->src, pkt->src, 16);
	__builtin_memcpy(e->dst, pkt->dst, 16);
	e->sport = pkt->sport;
	e->dport = pkt->dport;
	e->family = pkt->family;
	e->proto = pkt->proto;
	e->reason = reason;
	e->action = action;
	e->rule = hit->rule;
	e->flags = hit->flags | pkt->flags;
	__builtin_memset(e->pad, 0, sizeof(e->pad));

	if (fv) {
		__sync_fetch_and_add(&fv->folded, -folded);
		fv->last_emit_ns = now;
	} else {
		nfv.last_emit_ns = now;
		bpf_map_update_elem(&event_fold, &fk, &nfv, BPF_ANY);
	}
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int flow_matches(const struct egressd_flow *f,
					const struct egress_pkt *pkt)
{
	const __u32 *d = (const __u32 *)f->dst;

	return f->family == pkt->family && f->proto == pkt->proto &&
	       f->dport == pkt->dport && d[0] == pkt->dst[0] &&
	       d[1] == pkt->dst[1] && d[2] == pkt->dst[2] &&
	       d[3] == pkt->dst[3];
}

/* Remember the allowed destination; written only when it changes. */
static __always_inline void flow_remember(struct bpf_sock *sk,
					  const struct egress_pkt *pkt)
{
	struct egressd_flow *f;

	f = bpf_sk_storage_get(&flows, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!f || flow_matches(f, pkt))
		return;
	__builtin_memcpy(f->dst, pkt->dst, 16);
	f->dport = pkt->dport;
	f->proto = pkt->proto;
	f->family = pkt->family;
}

/* The port-53 redirect (sock_addr programs), in the same object. */
#include "redirect.bpf.h"

static __always_inline void inbound_key(struct egressd_inbound_key *k,
					const __u32 *peer, __u16 peer_port,
					__u16 local_port,
					const struct egress_pkt *pkt)
{
	__builtin_memcpy(k->peer, peer, 16);
	k->peer_port = peer_port;
	k->local_port = local_port;
	k->family = pkt->family;
	k->proto = pkt->proto;
}

/*
 * A reply to a peer that contacted this port first (a server in the
 * sandbox answering a client, the SYN-ACK included): allowed like
 * nftables' "ct state established" allows replies of inbound flows. Only
 * asked for packets the policy would drop.
 */
static __always_inline int is_inbound_reply(const struct egress_pkt *pkt,
					    __u64 now)
{
	struct egressd_inbound_key k = {};
	__u64 *seen;

	if (!pkt->family || (pkt->flags & EGRESSD_EV_NO_L4) ||
	    (pkt->proto != IPPROTO_TCP && pkt->proto != IPPROTO_UDP))
		return 0;
	inbound_key(&k, pkt->dst, pkt->dport, pkt->sport, pkt);
	seen = bpf_map_lookup_elem(&inbound, &k);
	return seen && now - *seen < EGRESSD_INBOUND_NS;
}

/*
 * Remember peers that open a connection to (TCP SYN) or send a datagram
 * to (UDP) a workload socket, and keep them fresh while they talk. Never
 * drops: ingress is not filtered.
 */
SEC("cgroup_skb/ingress")
int ingress_track(struct __sk_buff *skb)
{
	struct egressd_inbound_key k = {};
	struct egress_pkt pkt = {};
	struct egressd_bpf_cfg *cfg;
	__u64 now, *seen;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->netns_cookie)
		return EGRESS_ALLOW;
	if (is_other_netns(skb, cfg))
		return EGRESS_ALLOW;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (parse_ipv4(skb, &pkt) < 0)
			return EGRESS_ALLOW;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (parse_ipv6(skb, &pkt) < 0)
			return EGRESS_ALLOW;
	} else {
		return EGRESS_ALLOW;
	}
	if ((pkt.flags & EGRESSD_EV_NO_L4) ||
	    (pkt.proto != IPPROTO_TCP && pkt.proto != IPPROTO_UDP) ||
	    is_loopback(pkt.src, pkt.family == 6))
		return EGRESS_ALLOW;
	inbound_key(&k, pkt.src, pkt.sport, pkt.dport, &pkt);
	now = bpf_ktime_get_coarse_ns();
	seen = bpf_map_lookup_elem(&inbound, &k);
	if (seen) {
		if (now - *seen > EGRESSD_LAST_SEEN_NS)
			*seen = now;
		return EGRESS_ALLOW;
	}
	/* TCP: only a connection opening creates an entry (not a reply to
	 * one of ours); later packets of it refresh the entry above. */
	if (pkt.proto == IPPROTO_TCP &&
	    (pkt.tcp_flags & (EGRESS_TCP_SYN | EGRESS_TCP_ACK)) !=
		    EGRESS_TCP_SYN)
		return EGRESS_ALLOW;
	bpf_map_update_elem(&inbound, &k, &now, BPF_ANY);
	return EGRESS_ALLOW;
}

SEC("cgroup_skb/egress")
int egress_filter(struct __sk_buff *skb)
{
	struct egress_hit hit = { .rule = EGRESSD_RULE_NONE };
	struct egress_pkt pkt = {};
	struct egressd_bpf_cfg *cfg;
	struct egressd_flow *flow;
	struct bpf_sock *sk;
	__u32 zero = 0;
	__u8 action;
	__u64 now;
	__u8 slot;
	int reason;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->netns_cookie)
		return EGRESS_ALLOW; /* not configured yet */
	if (is_other_netns(skb, cfg))
		return EGRESS_ALLOW;

	/* One read of the slot: the whole packet is judged by one policy. */
	slot = *(volatile __u8 *)&cfg->active & 1;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (parse_ipv4(skb, &pkt) < 0)
			pkt.family = 0;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (parse_ipv6(skb, &pkt) < 0)
			pkt.family = 0;
	} else {
		return EGRESS_ALLOW;
	}

	/*
	 * A flow the policy allowed keeps going, as nftables' "ct state
	 * established" does: the same socket to the same destination.
	 */
	sk = skb->sk ? bpf_sk_fullsock(skb->sk) : NULL;
	if (sk && pkt.family && !(pkt.flags & EGRESSD_EV_NO_L4)) {
		flow = bpf_sk_storage_get(&flows, sk, 0, 0);
		if (flow && flow_matches(flow, &pkt)) {
			count(EGRESSD_CNT_ALLOWED);
			return EGRESS_ALLOW;
		}
	}

	now = bpf_ktime_get_coarse_ns();
	reason = judge(skb, cfg, slot, &pkt, now, &hit);
	/*
	 * egressd's own sockets (agent_socks) are allowed anything but the
	 * API check, whatever step would refuse them: asked here, after the
	 * verdict, so that allowed packets pay no lookup for it. Same result
	 * as asking right after loopback.
	 */
	if (reason != EGRESS_VERDICT_ALLOW && reason != EGRESSD_REASON_API &&
	    is_agent_cookie(bpf_get_socket_cookie(skb)))
		reason = EGRESS_VERDICT_ALLOW;
	/* IPv6 off stays off, as in nftables (rejects before "established"). */
	if (reason != EGRESS_VERDICT_ALLOW &&
	    reason != EGRESSD_REASON_IPV6_DISABLED &&
	    is_inbound_reply(&pkt, now))
		reason = EGRESS_VERDICT_ALLOW;
	if (reason == EGRESS_VERDICT_ALLOW) {
		count(EGRESSD_CNT_ALLOWED);
		if (sk && pkt.family && !(pkt.flags & EGRESSD_EV_NO_L4) &&
		    (pkt.proto == IPPROTO_TCP || pkt.proto == IPPROTO_UDP))
			flow_remember(sk, &pkt);
		return EGRESS_ALLOW;
	}

	count(reason);
	action = cfg->mode == EGRESSD_DP_OBSERVE ? EGRESSD_ACTION_OBSERVE :
						   EGRESSD_ACTION_DROP;
	report(skb, &cfg->slot[slot], &pkt, &hit, reason, action, now);
	return action == EGRESSD_ACTION_DROP ? EGRESS_DROP : EGRESS_ALLOW;
}
