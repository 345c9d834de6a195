/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cgroup v2 identity of the agent. The kernel exempts the agent's own
 * upstream DNS queries from the port-53 redirect (and later from the
 * filter) by the id of its cgroup, the inode number of the cgroup
 * directory; a packet mark would not do, since any process with
 * CAP_NET_RAW can set SO_MARK.
 */
#ifndef __EGRESSD_CGROUP_H
#define __EGRESSD_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "egressd/config.h"

struct cgroup_info {
	char mount[PATH_MAX]; /* where cgroup2 is mounted */
	char path[PATH_MAX];  /* cgroup path relative to the mount, "/…" */
	uint64_t id;	      /* inode number of mount + path */
	uint32_t level;	      /* 0 for the root, 1 for "/a", … */
};

/* Mount point of the first cgroup2 filesystem in mounts_path
 * (/proc/mounts); 0 or -ENOENT. */
int cgroup_find_mount(const char *mounts_path, char *buf, size_t len);

/* Number of components in a cgroup path ("/" = 0, "/a/b" = 2). */
uint32_t cgroup_path_level(const char *path);

/*
 * Put the agent in a cgroup of its own and describe it: cfg->agent_cgroup
 * when set (created if missing), else the cgroup it was started in, or a
 * new "<mount>/egressd" child when started in the root cgroup. Fails with
 * err saying what to do when no cgroup distinct from the workload's can
 * be had.
 */
int cgroup_agent_setup(const struct egressd_config *cfg,
		       struct cgroup_info *out, char *err, size_t errlen);

/*
 * The workload cgroup (BPF attach point): cfg->workload_cgroup, or the
 * root of the cgroup2 mount agent->mount when unset. Fills its directory
 * path, id and level. 0 or -errno with err set.
 */
int cgroup_workload(const struct egressd_config *cfg,
		    const struct cgroup_info *agent, struct cgroup_info *out,
		    char *err, size_t errlen);

#endif /* __EGRESSD_CGROUP_H */
