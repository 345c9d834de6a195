/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * DNS wire format: pure functions over byte buffers, no I/O, no
 * allocation, so they can be fuzzed (tests/fuzz/fuzz_dnswire.c). Every
 * function treats its input as hostile: bounds are checked on every read,
 * compression pointers may only point backwards and are followed a bounded
 * number of times.
 */
#ifndef __EGRESSD_DNSWIRE_H
#define __EGRESSD_DNSWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DNSWIRE_HDR_LEN 12
/* Escaped presentation form of a 255-octet name, plus NUL. */
#define DNSWIRE_NAME_MAX 1024
#define DNSWIRE_MAX_ADDRS 64

enum dnswire_rcode {
	DNSWIRE_RCODE_NOERROR = 0,
	DNSWIRE_RCODE_FORMERR = 1,
	DNSWIRE_RCODE_SERVFAIL = 2,
	DNSWIRE_RCODE_NXDOMAIN = 3,
	DNSWIRE_RCODE_NOTIMP = 4,
	DNSWIRE_RCODE_REFUSED = 5,
};

enum dnswire_type {
	DNSWIRE_TYPE_A = 1,
	DNSWIRE_TYPE_NS = 2,
	DNSWIRE_TYPE_CNAME = 5,
	DNSWIRE_TYPE_SOA = 6,
	DNSWIRE_TYPE_PTR = 12,
	DNSWIRE_TYPE_MX = 15,
	DNSWIRE_TYPE_TXT = 16,
	DNSWIRE_TYPE_AAAA = 28,
	DNSWIRE_TYPE_SRV = 33,
	DNSWIRE_TYPE_DNAME = 39,
	DNSWIRE_TYPE_OPT = 41,
	DNSWIRE_TYPE_SVCB = 64,
	DNSWIRE_TYPE_HTTPS = 65,
	DNSWIRE_TYPE_ANY = 255,
};

/* Header flag bits (host order, as in the 16-bit flags word). */
#define DNSWIRE_F_QR 0x8000
#define DNSWIRE_F_OPCODE_MASK 0x7800
#define DNSWIRE_F_AA 0x0400
#define DNSWIRE_F_TC 0x0200
#define DNSWIRE_F_RD 0x0100
#define DNSWIRE_F_RA 0x0080
#define DNSWIRE_F_AD 0x0020
#define DNSWIRE_F_CD 0x0010
#define DNSWIRE_F_RCODE_MASK 0x000f

/* A parsed query (or the question of a response). */
struct dnswire_question {
	uint16_t id;
	uint16_t flags;
	uint16_t qdcount, ancount, nscount, arcount;
	/*
	 * First question name in presentation form, lower-cased, without the
	 * trailing dot ("" for the root). Bytes other than [a-z0-9-_*] are
	 * escaped as in zone files ("\." and "\\" and "\DDD"), so a label
	 * holding a dot can never be mistaken for two labels.
	 */
	char name[DNSWIRE_NAME_MAX];
	size_t name_len;
	uint16_t qtype;
	uint16_t qclass;
	size_t question_end; /* offset just past the first question */
	bool has_opt; /* an OPT RR in the additional section */
	uint16_t opt_udp_size;
	uint8_t opt_version;
	bool opt_do;
};

/*
 * Parse a query: header, exactly the first question, and the additional
 * section's OPT record if any. Returns 0; -EMSGSIZE when shorter than a
 * header (nothing usable, id unknown); -EBADMSG when the header parsed
 * (q->id, q->flags and the counts valid) but the rest is malformed or
 * qdcount != 1; name, qtype, qclass, question_end and the opt_ fields are
 * only set on 0 (question_end is 0 otherwise).
 */
int dnswire_parse_query(const uint8_t *msg, size_t len,
			struct dnswire_question *q);

/*
 * Build a reply to the query msg (already parsed into q) with the given
 * rcode and no answer records: NXDOMAIN, SERVFAIL, REFUSED, NOTIMP, or
 * NOERROR for a NODATA answer. Echoes id, opcode, RD and CD and the
 * question bytes; sets QR and RA. Carries an OPT record (udp size 1232,
 * version 0, DO echoed) when the query had one. If q is NULL (the query did
 * not parse) a header-only FORMERR-style reply echoing msg's id and opcode
 * is built (the rcode argument is then ignored; msg needs len >= 2). Returns
 * the reply length or -ENOSPC / -EINVAL (also for an rcode outside 0..15,
 * or a q that did not come from a successful dnswire_parse_query of msg).
 */
ssize_t dnswire_build_reply(const uint8_t *msg, size_t len,
			    const struct dnswire_question *q, int rcode,
			    uint8_t *out, size_t outlen);

struct dnswire_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint32_t ttl;
};

struct dnswire_response {
	uint16_t id;
	uint16_t flags;
	int rcode;
	bool tc;
	/* A/AAAA records of the CNAME chain starting at the question name. */
	size_t n_addrs;
	struct dnswire_addr addrs[DNSWIRE_MAX_ADDRS];
	bool addrs_truncated; /* more than DNSWIRE_MAX_ADDRS were present */
	size_t n_cnames; /* CNAME hops followed */
	uint32_t min_ttl; /* over the records used, UINT32_MAX if none */
};

/*
 * Parse a response to the question q: QR must be set and its question
 * must equal q's (name case-insensitively, type, class), otherwise
 * -EPROTO. Walks the answer section following the CNAME chain from the
 * question name (at most 16 hops) and collects A/AAAA records owned by a
 * name on the chain. 0, -EMSGSIZE, -EBADMSG or -EPROTO; -EINVAL when
 * q->name is not a valid name. The id is not checked (the caller matches
 * it). With TC set, an answer section cut short is not an error: the
 * complete records before the cut are used.
 */
int dnswire_parse_response(const uint8_t *msg, size_t len,
			   const struct dnswire_question *q,
			   struct dnswire_response *r);

/*
 * Lower every TTL in the answer and authority sections to at most max_ttl,
 * in place. 0 or -EBADMSG (msg untouched on error is not guaranteed; the
 * caller must then not use msg).
 */
int dnswire_cap_ttls(uint8_t *msg, size_t len, uint32_t max_ttl);

/* Set/read the id of a message in place (len >= 2 checked by caller). */
static inline void dnswire_set_id(uint8_t *msg, uint16_t id)
{
	msg[0] = id >> 8;
	msg[1] = id & 0xff;
}

static inline uint16_t dnswire_get_id(const uint8_t *msg)
{
	return (uint16_t)(msg[0] << 8 | msg[1]);
}

/* Sections of a message, as dnswire_strip_rrs names them. */
enum dnswire_section {
	DNSWIRE_SEC_ANSWER = 1,
	DNSWIRE_SEC_AUTHORITY = 2,
	DNSWIRE_SEC_ADDITIONAL = 3,
};

/* Records one dnswire_strip_rrs call can remove (-E2BIG past this). */
#define DNSWIRE_STRIP_MAX 256

/* true: remove this record. rdata lies inside the message. */
typedef bool (*dnswire_rr_pred)(void *arg, enum dnswire_section sec,
				uint16_t type, const uint8_t *rdata,
				uint16_t rdlen);

/*
 * Remove from a response, in place, every record (OPT excepted) that drop
 * selects, fixing the section counts. Compression pointers of the records
 * that stay are moved with the bytes they point at (owner names, and the
 * names in the rdata of the RFC 1035 types and of MX, SRV, AFSDB, RT, RP,
 * DNAME; other types must not compress, RFC 3597). Returns the new length
 * (len when nothing was removed); -EBADMSG when malformed; -ENOTSUP when a
 * kept name points into a removed record; -E2BIG when more than
 * DNSWIRE_STRIP_MAX records would go. On error msg is unchanged. Only the
 * pointer that ends each of those names is moved: a hostile message whose
 * pointer chains run through other bytes may read differently afterwards,
 * so the caller must judge (parse, check) the result, not the input.
 */
ssize_t dnswire_strip_rrs(uint8_t *msg, size_t len, dnswire_rr_pred drop,
			  void *arg);

/*
 * Call cb with the target of every CNAME and DNAME record (class IN) of
 * the answer section, in the presentation form of
 * dnswire_question.name. Stops at the first non-zero cb result and returns
 * it; 0 when all were visited; -EBADMSG when the message is malformed
 * (the targets before the fault have been visited).
 */
int dnswire_answer_targets(const uint8_t *msg, size_t len,
			   int (*cb)(void *arg, const char *name, size_t len),
			   void *arg);

/*
 * 0x20 (draft-vixie-dnsext-dns0x20): give every letter of the first
 * question name of msg (a query that dnswire_parse_query accepted, so the
 * name is literal at offset 12) the case of one bit of rnd (bit i of byte
 * i / 8 for the i-th letter, cycled past rndlen * 8). Returns the number
 * of letters, which is how many bits of protection this query gained.
 */
unsigned int dnswire_0x20(uint8_t *msg, size_t len, const uint8_t *rnd,
			  size_t rndlen);

/* "A", "AAAA", … or "TYPE123"; buf of at least 12 bytes. */
const char *dnswire_type_name(uint16_t type, char *buf, size_t len);

#endif /* __EGRESSD_DNSWIRE_H */
