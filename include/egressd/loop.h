/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * One single-threaded event loop over epoll: fd callbacks, one-shot timers
 * and before-sleep hooks. No handler may block. Every module of the agent
 * registers its sockets here; nothing else polls.
 */
#ifndef __EGRESSD_LOOP_H
#define __EGRESSD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_timer;

typedef void (*loop_fd_cb)(struct loop *loop, int fd, uint32_t events,
			   void *arg);
typedef void (*loop_timer_cb)(struct loop *loop, struct loop_timer *t,
			      void *arg);
typedef void (*loop_hook_cb)(struct loop *loop, void *arg);

/* A new loop into *out: 0 or -errno (epoll_create1, -ENOMEM). */
int loop_new(struct loop **out);
void loop_free(struct loop *loop);

/* events are EPOLLIN/EPOLLOUT/…; 0 or -errno. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb,
		void *arg);
int loop_mod_fd(struct loop *loop, int fd, uint32_t events);
/* Forget fd (does not close it). Safe to call from inside its callback. */
int loop_del_fd(struct loop *loop, int fd);

/*
 * One-shot timer firing after ms milliseconds. Re-arm from the callback with
 * loop_timer_arm(). A timer stays allocated until loop_timer_free().
 * loop_timer_new() returns the handle rather than taking &out: it is a small
 * allocation with nothing to report but "out of memory" (NULL).
 */
struct loop_timer *loop_timer_new(struct loop *loop, loop_timer_cb cb,
				  void *arg);
void loop_timer_arm(struct loop_timer *t, uint64_t ms);
void loop_timer_disarm(struct loop_timer *t);
bool loop_timer_is_armed(const struct loop_timer *t);
void loop_timer_free(struct loop_timer *t);

/* Hooks run once per iteration before epoll_wait (batch flushes). */
int loop_add_before_sleep(struct loop *loop, loop_hook_cb cb, void *arg);

/*
 * Monotonic milliseconds, refreshed once per iteration (cheap); the clock
 * read now is util.h's util_clock_ms(), the same clock.
 */
uint64_t loop_now_ms(struct loop *loop);

/* Run until loop_stop(); 0 or -errno on an epoll failure. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

#endif /* __EGRESSD_LOOP_H */
