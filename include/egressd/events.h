/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Violation events: turns what the enforcers report (DNS denials, packet
 * drops) into log lines (DESIGN.md §6), folding repeats to at most one line
 * per second per key, with "count" carrying the folded repeats; DNS lines
 * past a per-second budget (per registered domain, and in all) are counted
 * into violation_summary lines instead (docs/logs.md). Counters stay exact
 * whatever the folding.
 */
#ifndef __EGRESSD_EVENTS_H
#define __EGRESSD_EVENTS_H

#include <stdint.h>

#include "egressd/loop.h"
#include "egressd/reason.h"

/* reason_name(r) (reason.h), kept for its callers. */
const char *events_reason_name(enum events_reason r);

/* Start the fold timer on loop; 0 or -errno. */
int events_init(struct loop *loop);
void events_fini(void);

/*
 * A DNS-layer violation: qname is the presentation name without trailing
 * dot, action "nxdomain" | "nodata" | "stripped" | "observe". client may
 * be NULL ("1.2.3.4:5353").
 */
void events_dns_violation(enum events_reason reason, const char *qname,
			  uint16_t qtype, const char *action,
			  const char *client);

/*
 * A packet-layer violation (nflog or BPF ring buffer). family 4 or 6;
 * proto an IPPROTO_* number; src/dst in network order (4 or 16 bytes);
 * ports in host order (0 when the protocol has none); domain the name that
 * taught dst, or NULL; action "drop" | "observe"; packets the number of
 * packets this report stands for (>= 1).
 */
void events_packet_violation(enum events_reason reason, int family,
			     int proto, const void *src, uint16_t sport,
			     const void *dst, uint16_t dport,
			     const char *domain, const char *action,
			     uint64_t packets);
/*
 * The same, naming the rule that decided ("egress[3]", compiled.h's
 * policy_compiled_rule_name()) in member "rule"; NULL: no such member.
 */
void events_packet_violation_rule(enum events_reason reason, int family,
				  int proto, const void *src, uint16_t sport,
				  const void *dst, uint16_t dport,
				  const char *domain, const char *rule,
				  const char *action, uint64_t packets);

/*
 * Called for every DNS report that refused a name (action "nxdomain"),
 * before folding, so each denied query reaches it: the deny webhook
 * (agent.c wires it). cb NULL unsets.
 */
typedef void (*events_dns_deny_cb)(void *arg, const char *qname);
void events_set_dns_deny_hook(events_dns_deny_cb cb, void *arg);

/* Exact per-(layer, reason) counters since start. */
uint64_t events_count(const char *layer, enum events_reason reason);

#endif /* __EGRESSD_EVENTS_H */
