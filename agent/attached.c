// SPDX-License-Identifier: GPL-2.0-only
/*
 * Programs attached to the cgroups egressd uses (include/egressd/
 * attached.h). BPF_PROG_QUERY lists them per attach type; a program that
 * is not ours but carries one of egressd's program names and a "config"
 * map is another egressd run's. Its config names the network namespace it
 * judges (the netns cookie: programs of another namespace pass our
 * packets untouched and are left alone). One of ours judges this
 * namespace with a policy that only its own agent updates, so it is
 * detached when no running egressd maintains it: attached without a link,
 * its link pinned nowhere on bpffs (walked, bounded), or pinned only in
 * pin directories whose flock no agent holds. Held under those locks
 * while it is detached, so that an agent starting there meanwhile is not
 * pulled from under. Anything else is listed and never touched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "egressd/attached.h"
#include "egressd/log.h"
#include "egressd/netns.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#define MAX_PROGS 64 /* per cgroup and attach type */
#define MAX_MAPS 64 /* per program */
#define MAX_WARNED 64 /* foreign programs /status warned about */
#define WALK_DEPTH 8 /* bpffs directory levels */
#define WALK_BUDGET 20000 /* bpffs entries looked at, in all */
#define MAX_PINS 16 /* pins of one link considered */

enum owner { OWNER_OURS, OWNER_EGRESSD, OWNER_OTHER, OWNER_UNKNOWN };

static const char *const owner_names[] = { "ours", "foreign-egressd", "other",
					   "unknown" };

/* The attach types egressd uses (bpf/egress.bpf.c, bpf/redirect.bpf.h). */
static const enum bpf_attach_type types[] = {
	BPF_CGROUP_INET_EGRESS,	      BPF_CGROUP_INET_INGRESS,
	BPF_CGROUP_INET4_CONNECT,     BPF_CGROUP_INET6_CONNECT,
	BPF_CGROUP_UDP4_SENDMSG,      BPF_CGROUP_UDP6_SENDMSG,
	BPF_CGROUP_UDP4_RECVMSG,      BPF_CGROUP_UDP6_RECVMSG,
	BPF_CGROUP_INET4_GETPEERNAME, BPF_CGROUP_INET6_GETPEERNAME,
	BPF_CGROUP_INET4_BIND,	      BPF_CGROUP_INET6_BIND,
};

/* Keep in sync with the SEC() programs of bpf/egress.bpf.c and
 * bpf/redirect.bpf.h. */
static const char *const egressd_names[] = {
	"egress_filter",    "ingress_track",	"dns_connect4", "dns_connect6",
	"dns_sendmsg4",	    "dns_sendmsg6",	"dns_recvmsg4", "dns_recvmsg6",
	"dns_getpeername4", "dns_getpeername6", "guard_bind4",	"guard_bind6",
};

struct entry {
	const char *cgroup;
	int cgfd;
	__u64 cgid;
	enum bpf_attach_type type;
	__u32 prog_id;
	char name[BPF_OBJ_NAME_LEN];
	enum owner owner;
	__u64 cookie; /* OWNER_EGRESSD: netns cookie of its config */
};

struct list {
	struct entry *v;
	size_t n, cap;
	int cgfds[16];
	__u64 cgids[16];
	size_t ncg;
};

/* A link pin found on bpffs. */
struct pin {
	__u32 link_id;
	char path[PATH_MAX];
};

struct pins {
	struct pin *v;
	size_t n, cap;
	const __u32 *want; /* link ids looked for */
	size_t nwant;
	unsigned int budget;
};

/* Foreign program ids /status already warned about. */
static __u32 warned[MAX_WARNED];
static size_t n_warned;

bool attached_is_egressd_name(const char *name)
{
	char kname[BPF_OBJ_NAME_LEN];
	size_t i;

	for (i = 0; i < sizeof(egressd_names) / sizeof(egressd_names[0]); i++) {
		/* as the kernel keeps it: BPF_OBJ_NAME_LEN - 1 characters */
		snprintf(kname, sizeof(kname), "%s", egressd_names[i]);
		if (!strcmp(name, kname))
			return true;
	}
	return false;
}

static const char *type_name(enum bpf_attach_type t)
{
	const char *s = libbpf_bpf_attach_type_str(t);

	return s ? s : "?";
}

/*
 * The netns cookie in the program's map named "config" (its first 8
 * bytes, in every egressd version): 0 with *found when it has one, -errno
 * otherwise (-ENOENT: no such map, so not egressd's).
 */
static int prog_cookie(const struct bpf_prog_info *pi, const __u32 *map_ids,
		       __u64 *cookie)
{
	struct bpf_map_info mi;
	__u32 i, len, zero = 0;
	int fd, err = -ENOENT;
	void *val;

	for (i = 0; i < pi->nr_map_ids && i < MAX_MAPS; i++) {
		fd = bpf_map_get_fd_by_id(map_ids[i]);
		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		len = sizeof(mi);
		if (bpf_obj_get_info_by_fd(fd, &mi, &len) ||
		    strcmp(mi.name, "config") || mi.key_size != 4 ||
		    mi.value_size < sizeof(__u64) || mi.value_size > 4096) {
			close(fd);
			continue;
		}
		val = calloc(1, mi.value_size);
		if (!val) {
			close(fd);
			return -ENOMEM;
		}
		err = bpf_map_lookup_elem(fd, &zero, val) ? -errno : 0;
		if (!err)
			memcpy(cookie, val, sizeof(*cookie));
		free(val);
		close(fd);
		return err;
	}
	return err;
}

/* Index of id in s->ours, or -1. */
static long ours_index(const struct attached_scope *s, __u32 id)
{
	size_t i;

	for (i = 0; i < s->n_ours; i++)
		if (s->ours[i] == id)
			return (long)i;
	return -1;
}

static int push(struct list *l, const struct entry *e)
{
	struct entry *v;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		v = realloc(l->v, l->cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
	}
	l->v[l->n++] = *e;
	return 0;
}

static void list_free(struct list *l)
{
	size_t i;

	for (i = 0; i < l->ncg; i++)
		close(l->cgfds[i]);
	free(l->v);
}

/* One program attached to e->cgroup: name, owner (and cookie). */
static int describe(const struct attached_scope *s, struct entry *e)
{
	struct bpf_prog_info pi;
	__u32 map_ids[MAX_MAPS], len;
	long k = ours_index(s, e->prog_id);
	int fd, err;

	/* Ours: known without CAP_SYS_ADMIN, which the lookup by id needs. */
	if (k >= 0 && s->our_names) {
		e->owner = OWNER_OURS;
		snprintf(e->name, sizeof(e->name), "%s", s->our_names[k]);
		return 0;
	}
	e->owner = k >= 0 ? OWNER_OURS : OWNER_OTHER;
	fd = bpf_prog_get_fd_by_id(e->prog_id);
	if (fd < 0 && (errno == EPERM || errno == EACCES)) {
		/* BPF_PROG_GET_FD_BY_ID wants CAP_SYS_ADMIN: the id only */
		if (e->owner != OWNER_OURS)
			e->owner = OWNER_UNKNOWN;
		return 0;
	}
	if (fd < 0)
		return -errno; /* detached meanwhile */
	memset(&pi, 0, sizeof(pi));
	pi.nr_map_ids = MAX_MAPS;
	pi.map_ids = (__u64)(unsigned long)map_ids;
	len = sizeof(pi);
	err = bpf_obj_get_info_by_fd(fd, &pi, &len) ? -errno : 0;
	close(fd);
	if (err)
		return err;
	snprintf(e->name, sizeof(e->name), "%s", pi.name);
	if (e->owner == OWNER_OTHER && attached_is_egressd_name(e->name) &&
	    !prog_cookie(&pi, map_ids, &e->cookie))
		e->owner = OWNER_EGRESSD;
	return 0;
}

/*
 * Every program attached (not inherited) to the scope's cgroups. A cgroup
 * that cannot be opened is skipped, with a warning when loud (at start;
 * /status would repeat it on every request).
 */
static int collect(const struct attached_scope *s, struct list *l, bool loud)
{
	LIBBPF_OPTS(bpf_prog_query_opts, q);
	__u32 ids[MAX_PROGS], i;
	struct entry e;
	struct stat st;
	size_t c, k, t;
	int cgfd, err;

	memset(l, 0, sizeof(*l));
	for (c = 0; c < s->n_cgroups; c++) {
		cgfd = open(s->cgroups[c], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cgfd < 0 || fstat(cgfd, &st)) {
			err = -errno;
			if (loud)
				log_warnx("cgroup %s: %s", s->cgroups[c],
					  strerror(-err));
			if (cgfd >= 0)
				close(cgfd);
			continue;
		}
		for (k = 0; k < l->ncg; k++)
			if (l->cgids[k] == st.st_ino)
				break;
		if (k < l->ncg ||
		    l->ncg == sizeof(l->cgfds) / sizeof(l->cgfds[0])) {
			close(cgfd); /* listed already */
			continue;
		}
		l->cgids[l->ncg] = st.st_ino;
		l->cgfds[l->ncg++] = cgfd;
		for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
			q.prog_ids = ids;
			q.prog_cnt = MAX_PROGS;
			if (bpf_prog_query_opts(cgfd, types[t], &q))
				continue; /* type unknown to this kernel */
			for (i = 0; i < q.prog_cnt && i < MAX_PROGS; i++) {
				memset(&e, 0, sizeof(e));
				e.cgroup = s->cgroups[c];
				e.cgfd = cgfd;
				e.cgid = st.st_ino;
				e.type = types[t];
				e.prog_id = ids[i];
				if (describe(s, &e))
					continue;
				if (push(l, &e))
					return -ENOMEM;
			}
		}
	}
	return 0;
}

static json_t *entry_json(const struct entry *e)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:s}", "cgroup", e->cgroup,
			 "attachType", type_name(e->type), "progId",
			 (json_int_t)e->prog_id, "name", e->name, "owner",
			 owner_names[e->owner]);
}

/* The cgroup link that attaches e's program, 0 when none does. */
static __u32 find_link(const struct entry *e)
{
	struct bpf_link_info li;
	__u32 id = 0, len;
	int fd;

	while (!bpf_link_get_next_id(id, &id)) {
		fd = bpf_link_get_fd_by_id(id);
		if (fd < 0)
			continue;
		memset(&li, 0, sizeof(li));
		len = sizeof(li);
		if (!bpf_obj_get_info_by_fd(fd, &li, &len) &&
		    li.type == BPF_LINK_TYPE_CGROUP &&
		    li.prog_id == e->prog_id &&
		    li.cgroup.cgroup_id == e->cgid &&
		    li.cgroup.attach_type == e->type) {
			close(fd);
			return id;
		}
		close(fd);
	}
	return 0;
}

/* Is fd a BPF link? (bpftool's test: the anon inode's name.) */
static bool fd_is_link(int fd)
{
	char path[64], buf[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return false;
	buf[n] = 0;
	return strstr(buf, "bpf_link") || strstr(buf, "bpf-link");
}

static void walk(struct pins *p, const char *dir, int depth)
{
	char path[PATH_MAX];
	struct bpf_link_info li;
	struct dirent *de;
	struct stat st;
	size_t i;
	__u32 len;
	DIR *d;
	int fd;

	if (depth > WALK_DEPTH)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while (p->budget && (de = readdir(d))) {
		p->budget--;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
				     de->d_name) >= sizeof(path) ||
		    lstat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk(p, path, depth + 1);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		memset(&li, 0, sizeof(li));
		len = sizeof(li);
		if (fd_is_link(fd) && !bpf_obj_get_info_by_fd(fd, &li, &len)) {
			for (i = 0; i < p->nwant; i++)
				if (p->want[i] == li.id)
					break;
			if (i < p->nwant && p->n < p->cap) {
				p->v[p->n].link_id = li.id;
				snprintf(p->v[p->n].path,
					 sizeof(p->v[p->n].path), "%s", path);
				p->n++;
			}
		}
		close(fd);
	}
	closedir(d);
}

/*
 * Pins of the links in want[], under every bpffs mount (each superblock
 * once: a bind mount shows the same pins again).
 */
static int find_pins(struct pins *p)
{
	dev_t seen[16];
	size_t nseen = 0, i;
	struct mntent *m;
	struct stat st;
	FILE *f;

	p->cap = MAX_PINS * (p->nwant ? p->nwant : 1);
	p->v = calloc(p->cap, sizeof(*p->v));
	if (!p->v)
		return -ENOMEM;
	p->budget = WALK_BUDGET;
	f = setmntent("/proc/self/mounts", "re");
	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "bpf") || stat(m->mnt_dir, &st))
			continue;
		for (i = 0; i < nseen; i++)
			if (seen[i] == st.st_dev)
				break;
		if (i < nseen || nseen == sizeof(seen) / sizeof(seen[0]))
			continue;
		seen[nseen++] = st.st_dev;
		walk(p, m->mnt_dir, 0);
	}
	endmntent(f);
	return 0;
}

static void report(const struct entry *e, bool detached, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One warning line naming the program and what was done with it. */
static void report(const struct entry *e, bool detached, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	n = snprintf(
		msg, sizeof(msg),
		"egressd program %s (prog id %u, %s on %s) of another egressd run ",
		e->name, e->prog_id, type_name(e->type), e->cgroup);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	log_emit(LOG_LVL_WARN, "warning",
		 json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "msg", msg, "name",
			   e->name, "progId", (json_int_t)e->prog_id,
			   "attachType", type_name(e->type), "cgroup",
			   e->cgroup, "action",
			   detached ? "detached" : "kept"));
}

/* The pin dir of a link pinned as <dir>/links/<name>, or false. */
static bool pin_dir_of(const char *path, char *dir, size_t len)
{
	char *slash;

	snprintf(dir, len, "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return false;
	*slash = 0;
	slash = strrchr(dir, '/');
	if (!slash || strcmp(slash + 1, "links") || slash == dir)
		return false;
	*slash = 0;
	return true;
}

/*
 * Decide for one foreign egressd program whose link is link_id (0: none)
 * with the pins found for it: detach (1), keep (0) or -errno.
 */
static int settle(const struct attached_scope *s, const struct entry *e,
		  __u32 link_id, const struct pins *p)
{
	char dir[PATH_MAX], dirs[1024] = "";
	int locks[MAX_PINS], nlocks = 0, fd, ret = 0, i;
	size_t k, npins = 0;
	const char *why = NULL;

	if (!link_id) {
		fd = bpf_prog_get_fd_by_id(e->prog_id);
		if (fd < 0 || bpf_prog_detach2(fd, e->cgfd, e->type)) {
			ret = -errno;
			report(e, false,
			       "is attached without a link, and detaching it failed: %s",
			       strerror(-ret));
		} else {
			report(e, true,
			       "was attached without a link (nothing maintains it): detached");
			ret = 1;
		}
		if (fd >= 0)
			close(fd);
		return ret;
	}
	for (k = 0; k < p->n && !why; k++) {
		if (p->v[k].link_id != link_id)
			continue;
		npins++;
		if (!pin_dir_of(p->v[k].path, dir, sizeof(dir)))
			why = "pinned outside an egressd pin directory";
		else if (s->own_pin_dir && !strcmp(dir, s->own_pin_dir))
			why = "pinned in this agent's own pin directory";
		if (why) {
			report(e, false, "is %s (%s): left alone", why,
			       p->v[k].path);
			break;
		}
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			why = "unreadable";
			report(e, false,
			       "is pinned in %s, which cannot be opened (%s): left alone",
			       dir, strerror(errno));
			break;
		}
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			close(fd);
			why = "held";
			report(e, false,
			       "is maintained by the egressd running with pin directory %s: left alone (two agents judge this cgroup)",
			       dir);
			break;
		}
		if (nlocks < MAX_PINS)
			locks[nlocks++] = fd;
		else
			close(fd);
		if (strlen(dirs) + strlen(dir) + 3 < sizeof(dirs)) {
			if (dirs[0])
				strcat(dirs, ", ");
			strcat(dirs, dir);
		}
	}
	if (!why) {
		fd = bpf_link_get_fd_by_id(link_id);
		if (fd < 0 || bpf_link_detach(fd)) {
			ret = -errno;
			report(e, false,
			       "could not be detached (link id %u): %s",
			       link_id, strerror(-ret));
		} else if (npins) {
			report(e, true,
			       "judges this network namespace with the stale policy of pin directory %s, which no running egressd holds: detached (link id %u)",
			       dirs, link_id);
			ret = 1;
		} else {
			report(e, true,
			       "judges this network namespace, and its link (id %u) is pinned nowhere on bpffs: detached",
			       link_id);
			ret = 1;
		}
		if (fd >= 0)
			close(fd);
	}
	for (i = 0; i < nlocks; i++)
		close(locks[i]);
	return ret;
}

int attached_check(const struct attached_scope *s)
{
	struct pins p = { 0 };
	__u32 *links = NULL;
	json_t *arr;
	struct list l;
	__u64 self = 0;
	size_t i, nfor = 0;
	int err, detached = 0, ret;

	err = collect(s, &l, true);
	if (err)
		goto out;
	arr = json_array();
	for (i = 0; i < l.n; i++)
		json_array_append_new(arr, entry_json(&l.v[i]));
	log_emit(LOG_LVL_INFO, "attached", json_pack("{s:o}", "programs", arr));

	netns_cookie((uint64_t *)&self);
	links = calloc(l.n + 1, sizeof(*links));
	if (!links) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < l.n; i++) {
		struct entry *e = &l.v[i];

		if (e->owner != OWNER_EGRESSD)
			continue;
		/*
		 * Its program lets another namespace's packets pass, and
		 * one not configured yet (cookie 0) lets every packet pass.
		 */
		if (e->cookie != self) {
			log_info(
				"egressd program %s (prog id %u, %s on %s) %s (netns cookie %llu): left alone",
				e->name, e->prog_id, type_name(e->type),
				e->cgroup,
				e->cookie ?
					"judges another network namespace" :
					"is not configured: it judges nothing",
				(unsigned long long)e->cookie);
			continue;
		}
		links[i] = find_link(e);
		if (links[i])
			nfor++;
	}
	if (nfor) {
		p.want = links;
		p.nwant = l.n;
		err = find_pins(&p);
		if (err)
			goto out;
	}
	for (i = 0; i < l.n; i++) {
		struct entry *e = &l.v[i];

		if (e->owner != OWNER_EGRESSD || e->cookie != self)
			continue;
		ret = settle(s, e, links[i], &p);
		if (ret > 0)
			detached++;
	}
out:
	free(p.v);
	free(links);
	list_free(&l);
	return err ? err : detached;
}

json_t *attached_json(const struct attached_scope *s)
{
	__u64 self = 0;
	json_t *arr;
	struct list l;
	size_t i, k;

	netns_cookie((uint64_t *)&self);
	if (collect(s, &l, false)) {
		list_free(&l);
		return NULL;
	}
	arr = json_array();
	for (i = 0; arr && i < l.n; i++) {
		const struct entry *e = &l.v[i];

		json_array_append_new(arr, entry_json(e));
		if (e->owner != OWNER_EGRESSD || e->cookie != self)
			continue;
		for (k = 0; k < n_warned; k++)
			if (warned[k] == e->prog_id)
				break;
		if (k < n_warned)
			continue;
		if (n_warned < MAX_WARNED)
			warned[n_warned++] = e->prog_id;
		log_warnx(
			"egressd program %s (prog id %u, %s on %s) of another egressd run is attached next to this agent's (restart egressd to detach it if it is stale)",
			e->name, e->prog_id, type_name(e->type), e->cgroup);
	}
	list_free(&l);
	return arr;
}
