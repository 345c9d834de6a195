// SPDX-License-Identifier: GPL-2.0-only
/*
 * bpfsync's learned maps: the addresses DNS answers taught, one map per
 * family. A write never shortens an expiry; a full map first loses its
 * expired, idle entries (reclaim, at most once a second); forget removes
 * an address whose name is no longer allowed; the expiry sweep walks both
 * maps in bounded batches, extending entries still in use (and telling
 * the learned registry) and deleting the rest once they expire.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "egressd/bpfsync.h"
#include "egressd/util.h"
#include "bpfsync_int.h"

static struct bpf_map *learned_map(struct bpfsync *bs, int family, size_t *ksz)
{
	*ksz = family == AF_INET6 ? 16 : 4;
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	return bs->maps.learned[family == AF_INET6];
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

	if (now < bs->reclaim_ns[family == AF_INET6] + RECLAIM_EVERY_NS)
		return 0;
	bs->reclaim_ns[family == AF_INET6] = now;
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
	if (ret == -E2BIG && reclaim_map(bs, family, util_clock_ns()) > 0 &&
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

int bpfsync_expire(struct bpfsync *bs, uint64_t now_ns, unsigned int budget,
		   bool *pass_done)
{
	uint64_t grace_ns = bs->exp_grace_ns;
	bool wrapped;
	int n, total = 0;

	*pass_done = false;
	while (budget) {
		wrapped = false;
		n = expire_map(bs, bs->exp_family ? AF_INET6 : AF_INET, now_ns,
			       grace_ns, &budget, &wrapped);
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
