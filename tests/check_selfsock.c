// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the registry of egressd's own sockets (agent/selfsock.c)
 * without a BPF map (no root needed): sockets are noted by cookie,
 * forgotten before close, the registry grows past its first allocation,
 * and something that is not a socket is refused.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egressd/selfsock.h"

START_TEST(test_selfsock_note_and_forget)
{
	int a = socket(AF_INET, SOCK_DGRAM, 0);
	int b = socket(AF_INET6, SOCK_STREAM, 0);

	ck_assert_int_ge(a, 0);
	ck_assert_int_ge(b, 0);
	ck_assert_uint_eq(selfsock_count(), 0);
	ck_assert_int_eq(selfsock_note(a), 0);
	ck_assert_int_eq(selfsock_note(b), 0);
	ck_assert_uint_eq(selfsock_count(), 2);
	selfsock_forget(a);
	ck_assert_uint_eq(selfsock_count(), 1);
	selfsock_forget(a); /* unknown now: ignored */
	ck_assert_uint_eq(selfsock_count(), 1);
	ck_assert_int_eq(selfsock_close(b), 0);
	ck_assert_uint_eq(selfsock_count(), 0);
	close(a);
	selfsock_fini();
}
END_TEST

START_TEST(test_selfsock_grows)
{
	int fds[100], i;

	for (i = 0; i < 100; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_int_eq(selfsock_note(fds[i]), 0);
	}
	ck_assert_uint_eq(selfsock_count(), 100);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(selfsock_close(fds[i]), 0);
	ck_assert_uint_eq(selfsock_count(), 0);
	selfsock_fini();
}
END_TEST

START_TEST(test_selfsock_not_a_socket)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(selfsock_note(p[0]), -ENOTSOCK);
	ck_assert_uint_eq(selfsock_count(), 0);
	close(p[0]);
	close(p[1]);
	/* no map set: nothing to write, no error */
	ck_assert_int_eq(selfsock_set_map(-1, 0), 0);
	selfsock_fini();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("selfsock");
	TCase *tc = tcase_create("registry");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_selfsock_note_and_forget);
	tcase_add_test(tc, test_selfsock_grows);
	tcase_add_test(tc, test_selfsock_not_a_socket);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
