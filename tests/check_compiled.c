// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the compiled policy: the address lists and the rule id of
 * every entry, the nftables and BPF projections (the same lists), the
 * lookup that names the rule of an nftables drop, and the rule names of
 * the log lines.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egressd/compiled.h"
#include "egressd/reason.h"
#include "egressd/doh.h"

static struct policy *parse(const char *json)
{
	struct policy *p = NULL;
	char err[256];

	ck_assert_msg(!policy_parse_json(json, strlen(json), 0, &p, err,
					 sizeof(err)),
		      "%s", err);
	return p;
}

static void always(const char *text, enum policy_action action,
		   struct policy_rule **rules, size_t *n)
{
	char err[256];

	ck_assert_msg(!policy_parse_always_buf(text, strlen(text), "test",
					       action, rules, n, err,
					       sizeof(err)),
		      "%s", err);
}

static void upstream(struct egressd_config *cfg, const char *ip)
{
	struct sockaddr_in *sin =
		(struct sockaddr_in *)&cfg->upstreams[cfg->n_upstreams].addr;

	sin->sin_family = AF_INET;
	sin->sin_port = htons(53);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	cfg->upstreams[cfg->n_upstreams++].addrlen = sizeof(*sin);
}

static const char *text(const struct policy_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(a->family, a->addr, ip, sizeof(ip));
	snprintf(buf, len, "%s/%u", ip, a->prefixlen);
	return buf;
}

static const char *rname(uint32_t rule)
{
	static char buf[64];

	reason_rule_name(rule, buf, sizeof(buf));
	return buf;
}

/* "ADDR/LEN=RULE ..." of one list. */
static const char *list_str(const struct policy_compiled *pc,
			    enum policy_compiled_list list)
{
	static char out[2048];
	const struct policy_addr *a;
	const uint32_t *r;
	char buf[64];
	size_t n, i, off = 0;

	out[0] = '\0';
	a = policy_compiled_addrs(pc, list, &r, &n);
	for (i = 0; i < n; i++)
		off += snprintf(out + off, sizeof(out) - off, "%s%s=%s",
				i ? " " : "", text(&a[i], buf, sizeof(buf)),
				rname(r[i]));
	return out;
}

struct fixture {
	struct policy *p;
	struct policy_rule *deny, *allow;
	size_t n_deny, n_allow;
	struct egressd_config cfg;
	struct policy_compiled *pc;
};

static void fixture_compile(struct fixture *f)
{
	char err[256];

	ck_assert_msg(!policy_compiled_new(&f->pc, f->p, f->deny, f->n_deny,
					   f->allow, f->n_allow, &f->cfg, err,
					   sizeof(err)),
		      "%s", err);
}

static void fixture_free(struct fixture *f)
{
	policy_compiled_free(f->pc);
	policy_free(f->p);
	policy_rules_free(f->deny, f->n_deny);
	policy_rules_free(f->allow, f->n_allow);
}

/* A policy with rules of every kind, and both always files. */
static void fixture_std(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->p = parse("{\"defaultAction\":\"deny\",\"egress\":["
		     "{\"action\":\"allow\",\"target\":\"api.github.com\"},"
		     "{\"action\":\"deny\",\"target\":\"10.0.0.0/8\"},"
		     "{\"action\":\"allow\",\"target\":\"1.2.3.4\"},"
		     "{\"action\":\"allow\",\"target\":\"192.168.0.0/16\"},"
		     "{\"action\":\"deny\",\"target\":\"2001:db8::/32\"},"
		     "{\"action\":\"allow\",\"target\":\"::ffff:5.6.7.8\"}]}");
	always("# comment\nevil.example\n203.0.113.0/24\n10.1.0.0/16\n",
	       POLICY_DENY, &f->deny, &f->n_deny);
	always("198.51.100.7\nok.example\n", POLICY_ALLOW, &f->allow,
	       &f->n_allow);
	f->cfg.mode = EGRESSD_MODE_DNS_NFT;
	upstream(&f->cfg, "9.9.9.9");
	fixture_compile(f);
}

START_TEST(test_compiled_lists_carry_rule_ids)
{
	struct fixture f;

	fixture_std(&f);
	ck_assert_str_eq(list_str(f.pc, POLICY_COMPILED_DENY),
			 "203.0.113.0/24=deny.always[1] "
			 "10.1.0.0/16=deny.always[2] "
			 "10.0.0.0/8=egress[1] 2001:db8::/32=egress[4]");
	ck_assert_str_eq(list_str(f.pc, POLICY_COMPILED_ALLOW),
			 "198.51.100.7/32=allow.always[0] "
			 "1.2.3.4/32=egress[2] 192.168.0.0/16=egress[3] "
			 "5.6.7.8/32=egress[5]");
	/* DoH exceptions: only the allow rules naming one address */
	ck_assert_str_eq(list_str(f.pc, POLICY_COMPILED_DOH_EXC),
			 "1.2.3.4/32=egress[2] 5.6.7.8/32=egress[5]");
	fixture_free(&f);
}
END_TEST

START_TEST(test_compiled_user_rule_id_is_its_index)
{
	/* What the pinned maps hold for egress[i] is plainly i. */
	ck_assert_uint_eq(EGRESSD_RULE_ID(EGRESSD_RULE_USER, 7), 7);
	ck_assert_str_eq(rname(7), "egress[7]");
	ck_assert_str_eq(rname(EGRESSD_RULE_ID(EGRESSD_RULE_DENY_ALWAYS, 0)),
			 "deny.always[0]");
	ck_assert_str_eq(rname(EGRESSD_RULE_ID(EGRESSD_RULE_ALLOW_ALWAYS, 2)),
			 "allow.always[2]");
	ck_assert_str_eq(rname(EGRESSD_RULE_ID(EGRESSD_RULE_DOH_BUILTIN, 1)),
			 "doh.builtin[1]");
	ck_assert_str_eq(rname(EGRESSD_RULE_ID(EGRESSD_RULE_DOH_BLOCKLIST, 0)),
			 "doh.blocklist[0]");
}
END_TEST

START_TEST(test_compiled_rule_name_none)
{
	/* volatile: with a constant length the inline's snprintf would be
	 * refused at compile time (-Wformat-truncation), the point here */
	volatile size_t short_len = 8;
	char buf[32] = "x";

	ck_assert_int_eq(reason_rule_name(EGRESSD_RULE_NONE, buf, sizeof(buf)),
			 -ENOENT);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(reason_rule_name(EGRESSD_RULE_ID(9, 1), buf,
					  sizeof(buf)),
			 -ENOENT);
	/* A short buffer is cut, never overrun. */
	ck_assert_int_eq(reason_rule_name(12345, buf, short_len), 0);
	ck_assert_str_eq(buf, "egress[");
}
END_TEST

START_TEST(test_compiled_nft_projection)
{
	struct bpfsync_policy bp;
	struct nftsync_config c;
	const struct policy_addr *a;
	char buf[64];
	size_t n, nb;
	struct fixture f;

	fixture_std(&f);
	memset(&c, 0, sizeof(c));
	c.dns_port = 15353; /* the caller's fields stay */
	policy_compiled_nft(f.pc, &c);
	ck_assert_uint_eq(c.dns_port, 15353);
	ck_assert(c.filter);
	ck_assert(!c.default_accept);
	ck_assert(!c.ipv6_deny);
	a = policy_compiled_addrs(f.pc, POLICY_COMPILED_DENY, NULL, &n);
	ck_assert_ptr_eq(c.deny, a);
	ck_assert_uint_eq(c.n_deny, n);
	a = policy_compiled_addrs(f.pc, POLICY_COMPILED_ALLOW, NULL, &n);
	ck_assert_ptr_eq(c.allow, a);
	ck_assert_uint_eq(c.n_allow, 4);
	/* the same exceptions as the BPF set: full prefixes only */
	ck_assert_uint_eq(c.n_doh_exceptions, 2);
	policy_compiled_bpf(f.pc, 1, &bp);
	ck_assert_uint_eq(bp.n[BPFSYNC_SET_DOH_ALLOW], c.n_doh_exceptions);
	for (n = 0; n < c.n_doh_exceptions; n++) {
		ck_assert_uint_eq(c.doh_exceptions[n].prefixlen, 32);
		ck_assert_uint_eq(bp.set[BPFSYNC_SET_DOH_ALLOW][n].prefixlen,
				  32);
		ck_assert_mem_eq(bp.set[BPFSYNC_SET_DOH_ALLOW][n].addr,
				 c.doh_exceptions[n].addr, 4);
	}
	/* The whole DoH list, the built-in providers included. */
	a = policy_compiled_addrs(f.pc, POLICY_COMPILED_DOH, NULL, &n);
	ck_assert_ptr_eq(c.doh, a);
	ck_assert_uint_eq(c.n_doh, n);
	doh_provider_addrs(&nb);
	ck_assert_uint_eq(c.n_doh, nb);
	ck_assert(!c.block_all_443);
	ck_assert_uint_eq(c.n_upstreams, 1);
	ck_assert_str_eq(text(&c.upstreams[0], buf, sizeof(buf)), "9.9.9.9/32");
	fixture_free(&f);
}
END_TEST

START_TEST(test_compiled_doh_blocklist)
{
	struct nftsync_config c;
	const char *const *ign;
	const uint32_t *r;
	size_t n, nb, ni;
	char buf[64];
	struct fixture f;

	memset(&f, 0, sizeof(f));
	f.p = parse("{}");
	f.cfg.doh_blocklist = (char *)"192.0.2.1, not-an-ip,,2001:db8::53 ,"
				      " 198.18.0.0/15";
	fixture_compile(&f);
	doh_provider_addrs(&nb);
	policy_compiled_addrs(f.pc, POLICY_COMPILED_DOH, &r, &n);
	ck_assert_uint_eq(n, nb + 3);
	ck_assert_str_eq(rname(r[0]), "doh.builtin[0]");
	ck_assert_str_eq(rname(r[nb]), "doh.blocklist[0]");
	/* Entries are numbered as written, the ignored one included. */
	ck_assert_str_eq(rname(r[nb + 1]), "doh.blocklist[2]");
	ck_assert_str_eq(rname(r[nb + 2]), "doh.blocklist[3]");
	ign = policy_compiled_ignored(f.pc, &ni);
	ck_assert_uint_eq(ni, 1);
	ck_assert_str_eq(ign[0], "not-an-ip");
	memset(&c, 0, sizeof(c));
	policy_compiled_nft(f.pc, &c);
	ck_assert_uint_eq(c.n_doh, nb + 3);
	ck_assert_str_eq(text(&c.doh[nb], buf, sizeof(buf)), "192.0.2.1/32");
	ck_assert_str_eq(text(&c.doh[nb + 2], buf, sizeof(buf)),
			 "198.18.0.0/15");
	ck_assert(!c.block_all_443);
	fixture_free(&f);
}
END_TEST

/*
 * BLOCK_DOH_443 blocks every 443 only without a blocklist address: a
 * blocklist of names only (all ignored) leaves it "strict".
 */
START_TEST(test_compiled_block_all_443)
{
	static const char *const lists[] = { NULL, "", "not-an-ip, ,",
					     "192.0.2.1", "x, 2001:db8::/32" };
	static const bool all[] = { true, true, true, false, false };
	struct nftsync_config c;
	struct fixture f;
	size_t i;
	int blk;

	for (blk = 0; blk < 2; blk++) {
		for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
			memset(&f, 0, sizeof(f));
			f.p = parse("{}");
			f.cfg.block_doh_443 = blk;
			f.cfg.doh_blocklist = (char *)lists[i];
			fixture_compile(&f);
			memset(&c, 0, sizeof(c));
			policy_compiled_nft(f.pc, &c);
			ck_assert_msg(c.block_all_443 == (blk && all[i]),
				      "block_doh_443=%d blocklist '%s'", blk,
				      lists[i] ? lists[i] : "(unset)");
			fixture_free(&f);
		}
	}
}
END_TEST

START_TEST(test_compiled_bpf_projection)
{
	struct bpfsync_policy bp;
	const struct bpfsync_prefix *d;
	size_t nb;
	struct fixture f;

	fixture_std(&f);
	policy_compiled_bpf(f.pc, 42, &bp);
	ck_assert_uint_eq(bp.generation, 42);
	ck_assert(!bp.default_allow);
	ck_assert(!bp.ipv6_deny);
	ck_assert_uint_eq(bp.n[BPFSYNC_SET_DENY], 4);
	d = bp.set[BPFSYNC_SET_DENY];
	ck_assert_uint_eq(d[0].family, AF_INET);
	ck_assert_uint_eq(d[0].prefixlen, 24);
	ck_assert_uint_eq(d[0].rule,
			  EGRESSD_RULE_ID(EGRESSD_RULE_DENY_ALWAYS, 1));
	ck_assert_uint_eq(d[3].family, AF_INET6);
	ck_assert_uint_eq(d[3].rule, 4);
	ck_assert_uint_eq(bp.n[BPFSYNC_SET_ALLOW], 4);
	ck_assert_uint_eq(bp.set[BPFSYNC_SET_ALLOW][1].rule, 2);
	/* DoH exceptions: only the allow rules naming one address. */
	ck_assert_uint_eq(bp.n[BPFSYNC_SET_DOH_ALLOW], 2);
	ck_assert_uint_eq(bp.set[BPFSYNC_SET_DOH_ALLOW][0].rule, 2);
	ck_assert_uint_eq(bp.set[BPFSYNC_SET_DOH_ALLOW][1].rule, 5);
	/* The DoH set holds the built-in list, unlike nftables' doh. */
	doh_provider_addrs(&nb);
	ck_assert_uint_eq(bp.n[BPFSYNC_SET_DOH], nb);
	ck_assert_uint_eq(bp.set[BPFSYNC_SET_DOH][0].rule,
			  EGRESSD_RULE_ID(EGRESSD_RULE_DOH_BUILTIN, 0));
	fixture_free(&f);
}
END_TEST

START_TEST(test_compiled_settings)
{
	struct bpfsync_policy bp;
	struct nftsync_config c;
	struct fixture f;

	memset(&f, 0, sizeof(f));
	f.p = parse("{\"defaultAction\":\"allow\"}");
	f.cfg.mode = EGRESSD_MODE_DNS;
	f.cfg.ipv6 = EGRESSD_IPV6_DENY;
	f.cfg.block_doh_443 = true;
	fixture_compile(&f);
	memset(&c, 0, sizeof(c));
	policy_compiled_nft(f.pc, &c);
	ck_assert(!c.filter);
	ck_assert(c.default_accept);
	ck_assert(c.ipv6_deny);
	ck_assert(c.block_all_443);
	ck_assert_uint_eq(c.n_allow + c.n_deny + c.n_doh_exceptions, 0);
	policy_compiled_bpf(f.pc, 1, &bp);
	ck_assert(bp.default_allow);
	ck_assert(bp.ipv6_deny);
	fixture_free(&f);

	/* No user policy: deny-all, the always-rules still apply. */
	memset(&f, 0, sizeof(f));
	always("203.0.113.9\n", POLICY_DENY, &f.deny, &f.n_deny);
	fixture_compile(&f);
	policy_compiled_bpf(f.pc, 1, &bp);
	ck_assert(!bp.default_allow);
	ck_assert_uint_eq(bp.n[BPFSYNC_SET_DENY], 1);
	fixture_free(&f);
}
END_TEST

static uint32_t lookup(const struct policy_compiled *pc,
		       enum policy_compiled_list list, const char *ip)
{
	uint8_t a[16] = { 0 };
	int af = strchr(ip, ':') ? AF_INET6 : AF_INET;

	ck_assert_int_eq(inet_pton(af, ip, a), 1);
	return policy_compiled_lookup(pc, list, af, a);
}

START_TEST(test_compiled_lookup_longest_prefix)
{
	struct fixture f;

	fixture_std(&f);
	/* 10.1.0.0/16 (deny.always[2]) inside 10.0.0.0/8 (egress[1]). */
	ck_assert_str_eq(rname(lookup(f.pc, POLICY_COMPILED_DENY, "10.1.2.3")),
			 "deny.always[2]");
	ck_assert_str_eq(rname(lookup(f.pc, POLICY_COMPILED_DENY, "10.2.0.1")),
			 "egress[1]");
	ck_assert_str_eq(
		rname(lookup(f.pc, POLICY_COMPILED_DENY, "203.0.113.255")),
		"deny.always[1]");
	ck_assert_str_eq(
		rname(lookup(f.pc, POLICY_COMPILED_DENY, "2001:db8:1::1")),
		"egress[4]");
	/* IPv4-mapped IPv6 is the IPv4 address. */
	ck_assert_str_eq(
		rname(lookup(f.pc, POLICY_COMPILED_DENY, "::ffff:10.9.9.9")),
		"egress[1]");
	ck_assert_str_eq(rname(lookup(f.pc, POLICY_COMPILED_ALLOW, "5.6.7.8")),
			 "egress[5]");
	ck_assert_uint_eq(lookup(f.pc, POLICY_COMPILED_DENY, "11.0.0.1"),
			  EGRESSD_RULE_NONE);
	ck_assert_uint_eq(lookup(f.pc, POLICY_COMPILED_DENY, "2001:db9::1"),
			  EGRESSD_RULE_NONE);
	ck_assert_uint_eq(lookup(f.pc, POLICY_COMPILED_DOH_EXC, "198.51.100.7"),
			  EGRESSD_RULE_NONE);
	ck_assert_uint_eq(policy_compiled_lookup(NULL, POLICY_COMPILED_DENY,
						 AF_INET, "\x0a\0\0\1"),
			  EGRESSD_RULE_NONE);
	fixture_free(&f);
}
END_TEST

START_TEST(test_compiled_lookup_first_of_equal_prefixes)
{
	struct fixture f;

	/* The same network from deny.always and twice from the user: the
	 * BPF map keeps the first (bpfsync), and so does the lookup. */
	memset(&f, 0, sizeof(f));
	f.p = parse("{\"egress\":["
		    "{\"action\":\"deny\",\"target\":\"203.0.113.0/24\"},"
		    "{\"action\":\"deny\",\"target\":\"10.0.0.0/8\"},"
		    "{\"action\":\"deny\",\"target\":\"10.0.0.0/8\"}]}");
	always("10.0.0.0/8\n", POLICY_DENY, &f.deny, &f.n_deny);
	fixture_compile(&f);
	ck_assert_str_eq(rname(lookup(f.pc, POLICY_COMPILED_DENY, "10.0.0.1")),
			 "deny.always[0]");
	ck_assert_str_eq(
		rname(lookup(f.pc, POLICY_COMPILED_DENY, "203.0.113.1")),
		"egress[0]");
	fixture_free(&f);
}
END_TEST

START_TEST(test_compiled_lookup_doh)
{
	const char *const *b;
	struct fixture f;
	size_t nb;
	uint8_t a[16];
	int af;

	memset(&f, 0, sizeof(f));
	f.p = parse("{}");
	f.cfg.doh_blocklist = (char *)"192.0.2.0/24";
	fixture_compile(&f);
	ck_assert_str_eq(rname(lookup(f.pc, POLICY_COMPILED_DOH, "192.0.2.9")),
			 "doh.blocklist[0]");
	b = doh_provider_addrs(&nb);
	ck_assert_uint_gt(nb, 0);
	af = strchr(b[0], ':') ? AF_INET6 : AF_INET;
	ck_assert_int_eq(inet_pton(af, b[0], a), 1);
	ck_assert_str_eq(
		rname(policy_compiled_lookup(f.pc, POLICY_COMPILED_DOH, af, a)),
		"doh.builtin[0]");
	fixture_free(&f);
}
END_TEST

START_TEST(test_compiled_matcher_judges_names)
{
	const struct policy_matcher *m;
	struct policy_match pm;
	struct fixture f;

	fixture_std(&f);
	m = policy_compiled_matcher(f.pc);
	policy_matcher_lookup(m, "api.github.com", 14, &pm);
	ck_assert_int_eq(pm.action, POLICY_ALLOW);
	policy_matcher_lookup(m, "evil.example", 12, &pm);
	ck_assert_int_eq(pm.action, POLICY_DENY);
	ck_assert_int_eq(pm.origin, POLICY_ORIGIN_DENY_ALWAYS);
	policy_matcher_lookup(m, "ok.example", 10, &pm);
	ck_assert_int_eq(pm.action, POLICY_ALLOW);
	policy_matcher_lookup(m, "other.example", 13, &pm);
	ck_assert_int_eq(pm.action, POLICY_DENY);
	ck_assert(!pm.matched);
	fixture_free(&f);
}
END_TEST

START_TEST(test_compiled_inputs_may_go)
{
	struct policy_match pm;
	struct bpfsync_policy bp;
	struct fixture f;

	/* The compiled policy copies what it needs. */
	fixture_std(&f);
	policy_free(f.p);
	policy_rules_free(f.deny, f.n_deny);
	policy_rules_free(f.allow, f.n_allow);
	memset(&f.cfg, 0xa5, sizeof(f.cfg));
	f.p = NULL;
	f.deny = f.allow = NULL;
	f.n_deny = f.n_allow = 0;
	policy_matcher_lookup(policy_compiled_matcher(f.pc), "api.github.com",
			      14, &pm);
	ck_assert_int_eq(pm.action, POLICY_ALLOW);
	policy_compiled_bpf(f.pc, 3, &bp);
	ck_assert_uint_eq(bp.n[BPFSYNC_SET_DENY], 4);
	ck_assert_str_eq(rname(lookup(f.pc, POLICY_COMPILED_DENY, "10.1.2.3")),
			 "deny.always[2]");
	fixture_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("compiled");
	TCase *tc = tcase_create("compiled");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_compiled_lists_carry_rule_ids);
	tcase_add_test(tc, test_compiled_user_rule_id_is_its_index);
	tcase_add_test(tc, test_compiled_rule_name_none);
	tcase_add_test(tc, test_compiled_nft_projection);
	tcase_add_test(tc, test_compiled_doh_blocklist);
	tcase_add_test(tc, test_compiled_block_all_443);
	tcase_add_test(tc, test_compiled_bpf_projection);
	tcase_add_test(tc, test_compiled_settings);
	tcase_add_test(tc, test_compiled_lookup_longest_prefix);
	tcase_add_test(tc, test_compiled_lookup_first_of_equal_prefixes);
	tcase_add_test(tc, test_compiled_lookup_doh);
	tcase_add_test(tc, test_compiled_matcher_judges_names);
	tcase_add_test(tc, test_compiled_inputs_may_go);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
