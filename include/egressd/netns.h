/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Does this network namespace look like the host's? egressd belongs in a
 * sandbox's namespace; started by mistake in the host's, its default-deny
 * table would cut the host off. A namespace "looks like the host's" when
 * one of its interfaces is backed by a device (a PCI/virtio/USB NIC: the
 * kernel reports a parent device for it), which veth, loopback, bridges
 * and tunnels never are. The link list comes from rtnetlink, so it is the
 * namespace egressd runs in, whatever /sys shows.
 */
#ifndef __EGRESSD_NETNS_H
#define __EGRESSD_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct netns_link {
	char name[32];
	char parent_bus[32]; /* "" when the link has no parent device */
	char parent_dev[64];
};

/* Pure decision over a link list: the first device-backed link, or NULL. */
const struct netns_link *netns_find_device_link(const struct netns_link *l,
						size_t n);

/* Dump the links of the current namespace; 0 or -errno. *out is malloc'd. */
int netns_list_links(struct netns_link **out, size_t *n);

/*
 * 1 when the current namespace looks like the host's (why filled with the
 * interface and its device), 0 when not, -errno when the links cannot be
 * listed.
 */
int netns_looks_like_host(char *why, size_t len);

/* The current network namespace's cookie (SO_NETNS_COOKIE, 5.14+), the
 * value the BPF programs compare; 0 or -errno. */
int netns_cookie(uint64_t *cookie);

#endif /* __EGRESSD_NETNS_H */
