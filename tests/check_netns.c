// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of host-namespace detection: the decision over synthetic link
 * lists, and a real rtnetlink dump (unprivileged) that must list "lo".
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "egressd/netns.h"

START_TEST(test_netns_device_link_decides)
{
	struct netns_link sandbox[] = {
		{ .name = "lo" },
		{ .name = "eth0" }, /* a veth: no parent device */
	};
	struct netns_link host[] = {
		{ .name = "lo" },
		{ .name = "veth1" },
		{ .name = "ens3",
		  .parent_bus = "pci",
		  .parent_dev = "0000:00:03.0" },
	};
	const struct netns_link *l;

	ck_assert_ptr_null(netns_find_device_link(sandbox, 2));
	ck_assert_ptr_null(netns_find_device_link(NULL, 0));
	l = netns_find_device_link(host, 3);
	ck_assert_ptr_nonnull(l);
	ck_assert_str_eq(l->name, "ens3");
}
END_TEST

START_TEST(test_netns_dump_lists_loopback)
{
	struct netns_link *links = NULL;
	size_t i, n = 0;
	bool lo = false;

	ck_assert_int_eq(netns_list_links(&links, &n), 0);
	ck_assert_uint_ge(n, 1);
	for (i = 0; i < n; i++) {
		if (!strcmp(links[i].name, "lo")) {
			lo = true;
			/* Loopback is never device-backed. */
			ck_assert_str_eq(links[i].parent_dev, "");
		}
	}
	ck_assert(lo);
	free(links);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("netns");
	TCase *tc = tcase_create("detect");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_netns_device_link_decides);
	tcase_add_test(tc, test_netns_dump_lists_loopback);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
