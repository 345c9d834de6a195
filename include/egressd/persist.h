/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Persistence of the user policy: the file OPENSANDBOX_EGRESS_POLICY_FILE
 * names, in the peer's format (2-space indented JSON), written so that a
 * crash leaves the old file or the new one, never part of one.
 */
#ifndef __EGRESSD_PERSIST_H
#define __EGRESSD_PERSIST_H

#include <stddef.h>

struct policy;

/*
 * Write p to path atomically (temporary file, fsync, rename, fsync of the
 * directory), keeping the mode of an existing file. path NULL: nothing to
 * do. 0 or -errno with err set.
 */
int persist_policy(const char *path, const struct policy *p, char *err,
		   size_t errlen);

#endif /* __EGRESSD_PERSIST_H */
