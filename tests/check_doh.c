// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the DoH/DoT provider lists (names and addresses) and of
 * the matcher's exact_allow, which together decide whether a provider
 * name resolves.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "egressd/doh.h"
#include "egressd/policy.h"

static bool is_doh(const char *s)
{
	return doh_is_provider_name(s, strlen(s));
}

START_TEST(test_doh_provider_names)
{
	ck_assert(is_doh("dns.google"));
	ck_assert(is_doh("dns.google."));
	ck_assert(is_doh("cloudflare-dns.com"));
	ck_assert(is_doh("mozilla.cloudflare-dns.com"));
	ck_assert(is_doh("abc123.dns.nextdns.io"));
	ck_assert(is_doh("dns.quad9.net"));
	/* Neighbours that are not resolvers stay resolvable. */
	ck_assert(!is_doh("www.quad9.net"));
	ck_assert(!is_doh("google"));
	ck_assert(!is_doh("www.google.com"));
	ck_assert(!is_doh("notcloudflare-dns.com"));
	ck_assert(!is_doh("cloudflare-dns.com.evil.net"));
	ck_assert(!is_doh(""));
}
END_TEST

START_TEST(test_doh_lists_are_lower_case_names)
{
	const char *const *l;
	size_t i, j, n;

	for (j = 0; j < 2; j++) {
		l = j ? doh_provider_domains(&n) : doh_provider_names(&n);
		ck_assert_uint_gt(n, 5);
		for (i = 0; i < n; i++) {
			struct policy_rule r = { 0 };
			char err[256];

			/* Every entry must be a valid exact-name target. */
			ck_assert_msg(!policy_parse_target(l[i], &r, err,
							   sizeof(err)) &&
					      r.kind == POLICY_KIND_DOMAIN &&
					      !strcmp(r.name, l[i]),
				      "%s", l[i]);
			free(r.target);
			free(r.name);
		}
	}
}
END_TEST

/* The built-in addresses: each one address (the agent parses them as
 * policy targets, the nftables layer with inet_pton), none twice. */
START_TEST(test_doh_provider_addrs_are_addresses)
{
	const char *const *l;
	uint8_t buf[16];
	size_t i, j, n;

	l = doh_provider_addrs(&n);
	ck_assert_uint_gt(n, 20);
	for (i = 0; i < n; i++) {
		struct policy_rule r = { 0 };
		char err[256];

		ck_assert_msg(inet_pton(AF_INET, l[i], buf) == 1 ||
				      inet_pton(AF_INET6, l[i], buf) == 1,
			      "%s", l[i]);
		ck_assert_msg(!policy_parse_target(l[i], &r, err,
						   sizeof(err)) &&
				      r.kind == POLICY_KIND_IP,
			      "%s", l[i]);
		free(r.target);
		free(r.name);
		for (j = 0; j < i; j++)
			ck_assert_msg(strcmp(l[i], l[j]), "%s twice", l[i]);
	}
}
END_TEST

static struct policy_matcher *matcher(const char *json)
{
	struct policy *p = NULL;
	struct policy_matcher *m;
	char err[256];

	ck_assert_int_eq(policy_parse_json(json, strlen(json), 0, &p, err,
					   sizeof(err)),
			 0);
	ck_assert_int_eq(policy_matcher_new(&m, p, NULL, 0, NULL, 0), 0);
	policy_free(p);
	return m;
}

START_TEST(test_doh_exact_allow_only_from_exact_rules)
{
	struct policy_matcher *m;
	struct policy_match pm;

	/* Wildcard first: dns.google is allowed, but not by an exact rule. */
	m = matcher(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"*.google\"}]}");
	policy_matcher_lookup(m, "dns.google", 10, &pm);
	ck_assert_int_eq(pm.action, POLICY_ALLOW);
	ck_assert(!pm.exact_allow);
	policy_matcher_free(m);

	/* An exact allow after a wildcard still counts. */
	m = matcher(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"*.google\"},"
		"{\"action\":\"allow\",\"target\":\"DNS.google.\"}]}");
	policy_matcher_lookup(m, "dns.google", 10, &pm);
	ck_assert(pm.exact_allow);
	policy_matcher_free(m);

	/* An exact deny is not an exact allow. */
	m = matcher("{\"defaultAction\":\"allow\",\"egress\":"
		    "[{\"action\":\"deny\",\"target\":\"dns.google\"}]}");
	policy_matcher_lookup(m, "dns.google", 10, &pm);
	ck_assert(!pm.exact_allow);
	ck_assert_int_eq(pm.action, POLICY_DENY);
	policy_matcher_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("doh");
	TCase *tc = tcase_create("names");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_doh_provider_names);
	tcase_add_test(tc, test_doh_lists_are_lower_case_names);
	tcase_add_test(tc, test_doh_provider_addrs_are_addresses);
	tcase_add_test(tc, test_doh_exact_allow_only_from_exact_rules);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
