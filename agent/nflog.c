// SPDX-License-Identifier: GPL-2.0-only
/*
 * NFLOG consumer (include/egressd/nflog.h): the drop rules of table inet
 * egressd log to one NFLOG group with prefix "egressd:<reason>" and a
 * 128-byte snapshot; this module binds that group on a netlink socket,
 * reads it from the event loop without blocking and reports each packet
 * as a packet-layer violation (events.c folds repeats). Counting stays
 * exact in the nft counters even when notifications are lost.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <libmnl/libmnl.h>

#include "egressd/nflog.h"
#include "egressd/learned.h"
#include "egressd/nftsync.h"
#include "egressd/reason.h"

#define NFLOG_COPY_RANGE 128
#define NFLOG_RCVBUF (4 << 20)
#define NFLOG_MAX_PER_WAKEUP 256 /* then yield to the loop */
/*
 * The kernel batches notifications until its buffer fills or this long
 * (1/100 s) has passed; its default, 1 s, kept the tail of a burst back
 * for a second before events.c even saw it, so a burst's counts reached
 * the log up to two windows late.
 */
#define NFLOG_FLUSH_TIMEOUT 5

struct nflog {
	struct mnl_socket *sock;
	struct loop *loop;
	const struct learned *learned;
	struct events *events;
	nflog_rule_fn rule_fn; /* names the rule of a drop, or NULL */
	void *rule_arg;
	uint16_t group;
	uint64_t lost;
	char buf[65536];
};

/* Reasons come from reason.h's table: those nftables logs (REASON_PACKET). */
int nflog_prefix_reason(const char *prefix, enum events_reason *out)
{
	size_t plen = strlen(NFTSYNC_LOG_PREFIX);

	if (strncmp(prefix, NFTSYNC_LOG_PREFIX, plen))
		return -ENOENT;
	return reason_from_name(prefix + plen, strlen(prefix + plen),
				REASON_PACKET, out);
}

static bool has_ports(int proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP ||
	       proto == IPPROTO_UDPLITE || proto == IPPROTO_SCTP;
}

/* Fill family, proto, addresses and ports from the network header. */
static int parse_ip(const uint8_t *p, size_t len, struct nflog_packet *out)
{
	size_t off;
	int nh, i;
	bool first = true;

	if (len < 1)
		return -EINVAL;
	if ((p[0] >> 4) == 4) {
		if (len < 20 || (p[0] & 0xf) < 5 ||
		    (size_t)(p[0] & 0xf) * 4 > len)
			return -EINVAL;
		out->family = AF_INET;
		out->proto = p[9];
		memcpy(out->src, p + 12, 4);
		memcpy(out->dst, p + 16, 4);
		off = (size_t)(p[0] & 0xf) * 4;
		first = !(((p[6] << 8) | p[7]) & 0x1fff);
	} else if ((p[0] >> 4) == 6) {
		if (len < 40)
			return -EINVAL;
		out->family = AF_INET6;
		memcpy(out->src, p + 8, 16);
		memcpy(out->dst, p + 24, 16);
		nh = p[6];
		off = 40;
		/* Skip extension headers to the transport header. */
		for (i = 0; i < 8; i++) {
			if (nh == IPPROTO_FRAGMENT) {
				if (off + 8 > len)
					break;
				first = !(((p[off + 2] << 8) | p[off + 3]) &
					  0xfff8);
				nh = p[off];
				off += 8;
			} else if (nh == IPPROTO_HOPOPTS ||
				   nh == IPPROTO_ROUTING ||
				   nh == IPPROTO_DSTOPTS || nh == IPPROTO_AH) {
				if (off + 2 > len)
					break;
				nh = p[off];
				off += nh == IPPROTO_AH ?
					       ((size_t)p[off + 1] + 2) * 4 :
					       ((size_t)p[off + 1] + 1) * 8;
			} else {
				break;
			}
		}
		out->proto = nh;
	} else {
		return -EINVAL;
	}
	if (first && has_ports(out->proto) && off + 4 <= len) {
		out->sport = (uint16_t)((p[off] << 8) | p[off + 1]);
		out->dport = (uint16_t)((p[off + 2] << 8) | p[off + 3]);
	}
	return 0;
}

static int attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	if (mnl_attr_type_valid(attr, NFULA_MAX) < 0)
		return MNL_CB_OK; /* newer kernel: skip what we don't know */
	tb[type] = attr;
	return MNL_CB_OK;
}

int nflog_parse(const void *buf, size_t len, struct nflog_packet *out)
{
	const struct nlattr *tb[NFULA_MAX + 1] = { 0 };
	const struct nlmsghdr *nlh = buf;
	const struct nfgenmsg *nfg;
	const char *prefix;
	const uint8_t *p;
	size_t plen;

	if (len < sizeof(*nlh) || nlh->nlmsg_len > len ||
	    nlh->nlmsg_len < MNL_NLMSG_HDRLEN + sizeof(struct nfgenmsg))
		return -EINVAL;
	if (nlh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET))
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, tb) < 0)
		return -EINVAL;
	if (!tb[NFULA_PREFIX] ||
	    mnl_attr_validate(tb[NFULA_PREFIX], MNL_TYPE_NUL_STRING) < 0)
		return -ENOENT;
	prefix = mnl_attr_get_str(tb[NFULA_PREFIX]);
	if (nflog_prefix_reason(prefix, &out->reason))
		return -ENOENT;
	if (!tb[NFULA_PAYLOAD])
		return -EINVAL;
	p = mnl_attr_get_payload(tb[NFULA_PAYLOAD]);
	plen = mnl_attr_get_payload_len(tb[NFULA_PAYLOAD]);
	/*
	 * Table netdev egressd logs whole frames, from the Ethernet header.
	 * Only IPv4 and IPv6 frames make a violation line (its shape has
	 * addresses); the others are counted in raw_frame_drop only.
	 */
	nfg = mnl_nlmsg_get_payload(nlh);
	if (nfg->nfgen_family == NFPROTO_NETDEV) {
		uint16_t et = plen >= 14 ? (uint16_t)(p[12] << 8 | p[13]) : 0;

		if (et != 0x0800 && et != 0x86dd)
			return -EPROTONOSUPPORT;
		p += 14;
		plen -= 14;
	}
	return parse_ip(p, plen, out);
}

size_t nflog_parse_batch(const void *buf, size_t len,
			 void (*cb)(const struct nflog_packet *pk, void *arg),
			 void *arg)
{
	const struct nlmsghdr *nlh;
	struct nflog_packet pk;
	size_t off = 0, n = 0, step;

	/*
	 * Not mnl_nlmsg_ok()/mnl_nlmsg_next(): libmnl 1.0.4 compares
	 * nlmsg_len as a signed int, so a length over 2 GiB passes and the
	 * walk jumps out of the buffer (found by tests/fuzz/fuzz_nflog.c).
	 */
	while (len - off >= sizeof(*nlh)) {
		nlh = (const struct nlmsghdr *)((const char *)buf + off);
		if (nlh->nlmsg_len < sizeof(*nlh) || nlh->nlmsg_len > len - off)
			break;
		if (!nflog_parse(nlh, nlh->nlmsg_len, &pk)) {
			n++;
			cb(&pk, arg);
		}
		step = NLMSG_ALIGN(nlh->nlmsg_len);
		if (step >= len - off)
			break;
		off += step;
	}
	return n;
}

static void report(const struct nflog_packet *pk, void *arg)
{
	struct nflog *nl = arg;
	const char *domain = NULL;
	char rule[64];
	bool named = false;

	if (nl->learned)
		domain = learned_domain_of(nl->learned, pk->family, pk->dst);
	if (nl->rule_fn)
		named = nl->rule_fn(nl->rule_arg, pk, rule, sizeof(rule));
	events_packet_violation_rule(nl->events, pk->reason, pk->family,
				     pk->proto, pk->src, pk->sport, pk->dst,
				     pk->dport, domain, named ? rule : NULL,
				     "drop", 1);
}

void nflog_set_rule_hook(struct nflog *nl, nflog_rule_fn fn, void *arg)
{
	nl->rule_fn = fn;
	nl->rule_arg = arg;
}

static void on_readable(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct nflog *nl = arg;
	ssize_t n;
	int i;

	for (i = 0; i < NFLOG_MAX_PER_WAKEUP; i++) {
		n = recv(fd, nl->buf, sizeof(nl->buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOBUFS) {
				nl->lost++; /* counters stay exact */
				continue;
			}
			return; /* EAGAIN, EINTR: level-triggered, back later */
		}
		nflog_parse_batch(nl->buf, (size_t)n, report, nl);
	}
}

/* Send one NFULNL_MSG_CONFIG for our group and wait for its ACK. */
static int config(struct nflog *nl, uint8_t cmd, bool set_mode)
{
	struct nfulnl_msg_config_mode mode = {
		.copy_range = htonl(NFLOG_COPY_RANGE),
		.copy_mode = NFULNL_COPY_PACKET,
	};
	struct nfulnl_msg_config_cmd c = { .command = cmd };
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = 1, portid;
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	ssize_t n;

	/* libmnl 1.0.4 leaves attribute padding unwritten: zero it. */
	memset(buf, 0, 256); /* header, nfgenmsg and three small attributes */
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(nl->group);
	mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof(c), &c);
	if (set_mode) {
		mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof(mode), &mode);
		mnl_attr_put_u32(nlh, NFULA_CFG_TIMEOUT,
				 htonl(NFLOG_FLUSH_TIMEOUT));
	}
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	portid = mnl_socket_get_portid(nl->sock);
	for (;;) {
		n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		n = mnl_cb_run(buf, n, seq, portid, NULL, NULL);
		if (n < 0)
			return -errno;
		if (n == MNL_CB_STOP)
			return 0;
	}
}

int nflog_new(struct nflog **out, struct loop *loop, uint16_t group,
	      const struct learned *learned, struct events *events, char *err,
	      size_t errlen)
{
	struct nflog *nl = NULL;
	int ret, fd, v = NFLOG_RCVBUF;

	*out = NULL;
	nl = calloc(1, sizeof(*nl));
	if (!nl) {
		snprintf(err, errlen, "nflog: out of memory");
		return -ENOMEM;
	}
	nl->loop = loop;
	nl->learned = learned;
	nl->events = events;
	nl->group = group;
	nl->sock = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl->sock) {
		ret = -errno;
		snprintf(err, errlen, "nflog: netlink socket: %s",
			 strerror(-ret));
		goto err_free;
	}
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		snprintf(err, errlen, "nflog: netlink bind: %s",
			 strerror(-ret));
		goto err_free;
	}
	fd = mnl_socket_get_fd(nl->sock);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	ret = config(nl, NFULNL_CFG_CMD_BIND, true);
	if (ret) {
		snprintf(err, errlen, "nflog: binding group %u: %s%s", group,
			 strerror(-ret),
			 ret == -EPERM ? " (needs CAP_NET_ADMIN)" :
			 ret == -EBUSY ? " (another process holds the group)" :
					 "");
		goto err_free;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		ret = -errno;
		snprintf(err, errlen, "nflog: O_NONBLOCK: %s", strerror(-ret));
		goto err_free;
	}
	ret = loop_add_fd(loop, fd, EPOLLIN, on_readable, nl);
	if (ret) {
		snprintf(err, errlen, "nflog: event loop: %s", strerror(-ret));
		goto err_free;
	}
	*out = nl;
	return 0;
err_free:
	if (nl->sock)
		mnl_socket_close(nl->sock);
	free(nl);
	return ret;
}

void nflog_free(struct nflog *nl)
{
	if (!nl)
		return;
	loop_del_fd(nl->loop, mnl_socket_get_fd(nl->sock));
	/* Closing the socket releases the group too. */
	mnl_socket_close(nl->sock);
	free(nl);
}

uint64_t nflog_lost(const struct nflog *nl)
{
	return nl->lost;
}
