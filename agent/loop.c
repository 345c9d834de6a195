// SPDX-License-Identifier: GPL-2.0-only
/*
 * The agent's only event loop: epoll over registered fds, one-shot timers
 * kept in a short list (the agent has a handful), and before-sleep hooks
 * where modules flush batched work (log lines, netlink batches). Handlers
 * run to completion and never block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "egressd/loop.h"
#include "egressd/util.h"

struct loop_fd {
	loop_fd_cb cb;
	void *arg;
	uint32_t gen; /* bumped on delete: stale epoll events are skipped */
	bool used;
};

struct loop_timer {
	struct loop *loop;
	loop_timer_cb cb;
	void *arg;
	uint64_t deadline;
	bool armed;
	struct loop_timer *next;
};

struct loop_hook {
	loop_hook_cb cb;
	void *arg;
};

struct loop {
	int epfd;
	bool stop;
	uint64_t now;
	struct loop_fd *fds;
	int n_fds;
	struct loop_timer *timers;
	struct loop_hook *hooks;
	int n_hooks;
};

int loop_new(struct loop **out)
{
	struct loop *loop;
	int err;

	*out = NULL;
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		err = -errno;
		free(loop);
		return err;
	}
	loop->now = util_clock_ms();
	*out = loop;
	return 0;
}

void loop_free(struct loop *loop)
{
	struct loop_timer *t, *next;

	if (!loop)
		return;
	for (t = loop->timers; t; t = next) {
		next = t->next;
		free(t);
	}
	close(loop->epfd);
	free(loop->fds);
	free(loop->hooks);
	free(loop);
}

static int loop_grow_fds(struct loop *loop, int fd)
{
	struct loop_fd *fds;
	int n = loop->n_fds ? loop->n_fds : 64;

	while (n <= fd)
		n *= 2;
	if (n == loop->n_fds)
		return 0;
	fds = realloc(loop->fds, n * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	memset(fds + loop->n_fds, 0, (n - loop->n_fds) * sizeof(*fds));
	loop->fds = fds;
	loop->n_fds = n;
	return 0;
}

static uint64_t loop_pack(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb,
		void *arg)
{
	struct epoll_event ev = { .events = events };
	struct loop_fd *lf;
	int err;

	if (fd < 0)
		return -EBADF;
	err = loop_grow_fds(loop, fd);
	if (err)
		return err;
	lf = &loop->fds[fd];
	if (lf->used)
		return -EEXIST;
	lf->gen++;
	ev.data.u64 = loop_pack(fd, lf->gen);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	lf->cb = cb;
	lf->arg = arg;
	lf->used = true;
	return 0;
}

int loop_mod_fd(struct loop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	if (fd < 0 || fd >= loop->n_fds || !loop->fds[fd].used)
		return -ENOENT;
	ev.data.u64 = loop_pack(fd, loop->fds[fd].gen);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int loop_del_fd(struct loop *loop, int fd)
{
	struct loop_fd *lf;

	if (fd < 0 || fd >= loop->n_fds || !loop->fds[fd].used)
		return -ENOENT;
	lf = &loop->fds[fd];
	lf->used = false;
	lf->gen++;
	lf->cb = NULL;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0)
		return -errno;
	return 0;
}

struct loop_timer *loop_timer_new(struct loop *loop, loop_timer_cb cb,
				  void *arg)
{
	struct loop_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->loop = loop;
	t->cb = cb;
	t->arg = arg;
	t->next = loop->timers;
	loop->timers = t;
	return t;
}

void loop_timer_arm(struct loop_timer *t, uint64_t ms)
{
	t->deadline = util_clock_ms() + ms;
	t->armed = true;
}

void loop_timer_disarm(struct loop_timer *t)
{
	t->armed = false;
}

bool loop_timer_is_armed(const struct loop_timer *t)
{
	return t->armed;
}

void loop_timer_free(struct loop_timer *t)
{
	struct loop_timer **pp;

	if (!t)
		return;
	for (pp = &t->loop->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	free(t);
}

int loop_add_before_sleep(struct loop *loop, loop_hook_cb cb, void *arg)
{
	struct loop_hook *hooks;

	hooks = realloc(loop->hooks, (loop->n_hooks + 1) * sizeof(*hooks));
	if (!hooks)
		return -ENOMEM;
	hooks[loop->n_hooks].cb = cb;
	hooks[loop->n_hooks].arg = arg;
	loop->hooks = hooks;
	loop->n_hooks++;
	return 0;
}

uint64_t loop_now_ms(struct loop *loop)
{
	return loop->now;
}

void loop_stop(struct loop *loop)
{
	loop->stop = true;
}

/* Fire due timers; returns ms until the next deadline, or -1 for none. */
static int loop_run_timers(struct loop *loop)
{
	struct loop_timer *t;
	uint64_t next = UINT64_MAX;
	bool fired;

	do {
		fired = false;
		loop->now = util_clock_ms();
		for (t = loop->timers; t; t = t->next) {
			if (!t->armed || t->deadline > loop->now)
				continue;
			t->armed = false;
			t->cb(loop, t, t->arg);
			/* The callback may have freed timers: rescan. */
			fired = true;
			break;
		}
	} while (fired && !loop->stop);

	for (t = loop->timers; t; t = t->next)
		if (t->armed && t->deadline < next)
			next = t->deadline;
	if (next == UINT64_MAX)
		return -1;
	return next > loop->now ? (int)(next - loop->now) : 0;
}

int loop_run(struct loop *loop)
{
	struct epoll_event evs[64];
	int i, n, timeout;

	loop->stop = false;
	while (!loop->stop) {
		timeout = loop_run_timers(loop);
		if (loop->stop)
			break;
		for (i = 0; i < loop->n_hooks; i++)
			loop->hooks[i].cb(loop, loop->hooks[i].arg);
		n = epoll_wait(loop->epfd, evs, 64, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		loop->now = util_clock_ms();
		for (i = 0; i < n && !loop->stop; i++) {
			int fd = (int)(uint32_t)evs[i].data.u64;
			uint32_t gen = evs[i].data.u64 >> 32;
			struct loop_fd *lf;

			if (fd >= loop->n_fds)
				continue;
			lf = &loop->fds[fd];
			/* Deleted (or deleted and re-added) since the wait. */
			if (!lf->used || lf->gen != gen)
				continue;
			lf->cb(loop, fd, evs[i].events, lf->arg);
		}
	}
	for (i = 0; i < loop->n_hooks; i++)
		loop->hooks[i].cb(loop, loop->hooks[i].arg);
	return 0;
}
