/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Transparent DNS proxy. Listens on UDP and TCP at 127.0.0.1 and ::1.
 * Port-53 traffic reaches it through the redirect: the BPF sock_addr
 * programs (connect/sendmsg/recvmsg) rewrite it for the sockets below
 * their attach cgroup, and an nftables nat chain redirects the rest of
 * the namespace when that cgroup does not hold every socket (the start
 * line's layers.dns.redirect: bpf, bpf+nft or nft). It judges the first
 * question's name with the policy matcher, answers denied names with
 * NXDOMAIN without forwarding them, and forwards allowed ones to the
 * upstream resolvers with remapped ids, probing their health (the
 * peer's OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE*). Runs entirely in the
 * event loop; never blocks. Split in agent/dnsproxy.c (core),
 * dnsupstream.c, dnsicmp.c, dnsprobe.c, dnstcp.c and dnsdecide.c
 * (agent/dnsproxy_int.h).
 */
#ifndef __EGRESSD_DNSPROXY_H
#define __EGRESSD_DNSPROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "egressd/config.h"
#include "egressd/dnswire.h"
#include "egressd/loop.h"
#include "egressd/policy.h"

struct dnsproxy;
struct events;

/*
 * Called for every allowed answer before it is released to the client
 * (nftables/BPF learning). qname is the question name. Return
 * 0 to release the reply, or -errno to answer SERVFAIL instead. The hook
 * may lower TTLs in msg in place (len is unchanged).
 */
typedef int (*dnsproxy_answer_cb)(void *arg, const char *qname,
				  const struct dnswire_response *r,
				  uint8_t *msg, size_t len);

struct dnsproxy_upstream_stats {
	const char *addr; /* text form, owned by the proxy */
	bool healthy;
	uint64_t queries, timeouts, errors;
	/* health probes sent, answered (any rcode), failed; the rest are
	 * in flight */
	uint64_t probes, probe_answers, probe_failures;
};

/* Upper bounds (seconds) of the upstream round-trip histogram. */
#define DNSPROXY_RTT_BUCKETS 13
extern const double dnsproxy_rtt_bounds[DNSPROXY_RTT_BUCKETS];

struct dnsproxy_stats {
	/* Upstream round trips of answered queries (us resolution). */
	uint64_t rtt_hist[DNSPROXY_RTT_BUCKETS + 1]; /* last: +Inf */
	uint64_t rtt_count;
	double rtt_sum_s;
	uint64_t queries; /* client queries received (UDP + TCP) */
	uint64_t allowed; /* forwarded, or coalesced onto a forwarded one */
	uint64_t denied; /* answered NXDOMAIN by policy */
	uint64_t servfail; /* answered SERVFAIL (upstream failure, hook) */
	uint64_t malformed; /* dropped or FORMERR */
	uint64_t inflight; /* queries waiting for an upstream */
	uint64_t bad_answers; /* upstream packets dropped: unknown id (late
			       * or forged), question or 0x20 case
			       * mismatch, in on lo or a forged ICMP
			       * error (forged) */
	uint64_t tcp_retries; /* TC answers fetched again over TCP */
	uint64_t tcp_conns; /* TCP client connections open now */
	uint64_t tcp_refused; /* TCP clients closed at once: too many */
	uint64_t coalesced; /* queries that waited for an identical one */
	uint64_t forged; /* upstream answers dropped: came in on lo from
			     * a remote upstream; ICMP errors for a remote
			     * upstream sent from the namespace (also in
			     * bad_answers) */
	uint64_t rebinding; /* answers that had records stripped */
};

/*
 * Bind the listeners (port cfg->dns_listen_port) and the upstream sockets
 * and register them on loop. Bind failures are returned as -errno with
 * err saying which address failed and why.
 */
int dnsproxy_new(struct dnsproxy **out, struct loop *loop,
		 const struct egressd_config *cfg, char *err, size_t errlen);
void dnsproxy_free(struct dnsproxy *p);

/* Swap the matcher; the caller keeps ownership and frees the old one after
 * this returns (single-threaded: no query sees a half-swapped state). */
void dnsproxy_set_matcher(struct dnsproxy *p, const struct policy_matcher *m);
/* OPENSANDBOX_EGRESS_IPV6=deny: AAAA queries for allowed names get an
 * empty NOERROR answer (NODATA) and a violation line with reason
 * ipv6_disabled, action nodata; they are not forwarded. */
void dnsproxy_set_aaaa_nodata(struct dnsproxy *p, bool on);
/*
 * The IP/CIDR rules that may allow an address rebinding protection would
 * strip (dnsguard.h); same arguments as policy_matcher_new, copied. 0 or
 * -ENOMEM (logged; the previous rules stay).
 */
int dnsproxy_set_addr_rules(struct dnsproxy *p, const struct policy *user,
			    const struct policy_rule *deny_always,
			    size_t n_deny,
			    const struct policy_rule *allow_always,
			    size_t n_allow);
/* Answer DoH/DoT provider names (doh.h) NXDOMAIN with reason "doh"
 * unless a rule names them exactly. */
void dnsproxy_set_block_doh_names(struct dnsproxy *p, bool on);
void dnsproxy_set_answer_hook(struct dnsproxy *p, dnsproxy_answer_cb cb,
			      void *arg);
/* Where violation lines go (events.h); NULL (the default): nowhere. */
void dnsproxy_set_events(struct dnsproxy *p, struct events *ev);

/*
 * The port the listeners are bound to: cfg->dns_listen_port, or the port
 * the kernel chose when that was 0 (tests).
 */
uint16_t dnsproxy_port(const struct dnsproxy *p);

void dnsproxy_get_stats(const struct dnsproxy *p, struct dnsproxy_stats *s);
/* Upstream i (0-based) stats; false past the last one. */
bool dnsproxy_get_upstream(const struct dnsproxy *p, int i,
			   struct dnsproxy_upstream_stats *s);

#endif /* __EGRESSD_DNSPROXY_H */
