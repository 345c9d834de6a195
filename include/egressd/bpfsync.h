/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * BPF map sync: the only module that touches libbpf and the egress
 * skeleton. It loads the cgroup/skb program with its maps pinned under one
 * directory (flock'ed while the agent runs), attaches it to the workload
 * cgroup through a pinned link (or swaps the new program into an existing
 * link), and keeps the maps in sync with the compiled policy and the
 * addresses learned from DNS. A policy is written into the inactive slot
 * and switched in with one config write, so the datapath never sees a
 * half-applied policy (docs/bpf.md). Violation records are delivered to a
 * callback from ring-buffer fd that joins the event loop. Families are
 * AF_INET/AF_INET6 here; the map ABI's 4/6 stays inside bpfsync.
 */
#ifndef __EGRESSD_BPFSYNC_H
#define __EGRESSD_BPFSYNC_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egressd/defaults.h"
#include "egressd/shared.h"

#define BPFSYNC_DEFAULT_PIN_DIR EGRESSD_DEFAULT_PIN_DIR
#define BPFSYNC_BPFFS_MOUNT "/sys/fs/bpf"

struct bpfsync;

/* The four static sets; each holds IPv4 and IPv6 prefixes. */
enum bpfsync_set {
	BPFSYNC_SET_ALLOW = 0,
	BPFSYNC_SET_DENY = 1,
	BPFSYNC_SET_DOH = 2,
	BPFSYNC_SET_DOH_ALLOW = 3,
	BPFSYNC_SET_MAX,
};

/* One prefix of a static set. addr holds 4 or 16 bytes, network order. */
struct bpfsync_prefix {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefixlen; /* 0..32 or 0..128 */
	uint32_t rule; /* rule id (EGRESSD_RULE_*), reported in events */
	uint8_t addr[16];
};

/*
 * A compiled policy as the datapath sees it. The default verdict, IPv6
 * mode and generation travel with the sets so they switch together.
 */
struct bpfsync_policy {
	const struct bpfsync_prefix *set[BPFSYNC_SET_MAX];
	size_t n[BPFSYNC_SET_MAX];
	uint64_t generation;
	bool default_allow;
	bool ipv6_deny;
};

/* Settings that are not part of a policy generation. */
struct bpfsync_config {
	bool observe; /* count and report, never drop */
	/* The API port (0: none) and the cgroup that may reach it over
	 * loopback besides egressd's own sockets (egressd's, or its
	 * container's). The bind guard guards api_port too. */
	uint16_t api_port;
	uint64_t api_cgid;
	uint32_t api_level;
	/* An expired learned entry used within this long is extended, not
	 * deleted: by the sweep (bpfsync_expire()) and by the reclaim a full
	 * map triggers, alike from the start (OPENSANDBOX_EGRESS_LEARN_GRACE). */
	uint64_t learn_grace_ns;
};

/*
 * Mount bpffs if needed, create and flock pin_dir (NULL: the default),
 * and load the program, reusing compatible pinned maps and replacing
 * incompatible ones (with a warning). The learned maps hold learned_max
 * addresses per family (0: EGRESSD_MAX_LEARNED); pins of another size are
 * replaced. Writes this network namespace's
 * cookie into the config map. 0 or -errno (-EBUSY: another instance holds
 * the pin dir; -ENOMEDIUM: no bpffs, and mounting one was refused;
 * -ENOTSUP: the pin dir is not on a bpffs).
 */
int bpfsync_new(struct bpfsync **out, const char *pin_dir, size_t learned_max);

/*
 * Attach the egress program and its ingress tracker (replies to peers
 * that contacted the workload first) to the cgroup2 directory
 * cgroup_path: an existing pinned link for
 * that cgroup gets the new program swapped in (no window without
 * filtering), otherwise a new link is created and pinned under
 * <pin_dir>/links/. Call after the first bpfsync_apply_policy(). 0 or
 * -errno.
 */
int bpfsync_attach(struct bpfsync *bs, const char *cgroup_path);

/*
 * The port-53 redirect without nat: attach the sock_addr programs
 * (connect, sendmsg, recvmsg, getpeername; v4 and v6) to cgroup_path
 * through pinned links (swapped in place on restart) and point them at
 * the proxy's port on loopback. Attach it where every process of the
 * namespace lives (the cgroup2 root the agent sees). 0 or -errno; on
 * error nothing of it stays attached and the redirect is off.
 */
int bpfsync_redirect_attach(struct bpfsync *bs, const char *cgroup_path,
			    uint16_t port);

int bpfsync_set_config(struct bpfsync *bs, const struct bpfsync_config *cfg);

/*
 * The bind guard (docs/security.md, class 8): attach guard_bind4/6 to cgroup_path
 * through pinned links (swapped in place on restart) and make binds to
 * dns_port or the configured API port (bpfsync_set_config(), which comes
 * first; 0: none) by sockets that are not egressd's fail with EPERM. The links stay when egressd stops, so that no process of the
 * cgroup can squat the ports until egressd is back. 0 or -errno; on error
 * nothing of it stays attached.
 */
int bpfsync_guard_attach(struct bpfsync *bs, const char *cgroup_path,
			 uint16_t dns_port);

/*
 * File descriptor of the agent_socks map this run's programs read (the
 * cookies of egressd's own sockets, agent/selfsock.c); owned by bs.
 */
int bpfsync_agent_socks_fd(const struct bpfsync *bs);

/*
 * The pinned agent_socks map of an earlier run, opened before this run's
 * programs load (a new fd, or -errno: -ENOENT when there is none), so that
 * the sockets egressd binds at start pass the bind guard of the programs
 * still attached after a kill -9.
 */
int bpfsync_agent_socks_pinned(const char *pin_dir);

/*
 * Replace all static sets: write them into the inactive slot, switch the
 * slot, then remove the old slot's entries. Of equal prefixes in one set
 * the first keeps its rule id. On error the active policy is
 * untouched. 0, -E2BIG (a set exceeds EGRESSD_MAX_PREFIXES), -EINVAL or
 * -errno.
 */
int bpfsync_apply_policy(struct bpfsync *bs, const struct bpfsync_policy *p);

/*
 * Add or refresh a learned address (family AF_INET or AF_INET6; addr 4
 * or 16 bytes) valid until expires_ns (util_clock_ns() clock). A refresh
 * never shortens the expiry and keeps last_seen. When the family's map is full,
 * its expired, idle entries are deleted first (at most once a second) and
 * the write is tried again. 0 or -errno (-E2BIG when still full).
 */
int bpfsync_learn(struct bpfsync *bs, int family, const void *addr,
		  uint64_t expires_ns, uint32_t generation);

struct bpfsync_learned_stats {
	uint64_t full; /* bpfsync_learn() refused: map full */
	uint64_t reclaimed; /* expired entries deleted to make room */
};
void bpfsync_get_learned_stats(const struct bpfsync *bs,
			       struct bpfsync_learned_stats *out);

/*
 * fn is told about every learned entry bpfsync_expire() extends because
 * it is in use (family AF_INET or AF_INET6, its new expiry), so that the
 * learned registry keeps the address as long as the map does.
 */
void bpfsync_set_extended_hook(struct bpfsync *bs,
			       void (*fn)(void *arg, int family,
					  const void *addr, uint64_t until_ns),
			       void *arg);

/*
 * Remove a learned address now (its domain is no longer allowed); family
 * AF_INET or AF_INET6.
 */
int bpfsync_forget(struct bpfsync *bs, int family, const void *addr);

/*
 * Visit at most budget learned entries, resuming where the previous call
 * stopped. An entry used within the configured grace (last_seen;
 * bpfsync_config.learn_grace_ns) is extended to last_seen + grace so live
 * flows are not cut; an expired, idle entry
 * is deleted. Returns the number deleted or -errno; *pass_done tells that
 * a full pass over both families completed.
 */
int bpfsync_expire(struct bpfsync *bs, uint64_t now_ns, unsigned int budget,
		   bool *pass_done);

/* Per-reason counters summed over CPUs, indexed by EGRESSD_CNT_* */
int bpfsync_read_counters(struct bpfsync *bs, uint64_t out[EGRESSD_CNT_MAX]);

/*
 * Start consuming the events ring buffer: cb gets each record (never
 * blocks; return 0). bpfsync_events_fd() is for epoll (EPOLLIN), and
 * bpfsync_events_consume() drains it, returning records seen or -errno.
 * -EALREADY when started before; bpfsync_free() releases it.
 */
int bpfsync_events_init(struct bpfsync *bs,
			int (*cb)(void *ctx, const struct egressd_event *e),
			void *ctx);
int bpfsync_events_fd(struct bpfsync *bs);
int bpfsync_events_consume(struct bpfsync *bs);

/*
 * The program folds repeats of a key into event_fold and reports them
 * only with the key's next packet after the window: call this every
 * fraction of a window so that a burst's folded packets are reported
 * (through the events callback, as the key's last record with count =
 * packets) about one window after it, with no later packet needed. all:
 * every key, window over or not (at stop). 0 or -errno.
 */
int bpfsync_fold_drain(struct bpfsync *bs, uint64_t now_ns, bool all);

/*
 * Whether the loaded cgroup_skb programs pass sockets of other network
 * namespaces untouched (they compare bpf_get_netns_cookie() with ours).
 * Only kernels from 6.15 give cgroup_skb programs that helper; on older
 * ones bpfsync_new() loads the programs without the check, and they
 * judge every socket of the cgroup they are attached to. That is right at
 * a sandbox's own cgroup, but at the host's cgroup2 root it would judge
 * the whole host by this sandbox's policy: do not attach there when this
 * is false.
 */
bool bpfsync_filters_netns(const struct bpfsync *bs);

/* Pin directory in use. */
const char *bpfsync_pin_dir(const struct bpfsync *bs);

/*
 * Release the agent's handles and the flock. Pins and the link stay, so
 * enforcement continues without the agent.
 */
void bpfsync_free(struct bpfsync *bs);

/*
 * Whose pins are these: *owner gets the network namespace cookie in the
 * pinned config map (0: none pinned, or never configured), *self (if not
 * NULL) ours. Returns 1 when they belong to another namespace, 0 when
 * they are ours or absent, -errno on error. bpfsync_new() fails with
 * -EXDEV on pins of another namespace.
 */
int bpfsync_pins_owner(const char *pin_dir, uint64_t *owner, uint64_t *self);

/*
 * Kernel ids (and, if names is not NULL, kernel names) of the programs
 * this agent loaded, at most max. Read through our own program fds, so it
 * needs no CAP_SYS_ADMIN.
 */
#define BPFSYNC_NAME_LEN 16 /* BPF_OBJ_NAME_LEN */
size_t bpfsync_prog_ids(const struct bpfsync *bs, uint32_t *ids,
			char (*names)[BPFSYNC_NAME_LEN], size_t max);

/*
 * Are the links this agent attached still in the kernel as it left them?
 * The filter's (egress and ingress) or, with redirect, the DNS redirect's.
 * 0; -ENOLINK when one was detached behind egressd's back (it no longer
 * acts); -ENOENT when one is attached but its pin was removed (it stops
 * with the agent). why names the link.
 */
int bpfsync_links_check(struct bpfsync *bs, bool redirect, char *why,
			size_t whylen);

/*
 * egressd --cleanup: detach every pinned link under pin_dir and remove
 * egressd's pins and directories (nothing else). 0, -EBUSY (an agent holds
 * the directory) or -errno.
 */
int bpfsync_cleanup(const char *pin_dir);

/*
 * bpfsync_cleanup() in two steps, so that --cleanup can check every
 * reason to refuse before it removes anything: take the directory's lock
 * (a file descriptor, -ENOENT when there is no such directory, -EBUSY when
 * a running agent holds it), then remove the pins under that lock
 * (lock_fd is closed either way).
 */
int bpfsync_cleanup_lock(const char *pin_dir);
int bpfsync_cleanup_locked(const char *pin_dir, int lock_fd);

#endif /* __EGRESSD_BPFSYNC_H */
