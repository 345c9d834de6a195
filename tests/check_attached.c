// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of attached.c's name test: egressd's program names as the
 * kernel keeps them (15 characters), and the list checked against the
 * programs of the built BPF object, so that a program added to or renamed
 * in bpf/ cannot be missed by the foreign-program check. No root: the
 * object is opened, never loaded.
 */
#include <check.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "egressd/attached.h"

START_TEST(test_attached_names_as_the_kernel_keeps_them)
{
	ck_assert(attached_is_egressd_name("egress_filter"));
	ck_assert(attached_is_egressd_name("ingress_track"));
	ck_assert(attached_is_egressd_name("dns_connect6"));
	/* dns_getpeername4/6 lose their last character in the kernel */
	ck_assert(attached_is_egressd_name("dns_getpeername"));
	ck_assert(!attached_is_egressd_name("dns_getpeernam"));
	ck_assert(!attached_is_egressd_name("egress_filte"));
	ck_assert(!attached_is_egressd_name("egress_filter2"));
	ck_assert(!attached_is_egressd_name(""));
	ck_assert(!attached_is_egressd_name("sd_fw_egress"));
}
END_TEST

START_TEST(test_attached_names_cover_the_bpf_object)
{
	char exe[PATH_MAX], obj[PATH_MAX + 32], kname[16];
	struct bpf_object *o;
	struct bpf_program *p;
	ssize_t n;
	int count = 0;

	/* <output>/tests/check_attached -> <output>/bpf/egress.bpf.o */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = 0;
	snprintf(obj, sizeof(obj), "%s/../bpf/egress.bpf.o", dirname(exe));
	o = bpf_object__open_file(obj, NULL);
	ck_assert_msg(o != NULL, "cannot open %s", obj);
	bpf_object__for_each_program(p, o) {
		snprintf(kname, sizeof(kname), "%s", bpf_program__name(p));
		ck_assert_msg(attached_is_egressd_name(kname),
			      "program %s of %s is not in attached.c's list",
			      bpf_program__name(p), obj);
		count++;
	}
	ck_assert_int_eq(count, 12);
	bpf_object__close(o);
}
END_TEST

static Suite *attached_suite(void)
{
	Suite *s = suite_create("attached");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_attached_names_as_the_kernel_keeps_them);
	tcase_add_test(tc, test_attached_names_cover_the_bpf_object);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(attached_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
