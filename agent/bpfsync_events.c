// SPDX-License-Identifier: GPL-2.0-only
/*
 * bpfsync's telemetry: the per-reason counters, and the events ring
 * buffer whose records go to the agent's callback. The program folds
 * repeats of a key into event_fold; the drain reports what a key folded
 * about one window after its burst, as the key's last record with the
 * packet count, and says when a full ring buffer cost records (never
 * verdicts).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "egressd/bpfsync.h"
#include "egressd/log.h"
#include "bpfsync_int.h"

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
		if (bpf_map__lookup_elem(bs->maps.counters, &i, sizeof(i), vals,
					 ncpu * sizeof(*vals), 0)) {
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
	uint64_t cnt[EGRESSD_CNT_MAX], total;

	if (bs->rb_drops_known && now_ns - bs->rb_warned_ns < 1000000000ULL)
		return;
	if (!bpfsync_read_counters(bs, cnt)) {
		total = cnt[EGRESSD_CNT_RINGBUF_DROPS];
		if (total > bs->rb_drops)
			log_warnx("the events ring buffer was full: %llu "
				  "violation record(s) not queued %s; the "
				  "packets were judged all the same, and are "
				  "counted and reported folded into later "
				  "lines",
				  (unsigned long long)(total - bs->rb_drops),
				  bs->rb_drops_known ?
					  "in the last second" :
					  "since the pins were made");
		if (total > bs->rb_drops || !bs->rb_drops_known)
			bs->rb_warned_ns = now_ns;
		bs->rb_drops = total;
		bs->rb_drops_known = true;
	}
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
	fd = bpf_map__fd(bs->maps.event_fold);
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

int bpfsync_events_init(struct bpfsync *bs,
			int (*cb)(void *ctx, const struct egressd_event *e),
			void *ctx)
{
	if (bs->rb)
		return -EALREADY;
	bs->event_cb = cb;
	bs->event_ctx = ctx;
	bs->rb = ring_buffer__new(bpf_map__fd(bs->maps.events), handle_event,
				  bs, NULL);
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

void bpfsync_events_release(struct bpfsync *bs)
{
	ring_buffer__free(bs->rb);
	bs->rb = NULL;
	seen_free_all(bs);
}
