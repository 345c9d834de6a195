// SPDX-License-Identifier: GPL-2.0-only
/*
 * The watch on egressd's own cgroup (include/egressd/cgwatch.h): inotify
 * on the cgroup directory for writes to cgroup.procs/cgroup.threads and
 * new child cgroups, plus a periodic scan of cgroup.procs (recursively,
 * four levels at most). Both run in egressd's event loop; the first
 * finding is reported once, with the write when inotify saw one and the
 * pid when the scan finds one, and the watch stops.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "egressd/cgwatch.h"

#define CGWATCH_DEPTH 4

struct cgwatch {
	struct loop *loop;
	char dir[PATH_MAX];
	unsigned int scan_ms;
	int ino; /* inotify fd, or -1 */
	struct loop_timer *timer;
	cgwatch_cb cb;
	void *arg;
	bool fired;
};

static long foreign_in(const char *dir, int depth)
{
	char path[PATH_MAX + 16];
	struct dirent *de;
	long pid, ret = 0;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	/* cgroup.procs lists thread group ids: egressd's threads are not
	 * listed apart. egressd's parent started it there. */
	while (fscanf(f, "%ld", &pid) == 1)
		if (pid != (long)getpid() && pid != (long)getppid()) {
			ret = pid;
			break;
		}
	fclose(f);
	if (ret || depth >= CGWATCH_DEPTH || !(d = opendir(dir)))
		return ret;
	while (!ret && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		ret = foreign_in(path, depth + 1);
		if (ret < 0)
			ret = 0;
	}
	closedir(d);
	return ret;
}

long cgwatch_foreign_pid(const char *dir)
{
	return foreign_in(dir, 0);
}

/* Report once, then stop watching (the callback may not free w). */
static void fire(struct cgwatch *w, long pid, const char *what)
{
	if (w->fired)
		return;
	w->fired = true;
	if (w->ino >= 0) {
		loop_del_fd(w->loop, w->ino);
		close(w->ino);
		w->ino = -1;
	}
	if (w->timer)
		loop_timer_disarm(w->timer);
	w->cb(w->arg, pid, what);
}

/* What the pending inotify events say was done to the cgroup, or NULL. */
static const char *ino_drain(struct cgwatch *w)
{
	char buf[4096]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	const char *what = NULL;
	ssize_t n;
	char *p;

	if (w->ino < 0)
		return NULL;
	while ((n = read(w->ino, buf, sizeof(buf))) > 0)
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (!ev->len)
				continue;
			if ((ev->mask & IN_CREATE) && (ev->mask & IN_ISDIR))
				what = "a cgroup was made below egressd's cgroup";
			else if ((ev->mask & IN_MODIFY) &&
				 (!strcmp(ev->name, "cgroup.procs") ||
				  !strcmp(ev->name, "cgroup.threads")))
				what = "a process, not egressd, was moved into egressd's cgroup";
		}
	return what;
}

static void ino_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct cgwatch *w = arg;
	const char *what = ino_drain(w);

	/* Opening cgroup.procs with O_TRUNC (a shell's ">") is seen before
	 * the pid is written, and the intruder may be gone already: the pid
	 * may not be there. The write is the finding either way. */
	if (what)
		fire(w, cgwatch_foreign_pid(w->dir), what);
}

static void timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct cgwatch *w = arg;
	long pid = cgwatch_foreign_pid(w->dir);

	/* The loop runs due timers before it reads fds: a scan that finds
	 * an intruder whose write is still unread reports the write too,
	 * so the report does not depend on which of the two came first. */
	if (pid > 0) {
		fire(w, pid, ino_drain(w));
		return;
	}
	loop_timer_arm(t, w->scan_ms);
}

int cgwatch_new(struct cgwatch **out, struct loop *loop, const char *dir,
		unsigned int scan_ms, cgwatch_cb cb, void *arg)
{
	struct cgwatch *w;

	*out = NULL;
	if (strlen(dir) >= sizeof(w->dir))
		return -ENAMETOOLONG;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->loop = loop;
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	w->scan_ms = scan_ms;
	w->cb = cb;
	w->arg = arg;
	/* The inotify watch is best effort: the scan stays either way. */
	w->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ino >= 0 &&
	    (inotify_add_watch(w->ino, dir,
			       IN_MODIFY | IN_CREATE | IN_ONLYDIR) < 0 ||
	     loop_add_fd(loop, w->ino, EPOLLIN, ino_cb, w))) {
		close(w->ino);
		w->ino = -1;
	}
	w->timer = loop_timer_new(loop, timer_cb, w);
	if (!w->timer) {
		cgwatch_free(w);
		return -ENOMEM;
	}
	loop_timer_arm(w->timer, scan_ms);
	*out = w;
	return 0;
}

void cgwatch_free(struct cgwatch *w)
{
	if (!w)
		return;
	if (w->ino >= 0) {
		loop_del_fd(w->loop, w->ino);
		close(w->ino);
	}
	loop_timer_free(w->timer);
	free(w);
}
