// SPDX-License-Identifier: GPL-2.0-only
/*
 * bpfsync's policy maps: the four static LPM sets (allow, deny, DoH,
 * DoH exceptions) per family, written into the inactive slot and switched
 * in with the config map's active byte together with the slot's
 * generation, default verdict and IPv6 deny flag, so the datapath judges
 * each packet by exactly one policy generation (docs/bpf.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "egressd/bpfsync.h"
#include "egressd/log.h"
#include "bpfsync_int.h"

/* Map of each static set and family, by enum bpfsync_set. */
static struct bpf_map *set_map(struct bpfsync *bs, enum bpfsync_set set,
			       int family)
{
	if ((unsigned int)set >= BPFSYNC_SET_MAX)
		return NULL;
	return bs->maps.set[set][family == AF_INET6];
}

static int make_lpm_key(const struct bpfsync_prefix *p, __u8 slot, void *key,
			size_t *ksz)
{
	size_t alen = p->family == AF_INET6 ? 16 : 4;
	__u8 *addr;
	size_t i;

	if ((p->family != AF_INET && p->family != AF_INET6) ||
	    p->prefixlen > alen * 8)
		return -EINVAL;
	if (p->family == AF_INET6) {
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
		if (pfx[i].family == AF_INET6)
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
					 ksz, &val, sizeof(val), BPF_NOEXIST) &&
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

	err = bpfsync_cfg_read(bs, &cfg);
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
	err = bpfsync_cfg_write(bs, &cfg);
	if (err)
		goto out_clear_next;
	cfg.active = next;
	err = bpfsync_cfg_write(bs, &cfg);
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
