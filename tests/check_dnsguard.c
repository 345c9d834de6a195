// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for agent/dnsguard.c: which answer addresses rebinding
 * protection refuses (the ranges, IPv4-mapped IPv6, the private ranges
 * behind block_private, the namespace's own addresses) and how IP/CIDR
 * rules in effective order keep one.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egressd/dnsguard.h"

static bool special(const char *text, bool priv)
{
	uint8_t a[16];

	if (strchr(text, ':')) {
		ck_assert_int_eq(inet_pton(AF_INET6, text, a), 1);
		return dnsguard_addr_special(AF_INET6, a, priv);
	}
	ck_assert_int_eq(inet_pton(AF_INET, text, a), 1);
	return dnsguard_addr_special(AF_INET, a, priv);
}

static bool refuses(struct dnsguard *g, const char *text)
{
	uint8_t a[16];

	if (strchr(text, ':')) {
		ck_assert_int_eq(inet_pton(AF_INET6, text, a), 1);
		return dnsguard_refuses(g, AF_INET6, a, 1000);
	}
	ck_assert_int_eq(inet_pton(AF_INET, text, a), 1);
	return dnsguard_refuses(g, AF_INET, a, 1000);
}

START_TEST(test_dnsguard_ranges)
{
	static const char *always[] = {
		"127.0.0.1",
		"127.0.0.53",
		"127.255.255.254",
		"0.0.0.0",
		"0.1.2.3",
		"169.254.169.254",
		"169.254.0.1",
		"255.255.255.255",
		"::1",
		"::",
		"fe80::1",
		"febf::1",
		"fd00:ec2::254",
		"::ffff:127.0.0.1",
		"::ffff:169.254.169.254",
	};
	static const char *priv[] = {
		"10.0.0.1",	   "10.200.1.80", "172.16.0.1",
		"172.31.255.255",  "192.168.1.1", "100.64.0.1",
		"100.127.255.255", "fc00::1",	  "fd00:200:1::80",
		"::ffff:10.1.2.3",
	};
	static const char *never[] = {
		"8.8.8.8",     "128.0.0.1",	 "169.255.0.1",
		"172.32.0.1",  "172.15.255.255", "192.169.0.1",
		"100.128.0.1", "100.63.255.255", "2001:db8::1",
		"fec0::1",     "fe00::1",	 "::ffff:8.8.8.8",
		"1.0.0.0",
	};
	size_t i;

	for (i = 0; i < sizeof(always) / sizeof(always[0]); i++) {
		ck_assert_msg(special(always[i], false), "%s", always[i]);
		ck_assert_msg(special(always[i], true), "%s", always[i]);
	}
	for (i = 0; i < sizeof(priv) / sizeof(priv[0]); i++) {
		ck_assert_msg(!special(priv[i], false), "%s", priv[i]);
		ck_assert_msg(special(priv[i], true), "%s", priv[i]);
	}
	for (i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		ck_assert_msg(!special(never[i], true), "%s", never[i]);
}
END_TEST

static struct policy_rule rule(const char *target, enum policy_action a)
{
	struct policy_rule r;
	char err[128];

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(policy_parse_target(target, &r, err, sizeof(err)), 0);
	r.action = a;
	return r;
}

START_TEST(test_dnsguard_rules_first_match)
{
	struct policy_rule user[3], deny_always[1], allow_always[1];
	struct policy pol = { .default_action = POLICY_DENY };
	struct dnsguard *g;

	ck_assert_int_eq(dnsguard_new(&g, true), 0);
	ck_assert(refuses(g, "127.0.0.9"));
	ck_assert(refuses(g, "10.1.2.3"));
	ck_assert(!refuses(g, "8.8.8.8"));

	user[0] = rule("10.1.0.0/16", POLICY_DENY);
	user[1] = rule("10.0.0.0/8", POLICY_ALLOW);
	user[2] = rule("example.com", POLICY_ALLOW); /* names: ignored */
	deny_always[0] = rule("10.9.9.9", POLICY_ALLOW); /* always denies */
	allow_always[0] = rule("127.0.0.9", POLICY_DENY); /* always allows */
	pol.rules = user;
	pol.n_rules = 3;
	ck_assert_int_eq(dnsguard_set_rules(g, &pol, deny_always, 1,
					    allow_always, 1),
			 0);
	ck_assert(!refuses(g, "127.0.0.9")); /* allow.always */
	ck_assert(refuses(g, "127.0.0.8"));
	ck_assert(!refuses(g, "::ffff:127.0.0.9")); /* mapped = IPv4 */
	ck_assert(refuses(g, "10.1.2.3")); /* user deny first */
	ck_assert(!refuses(g, "10.2.3.4")); /* then the allow */
	ck_assert(refuses(g, "10.9.9.9")); /* deny.always */
	ck_assert(refuses(g, "192.168.0.1")); /* no rule */
	for (int i = 0; i < 3; i++) {
		free(user[i].target);
		free(user[i].name);
	}
	free(deny_always[0].target);
	free(deny_always[0].name);
	free(allow_always[0].target);
	free(allow_always[0].name);
	/* The guard copied what it needs. */
	ck_assert(!refuses(g, "10.2.3.4"));
	ck_assert_int_eq(dnsguard_set_rules(g, NULL, NULL, 0, NULL, 0), 0);
	ck_assert(refuses(g, "10.2.3.4"));
	dnsguard_free(g);
}
END_TEST

START_TEST(test_dnsguard_own_addresses)
{
	struct dnsguard *g;
	struct sockaddr_in me = { 0 };
	socklen_t sl = sizeof(me);
	int fd;

	ck_assert_int_eq(dnsguard_new(&g, false), 0);
	/* A source address the kernel picks for an outside destination
	 * is one of ours (skipped without a route). */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	me.sin_family = AF_INET;
	me.sin_port = htons(9);
	inet_pton(AF_INET, "192.0.2.1", &me.sin_addr);
	if (connect(fd, (struct sockaddr *)&me, sizeof(me)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&me, &sl) == 0) {
		char text[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &me.sin_addr, text, sizeof(text));
		ck_assert_msg(refuses(g, text), "own address %s", text);
	}
	close(fd);
	ck_assert(!refuses(g, "192.0.2.1"));
	dnsguard_free(g);
}
END_TEST

static Suite *dnsguard_suite(void)
{
	Suite *s = suite_create("dnsguard");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_dnsguard_ranges);
	tcase_add_test(tc, test_dnsguard_rules_first_match);
	tcase_add_test(tc, test_dnsguard_own_addresses);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dnsguard_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
