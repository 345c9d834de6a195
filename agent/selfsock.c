// SPDX-License-Identifier: GPL-2.0-only
/*
 * The registry of egressd's own sockets (include/egressd/selfsock.h): a
 * small array of socket cookies, mirrored into the BPF agent_socks map
 * when one is set. egressd holds a few dozen sockets at most (listeners,
 * one UDP socket per upstream, TCP fallbacks and webhook transfers in
 * flight), so a linear array is the simple and fast enough choice.
 * Only the low-level map calls of libbpf are used (no skeleton).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "egressd/log.h"
#include "egressd/selfsock.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

struct selfsock_ent {
	int fd;
	uint64_t cookie;
};

static struct selfsock_ent *ents;
static size_t n_ents, cap_ents;
static int map_fd = -1;

static int cookie_of(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) < 0)
		return -errno;
	return 0;
}

static int map_put(uint64_t cookie)
{
	uint32_t one = 1;

	if (map_fd < 0)
		return 0;
	if (bpf_map_update_elem(map_fd, &cookie, &one, BPF_ANY))
		return -errno;
	return 0;
}

int selfsock_note(int fd)
{
	uint64_t cookie;
	int err;

	err = cookie_of(fd, &cookie);
	if (err)
		goto fail;
	if (n_ents == cap_ents) {
		size_t cap = cap_ents ? cap_ents * 2 : 32;
		struct selfsock_ent *v = realloc(ents, cap * sizeof(*v));

		if (!v) {
			err = -ENOMEM;
			goto fail;
		}
		ents = v;
		cap_ents = cap;
	}
	err = map_put(cookie);
	if (err)
		goto fail;
	ents[n_ents].fd = fd;
	ents[n_ents].cookie = cookie;
	n_ents++;
	return 0;
fail:
	/* Per socket, so per upstream query when the map is full: folded. */
	log_folded(
		LOG_LVL_WARN, "selfsock_mark",
		"cannot mark socket %d as egressd's own (%s): its traffic is judged like the workload's",
		fd, strerror(-err));
	return err;
}

void selfsock_forget(int fd)
{
	size_t i;

	for (i = 0; i < n_ents; i++) {
		if (ents[i].fd != fd)
			continue;
		if (map_fd >= 0)
			bpf_map_delete_elem(map_fd, &ents[i].cookie);
		ents[i] = ents[--n_ents];
		return;
	}
}

int selfsock_close(int fd)
{
	selfsock_forget(fd);
	return close(fd);
}

/* Delete every key of the map that is not one of ours. */
static void purge_others(int fd)
{
	uint64_t key, next;
	void *prev = NULL;
	size_t i;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		for (i = 0; i < n_ents && ents[i].cookie != next; i++)
			;
		if (i == n_ents && !bpf_map_delete_elem(fd, &next))
			continue; /* deleted: go on from the same prev */
		key = next;
		prev = &key;
	}
}

int selfsock_set_map(int fd, int purge)
{
	size_t i;
	int err, first = 0;

	map_fd = fd;
	if (fd < 0)
		return 0;
	if (purge)
		purge_others(fd);
	for (i = 0; i < n_ents; i++) {
		err = map_put(ents[i].cookie);
		if (err && !first)
			first = err;
	}
	return first;
}

size_t selfsock_count(void)
{
	return n_ents;
}

void selfsock_fini(void)
{
	free(ents);
	ents = NULL;
	n_ents = cap_ents = 0;
	map_fd = -1;
}
