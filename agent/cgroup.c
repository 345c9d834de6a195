// SPDX-License-Identifier: GPL-2.0-only
/*
 * Finding egressd's cgroup v2 and the sandbox's. cgroup2 may be mounted
 * anywhere (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
 * hybrid ones), so the mount is looked up in /proc/mounts, never assumed.
 * In a container with a private cgroup namespace the mount shows only the
 * container's own subtree: the host's hierarchy, when mounted into the
 * sidecar, is where the sandbox (pod) cgroup and absolute levels are
 * found. Nothing here guesses: what cannot be seen is reported as unknown
 * and the caller falls back to the namespace-wide layer.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "egressd/cgroup.h"
#include "egressd/util.h"

/* Directories cgroup_find_by_id() visits at most (a node has thousands). */
#define CGROUP_WALK_MAX 200000

int cgroup_find_mount(const char *mounts_path, char *buf, size_t len)
{
	struct mntent *m;
	FILE *f;
	int ret = -ENOENT;

	f = setmntent(mounts_path, "re");
	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2"))
			continue;
		if (strlen(m->mnt_dir) >= len) {
			ret = -ENAMETOOLONG;
			break;
		}
		strcpy(buf, m->mnt_dir);
		ret = 0;
		break;
	}
	endmntent(f);
	return ret;
}

uint32_t cgroup_path_level(const char *path)
{
	uint32_t level = 0;
	const char *p = path;

	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		level++;
		while (*p && *p != '/')
			p++;
	}
	return level;
}

/* The "0::/path" line of /proc/self/cgroup (relative to the cgroup
 * namespace's root). */
static int cgroup_self_path(char *buf, size_t len)
{
	char line[PATH_MAX + 16];
	FILE *f;
	int ret = -ENOENT;

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (strlen(line + 3) >= len) {
			ret = -ENAMETOOLONG;
			break;
		}
		strcpy(buf, line + 3);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

static int cgroup_enter(const char *dir)
{
	char procs[PATH_MAX + 16];
	int fd, ret = 0;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* "0" moves the writing process itself. */
	if (write(fd, "0", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

/* Is cgroup path a equal to or an ancestor of path b? */
static int cgroup_contains(const char *a, const char *b)
{
	size_t la = strlen(a);

	while (la > 1 && a[la - 1] == '/')
		la--;
	if (la == 1 && a[0] == '/')
		return 1;
	return !strncmp(a, b, la) && (b[la] == '\0' || b[la] == '/');
}

/* "/sys/fs/cgroup/x/y", "/x/y" or "x/y" -> "/x/y" relative to the mount. */
static int cgroup_rel_path(const char *mount, const char *p, char *buf,
			   size_t len)
{
	size_t ml = strlen(mount);

	/* "/sys/fs/cgroup/x" (absolute) or "/x" / "x" (as in
	 * /proc/PID/cgroup, relative to the mount). */
	if (p[0] == '/' && !strncmp(p, mount, ml) &&
	    (p[ml] == '/' || p[ml] == '\0'))
		p += ml;
	if ((size_t)snprintf(buf, len, "%s%s", p[0] == '/' ? "" : "/", p) >=
	    len)
		return -ENAMETOOLONG;
	if (buf[1] == '\0')
		return 0;
	while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/')
		buf[strlen(buf) - 1] = '\0';
	return 0;
}

/* mount + "/rel" (rel "/" gives mount itself). */
static int cgroup_join(char *buf, size_t len, const char *mount,
		       const char *rel)
{
	size_t ml = strlen(mount), rl = strcmp(rel, "/") ? strlen(rel) : 0;

	if (ml + rl + 1 > len)
		return -ENAMETOOLONG;
	memcpy(buf, mount, ml);
	memcpy(buf + ml, rel, rl);
	buf[ml + rl] = '\0';
	return 0;
}

static int cgroup_stat_id(const char *dir, uint64_t *id)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	*id = st.st_ino;
	return 0;
}

/* Depth-first search of root's directories for inode id. */
static int find_walk(const char *dir, size_t rootlen, uint64_t id, char *buf,
		     size_t len, unsigned int *budget, unsigned int depth)
{
	struct dirent *de;
	DIR *d;
	int ret = -ENOENT;

	if (depth > 64)
		return -ENOENT;
	d = opendir(dir);
	if (!d)
		return -ENOENT;
	while (ret == -ENOENT && (de = readdir(d))) {
		char sub[PATH_MAX];

		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") ||
		    !strcmp(de->d_name, ".."))
			continue;
		if (!(*budget)--) {
			ret = -E2BIG;
			break;
		}
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir,
				     de->d_name) >= sizeof(sub))
			continue;
		if (de->d_ino == id) {
			if ((size_t)snprintf(buf, len, "%s", sub + rootlen) >=
			    len)
				ret = -ENAMETOOLONG;
			else
				ret = 0;
			break;
		}
		ret = find_walk(sub, rootlen, id, buf, len, budget, depth + 1);
	}
	closedir(d);
	return ret;
}

int cgroup_find_by_id(const char *root, uint64_t id, char *buf, size_t len)
{
	unsigned int budget = CGROUP_WALK_MAX;
	uint64_t rid;
	int ret;

	ret = cgroup_stat_id(root, &rid);
	if (ret)
		return ret;
	if (rid == id) {
		snprintf(buf, len, "/");
		return 0;
	}
	return find_walk(root, strlen(root), id, buf, len, &budget, 0);
}

bool cgroup_is_shared_parent(const char *host_path)
{
	/* Parents every container of a node shares: Docker (systemd and
	 * cgroupfs drivers), podman, libvirt/machined, the kubelet's QoS
	 * classes, and systemd's own slices. */
	static const char *const shared[] = {
		"system.slice",
		"user.slice",
		"machine.slice",
		"init.scope",
		"docker",
		"podman",
		"libpod_parent",
		"machine",
		"lxc.payload",
		"kubepods",
		"kubepods.slice",
		"burstable",
		"besteffort",
		"guaranteed",
		"kubepods-burstable.slice",
		"kubepods-besteffort.slice",
		"kubepods-guaranteed.slice",
	};
	const char *base;
	size_t i;

	if (cgroup_path_level(host_path) == 0)
		return true;
	base = strrchr(host_path, '/');
	base = base ? base + 1 : host_path;
	for (i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
		if (!strcmp(base, shared[i]))
			return true;
	return false;
}

/* OPENSANDBOX_EGRESS_HOST_CGROUP2 must be a whole cgroup2 hierarchy. */
static int check_host_mount(const char *dir, char *err, size_t errlen)
{
	struct statfs sf;
	uint64_t id = 0;
	int ret;

	if (statfs(dir, &sf) < 0) {
		ret = -errno;
		return util_err(err, errlen, ret,
				"OPENSANDBOX_EGRESS_HOST_CGROUP2=%s: %s", dir,
				strerror(-ret));
	}
	if (sf.f_type != CGROUP2_SUPER_MAGIC)
		return util_err(
			err, errlen, -EINVAL,
			"OPENSANDBOX_EGRESS_HOST_CGROUP2=%s is not a cgroup2 filesystem: mount the host's /sys/fs/cgroup (cgroup v2) there",
			dir);
	ret = cgroup_stat_id(dir, &id);
	if (ret)
		return util_err(err, errlen, ret,
				"OPENSANDBOX_EGRESS_HOST_CGROUP2=%s: %s", dir,
				strerror(-ret));
	if (id != CGROUP_ROOT_ID)
		return util_err(
			err, errlen, -EINVAL,
			"OPENSANDBOX_EGRESS_HOST_CGROUP2=%s shows a subtree (cgroup id %llu), not the host's whole hierarchy (id 1): mount the host's cgroup2 root there, e.g. a hostPath volume of /sys/fs/cgroup",
			dir, (unsigned long long)id);
	return 0;
}

/* Absolute level and host path of a cgroup reached through the view's
 * mount at rel (relative to that mount). */
static void cgroup_fill_abs(const struct cgroup_view *v, const char *rel,
			    struct cgroup_info *c)
{
	bool root = !strcmp(rel, "/");

	c->level_known = v->root_level_known;
	c->level = v->root_level + cgroup_path_level(rel);
	c->host_path[0] = '\0';
	if (!v->root_host_path[0])
		return;
	if (!strcmp(v->root_host_path, "/"))
		snprintf(c->host_path, sizeof(c->host_path), "%s", rel);
	else
		snprintf(c->host_path, sizeof(c->host_path), "%s%s",
			 v->root_host_path, root ? "" : rel);
}

int cgroup_setup(const struct egressd_config *cfg, struct cgroup_view *view,
		 struct cgroup_info *agent, char *err, size_t errlen)
{
	char rel[PATH_MAX], dir[PATH_MAX * 2];
	int ret;

	memset(view, 0, sizeof(*view));
	memset(agent, 0, sizeof(*agent));
	ret = cgroup_find_mount("/proc/mounts", view->mount,
				sizeof(view->mount));
	if (ret)
		return util_err(
			err, errlen, ret,
			"no cgroup v2 filesystem is mounted (see /proc/mounts): egressd tells its own DNS queries from the workload's by cgroup v2 identity");
	ret = cgroup_stat_id(view->mount, &view->mount_root_id);
	if (ret)
		return util_err(err, errlen, ret, "cgroup2 mount %s: %s",
				view->mount, strerror(-ret));
	view->private_ns = view->mount_root_id != CGROUP_ROOT_ID;
	if (!view->private_ns) {
		/* The host's own view: paths and levels are absolute. */
		snprintf(view->host, sizeof(view->host), "%s", view->mount);
		strcpy(view->root_host_path, "/");
		view->root_level_known = true;
	}
	if (cfg->host_cgroup2) {
		ret = check_host_mount(cfg->host_cgroup2, err, errlen);
		if (ret)
			return ret;
		snprintf(view->host, sizeof(view->host), "%s",
			 cfg->host_cgroup2);
	}

	if (cfg->agent_cgroup) {
		ret = cgroup_rel_path(view->mount, cfg->agent_cgroup, rel,
				      sizeof(rel));
		if (ret)
			return util_err(
				err, errlen, ret,
				"agent cgroup \"%s\" is not below the cgroup v2 mount %s",
				cfg->agent_cgroup, view->mount);
		cgroup_join(dir, sizeof(dir), view->mount, rel);
		ret = cgroup_enter(dir);
		if (ret)
			return util_err(
				err, errlen, ret,
				"cannot move egressd into cgroup %s: %s", dir,
				strerror(-ret));
	}

	ret = cgroup_self_path(rel, sizeof(rel));
	if (ret)
		return util_err(
			err, errlen, ret,
			"cannot read egressd's cgroup v2 path from /proc/self/cgroup: %s",
			strerror(-ret));
	/* The container cgroup: where egressd was started (or put). */
	cgroup_join(dir, sizeof(dir), view->mount, rel);
	ret = cgroup_stat_id(dir, &agent->id);
	if (ret)
		return util_err(err, errlen, ret, "cannot stat cgroup %s: %s",
				dir, strerror(-ret));

	if (view->host[0] && view->private_ns) {
		char hp[PATH_MAX];

		/* Where the namespace's root sits in the host's hierarchy. */
		ret = cgroup_find_by_id(view->host, view->mount_root_id, hp,
					sizeof(hp));
		if (ret)
			return util_err(
				err, errlen, ret,
				"egressd's cgroup namespace root (cgroup id %llu) is not found in the host hierarchy at %s (%s): is that the host's cgroup2 root?",
				(unsigned long long)view->mount_root_id,
				view->host, strerror(-ret));
		snprintf(view->root_host_path, sizeof(view->root_host_path),
			 "%s", hp);
		view->root_level = cgroup_path_level(hp);
		view->root_level_known = true;
	}
	cgroup_fill_abs(view, rel, agent);
	snprintf(view->container, sizeof(view->container), "%s",
		 agent->host_path);

	if (!cfg->agent_cgroup && cgroup_path_level(rel) == 0) {
		/*
		 * At the root of what egressd sees. The host's root holds
		 * everyone: egressd must have a cgroup of its own. A private
		 * namespace's root is the container's own cgroup, a real one;
		 * a child of it is better still (tools exec'd into the
		 * container land in the container's cgroup, not egressd's),
		 * where the cgroup filesystem is writable.
		 */
		cgroup_join(dir, sizeof(dir), view->mount, "/egressd");
		ret = cgroup_enter(dir);
		if (ret && !view->private_ns)
			return util_err(
				err, errlen, ret,
				"egressd runs in the root cgroup, whose identity every process shares, and cannot move to %s (%s): start egressd in a cgroup of its own or set OPENSANDBOX_EGRESS_AGENT_CGROUP",
				dir, strerror(-ret));
		if (ret) {
			/* Read-only cgroupfs (Docker's default): the
			 * container's cgroup is egressd's. */
			view->agent_shared = true;
		} else {
			view->agent_moved = true;
			strcpy(rel, "/egressd");
			ret = cgroup_stat_id(dir, &agent->id);
			if (ret)
				return util_err(err, errlen, ret,
						"cannot stat cgroup %s: %s",
						dir, strerror(-ret));
			cgroup_fill_abs(view, rel, agent);
			if (!view->private_ns)
				snprintf(view->container,
					 sizeof(view->container), "%s",
					 agent->host_path);
		}
	}
	cgroup_join(agent->dir, sizeof(agent->dir), view->mount, rel);
	/* Without a private namespace both ways of counting agree. */
	agent->nft_level = agent->level;
	agent->nft_ok = !view->private_ns;

	if (cfg->workload_cgroup && !view->host[0]) {
		char wl[PATH_MAX];

		ret = cgroup_rel_path(view->mount, cfg->workload_cgroup, wl,
				      sizeof(wl));
		if (ret)
			return util_err(
				err, errlen, ret,
				"workload cgroup \"%s\" is not below the cgroup v2 mount %s",
				cfg->workload_cgroup, view->mount);
		if (cgroup_contains(rel, wl))
			return util_err(
				err, errlen, -EINVAL,
				"egressd's cgroup %s contains the workload cgroup %s: the workload would share the agent's exemption; run egressd in a separate cgroup",
				rel, wl);
	}
	return 0;
}

void cgroup_apply_probe(struct cgroup_view *view, struct cgroup_info *agent,
			uint32_t probed)
{
	const char *rel = agent->dir + strlen(view->mount);
	uint32_t depth = cgroup_path_level(*rel ? rel : "/");

	agent->nft_level = probed;
	agent->nft_ok = true;
	/* Counted from the host's root, a private namespace's root is at
	 * level 1 or more: only namespace-relative counting gives depth. */
	view->nft_relative = view->private_ns && probed == depth;
	if (view->nft_relative || view->root_level_known || probed < depth)
		return;
	view->root_level = probed - depth;
	view->root_level_known = true;
	agent->level = probed;
	agent->level_known = true;
}

void cgroup_nft_level(const struct cgroup_view *view, struct cgroup_info *c)
{
	size_t rl = strlen(view->root_host_path);

	c->nft_ok = false;
	if (!view->nft_relative) {
		c->nft_level = c->level;
		c->nft_ok = c->level_known;
		return;
	}
	/* Relative counting: only what lies in egressd's own subtree. */
	if (!strncmp(c->dir, view->mount, strlen(view->mount)) &&
	    (c->dir[strlen(view->mount)] == '/' ||
	     !c->dir[strlen(view->mount)]) &&
	    !view->host[0]) {
		c->nft_level = cgroup_path_level(c->dir + strlen(view->mount));
		c->nft_ok = true;
	} else if (rl && c->host_path[0] &&
		   cgroup_contains(view->root_host_path, c->host_path)) {
		c->nft_level = cgroup_path_level(c->host_path) -
			       cgroup_path_level(view->root_host_path);
		c->nft_ok = true;
	}
}

int cgroup_attach_point(const struct egressd_config *cfg,
			const struct cgroup_view *view,
			const struct cgroup_info *agent,
			struct cgroup_info *out, char *how, size_t howlen,
			char *err, size_t errlen)
{
	char rel[PATH_MAX], parent[PATH_MAX];
	int ret;

	memset(out, 0, sizeof(*out));
	if (cfg->workload_cgroup) {
		/* Read in the host's hierarchy when egressd can see it. */
		const char *base = view->host[0] ? view->host : view->mount;

		ret = cgroup_rel_path(base, cfg->workload_cgroup, rel,
				      sizeof(rel));
		if (ret)
			return util_err(
				err, errlen, ret,
				"workload cgroup \"%s\" is not below the cgroup v2 mount %s",
				cfg->workload_cgroup, base);
		cgroup_join(out->dir, sizeof(out->dir), base, rel);
		ret = cgroup_stat_id(out->dir, &out->id);
		if (ret)
			return util_err(err, errlen, ret,
					"workload cgroup %s: %s", out->dir,
					strerror(-ret));
		if (view->host[0]) {
			snprintf(out->host_path, sizeof(out->host_path), "%s",
				 rel);
			out->level = cgroup_path_level(rel);
			out->level_known = true;
			if (agent->host_path[0] &&
			    cgroup_contains(agent->host_path, rel))
				return util_err(
					err, errlen, -EINVAL,
					"egressd's cgroup %s contains the workload cgroup %s: the workload would share the agent's exemption; run egressd in a separate cgroup",
					agent->host_path, rel);
		} else {
			cgroup_fill_abs(view, rel, out);
		}
		snprintf(how, howlen, "OPENSANDBOX_EGRESS_CGROUP");
		return 0;
	}
	if (!view->host[0]) {
		snprintf(
			how, howlen,
			"egressd runs in a private cgroup namespace and cannot see the sandbox's cgroup: set OPENSANDBOX_EGRESS_HOST_CGROUP2 (the host's cgroup2 mounted into the sidecar) or OPENSANDBOX_EGRESS_CGROUP");
		return 1;
	}
	/* The sandbox: the parent of egressd's container cgroup. */
	snprintf(parent, sizeof(parent), "%s", view->container);
	{
		char *slash = strrchr(parent, '/');

		if (!slash || !strcmp(parent, "/")) {
			snprintf(
				how, howlen,
				"egressd's container cgroup is the host's root cgroup: no sandbox cgroup to attach to");
			return 1;
		}
		if (slash == parent)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	if (cgroup_path_level(parent) == 0) {
		if (view->private_ns) {
			snprintf(
				how, howlen,
				"the parent of egressd's container cgroup is the host's root cgroup, which every sandbox shares: set OPENSANDBOX_EGRESS_CGROUP to the app's cgroup");
			return 1;
		}
		/* egressd shares the host's cgroup namespace: the root is
		 * the only cgroup that holds the whole namespace; the
		 * caller allows it only with netns-cookie filtering. */
		snprintf(out->dir, sizeof(out->dir), "%s", view->host);
		strcpy(out->host_path, "/");
		out->level = 0;
		out->level_known = true;
		ret = cgroup_stat_id(out->dir, &out->id);
		if (ret)
			return util_err(err, errlen, ret, "cgroup %s: %s",
					out->dir, strerror(-ret));
		snprintf(
			how, howlen,
			"cgroup2 root: egressd shares the host's cgroup namespace");
		return 0;
	}
	if (cgroup_is_shared_parent(parent)) {
		snprintf(
			how, howlen,
			"the parent of egressd's container cgroup, %s, is shared by every container of the node (a runtime's default parent): give each sandbox its own cgroup parent (a pod; docker --cgroup-parent) or set OPENSANDBOX_EGRESS_CGROUP to the app's cgroup",
			parent);
		return 1;
	}
	cgroup_join(out->dir, sizeof(out->dir), view->host, parent);
	ret = cgroup_stat_id(out->dir, &out->id);
	if (ret)
		return util_err(err, errlen, ret, "sandbox cgroup %s: %s",
				out->dir, strerror(-ret));
	snprintf(out->host_path, sizeof(out->host_path), "%s", parent);
	out->level = cgroup_path_level(parent);
	out->level_known = true;
	snprintf(how, howlen,
		 "sandbox cgroup: the parent of egressd's container cgroup");
	return 0;
}
