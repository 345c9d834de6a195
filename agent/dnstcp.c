// SPDX-License-Identifier: GPL-2.0-only
/*
 * The DNS proxy's TCP server: accepted client connections, each with a
 * read buffer of length-prefixed queries (pipelined, answered possibly out
 * of order, RFC 7766) and a write buffer of answers. A connection takes
 * at most DP_CONN_MAX_QUERIES in flight and DP_CONN_MAX_WBUF unsent bytes
 * before egressd stops reading from it; idle ones are swept. Answers find
 * their connection by index and generation (dp_conn_of), so one closed
 * meanwhile is never written to. Queries go through dp_handle_query like
 * UDP ones; the work each callback queues is done by dp_flush.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dnsproxy_int.h"

#define DP_CONN_IDLE_MS 10000 /* close idle TCP clients after this */
#define DP_CONN_MAX_QUERIES 64 /* in flight per TCP client */
#define DP_CONN_MAX_WBUF (256 * 1024) /* unsent bytes per TCP client */
#define DP_CONN_RBUF_MIN 4096
#define DP_SWEEP_MS 1000 /* idle-connection sweep period */

/* ---- TCP clients ------------------------------------------------------ */

struct dp_conn *dp_conn_of(struct dnsproxy *p, uint16_t idx, uint32_t gen)
{
	struct dp_conn *c = &p->conns[idx];

	return (c->fd >= 0 && c->gen == gen) ? c : NULL;
}

void dp_conn_mark_dirty(struct dnsproxy *p, struct dp_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	p->dirty[p->n_dirty++] = c->idx;
}

void dp_conn_append(struct dp_conn *c, const uint8_t *data, size_t len)
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

void dp_conn_close(struct dp_conn *c)
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

/* A connection marked dirty: answer what it sent, write, re-arm. */
void dp_conn_service(struct dp_conn *c)
{
	dp_conn_process(c);
	if (c->fd >= 0)
		dp_conn_write(c);
	if (c->fd >= 0)
		dp_conn_update(c);
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

void dp_sweep_cb(struct loop *loop, struct loop_timer *t, void *arg)
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

void dp_accept_cb(struct loop *loop, int fd, uint32_t events, void *arg)
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
