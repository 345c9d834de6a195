// SPDX-License-Identifier: GPL-2.0-only
/*
 * The DNS proxy's upstreams: forwarding and everything that waits on an
 * upstream. Each upstream has one connected UDP socket (its answers can
 * only come from its address and port, and an ICMP error for it comes
 * back as ECONNREFUSED/EHOSTUNREACH: the queries waiting on it move on at
 * once; for a remote upstream only if a remote address sent the error,
 * dp_up_errqueue). A query goes out with a fresh random id and random
 * letter case (0x20); the answer is matched back by that id and its
 * question, case included (answers that came in on lo from a remote
 * upstream never get that far: dp_up_filter), and handed to dp_deliver
 * (dnsdecide.c).
 * Timeouts and SERVFAIL/REFUSED/NOTIMP move a query to the next upstream;
 * truncated answers for TCP clients are fetched again over TCP. Health:
 * healthy upstreams are tried first; every upstream is probed at start
 * and every probe interval (the peer's OPENSANDBOX_EGRESS_DNS_UPSTREAM_
 * PROBE*), unhealthy ones every DP_PROBE_MS too; a failed probe moves the
 * queries waiting on that upstream on. All of it on the event loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
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
#define DP_PROBE_MS 5000 /* re-probe unhealthy upstreams */
#define DP_ERRQ_MAX 64 /* queued ICMP errors read per call */
#define DP_SEND_TRIES 4 /* sends again after a pending ICMP error */

static void dp_up_cb(struct loop *loop, int fd, uint32_t events, void *arg);
static int dp_tcp_start(struct dnsproxy *p, struct dp_query *s);
static void dp_tcpup_cb(struct loop *loop, int fd, uint32_t events, void *arg);
static void dp_probe_done(struct dp_upstream *up, bool ok, const char *why);

static bool dp_rcode_fails_over(int rcode)
{
	return rcode == DNSWIRE_RCODE_SERVFAIL ||
	       rcode == DNSWIRE_RCODE_REFUSED || rcode == DNSWIRE_RCODE_NOTIMP;
}

/* ---- upstream health -------------------------------------------------- */

/* Healthy upstreams first, each group in configuration order. */
void dp_compute_order(struct dnsproxy *p)
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
void dp_up_mark(struct dp_upstream *up, bool healthy, const char *why)
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

/*
 * An answer came from up: it is alive. A pending probe is settled as
 * answered: any answer is as good a proof of life as the probe's own.
 * The probe's id stays taken until its own answer or its timeout
 * (dp_probe_answer, dp_probe_tmo_cb), so that answer is still known for
 * the probe's, never counted as late or forged.
 */
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

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) <
	    0)
		return -errno;
	return 0;
}

/*
 * A remote upstream's socket gets its ICMP errors queued with their
 * sender (IP_RECVERR, IPV6_RECVERR; the IPv4 one also for v4-mapped
 * upstreams on an IPv6 socket): dp_up_errqueue reads who sent each.
 * With it the kernel reports soft errors too (time exceeded, host
 * unreachable): dp_icmp_refusal keeps to the ones a connected socket
 * reported before.
 */
static int dp_up_recverr(int fd, int family)
{
	int one = 1;

	if (family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one,
			       sizeof(one)) < 0)
			return -errno;
		(void)setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
		return 0;
	}
	if (setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one)) < 0)
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
static int dp_id_pick(struct dnsproxy *p, const struct dp_upstream *up)
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
static bool dp_probe_id_held(const struct dp_upstream *up)
{
	return up->idmap[up->probe_id] == DP_ID_PROBE;
}

static void dp_probe_id_release(struct dp_upstream *up)
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

/* ---- ICMP errors ------------------------------------------------------ */

/*
 * An ICMP error for a datagram to this upstream: on a connected socket
 * the kernel reports it to the next send or receive (port unreachable:
 * ECONNREFUSED; host unknown, filtered and the like). Nothing answers
 * there now.
 */
static bool dp_is_icmp_error(int e)
{
	return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH ||
	       e == EHOSTDOWN || e == ENONET;
}

/*
 * Does a queued ICMP error (origin, type, code of its sock_extended_err)
 * say the upstream refused? The hard errors the kernel reports to a
 * connected UDP socket without IP_RECVERR whose errno dp_is_icmp_error
 * knows: IPv4 destination unreachable but for net and host unreachable
 * (soft: a route may come back), fragmentation needed and protocol
 * unreachable; IPv6 port unreachable.
 */
bool dp_icmp_refusal(uint8_t origin, uint8_t type, uint8_t code)
{
	if (origin == SO_EE_ORIGIN_ICMP6)
		return type == ICMP6_DST_UNREACH &&
		       code == ICMP6_DST_UNREACH_NOPORT;
	if (origin != SO_EE_ORIGIN_ICMP || type != ICMP_DEST_UNREACH)
		return false;
	switch (code) {
	case ICMP_PORT_UNREACH:
	case ICMP_NET_UNKNOWN:
	case ICMP_HOST_UNKNOWN:
	case ICMP_HOST_ISOLATED:
	case ICMP_NET_ANO:
	case ICMP_HOST_ANO:
	case ICMP_PKT_FILTERED:
	case ICMP_PREC_VIOLATION:
	case ICMP_PREC_CUTOFF:
		return true;
	}
	return false;
}

/*
 * May an ICMP error sent from offender (SO_EE_OFFENDER: the error's
 * source address) fail an upstream? For a local upstream (up_local)
 * always, as ever: its errors come from this namespace anyway, so a
 * forged one cannot be told apart. For a remote one only if offender is
 * neither loopback nor one of own (getifaddrs: the namespace's
 * addresses): any process of the namespace with CAP_NET_RAW can send an
 * error from those to egressd's own address (through lo; chain
 * antispoof lets local sources pass). No offender proves nothing.
 */
bool dp_icmp_trusted(bool up_local, const struct sockaddr *offender,
		     const struct ifaddrs *own)
{
	struct in6_addr a6 = { 0 };
	uint32_t a4 = 0;
	bool v4;

	if (up_local)
		return true;
	if (!offender)
		return false;
	if (offender->sa_family == AF_INET) {
		a4 = ((const struct sockaddr_in *)offender)->sin_addr.s_addr;
		v4 = true;
	} else if (offender->sa_family == AF_INET6) {
		a6 = ((const struct sockaddr_in6 *)offender)->sin6_addr;
		v4 = IN6_IS_ADDR_V4MAPPED(&a6);
		if (v4)
			memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
	} else {
		return false;
	}
	if (v4 && ((ntohl(a4) >> 24) == 127 || a4 == 0))
		return false;
	if (!v4 && (IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6)))
		return false;
	for (const struct ifaddrs *i = own; i; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;

		if (!sa)
			continue;
		if (v4 && sa->sa_family == AF_INET &&
		    ((const struct sockaddr_in *)sa)->sin_addr.s_addr == a4)
			return false;
		if (!v4 && sa->sa_family == AF_INET6 &&
		    !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, &a6,
			    sizeof(a6)))
			return false;
	}
	return true;
}

/*
 * An ICMP error "for" a remote upstream sent from an address of this
 * namespace: forged by a process of the namespace. Dropped: the queries
 * wait for the upstream's answer or their timeout. A forger sends many,
 * so the warning is folded (log_folded), its count the errors dropped.
 */
static void dp_forged_icmp(struct dnsproxy *p, const struct dp_upstream *up,
			   const struct sock_extended_err *ee)
{
	const struct sockaddr *off = (const struct sockaddr *)(ee + 1);
	char from[INET6_ADDRSTRLEN] = "?";

	if (off->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)off)->sin_addr,
			  from, sizeof(from));
	else if (off->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)off)->sin6_addr, from,
			  sizeof(from));
	p->st.bad_answers++;
	p->st.forged++;
	log_folded(LOG_LVL_WARN, "forged_icmp",
		   "dns: ignored an ICMP error (%s) for upstream %s sent from "
		   "%s, an address of this namespace: forged by a process of "
		   "this namespace; the upstream stays in use",
		   strerror(ee->ee_errno), up->cfg.text, from);
}

/*
 * Read the ICMP errors queued on a remote upstream's socket (at most
 * DP_ERRQ_MAX a call: epoll reports EPOLLERR while more wait; reading
 * the last also clears the socket's pending error). Returns how many
 * were read; *refused is the errno of the first that proves the upstream
 * refused (0: none did). One sent from this namespace is dropped
 * (dp_forged_icmp); so, uncounted, is one whose sender cannot be judged.
 */
static int dp_up_errqueue(struct dnsproxy *p, struct dp_upstream *up,
			  int *refused)
{
	struct ifaddrs *own = NULL;
	bool own_read = false, own_ok = false;
	int n = 0;

	*refused = 0;
	for (int i = 0; i < DP_ERRQ_MAX; i++) {
		union {
			char buf[CMSG_SPACE(sizeof(struct sock_extended_err) +
					    sizeof(struct sockaddr_in6))];
			struct cmsghdr align;
		} cb;
		uint8_t data[64];
		struct iovec iov = { .iov_base = data,
				     .iov_len = sizeof(data) };
		struct msghdr h = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cb.buf,
			.msg_controllen = sizeof(cb.buf),
		};
		const struct sock_extended_err *ee = NULL;

		if (recvmsg(up->fd, &h, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n++;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c;
		     c = CMSG_NXTHDR(&h, c))
			if ((c->cmsg_level == IPPROTO_IP &&
			     c->cmsg_type == IP_RECVERR) ||
			    (c->cmsg_level == IPPROTO_IPV6 &&
			     c->cmsg_type == IPV6_RECVERR))
				ee = (const void *)CMSG_DATA(c);
		if (!ee ||
		    !dp_icmp_refusal(ee->ee_origin, ee->ee_type, ee->ee_code))
			continue;
		if (!own_read) {
			own_read = true;
			own_ok = getifaddrs(&own) == 0;
		}
		if (!own_ok)
			continue;
		if (dp_icmp_trusted(false, (const struct sockaddr *)(ee + 1),
				    own)) {
			if (!*refused)
				*refused = (int)ee->ee_errno;
		} else {
			dp_forged_icmp(p, up, ee);
		}
	}
	if (own)
		freeifaddrs(own);
	return n;
}

/*
 * A send on up's socket failed with e: was it a pending ICMP error, an
 * earlier datagram's (a connected socket reports one to its next call)?
 * Then the send may go again. mark: an error that proves the upstream
 * refused sets up->refused, for dp_flush to move what waits on it on. A
 * local upstream's ECONNREFUSED is taken as such, as ever; a remote
 * one's errors are judged by their sender (dp_up_errqueue), so a forged
 * one fails neither the upstream nor the send.
 */
static bool dp_up_send_error(struct dnsproxy *p, struct dp_upstream *up, int e,
			     bool mark)
{
	int refused = 0;

	if (up->local) {
		if (e != ECONNREFUSED)
			return false;
		if (mark)
			up->refused = true;
		return true;
	}
	if (!dp_up_errqueue(p, up, &refused) && !dp_is_icmp_error(e))
		return false;
	if (refused && mark)
		up->refused = true;
	return true;
}

/*
 * A remote upstream's socket reported an error: judge the queued ICMP
 * errors, and fail the upstream over only for one that proves it
 * refused. Returns how many were read.
 */
static int dp_up_icmp(struct dnsproxy *p, struct dp_upstream *up)
{
	int refused = 0, n = dp_up_errqueue(p, up, &refused);

	if (refused) {
		dp_up_refused(p, up, refused);
		dp_flush(p);
	}
	return n;
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
static void dp_up_read(struct dnsproxy *p, struct dp_upstream *up, bool err)
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

/* ---- health probes ---------------------------------------------------- */

/*
 * Move the queries waiting on up to their next upstream now, instead of
 * letting each wait out its timeout. all: every one of them (the
 * upstream refused: nothing listens); else only those that have a next
 * upstream to go to (a probe went unanswered: likely dead, but the last
 * chance of a query is not cut short on a guess).
 */
static void dp_up_abandon(struct dnsproxy *p, struct dp_upstream *up, bool all)
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
void dp_up_refused(struct dnsproxy *p, struct dp_upstream *up, int e)
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
 * waiting on it move on if they can. A failed probe's id is free again;
 * an answered one's only once its own answer or timeout is in.
 */
static void dp_probe_done(struct dp_upstream *up, bool ok, const char *why)
{
	struct dnsproxy *p = up->p;
	bool round = up->probe_round;

	up->probe_pending = false;
	up->probe_round = false;
	if (ok) {
		up->probe_answers++;
		dp_up_mark(up, true, NULL);
	} else {
		char buf[160];

		dp_probe_id_release(up);
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
	/* The last probe's id may still wait for its answer (an ordinary
	 * answer settled it): the same question under the same id, so
	 * either answer is this probe's. */
	if (!dp_probe_id_held(up)) {
		rc = dp_id_pick(p, up);
		if (rc < 0) {
			dp_probe_done(up, false, strerror(-rc));
			return;
		}
		up->probe_id = (uint16_t)rc;
		up->idmap[rc] = DP_ID_PROBE;
	}
	dnswire_set_id(p->probe_msg, up->probe_id);
	/* A pending ICMP error is an earlier datagram's: once more (a
	 * forged one proves nothing either, dp_up_send_error). */
	do {
		rc = send(up->fd, p->probe_msg, p->probe_len, 0) < 0 ? errno :
								       0;
	} while (rc && tries++ < DP_SEND_TRIES &&
		 dp_up_send_error(p, up, rc, false));
	if (rc) {
		up->errors++;
		dp_probe_done(up, false, strerror(rc));
		return;
	}
	up->probe_sent = loop_now_ms(p->loop);
	if (!loop_timer_is_armed(p->probe_tmo))
		loop_timer_arm(p->probe_tmo, p->probe_timeout_ms);
}

/*
 * Probes with no answer by their deadline fail ("i/o timeout"); the ids
 * of those an ordinary answer settled are free again: an answer now is
 * late.
 */
void dp_probe_tmo_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;
	uint64_t now = loop_now_ms(loop), next = 0;
	char why[64];

	snprintf(why, sizeof(why), "i/o timeout (no answer within %u ms)",
		 p->probe_timeout_ms);
	for (int i = 0; i < p->n_ups; i++) {
		struct dp_upstream *up = &p->ups[i];

		if (!up->probe_pending && !dp_probe_id_held(up))
			continue;
		if (now - up->probe_sent < p->probe_timeout_ms) {
			if (!next ||
			    up->probe_sent + p->probe_timeout_ms < next)
				next = up->probe_sent + p->probe_timeout_ms;
			continue;
		}
		if (up->fd >= 0)
			dp_up_read(p, up, true); /* an answer may be queued */
		if (up->probe_pending)
			dp_probe_done(up, false, why);
		else
			dp_probe_id_release(up);
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
void dp_probe_cb(struct loop *loop, struct loop_timer *t, void *arg)
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
void dp_round_cb(struct loop *loop, struct loop_timer *t, void *arg)
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

/*
 * The probe question, as the peer's: ". NS" for "" (the root: any
 * resolver answers it without going out), else "NAME A"; RD set.
 */
int dp_build_probe(struct dnsproxy *p, const char *name)
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
