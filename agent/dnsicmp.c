// SPDX-License-Identifier: GPL-2.0-only
/*
 * The DNS proxy's upstreams: the ICMP errors for them. An upstream's
 * connected UDP socket hears of an ICMP error for a datagram it sent
 * (port unreachable: ECONNREFUSED), and then the queries waiting on that
 * upstream move on at once instead of waiting out their timeout. A local
 * upstream's errors are taken as they come (they come from this
 * namespace anyway). A remote upstream's socket has them queued with
 * their sender (IP_RECVERR): one sent from an address of this namespace
 * was forged by a process of it (a raw socket, through lo) and is
 * ignored and counted (docs/security.md, class 2b), so a workload cannot
 * take the sandbox's DNS down with a few packets a second. Called from
 * the forwarding (dnsupstream.c) and the probes (dnsprobe.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsproxy_int.h"
#include "egressd/log.h"
#include "egressd/util.h"

#define DP_ERRQ_MAX 64 /* queued ICMP errors read per call */

/*
 * A remote upstream's socket gets its ICMP errors queued with their
 * sender (IP_RECVERR, IPV6_RECVERR; the IPv4 one also for v4-mapped
 * upstreams on an IPv6 socket): dp_up_errqueue reads who sent each.
 * With it the kernel reports soft errors too (time exceeded, host
 * unreachable): dp_icmp_refusal keeps to the ones a connected socket
 * reported before.
 */
int dp_up_recverr(int fd, int family)
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

/*
 * An ICMP error for a datagram to this upstream: on a connected socket
 * the kernel reports it to the next send or receive (port unreachable:
 * ECONNREFUSED; host unknown, filtered and the like). Nothing answers
 * there now.
 */
bool dp_is_icmp_error(int e)
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
		v4 = util_is_v4mapped(&a6);
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
bool dp_up_send_error(struct dnsproxy *p, struct dp_upstream *up, int e,
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
int dp_up_icmp(struct dnsproxy *p, struct dp_upstream *up)
{
	int refused = 0, n = dp_up_errqueue(p, up, &refused);

	if (refused) {
		dp_up_refused(p, up, refused);
		dp_flush(p);
	}
	return n;
}
