/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Violation events: turns what the enforcers report (DNS denials, packet
 * drops) into log lines (DESIGN.md §6), folding repeats to at most one line
 * per second per key, with "count" carrying the folded repeats; DNS lines
 * past a per-second budget (per registered domain, and in all) are counted
 * into violation_summary lines instead (docs/logs.md). Counters stay exact
 * whatever the folding. One struct events per agent, passed by handle to
 * whoever reports (the DNS proxy, nflog, the BPF event path, /status).
 */
#ifndef __EGRESSD_EVENTS_H
#define __EGRESSD_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "egressd/loop.h"
#include "egressd/reason.h"

struct events;

/*
 * A reporter folding on loop's timer. loop NULL: no timer, every line is
 * written as it comes (tools and tests without a loop). 0 or -errno with
 * err set.
 */
int events_new(struct events **out, struct loop *loop, char *err,
	       size_t errlen);
/* Write every held line and summary now (at stop, before the last line). */
void events_flush(struct events *ev);
/* events_flush(), then free (NULL is fine); call before loop_free(). */
void events_free(struct events *ev);

/*
 * Every report below is counted and logged by ev; ev NULL: not reported
 * (a module running without a reporter).
 */

/*
 * A DNS-layer violation: qname is the presentation name without trailing
 * dot, action "nxdomain" | "nodata" | "stripped" | "observe". client may
 * be NULL ("1.2.3.4:5353").
 */
void events_dns_violation(struct events *ev, enum events_reason reason,
			  const char *qname, uint16_t qtype, const char *action,
			  const char *client);

/*
 * A packet-layer violation (nflog or BPF ring buffer). family AF_INET or
 * AF_INET6 (the line's "family" member stays 4 or 6, DESIGN.md §6);
 * proto an IPPROTO_* number; src/dst in network order (4 or 16 bytes);
 * ports in host order (0 when the protocol has none); domain the name that
 * taught dst, or NULL; action "drop" | "observe"; packets the number of
 * packets this report stands for (>= 1).
 */
void events_packet_violation(struct events *ev, enum events_reason reason,
			     int family, int proto, const void *src,
			     uint16_t sport, const void *dst, uint16_t dport,
			     const char *domain, const char *action,
			     uint64_t packets);
/*
 * The same, naming the rule that decided ("egress[3]", compiled.h's
 * policy_compiled_rule_name()) in member "rule"; NULL: no such member.
 */
void events_packet_violation_rule(struct events *ev, enum events_reason reason,
				  int family, int proto, const void *src,
				  uint16_t sport, const void *dst,
				  uint16_t dport, const char *domain,
				  const char *rule, const char *action,
				  uint64_t packets);

/*
 * Called for every DNS report that refused a name (action "nxdomain"),
 * before folding, so each denied query reaches it: the deny webhook
 * (agent.c wires it). cb NULL unsets.
 */
typedef void (*events_dns_deny_cb)(void *arg, const char *qname);
void events_set_dns_deny_hook(struct events *ev, events_dns_deny_cb cb,
			      void *arg);

/* Exact per-(layer, reason) counters since events_new() (0 for NULL). */
uint64_t events_count(const struct events *ev, const char *layer,
		      enum events_reason reason);

#endif /* __EGRESSD_EVENTS_H */
