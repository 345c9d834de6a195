// SPDX-License-Identifier: GPL-2.0-only
/*
 * bpfsync's pin directory: it must be on bpffs (mounted at /sys/fs/bpf on
 * a fresh boot), it is created like mkdir -p and flock'ed while an agent
 * runs, a pin is reused only when its type, sizes and BTF layout match the
 * object's, whose pins they are is read from the pinned config map, and
 * --cleanup detaches the pinned links and removes egressd's pins. None of
 * it needs the skeleton.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "egressd/bpfsync.h"
#include "egressd/log.h"
#include "egressd/netns.h"
#include "bpfsync_int.h"

#define BTF_CMP_DEPTH 4

static bool is_bpffs(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && st.f_type == BPF_FS_MAGIC;
}

/*
 * The pin dir must live on bpffs. If it does not exist yet and its parent
 * is not bpffs, bpffs is mounted at BPFSYNC_BPFFS_MOUNT when the pin dir
 * is below it (a fresh boot); any other location is refused.
 */
int bpfsync_pins_ensure_bpffs(const char *pin_dir)
{
	char parent[PATH_MAX];
	char *slash;
	size_t mlen = strlen(BPFSYNC_BPFFS_MOUNT);

	if (is_bpffs(pin_dir))
		return 0;
	snprintf(parent, sizeof(parent), "%s", pin_dir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	if (is_bpffs(parent))
		return 0;
	if (strncmp(pin_dir, BPFSYNC_BPFFS_MOUNT, mlen) ||
	    (pin_dir[mlen] != '/' && pin_dir[mlen]))
		return -ENOTSUP;
	if (is_bpffs(BPFSYNC_BPFFS_MOUNT))
		return 0;
	if (mount("bpf", BPFSYNC_BPFFS_MOUNT, "bpf", 0, "mode=0700")) {
		int err = -errno;

		log_warnx("mount bpffs on %s failed: %s", BPFSYNC_BPFFS_MOUNT,
			  strerror(-err));
		/* Not a capability of the BPF layer's own: say what is
		 * missing (bpf_fail() in layers.c explains -ENOMEDIUM). */
		return err == -EPERM ? -ENOMEDIUM : err;
	}
	log_info("mounted bpffs on %s", BPFSYNC_BPFFS_MOUNT);
	return 0;
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * mkdir -p: a pin dir such as /sys/fs/bpf/sandboxes/42 needs its parents.
 * ensure_bpffs has checked that the path is on (or below) bpffs.
 */
static int make_dir_parents(const char *path)
{
	char buf[PATH_MAX];
	char *p;
	int err;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = strchr(buf + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		err = make_dir(buf);
		*p = '/';
		if (err)
			return err;
	}
	return make_dir(buf);
}

/* Create pin_dir (and its parents) and take the instance lock on it. */
int bpfsync_pins_lock(struct bpfsync *bs)
{
	char links[PATH_MAX];
	int err;

	err = make_dir_parents(bs->pin_dir);
	if (err)
		return err;
	snprintf(links, sizeof(links), "%s/" LINKS_SUBDIR, bs->pin_dir);
	err = make_dir(links);
	if (err)
		return err;
	bs->lock_fd = open(bs->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bs->lock_fd < 0)
		return -errno;
	if (flock(bs->lock_fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(bs->lock_fd);
		bs->lock_fd = -1;
		return err;
	}
	return 0;
}

/*
 * Same layout: same kind and size, and for structs and arrays the same
 * member names, offsets and element layouts. Typedefs and modifiers are
 * looked through; names of the top types may differ (renames are fine).
 */
static bool btf_same_layout(const struct btf *a, __u32 ida, const struct btf *b,
			    __u32 idb, int depth)
{
	const struct btf_type *ta, *tb;
	int i, ia, ib;

	ia = btf__resolve_type(a, ida);
	ib = btf__resolve_type(b, idb);
	if (ia < 0 || ib < 0 || depth > BTF_CMP_DEPTH)
		return false;
	ta = btf__type_by_id(a, ia);
	tb = btf__type_by_id(b, ib);
	if (!ta || !tb || btf_kind(ta) != btf_kind(tb) ||
	    btf__resolve_size(a, ia) != btf__resolve_size(b, ib))
		return false;
	if (btf_is_array(ta)) {
		const struct btf_array *aa = btf_array(ta), *ab = btf_array(tb);

		return aa->nelems == ab->nelems &&
		       btf_same_layout(a, aa->type, b, ab->type, depth + 1);
	}
	if (!btf_is_composite(ta))
		return true;
	if (btf_vlen(ta) != btf_vlen(tb))
		return false;
	for (i = 0; i < btf_vlen(ta); i++) {
		const struct btf_member *ma = btf_members(ta) + i;
		const struct btf_member *mb = btf_members(tb) + i;

		if (strcmp(btf__name_by_offset(a, ma->name_off),
			   btf__name_by_offset(b, mb->name_off)) ||
		    btf_member_bit_offset(ta, i) !=
			    btf_member_bit_offset(tb, i) ||
		    !btf_same_layout(a, ma->type, b, mb->type, depth + 1))
			return false;
	}
	return true;
}

/*
 * Is the pin at path a map our program can use as map? Returns 1 (reuse),
 * 0 (incompatible: *why says what differs), -ENOENT (no pin) or -errno.
 */
static int pin_is_compatible(const struct btf *obtf, struct bpf_map *map,
			     const char *path, const char **why)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct btf *kbtf = NULL;
	int fd, ret = 1;

	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		ret = -errno;
		goto out_close;
	}
	*why = "type, sizes or flags";
	if (info.type != bpf_map__type(map) ||
	    info.key_size != bpf_map__key_size(map) ||
	    info.value_size != bpf_map__value_size(map) ||
	    info.max_entries != bpf_map__max_entries(map) ||
	    info.map_flags != bpf_map__map_flags(map)) {
		ret = 0;
		goto out_close;
	}
	if (!bpf_map__btf_value_type_id(map))
		goto out_close; /* ring buffer: nothing more to compare */
	*why = "BTF layout";
	if (!info.btf_id || !obtf) {
		ret = 0;
		goto out_close;
	}
	kbtf = btf__load_from_kernel_by_id(info.btf_id);
	if (!kbtf) {
		ret = -errno;
		goto out_close;
	}
	if (!btf_same_layout(obtf, bpf_map__btf_key_type_id(map), kbtf,
			     info.btf_key_type_id, 0) ||
	    !btf_same_layout(obtf, bpf_map__btf_value_type_id(map), kbtf,
			     info.btf_value_type_id, 0))
		ret = 0;
	btf__free(kbtf);
out_close:
	close(fd);
	return ret;
}

/*
 * Before load: keep compatible pins (libbpf reuses them by path), unlink
 * incompatible ones so libbpf creates and pins fresh maps. The old maps
 * live on, unpinned, as long as the old program in the link uses them.
 */
int bpfsync_pins_check(struct bpf_object *obj)
{
	const struct btf *obtf = bpf_object__btf(obj);
	struct bpf_map *map;
	const char *why = "";
	int ret;

	bpf_object__for_each_map(map, obj) {
		const char *path = bpf_map__pin_path(map);

		if (!path)
			continue;
		ret = pin_is_compatible(obtf, map, path, &why);
		if (ret == -ENOENT || ret == 1)
			continue;
		if (ret < 0) {
			log_warnx("bpf pin %s: cannot inspect: %s", path,
				  strerror(-ret));
			return ret;
		}
		log_warnx("bpf pin %s is incompatible (%s): replacing it", path,
			  why);
		if (unlink(path))
			return -errno;
	}
	return 0;
}

int bpfsync_pins_owner(const char *pin_dir, uint64_t *owner, uint64_t *self)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char path[PATH_MAX + 16];
	__u32 zero = 0;
	void *val;
	__u64 me;
	int fd, err;

	if (!pin_dir)
		pin_dir = BPFSYNC_DEFAULT_PIN_DIR;
	*owner = 0;
	err = netns_cookie((uint64_t *)&me);
	if (err)
		return err;
	if (self)
		*self = me;
	snprintf(path, sizeof(path), "%s/" EGRESSD_MAP_CONFIG, pin_dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	/*
	 * Read into a buffer of the pinned map's own value size (a config of
	 * another egressd version may be larger than ours); the cookie is
	 * its first 8 bytes in every version so far.
	 */
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen) || info.key_size != 4 ||
	    info.value_size < sizeof(__u64) || info.value_size > 4096) {
		close(fd);
		return 0;
	}
	val = calloc(1, info.value_size);
	if (!val) {
		close(fd);
		return -ENOMEM;
	}
	err = bpf_map_lookup_elem(fd, &zero, val) ? -errno : 0;
	close(fd);
	if (!err)
		memcpy(owner, val, sizeof(*owner));
	free(val);
	if (err)
		return err == -ENOENT ? 0 : err;
	return *owner && *owner != me ? 1 : 0;
}

/*
 * Detach the pinned link at path (its program leaves the cgroup even if
 * someone else holds the link) and remove the pin. 0, or -1 with errno
 * from unlink().
 */
int bpfsync_link_remove(const char *path)
{
	int fd = bpf_obj_get(path);

	if (fd >= 0) {
		if (bpf_link_detach(fd) && errno != EINVAL)
			log_warnx("bpf link %s: detach: %s", path,
				  strerror(errno));
		close(fd);
	}
	return unlink(path);
}

static int cleanup_links(const char *pin_dir)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent *de;
	int err = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/" LINKS_SUBDIR, pin_dir);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "cgroup_", 7) &&
		    strncmp(de->d_name, "ingress_", 8) &&
		    strncmp(de->d_name, "dns_", 4) &&
		    strncmp(de->d_name, "guard_", 6))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (bpfsync_link_remove(path) && !err)
			err = -errno;
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT && !err)
		err = -errno;
	return err;
}

int bpfsync_cleanup_lock(const char *pin_dir)
{
	int lock_fd, err;

	if (!pin_dir)
		pin_dir = BPFSYNC_DEFAULT_PIN_DIR;
	lock_fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0)
		return -errno;
	if (flock(lock_fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(lock_fd);
		return err;
	}
	return lock_fd;
}

int bpfsync_cleanup_locked(const char *pin_dir, int lock_fd)
{
	static const char *const maps[] = {
		EGRESSD_MAP_CONFIG,	  EGRESSD_MAP_COUNTERS,
		EGRESSD_MAP_EVENTS,	  EGRESSD_MAP_FOLD,
		EGRESSD_MAP_ALLOW_V4,	  EGRESSD_MAP_ALLOW_V6,
		EGRESSD_MAP_DENY_V4,	  EGRESSD_MAP_DENY_V6,
		EGRESSD_MAP_DOH_V4,	  EGRESSD_MAP_DOH_V6,
		EGRESSD_MAP_DOH_ALLOW_V4, EGRESSD_MAP_DOH_ALLOW_V6,
		EGRESSD_MAP_LEARNED_V4,	  EGRESSD_MAP_LEARNED_V6,
		EGRESSD_MAP_FLOWS,	  EGRESSD_MAP_DNS_ORIG,
		EGRESSD_MAP_INBOUND,	  EGRESSD_MAP_AGENT_SOCKS,
	};
	char path[PATH_MAX + 32];
	size_t i;
	int err;

	if (!pin_dir)
		pin_dir = BPFSYNC_DEFAULT_PIN_DIR;
	err = cleanup_links(pin_dir);
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, maps[i]);
		if (unlink(path) && errno != ENOENT && !err)
			err = -errno;
	}
	if (rmdir(pin_dir) && !err)
		err = -errno;
	close(lock_fd);
	return err;
}

int bpfsync_cleanup(const char *pin_dir)
{
	int lock_fd;

	lock_fd = bpfsync_cleanup_lock(pin_dir);
	if (lock_fd == -ENOENT)
		return 0;
	if (lock_fd < 0)
		return lock_fd;
	return bpfsync_cleanup_locked(pin_dir, lock_fd);
}
