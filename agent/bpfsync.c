// SPDX-License-Identifier: GPL-2.0-only
/*
 * BPF map sync: loads bpf/egress.bpf.c through its skeleton (the only file
 * that includes it), pins every map and the cgroup link under one flock'ed
 * directory so enforcement survives the agent, and writes the compiled
 * policy and learned addresses into the maps. Static sets are written into
 * the inactive policy slot and switched in with a one-byte config change,
 * so the datapath judges each packet by exactly one policy generation
 * (docs/bpf.md explains the choice). Pins are reused only when their type,
 * sizes and BTF layout match ours; anything else is replaced, loudly.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "egressd/bpfsync.h"
#include "egressd/log.h"
#include "egressd/netns.h"
#include "egress.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* The ABI is checked here, once, for both sides. */
_Static_assert(sizeof(struct egressd_flow) == 24, "ABI");
_Static_assert(sizeof(struct egressd_slot_cfg) == 16, "ABI");
_Static_assert(sizeof(struct egressd_bpf_cfg) == 72, "ABI");
_Static_assert(sizeof(struct egressd_lpm4_key) == 12, "ABI");
_Static_assert(sizeof(struct egressd_lpm6_key) == 24, "ABI");
_Static_assert(sizeof(struct egressd_rule_val) == 8, "ABI");
_Static_assert(sizeof(struct egressd_learned4_key) == 4, "ABI");
_Static_assert(sizeof(struct egressd_learned6_key) == 16, "ABI");
_Static_assert(sizeof(struct egressd_learned_val) == 24, "ABI");
_Static_assert(sizeof(struct egressd_fold_key) == 20, "ABI");
_Static_assert(sizeof(struct egressd_fold_val) == 16, "ABI");
_Static_assert(sizeof(struct egressd_event) == 96, "ABI");
_Static_assert(sizeof(struct egressd_dns_orig) == 24, "ABI");
_Static_assert(sizeof(struct egressd_inbound_key) == 24, "ABI");

#define LINKS_SUBDIR "links"
#define BTF_CMP_DEPTH 4
#define PIN_DIR_MAX 256

/* The port-53 redirect programs (bpf/redirect.bpf.h). */
#define N_REDIRECT 8
/* The bind guard programs (guard_bind4/6, bpf/redirect.bpf.h). */
#define N_GUARD 2

/*
 * The last record the program sent for a fold key: what a drained count
 * (bpfsync_fold_drain) is reported as, since the map only keeps the key.
 */
#define FOLD_SEEN_BUCKETS 1024
/* Records older than this no longer describe their key's packets. */
#define FOLD_SEEN_MAX_AGE_NS (10 * 1000000000ULL)
/* event_fold keys seen in one drain pass, at most. */
#define FOLD_DRAIN_MAX EGRESSD_FOLD_ENTRIES
/*
 * A key's window is over this long after the program's own test says so:
 * bpf_ktime_get_coarse_ns() lags CLOCK_MONOTONIC by up to a tick, and a
 * program that found the window still open must be long done folding
 * into the entry before the drain removes it.
 */
#define FOLD_DRAIN_MARGIN_NS (50 * 1000000ULL)

struct fold_seen {
	struct fold_seen *next;
	struct egressd_fold_key key;
	struct egressd_event rec;
};

struct bpfsync {
	struct egress_bpf *skel;
	struct bpf_link *link;
	struct bpf_link *ilink; /* ingress_track, same cgroup as link */
	struct bpf_link *rlink[N_REDIRECT];
	struct bpf_link *glink[N_GUARD];
	uint16_t dns_port; /* redirect enabled to this port, 0: off */
	struct ring_buffer *rb;
	int (*event_cb)(void *ctx, const struct egressd_event *e);
	void *event_ctx;
	int lock_fd;
	__u64 netns_cookie;
	/* Last record per event_fold key (bpfsync_fold_drain). */
	struct fold_seen *seen[FOLD_SEEN_BUCKETS];
	size_t n_seen;
	/* Ring buffer drops already reported, and when (drops_report) */
	uint64_t rb_drops;
	uint64_t rb_warned_ns;
	bool rb_drops_known;
	/* bpfsync_expire() cursor: family index and last key kept */
	int exp_family;
	bool exp_have_key;
	__u8 exp_key[16];
	/* learned entries: the sweep's grace, reclaim of a full map, and
	 * who is told about entries the sweep extends */
	uint64_t exp_grace_ns;
	uint64_t reclaim_ns[2];
	struct bpfsync_learned_stats lstats;
	void (*extended)(void *arg, int family, const void *addr,
			 uint64_t until_ns);
	void *extended_arg;
	char pin_dir[PIN_DIR_MAX];
};

/* Map of each static set and family, by enum bpfsync_set. */
static struct bpf_map *set_map(struct bpfsync *bs, enum bpfsync_set set,
			       int family)
{
	struct egress_bpf *s = bs->skel;
	bool v6 = family == 6;

	switch (set) {
	case BPFSYNC_SET_ALLOW:
		return v6 ? s->maps.allow_v6 : s->maps.allow_v4;
	case BPFSYNC_SET_DENY:
		return v6 ? s->maps.deny_v6 : s->maps.deny_v4;
	case BPFSYNC_SET_DOH:
		return v6 ? s->maps.doh_v6 : s->maps.doh_v4;
	case BPFSYNC_SET_DOH_ALLOW:
		return v6 ? s->maps.doh_allow_v6 : s->maps.doh_allow_v4;
	default:
		return NULL;
	}
}

/*
 * libbpf's messages as log lines of their own level: LIBBPF_WARN a
 * "warning", LIBBPF_INFO an "info", LIBBPF_DEBUG a "debug" line (shown
 * with --log-level debug), each with msg "libbpf: …" once, although
 * libbpf prefixes most messages itself.
 */
static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	enum log_level lvl = level == LIBBPF_WARN ? LOG_LVL_WARN :
			     level == LIBBPF_INFO ? LOG_LVL_INFO :
						    LOG_LVL_DEBUG;

	log_vprefixed(lvl, "libbpf", fmt, ap);
	return 0;
}

uint64_t bpfsync_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

const char *bpfsync_pin_dir(const struct bpfsync *bs)
{
	return bs->pin_dir;
}

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
static int ensure_bpffs(const char *pin_dir)
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
static int lock_pin_dir(struct bpfsync *bs)
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
static int check_pins(struct bpfsync *bs)
{
	const struct btf *obtf = bpf_object__btf(bs->skel->obj);
	struct bpf_map *map;
	const char *why = "";
	int ret;

	bpf_object__for_each_map(map, bs->skel->obj)
	{
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

/*
 * Does this kernel let a cgroup_skb program call bpf_get_netns_cookie()
 * (6.15 and later)? Asked by loading the smallest such program, not with
 * libbpf_probe_bpf_helper(): the libbpf 1.1 of Debian 12 does not know the
 * "program of this type cannot use helper" refusal of 6.12 and later and
 * answers yes there (vmtests/README.md). Any failure counts as no: the
 * object then loads without the guard, which bpfsync_filters_netns()
 * reports.
 */
static bool probe_skb_netns_cookie(void)
{
	const struct bpf_insn insns[] = {
		/* r1 = ctx already; r0 = bpf_get_netns_cookie(ctx) */
		{ .code = BPF_JMP | BPF_CALL,
		  .imm = BPF_FUNC_get_netns_cookie },
		/* return 1 (cgroup_skb: pass) */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K,
		  .dst_reg = BPF_REG_0,
		  .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts,
		    .expected_attach_type = BPF_CGROUP_INET_EGRESS);
	int fd;

	fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SKB, "egressd_probe", "GPL",
			   insns, sizeof(insns) / sizeof(insns[0]), &opts);
	if (fd < 0) {
		log_debug("bpf: no bpf_get_netns_cookie() for cgroup_skb: %s",
			  strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

bool bpfsync_filters_netns(const struct bpfsync *bs)
{
	return bs->skel->rodata->skb_netns_cookie;
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

static int read_cfg(struct bpfsync *bs, struct egressd_bpf_cfg *cfg)
{
	__u32 zero = 0;

	if (bpf_map__lookup_elem(bs->skel->maps.config, &zero, sizeof(zero),
				 cfg, sizeof(*cfg), 0))
		return -errno;
	return 0;
}

static int write_cfg(struct bpfsync *bs, const struct egressd_bpf_cfg *cfg)
{
	__u32 zero = 0;

	if (bpf_map__update_elem(bs->skel->maps.config, &zero, sizeof(zero),
				 cfg, sizeof(*cfg), BPF_ANY))
		return -errno;
	return 0;
}

int bpfsync_open(struct bpfsync **out, const char *pin_dir,
		 size_t learned_max)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct egressd_bpf_cfg cfg;
	struct bpfsync *bs;
	int err;

	*out = NULL;
	bs = calloc(1, sizeof(*bs));
	if (!bs)
		return -ENOMEM;
	bs->lock_fd = -1;
	if (!pin_dir)
		pin_dir = BPFSYNC_DEFAULT_PIN_DIR;
	if (strlen(pin_dir) >= sizeof(bs->pin_dir) || pin_dir[0] != '/') {
		err = -EINVAL;
		log_warnx("bpf pin dir must be an absolute path below %d bytes",
			  PIN_DIR_MAX);
		goto out_free;
	}
	snprintf(bs->pin_dir, sizeof(bs->pin_dir), "%s", pin_dir);
	libbpf_set_print(libbpf_print);

	err = ensure_bpffs(bs->pin_dir);
	if (err) {
		log_warnx("bpf pin dir %s is not on bpffs: %s", bs->pin_dir,
			  strerror(-err));
		goto out_free;
	}
	err = lock_pin_dir(bs);
	if (err) {
		log_warnx("bpf pin dir %s: %s", bs->pin_dir,
			  err == -EBUSY ? "in use by another egressd" :
					  strerror(-err));
		goto out_free;
	}

	/*
	 * Pins of another network namespace (a pin dir shared between
	 * sandboxes) are never adopted: writing our cookie into their config
	 * would hand their sandbox's programs to ours.
	 */
	{
		uint64_t owner, self = 0;

		err = bpfsync_pins_owner(bs->pin_dir, &owner, &self);
		if (err == 1) {
			log_warnx("bpf pin dir %s belongs to another network namespace (netns cookie %llu, this one %llu): give each sandbox its own OPENSANDBOX_EGRESS_BPF_PIN_DIR (or remove the directory if that sandbox is gone)",
				  bs->pin_dir, (unsigned long long)owner,
				  (unsigned long long)self);
			err = -EXDEV;
			goto out_free;
		}
	}

	/* open -> rodata -> pin paths -> load */
	opts.pin_root_path = bs->pin_dir;
	bs->skel = egress_bpf__open_opts(&opts);
	if (!bs->skel) {
		err = -errno;
		log_warnx("bpf open failed: %s", strerror(-err));
		goto out_free;
	}
	/* Before check_pins(): a pin of another size is replaced. */
	if (learned_max &&
	    (bpf_map__set_max_entries(bs->skel->maps.learned_v4,
				      learned_max) ||
	     bpf_map__set_max_entries(bs->skel->maps.learned_v6,
				      learned_max))) {
		err = -EINVAL;
		log_warnx("bpf: cannot size the learned maps to %zu",
			  learned_max);
		goto out_free;
	}
	bs->skel->rodata->skb_netns_cookie = probe_skb_netns_cookie();
	if (!bs->skel->rodata->skb_netns_cookie)
		log_info("bpf: this kernel gives cgroup_skb programs no netns cookie (6.15+): they judge every socket of the cgroup they are attached to");
	err = check_pins(bs);
	if (err)
		goto out_free;
	err = egress_bpf__load(bs->skel);
	if (err) {
		log_warnx("bpf load failed: %s", strerror(-err));
		goto out_free;
	}

	err = netns_cookie((uint64_t *)&bs->netns_cookie);
	if (!err)
		err = read_cfg(bs, &cfg);
	if (!err) {
		cfg.netns_cookie = bs->netns_cookie;
		/* a restart keeps the redirect on until it is re-attached */
		bs->dns_port = cfg.dns_port;
		err = write_cfg(bs, &cfg);
	}
	if (err) {
		log_warnx("bpf config init failed: %s", strerror(-err));
		goto out_free;
	}
	*out = bs;
	return 0;

out_free:
	bpfsync_free(bs);
	return err;
}

/*
 * Attach prog to the cgroup open as cgfd (inode ino) through the link
 * pinned as <pin_dir>/links/<prefix><ino>: an existing pin gets the new
 * program swapped in (no window without it), otherwise a new link is
 * created and pinned. *out: the link (the caller destroys its handle).
 */
static int attach_prog(struct bpfsync *bs, struct bpf_program *prog, int cgfd,
		       ino_t ino, const char *prefix, const char *cgroup_path,
		       struct bpf_link **out)
{
	char path[PATH_MAX];
	struct bpf_link *link;
	int err;

	/* the cgroup id is its inode: a recreated cgroup gets a new link */
	snprintf(path, sizeof(path), "%s/" LINKS_SUBDIR "/%s%llu", bs->pin_dir,
		 prefix, (unsigned long long)ino);
	link = access(path, F_OK) ? NULL : bpf_link__open(path);
	if (link) {
		err = bpf_link__update_program(link, prog);
		if (!err) {
			log_info("bpf program %s swapped into pinned link %s",
				 bpf_program__name(prog), path);
			*out = link;
			return 0;
		}
		log_warnx("bpf link %s: update failed (%s): re-attaching", path,
			  strerror(-err));
		bpf_link__unpin(link);
		bpf_link__destroy(link);
	}
	link = bpf_program__attach_cgroup(prog, cgfd);
	if (!link) {
		err = -errno;
		log_warnx("bpf attach of %s to %s failed: %s",
			  bpf_program__name(prog), cgroup_path, strerror(-err));
		return err;
	}
	err = bpf_link__pin(link, path);
	if (err) {
		log_warnx("bpf link pin %s failed: %s", path, strerror(-err));
		bpf_link__destroy(link);
		return err;
	}
	*out = link;
	return 0;
}

/* Undo attach_prog() on a link this run holds: unpin, detach, free. */
static void link_drop(struct bpf_link *link)
{
	bpf_link__unpin(link);
	bpf_link__detach(link);
	bpf_link__destroy(link);
}

/*
 * Detach the pinned link at path (its program leaves the cgroup even if
 * someone else holds the link) and remove the pin. 0, or -1 with errno
 * from unlink().
 */
static int link_remove(const char *path)
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

/*
 * Detach and unpin the links under <pin_dir>/links whose name starts with
 * one of prefixes but does not end in _<keep> (the cgroup attached now):
 * links a previous run made for another cgroup would otherwise go on
 * judging it with this run's maps, until --cleanup.
 */
static void sweep_links(struct bpfsync *bs, const char *const *prefixes,
			size_t n, ino_t keep)
{
	char dir[PATH_MAX], path[PATH_MAX + 256], want[32];
	struct dirent *de;
	size_t i, len;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/" LINKS_SUBDIR, bs->pin_dir);
	snprintf(want, sizeof(want), "_%llu", (unsigned long long)keep);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		for (i = 0; i < n; i++)
			if (!strncmp(de->d_name, prefixes[i],
				     strlen(prefixes[i])))
				break;
		len = strlen(de->d_name);
		if (i == n || (len > strlen(want) &&
			       !strcmp(de->d_name + len - strlen(want), want)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (link_remove(path))
			log_warnx("bpf link %s: unlink: %s", path,
				  strerror(errno));
		else
			log_info("bpf link %s of a previous run removed (another cgroup)",
				 path);
	}
	closedir(d);
}

static int open_cgroup(const char *cgroup_path, ino_t *ino)
{
	struct stat st;
	int cgfd, err;

	cgfd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0 || fstat(cgfd, &st)) {
		err = -errno;
		log_warnx("cgroup %s: %s", cgroup_path, strerror(-err));
		if (cgfd >= 0)
			close(cgfd);
		return err;
	}
	*ino = st.st_ino;
	return cgfd;
}

int bpfsync_attach(struct bpfsync *bs, const char *cgroup_path)
{
	struct bpf_link *link, *ilink;
	ino_t ino;
	int cgfd, err;

	cgfd = open_cgroup(cgroup_path, &ino);
	if (cgfd < 0)
		return cgfd;
	/* Ingress first: replies to peers that contacted the workload are
	 * known before the egress program judges them. */
	err = attach_prog(bs, bs->skel->progs.ingress_track, cgfd, ino,
			  "ingress_", cgroup_path, &ilink);
	if (!err) {
		err = attach_prog(bs, bs->skel->progs.egress_filter, cgfd, ino,
				  "cgroup_", cgroup_path, &link);
		if (err)
			link_drop(ilink);
	}
	close(cgfd);
	if (err)
		return err;
	bpf_link__destroy(bs->link);
	bs->link = link;
	bpf_link__destroy(bs->ilink);
	bs->ilink = ilink;
	{
		static const char *const pre[] = { "cgroup_", "ingress_" };

		sweep_links(bs, pre, 2, ino);
	}
	return 0;
}

/* Unpin and detach what bpfsync_redirect_attach() attached. */
static void redirect_detach(struct bpfsync *bs)
{
	int i;

	for (i = 0; i < N_REDIRECT; i++) {
		if (!bs->rlink[i])
			continue;
		link_drop(bs->rlink[i]);
		bs->rlink[i] = NULL;
	}
}

int bpfsync_redirect_attach(struct bpfsync *bs, const char *cgroup_path,
			    uint16_t port)
{
	struct bpf_program *progs[N_REDIRECT] = {
		bs->skel->progs.dns_connect4,	  bs->skel->progs.dns_connect6,
		bs->skel->progs.dns_sendmsg4,	  bs->skel->progs.dns_sendmsg6,
		bs->skel->progs.dns_recvmsg4,	  bs->skel->progs.dns_recvmsg6,
		bs->skel->progs.dns_getpeername4, bs->skel->progs.dns_getpeername6,
	};
	struct egressd_bpf_cfg cfg;
	char prefix[64];
	ino_t ino;
	int cgfd, err = 0, i;

	if (!port)
		return -EINVAL;
	cgfd = open_cgroup(cgroup_path, &ino);
	if (cgfd < 0)
		return cgfd;
	/* Replies and getpeername first, so that no redirected query ever
	 * gets an answer that shows the proxy's address. */
	for (i = N_REDIRECT - 1; i >= 0 && !err; i--) {
		/* "dns_connect4" -> "dns_connect4_<ino>" */
		snprintf(prefix, sizeof(prefix), "%s_",
			 bpf_program__name(progs[i]));
		bpf_link__destroy(bs->rlink[i]);
		bs->rlink[i] = NULL;
		err = attach_prog(bs, progs[i], cgfd, ino, prefix, cgroup_path,
				  &bs->rlink[i]);
	}
	close(cgfd);
	if (!err)
		err = read_cfg(bs, &cfg);
	if (!err) {
		cfg.dns_port = port;
		err = write_cfg(bs, &cfg);
	}
	if (err) {
		redirect_detach(bs);
		bs->dns_port = 0;
		if (!read_cfg(bs, &cfg)) {
			cfg.dns_port = 0;
			write_cfg(bs, &cfg);
		}
		return err;
	}
	bs->dns_port = port;
	{
		static const char *const pre[] = { "dns_" };

		sweep_links(bs, pre, 1, ino);
	}
	return 0;
}

int bpfsync_set_config(struct bpfsync *bs, const struct bpfsync_config *c)
{
	struct egressd_bpf_cfg cfg;
	int err;

	err = read_cfg(bs, &cfg);
	if (err)
		return err;
	cfg.netns_cookie = bs->netns_cookie;
	cfg.dns_port = bs->dns_port;
	cfg.mode = c->observe ? EGRESSD_DP_OBSERVE : EGRESSD_DP_ENFORCE;
	cfg.agent_cgid = c->agent_cgid;
	cfg.agent_level = c->agent_level;
	cfg.api_port = c->api_port;
	cfg.api_cgid = c->api_cgid;
	cfg.api_level = c->api_level;
	return write_cfg(bs, &cfg);
}

/* Unpin and detach what bpfsync_guard_attach() attached. */
static void guard_detach(struct bpfsync *bs)
{
	int i;

	for (i = 0; i < N_GUARD; i++) {
		if (!bs->glink[i])
			continue;
		link_drop(bs->glink[i]);
		bs->glink[i] = NULL;
	}
}

int bpfsync_guard_attach(struct bpfsync *bs, const char *cgroup_path,
			 uint16_t dns_port, uint16_t api_port)
{
	struct bpf_program *progs[N_GUARD] = {
		bs->skel->progs.guard_bind4,
		bs->skel->progs.guard_bind6,
	};
	struct egressd_bpf_cfg cfg;
	char prefix[64];
	ino_t ino;
	int cgfd, err = 0, i;

	/* The ports first: a program swapped in must guard at once. */
	err = read_cfg(bs, &cfg);
	if (err)
		return err;
	cfg.bind_dns_port = dns_port;
	cfg.api_port = api_port;
	err = write_cfg(bs, &cfg);
	if (err)
		return err;
	cgfd = open_cgroup(cgroup_path, &ino);
	if (cgfd < 0)
		return cgfd;
	for (i = 0; i < N_GUARD && !err; i++) {
		snprintf(prefix, sizeof(prefix), "%s_",
			 bpf_program__name(progs[i]));
		bpf_link__destroy(bs->glink[i]);
		bs->glink[i] = NULL;
		err = attach_prog(bs, progs[i], cgfd, ino, prefix, cgroup_path,
				  &bs->glink[i]);
	}
	close(cgfd);
	if (err) {
		guard_detach(bs);
		return err;
	}
	{
		static const char *const pre[] = { "guard_" };

		sweep_links(bs, pre, 1, ino);
	}
	return 0;
}

int bpfsync_agent_socks_fd(const struct bpfsync *bs)
{
	return bpf_map__fd(bs->skel->maps.agent_socks);
}

int bpfsync_agent_socks_pinned(const char *pin_dir)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/" EGRESSD_MAP_AGENT_SOCKS,
		 pin_dir ? pin_dir : BPFSYNC_DEFAULT_PIN_DIR);
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

/* Key of p in slot; 0 or -EINVAL. The address is masked to prefixlen. */
static int make_lpm_key(const struct bpfsync_prefix *p, __u8 slot, void *key,
			size_t *ksz)
{
	size_t alen = p->family == 6 ? 16 : 4;
	__u8 *addr;
	size_t i;

	if ((p->family != 4 && p->family != 6) || p->prefixlen > alen * 8)
		return -EINVAL;
	if (p->family == 6) {
		struct egressd_lpm6_key *k = key;

		memset(k, 0, sizeof(*k));
		k->prefixlen = EGRESSD_LPM_SLOT_BITS + p->prefixlen;
		k->slot = slot;
		addr = k->addr;
		*ksz = sizeof(*k);
	} else {
		struct egressd_lpm4_key *k = key;

		memset(k, 0, sizeof(*k));
		k->prefixlen = EGRESSD_LPM_SLOT_BITS + p->prefixlen;
		k->slot = slot;
		addr = k->addr;
		*ksz = sizeof(*k);
	}
	for (i = 0; i < alen; i++) {
		int bits = (int)p->prefixlen - (int)i * 8;

		if (bits >= 8)
			addr[i] = p->addr[i];
		else if (bits > 0)
			addr[i] = p->addr[i] & (__u8)(0xff << (8 - bits));
	}
	return 0;
}

/*
 * Delete every entry of one slot in an LPM map: collect the keys first,
 * then delete, since deleting while walking would restart the walk.
 * Both key structs start with prefixlen and slot, and the v6 one is big
 * enough to hold either.
 */
static int clear_slot(struct bpf_map *map, __u8 slot)
{
	struct egressd_lpm6_key key, *keys = NULL, *tmp;
	size_t ksz = bpf_map__key_size(map), n = 0, cap = 0, i;
	int fd = bpf_map__fd(map), err = 0;
	void *prev = NULL;

	memset(&key, 0, sizeof(key));
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (key.slot != slot)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			tmp = realloc(keys, cap * sizeof(*keys));
			if (!tmp) {
				err = -ENOMEM;
				goto out_free;
			}
			keys = tmp;
		}
		memcpy(&keys[n++], &key, ksz);
	}
	if (errno != ENOENT) {
		err = -errno;
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		if (bpf_map_delete_elem(fd, &keys[i]) && errno != ENOENT) {
			err = -errno;
			break;
		}
	}
out_free:
	free(keys);
	return err;
}

static int write_set(struct bpfsync *bs, enum bpfsync_set set,
		     const struct bpfsync_prefix *pfx, size_t n, __u8 slot)
{
	struct egressd_lpm6_key key;
	struct egressd_rule_val val;
	size_t i, ksz, n4 = 0, n6 = 0;
	int err;

	for (i = 0; i < n; i++) {
		if (pfx[i].family == 6)
			n6++;
		else
			n4++;
	}
	if (n4 > EGRESSD_MAX_PREFIXES || n6 > EGRESSD_MAX_PREFIXES)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		err = make_lpm_key(&pfx[i], slot, &key, &ksz);
		if (err)
			return err;
		memset(&val, 0, sizeof(val));
		val.rule = pfx[i].rule;
		/* The slot was cleared: an existing key is a duplicate
		 * prefix, and the first one listed keeps its rule id (the
		 * compiled policy's lookup answers the same). */
		if (bpf_map__update_elem(set_map(bs, set, pfx[i].family), &key,
					 ksz, &val, sizeof(val),
					 BPF_NOEXIST) &&
		    errno != EEXIST)
			return -errno;
	}
	return 0;
}

static int clear_all_slots(struct bpfsync *bs, __u8 slot)
{
	int set, fam, err;

	for (set = 0; set < BPFSYNC_SET_MAX; set++) {
		for (fam = 4; fam <= 6; fam += 2) {
			err = clear_slot(set_map(bs, set, fam), slot);
			if (err)
				return err;
		}
	}
	return 0;
}

/*
 * Write the inactive slot, publish its settings, flip the active byte,
 * then clear the old slot. Until the flip the datapath reads only the old
 * slot; after it, only the new one. Packets read the slot once, so none is
 * judged by a mix of both.
 */
int bpfsync_apply_policy(struct bpfsync *bs, const struct bpfsync_policy *p)
{
	struct egressd_bpf_cfg cfg;
	__u8 next;
	int set, err;

	err = read_cfg(bs, &cfg);
	if (err)
		return err;
	next = !(cfg.active & 1);

	err = clear_all_slots(bs, next);
	for (set = 0; !err && set < BPFSYNC_SET_MAX; set++)
		err = write_set(bs, set, p->set[set], p->n[set], next);
	if (err)
		goto out_clear_next;

	memset(&cfg.slot[next], 0, sizeof(cfg.slot[next]));
	cfg.slot[next].generation = p->generation;
	cfg.slot[next].default_verdict =
		p->default_allow ? EGRESSD_DEFAULT_ALLOW : EGRESSD_DEFAULT_DENY;
	cfg.slot[next].flags = p->ipv6_deny ? EGRESSD_SLOT_IPV6_DENY : 0;
	err = write_cfg(bs, &cfg);
	if (err)
		goto out_clear_next;
	cfg.active = next;
	err = write_cfg(bs, &cfg);
	if (err)
		goto out_clear_next;

	err = clear_all_slots(bs, !next);
	if (err)
		log_warnx("bpf policy %llu applied, old slot not cleared: %s",
			  (unsigned long long)p->generation, strerror(-err));
	return 0;

out_clear_next:
	log_warnx("bpf policy %llu not applied: %s",
		  (unsigned long long)p->generation, strerror(-err));
	clear_all_slots(bs, next);
	return err;
}

static struct bpf_map *learned_map(struct bpfsync *bs, int family, size_t *ksz)
{
	*ksz = family == 6 ? 16 : 4;
	if (family == 6)
		return bs->skel->maps.learned_v6;
	return family == 4 ? bs->skel->maps.learned_v4 : NULL;
}

/* Sweep's verdict on a learned entry: 1 delete, 0 keep, -1 extend. */
static int learned_verdict(struct egressd_learned_val *v, uint64_t now,
			   uint64_t grace)
{
	if (v->last_seen_ns + grace > now &&
	    v->expires_ns < v->last_seen_ns + grace) {
		v->expires_ns = v->last_seen_ns + grace;
		return -1;
	}
	return now >= v->expires_ns;
}

#define RECLAIM_EVERY_NS 1000000000ULL

/*
 * The map of family is full: delete its expired, idle entries (as the
 * sweep would) in one pass, at most once a second. Keys are collected
 * first: deleting under bpf_map_get_next_key() restarts the walk.
 * Returns the number deleted.
 */
static int reclaim_map(struct bpfsync *bs, int family, uint64_t now)
{
	struct egressd_learned_val v;
	size_t ksz, cap, n = 0, i;
	struct bpf_map *map = learned_map(bs, family, &ksz);
	int fd = bpf_map__fd(map), deleted = 0;
	__u8 key[16], *keys;
	bool have = false;

	if (now < bs->reclaim_ns[family == 6] + RECLAIM_EVERY_NS)
		return 0;
	bs->reclaim_ns[family == 6] = now;
	cap = bpf_map__max_entries(map);
	keys = malloc(cap * ksz);
	if (!keys)
		return -ENOMEM;
	while (n < cap && !bpf_map_get_next_key(fd, have ? key : NULL, key)) {
		have = true;
		if (!bpf_map_lookup_elem(fd, key, &v) &&
		    learned_verdict(&v, now, bs->exp_grace_ns) == 1)
			memcpy(keys + n++ * ksz, key, ksz);
	}
	for (i = 0; i < n; i++)
		if (!bpf_map_delete_elem(fd, keys + i * ksz))
			deleted++;
	free(keys);
	bs->lstats.reclaimed += deleted;
	return deleted;
}

int bpfsync_learn(struct bpfsync *bs, int family, const void *addr,
		  uint64_t expires_ns, uint32_t generation)
{
	struct egressd_learned_val val = {}, old;
	struct bpf_map *map;
	size_t ksz;
	int ret;

	map = learned_map(bs, family, &ksz);
	if (!map)
		return -EINVAL;
	if (!bpf_map__lookup_elem(map, addr, ksz, &old, sizeof(old), 0)) {
		val.last_seen_ns = old.last_seen_ns;
		if (old.expires_ns > expires_ns)
			expires_ns = old.expires_ns;
	}
	val.expires_ns = expires_ns;
	val.generation = generation;
	if (!bpf_map__update_elem(map, addr, ksz, &val, sizeof(val), BPF_ANY))
		return 0;
	ret = -errno;
	if (ret == -E2BIG && reclaim_map(bs, family, bpfsync_now_ns()) > 0 &&
	    !bpf_map__update_elem(map, addr, ksz, &val, sizeof(val), BPF_ANY))
		return 0;
	if (ret == -E2BIG)
		bs->lstats.full++;
	return ret;
}

void bpfsync_get_learned_stats(const struct bpfsync *bs,
			       struct bpfsync_learned_stats *out)
{
	*out = bs->lstats;
}

void bpfsync_set_extended_hook(struct bpfsync *bs,
			       void (*fn)(void *arg, int family,
					  const void *addr, uint64_t until_ns),
			       void *arg)
{
	bs->extended = fn;
	bs->extended_arg = arg;
}

int bpfsync_forget(struct bpfsync *bs, int family, const void *addr)
{
	struct bpf_map *map;
	size_t ksz;

	map = learned_map(bs, family, &ksz);
	if (!map)
		return -EINVAL;
	if (bpf_map__delete_elem(map, addr, ksz, 0) && errno != ENOENT)
		return -errno;
	return 0;
}

/* One family's share of bpfsync_expire(); *wrapped at the map's end. */
static int expire_map(struct bpfsync *bs, int family, uint64_t now,
		      uint64_t grace, unsigned int *budget, bool *wrapped)
{
	struct egressd_learned_val v;
	struct bpf_map *map;
	__u8 next[16];
	int fd, deleted = 0, verdict;
	size_t ksz;

	map = learned_map(bs, family, &ksz);
	fd = bpf_map__fd(map);
	while (*budget) {
		if (bpf_map_get_next_key(
			    fd, bs->exp_have_key ? bs->exp_key : NULL, next)) {
			if (errno != ENOENT)
				return -errno;
			bs->exp_have_key = false;
			*wrapped = true;
			break;
		}
		(*budget)--;
		if (bpf_map_lookup_elem(fd, next, &v))
			goto keep;
		verdict = learned_verdict(&v, now, grace);
		if (verdict < 0) {
			if (!bpf_map_update_elem(fd, next, &v, BPF_EXIST) &&
			    bs->extended)
				bs->extended(bs->extended_arg, family, next,
					     v.expires_ns);
		} else if (verdict) {
			/* cursor stays on the previous key kept */
			if (!bpf_map_delete_elem(fd, next))
				deleted++;
			continue;
		}
keep:
		memcpy(bs->exp_key, next, ksz);
		bs->exp_have_key = true;
	}
	return deleted;
}

int bpfsync_expire(struct bpfsync *bs, uint64_t now_ns, uint64_t grace_ns,
		   unsigned int budget, bool *pass_done)
{
	bool wrapped;
	int n, total = 0;

	*pass_done = false;
	bs->exp_grace_ns = grace_ns;
	while (budget) {
		wrapped = false;
		n = expire_map(bs, bs->exp_family ? 6 : 4, now_ns, grace_ns,
			       &budget, &wrapped);
		if (n < 0)
			return n;
		total += n;
		if (!wrapped)
			break;
		bs->exp_family = !bs->exp_family;
		if (!bs->exp_family) {
			*pass_done = true;
			break;
		}
	}
	return total;
}

int bpfsync_read_counters(struct bpfsync *bs, uint64_t out[EGRESSD_CNT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;
	__u32 i;
	int c, err = 0;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (i = 0; i < EGRESSD_CNT_MAX; i++) {
		if (bpf_map__lookup_elem(bs->skel->maps.counters, &i, sizeof(i),
					 vals, ncpu * sizeof(*vals), 0)) {
			err = -errno;
			break;
		}
		out[i] = 0;
		for (c = 0; c < ncpu; c++)
			out[i] += vals[c];
	}
	free(vals);
	return err;
}

static void fold_key_of(struct egressd_fold_key *k,
			const struct egressd_event *e)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->dst, e->dst, sizeof(k->dst));
	k->dport = e->dport;
	k->reason = e->reason;
	k->family = e->family;
}

static struct fold_seen **seen_find(struct bpfsync *bs,
				   const struct egressd_fold_key *k)
{
	struct fold_seen **pp;
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < sizeof(*k); i++)
		h = (h ^ ((const unsigned char *)k)[i]) * 16777619u;
	for (pp = &bs->seen[h % FOLD_SEEN_BUCKETS]; *pp; pp = &(*pp)->next)
		if (!memcmp(&(*pp)->key, k, sizeof(*k)))
			break;
	return pp;
}

/* Remember e as its key's last record (best effort: bounded table). */
static void seen_note(struct bpfsync *bs, const struct egressd_event *e)
{
	struct egressd_fold_key k;
	struct fold_seen **pp, *s;

	fold_key_of(&k, e);
	pp = seen_find(bs, &k);
	if (!*pp) {
		if (bs->n_seen >= EGRESSD_FOLD_ENTRIES)
			return;
		s = calloc(1, sizeof(*s));
		if (!s)
			return;
		s->key = k;
		*pp = s;
		bs->n_seen++;
	}
	(*pp)->rec = *e;
}

static void seen_free_all(struct bpfsync *bs)
{
	struct fold_seen *s, *next;
	size_t i;

	for (i = 0; i < FOLD_SEEN_BUCKETS; i++) {
		for (s = bs->seen[i]; s; s = next) {
			next = s->next;
			free(s);
		}
		bs->seen[i] = NULL;
	}
	bs->n_seen = 0;
}

static int handle_event(void *ctx, void *data, size_t len)
{
	struct bpfsync *bs = ctx;
	struct egressd_event e;

	if (len < sizeof(e))
		return 0;
	memcpy(&e, data, sizeof(e));
	seen_note(bs, &e);
	return bs->event_cb(bs->event_ctx, &e);
}

/*
 * Report one drained key: its last record with count = folded, or, with
 * no record at hand (lost to a full ring buffer, or folded before this
 * run), a record of what the key says.
 */
static void fold_report_drained(struct bpfsync *bs,
				const struct egressd_fold_key *k,
				uint64_t folded, uint64_t now_ns)
{
	struct fold_seen **pp = seen_find(bs, k), *s = *pp;
	struct egressd_event e;

	if (s) {
		e = s->rec;
		*pp = s->next;
		free(s);
		bs->n_seen--;
	} else {
		memset(&e, 0, sizeof(e));
		memcpy(e.dst, k->dst, sizeof(e.dst));
		e.dport = k->dport;
		e.reason = k->reason;
		e.family = k->family;
		e.action = EGRESSD_ACTION_DROP;
		e.rule = EGRESSD_RULE_NONE; /* unknown here, not egress[0] */
	}
	e.ts_ns = now_ns;
	e.count = folded;
	bs->event_cb(bs->event_ctx, &e);
}

/*
 * A full ring buffer costs reports, never verdicts: the program counts
 * each record it could not queue (EGRESSD_CNT_RINGBUF_DROPS) and keeps
 * the packet folded, to be reported with a later line. Say so, at most
 * once a second, and at the first drain those since the pins were made
 * (a ring that filled while egressd was down or stopped).
 */
static void drops_report(struct bpfsync *bs, uint64_t now_ns)
{
	int ncpu = libbpf_num_possible_cpus();
	__u32 idx = EGRESSD_CNT_RINGBUF_DROPS;
	uint64_t total = 0;
	__u64 *vals;
	int c;

	if (bs->rb_drops_known && now_ns - bs->rb_warned_ns < 1000000000ULL)
		return;
	if (ncpu <= 0)
		return;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return;
	if (!bpf_map__lookup_elem(bs->skel->maps.counters, &idx, sizeof(idx),
				  vals, ncpu * sizeof(*vals), 0)) {
		for (c = 0; c < ncpu; c++)
			total += vals[c];
		if (total > bs->rb_drops)
			log_warnx("the events ring buffer was full: %llu "
				  "violation record(s) not queued %s; the "
				  "packets were judged all the same, and are "
				  "counted and reported folded into later "
				  "lines",
				  (unsigned long long)(total - bs->rb_drops),
				  bs->rb_drops_known ? "in the last second" :
						       "since the pins were made");
		if (total > bs->rb_drops || !bs->rb_drops_known)
			bs->rb_warned_ns = now_ns;
		bs->rb_drops = total;
		bs->rb_drops_known = true;
	}
	free(vals);
}

int bpfsync_fold_drain(struct bpfsync *bs, uint64_t now_ns, bool all)
{
	struct egressd_fold_key *keys, key, *prev = NULL;
	struct egressd_fold_val val;
	struct fold_seen **pp, *s;
	size_t n = 0, i, steps = 0;
	int fd, ret = 0;

	if (!bs->rb)
		return -EINVAL;
	drops_report(bs, now_ns);
	fd = bpf_map__fd(bs->skel->maps.event_fold);
	keys = malloc(FOLD_DRAIN_MAX * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	/* First the keys whose window is over: deleting while walking
	 * would restart the walk. */
	/* (A key evicted under the walk restarts it: bounded.) */
	while (n < FOLD_DRAIN_MAX && steps++ < 2 * FOLD_DRAIN_MAX &&
	       !bpf_map_get_next_key(fd, prev, &key)) {
		keys[n] = key;
		prev = &keys[n];
		if (bpf_map_lookup_elem(fd, &key, &val))
			continue;
		if (all || now_ns - val.last_emit_ns >=
				   EGRESSD_FOLD_NS + FOLD_DRAIN_MARGIN_NS)
			n++;
		else
			prev = &key; /* kept: walk on from it */
	}
	/*
	 * Take each such entry out of the map with what it folded: the next
	 * packet of the key finds none and is reported at once, as it would
	 * have been. Idle entries (nothing folded) go too, so the walk stays
	 * as short as the keys active in the last second. A packet judged
	 * on another CPU in the very instant of the removal may be reported
	 * twice or not at all; the BPF counters stay exact.
	 */
	for (i = 0; i < n; i++) {
		if (bpf_map_lookup_and_delete_elem(fd, &keys[i], &val)) {
			if (errno == ENOENT)
				continue;
			/* Kernels without it for hash maps (< 5.14). */
			if (bpf_map_lookup_elem(fd, &keys[i], &val) ||
			    bpf_map_delete_elem(fd, &keys[i])) {
				ret = -errno;
				continue;
			}
		}
		if (val.folded)
			fold_report_drained(bs, &keys[i], val.folded, now_ns);
	}
	free(keys);
	/* Records that describe nothing recent any more. */
	for (i = 0; i < FOLD_SEEN_BUCKETS; i++) {
		pp = &bs->seen[i];
		while ((s = *pp)) {
			if (now_ns - s->rec.ts_ns > FOLD_SEEN_MAX_AGE_NS) {
				*pp = s->next;
				free(s);
				bs->n_seen--;
				continue;
			}
			pp = &s->next;
		}
	}
	return ret;
}

int bpfsync_events_open(struct bpfsync *bs,
			int (*cb)(void *ctx, const struct egressd_event *e),
			void *ctx)
{
	if (bs->rb)
		return -EALREADY;
	bs->event_cb = cb;
	bs->event_ctx = ctx;
	bs->rb = ring_buffer__new(bpf_map__fd(bs->skel->maps.events),
				  handle_event, bs, NULL);
	if (!bs->rb)
		return -errno;
	return 0;
}

int bpfsync_events_fd(struct bpfsync *bs)
{
	return bs->rb ? ring_buffer__epoll_fd(bs->rb) : -EINVAL;
}

int bpfsync_events_consume(struct bpfsync *bs)
{
	return bs->rb ? ring_buffer__consume(bs->rb) : -EINVAL;
}

size_t bpfsync_prog_ids(const struct bpfsync *bs, uint32_t *ids,
			char (*names)[BPFSYNC_NAME_LEN], size_t max)
{
	struct bpf_program *prog;
	struct bpf_prog_info info;
	__u32 len;
	size_t n = 0;

	bpf_object__for_each_program(prog, bs->skel->obj)
	{
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		if (n == max || bpf_program__fd(prog) < 0 ||
		    bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			continue;
		if (names)
			snprintf(names[n], sizeof(names[n]), "%s", info.name);
		ids[n++] = info.id;
	}
	return n;
}

/*
 * Is link still attached, and still pinned where it was? 0, -ENOLINK
 * (detached: its cgroup id reads 0) or -ENOENT (attached, pin removed),
 * with why saying which link. The pin path is the one libbpf recorded
 * when the link was pinned or opened from its pin.
 */
static int link_check(struct bpf_link *link, const char *what, char *why,
		      size_t whylen)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	const char *pin = bpf_link__pin_path(link);

	if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &len)) {
		snprintf(why, whylen, "the %s link cannot be read: %s", what,
			 strerror(errno));
		return -ENOLINK;
	}
	if (info.type == BPF_LINK_TYPE_CGROUP && !info.cgroup.cgroup_id) {
		snprintf(why, whylen,
			 "the %s link (id %u) was detached from its cgroup outside egressd",
			 what, info.id);
		return -ENOLINK;
	}
	if (pin && access(pin, F_OK)) {
		snprintf(why, whylen,
			 "the %s link (id %u) is attached but its pin %s was removed: enforcement ends when egressd stops",
			 what, info.id, pin);
		return -ENOENT;
	}
	return 0;
}

int bpfsync_links_check(struct bpfsync *bs, bool redirect, char *why,
			size_t whylen)
{
	int i, ret, worst = 0;
	char one[512];

	why[0] = 0;
	for (i = -2; i < N_REDIRECT; i++) {
		struct bpf_link *l = i == -2 ? bs->link :
				     i == -1 ? bs->ilink : bs->rlink[i];
		const char *what = i == -2 ? "egress_filter" :
				   i == -1 ? "ingress_track" :
					     "DNS redirect";

		if (!l || (i >= 0) != redirect)
			continue;
		ret = link_check(l, what, one, sizeof(one));
		/* report the worst: a detached link over a removed pin */
		if (ret && (!worst || (ret == -ENOLINK && worst != -ENOLINK))) {
			worst = ret;
			snprintf(why, whylen, "%s", one);
		}
	}
	return worst;
}

void bpfsync_free(struct bpfsync *bs)
{
	int i;

	if (!bs)
		return;
	ring_buffer__free(bs->rb);
	seen_free_all(bs);
	/* the pinned links keep the programs attached without us */
	bpf_link__destroy(bs->link);
	bpf_link__destroy(bs->ilink);
	for (i = 0; i < N_REDIRECT; i++)
		bpf_link__destroy(bs->rlink[i]);
	for (i = 0; i < N_GUARD; i++)
		bpf_link__destroy(bs->glink[i]);
	egress_bpf__destroy(bs->skel);
	if (bs->lock_fd >= 0)
		close(bs->lock_fd);
	free(bs);
}

/* Detach and unpin every link under <pin_dir>/links, then the dir. */
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
		if (link_remove(path) && !err)
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
