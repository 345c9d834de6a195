/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Watching egressd's own cgroup for a process that is not egressd
 * (docs/security.md, class 4). nftables can only exempt egressd by its cgroup, so where
 * that cgroup is one egressd should have to itself, a foreign process in
 * it must cost the cgroup its exemption: an inotify watch reports at once
 * any write to its cgroup.procs or cgroup.threads and any cgroup made
 * below it (egressd does neither after start, and the write gives away
 * even an intruder gone before a scan), and a scan of cgroup.procs every
 * scan_ms finds processes that came in without writing the file
 * (clone3 CLONE_INTO_CGROUP), if they are still there: nothing inotify
 * can see marks such a move. egressd and its parent (an init such as
 * tini, a supervisor, timeout) are not foreign. The callback runs once;
 * the watch then stops.
 */
#ifndef __EGRESSD_CGWATCH_H
#define __EGRESSD_CGWATCH_H

#include "egressd/loop.h"

struct cgwatch;

/* pid: the foreign process found (0 when the inotify event came first
 * and the process is gone or not in yet); what: the write to cgroup.procs
 * or cgroup.threads or the cgroup made that inotify saw, in words, NULL
 * when only the scan found pid. At least one of the two is set. */
typedef void (*cgwatch_cb)(void *arg, long pid, const char *what);

/*
 * A process of cgroup directory dir, or of one below it, other than
 * egressd and its parent: its pid, 0 when there is none, -errno when
 * dir/cgroup.procs cannot be read.
 */
long cgwatch_foreign_pid(const char *dir);

/*
 * Start watching dir. 0 or -errno (*out NULL): -ENAMETOOLONG or -ENOMEM,
 * which say it all, so no err buffer.
 */
int cgwatch_new(struct cgwatch **out, struct loop *loop, const char *dir,
		unsigned int scan_ms, cgwatch_cb cb, void *arg);

void cgwatch_free(struct cgwatch *w);

#endif /* __EGRESSD_CGWATCH_H */
