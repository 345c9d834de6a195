// SPDX-License-Identifier: GPL-2.0-only
/*
 * Transparent DNS proxy, its core. Port-53 traffic of the namespace is
 * redirected to the UDP and TCP listeners on 127.0.0.1 and ::1 (docs/
 * dns-proxy.md); each query is parsed, its first question judged by the
 * policy (dnsdecide.c), denied names answered on the spot, and allowed
 * ones forwarded (dnsupstream.c: one connected UDP socket per upstream,
 * a fresh random id and random letter case, TCP retries; dnsprobe.c:
 * health probes);
 * identical queries in flight share one. The answer is checked, given
 * each client's id and question again, shown to the answer hook
 * (learning), and released. This file holds what the others share: the
 * query slots and their timeout FIFO, coalescing, the replies to clients,
 * the UDP listeners, dp_flush (the end of every callback) and set-up.
 * The UDP path is batched (recvmmsg/sendmmsg) because the kernel's
 * per-packet cost dominates; everything runs in the event loop and
 * nothing blocks. TCP clients are dnstcp.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dnsproxy_int.h"
#include "egressd/log.h"
#include "egressd/selfsock.h"
#include "egressd/util.h"

#define DP_CTAB 8192 /* coalescing hash buckets (power of 2) */
#define DP_PROBE_MAX_WAIT_MS 2000 /* a probe's timeout: at most this */
#define DP_DEFAULT_TIMEOUT_MS 2000
#define DP_SOCKBUF (4 * 1024 * 1024)

/* ---- small helpers ---------------------------------------------------- */

uint16_t dp_rand16(struct dnsproxy *p)
{
	if (p->rand_pos >= DP_RAND_N) {
		ssize_t n = getrandom(p->rand, sizeof(p->rand), GRND_NONBLOCK);

		if (n != (ssize_t)sizeof(p->rand)) {
			/* No entropy yet (very early boot): xorshift64. */
			for (int i = 0; i < DP_RAND_N; i++) {
				p->xs ^= p->xs << 13;
				p->xs ^= p->xs >> 7;
				p->xs ^= p->xs << 17;
				p->rand[i] = (uint16_t)(p->xs >> 24);
			}
		}
		p->rand_pos = 0;
	}
	return p->rand[p->rand_pos++];
}

void dp_addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

void dp_set_sockbuf(int fd)
{
	int v = DP_SOCKBUF;

	/* Best effort: capped by net.core.[rw]mem_max. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* ---- query slots, ids and the timeout FIFO ---------------------------- */

struct dp_query *dp_slot_get(struct dnsproxy *p)
{
	struct dp_query *s = p->free_q;

	if (s) {
		p->free_q = s->next;
	} else {
		if (p->n_slots >= DP_MAX_INFLIGHT)
			return NULL;
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		s->p = p;
		s->idx = p->n_slots;
		s->tfd = -1;
		p->slots[p->n_slots++] = s;
	}
	s->next = s->prev = NULL;
	s->state = DP_Q_FREE;
	s->has_id = false;
	s->send_failed = false;
	s->attempt = 0;
	return s;
}

void dp_slot_put(struct dnsproxy *p, struct dp_query *s)
{
	s->state = DP_Q_FREE;
	s->prev = NULL;
	s->next = p->free_q;
	p->free_q = s;
}

void dp_fifo_del(struct dnsproxy *p, struct dp_query *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else if (p->fifo_head == s)
		p->fifo_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else if (p->fifo_tail == s)
		p->fifo_tail = s->prev;
	s->prev = s->next = NULL;
}

/* A resolver on the same host or LAN answers in well under 1 ms. */
const double dnsproxy_rtt_bounds[DNSPROXY_RTT_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025,	0.05,	 0.1,	 0.25,	0.5,	1,
};

/* One upstream round trip (since s->sent_us) into the histogram. */
void dp_rtt_record(struct dnsproxy *p, const struct dp_query *s)
{
	uint64_t now = util_clock_us();
	double sec = now > s->sent_us ? (now - s->sent_us) / 1e6 : 0;
	int i;

	for (i = 0; i < DNSPROXY_RTT_BUCKETS && sec > dnsproxy_rtt_bounds[i];
	     i++)
		;
	p->st.rtt_hist[i]++;
	p->st.rtt_count++;
	p->st.rtt_sum_s += sec;
}

/*
 * The timeout is the same for every attempt, so deadlines are appended in
 * increasing order and the FIFO head is always the earliest: one timer
 * armed for the head is enough.
 */
void dp_fifo_push(struct dnsproxy *p, struct dp_query *s)
{
	uint64_t now = loop_now_ms(p->loop);

	s->deadline = now + p->timeout_ms;
	s->sent_us = util_clock_us();
	s->next = NULL;
	s->prev = p->fifo_tail;
	if (p->fifo_tail)
		p->fifo_tail->next = s;
	else
		p->fifo_head = s;
	p->fifo_tail = s;
	if (!loop_timer_is_armed(p->tmo))
		loop_timer_arm(p->tmo, p->timeout_ms);
}

static void dp_ctab_del(struct dnsproxy *p, struct dp_query *s)
{
	struct dp_query **link = &p->ctab[s->hash & (DP_CTAB - 1)];

	while (*link && *link != s)
		link = &(*link)->hnext;
	if (*link)
		*link = s->hnext;
	s->hnext = NULL;
	s->in_table = false;
}

/* The query is done (answered, failed or dropped): release everything. */
static void dp_query_finish(struct dnsproxy *p, struct dp_query *s)
{
	if (s->in_table)
		dp_ctab_del(p, s);
	dp_id_release(p, s);
	dp_fifo_del(p, s);
	dp_tcp_close(p, s);
	if (s->from_tcp) {
		struct dp_conn *c = dp_conn_of(p, s->conn, s->conn_gen);

		if (c) {
			c->inflight--;
			dp_conn_mark_dirty(p, c);
		}
	}
	p->st.inflight--;
	dp_slot_put(p, s);
}

/* ---- sending to clients ----------------------------------------------- */

static void dp_tx_flush(struct dp_listener *l)
{
	struct dp_tx *tx = l->tx;
	unsigned int sent = 0;

	while (sent < tx->n) {
		int r = sendmmsg(l->fd, tx->msgs + sent, tx->n - sent, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* Socket buffer full (EAGAIN) or a bad peer: UDP is
			 * lossy, the client retries. Skip one and go on. */
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			sent++;
			continue;
		}
		sent += (unsigned int)r;
	}
	tx->n = 0;
}

/*
 * Queue a reply. A UDP reply of at most DP_UDP_BUF bytes (any UDP answer)
 * is copied; a larger one is referenced and must stay valid until the end
 * of the current callback (dp_flush).
 */
void dp_send_client(struct dnsproxy *p, const struct dp_client *cl,
		    const uint8_t *data, size_t len)
{
	struct dp_tx *tx;
	struct mmsghdr *m;
	unsigned int i;

	if (cl->tcp) {
		struct dp_conn *c = dp_conn_of(p, cl->conn, cl->gen);

		if (!c)
			return;
		dp_conn_append(c, data, len);
		if (c->fd >= 0)
			dp_conn_mark_dirty(p, c);
		return;
	}
	tx = p->lst[cl->listener].tx;
	if (tx->n == DP_BATCH)
		dp_tx_flush(&p->lst[cl->listener]);
	i = tx->n++;
	m = &tx->msgs[i];
	memcpy(&tx->dst[i], cl->addr, cl->addrlen);
	if (len <= DP_UDP_BUF) {
		memcpy(tx->buf[i], data, len);
		tx->iov[i].iov_base = tx->buf[i];
	} else {
		tx->iov[i].iov_base = (void *)data;
	}
	tx->iov[i].iov_len = len;
	memset(m, 0, sizeof(*m));
	m->msg_hdr.msg_name = &tx->dst[i];
	m->msg_hdr.msg_namelen = cl->addrlen;
	m->msg_hdr.msg_iov = &tx->iov[i];
	m->msg_hdr.msg_iovlen = 1;
}

void dp_query_client(const struct dp_query *s, struct dp_client *cl)
{
	cl->tcp = s->from_tcp;
	cl->listener = s->listener;
	cl->addr = &s->client;
	cl->addrlen = s->clientlen;
	cl->conn = s->conn;
	cl->gen = s->conn_gen;
}

size_t dp_qlen(const struct dp_query *s)
{
	return s->q.question_end - DNSWIRE_HDR_LEN;
}

/* Build an rcode-only reply to s's query (as the client wrote it). */
static void dp_fail_one(struct dnsproxy *p, struct dp_query *s, int rcode)
{
	uint8_t rep[DP_REPLY_BUF];
	struct dp_client cl;
	ssize_t n;

	dnswire_set_id(s->msg, s->client_id);
	memcpy(s->msg + DNSWIRE_HDR_LEN, s->qorig, dp_qlen(s));
	n = dnswire_build_reply(s->msg, s->len, &s->q, rcode, rep, sizeof(rep));
	if (n > 0) {
		dp_query_client(s, &cl);
		dp_send_client(p, &cl, rep, (size_t)n);
	}
	if (rcode == DNSWIRE_RCODE_SERVFAIL)
		p->st.servfail++;
	dp_query_finish(p, s);
}

/* Answer s and every query coalesced onto it with rcode; finish them. */
void dp_fail_reply(struct dnsproxy *p, struct dp_query *s, int rcode)
{
	struct dp_query *f, *fn;

	for (f = s->fhead; f; f = fn) {
		fn = f->fnext;
		dp_fail_one(p, f, rcode);
	}
	s->fhead = NULL;
	dp_fail_one(p, s, rcode);
}

/* msg to s's client under its id and its question (case included). */
void dp_send_answer(struct dnsproxy *p, struct dp_query *s, uint8_t *msg,
		    size_t len)
{
	struct dp_client cl;

	dnswire_set_id(msg, s->client_id);
	memcpy(msg + DNSWIRE_HDR_LEN, s->qorig, dp_qlen(s));
	dp_query_client(s, &cl);
	dp_send_client(p, &cl, msg, len);
	dp_query_finish(p, s);
}

/* ---- coalescing ------------------------------------------------------- */

/* What must be equal for one answer to serve two queries. */
static uint32_t dp_key_bits(const struct dp_query *s)
{
	return (uint32_t)(s->q.flags & (DNSWIRE_F_RD | DNSWIRE_F_CD)) |
	       (uint32_t)s->from_tcp << 16 | (uint32_t)s->q.has_opt << 17 |
	       (uint32_t)s->q.opt_do << 18 | (uint32_t)s->q.opt_version << 24;
}

static bool dp_key_eq(const struct dp_query *a, const struct dp_query *b)
{
	return a->hash == b->hash && a->q.qtype == b->q.qtype &&
	       a->q.qclass == b->q.qclass &&
	       a->q.opt_udp_size == b->q.opt_udp_size &&
	       dp_key_bits(a) == dp_key_bits(b) &&
	       a->q.name_len == b->q.name_len &&
	       !memcmp(a->q.name, b->q.name, a->q.name_len);
}

/*
 * One upstream query per name, type and flags at a time: a query equal
 * to one in flight waits for that one's answer (DP_Q_WAIT) instead of
 * being forwarded. Besides saving the upstream work, this is what keeps
 * a workload from putting thousands of ids in flight for one name and
 * then forging answers for all of them. Returns true when s now waits.
 */
bool dp_coalesce(struct dnsproxy *p, struct dp_query *s)
{
	uint32_t bits = dp_key_bits(s);
	struct dp_query **head, *l;
	uint64_t h;

	h = util_fnv1a(UTIL_FNV1A_INIT, s->q.name, s->q.name_len);
	h = util_fnv1a(h, &s->q.qtype, sizeof(s->q.qtype));
	h = util_fnv1a(h, &bits, sizeof(bits));
	s->hash = (uint32_t)h;
	head = &p->ctab[h & (DP_CTAB - 1)];
	for (l = *head; l; l = l->hnext) {
		if (!dp_key_eq(l, s))
			continue;
		s->state = DP_Q_WAIT;
		s->lead = l;
		s->fnext = l->fhead;
		l->fhead = s;
		p->st.coalesced++;
		return true;
	}
	s->hnext = *head;
	*head = s;
	s->in_table = true;
	return false;
}

/*
 * Called at the end of every callback: send what the callback queued.
 * Queries whose send failed move on to the next upstream (which queues
 * more), finished queries may let a TCP client's buffered queries run,
 * so loop until nothing is pending. UDP replies go last: they may point
 * into the receive batch, which is reused only after this returns.
 */
void dp_flush(struct dnsproxy *p)
{
	bool more;

	do {
		more = false;
		for (int i = 0; i < p->n_ups; i++) {
			if (p->ups[i].ntx) {
				dp_up_flush(p, &p->ups[i]);
				more = true;
			}
		}
		for (int i = 0; i < p->n_ups; i++) {
			if (p->ups[i].refused) {
				p->ups[i].refused = false;
				dp_up_refused(p, &p->ups[i], ECONNREFUSED);
				more = true;
			}
		}
		while (p->n_retry) {
			struct dp_query *s = p->slots[p->retry[--p->n_retry]];

			if (s->send_failed && s->state == DP_Q_UDP) {
				s->send_failed = false;
				dp_next(p, s);
			}
			more = true;
		}
		while (p->n_dirty) {
			struct dp_conn *c = &p->conns[p->dirty[--p->n_dirty]];

			c->dirty = false;
			if (c->fd < 0)
				continue;
			dp_conn_service(c);
			more = true;
		}
	} while (more);
	for (int i = 0; i < p->n_lst; i++)
		if (!p->lst[i].tcp && p->lst[i].tx->n)
			dp_tx_flush(&p->lst[i]);
}

/* ---- UDP listener ----------------------------------------------------- */

/*
 * want_addr: the sender's address is needed (clients). A connected
 * upstream socket does without: then the kernel also skips the cgroup
 * recvmsg hooks (the BPF DNS redirect's), which cost every datagram.
 */
int dp_recv_batch(struct dnsproxy *p, int fd, bool want_addr)
{
	struct dp_rx *rx = p->rx;
	int n;

	for (int i = 0; i < DP_BATCH; i++) {
		struct msghdr *h = &rx->msgs[i].msg_hdr;

		rx->iov[i].iov_base = rx->buf[i];
		rx->iov[i].iov_len = DP_UDP_BUF;
		h->msg_name = want_addr ? &rx->addr[i] : NULL;
		h->msg_namelen = want_addr ? sizeof(rx->addr[i]) : 0;
		h->msg_iov = &rx->iov[i];
		h->msg_iovlen = 1;
		h->msg_control = NULL;
		h->msg_controllen = 0;
		h->msg_flags = 0;
	}
	do {
		n = recvmmsg(fd, rx->msgs, DP_BATCH, MSG_DONTWAIT, NULL);
	} while (n < 0 && errno == EINTR);
	return n;
}

static void dp_udp_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct dp_listener *l = arg;
	struct dnsproxy *p = l->p;
	struct dp_client cl = { .tcp = false, .listener = l->idx };
	int n;

	/* A few batches per wakeup, then let other sockets run. */
	for (int round = 0; round < 4; round++) {
		n = dp_recv_batch(p, fd, true);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			struct mmsghdr *m = &p->rx->msgs[i];

			if (m->msg_hdr.msg_flags & MSG_TRUNC) {
				p->st.queries++;
				p->st.malformed++;
				continue;
			}
			cl.addr = &p->rx->addr[i];
			cl.addrlen = m->msg_hdr.msg_namelen;
			dp_handle_query(p, p->rx->buf[i], m->msg_len, &cl);
		}
		dp_flush(p);
		if (n < DP_BATCH)
			break;
	}
}

/* ---- setup ------------------------------------------------------------ */

static void dp_bind_err(char *err, size_t errlen, bool tcp, int family,
			uint16_t port, int e)
{
	const char *hint = "";

	if (e == EADDRINUSE)
		hint = " (another process, perhaps another egressd, holds "
		       "this port: stop it or choose another port with "
		       "OPENSANDBOX_EGRESS_DNS_LISTEN_PORT)";
	else if (e == EACCES)
		hint = " (ports below 1024 need CAP_NET_BIND_SERVICE: grant "
		       "it or use a higher port)";
	else if (e == EADDRNOTAVAIL)
		hint = " (the loopback interface is down or lacks this "
		       "address: bring lo up in the namespace)";
	snprintf(err, errlen, "cannot listen on %s %s%s%s:%u: %s%s",
		 tcp ? "TCP" : "UDP", family == AF_INET6 ? "[" : "",
		 family == AF_INET6 ? "::1" : "127.0.0.1",
		 family == AF_INET6 ? "]" : "", port, strerror(e), hint);
}

/* Bind one listener; returns fd or -errno (errno of the failing call). */
static int dp_listen(int family, bool tcp, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd, one = 1, err;

	fd = socket(family,
		    (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK |
			    SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -errno;
	/* Before bind: the BPF bind guard lets only egressd's sockets have
	 * this port (a squatter cannot take it while egressd restarts). */
	selfsock_note(fd);
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)&ss;

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			       sizeof(one)) < 0)
			goto err;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	}
	/* TCP only: restart while old connections linger in TIME_WAIT.
	 * Not on UDP, where it would let two proxies share the port. */
	if (tcp &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto err;
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
		goto err;
	if (tcp && listen(fd, 128) < 0)
		goto err;
	if (!tcp)
		dp_set_sockbuf(fd);
	return fd;
err:
	err = -errno;
	selfsock_close(fd);
	return err;
}

static uint16_t dp_bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int dp_add_listener(struct dnsproxy *p, int fd, bool tcp)
{
	struct dp_listener *l = &p->lst[p->n_lst];
	int err;

	l->p = p;
	l->fd = fd;
	l->idx = (uint8_t)p->n_lst;
	l->tcp = tcp;
	if (!tcp) {
		l->tx = calloc(1, sizeof(*l->tx));
		if (!l->tx)
			return -ENOMEM;
	}
	err = loop_add_fd(p->loop, fd, EPOLLIN, tcp ? dp_accept_cb : dp_udp_cb,
			  l);
	if (err) {
		free(l->tx);
		l->tx = NULL;
		return err;
	}
	p->n_lst++;
	return 0;
}

static void dp_close_listeners(struct dnsproxy *p)
{
	for (int i = 0; i < p->n_lst; i++) {
		loop_del_fd(p->loop, p->lst[i].fd);
		selfsock_close(p->lst[i].fd);
		free(p->lst[i].tx);
		p->lst[i].fd = -1;
		p->lst[i].tx = NULL;
	}
	p->n_lst = 0;
}

/*
 * UDP and TCP on 127.0.0.1, then on ::1 (skipped with a warning when the
 * namespace has no IPv6). Returns 0 with *port set, or -errno with err.
 */
static int dp_try_listeners(struct dnsproxy *p, uint16_t *port, char *err,
			    size_t errlen)
{
	static const int fams[2] = { AF_INET, AF_INET6 };

	for (int f = 0; f < 2; f++) {
		for (int t = 0; t < 2; t++) {
			bool tcp = t == 1;
			int fd, rc;

			fd = dp_listen(fams[f], tcp, *port);
			if (fd < 0 && fams[f] == AF_INET6 && !tcp &&
			    (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT)) {
				log_warnx("dns proxy: ::1 unavailable (%s), "
					  "IPv6 disabled in this namespace? "
					  "listening on 127.0.0.1 only",
					  strerror(-fd));
				return 0;
			}
			if (fd < 0) {
				dp_bind_err(err, errlen, tcp, fams[f], *port,
					    -fd);
				return fd;
			}
			rc = dp_add_listener(p, fd, tcp);
			if (rc) {
				selfsock_close(fd);
				snprintf(err, errlen,
					 "dns proxy: cannot watch listener: %s",
					 strerror(-rc));
				return rc;
			}
			/* Port 0: the others take the port the first got. */
			if (!*port)
				*port = dp_bound_port(fd);
		}
	}
	return 0;
}

static int dp_open_listeners(struct dnsproxy *p, uint16_t port, char *err,
			     size_t errlen)
{
	uint16_t got;
	int rc;

	/*
	 * With port 0 (tests) the kernel picks a port free for the first
	 * socket only; another protocol or family may hold it. Try again
	 * with a new pick a few times.
	 */
	for (int i = 0; i < 16; i++) {
		got = port;
		rc = dp_try_listeners(p, &got, err, errlen);
		if (!rc) {
			p->port = got;
			return 0;
		}
		dp_close_listeners(p);
		if (port || rc != -EADDRINUSE)
			break;
	}
	return rc;
}

int dnsproxy_new(struct dnsproxy **out, struct loop *loop,
		 const struct egressd_config *cfg, char *err, size_t errlen)
{
	struct dnsproxy *p;
	int rc;

	*out = NULL;
	if (cfg->n_upstreams <= 0 || cfg->n_upstreams > EGRESSD_MAX_UPSTREAMS) {
		snprintf(err, errlen,
			 "no DNS upstream configured: set "
			 "OPENSANDBOX_EGRESS_DNS_UPSTREAM or list a "
			 "nameserver in resolv.conf");
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto enomem;
	p->loop = loop;
	p->timeout_ms = cfg->upstream_timeout_ms ? cfg->upstream_timeout_ms :
						   DP_DEFAULT_TIMEOUT_MS;
	p->rand_pos = DP_RAND_N;
	p->xs = util_clock_ms() * 0x9e3779b97f4a7c15ULL + (uint64_t)getpid();
	for (int i = 0; i < DP_MAX_LISTENERS; i++)
		p->lst[i].fd = -1;
	for (int i = 0; i < EGRESSD_MAX_UPSTREAMS; i++)
		p->ups[i].fd = -1;
	p->probe_interval_ms = cfg->upstream_probe_interval_s * 1000;
	p->probe_timeout_ms = p->timeout_ms < DP_PROBE_MAX_WAIT_MS ?
				      p->timeout_ms :
				      DP_PROBE_MAX_WAIT_MS;
	if (dp_build_probe(p, cfg->upstream_probe) < 0) {
		snprintf(err, errlen,
			 "dns proxy: cannot ask \"%s\" as the upstream probe",
			 cfg->upstream_probe);
		rc = -EINVAL;
		goto err_free;
	}

	p->rx = malloc(sizeof(*p->rx));
	p->slots = calloc(DP_MAX_INFLIGHT, sizeof(*p->slots));
	p->retry = calloc(DP_MAX_INFLIGHT, sizeof(*p->retry));
	p->conns = calloc(DP_MAX_CONNS, sizeof(*p->conns));
	/* Mark every slot closed before anything else can fail: fd 0 from
	 * calloc would make dnsproxy_free close it as a live connection. */
	for (int i = 0; p->conns && i < DP_MAX_CONNS; i++)
		p->conns[i].fd = -1;
	p->free_conns = calloc(DP_MAX_CONNS, sizeof(*p->free_conns));
	p->dirty = calloc(DP_MAX_CONNS, sizeof(*p->dirty));
	p->tmo = loop_timer_new(loop, dp_timeout_cb, p);
	p->sweep = loop_timer_new(loop, dp_sweep_cb, p);
	p->probe = loop_timer_new(loop, dp_probe_cb, p);
	p->probe_round = loop_timer_new(loop, dp_round_cb, p);
	p->probe_tmo = loop_timer_new(loop, dp_probe_tmo_cb, p);
	p->ctab = calloc(DP_CTAB, sizeof(*p->ctab));
	dnsguard_new(&p->guard, cfg->block_private_answers);
	if (!p->rx || !p->slots || !p->retry || !p->conns || !p->free_conns ||
	    !p->dirty || !p->tmo || !p->sweep || !p->probe || !p->probe_round ||
	    !p->probe_tmo || !p->ctab || !p->guard)
		goto enomem;
	/* lo is always index 1 in a namespace; ask anyway. */
	p->lo_ifindex = (int)if_nametoindex("lo");
	if (p->lo_ifindex <= 0)
		p->lo_ifindex = 1;
	for (int i = DP_MAX_CONNS - 1; i >= 0; i--) {
		p->conns[i].p = p;
		p->conns[i].idx = (uint16_t)i;
		p->free_conns[p->n_free_conns++] = (uint16_t)i;
	}

	p->n_ups = cfg->n_upstreams;
	for (int i = 0; i < p->n_ups; i++) {
		struct dp_upstream *up = &p->ups[i];

		up->p = p;
		up->idx = i;
		up->cfg = cfg->upstreams[i];
		up->cfg.text[sizeof(up->cfg.text) - 1] = '\0';
		up->healthy = true;
		up->idmap = calloc(65536, sizeof(*up->idmap));
		if (!up->idmap)
			goto enomem;
	}
	dp_compute_order(p);
	for (int i = 0; i < p->n_ups; i++) {
		struct dp_upstream *up = &p->ups[i];

		rc = dp_up_open(up);
		if (rc < 0) {
			/* Not fatal: the probe retries, a route may appear. */
			up->errors++;
			dp_up_mark(up, false, strerror(-rc));
		}
	}

	rc = dp_open_listeners(p, cfg->dns_listen_port, err, errlen);
	if (rc)
		goto err_free;
	/* The first round on the loop's first turn, once the listeners are
	 * up, as the peer; 0 (unit tests only) probes just the unhealthy. */
	if (p->probe_interval_ms)
		loop_timer_arm(p->probe_round, 0);
	*out = p;
	return 0;
enomem:
	rc = -ENOMEM;
	snprintf(err, errlen, "dns proxy: out of memory");
err_free:
	dnsproxy_free(p);
	return rc;
}

void dnsproxy_free(struct dnsproxy *p)
{
	if (!p)
		return;
	dp_close_listeners(p);
	if (p->conns)
		for (int i = 0; i < DP_MAX_CONNS; i++)
			dp_conn_close(&p->conns[i]);
	for (int i = 0; i < p->n_ups; i++) {
		if (p->ups[i].fd >= 0) {
			loop_del_fd(p->loop, p->ups[i].fd);
			selfsock_close(p->ups[i].fd);
		}
		free(p->ups[i].idmap);
	}
	for (uint32_t i = 0; i < p->n_slots; i++) {
		dp_tcp_close(p, p->slots[i]);
		free(p->slots[i]->msg);
		free(p->slots[i]);
	}
	if (p->tmo)
		loop_timer_free(p->tmo);
	if (p->sweep)
		loop_timer_free(p->sweep);
	if (p->probe)
		loop_timer_free(p->probe);
	if (p->probe_round)
		loop_timer_free(p->probe_round);
	if (p->probe_tmo)
		loop_timer_free(p->probe_tmo);
	free(p->slots);
	free(p->retry);
	free(p->conns);
	free(p->free_conns);
	free(p->dirty);
	free(p->rx);
	free(p->ctab);
	dnsguard_free(p->guard);
	free(p);
}

void dnsproxy_set_matcher(struct dnsproxy *p, const struct policy_matcher *m)
{
	p->matcher = m;
}

int dnsproxy_set_addr_rules(struct dnsproxy *p, const struct policy *user,
			    const struct policy_rule *deny_always,
			    size_t n_deny,
			    const struct policy_rule *allow_always,
			    size_t n_allow)
{
	int rc = dnsguard_set_rules(p->guard, user, deny_always, n_deny,
				    allow_always, n_allow);

	if (rc)
		log_warnx("dns proxy: cannot take the IP/CIDR rules for "
			  "rebinding checks (%s); the previous ones stay",
			  strerror(-rc));
	return rc;
}

void dnsproxy_set_aaaa_nodata(struct dnsproxy *p, bool on)
{
	p->aaaa_nodata = on;
}

void dnsproxy_set_block_doh_names(struct dnsproxy *p, bool on)
{
	p->block_doh_names = on;
}

void dnsproxy_set_answer_hook(struct dnsproxy *p, dnsproxy_answer_cb cb,
			      void *arg)
{
	p->hook = cb;
	p->hook_arg = arg;
}

void dnsproxy_set_events(struct dnsproxy *p, struct events *ev)
{
	p->events = ev;
}

uint16_t dnsproxy_port(const struct dnsproxy *p)
{
	return p->port;
}

void dnsproxy_get_stats(const struct dnsproxy *p, struct dnsproxy_stats *s)
{
	*s = p->st;
}

bool dnsproxy_get_upstream(const struct dnsproxy *p, int i,
			   struct dnsproxy_upstream_stats *s)
{
	const struct dp_upstream *up;

	if (i < 0 || i >= p->n_ups)
		return false;
	up = &p->ups[i];
	s->addr = up->cfg.text;
	s->healthy = up->healthy;
	s->queries = up->queries;
	s->timeouts = up->timeouts;
	s->errors = up->errors;
	s->probes = up->probes;
	s->probe_failures = up->probe_failures;
	s->probe_answers = up->probe_answers;
	return true;
}
