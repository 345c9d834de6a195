// SPDX-License-Identifier: GPL-2.0-only
/*
 * Transparent DNS proxy. Every port-53 packet of the namespace is
 * redirected to the UDP and TCP listeners on 127.0.0.1 and ::1; each query
 * is parsed, its first question judged by the policy matcher, denied names
 * answered NXDOMAIN on the spot (never forwarded), and allowed ones sent
 * over one connected UDP socket per upstream with a fresh random id and
 * random letter case (0x20); identical queries in flight share one. The
 * answer is matched back by that id and by its question, case included
 * (answers that came in on lo from a remote upstream never get that far:
 * dp_up_filter), loses what it may not carry (dp_guard: rebinding
 * addresses, a CNAME through a denied name), is given each client's id
 * and question again, shown to the answer hook (learning), and released.
 * Timeouts and SERVFAIL/REFUSED/NOTIMP move a query to the next upstream;
 * truncated answers for TCP clients are fetched again over TCP. The UDP
 * path is batched (recvmmsg/sendmmsg) because the kernel's per-packet cost
 * dominates; everything runs in the event loop and nothing blocks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "egressd/dnsguard.h"
#include "egressd/dnsproxy.h"
#include "egressd/doh.h"
#include "egressd/events.h"
#include "egressd/log.h"
#include "egressd/selfsock.h"

#define DP_BATCH 64 /* datagrams per recvmmsg/sendmmsg */
#define DP_UDP_BUF 4096 /* per-datagram receive buffer */
#define DP_REPLY_BUF 512 /* replies we build: header+question+OPT */
#define DP_CTAB 8192 /* coalescing hash buckets (power of 2) */
#define DP_CAPS_BAD_MAX 4 /* case mismatches in a row: 0x20 off */
#define DP_CAPS_OFF_MS (10 * 60 * 1000) /* then try 0x20 again */
#define DP_CAPS_RND 16 /* random bytes per 0x20 name (128 letters) */
#define DP_SPOOF_WARN_MS 10000 /* at most one forged-answer warning */
#define DP_TCP_MSG_MAX 65535 /* largest DNS message over TCP */
#define DP_MAX_INFLIGHT 8192 /* ids per upstream stay sparse (1/8) */
#define DP_MAX_CONNS 256 /* TCP client connections */
#define DP_CONN_IDLE_MS 10000 /* close idle TCP clients after this */
#define DP_CONN_MAX_QUERIES 64 /* in flight per TCP client */
#define DP_CONN_MAX_WBUF (256 * 1024) /* unsent bytes per TCP client */
#define DP_CONN_RBUF_MIN 4096
#define DP_SWEEP_MS 1000 /* idle-connection sweep period */
#define DP_PROBE_MS 5000 /* re-probe unhealthy upstreams */
#define DP_PROBE_MAX_WAIT_MS 2000 /* a probe's timeout: at most this */
#define DP_PROBE_INTERVAL_S 30 /* the peer's default probe interval */
#define DP_DEFAULT_TIMEOUT_MS 2000
#define DP_RAND_N 2048 /* ids and 0x20 bits: 9 draws a query */
#define DP_SOCKBUF (4 * 1024 * 1024)

enum dp_qstate {
	DP_Q_FREE = 0,
	DP_Q_UDP = 1, /* waiting for a UDP answer from order[attempt] */
	DP_Q_TCP = 2, /* TCP retry to order[attempt] after a TC answer */
	DP_Q_WAIT = 3, /* coalesced: waits for the answer of s->lead */
};

/* Where a reply goes: a UDP peer of a listener, or a TCP connection. */
struct dp_client {
	bool tcp;
	uint8_t listener;
	const struct sockaddr_storage *addr;
	socklen_t addrlen;
	uint16_t conn;
	uint32_t gen;
};

/* One in-flight query. Lives in p->slots[idx] until answered or failed. */
struct dp_query {
	struct dp_query *prev, *next; /* timeout FIFO, or free list (next) */
	struct dnsproxy *p;
	uint32_t idx;
	uint8_t state;
	uint8_t n_order, attempt;
	uint8_t order[EGRESSD_MAX_UPSTREAMS];
	bool has_id; /* up_id is registered in the upstream's id map */
	bool send_failed; /* listed in p->retry */
	uint16_t client_id, up_id;
	uint64_t deadline;
	uint64_t sent_us; /* this attempt's send, for the RTT histogram */

	bool from_tcp;
	uint8_t listener;
	socklen_t clientlen;
	struct sockaddr_storage client;
	uint16_t conn;
	uint32_t conn_gen;

	uint8_t *msg; /* the client's query; id (and 0x20 case) rewritten
		       * per attempt */
	size_t len, cap;
	struct dnswire_question q;
	/* The question as the client wrote it: restored in every reply. */
	uint8_t qorig[DNSWIRE_HDR_LEN + 255 + 4];
	bool caps; /* this attempt went out with 0x20 case */
	bool nocaps; /* a case mismatch was seen: no 0x20 any more */

	/* Coalescing (dp_coalesce): one upstream query per key. */
	struct dp_query *lead; /* follower: the query it waits on */
	struct dp_query *fhead; /* leader: its followers */
	struct dp_query *fnext; /* follower: next of the same leader */
	struct dp_query *hnext; /* leader: hash chain */
	uint32_t hash;
	bool in_table;

	/* TCP retry to the upstream */
	int tfd;
	bool twriting;
	uint8_t *tbuf; /* 2-byte length + message */
	size_t tlen, toff;
};

struct dp_conn {
	struct dnsproxy *p;
	int fd;
	uint16_t idx;
	uint32_t gen; /* bumped on close: late answers see a mismatch */
	bool rd_closed, dirty;
	uint32_t events;
	unsigned int inflight;
	uint64_t last;
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint8_t *wbuf;
	size_t woff, wlen, wcap;
	socklen_t peerlen;
	struct sockaddr_storage peer;
};

/* Pending UDP replies of one listener, flushed with one sendmmsg. */
struct dp_tx {
	unsigned int n;
	struct mmsghdr msgs[DP_BATCH];
	struct iovec iov[DP_BATCH];
	struct sockaddr_storage dst[DP_BATCH];
	/* Every UDP answer fits (it came in through a DP_UDP_BUF buffer):
	 * copied, so that one answer can go to several coalesced clients
	 * with a different id each. */
	uint8_t buf[DP_BATCH][DP_UDP_BUF];
};

struct dp_listener {
	struct dnsproxy *p;
	int fd;
	uint8_t idx;
	bool tcp;
	struct dp_tx *tx; /* UDP only */
};

struct dp_upstream {
	struct dnsproxy *p;
	int idx;
	int fd;
	struct egressd_upstream cfg;
	bool healthy;
	/* On loopback or a local address: its answers arrive on lo. */
	bool local;
	uint8_t caps_bad; /* answers in a row that lost the 0x20 case */
	uint64_t caps_off_until; /* loop ms; 0x20 off while now < this */
	uint64_t queries, timeouts, errors;
	uint16_t *idmap; /* upstream id -> slot index + 1 (0: free) */
	/* pending forwarded queries, flushed with one sendmmsg */
	unsigned int ntx;
	struct mmsghdr txmsgs[DP_BATCH];
	struct iovec txiov[DP_BATCH];
	uint32_t txslot[DP_BATCH];
	bool probe_pending;
	bool probe_round; /* the pending probe is one of a round: logged */
	bool refused; /* a send met a pending ICMP error (dp_flush) */
	uint16_t probe_id;
	uint64_t probe_sent; /* loop ms */
	uint64_t probes, probe_failures;
};

/* Shared receive batch: filled and fully processed by one callback. */
struct dp_rx {
	struct mmsghdr msgs[DP_BATCH];
	struct iovec iov[DP_BATCH];
	struct sockaddr_storage addr[DP_BATCH];
	uint8_t buf[DP_BATCH][DP_UDP_BUF];
};

#define DP_MAX_LISTENERS 4

struct dnsproxy {
	struct loop *loop;
	const struct policy_matcher *matcher;
	bool block_doh_names;
	bool aaaa_nodata;
	dnsproxy_answer_cb hook;
	void *hook_arg;
	unsigned int timeout_ms;
	uint16_t port;

	struct dp_listener lst[DP_MAX_LISTENERS];
	int n_lst;

	struct dp_upstream ups[EGRESSD_MAX_UPSTREAMS];
	int n_ups;
	uint8_t order[EGRESSD_MAX_UPSTREAMS]; /* healthy first, cfg order */

	struct dp_query **slots;
	uint32_t n_slots; /* allocated */
	struct dp_query *free_q;
	struct dp_query *fifo_head, *fifo_tail;
	struct loop_timer *tmo;
	struct dnswire_question scratch_q; /* when no slot is free */
	/* queries whose send failed, to be moved on after a flush */
	uint32_t *retry;
	uint32_t n_retry;

	struct dp_conn *conns;
	uint16_t *free_conns;
	unsigned int n_free_conns;
	uint16_t *dirty;
	unsigned int n_dirty;
	struct loop_timer *sweep;

	struct dp_rx *rx;

	struct dnsguard *guard;
	struct dp_query **ctab; /* coalescing: leaders by key hash */
	int lo_ifindex;
	uint64_t spoof_warned; /* loop ms of the last warning */
	uint64_t spoof_since; /* forged answers since that warning */

	uint8_t probe_msg[DNSWIRE_HDR_LEN + 255 + 4];
	size_t probe_len;
	struct dnswire_question probe_q;
	struct loop_timer *probe; /* re-probe unhealthy upstreams */
	struct loop_timer *probe_round; /* every upstream, every interval */
	struct loop_timer *probe_tmo; /* pending probes' deadline */
	unsigned int probe_timeout_ms, probe_interval_ms;
	int round_left, round_ok; /* probes of the round not yet done, ok */

	uint16_t rand[DP_RAND_N];
	unsigned int rand_pos;
	uint64_t xs; /* fallback PRNG state if getrandom is unavailable */

	struct dnsproxy_stats st;
};

static void dp_flush(struct dnsproxy *p);
static void dp_attempt(struct dnsproxy *p, struct dp_query *s);
static void dp_next(struct dnsproxy *p, struct dp_query *s);
static void dp_up_refused(struct dnsproxy *p, struct dp_upstream *up, int e);
static void dp_probe_done(struct dp_upstream *up, bool ok, const char *why);
static void dp_conn_close(struct dp_conn *c);
static void dp_conn_write(struct dp_conn *c);
static void dp_conn_process(struct dp_conn *c);
static void dp_conn_update(struct dp_conn *c);

/* ---- small helpers ---------------------------------------------------- */

static uint16_t dp_rand16(struct dnsproxy *p)
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

static void dp_addr_text(const struct sockaddr_storage *ss, char *buf,
			 size_t len)
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

static bool dp_rcode_fails_over(int rcode)
{
	return rcode == DNSWIRE_RCODE_SERVFAIL ||
	       rcode == DNSWIRE_RCODE_REFUSED || rcode == DNSWIRE_RCODE_NOTIMP;
}

static void dp_set_sockbuf(int fd)
{
	int v = DP_SOCKBUF;

	/* Best effort: capped by net.core.[rw]mem_max. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* ---- upstream health -------------------------------------------------- */

/* Healthy upstreams first, each group in configuration order. */
static void dp_compute_order(struct dnsproxy *p)
{
	int n = 0;

	for (int i = 0; i < p->n_ups; i++)
		if (p->ups[i].healthy)
			p->order[n++] = (uint8_t)i;
	for (int i = 0; i < p->n_ups; i++)
		if (!p->ups[i].healthy)
			p->order[n++] = (uint8_t)i;
}

/* Log once per transition; why is NULL for a timeout. */
static void dp_up_mark(struct dp_upstream *up, bool healthy, const char *why)
{
	struct dnsproxy *p = up->p;

	if (up->healthy == healthy)
		return;
	up->healthy = healthy;
	dp_compute_order(p);
	if (healthy) {
		log_info("dns upstream %s answering again", up->cfg.text);
		return;
	}
	if (why)
		log_warnx("dns upstream %s unusable: %s; trying it last "
			  "until it answers",
			  up->cfg.text, why);
	else
		log_warnx("dns upstream %s not answering (no reply within "
			  "%u ms); trying it last until it answers again",
			  up->cfg.text, p->timeout_ms);
	if (!loop_timer_is_armed(p->probe))
		loop_timer_arm(p->probe, DP_PROBE_MS);
}

/* An answer came from up: it is alive, and so a pending probe is done. */
static void dp_up_alive(struct dp_upstream *up)
{
	if (up->probe_pending)
		dp_probe_done(up, true, NULL);
	else
		dp_up_mark(up, true, NULL);
}

/*
 * Is the upstream on this host's namespace: a loopback address, or one of
 * the namespace's own (the kernel then picks it as our source too)? Its
 * answers come in on lo, where anything of the namespace can forge them.
 */
static bool dp_up_is_local(int fd, const struct egressd_upstream *u)
{
	struct sockaddr_storage me;
	socklen_t sl = sizeof(me);

	if (u->addr.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)&u->addr;

		if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
			return true;
		if (getsockname(fd, (struct sockaddr *)&me, &sl) < 0)
			return false;
		return me.ss_family == AF_INET &&
		       ((struct sockaddr_in *)&me)->sin_addr.s_addr ==
			       a->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *a = (const void *)&u->addr;

		if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) &&
		     a->sin6_addr.s6_addr[12] == 127))
			return true;
		if (getsockname(fd, (struct sockaddr *)&me, &sl) < 0)
			return false;
		return me.ss_family == AF_INET6 &&
		       !memcmp(&((struct sockaddr_in6 *)&me)->sin6_addr,
			       &a->sin6_addr, sizeof(a->sin6_addr));
	}
}

/*
 * A remote upstream's answers come in on the interface it is routed
 * through, never on lo. Whatever does arrive on lo was sent by a process
 * of this namespace: a raw socket to its own address or a packet socket
 * on lo, with the upstream's address as source (IP_PKTINFO cannot tell:
 * for a packet looped to a local address it reports the interface that
 * owns the address). The kernel knows the device the skb came in on, so
 * a socket filter looks: such datagrams are cut to their UDP header
 * (an empty datagram, which dp_up_cb counts as forged; one whose
 * checksum no longer matches is dropped by the kernel). keep 0 (the TCP
 * retry sockets) drops them.
 */
static int dp_up_filter(int fd, int lo_ifindex, uint32_t keep)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_IFINDEX),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)lo_ifindex, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, keep),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
	};
	struct sock_fprog prog = {
		.len = sizeof(code) / sizeof(code[0]),
		.filter = code,
	};

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog,
		       sizeof(prog)) < 0)
		return -errno;
	return 0;
}

static int dp_up_connect(struct dp_upstream *up)
{
	int fd, err;

	fd = socket(up->cfg.addr.ss_family,
		    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* egressd's own: exempt from the redirect and the filter (BPF) */
	selfsock_note(fd);
	if (connect(fd, (const struct sockaddr *)&up->cfg.addr,
		    up->cfg.addrlen) < 0)
		goto err;
	up->local = dp_up_is_local(fd, &up->cfg);
	err = up->local ? 0 : dp_up_filter(fd, up->p->lo_ifindex, 8);
	if (err) {
		selfsock_close(fd);
		return err;
	}
	dp_set_sockbuf(fd);
	return fd;
err:
	err = -errno;
	selfsock_close(fd);
	return err;
}

static void dp_up_cb(struct loop *loop, int fd, uint32_t events, void *arg);

static int dp_up_open(struct dp_upstream *up)
{
	int fd, err;

	fd = dp_up_connect(up);
	if (fd < 0)
		return fd;
	err = loop_add_fd(up->p->loop, fd, EPOLLIN, dp_up_cb, up);
	if (err) {
		selfsock_close(fd);
		return err;
	}
	up->fd = fd;
	return 0;
}

/* ---- query slots, ids and the timeout FIFO ---------------------------- */

static struct dp_query *dp_slot_get(struct dnsproxy *p)
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

static void dp_slot_put(struct dnsproxy *p, struct dp_query *s)
{
	s->state = DP_Q_FREE;
	s->prev = NULL;
	s->next = p->free_q;
	p->free_q = s;
}

static int dp_id_alloc(struct dnsproxy *p, struct dp_upstream *up,
		       struct dp_query *s)
{
	uint16_t id = 0;
	int i;

	/* At most 1 in 8 ids is taken: random probing ends fast. */
	for (i = 0; i < 64; i++) {
		id = dp_rand16(p);
		if (!up->idmap[id] && !(up->probe_pending && id == up->probe_id))
			break;
	}
	if (i == 64) {
		for (i = 0; i < 65536 && (up->idmap[id] ||
					  (up->probe_pending &&
					   id == up->probe_id));
		     i++)
			id++;
		if (up->idmap[id] || (up->probe_pending && id == up->probe_id))
			return -EBUSY;
	}
	up->idmap[id] = (uint16_t)(s->idx + 1);
	s->up_id = id;
	s->has_id = true;
	return 0;
}

static void dp_id_release(struct dnsproxy *p, struct dp_query *s)
{
	if (!s->has_id)
		return;
	p->ups[s->order[s->attempt]].idmap[s->up_id] = 0;
	s->has_id = false;
}

static void dp_fifo_del(struct dnsproxy *p, struct dp_query *s)
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
	0.025, 0.05, 0.1, 0.25, 0.5, 1,
};

/* Microseconds, monotonic: the loop's millisecond clock is too coarse
 * for the round trips the histogram's first buckets are for. */
static uint64_t dp_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One upstream round trip (since s->sent_us) into the histogram. */
static void dp_rtt_record(struct dnsproxy *p, const struct dp_query *s)
{
	uint64_t now = dp_clock_us();
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
static void dp_fifo_push(struct dnsproxy *p, struct dp_query *s)
{
	uint64_t now = loop_now_ms(p->loop);

	s->deadline = now + p->timeout_ms;
	s->sent_us = dp_clock_us();
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

static void dp_tcp_close(struct dnsproxy *p, struct dp_query *s)
{
	if (s->tfd >= 0) {
		loop_del_fd(p->loop, s->tfd);
		selfsock_close(s->tfd);
		s->tfd = -1;
	}
	free(s->tbuf);
	s->tbuf = NULL;
	s->tlen = s->toff = 0;
}

static struct dp_conn *dp_conn_of(struct dnsproxy *p, uint16_t idx,
				  uint32_t gen)
{
	struct dp_conn *c = &p->conns[idx];

	return (c->fd >= 0 && c->gen == gen) ? c : NULL;
}

static void dp_conn_mark_dirty(struct dnsproxy *p, struct dp_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	p->dirty[p->n_dirty++] = c->idx;
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

static void dp_conn_append(struct dp_conn *c, const uint8_t *data, size_t len)
{
	size_t need;

	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	need = c->wlen + 2 + len;
	if (need > c->wcap) {
		size_t ncap = c->wcap ? c->wcap : 4096;
		uint8_t *nb;

		if (c->woff) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
			need = c->wlen + 2 + len;
		}
		while (ncap < need)
			ncap *= 2;
		if (ncap > c->wcap) {
			nb = realloc(c->wbuf, ncap);
			if (!nb) {
				dp_conn_close(c);
				return;
			}
			c->wbuf = nb;
			c->wcap = ncap;
		}
	}
	c->wbuf[c->wlen] = (uint8_t)(len >> 8);
	c->wbuf[c->wlen + 1] = (uint8_t)len;
	memcpy(c->wbuf + c->wlen + 2, data, len);
	c->wlen += 2 + len;
}

/*
 * Queue a reply. A UDP reply of at most DP_UDP_BUF bytes (any UDP answer)
 * is copied; a larger one is referenced and must stay valid until the end
 * of the current callback (dp_flush).
 */
static void dp_send_client(struct dnsproxy *p, const struct dp_client *cl,
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

static void dp_query_client(const struct dp_query *s, struct dp_client *cl)
{
	cl->tcp = s->from_tcp;
	cl->listener = s->listener;
	cl->addr = &s->client;
	cl->addrlen = s->clientlen;
	cl->conn = s->conn;
	cl->gen = s->conn_gen;
}

static size_t dp_qlen(const struct dp_query *s)
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
static void dp_fail_reply(struct dnsproxy *p, struct dp_query *s, int rcode)
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
static void dp_send_answer(struct dnsproxy *p, struct dp_query *s, uint8_t *msg,
			   size_t len)
{
	struct dp_client cl;

	dnswire_set_id(msg, s->client_id);
	memcpy(msg + DNSWIRE_HDR_LEN, s->qorig, dp_qlen(s));
	dp_query_client(s, &cl);
	dp_send_client(p, &cl, msg, len);
	dp_query_finish(p, s);
}

/* ---- what an answer may carry (docs/dns-proxy.md) --------------------- */

struct dp_guard_ctx {
	struct dnsproxy *p;
	struct dp_query *s;
	uint64_t now;
	unsigned int stripped;
};

static void dp_query_who(struct dnsproxy *p, const struct dp_query *s,
			 char *buf, size_t len);

/* A CNAME/DNAME target that a deny rule or the DoH/DoT list refuses. */
static int dp_chain_cb(void *arg, const char *name, size_t len)
{
	struct dp_guard_ctx *g = arg;
	struct dnsproxy *p = g->p;
	struct policy_match m = { .action = POLICY_DENY };
	enum events_reason reason;
	char who[INET6_ADDRSTRLEN + 8];

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
	dp_query_who(p, g->s, who, sizeof(who));
	events_dns_violation(reason, name, g->s->q.qtype, "nxdomain", who);
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
	char who[INET6_ADDRSTRLEN + 8];
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
		dp_query_who(p, s, who, sizeof(who));
		events_dns_violation(EVENTS_REASON_REBINDING, s->q.name,
				     s->q.qtype, "stripped", who);
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
static void dp_deliver(struct dnsproxy *p, struct dp_query *s, uint8_t *msg,
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
static bool dp_coalesce(struct dnsproxy *p, struct dp_query *s)
{
	uint32_t h = 2166136261u;
	struct dp_query **head, *l;

	for (size_t i = 0; i < s->q.name_len; i++)
		h = (h ^ (uint8_t)s->q.name[i]) * 16777619u;
	h = (h ^ s->q.qtype) * 16777619u;
	h = (h ^ dp_key_bits(s)) * 16777619u;
	s->hash = h;
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

/* ---- forwarding ------------------------------------------------------- */

static void dp_up_flush(struct dnsproxy *p, struct dp_upstream *up);

static void dp_up_queue(struct dp_upstream *up, struct dp_query *s)
{
	struct mmsghdr *m;
	unsigned int i;

	if (up->ntx == DP_BATCH)
		dp_up_flush(up->p, up); /* failures wait in p->retry */
	i = up->ntx++;
	m = &up->txmsgs[i];
	memset(m, 0, sizeof(*m));
	up->txiov[i].iov_base = s->msg;
	up->txiov[i].iov_len = s->len;
	m->msg_hdr.msg_iov = &up->txiov[i];
	m->msg_hdr.msg_iovlen = 1;
	up->txslot[i] = s->idx;
}

/*
 * 0x20: the question goes out with random letter case, which a forged
 * answer has to echo exactly (dp_up_answer). Not for an upstream that was
 * seen to lose the case, nor after a mismatch for this query.
 */
static void dp_case(struct dnsproxy *p, struct dp_upstream *up,
		    struct dp_query *s)
{
	uint8_t rnd[DP_CAPS_RND];

	memcpy(s->msg + DNSWIRE_HDR_LEN, s->qorig, dp_qlen(s));
	s->caps = false;
	if (s->nocaps || loop_now_ms(p->loop) < up->caps_off_until)
		return;
	for (int i = 0; i < DP_CAPS_RND; i += 2) {
		uint16_t v = dp_rand16(p);

		rnd[i] = (uint8_t)v;
		rnd[i + 1] = (uint8_t)(v >> 8);
	}
	s->caps = dnswire_0x20(s->msg, s->q.question_end, rnd, sizeof(rnd)) > 0;
}

/*
 * Send s to the upstream order[attempt], or to the next one that has a
 * socket; SERVFAIL when none is left.
 */
static void dp_attempt(struct dnsproxy *p, struct dp_query *s)
{
	while (s->attempt < s->n_order) {
		struct dp_upstream *up = &p->ups[s->order[s->attempt]];

		if (up->fd < 0 || dp_id_alloc(p, up, s) < 0) {
			up->errors++;
			s->attempt++;
			continue;
		}
		s->state = DP_Q_UDP;
		dp_case(p, up, s);
		dnswire_set_id(s->msg, s->up_id);
		up->queries++;
		dp_up_queue(up, s);
		dp_fifo_push(p, s);
		return;
	}
	dp_fail_reply(p, s, DNSWIRE_RCODE_SERVFAIL);
}

/* The current attempt failed: forget it and try the next upstream. */
static void dp_next(struct dnsproxy *p, struct dp_query *s)
{
	dp_id_release(p, s);
	dp_fifo_del(p, s);
	dp_tcp_close(p, s);
	s->attempt++;
	dp_attempt(p, s);
}

static void dp_up_flush(struct dnsproxy *p, struct dp_upstream *up)
{
	unsigned int sent = 0;
	bool retried = false;

	while (sent < up->ntx) {
		int r = sendmmsg(up->fd, up->txmsgs + sent, up->ntx - sent, 0);

		if (r >= 0) {
			sent += (unsigned int)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		/* A pending ICMP error is reported once: retry once, and
		 * let dp_flush move what waits on this upstream on. */
		if (errno == ECONNREFUSED && !retried) {
			retried = true;
			up->refused = true;
			continue;
		}
		up->errors++;
		p->slots[up->txslot[sent]]->send_failed = true;
		p->retry[p->n_retry++] = up->txslot[sent];
		sent++;
	}
	up->ntx = 0;
}

/*
 * Called at the end of every callback: send what the callback queued.
 * Queries whose send failed move on to the next upstream (which queues
 * more), finished queries may let a TCP client's buffered queries run,
 * so loop until nothing is pending. UDP replies go last: they may point
 * into the receive batch, which is reused only after this returns.
 */
static void dp_flush(struct dnsproxy *p)
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
			dp_conn_process(c);
			if (c->fd >= 0)
				dp_conn_write(c);
			if (c->fd >= 0)
				dp_conn_update(c);
			more = true;
		}
	} while (more);
	for (int i = 0; i < p->n_lst; i++)
		if (!p->lst[i].tcp && p->lst[i].tx->n)
			dp_tx_flush(&p->lst[i]);
}

/* ---- handling one client query ---------------------------------------- */

static void dp_client_text(struct dnsproxy *p, const struct dp_client *cl,
			   char *buf, size_t len)
{
	if (cl->tcp)
		dp_addr_text(&p->conns[cl->conn].peer, buf, len);
	else
		dp_addr_text(cl->addr, buf, len);
}

static void dp_query_who(struct dnsproxy *p, const struct dp_query *s,
			 char *buf, size_t len)
{
	struct dp_client cl;

	dp_query_client(s, &cl);
	dp_client_text(p, &cl, buf, len);
}

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

static void dp_handle_query(struct dnsproxy *p, const uint8_t *msg, size_t len,
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
		char who[INET6_ADDRSTRLEN + 8];

		p->st.denied++;
		dp_reply_rcode(p, cl, msg, len, q, DNSWIRE_RCODE_NOERROR);
		dp_client_text(p, cl, who, sizeof(who));
		events_dns_violation(EVENTS_REASON_IPV6_DISABLED, q->name,
				     q->qtype, "nodata", who);
		goto drop;
	}
	if (m.action != POLICY_ALLOW) {
		char who[INET6_ADDRSTRLEN + 8];

		p->st.denied++;
		dp_reply_rcode(p, cl, msg, len, q, DNSWIRE_RCODE_NXDOMAIN);
		dp_client_text(p, cl, who, sizeof(who));
		events_dns_violation(reason, q->name, q->qtype, "nxdomain",
				     who);
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

/* ---- UDP listener ----------------------------------------------------- */

/*
 * want_addr: the sender's address is needed (clients). A connected
 * upstream socket does without: then the kernel also skips the cgroup
 * recvmsg hooks (the BPF DNS redirect's), which cost every datagram.
 */
static int dp_recv_batch(struct dnsproxy *p, int fd, bool want_addr)
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

/* ---- upstream answers ------------------------------------------------- */

/*
 * dnswire may refuse a truncated answer whose records are cut short;
 * accept it as a TC answer if its header and question match ours
 * byte for byte (names case-insensitively).
 */
static bool dp_tc_question_matches(const struct dp_query *s, const uint8_t *msg,
				   size_t len)
{
	size_t qe = s->q.question_end;

	if (len < qe || !(msg[2] & (DNSWIRE_F_QR >> 8)) ||
	    !(msg[2] & (DNSWIRE_F_TC >> 8)) || msg[4] != 0 || msg[5] != 1)
		return false;
	for (size_t i = DNSWIRE_HDR_LEN; i < qe; i++) {
		uint8_t a = msg[i], b = s->msg[i];

		if (a >= 'A' && a <= 'Z')
			a += 'a' - 'A';
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (a != b)
			return false;
	}
	return true;
}

static int dp_tcp_start(struct dnsproxy *p, struct dp_query *s);

/*
 * The answer has s's id and question, but not the letter case s went out
 * with: forged (a forger does not know the case), or an upstream that
 * does not keep it. Ask again without 0x20 (a fresh id, the same
 * upstream); an upstream that keeps losing the case gets no 0x20 for a
 * while. An upstream that keeps it resets the count with every answer,
 * so a forger has to guess DP_CAPS_BAD_MAX ids in a row to turn it off.
 */
static void dp_caps_mismatch(struct dnsproxy *p, struct dp_upstream *up,
			     struct dp_query *s)
{
	uint64_t now = loop_now_ms(p->loop);

	p->st.bad_answers++;
	if (++up->caps_bad >= DP_CAPS_BAD_MAX && now >= up->caps_off_until) {
		up->caps_bad = 0;
		up->caps_off_until = now + DP_CAPS_OFF_MS;
		log_warnx("dns upstream %s does not keep the letter case of "
			  "questions: 0x20 off for it for %d minutes",
			  up->cfg.text, DP_CAPS_OFF_MS / 60000);
	}
	if (s->nocaps)
		return; /* keep waiting for a matching answer */
	s->nocaps = true;
	dp_id_release(p, s);
	dp_fifo_del(p, s);
	dp_attempt(p, s);
}

static void dp_up_answer(struct dnsproxy *p, struct dp_upstream *up,
			 uint8_t *msg, size_t len, bool trunc)
{
	struct dnswire_response r;
	struct dp_query *s;
	uint16_t id, sidx;
	int rc;

	if (len < DNSWIRE_HDR_LEN) {
		p->st.bad_answers++;
		return;
	}
	id = dnswire_get_id(msg);
	sidx = up->idmap[id];
	if (!sidx) {
		if (up->probe_pending && id == up->probe_id &&
		    dnswire_parse_response(msg, len, &p->probe_q, &r) == 0) {
			/* Any answer, SERVFAIL included, as the peer. */
			dp_probe_done(up, true, NULL);
			return;
		}
		/* Late (after a timeout) or forged. */
		p->st.bad_answers++;
		return;
	}
	s = p->slots[sidx - 1];
	if (trunc && len >= s->q.question_end) {
		/* Larger than our buffer: keep header and question and
		 * mark it truncated, so the client retries over TCP. */
		len = s->q.question_end;
		msg[2] |= DNSWIRE_F_TC >> 8;
		memset(msg + 6, 0, 6);
	}
	rc = dnswire_parse_response(msg, len, &s->q, &r);
	if (rc < 0) {
		if (!dp_tc_question_matches(s, msg, len)) {
			/* Wrong question for this id: spoofing attempt or a
			 * confused upstream. Keep waiting for the real one. */
			p->st.bad_answers++;
			return;
		}
		memset(&r, 0, sizeof(r));
		r.id = id;
		r.flags = dnswire_get_id(msg + 2);
		r.rcode = r.flags & DNSWIRE_F_RCODE_MASK;
		r.tc = true;
		r.min_ttl = UINT32_MAX;
	}
	if (s->caps && memcmp(msg + DNSWIRE_HDR_LEN, s->msg + DNSWIRE_HDR_LEN,
			      dp_qlen(s))) {
		dp_caps_mismatch(p, up, s);
		return;
	}
	if (s->caps)
		up->caps_bad = 0;
	dp_up_alive(up);
	dp_rtt_record(p, s);
	if (dp_rcode_fails_over(r.rcode)) {
		up->errors++;
		dp_next(p, s);
		return;
	}
	if (r.tc && s->from_tcp) {
		dp_id_release(p, s);
		dp_fifo_del(p, s);
		p->st.tcp_retries++;
		if (dp_tcp_start(p, s) < 0) {
			up->errors++;
			s->attempt++;
			dp_attempt(p, s);
		}
		return;
	}
	dp_deliver(p, s, msg, len, &r);
}

/*
 * An answer "from" a remote upstream came in on lo (dp_up_filter left it
 * empty): only a process of this namespace can have sent it. Dropped
 * unread, whatever id it guesses.
 */
static void dp_forged(struct dnsproxy *p, struct dp_upstream *up)
{
	uint64_t now = loop_now_ms(p->loop);

	p->st.bad_answers++;
	p->st.forged++;
	p->spoof_since++;
	if (p->spoof_warned && now - p->spoof_warned < DP_SPOOF_WARN_MS)
		return;
	log_warnx("dns: dropped %llu answer(s) claiming to come from upstream "
		  "%s that arrived on the loopback interface: forged by a "
		  "process of this namespace",
		  (unsigned long long)p->spoof_since, up->cfg.text);
	p->spoof_warned = now;
	p->spoof_since = 0;
}

/*
 * An ICMP error for a datagram to this upstream: on a connected socket
 * the kernel reports it to the next receive (port unreachable:
 * ECONNREFUSED; host or network unreachable). Nothing answers there now.
 */
static bool dp_is_icmp_error(int e)
{
	return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH ||
	       e == EHOSTDOWN || e == ENONET;
}

static void dp_up_read(struct dnsproxy *p, struct dp_upstream *up)
{
	int n;

	for (int round = 0; round < 4; round++) {
		n = dp_recv_batch(p, up->fd, false);
		if (n < 0 && dp_is_icmp_error(errno)) {
			dp_up_refused(p, up, errno);
			dp_flush(p);
			continue; /* the error is consumed: read on */
		}
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			struct mmsghdr *m = &p->rx->msgs[i];

			if (!up->local && m->msg_len == 0) {
				dp_forged(p, up);
				continue;
			}
			dp_up_answer(p, up, p->rx->buf[i], m->msg_len,
				     m->msg_hdr.msg_flags & MSG_TRUNC);
		}
		/* Replies may point into p->rx: send before reusing it. */
		dp_flush(p);
		if (n < DP_BATCH)
			break;
	}
}

static void dp_up_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct dp_upstream *up = arg;

	if (up->fd == fd)
		dp_up_read(up->p, up);
}

/* ---- TCP retry to the upstream ---------------------------------------- */

static void dp_tcpup_cb(struct loop *loop, int fd, uint32_t events, void *arg);

static int dp_tcp_start(struct dnsproxy *p, struct dp_query *s)
{
	struct dp_upstream *up = &p->ups[s->order[s->attempt]];
	int fd, err;

	fd = socket(up->cfg.addr.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	selfsock_note(fd);
	/* Segments injected on lo (dp_up_filter) never reach the stream. */
	err = up->local ? 0 : dp_up_filter(fd, p->lo_ifindex, 0);
	if (err)
		goto err_close;
	if (connect(fd, (const struct sockaddr *)&up->cfg.addr,
		    up->cfg.addrlen) < 0 &&
	    errno != EINPROGRESS) {
		err = -errno;
		goto err_close;
	}
	s->tbuf = malloc(2 + DP_TCP_MSG_MAX);
	if (!s->tbuf) {
		err = -ENOMEM;
		goto err_close;
	}
	/* A dedicated connection: a fresh id still guards against a
	 * confused upstream answering another query. */
	s->up_id = dp_rand16(p);
	dnswire_set_id(s->msg, s->up_id);
	s->tbuf[0] = (uint8_t)(s->len >> 8);
	s->tbuf[1] = (uint8_t)s->len;
	memcpy(s->tbuf + 2, s->msg, s->len);
	s->tlen = 2 + s->len;
	s->toff = 0;
	s->twriting = true;
	err = loop_add_fd(p->loop, fd, EPOLLOUT, dp_tcpup_cb, s);
	if (err)
		goto err_free;
	s->tfd = fd;
	s->state = DP_Q_TCP;
	dp_fifo_push(p, s);
	return 0;
err_free:
	free(s->tbuf);
	s->tbuf = NULL;
err_close:
	selfsock_close(fd);
	return err;
}

static void dp_tcpup_read(struct dnsproxy *p, struct dp_query *s)
{
	struct dp_upstream *up = &p->ups[s->order[s->attempt]];
	struct dnswire_response r;
	size_t need;
	ssize_t n;
	int rc;

	n = read(s->tfd, s->tbuf + s->tlen, 2 + DP_TCP_MSG_MAX - s->tlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		goto fail;
	s->tlen += (size_t)n;
	if (s->tlen < 2)
		return;
	need = 2 + ((size_t)s->tbuf[0] << 8 | s->tbuf[1]);
	if (need < 2 + DNSWIRE_HDR_LEN)
		goto fail;
	if (s->tlen < need)
		return;
	if (dnswire_get_id(s->tbuf + 2) != s->up_id)
		goto fail;
	rc = dnswire_parse_response(s->tbuf + 2, need - 2, &s->q, &r);
	if (rc < 0)
		goto fail;
	dp_up_alive(up);
	if (dp_rcode_fails_over(r.rcode)) {
		up->errors++;
		dp_next(p, s);
		return;
	}
	/* dp_deliver copies into the client's buffer before tbuf goes. */
	dp_deliver(p, s, s->tbuf + 2, need - 2, &r);
	return;
fail:
	up->errors++;
	dp_next(p, s);
}

static void dp_tcpup_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct dp_query *s = arg;
	struct dnsproxy *p = s->p;
	struct dp_upstream *up = &p->ups[s->order[s->attempt]];
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	ssize_t n;

	if (s->state != DP_Q_TCP || s->tfd != fd)
		return;
	if (!s->twriting) {
		dp_tcpup_read(p, s);
		goto out;
	}
	if ((events & (EPOLLERR | EPOLLHUP)) ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
		goto fail;
	n = send(fd, s->tbuf + s->toff, s->tlen - s->toff, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			goto out;
		goto fail;
	}
	s->toff += (size_t)n;
	if (s->toff == s->tlen) {
		s->twriting = false;
		s->tlen = 0;
		if (loop_mod_fd(p->loop, fd, EPOLLIN) < 0)
			goto fail;
	}
	goto out;
fail:
	up->errors++;
	dp_next(p, s);
out:
	dp_flush(p);
}

/* ---- timeouts --------------------------------------------------------- */

static void dp_timeout_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;
	uint64_t now = loop_clock_ms();
	struct dp_query *s;

	while ((s = p->fifo_head) && s->deadline <= now) {
		struct dp_upstream *up = &p->ups[s->order[s->attempt]];

		if (s->state == DP_Q_UDP) {
			up->timeouts++;
			dp_up_mark(up, false, NULL);
		} else {
			/* UDP answered, so the upstream is up; its TCP is
			 * not. Count an error, keep it healthy. */
			up->errors++;
		}
		dp_next(p, s);
	}
	/* dp_fifo_push may have armed t for a full timeout: the head
	 * can be due sooner. */
	loop_timer_disarm(t);
	if (p->fifo_head) {
		uint64_t d = p->fifo_head->deadline;

		loop_timer_arm(t, d > now ? d - now : 1);
	}
	dp_flush(p);
}

/* ---- health probes ---------------------------------------------------- */

/*
 * Move the queries waiting on up to their next upstream now, instead of
 * letting each wait out its timeout. all: every one of them (the
 * upstream refused: nothing listens); else only those that have a next
 * upstream to go to (a probe went unanswered: likely dead, but the last
 * chance of a query is not cut short on a guess).
 */
static void dp_up_abandon(struct dnsproxy *p, struct dp_upstream *up,
			  bool all)
{
	struct dp_query *s, *next;

	/* Send what is queued first: a query in up's batch that moves on
	 * must not go out again under its next upstream's id. */
	if (up->ntx)
		dp_up_flush(p, up);
	for (s = p->fifo_head; s; s = next) {
		next = s->next;
		if (s->state != DP_Q_UDP || s->order[s->attempt] != up->idx)
			continue;
		if (!all && s->attempt + 1 >= s->n_order)
			continue;
		s->send_failed = false;
		dp_next(p, s);
	}
}

/* An ICMP error (e) for up: fail over at once, do not wait it out. */
static void dp_up_refused(struct dnsproxy *p, struct dp_upstream *up, int e)
{
	up->errors++;
	if (up->probe_pending) {
		dp_probe_done(up, false, strerror(e));
	} else {
		dp_up_mark(up, false, strerror(e));
	}
	dp_up_abandon(p, up, true);
}

/*
 * A round (every upstream probed, at start and every interval) is over:
 * the peer's warning when nothing answered. Forwarding still tries every
 * upstream then, in the configured order.
 */
static void dp_round_account(struct dnsproxy *p, bool ok)
{
	if (ok)
		p->round_ok++;
	if (--p->round_left > 0)
		return;
	if (!p->round_ok)
		log_warnx("[dns] all upstream probes failed; using full "
			  "upstream list for forwarding");
}

/*
 * The pending probe of up was answered (ok) or failed (why). A failed
 * probe of a round logs the peer's line ("[dns] upstream probe ADDR
 * failed: …") and marks the upstream unhealthy (tried last); queries
 * waiting on it move on if they can.
 */
static void dp_probe_done(struct dp_upstream *up, bool ok, const char *why)
{
	struct dnsproxy *p = up->p;
	bool round = up->probe_round;

	up->probe_pending = false;
	up->probe_round = false;
	if (ok) {
		dp_up_mark(up, true, NULL);
	} else {
		char buf[160];

		up->probe_failures++;
		if (round)
			log_errorx("[dns] upstream probe %s failed: %s",
				   up->cfg.text, why);
		snprintf(buf, sizeof(buf), "health probe failed: %s", why);
		dp_up_mark(up, false, buf);
		dp_up_abandon(p, up, false);
	}
	if (round)
		dp_round_account(p, ok);
}

/* Send up the probe question; a failure to send fails the probe. */
static void dp_probe_send(struct dnsproxy *p, struct dp_upstream *up,
			  bool round)
{
	uint16_t id;
	int rc, tries = 0;

	if (up->probe_pending) {
		/* Already asked (the unhealthy re-probe): it counts. */
		up->probe_round |= round;
		return;
	}
	up->probe_pending = true;
	up->probe_round = round;
	up->probes++;
	if (up->fd < 0) {
		rc = dp_up_open(up);
		if (rc < 0) {
			dp_probe_done(up, false, strerror(-rc));
			return;
		}
	}
	do
		id = dp_rand16(p);
	while (up->idmap[id]);
	up->probe_id = id;
	dnswire_set_id(p->probe_msg, id);
	do {
		rc = send(up->fd, p->probe_msg, p->probe_len, 0) < 0 ? errno : 0;
		/* A pending ICMP error is an earlier datagram's: once more. */
	} while (rc == ECONNREFUSED && !tries++);
	if (rc) {
		up->errors++;
		dp_probe_done(up, false, strerror(rc));
		return;
	}
	up->probe_sent = loop_now_ms(p->loop);
	if (!loop_timer_is_armed(p->probe_tmo))
		loop_timer_arm(p->probe_tmo, p->probe_timeout_ms);
}

/* Probes with no answer by their deadline fail ("i/o timeout"). */
static void dp_probe_tmo_cb(struct loop *loop, struct loop_timer *t,
			    void *arg)
{
	struct dnsproxy *p = arg;
	uint64_t now = loop_now_ms(loop), next = 0;
	char why[64];

	snprintf(why, sizeof(why), "i/o timeout (no answer within %u ms)",
		 p->probe_timeout_ms);
	for (int i = 0; i < p->n_ups; i++) {
		struct dp_upstream *up = &p->ups[i];

		if (!up->probe_pending)
			continue;
		if (now - up->probe_sent >= p->probe_timeout_ms && up->fd >= 0)
			dp_up_read(p, up); /* an answer may be queued */
		if (!up->probe_pending)
			continue;
		if (now - up->probe_sent >= p->probe_timeout_ms) {
			dp_probe_done(up, false, why);
			continue;
		}
		if (!next || up->probe_sent + p->probe_timeout_ms < next)
			next = up->probe_sent + p->probe_timeout_ms;
	}
	if (next)
		loop_timer_arm(t, next > now ? next - now : 1);
	dp_flush(p);
}

/*
 * Every DP_PROBE_MS while an upstream is unhealthy, probe it again (no
 * log line per failure); any answer marks it healthy. Without this an
 * upstream tried last would wait a whole round to recover.
 */
static void dp_probe_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;
	bool again = false;

	for (int i = 0; i < p->n_ups; i++) {
		if (p->ups[i].healthy)
			continue;
		again = true;
		dp_probe_send(p, &p->ups[i], false);
	}
	if (again)
		loop_timer_arm(t, DP_PROBE_MS);
	dp_flush(p);
}

/*
 * A round, as the peer's: at start and every probe interval, every
 * upstream is asked the probe question; those that do not answer are
 * tried last until they do. Goes through the loop like everything else:
 * a query never waits for a probe.
 */
static void dp_round_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;

	if (p->round_left <= 0) {
		/* The previous round is over (an upstream answers late at
		 * worst after its timeout, always below the interval). */
		p->round_left = p->n_ups;
		p->round_ok = 0;
		for (int i = 0; i < p->n_ups; i++)
			dp_probe_send(p, &p->ups[i], true);
	}
	loop_timer_arm(t, p->probe_interval_ms);
	dp_flush(p);
}

/* ---- TCP clients ------------------------------------------------------ */

static void dp_conn_close(struct dp_conn *c)
{
	struct dnsproxy *p = c->p;

	if (c->fd < 0)
		return;
	loop_del_fd(p->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	c->gen++; /* answers still in flight will find no connection */
	c->inflight = 0;
	free(c->rbuf);
	free(c->wbuf);
	c->rbuf = c->wbuf = NULL;
	c->rlen = c->rcap = c->woff = c->wlen = c->wcap = 0;
	p->free_conns[p->n_free_conns++] = c->idx;
	p->st.tcp_conns--;
}

static bool dp_conn_has_room(const struct dp_conn *c)
{
	return c->inflight < DP_CONN_MAX_QUERIES &&
	       c->wlen - c->woff < DP_CONN_MAX_WBUF;
}

/* Answer every complete message in rbuf while the caps allow. */
static void dp_conn_process(struct dp_conn *c)
{
	struct dnsproxy *p = c->p;
	struct dp_client cl = { .tcp = true, .conn = c->idx, .gen = c->gen };
	size_t off = 0;

	while (c->fd >= 0 && c->rlen - off >= 2 && dp_conn_has_room(c)) {
		size_t mlen = (size_t)c->rbuf[off] << 8 | c->rbuf[off + 1];

		if (c->rlen - off < 2 + mlen)
			break;
		dp_handle_query(p, c->rbuf + off + 2, mlen, &cl);
		off += 2 + mlen;
	}
	if (c->fd < 0 || !off)
		return;
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
}

static void dp_conn_write(struct dp_conn *c)
{
	ssize_t n;

	while (c->woff < c->wlen) {
		n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
			 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				dp_conn_close(c);
			return;
		}
		c->woff += (size_t)n;
		c->last = loop_now_ms(c->p->loop);
	}
	c->woff = c->wlen = 0;
}

/* Close when done, else listen for what the connection can take now. */
static void dp_conn_update(struct dp_conn *c)
{
	uint32_t ev = 0;

	if (c->rd_closed && !c->inflight && c->woff == c->wlen) {
		dp_conn_close(c);
		return;
	}
	if (!c->rd_closed && dp_conn_has_room(c))
		ev |= EPOLLIN;
	if (c->woff < c->wlen)
		ev |= EPOLLOUT;
	if (ev != c->events) {
		if (loop_mod_fd(c->p->loop, c->fd, ev) < 0) {
			dp_conn_close(c);
			return;
		}
		c->events = ev;
	}
}

static void dp_conn_read(struct dp_conn *c)
{
	size_t want = DP_CONN_RBUF_MIN;
	ssize_t n;

	if (c->rlen >= 2)
		want = 2 + ((size_t)c->rbuf[0] << 8 | c->rbuf[1]);
	if (want < DP_CONN_RBUF_MIN)
		want = DP_CONN_RBUF_MIN;
	if (c->rcap < want) {
		uint8_t *nb = realloc(c->rbuf, want);

		if (!nb) {
			dp_conn_close(c);
			return;
		}
		c->rbuf = nb;
		c->rcap = want;
	}
	if (c->rlen == c->rcap || c->rd_closed) {
		/* Complete messages waiting for room, or EOF seen. */
		dp_conn_mark_dirty(c->p, c);
		return;
	}
	n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			dp_conn_close(c);
		return;
	}
	if (n == 0) {
		/* Half close: answer what is complete, then close. */
		c->rd_closed = true;
	}
	c->rlen += (size_t)n;
	c->last = loop_now_ms(c->p->loop);
	dp_conn_mark_dirty(c->p, c);
}

static void dp_conn_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct dp_conn *c = arg;
	struct dnsproxy *p = c->p;

	if (c->fd != fd)
		return;
	if (events & (EPOLLERR | EPOLLHUP)) {
		/* Reset, or gone both ways: nobody to answer. */
		dp_conn_close(c);
		return;
	}
	if (events & EPOLLOUT)
		dp_conn_mark_dirty(p, c);
	if (events & EPOLLIN)
		dp_conn_read(c);
	dp_flush(p);
}

static void dp_sweep_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;
	uint64_t now = loop_now_ms(loop);

	for (int i = 0; i < DP_MAX_CONNS; i++) {
		struct dp_conn *c = &p->conns[i];

		if (c->fd >= 0 && !c->inflight &&
		    now - c->last >= DP_CONN_IDLE_MS)
			dp_conn_close(c);
	}
	if (p->st.tcp_conns)
		loop_timer_arm(t, DP_SWEEP_MS);
}

static void dp_accept_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct dp_listener *l = arg;
	struct dnsproxy *p = l->p;

	for (int i = 0; i < 16; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct dp_conn *c;
		int cfd;

		cfd = accept4(fd, (struct sockaddr *)&ss, &sl,
			      SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			break;
		if (!p->n_free_conns) {
			/* Full: refuse rather than let the backlog spin. */
			p->st.tcp_refused++;
			close(cfd);
			continue;
		}
		c = &p->conns[p->free_conns[--p->n_free_conns]];
		if (loop_add_fd(loop, cfd, EPOLLIN, dp_conn_cb, c) < 0) {
			p->free_conns[p->n_free_conns++] = c->idx;
			close(cfd);
			continue;
		}
		c->fd = cfd;
		c->events = EPOLLIN;
		c->rd_closed = false;
		c->inflight = 0;
		c->last = loop_now_ms(loop);
		memcpy(&c->peer, &ss, sl);
		c->peerlen = sl;
		p->st.tcp_conns++;
	}
	if (p->st.tcp_conns && !loop_timer_is_armed(p->sweep))
		loop_timer_arm(p->sweep, DP_SWEEP_MS);
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

/*
 * The probe question, as the peer's: ". NS" for "" (the root: any
 * resolver answers it without going out), else "NAME A"; RD set.
 */
static int dp_build_probe(struct dnsproxy *p, const char *name)
{
	uint8_t *b = p->probe_msg;
	size_t n = DNSWIRE_HDR_LEN, nl = strlen(name);
	uint16_t qtype = nl ? DNSWIRE_TYPE_A : DNSWIRE_TYPE_NS;

	if (nl > 253)
		return -EINVAL;
	memset(b, 0, DNSWIRE_HDR_LEN);
	b[2] = 0x01; /* RD */
	b[5] = 1;
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		if (!l || l > 63)
			return -EINVAL;
		b[n++] = (uint8_t)l;
		memcpy(b + n, name, l);
		n += l;
		name += l + (dot ? 1 : 0);
	}
	b[n++] = 0;
	b[n++] = 0;
	b[n++] = (uint8_t)qtype;
	b[n++] = 0;
	b[n++] = 1; /* IN */
	p->probe_len = n;
	return dnswire_parse_query(b, n, &p->probe_q) < 0 ? -EINVAL : 0;
}

int dnsproxy_new(struct loop *loop, const struct egressd_config *cfg,
		 struct dnsproxy **out, char *err, size_t errlen)
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
	p->xs = loop_clock_ms() * 0x9e3779b97f4a7c15ULL + (uint64_t)getpid();
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
	p->guard = dnsguard_new(cfg->block_private_answers);
	if (!p->rx || !p->slots || !p->retry || !p->conns || !p->free_conns ||
	    !p->dirty || !p->tmo || !p->sweep || !p->probe ||
	    !p->probe_round || !p->probe_tmo || !p->ctab || !p->guard)
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
	return true;
}
