/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Packet drops reported by nftables: subscribes to the NFLOG group the
 * drop rules of table inet egressd log to (nftsync.h), on a non-blocking
 * netlink socket registered in the event loop, and turns each logged
 * packet (prefix "egressd:<reason>", IP/IPv6 header, ports) into
 * events_packet_violation(). The parser is a pure function over one
 * netlink message so it can be tested and fuzzed without a kernel.
 */
#ifndef __EGRESSD_NFLOG_H
#define __EGRESSD_NFLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egressd/events.h"
#include "egressd/loop.h"

struct learned;
struct nflog;

/* One logged packet. */
struct nflog_packet {
	enum events_reason reason;
	int family; /* AF_INET or AF_INET6 */
	int proto; /* IPPROTO_* (after IPv6 extension headers) */
	uint8_t src[16], dst[16];
	uint16_t sport, dport; /* host order; 0 without ports */
};

/* "egressd:<reason>" to the reason; -ENOENT for anything else. */
int nflog_prefix_reason(const char *prefix, enum events_reason *out);

/*
 * Parse one NFULNL_MSG_PACKET message (len bytes at buf). 0, -ENOENT when
 * it is not one of ours (other prefix, not a packet), -EINVAL when
 * malformed.
 */
int nflog_parse(const void *buf, size_t len, struct nflog_packet *out);

/*
 * Parse every message of one recv() buffer (len bytes at buf, netlink
 * messages back to back, the last one possibly cut short) and call cb for
 * each packet of ours; the others are skipped. Returns how many cb got.
 */
size_t nflog_parse_batch(const void *buf, size_t len,
			 void (*cb)(const struct nflog_packet *pk, void *arg),
			 void *arg);

/*
 * Bind NFLOG group (copy mode: headers only) and register the socket in
 * loop. learned (may be NULL) names the domain that taught a
 * destination (include/egressd/learned.h); events reports each packet
 * (NULL: none is).
 * 0 or -errno with err set (-EPERM without CAP_NET_ADMIN, -EBUSY when
 * another process holds the group).
 */
int nflog_new(struct nflog **out, struct loop *loop, uint16_t group,
	      const struct learned *learned, struct events *events, char *err,
	      size_t errlen);
/*
 * nftables logs a drop's reason, not the rule that decided it: fn (NULL
 * unsets) names it for the violation line, writing the name into buf and
 * returning true, or returning false when no rule did (the agent asks the
 * compiled policy by address, compiled.h).
 */
typedef bool (*nflog_rule_fn)(void *arg, const struct nflog_packet *pk,
			      char *buf, size_t len);
void nflog_set_rule_hook(struct nflog *nl, nflog_rule_fn fn, void *arg);

/* Unregister, unbind and free (NULL is fine). */
void nflog_free(struct nflog *nl);

/* Notifications lost to a full socket buffer. */
uint64_t nflog_lost(const struct nflog *nl);

#endif /* __EGRESSD_NFLOG_H */
