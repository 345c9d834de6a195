/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Programs attached to the cgroups egressd uses: the BPF attach cgroup
 * (egress and ingress) and the cgroup2 root of the DNS redirect. Each is
 * ours (loaded by this agent), foreign-egressd (egressd's program name and
 * config map, loaded by another run: typically one started with another
 * pin directory, whose stale policy goes on dropping allowed traffic) or
 * other (anything else, listed and never touched); without CAP_SYS_ADMIN
 * programs cannot be inspected and are ours or unknown. At start,
 * attached_check() detaches foreign egressd programs that judge this
 * network namespace and that no running egressd maintains: no pinned link
 * holds them any more, or their pin directory is not locked by a live
 * agent. /status lists them with attached_json().
 */
#ifndef __EGRESSD_ATTACHED_H
#define __EGRESSD_ATTACHED_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cgroups egressd uses and the program ids it loaded. */
struct attached_scope {
	const char *const *cgroups; /* cgroup2 directories (duplicates ok) */
	size_t n_cgroups;
	const uint32_t *ours; /* this agent's program ids */
	const char (*our_names)[16]; /* and names (NULL: inspect them) */
	size_t n_ours;
	const char *own_pin_dir; /* links pinned here are left alone */
};

/* Is name (as the kernel keeps it: at most 15 characters) one of
 * egressd's program names? Keep in sync with bpf/egress.bpf.c and
 * bpf/redirect.bpf.h. */
bool attached_is_egressd_name(const char *name);

/*
 * List what is attached (one "attached" info line) and deal with foreign
 * egressd programs: detached with a warning when they judge this
 * namespace and their pins are gone or stale; a warning only when a live
 * egressd maintains them. Returns the number detached or -errno.
 */
int attached_check(const struct attached_scope *s);

/*
 * The /status "attached" array: {cgroup, attachType, progId, name,
 * owner: "ours" | "foreign-egressd" | "other" | "unknown"} (name "" when
 * the program could not be inspected). A foreign egressd program
 * seen for the first time gets one warning. NULL on ENOMEM.
 */
json_t *attached_json(const struct attached_scope *s);

#endif /* __EGRESSD_ATTACHED_H */
