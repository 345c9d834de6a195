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
 * This file owns the object: open, load, attach and the links; the pin
 * dir, the policy sets, the learned maps and the events ring buffer have
 * files of their own (bpfsync_pins.c, bpfsync_policy.c,
 * bpfsync_learned.c, bpfsync_events.c), which reach the maps through
 * agent/bpfsync_int.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "egressd/bpfsync.h"
#include "egressd/log.h"
#include "egressd/netns.h"
#include "bpfsync_int.h"
#include "egress.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* The ABI is checked here, once, for both sides. */
_Static_assert(sizeof(struct egressd_flow) == 24, "ABI");
_Static_assert(sizeof(struct egressd_slot_cfg) == 16, "ABI");
_Static_assert(sizeof(struct egressd_bpf_cfg) == 64, "ABI");
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

/* The map handles the parts outside this file use (bpfsync_int.h). */
static void maps_of(struct bpfsync *bs)
{
	struct egress_bpf *s = bs->skel;
	struct bpfsync_maps *m = &bs->maps;

	m->config = s->maps.config;
	m->counters = s->maps.counters;
	m->events = s->maps.events;
	m->event_fold = s->maps.event_fold;
	m->set[BPFSYNC_SET_ALLOW][0] = s->maps.allow_v4;
	m->set[BPFSYNC_SET_ALLOW][1] = s->maps.allow_v6;
	m->set[BPFSYNC_SET_DENY][0] = s->maps.deny_v4;
	m->set[BPFSYNC_SET_DENY][1] = s->maps.deny_v6;
	m->set[BPFSYNC_SET_DOH][0] = s->maps.doh_v4;
	m->set[BPFSYNC_SET_DOH][1] = s->maps.doh_v6;
	m->set[BPFSYNC_SET_DOH_ALLOW][0] = s->maps.doh_allow_v4;
	m->set[BPFSYNC_SET_DOH_ALLOW][1] = s->maps.doh_allow_v6;
	m->learned[0] = s->maps.learned_v4;
	m->learned[1] = s->maps.learned_v6;
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

const char *bpfsync_pin_dir(const struct bpfsync *bs)
{
	return bs->pin_dir;
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

int bpfsync_cfg_read(struct bpfsync *bs, struct egressd_bpf_cfg *cfg)
{
	__u32 zero = 0;

	if (bpf_map__lookup_elem(bs->maps.config, &zero, sizeof(zero), cfg,
				 sizeof(*cfg), 0))
		return -errno;
	return 0;
}

int bpfsync_cfg_write(struct bpfsync *bs, const struct egressd_bpf_cfg *cfg)
{
	__u32 zero = 0;

	if (bpf_map__update_elem(bs->maps.config, &zero, sizeof(zero), cfg,
				 sizeof(*cfg), BPF_ANY))
		return -errno;
	return 0;
}

int bpfsync_new(struct bpfsync **out, const char *pin_dir, size_t learned_max)
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

	err = bpfsync_pins_ensure_bpffs(bs->pin_dir);
	if (err) {
		log_warnx("bpf pin dir %s is not on bpffs: %s", bs->pin_dir,
			  strerror(-err));
		goto out_free;
	}
	err = bpfsync_pins_lock(bs);
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
			log_warnx(
				"bpf pin dir %s belongs to another network namespace (netns cookie %llu, this one %llu): give each sandbox its own OPENSANDBOX_EGRESS_BPF_PIN_DIR (or remove the directory if that sandbox is gone)",
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
	maps_of(bs);
	/* Before bpfsync_pins_check(): a pin of another size is replaced. */
	if (learned_max &&
	    (bpf_map__set_max_entries(bs->skel->maps.learned_v4, learned_max) ||
	     bpf_map__set_max_entries(bs->skel->maps.learned_v6,
				      learned_max))) {
		err = -EINVAL;
		log_warnx("bpf: cannot size the learned maps to %zu",
			  learned_max);
		goto out_free;
	}
	bs->skel->rodata->skb_netns_cookie = probe_skb_netns_cookie();
	if (!bs->skel->rodata->skb_netns_cookie)
		log_info(
			"bpf: this kernel gives cgroup_skb programs no netns cookie (6.15+): they judge every socket of the cgroup they are attached to");
	err = bpfsync_pins_check(bs->skel->obj);
	if (err)
		goto out_free;
	err = egress_bpf__load(bs->skel);
	if (err) {
		log_warnx("bpf load failed: %s", strerror(-err));
		goto out_free;
	}

	err = netns_cookie((uint64_t *)&bs->netns_cookie);
	if (!err)
		err = bpfsync_cfg_read(bs, &cfg);
	if (!err) {
		cfg.netns_cookie = bs->netns_cookie;
		/* a restart keeps the redirect on until it is re-attached */
		bs->dns_port = cfg.dns_port;
		err = bpfsync_cfg_write(bs, &cfg);
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
		if (bpfsync_link_remove(path))
			log_warnx("bpf link %s: unlink: %s", path,
				  strerror(errno));
		else
			log_info(
				"bpf link %s of a previous run removed (another cgroup)",
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
		bs->skel->progs.dns_connect4,
		bs->skel->progs.dns_connect6,
		bs->skel->progs.dns_sendmsg4,
		bs->skel->progs.dns_sendmsg6,
		bs->skel->progs.dns_recvmsg4,
		bs->skel->progs.dns_recvmsg6,
		bs->skel->progs.dns_getpeername4,
		bs->skel->progs.dns_getpeername6,
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
		err = bpfsync_cfg_read(bs, &cfg);
	if (!err) {
		cfg.dns_port = port;
		err = bpfsync_cfg_write(bs, &cfg);
	}
	if (err) {
		redirect_detach(bs);
		bs->dns_port = 0;
		if (!bpfsync_cfg_read(bs, &cfg)) {
			cfg.dns_port = 0;
			bpfsync_cfg_write(bs, &cfg);
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

	err = bpfsync_cfg_read(bs, &cfg);
	if (err)
		return err;
	cfg.netns_cookie = bs->netns_cookie;
	cfg.dns_port = bs->dns_port;
	cfg.mode = c->observe ? EGRESSD_DP_OBSERVE : EGRESSD_DP_ENFORCE;
	cfg.api_port = c->api_port;
	cfg.api_cgid = c->api_cgid;
	cfg.api_level = c->api_level;
	bs->exp_grace_ns = c->learn_grace_ns;
	return bpfsync_cfg_write(bs, &cfg);
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
			 uint16_t dns_port)
{
	struct bpf_program *progs[N_GUARD] = {
		bs->skel->progs.guard_bind4,
		bs->skel->progs.guard_bind6,
	};
	struct egressd_bpf_cfg cfg;
	char prefix[64];
	ino_t ino;
	int cgfd, err = 0, i;

	/* The port first: a program swapped in must guard at once. */
	err = bpfsync_cfg_read(bs, &cfg);
	if (err)
		return err;
	cfg.bind_dns_port = dns_port;
	err = bpfsync_cfg_write(bs, &cfg);
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

size_t bpfsync_prog_ids(const struct bpfsync *bs, uint32_t *ids,
			char (*names)[BPFSYNC_NAME_LEN], size_t max)
{
	struct bpf_program *prog;
	struct bpf_prog_info info;
	__u32 len;
	size_t n = 0;

	bpf_object__for_each_program(prog, bs->skel->obj) {
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
		snprintf(
			why, whylen,
			"the %s link (id %u) was detached from its cgroup outside egressd",
			what, info.id);
		return -ENOLINK;
	}
	if (pin && access(pin, F_OK)) {
		snprintf(
			why, whylen,
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
				     i == -1 ? bs->ilink :
					       bs->rlink[i];
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
	bpfsync_events_release(bs);
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
