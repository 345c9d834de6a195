// SPDX-License-Identifier: GPL-2.0-only
/*
 * fakedns: a small, fast fake authoritative DNS server for the integration
 * tests and benchmarks. It plays the "upstream resolver" that egressd
 * forwards to: it answers from a zone file, logs every query it receives
 * (so a test can prove a denied name never left the sandbox), and can
 * simulate a dead upstream (--drop), a broken one (--servfail), one that
 * refuses to recurse for us (--refuse) and large or truncated answers
 * (--big, --truncate-over). UDP is served with
 * recvmmsg/sendmmsg batches because the same binary is the upstream of the
 * dnsperf benchmark; TCP connections are pipelined. libc only, one file.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_A 1
#define T_CNAME 5
#define T_TXT 16
#define T_AAAA 28
#define T_OPT 41
#define T_ANY 255

#define RC_NOERROR 0
#define RC_FORMERR 1
#define RC_SERVFAIL 2
#define RC_NXDOMAIN 3
#define RC_NOTIMP 4
#define RC_REFUSED 5

#define MAX_LISTEN 16
#define BATCH 64
#define UDP_BUF 4096 /* receive buffer and our EDNS payload size */
#define EDNS_SIZE 4096
#define TCP_MSG_MAX 65535
#define TCP_MAX_CONNS 1024
#define TCP_OUT_MAX (4u << 20) /* close a client that never reads */
#define BIG_MAX 500
#define BIG_TXT_LEN 100
#define CNAME_CHAIN_MAX 8

struct rr {
	uint16_t type;
	uint16_t rdlen;
	uint32_t ttl;
	uint8_t *rdata; /* wire format; CNAME: uncompressed name */
	char *target; /* CNAME only: lowercase dotted target */
	struct rr *next;
};

struct zname {
	char *name; /* lowercase, no trailing dot, "" is the root */
	struct rr *head, *tail;
};

struct zone {
	struct zname *slots;
	size_t nslots, used;
};

struct query {
	uint16_t id;
	uint16_t flags;
	const uint8_t *qsec; /* question section as received */
	size_t qsec_len; /* name + type + class */
	char lname[1024]; /* lowercase dotted name for lookups */
	char pname[1024]; /* printable name as received (logged lower-cased) */
	uint16_t qtype, qclass;
	bool has_opt;
	uint16_t udp_size;
	bool do_bit;
};

enum ep_kind { EP_UDP, EP_TCP_LISTEN, EP_TCP_CONN, EP_SIGNAL };

struct ep {
	enum ep_kind kind;
	int fd;
};

struct tcp_conn {
	struct ep ep; /* first member: epoll data points here */
	uint8_t *in;
	size_t inlen;
	uint8_t *out;
	size_t outlen, outoff, outcap;
	bool want_out;
};

static struct {
	struct zone zone;
	uint32_t ttl;
	FILE *log;
	bool drop;
	int fail_rcode; /* answer everything with it (0: off) */
	size_t truncate_over; /* 0: off */
	const char *pidfile;
	int epfd;
	unsigned int nconns;
	bool quit;
} g = { .ttl = 300 };

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("fakedns: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die("out of memory");
	return p;
}

/* ---- zone ------------------------------------------------------------- */

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static struct zname *zone_find(const struct zone *z, const char *name)
{
	size_t i;

	if (!z->nslots)
		return NULL;
	i = hash_name(name) & (z->nslots - 1);
	while (z->slots[i].name) {
		if (!strcmp(z->slots[i].name, name))
			return &z->slots[i];
		i = (i + 1) & (z->nslots - 1);
	}
	return NULL;
}

static void zone_grow(struct zone *z)
{
	struct zname *old = z->slots;
	size_t oldn = z->nslots, i;

	z->nslots = oldn ? oldn * 2 : 64;
	z->slots = calloc(z->nslots, sizeof(*z->slots));
	if (!z->slots)
		die("out of memory");
	for (i = 0; i < oldn; i++) {
		size_t j;

		if (!old[i].name)
			continue;
		j = hash_name(old[i].name) & (z->nslots - 1);
		while (z->slots[j].name)
			j = (j + 1) & (z->nslots - 1);
		z->slots[j] = old[i];
	}
	free(old);
}

static void zone_add(struct zone *z, const char *name, struct rr *rr)
{
	struct zname *zn = zone_find(z, name);
	size_t i;

	if (!zn) {
		if ((z->used + 1) * 2 > z->nslots)
			zone_grow(z);
		i = hash_name(name) & (z->nslots - 1);
		while (z->slots[i].name)
			i = (i + 1) & (z->nslots - 1);
		zn = &z->slots[i];
		zn->name = xstrdup(name);
		z->used++;
	}
	rr->next = NULL;
	if (zn->tail)
		zn->tail->next = rr;
	else
		zn->head = rr;
	zn->tail = rr;
}

/* Lowercase, drop one trailing dot. Returns false on an unusable name. */
static bool norm_name(const char *in, char *out, size_t outsz)
{
	size_t n = strlen(in), i;

	if (n && in[n - 1] == '.')
		n--;
	if (n >= outsz || n > 253)
		return false;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[n] = '\0';
	return true;
}

/* Dotted name to uncompressed wire format. Returns length or -1. */
static int name_to_wire(const char *name, uint8_t *out, size_t outsz)
{
	size_t pos = 0;
	const char *p = name;

	while (*p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);

		if (len == 0 || len > 63 || pos + 1 + len + 1 > outsz)
			return -1;
		out[pos++] = (uint8_t)len;
		memcpy(out + pos, p, len);
		pos += len;
		p += len;
		if (*p == '.')
			p++;
	}
	if (pos + 1 > outsz)
		return -1;
	out[pos++] = 0;
	return (int)pos;
}

static struct rr *rr_new(uint16_t type, uint32_t ttl, const void *rdata,
			 size_t rdlen)
{
	struct rr *rr = xmalloc(sizeof(*rr));

	memset(rr, 0, sizeof(*rr));
	rr->type = type;
	rr->ttl = ttl;
	rr->rdlen = (uint16_t)rdlen;
	rr->rdata = xmalloc(rdlen);
	memcpy(rr->rdata, rdata, rdlen);
	return rr;
}

/* TXT rdata: the text split into <=255-byte character-strings. */
static size_t txt_rdata(const char *text, uint8_t *out, size_t outsz)
{
	size_t len = strlen(text), pos = 0;

	do {
		size_t chunk = len > 255 ? 255 : len;

		if (pos + 1 + chunk > outsz)
			die("TXT value too long");
		out[pos++] = (uint8_t)chunk;
		memcpy(out + pos, text, chunk);
		pos += chunk;
		text += chunk;
		len -= chunk;
	} while (len);
	return pos;
}

/* Split a zone line into whitespace-separated tokens; "..." may hold spaces. */
static int tokenize(char *line, char **tok, int max)
{
	int n = 0;
	char *p = line;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (!*p || *p == '#' || *p == ';')
			break;
		if (n == max)
			return -1;
		if (*p == '"') {
			char *end = strchr(p + 1, '"');

			if (!end)
				return -1;
			tok[n++] = p + 1;
			*end = '\0';
			p = end + 1;
			continue;
		}
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r' &&
		       *p != '\n')
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static bool parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static void zone_load(struct zone *z, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096], name[256];
	unsigned int lineno = 0;

	if (!f)
		die("cannot open zone %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *tok[5];
		uint8_t rd[2048];
		size_t rdlen = 0;
		uint16_t type;
		uint32_t ttl = g.ttl;
		struct rr *rr;
		char target[256] = "";
		int n;

		lineno++;
		n = tokenize(line, tok, 5);
		if (n == 0)
			continue;
		if (n < 3 || n > 4)
			die("%s:%u: expected 'name TYPE value [ttl]'", path,
			    lineno);
		if (!norm_name(tok[0], name, sizeof(name)))
			die("%s:%u: bad name '%s'", path, lineno, tok[0]);
		if (n == 4 && !parse_u32(tok[3], &ttl))
			die("%s:%u: bad ttl '%s'", path, lineno, tok[3]);
		if (!strcasecmp(tok[1], "A")) {
			type = T_A;
			if (inet_pton(AF_INET, tok[2], rd) != 1)
				die("%s:%u: bad IPv4 '%s'", path, lineno,
				    tok[2]);
			rdlen = 4;
		} else if (!strcasecmp(tok[1], "AAAA")) {
			type = T_AAAA;
			if (inet_pton(AF_INET6, tok[2], rd) != 1)
				die("%s:%u: bad IPv6 '%s'", path, lineno,
				    tok[2]);
			rdlen = 16;
		} else if (!strcasecmp(tok[1], "CNAME")) {
			int w;

			type = T_CNAME;
			if (!norm_name(tok[2], target, sizeof(target)) ||
			    (w = name_to_wire(target, rd, sizeof(rd))) < 0)
				die("%s:%u: bad CNAME target '%s'", path,
				    lineno, tok[2]);
			rdlen = (size_t)w;
		} else if (!strcasecmp(tok[1], "TXT")) {
			type = T_TXT;
			rdlen = txt_rdata(tok[2], rd, sizeof(rd));
		} else {
			die("%s:%u: unsupported type '%s' (A, AAAA, CNAME, TXT)",
			    path, lineno, tok[1]);
		}
		rr = rr_new(type, ttl, rd, rdlen);
		if (type == T_CNAME)
			rr->target = xstrdup(target);
		zone_add(z, name, rr);
	}
	fclose(f);
}

static void zone_add_big(struct zone *z, const char *arg)
{
	const char *eq = strrchr(arg, '=');
	char name[256], raw[256], text[BIG_TXT_LEN + 1];
	uint32_t n, i;

	if (!eq || (size_t)(eq - arg) >= sizeof(raw))
		die("--big wants NAME=N");
	memcpy(raw, arg, (size_t)(eq - arg));
	raw[eq - arg] = '\0';
	if (!norm_name(raw, name, sizeof(name)) || !parse_u32(eq + 1, &n) ||
	    n == 0 || n > BIG_MAX)
		die("--big wants NAME=N with 1 <= N <= %d", BIG_MAX);
	for (i = 0; i < n; i++) {
		uint8_t rd[BIG_TXT_LEN + 1];
		size_t len;

		snprintf(text, sizeof(text), "big-%05u-", i);
		len = strlen(text);
		memset(text + len, 'x', BIG_TXT_LEN - len);
		text[BIG_TXT_LEN] = '\0';
		len = txt_rdata(text, rd, sizeof(rd));
		zone_add(z, name, rr_new(T_TXT, g.ttl, rd, len));
	}
}

/* Exact name, else the nearest "*.parent" wildcard. */
static struct zname *zone_lookup(const struct zone *z, const char *name)
{
	struct zname *zn = zone_find(z, name);
	char wild[1030];
	const char *p = name;

	if (zn)
		return zn;
	while (*p) {
		const char *dot = strchr(p, '.');

		if (!dot)
			break;
		p = dot + 1;
		snprintf(wild, sizeof(wild), "*.%s", p);
		zn = zone_find(z, wild);
		if (zn)
			return zn;
	}
	return NULL;
}

/* ---- wire ------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static const char *type_name(uint16_t t, char *buf, size_t sz)
{
	switch (t) {
	case T_A:
		return "A";
	case T_AAAA:
		return "AAAA";
	case T_CNAME:
		return "CNAME";
	case T_TXT:
		return "TXT";
	case 2:
		return "NS";
	case 6:
		return "SOA";
	case 12:
		return "PTR";
	case 15:
		return "MX";
	case 33:
		return "SRV";
	case 64:
		return "SVCB";
	case 65:
		return "HTTPS";
	case T_ANY:
		return "ANY";
	}
	snprintf(buf, sz, "TYPE%u", t);
	return buf;
}

/* Skip a (possibly compressed) name; returns new offset or 0 on error. */
static size_t skip_name(const uint8_t *m, size_t len, size_t off)
{
	unsigned int hops = 0;

	while (off < len) {
		uint8_t l = m[off];

		if ((l & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : 0;
		if (l & 0xc0)
			return 0;
		off += 1u + l;
		if (l == 0)
			return off;
		if (++hops > 127)
			return 0;
	}
	return 0;
}

/*
 * Parse a query. Returns 0, or an rcode to answer with (FORMERR/NOTIMP),
 * or -1 when the packet must be ignored (too short, or a response).
 */
static int parse_query(const uint8_t *m, size_t len, struct query *q)
{
	size_t off = 12, lp = 0, pp = 0;
	uint16_t qd, an, ns, ar, i;

	q->has_opt = false;
	q->qsec = NULL;
	q->qsec_len = 0;
	q->lname[0] = q->pname[0] = '\0';
	q->qtype = 0;
	if (len < 12)
		return -1;
	q->id = get16(m);
	q->flags = get16(m + 2);
	if (q->flags & 0x8000)
		return -1;
	qd = get16(m + 4);
	an = get16(m + 6);
	ns = get16(m + 8);
	ar = get16(m + 10);
	if (qd != 1)
		return RC_FORMERR;
	for (;;) {
		uint8_t l;

		if (off >= len)
			return RC_FORMERR;
		l = m[off];
		if (l & 0xc0)
			return RC_FORMERR; /* no compression in a question */
		if (l == 0) {
			off++;
			break;
		}
		if (off + 1 + l > len || lp + l + 1 >= sizeof(q->lname) ||
		    pp + 4u * l + 1 >= sizeof(q->pname))
			return RC_FORMERR;
		if (lp) {
			q->lname[lp++] = '.';
			q->pname[pp++] = '.';
		}
		for (i = 0; i < l; i++) {
			unsigned char c = m[off + 1 + i];

			q->lname[lp++] = (char)tolower(c);
			if (c == '.' || c == '\\') {
				q->pname[pp++] = '\\';
				q->pname[pp++] = (char)c;
			} else if (c <= ' ' || c >= 0x7f) {
				pp += (size_t)sprintf(q->pname + pp, "\\%03u",
						      c);
			} else {
				q->pname[pp++] = (char)c;
			}
		}
		off += 1u + l;
	}
	q->lname[lp] = '\0';
	q->pname[pp] = '\0';
	if (off + 4 > len)
		return RC_FORMERR;
	q->qtype = get16(m + off);
	q->qclass = get16(m + off + 2);
	q->qsec = m + 12;
	q->qsec_len = off + 4 - 12;
	off += 4;
	if (((q->flags >> 11) & 0xf) != 0)
		return RC_NOTIMP;
	/* Look for an OPT record among the remaining records. */
	for (i = 0; i < (uint32_t)an + ns + ar; i++) {
		uint16_t type, rdlen;
		size_t noff = skip_name(m, len, off);

		if (!noff || noff + 10 > len)
			return RC_FORMERR;
		type = get16(m + noff);
		rdlen = get16(m + noff + 8);
		if (noff + 10 + rdlen > len)
			return RC_FORMERR;
		if (type == T_OPT && i >= (uint32_t)an + ns) {
			q->has_opt = true;
			q->udp_size = get16(m + noff + 2);
			q->do_bit = (m[noff + 6] & 0x80) != 0;
		}
		off = noff + 10 + rdlen;
	}
	return 0;
}

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
};

static void wb_put(struct wbuf *w, const void *data, size_t n)
{
	if (w->overflow || w->len + n > w->cap) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->len, data, n);
	w->len += n;
}

static void wb_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2];

	put16(b, v);
	wb_put(w, b, 2);
}

static void wb_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	put32(b, v);
	wb_put(w, b, 4);
}

/* Header + question (+ OPT later). */
static void put_head(struct wbuf *w, const struct query *q, int rcode, bool tc)
{
	uint16_t flags = 0x8000 | 0x0400 | 0x0080; /* QR, AA, RA */

	flags |= q->flags & 0x0100; /* RD */
	flags |= (uint16_t)(q->flags & 0x7800); /* opcode */
	if (tc)
		flags |= 0x0200;
	flags |= (uint16_t)(rcode & 0xf);
	wb_u16(w, q->id);
	wb_u16(w, flags);
	wb_u16(w, q->qsec ? 1 : 0);
	wb_u16(w, 0);
	wb_u16(w, 0);
	wb_u16(w, 0);
	if (q->qsec)
		wb_put(w, q->qsec, q->qsec_len);
}

static void put_opt(struct wbuf *w, const struct query *q, uint16_t *arcount)
{
	if (!q->has_opt)
		return;
	wb_put(w, "", 1);
	wb_u16(w, T_OPT);
	wb_u16(w, EDNS_SIZE);
	wb_u32(w, q->do_bit ? 0x8000 : 0);
	wb_u16(w, 0);
	(*arcount)++;
}

static void set_counts(struct wbuf *w, uint16_t an, uint16_t ar)
{
	if (w->overflow)
		return;
	put16(w->p + 6, an);
	put16(w->p + 10, ar);
}

/*
 * Build the answer to a parsed query into out (cap bytes). Returns the
 * length; if the full answer does not fit in cap (UDP limit), a TC=1 reply
 * without answers is built instead.
 */
static size_t build_answer(const struct query *q, int prc, uint8_t *out,
			   size_t cap)
{
	struct wbuf w = { .p = out, .cap = cap };
	uint16_t an = 0, ar = 0;
	const struct zname *zn;
	size_t owner = 12; /* offset of the current owner name */
	unsigned int hops;
	int rcode;

	if (prc > 0 || g.fail_rcode) {
		put_head(&w, q, prc > 0 ? prc : g.fail_rcode, false);
		put_opt(&w, q, &ar);
		set_counts(&w, 0, ar);
		return w.overflow ? 0 : w.len;
	}
	zn = q->qclass == 1 || q->qclass == T_ANY ?
		     zone_lookup(&g.zone, q->lname) :
		     NULL;
	rcode = zn ? RC_NOERROR : RC_NXDOMAIN;
	put_head(&w, q, rcode, false);
	for (hops = 0; zn && hops < CNAME_CHAIN_MAX; hops++) {
		const struct rr *rr, *cname = NULL;

		for (rr = zn->head; rr; rr = rr->next)
			if (rr->type == T_CNAME && q->qtype != T_CNAME)
				cname = rr;
		for (rr = zn->head; rr; rr = rr->next) {
			if (cname ? rr != cname :
				    (rr->type != q->qtype && q->qtype != T_ANY))
				continue;
			wb_u16(&w, (uint16_t)(0xc000 | owner));
			wb_u16(&w, rr->type);
			wb_u16(&w, 1);
			wb_u32(&w, rr->ttl);
			wb_u16(&w, rr->rdlen);
			if (rr == cname && w.len < 0x3fff)
				owner = w.len;
			wb_put(&w, rr->rdata, rr->rdlen);
			an++;
		}
		if (!cname)
			break;
		zn = zone_find(&g.zone, cname->target);
	}
	put_opt(&w, q, &ar);
	if (w.overflow) {
		/* Does not fit: TC=1, no answers (the client retries on TCP). */
		w.len = 0;
		w.overflow = false;
		put_head(&w, q, rcode, true);
		an = ar = 0;
		put_opt(&w, q, &ar);
	}
	set_counts(&w, an, ar);
	return w.overflow ? 0 : w.len;
}

static void log_query(const char *proto, const struct query *q, int prc)
{
	char tb[16];

	if (!g.log)
		return;
	if (!q->qsec) {
		/* Unparsable, a response, or no question: logged too, so a
		 * test can tell that something odd was forwarded. */
		fprintf(g.log, "%s - -\n", proto);
	} else {
		/* Lower case: egressd sends names in random case (0x20), and
		 * tests compare names, not their case. */
		char lower[sizeof(q->pname)];
		size_t i;

		for (i = 0; q->pname[i]; i++)
			lower[i] = (char)tolower((unsigned char)q->pname[i]);
		lower[i] = '\0';
		fprintf(g.log, "%s %s %s\n", proto, lower[0] ? lower : ".",
			type_name(q->qtype, tb, sizeof(tb)));
	}
	fflush(g.log);
}

/* Handle one message; returns the reply length, 0 for no reply. */
static size_t handle(const char *proto, const uint8_t *m, size_t len,
		     uint8_t *out, size_t outcap, bool udp)
{
	struct query q;
	int prc = parse_query(m, len, &q);
	size_t limit = outcap;

	log_query(proto, &q, prc);
	if (prc < 0 || g.drop)
		return 0;
	if (udp) {
		limit = 512;
		if (q.has_opt && q.udp_size > 512)
			limit = q.udp_size;
		if (limit > EDNS_SIZE)
			limit = EDNS_SIZE;
		if (g.truncate_over && g.truncate_over < limit)
			limit = g.truncate_over;
		if (limit > outcap)
			limit = outcap;
	}
	return build_answer(&q, prc, out, limit);
}

/* ---- sockets ---------------------------------------------------------- */

static int parse_addr(const char *arg, struct sockaddr_storage *ss,
		      socklen_t *sl)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *port = NULL, *colon = strchr(arg, ':');
	uint32_t portnum = 53;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (arg[0] == '[') {
		const char *end = strchr(arg, ']');

		if (!end || (size_t)(end - arg - 1) >= sizeof(host))
			return -1;
		memcpy(host, arg + 1, (size_t)(end - arg - 1));
		host[end - arg - 1] = '\0';
		if (end[1] == ':')
			port = end + 2;
		else if (end[1])
			return -1;
	} else if (colon && !strchr(colon + 1, ':')) {
		if ((size_t)(colon - arg) >= sizeof(host))
			return -1;
		memcpy(host, arg, (size_t)(colon - arg));
		host[colon - arg] = '\0';
		port = colon + 1;
	} else {
		if (strlen(arg) >= sizeof(host))
			return -1;
		strcpy(host, arg);
	}
	if (port &&
	    (!parse_u32(port, &portnum) || portnum == 0 || portnum > 65535))
		return -1;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)portnum);
		*sl = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)portnum);
		*sl = sizeof(*s6);
		return 0;
	}
	return -1;
}

static void ep_add(struct ep *ep, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = ep };

	if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, ep->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static int open_sock(const char *arg, const struct sockaddr_storage *ss,
		     socklen_t sl, int type)
{
	int one = 1, buf = 4 << 20;
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket for %s: %s", arg, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (type == SOCK_DGRAM) {
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf,
			       sizeof(buf)))
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf,
				   sizeof(buf));
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf,
			       sizeof(buf)))
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf,
				   sizeof(buf));
	}
	if (bind(fd, (const struct sockaddr *)ss, sl) < 0)
		die("bind %s (%s): %s", arg, type == SOCK_DGRAM ? "udp" : "tcp",
		    strerror(errno));
	if (type == SOCK_STREAM && listen(fd, 128) < 0)
		die("listen %s: %s", arg, strerror(errno));
	return fd;
}

/* UDP: drain the socket in recvmmsg batches, answer with sendmmsg. */
static void udp_ready(int fd)
{
	static uint8_t inb[BATCH][UDP_BUF], outb[BATCH][UDP_BUF];
	static struct sockaddr_storage from[BATCH];
	static struct mmsghdr rm[BATCH], sm[BATCH];
	static struct iovec riov[BATCH], siov[BATCH];
	int rounds, i, n, ns, sent;

	for (rounds = 0; rounds < 64; rounds++) {
		for (i = 0; i < BATCH; i++) {
			riov[i].iov_base = inb[i];
			riov[i].iov_len = UDP_BUF;
			memset(&rm[i].msg_hdr, 0, sizeof(rm[i].msg_hdr));
			rm[i].msg_hdr.msg_name = &from[i];
			rm[i].msg_hdr.msg_namelen = sizeof(from[i]);
			rm[i].msg_hdr.msg_iov = &riov[i];
			rm[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(fd, rm, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		ns = 0;
		for (i = 0; i < n; i++) {
			size_t r = handle("udp", inb[i], rm[i].msg_len,
					  outb[ns], UDP_BUF, true);

			if (!r)
				continue;
			siov[ns].iov_base = outb[ns];
			siov[ns].iov_len = r;
			memset(&sm[ns].msg_hdr, 0, sizeof(sm[ns].msg_hdr));
			sm[ns].msg_hdr.msg_name = &from[i];
			sm[ns].msg_hdr.msg_namelen = rm[i].msg_hdr.msg_namelen;
			sm[ns].msg_hdr.msg_iov = &siov[ns];
			sm[ns].msg_hdr.msg_iovlen = 1;
			ns++;
		}
		for (sent = 0; sent < ns;) {
			int r = sendmmsg(fd, sm + sent,
					 (unsigned int)(ns - sent), 0);

			if (r > 0)
				sent += r;
			else if (r < 0 && errno == EINTR)
				continue;
			else
				sent++; /* skip the message that failed */
		}
		if (n < BATCH)
			return;
	}
}

static void conn_close(struct tcp_conn *c)
{
	close(c->ep.fd); /* also removes it from epoll */
	free(c->in);
	free(c->out);
	free(c);
	g.nconns--;
}

static void conn_update(struct tcp_conn *c)
{
	bool want = c->outlen > c->outoff;
	struct epoll_event ev = { .data.ptr = c };

	if (want == c->want_out)
		return;
	c->want_out = want;
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->ep.fd, &ev);
}

/* Returns false when the connection was closed. */
static bool conn_flush(struct tcp_conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->ep.fd, c->out + c->outoff,
				 c->outlen - c->outoff, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c);
			return false;
		}
		c->outoff += (size_t)w;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	conn_update(c);
	return true;
}

static void conn_queue(struct tcp_conn *c, const uint8_t *msg, size_t len)
{
	size_t need = c->outlen + 2 + len;

	if (need > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;

		while (cap < need)
			cap *= 2;
		c->out = realloc(c->out, cap);
		if (!c->out)
			die("out of memory");
		c->outcap = cap;
	}
	put16(c->out + c->outlen, (uint16_t)len);
	memcpy(c->out + c->outlen + 2, msg, len);
	c->outlen += 2 + len;
}

static void conn_ready(struct tcp_conn *c, uint32_t events)
{
	static uint8_t reply[TCP_MSG_MAX];

	if (events & EPOLLIN) {
		for (;;) {
			ssize_t r = recv(c->ep.fd, c->in + c->inlen,
					 2 + TCP_MSG_MAX - c->inlen, 0);
			size_t off = 0;

			if (r == 0 ||
			    (r < 0 && errno != EINTR && errno != EAGAIN &&
			     errno != EWOULDBLOCK)) {
				conn_close(c);
				return;
			}
			if (r < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			c->inlen += (size_t)r;
			/* Answer every complete message (pipelining). */
			while (c->inlen - off >= 2) {
				size_t mlen = get16(c->in + off), n;

				if (c->inlen - off < 2 + mlen)
					break;
				n = handle("tcp", c->in + off + 2, mlen, reply,
					   sizeof(reply), false);
				if (n)
					conn_queue(c, reply, n);
				off += 2 + mlen;
			}
			memmove(c->in, c->in + off, c->inlen - off);
			c->inlen -= off;
			if (c->outlen - c->outoff > TCP_OUT_MAX) {
				conn_close(c);
				return;
			}
		}
	}
	if (c->outlen > c->outoff || (events & EPOLLOUT))
		conn_flush(c);
}

static void tcp_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct tcp_conn *c;
		int one = 1;

		if (fd < 0)
			return;
		if (g.nconns >= TCP_MAX_CONNS) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = xmalloc(sizeof(*c));
		memset(c, 0, sizeof(*c));
		c->ep.kind = EP_TCP_CONN;
		c->ep.fd = fd;
		c->in = xmalloc(2 + TCP_MSG_MAX);
		g.nconns++;
		ep_add(&c->ep, EPOLLIN);
	}
}

static void usage(FILE *f)
{
	fputs("usage: fakedns --listen ADDR[:PORT] [--listen ...] [options]\n"
	      "  --listen ADDR     IPv4 or IPv6 address; ADDR:PORT, [V6]:PORT (port 53)\n"
	      "  --zone FILE       lines 'name TYPE value [ttl]', TYPE A|AAAA|CNAME|TXT;\n"
	      "                    '*.suffix' names are wildcards; # comments\n"
	      "  --ttl N           default TTL (300)\n"
	      "  --log FILE        one line per query: 'udp|tcp qname qtype'\n"
	      "                    ('udp|tcp - -' for a packet without a parsable question)\n"
	      "  --drop            never answer (a dead upstream)\n"
	      "  --servfail        answer SERVFAIL to everything\n"
	      "  --refuse          answer REFUSED to everything\n"
	      "  --truncate-over N UDP answers longer than N bytes get TC=1\n"
	      "  --big NAME=N      answer NAME with N TXT records of 100 bytes\n"
	      "  --pidfile FILE    written once every socket is bound\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "zone", required_argument, NULL, 'z' },
		{ "ttl", required_argument, NULL, 't' },
		{ "log", required_argument, NULL, 'L' },
		{ "drop", no_argument, NULL, 'd' },
		{ "servfail", no_argument, NULL, 's' },
		{ "refuse", no_argument, NULL, 'r' },
		{ "truncate-over", required_argument, NULL, 'T' },
		{ "big", required_argument, NULL, 'b' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen[MAX_LISTEN], *zones[16], *bigs[16];
	int nlisten = 0, nzones = 0, nbigs = 0, c, i;
	struct ep sigep = { .kind = EP_SIGNAL };
	sigset_t mask;
	uint32_t v;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (nlisten == MAX_LISTEN)
				die("too many --listen");
			listen[nlisten++] = optarg;
			break;
		case 'z':
			if (nzones == 16)
				die("too many --zone");
			zones[nzones++] = optarg;
			break;
		case 't':
			if (!parse_u32(optarg, &g.ttl))
				die("bad --ttl '%s'", optarg);
			break;
		case 'L':
			g.log = fopen(optarg, "a");
			if (!g.log)
				die("cannot open log %s: %s", optarg,
				    strerror(errno));
			break;
		case 'd':
			g.drop = true;
			break;
		case 's':
			g.fail_rcode = RC_SERVFAIL;
			break;
		case 'r':
			g.fail_rcode = RC_REFUSED;
			break;
		case 'T':
			if (!parse_u32(optarg, &v) || v < 12)
				die("bad --truncate-over '%s'", optarg);
			g.truncate_over = v;
			break;
		case 'b':
			if (nbigs == 16)
				die("too many --big");
			bigs[nbigs++] = optarg;
			break;
		case 'p':
			g.pidfile = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !nlisten) {
		usage(stderr);
		return 2;
	}
	/* TTL first, so zone lines without one get --ttl wherever it was given. */
	for (i = 0; i < nzones; i++)
		zone_load(&g.zone, zones[i]);
	for (i = 0; i < nbigs; i++)
		zone_add_big(&g.zone, bigs[i]);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g.epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	sigep.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigep.fd < 0)
		die("signalfd: %s", strerror(errno));
	ep_add(&sigep, EPOLLIN);

	for (i = 0; i < nlisten; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		static struct ep eps[2 * MAX_LISTEN];
		struct ep *u = &eps[2 * i], *t = &eps[2 * i + 1];

		if (parse_addr(listen[i], &ss, &sl) < 0)
			die("bad --listen '%s' (ADDR, ADDR:PORT or [V6]:PORT)",
			    listen[i]);
		u->kind = EP_UDP;
		u->fd = open_sock(listen[i], &ss, sl, SOCK_DGRAM);
		t->kind = EP_TCP_LISTEN;
		t->fd = open_sock(listen[i], &ss, sl, SOCK_STREAM);
		ep_add(u, EPOLLIN);
		ep_add(t, EPOLLIN);
	}
	if (g.pidfile) {
		FILE *f = fopen(g.pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f))
			die("cannot write pidfile %s", g.pidfile);
	}

	while (!g.quit) {
		struct epoll_event evs[64];
		int n = epoll_wait(g.epfd, evs, 64, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			struct ep *ep = evs[i].data.ptr;

			switch (ep->kind) {
			case EP_UDP:
				udp_ready(ep->fd);
				break;
			case EP_TCP_LISTEN:
				tcp_accept(ep->fd);
				break;
			case EP_TCP_CONN:
				/* Each fd appears once per batch: closing is safe. */
				conn_ready((struct tcp_conn *)ep,
					   evs[i].events);
				break;
			case EP_SIGNAL:
				g.quit = true;
				break;
			}
		}
	}
	if (g.pidfile)
		unlink(g.pidfile);
	if (g.log)
		fclose(g.log);
	return 0;
}
