// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the scan of egressd's own cgroup (agent/cgwatch.c) over a
 * directory that mimics a cgroup (a cgroup.procs file, child
 * directories): egressd and its parent are not foreign, anyone else is,
 * in the cgroup or below it; an unreadable cgroup is an error.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
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

int main(void)
{
	Suite *s = suite_create("cgwatch");
	TCase *tc = tcase_create("scan");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_cgwatch_scan);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
