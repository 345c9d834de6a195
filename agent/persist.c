// SPDX-License-Identifier: GPL-2.0-only
/*
 * Persistence of the user policy (OPENSANDBOX_EGRESS_POLICY_FILE): the
 * file the agent reads at start, rewritten atomically after every API
 * change so a restart comes back to what was enforced.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "egressd/persist.h"
#include "egressd/policy.h"

/*
 * Write p to OPENSANDBOX_EGRESS_POLICY_FILE atomically, in two steps:
 * persist_prepare() writes and fsyncs a temporary file in the same
 * directory, persist_commit() renames it over the file and fsyncs the
 * directory. A crash leaves the old file or the new one, never half of
 * one. Every step that fails on a read-only or full directory is in the
 * first, so a policy that cannot be persisted is refused before it is
 * enforced (docs/security.md, "Faults"). Same format as the peer:
 * 2-space indented JSON and a newline.
 */
int persist_prepare(const char *path, const struct policy *p, char *tmp,
		    size_t tmplen, char *err, size_t errlen)
{
	struct stat st;
	json_t *j;
	char *text = NULL;
	size_t len, off = 0;
	int fd = -1, ret = 0;

	if (tmplen)
		tmp[0] = '\0';
	if (!path)
		return 0;
	if (tmplen < strlen(path) + sizeof(".XXXXXX")) {
		snprintf(err, errlen, "failed to persist policy to %s: %s",
			 path, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	j = policy_to_json(p);
	if (j)
		text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text) {
		snprintf(err, errlen,
			 "failed to persist policy: out of memory");
		return -ENOMEM;
	}
	len = strlen(text);
	snprintf(tmp, tmplen, "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		tmp[0] = '\0';
		goto out;
	}
	/* Keep the mode of an existing file, 0600 otherwise. */
	if (fchmod(fd, stat(path, &st) ? 0600 : (st.st_mode & 07777)) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_unlink;
		}
		off += w;
	}
	if (text[len - 1] != '\n' && write(fd, "\n", 1) != 1) {
		ret = -EIO;
		goto out_unlink;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		ret = -errno;
		fd = -1;
		goto out_unlink;
	}
	goto out;
out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	tmp[0] = '\0';
out:
	if (ret)
		snprintf(err, errlen, "failed to persist policy to %s: %s",
			 path, strerror(-ret));
	free(text);
	return ret;
}

int persist_commit(const char *path, const char *tmp, char *err, size_t errlen)
{
	char dir[PATH_MAX], *slash;
	int dfd, ret;

	if (!path || !tmp || !tmp[0])
		return 0;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		unlink(tmp);
		snprintf(err, errlen, "failed to persist policy to %s: %s",
			 path, strerror(-ret));
		return ret;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

void persist_abort(const char *tmp)
{
	if (tmp && tmp[0])
		unlink(tmp);
}
