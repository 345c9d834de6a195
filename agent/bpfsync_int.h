/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * bpfsync's private header, shared by its files and by nothing else:
 * struct bpfsync and the map handles the policy (bpfsync_policy.c),
 * learned (bpfsync_learned.c), events (bpfsync_events.c) and pin dir
 * (bpfsync_pins.c) parts need. Only agent/bpfsync.c includes the skeleton
 * (STYLE.md: one owner); it fills struct bpfsync_maps from it right after
 * opening the object, so the other parts never see the skeleton's types.
 */
#ifndef __EGRESSD_BPFSYNC_INT_H
#define __EGRESSD_BPFSYNC_INT_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bpf/libbpf.h>

#include "egressd/bpfsync.h"

#define LINKS_SUBDIR "links"
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

struct fold_seen {
	struct fold_seen *next;
	struct egressd_fold_key key;
	struct egressd_event rec;
};

/* The maps each part writes or reads; [family == 6] where per family. */
struct bpfsync_maps {
	struct bpf_map *config;
	struct bpf_map *counters;
	struct bpf_map *events;
	struct bpf_map *event_fold;
	struct bpf_map *set[BPFSYNC_SET_MAX][2];
	struct bpf_map *learned[2];
};

struct egress_bpf; /* the skeleton: agent/bpfsync.c only */

struct bpfsync {
	struct egress_bpf *skel;
	struct bpfsync_maps maps;
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
	/* learned entries: the grace (bpfsync_set_config(), for the sweep and
	 * the reclaim alike), reclaim of a full map, and
	 * who is told about entries the sweep extends */
	uint64_t exp_grace_ns;
	uint64_t reclaim_ns[2];
	struct bpfsync_learned_stats lstats;
	void (*extended)(void *arg, int family, const void *addr,
			 uint64_t until_ns);
	void *extended_arg;
	char pin_dir[PIN_DIR_MAX];
};

/* bpfsync.c: the config map's one entry. 0 or -errno. */
int bpfsync_cfg_read(struct bpfsync *bs, struct egressd_bpf_cfg *cfg);
int bpfsync_cfg_write(struct bpfsync *bs, const struct egressd_bpf_cfg *cfg);

/* bpfsync_pins.c: the pin directory, before and around the load. */
int bpfsync_pins_ensure_bpffs(const char *pin_dir);
int bpfsync_pins_lock(struct bpfsync *bs);
int bpfsync_pins_check(struct bpf_object *obj);
int bpfsync_link_remove(const char *path);

/* bpfsync_events.c: release the ring buffer and the fold records. */
void bpfsync_events_release(struct bpfsync *bs);

#endif /* __EGRESSD_BPFSYNC_INT_H */
