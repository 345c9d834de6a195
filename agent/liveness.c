// SPDX-License-Identifier: GPL-2.0-only
/*
 * Liveness (include/egressd/liveness.h): the running agent holds an
 * abstract unix stream socket, LIVENESS_NAME, whose scope is the network
 * namespace; each connection to it is answered with one greeting line
 * ("egressd pid=N") and closed. `egressd --cleanup` connects to it before
 * it removes anything, and refuses while an egressd answers. The same
 * module checks, for /status, that the table and the BPF links this agent
 * installed are still in the kernel, so that /status never reports a
 * layer that someone removed behind egressd's back.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "egressd/bpfsync.h"
#include "egressd/liveness.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/nftsync.h"

#define GREETING "egressd pid="
#define PROBE_TIMEOUT_MS 2000

struct liveness {
	struct loop *loop;
	int fd; /* -1: the name is not ours */
	/* what /status reported last, for one warning per change */
	bool nft_missing, bpf_missing, bpf_unpinned, redirect_missing;
};

static socklen_t name_addr(struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	/* sun_path[0] stays 0: an abstract name, scoped to the netns */
	memcpy(sun->sun_path + 1, LIVENESS_NAME, strlen(LIVENESS_NAME));
	return offsetof(struct sockaddr_un, sun_path) + 1 +
	       strlen(LIVENESS_NAME);
}

/* A probe: say who we are and hang up. Never blocks the loop. */
static void accept_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	char msg[64];
	int c, len;

	len = snprintf(msg, sizeof(msg), GREETING "%d\n", (int)getpid());
	while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
	       0) {
		(void)!send(c, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(c);
	}
}

static void read_comm(pid_t pid, char *comm, size_t len)
{
	char path[64];
	size_t n;
	FILE *f;

	comm[0] = 0;
	if (pid <= 0 || !len)
		return;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, len, f)) {
		n = strlen(comm);
		if (n && comm[n - 1] == '\n')
			comm[n - 1] = 0;
	}
	fclose(f);
}

/*
 * Connect to the name; 1 when someone listens (*pid from SO_PEERCRED,
 * *greeted when it answered like an egressd), 0 when nobody does.
 */
static int probe(pid_t *pid, bool *greeted)
{
	struct sockaddr_un sun;
	struct ucred cred;
	socklen_t clen = sizeof(cred), alen = name_addr(&sun);
	char buf[64];
	struct pollfd pfd;
	ssize_t n;
	int fd, ret;

	*pid = 0;
	*greeted = false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, alen)) {
		ret = -errno;
		close(fd);
		/* EAGAIN: its backlog is full, so someone holds it */
		if (ret == -EAGAIN)
			return 1;
		return ret == -ECONNREFUSED || ret == -ENOENT ? 0 : ret;
	}
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen))
		*pid = cred.pid;
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, PROBE_TIMEOUT_MS) == 1) {
		n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n > 0) {
			buf[n] = 0;
			*greeted = !strncmp(buf, GREETING, strlen(GREETING));
			if (*greeted && !*pid)
				*pid = atoi(buf + strlen(GREETING));
		}
	}
	close(fd);
	return 1;
}

int liveness_probe(pid_t *pid, char *comm, size_t commlen)
{
	bool greeted;
	int ret;

	ret = probe(pid, &greeted);
	if (commlen)
		comm[0] = 0;
	if (ret == 1)
		read_comm(*pid, comm, commlen);
	return ret;
}

int liveness_hold(struct loop *loop, struct liveness **out)
{
	struct sockaddr_un sun;
	struct liveness *lv;
	socklen_t alen = name_addr(&sun);
	char comm[32];
	bool greeted;
	pid_t pid;
	int err;

	*out = NULL;
	lv = calloc(1, sizeof(*lv));
	if (!lv)
		return -ENOMEM;
	lv->loop = loop;
	lv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lv->fd < 0) {
		err = -errno;
		goto out_warn;
	}
	if (bind(lv->fd, (struct sockaddr *)&sun, alen) || listen(lv->fd, 16)) {
		err = -errno;
		goto out_warn;
	}
	err = loop_add_fd(loop, lv->fd, EPOLLIN, accept_cb, lv);
	if (err)
		goto out_warn;
	*out = lv;
	return 0;

out_warn:
	if (lv->fd >= 0)
		close(lv->fd);
	lv->fd = -1;
	if (err == -EADDRINUSE && probe(&pid, &greeted) == 1) {
		read_comm(pid, comm, sizeof(comm));
		if (greeted)
			log_warnx(
				"another egressd (pid %d) runs in this network namespace and holds the name @%s: both program table inet egressd, stop one of them",
				(int)pid, LIVENESS_NAME);
		else
			log_warnx(
				"the abstract socket name @%s of this network namespace is held by pid %d (%s), not by egressd: egressd runs, but egressd --cleanup can tell that it runs only by the lock on its BPF pin directory",
				LIVENESS_NAME, (int)pid, comm[0] ? comm : "?");
	} else {
		log_warnx(
			"cannot hold the abstract socket name @%s (%s): egressd runs, but egressd --cleanup can tell that it runs only by the lock on its BPF pin directory",
			LIVENESS_NAME, strerror(-err));
	}
	*out = lv;
	return 0;
}

void liveness_free(struct liveness *lv)
{
	if (!lv)
		return;
	if (lv->fd >= 0) {
		loop_del_fd(lv->loop, lv->fd);
		close(lv->fd);
	}
	free(lv);
}

int liveness_cleanup_guard(const char *pin_dir, char *err, size_t errlen)
{
	const char *dir = pin_dir ? pin_dir : BPFSYNC_DEFAULT_PIN_DIR;
	char comm[32] = "";
	bool greeted = false;
	pid_t pid = 0;
	int ret, fd;

	ret = probe(&pid, &greeted);
	if (ret == 1)
		read_comm(pid, comm, sizeof(comm));
	/* comm "egressd" counts even if the greeting was slow */
	if (ret == 1 && (greeted || !strcmp(comm, "egressd"))) {
		if (pid)
			snprintf(
				err, errlen,
				"egressd (pid %d) is running in this network namespace and holds table inet %s: stop it first",
				(int)pid, NFTSYNC_TABLE);
		else
			snprintf(
				err, errlen,
				"an egressd is running in this network namespace and holds table inet %s: stop it first",
				NFTSYNC_TABLE);
		return -EBUSY;
	}
	if (ret == 1)
		fprintf(stderr,
			"egressd: the name @%s is held by pid %d (%s), which does not answer as egressd: relying on the lock of %s alone\n",
			LIVENESS_NAME, (int)pid, comm[0] ? comm : "?", dir);
	else if (ret < 0)
		fprintf(stderr,
			"egressd: cannot probe the name @%s (%s): relying on the lock of %s alone\n",
			LIVENESS_NAME, strerror(-ret), dir);
	fd = bpfsync_cleanup_lock(pin_dir);
	if (fd == -EBUSY)
		snprintf(
			err, errlen,
			"an egressd holds the lock of %s: it is running (in this or another network namespace) and its programs use these pins: stop it first",
			dir);
	else if (fd < 0 && fd != -ENOENT)
		snprintf(err, errlen, "cannot lock %s: %s", dir, strerror(-fd));
	return fd;
}

/* One line when a layer goes missing or comes back; none otherwise. */
static void note_change(bool *was, bool now, const char *why, const char *back)
{
	if (*was == now)
		return;
	*was = now;
	if (now)
		log_warnx("%s", why);
	else
		log_info("%s", back);
}

static bool state_is(json_t *layer, const char *a, const char *b)
{
	const char *st = json_string_value(json_object_get(layer, "state"));

	return st && (!strcmp(st, a) || !strcmp(st, b));
}

static void set_missing(json_t *layer, const char *why)
{
	json_object_set_new(layer, "state", json_string("missing"));
	json_object_set_new(layer, "why", json_string(why));
}

void liveness_layers_verify(struct liveness *lv, json_t *layers,
			    struct nftsync *nft, struct bpfsync *bpf)
{
	json_t *l, *dns;
	char why[1024] = "", note[1536];
	const char *redir;
	const char *old;
	bool miss = false, unpinned = false;
	int ret;

	l = json_object_get(layers, "nft");
	if (nft && state_is(l, "on", "off")) {
		ret = nftsync_table_exists(nft);
		if (ret == 0) {
			miss = true;
			snprintf(
				why, sizeof(why),
				"table inet %s is no longer in the kernel (deleted outside egressd): nothing of the nftables layer enforces",
				NFTSYNC_TABLE);
			set_missing(l, why);
		} else if (ret < 0) {
			log_debug("nftables table check failed: %s",
				  strerror(-ret));
		}
	}
	note_change(&lv->nft_missing, miss, why,
		    "table inet " NFTSYNC_TABLE " is in the kernel again");
	dns = json_object_get(layers, "dns");
	redir = json_string_value(json_object_get(dns, "redirect"));
	/* "bpf+nft": nat redirects the processes outside the BPF attach
	 * cgroup (coverage partial). */
	if (miss && redir &&
	    (!strcmp(redir, "nft") || !strcmp(redir, "bpf+nft")))
		json_object_set_new(
			dns, "why",
			json_string(
				"the port-53 redirect went with table inet " NFTSYNC_TABLE));

	l = json_object_get(layers, "bpf");
	miss = false;
	if (bpf && state_is(l, "enforce", "observe")) {
		ret = bpfsync_links_check(bpf, false, why, sizeof(why));
		if (ret == -ENOLINK) {
			miss = true;
			set_missing(l, why);
		} else if (ret == -ENOENT) {
			unpinned = true;
			old = json_string_value(json_object_get(l, "why"));
			snprintf(note, sizeof(note), "%s%s%s", old ? old : "",
				 old ? "; " : "", why);
			json_object_set_new(l, "why", json_string(note));
		}
	}
	note_change(&lv->bpf_missing, miss, why,
		    "the BPF links are attached again");
	note_change(&lv->bpf_unpinned, unpinned, why,
		    "the BPF links are pinned again");

	/* The redirect programs: the dns layer's, whatever bpf's state. */
	miss = false;
	if (bpf && redir && !strncmp(redir, "bpf", 3)) {
		ret = bpfsync_links_check(bpf, true, why, sizeof(why));
		if (ret) {
			miss = ret == -ENOLINK;
			json_object_set_new(dns, "why", json_string(why));
		}
	}
	note_change(&lv->redirect_missing, miss, why,
		    "the BPF DNS redirect links are attached again");
}
