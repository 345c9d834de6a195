// SPDX-License-Identifier: GPL-2.0-only
/*
 * Coverage scans (coverage.h): every TCP, UDP and raw socket of the
 * network namespace, read over NETLINK_SOCK_DIAG with its cgroup id, must
 * sit below the BPF attach cgroup. The set of cgroup ids below it is read
 * from the cgroup filesystem and re-read once per scan on a miss.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <libmnl/libmnl.h>

#include "egressd/coverage.h"
#include "egressd/util.h"

/* Cgroups below an attach point that a scan keeps track of at most. */
#define COVERAGE_MAX_CGROUPS 65536

struct coverage {
	char *dir;
	uint64_t attach_id, skip_id;
	uint64_t *ids; /* sorted cgroup ids at and below dir */
	size_t n, cap;
	struct mnl_socket *nl;
	unsigned int seq;
	char *buf;
};

const char *coverage_state_name(enum coverage_state s)
{
	switch (s) {
	case COVERAGE_NAMESPACE:
		return "namespace";
	case COVERAGE_PARTIAL:
		return "partial";
	default:
		return "none";
	}
}

static int ids_push(struct coverage *c, uint64_t id)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		uint64_t *v;

		if (cap > COVERAGE_MAX_CGROUPS)
			return -E2BIG;
		v = realloc(c->ids, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->ids = v;
		c->cap = cap;
	}
	c->ids[c->n++] = id;
	return 0;
}

static int ids_walk(struct coverage *c, const char *dir, unsigned int depth)
{
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (depth > 64)
		return 0;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!ret && (de = readdir(d))) {
		char sub[4096];

		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") ||
		    !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir,
				     de->d_name) >= sizeof(sub))
			continue;
		ret = ids_push(c, de->d_ino);
		if (!ret)
			ret = ids_walk(c, sub, depth + 1);
	}
	closedir(d);
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int ids_reload(struct coverage *c)
{
	int ret;

	c->n = 0;
	ret = ids_push(c, c->attach_id);
	if (!ret)
		ret = ids_walk(c, c->dir, 0);
	qsort(c->ids, c->n, sizeof(*c->ids), cmp_u64);
	return ret;
}

static bool ids_has(const struct coverage *c, uint64_t id)
{
	return bsearch(&id, c->ids, c->n, sizeof(*c->ids), cmp_u64) != NULL;
}

int coverage_new(struct coverage **out, const char *attach_dir,
		 uint64_t attach_id, uint64_t skip_id, char *err, size_t errlen)
{
	struct coverage *c;
	int ret;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return util_err(err, errlen, -ENOMEM, "out of memory");
	c->attach_id = attach_id;
	c->skip_id = skip_id;
	c->dir = strdup(attach_dir);
	c->buf = malloc(MNL_SOCKET_BUFFER_SIZE);
	if (!c->dir || !c->buf) {
		coverage_free(c);
		return util_err(err, errlen, -ENOMEM, "out of memory");
	}
	c->nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	if (!c->nl || mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		coverage_free(c);
		return util_err(err, errlen, ret, "sock_diag netlink: %s",
				strerror(-ret));
	}
	ret = ids_reload(c);
	if (ret) {
		coverage_free(c);
		return util_err(err, errlen, ret, "cgroups below %s: %s",
				attach_dir, strerror(-ret));
	}
	*out = c;
	return 0;
}

void coverage_free(struct coverage *c)
{
	if (!c)
		return;
	if (c->nl)
		mnl_socket_close(c->nl);
	free(c->buf);
	free(c->ids);
	free(c->dir);
	free(c);
}

struct scan {
	struct coverage *c;
	uint64_t foreign;
	unsigned int sockets;
	bool reloaded, no_cgroup_id;
	int err;
};

static int attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (type == INET_DIAG_CGROUP_ID &&
	    mnl_attr_validate(a, MNL_TYPE_U64) >= 0)
		tb[type] = a;
	return MNL_CB_OK;
}

static int msg_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[INET_DIAG_MAX + 1] = { 0 };
	struct scan *s = data;
	uint64_t id;

	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(struct inet_diag_msg), attr_cb, tb);
	s->sockets++;
	if (!tb[INET_DIAG_CGROUP_ID]) {
		/* Time-wait and request sockets carry none; a full
		 * socket without one means an old kernel. */
		const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);

		if (m->idiag_state != 6 /* TCP_TIME_WAIT */ &&
		    m->idiag_state != 12 /* TCP_NEW_SYN_RECV */)
			s->no_cgroup_id = true;
		return MNL_CB_OK;
	}
	id = mnl_attr_get_u64(tb[INET_DIAG_CGROUP_ID]);
	if (id == s->c->skip_id || ids_has(s->c, id))
		return MNL_CB_OK;
	if (!s->reloaded) {
		/* A cgroup created since the last reload? */
		s->reloaded = true;
		s->err = ids_reload(s->c);
		if (!s->err && ids_has(s->c, id))
			return MNL_CB_OK;
	}
	if (!s->foreign)
		s->foreign = id;
	return MNL_CB_OK;
}

static int dump(struct coverage *c, struct scan *s, uint8_t family,
		uint8_t proto)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	unsigned int portid = mnl_socket_get_portid(c->nl);
	ssize_t n;
	int ret;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nlh.nlmsg_seq = ++c->seq;
	req.r.sdiag_family = family;
	req.r.sdiag_protocol = proto;
	req.r.idiag_states = ~0U;
	/* raw_diag reads this as the raw protocol; IPPROTO_RAW: any. */
	if (proto == IPPROTO_RAW)
		req.r.pad = IPPROTO_RAW;
	if (mnl_socket_sendto(c->nl, &req, sizeof(req)) < 0)
		return -errno;
	for (;;) {
		n = mnl_socket_recvfrom(c->nl, c->buf, MNL_SOCKET_BUFFER_SIZE);
		if (n < 0)
			return -errno;
		ret = mnl_cb_run(c->buf, n, c->seq, portid, msg_cb, s);
		if (ret < 0)
			return -errno;
		if (ret == MNL_CB_STOP)
			return 0;
	}
}

int coverage_scan(struct coverage *c, uint64_t *foreign, unsigned int *sockets)
{
	static const uint8_t families[] = { AF_INET, AF_INET6 };
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP };
	struct scan s = { .c = c };
	size_t f, p;
	int ret;

	*foreign = 0;
	for (f = 0; f < 2; f++) {
		for (p = 0; p < 2; p++) {
			ret = dump(c, &s, families[f], protos[p]);
			if (ret)
				return ret;
		}
		/* Raw sockets: only where raw_diag is there to ask. */
		(void)dump(c, &s, families[f], IPPROTO_RAW);
	}
	if (sockets)
		*sockets = s.sockets;
	if (s.err)
		return s.err;
	if (s.no_cgroup_id)
		return -EOPNOTSUPP;
	*foreign = s.foreign;
	return s.foreign ? 1 : 0;
}
