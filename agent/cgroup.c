// SPDX-License-Identifier: GPL-2.0-only
/*
 * Finding and entering the agent's cgroup v2. cgroup2 may be mounted
 * anywhere (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
 * hybrid ones), so the mount is looked up in /proc/mounts, never assumed.
 */
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "egressd/cgroup.h"
#include "egressd/util.h"

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

/* The "0::/path" line of /proc/self/cgroup. */
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

int cgroup_agent_setup(const struct egressd_config *cfg,
		       struct cgroup_info *out, char *err, size_t errlen)
{
	char dir[PATH_MAX * 2], workload[PATH_MAX];
	struct stat st;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = cgroup_find_mount("/proc/mounts", out->mount, sizeof(out->mount));
	if (ret)
		return util_err(err, errlen, ret,
			      "no cgroup v2 filesystem is mounted (see /proc/mounts): egressd tells its own DNS queries from the workload's by cgroup v2 identity");

	if (cfg->agent_cgroup) {
		char rel[PATH_MAX];

		ret = cgroup_rel_path(out->mount, cfg->agent_cgroup, rel,
				      sizeof(rel));
		if (ret)
			return util_err(err, errlen, ret,
				      "agent cgroup \"%s\" is not below the cgroup v2 mount %s",
				      cfg->agent_cgroup, out->mount);
		snprintf(dir, sizeof(dir), "%s%s", out->mount, rel);
		ret = cgroup_enter(dir);
		if (ret)
			return util_err(err, errlen, ret,
				      "cannot move egressd into cgroup %s: %s",
				      dir, strerror(-ret));
	}

	ret = cgroup_self_path(out->path, sizeof(out->path));
	if (ret)
		return util_err(err, errlen, ret,
			      "cannot read egressd's cgroup v2 path from /proc/self/cgroup: %s",
			      strerror(-ret));

	if (cgroup_path_level(out->path) == 0) {
		/* The root cgroup holds everyone: get a cgroup of our own. */
		snprintf(dir, sizeof(dir), "%s/egressd", out->mount);
		ret = cgroup_enter(dir);
		if (ret)
			return util_err(err, errlen, ret,
				      "egressd runs in the root cgroup, whose identity every process shares, and cannot move to %s (%s): start egressd in a cgroup of its own or set OPENSANDBOX_EGRESS_AGENT_CGROUP",
				      dir, strerror(-ret));
		ret = cgroup_self_path(out->path, sizeof(out->path));
		if (ret)
			return util_err(err, errlen, ret,
				      "cannot read /proc/self/cgroup: %s",
				      strerror(-ret));
	}

	if (cfg->workload_cgroup) {
		ret = cgroup_rel_path(out->mount, cfg->workload_cgroup,
				      workload, sizeof(workload));
		if (ret)
			return util_err(err, errlen, ret,
				      "workload cgroup \"%s\" is not below the cgroup v2 mount %s",
				      cfg->workload_cgroup, out->mount);
		if (cgroup_contains(out->path, workload))
			return util_err(err, errlen, -EINVAL,
				      "egressd's cgroup %s contains the workload cgroup %s: the workload would share the agent's exemption; run egressd in a separate cgroup",
				      out->path, workload);
	}

	snprintf(dir, sizeof(dir), "%s%s", out->mount, out->path);
	if (stat(dir, &st) < 0) {
		ret = -errno;
		return util_err(err, errlen, ret, "cannot stat cgroup %s: %s",
			      dir, strerror(-ret));
	}
	out->id = st.st_ino;
	out->level = cgroup_path_level(out->path);
	return 0;
}

int cgroup_workload(const struct egressd_config *cfg,
		    const struct cgroup_info *agent, struct cgroup_info *out,
		    char *err, size_t errlen)
{
	char dir[PATH_MAX * 2];
	struct stat st;
	int ret;

	memset(out, 0, sizeof(*out));
	snprintf(out->mount, sizeof(out->mount), "%s", agent->mount);
	if (cfg->workload_cgroup) {
		ret = cgroup_rel_path(agent->mount, cfg->workload_cgroup,
				      out->path, sizeof(out->path));
		if (ret)
			return util_err(err, errlen, ret,
				      "workload cgroup \"%s\" is not below the cgroup v2 mount %s",
				      cfg->workload_cgroup, agent->mount);
	} else {
		strcpy(out->path, "/");
	}
	snprintf(dir, sizeof(dir), "%s%s", out->mount,
		 strcmp(out->path, "/") ? out->path : "");
	if (stat(dir, &st) < 0) {
		ret = -errno;
		return util_err(err, errlen, ret,
			      "workload cgroup %s: %s", dir, strerror(-ret));
	}
	out->id = st.st_ino;
	out->level = cgroup_path_level(out->path);
	return 0;
}
