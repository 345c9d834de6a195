/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Coverage: does the BPF attach cgroup hold every socket of egressd's
 * network namespace? The cgroup programs judge only processes below the
 * cgroup they are attached to; the fast path (no nftables chain, no nat,
 * no conntrack) is safe only when nothing of the namespace lives outside
 * it. A scan dumps the namespace's TCP, UDP and raw sockets over
 * NETLINK_SOCK_DIAG (each carries its cgroup id, INET_DIAG_CGROUP_ID,
 * kernel 5.8+) and checks each against the set of cgroup ids below the
 * attach cgroup, read from the cgroup filesystem (re-read on a miss, so
 * that a cgroup created since counts). egressd's own sockets are skipped.
 */
#ifndef __EGRESSD_COVERAGE_H
#define __EGRESSD_COVERAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum coverage_state {
	COVERAGE_NONE, /* no BPF attach: nftables judges everything */
	COVERAGE_PARTIAL, /* BPF: the attach cgroup; nftables: the rest */
	COVERAGE_NAMESPACE, /* BPF judges every socket of the namespace */
};

const char *coverage_state_name(enum coverage_state s);

struct coverage;

/*
 * A scanner for attach_dir (the attach cgroup's directory as egressd
 * reaches it, id attach_id); sockets in cgroup skip_id (egressd's own) do
 * not count. 0 or -errno with err set.
 */
int coverage_new(struct coverage **out, const char *attach_dir,
		 uint64_t attach_id, uint64_t skip_id, char *err,
		 size_t errlen);
void coverage_free(struct coverage *c);

/*
 * One scan of the namespace. Returns 0 when every socket (other than
 * egressd's) is below the attach cgroup, 1 when one is not (*foreign
 * gets its cgroup id, *sockets the number seen), -errno when the kernel
 * cannot tell (no sock_diag, no cgroup ids: the caller assumes the
 * worst).
 */
int coverage_scan(struct coverage *c, uint64_t *foreign, unsigned int *sockets);

#endif /* __EGRESSD_COVERAGE_H */
