// SPDX-License-Identifier: GPL-2.0-only
/*
 * DNS wire format parsing and reply building for the DNS proxy: pure
 * functions over byte buffers, no I/O, no allocation, every read bounds
 * checked. Names are handled internally in "flat" wire form (uncompressed,
 * length-prefixed labels, ASCII lower-cased, root label included, at most
 * 255 octets) so comparisons are exact memcmp()s and never depend on how a
 * name is escaped. Compression pointers must point into the message body
 * (never into the header) and each pointer of one name must point strictly
 * below the previous one (or below the name's own start for the first):
 * this makes loops impossible, and a hop limit bounds the work. The file
 * stays whole though it passes 1,000 lines: every entry point is built on
 * the same static name readers and record walkers, and keeping them
 * private to one file keeps the fuzzed surface in one place.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "egressd/dnswire.h"

/* Longest name in wire form, root label included (RFC 1035 3.1). */
#define DW_WIRE_MAX 255
#define DW_LABEL_MAX 63
/*
 * Pointers followed while reading one name. A 255-octet name has at most
 * 127 labels, so a legitimate name never needs more hops than that.
 */
#define DW_MAX_HOPS 127
/* CNAME hops followed from the question name; names on the chain. */
#define DW_CNAME_HOPS 16
#define DW_CHAIN_MAX (DW_CNAME_HOPS + 1)

#define DW_CLASS_IN 1
#define DW_OPT_UDP_SIZE 1232
#define DW_OPT_DO 0x8000
#define DW_OPT_LEN 11

/*
 * Worst case presentation form: every octet but the length bytes escaped
 * as \DDD (4 chars), a dot per length byte, and the NUL.
 */
_Static_assert(DNSWIRE_NAME_MAX >= 4 * (DW_WIRE_MAX - 1) + 1,
	       "DNSWIRE_NAME_MAX too small for an escaped 255-octet name");

/* Octets written verbatim in presentation form (after lower-casing). */
static const uint8_t dw_plain[256] = {
	['a' ... 'z'] = 1, ['0' ... '9'] = 1, ['-'] = 1, ['_'] = 1, ['*'] = 1,
};

static inline uint16_t dw_rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t dw_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline void dw_wr16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static inline void dw_wr32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = (v >> 16) & 0xff;
	p[2] = (v >> 8) & 0xff;
	p[3] = v & 0xff;
}

static inline uint8_t dw_lower(uint8_t c)
{
	return c + ((unsigned int)(c - 'A') < 26u ? 32 : 0);
}

/* RFC 2181 8: a TTL with the top bit set is to be treated as zero. */
static inline uint32_t dw_ttl(uint32_t ttl)
{
	return ttl & 0x80000000u ? 0 : ttl;
}

/*
 * Read the name at off into flat form (w, DW_WIRE_MAX bytes) and set *next
 * to the offset just past the name where it sits. Pointers may not point
 * into the header: a name there would change meaning once the header is
 * rewritten (a reply echoes the question bytes under new flags).
 */
static int dw_name_read(const uint8_t *msg, size_t len, size_t off, uint8_t *w,
			size_t *wlen, size_t *next)
{
	size_t pos = off, limit = off, n = 0, end = 0, i;
	unsigned int hops = 0;
	uint8_t c;

	for (;;) {
		if (pos >= len)
			return -EBADMSG;
		c = msg[pos];
		if (c == 0) {
			w[n++] = 0;
			*wlen = n;
			*next = hops ? end : pos + 1;
			return 0;
		}
		if ((c & 0xc0) == 0xc0) {
			size_t t;

			if (len - pos < 2)
				return -EBADMSG;
			t = (size_t)(c & 0x3f) << 8 | msg[pos + 1];
			if (t < DNSWIRE_HDR_LEN || t >= limit ||
			    ++hops > DW_MAX_HOPS)
				return -EBADMSG;
			if (hops == 1)
				end = pos + 2;
			pos = limit = t;
			continue;
		}
		if (c & 0xc0) /* 0x40 and 0x80: reserved label types */
			return -EBADMSG;
		/* label, its length byte, and the root still to come */
		if (len - pos - 1 < c || n + c + 2 > DW_WIRE_MAX)
			return -EBADMSG;
		w[n++] = c;
		for (i = 1; i <= c; i++)
			w[n++] = dw_lower(msg[pos + i]);
		pos += (size_t)c + 1;
	}
}

/*
 * Step over the name at off without following pointers (only the first
 * pointer's target is checked). Enough to walk records whose owner is not
 * needed.
 */
static int dw_name_skip(const uint8_t *msg, size_t len, size_t off,
			size_t *next)
{
	size_t pos = off, n = 0;
	uint8_t c;

	for (;;) {
		if (pos >= len)
			return -EBADMSG;
		c = msg[pos];
		if (c == 0) {
			*next = pos + 1;
			return 0;
		}
		if ((c & 0xc0) == 0xc0) {
			size_t t;

			if (len - pos < 2)
				return -EBADMSG;
			t = (size_t)(c & 0x3f) << 8 | msg[pos + 1];
			if (t < DNSWIRE_HDR_LEN || t >= off)
				return -EBADMSG;
			*next = pos + 2;
			return 0;
		}
		if (c & 0xc0)
			return -EBADMSG;
		n += (size_t)c + 1;
		if (n + 1 > DW_WIRE_MAX)
			return -EBADMSG;
		pos += (size_t)c + 1;
	}
}

/* Flat form to the escaped presentation form documented in dnswire.h. */
static size_t dw_wire_to_text(const uint8_t *w, char *out)
{
	char *o = out;
	size_t i = 0;
	uint8_t l, c;

	while ((l = w[i++]) != 0) {
		const uint8_t *p = w + i, *e = p + l;

		if (o != out)
			*o++ = '.';
		for (; p < e; p++) {
			c = *p;
			if (dw_plain[c]) {
				*o++ = (char)c;
			} else if (c == '.' || c == '\\') {
				*o++ = '\\';
				*o++ = (char)c;
			} else {
				*o++ = '\\';
				*o++ = (char)('0' + c / 100);
				*o++ = (char)('0' + c / 10 % 10);
				*o++ = (char)('0' + c % 10);
			}
		}
		i += l;
	}
	*o = '\0';
	return (size_t)(o - out);
}

/*
 * Presentation form (as dnswire_parse_query writes it, or hand-written:
 * any case, "\X" and "\DDD" escapes, an optional trailing dot) to flat
 * form. -EINVAL when it is not a valid name.
 */
static int dw_text_to_wire(const char *s, size_t n, uint8_t *w, size_t *wlen)
{
	size_t i = 0, o = 1, lab = 0;
	unsigned int v;
	uint8_t c;

	if (n == 1 && s[0] == '.')
		n = 0;
	if (n == 0) {
		w[0] = 0;
		*wlen = 1;
		return 0;
	}
	while (i < n) {
		c = (uint8_t)s[i++];
		if (c == '.') {
			if (o - lab - 1 == 0)
				return -EINVAL;
			w[lab] = (uint8_t)(o - lab - 1);
			if (i == n) /* trailing dot */
				goto done;
			if (o >= DW_WIRE_MAX - 1)
				return -EINVAL;
			lab = o++;
			continue;
		}
		if (c == '\\') {
			if (i >= n)
				return -EINVAL;
			c = (uint8_t)s[i++];
			if (c >= '0' && c <= '9') {
				if (n - i < 2 || s[i] < '0' || s[i] > '9' ||
				    s[i + 1] < '0' || s[i + 1] > '9')
					return -EINVAL;
				v = (c - '0') * 100u + (s[i] - '0') * 10u +
				    (s[i + 1] - '0');
				if (v > 255)
					return -EINVAL;
				c = (uint8_t)v;
				i += 2;
			}
		}
		if (o - lab - 1 >= DW_LABEL_MAX || o >= DW_WIRE_MAX - 1)
			return -EINVAL;
		w[o++] = dw_lower(c);
	}
	if (o - lab - 1 == 0)
		return -EINVAL;
	w[lab] = (uint8_t)(o - lab - 1);
done:
	w[o++] = 0;
	*wlen = o;
	return 0;
}

struct dw_rr {
	size_t owner; /* offset of the owner name */
	size_t ttl_off;
	size_t rdata; /* offset of the rdata */
	uint32_t ttl;
	uint16_t type;
	uint16_t rclass;
	uint16_t rdlen;
};

/*
 * Read the record at *off and advance *off past it. With name != NULL the
 * owner is decoded (pointers followed and checked) into it.
 */
static int dw_rr_next(const uint8_t *msg, size_t len, size_t *off,
		      struct dw_rr *rr, uint8_t *name, size_t *nlen)
{
	size_t p;
	int err;

	if (name)
		err = dw_name_read(msg, len, *off, name, nlen, &p);
	else
		err = dw_name_skip(msg, len, *off, &p);
	if (err)
		return err;
	if (len - p < 10)
		return -EBADMSG;
	rr->owner = *off;
	rr->type = dw_rd16(msg + p);
	rr->rclass = dw_rd16(msg + p + 2);
	rr->ttl_off = p + 4;
	rr->ttl = dw_rd32(msg + p + 4);
	rr->rdlen = dw_rd16(msg + p + 8);
	rr->rdata = p + 10;
	if (len - rr->rdata < rr->rdlen)
		return -EBADMSG;
	*off = rr->rdata + rr->rdlen;
	return 0;
}

/* Past qd questions (name, type, class) starting at *off. */
static int dw_questions_skip(const uint8_t *msg, size_t len, unsigned int qd,
			     size_t *off)
{
	unsigned int i;
	int err;

	for (i = 0; i < qd; i++) {
		err = dw_name_skip(msg, len, *off, off);
		if (err)
			return err;
		if (len - *off < 4)
			return -EBADMSG;
		*off += 4;
	}
	return 0;
}

static void dw_header(const uint8_t *msg, uint16_t *id, uint16_t *flags,
		      uint16_t *qd, uint16_t *an, uint16_t *ns, uint16_t *ar)
{
	*id = dw_rd16(msg);
	*flags = dw_rd16(msg + 2);
	*qd = dw_rd16(msg + 4);
	*an = dw_rd16(msg + 6);
	*ns = dw_rd16(msg + 8);
	*ar = dw_rd16(msg + 10);
}

/*
 * Records after the question are walked without following pointers; only
 * an OPT in the additional section is looked at. A second OPT, or an OPT
 * whose owner is not the root, is malformed (RFC 6891 6.1.1). Bytes after
 * the last counted record are ignored.
 */
int dnswire_parse_query(const uint8_t *msg, size_t len,
			struct dnswire_question *q)
{
	uint8_t w[DW_WIRE_MAX];
	size_t wlen, off;
	unsigned int i, nrec, ar_first;
	uint16_t qtype, qclass;
	struct dw_rr rr;
	int err;

	q->id = q->flags = 0;
	q->qdcount = q->ancount = q->nscount = q->arcount = 0;
	q->name[0] = '\0';
	q->name_len = 0;
	q->qtype = q->qclass = 0;
	q->question_end = 0;
	q->has_opt = false;
	q->opt_udp_size = 0;
	q->opt_version = 0;
	q->opt_do = false;

	if (len < DNSWIRE_HDR_LEN)
		return -EMSGSIZE;
	dw_header(msg, &q->id, &q->flags, &q->qdcount, &q->ancount, &q->nscount,
		  &q->arcount);
	if (q->qdcount != 1)
		return -EBADMSG;

	err = dw_name_read(msg, len, DNSWIRE_HDR_LEN, w, &wlen, &off);
	if (err)
		return err;
	if (len - off < 4)
		return -EBADMSG;
	qtype = dw_rd16(msg + off);
	qclass = dw_rd16(msg + off + 2);
	off += 4;

	nrec = (unsigned int)q->ancount + q->nscount + q->arcount;
	ar_first = (unsigned int)q->ancount + q->nscount;
	for (i = 0; i < nrec; i++) {
		err = dw_rr_next(msg, len, &off, &rr, NULL, NULL);
		if (err)
			goto clear_opt;
		if (rr.type != DNSWIRE_TYPE_OPT || i < ar_first)
			continue;
		if (q->has_opt || msg[rr.owner] != 0) {
			err = -EBADMSG;
			goto clear_opt;
		}
		q->has_opt = true;
		q->opt_udp_size = rr.rclass;
		q->opt_version = (rr.ttl >> 16) & 0xff;
		q->opt_do = rr.ttl & DW_OPT_DO;
	}

	/* Only a fully parsed query exposes its name and question_end. */
	q->name_len = dw_wire_to_text(w, q->name);
	q->qtype = qtype;
	q->qclass = qclass;
	q->question_end = DNSWIRE_HDR_LEN + wlen + 4;
	return 0;

clear_opt:
	q->has_opt = false;
	q->opt_udp_size = 0;
	q->opt_version = 0;
	q->opt_do = false;
	return err;
}

/*
 * Hot path of every denied query: a header, one memcpy of the question,
 * and an optional fixed OPT record. When q is NULL the rcode argument is
 * ignored and the reply is always FORMERR.
 */
ssize_t dnswire_build_reply(const uint8_t *msg, size_t len,
			    const struct dnswire_question *q, int rcode,
			    uint8_t *out, size_t outlen)
{
	uint16_t qflags = 0, flags;
	size_t qlen, need;
	uint8_t *p;

	if (!q) {
		if (!msg || len < 2)
			return -EINVAL;
		if (outlen < DNSWIRE_HDR_LEN)
			return -ENOSPC;
		if (len >= 4)
			qflags = dw_rd16(msg + 2);
		else if (len == 3)
			qflags = (uint16_t)(msg[2] << 8);
		flags = DNSWIRE_F_QR | DNSWIRE_F_RA | DNSWIRE_RCODE_FORMERR |
			(qflags & (DNSWIRE_F_OPCODE_MASK | DNSWIRE_F_RD));
		memset(out, 0, DNSWIRE_HDR_LEN);
		out[0] = msg[0];
		out[1] = msg[1];
		dw_wr16(out + 2, flags);
		return DNSWIRE_HDR_LEN;
	}

	if (!msg || rcode < 0 || rcode > 15 ||
	    q->question_end < DNSWIRE_HDR_LEN + 5 || q->question_end > len)
		return -EINVAL;
	qlen = q->question_end - DNSWIRE_HDR_LEN;
	need = q->question_end + (q->has_opt ? DW_OPT_LEN : 0);
	if (outlen < need)
		return -ENOSPC;

	qflags = dw_rd16(msg + 2);
	flags = DNSWIRE_F_QR | DNSWIRE_F_RA | (uint16_t)rcode |
		(qflags &
		 (DNSWIRE_F_OPCODE_MASK | DNSWIRE_F_RD | DNSWIRE_F_CD));
	out[0] = msg[0];
	out[1] = msg[1];
	dw_wr16(out + 2, flags);
	dw_wr16(out + 4, 1);
	memset(out + 6, 0, 4);
	dw_wr16(out + 10, q->has_opt ? 1 : 0);
	memcpy(out + DNSWIRE_HDR_LEN, msg + DNSWIRE_HDR_LEN, qlen);
	if (q->has_opt) {
		p = out + q->question_end;
		p[0] = 0; /* root owner */
		dw_wr16(p + 1, DNSWIRE_TYPE_OPT);
		dw_wr16(p + 3, DW_OPT_UDP_SIZE);
		dw_wr32(p + 5, q->opt_do ? DW_OPT_DO : 0); /* ext-rcode, ver */
		dw_wr16(p + 9, 0); /* no options */
	}
	return (ssize_t)need;
}

/* The CNAME chain from the question name, names in flat form. */
struct dw_chain {
	unsigned int n;
	uint8_t len[DW_CHAIN_MAX];
	uint32_t ttl[DW_CHAIN_MAX]; /* of the CNAME that added name i */
	uint8_t name[DW_CHAIN_MAX][DW_WIRE_MAX];
};

static bool dw_chain_has(const struct dw_chain *ch, const uint8_t *w,
			 size_t wlen)
{
	unsigned int i;

	for (i = 0; i < ch->n; i++)
		if (ch->len[i] == wlen && !memcmp(ch->name[i], w, wlen))
			return true;
	return false;
}

static bool dw_chain_is_tail(const struct dw_chain *ch, const uint8_t *w,
			     size_t wlen)
{
	unsigned int t = ch->n - 1;

	return ch->len[t] == wlen && !memcmp(ch->name[t], w, wlen);
}

/*
 * The owner of rr is the chain's tail: append the CNAME's target unless it
 * is already on the chain (a loop) or the chain is full. Returns 1 when
 * the chain grew, 0 if not, -EBADMSG when the target is malformed or does
 * not fill the rdata exactly.
 */
static int dw_chain_follow(struct dw_chain *ch, const uint8_t *msg, size_t len,
			   const struct dw_rr *rr)
{
	uint8_t *t;
	size_t tlen, next;
	int err;

	if (ch->n >= DW_CHAIN_MAX)
		return 0;
	t = ch->name[ch->n];
	err = dw_name_read(msg, len, rr->rdata, t, &tlen, &next);
	if (err)
		return err;
	if (next != rr->rdata + rr->rdlen)
		return -EBADMSG;
	if (dw_chain_has(ch, t, tlen))
		return 0;
	ch->len[ch->n] = (uint8_t)tlen;
	ch->ttl[ch->n] = dw_ttl(rr->ttl);
	ch->n++;
	return 1;
}

static void dw_add_addr(struct dnswire_response *r, const uint8_t *msg,
			const struct dw_rr *rr)
{
	struct dnswire_addr *a;

	if (r->n_addrs >= DNSWIRE_MAX_ADDRS) {
		r->addrs_truncated = true;
		return;
	}
	a = &r->addrs[r->n_addrs++];
	a->family = rr->type == DNSWIRE_TYPE_A ? AF_INET : AF_INET6;
	memset(a->addr, 0, sizeof(a->addr));
	memcpy(a->addr, msg + rr->rdata, rr->rdlen);
	a->ttl = dw_ttl(rr->ttl);
	if (a->ttl < r->min_ttl)
		r->min_ttl = a->ttl;
}

/*
 * One pass over the answer section usually suffices: the chain is
 * extended as CNAMEs are met and addresses are collected against the chain
 * so far. Only when the chain grows after a record was passed over (records
 * out of order) does the chain get completed by further passes and the
 * addresses collected again.
 *
 * TC=1: the answer section may be cut anywhere. The first record that does
 * not parse ends the section, and what came before it is used: the result
 * is 0 with r->tc set. A complete record that is itself malformed (A with
 * rdlength 5, a broken CNAME target) is still -EBADMSG. With TC=0 any
 * error in the answer section is -EBADMSG. The authority and additional
 * sections are not read.
 */
int dnswire_parse_response(const uint8_t *msg, size_t len,
			   const struct dnswire_question *q,
			   struct dnswire_response *r)
{
	uint16_t id, flags, qd, an, ns, ar;
	uint8_t w[DW_WIRE_MAX];
	struct dw_chain ch;
	size_t wlen, off, an_off;
	unsigned int i, an_ok;
	bool missed = false, rescan = false, grew;
	struct dw_rr rr;
	int err;

	r->id = r->flags = 0;
	r->rcode = 0;
	r->tc = false;
	r->n_addrs = 0;
	r->addrs_truncated = false;
	r->n_cnames = 0;
	r->min_ttl = UINT32_MAX;

	if (len < DNSWIRE_HDR_LEN)
		return -EMSGSIZE;
	dw_header(msg, &id, &flags, &qd, &an, &ns, &ar);
	r->id = id;
	r->flags = flags;
	r->rcode = flags & DNSWIRE_F_RCODE_MASK;
	r->tc = flags & DNSWIRE_F_TC;
	if (!(flags & DNSWIRE_F_QR) || qd != 1)
		return -EPROTO;
	if (q->name_len >= sizeof(q->name))
		return -EINVAL;
	err = dw_text_to_wire(q->name, q->name_len, ch.name[0], &wlen);
	if (err)
		return err;
	ch.len[0] = (uint8_t)wlen;
	ch.ttl[0] = UINT32_MAX;
	ch.n = 1;

	err = dw_name_read(msg, len, DNSWIRE_HDR_LEN, w, &wlen, &off);
	if (err)
		return err;
	if (len - off < 4)
		return -EBADMSG;
	if (wlen != ch.len[0] || memcmp(w, ch.name[0], wlen) ||
	    dw_rd16(msg + off) != q->qtype ||
	    dw_rd16(msg + off + 2) != q->qclass)
		return -EPROTO;
	an_off = off + 4;

	/* Pass 0: validate, build the chain, collect what matches. */
	off = an_off;
	for (an_ok = 0; an_ok < an; an_ok++) {
		err = dw_rr_next(msg, len, &off, &rr, w, &wlen);
		if (err) {
			if (r->tc)
				break;
			return err;
		}
		if (rr.rclass != DW_CLASS_IN)
			continue;
		if (rr.type == DNSWIRE_TYPE_A || rr.type == DNSWIRE_TYPE_AAAA) {
			if (rr.rdlen != (rr.type == DNSWIRE_TYPE_A ? 4 : 16))
				return -EBADMSG;
			if (dw_chain_has(&ch, w, wlen))
				dw_add_addr(r, msg, &rr);
			else
				missed = true;
		} else if (rr.type == DNSWIRE_TYPE_CNAME) {
			if (!dw_chain_is_tail(&ch, w, wlen)) {
				missed = true;
				continue;
			}
			err = dw_chain_follow(&ch, msg, len, &rr);
			if (err < 0)
				return err;
			if (err > 0 && missed)
				rescan = true;
		}
	}

	if (rescan) {
		do {
			grew = false;
			off = an_off;
			for (i = 0; i < an_ok; i++) {
				err = dw_rr_next(msg, len, &off, &rr, w, &wlen);
				if (err)
					return err;
				if (rr.type != DNSWIRE_TYPE_CNAME ||
				    rr.rclass != DW_CLASS_IN ||
				    !dw_chain_is_tail(&ch, w, wlen))
					continue;
				err = dw_chain_follow(&ch, msg, len, &rr);
				if (err < 0)
					return err;
				if (err > 0)
					grew = true;
			}
		} while (grew && ch.n < DW_CHAIN_MAX);

		r->n_addrs = 0;
		r->addrs_truncated = false;
		r->min_ttl = UINT32_MAX;
		off = an_off;
		for (i = 0; i < an_ok; i++) {
			err = dw_rr_next(msg, len, &off, &rr, w, &wlen);
			if (err)
				return err;
			if ((rr.type == DNSWIRE_TYPE_A ||
			     rr.type == DNSWIRE_TYPE_AAAA) &&
			    rr.rclass == DW_CLASS_IN &&
			    dw_chain_has(&ch, w, wlen))
				dw_add_addr(r, msg, &rr);
		}
	}

	r->n_cnames = ch.n - 1;
	for (i = 1; i < ch.n; i++)
		if (ch.ttl[i] < r->min_ttl)
			r->min_ttl = ch.ttl[i];
	return 0;
}

/*
 * Only the TTL field of each record is capped. The SOA MINIMUM field of a
 * negative answer (RFC 2308) is deliberately left alone: the negative
 * caching TTL is min(SOA TTL, MINIMUM), so capping the record TTL already
 * bounds it. OPT records are skipped wherever they are (their "TTL" holds
 * flags), and the additional section is not touched.
 */
int dnswire_cap_ttls(uint8_t *msg, size_t len, uint32_t max_ttl)
{
	uint16_t id, flags, qd, an, ns, ar;
	unsigned int i, nrec;
	struct dw_rr rr;
	size_t off;
	int err;

	if (len < DNSWIRE_HDR_LEN)
		return -EBADMSG;
	dw_header(msg, &id, &flags, &qd, &an, &ns, &ar);
	off = DNSWIRE_HDR_LEN;
	err = dw_questions_skip(msg, len, qd, &off);
	if (err)
		return err;
	nrec = (unsigned int)an + ns;
	for (i = 0; i < nrec; i++) {
		err = dw_rr_next(msg, len, &off, &rr, NULL, NULL);
		if (err)
			return err;
		if (rr.type != DNSWIRE_TYPE_OPT && rr.ttl > max_ttl)
			dw_wr32(msg + rr.ttl_off, max_ttl);
	}
	return 0;
}

/* ---- removing records ------------------------------------------------- */

struct dw_cut {
	size_t start, end;
};

/*
 * Where offset t of the original message lands once the cuts are made;
 * *inside set when t lies in a removed record.
 */
static size_t dw_cut_shift(const struct dw_cut *c, unsigned int n, size_t t,
			   bool *inside)
{
	size_t gone = 0;
	unsigned int i;

	for (i = 0; i < n && t >= c[i].start; i++) {
		if (t < c[i].end) {
			*inside = true;
			return 0;
		}
		gone += c[i].end - c[i].start;
	}
	return t - gone;
}

/*
 * Move the pointer (if any) that ends the name at off; with write false
 * only check that it can be moved. *next is the offset past the name.
 */
static int dw_cut_name(uint8_t *msg, size_t len, size_t off,
		       const struct dw_cut *c, unsigned int n, bool write,
		       size_t *next)
{
	size_t pos = off, t, nt;
	bool inside = false;
	uint8_t b;

	for (;;) {
		if (pos >= len)
			return -EBADMSG;
		b = msg[pos];
		if (b == 0) {
			*next = pos + 1;
			return 0;
		}
		if ((b & 0xc0) == 0xc0) {
			if (len - pos < 2)
				return -EBADMSG;
			t = (size_t)(b & 0x3f) << 8 | msg[pos + 1];
			if (t < DNSWIRE_HDR_LEN || t >= pos)
				return -EBADMSG;
			nt = dw_cut_shift(c, n, t, &inside);
			if (inside)
				return -ENOTSUP;
			if (write) {
				msg[pos] = (uint8_t)(0xc0 | nt >> 8);
				msg[pos + 1] = (uint8_t)nt;
			}
			*next = pos + 2;
			return 0;
		}
		if (b & 0xc0)
			return -EBADMSG;
		pos += (size_t)b + 1;
	}
}

/* Offsets of the names in the rdata of a type that may compress them. */
static unsigned int dw_rdata_names(uint16_t type, size_t *first)
{
	switch (type) {
	case 2:
	case 3:
	case 4:
	case 5:
	case 7:
	case 8:
	case 9:
	case 12:
	case 39: /* NS MD MF CNAME MB MG MR PTR DNAME */
		*first = 0;
		return 1;
	case 6:
	case 14:
	case 17: /* SOA MINFO RP: two names in a row */
		*first = 0;
		return 2;
	case 15:
	case 18:
	case 21: /* MX AFSDB RT: preference, name */
		*first = 2;
		return 1;
	case 33: /* SRV: priority, weight, port, name */
		*first = 6;
		return 1;
	}
	return 0;
}

/* Fix (or check) every name of the records after the first cut. */
static int dw_cut_fix(uint8_t *msg, size_t len, size_t rr_off,
		      unsigned int nrec, const struct dw_cut *c, unsigned int n,
		      bool write)
{
	size_t off = rr_off, next, first = 0, p;
	unsigned int i, k, names;
	bool cut;
	struct dw_rr rr;
	int err;

	for (i = 0; i < nrec; i++) {
		err = dw_rr_next(msg, len, &off, &rr, NULL, NULL);
		if (err)
			return err;
		if (rr.owner < c[0].start)
			continue;
		cut = false;
		dw_cut_shift(c, n, rr.owner, &cut);
		if (cut)
			continue;
		err = dw_cut_name(msg, len, rr.owner, c, n, write, &next);
		if (err)
			return err;
		names = dw_rdata_names(rr.type, &first);
		p = rr.rdata + first;
		for (k = 0; k < names && p < rr.rdata + rr.rdlen; k++) {
			err = dw_cut_name(msg, rr.rdata + rr.rdlen, p, c, n,
					  write, &p);
			if (err)
				return err;
		}
	}
	return 0;
}

ssize_t dnswire_strip_rrs(uint8_t *msg, size_t len, dnswire_rr_pred drop,
			  void *arg)
{
	uint16_t id, flags, qd, cnt[4];
	struct dw_cut cuts[DNSWIRE_STRIP_MAX];
	unsigned int i, n = 0, nrec, gone[4] = { 0 };
	size_t off, rr_off, w, r;
	enum dnswire_section sec;
	struct dw_rr rr;
	int err;

	if (len < DNSWIRE_HDR_LEN)
		return -EBADMSG;
	dw_header(msg, &id, &flags, &qd, &cnt[1], &cnt[2], &cnt[3]);
	off = DNSWIRE_HDR_LEN;
	err = dw_questions_skip(msg, len, qd, &off);
	if (err)
		return err;
	rr_off = off;
	nrec = (unsigned int)cnt[1] + cnt[2] + cnt[3];
	for (i = 0; i < nrec; i++) {
		size_t start = off;

		err = dw_rr_next(msg, len, &off, &rr, NULL, NULL);
		if (err)
			return err;
		sec = i < cnt[1]	  ? DNSWIRE_SEC_ANSWER :
		      i < cnt[1] + cnt[2] ? DNSWIRE_SEC_AUTHORITY :
					    DNSWIRE_SEC_ADDITIONAL;
		if (rr.type == DNSWIRE_TYPE_OPT ||
		    !drop(arg, sec, rr.type, msg + rr.rdata, rr.rdlen))
			continue;
		if (n && cuts[n - 1].end == start) {
			cuts[n - 1].end = off; /* adjacent: one cut */
		} else {
			if (n == DNSWIRE_STRIP_MAX)
				return -E2BIG;
			cuts[n].start = start;
			cuts[n++].end = off;
		}
		gone[sec]++;
	}
	if (!n)
		return (ssize_t)len;
	err = dw_cut_fix(msg, len, rr_off, nrec, cuts, n, false);
	if (err)
		return err;
	dw_cut_fix(msg, len, rr_off, nrec, cuts, n, true);
	/* Close the gaps; bytes past the last record go too. */
	w = cuts[0].start;
	for (i = 0; i < n; i++) {
		r = cuts[i].end;
		size_t stop = i + 1 < n ? cuts[i + 1].start : off;

		memmove(msg + w, msg + r, stop - r);
		w += stop - r;
	}
	for (i = 1; i <= 3; i++)
		dw_wr16(msg + 4 + 2 * i, (uint16_t)(cnt[i] - gone[i]));
	return (ssize_t)w;
}

int dnswire_answer_targets(const uint8_t *msg, size_t len,
			   int (*cb)(void *arg, const char *name, size_t len),
			   void *arg)
{
	uint16_t id, flags, qd, an, ns, ar;
	uint8_t w[DW_WIRE_MAX];
	char text[DNSWIRE_NAME_MAX];
	size_t off, wlen, next, tlen;
	struct dw_rr rr;
	unsigned int i;
	int err;

	if (len < DNSWIRE_HDR_LEN)
		return -EBADMSG;
	dw_header(msg, &id, &flags, &qd, &an, &ns, &ar);
	off = DNSWIRE_HDR_LEN;
	err = dw_questions_skip(msg, len, qd, &off);
	if (err)
		return err;
	for (i = 0; i < an; i++) {
		err = dw_rr_next(msg, len, &off, &rr, NULL, NULL);
		if (err)
			return err;
		if ((rr.type != DNSWIRE_TYPE_CNAME &&
		     rr.type != DNSWIRE_TYPE_DNAME) ||
		    rr.rclass != DW_CLASS_IN)
			continue;
		err = dw_name_read(msg, len, rr.rdata, w, &wlen, &next);
		if (err)
			return err;
		if (next != rr.rdata + rr.rdlen)
			return -EBADMSG;
		tlen = dw_wire_to_text(w, text);
		err = cb(arg, text, tlen);
		if (err)
			return err;
	}
	return 0;
}

unsigned int dnswire_0x20(uint8_t *msg, size_t len, const uint8_t *rnd,
			  size_t rndlen)
{
	size_t pos = DNSWIRE_HDR_LEN, bits = rndlen * 8;
	unsigned int letters = 0;
	uint8_t l, c;

	if (!bits)
		return 0;
	while (pos < len && (l = msg[pos]) != 0 && !(l & 0xc0)) {
		size_t end = pos + 1 + l;

		if (end > len)
			break;
		for (pos++; pos < end; pos++) {
			size_t b = letters % bits;

			c = msg[pos] | 0x20;
			if (c < 'a' || c > 'z')
				continue;
			msg[pos] = rnd[b / 8] >> (b % 8) & 1 ? c & ~0x20 : c;
			letters++;
		}
	}
	return letters;
}

const char *dnswire_type_name(uint16_t type, char *buf, size_t len)
{
	switch (type) {
	case DNSWIRE_TYPE_A:
		return "A";
	case DNSWIRE_TYPE_NS:
		return "NS";
	case DNSWIRE_TYPE_CNAME:
		return "CNAME";
	case DNSWIRE_TYPE_SOA:
		return "SOA";
	case DNSWIRE_TYPE_PTR:
		return "PTR";
	case DNSWIRE_TYPE_MX:
		return "MX";
	case DNSWIRE_TYPE_TXT:
		return "TXT";
	case DNSWIRE_TYPE_AAAA:
		return "AAAA";
	case DNSWIRE_TYPE_SRV:
		return "SRV";
	case DNSWIRE_TYPE_OPT:
		return "OPT";
	case DNSWIRE_TYPE_SVCB:
		return "SVCB";
	case DNSWIRE_TYPE_HTTPS:
		return "HTTPS";
	case DNSWIRE_TYPE_ANY:
		return "ANY";
	}
	if (!buf || !len)
		return "TYPE";
	snprintf(buf, len, "TYPE%u", (unsigned int)type);
	return buf;
}
