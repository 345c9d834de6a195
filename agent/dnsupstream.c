// SPDX-License-Identifier: GPL-2.0-only
/*
 * The DNS proxy's upstreams: forwarding and everything that waits on an
 * upstream. Each upstream has one connected UDP socket (its answers can
 * only come from its address and port; an ICMP error for it is judged
 * in dnsicmp.c). A query goes out with a fresh random id and random
 * letter case (0x20); the answer is matched back by that id and its
 * question, case included (answers that came in on lo from a remote
 * upstream never get that far: dp_up_filter), and handed to dp_deliver
 * (dnsdecide.c). Timeouts and SERVFAIL/REFUSED/NOTIMP move a query to
 * the next upstream; truncated answers for TCP clients are fetched again
 * over TCP. Which upstream is tried first, and the probes, are
 * dnsprobe.c's. All of it on the event loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dnsproxy_int.h"
#include "egressd/log.h"
#include "egressd/selfsock.h"
#include "egressd/util.h"

#define DP_CAPS_BAD_MAX 4 /* case mismatches in a row: 0x20 off */
#define DP_CAPS_OFF_MS (10 * 60 * 1000) /* then try 0x20 again */
#define DP_CAPS_RND 16 /* random bytes per 0x20 name (128 letters) */
#define DP_TCP_MSG_MAX 65535 /* largest DNS message over TCP */

static void dp_up_cb(struct loop *loop, int fd, uint32_t events, void *arg);
static int dp_tcp_start(struct dnsproxy *p, struct dp_query *s);
static void dp_tcpup_cb(struct loop *loop, int fd, uint32_t events, void *arg);

static bool dp_rcode_fails_over(int rcode)
{
	return rcode == DNSWIRE_RCODE_SERVFAIL ||
	       rcode == DNSWIRE_RCODE_REFUSED || rcode == DNSWIRE_RCODE_NOTIMP;
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
		    (util_is_v4mapped(&a->sin6_addr) &&
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

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) <
	    0)
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
	if (!err && !up->local)
		err = dp_up_recverr(fd, up->cfg.addr.ss_family);
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

int dp_up_open(struct dp_upstream *up)
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

/* A free id of up (queries' and the probe's are in its idmap), or -EBUSY. */
int dp_id_pick(struct dnsproxy *p, const struct dp_upstream *up)
{
	uint16_t id = 0;

	/* At most 1 in 8 ids is taken: random probing ends fast. */
	for (int i = 0; i < 64; i++) {
		id = dp_rand16(p);
		if (!up->idmap[id])
			return id;
	}
	for (int i = 0; i < 65536; i++, id++)
		if (!up->idmap[id])
			return id;
	return -EBUSY;
}

static int dp_id_alloc(struct dnsproxy *p, struct dp_upstream *up,
		       struct dp_query *s)
{
	int id = dp_id_pick(p, up);

	if (id < 0)
		return id;
	up->idmap[id] = (uint16_t)(s->idx + 1);
	s->up_id = (uint16_t)id;
	s->has_id = true;
	return 0;
}

/* Does the last probe's id still wait for the probe's answer? */
bool dp_probe_id_held(const struct dp_upstream *up)
{
	return up->idmap[up->probe_id] == DP_ID_PROBE;
}

void dp_probe_id_release(struct dp_upstream *up)
{
	if (dp_probe_id_held(up))
		up->idmap[up->probe_id] = 0;
}

void dp_id_release(struct dnsproxy *p, struct dp_query *s)
{
	if (!s->has_id)
		return;
	p->ups[s->order[s->attempt]].idmap[s->up_id] = 0;
	s->has_id = false;
}

void dp_tcp_close(struct dnsproxy *p, struct dp_query *s)
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

/* ---- forwarding ------------------------------------------------------- */

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
void dp_attempt(struct dnsproxy *p, struct dp_query *s)
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
void dp_next(struct dnsproxy *p, struct dp_query *s)
{
	dp_id_release(p, s);
	dp_fifo_del(p, s);
	dp_tcp_close(p, s);
	s->attempt++;
	dp_attempt(p, s);
}

void dp_up_flush(struct dnsproxy *p, struct dp_upstream *up)
{
	unsigned int sent = 0;
	int tries = 0;

	while (sent < up->ntx) {
		int r = sendmmsg(up->fd, up->txmsgs + sent, up->ntx - sent, 0);

		if (r >= 0) {
			sent += (unsigned int)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		/* A pending ICMP error is an earlier datagram's: send
		 * again, and let dp_flush move what waits on this upstream
		 * on if the error proves it refused. */
		if (tries < DP_SEND_TRIES &&
		    dp_up_send_error(p, up, errno, true)) {
			tries++;
			continue;
		}
		up->errors++;
		p->slots[up->txslot[sent]]->send_failed = true;
		p->retry[p->n_retry++] = up->txslot[sent];
		sent++;
	}
	up->ntx = 0;
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

/*
 * An upstream answered SERVFAIL, REFUSED or NOTIMP: it is up (no health
 * change), but the operator should hear of it, as of a timeout. A
 * misconfigured resolver answers every query so: folded per rcode
 * (log_folded), a line's count the answers it stands for (each is also
 * in the upstream's errors, GET /status).
 */
static void dp_up_rcode_warn(const struct dp_upstream *up,
			     const struct dp_query *s, int rcode)
{
	const char *kind = rcode == DNSWIRE_RCODE_SERVFAIL ?
				   "upstream_servfail" :
			   rcode == DNSWIRE_RCODE_REFUSED ? "upstream_refused" :
							    "upstream_notimp";
	char tb[16];

	log_folded(LOG_LVL_WARN, kind,
		   "dns upstream %s answered %s (%s %s); trying the next "
		   "upstream, SERVFAIL when none is left",
		   up->cfg.text,
		   rcode == DNSWIRE_RCODE_SERVFAIL ? "SERVFAIL" :
		   rcode == DNSWIRE_RCODE_REFUSED  ? "REFUSED" :
						     "NOTIMP",
		   s->q.name[0] ? s->q.name : ".",
		   dnswire_type_name(s->q.qtype, tb, sizeof(tb)));
}

/*
 * An answer with the probe's id. Any rcode, SERVFAIL included, means
 * alive, as the peer; the wrong question is dropped as for a query, and
 * the id waits on for the real answer. A probe that an ordinary answer
 * settled already just gives its id back.
 */
static void dp_probe_answer(struct dnsproxy *p, struct dp_upstream *up,
			    const uint8_t *msg, size_t len)
{
	struct dnswire_response r;

	if (dnswire_parse_response(msg, len, &p->probe_q, &r) < 0) {
		p->st.bad_answers++;
		return;
	}
	dp_probe_id_release(up);
	if (up->probe_pending)
		dp_probe_done(up, true, NULL);
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
	if (sidx == DP_ID_PROBE) {
		dp_probe_answer(p, up, msg, len);
		return;
	}
	if (!sidx) {
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
		dp_up_rcode_warn(up, s, r.rcode);
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
 * unread, whatever id it guesses; a forger sends thousands, so the
 * warning is folded (log_folded), its count the answers dropped.
 */
static void dp_forged(struct dnsproxy *p, const struct dp_upstream *up)
{
	p->st.bad_answers++;
	p->st.forged++;
	log_folded(LOG_LVL_WARN, "forged_answer",
		   "dns: dropped an answer claiming to come from upstream %s "
		   "that arrived on the loopback interface: forged by a "
		   "process of this namespace",
		   up->cfg.text);
}

/*
 * err: the socket reported an error (EPOLLERR): a remote upstream's
 * queued ICMP errors are read first (a send may have taken the pending
 * error already, the queue is still there).
 */
void dp_up_read(struct dnsproxy *p, struct dp_upstream *up, bool err)
{
	int n;

	if (err && !up->local)
		dp_up_icmp(p, up);
	for (int round = 0; round < 4; round++) {
		n = dp_recv_batch(p, up->fd, false);
		if (n < 0 && up->local && dp_is_icmp_error(errno)) {
			dp_up_refused(p, up, errno);
			dp_flush(p);
			continue; /* the error is consumed: read on */
		}
		if (n < 0 && !up->local && errno != EAGAIN) {
			int e = errno;

			/* The pending error of a queued ICMP error: the
			 * queue says who sent it. */
			if (dp_up_icmp(p, up) || dp_is_icmp_error(e))
				continue;
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
		dp_up_read(up->p, up, events & EPOLLERR);
}

/* ---- TCP retry to the upstream ---------------------------------------- */

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
		dp_up_rcode_warn(up, s, r.rcode);
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

void dp_timeout_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;
	uint64_t now = util_clock_ms();
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
