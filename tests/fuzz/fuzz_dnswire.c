// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for agent/dnswire.c. Each input is treated as both a
 * query and a response: it is parsed as a query, replied to with every
 * rcode, parsed as a response to its own question and to a fixed one, and
 * its TTLs are capped on an exact-size copy. Besides memory safety (ASan,
 * UBSan) it checks invariants that tie the functions together, and aborts
 * when one breaks: a built reply parses back as the same question and as a
 * valid response to it, and after capping every address TTL a response
 * yields is within the cap; stripping records never grows a message,
 * never touches it on error, and a second
 * pass with the same predicate removes nothing; 0x20 only changes case.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egressd/dnswire.h"

#define FUZZ_REPLY_MAX 1024
#define FUZZ_TTL_CAP 300

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_dnswire: invariant broken: %s\n", what);
	abort();
}

/* "fixed.example" A IN, the question of responses that are not ours. */
static const uint8_t fuzz_fixed_query[] = {
	0x12, 0x34, 0x01, 0x00, 0,   1,	  0,   0, 0,   0,   0,
	0,    5,    'f',  'i',	'x', 'e', 'd', 7, 'e', 'x', 'a',
	'm',  'p',  'l',  'e',	0,   0,	  1,   0, 1,
};

static void fuzz_reply(const uint8_t *data, size_t size,
		       const struct dnswire_question *q)
{
	struct dnswire_question rq;
	struct dnswire_response r;
	uint8_t out[FUZZ_REPLY_MAX];
	ssize_t n;
	int rcode;

	for (rcode = 0; rcode < 16; rcode++) {
		n = dnswire_build_reply(data, size, q, rcode, out, sizeof(out));
		if (n < 0)
			continue;
		if (n < DNSWIRE_HDR_LEN || (size_t)n > sizeof(out))
			fuzz_fail("reply length");
		if (!q)
			continue;
		/* A reply to a parsed query is itself a valid message. */
		if (dnswire_parse_query(out, (size_t)n, &rq))
			fuzz_fail("reply does not parse as a query");
		if (strcmp(rq.name, q->name) || rq.qtype != q->qtype ||
		    rq.qclass != q->qclass || rq.id != q->id ||
		    rq.has_opt != q->has_opt || rq.opt_do != q->opt_do)
			fuzz_fail("reply question differs");
		if (dnswire_parse_response(out, (size_t)n, q, &r))
			fuzz_fail("reply does not parse as a response");
		if (r.rcode != rcode || r.n_addrs || r.n_cnames)
			fuzz_fail("reply response fields");
		/* a too small buffer is refused, never overrun */
		if (dnswire_build_reply(data, size, q, rcode, out,
					(size_t)n - 1) != -ENOSPC)
			fuzz_fail("short reply buffer accepted");
	}
	/* the header-only form with what little there is */
	dnswire_build_reply(data, size, NULL, DNSWIRE_RCODE_FORMERR, out,
			    size % 16);
}

static void fuzz_response(const uint8_t *data, size_t size,
			  const struct dnswire_question *q)
{
	struct dnswire_response r, rc;
	uint8_t *copy;
	size_t i;
	int err;

	err = dnswire_parse_response(data, size, q, &r);
	if (err)
		return;
	if (r.n_addrs > DNSWIRE_MAX_ADDRS || r.n_cnames > 16)
		fuzz_fail("response counts");

	copy = malloc(size);
	if (!copy)
		return;
	memcpy(copy, data, size);
	if (!dnswire_cap_ttls(copy, size, FUZZ_TTL_CAP)) {
		/*
		 * Records keep their boundaries, so every address now has a
		 * capped TTL. Names are not compared: a hostile message can
		 * point a name into a TTL field, which capping rewrites.
		 */
		if (!dnswire_parse_response(copy, size, q, &rc)) {
			for (i = 0; i < rc.n_addrs; i++)
				if (rc.addrs[i].ttl > FUZZ_TTL_CAP)
					fuzz_fail("address TTL not capped");
			if (rc.n_addrs && rc.min_ttl > FUZZ_TTL_CAP)
				fuzz_fail("min_ttl not capped");
		}
	}
	free(copy);
}

/* Strip every A/AAAA whose first address byte is odd. */
static bool fuzz_pred(void *arg, enum dnswire_section sec, uint16_t type,
		      const uint8_t *rdata, uint16_t rdlen)
{
	return (type == DNSWIRE_TYPE_A || type == DNSWIRE_TYPE_AAAA) && rdlen &&
	       (rdata[0] & 1);
}

static int fuzz_target_cb(void *arg, const char *name, size_t len)
{
	if (strlen(name) != len || len >= DNSWIRE_NAME_MAX)
		fuzz_fail("chain target text");
	return 0;
}

static void fuzz_strip(const uint8_t *data, size_t size,
		       const struct dnswire_question *q)
{
	struct dnswire_response r;
	uint8_t *copy;
	ssize_t n, n2;
	bool parsed;

	copy = malloc(size ? size : 1);
	if (!copy)
		return;
	memcpy(copy, data, size);
	parsed = q && !dnswire_parse_response(data, size, q, &r);
	n = dnswire_strip_rrs(copy, size, fuzz_pred, NULL);
	if (n < 0) {
		if (size && memcmp(copy, data, size))
			fuzz_fail("strip changed the message on error");
	} else {
		if ((size_t)n > size)
			fuzz_fail("strip grew the message");
		n2 = dnswire_strip_rrs(copy, (size_t)n, fuzz_pred, NULL);
		if (n2 != n)
			fuzz_fail("strip not idempotent");
		/* Not checked: that it still parses. A hostile name can
		 * run its pointers through bytes that are no name (a TTL, an
		 * unknown rdata), which nothing moves; callers judge what
		 * comes out (dnswire.h). */
		(void)parsed;
	}
	dnswire_answer_targets(data, size, fuzz_target_cb, NULL);
	free(copy);
}

static void fuzz_0x20(const uint8_t *data, size_t size,
		      const struct dnswire_question *q)
{
	static const uint8_t rnd[3] = { 0xa5, 0x3c, 0x0f };
	struct dnswire_question q2;
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return;
	memcpy(copy, data, size);
	dnswire_0x20(copy, size, rnd, sizeof(rnd));
	if (dnswire_parse_query(copy, size, &q2) || strcmp(q2.name, q->name))
		fuzz_fail("0x20 changed more than case");
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dnswire_question fixed;
	static int fixed_ready;
	struct dnswire_question q;
	uint8_t *copy;
	char buf[12];
	int err;

	if (!fixed_ready) {
		if (dnswire_parse_query(fuzz_fixed_query,
					sizeof(fuzz_fixed_query), &fixed))
			fuzz_fail("fixed query");
		fixed_ready = 1;
	}

	err = dnswire_parse_query(data, size, &q);
	if (!err && (q.name_len != strlen(q.name) ||
		     q.name_len >= DNSWIRE_NAME_MAX || q.question_end > size))
		fuzz_fail("query fields");
	fuzz_reply(data, size, err ? NULL : &q);
	if (!err)
		fuzz_response(data, size, &q);
	fuzz_response(data, size, &fixed);
	fuzz_strip(data, size, err ? &fixed : &q);
	if (!err)
		fuzz_0x20(data, size, &q);
	if (size >= 2)
		dnswire_type_name(dnswire_get_id(data), buf, sizeof(buf));

	/* cap_ttls on whatever came in, on an exact-size copy */
	copy = malloc(size ? size : 1);
	if (copy) {
		memcpy(copy, data, size);
		dnswire_cap_ttls(copy, size, size ? data[0] : 0);
		free(copy);
	}
	return 0;
}
