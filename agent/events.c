// SPDX-License-Identifier: GPL-2.0-only
/*
 * Violation events to log lines. Each report is counted exactly, then
 * folded: per key ((layer, reason, qname, qtype) for DNS, (layer, reason,
 * dst, dport) for packets) the first report in a second is written at once
 * and later ones in the same second are held and written as one line with
 * "count" when the second is over. So a workload hammering a blocked name
 * or address produces one line per second, not one per packet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egressd/dnswire.h"
#include "egressd/events.h"
#include "egressd/log.h"

#define FOLD_WINDOW_MS 1000
#define FOLD_IDLE_MS 10000
#define FOLD_BUCKETS 1024
#define FOLD_MAX_ENTRIES 8192

enum events_layer {
	EVENTS_LAYER_DNS = 0,
	EVENTS_LAYER_PACKET = 1,
	EVENTS_LAYER_MAX,
};

struct fold_entry {
	struct fold_entry *next;
	uint64_t hash;
	uint64_t last_emit_ms;
	uint64_t pending; /* reports held since last_emit_ms */
	json_t *latest;	  /* fields of the last held report */
	char key[];
};

static struct {
	struct loop *loop;
	struct loop_timer *timer;
	struct fold_entry *buckets[FOLD_BUCKETS];
	size_t n_entries;
	uint64_t counts[EVENTS_LAYER_MAX][EVENTS_REASON_MAX];
} ev;

static const char *const reason_names[EVENTS_REASON_MAX] = {
	[EVENTS_REASON_DEFAULT_DENY] = "default_deny",
	[EVENTS_REASON_DENY_RULE] = "deny_rule",
	[EVENTS_REASON_DOT] = "dot",
	[EVENTS_REASON_DOH] = "doh",
	[EVENTS_REASON_IPV6_DISABLED] = "ipv6_disabled",
	[EVENTS_REASON_REBINDING] = "rebinding",
};

const char *events_reason_name(enum events_reason r)
{
	if ((unsigned int)r >= EVENTS_REASON_MAX)
		return "unknown";
	return reason_names[r];
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void fold_write(json_t *fields, uint64_t count)
{
	json_object_set_new(fields, "count", json_integer((json_int_t)count));
	log_emit(LOG_LVL_WARN, "violation", fields);
}

/* Write held reports whose window is over; drop long-idle entries. */
static void fold_sweep(uint64_t now, bool all)
{
	struct fold_entry **pp, *e;
	size_t i;

	for (i = 0; i < FOLD_BUCKETS; i++) {
		pp = &ev.buckets[i];
		while ((e = *pp)) {
			if (e->pending &&
			    (all || now - e->last_emit_ms >= FOLD_WINDOW_MS)) {
				fold_write(e->latest, e->pending);
				e->latest = NULL;
				e->pending = 0;
				e->last_emit_ms = now;
			}
			if (all || (!e->pending &&
				    now - e->last_emit_ms >= FOLD_IDLE_MS)) {
				*pp = e->next;
				json_decref(e->latest);
				free(e);
				ev.n_entries--;
				continue;
			}
			pp = &e->next;
		}
	}
}

static void fold_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	fold_sweep(loop_clock_ms(), false);
	if (ev.n_entries)
		loop_timer_arm(t, FOLD_WINDOW_MS / 4);
}

/* Takes ownership of fields; n is how many packets/queries it stands for. */
static void fold_report(const char *key, json_t *fields, uint64_t n)
{
	uint64_t now = loop_clock_ms();
	uint64_t h = fnv1a(key);
	struct fold_entry *e;
	size_t b = h % FOLD_BUCKETS;
	size_t klen;

	for (e = ev.buckets[b]; e; e = e->next)
		if (e->hash == h && !strcmp(e->key, key))
			break;
	if (e && now - e->last_emit_ms < FOLD_WINDOW_MS) {
		json_decref(e->latest);
		e->latest = fields;
		e->pending += n;
		return;
	}
	if (e) {
		/* Window over: this report opens a new one. */
		if (e->pending)
			fold_write(e->latest, e->pending);
		e->latest = NULL;
		e->pending = 0;
		e->last_emit_ms = now;
		fold_write(fields, n);
		return;
	}
	fold_write(fields, n);
	if (ev.n_entries >= FOLD_MAX_ENTRIES || !ev.loop)
		return; /* too many distinct keys to fold: write every one */
	klen = strlen(key) + 1;
	e = calloc(1, sizeof(*e) + klen);
	if (!e)
		return;
	memcpy(e->key, key, klen);
	e->hash = h;
	e->last_emit_ms = now;
	e->next = ev.buckets[b];
	ev.buckets[b] = e;
	ev.n_entries++;
	if (ev.timer && !loop_timer_is_armed(ev.timer))
		loop_timer_arm(ev.timer, FOLD_WINDOW_MS / 4);
}

int events_init(struct loop *loop)
{
	ev.loop = loop;
	ev.timer = loop_timer_new(loop, fold_timer_cb, NULL);
	if (!ev.timer)
		return -ENOMEM;
	return 0;
}

void events_fini(void)
{
	fold_sweep(loop_clock_ms(), true);
	loop_timer_free(ev.timer);
	ev.timer = NULL;
	ev.loop = NULL;
}

void events_dns_violation(enum events_reason reason, const char *qname,
			  uint16_t qtype, const char *action,
			  const char *client)
{
	char tbuf[16], key[DNSWIRE_NAME_MAX + 64];
	const char *tname = dnswire_type_name(qtype, tbuf, sizeof(tbuf));
	json_t *f;

	if ((unsigned int)reason >= EVENTS_REASON_MAX)
		return;
	ev.counts[EVENTS_LAYER_DNS][reason]++;
	f = json_pack("{s:s, s:s, s:s, s:s, s:s}", "layer", "dns", "reason",
		      reason_names[reason], "qname", qname, "qtype", tname,
		      "action", action);
	if (!f)
		return;
	if (client)
		json_object_set_new(f, "client", json_string(client));
	snprintf(key, sizeof(key), "d|%d|%s|%u|%s", reason, qname, qtype,
		 action);
	fold_report(key, f, 1);
}

static const char *proto_name(int proto, char *buf, size_t len)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "icmpv6";
	}
	snprintf(buf, len, "%d", proto);
	return buf;
}

void events_packet_violation(enum events_reason reason, int family,
			     int proto, const void *src, uint16_t sport,
			     const void *dst, uint16_t dport,
			     const char *domain, const char *action,
			     uint64_t packets)
{
	char sbuf[INET6_ADDRSTRLEN], dbuf[INET6_ADDRSTRLEN], pbuf[12];
	char key[INET6_ADDRSTRLEN + 48];
	int af = family == 6 ? AF_INET6 : AF_INET;
	json_t *f;

	if ((unsigned int)reason >= EVENTS_REASON_MAX)
		return;
	ev.counts[EVENTS_LAYER_PACKET][reason] += packets ? packets : 1;
	if (!inet_ntop(af, src, sbuf, sizeof(sbuf)))
		strcpy(sbuf, "?");
	if (!inet_ntop(af, dst, dbuf, sizeof(dbuf)))
		strcpy(dbuf, "?");
	f = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:i, s:o}",
		      "layer", "packet", "reason", reason_names[reason],
		      "action", action, "proto",
		      proto_name(proto, pbuf, sizeof(pbuf)), "family",
		      family == 6 ? 6 : 4, "dst", dbuf, "dport", dport, "src",
		      sbuf, "sport", sport, "domain",
		      domain ? json_string(domain) : json_null());
	if (!f)
		return;
	snprintf(key, sizeof(key), "p|%d|%s|%u|%s", reason, dbuf, dport,
		 action);
	/* A report standing for several packets counts them all. */
	fold_report(key, f, packets ? packets : 1);
}

uint64_t events_count(const char *layer, enum events_reason reason)
{
	int l = strcmp(layer, "dns") ? EVENTS_LAYER_PACKET : EVENTS_LAYER_DNS;

	if ((unsigned int)reason >= EVENTS_REASON_MAX)
		return 0;
	return ev.counts[l][reason];
}
