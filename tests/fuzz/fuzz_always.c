// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for the always-rules parser (policy_parse_always_buf,
 * the in-memory half of policy_load_always_file): the input is the file's
 * bytes. Besides memory safety (ASan, UBSan) it checks what must hold for
 * any file that loads: every rule carries the list's action, there are no
 * more rules than lines, each rule's target parses again to the same rule,
 * and a matcher built with the rules as deny.always and as allow.always
 * denies every name rule (deny.always comes first) at or before its own
 * index. A failure must leave no rules and name the origin. Any broken
 * property aborts, so the fuzzer reports it as a crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egressd/policy.h"

#define FUZZ_ORIGIN "fuzz.always"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_always: invariant broken: %s\n", what);
	abort();
}

/* The name must be denied by deny.always rule idx or an earlier one. */
static void check_denied(const struct policy_matcher *m, const char *q,
			 size_t idx)
{
	struct policy_match got;

	policy_matcher_lookup(m, q, strlen(q), &got);
	if (!got.matched || got.origin != POLICY_ORIGIN_DENY_ALWAYS ||
	    got.action != POLICY_DENY || got.index > idx)
		fuzz_fail("always rule does not decide its own name");
}

static void check_rules(const struct policy_rule *rules, size_t n)
{
	struct policy_matcher *m;
	struct policy_rule again;
	char err[256], q[600];
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&again, 0, sizeof(again));
		if (policy_parse_target(rules[i].target, &again, err,
					sizeof(err)))
			fuzz_fail("target does not parse again");
		if (again.kind != rules[i].kind ||
		    strcmp(again.name, rules[i].name) ||
		    strcmp(again.target, rules[i].target) ||
		    memcmp(&again.addr, &rules[i].addr, sizeof(again.addr)))
			fuzz_fail("target parses to another rule");
		free(again.target);
		free(again.name);
	}

	if (policy_matcher_new(&m, NULL, rules, n, rules, n))
		return; /* ENOMEM */
	for (i = 0; i < n && i < 64; i++) {
		const struct policy_rule *r = &rules[i];

		/* The reference does not know escapes: plain names only. */
		if (strchr(r->name, '\\'))
			continue;
		if (r->kind == POLICY_KIND_DOMAIN) {
			check_denied(m, r->name, i);
			snprintf(q, sizeof(q), "%s.", r->name);
			check_denied(m, q, i);
		} else if (r->kind == POLICY_KIND_WILDCARD) {
			snprintf(q, sizeof(q), "x.%s", r->name);
			check_denied(m, q, i);
		}
	}
	policy_matcher_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_rule *rules = (struct policy_rule *)0x1;
	size_t n = 99, lines = 1, i;
	char err[512];
	int ret;

	ret = policy_parse_always_buf((const char *)data, size, FUZZ_ORIGIN,
				      POLICY_DENY, &rules, &n, err,
				      sizeof(err));
	if (ret) {
		if (ret != -EINVAL && ret != -ENOMEM)
			fuzz_fail("unexpected error code");
		if (rules || n)
			fuzz_fail("rules left after an error");
		if (strncmp(err, FUZZ_ORIGIN ":", strlen(FUZZ_ORIGIN ":")))
			fuzz_fail("error does not name the origin");
		return 0;
	}
	for (i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (n > lines || (n && !rules))
		fuzz_fail("rule count");
	for (i = 0; i < n; i++)
		if (rules[i].action != POLICY_DENY)
			fuzz_fail("rule action");
	check_rules(rules, n);
	policy_rules_free(rules, n);
	return 0;
}
