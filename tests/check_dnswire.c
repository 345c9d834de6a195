// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for agent/dnswire.c. Every fixture is assembled by hand with
 * the small builder below (names, compression pointers, records), so each
 * test shows exactly which bytes it feeds in and asserts the real outcome:
 * parsed fields, exact reply bytes, error codes. Truncation and hostile
 * inputs are copied into exact-size heap buffers so valgrind/ASan catch any
 * read past the end.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egressd/dnswire.h"

#define F_QR DNSWIRE_F_QR
#define F_RD DNSWIRE_F_RD
#define F_RA DNSWIRE_F_RA
#define F_CD DNSWIRE_F_CD
#define F_TC DNSWIRE_F_TC
#define CLASS_IN 1

struct mb {
	uint8_t b[8192];
	size_t n;
};

static void mb_u8(struct mb *m, uint8_t v)
{
	ck_assert_uint_lt(m->n, sizeof(m->b));
	m->b[m->n++] = v;
}

static void mb_u16(struct mb *m, uint16_t v)
{
	mb_u8(m, v >> 8);
	mb_u8(m, v & 0xff);
}

static void mb_u32(struct mb *m, uint32_t v)
{
	mb_u16(m, v >> 16);
	mb_u16(m, v & 0xffff);
}

static void mb_raw(struct mb *m, const void *p, size_t n)
{
	ck_assert_uint_le(m->n + n, sizeof(m->b));
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void mb_put16(struct mb *m, size_t at, uint16_t v)
{
	m->b[at] = v >> 8;
	m->b[at + 1] = v & 0xff;
}

static void mb_hdr(struct mb *m, uint16_t id, uint16_t flags, uint16_t qd,
		   uint16_t an, uint16_t ns, uint16_t ar)
{
	m->n = 0;
	mb_u16(m, id);
	mb_u16(m, flags);
	mb_u16(m, qd);
	mb_u16(m, an);
	mb_u16(m, ns);
	mb_u16(m, ar);
}

/* Dotted name ("" is the root) as uncompressed labels; returns its offset. */
static size_t mb_name(struct mb *m, const char *name)
{
	size_t at = m->n;
	const char *p = name, *dot;
	size_t l;

	while (*p) {
		dot = strchr(p, '.');
		l = dot ? (size_t)(dot - p) : strlen(p);
		mb_u8(m, (uint8_t)l);
		mb_raw(m, p, l);
		p += l;
		if (*p == '.')
			p++;
	}
	mb_u8(m, 0);
	return at;
}

/* Labels up to a pointer to off (prefix "" for a bare pointer). */
static size_t mb_name_ptr(struct mb *m, const char *prefix, size_t off)
{
	size_t at = m->n;
	const char *p = prefix, *dot;
	size_t l;

	while (*p) {
		dot = strchr(p, '.');
		l = dot ? (size_t)(dot - p) : strlen(p);
		mb_u8(m, (uint8_t)l);
		mb_raw(m, p, l);
		p += l;
		if (*p == '.')
			p++;
	}
	mb_u16(m, 0xc000 | (uint16_t)off);
	return at;
}

/* Record fields after an owner; returns the offset of rdlength. */
static size_t mb_rr(struct mb *m, uint16_t type, uint16_t rclass, uint32_t ttl,
		    const void *rdata, uint16_t rdlen)
{
	size_t at;

	mb_u16(m, type);
	mb_u16(m, rclass);
	mb_u32(m, ttl);
	at = m->n;
	mb_u16(m, rdlen);
	if (rdata)
		mb_raw(m, rdata, rdlen);
	return at;
}

/* Close an rdata written after mb_rr(..., NULL, 0). */
static void mb_rdlen_fix(struct mb *m, size_t at)
{
	mb_put16(m, at, (uint16_t)(m->n - at - 2));
}

static void mb_opt(struct mb *m, uint16_t udp, uint8_t version, bool dobit)
{
	mb_u8(m, 0);
	mb_rr(m, DNSWIRE_TYPE_OPT, udp,
	      (uint32_t)version << 16 | (dobit ? 0x8000 : 0), NULL, 0);
}

static void mk_query(struct mb *m, uint16_t id, uint16_t flags,
		     const char *name, uint16_t qtype, bool opt, bool dobit)
{
	mb_hdr(m, id, flags, 1, 0, 0, opt ? 1 : 0);
	mb_name(m, name);
	mb_u16(m, qtype);
	mb_u16(m, CLASS_IN);
	if (opt)
		mb_opt(m, 4096, 0, dobit);
}

/* Response header + question; answers follow. */
static void mk_resp(struct mb *m, uint16_t id, uint16_t flags, uint16_t an,
		    const char *name, uint16_t qtype)
{
	mb_hdr(m, id, flags, 1, an, 0, 0);
	mb_name(m, name);
	mb_u16(m, qtype);
	mb_u16(m, CLASS_IN);
}

static void mk_q(struct dnswire_question *q, const char *name, uint16_t qtype)
{
	struct mb m;

	mk_query(&m, 0x1234, F_RD, name, qtype, false, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, q), 0);
}

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(d);
	memcpy(d, p, n);
	return d;
}

static const uint8_t v4a[4] = { 192, 0, 2, 1 };
static const uint8_t v4b[4] = { 192, 0, 2, 2 };
static const uint8_t v4c[4] = { 198, 51, 100, 7 };
static const uint8_t v6a[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };

/* ---- parse ---- */

START_TEST(test_dnswire_parse_plain_query)
{
	struct dnswire_question q;
	struct mb m;

	mk_query(&m, 0xbeef, F_RD, "www.example.com", DNSWIRE_TYPE_A, false,
		 false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_uint_eq(q.id, 0xbeef);
	ck_assert_uint_eq(q.flags, F_RD);
	ck_assert_uint_eq(q.qdcount, 1);
	ck_assert_uint_eq(q.arcount, 0);
	ck_assert_str_eq(q.name, "www.example.com");
	ck_assert_uint_eq(q.name_len, 15);
	ck_assert_uint_eq(q.qtype, DNSWIRE_TYPE_A);
	ck_assert_uint_eq(q.qclass, CLASS_IN);
	ck_assert_uint_eq(q.question_end, m.n);
	ck_assert(!q.has_opt);
}
END_TEST

START_TEST(test_dnswire_parse_query_opt_do)
{
	struct dnswire_question q;
	struct mb m;

	mk_query(&m, 1, F_RD, "example.org", DNSWIRE_TYPE_AAAA, true, true);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert(q.has_opt);
	ck_assert(q.opt_do);
	ck_assert_uint_eq(q.opt_udp_size, 4096);
	ck_assert_uint_eq(q.opt_version, 0);
	ck_assert_uint_eq(q.question_end, m.n - 11);
	ck_assert_uint_eq(q.qtype, DNSWIRE_TYPE_AAAA);

	mb_hdr(&m, 1, 0, 1, 0, 0, 1);
	mb_name(&m, "example.org");
	mb_u16(&m, DNSWIRE_TYPE_A);
	mb_u16(&m, CLASS_IN);
	mb_opt(&m, 1232, 1, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert(q.has_opt);
	ck_assert(!q.opt_do);
	ck_assert_uint_eq(q.opt_udp_size, 1232);
	ck_assert_uint_eq(q.opt_version, 1);
}
END_TEST

/* OPT found behind answer and authority records (some clients send them). */
START_TEST(test_dnswire_parse_query_opt_after_other_sections)
{
	struct dnswire_question q;
	struct mb m;

	mb_hdr(&m, 7, 0, 1, 1, 1, 2);
	mb_name(&m, "a.example");
	mb_u16(&m, DNSWIRE_TYPE_A);
	mb_u16(&m, CLASS_IN);
	mb_name_ptr(&m, "", 12); /* answer owned by the question name */
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 5, v4a, 4);
	mb_name_ptr(&m, "ns", 14); /* authority: ns.example */
	mb_rr(&m, DNSWIRE_TYPE_TXT, CLASS_IN, 5, "\x02hi", 3);
	mb_name(&m, "extra.example");
	mb_rr(&m, DNSWIRE_TYPE_OPT, CLASS_IN, 5, NULL, 0); /* not additional */
	mb_opt(&m, 512, 0, true);
	/* the OPT-typed record is the first additional: owner not root */
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);

	mb_put16(&m, 8, 2); /* nscount 2: first OPT-typed is authority */
	mb_put16(&m, 10, 1);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert(q.has_opt);
	ck_assert(q.opt_do);
	ck_assert_uint_eq(q.opt_udp_size, 512);
	ck_assert_str_eq(q.name, "a.example");
}
END_TEST

START_TEST(test_dnswire_parse_opt_owner_must_be_root)
{
	struct dnswire_question q;
	struct mb m;

	mb_hdr(&m, 7, 0, 1, 0, 0, 1);
	mb_name(&m, "a.example");
	mb_u16(&m, DNSWIRE_TYPE_A);
	mb_u16(&m, CLASS_IN);
	mb_name(&m, "x");
	mb_rr(&m, DNSWIRE_TYPE_OPT, 1232, 0, NULL, 0);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);
	ck_assert_uint_eq(q.id, 7);
	ck_assert_uint_eq(q.arcount, 1);
	ck_assert(!q.has_opt);
	ck_assert_uint_eq(q.question_end, 0);
	ck_assert_uint_eq(q.qtype, 0);
	ck_assert_str_eq(q.name, "");
}
END_TEST

START_TEST(test_dnswire_parse_uppercase_lowered)
{
	struct dnswire_question q;
	struct mb m;

	mk_query(&m, 1, 0, "WwW.ExAmPlE.COM", DNSWIRE_TYPE_A, false, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_str_eq(q.name, "www.example.com");
}
END_TEST

START_TEST(test_dnswire_parse_root_name)
{
	struct dnswire_question q;
	struct mb m;

	mk_query(&m, 1, 0, "", DNSWIRE_TYPE_NS, false, false);
	ck_assert_uint_eq(m.n, 17);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_str_eq(q.name, "");
	ck_assert_uint_eq(q.name_len, 0);
	ck_assert_uint_eq(q.question_end, 17);
}
END_TEST

/* The terminating root label never shows up as a trailing dot. */
START_TEST(test_dnswire_parse_trailing_root_no_dot)
{
	struct dnswire_question q;
	struct mb m;

	mk_query(&m, 1, 0, "com", DNSWIRE_TYPE_A, false, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_str_eq(q.name, "com");
	ck_assert_uint_eq(q.name_len, 3);
}
END_TEST

START_TEST(test_dnswire_parse_escapes)
{
	static const uint8_t name[] = {
		3, 'a', '.',  'b', /* dot inside a label */
		4, 'x', '\\', 'Y', 0x07, /* backslash, upper, BEL */
		5, '_', '*',  '-', ' ',	 0xc3, /* kept, kept, kept, sp, 8bit */
		3, 'c', 'o',  'm', 0,
	};
	struct dnswire_question q;
	struct mb m;

	mb_hdr(&m, 1, 0, 1, 0, 0, 0);
	mb_raw(&m, name, sizeof(name));
	mb_u16(&m, DNSWIRE_TYPE_A);
	mb_u16(&m, CLASS_IN);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_str_eq(q.name, "a\\.b.x\\\\y\\007._*-\\032\\195.com");
	ck_assert_uint_eq(q.name_len, strlen(q.name));
}
END_TEST

/* A label of 63 octets is fine; 64 is the reserved 0x40 label type. */
START_TEST(test_dnswire_parse_label_63)
{
	struct dnswire_question q;
	char name[80];
	struct mb m;

	memset(name, 'a', 63);
	strcpy(name + 63, ".io");
	mk_query(&m, 1, 0, name, DNSWIRE_TYPE_A, false, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_str_eq(q.name, name);

	m.b[12] = 64;
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);
}
END_TEST

START_TEST(test_dnswire_parse_qdcount_not_one)
{
	struct dnswire_question q;
	struct mb m;

	mb_hdr(&m, 0x4242, F_RD, 0, 0, 0, 0);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);
	ck_assert_uint_eq(q.id, 0x4242);
	ck_assert_uint_eq(q.flags, F_RD);
	ck_assert_uint_eq(q.qdcount, 0);
	ck_assert_uint_eq(q.question_end, 0);

	mb_hdr(&m, 0x4343, 0, 2, 0, 0, 0);
	mb_name(&m, "a.b");
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	mb_name(&m, "c.d");
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);
	ck_assert_uint_eq(q.id, 0x4343);
	ck_assert_uint_eq(q.qdcount, 2);
}
END_TEST

START_TEST(test_dnswire_parse_short_header)
{
	struct dnswire_question q;
	struct mb m;

	mk_query(&m, 1, 0, "a.b", DNSWIRE_TYPE_A, false, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, 11, &q), -EMSGSIZE);
	ck_assert_int_eq(dnswire_parse_query(m.b, 0, &q), -EMSGSIZE);
	/* header only, qdcount 1: the question is missing */
	ck_assert_int_eq(dnswire_parse_query(m.b, 12, &q), -EBADMSG);
	ck_assert_uint_eq(q.id, 1);
}
END_TEST

/*
 * The first question can only point into the header, which is rejected:
 * echoed under new flags such a name would change meaning.
 */
START_TEST(test_dnswire_parse_pointer_in_question_rejected)
{
	struct dnswire_question q;
	struct mb m;

	mb_hdr(&m, 0x0161, 0, 1, 0, 0, 0); /* id bytes: "\x01a" */
	mb_name_ptr(&m, "www", 0);
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);

	mb_hdr(&m, 1, 0, 1, 0, 0, 0);
	mb_name_ptr(&m, "www", 12); /* to its own start */
	mb_u16(&m, 1);
	mb_u16(&m, 1);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);
}
END_TEST

START_TEST(test_dnswire_type_names)
{
	char buf[12];

	ck_assert_str_eq(dnswire_type_name(1, buf, sizeof(buf)), "A");
	ck_assert_str_eq(dnswire_type_name(28, buf, sizeof(buf)), "AAAA");
	ck_assert_str_eq(dnswire_type_name(5, buf, sizeof(buf)), "CNAME");
	ck_assert_str_eq(dnswire_type_name(65, buf, sizeof(buf)), "HTTPS");
	ck_assert_str_eq(dnswire_type_name(64, buf, sizeof(buf)), "SVCB");
	ck_assert_str_eq(dnswire_type_name(255, buf, sizeof(buf)), "ANY");
	ck_assert_str_eq(dnswire_type_name(99, buf, sizeof(buf)), "TYPE99");
	ck_assert_str_eq(dnswire_type_name(65535, buf, sizeof(buf)),
			 "TYPE65535");
}
END_TEST

/* ---- reply ---- */

static void check_reply(uint16_t qflags, bool opt, bool dobit, int rcode,
			uint16_t want_flags)
{
	struct dnswire_question q;
	uint8_t out[512];
	struct mb m;
	ssize_t n;

	mk_query(&m, 0xa55a, qflags, "Deny.Example.NET", DNSWIRE_TYPE_HTTPS,
		 opt, dobit);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	memset(out, 0xee, sizeof(out));
	n = dnswire_build_reply(m.b, m.n, &q, rcode, out, sizeof(out));
	ck_assert_int_eq(n, (ssize_t)(q.question_end + (opt ? 11 : 0)));
	ck_assert_uint_eq(out[0], 0xa5);
	ck_assert_uint_eq(out[1], 0x5a);
	ck_assert_uint_eq(dnswire_get_id(out), 0xa55a);
	ck_assert_uint_eq((unsigned)(out[2] << 8 | out[3]), want_flags);
	/* qdcount 1, ancount 0, nscount 0, arcount 0/1 */
	ck_assert_mem_eq(out + 4, "\0\1\0\0\0\0", 6);
	ck_assert_uint_eq(out[10], 0);
	ck_assert_uint_eq(out[11], opt ? 1 : 0);
	/* question echoed verbatim, case included (0x20 randomisation) */
	ck_assert_mem_eq(out + 12, m.b + 12, q.question_end - 12);
	if (opt) {
		const uint8_t want[11] = { 0,	 0, 41, 0x04,
					   0xd0, 0, 0,	dobit ? 0x80 : 0,
					   0,	 0, 0 };

		ck_assert_mem_eq(out + q.question_end, want, 11);
	}
	ck_assert_uint_eq(out[n], 0xee);
}

START_TEST(test_dnswire_reply_nxdomain)
{
	check_reply(F_RD, false, false, DNSWIRE_RCODE_NXDOMAIN, 0x8183);
	check_reply(F_RD, true, true, DNSWIRE_RCODE_NXDOMAIN, 0x8183);
}
END_TEST

START_TEST(test_dnswire_reply_servfail)
{
	check_reply(F_RD, false, false, DNSWIRE_RCODE_SERVFAIL, 0x8182);
	check_reply(F_RD, true, false, DNSWIRE_RCODE_SERVFAIL, 0x8182);
}
END_TEST

START_TEST(test_dnswire_reply_nodata)
{
	check_reply(F_RD | F_CD, false, false, DNSWIRE_RCODE_NOERROR, 0x8190);
	check_reply(F_RD | F_CD, true, true, DNSWIRE_RCODE_NOERROR, 0x8190);
}
END_TEST

/* RD clear, CD set; AA/TC/AD/Z of the query are not echoed. */
START_TEST(test_dnswire_reply_refused_flags)
{
	check_reply(F_CD, false, false, DNSWIRE_RCODE_REFUSED, 0x8095);
	check_reply(F_CD | DNSWIRE_F_AA | F_TC | DNSWIRE_F_AD | 0x0040, true,
		    false, DNSWIRE_RCODE_REFUSED, 0x8095);
	/* opcode 2 (STATUS) echoed, RA always set, NOTIMP */
	check_reply(0x1000 | F_RD, false, false, DNSWIRE_RCODE_NOTIMP, 0x9184);
}
END_TEST

/* Records a client put after the question are not carried into a reply. */
START_TEST(test_dnswire_reply_drops_extra_records)
{
	struct dnswire_question q;
	uint8_t out[512];
	struct mb m;
	ssize_t n;

	mb_hdr(&m, 9, F_RD, 1, 1, 0, 1);
	mb_name(&m, "a.example");
	mb_u16(&m, DNSWIRE_TYPE_A);
	mb_u16(&m, CLASS_IN);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 5, v4a, 4);
	mb_opt(&m, 4096, 0, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	n = dnswire_build_reply(m.b, m.n, &q, DNSWIRE_RCODE_NXDOMAIN, out,
				sizeof(out));
	ck_assert_int_eq(n, (ssize_t)(q.question_end + 11));
	ck_assert_mem_eq(out + 4, "\0\1\0\0\0\0\0\1", 8);
	/* the reply reads back as the same query */
	ck_assert_int_eq(dnswire_parse_query(out, (size_t)n, &q), 0);
	ck_assert_str_eq(q.name, "a.example");
	ck_assert(q.has_opt);
	ck_assert_uint_eq(q.opt_udp_size, 1232);
}
END_TEST

START_TEST(test_dnswire_reply_errors)
{
	struct dnswire_question q, bad;
	uint8_t out[512];
	struct mb m;

	mk_query(&m, 1, F_RD, "a.example", DNSWIRE_TYPE_A, true, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_int_eq(dnswire_build_reply(m.b, m.n, &q, 3, out,
					     q.question_end + 10),
			 -ENOSPC);
	ck_assert_int_eq(dnswire_build_reply(m.b, m.n, &q, 3, out,
					     q.question_end + 11),
			 (ssize_t)(q.question_end + 11));
	ck_assert_int_eq(dnswire_build_reply(m.b, m.n, &q, 16, out,
					     sizeof(out)),
			 -EINVAL);
	ck_assert_int_eq(dnswire_build_reply(m.b, m.n, &q, -1, out,
					     sizeof(out)),
			 -EINVAL);
	/* q from a failed parse */
	ck_assert_int_eq(dnswire_parse_query(m.b, 20, &bad), -EBADMSG);
	ck_assert_int_eq(dnswire_build_reply(m.b, 20, &bad, 3, out,
					     sizeof(out)),
			 -EINVAL);
	/* q for a longer message than msg */
	ck_assert_int_eq(dnswire_build_reply(m.b, q.question_end - 1, &q, 3,
					     out, sizeof(out)),
			 -EINVAL);
}
END_TEST

START_TEST(test_dnswire_reply_header_only_formerr)
{
	static const uint8_t junk[] = { 0xde, 0xad, 0x11, 0xff, 0, 7, 0xff };
	uint8_t out[64];

	memset(out, 0xee, sizeof(out));
	ck_assert_int_eq(dnswire_build_reply(junk, sizeof(junk), NULL,
					     DNSWIRE_RCODE_NXDOMAIN, out,
					     sizeof(out)),
			 12);
	/* QR, opcode 2, RD, RA, FORMERR; AA/TC/RCODE of the query dropped */
	ck_assert_mem_eq(out, "\xde\xad\x91\x81\0\0\0\0\0\0\0\0", 12);
	ck_assert_uint_eq(out[12], 0xee);

	ck_assert_int_eq(
		dnswire_build_reply(junk, 2, NULL, 0, out, sizeof(out)), 12);
	ck_assert_mem_eq(out, "\xde\xad\x80\x81\0\0\0\0\0\0\0\0", 12);
	ck_assert_int_eq(
		dnswire_build_reply(junk, 3, NULL, 0, out, sizeof(out)), 12);
	ck_assert_mem_eq(out, "\xde\xad\x91\x81", 4);

	ck_assert_int_eq(dnswire_build_reply(junk, 1, NULL, 0, out,
					     sizeof(out)),
			 -EINVAL);
	ck_assert_int_eq(dnswire_build_reply(junk, 0, NULL, 0, out,
					     sizeof(out)),
			 -EINVAL);
	ck_assert_int_eq(dnswire_build_reply(junk, sizeof(junk), NULL, 0, out,
					     11),
			 -ENOSPC);
}
END_TEST

/* ---- response ---- */

START_TEST(test_dnswire_response_a)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "www.example.com", DNSWIRE_TYPE_A);
	mk_resp(&m, 0x1234, F_QR | F_RD | F_RA, 2, "www.example.com",
		DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 300, v4a, 4);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 120, v4b, 4);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.id, 0x1234);
	ck_assert_int_eq(r.rcode, 0);
	ck_assert(!r.tc);
	ck_assert_uint_eq(r.n_addrs, 2);
	ck_assert_uint_eq(r.addrs[0].family, AF_INET);
	ck_assert_mem_eq(r.addrs[0].addr, v4a, 4);
	ck_assert_uint_eq(r.addrs[0].ttl, 300);
	ck_assert_mem_eq(r.addrs[1].addr, v4b, 4);
	ck_assert_uint_eq(r.addrs[1].ttl, 120);
	ck_assert_uint_eq(r.min_ttl, 120);
	ck_assert_uint_eq(r.n_cnames, 0);
	ck_assert(!r.addrs_truncated);
}
END_TEST

START_TEST(test_dnswire_response_aaaa)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "v6.example", DNSWIRE_TYPE_AAAA);
	mk_resp(&m, 1, F_QR, 1, "v6.example", DNSWIRE_TYPE_AAAA);
	mb_name(&m, "V6.Example"); /* uncompressed, other case */
	mb_rr(&m, DNSWIRE_TYPE_AAAA, CLASS_IN, 60, v6a, 16);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_uint_eq(r.addrs[0].family, AF_INET6);
	ck_assert_mem_eq(r.addrs[0].addr, v6a, 16);
	ck_assert_uint_eq(r.min_ttl, 60);
}
END_TEST

/*
 * www.example.com CNAME edge.cdn.net, edge.cdn.net CNAME e1.cdn.net
 * (compressed against the first target), e1.cdn.net A x2, plus an A of a
 * name that is not on the chain and an A of the chain in class CH.
 */
START_TEST(test_dnswire_response_cname_chain)
{
	struct dnswire_question q;
	struct dnswire_response r;
	size_t rd, edge, cdn, e1;
	struct mb m;

	mk_q(&q, "www.example.com", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR | F_RA, 6, "www.example.com", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	rd = mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 3600, NULL, 0);
	edge = mb_name(&m, "edge.cdn.net");
	cdn = edge + 5;
	mb_rdlen_fix(&m, rd);
	mb_name_ptr(&m, "", edge);
	rd = mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 30, NULL, 0);
	e1 = mb_name_ptr(&m, "e1", cdn);
	mb_rdlen_fix(&m, rd);
	mb_name_ptr(&m, "", e1);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4a, 4);
	mb_name_ptr(&m, "other", cdn);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 1, v4c, 4);
	mb_name_ptr(&m, "", e1);
	mb_rr(&m, DNSWIRE_TYPE_A, 3 /* CH */, 1, v4c, 4);
	mb_name_ptr(&m, "", e1);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 45, v4b, 4);

	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_cnames, 2);
	ck_assert_uint_eq(r.n_addrs, 2);
	ck_assert_mem_eq(r.addrs[0].addr, v4a, 4);
	ck_assert_mem_eq(r.addrs[1].addr, v4b, 4);
	ck_assert_uint_eq(r.min_ttl, 30);
}
END_TEST

/* Addresses first, then CNAME b->c, then CNAME q->b: all still found. */
START_TEST(test_dnswire_response_cname_out_of_order)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "q.example", DNSWIRE_TYPE_AAAA);
	mk_resp(&m, 1, F_QR, 5, "q.example", DNSWIRE_TYPE_AAAA);
	mb_name(&m, "c.example");
	mb_rr(&m, DNSWIRE_TYPE_AAAA, CLASS_IN, 100, v6a, 16);
	mb_name(&m, "z.example"); /* not on the chain */
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 5, v4c, 4);
	mb_name(&m, "b.example");
	mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 200, "\1c\7example\0", 11);
	mb_name(&m, "q.example");
	mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 90, "\1b\7example\0", 11);
	mb_name(&m, "b.example");
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 300, v4a, 4);

	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_cnames, 2);
	ck_assert_uint_eq(r.n_addrs, 2);
	ck_assert_uint_eq(r.addrs[0].family, AF_INET6);
	ck_assert_mem_eq(r.addrs[0].addr, v6a, 16);
	ck_assert_uint_eq(r.addrs[1].family, AF_INET);
	ck_assert_mem_eq(r.addrs[1].addr, v4a, 4);
	ck_assert_uint_eq(r.min_ttl, 90);
}
END_TEST

START_TEST(test_dnswire_response_cname_loop_and_limit)
{
	struct dnswire_question q;
	struct dnswire_response r;
	char owner[16], target[16];
	uint8_t rdata[16];
	struct mb m;
	int i;

	/* a -> b -> a: terminates, one hop */
	mk_q(&q, "a", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 3, "a", DNSWIRE_TYPE_A);
	mb_name(&m, "b");
	mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 10, "\1a\0", 3);
	mb_name(&m, "a");
	mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 10, "\1b\0", 3);
	mb_name(&m, "b");
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 10, v4a, 4);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_cnames, 1);
	ck_assert_uint_eq(r.n_addrs, 1);

	/* n0 -> n1 -> ... -> n20, A at n16 and n17: only 16 hops taken */
	mk_q(&q, "n0", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 22, "n0", DNSWIRE_TYPE_A);
	for (i = 0; i < 20; i++) {
		snprintf(owner, sizeof(owner), "n%d", i);
		snprintf(target, sizeof(target), "n%d", i + 1);
		rdata[0] = (uint8_t)strlen(target);
		memcpy(rdata + 1, target, rdata[0]);
		rdata[rdata[0] + 1] = 0;
		mb_name(&m, owner);
		mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 10, rdata,
		      rdata[0] + 2);
	}
	mb_name(&m, "n16");
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 10, v4a, 4);
	mb_name(&m, "n17");
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 10, v4b, 4);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_cnames, 16);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_mem_eq(r.addrs[0].addr, v4a, 4);
}
END_TEST

START_TEST(test_dnswire_response_question_mismatch)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);

	mk_resp(&m, 1, F_QR, 0, "b.example", DNSWIRE_TYPE_A);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EPROTO);
	mk_resp(&m, 1, F_QR, 0, "a.example.com", DNSWIRE_TYPE_A);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EPROTO);
	mk_resp(&m, 1, F_QR, 0, "a.example", DNSWIRE_TYPE_AAAA);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EPROTO);
	mk_resp(&m, 1, F_QR, 0, "a.example", DNSWIRE_TYPE_A);
	m.b[m.n - 1] = 3; /* class CH */
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EPROTO);
	mk_resp(&m, 1, 0, 0, "a.example", DNSWIRE_TYPE_A); /* QR clear */
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EPROTO);
	mb_hdr(&m, 1, F_QR | 2, 0, 0, 0, 0); /* no question */
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EPROTO);
	ck_assert_int_eq(r.rcode, 2);

	/* same name in other case matches */
	mk_resp(&m, 1, F_QR, 0, "A.EXAMPLE", DNSWIRE_TYPE_A);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
}
END_TEST

/* A question with escapes survives the text form round trip. */
START_TEST(test_dnswire_response_escaped_question)
{
	static const uint8_t name[] = { 3, 'a', '.', 'B', 2, '\\', 0xff, 0 };
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mb_hdr(&m, 1, 0, 1, 0, 0, 0);
	mb_raw(&m, name, sizeof(name));
	mb_u16(&m, DNSWIRE_TYPE_A);
	mb_u16(&m, CLASS_IN);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_str_eq(q.name, "a\\.b.\\\\\\255");

	mb_put16(&m, 2, F_QR);
	mb_put16(&m, 6, 1);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 7, v4a, 4);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_addrs, 1);

	/* "a.b" as two labels is a different name */
	mk_resp(&m, 1, F_QR, 0, "a.b.\\\377", DNSWIRE_TYPE_A);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EPROTO);
}
END_TEST

START_TEST(test_dnswire_response_id_not_checked)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	ck_assert_uint_eq(q.id, 0x1234);
	mk_resp(&m, 0x9999, F_QR, 0, "a.example", DNSWIRE_TYPE_A);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.id, 0x9999);
	ck_assert_uint_eq(r.n_addrs, 0);
	ck_assert_uint_eq(r.min_ttl, UINT32_MAX);
}
END_TEST

START_TEST(test_dnswire_response_bad_rdlength)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 1, "a.example", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 7, "\1\2\3\4\5", 5);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EBADMSG);

	mk_resp(&m, 1, F_QR, 1, "a.example", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_AAAA, CLASS_IN, 7, v4a, 4);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EBADMSG);

	/* CNAME whose target does not fill its rdata */
	mk_resp(&m, 1, F_QR, 1, "a.example", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 7, "\1x\0\0", 4);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EBADMSG);
}
END_TEST

START_TEST(test_dnswire_response_nxdomain_and_ttl_msb)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "gone.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR | DNSWIRE_RCODE_NXDOMAIN, 0, "gone.example",
		DNSWIRE_TYPE_A);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_int_eq(r.rcode, DNSWIRE_RCODE_NXDOMAIN);
	ck_assert_uint_eq(r.n_addrs, 0);

	/* RFC 2181: a TTL with the top bit set counts as 0 */
	mk_resp(&m, 1, F_QR, 1, "gone.example", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 0x80000010u, v4a, 4);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.addrs[0].ttl, 0);
	ck_assert_uint_eq(r.min_ttl, 0);
}
END_TEST

START_TEST(test_dnswire_response_many_addrs_truncated)
{
	struct dnswire_question q;
	struct dnswire_response r;
	uint8_t a[4] = { 10, 0, 0, 0 };
	struct mb m;
	int i;

	mk_q(&q, "big.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, DNSWIRE_MAX_ADDRS + 6, "big.example",
		DNSWIRE_TYPE_A);
	for (i = 0; i < DNSWIRE_MAX_ADDRS + 6; i++) {
		a[3] = (uint8_t)i;
		mb_name_ptr(&m, "", 12);
		mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 1000 - i, a, 4);
	}
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_addrs, DNSWIRE_MAX_ADDRS);
	ck_assert(r.addrs_truncated);
	ck_assert_uint_eq(r.addrs[DNSWIRE_MAX_ADDRS - 1].addr[3],
			  DNSWIRE_MAX_ADDRS - 1);
	/* min over the addresses used */
	ck_assert_uint_eq(r.min_ttl, 1000 - (DNSWIRE_MAX_ADDRS - 1));
}
END_TEST

/* TC=1: the complete records before the cut are used; TC=0: error. */
START_TEST(test_dnswire_response_tc_partial)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;
	size_t cut;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR | F_TC, 3, "a.example", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 7, v4a, 4);
	cut = m.n;
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 7, v4b, 4);

	/* ends at a record boundary, and in the middle of record 2 */
	ck_assert_int_eq(dnswire_parse_response(m.b, cut, &q, &r), 0);
	ck_assert(r.tc);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n - 2, &q, &r), 0);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_addrs, 2);

	mb_put16(&m, 2, F_QR);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n - 2, &q, &r),
			 -EBADMSG);
	ck_assert_int_eq(dnswire_parse_response(m.b, cut, &q, &r), -EBADMSG);
}
END_TEST

/* ---- ttl ---- */

START_TEST(test_dnswire_ttl_cap)
{
	/* serial 1, refresh 3600, retry 600, expire 604800, minimum 3600 */
	static const uint8_t soa_tail[20] = {
		0, 0,	 0, 1,	  0,	0,    0x0e, 0x10, 0,	0,
		2, 0x58, 0, 0x09, 0x3a, 0x80, 0,    0,	  0x0e, 0x10,
	};
	size_t t1, t2, t3, t4, t5, t6, rd, soa_min;
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	mb_hdr(&m, 1, F_QR, 1, 3, 1, 2);
	mb_name(&m, "a.example");
	mb_u16(&m, DNSWIRE_TYPE_A);
	mb_u16(&m, CLASS_IN);
	mb_name_ptr(&m, "", 12);
	t1 = mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 3600, v4a, 4) - 4;
	mb_name_ptr(&m, "", 12);
	t2 = mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4b, 4) - 4;
	mb_name_ptr(&m, "", 12);
	t3 = mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 300, v4c, 4) - 4;
	/* authority SOA */
	mb_name_ptr(&m, "", 14);
	rd = mb_rr(&m, DNSWIRE_TYPE_SOA, CLASS_IN, 86400, NULL, 0);
	t4 = rd - 4;
	mb_name_ptr(&m, "ns", 14);
	mb_name_ptr(&m, "hostmaster", 14);
	mb_raw(&m, soa_tail, sizeof(soa_tail));
	soa_min = m.n - 4;
	mb_rdlen_fix(&m, rd);
	/* additional: an A (untouched) and OPT with DO (untouched) */
	mb_name_ptr(&m, "ns", 14);
	t5 = mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 9999, v4a, 4) - 4;
	mb_u8(&m, 0);
	t6 = mb_rr(&m, DNSWIRE_TYPE_OPT, 1232, 0x8000, NULL, 0) - 4;

	ck_assert_int_eq(dnswire_cap_ttls(m.b, m.n, 300), 0);
	ck_assert_mem_eq(m.b + t1, "\0\0\x01\x2c", 4); /* 3600 -> 300 */
	ck_assert_mem_eq(m.b + t2, "\0\0\0\x3c", 4); /* 60 kept */
	ck_assert_mem_eq(m.b + t3, "\0\0\x01\x2c", 4); /* 300 kept */
	ck_assert_mem_eq(m.b + t4, "\0\0\x01\x2c", 4); /* 86400 -> 300 */
	ck_assert_mem_eq(m.b + soa_min, "\0\0\x0e\x10", 4);
	ck_assert_mem_eq(m.b + t5, "\0\0\x27\x0f", 4);
	ck_assert_mem_eq(m.b + t6, "\0\0\x80\0", 4);

	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	ck_assert_uint_eq(r.n_addrs, 3);
	ck_assert_uint_eq(r.addrs[0].ttl, 300);
	ck_assert_uint_eq(r.min_ttl, 60);
}
END_TEST

START_TEST(test_dnswire_ttl_cap_malformed)
{
	struct mb m;

	ck_assert_int_eq(dnswire_cap_ttls(m.b, 11, 5), -EBADMSG);
	mk_resp(&m, 1, F_QR, 2, "a.example", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 3600, v4a, 4);
	ck_assert_int_eq(dnswire_cap_ttls(m.b, m.n, 5), -EBADMSG);
	mb_name_ptr(&m, "", m.n + 10); /* forward pointer */
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 3600, v4a, 4);
	ck_assert_int_eq(dnswire_cap_ttls(m.b, m.n, 5), -EBADMSG);
}
END_TEST

/* ---- hostile ---- */

static int parse_resp_exact(const uint8_t *p, size_t n,
			    const struct dnswire_question *q)
{
	struct dnswire_response r;
	uint8_t *d = dup_exact(p, n);
	int err = dnswire_parse_response(d, n, q, &r);

	free(d);
	return err;
}

/* Response for a.example whose single A record's owner is owner_bytes. */
static int resp_with_owner(const void *owner, size_t olen, size_t pad)
{
	struct dnswire_question q;
	struct mb m;
	size_t i;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 1 + (pad ? 1 : 0), "a.example", DNSWIRE_TYPE_A);
	if (pad) {
		mb_name_ptr(&m, "", 12);
		mb_rr(&m, 0xff00, CLASS_IN, 0, NULL, (uint16_t)pad);
		for (i = 0; i < pad; i++)
			mb_u8(&m, 0);
	}
	mb_raw(&m, owner, olen);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 1, v4a, 4);
	return parse_resp_exact(m.b, m.n, &q);
}

START_TEST(test_dnswire_hostile_forward_pointer)
{
	/* the question ends at 27: owner at 27 points to 29 */
	ck_assert_int_eq(resp_with_owner("\xc0\x1d", 2, 0), -EBADMSG);
	/* owner past the end of the message */
	ck_assert_int_eq(resp_with_owner("\xc0\xff", 2, 0), -EBADMSG);
	ck_assert_int_eq(resp_with_owner("\xc0\x0c", 2, 0), 0);
}
END_TEST

START_TEST(test_dnswire_hostile_self_pointer)
{
	/* owner at 27 is a pointer to 27 */
	ck_assert_int_eq(resp_with_owner("\xc0\x1b", 2, 0), -EBADMSG);
	/* label "x" then a pointer back to its own start */
	ck_assert_int_eq(resp_with_owner("\x01x\xc0\x1b", 4, 0), -EBADMSG);
}
END_TEST

/* Pointers into the header are never valid. */
START_TEST(test_dnswire_hostile_pointer_into_header)
{
	ck_assert_int_eq(resp_with_owner("\xc0\x00", 2, 0), -EBADMSG);
	ck_assert_int_eq(resp_with_owner("\xc0\x0b", 2, 0), -EBADMSG);
}
END_TEST

/*
 * Name at X: label, pointer to Y < X; name at Y: label, pointer to X.
 * Every single pointer points backwards from where it sits but the pair
 * loops; the strictly-decreasing rule catches it.
 */
START_TEST(test_dnswire_hostile_pointer_loop)
{
	struct dnswire_question q;
	struct mb m;
	size_t y, x, rd;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 2, "a.example", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	rd = mb_rr(&m, 0xff00, CLASS_IN, 0, NULL, 0);
	y = m.n;
	mb_u8(&m, 1);
	mb_u8(&m, 'y');
	mb_u16(&m, 0); /* patched: pointer to x */
	mb_rdlen_fix(&m, rd);
	x = m.n;
	mb_name_ptr(&m, "x", y);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 1, v4a, 4);
	mb_put16(&m, y + 2, 0xc000 | (uint16_t)x);
	ck_assert_int_eq(parse_resp_exact(m.b, m.n, &q), -EBADMSG);
	ck_assert_int_eq(dnswire_cap_ttls(m.b, m.n, 1), 0); /* not followed */
}
END_TEST

/* A strictly decreasing chain of pointers: 100 hops fine, 200 too many. */
static int resp_pointer_chain(int hops, struct dnswire_response *r)
{
	struct dnswire_question q;
	struct mb m;
	size_t rd, prev = 12;
	int i, err;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 2, "a.example", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	rd = mb_rr(&m, 0xff00, CLASS_IN, 0, NULL, 0);
	for (i = 0; i < hops - 1; i++) {
		size_t at = m.n;

		mb_u16(&m, 0xc000 | (uint16_t)prev);
		prev = at;
	}
	mb_rdlen_fix(&m, rd);
	mb_name_ptr(&m, "", prev);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 1, v4a, 4);
	{
		uint8_t *d = dup_exact(m.b, m.n);

		err = dnswire_parse_response(d, m.n, &q, r);
		free(d);
	}
	return err;
}

START_TEST(test_dnswire_hostile_hop_limit)
{
	struct dnswire_response r;

	ck_assert_int_eq(resp_pointer_chain(100, &r), 0);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_int_eq(resp_pointer_chain(200, &r), -EBADMSG);
}
END_TEST

START_TEST(test_dnswire_hostile_name_too_long)
{
	struct dnswire_question q;
	char name[400];
	struct mb m;
	size_t n, second;

	/* 3 x 63 + 61: 3 * 64 + 62 + 1 = 255 octets in wire form */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[191 + 62] = '\0';
	mk_query(&m, 1, 0, name, DNSWIRE_TYPE_A, false, false);
	ck_assert_uint_eq(m.n, 12 + 255 + 4);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_uint_eq(q.name_len, 253);

	/* 256 octets */
	name[191 + 62] = 'a';
	name[191 + 63] = '\0';
	mk_query(&m, 1, 0, name, DNSWIRE_TYPE_A, false, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);

	/* 5 x 63 */
	name[255] = '.';
	name[319] = '\0';
	mk_query(&m, 1, 0, name, DNSWIRE_TYPE_A, false, false);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);

	/*
	 * Too long only once pointers are followed: a 201-octet name, then
	 * 50 octets + pointer (251, fine) and 55 octets + pointer (256).
	 */
	memset(name, 'b', sizeof(name));
	name[49] = name[99] = name[149] = '.';
	name[199] = '\0'; /* 4 labels of 49: 200 + root */
	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 2, "a.example", DNSWIRE_TYPE_A);
	n = mb_name(&m, name);
	ck_assert_uint_eq(m.n - n, 201);
	mb_rr(&m, 0xff00, CLASS_IN, 0, NULL, 0);
	second = m.n;
	name[49] = '\0';
	mb_name_ptr(&m, name, n);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 1, v4a, 4);
	ck_assert_int_eq(parse_resp_exact(m.b, m.n, &q), 0);

	m.n = second;
	strcpy(name + 49, ".bbbb");
	mb_name_ptr(&m, name, n);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 1, v4a, 4);
	ck_assert_int_eq(parse_resp_exact(m.b, m.n, &q), -EBADMSG);
}
END_TEST

START_TEST(test_dnswire_hostile_reserved_label_types)
{
	struct dnswire_question q;
	struct mb m;

	mk_query(&m, 1, 0, "ab.example", DNSWIRE_TYPE_A, false, false);
	m.b[12] = 0x42;
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);
	m.b[12] = 0x82;
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);
	m.b[12] = 0x02;
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);

	ck_assert_int_eq(resp_with_owner("\x41x\0", 3, 0), -EBADMSG);
	ck_assert_int_eq(resp_with_owner("\x81x\0", 3, 0), -EBADMSG);
}
END_TEST

/* A query with OPT, a response with a CNAME chain: cut at every byte. */
START_TEST(test_dnswire_hostile_truncated_everywhere)
{
	struct dnswire_question q, fq;
	struct dnswire_response r;
	uint8_t *d;
	struct mb m;
	size_t cut, rd, full, t;

	mk_query(&m, 0x7777, F_RD, "www.example.com", DNSWIRE_TYPE_A, true,
		 true);
	for (cut = 0; cut < m.n; cut++) {
		d = dup_exact(m.b, cut);
		ck_assert_int_lt(dnswire_parse_query(d, cut, &q), 0);
		free(d);
	}
	d = dup_exact(m.b, m.n);
	ck_assert_int_eq(dnswire_parse_query(d, m.n, &q), 0);
	free(d);

	mk_q(&fq, "www.example.com", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 3, "www.example.com", DNSWIRE_TYPE_A);
	mb_name_ptr(&m, "", 12);
	rd = mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 50, NULL, 0);
	t = mb_name_ptr(&m, "cdn", 16);
	mb_rdlen_fix(&m, rd);
	mb_name_ptr(&m, "", t);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4a, 4);
	mb_name_ptr(&m, "", t);
	mb_rr(&m, DNSWIRE_TYPE_AAAA, CLASS_IN, 60, v6a, 16);
	full = m.n;
	for (cut = 0; cut < full; cut++) {
		ck_assert_int_lt(parse_resp_exact(m.b, cut, &fq), 0);
		d = dup_exact(m.b, cut);
		ck_assert_int_lt(dnswire_cap_ttls(d, cut, 1), 0);
		free(d);
	}
	d = dup_exact(m.b, full);
	ck_assert_int_eq(dnswire_parse_response(d, full, &fq, &r), 0);
	ck_assert_uint_eq(r.n_cnames, 1);
	ck_assert_uint_eq(r.n_addrs, 2);
	ck_assert_uint_eq(r.min_ttl, 50);
	ck_assert_int_eq(dnswire_cap_ttls(d, full, 1), 0);
	free(d);
}
END_TEST

/* Huge counts with little data: walking stops at the end of the buffer. */
START_TEST(test_dnswire_hostile_counts_lie)
{
	struct dnswire_question q, fq;
	struct dnswire_response r;
	struct mb m;

	mk_query(&m, 1, 0, "a.example", DNSWIRE_TYPE_A, false, false);
	mb_put16(&m, 6, 0xffff);
	mb_put16(&m, 8, 0xffff);
	mb_put16(&m, 10, 0xffff);
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), -EBADMSG);
	ck_assert_int_eq(dnswire_cap_ttls(m.b, m.n, 1), -EBADMSG);
	mk_q(&fq, "a.example", DNSWIRE_TYPE_A);
	mb_put16(&m, 2, F_QR);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &fq, &r), -EBADMSG);
	mb_put16(&m, 2, F_QR | F_TC);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &fq, &r), 0);
	ck_assert_uint_eq(r.n_addrs, 0);
}
END_TEST

/* A hand-made question with a name that cannot exist is refused. */
START_TEST(test_dnswire_hostile_bad_question_name)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;

	mk_q(&q, "a.example", DNSWIRE_TYPE_A);
	mk_resp(&m, 1, F_QR, 0, "a.example", DNSWIRE_TYPE_A);
	strcpy(q.name, "a..example");
	q.name_len = strlen(q.name);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EINVAL);
	strcpy(q.name, "a\\9");
	q.name_len = strlen(q.name);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), -EINVAL);
	strcpy(q.name, "a.example."); /* trailing dot tolerated */
	q.name_len = strlen(q.name);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
	strcpy(q.name, "A.\\069xample"); /* any case, \DDD */
	q.name_len = strlen(q.name);
	ck_assert_int_eq(dnswire_parse_response(m.b, m.n, &q, &r), 0);
}
END_TEST

/* ---- strip, chain targets, 0x20 ---- */

static bool pred_v4(void *arg, enum dnswire_section sec, uint16_t type,
		    const uint8_t *rdata, uint16_t rdlen)
{
	const uint8_t *bad = arg;

	return type == DNSWIRE_TYPE_A && rdlen == 4 && !memcmp(rdata, bad, 4);
}

static bool pred_answer(void *arg, enum dnswire_section sec, uint16_t type,
			const uint8_t *rdata, uint16_t rdlen)
{
	return sec == DNSWIRE_SEC_ANSWER;
}

/*
 * www.example.com CNAME cdn.example.net; cdn A v4a; cdn A v4b; authority
 * example.net NS ns.example.net (names pointing behind the A records);
 * additional ns A v4c and an OPT.
 */
static void mk_chain_resp(struct mb *m)
{
	size_t rd, cdn, ns;

	mk_resp(m, 7, F_QR | F_RD | F_RA, 3, "www.example.com", 1);
	mb_put16(m, 8, 1);
	mb_put16(m, 10, 2);
	mb_name_ptr(m, "", 12);
	rd = mb_rr(m, DNSWIRE_TYPE_CNAME, CLASS_IN, 300, NULL, 0);
	cdn = mb_name(m, "cdn.example.net");
	mb_rdlen_fix(m, rd);
	mb_name_ptr(m, "", cdn);
	mb_rr(m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4a, 4);
	mb_name_ptr(m, "", cdn);
	mb_rr(m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4b, 4);
	mb_name_ptr(m, "", cdn + 4); /* example.net */
	rd = mb_rr(m, DNSWIRE_TYPE_NS, CLASS_IN, 60, NULL, 0);
	ns = mb_name_ptr(m, "ns", cdn + 4);
	mb_rdlen_fix(m, rd);
	mb_name_ptr(m, "", ns);
	mb_rr(m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4c, 4);
	mb_opt(m, 1232, 0, false);
}

START_TEST(test_dnswire_strip_one_address)
{
	struct dnswire_question q;
	struct dnswire_response r;
	struct mb m;
	uint8_t *b;
	ssize_t n;
	size_t len;

	mk_chain_resp(&m);
	mk_q(&q, "www.example.com", 1);
	b = dup_exact(m.b, m.n);
	n = dnswire_strip_rrs(b, m.n, pred_v4, (void *)v4a);
	ck_assert_int_eq(n, (ssize_t)m.n - 16);
	len = (size_t)n;
	ck_assert_uint_eq(b[7], 2); /* ancount */
	ck_assert_uint_eq(b[9], 1);
	ck_assert_uint_eq(b[11], 2);
	ck_assert_int_eq(dnswire_parse_response(b, len, &q, &r), 0);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_mem_eq(r.addrs[0].addr, v4b, 4);
	ck_assert_uint_eq(r.n_cnames, 1);
	/* The pointers behind the cut still name what they named. */
	ck_assert_int_eq(dnswire_strip_rrs(b, len, pred_v4, (void *)v4c),
			 (ssize_t)len - 16);
	free(b);
}
END_TEST

START_TEST(test_dnswire_strip_moves_pointers)
{
	struct mb m, m2;
	uint8_t *b;
	ssize_t n;

	/* Strip the first A: the NS record's names (pointing at cdn's
	 * suffix, before the cut) and "ns" (after it) must still read. */
	mk_chain_resp(&m);
	b = dup_exact(m.b, m.n);
	n = dnswire_strip_rrs(b, m.n, pred_v4, (void *)v4a);
	ck_assert_int_gt(n, 0);
	/* Rebuild without that record by hand: same bytes expected. */
	{
		size_t rd, cdn, ns;

		mk_resp(&m2, 7, F_QR | F_RD | F_RA, 2, "www.example.com", 1);
		mb_put16(&m2, 8, 1);
		mb_put16(&m2, 10, 2);
		mb_name_ptr(&m2, "", 12);
		rd = mb_rr(&m2, DNSWIRE_TYPE_CNAME, CLASS_IN, 300, NULL, 0);
		cdn = mb_name(&m2, "cdn.example.net");
		mb_rdlen_fix(&m2, rd);
		mb_name_ptr(&m2, "", cdn);
		mb_rr(&m2, DNSWIRE_TYPE_A, CLASS_IN, 60, v4b, 4);
		mb_name_ptr(&m2, "", cdn + 4);
		rd = mb_rr(&m2, DNSWIRE_TYPE_NS, CLASS_IN, 60, NULL, 0);
		ns = mb_name_ptr(&m2, "ns", cdn + 4);
		mb_rdlen_fix(&m2, rd);
		mb_name_ptr(&m2, "", ns);
		mb_rr(&m2, DNSWIRE_TYPE_A, CLASS_IN, 60, v4c, 4);
		mb_opt(&m2, 1232, 0, false);
	}
	ck_assert_int_eq(n, (ssize_t)m2.n);
	ck_assert_mem_eq(b, m2.b, m2.n);
	free(b);
}
END_TEST

START_TEST(test_dnswire_strip_pointer_into_cut_refused)
{
	struct mb m;
	uint8_t *b, *orig;
	size_t own;

	/* The A record's owner is literal; a later record points at it. */
	mk_resp(&m, 7, F_QR, 2, "x.example.com", 1);
	own = mb_name(&m, "target.example.org");
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4a, 4);
	mb_name_ptr(&m, "", own);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4b, 4);
	b = dup_exact(m.b, m.n);
	orig = dup_exact(m.b, m.n);
	ck_assert_int_eq(dnswire_strip_rrs(b, m.n, pred_v4, (void *)v4a),
			 -ENOTSUP);
	ck_assert_mem_eq(b, orig, m.n); /* untouched */
	/* Stripping the second is fine. */
	ck_assert_int_eq(dnswire_strip_rrs(b, m.n, pred_v4, (void *)v4b),
			 (ssize_t)m.n - 16);
	free(b);
	free(orig);
}
END_TEST

START_TEST(test_dnswire_strip_answer_section_keeps_soa)
{
	struct mb m;
	uint8_t *b;
	ssize_t n;
	size_t rd;

	mk_resp(&m, 7, F_QR, 1, "x.example.com", 1);
	mb_put16(&m, 8, 1);
	mb_name_ptr(&m, "", 12);
	mb_rr(&m, DNSWIRE_TYPE_A, CLASS_IN, 60, v4a, 4);
	mb_name_ptr(&m, "", 14); /* example.com */
	rd = mb_rr(&m, DNSWIRE_TYPE_SOA, CLASS_IN, 60, NULL, 0);
	mb_name_ptr(&m, "ns", 14);
	mb_name_ptr(&m, "hostmaster", 14);
	for (int i = 0; i < 5; i++)
		mb_u32(&m, 100 + i);
	mb_rdlen_fix(&m, rd);
	b = dup_exact(m.b, m.n);
	n = dnswire_strip_rrs(b, m.n, pred_answer, NULL);
	ck_assert_int_eq(n, (ssize_t)m.n - 16);
	ck_assert_uint_eq(b[7], 0);
	ck_assert_uint_eq(b[9], 1);
	/* Nothing selected: length unchanged. */
	ck_assert_int_eq(dnswire_strip_rrs(b, (size_t)n, pred_answer, NULL), n);
	/* Truncated input is refused. */
	ck_assert_int_eq(dnswire_strip_rrs(b, (size_t)n - 1, pred_answer, NULL),
			 -EBADMSG);
	free(b);
}
END_TEST

static int collect_cb(void *arg, const char *name, size_t len)
{
	char *out = arg;

	ck_assert_uint_eq(strlen(name), len);
	strcat(out, name);
	strcat(out, ";");
	return !strcmp(name, "stop.example") ? 7 : 0;
}

START_TEST(test_dnswire_answer_targets)
{
	char got[512] = "";
	struct mb m;
	size_t rd, t;

	mk_chain_resp(&m);
	ck_assert_int_eq(dnswire_answer_targets(m.b, m.n, collect_cb, got), 0);
	ck_assert_str_eq(got, "cdn.example.net;");

	/* DNAME targets count; the callback's result stops the walk. */
	mk_resp(&m, 7, F_QR, 3, "a.Example.COM", 1);
	mb_name_ptr(&m, "", 14);
	rd = mb_rr(&m, DNSWIRE_TYPE_DNAME, CLASS_IN, 60, NULL, 0);
	t = mb_name(&m, "EVIL.net");
	mb_rdlen_fix(&m, rd);
	mb_name_ptr(&m, "", 12);
	rd = mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 60, NULL, 0);
	mb_name_ptr(&m, "a", t);
	mb_rdlen_fix(&m, rd);
	mb_name_ptr(&m, "", 12);
	rd = mb_rr(&m, DNSWIRE_TYPE_CNAME, CLASS_IN, 60, NULL, 0);
	mb_name(&m, "stop.example");
	mb_rdlen_fix(&m, rd);
	got[0] = '\0';
	ck_assert_int_eq(dnswire_answer_targets(m.b, m.n, collect_cb, got), 7);
	ck_assert_str_eq(got, "evil.net;a.evil.net;stop.example;");
	ck_assert_int_eq(dnswire_answer_targets(m.b, m.n - 1, collect_cb, got),
			 -EBADMSG);
}
END_TEST

START_TEST(test_dnswire_0x20)
{
	struct dnswire_question q;
	static const uint8_t ones[2] = { 0xff, 0xff }, zero[1] = { 0 };
	static const uint8_t alt[1] = { 0x55 };
	struct mb m;

	mk_query(&m, 1, F_RD, "ab1-c.Example.com", 1, true, false);
	ck_assert_uint_eq(dnswire_0x20(m.b, m.n, ones, sizeof(ones)), 13);
	ck_assert_mem_eq(m.b + 12,
			 "\x05"
			 "AB1-C\x07"
			 "EXAMPLE\x03"
			 "COM",
			 19);
	ck_assert_uint_eq(dnswire_0x20(m.b, m.n, zero, sizeof(zero)), 13);
	ck_assert_mem_eq(m.b + 12,
			 "\x05"
			 "ab1-c\x07"
			 "example\x03"
			 "com",
			 19);
	/* Bit i for letter i, cycled: 0x55 = 1,0,1,0,... */
	dnswire_0x20(m.b, m.n, alt, sizeof(alt));
	ck_assert_mem_eq(m.b + 12,
			 "\x05"
			 "Ab1-C\x07"
			 "eXaMpLe\x03"
			 "CoM",
			 19);
	/* Still the same query, only the case moved. */
	ck_assert_int_eq(dnswire_parse_query(m.b, m.n, &q), 0);
	ck_assert_str_eq(q.name, "ab1-c.example.com");
	ck_assert_uint_eq(dnswire_0x20(m.b, m.n, alt, 0), 0);
}
END_TEST

static Suite *dnswire_suite(void)
{
	Suite *s = suite_create("dnswire");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_dnswire_parse_plain_query);
	tcase_add_test(tc, test_dnswire_parse_query_opt_do);
	tcase_add_test(tc, test_dnswire_parse_query_opt_after_other_sections);
	tcase_add_test(tc, test_dnswire_parse_opt_owner_must_be_root);
	tcase_add_test(tc, test_dnswire_parse_uppercase_lowered);
	tcase_add_test(tc, test_dnswire_parse_root_name);
	tcase_add_test(tc, test_dnswire_parse_trailing_root_no_dot);
	tcase_add_test(tc, test_dnswire_parse_escapes);
	tcase_add_test(tc, test_dnswire_parse_label_63);
	tcase_add_test(tc, test_dnswire_parse_qdcount_not_one);
	tcase_add_test(tc, test_dnswire_parse_short_header);
	tcase_add_test(tc, test_dnswire_parse_pointer_in_question_rejected);
	tcase_add_test(tc, test_dnswire_type_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("reply");
	tcase_add_test(tc, test_dnswire_reply_nxdomain);
	tcase_add_test(tc, test_dnswire_reply_servfail);
	tcase_add_test(tc, test_dnswire_reply_nodata);
	tcase_add_test(tc, test_dnswire_reply_refused_flags);
	tcase_add_test(tc, test_dnswire_reply_drops_extra_records);
	tcase_add_test(tc, test_dnswire_reply_errors);
	tcase_add_test(tc, test_dnswire_reply_header_only_formerr);
	suite_add_tcase(s, tc);

	tc = tcase_create("response");
	tcase_add_test(tc, test_dnswire_response_a);
	tcase_add_test(tc, test_dnswire_response_aaaa);
	tcase_add_test(tc, test_dnswire_response_cname_chain);
	tcase_add_test(tc, test_dnswire_response_cname_out_of_order);
	tcase_add_test(tc, test_dnswire_response_cname_loop_and_limit);
	tcase_add_test(tc, test_dnswire_response_question_mismatch);
	tcase_add_test(tc, test_dnswire_response_escaped_question);
	tcase_add_test(tc, test_dnswire_response_id_not_checked);
	tcase_add_test(tc, test_dnswire_response_bad_rdlength);
	tcase_add_test(tc, test_dnswire_response_nxdomain_and_ttl_msb);
	tcase_add_test(tc, test_dnswire_response_many_addrs_truncated);
	tcase_add_test(tc, test_dnswire_response_tc_partial);
	suite_add_tcase(s, tc);

	tc = tcase_create("ttl");
	tcase_add_test(tc, test_dnswire_ttl_cap);
	tcase_add_test(tc, test_dnswire_ttl_cap_malformed);
	suite_add_tcase(s, tc);

	tc = tcase_create("rewrite");
	tcase_add_test(tc, test_dnswire_strip_one_address);
	tcase_add_test(tc, test_dnswire_strip_moves_pointers);
	tcase_add_test(tc, test_dnswire_strip_pointer_into_cut_refused);
	tcase_add_test(tc, test_dnswire_strip_answer_section_keeps_soa);
	tcase_add_test(tc, test_dnswire_answer_targets);
	tcase_add_test(tc, test_dnswire_0x20);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_test(tc, test_dnswire_hostile_forward_pointer);
	tcase_add_test(tc, test_dnswire_hostile_self_pointer);
	tcase_add_test(tc, test_dnswire_hostile_pointer_into_header);
	tcase_add_test(tc, test_dnswire_hostile_pointer_loop);
	tcase_add_test(tc, test_dnswire_hostile_hop_limit);
	tcase_add_test(tc, test_dnswire_hostile_name_too_long);
	tcase_add_test(tc, test_dnswire_hostile_reserved_label_types);
	tcase_add_test(tc, test_dnswire_hostile_truncated_everywhere);
	tcase_add_test(tc, test_dnswire_hostile_counts_lie);
	tcase_add_test(tc, test_dnswire_hostile_bad_question_name);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dnswire_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
