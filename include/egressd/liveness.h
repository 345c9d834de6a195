/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Liveness: knowing whether an egressd runs in this network namespace, and
 * whether what this one installed is still in the kernel. A running agent
 * holds an abstract unix socket name, which the kernel scopes to the
 * network namespace, so `egressd --cleanup` can tell that table inet
 * egressd belongs to a live agent (and which pid) and refuse instead of
 * pulling enforcement from under it. A workload could take the name
 * first: the agent then starts anyway, with a warning, and --cleanup
 * falls back on the pin directory's flock and says so. /status asks
 * liveness_layers_verify() to check the table and the BPF links before it
 * reports them.
 */
#ifndef __EGRESSD_LIVENESS_H
#define __EGRESSD_LIVENESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

/* Abstract socket name (after the leading NUL), one per namespace. */
#define LIVENESS_NAME "egressd.table.inet.egressd"

struct bpfsync;
struct loop;
struct nftsync;
struct liveness;

/*
 * Hold LIVENESS_NAME for as long as *out lives; connections (probes from
 * --cleanup) are accepted and closed in loop. Never fails the start: when
 * the name is taken (another egressd, or a squatter), a warning names the
 * holder and *out holds no name. 0 or -ENOMEM.
 */
int liveness_hold(struct loop *loop, struct liveness **out);
void liveness_free(struct liveness *lv);

/*
 * Who holds LIVENESS_NAME in this namespace: 1 with *pid (0 if the
 * kernel would not say) and comm (its /proc comm, "" if unknown), 0 when
 * nobody does, -errno.
 */
int liveness_probe(pid_t *pid, char *comm, size_t commlen);

/*
 * egressd --cleanup's check, before anything is removed: no live egressd
 * in this namespace (LIVENESS_NAME), and no agent holding pin_dir's lock.
 * Returns the pin dir's lock fd (>= 0: hand it to
 * bpfsync_cleanup_locked()), -ENOENT when pin_dir does not exist, or
 * -EBUSY with err saying who runs and what to do. A name held by
 * something other than egressd is reported on stderr, and only the lock
 * counts then.
 */
int liveness_cleanup_guard(const char *pin_dir, char *err, size_t errlen);

/*
 * Make layers (the /status "layers" object) say what the kernel still
 * has: an nft layer that installed something ("on", "off") whose table is
 * gone, or a BPF layer ("enforce", "observe") whose link was detached,
 * becomes "missing" with a why; a removed link pin is noted in why. One
 * warning per change (lv remembers the last answer). nft and bpf may be
 * NULL.
 */
void liveness_layers_verify(struct liveness *lv, json_t *layers,
			    struct nftsync *nft, struct bpfsync *bpf);

#endif /* __EGRESSD_LIVENESS_H */
