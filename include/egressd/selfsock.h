/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * egressd's own sockets, by socket cookie (docs/security.md, class 4). The BPF
 * programs exempt egressd by the sockets it opened, never by its cgroup:
 * a process that joins egressd's cgroup, or a tool exec'd into its
 * container, gets no exemption. Every module that opens a socket which
 * must pass as egressd's (upstream queries, its listeners, webhook calls)
 * notes it here right after socket() and before bind(), connect() or the
 * first send, and says so again before close(). The registry keeps the
 * cookies and writes them into the agent_socks map when one is set; it
 * works without one (BPF off), so callers never need to know.
 */
#ifndef __EGRESSD_SELFSOCK_H
#define __EGRESSD_SELFSOCK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Record fd as one of egressd's sockets (SO_COOKIE). 0 or -errno; on
 * error the socket is not exempt (the caller goes on: fail closed).
 */
int selfsock_note(int fd);

/* Forget fd (call before closing it); unknown sockets are ignored. */
void selfsock_forget(int fd);

/* selfsock_forget() then close(); returns close()'s result. */
int selfsock_close(int fd);

/*
 * Write the cookies into the agent_socks map map_fd from now on (-1:
 * none). With purge, every other key of the map is deleted first (those
 * of an earlier run: cookies are never reused, so they are dead). The
 * registry does not own map_fd. 0 or -errno of the first failed write.
 */
int selfsock_set_map(int map_fd, int purge);

/* Number of sockets noted and still open. */
size_t selfsock_count(void);

/* Free the registry (at exit). */
void selfsock_fini(void);

#endif /* __EGRESSD_SELFSOCK_H */
