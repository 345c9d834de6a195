// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host-namespace detection over rtnetlink (RTM_GETLINK dump with libmnl):
 * an interface with IFLA_PARENT_DEV_NAME is backed by a device, which only
 * the host's namespace (or one a NIC was moved into on purpose) has.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>

#include "egressd/netns.h"

const struct netns_link *netns_find_device_link(const struct netns_link *l,
						size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (l[i].parent_dev[0])
			return &l[i];
	return NULL;
}

struct dump_ctx {
	struct netns_link *links;
	size_t n, cap;
	int err;
};

static int link_attr_cb(const struct nlattr *attr, void *data)
{
	struct netns_link *l = data;
	const char *s;

	switch (mnl_attr_get_type(attr)) {
	case IFLA_IFNAME:
		s = mnl_attr_get_str(attr);
		snprintf(l->name, sizeof(l->name), "%s", s);
		break;
	case IFLA_PARENT_DEV_NAME:
		s = mnl_attr_get_str(attr);
		snprintf(l->parent_dev, sizeof(l->parent_dev), "%s", s);
		break;
	case IFLA_PARENT_DEV_BUS_NAME:
		s = mnl_attr_get_str(attr);
		snprintf(l->parent_bus, sizeof(l->parent_bus), "%s", s);
		break;
	}
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *ctx = data;
	struct netns_link *l;

	if (ctx->n == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 16;
		struct netns_link *nl = realloc(ctx->links, cap * sizeof(*nl));

		if (!nl) {
			ctx->err = -ENOMEM;
			return MNL_CB_ERROR;
		}
		ctx->links = nl;
		ctx->cap = cap;
	}
	l = &ctx->links[ctx->n++];
	memset(l, 0, sizeof(*l));
	mnl_attr_parse(nlh, sizeof(struct ifinfomsg), link_attr_cb, l);
	return MNL_CB_OK;
}

int netns_list_links(struct netns_link **out, size_t *n)
{
	char buf[32768];
	struct dump_ctx ctx = { 0 };
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct rtgenmsg *rt;
	unsigned int seq, portid;
	int ret;

	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto out_close;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq = time(NULL);
	rt = mnl_nlmsg_put_extra_header(nlh, sizeof(struct rtgenmsg));
	rt->rtgen_family = AF_PACKET;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto out_close;
	}
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (len < 0) {
			ret = -errno;
			goto out_free;
		}
		ret = mnl_cb_run(buf, len, seq, portid, link_cb, &ctx);
		if (ret < 0) {
			ret = ctx.err ? ctx.err : -errno;
			goto out_free;
		}
		if (ret == MNL_CB_STOP)
			break;
	}
	*out = ctx.links;
	*n = ctx.n;
	ctx.links = NULL;
	ret = 0;
out_free:
	free(ctx.links);
out_close:
	mnl_socket_close(nl);
	return ret;
}

int netns_looks_like_host(char *why, size_t len)
{
	const struct netns_link *dev;
	struct netns_link *links = NULL;
	size_t n = 0;
	int ret;

	ret = netns_list_links(&links, &n);
	if (ret)
		return ret;
	dev = netns_find_device_link(links, n);
	if (dev)
		snprintf(why, len, "interface %s is backed by device %s%s%s",
			 dev->name, dev->parent_bus,
			 dev->parent_bus[0] ? "/" : "", dev->parent_dev);
	ret = dev ? 1 : 0;
	free(links);
	return ret;
}

int netns_cookie(uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);
	int fd, err = 0;

	/* Any socket of the namespace tells; IPv4 may be compiled out. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		err = -errno;
	close(fd);
	return err;
}
