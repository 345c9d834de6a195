// SPDX-License-Identifier: GPL-2.0-only
/*
 * nftables layer (include/egressd/nftsync.h, docs/nftables.md): the state
 * that keeps table "inet egressd" in step with the policy. The batches
 * themselves are built elsewhere and do no I/O (nftruleset.c and
 * nftnetdev.c, over nftbatch.c's emitters, nftrule.c's expressions and
 * nftset.c's set contents); here is the talker (send one batch, drain
 * every ACK, name the failing command by its sequence number), apply and
 * cleanup, and the writer of learned addresses, which the agent drives
 * from the learned-address registry (agent/learned.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/table.h>

#include "egressd/log.h"
#include "egressd/nftbatch.h"
#include "egressd/nftsync.h"

#define ACK_TIMEOUT_MS 5000

/* ---- state, talker -------------------------------------------------- */

struct nftsync {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	nftsync_talk_fn talk;
	void *talk_arg;
	bool filtering;
	struct nftsync_stats stats;
	char *rxbuf;
	size_t rxlen;
	size_t sndbuf, rcvbuf; /* socket buffer sizes asked for */
	struct nftsync_batch *lb; /* reused by every learn */
	struct policy_addr *scratch; /* learn: known from the front, fresh
				      * from the back */
	size_t scratch_cap;
	/* Until then, addresses the registry does not know are refreshed
	 * too (see nftsync_learn_write()). */
	uint64_t refresh_until_ms;
	/* The last successful apply emptied or replaced the learned sets. */
	bool learned_reset;
};

static const char *errno_hint(int err)
{
	switch (err) {
	case EPERM:
	case EACCES:
		return " (needs CAP_NET_ADMIN in this network namespace)";
	case EPROTONOSUPPORT:
	case EAFNOSUPPORT:
		return " (nf_tables is not available in this kernel)";
	case EOPNOTSUPP:
		return " (kernel lacks an nftables feature egressd needs)";
	default:
		return "";
	}
}

/* NLMSGERR_ATTR_MSG of an extended ACK, or NULL. */
static const char *extack_msg(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);
	const struct nlattr *a;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NULL;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	mnl_attr_for_each(a, nlh, off) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			return mnl_attr_get_str(a);
	}
	return NULL;
}

/* Socket buffers at open: far above any learn batch and its ACKs. */
#define NL_SNDBUF_MIN (256 * 1024)
#define NL_RCVBUF_MIN (256 * 1024)

/* Raise a socket buffer to want bytes unless it was set that high. */
static void grow_sockbuf(int fd, int opt_force, int opt, size_t *cur,
			 size_t want)
{
	int v = want > (1U << 30) ? 1 << 30 : (int)want;

	if (want <= *cur)
		return;
	if (setsockopt(fd, SOL_SOCKET, opt_force, &v, sizeof(v)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
	*cur = want;
}

/*
 * One read of the netlink socket into ns->rxbuf: what is queued, else
 * what arrives within ACK_TIMEOUT_MS. The kernel answers a request inside
 * sendmsg(), so the answer is normally queued already and the wait is
 * only for when it is not. Bytes read, or -errno (-ETIMEDOUT).
 */
static ssize_t nl_recv(struct nftsync *ns)
{
	int fd = mnl_socket_get_fd(ns->nl), p;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	for (;;) {
		n = recv(fd, ns->rxbuf, ns->rxlen, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno; /* ENOBUFS: answers lost */
		p = poll(&pfd, 1, ACK_TIMEOUT_MS);
		if (p < 0 && errno == EINTR)
			continue;
		if (p <= 0)
			return p ? -errno : -ETIMEDOUT;
	}
}

/*
 * Send one batch and read every ACK (nftables mnl_batch_talk()): the
 * kernel processes the batch inside sendmsg() and answers each command
 * (we asked for ACKs), continuing after an error so all of them are
 * reported; a refusal of the whole batch answers BEGIN only. The first
 * error is returned, named by the command its sequence number belongs to.
 */
static int nl_talk(const struct nftsync_batch *b, void *arg, char *err,
		   size_t errlen)
{
	struct nftsync *ns = arg;
	size_t len, ncmds = b->ncmds, acked = 0;
	const struct nlmsghdr *nlh;
	bool whole_batch = false;
	int fd, ret = 0, first = 0, left;
	const void *data;
	ssize_t n;

	data = nftsync_batch_data(b, &len);
	if (!data)
		return -EINVAL;
	fd = mnl_socket_get_fd(ns->nl);
	/* Only large apply batches get here with a setsockopt() to do. */
	grow_sockbuf(fd, SO_SNDBUFFORCE, SO_SNDBUF, &ns->sndbuf, len + 4096);
	grow_sockbuf(fd, SO_RCVBUFFORCE, SO_RCVBUF, &ns->rcvbuf,
		     ncmds * 1024 + 65536);
	if (mnl_socket_sendto(ns->nl, data, len) < 0) {
		ret = -errno;
		snprintf(err, errlen,
			 "nftables: sending the batch failed: %s%s",
			 strerror(-ret), errno_hint(-ret));
		return ret;
	}
	while (acked < ncmds && !whole_batch) {
		n = nl_recv(ns);
		if (n < 0) {
			ret = (int)n; /* ENOBUFS: outcome unknown */
			break;
		}
		left = (int)n;
		for (nlh = (const struct nlmsghdr *)ns->rxbuf;
		     mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			const struct nlmsgerr *e;
			uint32_t i = nlh->nlmsg_seq - b->seq_base;
			const char *what, *ext;

			if (nlh->nlmsg_type != NLMSG_ERROR || i >= b->ndesc)
				continue; /* stale or not an ACK */
			if (i > 0 && i <= ncmds)
				acked++;
			else
				whole_batch = true;
			e = mnl_nlmsg_get_payload(nlh);
			if (!e->error || first)
				continue;
			first = e->error;
			what = nftsync_batch_describe(b, nlh->nlmsg_seq);
			ext = extack_msg(nlh);
			snprintf(err, errlen,
				 "nftables refused '%s' (seq %u): %s%s%s%s",
				 what ? what : "?", nlh->nlmsg_seq,
				 strerror(-first), ext ? ": " : "",
				 ext ? ext : "", errno_hint(-first));
		}
	}
	/* Every command answered once: nothing of this batch is left.
	 * Otherwise drain what is, so that it does not linger. */
	if (acked < ncmds || whole_batch)
		while (recv(fd, ns->rxbuf, ns->rxlen, MSG_DONTWAIT) > 0)
			;
	if (first)
		return first;
	if (ret)
		snprintf(err, errlen,
			 "nftables: reading ACKs failed after %zu of %zu: %s",
			 acked, ncmds, strerror(-ret));
	return ret;
}

int nftsync_new_with_talker(struct nftsync **out, nftsync_talk_fn talk,
			    void *arg)
{
	struct nftsync *ns;

	*out = NULL;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->seq = (uint32_t)time(NULL) << 8;
	ns->talk = talk;
	ns->talk_arg = arg;
	*out = ns;
	return 0;
}

int nftsync_new(struct nftsync **out, char *err, size_t errlen)
{
	struct nftsync *ns = NULL;
	int one = 1, ret;

	*out = NULL;
	if (nftsync_new_with_talker(&ns, nl_talk, NULL)) {
		snprintf(err, errlen, "nftables: out of memory");
		return -ENOMEM;
	}
	ns->talk_arg = ns;
	ns->rxlen = MNL_SOCKET_BUFFER_SIZE > 65536 ? MNL_SOCKET_BUFFER_SIZE :
						     65536;
	ns->rxbuf = malloc(ns->rxlen);
	if (!ns->rxbuf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "nftables: out of memory");
		goto err_free;
	}
	ns->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!ns->nl) {
		ret = -errno;
		snprintf(err, errlen, "nftables: netlink socket: %s%s",
			 strerror(-ret), errno_hint(-ret));
		goto err_free;
	}
	if (mnl_socket_bind(ns->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		snprintf(err, errlen, "nftables: netlink bind: %s%s",
			 strerror(-ret), errno_hint(-ret));
		goto err_free;
	}
	ns->portid = mnl_socket_get_portid(ns->nl);
	/* Once here rather than per batch; nl_talk() grows them for
	 * batches that need more (large policies). */
	grow_sockbuf(mnl_socket_get_fd(ns->nl), SO_SNDBUFFORCE, SO_SNDBUF,
		     &ns->sndbuf, NL_SNDBUF_MIN);
	grow_sockbuf(mnl_socket_get_fd(ns->nl), SO_RCVBUFFORCE, SO_RCVBUF,
		     &ns->rcvbuf, NL_RCVBUF_MIN);
	/* Error ACKs carry the kernel's explanation, not our whole
	 * message back. Both are best effort on old kernels. */
	(void)mnl_socket_setsockopt(ns->nl, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(ns->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	*out = ns;
	return 0;
err_free:
	nftsync_free(ns);
	return ret;
}

void nftsync_free(struct nftsync *ns)
{
	if (!ns)
		return;
	nftsync_batch_free(ns->lb);
	free(ns->scratch);
	if (ns->nl)
		mnl_socket_close(ns->nl);
	free(ns->rxbuf);
	free(ns);
}

/* Hand a built batch to the talker and count it; later batches are
 * numbered on from its last sequence number. */
static int run_batch(struct nftsync *ns, struct nftsync_batch *b, char *err,
		     size_t errlen)
{
	int ret;

	ns->seq = b->seq;
	ns->stats.batches++;
	ret = ns->talk(b, ns->talk_arg, err, errlen);
	if (ret)
		ns->stats.batch_errors++;
	return ret;
}

/*
 * The end of every one-batch operation: b as built (build_ret, the
 * builder's result) goes to the kernel, and b is freed. err always says
 * what failed: the build (what, then the error) or the batch.
 */
static int send_built(struct nftsync *ns, struct nftsync_batch *b,
		      int build_ret, const char *what, char *err, size_t errlen)
{
	int ret = build_ret;

	if (ret)
		snprintf(err, errlen, "%s: %s", what, strerror(-ret));
	else
		ret = run_batch(ns, b, err, errlen);
	nftsync_batch_free(b);
	return ret;
}

/* A batch for a one-batch operation; NULL with err set. */
static struct nftsync_batch *batch_for(struct nftsync *ns, char *err,
				       size_t errlen)
{
	struct nftsync_batch *b = nftsync_batch_new(ns->seq);

	if (!b)
		snprintf(err, errlen, "nftables: out of memory");
	return b;
}

bool nftsync_is_filtering(const struct nftsync *ns)
{
	return ns->filtering;
}

void nftsync_get_stats(const struct nftsync *ns, struct nftsync_stats *out)
{
	*out = ns->stats;
}

/* ---- learned addresses: the writer ---------------------------------- */

/* Learn batches above this are not kept for the next learn. */
#define LEARN_BATCH_KEEP (256 * 1024)

/*
 * Build one learn batch into the reused ns->lb and send it. The builder
 * is the one check of the addresses (-EINVAL) and the one place an
 * answer's duplicates are merged (sorted, per set).
 */
static int learn_batch(struct nftsync *ns, const struct policy_addr *known,
		       size_t nknown, const struct policy_addr *fresh,
		       size_t nfresh, unsigned int timeout_s, char *err,
		       size_t errlen)
{
	int ret;

	if (ns->lb) {
		nftsync_batch_reset(ns->lb, ns->seq);
	} else {
		ns->lb = nftsync_batch_new(ns->seq);
		if (!ns->lb)
			goto oom;
	}
	ret = nftsync_build_learn_split(ns->lb, known, nknown, fresh, nfresh,
					timeout_s);
	if (ret == -ENOMEM)
		goto oom;
	if (ret)
		snprintf(err, errlen, "nftsync_learn: bad arguments");
	else
		ret = run_batch(ns, ns->lb, err, errlen);
	if (ns->lb->cap > LEARN_BATCH_KEEP) {
		nftsync_batch_free(ns->lb);
		ns->lb = NULL;
	}
	return ret;
oom:
	snprintf(err, errlen, "nftsync_learn: out of memory");
	return -ENOMEM;
}

/*
 * Which write an address needs (known[i] comes from the registry):
 *
 * - The registry knows it (written before, or at least taught before the
 *   filter was installed): it may be in the kernel with an older expiry,
 *   so it gets the refresh sequence (add, delete, add), the only way to
 *   rewrite an expiry on every kernel.
 * - The registry does not know it: the learned sets normally do not have
 *   it either (every element was written through the registry, which
 *   keeps each one until long after its expiry), so one add creates it
 *   with the right timeout. But the sets may hold it anyway: after a
 *   restart the sets were adopted with the previous agent's elements (up
 *   to LEARN_TTL_MAX + LEARN_GRACE of lifetime left), or a batch was
 *   applied although reading its ACKs failed. A plain add of an existing
 *   element succeeds without rewriting its expiry on some kernels (5.10),
 *   which would let it expire early. So the single add is exclusive
 *   (NLM_F_EXCL): if the element exists, the kernel refuses the whole
 *   batch with EEXIST, nothing changed, and the batch is sent again with
 *   every address refreshed. Correctness never depends on guessing; the
 *   guess only decides the cost. Since one such refusal means there may
 *   be more (a restart), unknown addresses are refreshed directly for
 *   the next timeout_s seconds; afterwards they are probed again.
 *
 * An address the answer lists twice has the same known[] value both
 * times (the registry is not changed meanwhile), so it lands in one list
 * twice, and the builder writes it once.
 */
int nftsync_learn_write(struct nftsync *ns, uint64_t now_ms,
			const struct policy_addr *addrs, const bool *known_v,
			size_t n, unsigned int timeout_s, char *err,
			size_t errlen)
{
	uint64_t tmo = (uint64_t)timeout_s * 1000;
	struct policy_addr *known, *fresh;
	size_t nknown = 0, nfresh = 0, i;
	int ret;

	if (!timeout_s) {
		snprintf(err, errlen, "nftsync_learn: bad arguments");
		return -EINVAL;
	}
	if (!n || !ns->filtering)
		return 0;
	if (n > ns->scratch_cap) {
		free(ns->scratch);
		ns->scratch_cap = 0;
		ns->scratch = malloc(n * sizeof(*ns->scratch));
		if (!ns->scratch) {
			snprintf(err, errlen, "nftsync_learn: out of memory");
			return -ENOMEM;
		}
		ns->scratch_cap = n;
	}
	/* known[] grows up from the front, fresh[] down from the back. */
	known = ns->scratch;
	fresh = ns->scratch + n;
	for (i = 0; i < n; i++) {
		if (known_v[i] || now_ms < ns->refresh_until_ms) {
			known[nknown++] = addrs[i];
		} else {
			*--fresh = addrs[i];
			nfresh++;
		}
	}
	ret = learn_batch(ns, known, nknown, fresh, nfresh, timeout_s, err,
			  errlen);
	if (ret == -EEXIST && nfresh) {
		/* In the kernel although not in the registry: refresh them
		 * all (the refused batch changed nothing). */
		ns->stats.learn_exists++;
		ns->refresh_until_ms = now_ms + tmo;
		memmove(known + nknown, fresh, nfresh * sizeof(*fresh));
		nknown += nfresh;
		nfresh = 0;
		ret = learn_batch(ns, known, nknown, NULL, 0, timeout_s, err,
				  errlen);
	}
	if (!ret)
		ns->stats.learn_sent += nknown + nfresh;
	return ret;
}

bool nftsync_learned_reset(const struct nftsync *ns)
{
	return ns->learned_reset;
}

/* ---- apply, cleanup ------------------------------------------------- */

static bool is_fatal(int err)
{
	return err == -EPERM || err == -EACCES || err == -ENOMEM ||
	       err == -EPROTONOSUPPORT || err == -EAFNOSUPPORT ||
	       err == -ETIMEDOUT || err == -ENOBUFS || err == -EINVAL;
}

static int apply_once(struct nftsync *ns, const struct nftsync_config *cfg,
		      const struct policy_addr *forget, size_t n_forget,
		      unsigned int flags, char *err, size_t errlen)
{
	struct nftsync_batch *b = batch_for(ns, err, errlen);
	int ret;

	if (!b)
		return -ENOMEM;
	ret = nftsync_build_apply(b, cfg, forget, n_forget, flags);
	return send_built(
		ns, b, ret,
		ret == -EINVAL ?
			"nftables: bad configuration (dns port, agent cgroup id and level >= 1, addresses)" :
			"nftables: building the batch",
		err, errlen);
}

int nftsync_apply(struct nftsync *ns, const struct nftsync_config *cfg,
		  const struct nftsync_update *upd, char *err, size_t errlen)
{
	const struct policy_addr *v = upd ? upd->forget : NULL;
	size_t n = upd ? upd->n_forget : 0;
	unsigned int flags = 0;
	int ret;

	if (upd && upd->flush_learned)
		flags |= NFTSYNC_BUILD_FLUSH_LEARNED;
	ret = apply_once(ns, cfg, v, n, flags, err, errlen);
	if (ret && !is_fatal(ret)) {
		/* An incompatible table (another version, a hand edit):
		 * replace it whole, still in one transaction. Foreign
		 * objects in it and the learned elements go: say so. */
		log_warnx("nftables refused the update of table inet egressd "
			  "(%s); replacing the table whole: objects added to "
			  "it by others are removed and learned addresses are "
			  "forgotten until answered again",
			  err);
		ret = apply_once(ns, cfg, NULL, 0,
				 flags | NFTSYNC_BUILD_REPLACE, err, errlen);
		flags |= NFTSYNC_BUILD_FLUSH_LEARNED;
	}
	if (ret) {
		ns->filtering = false;
		return ret;
	}
	/* The learned sets are empty or unknown: the caller has the next
	 * answers rewrite every address (learned_mark_stale()). */
	ns->learned_reset = (flags & NFTSYNC_BUILD_FLUSH_LEARNED) ||
			    !cfg->filter || !ns->filtering;
	ns->filtering = cfg->filter;
	return 0;
}

int nftsync_cleanup(struct nftsync *ns, char *err, size_t errlen)
{
	struct nftsync_batch *b = batch_for(ns, err, errlen);
	int ret;

	if (!b)
		return -ENOMEM;
	ret = send_built(ns, b, nftsync_build_cleanup(b),
			 "nftables: building the cleanup", err, errlen);
	if (ret == -ENOENT)
		ret = 0;
	if (!ret) {
		ns->filtering = false;
		ns->learned_reset = true;
	}
	return ret;
}

int nftsync_netdev_apply(struct nftsync *ns, const char *const *ifnames,
			 size_t n, char *err, size_t errlen)
{
	struct nftsync_batch *b = batch_for(ns, err, errlen);

	if (!b)
		return -ENOMEM;
	return send_built(ns, b,
			  nftsync_build_netdev(b, ifnames, n,
					       NFTSYNC_DEFAULT_LOG_GROUP),
			  "table netdev", err, errlen);
}

int nftsync_probe_cgroup_level(struct nftsync *ns, uint64_t id, uint32_t *level,
			       char *err, size_t errlen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct nftsync_batch *b;
	char cerr[256];
	uint32_t l;
	int fd = -1, ret;

	*level = 0;
	b = batch_for(ns, err, errlen);
	if (!b)
		return -ENOMEM;
	/* Not send_built(): b is used again for the probe's cleanup. */
	ret = nftsync_build_level_probe(b, id, NFTSYNC_PROBE_MAX_LEVEL);
	if (ret)
		snprintf(err, errlen, "nftables: building the level probe: %s",
			 strerror(-ret));
	else
		ret = run_batch(ns, b, err, errlen);
	if (ret)
		goto out;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "probe socket: %s", strerror(-ret));
		goto drop;
	}
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ret = -ENOENT;
	for (l = 0; l <= NFTSYNC_PROBE_MAX_LEVEL; l++) {
		sin.sin_port = htons(NFTSYNC_PROBE_PORT + l);
		if (sendto(fd, "", 0, 0, (struct sockaddr *)&sin, sizeof(sin)) <
			    0 &&
		    errno == EPERM) {
			*level = l;
			ret = 0;
			break;
		}
	}
	if (ret)
		snprintf(
			err, errlen,
			"no level 0-%u of the cgroup hierarchy holds cgroup id %llu",
			NFTSYNC_PROBE_MAX_LEVEL, (unsigned long long)id);
drop:
	if (fd >= 0)
		close(fd);
	nftsync_batch_reset(b, ns->seq);
	if (!nftsync_build_probe_cleanup(b))
		(void)run_batch(ns, b, cerr, sizeof(cerr));
out:
	nftsync_batch_free(b);
	return ret;
}

/*
 * One NFT_MSG_GETTABLE on the agent's own socket: a table deleted behind
 * egressd's back (nft delete table, another tool's flush ruleset) is seen
 * by /status, not only by the next batch. The answer is read like a
 * batch's ACKs (nl_recv(), the talker's buffer and timeout); messages of
 * other sequence numbers (none are expected: every batch drains its
 * ACKs) are skipped.
 */
int nftsync_table_exists(struct nftsync *ns)
{
	struct nftnl_table *t;
	struct nlmsghdr *nlh;
	uint32_t seq;
	ssize_t n;
	int ret;

	if (!ns->nl)
		return -ENOTSUP;
	t = nftnl_table_alloc();
	if (!t)
		return -ENOMEM;
	seq = ++ns->seq;
	/* The request goes out of the receive buffer, which its answer
	 * then overwrites. */
	nlh = nftnl_nlmsg_build_hdr(ns->rxbuf, NFT_MSG_GETTABLE, NFPROTO_INET,
				    0, seq);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFTSYNC_TABLE);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	if (mnl_socket_sendto(ns->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		n = nl_recv(ns);
		if (n < 0)
			return (int)n;
		ret = mnl_cb_run(ns->rxbuf, n, seq, ns->portid, NULL, NULL);
		if (ret >= 0)
			return 1;
		if (errno == ESRCH)
			continue; /* an answer to something else */
		return errno == ENOENT ? 0 : -errno;
	}
}
