// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the scan of egressd's own cgroup (agent/cgwatch.c) over a
 * directory that mimics a cgroup (a cgroup.procs file, child
 * directories): egressd and its parent are not foreign, anyone else is,
 * in the cgroup or below it; an unreadable cgroup is an error. And of the
 * watch: a write to cgroup.procs is reported as a write whether the
 * intruder is still there or gone, and whether the scan or the inotify
 * event comes first.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "egressd/cgwatch.h"

static char root[64];

/* Write dir's cgroup.procs: n pids. */
static void procs(const char *sub, int n, long a, long b)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s%s/cgroup.procs", root, sub);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	if (n > 0)
		fprintf(f, "%ld\n", a);
	if (n > 1)
		fprintf(f, "%ld\n", b);
	fclose(f);
}

START_TEST(test_cgwatch_scan)
{
	char sub[256];

	snprintf(root, sizeof(root), "/tmp/check_cgwatch.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	ck_assert_int_eq(cgwatch_foreign_pid(root), -ENOENT);
	procs("", 2, (long)getpid(), (long)getppid());
	ck_assert_int_eq(cgwatch_foreign_pid(root), 0);
	procs("", 2, (long)getpid(), 4242);
	ck_assert_int_eq(cgwatch_foreign_pid(root), 4242);
	/* below egressd's cgroup counts too */
	procs("", 1, (long)getpid(), 0);
	snprintf(sub, sizeof(sub), "%s/child", root);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	procs("/child", 1, 4343, 0);
	ck_assert_int_eq(cgwatch_foreign_pid(root), 4343);
	procs("/child", 0, 0, 0);
	ck_assert_int_eq(cgwatch_foreign_pid(root), 0);
	snprintf(sub, sizeof(sub), "%s/child/cgroup.procs", root);
	unlink(sub);
	snprintf(sub, sizeof(sub), "%s/child", root);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/cgroup.procs", root);
	unlink(sub);
	rmdir(root);
}
END_TEST

static long got_pid = -1;
static const char *got_what;
static int got_n;

static void got(void *arg, long pid, const char *what)
{
	got_pid = pid;
	got_what = what;
	got_n++;
	loop_stop(arg);
}

static void give_up(struct loop *loop, struct loop_timer *t, void *arg)
{
	loop_stop(loop);
}

/* Watch a fresh mock cgroup holding only us, write pids (n of them) to
 * its cgroup.procs, wait wait_ms, then run the loop until the report. */
static void watch_write(unsigned int scan_ms, int n, long pid,
			unsigned int wait_ms)
{
	struct timespec ts = { .tv_nsec = wait_ms * 1000000L };
	struct loop *loop;
	struct loop_timer *t;
	struct cgwatch *w;
	char path[256];

	ck_assert_int_eq(loop_new(&loop), 0);
	snprintf(root, sizeof(root), "/tmp/check_cgwatch.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	procs("", 1, (long)getpid(), 0);
	got_pid = -1;
	got_what = NULL;
	got_n = 0;
	ck_assert_int_eq(cgwatch_new(&w, loop, root, scan_ms, got, loop), 0);
	procs("", n, pid, 0);
	nanosleep(&ts, NULL);
	t = loop_timer_new(loop, give_up, NULL);
	ck_assert_ptr_nonnull(t);
	loop_timer_arm(t, 5000);
	loop_run(loop);
	loop_timer_free(t);
	cgwatch_free(w);
	loop_free(loop);
	snprintf(path, sizeof(path), "%s/cgroup.procs", root);
	unlink(path);
	rmdir(root);
	ck_assert_int_eq(got_n, 1);
}

/* The intruder wrote its pid and left before egressd looked. */
START_TEST(test_cgwatch_write_intruder_gone)
{
	watch_write(60000, 0, 0, 0);
	ck_assert_int_eq(got_pid, 0);
	ck_assert_ptr_nonnull(got_what);
	ck_assert_ptr_nonnull(strstr(got_what, "was moved into"));
}
END_TEST

/* The intruder is still there: the write and its pid are both reported. */
START_TEST(test_cgwatch_write_intruder_there)
{
	watch_write(60000, 1, 4242, 0);
	ck_assert_int_eq(got_pid, 4242);
	ck_assert_ptr_nonnull(got_what);
	ck_assert_ptr_nonnull(strstr(got_what, "was moved into"));
}
END_TEST

/* The scan is due before the inotify event is read (the loop runs due
 * timers first): the write is still reported, not just the pid. */
START_TEST(test_cgwatch_write_scan_first)
{
	watch_write(1, 1, 4242, 20);
	ck_assert_int_eq(got_pid, 4242);
	ck_assert_ptr_nonnull(got_what);
	ck_assert_ptr_nonnull(strstr(got_what, "was moved into"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cgwatch");
	TCase *tc = tcase_create("scan");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_cgwatch_scan);
	suite_add_tcase(s, tc);
	tc = tcase_create("watch");
	tcase_add_test(tc, test_cgwatch_write_intruder_gone);
	tcase_add_test(tc, test_cgwatch_write_intruder_there);
	tcase_add_test(tc, test_cgwatch_write_scan_first);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
