// SPDX-License-Identifier: GPL-2.0-only
/*
 * Violation events to log lines. Each report is counted exactly, then
 * folded: per key ((layer, reason, qname, qtype) for DNS, (layer, reason,
 * dst, dport) for packets) the first report in a second is written at once
 * and later ones in the same second are held and written as one line with
 * "count" when the second is over. So a workload hammering a blocked name
 * or address produces one line per second, not one per packet.
 *
 * This is the hot path of a workload that keeps asking for denied names,
 * so lines are formatted straight into a buffer (the same bytes jansson
 * wrote: tests/check_events.c) and a held report is kept preformatted in
 * its fold entry: no JSON objects, no allocation but one per new key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
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
/* Room an entry keeps for held lines longer than the first (a port). */
#define FOLD_SLACK 32
/* Room after a line's members for ,"count":<20 digits>. */
#define COUNT_ROOM 32
/* Stack buffer for one line's members: a 1023-byte qname, all escapes. */
#define MEMBERS_MAX 3072

enum events_layer {
	EVENTS_LAYER_DNS = 0,
	EVENTS_LAYER_PACKET = 1,
	EVENTS_LAYER_MAX,
};

/*
 * A fold key in parts, hashed and compared without building a string: hdr
 * holds the fixed-size parts (layer, reason, then qtype for DNS or dport
 * for packets), then come the action and name: the qname for DNS, dst as
 * written in the line for packets. An entry stores it as hdr, action, NUL,
 * name.
 */
struct fold_key {
	unsigned char hdr[8];
	size_t hdr_len;
	const char *action;
	size_t action_len;
	const char *name;
	size_t name_len;
	size_t len; /* hdr_len + action_len + 1 + name_len */
	uint64_t hash;
};

struct fold_entry {
	struct fold_entry *next;
	uint64_t hash;
	uint64_t last_emit_ms;
	uint64_t pending; /* reports held since last_emit_ms */
	size_t key_len;	  /* buf: the key (hdr, action, NUL, name), */
	size_t held_len;  /* then the members of the last held report */
	size_t size;	  /* bytes of buf */
	char buf[];
};

static struct {
	struct loop *loop;
	struct loop_timer *timer;
	struct fold_entry *buckets[FOLD_BUCKETS];
	size_t n_entries;
	uint64_t counts[EVENTS_LAYER_MAX][EVENTS_REASON_MAX];
	events_dns_deny_cb deny_cb;
	void *deny_arg;
} ev;

void events_set_dns_deny_hook(events_dns_deny_cb cb, void *arg)
{
	ev.deny_cb = cb;
	ev.deny_arg = arg;
}

static const char *const reason_names[EVENTS_REASON_MAX] = {
	[EVENTS_REASON_DEFAULT_DENY] = "default_deny",
	[EVENTS_REASON_DENY_RULE] = "deny_rule",
	[EVENTS_REASON_DOT] = "dot",
	[EVENTS_REASON_DOH] = "doh",
	[EVENTS_REASON_IPV6_DISABLED] = "ipv6_disabled",
	[EVENTS_REASON_REBINDING] = "rebinding",
	[EVENTS_REASON_API] = "api",
	[EVENTS_REASON_RAW_FRAME] = "raw_frame",
};

const char *events_reason_name(enum events_reason r)
{
	if ((unsigned int)r >= EVENTS_REASON_MAX)
		return "unknown";
	return reason_names[r];
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (; n; n--, s++) {
		h ^= *s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void key_finish(struct fold_key *k)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	k->action_len = strlen(k->action);
	k->name_len = k->name ? strlen(k->name) : 0;
	k->len = k->hdr_len + k->action_len + 1 + k->name_len;
	h = fnv1a(h, k->hdr, k->hdr_len);
	h = fnv1a(h, k->action, k->action_len + 1);
	k->hash = fnv1a(h, k->name, k->name_len);
}

static bool key_eq(const struct fold_entry *e, const struct fold_key *k)
{
	const char *p = e->buf;

	if (e->hash != k->hash || e->key_len != k->len)
		return false;
	if (memcmp(p, k->hdr, k->hdr_len))
		return false;
	p += k->hdr_len;
	if (memcmp(p, k->action, k->action_len + 1))
		return false;
	p += k->action_len + 1;
	return !memcmp(p, k->name, k->name_len);
}

static void key_store(char *dst, const struct fold_key *k)
{
	memcpy(dst, k->hdr, k->hdr_len);
	dst += k->hdr_len;
	memcpy(dst, k->action, k->action_len + 1);
	dst += k->action_len + 1;
	memcpy(dst, k->name, k->name_len);
}

/* An entry whose buf holds key_len + held bytes + COUNT_ROOM (+ slack). */
static struct fold_entry *entry_alloc(size_t key_len, size_t held)
{
	size_t size = key_len + held + COUNT_ROOM + FOLD_SLACK;
	struct fold_entry *e = malloc(sizeof(*e) + size);

	if (!e)
		return NULL;
	e->size = size;
	e->key_len = key_len;
	e->held_len = 0;
	e->pending = 0;
	return e;
}

/* Append an unsigned decimal; n: digits written (buf has >= 20 bytes). */
static size_t fmt_u64(char *buf, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

/*
 * Write one violation line: members is len bytes followed by at least
 * COUNT_ROOM writable bytes for ,"count":N.
 */
static void fold_write(char *members, size_t len, uint64_t count)
{
	memcpy(members + len, ",\"count\":", 9);
	len += 9;
	len += fmt_u64(members + len, count);
	log_emit_raw(LOG_LVL_WARN, "violation", members, len);
}

static void entry_write_held(struct fold_entry *e)
{
	fold_write(e->buf + e->key_len, e->held_len, e->pending);
	e->held_len = 0;
	e->pending = 0;
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
				entry_write_held(e);
				e->last_emit_ms = now;
			}
			if (all || (!e->pending &&
				    now - e->last_emit_ms >= FOLD_IDLE_MS)) {
				*pp = e->next;
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

/*
 * Hold a report in e (at *pp): its members replace the held ones. 0, or
 * -ENOMEM when e could not grow to hold them.
 */
static int fold_hold(struct fold_entry **pp, const char *members, size_t len)
{
	struct fold_entry *e = *pp, *n;

	if (e->key_len + len + COUNT_ROOM > e->size) {
		n = entry_alloc(e->key_len, len);
		if (!n)
			return -ENOMEM;
		n->next = e->next;
		n->hash = e->hash;
		n->last_emit_ms = e->last_emit_ms;
		n->pending = e->pending;
		memcpy(n->buf, e->buf, e->key_len);
		*pp = n;
		free(e);
		e = n;
	}
	memcpy(e->buf + e->key_len, members, len);
	e->held_len = len;
	return 0;
}

/*
 * Count a report against its key and write it now or hold it. members is
 * len bytes followed by COUNT_ROOM writable bytes; n is how many packets
 * or queries it stands for.
 */
static void fold_report(const struct fold_key *k, char *members, size_t len,
			uint64_t n)
{
	uint64_t now = loop_clock_ms();
	struct fold_entry **pp, *e;
	size_t b = k->hash % FOLD_BUCKETS;

	for (pp = &ev.buckets[b]; (e = *pp); pp = &e->next)
		if (key_eq(e, k))
			break;
	if (e && now - e->last_emit_ms < FOLD_WINDOW_MS) {
		if (fold_hold(pp, members, len)) {
			/* No room to hold it: write it on its own. */
			fold_write(members, len, n);
			return;
		}
		(*pp)->pending += n;
		return;
	}
	if (e) {
		/* Window over: this report opens a new one. */
		if (e->pending)
			entry_write_held(e);
		e->last_emit_ms = now;
		fold_write(members, len, n);
		return;
	}
	fold_write(members, len, n);
	if (ev.n_entries >= FOLD_MAX_ENTRIES || !ev.loop)
		return; /* too many distinct keys to fold: write every one */
	/* Room for a held line as long as this one (they rarely differ). */
	e = entry_alloc(k->len, len);
	if (!e)
		return;
	key_store(e->buf, k);
	e->hash = k->hash;
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

/* A line's members, in a stack buffer or, when too long, on the heap. */
struct members {
	char stack[MEMBERS_MAX];
	char *buf;
	size_t size, len;
};

static inline void m_put(struct members *m, const char *s, size_t n)
{
	if (m->len + n <= m->size)
		memcpy(m->buf + m->len, s, n);
	m->len += n;
}

#define M_LIT(m, lit) m_put(m, lit, sizeof(lit) - 1)

static inline int m_str(struct members *m, const char *s)
{
	return log_json_str(m->buf, m->size, &m->len, s);
}

/*
 * Start (again) with room for need bytes plus COUNT_ROOM: 0 or -ENOMEM.
 * need 0: the stack buffer.
 */
static int m_start(struct members *m, size_t need)
{
	m->len = 0;
	if (!need) {
		m->buf = m->stack;
		m->size = sizeof(m->stack) - COUNT_ROOM;
		return 0;
	}
	m->buf = malloc(need + COUNT_ROOM);
	if (!m->buf)
		return -ENOMEM;
	m->size = need;
	return 0;
}

static void m_done(struct members *m)
{
	if (m->buf != m->stack)
		free(m->buf);
}

/*
 * The members of a DNS line; -EILSEQ if jansson would have refused one of
 * the strings (json_pack fails: no line), else 0.
 */
static int dns_members(struct members *m, enum events_reason reason,
		       const char *qname, const char *tname,
		       const char *action, const char *client)
{
	size_t len;

	M_LIT(m, "\"layer\":\"dns\",\"reason\":\"");
	m_put(m, reason_names[reason], strlen(reason_names[reason]));
	M_LIT(m, "\",\"qname\":");
	if (m_str(m, qname))
		return -EILSEQ;
	M_LIT(m, ",\"qtype\":");
	if (m_str(m, tname))
		return -EILSEQ;
	M_LIT(m, ",\"action\":");
	if (m_str(m, action))
		return -EILSEQ;
	if (client) {
		len = m->len;
		M_LIT(m, ",\"client\":");
		/* json_string() refusing client left it out of the line. */
		if (m_str(m, client))
			m->len = len;
	}
	return 0;
}

void events_dns_violation(enum events_reason reason, const char *qname,
			  uint16_t qtype, const char *action,
			  const char *client)
{
	char tbuf[16];
	const char *tname;
	struct fold_key k;
	struct members m;

	if ((unsigned int)reason >= EVENTS_REASON_MAX)
		return;
	ev.counts[EVENTS_LAYER_DNS][reason]++;
	if (ev.deny_cb && qname && action && !strcmp(action, "nxdomain"))
		ev.deny_cb(ev.deny_arg, qname);
	if (!qname || !action || !log_enabled(LOG_LVL_WARN))
		return;
	tname = dnswire_type_name(qtype, tbuf, sizeof(tbuf));
	m_start(&m, 0);
	if (dns_members(&m, reason, qname, tname, action, client))
		return;
	if (m.len > m.size) {
		if (m_start(&m, m.len))
			return;
		dns_members(&m, reason, qname, tname, action, client);
	}
	k.hdr[0] = 'd';
	k.hdr[1] = (unsigned char)reason;
	memcpy(k.hdr + 2, &qtype, sizeof(qtype));
	k.hdr_len = 2 + sizeof(qtype);
	k.action = action;
	k.name = qname;
	key_finish(&k);
	fold_report(&k, m.buf, m.len, 1);
	m_done(&m);
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

struct pkt_fields {
	const char *reason, *action, *proto, *dst, *src, *domain;
	int family;
	uint16_t dport, sport;
};

static int pkt_members(struct members *m, const struct pkt_fields *f)
{
	char num[24];

	M_LIT(m, "\"layer\":\"packet\",\"reason\":\"");
	m_put(m, f->reason, strlen(f->reason));
	M_LIT(m, "\",\"action\":");
	if (m_str(m, f->action))
		return -EILSEQ;
	M_LIT(m, ",\"proto\":\"");
	m_put(m, f->proto, strlen(f->proto));
	M_LIT(m, "\",\"family\":");
	m_put(m, f->family == 6 ? "6" : "4", 1);
	M_LIT(m, ",\"dst\":\"");
	m_put(m, f->dst, strlen(f->dst));
	M_LIT(m, "\",\"dport\":");
	m_put(m, num, fmt_u64(num, f->dport));
	M_LIT(m, ",\"src\":\"");
	m_put(m, f->src, strlen(f->src));
	M_LIT(m, "\",\"sport\":");
	m_put(m, num, fmt_u64(num, f->sport));
	M_LIT(m, ",\"domain\":");
	if (!f->domain)
		M_LIT(m, "null");
	else if (m_str(m, f->domain))
		return -EILSEQ;
	return 0;
}

void events_packet_violation(enum events_reason reason, int family,
			     int proto, const void *src, uint16_t sport,
			     const void *dst, uint16_t dport,
			     const char *domain, const char *action,
			     uint64_t packets)
{
	char sbuf[INET6_ADDRSTRLEN], dbuf[INET6_ADDRSTRLEN], pbuf[12];
	int af = family == 6 ? AF_INET6 : AF_INET;
	struct pkt_fields f;
	struct fold_key k;
	struct members m;

	if ((unsigned int)reason >= EVENTS_REASON_MAX)
		return;
	ev.counts[EVENTS_LAYER_PACKET][reason] += packets ? packets : 1;
	if (!action || !log_enabled(LOG_LVL_WARN))
		return;
	if (!inet_ntop(af, src, sbuf, sizeof(sbuf)))
		strcpy(sbuf, "?");
	if (!inet_ntop(af, dst, dbuf, sizeof(dbuf)))
		strcpy(dbuf, "?");
	f.reason = reason_names[reason];
	f.action = action;
	f.proto = proto_name(proto, pbuf, sizeof(pbuf));
	f.family = family;
	f.dst = dbuf;
	f.dport = dport;
	f.src = sbuf;
	f.sport = sport;
	f.domain = domain;
	m_start(&m, 0);
	if (pkt_members(&m, &f))
		return;
	if (m.len > m.size) {
		if (m_start(&m, m.len))
			return;
		pkt_members(&m, &f);
	}
	/* The key is the address as written ("dst"), as it always was. */
	k.hdr[0] = 'p';
	k.hdr[1] = (unsigned char)reason;
	memcpy(k.hdr + 2, &dport, sizeof(dport));
	k.hdr_len = 2 + sizeof(dport);
	k.action = action;
	k.name = dbuf;
	key_finish(&k);
	/* A report standing for several packets counts them all. */
	fold_report(&k, m.buf, m.len, packets ? packets : 1);
	m_done(&m);
}

uint64_t events_count(const char *layer, enum events_reason reason)
{
	int l = strcmp(layer, "dns") ? EVENTS_LAYER_PACKET : EVENTS_LAYER_DNS;

	if ((unsigned int)reason >= EVENTS_REASON_MAX)
		return 0;
	return ev.counts[l][reason];
}
