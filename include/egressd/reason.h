/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The violation reasons: one table, number <-> name, for everything that
 * says or reads a reason (log lines, nflog prefixes "egressd:<name>", the
 * BPF counters and events, egressctl). Header-only, so egressctl can use it
 * without linking an agent object. The numbers the BPF program produces
 * (EGRESSD_REASON_* in shared.h) are checked against this table at compile
 * time; rebinding and raw_frame exist only in userspace (the DNS proxy and
 * table netdev egressd).
 */
#ifndef __EGRESSD_REASON_H
#define __EGRESSD_REASON_H

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/types.h>

#include "egressd/shared.h"

enum events_reason {
	EVENTS_REASON_DEFAULT_DENY = 0,
	EVENTS_REASON_DENY_RULE = 1,
	EVENTS_REASON_DOT = 2,
	EVENTS_REASON_DOH = 3,
	EVENTS_REASON_IPV6_DISABLED = 4,
	/* DNS layer only: an answer address in a forbidden range */
	EVENTS_REASON_REBINDING = 5,
	EVENTS_REASON_API = 6, /* the workload reaching for egressd's API */
	/* packet layer: a frame the IP stack did not route (packet socket),
	 * dropped by table netdev egressd */
	EVENTS_REASON_RAW_FRAME = 7,
	EVENTS_REASON_MAX,
};

/* The BPF program's reasons are these numbers (shared.h). */
_Static_assert(EVENTS_REASON_DEFAULT_DENY == EGRESSD_REASON_DEFAULT_DENY,
	       "reason numbering: default_deny");
_Static_assert(EVENTS_REASON_DENY_RULE == EGRESSD_REASON_DENY_RULE,
	       "reason numbering: deny_rule");
_Static_assert(EVENTS_REASON_DOT == EGRESSD_REASON_DOT,
	       "reason numbering: dot");
_Static_assert(EVENTS_REASON_DOH == EGRESSD_REASON_DOH,
	       "reason numbering: doh");
_Static_assert(EVENTS_REASON_IPV6_DISABLED == EGRESSD_REASON_IPV6_DISABLED,
	       "reason numbering: ipv6_disabled");
_Static_assert(EVENTS_REASON_API == EGRESSD_REASON_API,
	       "reason numbering: api");
/* The counters map holds one slot per BPF reason before its own slots. */
_Static_assert(EGRESSD_REASON_API < EGRESSD_CNT_ALLOWED,
	       "BPF reasons index the counters map below EGRESSD_CNT_ALLOWED");

/* Where a reason can come from (struct reason_info.layers). */
#define REASON_DNS 0x1 /* the DNS proxy */
#define REASON_PACKET 0x2 /* nftables (nflog prefix) */
#define REASON_BPF 0x4 /* the BPF program (EGRESSD_REASON_*) */
#define REASON_ANY (REASON_DNS | REASON_PACKET | REASON_BPF)

struct reason_info {
	const char *name; /* in log lines, /metrics and nflog prefixes */
	unsigned int layers;
};

/* The table entry of r, or NULL when r is not a reason. */
static inline const struct reason_info *reason_info(unsigned int r)
{
	static const struct reason_info tab[EVENTS_REASON_MAX] = {
		[EVENTS_REASON_DEFAULT_DENY] = { "default_deny", REASON_ANY },
		[EVENTS_REASON_DENY_RULE] = { "deny_rule", REASON_ANY },
		[EVENTS_REASON_DOT] = { "dot", REASON_PACKET | REASON_BPF },
		[EVENTS_REASON_DOH] = { "doh", REASON_ANY },
		[EVENTS_REASON_IPV6_DISABLED] = { "ipv6_disabled", REASON_ANY },
		[EVENTS_REASON_REBINDING] = { "rebinding", REASON_DNS },
		[EVENTS_REASON_API] = { "api", REASON_PACKET | REASON_BPF },
		[EVENTS_REASON_RAW_FRAME] = { "raw_frame", REASON_PACKET },
	};

	return r < EVENTS_REASON_MAX ? &tab[r] : NULL;
}

/* r's name; "unknown" when r is not a reason. */
static inline const char *reason_name(unsigned int r)
{
	const struct reason_info *ri = reason_info(r);

	return ri ? ri->name : "unknown";
}

/*
 * The reason called name (len bytes, not NUL-terminated) among those that
 * can come from one of layers: 0, or -ENOENT.
 */
static inline int reason_from_name(const char *name, size_t len,
				   unsigned int layers, enum events_reason *out)
{
	const struct reason_info *ri;
	unsigned int r;

	for (r = 0; r < EVENTS_REASON_MAX; r++) {
		ri = reason_info(r);
		if ((ri->layers & layers) && strlen(ri->name) == len &&
		    !memcmp(ri->name, name, len)) {
			*out = (enum events_reason)r;
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * A rule id (struct egressd_event.rule, shared.h) as log lines and
 * egressctl name it: "egress[3]", "deny.always[0]", "allow.always[2]",
 * "doh.builtin[1]", "doh.blocklist[0]". 0, or -ENOENT for
 * EGRESSD_RULE_NONE and ids of no known origin (buf then "").
 */
static inline int reason_rule_name(__u32 rule, char *buf, size_t len)
{
	static const char *const origins[] = EGRESSD_RULE_ORIGIN_NAMES;
	__u32 o = rule >> EGRESSD_RULE_ORIGIN_SHIFT;

	if (len)
		buf[0] = '\0';
	if (rule == EGRESSD_RULE_NONE ||
	    o >= sizeof(origins) / sizeof(origins[0]))
		return -ENOENT;
	snprintf(buf, len, "%s[%u]", origins[o],
		 rule & EGRESSD_RULE_INDEX_MASK);
	return 0;
}

#endif /* __EGRESSD_REASON_H */
