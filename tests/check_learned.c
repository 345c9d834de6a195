// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the learned-address registry: adding and teaching,
 * freshness, the domain of an address, revocation by predicate, expiry and
 * GC, the BPF sweep's extensions, and the per-family cap with its
 * reclaim of expired entries and its failure counter.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/types.h>

#include "egressd/learned.h"
#include "egressd/shared.h"

static struct policy_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct policy_addr p = { .family = AF_INET, .prefixlen = 32 };

	p.addr[0] = a;
	p.addr[1] = b;
	p.addr[2] = c;
	p.addr[3] = d;
	return p;
}

static struct policy_addr v6(uint8_t last)
{
	struct policy_addr p = { .family = AF_INET6, .prefixlen = 128 };

	p.addr[0] = 0x20;
	p.addr[1] = 0x01;
	p.addr[2] = 0x0d;
	p.addr[3] = 0xb8;
	p.addr[15] = last;
	return p;
}

static struct learned *registry(size_t max)
{
	struct learned *lr;
	char err[128];

	ck_assert_int_eq(learned_new(&lr, max, err, sizeof(err)), 0);
	return lr;
}

START_TEST(test_learned_add_and_domain_of)
{
	struct learned *lr = registry(0);
	struct policy_addr a = v4(192, 0, 2, 1), b = v6(1);
	struct learned_stats st;
	size_t n4, n6;

	ck_assert_uint_eq(learned_max(lr), EGRESSD_MAX_LEARNED);
	ck_assert(!learned_is_known(lr, &a));
	ck_assert_ptr_null(learned_domain_of(lr, AF_INET, a.addr));
	ck_assert_int_eq(learned_add(lr, 1000, "a.example", &a, 101000), 0);
	ck_assert_int_eq(learned_add(lr, 1000, "a.example", &b, 101000), 0);
	ck_assert(learned_is_known(lr, &a));
	ck_assert_str_eq(learned_domain_of(lr, AF_INET, a.addr), "a.example");
	ck_assert_str_eq(learned_domain_of(lr, AF_INET6, b.addr), "a.example");
	/* the latest teacher is the domain of the address */
	ck_assert_int_eq(learned_add(lr, 2000, "b.example", &a, 0), 0);
	ck_assert_str_eq(learned_domain_of(lr, AF_INET, a.addr), "b.example");
	ck_assert_int_eq(learned_add(lr, 3000, "a.example", &a, 0), 0);
	ck_assert_str_eq(learned_domain_of(lr, AF_INET, a.addr), "a.example");
	/* a family other than AF_INET/AF_INET6 has nothing */
	ck_assert_ptr_null(learned_domain_of(lr, AF_UNIX, a.addr));
	learned_counts(lr, 50000, &n4, &n6);
	ck_assert_uint_eq(n4, 1);
	ck_assert_uint_eq(n6, 1);
	learned_get_stats(lr, &st);
	ck_assert_uint_eq(st.added, 2);
	ck_assert_uint_eq(st.v4, 1);
	ck_assert_uint_eq(st.v6, 1);
	learned_free(lr);
}
END_TEST

START_TEST(test_learned_fresh)
{
	struct learned *lr = registry(0);
	struct policy_addr a = v4(192, 0, 2, 1), other = v4(192, 0, 2, 2);

	ck_assert(!learned_is_fresh(lr, 1000, &a, 100));
	ck_assert_int_eq(learned_add(lr, 1000, "a.example", &a, 101000), 0);
	/* more than half of the lifetime left: fresh */
	ck_assert(learned_is_fresh(lr, 40000, &a, 100));
	ck_assert(!learned_is_fresh(lr, 60000, &a, 100));
	/* a longer lifetime asked for: not fresh any more */
	ck_assert(!learned_is_fresh(lr, 40000, &a, 200));
	ck_assert(!learned_is_fresh(lr, 40000, &other, 100));
	/* a stale entry (layers flushed) is written again, domain kept */
	learned_mark_stale(lr);
	ck_assert(!learned_is_fresh(lr, 2000, &a, 100));
	ck_assert(learned_is_known(lr, &a));
	ck_assert_str_eq(learned_domain_of(lr, AF_INET, a.addr), "a.example");
	ck_assert_int_eq(learned_add(lr, 2000, "a.example", &a, 102000), 0);
	ck_assert(learned_is_fresh(lr, 2000, &a, 100));
	/* the BPF sweep's extension does not make it fresh for nftables */
	learned_extend(lr, &a, 500000);
	ck_assert(!learned_is_fresh(lr, 60000, &a, 100));
	learned_free(lr);
}
END_TEST

static bool keep_not_b(const char *domain, void *arg)
{
	(void)arg;
	return strcmp(domain, "b.example") != 0;
}

START_TEST(test_learned_revoke_by_predicate)
{
	struct learned *lr = registry(0);
	struct policy_addr a = v4(192, 0, 2, 1), b = v4(192, 0, 2, 2),
			   ab = v6(3), old = v4(192, 0, 2, 4), *v;
	size_t n;

	ck_assert_int_eq(learned_add(lr, 0, "a.example", &a, 100000), 0);
	ck_assert_int_eq(learned_add(lr, 0, "b.example", &b, 100000), 0);
	/* taught by both: a.example keeps it */
	ck_assert_int_eq(learned_add(lr, 0, "a.example", &ab, 100000), 0);
	ck_assert_int_eq(learned_add(lr, 0, "b.example", &ab, 100000), 0);
	/* expired: gone from the layers already, nothing to revoke */
	ck_assert_int_eq(learned_add(lr, 0, "b.example", &old, 1000), 0);
	ck_assert_int_eq(learned_revoked(lr, 5000, keep_not_b, NULL, &v, &n),
			 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].family, AF_INET);
	ck_assert_int_eq(v[0].prefixlen, 32);
	ck_assert_mem_eq(v[0].addr, b.addr, 4);
	/* the registry is unchanged until the caller forgets them */
	ck_assert(learned_is_known(lr, &b));
	learned_forget(lr, 5000, &v[0]);
	free(v);
	/* then it is not revoked again, and keeps its name a while */
	ck_assert_int_eq(learned_revoked(lr, 6000, keep_not_b, NULL, &v, &n),
			 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(learned_domain_of(lr, AF_INET, b.addr), "b.example");
	learned_gc(lr, 5000 + LEARNED_LINGER_MS + 1);
	ck_assert(!learned_is_known(lr, &b));
	/* a stale entry a layer may still hold is revoked too */
	learned_mark_stale(lr);
	ck_assert_int_eq(learned_add(lr, 0, "b.example", &b, 100000), 0);
	learned_mark_stale(lr);
	ck_assert_int_eq(learned_revoked(lr, 5000, keep_not_b, NULL, &v, &n),
			 0);
	ck_assert_uint_eq(n, 1);
	free(v);
	learned_free(lr);
}
END_TEST

START_TEST(test_learned_extended_entry_is_revoked)
{
	struct learned *lr = registry(0);
	struct policy_addr b = v4(192, 0, 2, 2), *v;
	size_t n;

	/* learned for 10 s, kept alive by the BPF sweep while in use */
	ck_assert_int_eq(learned_add(lr, 0, "b.example", &b, 10000), 0);
	learned_extend(lr, &b, 60000);
	ck_assert_int_eq(learned_revoked(lr, 30000, keep_not_b, NULL, &v, &n),
			 0);
	ck_assert_uint_eq(n, 1);
	free(v);
	/* while allowed it stays: its teacher lives as long as it does */
	learned_free(lr);
	lr = registry(0);
	ck_assert_int_eq(learned_add(lr, 0, "a.example", &b, 10000), 0);
	learned_extend(lr, &b, 60000);
	ck_assert_int_eq(learned_revoked(lr, 30000, keep_not_b, NULL, &v, &n),
			 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(v);
	learned_free(lr);
}
END_TEST

START_TEST(test_learned_gc_expiry)
{
	struct learned *lr = registry(0);
	struct policy_addr a = v4(192, 0, 2, 1), b = v6(2);
	size_t n4, n6;

	ck_assert_int_eq(learned_add(lr, 0, "a.example", &a, 100000), 0);
	ck_assert_int_eq(learned_add(lr, 0, "a.example", &b, 100000), 0);
	learned_extend(lr, &b, 300000);
	learned_counts(lr, 200000, &n4, &n6);
	ck_assert_uint_eq(n4, 0);
	ck_assert_uint_eq(n6, 1);
	/* expired entries linger for the domain of late lines */
	learned_gc(lr, 200000);
	ck_assert_str_eq(learned_domain_of(lr, AF_INET, a.addr), "a.example");
	learned_gc(lr, 100000 + LEARNED_LINGER_MS + 1);
	ck_assert_ptr_null(learned_domain_of(lr, AF_INET, a.addr));
	ck_assert_str_eq(learned_domain_of(lr, AF_INET6, b.addr), "a.example");
	learned_gc(lr, 300000 + LEARNED_LINGER_MS + 1);
	ck_assert(!learned_is_known(lr, &b));
	learned_free(lr);
}
END_TEST

START_TEST(test_learned_cap_and_counter)
{
	struct learned *lr = registry(2);
	struct policy_addr a = v4(10, 0, 0, 1), b = v4(10, 0, 0, 2),
			   c = v4(10, 0, 0, 3), d = v4(10, 0, 0, 4), s = v6(1);
	struct policy_addr both[2];
	struct learned_stats st;

	ck_assert_int_eq(learned_add(lr, 0, "a.example", &a, 10000), 0);
	ck_assert_int_eq(learned_add(lr, 0, "a.example", &b, 50000), 0);
	/* full, nothing expired: refused, counted, nothing changed */
	ck_assert_int_eq(learned_make_room(lr, 5000, &c, 1), -ENOSPC);
	ck_assert_int_eq(learned_add(lr, 5000, "c.example", &c, 15000),
			 -ENOSPC);
	ck_assert(!learned_is_known(lr, &c));
	/* addresses it holds need no room; other families have their own */
	ck_assert_int_eq(learned_make_room(lr, 5000, &a, 1), 0);
	ck_assert_int_eq(learned_make_room(lr, 5000, &s, 1), 0);
	ck_assert_int_eq(learned_add(lr, 5000, "s.example", &s, 15000), 0);
	learned_get_stats(lr, &st);
	ck_assert_uint_eq(st.full, 2);
	ck_assert_uint_eq(st.reclaimed, 0);
	/* once a expired, it is reclaimed before the add fails */
	ck_assert_int_eq(learned_make_room(lr, 20000, &c, 1), 0);
	ck_assert(!learned_is_known(lr, &a));
	ck_assert_int_eq(learned_add(lr, 20000, "c.example", &c, 30000), 0);
	learned_get_stats(lr, &st);
	ck_assert_uint_eq(st.reclaimed, 1);
	ck_assert_uint_eq(st.v4, 2);
	/* two new ones do not fit where one would not */
	both[0] = d;
	both[1] = a;
	ck_assert_int_eq(learned_make_room(lr, 25000, both, 2), -ENOSPC);
	/* the same address twice counts once */
	both[1] = d;
	ck_assert_int_eq(learned_make_room(lr, 35000, both, 2), 0);
	learned_get_stats(lr, &st);
	ck_assert_uint_eq(st.full, 3);
	/* a forgotten entry makes room at once */
	learned_forget(lr, 35000, &b);
	ck_assert_int_eq(learned_add(lr, 35000, "d.example", &d, 60000), 0);
	ck_assert_str_eq(learned_domain_of(lr, AF_INET, b.addr), "a.example");
	/* and is the first to go when room is needed */
	ck_assert_int_eq(learned_add(lr, 35000, "c.example", &c, 60000), 0);
	ck_assert(!learned_is_known(lr, &b));
	learned_get_stats(lr, &st);
	ck_assert_uint_eq(st.revoked, 1);
	learned_free(lr);
}
END_TEST

START_TEST(test_learned_many_addresses)
{
	struct learned *lr = registry(100000);
	struct policy_addr a;
	size_t n4, n6;
	int i;

	/* the table grows past its first buckets and finds everything */
	for (i = 0; i < 20000; i++) {
		a = v4(10, 1, (uint8_t)(i >> 8), (uint8_t)i);
		ck_assert_int_eq(learned_add(lr, 0, "m.example", &a, 1000), 0);
	}
	for (i = 0; i < 20000; i++) {
		a = v4(10, 1, (uint8_t)(i >> 8), (uint8_t)i);
		ck_assert(learned_is_known(lr, &a));
	}
	learned_counts(lr, 0, &n4, &n6);
	ck_assert_uint_eq(n4, 20000);
	learned_gc(lr, 1000 + LEARNED_LINGER_MS + 1);
	learned_counts(lr, 0, &n4, &n6);
	ck_assert_uint_eq(n4, 0);
	learned_free(lr);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("learned");
	TCase *tc = tcase_create("registry");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_learned_add_and_domain_of);
	tcase_add_test(tc, test_learned_fresh);
	tcase_add_test(tc, test_learned_revoke_by_predicate);
	tcase_add_test(tc, test_learned_extended_entry_is_revoked);
	tcase_add_test(tc, test_learned_gc_expiry);
	tcase_add_test(tc, test_learned_cap_and_counter);
	tcase_add_test(tc, test_learned_many_addresses);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
