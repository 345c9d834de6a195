// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the DNS proxy (agent/dnsproxy.c, dnsupstream.c, dnsicmp.c,
 * dnsprobe.c, dnstcp.c, dnsdecide.c), no root needed: each test runs one event loop holding the
 * proxy (listening on an ephemeral port of 127.0.0.1), one or two fake
 * upstream resolvers on 127.0.0.1 that log what reaches them and answer
 * from a rule (name -> address), drop, fail, truncate or forge, and
 * client sockets that send hand-built queries and wait for the replies.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egressd/dnsproxy.h"
#include "egressd/events.h"
#include "egressd/log.h"
#include "egressd/util.h"
#include "../agent/dnsproxy_int.h"

#define POLICY_JSON                                             \
	"{\"defaultAction\":\"deny\",\"egress\":["              \
	"{\"action\":\"deny\",\"target\":\"bad.example.com\"}," \
	"{\"action\":\"allow\",\"target\":\"*.example.com\"},"  \
	"{\"action\":\"allow\",\"target\":\"apex.org\"}]}"

#define MAX_LOG 512
#define BIG_RECORDS 100

enum fake_mode {
	FAKE_ANSWER = 0, /* answer every query at once */
	FAKE_DROP, /* never answer */
	FAKE_SERVFAIL, /* answer SERVFAIL */
	FAKE_HOLD2, /* hold queries until two arrived, answer in reverse */
	FAKE_SPOOF, /* first a forged answer (other question), then real */
	FAKE_DELAY, /* answer after 150 ms */
	FAKE_LOWER, /* answer with the question name lower-cased */
	FAKE_REBIND, /* A 127.0.0.53 and A <fake_addr> */
	FAKE_CNAME_BAD, /* CNAME bad.example.com (denied), A 6.6.6.6 */
	FAKE_SLOW_PROBE, /* answer at once, but ". NS" after 300 ms */
};

struct fake_query {
	uint8_t msg[1024];
	size_t len;
	struct sockaddr_storage from;
	socklen_t fromlen;
};

struct fake_up {
	struct loop *loop;
	int ufd, lfd, cfd;
	uint16_t port;
	enum fake_mode mode;
	int nq, tcp_nq;
	char names[MAX_LOG][256];
	uint8_t last[1024];
	size_t last_len;
	struct fake_query held[2];
	int n_held;
	struct loop_timer *delay;
	uint8_t tbuf[4096];
	size_t tlen;
};

struct client {
	struct loop *loop;
	int fd;
	bool tcp;
	int want, got;
	uint8_t ans[256][2048];
	size_t alen[256];
	uint8_t rbuf[65536 + 2];
	size_t rlen;
	uint64_t t_done;
};

struct env {
	struct loop *loop;
	struct dnsproxy *p;
	struct policy *pol;
	struct policy_matcher *m;
	struct egressd_config cfg;
	struct fake_up up[2];
	struct loop_timer *guard;
	struct events *ev;
	uint16_t port;
};

/* ---- allocation failure injection --------------------------------------- */

/*
 * This suite is linked with -Wl,--wrap=malloc,--wrap=calloc (Makefile
 * check_dnsproxy_LDFLAGS), so every malloc/calloc in the linked objects
 * comes here. With fail_alloc_at = N > 0 the Nth call from then on returns
 * NULL, once; 0 lets every call through.
 */
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);

static int fail_alloc_at;

static bool alloc_should_fail(void)
{
	if (fail_alloc_at <= 0)
		return false;
	return --fail_alloc_at == 0;
}

void *__wrap_malloc(size_t size)
{
	return alloc_should_fail() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return alloc_should_fail() ? NULL : __real_calloc(n, size);
}

/* ---- DNS message helpers ---------------------------------------------- */

static size_t put_name(uint8_t *b, const char *name)
{
	size_t n = 0;

	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		b[n++] = (uint8_t)l;
		memcpy(b + n, name, l);
		n += l;
		name += l;
		if (*name == '.')
			name++;
	}
	b[n++] = 0;
	return n;
}

static size_t mkquery(uint8_t *b, uint16_t id, const char *name, uint16_t qtype,
		      int qdcount, bool edns)
{
	size_t n = DNSWIRE_HDR_LEN;

	memset(b, 0, DNSWIRE_HDR_LEN);
	dnswire_set_id(b, id);
	b[2] = 0x01; /* RD */
	b[5] = (uint8_t)qdcount;
	for (int i = 0; i < (qdcount ? qdcount : 1); i++) {
		n += put_name(b + n, name);
		b[n++] = (uint8_t)(qtype >> 8);
		b[n++] = (uint8_t)qtype;
		b[n++] = 0;
		b[n++] = 1;
	}
	if (edns) {
		/* owner ".", type OPT, udp size 4000, ext-rcode 0,
		 * version 0, DO set, no options */
		static const uint8_t opt[11] = {
			0, 0, 41, 0x0f, 0xa0, 0, 0, 0x80, 0, 0, 0,
		};

		b[11] = 1;
		memcpy(b + n, opt, sizeof(opt));
		n += sizeof(opt);
	}
	return n;
}

/* The address the fake upstream gives a name: 10.0.<len>.<byte sum>. */
static void fake_addr(const char *name, uint8_t a[4])
{
	unsigned int sum = 0;

	for (const char *s = name; *s; s++)
		sum += (uint8_t)*s;
	a[0] = 10;
	a[1] = 0;
	a[2] = (uint8_t)strlen(name);
	a[3] = (uint8_t)sum;
}

/* Answer q with n A records (n = 0: header + question only). */
static size_t fake_answer(const uint8_t *q, size_t qlen, int rcode, int n,
			  bool tc, const uint8_t addr[4], uint8_t *out)
{
	struct dnswire_question pq;
	size_t len;

	if (dnswire_parse_query(q, qlen, &pq) < 0)
		return 0;
	len = pq.question_end;
	memcpy(out, q, len);
	out[2] = (uint8_t)(0x80 | (q[2] & 0x01) | (tc ? 0x02 : 0));
	out[3] = (uint8_t)(0x80 | rcode);
	out[6] = (uint8_t)(n >> 8);
	out[7] = (uint8_t)n;
	memset(out + 8, 0, 4);
	for (int i = 0; i < n; i++) {
		static const uint8_t rr[12] = { 0xc0, 0x0c, 0, 1,  0, 1,
						0,    0,    0, 60, 0, 4 };

		memcpy(out + len, rr, sizeof(rr));
		len += sizeof(rr);
		memcpy(out + len, addr, 4);
		out[len + 3] = (uint8_t)(addr[3] + i);
		len += 4;
	}
	return len;
}

/* The answer of the modes FAKE_LOWER, FAKE_REBIND, FAKE_CNAME_BAD. */
static size_t fake_special(enum fake_mode mode, const uint8_t *q, size_t qlen,
			   const uint8_t a[4], uint8_t *out)
{
	static const uint8_t cname[] = {
		0xc0, 0x0c, 0,	 5,   0,   1,	0,   0,	  0,   60,
		0,    17,   3,	 'b', 'a', 'd', 7,   'e', 'x', 'a',
		'm',  'p',  'l', 'e', 3,   'c', 'o', 'm', 0,
	};
	struct dnswire_question pq;
	size_t n;

	if (dnswire_parse_query(q, qlen, &pq) < 0)
		return 0;
	if (mode == FAKE_LOWER) {
		n = fake_answer(q, qlen, 0, 1, false, a, out);
		for (size_t i = DNSWIRE_HDR_LEN; i < pq.question_end; i++)
			if (out[i] >= 'A' && out[i] <= 'Z')
				out[i] += 'a' - 'A';
		return n;
	}
	if (mode == FAKE_REBIND) {
		static const uint8_t lo[4] = { 127, 0, 0, 53 };

		n = fake_answer(q, qlen, 0, 2, false, a, out);
		memcpy(out + pq.question_end + 12, lo, 4);
		out[n - 1] = a[3];
		return n;
	}
	n = fake_answer(q, qlen, 0, 0, false, a, out);
	out[7] = 2;
	memcpy(out + n, cname, sizeof(cname));
	{
		size_t tgt = n + 12;
		uint8_t arr[16] = { (uint8_t)(0xc0 | tgt >> 8),
				    (uint8_t)tgt,
				    0,
				    1,
				    0,
				    1,
				    0,
				    0,
				    0,
				    60,
				    0,
				    4,
				    6,
				    6,
				    6,
				    6 };

		n += sizeof(cname);
		memcpy(out + n, arr, sizeof(arr));
		n += sizeof(arr);
	}
	return n;
}

/* ---- fake upstream ---------------------------------------------------- */

static void fake_log(struct fake_up *f, const uint8_t *msg, size_t len)
{
	struct dnswire_question q;

	if (len <= sizeof(f->last)) {
		memcpy(f->last, msg, len);
		f->last_len = len;
	}
	if (dnswire_parse_query(msg, len, &q) == 0 && f->nq < MAX_LOG)
		snprintf(f->names[f->nq], sizeof(f->names[0]), "%.255s",
			 q.name);
	f->nq++;
}

static void fake_reply(struct fake_up *f, const uint8_t *msg, size_t len,
		       const struct sockaddr_storage *to, socklen_t tolen)
{
	struct dnswire_question q;
	uint8_t out[4096], a[4];
	size_t n;

	if (dnswire_parse_query(msg, len, &q) < 0)
		return;
	fake_addr(q.name, a);
	if (f->mode == FAKE_SERVFAIL)
		n = fake_answer(msg, len, DNSWIRE_RCODE_SERVFAIL, 0, false, a,
				out);
	else if (f->mode == FAKE_LOWER || f->mode == FAKE_REBIND ||
		 f->mode == FAKE_CNAME_BAD)
		n = fake_special(f->mode, msg, len, a, out);
	else if (!strncmp(q.name, "big.", 4))
		n = fake_answer(msg, len, 0, 0, true, a, out);
	else
		n = fake_answer(msg, len, 0, 1, false, a, out);
	sendto(f->ufd, out, n, 0, (const struct sockaddr *)to, tolen);
}

static void fake_spoof(struct fake_up *f, const uint8_t *msg, size_t len,
		       const struct sockaddr_storage *to, socklen_t tolen)
{
	static const uint8_t evil[4] = { 6, 6, 6, 6 };
	uint8_t copy[1024], out[4096];
	size_t n;

	/* Same id, another name (first letter changed). */
	memcpy(copy, msg, len);
	copy[DNSWIRE_HDR_LEN + 1] ^= 0x01;
	n = fake_answer(copy, len, 0, 1, false, evil, out);
	sendto(f->ufd, out, n, 0, (const struct sockaddr *)to, tolen);
	/* Unknown id. */
	dnswire_set_id(out, (uint16_t)(dnswire_get_id(out) ^ 0x5a5a));
	sendto(f->ufd, out, n, 0, (const struct sockaddr *)to, tolen);
}

static void fake_delay_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct fake_up *f = arg;

	for (int i = 0; i < f->n_held; i++)
		fake_reply(f, f->held[i].msg, f->held[i].len, &f->held[i].from,
			   f->held[i].fromlen);
	f->n_held = 0;
}

static void fake_udp_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct fake_up *f = arg;
	struct fake_query fq;
	ssize_t n;

	fq.fromlen = sizeof(fq.from);
	n = recvfrom(fd, fq.msg, sizeof(fq.msg), 0, (struct sockaddr *)&fq.from,
		     &fq.fromlen);
	if (n < 0)
		return;
	fq.len = (size_t)n;
	fake_log(f, fq.msg, fq.len);
	switch (f->mode) {
	case FAKE_DROP:
		break;
	case FAKE_HOLD2:
		if (f->n_held < 2)
			f->held[f->n_held++] = fq;
		if (f->n_held == 2) {
			fake_reply(f, f->held[1].msg, f->held[1].len,
				   &f->held[1].from, f->held[1].fromlen);
			fake_reply(f, f->held[0].msg, f->held[0].len,
				   &f->held[0].from, f->held[0].fromlen);
			f->n_held = 0;
		}
		break;
	case FAKE_DELAY:
		if (f->n_held < 2)
			f->held[f->n_held++] = fq;
		loop_timer_arm(f->delay, 150);
		break;
	case FAKE_SLOW_PROBE: {
		struct dnswire_question pq;

		if (dnswire_parse_query(fq.msg, fq.len, &pq) == 0 &&
		    !pq.name[0] && f->n_held < 2) {
			f->held[f->n_held++] = fq;
			loop_timer_arm(f->delay, 300);
		} else {
			fake_reply(f, fq.msg, fq.len, &fq.from, fq.fromlen);
		}
		break;
	}
	case FAKE_SPOOF:
		fake_spoof(f, fq.msg, fq.len, &fq.from, fq.fromlen);
		fake_reply(f, fq.msg, fq.len, &fq.from, fq.fromlen);
		break;
	default:
		fake_reply(f, fq.msg, fq.len, &fq.from, fq.fromlen);
		break;
	}
}

/* TCP side: full answers, BIG_RECORDS records for "big." names. */
static void fake_tcp_conn_cb(struct loop *loop, int fd, uint32_t events,
			     void *arg)
{
	struct fake_up *f = arg;
	struct dnswire_question q;
	uint8_t out[4096], a[4];
	ssize_t n;
	size_t mlen, alen;

	n = read(fd, f->tbuf + f->tlen, sizeof(f->tbuf) - f->tlen);
	if (n <= 0) {
		loop_del_fd(loop, fd);
		close(fd);
		f->cfd = -1;
		return;
	}
	f->tlen += (size_t)n;
	while (f->tlen >= 2) {
		mlen = (size_t)f->tbuf[0] << 8 | f->tbuf[1];
		if (f->tlen < 2 + mlen)
			return;
		f->tcp_nq++;
		if (dnswire_parse_query(f->tbuf + 2, mlen, &q) == 0) {
			fake_addr(q.name, a);
			alen = fake_answer(
				f->tbuf + 2, mlen, 0,
				strncmp(q.name, "big.", 4) ? 1 : BIG_RECORDS,
				false, a, out + 2);
			out[0] = (uint8_t)(alen >> 8);
			out[1] = (uint8_t)alen;
			if (write(fd, out, alen + 2) < 0)
				return;
		}
		memmove(f->tbuf, f->tbuf + 2 + mlen, f->tlen - 2 - mlen);
		f->tlen -= 2 + mlen;
	}
}

static void fake_accept_cb(struct loop *loop, int fd, uint32_t events,
			   void *arg)
{
	struct fake_up *f = arg;
	int c = accept(fd, NULL, NULL);

	if (c < 0)
		return;
	if (f->cfd >= 0) {
		loop_del_fd(loop, f->cfd);
		close(f->cfd);
	}
	f->cfd = c;
	f->tlen = 0;
	ck_assert_int_eq(loop_add_fd(loop, c, EPOLLIN, fake_tcp_conn_cb, f), 0);
}

/* UDP and TCP on one port of 127.0.0.1 (retried: the port the kernel
 * picks for UDP may be taken for TCP). */
static void fake_bind(struct fake_up *f)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int one = 1;

	for (int i = 0; i < 32; i++) {
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = 0;
		f->ufd = socket(AF_INET,
				SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(f->ufd, 0);
		ck_assert_int_eq(
			bind(f->ufd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		ck_assert_int_eq(
			getsockname(f->ufd, (struct sockaddr *)&sa, &sl), 0);
		f->port = ntohs(sa.sin_port);
		f->lfd = socket(AF_INET,
				SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(f->lfd, 0);
		setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			ck_assert_int_eq(listen(f->lfd, 16), 0);
			return;
		}
		close(f->lfd);
		close(f->ufd);
	}
	ck_abort_msg("no free port pair for the fake upstream");
}

static void fake_start(struct fake_up *f, struct loop *loop,
		       enum fake_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->mode = mode;
	f->cfd = -1;
	fake_bind(f);
	ck_assert_int_eq(loop_add_fd(loop, f->ufd, EPOLLIN, fake_udp_cb, f), 0);
	ck_assert_int_eq(loop_add_fd(loop, f->lfd, EPOLLIN, fake_accept_cb, f),
			 0);
	f->delay = loop_timer_new(loop, fake_delay_cb, f);
	ck_assert_ptr_nonnull(f->delay);
}

static void fake_stop(struct fake_up *f)
{
	if (f->cfd >= 0) {
		loop_del_fd(f->loop, f->cfd);
		close(f->cfd);
	}
	if (f->ufd >= 0) {
		loop_del_fd(f->loop, f->ufd);
		close(f->ufd);
	}
	if (f->lfd >= 0) {
		loop_del_fd(f->loop, f->lfd);
		close(f->lfd);
	}
	loop_timer_free(f->delay);
}

static bool fake_saw(const struct fake_up *f, const char *name)
{
	for (int i = 0; i < f->nq && i < MAX_LOG; i++)
		if (!strcmp(f->names[i], name))
			return true;
	return false;
}

/* ---- environment ------------------------------------------------------ */

static void guard_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	loop_stop(loop);
}

static bool env_block_private; /* cfg.block_private_answers of env_start */
/* cfg.upstream_probe_interval_s of env_start: 0, no probe rounds */
static unsigned int env_probe_interval;
static const char *env_probe_name = "";

static void env_start(struct env *e, int n_ups, enum fake_mode m0,
		      enum fake_mode m1, unsigned int timeout_ms)
{
	enum fake_mode modes[2] = { m0, m1 };
	char err[256] = "";

	memset(e, 0, sizeof(*e));
	log_set_level(LOG_LVL_ERROR);
	ck_assert_int_eq(loop_new(&e->loop), 0);
	ck_assert_int_eq(events_new(&e->ev, e->loop, err, sizeof(err)), 0);
	e->guard = loop_timer_new(e->loop, guard_cb, NULL);
	ck_assert_int_eq(policy_parse_json(POLICY_JSON, strlen(POLICY_JSON), 0,
					   &e->pol, err, sizeof(err)),
			 0);
	ck_assert_int_eq(policy_matcher_new(&e->m, e->pol, NULL, 0, NULL, 0),
			 0);

	e->cfg.upstream_timeout_ms = timeout_ms;
	e->cfg.block_private_answers = env_block_private;
	e->cfg.upstream_probe_interval_s = env_probe_interval;
	snprintf(e->cfg.upstream_probe, sizeof(e->cfg.upstream_probe), "%s",
		 env_probe_name);
	e->cfg.dns_listen_port = 0;
	e->cfg.n_upstreams = n_ups;
	for (int i = 0; i < n_ups; i++) {
		struct egressd_upstream *u = &e->cfg.upstreams[i];
		struct sockaddr_in *sa = (void *)&u->addr;

		fake_start(&e->up[i], e->loop, modes[i]);
		sa->sin_family = AF_INET;
		sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa->sin_port = htons(e->up[i].port);
		u->addrlen = sizeof(*sa);
		snprintf(u->text, sizeof(u->text), "127.0.0.1:%u",
			 e->up[i].port);
	}
	ck_assert_msg(dnsproxy_new(&e->p, e->loop, &e->cfg, err, sizeof(err)) ==
			      0,
		      "dnsproxy_new: %s", err);
	dnsproxy_set_matcher(e->p, e->m);
	dnsproxy_set_events(e->p, e->ev);
	e->port = dnsproxy_port(e->p);
	ck_assert_int_ne(e->port, 0);
}

static void env_stop(struct env *e)
{
	dnsproxy_free(e->p);
	for (int i = 0; i < e->cfg.n_upstreams; i++)
		fake_stop(&e->up[i]);
	loop_timer_free(e->guard);
	policy_matcher_free(e->m);
	policy_free(e->pol);
	events_free(e->ev);
	loop_free(e->loop);
	log_flush();
}

/* Run the loop until loop_stop() or ms milliseconds. */
static void env_run(struct env *e, uint64_t ms)
{
	loop_timer_arm(e->guard, ms);
	ck_assert_int_eq(loop_run(e->loop), 0);
	loop_timer_disarm(e->guard);
}

/* ---- clients ---------------------------------------------------------- */

static void client_got(struct client *c, const uint8_t *msg, size_t len)
{
	if (c->got < 256 && len <= sizeof(c->ans[0])) {
		memcpy(c->ans[c->got], msg, len);
		c->alen[c->got] = len;
	}
	c->got++;
	if (c->got >= c->want) {
		c->t_done = util_clock_ms();
		loop_stop(c->loop);
	}
}

static void client_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct client *c = arg;
	uint8_t buf[4096];
	ssize_t n;

	if (!c->tcp) {
		while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			client_got(c, buf, (size_t)n);
		return;
	}
	n = recv(fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen,
		 MSG_DONTWAIT);
	if (n <= 0) {
		loop_del_fd(loop, fd);
		return;
	}
	c->rlen += (size_t)n;
	while (c->rlen >= 2) {
		size_t mlen = (size_t)c->rbuf[0] << 8 | c->rbuf[1];

		if (c->rlen < 2 + mlen)
			break;
		client_got(c, c->rbuf + 2, mlen);
		memmove(c->rbuf, c->rbuf + 2 + mlen, c->rlen - 2 - mlen);
		c->rlen -= 2 + mlen;
	}
}

static struct client *client_new(struct env *e, int family, bool tcp)
{
	struct client *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;

	ck_assert_ptr_nonnull(c);
	c->loop = e->loop;
	c->tcp = tcp;
	c->want = 1;
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(e->port);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(e->port);
		sl = sizeof(*s4);
	}
	c->fd = socket(family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC,
		       0);
	ck_assert_int_ge(c->fd, 0);
	/* Loopback: a TCP connect completes at once (backlog). */
	ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&ss, sl), 0);
	ck_assert_int_eq(loop_add_fd(e->loop, c->fd, EPOLLIN, client_cb, c), 0);
	return c;
}

static void client_free(struct client *c)
{
	if (c->fd >= 0) {
		loop_del_fd(c->loop, c->fd);
		close(c->fd);
	}
	free(c);
}

static void client_send(struct client *c, const uint8_t *msg, size_t len)
{
	if (c->tcp) {
		uint8_t b[2 + 1024];

		b[0] = (uint8_t)(len >> 8);
		b[1] = (uint8_t)len;
		memcpy(b + 2, msg, len);
		ck_assert_int_eq(send(c->fd, b, len + 2, 0), (ssize_t)len + 2);
	} else {
		ck_assert_int_eq(send(c->fd, msg, len, 0), (ssize_t)len);
	}
}

/* Parse reply i of c against the query q (built by mkquery). */
static void client_parse(struct client *c, int i, const uint8_t *q, size_t qlen,
			 struct dnswire_response *r)
{
	struct dnswire_question pq;

	ck_assert_int_gt(c->got, i);
	ck_assert_int_eq(dnswire_parse_query(q, qlen, &pq), 0);
	ck_assert_int_eq(dnswire_parse_response(c->ans[i], c->alen[i], &pq, r),
			 0);
}

static uint16_t reply_id(const struct client *c, int i)
{
	return dnswire_get_id(c->ans[i]);
}

static int reply_rcode(const struct client *c, int i)
{
	return c->ans[i][3] & 0x0f;
}

/* Query name over UDP (v4) and wait for one reply; returns the client. */
static struct client *ask(struct env *e, uint16_t id, const char *name,
			  uint8_t *q, size_t *qlen, uint64_t wait_ms)
{
	struct client *c = client_new(e, AF_INET, false);

	*qlen = mkquery(q, id, name, DNSWIRE_TYPE_A, 1, false);
	client_send(c, q, *qlen);
	env_run(e, wait_ms);
	return c;
}

static void assert_answer_for(struct client *c, int i, const uint8_t *q,
			      size_t qlen, const char *lname)
{
	struct dnswire_response r;
	uint8_t a[4];

	client_parse(c, i, q, qlen, &r);
	fake_addr(lname, a);
	ck_assert_int_eq(r.rcode, DNSWIRE_RCODE_NOERROR);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_int_eq(memcmp(r.addrs[0].addr, a, 4), 0);
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_dnsproxy_udp_allowed_answered)
{
	struct env e;
	struct dnsproxy_stats st;
	struct client *c;
	uint8_t q[512];
	size_t qlen;
	int i;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = ask(&e, 0xbeef, "www.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0xbeef);
	assert_answer_for(c, 0, q, qlen, "www.example.com");
	ck_assert_int_eq(e.up[0].nq, 1);
	ck_assert(fake_saw(&e.up[0], "www.example.com"));
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.queries, 1);
	ck_assert_uint_eq(st.allowed, 1);
	ck_assert_uint_eq(st.denied, 0);
	ck_assert_uint_eq(st.inflight, 0);
	/* One upstream round trip on loopback, measured below the
	 * millisecond (buckets start at 100 us) and counted in the bucket
	 * its duration belongs to. */
	ck_assert_uint_eq(st.rtt_count, 1);
	ck_assert(dnsproxy_rtt_bounds[0] <= 0.0001);
	ck_assert_msg(st.rtt_sum_s > 0 && st.rtt_sum_s < 1, "rtt %f",
		      st.rtt_sum_s);
	for (i = 0;
	     i < DNSPROXY_RTT_BUCKETS && st.rtt_sum_s > dnsproxy_rtt_bounds[i];
	     i++)
		;
	ck_assert_msg(st.rtt_hist[i] == 1, "rtt %f not in bucket %d",
		      st.rtt_sum_s, i);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_denied_nxdomain_not_forwarded)
{
	struct dnsproxy_stats st;
	struct dnswire_response r;
	struct client *c;
	struct env e;
	uint64_t dd0, dr0;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	dd0 = events_count(e.ev, "dns", EVENTS_REASON_DEFAULT_DENY);
	dr0 = events_count(e.ev, "dns", EVENTS_REASON_DENY_RULE);
	c = ask(&e, 0x1111, "evil.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x1111);
	client_parse(c, 0, q, qlen, &r);
	ck_assert_int_eq(r.rcode, DNSWIRE_RCODE_NXDOMAIN);
	ck_assert_uint_eq(r.n_addrs, 0);
	client_free(c);

	/* A deny rule ahead of the wildcard allow. */
	c = ask(&e, 0x2222, "bad.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_NXDOMAIN);
	client_free(c);

	ck_assert_int_eq(e.up[0].nq, 0);
	ck_assert(!fake_saw(&e.up[0], "evil.com"));
	ck_assert(!fake_saw(&e.up[0], "bad.example.com"));
	ck_assert_uint_eq(events_count(e.ev, "dns", EVENTS_REASON_DEFAULT_DENY),
			  dd0 + 1);
	ck_assert_uint_eq(events_count(e.ev, "dns", EVENTS_REASON_DENY_RULE),
			  dr0 + 1);
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.denied, 2);
	ck_assert_uint_eq(st.allowed, 0);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_aaaa_nodata_when_ipv6_denied)
{
	struct dnswire_response r;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;
	uint64_t v0;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	v0 = events_count(e.ev, "dns", EVENTS_REASON_IPV6_DISABLED);
	dnsproxy_set_aaaa_nodata(e.p, true);
	/* Allowed name, AAAA: empty NOERROR, not forwarded. */
	c = client_new(&e, AF_INET, false);
	qlen = mkquery(q, 0x6666, "www.example.com", DNSWIRE_TYPE_AAAA, 1,
		       false);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 1);
	client_parse(c, 0, q, qlen, &r);
	ck_assert_int_eq(r.rcode, DNSWIRE_RCODE_NOERROR);
	ck_assert_uint_eq(r.n_addrs, 0);
	ck_assert_int_eq(e.up[0].nq, 0);
	ck_assert_uint_eq(
		events_count(e.ev, "dns", EVENTS_REASON_IPV6_DISABLED), v0 + 1);
	client_free(c);
	/* A still works; a denied name's AAAA is still NXDOMAIN. */
	c = ask(&e, 0x7777, "www.example.com", q, &qlen, 2000);
	assert_answer_for(c, 0, q, qlen, "www.example.com");
	client_free(c);
	c = client_new(&e, AF_INET, false);
	qlen = mkquery(q, 0x8888, "evil.com", DNSWIRE_TYPE_AAAA, 1, false);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_NXDOMAIN);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_wildcard_apex_mixed_case)
{
	static const struct {
		const char *qname, *lname;
		bool allowed;
	} cases[] = {
		{ "WWW.Example.COM", "www.example.com", true },
		{ "a.b.c.example.com", "a.b.c.example.com", true },
		{ "example.com", "example.com", false }, /* apex of wildcard */
		{ "Apex.Org", "apex.org", true },
		{ "sub.apex.org", "sub.apex.org", false },
		{ "notexample.com", "notexample.com", false },
	};
	struct env e;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct client *c;
		uint8_t q[512];
		size_t qlen;

		c = ask(&e, (uint16_t)(100 + i), cases[i].qname, q, &qlen,
			2000);
		ck_assert_msg(c->got == 1, "%s: no reply", cases[i].qname);
		if (cases[i].allowed)
			assert_answer_for(c, 0, q, qlen, cases[i].lname);
		else
			ck_assert_int_eq(reply_rcode(c, 0),
					 DNSWIRE_RCODE_NXDOMAIN);
		ck_assert_msg(fake_saw(&e.up[0], cases[i].lname) ==
				      cases[i].allowed,
			      "%s: upstream log", cases[i].qname);
		client_free(c);
	}
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_tcp_query)
{
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = client_new(&e, AF_INET, true);
	qlen = mkquery(q, 0x7777, "tcp.example.com", DNSWIRE_TYPE_A, 1, false);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x7777);
	assert_answer_for(c, 0, q, qlen, "tcp.example.com");
	/* Forwarded over UDP: no TC, so no TCP upstream query. */
	ck_assert_int_eq(e.up[0].tcp_nq, 0);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_tcp_pipelined)
{
	uint8_t q1[512], q2[512], q3[512], b[2048];
	size_t l1, l2, l3, n = 0;
	struct client *c;
	struct env e;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = client_new(&e, AF_INET, true);
	c->want = 2;
	l1 = mkquery(q1, 1, "one.example.com", DNSWIRE_TYPE_A, 1, false);
	l2 = mkquery(q2, 2, "evil.com", DNSWIRE_TYPE_A, 1, false);
	b[n++] = (uint8_t)(l1 >> 8);
	b[n++] = (uint8_t)l1;
	memcpy(b + n, q1, l1);
	n += l1;
	b[n++] = (uint8_t)(l2 >> 8);
	b[n++] = (uint8_t)l2;
	memcpy(b + n, q2, l2);
	n += l2;
	ck_assert_int_eq(send(c->fd, b, n, 0), (ssize_t)n);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 2);
	for (int i = 0; i < 2; i++) {
		if (reply_id(c, i) == 1)
			assert_answer_for(c, i, q1, l1, "one.example.com");
		else if (reply_id(c, i) == 2)
			ck_assert_int_eq(reply_rcode(c, i),
					 DNSWIRE_RCODE_NXDOMAIN);
		else
			ck_abort_msg("unexpected id %u", reply_id(c, i));
	}
	ck_assert_uint_ne(reply_id(c, 0), reply_id(c, 1));

	/* A third query split across writes, the length itself too. */
	l3 = mkquery(q3, 3, "three.example.com", DNSWIRE_TYPE_A, 1, false);
	b[0] = (uint8_t)(l3 >> 8);
	b[1] = (uint8_t)l3;
	memcpy(b + 2, q3, l3);
	c->want = 3;
	ck_assert_int_eq(send(c->fd, b, 1, 0), 1);
	env_run(&e, 100);
	ck_assert_int_eq(send(c->fd, b + 1, 5, 0), 5);
	env_run(&e, 100);
	ck_assert_int_eq(c->got, 2);
	ck_assert_int_eq(send(c->fd, b + 6, l3 - 4, 0), (ssize_t)l3 - 4);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 3);
	assert_answer_for(c, 2, q3, l3, "three.example.com");
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_upstream_timeout_servfail)
{
	struct dnsproxy_upstream_stats us;
	struct dnsproxy_stats st;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;
	uint64_t t0, dt;

	env_start(&e, 1, FAKE_DROP, 0, 200);
	t0 = util_clock_ms();
	c = ask(&e, 0x3333, "slow.example.com", q, &qlen, 3000);
	ck_assert_int_eq(c->got, 1);
	dt = c->t_done - t0;
	ck_assert_msg(dt >= 190 && dt <= 600, "SERVFAIL after %llu ms",
		      (unsigned long long)dt);
	ck_assert_uint_eq(reply_id(c, 0), 0x3333);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_SERVFAIL);
	ck_assert_int_eq(e.up[0].nq, 1);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(!us.healthy);
	ck_assert_uint_eq(us.timeouts, 1);
	ck_assert_uint_eq(us.queries, 1);
	ck_assert(!dnsproxy_get_upstream(e.p, 1, &us));
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.servfail, 1);
	ck_assert_uint_eq(st.inflight, 0);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_failover_silent_first)
{
	struct dnsproxy_upstream_stats us;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;
	uint64_t t0, dt;

	env_start(&e, 2, FAKE_DROP, FAKE_ANSWER, 200);
	t0 = util_clock_ms();
	c = ask(&e, 0x4444, "fo.example.com", q, &qlen, 3000);
	ck_assert_int_eq(c->got, 1);
	dt = c->t_done - t0;
	ck_assert_msg(dt >= 190 && dt <= 600, "answer after %llu ms",
		      (unsigned long long)dt);
	assert_answer_for(c, 0, q, qlen, "fo.example.com");
	ck_assert_int_eq(e.up[0].nq, 1);
	ck_assert_int_eq(e.up[1].nq, 1);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(!us.healthy);
	ck_assert(dnsproxy_get_upstream(e.p, 1, &us));
	ck_assert(us.healthy);
	client_free(c);

	/* The unhealthy upstream is now tried last: a fast answer. */
	t0 = util_clock_ms();
	c = ask(&e, 0x4445, "fo2.example.com", q, &qlen, 3000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_msg(c->t_done - t0 < 150, "second answer took %llu ms",
		      (unsigned long long)(c->t_done - t0));
	assert_answer_for(c, 0, q, qlen, "fo2.example.com");
	ck_assert_int_eq(e.up[0].nq, 1);
	ck_assert_int_eq(e.up[1].nq, 2);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_failover_on_servfail)
{
	struct dnsproxy_upstream_stats us;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 2, FAKE_SERVFAIL, FAKE_ANSWER, 1000);
	c = ask(&e, 0x5555, "sf.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	assert_answer_for(c, 0, q, qlen, "sf.example.com");
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(us.healthy); /* it answered, if badly */
	ck_assert_uint_eq(us.errors, 1);
	client_free(c);
	env_stop(&e);

	/* Both fail: SERVFAIL, built by the proxy. */
	env_start(&e, 2, FAKE_SERVFAIL, FAKE_SERVFAIL, 1000);
	c = ask(&e, 0x5556, "sf.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x5556);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_SERVFAIL);
	ck_assert_int_eq(e.up[0].nq, 1);
	ck_assert_int_eq(e.up[1].nq, 1);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_tc_relayed_to_udp_client)
{
	struct dnsproxy_stats st;
	struct dnswire_response r;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = ask(&e, 0x6666, "big.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x6666);
	client_parse(c, 0, q, qlen, &r);
	ck_assert(r.tc);
	ck_assert_uint_eq(r.n_addrs, 0);
	ck_assert_int_eq(e.up[0].tcp_nq, 0);
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.tcp_retries, 0);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_tc_retried_over_tcp_for_tcp_client)
{
	struct dnsproxy_stats st;
	struct dnswire_response r;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = client_new(&e, AF_INET, true);
	qlen = mkquery(q, 0x6667, "big.example.com", DNSWIRE_TYPE_A, 1, true);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x6667);
	ck_assert_uint_gt(c->alen[0], 512);
	client_parse(c, 0, q, qlen, &r);
	ck_assert(!r.tc);
	ck_assert_uint_eq(r.n_addrs, DNSWIRE_MAX_ADDRS); /* capped */
	ck_assert(r.addrs_truncated);
	ck_assert_int_eq(e.up[0].nq, 1); /* UDP first */
	ck_assert_int_eq(e.up[0].tcp_nq, 1); /* then TCP */
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.tcp_retries, 1);
	ck_assert_uint_eq(st.inflight, 0);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_same_id_clients_isolated)
{
	struct client *a, *b;
	uint8_t qa[512], qb[512];
	size_t la, lb;
	struct env e;

	env_start(&e, 1, FAKE_HOLD2, 0, 1000);
	a = client_new(&e, AF_INET, false);
	b = client_new(&e, AF_INET, false);
	la = mkquery(qa, 0x4242, "a.example.com", DNSWIRE_TYPE_A, 1, false);
	lb = mkquery(qb, 0x4242, "b.example.com", DNSWIRE_TYPE_A, 1, false);
	client_send(a, qa, la);
	client_send(b, qb, lb);
	/* Each client stops the loop once: run until both have a reply. */
	for (int i = 0; i < 4 && (a->got < 1 || b->got < 1); i++)
		env_run(&e, 2000);
	ck_assert_int_eq(a->got, 1);
	ck_assert_int_eq(b->got, 1);
	ck_assert_uint_eq(reply_id(a, 0), 0x4242);
	ck_assert_uint_eq(reply_id(b, 0), 0x4242);
	assert_answer_for(a, 0, qa, la, "a.example.com");
	assert_answer_for(b, 0, qb, lb, "b.example.com");
	/* The upstream saw two different ids. */
	ck_assert_int_eq(e.up[0].nq, 2);
	client_free(a);
	client_free(b);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_spoofed_answer_ignored)
{
	struct dnsproxy_stats st;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_SPOOF, 0, 1000);
	c = ask(&e, 0x5151, "real.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	assert_answer_for(c, 0, q, qlen, "real.example.com");
	/* Nothing else arrives later. */
	env_run(&e, 200);
	ck_assert_int_eq(c->got, 1);
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.bad_answers, 2); /* wrong question, unknown id */
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_malformed_queries)
{
	static const uint8_t three[3] = { 0x12, 0x34, 0x01 };
	struct dnsproxy_stats st;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = client_new(&e, AF_INET, false);

	/* 3 bytes: dropped, nothing comes back. */
	client_send(c, three, sizeof(three));
	env_run(&e, 200);
	ck_assert_int_eq(c->got, 0);

	/* A response (QR set) sent to us: dropped too. */
	qlen = mkquery(q, 0x0101, "www.example.com", DNSWIRE_TYPE_A, 1, false);
	q[2] |= 0x80;
	client_send(c, q, qlen);
	env_run(&e, 200);
	ck_assert_int_eq(c->got, 0);

	/* Two questions: FORMERR, never forwarded. */
	qlen = mkquery(q, 0x0202, "www.example.com", DNSWIRE_TYPE_A, 2, false);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x0202);
	ck_assert(c->ans[0][2] & 0x80);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_FORMERR);

	/* Opcode STATUS (2): NOTIMP. */
	qlen = mkquery(q, 0x0303, "www.example.com", DNSWIRE_TYPE_A, 1, false);
	q[2] |= 2 << 3;
	c->want = 2;
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 2);
	ck_assert_uint_eq(reply_id(c, 1), 0x0303);
	ck_assert_int_eq(reply_rcode(c, 1), DNSWIRE_RCODE_NOTIMP);

	ck_assert_int_eq(e.up[0].nq, 0);
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.queries, 4);
	ck_assert_uint_eq(st.malformed, 4);
	ck_assert_uint_eq(st.allowed, 0);
	client_free(c);
	env_stop(&e);
}
END_TEST

struct hook_state {
	int calls;
	int ret;
	char qname[256];
	size_t n_addrs;
};

static int test_hook(void *arg, const char *qname,
		     const struct dnswire_response *r, uint8_t *msg, size_t len)
{
	struct hook_state *h = arg;

	h->calls++;
	snprintf(h->qname, sizeof(h->qname), "%.255s", qname);
	h->n_addrs = r->n_addrs;
	return h->ret;
}

START_TEST(test_dnsproxy_answer_hook_error_servfail)
{
	struct hook_state h = { .ret = -EIO };
	struct dnsproxy_stats st;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	dnsproxy_set_answer_hook(e.p, test_hook, &h);
	c = ask(&e, 0x7171, "Hook.Example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x7171);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_SERVFAIL);
	ck_assert_int_eq(h.calls, 1);
	ck_assert_str_eq(h.qname, "hook.example.com");
	ck_assert_uint_eq(h.n_addrs, 1);
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.servfail, 1);
	client_free(c);

	/* Returning 0 releases the answer. */
	h.ret = 0;
	c = ask(&e, 0x7172, "hook2.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	assert_answer_for(c, 0, q, qlen, "hook2.example.com");
	ck_assert_int_eq(h.calls, 2);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_edns_passthrough)
{
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = client_new(&e, AF_INET, false);
	qlen = mkquery(q, 0x1234, "edns.example.com", DNSWIRE_TYPE_AAAA, 1,
		       true);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 1);
	/* Forwarded bytes are the client's, apart from the id and the
	 * letter case of the name (0x20). */
	ck_assert_uint_eq(e.up[0].last_len, qlen);
	ck_assert_int_eq(strncasecmp((char *)e.up[0].last + 2, (char *)q + 2,
				     qlen - 2),
			 0);
	ck_assert_int_eq(memcmp(e.up[0].last + 30, q + 30, qlen - 30), 0);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_tcp_close_with_query_in_flight)
{
	struct dnsproxy_stats st;
	struct client *c, *u;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_DELAY, 0, 1000);
	c = client_new(&e, AF_INET, true);
	qlen = mkquery(q, 0x0a0a, "gone.example.com", DNSWIRE_TYPE_A, 1, false);
	client_send(c, q, qlen);
	env_run(&e, 50); /* the proxy forwards it */
	ck_assert_int_eq(e.up[0].nq, 1);
	client_free(c); /* client goes away; the answer comes at 150 ms */
	env_run(&e, 400);
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.inflight, 0);
	ck_assert_uint_eq(st.tcp_conns, 0);
	/* The proxy still works. */
	u = ask(&e, 0x0b0b, "after.example.com", q, &qlen, 2000);
	ck_assert_int_eq(u->got, 1);
	assert_answer_for(u, 0, q, qlen, "after.example.com");
	client_free(u);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_udp_burst_batched)
{
	enum { N = 200 };
	struct dnsproxy_stats st;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;
	bool seen[N] = { false };

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = client_new(&e, AF_INET, false);
	c->want = N;
	for (int i = 0; i < N; i++) {
		char name[64];

		snprintf(name, sizeof(name), "h%d.example.com", i);
		qlen = mkquery(q, (uint16_t)i, name, DNSWIRE_TYPE_A, 1, false);
		client_send(c, q, qlen);
	}
	env_run(&e, 3000);
	ck_assert_int_eq(c->got, N);
	for (int i = 0; i < N; i++) {
		uint16_t id = reply_id(c, i);

		ck_assert_uint_lt(id, N);
		ck_assert(!seen[id]);
		seen[id] = true;
		ck_assert_int_eq(reply_rcode(c, i), 0);
	}
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.allowed, N);
	ck_assert_uint_eq(st.inflight, 0);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_ipv6_listener)
{
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;
	int probe;

	probe = socket(AF_INET6, SOCK_DGRAM, 0);
	if (probe >= 0) {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6,
					   .sin6_addr = IN6ADDR_LOOPBACK_INIT };

		if (bind(probe, (struct sockaddr *)&s6, sizeof(s6)) < 0) {
			close(probe);
			probe = -1;
		} else {
			close(probe);
		}
	}
	if (probe < 0)
		return; /* no ::1 here: the v4-only path is what runs */
	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = client_new(&e, AF_INET6, false);
	qlen = mkquery(q, 0x6060, "v6.example.com", DNSWIRE_TYPE_AAAA, 1,
		       false);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x6060);
	client_free(c);
	c = client_new(&e, AF_INET6, true);
	qlen = mkquery(q, 0x6061, "evil.com", DNSWIRE_TYPE_A, 1, false);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_NXDOMAIN);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_bind_conflict_error)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct egressd_config cfg;
	struct dnsproxy *p = NULL;
	struct loop *loop;
	socklen_t sl = sizeof(sa);
	char err[256] = "";
	int fd, rc;

	log_set_level(LOG_LVL_ERROR);
	ck_assert_int_eq(loop_new(&loop), 0);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);

	memset(&cfg, 0, sizeof(cfg));
	cfg.dns_listen_port = ntohs(sa.sin_port);
	cfg.n_upstreams = 1;
	cfg.upstream_timeout_ms = 100;
	memcpy(&cfg.upstreams[0].addr, &sa, sizeof(sa));
	cfg.upstreams[0].addrlen = sizeof(sa);
	snprintf(cfg.upstreams[0].text, sizeof(cfg.upstreams[0].text),
		 "127.0.0.1:%u", ntohs(sa.sin_port));
	rc = dnsproxy_new(&p, loop, &cfg, err, sizeof(err));
	ck_assert_int_eq(rc, -EADDRINUSE);
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(err, "127.0.0.1") && strstr(err, "UDP") &&
			      strstr(err, "LISTEN_PORT"),
		      "err: %s", err);

	/* No upstream: a clear error too. */
	cfg.n_upstreams = 0;
	rc = dnsproxy_new(&p, loop, &cfg, err, sizeof(err));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert(strstr(err, "upstream") != NULL);
	close(fd);
	loop_free(loop);
	log_flush();
}
END_TEST

/*
 * Every allocation dnsproxy_new makes is failed in turn: each run must
 * end in -ENOMEM (or 0 when the failed allocation was one it can live
 * without) and release what it had, never crash on half-built state.
 */
START_TEST(test_dnsproxy_new_alloc_failure_cleans_up)
{
	struct sockaddr_in *sa;
	struct egressd_config cfg;
	struct loop *loop;
	int n;

	log_set_level(LOG_LVL_ERROR);
	ck_assert_int_eq(loop_new(&loop), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_upstreams = 1;
	sa = (struct sockaddr_in *)&cfg.upstreams[0].addr;
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa->sin_port = htons(53);
	cfg.upstreams[0].addrlen = sizeof(*sa);
	snprintf(cfg.upstreams[0].text, sizeof(cfg.upstreams[0].text),
		 "127.0.0.1:53");

	for (n = 1; n < 1000; n++) {
		struct dnsproxy *p = (void *)1;
		char err[256] = "";
		bool reached;
		int rc;

		fail_alloc_at = n;
		rc = dnsproxy_new(&p, loop, &cfg, err, sizeof(err));
		reached = fail_alloc_at == 0;
		fail_alloc_at = 0;
		if (rc == 0) {
			ck_assert_ptr_nonnull(p);
			dnsproxy_free(p);
		} else {
			ck_assert_msg(rc == -ENOMEM, "alloc %d: rc %d (%s)", n,
				      rc, err);
			ck_assert_ptr_null(p);
			ck_assert_msg(strstr(err, "memory"), "err: %s", err);
		}
		if (!reached)
			break; /* every allocation has been failed once */
	}
	ck_assert_int_gt(n, 5);
	ck_assert_int_lt(n, 1000);
	loop_free(loop);
	log_flush();
}
END_TEST

START_TEST(test_dnsproxy_no_matcher_denies)
{
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	dnsproxy_set_matcher(e.p, NULL);
	c = ask(&e, 0x0c0c, "www.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_NXDOMAIN);
	ck_assert_int_eq(e.up[0].nq, 0);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_unhealthy_upstream_recovers)
{
	struct dnsproxy_upstream_stats us;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_DROP, 0, 100);
	c = ask(&e, 0x0d0d, "down.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_SERVFAIL);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(!us.healthy);
	client_free(c);

	/* It comes back; the periodic probe (5 s) notices. */
	e.up[0].mode = FAKE_ANSWER;
	env_run(&e, 5600);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(us.healthy);
	ck_assert(fake_saw(&e.up[0], "")); /* the probe: ". NS" */
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_tcp_retry_refused_moves_on)
{
	struct dnsproxy_upstream_stats us;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	/* The upstream serves UDP only: the TCP retry is refused. */
	loop_del_fd(e.loop, e.up[0].lfd);
	close(e.up[0].lfd);
	e.up[0].lfd = -1;
	c = client_new(&e, AF_INET, true);
	qlen = mkquery(q, 0x0e0e, "big.example.com", DNSWIRE_TYPE_A, 1, false);
	client_send(c, q, qlen);
	env_run(&e, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_uint_eq(reply_id(c, 0), 0x0e0e);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_SERVFAIL);
	ck_assert(c->t_done != 0);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert_uint_eq(us.errors, 1);
	ck_assert(us.healthy); /* its UDP answered */
	client_free(c);
	env_stop(&e);
}
END_TEST

/* Run until every client has its want, or ms in all. */
static void env_run_all(struct env *e, struct client **c, int n, uint64_t ms)
{
	uint64_t end = util_clock_ms() + ms;
	bool done;

	do {
		env_run(e, 50);
		done = true;
		for (int i = 0; i < n; i++)
			done &= c[i]->got >= c[i]->want;
	} while (!done && util_clock_ms() < end);
}

START_TEST(test_dnsproxy_coalesces_identical_queries)
{
	static const char *names[3] = { "co.example.com", "CO.Example.com",
					"co.EXAMPLE.COM" };
	struct dnsproxy_stats st;
	struct client *c[4];
	uint8_t q[4][512];
	size_t qlen[4];
	struct env e;

	env_start(&e, 1, FAKE_DELAY, 0, 1000);
	for (int i = 0; i < 4; i++) {
		c[i] = client_new(&e, AF_INET, false);
		/* The fourth asks AAAA: another key, its own query. */
		qlen[i] = mkquery(q[i], (uint16_t)(0x100 + i), names[i % 3],
				  i == 3 ? DNSWIRE_TYPE_AAAA : DNSWIRE_TYPE_A,
				  1, false);
		client_send(c[i], q[i], qlen[i]);
	}
	env_run_all(&e, c, 4, 2000);
	ck_assert_int_eq(e.up[0].nq, 2);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(c[i]->got, 1);
		ck_assert_uint_eq(reply_id(c[i], 0), 0x100 + i);
		ck_assert_int_eq(reply_rcode(c[i], 0), 0);
		/* Each gets its own question back, case and all. */
		ck_assert_int_eq(memcmp(c[i]->ans[0] + DNSWIRE_HDR_LEN,
					q[i] + DNSWIRE_HDR_LEN,
					qlen[i] - DNSWIRE_HDR_LEN),
				 0);
		if (i < 3)
			assert_answer_for(c[i], 0, q[i], qlen[i],
					  "co.example.com");
		client_free(c[i]);
	}
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.coalesced, 2);
	ck_assert_uint_eq(st.inflight, 0);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_0x20_case_randomised)
{
	static const char *name =
		"abcdefghijklmnopqrstuvwxyz.abcdefghijklmn.example.com";
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 1, FAKE_ANSWER, 0, 1000);
	c = ask(&e, 0x4242, name, q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	/* 47 letters: all lower case again has odds of 2^-47. */
	ck_assert_int_ne(memcmp(e.up[0].last + DNSWIRE_HDR_LEN,
				q + DNSWIRE_HDR_LEN, qlen - DNSWIRE_HDR_LEN),
			 0);
	ck_assert_int_eq(strncasecmp((char *)e.up[0].last + DNSWIRE_HDR_LEN,
				     (char *)q + DNSWIRE_HDR_LEN,
				     qlen - DNSWIRE_HDR_LEN - 4),
			 0);
	ck_assert_int_eq(memcmp(c->ans[0] + DNSWIRE_HDR_LEN,
				q + DNSWIRE_HDR_LEN, qlen - DNSWIRE_HDR_LEN),
			 0);
	assert_answer_for(c, 0, q, qlen, name);
	client_free(c);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_0x20_upstream_losing_case)
{
	struct dnsproxy_stats st;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;
	char name[64];

	env_start(&e, 1, FAKE_LOWER, 0, 1000);
	/* Each of the first four is asked again without 0x20 at once (no
	 * timeout); then the upstream gets no 0x20 at all. */
	for (int i = 0; i < 6; i++) {
		uint64_t t0 = util_clock_ms();

		snprintf(name, sizeof(name), "lower%d.example.com", i);
		c = ask(&e, (uint16_t)i, name, q, &qlen, 2000);
		ck_assert_int_eq(c->got, 1);
		ck_assert_uint_lt(util_clock_ms() - t0, 500);
		assert_answer_for(c, 0, q, qlen, name);
		client_free(c);
	}
	ck_assert_int_eq(e.up[0].nq, 4 * 2 + 2);
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.bad_answers, 4);
	env_stop(&e);
}
END_TEST

START_TEST(test_dnsproxy_rebinding_stripped)
{
	struct dnswire_response r;
	struct hook_state h = { 0 };
	struct dnsproxy_stats st;
	struct policy_rule rule;
	struct client *c;
	struct env e;
	uint8_t q[512], a[4];
	size_t qlen;
	char err[128];
	uint64_t rb0;

	/* Default: loopback goes, the RFC 1918 address stays. */
	env_block_private = false;
	env_start(&e, 1, FAKE_REBIND, 0, 1000);
	rb0 = events_count(e.ev, "dns", EVENTS_REASON_REBINDING);
	dnsproxy_set_answer_hook(e.p, test_hook, &h);
	c = ask(&e, 1, "rb.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	client_parse(c, 0, q, qlen, &r);
	fake_addr("rb.example.com", a);
	ck_assert_int_eq(r.rcode, 0);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_mem_eq(r.addrs[0].addr, a, 4);
	ck_assert_uint_eq(c->ans[0][7], 1);
	ck_assert_int_eq(h.calls, 1);
	ck_assert_uint_eq(h.n_addrs, 1); /* 127.0.0.53 never learned */
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.rebinding, 1);
	ck_assert_uint_eq(events_count(e.ev, "dns", EVENTS_REASON_REBINDING),
			  rb0 + 1);
	client_free(c);
	env_stop(&e);

	/* BLOCK_PRIVATE_ANSWERS: nothing left, NODATA; no learning. */
	env_block_private = true;
	env_start(&e, 1, FAKE_REBIND, 0, 1000);
	h.calls = 0;
	dnsproxy_set_answer_hook(e.p, test_hook, &h);
	c = ask(&e, 2, "rb.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	client_parse(c, 0, q, qlen, &r);
	ck_assert_int_eq(r.rcode, 0);
	ck_assert_uint_eq(r.n_addrs, 0);
	ck_assert_uint_eq(c->ans[0][7], 0); /* empty answer section */
	ck_assert_uint_eq(h.n_addrs, 0);
	client_free(c);

	/* An explicit CIDR allow rule lets 10.0.0.0/8 through again. */
	memset(&rule, 0, sizeof(rule));
	rule.action = POLICY_ALLOW;
	ck_assert_int_eq(
		policy_parse_target("10.0.0.0/8", &rule, err, sizeof(err)), 0);
	ck_assert_int_eq(dnsproxy_set_addr_rules(e.p, NULL, NULL, 0, &rule, 1),
			 0);
	free(rule.target);
	free(rule.name);
	c = ask(&e, 3, "rb.example.com", q, &qlen, 2000);
	client_parse(c, 0, q, qlen, &r);
	ck_assert_uint_eq(r.n_addrs, 1);
	ck_assert_mem_eq(r.addrs[0].addr, a, 4);
	client_free(c);
	env_stop(&e);
	env_block_private = false;
}
END_TEST

START_TEST(test_dnsproxy_cname_to_denied_name)
{
	struct hook_state h = { 0 };
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;
	uint64_t deny0;

	env_start(&e, 1, FAKE_CNAME_BAD, 0, 1000);
	deny0 = events_count(e.ev, "dns", EVENTS_REASON_DENY_RULE);
	dnsproxy_set_answer_hook(e.p, test_hook, &h);
	c = ask(&e, 9, "alias.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_NXDOMAIN);
	ck_assert_uint_eq(c->ans[0][7], 0);
	ck_assert_int_eq(h.calls, 0); /* nothing learned */
	ck_assert_uint_eq(events_count(e.ev, "dns", EVENTS_REASON_DENY_RULE),
			  deny0 + 1);
	client_free(c);
	env_stop(&e);
}
END_TEST

/* Nothing listens on f's UDP port any more: ICMP port unreachable. */
static void fake_close_udp(struct fake_up *f)
{
	loop_del_fd(f->loop, f->ufd);
	close(f->ufd);
	f->ufd = -1;
}

/* Log lines written while the proxy runs go to a file (the log writes
 * to a file descriptor); log_release reads them into logbuf. */
static char logbuf[65536];
static FILE *logfile;

static void log_capture(void)
{
	logfile = tmpfile();
	ck_assert_ptr_nonnull(logfile);
	log_set_output(logfile);
}

static void log_release(void)
{
	size_t n;

	log_flush();
	log_set_output(NULL);
	rewind(logfile);
	n = fread(logbuf, 1, sizeof(logbuf) - 1, logfile);
	logbuf[n] = '\0';
	fclose(logfile);
	logfile = NULL;
}

/*
 * The peer's smoke-dns-upstream-probe: a dead first upstream is found by
 * the probe at start, so a query after it is answered by the second at
 * once; and one sent before it waits only for the probe, not its own
 * timeout. The peer's log line names the dead upstream.
 */
START_TEST(test_dnsproxy_probe_at_start_skips_dead_upstream)
{
	struct dnsproxy_upstream_stats us;
	struct client *c;
	struct env e;
	char want[96];
	uint8_t q[512];
	size_t qlen;
	uint64_t t0, dt;

	env_probe_interval = 30;
	env_start(&e, 2, FAKE_DROP, FAKE_ANSWER, 5000);
	env_probe_interval = 0;
	log_capture();
	/* Sent before the first round: waits on the dead one, then moves
	 * on when its probe fails (2 s), well before the 5 s timeout. */
	t0 = util_clock_ms();
	c = ask(&e, 0x7001, "early.example.com", q, &qlen, 4500);
	ck_assert_int_eq(c->got, 1);
	dt = c->t_done - t0;
	ck_assert_msg(dt >= 1900 && dt < 3000, "answer after %llu ms",
		      (unsigned long long)dt);
	assert_answer_for(c, 0, q, qlen, "early.example.com");
	ck_assert(fake_saw(&e.up[0], "")); /* the probe: ". NS" */
	ck_assert(fake_saw(&e.up[1], ""));
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(!us.healthy);
	ck_assert_uint_eq(us.probes, 1);
	ck_assert_uint_eq(us.probe_failures, 1);
	ck_assert_uint_eq(us.timeouts, 0);
	ck_assert(dnsproxy_get_upstream(e.p, 1, &us));
	ck_assert(us.healthy);
	ck_assert_uint_eq(us.probe_failures, 0);
	client_free(c);

	/* After the probe: straight to the live one. */
	t0 = util_clock_ms();
	c = ask(&e, 0x7002, "late.example.com", q, &qlen, 3000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_msg(c->t_done - t0 < 150, "took %llu ms",
		      (unsigned long long)(c->t_done - t0));
	assert_answer_for(c, 0, q, qlen, "late.example.com");
	ck_assert(!fake_saw(&e.up[0], "late.example.com"));
	client_free(c);
	log_release();
	snprintf(want, sizeof(want), "[dns] upstream probe 127.0.0.1:%u failed",
		 e.up[0].port);
	ck_assert_msg(strstr(logbuf, want), "log: %s", logbuf);
	ck_assert_msg(strstr(logbuf, "\"level\":\"error\""), "log: %s", logbuf);
	env_stop(&e);
}
END_TEST

/*
 * An upstream where nothing listens answers with ICMP port unreachable:
 * the query moves on at once (the connected socket's ECONNREFUSED), not
 * after the timeout. No probe rounds here: the query finds it.
 */
START_TEST(test_dnsproxy_refused_upstream_fails_over_at_once)
{
	struct dnsproxy_upstream_stats us;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;
	uint64_t t0;

	env_start(&e, 2, FAKE_ANSWER, FAKE_ANSWER, 5000);
	fake_close_udp(&e.up[0]);
	t0 = util_clock_ms();
	c = ask(&e, 0x7101, "refused.example.com", q, &qlen, 6000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_msg(c->t_done - t0 < 1000, "answer after %llu ms",
		      (unsigned long long)(c->t_done - t0));
	assert_answer_for(c, 0, q, qlen, "refused.example.com");
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(!us.healthy);
	ck_assert_uint_ge(us.errors, 1);
	ck_assert_uint_eq(us.timeouts, 0);
	client_free(c);

	/* Only upstream refusing: SERVFAIL at once, not after 5 s. */
	fake_close_udp(&e.up[1]);
	t0 = util_clock_ms();
	c = ask(&e, 0x7102, "none.example.com", q, &qlen, 6000);
	ck_assert_int_eq(c->got, 1);
	ck_assert_int_eq(reply_rcode(c, 0), DNSWIRE_RCODE_SERVFAIL);
	ck_assert_msg(c->t_done - t0 < 1000, "SERVFAIL after %llu ms",
		      (unsigned long long)(c->t_done - t0));
	client_free(c);
	env_stop(&e);
}
END_TEST

/*
 * A round every interval (1 s here) asks the configured probe name; an
 * upstream that answers again is used again, first.
 */
START_TEST(test_dnsproxy_probe_round_revives_upstream)
{
	struct dnsproxy_upstream_stats us;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_probe_interval = 1;
	env_probe_name = "health.example.org";
	env_start(&e, 2, FAKE_DROP, FAKE_ANSWER, 300);
	env_probe_interval = 0;
	env_probe_name = "";
	env_run(&e, 600);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(!us.healthy);
	ck_assert(fake_saw(&e.up[1], "health.example.org"));
	ck_assert_str_eq(e.up[1].names[0], "health.example.org");
	/* RD set, type A */
	ck_assert_int_eq(e.up[1].last[2] & 0x01, 0x01);
	ck_assert_int_eq(e.up[1].last[e.up[1].last_len - 3], DNSWIRE_TYPE_A);

	e.up[0].mode = FAKE_ANSWER;
	env_run(&e, 1200); /* the next round, not the 5 s re-probe */
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(us.healthy);
	ck_assert_uint_ge(us.probes, 2);
	c = ask(&e, 0x7201, "back.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	assert_answer_for(c, 0, q, qlen, "back.example.com");
	ck_assert(fake_saw(&e.up[0], "back.example.com"));
	ck_assert(!fake_saw(&e.up[1], "back.example.com"));
	client_free(c);
	env_stop(&e);
}
END_TEST

/*
 * As the peer: any answer to the probe means alive, SERVFAIL included;
 * a round nothing answered says so, and the full list stays in use.
 */
START_TEST(test_dnsproxy_probe_servfail_alive_all_failed_warns)
{
	struct dnsproxy_upstream_stats us;
	struct env e;

	env_probe_interval = 30;
	env_start(&e, 2, FAKE_SERVFAIL, FAKE_DROP, 200);
	env_probe_interval = 0;
	log_set_level(LOG_LVL_WARN);
	log_capture();
	env_run(&e, 500);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(us.healthy);
	ck_assert_uint_eq(us.probe_failures, 0);
	ck_assert(dnsproxy_get_upstream(e.p, 1, &us));
	ck_assert(!us.healthy);
	ck_assert_uint_eq(us.probe_failures, 1);
	log_release();
	ck_assert_msg(!strstr(logbuf, "all upstream probes failed"), "log: %s",
		      logbuf);
	env_stop(&e);

	env_probe_interval = 30;
	env_start(&e, 1, FAKE_DROP, 0, 200);
	env_probe_interval = 0;
	log_set_level(LOG_LVL_WARN);
	log_capture();
	env_run(&e, 500);
	log_release();
	ck_assert_msg(strstr(logbuf, "[dns] all upstream probes failed; using "
				     "full upstream list for forwarding"),
		      "log: %s", logbuf);
	env_stop(&e);
}
END_TEST

/*
 * An ordinary answer that comes in while the probe waits proves the
 * upstream alive and settles the probe; the probe's own answer, later
 * but within the probe's timeout, is still the probe's: not a late or
 * forged answer (bad_answers).
 */
START_TEST(test_dnsproxy_probe_answer_after_query_answer_not_bad)
{
	struct dnsproxy_upstream_stats us;
	struct dnsproxy_stats st;
	struct client *c;
	struct env e;
	uint8_t q[512];
	size_t qlen;

	env_probe_interval = 30;
	env_start(&e, 1, FAKE_SLOW_PROBE, 0, 1000);
	env_probe_interval = 0;
	env_run(&e, 50); /* the round's probe is out */
	ck_assert(fake_saw(&e.up[0], "")); /* the probe: ". NS" */
	c = ask(&e, 0x7301, "quick.example.com", q, &qlen, 1000);
	ck_assert_int_eq(c->got, 1);
	assert_answer_for(c, 0, q, qlen, "quick.example.com");
	client_free(c);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(us.healthy);
	ck_assert_uint_eq(us.probe_answers, 1);
	env_run(&e, 600); /* the probe's answer (300 ms), its timeout (1 s) */
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.bad_answers, 0);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert(us.healthy);
	ck_assert_uint_eq(us.probes, 1);
	ck_assert_uint_eq(us.probe_answers, 1);
	ck_assert_uint_eq(us.probe_failures, 0);
	env_run(&e, 600); /* past the probe's timeout: nothing changes */
	dnsproxy_get_stats(e.p, &st);
	ck_assert_uint_eq(st.bad_answers, 0);
	ck_assert(dnsproxy_get_upstream(e.p, 0, &us));
	ck_assert_uint_eq(us.probe_failures, 0);
	env_stop(&e);
}
END_TEST

/*
 * A failure rcode is a folded warning (log_folded), one kind per rcode:
 * repeats within a second are one line with their count.
 */
START_TEST(test_dnsproxy_failure_rcode_warning_folded)
{
	struct client *c;
	struct env e;
	char want[128];
	uint8_t q[512];
	size_t qlen;

	env_start(&e, 2, FAKE_SERVFAIL, FAKE_ANSWER, 1000);
	log_set_level(LOG_LVL_WARN);
	log_capture();
	c = ask(&e, 0x7401, "sf.example.com", q, &qlen, 2000);
	ck_assert_int_eq(c->got, 1);
	client_free(c);
	log_release();
	snprintf(
		want, sizeof(want),
		"dns upstream 127.0.0.1:%u answered SERVFAIL (sf.example.com A)",
		e.up[0].port);
	ck_assert_msg(strstr(logbuf, want), "log: %s", logbuf);
	ck_assert_msg(strstr(logbuf, "\"kind\":\"upstream_servfail\""),
		      "log: %s", logbuf);
	env_stop(&e);
}
END_TEST

static struct sockaddr_in sin4(const char *a)
{
	struct sockaddr_in s = { .sin_family = AF_INET };

	ck_assert_int_eq(inet_pton(AF_INET, a, &s.sin_addr), 1);
	return s;
}

static struct sockaddr_in6 sin6(const char *a)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6 };

	ck_assert_int_eq(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
	return s;
}

/*
 * Who may fail an upstream with an ICMP error: for a remote upstream, not
 * loopback, not an address of the namespace (own), not a missing sender;
 * for a local upstream anyone (it cannot be told apart).
 */
START_TEST(test_dnsproxy_icmp_offender_trust)
{
	struct sockaddr_in me4 = sin4("10.200.1.2"), up4 = sin4("10.200.1.53"),
			   lo4 = sin4("127.0.0.53"), any4 = sin4("0.0.0.0"),
			   gw4 = sin4("10.200.1.1");
	struct sockaddr_in6 me6 = sin6("fd00:200:1::2"),
			    ll6 = sin6("fe80::1:2"),
			    up6 = sin6("fd00:200:1::53"), lo6 = sin6("::1"),
			    mapped_me = sin6("::ffff:10.200.1.2"),
			    mapped_up = sin6("::ffff:10.200.1.53");
	struct sockaddr none = { .sa_family = AF_UNSPEC };
	struct ifaddrs i6b = { .ifa_name = (char *)"eth0",
			       .ifa_addr = (struct sockaddr *)&ll6 };
	struct ifaddrs i6 = { .ifa_next = &i6b,
			      .ifa_name = (char *)"eth0",
			      .ifa_addr = (struct sockaddr *)&me6 };
	struct ifaddrs nil = { .ifa_next = &i6, .ifa_name = (char *)"dummy" };
	struct ifaddrs own = { .ifa_next = &nil,
			       .ifa_name = (char *)"eth0",
			       .ifa_addr = (struct sockaddr *)&me4 };

	/* remote upstream: the upstream or a router may refuse */
	ck_assert(dp_icmp_trusted(false, (struct sockaddr *)&up4, &own));
	ck_assert(dp_icmp_trusted(false, (struct sockaddr *)&gw4, &own));
	ck_assert(dp_icmp_trusted(false, (struct sockaddr *)&up6, &own));
	ck_assert(dp_icmp_trusted(false, (struct sockaddr *)&mapped_up, &own));
	ck_assert(dp_icmp_trusted(false, (struct sockaddr *)&up4, NULL));
	/* ... the namespace may not */
	ck_assert(!dp_icmp_trusted(false, (struct sockaddr *)&me4, &own));
	ck_assert(!dp_icmp_trusted(false, (struct sockaddr *)&me6, &own));
	ck_assert(!dp_icmp_trusted(false, (struct sockaddr *)&ll6, &own));
	ck_assert(!dp_icmp_trusted(false, (struct sockaddr *)&mapped_me, &own));
	ck_assert(!dp_icmp_trusted(false, (struct sockaddr *)&lo4, &own));
	ck_assert(!dp_icmp_trusted(false, (struct sockaddr *)&lo4, NULL));
	ck_assert(!dp_icmp_trusted(false, (struct sockaddr *)&lo6, NULL));
	ck_assert(!dp_icmp_trusted(false, (struct sockaddr *)&any4, &own));
	ck_assert(!dp_icmp_trusted(false, &none, &own));
	ck_assert(!dp_icmp_trusted(false, NULL, &own));
	/* local upstream: today's behaviour, whoever sent it */
	ck_assert(dp_icmp_trusted(true, (struct sockaddr *)&me4, &own));
	ck_assert(dp_icmp_trusted(true, (struct sockaddr *)&lo4, &own));
	ck_assert(dp_icmp_trusted(true, &none, &own));
}
END_TEST

/* The errors that fail an upstream: those a connected socket reported. */
START_TEST(test_dnsproxy_icmp_refusal_kinds)
{
	ck_assert(dp_icmp_refusal(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH,
				  ICMP_PORT_UNREACH));
	ck_assert(dp_icmp_refusal(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH,
				  ICMP_PKT_FILTERED));
	ck_assert(dp_icmp_refusal(SO_EE_ORIGIN_ICMP6, ICMP6_DST_UNREACH,
				  ICMP6_DST_UNREACH_NOPORT));
	/* soft: a route may come back; or not "nothing listens" */
	ck_assert(!dp_icmp_refusal(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH,
				   ICMP_HOST_UNREACH));
	ck_assert(!dp_icmp_refusal(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH,
				   ICMP_NET_UNREACH));
	ck_assert(!dp_icmp_refusal(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH,
				   ICMP_FRAG_NEEDED));
	ck_assert(!dp_icmp_refusal(SO_EE_ORIGIN_ICMP, ICMP_TIME_EXCEEDED, 0));
	ck_assert(!dp_icmp_refusal(SO_EE_ORIGIN_ICMP6, ICMP6_DST_UNREACH,
				   ICMP6_DST_UNREACH_ADDR));
	ck_assert(
		!dp_icmp_refusal(SO_EE_ORIGIN_ICMP6, ICMP6_PACKET_TOO_BIG, 0));
	ck_assert(!dp_icmp_refusal(SO_EE_ORIGIN_LOCAL, ICMP_DEST_UNREACH,
				   ICMP_PORT_UNREACH));
}
END_TEST

static Suite *dnsproxy_suite(void)
{
	Suite *s = suite_create("dnsproxy");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_dnsproxy_udp_allowed_answered);
	tcase_add_test(tc, test_dnsproxy_denied_nxdomain_not_forwarded);
	tcase_add_test(tc, test_dnsproxy_wildcard_apex_mixed_case);
	tcase_add_test(tc, test_dnsproxy_aaaa_nodata_when_ipv6_denied);
	tcase_add_test(tc, test_dnsproxy_tcp_query);
	tcase_add_test(tc, test_dnsproxy_tcp_pipelined);
	tcase_add_test(tc, test_dnsproxy_upstream_timeout_servfail);
	tcase_add_test(tc, test_dnsproxy_failover_silent_first);
	tcase_add_test(tc, test_dnsproxy_failover_on_servfail);
	tcase_add_test(tc, test_dnsproxy_tc_relayed_to_udp_client);
	tcase_add_test(tc, test_dnsproxy_tc_retried_over_tcp_for_tcp_client);
	tcase_add_test(tc, test_dnsproxy_same_id_clients_isolated);
	tcase_add_test(tc, test_dnsproxy_spoofed_answer_ignored);
	tcase_add_test(tc, test_dnsproxy_malformed_queries);
	tcase_add_test(tc, test_dnsproxy_answer_hook_error_servfail);
	tcase_add_test(tc, test_dnsproxy_edns_passthrough);
	tcase_add_test(tc, test_dnsproxy_tcp_close_with_query_in_flight);
	tcase_add_test(tc, test_dnsproxy_udp_burst_batched);
	tcase_add_test(tc, test_dnsproxy_ipv6_listener);
	tcase_add_test(tc, test_dnsproxy_bind_conflict_error);
	tcase_add_test(tc, test_dnsproxy_new_alloc_failure_cleans_up);
	tcase_add_test(tc, test_dnsproxy_no_matcher_denies);
	tcase_add_test(tc, test_dnsproxy_tcp_retry_refused_moves_on);
	tcase_add_test(tc, test_dnsproxy_unhealthy_upstream_recovers);
	tcase_add_test(tc, test_dnsproxy_coalesces_identical_queries);
	tcase_add_test(tc, test_dnsproxy_0x20_case_randomised);
	tcase_add_test(tc, test_dnsproxy_0x20_upstream_losing_case);
	tcase_add_test(tc, test_dnsproxy_rebinding_stripped);
	tcase_add_test(tc, test_dnsproxy_cname_to_denied_name);
	tcase_add_test(tc, test_dnsproxy_probe_at_start_skips_dead_upstream);
	tcase_add_test(tc, test_dnsproxy_refused_upstream_fails_over_at_once);
	tcase_add_test(tc, test_dnsproxy_probe_round_revives_upstream);
	tcase_add_test(tc, test_dnsproxy_probe_servfail_alive_all_failed_warns);
	tcase_add_test(tc,
		       test_dnsproxy_probe_answer_after_query_answer_not_bad);
	tcase_add_test(tc, test_dnsproxy_icmp_offender_trust);
	tcase_add_test(tc, test_dnsproxy_icmp_refusal_kinds);
	tcase_add_test(tc, test_dnsproxy_failure_rcode_warning_folded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dnsproxy_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
