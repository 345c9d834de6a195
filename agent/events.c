// SPDX-License-Identifier: GPL-2.0-only
/*
 * Violation events to log lines. Each report is counted exactly, then
 * folded: per key ((layer, reason, qname, qtype) for DNS, (layer, reason,
 * dst, dport) for packets) the first report in a second is written at once
 * and later ones in the same second are held and written as one line with
 * "count" when the second is over. So a workload hammering a blocked name
 * or address produces one line per second, not one per packet. DNS lines
 * also have a budget per registered domain and in all, past which queries
 * are counted into violation_summary lines (FLOOD_DOMAIN_LINES below), so
 * a flood of distinct names stays readable too. All of it lives in one
 * struct events (events_new()) that the agent hands to every reporter.
 *
 * This is the hot path of a workload that keeps asking for denied names,
 * so lines are formatted straight into a buffer (the same bytes jansson
 * wrote: tests/check_events.c) and a held report is kept preformatted in
 * its fold entry: no JSON objects, no allocation but one per new key.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>

#include "egressd/dnswire.h"
#include "egressd/events.h"
#include "egressd/log.h"
#include "egressd/util.h"

#define FOLD_WINDOW_MS 1000
#define FOLD_IDLE_MS 10000
#define FOLD_BUCKETS 1024
#define FOLD_MAX_ENTRIES 8192
/*
 * Floods of distinct names (a tunnel: <data>.evil.example). Folding per
 * key does nothing for a workload that asks a new name every time, so DNS
 * lines have a budget per window: FLOOD_DOMAIN_LINES per (reason, action,
 * registered domain) and FLOOD_DNS_LINES for all of them. A report past
 * it is not lost: it joins its group's violation_summary line (its count
 * and the last report's members), written when the group's window is
 * over. When the whole budget is spent, a group that has no summary going
 * yet joins the catch-all of its (reason, action) instead ("domain":null),
 * so a flood over many domains costs a few lines too. Packet lines have
 * no such budget: their keys are bounded by the workload's destinations.
 */
#define FLOOD_DOMAIN_LINES 10
#define FLOOD_DNS_LINES 100
#define GROUP_BUCKETS 256
#define GROUP_MAX 1024
/* Room an entry keeps for held lines longer than the first (a port). */
#define FOLD_SLACK 32
/* Room after a line's members for ,"count":<20 digits>. */
#define COUNT_ROOM 32
/* Stack buffer for one line's members: a 1023-byte qname, all escapes. */
#define MEMBERS_MAX 3072
/* Registered domains seen lately, direct-mapped by hash. */
#define RD_CACHE 256
#define RD_NAME_MAX 128

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
	uint32_t lines; /* groups: lines written in this window */
	size_t key_len; /* buf: the key (hdr, action, NUL, name), */
	size_t held_len; /* then the members of the last held report */
	size_t size; /* bytes of buf */
	char buf[];
};

struct events {
	struct loop *loop;
	struct loop_timer *timer;
	struct fold_entry *buckets[FOLD_BUCKETS];
	size_t n_entries;
	/* DNS flood groups (same entries, keyed 'g'/'G', reason, action,
	 * registered domain) and the budget of all DNS lines. */
	struct fold_entry *groups[GROUP_BUCKETS];
	size_t n_groups;
	uint64_t dns_window_ms;
	uint32_t dns_lines;
	uint64_t counts[EVENTS_LAYER_MAX][EVENTS_REASON_MAX];
	events_dns_deny_cb deny_cb;
	void *deny_arg;
	/* Registered domains seen lately (registered_domain()). */
	char rd_cache[RD_CACHE][RD_NAME_MAX];
};

void events_set_dns_deny_hook(struct events *ev, events_dns_deny_cb cb,
			      void *arg)
{
	ev->deny_cb = cb;
	ev->deny_arg = arg;
}

static void key_finish(struct fold_key *k)
{
	uint64_t h = UTIL_FNV1A_INIT;

	k->action_len = strlen(k->action);
	k->name_len = k->name ? strlen(k->name) : 0;
	k->len = k->hdr_len + k->action_len + 1 + k->name_len;
	h = util_fnv1a(h, k->hdr, k->hdr_len);
	h = util_fnv1a(h, k->action, k->action_len + 1);
	k->hash = util_fnv1a(h, k->name, k->name_len);
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
	e->lines = 0;
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

/*
 * Make e (at *pp) hold key_len + held + COUNT_ROOM bytes: 0, or -ENOMEM
 * (e unchanged).
 */
static int entry_reserve(struct fold_entry **pp, size_t held)
{
	struct fold_entry *e = *pp;
	size_t size = e->key_len + held + COUNT_ROOM;

	if (size <= e->size)
		return 0;
	size += FOLD_SLACK;
	e = realloc(e, sizeof(*e) + size);
	if (!e)
		return -ENOMEM;
	e->size = size;
	*pp = e;
	return 0;
}

/* ---- floods of distinct names ---------------------------------------- */

/* Room for a registered domain (the tail of a name is kept when longer). */
#define DOMAIN_MAX 1024

/*
 * libpsl takes ~16,000 instructions a name, five times the rest of a
 * line, and a flood's names share their registered domain: remember the
 * registered domains seen lately, and take a name's from the longest of
 * its parents that is one of them. A name that is itself a suffix rule
 * under a registered domain (s3.amazonaws.com once amazonaws.com is
 * known) is then grouped under that domain: this only groups lines.
 */
static size_t rd_slot(const char *s, size_t len)
{
	return util_fnv1a(UTIL_FNV1A_INIT, s, len) % RD_CACHE;
}

/*
 * The registered domain of a presentation name (len bytes), lower-cased,
 * into out (DOMAIN_MAX bytes): evil.example for x1.evil.example,
 * bbc.co.uk for news.bbc.co.uk (the Public Suffix List as libpsl has it
 * built in). A name that has none (a public suffix itself, one label) is
 * its own.
 */
static void registered_domain(struct events *ev, const char *name, size_t len,
			      char *out)
{
	const psl_ctx_t *psl = psl_builtin();
	const char *r = NULL, *p, *dot;
	size_t i, rlen;

	if (len >= DOMAIN_MAX) {
		name += len - (DOMAIN_MAX - 1);
		len = DOMAIN_MAX - 1;
	}
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[len] = '\0';
	for (p = memchr(out, '.', len); p; p = strchr(p + 1, '.')) {
		rlen = len - (size_t)(p + 1 - out);
		if (rlen && rlen < RD_NAME_MAX &&
		    !strcmp(ev->rd_cache[rd_slot(p + 1, rlen)], p + 1)) {
			memmove(out, p + 1, rlen + 1);
			return;
		}
	}
	if (psl) {
		r = psl_registrable_domain(psl, out);
	} else if ((dot = strrchr(out, '.'))) {
		/* No list built in: the last two labels. */
		r = dot;
		while (r > out && r[-1] != '.')
			r--;
	}
	if (!r)
		return;
	rlen = strlen(r);
	if (rlen < RD_NAME_MAX)
		memcpy(ev->rd_cache[rd_slot(r, rlen)], r, rlen + 1);
	if (r != out)
		memmove(out, r, rlen + 1);
}

/* A group's summary line: the held members and the queries they stand for. */
static void group_write(struct fold_entry *g)
{
	char *m = g->buf + g->key_len;
	size_t len = g->held_len;

	memcpy(m + len, ",\"count\":", 9);
	len += 9;
	len += fmt_u64(m + len, g->pending);
	log_emit_raw(LOG_LVL_WARN, "violation_summary", m, len);
	g->held_len = 0;
	g->pending = 0;
}

/*
 * The group of (reason, action, dom), or with dom NULL the catch-all of
 * (reason, action); created unless there are GROUP_MAX groups already
 * (catch-alls are always created: there are only as many as reasons and
 * actions). A group whose window is over writes its summary and starts a
 * new window with its whole budget. NULL when there is none.
 */
/* A group's window is over: its summary goes out, a new window begins. */
static void group_roll(struct fold_entry *e, uint64_t now)
{
	if (e->pending)
		group_write(e);
	e->last_emit_ms = now;
	e->lines = 0;
}

static struct fold_entry **group_get(struct events *ev,
				     enum events_reason reason,
				     const char *action, const char *dom,
				     uint64_t now)
{
	struct fold_entry **pp, *e;
	struct fold_key k;
	size_t b;

	k.hdr[0] = dom ? 'g' : 'G';
	k.hdr[1] = (unsigned char)reason;
	k.hdr_len = 2;
	k.action = action;
	k.name = dom ? dom : "";
	key_finish(&k);
	b = k.hash % GROUP_BUCKETS;
	for (pp = &ev->groups[b]; (e = *pp); pp = &e->next) {
		if (!key_eq(e, &k))
			continue;
		if (now - e->last_emit_ms >= FOLD_WINDOW_MS)
			group_roll(e, now);
		return pp;
	}
	if (dom && ev->n_groups >= GROUP_MAX)
		return NULL;
	/* Room for a summary as long as a usual line. */
	e = entry_alloc(k.len, 512);
	if (!e)
		return NULL;
	key_store(e->buf, &k);
	e->hash = k.hash;
	e->last_emit_ms = now;
	e->lines = 0;
	e->next = ev->groups[b];
	ev->groups[b] = e;
	ev->n_groups++;
	return &ev->groups[b];
}

/*
 * Hold a DNS line's members as the group's summary sample: the same
 * members with "domain" (the group's registered domain, null for a
 * catch-all) after "reason". 0 or -ENOMEM.
 */
static int group_hold(struct fold_entry **pp, enum events_reason reason,
		      const char *members, size_t len, const char *dom)
{
	static const char pfx[] = "\"layer\":\"dns\",\"reason\":\"";
	size_t pre = sizeof(pfx) - 1 + strlen(reason_name(reason)) + 1;
	size_t dlen = 10, need;
	char dummy[1], *m;

	if (dom && log_json_str(dummy, 0, &dlen, dom))
		dom = NULL; /* not UTF-8 (json_string() would refuse it) */
	if (!dom)
		dlen = 10 + 4;
	if (pre > len)
		pre = len;
	need = len + dlen;
	if (entry_reserve(pp, need))
		return -ENOMEM;
	m = (*pp)->buf + (*pp)->key_len;
	memcpy(m, members, pre);
	memcpy(m + pre, ",\"domain\":", 10);
	dlen = pre + 10;
	if (dom) {
		log_json_str(m, need, &dlen, dom);
	} else {
		memcpy(m + dlen, "null", 4);
		dlen += 4;
	}
	memcpy(m + dlen, members + pre, len - pre);
	(*pp)->held_len = need;
	return 0;
}

static void arm_timer(struct events *ev)
{
	if (ev->timer && !loop_timer_is_armed(ev->timer))
		loop_timer_arm(ev->timer, FOLD_WINDOW_MS / 4);
}

/*
 * Write a DNS line (members: len bytes, then COUNT_ROOM) standing for n
 * queries, unless its budget is spent: then it joins its group's summary.
 * true when the line was written.
 */
static bool dns_emit(struct events *ev, enum events_reason reason,
		     const char *action, const char *qname, size_t qlen,
		     char *members, size_t len, uint64_t n, uint64_t now)
{
	struct fold_entry **gp;
	char dom[DOMAIN_MAX];
	bool all_spent;

	if (!ev->loop) {
		/* No timer to write summaries: every line as it comes. */
		fold_write(members, len, n);
		return true;
	}
	if (now - ev->dns_window_ms >= FOLD_WINDOW_MS) {
		ev->dns_window_ms = now;
		ev->dns_lines = 0;
	}
	all_spent = ev->dns_lines >= FLOOD_DNS_LINES;
	registered_domain(ev, qname, qlen, dom);
	gp = group_get(ev, reason, action, dom, now);
	if (gp && (*gp)->lines < FLOOD_DOMAIN_LINES && !all_spent) {
		(*gp)->lines++;
		ev->dns_lines++;
		fold_write(members, len, n);
		return true;
	}
	if (gp && !(*gp)->pending) {
		/* A new summary line: it needs room in the budget too. */
		if (all_spent)
			gp = NULL;
		else
			ev->dns_lines++;
	}
	if (!gp)
		gp = group_get(ev, reason, action, NULL, now);
	if (!gp || group_hold(gp, reason, members, len,
			      (*gp)->buf[0] == 'g' ? dom : NULL)) {
		/* No memory to fold it: write it rather than lose it. */
		fold_write(members, len, n);
		return true;
	}
	(*gp)->pending += n;
	arm_timer(ev);
	return false;
}

/*
 * Write a line of key k (DNS lines go through their flood budget); true
 * when it was written, false when it joined a summary.
 */
static bool emit_line(struct events *ev, const struct fold_key *k,
		      char *members, size_t len, uint64_t n, uint64_t now)
{
	if (k->hdr[0] != 'd') {
		fold_write(members, len, n);
		return true;
	}
	return dns_emit(ev, (enum events_reason)k->hdr[1], k->action, k->name,
			k->name_len, members, len, n, now);
}

/* The held report of e, as one line (or into its group's summary). */
static void entry_write_held(struct events *ev, struct fold_entry *e,
			     uint64_t now)
{
	char *members = e->buf + e->key_len;
	struct fold_key k;

	/* The key as stored: hdr, action, NUL, name (key_store). */
	k.hdr[0] = (unsigned char)e->buf[0];
	k.hdr[1] = (unsigned char)e->buf[1];
	k.hdr_len = 2 + sizeof(uint16_t);
	k.action = e->buf + k.hdr_len;
	k.action_len = strlen(k.action);
	k.name = k.action + k.action_len + 1;
	k.name_len = e->key_len - k.hdr_len - k.action_len - 1;
	emit_line(ev, &k, members, e->held_len, e->pending, now);
	e->held_len = 0;
	e->pending = 0;
}

/*
 * Write held reports whose window is over, then summaries whose window is
 * over (held reports may join them); drop long-idle entries. all: write
 * everything and free every entry.
 */
static void fold_sweep(struct events *ev, uint64_t now, bool all)
{
	struct fold_entry **pp, *e;
	size_t i;

	for (i = 0; i < FOLD_BUCKETS; i++) {
		pp = &ev->buckets[i];
		while ((e = *pp)) {
			if (e->pending &&
			    (all || now - e->last_emit_ms >= FOLD_WINDOW_MS)) {
				entry_write_held(ev, e, now);
				e->last_emit_ms = now;
			}
			if (all || (!e->pending &&
				    now - e->last_emit_ms >= FOLD_IDLE_MS)) {
				*pp = e->next;
				free(e);
				ev->n_entries--;
				continue;
			}
			pp = &e->next;
		}
	}
	for (i = 0; i < GROUP_BUCKETS; i++) {
		pp = &ev->groups[i];
		while ((e = *pp)) {
			if (all || now - e->last_emit_ms >= FOLD_WINDOW_MS)
				group_roll(e, now);
			if (all || now - e->last_emit_ms >= FOLD_IDLE_MS) {
				*pp = e->next;
				free(e);
				ev->n_groups--;
				continue;
			}
			pp = &e->next;
		}
	}
}

static void fold_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct events *ev = arg;

	fold_sweep(ev, util_clock_ms(), false);
	if (ev->n_entries || ev->n_groups)
		loop_timer_arm(t, FOLD_WINDOW_MS / 4);
}

/*
 * Hold a report in e (at *pp): its members replace the held ones. 0, or
 * -ENOMEM when e could not grow to hold them.
 */
static int fold_hold(struct fold_entry **pp, const char *members, size_t len)
{
	if (entry_reserve(pp, len))
		return -ENOMEM;
	memcpy((*pp)->buf + (*pp)->key_len, members, len);
	(*pp)->held_len = len;
	return 0;
}

/*
 * Count a report against its key and write it now or hold it. members is
 * len bytes followed by COUNT_ROOM writable bytes; n is how many packets
 * or queries it stands for.
 */
static void fold_report(struct events *ev, const struct fold_key *k,
			char *members, size_t len, uint64_t n)
{
	uint64_t now = util_clock_ms();
	struct fold_entry **pp, *e;
	size_t b = k->hash % FOLD_BUCKETS;

	for (pp = &ev->buckets[b]; (e = *pp); pp = &e->next)
		if (key_eq(e, k))
			break;
	if (e && now - e->last_emit_ms < FOLD_WINDOW_MS) {
		if (fold_hold(pp, members, len)) {
			/* No room to hold it: write it on its own. */
			emit_line(ev, k, members, len, n, now);
			return;
		}
		(*pp)->pending += n;
		return;
	}
	if (e) {
		/* Window over: this report opens a new one. */
		if (e->pending)
			entry_write_held(ev, e, now);
		e->last_emit_ms = now;
		emit_line(ev, k, members, len, n, now);
		return;
	}
	/* Past its flood budget it joined a summary: no key to fold into. */
	if (!emit_line(ev, k, members, len, n, now))
		return;
	if (ev->n_entries >= FOLD_MAX_ENTRIES || !ev->loop)
		return; /* too many distinct keys to fold: write every one */
	/* Room for a held line as long as this one (they rarely differ). */
	e = entry_alloc(k->len, len);
	if (!e)
		return;
	key_store(e->buf, k);
	e->hash = k->hash;
	e->last_emit_ms = now;
	e->next = ev->buckets[b];
	ev->buckets[b] = e;
	ev->n_entries++;
	arm_timer(ev);
}

int events_new(struct events **out, struct loop *loop, char *err, size_t errlen)
{
	struct events *ev;

	*out = NULL;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return util_err(err, errlen, -ENOMEM, "out of memory");
	if (loop) {
		ev->loop = loop;
		ev->timer = loop_timer_new(loop, fold_timer_cb, ev);
		if (!ev->timer) {
			free(ev);
			return util_err(err, errlen, -ENOMEM, "out of memory");
		}
	}
	*out = ev;
	return 0;
}

void events_flush(struct events *ev)
{
	if (ev)
		fold_sweep(ev, util_clock_ms(), true);
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	events_flush(ev);
	loop_timer_free(ev->timer);
	free(ev);
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
		       const char *qname, const char *tname, const char *action,
		       const char *client)
{
	size_t len;

	M_LIT(m, "\"layer\":\"dns\",\"reason\":\"");
	m_put(m, reason_name(reason), strlen(reason_name(reason)));
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

void events_dns_violation(struct events *ev, enum events_reason reason,
			  const char *qname, uint16_t qtype, const char *action,
			  const char *client)
{
	char tbuf[16];
	const char *tname;
	struct fold_key k;
	struct members m;

	if (!ev || (unsigned int)reason >= EVENTS_REASON_MAX)
		return;
	ev->counts[EVENTS_LAYER_DNS][reason]++;
	if (ev->deny_cb && qname && action && !strcmp(action, "nxdomain"))
		ev->deny_cb(ev->deny_arg, qname);
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
	fold_report(ev, &k, m.buf, m.len, 1);
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
	const char *rule; /* NULL: no member */
	int family; /* AF_INET or AF_INET6 */
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
	/* The log keeps 4/6 (DESIGN.md §6), whatever the API takes. */
	M_LIT(m, "\",\"family\":");
	m_put(m, f->family == AF_INET6 ? "6" : "4", 1);
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
	if (f->rule) {
		M_LIT(m, ",\"rule\":");
		if (m_str(m, f->rule))
			return -EILSEQ;
	}
	return 0;
}

void events_packet_violation(struct events *ev, enum events_reason reason,
			     int family, int proto, const void *src,
			     uint16_t sport, const void *dst, uint16_t dport,
			     const char *domain, const char *action,
			     uint64_t packets)
{
	events_packet_violation_rule(ev, reason, family, proto, src, sport, dst,
				     dport, domain, NULL, action, packets);
}

void events_packet_violation_rule(struct events *ev, enum events_reason reason,
				  int family, int proto, const void *src,
				  uint16_t sport, const void *dst,
				  uint16_t dport, const char *domain,
				  const char *rule, const char *action,
				  uint64_t packets)
{
	char sbuf[INET6_ADDRSTRLEN], dbuf[INET6_ADDRSTRLEN], pbuf[12];
	int af = family == AF_INET6 ? AF_INET6 : AF_INET;
	struct pkt_fields f;
	struct fold_key k;
	struct members m;

	if (!ev || (unsigned int)reason >= EVENTS_REASON_MAX)
		return;
	ev->counts[EVENTS_LAYER_PACKET][reason] += packets ? packets : 1;
	if (!action || !log_enabled(LOG_LVL_WARN))
		return;
	if (!inet_ntop(af, src, sbuf, sizeof(sbuf)))
		strcpy(sbuf, "?");
	if (!inet_ntop(af, dst, dbuf, sizeof(dbuf)))
		strcpy(dbuf, "?");
	f.reason = reason_name(reason);
	f.action = action;
	f.proto = proto_name(proto, pbuf, sizeof(pbuf));
	f.family = af;
	f.dst = dbuf;
	f.dport = dport;
	f.src = sbuf;
	f.sport = sport;
	f.domain = domain;
	f.rule = rule;
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
	fold_report(ev, &k, m.buf, m.len, packets ? packets : 1);
	m_done(&m);
}

uint64_t events_count(const struct events *ev, const char *layer,
		      enum events_reason reason)
{
	int l = strcmp(layer, "dns") ? EVENTS_LAYER_PACKET : EVENTS_LAYER_DNS;

	if (!ev || (unsigned int)reason >= EVENTS_REASON_MAX)
		return 0;
	return ev->counts[l][reason];
}
