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
 * First step: write p to a temporary file next to path (its name into
 * tmp, "" when path is NULL: nothing to do) and fsync it, keeping the
 * mode of an existing file. Every failure a read-only or full directory
 * causes happens here. 0 or -errno with err set; tmp is "" on error.
 */
int persist_prepare(const char *path, const struct policy *p, char *tmp,
		    size_t tmplen, char *err, size_t errlen);

/* Second step: tmp becomes path (rename, fsync of the directory). On
 * error tmp is removed. 0 or -errno with err set. */
int persist_commit(const char *path, const char *tmp, char *err, size_t errlen);

/* A prepared file that will not be committed: removed. */
void persist_abort(const char *tmp);

#endif /* __EGRESSD_PERSIST_H */
