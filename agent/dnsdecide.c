// SPDX-License-Identifier: GPL-2.0-only
/*
 * The DNS proxy's decisions: what a client query gets (dp_handle_query:
 * the policy's first match on the first question, DoH/DoT provider names,
 * AAAA with IPv6 off; denied names answered NXDOMAIN on the spot and
 * never forwarded, with a violation line) and what an upstream answer may
 * carry before it is released (dp_guard: rebinding addresses stripped, a
 * CNAME chain through a denied name answered NXDOMAIN; then the answer
 * hook, learning). docs/dns-proxy.md is the user's view of both.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsproxy_int.h"
#include "egressd/doh.h"
#include "egressd/events.h"

/*
 * A violation line (events_dns_violation) naming cl, who asked. Denied
 * queries can come by the thousand: with no events handle the client
 * address is not formatted at all.
 */
static void dp_violation(struct dnsproxy *p, const struct dp_client *cl,
			 enum events_reason reason, const char *name,
			 uint16_t qtype, const char *action)
{
	char who[INET6_ADDRSTRLEN + 8];

	if (!p->events)
		return;
	if (cl->tcp)
		dp_addr_text(&p->conns[cl->conn].peer, who, sizeof(who));
	else
		dp_addr_text(cl->addr, who, sizeof(who));
	events_dns_violation(p->events, reason, name, qtype, action, who);
}

/* ---- what an answer may carry (docs/dns-proxy.md) --------------------- */

struct dp_guard_ctx {
	struct dnsproxy *p;
	struct dp_query *s;
	uint64_t now;
	unsigned int stripped;
};

/* A CNAME/DNAME target that a deny rule or the DoH/DoT list refuses. */
static int dp_chain_cb(void *arg, const char *name, size_t len)
{
	struct dp_guard_ctx *g = arg;
	struct dnsproxy *p = g->p;
	struct policy_match m = { .action = POLICY_DENY };
	enum events_reason reason;
	struct dp_client cl;

	if (!p->matcher)
		return 0;
	policy_matcher_lookup(p->matcher, name, len, &m);
	/* Only an explicit deny: a CDN name the policy does not list is
	 * what most allowed names point at. */
	if (m.matched && m.action == POLICY_DENY)
		reason = EVENTS_REASON_DENY_RULE;
	else if (p->block_doh_names && !m.exact_allow &&
		 doh_is_provider_name(name, len))
		reason = EVENTS_REASON_DOH;
	else
		return 0;
	dp_query_client(g->s, &cl);
	dp_violation(p, &cl, reason, name, g->s->q.qtype, "nxdomain");
	return 1;
}

static bool dp_strip_pred(void *arg, enum dnswire_section sec, uint16_t type,
			  const uint8_t *rdata, uint16_t rdlen)
{
	struct dp_guard_ctx *g = arg;
	int family;

	if (type == DNSWIRE_TYPE_A && rdlen == 4)
		family = AF_INET;
	else if (type == DNSWIRE_TYPE_AAAA && rdlen == 16)
		family = AF_INET6;
	else
		return false;
	if (!dnsguard_refuses(g->p->guard, family, rdata, g->now))
		return false;
	g->stripped++;
	return true;
}

static bool dp_strip_answer_sec(void *arg, enum dnswire_section sec,
				uint16_t type, const uint8_t *rdata,
				uint16_t rdlen)
{
	return sec == DNSWIRE_SEC_ANSWER;
}

/* A TC answer we cannot walk: header and question only, still TC. */
static void dp_cut_to_question(struct dp_query *s, uint8_t *msg, size_t *len,
			       struct dnswire_response *r)
{
	*len = s->q.question_end;
	memset(msg + 6, 0, 6);
	r->n_addrs = 0;
	r->n_cnames = 0;
	r->min_ttl = UINT32_MAX;
}

/*
 * Deny wins along the CNAME chain, and rebinding answers lose their
 * addresses. Returns 0 to go on with msg (*len and r updated), or an
 * rcode (> 0, or DP_GUARD_NODATA) to answer instead, or -errno (SERVFAIL).
 */
#define DP_GUARD_NODATA 16

static int dp_guard(struct dnsproxy *p, struct dp_query *s, uint8_t *msg,
		    size_t *len, struct dnswire_response *r)
{
	struct dp_guard_ctx g = { .p = p, .s = s };
	size_t had = r->n_addrs;
	struct dp_client cl;
	ssize_t n;
	int rc;

	g.now = loop_now_ms(p->loop);
	n = dnswire_strip_rrs(msg, *len, dp_strip_pred, &g);
	if (n == -EBADMSG && r->tc) {
		dp_cut_to_question(s, msg, len, r);
		return 0;
	}
	if (n == -EBADMSG)
		return -EBADMSG;
	if (g.stripped) {
		p->st.rebinding++;
		dp_query_client(s, &cl);
		dp_violation(p, &cl, EVENTS_REASON_REBINDING, s->q.name,
			     s->q.qtype, "stripped");
		/* Names pointing into a stripped record, or too many: no
		 * records at all rather than a message we cannot rewrite. */
		if (n < 0)
			return DP_GUARD_NODATA;
		*len = (size_t)n;
	}
	/* Judged after stripping: what the client reads is what counts. */
	rc = dnswire_answer_targets(msg, *len, dp_chain_cb, &g);
	if (rc > 0)
		return DNSWIRE_RCODE_NXDOMAIN;
	if (rc < 0) {
		if (!r->tc)
			return rc;
		dp_cut_to_question(s, msg, len, r);
		return 0;
	}
	if (!g.stripped)
		return 0;
	rc = dnswire_parse_response(msg, *len, &s->q, r);
	if (rc < 0)
		return r->tc ? DP_GUARD_NODATA : rc;
	if (had && !r->n_addrs) {
		/* As the upstream answers a name with no such records:
		 * NOERROR, empty answer section, the SOA (if any) kept. */
		n = dnswire_strip_rrs(msg, *len, dp_strip_answer_sec, NULL);
		if (n < 0)
			return DP_GUARD_NODATA;
		*len = (size_t)n;
		r->n_cnames = 0;
		r->min_ttl = UINT32_MAX;
	}
	return 0;
}

/*
 * An answer for s passed the checks of its transport: judge what it
 * carries, run the hook (learning), and send it to s and to every query
 * coalesced onto s.
 */
void dp_deliver(struct dnsproxy *p, struct dp_query *s, uint8_t *msg,
		size_t len, struct dnswire_response *r)
{
	struct dp_query *f, *fn;
	int rc;

	rc = dp_guard(p, s, msg, &len, r);
	if (rc) {
		dp_fail_reply(p, s,
			      rc == DP_GUARD_NODATA ? DNSWIRE_RCODE_NOERROR :
			      rc > 0		    ? rc :
						      DNSWIRE_RCODE_SERVFAIL);
		return;
	}
	dnswire_set_id(msg, s->client_id);
	if (p->hook && p->hook(p->hook_arg, s->q.name, r, msg, len) < 0) {
		dp_fail_reply(p, s, DNSWIRE_RCODE_SERVFAIL);
		return;
	}
	for (f = s->fhead; f; f = fn) {
		fn = f->fnext;
		dp_send_answer(p, f, msg, len);
	}
	s->fhead = NULL;
	dp_send_answer(p, s, msg, len);
}

/* ---- handling one client query ---------------------------------------- */

static void dp_reply_rcode(struct dnsproxy *p, const struct dp_client *cl,
			   const uint8_t *msg, size_t len,
			   const struct dnswire_question *q, int rcode)
{
	uint8_t rep[DP_REPLY_BUF];
	ssize_t n;

	n = dnswire_build_reply(msg, len, q, rcode, rep, sizeof(rep));
	if (n < DNSWIRE_HDR_LEN)
		return;
	/* The header-only form (q NULL) always says FORMERR. */
	if (!q)
		rep[3] = (uint8_t)((rep[3] & 0xf0) | (rcode & 0x0f));
	dp_send_client(p, cl, rep, (size_t)n);
}

void dp_handle_query(struct dnsproxy *p, const uint8_t *msg, size_t len,
		     const struct dp_client *cl)
{
	struct policy_match m = { .action = POLICY_DENY };
	enum events_reason reason;
	struct dnswire_question *q;
	struct dp_query *s;
	int rc, opcode;

	p->st.queries++;
	s = dp_slot_get(p);
	q = s ? &s->q : &p->scratch_q;
	rc = dnswire_parse_query(msg, len, q);
	if (rc == -EMSGSIZE || (q->flags & DNSWIRE_F_QR)) {
		/* Too short to answer, or a response sent to us: answering
		 * would let two resolvers bounce packets forever. */
		p->st.malformed++;
		goto drop;
	}
	opcode = (q->flags & DNSWIRE_F_OPCODE_MASK) >> 11;
	if (opcode != 0) {
		p->st.malformed++;
		dp_reply_rcode(p, cl, msg, len, rc ? NULL : q,
			       DNSWIRE_RCODE_NOTIMP);
		goto drop;
	}
	if (rc < 0) {
		p->st.malformed++;
		dp_reply_rcode(p, cl, msg, len, NULL, DNSWIRE_RCODE_FORMERR);
		goto drop;
	}

	if (p->matcher)
		policy_matcher_lookup(p->matcher, q->name, q->name_len, &m);
	reason = m.matched ? EVENTS_REASON_DENY_RULE :
			     EVENTS_REASON_DEFAULT_DENY;
	/* A DoH/DoT resolver would bypass this proxy: only a rule naming it
	 * exactly lets it resolve. */
	if (m.action == POLICY_ALLOW && p->block_doh_names && !m.exact_allow &&
	    doh_is_provider_name(q->name, q->name_len)) {
		m.action = POLICY_DENY;
		reason = EVENTS_REASON_DOH;
	}
	if (m.action == POLICY_ALLOW && p->aaaa_nodata &&
	    q->qtype == DNSWIRE_TYPE_AAAA) {
		/* IPv6 is off: an empty answer makes clients fall back to
		 * IPv4 at once, with no happy-eyeballs stall. */
		p->st.denied++;
		dp_reply_rcode(p, cl, msg, len, q, DNSWIRE_RCODE_NOERROR);
		dp_violation(p, cl, EVENTS_REASON_IPV6_DISABLED, q->name,
			     q->qtype, "nodata");
		goto drop;
	}
	if (m.action != POLICY_ALLOW) {
		p->st.denied++;
		dp_reply_rcode(p, cl, msg, len, q, DNSWIRE_RCODE_NXDOMAIN);
		dp_violation(p, cl, reason, q->name, q->qtype, "nxdomain");
		goto drop;
	}
	if (!s) {
		/* DP_MAX_INFLIGHT queries are waiting: shed load. */
		p->st.servfail++;
		dp_reply_rcode(p, cl, msg, len, q, DNSWIRE_RCODE_SERVFAIL);
		return;
	}
	if (s->cap < len) {
		size_t ncap = len < 512 ? 512 : len;
		uint8_t *nb = realloc(s->msg, ncap);

		if (!nb) {
			p->st.servfail++;
			dp_reply_rcode(p, cl, msg, len, q,
				       DNSWIRE_RCODE_SERVFAIL);
			goto drop;
		}
		s->msg = nb;
		s->cap = ncap;
	}
	memcpy(s->msg, msg, len);
	s->len = len;
	s->client_id = q->id;
	s->from_tcp = cl->tcp;
	if (cl->tcp) {
		s->conn = cl->conn;
		s->conn_gen = cl->gen;
		p->conns[cl->conn].inflight++;
	} else {
		s->listener = cl->listener;
		memcpy(&s->client, cl->addr, cl->addrlen);
		s->clientlen = cl->addrlen;
	}
	s->n_order = (uint8_t)p->n_ups;
	memcpy(s->order, p->order, sizeof(s->order));
	memcpy(s->qorig, s->msg + DNSWIRE_HDR_LEN, dp_qlen(s));
	s->caps = s->nocaps = false;
	s->lead = s->fhead = s->fnext = s->hnext = NULL;
	s->in_table = false;
	p->st.allowed++;
	p->st.inflight++;
	if (dp_coalesce(p, s))
		return;
	dp_attempt(p, s);
	return;
drop:
	if (s)
		dp_slot_put(p, s);
}
