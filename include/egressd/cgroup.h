/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Where egressd and the sandbox sit in the cgroup v2 hierarchy. The kernel
 * exempts the agent's own upstream DNS queries from the port-53 redirect
 * (and from the filter) by the id of its cgroup, the inode number of the
 * cgroup directory; a packet mark would not do, since any process with
 * CAP_NET_RAW can set SO_MARK.
 *
 * egressd usually runs as a sidecar container with a private cgroup
 * namespace: the cgroup2 root it sees is its own container's cgroup, and
 * the app sits in a sibling cgroup it cannot see. The kernel's matches
 * (nft "socket cgroupv2 level N", bpf_skb_ancestor_cgroup_id) count levels
 * from the host's root, so every cgroup here carries its absolute level,
 * learnt from the host's hierarchy when it is mounted into the sidecar
 * (OPENSANDBOX_EGRESS_HOST_CGROUP2) or, failing that, by a probe
 * (nftsync_probe_cgroup_level). docs/design.md, "Where egressd runs".
 */
#ifndef __EGRESSD_CGROUP_H
#define __EGRESSD_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egressd/config.h"

/* The root cgroup's id: a cgroup2 mount whose root has another inode
 * shows a subtree (a private cgroup namespace, or a bind mount). */
#define CGROUP_ROOT_ID 1

struct cgroup_info {
	char dir[PATH_MAX]; /* directory, as this process reaches it */
	char host_path[PATH_MAX]; /* path as the host sees it, "" unknown */
	uint64_t id; /* inode number of dir */
	uint32_t level; /* absolute: 0 root, 1 "/a", … (BPF) */
	bool level_known;
	uint32_t nft_level; /* what nft "socket cgroupv2 level" takes */
	bool nft_ok; /* nft_level is known and expressible */
};

/* What egressd can see of the hierarchy. */
struct cgroup_view {
	char mount[PATH_MAX]; /* the cgroup2 mount egressd sees */
	uint64_t mount_root_id; /* inode of its root */
	bool private_ns; /* mount_root_id != CGROUP_ROOT_ID */
	char host[PATH_MAX]; /* host hierarchy: "" when not visible */
	char root_host_path[PATH_MAX]; /* host path of mount's root, or "" */
	uint32_t root_level; /* absolute level of mount's root */
	bool root_level_known;
	/*
	 * Kernels with "nft_socket: make cgroupsv2 matching work with
	 * namespaces" (6.12, and stable backports) count an nft rule's
	 * level from the cgroup namespace root of whoever adds the rule;
	 * older ones from the host's root. The probe tells which.
	 */
	bool nft_relative;
	bool agent_moved; /* egressd created and entered its cgroup */
	bool agent_shared; /* egressd's cgroup may hold other processes */
	char container[PATH_MAX]; /* host path of the container cgroup */
};

/* Mount point of the first cgroup2 filesystem in mounts_path
 * (/proc/mounts); 0 or -ENOENT. */
int cgroup_find_mount(const char *mounts_path, char *buf, size_t len);

/* Number of components in a cgroup path ("/" = 0, "/a/b" = 2). */
uint32_t cgroup_path_level(const char *path);

/*
 * Find the cgroup2 mount, the host's hierarchy (cfg->host_cgroup2, which
 * must be the root of a cgroup2 hierarchy), and put the agent in a cgroup
 * of its own: cfg->agent_cgroup when set (created if missing); else the
 * cgroup it was started in, or a new "egressd" child of it when started
 * at the root of what it sees (the host's root, where every process
 * would share its identity, or its container's cgroup where that is
 * writable). A read-only container cgroup is used as it is: it is a real
 * cgroup of its own. Fills view and agent; agent->level_known is false
 * when only a probe can tell the level (cgroup_set_agent_level()).
 */
int cgroup_setup(const struct egressd_config *cfg, struct cgroup_view *view,
		 struct cgroup_info *agent, char *err, size_t errlen);

/*
 * The nft level probe found the agent's cgroup at rule level probed
 * (nftsync_probe_cgroup_level): learn which way this kernel counts, and,
 * counting from the host's root, the absolute levels a private cgroup
 * namespace hides.
 */
void cgroup_apply_probe(struct cgroup_view *view, struct cgroup_info *agent,
			uint32_t probed);

/* Fill c->nft_level/nft_ok for a cgroup found by cgroup_attach_point():
 * a kernel that counts from egressd's cgroup namespace root cannot match
 * a cgroup above it (the sandbox) in nft rules. */
void cgroup_nft_level(const struct cgroup_view *view, struct cgroup_info *c);

/*
 * Where the BPF programs attach (docs/design.md): cfg->workload_cgroup
 * when set (read in the host's hierarchy when it is visible), else the
 * sandbox cgroup, the parent of egressd's container cgroup, when egressd
 * can see it and it is not one every container shares (the root,
 * system.slice, docker, kubepods QoS slices, …). Returns 0 with out and
 * how filled, 1 when there is no safe attach point (why says so, BPF
 * stays off and nftables judges the namespace), -errno with err set.
 * out->level 0 is the host's root cgroup (allowed only with netns filtering).
 */
int cgroup_attach_point(const struct egressd_config *cfg,
			const struct cgroup_view *view,
			const struct cgroup_info *agent,
			struct cgroup_info *out, char *how, size_t howlen,
			char *err, size_t errlen);

/* Is the cgroup named (last path component) one that every container on
 * a node shares (Docker's and the kubelet's parents)? */
bool cgroup_is_shared_parent(const char *host_path);

/* Host path (below root, "/…") of the directory whose inode is id,
 * searched below root; 0, -ENOENT, -E2BIG (too many cgroups). */
int cgroup_find_by_id(const char *root, uint64_t id, char *buf, size_t len);

#endif /* __EGRESSD_CGROUP_H */
