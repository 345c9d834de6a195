// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for the policy module: JSON parsing and its error messages,
 * target normalisation, rule-count limits, always-rules files, rendering
 * back to JSON, and the compiled matcher (precedence, wildcards, case and
 * trailing dots, escaped names), including a 10,000-rule matcher checked
 * against a linear first-match reference. No root, no network.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "egressd/policy.h"

#define ERRLEN 512

/* Parse s (NUL-terminated) and expect success. */
static struct policy *parse_ok(const char *s, size_t max_rules)
{
	struct policy *p = NULL;
	char err[ERRLEN] = "";
	int ret;

	ret = policy_parse_json(s, strlen(s), max_rules, &p, err, sizeof(err));
	ck_assert_msg(ret == 0, "parse of %s failed: %d %s", s, ret, err);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* Parse s, expect ret, return the error text in err. */
static void parse_fail(const char *s, int want, char *err, size_t errlen)
{
	struct policy *p = (struct policy *)0x1;
	int ret;

	err[0] = '\0';
	ret = policy_parse_json(s, strlen(s), 0, &p, err, errlen);
	ck_assert_msg(ret == want, "parse of %s: got %d (%s), want %d", s, ret,
		      err, want);
	ck_assert_ptr_null(p);
}

static struct policy_match lookup(const struct policy_matcher *m,
				  const char *name)
{
	struct policy_match r;

	memset(&r, 0xa5, sizeof(r));
	policy_matcher_lookup(m, name, strlen(name), &r);
	return r;
}

static struct policy_matcher *matcher_for(const char *json)
{
	struct policy *p = parse_ok(json, 0);
	struct policy_matcher *m;

	ck_assert_int_eq(policy_matcher_new(&m, p, NULL, 0, NULL, 0), 0);
	policy_free(p);
	return m;
}

static void rule_of(const char *target, struct policy_rule *r)
{
	char err[ERRLEN] = "";
	int ret;

	memset(r, 0, sizeof(*r));
	ret = policy_parse_target(target, r, err, sizeof(err));
	ck_assert_msg(ret == 0, "target %s: %d %s", target, ret, err);
}

/* ---- defaults --------------------------------------------------------- */

START_TEST(test_policy_empty_inputs_deny)
{
	static const char *const inputs[] = {
		"",
		"   \n\t ",
		"null",
		" null ",
		"{}",
		" { } ",
		"{\"egress\":null}",
		"{\"defaultAction\":null}",
		"{\"defaultAction\":\"\"}",
		"{\"defaultAction\":\"  \"}",
		"{\"egress\":[]}",
	};
	size_t i;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct policy *p = parse_ok(inputs[i], 0);

		ck_assert_msg(p->default_action == POLICY_DENY, "%s",
			      inputs[i]);
		ck_assert_uint_eq(p->n_rules, 0);
		policy_free(p);
	}
}
END_TEST

START_TEST(test_policy_null_buffer_zero_len_denies)
{
	struct policy *p = NULL;
	char err[ERRLEN];

	ck_assert_int_eq(policy_parse_json(NULL, 0, 0, &p, err, sizeof(err)),
			 0);
	ck_assert_int_eq(p->default_action, POLICY_DENY);
	ck_assert_uint_eq(p->n_rules, 0);
	policy_free(p);
}
END_TEST

START_TEST(test_policy_default_action_trimmed_case_insensitive)
{
	struct policy *p = parse_ok("{\"defaultAction\":\"  ALLOW \"}", 0);

	ck_assert_int_eq(p->default_action, POLICY_ALLOW);
	policy_free(p);
	p = parse_ok("{\"defaultAction\":\"Deny\"}", 0);
	ck_assert_int_eq(p->default_action, POLICY_DENY);
	policy_free(p);
}
END_TEST

START_TEST(test_policy_missing_or_empty_action_denies)
{
	struct policy *p =
		parse_ok("{\"defaultAction\":\"allow\",\"egress\":["
			 "{\"target\":\"a.com\"},"
			 "{\"action\":\"\",\"target\":\"b.com\"},"
			 "{\"action\":null,\"target\":\"c.com\"},"
			 "{\"action\":\" aLLow\\t\",\"target\":\"d.com\"}]}",
			 0);

	ck_assert_uint_eq(p->n_rules, 4);
	ck_assert_int_eq(p->rules[0].action, POLICY_DENY);
	ck_assert_int_eq(p->rules[1].action, POLICY_DENY);
	ck_assert_int_eq(p->rules[2].action, POLICY_DENY);
	ck_assert_int_eq(p->rules[3].action, POLICY_ALLOW);
	ck_assert_int_eq(p->default_action, POLICY_ALLOW);
	policy_free(p);
}
END_TEST

/* Keys are case-insensitive; an unknown key in a rule is ignored (an
 * unknown top-level key is an error: err_cases). */
START_TEST(test_policy_keys_case_insensitive_rule_unknown_ignored)
{
	struct policy *p = parse_ok(
		"{\"DEFAULTACTION\":\"allow\","
		"\"Egress\":[{\"ACTION\":\"allow\",\"Target\":\"x.com\","
		"\"comment\":[1,2]}]}",
		0);

	ck_assert_int_eq(p->default_action, POLICY_ALLOW);
	ck_assert_uint_eq(p->n_rules, 1);
	ck_assert_int_eq(p->rules[0].action, POLICY_ALLOW);
	ck_assert_str_eq(p->rules[0].target, "x.com");
	policy_free(p);
}
END_TEST

START_TEST(test_policy_repeated_key_last_wins)
{
	struct policy *p = parse_ok(
		"{\"defaultAction\":\"deny\",\"DefaultAction\":\"allow\"}", 0);

	ck_assert_int_eq(p->default_action, POLICY_ALLOW);
	policy_free(p);
}
END_TEST

/* ---- parse errors ----------------------------------------------------- */

struct err_case {
	const char *json;
	int ret;
	const char *want; /* substring of the message */
};

/* Wrap one target in a policy whose rule under test is egress[1]. */
#define T1(t)                                                        \
	"{\"egress\":[{\"action\":\"allow\",\"target\":\"ok.com\"}," \
	"{\"action\":\"allow\",\"target\":\"" t "\"}]}"

static const struct err_case err_cases[] = {
	{ "{", -EINVAL, "invalid JSON at line 1" },
	{ "{\"egress\":[}", -EINVAL, "invalid JSON" },
	{ "[]", -EINVAL, "policy must be a JSON object, got array" },
	{ "\"allow\"", -EINVAL, "policy must be a JSON object, got string" },
	{ "42", -EINVAL, "policy must be a JSON object, got number" },
	{ "{\"defaultAction\":\"block\"}", -EINVAL,
	  "defaultAction \"block\": must be \"allow\" or \"deny\"" },
	{ "{\"defaultAction\":1}", -EINVAL,
	  "defaultAction: must be a string, got number" },
	{ "{\"egress\":{}}", -EINVAL, "egress: must be an array, got object" },
	/* A misspelt key would otherwise mean zero rules. */
	{ "{\"defaultAction\":\"deny\",\"egres\":[{\"action\":\"allow\","
	  "\"target\":\"a.com\"}]}",
	  -EINVAL,
	  "unknown key \"egres\": a policy has only \"defaultAction\" and "
	  "\"egress\"" },
	{ "{\"egress\":[],\"require_full_isolation\":true}", -EINVAL,
	  "unknown key \"require_full_isolation\"" },
	{ "{\"policy\":{\"egress\":[]}}", -EINVAL, "unknown key \"policy\"" },
	{ "{\"egress\":\"a.com\"}", -EINVAL,
	  "egress: must be an array, got string" },
	{ "{\"egress\":[{\"target\":\"a.com\"},\"b.com\"]}", -EINVAL,
	  "egress[1]: must be an object, got string" },
	{ "{\"egress\":[null]}", -EINVAL,
	  "egress[0]: must be an object, got null" },
	{ "{\"egress\":[{\"target\":\"a.com\"},{\"target\":\"b.com\"},"
	  "{\"action\":\"permit\",\"target\":\"c.com\"}]}",
	  -EINVAL,
	  "egress[2]: action \"permit\": must be \"allow\" or \"deny\"" },
	{ "{\"egress\":[{\"action\":true,\"target\":\"c.com\"}]}", -EINVAL,
	  "egress[0]: action must be a string, got boolean" },
	{ "{\"egress\":[{\"action\":\"allow\"}]}", -EINVAL,
	  "egress[0]: target is missing" },
	{ "{\"egress\":[{\"target\":null}]}", -EINVAL,
	  "egress[0]: target is missing" },
	{ "{\"egress\":[{\"target\":5}]}", -EINVAL,
	  "egress[0]: target must be a string, got number" },
	{ T1(""), -EINVAL, "egress[1]: target is empty" },
	{ T1("  \\t "), -EINVAL, "egress[1]: target is empty" },
	{ T1("*"), -EINVAL, "egress[1]: malformed wildcard \"*\"" },
	{ T1("*."), -EINVAL, "egress[1]: malformed wildcard \"*.\"" },
	{ T1("*.."), -EINVAL, "egress[1]: malformed wildcard" },
	{ T1("a.*.com"), -EINVAL, "egress[1]: malformed wildcard \"a.*.com\"" },
	{ T1("*foo.com"), -EINVAL,
	  "egress[1]: malformed wildcard \"*foo.com\"" },
	{ T1("**.x.com"), -EINVAL,
	  "egress[1]: malformed wildcard \"**.x.com\"" },
	{ T1("*.*.com"), -EINVAL, "egress[1]: malformed wildcard" },
	{ T1("a*.com"), -EINVAL, "egress[1]: malformed wildcard" },
	{ T1("exa mple.com"), -EINVAL,
	  "egress[1]: invalid domain name \"exa mple.com\": invalid character \" \"" },
	{ T1("a/b.com"), -EINVAL, "egress[1]: invalid CIDR" },
	{ T1("http://a.com"), -EINVAL, "egress[1]: invalid" },
	{ T1("a\\\\.b.com"), -EINVAL, "egress[1]: invalid domain name" },
	{ T1("caf\\u00e9.com"), -EINVAL,
	  "egress[1]: invalid domain name \"caf\\xc3\\xa9.com\": invalid character" },
	{ T1("-a.com"), -EINVAL,
	  "egress[1]: invalid domain name \"-a.com\": label \"-a\" starts with a hyphen" },
	{ T1("a-.com"), -EINVAL, "label \"a-\" ends with a hyphen" },
	{ T1("*.-x.com"), -EINVAL, "starts with a hyphen" },
	{ T1("a..com"), -EINVAL,
	  "egress[1]: invalid domain name \"a..com\": empty label" },
	{ T1(".com"), -EINVAL, "empty label" },
	{ T1("."), -EINVAL, "empty label" },
	{ T1("a.com.."), -EINVAL, "empty label" },
	{ T1("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     ".com"),
	  -EINVAL, "egress[1]: invalid domain name" },
	{ T1("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     ".com"),
	  -EINVAL, "longer than 63 characters" },
	{ T1("1.2.3"), -EINVAL,
	  "egress[1]: ambiguous target \"1.2.3\": all-numeric last label" },
	{ T1("10.0.0.256"), -EINVAL, "ambiguous target" },
	{ T1("01.2.3.4"), -EINVAL, "ambiguous target" },
	{ T1("1.2.3.4."), -EINVAL, "ambiguous target" },
	{ T1("123"), -EINVAL, "ambiguous target" },
	{ T1("*.10"), -EINVAL, "ambiguous target" },
	{ T1("fe80::1%eth0"), -EINVAL,
	  "egress[1]: zoned IPv6 address \"fe80::1%eth0\" not allowed" },
	{ T1("fe80::1%eth0/64"), -EINVAL, "egress[1]: zoned IPv6 address" },
	{ T1("2001:db8::g"), -EINVAL,
	  "egress[1]: invalid IPv6 address \"2001:db8::g\"" },
	{ T1("[2001:db8::1]"), -EINVAL, "egress[1]: invalid IPv6 address" },
	{ T1("10.0.0.0/33"), -EINVAL,
	  "egress[1]: invalid CIDR \"10.0.0.0/33\": bad prefix length \"33\" (IPv4 allows 0-32)" },
	{ T1("2001:db8::/129"), -EINVAL,
	  "bad prefix length \"129\" (IPv6 allows 0-128)" },
	{ T1("10.0.0.0/"), -EINVAL, "bad prefix length \"\"" },
	{ T1("10.0.0.0/08"), -EINVAL, "bad prefix length \"08\"" },
	{ T1("10.0.0.0/-1"), -EINVAL, "bad prefix length \"-1\"" },
	{ T1("10.0.0.0/8/8"), -EINVAL, "bad prefix length" },
	{ T1("10.0.0.0/ 8"), -EINVAL, "bad prefix length" },
	{ T1("example.com/24"), -EINVAL,
	  "egress[1]: invalid CIDR \"example.com/24\": address part" },
};

START_TEST(test_policy_parse_error_messages)
{
	const struct err_case *c = &err_cases[_i];
	char err[ERRLEN];

	parse_fail(c->json, c->ret, err, sizeof(err));
	ck_assert_msg(strstr(err, c->want),
		      "case %d %s:\n got  '%s'\n want '%s'", _i, c->json, err,
		      c->want);
}
END_TEST

START_TEST(test_policy_parse_error_exact_texts)
{
	char err[ERRLEN];

	parse_fail("{\"defaultAction\":\"block\"}", -EINVAL, err, sizeof(err));
	ck_assert_str_eq(
		err, "defaultAction \"block\": must be \"allow\" or \"deny\"");
	parse_fail("{\"egress\":[{\"target\":\"a.com\"},{\"target\":\"b.com\"},"
		   "{\"action\":\"permit\",\"target\":\"c.com\"}]}",
		   -EINVAL, err, sizeof(err));
	ck_assert_str_eq(
		err,
		"egress[2]: action \"permit\": must be \"allow\" or \"deny\"");
	parse_fail(T1("a.*.com"), -EINVAL, err, sizeof(err));
	ck_assert_str_eq(
		err,
		"egress[1]: malformed wildcard \"a.*.com\": '*' is only allowed as the whole first label, as in \"*.example.com\"");
	/* A target is never cut at an embedded NUL (it would widen a rule
	 * to a name nobody wrote). */
	parse_fail(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"api.github.com\\u0000.evil\"}]}",
		-EINVAL, err, sizeof(err));
	ck_assert_ptr_nonnull(strstr(err, "is not allowed"));
}
END_TEST

START_TEST(test_policy_name_length_limits)
{
	char name[300], json[400], err[ERRLEN];
	struct policy_rule r;
	struct policy *p;

	/* 253 characters: 3 x 63 + 62 + 3 dots = 253. */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	snprintf(json, sizeof(json), "{\"egress\":[{\"target\":\"%s\"}]}",
		 name);
	p = parse_ok(json, 0);
	ck_assert_uint_eq(strlen(p->rules[0].name), 253);
	policy_free(p);
	/* Trailing dot does not count. */
	strcpy(name + 253, ".");
	snprintf(json, sizeof(json), "{\"egress\":[{\"target\":\"%s\"}]}",
		 name);
	p = parse_ok(json, 0);
	policy_free(p);
	/* 254 is too long. */
	strcpy(name + 253, "a");
	snprintf(json, sizeof(json), "{\"egress\":[{\"target\":\"%s\"}]}",
		 name);
	parse_fail(json, -EINVAL, err, sizeof(err));
	ck_assert_ptr_nonnull(strstr(err, "egress[0]: invalid domain name"));
	ck_assert_ptr_nonnull(strstr(err, "longer than 253 characters"));
	/* The quoted name in the message is cut short. */
	ck_assert_ptr_nonnull(strstr(err, "...\""));
	ck_assert_uint_lt(strlen(err), 200);
	/* A wildcard counts its "*." too. */
	name[0] = '*';
	name[1] = '.';
	name[253] = '\0';
	rule_of(name, &r); /* 253 including "*." */
	ck_assert_int_eq(r.kind, POLICY_KIND_WILDCARD);
	ck_assert_uint_eq(strlen(r.name), 251);
	free(r.target);
	free(r.name);
	strcpy(name + 253, "a");
	ck_assert_int_eq(policy_parse_target(name, &r, err, sizeof(err)),
			 -EINVAL);
}
END_TEST

START_TEST(test_policy_parse_target_direct_errors)
{
	struct policy_rule r;
	char err[ERRLEN];

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(policy_parse_target("", &r, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "target is empty");
	ck_assert_int_eq(policy_parse_target(NULL, &r, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(policy_parse_target("a_b..c", &r, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "invalid domain name \"a_b..c\": empty label");
	ck_assert_ptr_null(r.target);
	ck_assert_ptr_null(r.name);
	/* No err buffer: still fails cleanly. */
	ck_assert_int_eq(policy_parse_target("*", &r, NULL, 0), -EINVAL);
}
END_TEST

/* ---- normalisation ---------------------------------------------------- */

struct norm_case {
	const char *target;
	enum policy_kind kind;
	const char *name;
	int family; /* 0 for names */
	int prefixlen;
};

static const struct norm_case norm_cases[] = {
	{ "Example.COM", POLICY_KIND_DOMAIN, "example.com", 0, 0 },
	{ "example.com.", POLICY_KIND_DOMAIN, "example.com", 0, 0 },
	{ "  API.Example.com.  ", POLICY_KIND_DOMAIN, "api.example.com", 0, 0 },
	{ "*.Example.COM.", POLICY_KIND_WILDCARD, "example.com", 0, 0 },
	{ "*.com", POLICY_KIND_WILDCARD, "com", 0, 0 },
	{ "localhost", POLICY_KIND_DOMAIN, "localhost", 0, 0 },
	{ "_dmarc.example.com", POLICY_KIND_DOMAIN, "_dmarc.example.com", 0,
	  0 },
	{ "a_.b-c.d1", POLICY_KIND_DOMAIN, "a_.b-c.d1", 0, 0 },
	{ "1.2.3.example", POLICY_KIND_DOMAIN, "1.2.3.example", 0, 0 },
	{ "*.1.168.192.in-addr.arpa", POLICY_KIND_WILDCARD,
	  "1.168.192.in-addr.arpa", 0, 0 },
	{ "xn--caf-dma.com", POLICY_KIND_DOMAIN, "xn--caf-dma.com", 0, 0 },
	{ "1.2.3.4", POLICY_KIND_IP, "1.2.3.4", AF_INET, 32 },
	{ "10.0.0.1/8", POLICY_KIND_CIDR, "10.0.0.0/8", AF_INET, 8 },
	{ "192.168.1.77/24", POLICY_KIND_CIDR, "192.168.1.0/24", AF_INET, 24 },
	{ "172.16.255.255/12", POLICY_KIND_CIDR, "172.16.0.0/12", AF_INET, 12 },
	{ "1.2.3.4/32", POLICY_KIND_CIDR, "1.2.3.4/32", AF_INET, 32 },
	{ "0.0.0.0/0", POLICY_KIND_CIDR, "0.0.0.0/0", AF_INET, 0 },
	{ "2001:DB8:0:0::1", POLICY_KIND_IP, "2001:db8::1", AF_INET6, 128 },
	{ "2001:db8::1/32", POLICY_KIND_CIDR, "2001:db8::/32", AF_INET6, 32 },
	{ "2001:db8:ffff::1/33", POLICY_KIND_CIDR, "2001:db8:8000::/33",
	  AF_INET6, 33 },
	{ "::/0", POLICY_KIND_CIDR, "::/0", AF_INET6, 0 },
	{ "::ffff:1.2.3.4", POLICY_KIND_IP, "1.2.3.4", AF_INET, 32 },
	{ "::FFFF:102:304", POLICY_KIND_IP, "1.2.3.4", AF_INET, 32 },
	{ "::ffff:10.0.0.0/104", POLICY_KIND_CIDR, "10.0.0.0/8", AF_INET, 8 },
	{ "::ffff:10.9.8.7/104", POLICY_KIND_CIDR, "10.0.0.0/8", AF_INET, 8 },
	{ "::ffff:0:0/96", POLICY_KIND_CIDR, "0.0.0.0/0", AF_INET, 0 },
	{ "::ffff:1.2.3.4/80", POLICY_KIND_CIDR, "::/80", AF_INET6, 80 },
};

START_TEST(test_policy_target_normalisation)
{
	const struct norm_case *c = &norm_cases[_i];
	struct policy_rule r;
	char err[ERRLEN] = "";
	int ret;

	memset(&r, 0, sizeof(r));
	ret = policy_parse_target(c->target, &r, err, sizeof(err));
	ck_assert_msg(ret == 0, "%s: %s", c->target, err);
	ck_assert_msg(r.kind == c->kind, "%s: kind %d", c->target, r.kind);
	ck_assert_str_eq(r.name, c->name);
	if (c->family) {
		uint8_t want[16] = { 0 };
		const char *slash = strchr(c->name, '/');
		char a[64];

		snprintf(a, sizeof(a), "%.*s",
			 slash ? (int)(slash - c->name) : (int)strlen(c->name),
			 c->name);
		ck_assert_int_eq(inet_pton(c->family, a, want), 1);
		ck_assert_int_eq(r.addr.family, c->family);
		ck_assert_int_eq(r.addr.prefixlen, c->prefixlen);
		ck_assert_mem_eq(r.addr.addr, want, 16);
	} else {
		ck_assert_int_eq(r.addr.family, 0);
	}
	free(r.target);
	free(r.name);
}
END_TEST

START_TEST(test_policy_target_kept_as_given_trimmed)
{
	struct policy *p = parse_ok(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"  Example.COM. \"},"
		"{\"action\":\"deny\",\"target\":\"\\t10.0.0.1/8\"}]}",
		0);

	ck_assert_str_eq(p->rules[0].target, "Example.COM.");
	ck_assert_str_eq(p->rules[0].name, "example.com");
	ck_assert_str_eq(p->rules[1].target, "10.0.0.1/8");
	ck_assert_str_eq(p->rules[1].name, "10.0.0.0/8");
	policy_free(p);
}
END_TEST

/* ---- limits ----------------------------------------------------------- */

static char *many_rules_json(size_t n)
{
	size_t cap = 64 + n * 48, o = 0, i;
	char *s = malloc(cap);

	ck_assert_ptr_nonnull(s);
	o += snprintf(s + o, cap - o, "{\"egress\":[");
	for (i = 0; i < n; i++)
		o += snprintf(
			s + o, cap - o,
			"%s{\"action\":\"allow\",\"target\":\"h%zu.com\"}",
			i ? "," : "", i);
	snprintf(s + o, cap - o, "]}");
	return s;
}

/* A copy owns its own strings: freeing the original leaves it intact. */
START_TEST(test_policy_rule_copy_deep)
{
	struct policy_rule src, dst;

	rule_of("*.Example.com", &src);
	src.action = POLICY_ALLOW;
	ck_assert_int_eq(policy_rule_copy(&dst, &src), 0);
	ck_assert_ptr_ne(dst.target, src.target);
	ck_assert_ptr_ne(dst.name, src.name);
	free(src.target);
	free(src.name);
	ck_assert_int_eq(dst.kind, POLICY_KIND_WILDCARD);
	ck_assert_int_eq(dst.action, POLICY_ALLOW);
	ck_assert_str_eq(dst.target, "*.Example.com");
	ck_assert_str_eq(dst.name, "example.com");
	free(dst.target);
	free(dst.name);
}
END_TEST

START_TEST(test_policy_max_rules)
{
	char *json = many_rules_json(5000), err[ERRLEN] = "";
	struct policy *p = NULL;
	size_t len = strlen(json);

	/* 0 is unlimited. */
	ck_assert_int_eq(policy_parse_json(json, len, 0, &p, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(p->n_rules, 5000);
	policy_free(p);
	/* Exactly at the limit. */
	ck_assert_int_eq(
		policy_parse_json(json, len, 5000, &p, err, sizeof(err)), 0);
	policy_free(p);
	/* One over. */
	p = (struct policy *)0x1;
	ck_assert_int_eq(policy_parse_json(json, len, 4999, &p, err,
					   sizeof(err)),
			 -E2BIG);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(err,
			 "egress rule total count 5000 exceeds limit 4999");
	free(json);
}
END_TEST

/* ---- matching --------------------------------------------------------- */

START_TEST(test_policy_wildcard_not_apex)
{
	struct policy_matcher *m = matcher_for(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"*.example.com\"}]}");
	struct policy_match r;

	r = lookup(m, "example.com");
	ck_assert(!r.matched);
	ck_assert_int_eq(r.action, POLICY_DENY);
	r = lookup(m, "a.example.com");
	ck_assert(r.matched);
	ck_assert_int_eq(r.action, POLICY_ALLOW);
	ck_assert_int_eq(r.origin, POLICY_ORIGIN_USER);
	ck_assert_uint_eq(r.index, 0);
	/* Not a label boundary. */
	ck_assert(!lookup(m, "badexample.com").matched);
	ck_assert(!lookup(m, "example.com.evil").matched);
	ck_assert(!lookup(m, ".example.com").matched);
	ck_assert(!lookup(m, "com").matched);
	policy_matcher_free(m);
}
END_TEST

START_TEST(test_policy_wildcard_deep_subdomains)
{
	struct policy_matcher *m = matcher_for(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"*.example.com\"},"
		"{\"action\":\"allow\",\"target\":\"*.b.c.d.e\"}]}");
	char deep[1100];
	size_t i;

	ck_assert(lookup(m, "a.b.c.d.e.f.g.example.com").matched);
	ck_assert(lookup(m, "x.b.c.d.e").matched);
	ck_assert_uint_eq(lookup(m, "x.b.c.d.e").index, 1);
	ck_assert(!lookup(m, "b.c.d.e").matched);
	ck_assert(!lookup(m, "c.d.e").matched);
	/* 120 labels deep. */
	deep[0] = '\0';
	for (i = 0; i < 120; i++)
		strcat(deep, "x.");
	strcat(deep, "example.com");
	ck_assert(lookup(m, deep).matched);
	policy_matcher_free(m);
}
END_TEST

START_TEST(test_policy_query_case_and_trailing_dot)
{
	struct policy_matcher *m = matcher_for(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"API.example.com.\"},"
		"{\"action\":\"allow\",\"target\":\"*.Wild.ORG\"}]}");
	struct policy_match r;

	r = lookup(m, "api.EXAMPLE.Com.");
	ck_assert(r.matched);
	ck_assert_uint_eq(r.index, 0);
	ck_assert(lookup(m, "api.example.com").matched);
	r = lookup(m, "X.y.WILD.org.");
	ck_assert(r.matched);
	ck_assert_uint_eq(r.index, 1);
	/* Only one trailing dot is dropped. */
	ck_assert(!lookup(m, "api.example.com..").matched);
	ck_assert(!lookup(m, "wild.org.").matched);
	policy_matcher_free(m);
}
END_TEST

START_TEST(test_policy_first_match_in_user_rules)
{
	struct policy_matcher *m = matcher_for(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"*.example.com\"},"
		"{\"action\":\"deny\",\"target\":\"api.example.com\"}]}");
	struct policy_match r = lookup(m, "api.example.com");

	/* The peer's TestEvaluate_CompiledIndexKeepsFirstMatchPriority. */
	ck_assert(r.matched);
	ck_assert_int_eq(r.action, POLICY_ALLOW);
	ck_assert_uint_eq(r.index, 0);
	policy_matcher_free(m);

	m = matcher_for(
		"{\"egress\":[{\"action\":\"deny\",\"target\":\"api.example.com\"},"
		"{\"action\":\"allow\",\"target\":\"*.example.com\"}]}");
	r = lookup(m, "api.example.com");
	ck_assert_int_eq(r.action, POLICY_DENY);
	ck_assert_uint_eq(r.index, 0);
	r = lookup(m, "www.example.com");
	ck_assert_int_eq(r.action, POLICY_ALLOW);
	ck_assert_uint_eq(r.index, 1);
	policy_matcher_free(m);

	/* Shorter wildcard first beats a longer, more specific one later. */
	m = matcher_for(
		"{\"egress\":[{\"action\":\"deny\",\"target\":\"*.com\"},"
		"{\"action\":\"allow\",\"target\":\"*.example.com\"},"
		"{\"action\":\"allow\",\"target\":\"a.example.com\"}]}");
	r = lookup(m, "a.example.com");
	ck_assert_int_eq(r.action, POLICY_DENY);
	ck_assert_uint_eq(r.index, 0);
	policy_matcher_free(m);

	/* Duplicates: the first occurrence decides. */
	m = matcher_for(
		"{\"egress\":[{\"action\":\"deny\",\"target\":\"x.com\"},"
		"{\"action\":\"allow\",\"target\":\"X.COM.\"}]}");
	r = lookup(m, "x.com");
	ck_assert_int_eq(r.action, POLICY_DENY);
	ck_assert_uint_eq(r.index, 0);
	policy_matcher_free(m);
}
END_TEST

START_TEST(test_policy_default_action_when_no_match)
{
	struct policy_matcher *m = matcher_for(
		"{\"defaultAction\":\"allow\",\"egress\":["
		"{\"action\":\"deny\",\"target\":\"bad.com\"},"
		"{\"action\":\"deny\",\"target\":\"1.2.3.4\"},"
		"{\"action\":\"deny\",\"target\":\"10.0.0.0/8\"}]}");
	struct policy_match r;

	r = lookup(m, "good.com");
	ck_assert(!r.matched);
	ck_assert_int_eq(r.action, POLICY_ALLOW);
	ck_assert_int_eq(lookup(m, "bad.com").action, POLICY_DENY);
	/* IP and CIDR rules never match names. */
	ck_assert(!lookup(m, "1.2.3.4").matched);
	ck_assert(!lookup(m, "10.0.0.0/8").matched);
	ck_assert(!lookup(m, "").matched);
	ck_assert(!lookup(m, ".").matched);
	policy_matcher_free(m);

	/* No user policy at all: deny. */
	ck_assert_int_eq(policy_matcher_new(&m, NULL, NULL, 0, NULL, 0), 0);
	r = lookup(m, "anything.com");
	ck_assert(!r.matched);
	ck_assert_int_eq(r.action, POLICY_DENY);
	policy_matcher_free(m);
}
END_TEST

START_TEST(test_policy_precedence_always_rules)
{
	struct policy *user =
		parse_ok("{\"defaultAction\":\"deny\",\"egress\":["
			 "{\"action\":\"allow\",\"target\":\"evil.com\"},"
			 "{\"action\":\"deny\",\"target\":\"pypi.org\"},"
			 "{\"action\":\"allow\",\"target\":\"both.com\"},"
			 "{\"action\":\"allow\",\"target\":\"user.com\"}]}",
			 0);
	struct policy_rule deny[2], allow[2];
	struct policy_matcher *m;
	struct policy_match r;

	rule_of("10.0.0.0/8", &deny[0]);
	rule_of("*.evil.com.", &deny[1]);
	rule_of("pypi.org", &allow[0]);
	rule_of("*.both.com", &allow[1]);
	/*
	 * The matcher decides always rules by their list, not by their
	 * action field: give two of them the wrong one.
	 */
	deny[0].action = POLICY_DENY;
	deny[1].action = POLICY_ALLOW;
	allow[0].action = POLICY_DENY;
	allow[1].action = POLICY_ALLOW;
	ck_assert_int_eq(policy_matcher_new(&m, user, deny, 2, allow, 2), 0);
	/* Inputs may be freed: the matcher copied what it needs. */
	policy_free(user);
	free(deny[0].target), free(deny[0].name);
	free(deny[1].target), free(deny[1].name);
	free(allow[0].target), free(allow[0].name);
	free(allow[1].target), free(allow[1].name);

	/* deny.always beats a user allow. */
	r = lookup(m, "a.evil.com");
	ck_assert(r.matched);
	ck_assert_int_eq(r.action, POLICY_DENY);
	ck_assert_int_eq(r.origin, POLICY_ORIGIN_DENY_ALWAYS);
	ck_assert_uint_eq(r.index, 1);
	/* the user allow still applies to the apex. */
	r = lookup(m, "evil.com");
	ck_assert_int_eq(r.action, POLICY_ALLOW);
	ck_assert_int_eq(r.origin, POLICY_ORIGIN_USER);
	ck_assert_uint_eq(r.index, 0);
	/* allow.always beats a user deny. */
	r = lookup(m, "PyPI.org.");
	ck_assert_int_eq(r.action, POLICY_ALLOW);
	ck_assert_int_eq(r.origin, POLICY_ORIGIN_ALLOW_ALWAYS);
	ck_assert_uint_eq(r.index, 0);
	r = lookup(m, "x.both.com");
	ck_assert_int_eq(r.origin, POLICY_ORIGIN_ALLOW_ALWAYS);
	ck_assert_uint_eq(r.index, 1);
	r = lookup(m, "user.com");
	ck_assert_int_eq(r.origin, POLICY_ORIGIN_USER);
	ck_assert_uint_eq(r.index, 3);
	ck_assert_int_eq(r.action, POLICY_ALLOW);
	policy_matcher_free(m);
}
END_TEST

START_TEST(test_policy_deny_always_beats_allow_always)
{
	struct policy_rule deny, allow;
	struct policy_matcher *m;
	struct policy_match r;

	rule_of("*.example.com", &deny);
	rule_of("api.example.com", &allow);
	deny.action = POLICY_DENY;
	allow.action = POLICY_ALLOW;
	ck_assert_int_eq(policy_matcher_new(&m, NULL, &deny, 1, &allow, 1), 0);
	r = lookup(m, "api.example.com");
	ck_assert_int_eq(r.action, POLICY_DENY);
	ck_assert_int_eq(r.origin, POLICY_ORIGIN_DENY_ALWAYS);
	ck_assert_uint_eq(r.index, 0);
	policy_matcher_free(m);
	free(deny.target), free(deny.name);
	free(allow.target), free(allow.name);
}
END_TEST

START_TEST(test_policy_escaped_query_names)
{
	struct policy_matcher *m = matcher_for(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"*.b.com\"},"
		"{\"action\":\"deny\",\"target\":\"*.evil.com\"},"
		"{\"action\":\"allow\",\"target\":\"a.b.com\"}]}");
	struct policy_match r;

	/* "a\.b" is one label under com, not under b.com. */
	ck_assert(!lookup(m, "a\\.b.com").matched);
	/* "x\\" (an escaped backslash) is a real label under evil.com. */
	r = lookup(m, "x\\\\.evil.com");
	ck_assert(r.matched);
	ck_assert_uint_eq(r.index, 1);
	/* Escape further left: still under b.com. */
	r = lookup(m, "q\\046r.s.b.com");
	ck_assert(r.matched);
	ck_assert_uint_eq(r.index, 0);
	ck_assert(!lookup(m, "\\").matched);
	ck_assert(!lookup(m, "\\.").matched);
	ck_assert(!lookup(m, "\\\\\\.b.com").matched);
	/* A literal '*' label is just a label. */
	ck_assert(lookup(m, "*.b.com").matched);
	policy_matcher_free(m);
}
END_TEST

START_TEST(test_policy_lookup_not_nul_terminated)
{
	struct policy_matcher *m = matcher_for(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"a.com\"}]}");
	struct policy_match r;
	const char buf[] = "a.comXYZ";

	policy_matcher_lookup(m, buf, 5, &r);
	ck_assert(r.matched);
	policy_matcher_lookup(m, buf, 6, &r);
	ck_assert(!r.matched);
	policy_matcher_lookup(m, buf, 4, &r);
	ck_assert(!r.matched);
	policy_matcher_free(m);
}
END_TEST

/*
 * Linear first-match reference over the effective list, written from the
 * spec rather than from the matcher.
 */
static bool ref_match(const struct policy_rule *r, const char *q)
{
	size_t qn = strlen(q), rn = strlen(r->name);

	if (r->kind == POLICY_KIND_DOMAIN)
		return qn == rn && !strcasecmp(q, r->name);
	if (r->kind == POLICY_KIND_WILDCARD)
		return qn > rn + 1 && q[qn - rn - 1] == '.' &&
		       !strcasecmp(q + qn - rn, r->name);
	return false;
}

static int ref_lookup(const struct policy *p, const char *q, size_t *idx)
{
	size_t i;

	for (i = 0; i < p->n_rules; i++) {
		if (ref_match(&p->rules[i], q)) {
			*idx = i;
			return p->rules[i].action;
		}
	}
	return -1;
}

START_TEST(test_policy_large_matcher_agrees_with_linear_scan)
{
	const size_t n = 10000;
	size_t cap = n * 64 + 64, o = 0, i;
	char *json = malloc(cap), q[128];
	struct policy_matcher *m;
	struct policy *p;
	unsigned int seed = 12345;
	size_t hits = 0;

	ck_assert_ptr_nonnull(json);
	o += snprintf(json + o, cap - o,
		      "{\"defaultAction\":\"deny\",\"egress\":[");
	for (i = 0; i < n; i++) {
		const char *act = (i % 3) ? "allow" : "deny";

		if (i % 4 == 0)
			o += snprintf(
				json + o, cap - o,
				"%s{\"action\":\"%s\",\"target\":\"*.z%zu.example\"}",
				i ? "," : "", act, i % 1500);
		else if (i % 4 == 1)
			o += snprintf(
				json + o, cap - o,
				"%s{\"action\":\"%s\",\"target\":\"10.%zu.%zu.0/24\"}",
				i ? "," : "", act, i / 256 % 256, i % 256);
		else
			o += snprintf(
				json + o, cap - o,
				"%s{\"action\":\"%s\",\"target\":\"H%zu.z%zu.example\"}",
				i ? "," : "", act, i, i % 2000);
	}
	snprintf(json + o, cap - o, "]}");
	p = parse_ok(json, 0);
	free(json);
	ck_assert_uint_eq(p->n_rules, n);
	ck_assert_int_eq(policy_matcher_new(&m, p, NULL, 0, NULL, 0), 0);

	for (i = 0; i < 20000; i++) {
		unsigned int a = rand_r(&seed) % 12000,
			     b = rand_r(&seed) % 2100;
		struct policy_match r;
		size_t want_idx = 0;
		int want;

		switch (rand_r(&seed) % 4) {
		case 0:
			snprintf(q, sizeof(q), "h%u.z%u.example", a, b);
			break;
		case 1:
			snprintf(q, sizeof(q), "x.H%u.Z%u.example.", a, b);
			break;
		case 2:
			snprintf(q, sizeof(q), "z%u.example", b);
			break;
		default:
			snprintf(q, sizeof(q), "h%u.z%u.example", a, a % 2000);
			break;
		}
		r = lookup(m, q);
		if (q[strlen(q) - 1] == '.')
			q[strlen(q) - 1] = '\0';
		want = ref_lookup(p, q, &want_idx);
		ck_assert_msg(r.matched == (want >= 0),
			      "%s: matched %d want %d", q, r.matched, want);
		if (want >= 0) {
			hits++;
			ck_assert_msg((int)r.action == want &&
					      r.index == want_idx,
				      "%s: got %d/%zu want %d/%zu", q, r.action,
				      r.index, want, want_idx);
		} else {
			ck_assert_int_eq(r.action, POLICY_DENY);
		}
	}
	/* The query mix must exercise both outcomes. */
	ck_assert_uint_gt(hits, 2000);
	ck_assert_uint_lt(hits, 18000);
	policy_matcher_free(m);
	policy_free(p);
}
END_TEST

/* ---- always-rules files ----------------------------------------------- */

static char *write_tmp(const char *content, size_t len)
{
	char *path = strdup("/tmp/check_policy_XXXXXX");
	int fd;

	ck_assert_ptr_nonnull(path);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

START_TEST(test_policy_always_file_parses_lines)
{
	static const char content[] = "# deny list\n"
				      "\n"
				      "   \t\n"
				      "  evil.com  \n"
				      "*.Tracker.NET.\r\n"
				      "    # indented comment\n"
				      "10.0.0.1/8\n"
				      "::ffff:1.2.3.4"; /* no final newline */
	char *path = write_tmp(content, sizeof(content) - 1), err[ERRLEN];
	struct policy_rule *rules = (struct policy_rule *)0x1;
	size_t n = 99;

	ck_assert_int_eq(policy_load_always_file(path, POLICY_DENY, &rules, &n,
						 err, sizeof(err)),
			 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(rules[0].target, "evil.com");
	ck_assert_int_eq(rules[0].kind, POLICY_KIND_DOMAIN);
	ck_assert_str_eq(rules[1].target, "*.Tracker.NET.");
	ck_assert_str_eq(rules[1].name, "tracker.net");
	ck_assert_int_eq(rules[1].kind, POLICY_KIND_WILDCARD);
	ck_assert_str_eq(rules[2].name, "10.0.0.0/8");
	ck_assert_str_eq(rules[3].name, "1.2.3.4");
	ck_assert_int_eq(rules[3].addr.family, AF_INET);
	ck_assert_int_eq(rules[0].action, POLICY_DENY);
	ck_assert_int_eq(rules[3].action, POLICY_DENY);
	policy_rules_free(rules, n);

	ck_assert_int_eq(policy_load_always_file(path, POLICY_ALLOW, &rules, &n,
						 err, sizeof(err)),
			 0);
	ck_assert_int_eq(rules[1].action, POLICY_ALLOW);
	policy_rules_free(rules, n);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_policy_always_file_bad_line)
{
	static const char content[] = "# x\n"
				      "good.com\n"
				      "\n"
				      "a.*.com\n"
				      "also-good.com\n";
	char *path = write_tmp(content, sizeof(content) - 1), err[ERRLEN];
	char want[256];
	struct policy_rule *rules = (struct policy_rule *)0x1;
	size_t n = 99;

	ck_assert_int_eq(policy_load_always_file(path, POLICY_DENY, &rules, &n,
						 err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_null(rules);
	ck_assert_uint_eq(n, 0);
	snprintf(want, sizeof(want), "%s:4: malformed wildcard \"a.*.com\"",
		 path);
	ck_assert_msg(!strncmp(err, want, strlen(want)), "got '%s'", err);
	unlink(path);
	free(path);

	path = write_tmp("ok.com\nfe80::1%lo\n", 18);
	ck_assert_int_eq(policy_load_always_file(path, POLICY_ALLOW, &rules, &n,
						 err, sizeof(err)),
			 -EINVAL);
	snprintf(want, sizeof(want), "%s:2: zoned IPv6 address", path);
	ck_assert_msg(!strncmp(err, want, strlen(want)), "got '%s'", err);
	unlink(path);
	free(path);

	path = write_tmp("ok.com\nb\0d.com\n", 15);
	ck_assert_int_eq(policy_load_always_file(path, POLICY_ALLOW, &rules, &n,
						 err, sizeof(err)),
			 -EINVAL);
	snprintf(want, sizeof(want), "%s:2: NUL byte", path);
	ck_assert_msg(!strncmp(err, want, strlen(want)), "got '%s'", err);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_policy_always_file_missing_is_empty)
{
	struct policy_rule *rules = (struct policy_rule *)0x1;
	size_t n = 99;
	char err[ERRLEN];

	ck_assert_int_eq(policy_load_always_file(
				 "/nonexistent/egressd/deny.always",
				 POLICY_DENY, &rules, &n, err, sizeof(err)),
			 0);
	ck_assert_ptr_null(rules);
	ck_assert_uint_eq(n, 0);
	/* A directory is a read error, not an empty list. */
	ck_assert_int_eq(policy_load_always_file("/tmp", POLICY_DENY, &rules,
						 &n, err, sizeof(err)),
			 -EISDIR);
	ck_assert_ptr_nonnull(strstr(err, "/tmp: "));
	/* Comments and blanks only. */
	{
		char *path = write_tmp("# only\n\n#x\n", 11);

		ck_assert_int_eq(policy_load_always_file(path, POLICY_DENY,
							 &rules, &n, err,
							 sizeof(err)),
				 0);
		ck_assert_uint_eq(n, 0);
		policy_rules_free(rules, n);
		unlink(path);
		free(path);
	}
}
END_TEST

/* The in-memory parser: not NUL-terminated, origin named in errors. */
START_TEST(test_policy_always_buf)
{
	/* The byte after the buffer would make a rule if it were read. */
	static const char mem[] = "a.com\n\n  # c\r\n*.b.org  \r\nc.net"
				  "x.org\n";
	static const char bad[] = "ok.com\n\nb\0d.com\n";
	struct policy_rule *rules = (struct policy_rule *)0x1;
	char err[ERRLEN];
	size_t n = 99;

	ck_assert_int_eq(policy_parse_always_buf(mem, 30, "mem", POLICY_ALLOW,
						 &rules, &n, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(rules[0].name, "a.com");
	ck_assert_str_eq(rules[1].name, "b.org");
	ck_assert_int_eq(rules[1].kind, POLICY_KIND_WILDCARD);
	ck_assert_str_eq(rules[2].name, "c.net");
	ck_assert_int_eq(rules[2].action, POLICY_ALLOW);
	policy_rules_free(rules, n);

	ck_assert_int_eq(policy_parse_always_buf(mem, 0, "mem", POLICY_DENY,
						 &rules, &n, err, sizeof(err)),
			 0);
	ck_assert_ptr_null(rules);
	ck_assert_uint_eq(n, 0);

	ck_assert_int_eq(policy_parse_always_buf(bad, sizeof(bad) - 1, "src",
						 POLICY_DENY, &rules, &n, err,
						 sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_null(rules);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(err, "src:3: NUL byte in line");
}
END_TEST

/* ---- rendering -------------------------------------------------------- */

START_TEST(test_policy_to_json_round_trip)
{
	static const char in[] =
		"{\"DefaultAction\":\" Allow \",\"egress\":["
		"{\"target\":\"  Example.COM. \",\"junk\":1},"
		"{\"action\":\"ALLOW\",\"target\":\"*.x.org\"},"
		"{\"action\":\"deny\",\"target\":\"10.0.0.1/8\"}]}";
	struct policy *p = parse_ok(in, 0), *p2;
	json_t *j = policy_to_json(p), *j2;
	char *s, *s2;
	size_t i;

	ck_assert_ptr_nonnull(j);
	s = json_dumps(j, JSON_COMPACT);
	ck_assert_str_eq(
		s,
		"{\"egress\":[{\"action\":\"deny\",\"target\":\"Example.COM.\"},"
		"{\"action\":\"allow\",\"target\":\"*.x.org\"},"
		"{\"action\":\"deny\",\"target\":\"10.0.0.1/8\"}],"
		"\"defaultAction\":\"allow\"}");
	p2 = parse_ok(s, 0);
	ck_assert_int_eq(p2->default_action, p->default_action);
	ck_assert_uint_eq(p2->n_rules, p->n_rules);
	for (i = 0; i < p->n_rules; i++) {
		ck_assert_int_eq(p2->rules[i].action, p->rules[i].action);
		ck_assert_int_eq(p2->rules[i].kind, p->rules[i].kind);
		ck_assert_str_eq(p2->rules[i].target, p->rules[i].target);
		ck_assert_str_eq(p2->rules[i].name, p->rules[i].name);
	}
	j2 = policy_to_json(p2);
	s2 = json_dumps(j2, JSON_COMPACT);
	ck_assert_str_eq(s, s2);
	free(s);
	free(s2);
	json_decref(j);
	json_decref(j2);
	policy_free(p);
	policy_free(p2);
}
END_TEST

START_TEST(test_policy_to_json_empty_egress_is_array)
{
	struct policy *p = parse_ok("", 0);
	json_t *j = policy_to_json(p);
	char *s = json_dumps(j, JSON_COMPACT);

	ck_assert_str_eq(s, "{\"egress\":[],\"defaultAction\":\"deny\"}");
	free(s);
	json_decref(j);
	policy_free(p);
}
END_TEST

START_TEST(test_policy_dup_is_deep)
{
	struct policy *p =
		parse_ok("{\"defaultAction\":\"allow\",\"egress\":["
			 "{\"action\":\"allow\",\"target\":\"a.com\"},"
			 "{\"target\":\"2001:db8::/32\"}]}",
			 0);
	struct policy *d = policy_dup(p);

	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(d->default_action, POLICY_ALLOW);
	ck_assert_uint_eq(d->n_rules, 2);
	ck_assert_ptr_ne(d->rules[0].target, p->rules[0].target);
	ck_assert_ptr_ne(d->rules, p->rules);
	policy_free(p);
	ck_assert_str_eq(d->rules[0].target, "a.com");
	ck_assert_str_eq(d->rules[1].name, "2001:db8::/32");
	ck_assert_int_eq(d->rules[1].addr.prefixlen, 32);
	policy_free(d);

	ck_assert_int_eq(policy_new(&p, POLICY_DENY), 0);
	d = policy_dup(p);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(d->n_rules, 0);
	policy_free(p);
	policy_free(d);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc;

	tc = tcase_create("defaults");
	tcase_add_test(tc, test_policy_empty_inputs_deny);
	tcase_add_test(tc, test_policy_null_buffer_zero_len_denies);
	tcase_add_test(tc, test_policy_default_action_trimmed_case_insensitive);
	tcase_add_test(tc, test_policy_missing_or_empty_action_denies);
	tcase_add_test(tc,
		       test_policy_keys_case_insensitive_rule_unknown_ignored);
	tcase_add_test(tc, test_policy_repeated_key_last_wins);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_policy_parse_error_messages, 0,
			    sizeof(err_cases) / sizeof(err_cases[0]));
	tcase_add_test(tc, test_policy_parse_error_exact_texts);
	tcase_add_test(tc, test_policy_name_length_limits);
	tcase_add_test(tc, test_policy_parse_target_direct_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("normalisation");
	tcase_add_loop_test(tc, test_policy_target_normalisation, 0,
			    sizeof(norm_cases) / sizeof(norm_cases[0]));
	tcase_add_test(tc, test_policy_target_kept_as_given_trimmed);
	tcase_add_test(tc, test_policy_rule_copy_deep);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_policy_max_rules);
	suite_add_tcase(s, tc);

	tc = tcase_create("matching");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_policy_wildcard_not_apex);
	tcase_add_test(tc, test_policy_wildcard_deep_subdomains);
	tcase_add_test(tc, test_policy_query_case_and_trailing_dot);
	tcase_add_test(tc, test_policy_first_match_in_user_rules);
	tcase_add_test(tc, test_policy_default_action_when_no_match);
	tcase_add_test(tc, test_policy_precedence_always_rules);
	tcase_add_test(tc, test_policy_deny_always_beats_allow_always);
	tcase_add_test(tc, test_policy_escaped_query_names);
	tcase_add_test(tc, test_policy_lookup_not_nul_terminated);
	tcase_add_test(tc, test_policy_large_matcher_agrees_with_linear_scan);
	suite_add_tcase(s, tc);

	tc = tcase_create("always_files");
	tcase_add_test(tc, test_policy_always_file_parses_lines);
	tcase_add_test(tc, test_policy_always_file_bad_line);
	tcase_add_test(tc, test_policy_always_file_missing_is_empty);
	tcase_add_test(tc, test_policy_always_buf);
	suite_add_tcase(s, tc);

	tc = tcase_create("rendering");
	tcase_add_test(tc, test_policy_to_json_round_trip);
	tcase_add_test(tc, test_policy_to_json_empty_egress_is_array);
	tcase_add_test(tc, test_policy_dup_is_deep);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
