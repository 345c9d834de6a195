// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the event loop: fd callbacks, timers, before-sleep hooks,
 * and deleting an fd from inside a callback.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "egressd/loop.h"
#include "egressd/util.h"

struct ctx {
	int reads;
	int timer_fires;
	int hooks;
	int fds[2];
	uint64_t fired_at;
};

static void read_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct ctx *c = arg;
	char b[16];

	ck_assert(events & EPOLLIN);
	ck_assert_int_gt(read(fd, b, sizeof(b)), 0);
	c->reads++;
	loop_stop(loop);
}

START_TEST(test_loop_fd_callback)
{
	struct loop *loop;
	struct ctx c = { 0 };

	ck_assert_int_eq(loop_new(&loop), 0);
	ck_assert_int_eq(pipe(c.fds), 0);
	ck_assert_int_eq(loop_add_fd(loop, c.fds[0], EPOLLIN, read_cb, &c), 0);
	ck_assert_int_eq(loop_add_fd(loop, c.fds[0], EPOLLIN, read_cb, &c),
			 -EEXIST);
	ck_assert_int_eq(write(c.fds[1], "x", 1), 1);
	ck_assert_int_eq(loop_run(loop), 0);
	ck_assert_int_eq(c.reads, 1);
	close(c.fds[0]);
	close(c.fds[1]);
	loop_free(loop);
}
END_TEST

static void timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct ctx *c = arg;

	c->fired_at = util_clock_ms();
	if (++c->timer_fires < 3)
		loop_timer_arm(t, 20);
	else
		loop_stop(loop);
}

static void hook_cb(struct loop *loop, void *arg)
{
	((struct ctx *)arg)->hooks++;
}

START_TEST(test_loop_timer_rearm_and_hooks)
{
	struct loop *loop;
	struct ctx c = { 0 };
	struct loop_timer *t;
	uint64_t start = util_clock_ms();

	ck_assert_int_eq(loop_new(&loop), 0);
	t = loop_timer_new(loop, timer_cb, &c);
	ck_assert_int_eq(loop_add_before_sleep(loop, hook_cb, &c), 0);
	loop_timer_arm(t, 20);
	ck_assert(loop_timer_is_armed(t));
	ck_assert_int_eq(loop_run(loop), 0);
	ck_assert_int_eq(c.timer_fires, 3);
	/* Three 20 ms periods: not earlier than 60 ms after the start. */
	ck_assert_uint_ge(c.fired_at - start, 60);
	ck_assert_int_ge(c.hooks, 3);
	ck_assert(!loop_timer_is_armed(t));
	loop_timer_free(t);
	loop_free(loop);
}
END_TEST

static void del_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct ctx *c = arg;

	/* Delete both fds; the other one's pending event must be skipped. */
	c->reads++;
	loop_del_fd(loop, c->fds[0]);
	loop_del_fd(loop, c->fds[1]);
	loop_stop(loop);
}

START_TEST(test_loop_delete_inside_callback)
{
	struct loop *loop;
	struct ctx c = { 0 };
	int p1[2], p2[2];

	ck_assert_int_eq(loop_new(&loop), 0);
	ck_assert_int_eq(pipe(p1), 0);
	ck_assert_int_eq(pipe(p2), 0);
	c.fds[0] = p1[0];
	c.fds[1] = p2[0];
	ck_assert_int_eq(loop_add_fd(loop, p1[0], EPOLLIN, del_cb, &c), 0);
	ck_assert_int_eq(loop_add_fd(loop, p2[0], EPOLLIN, del_cb, &c), 0);
	ck_assert_int_eq(write(p1[1], "x", 1), 1);
	ck_assert_int_eq(write(p2[1], "x", 1), 1);
	ck_assert_int_eq(loop_run(loop), 0);
	ck_assert_int_eq(c.reads, 1);
	ck_assert_int_eq(loop_del_fd(loop, p1[0]), -ENOENT);
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
	loop_free(loop);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("loop");

	tcase_add_test(tc, test_loop_fd_callback);
	tcase_add_test(tc, test_loop_timer_rearm_and_hooks);
	tcase_add_test(tc, test_loop_delete_inside_callback);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loop_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
