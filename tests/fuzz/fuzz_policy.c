// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for the policy module: feeds the input to
 * policy_parse_json() and, when it parses, checks properties that must
 * hold for any policy: policy_to_json() output parses back to the same
 * rules, and the compiled matcher agrees with a linear first-match scan on
 * names derived from the rules (the rule itself, a subdomain, the apex,
 * other case, trailing dot) and on a name cut from the input. Any
 * disagreement aborts, so the fuzzer reports it as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egressd/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool ref_match(const struct policy_rule *r, const char *q, size_t qn)
{
	size_t rn = strlen(r->name);

	if (r->kind == POLICY_KIND_DOMAIN)
		return qn == rn && !strncasecmp(q, r->name, qn);
	if (r->kind == POLICY_KIND_WILDCARD)
		return qn > rn + 1 && q[qn - rn - 1] == '.' &&
		       !strncasecmp(q + qn - rn, r->name, rn);
	return false;
}

/* Linear first-match over the user rules (no always rules here). */
static void check_lookup(const struct policy *p, const struct policy_matcher *m,
			 const char *q, size_t qn)
{
	struct policy_match got;
	size_t i, n = qn;

	policy_matcher_lookup(m, q, qn, &got);
	/* The reference does not know escapes: only judge plain names. */
	if (memchr(q, '\\', qn) || memchr(q, '\0', qn))
		return;
	if (n && q[n - 1] == '.')
		n--;
	for (i = 0; i < p->n_rules; i++) {
		if (ref_match(&p->rules[i], q, n))
			break;
	}
	if (i == p->n_rules) {
		if (got.matched || got.action != p->default_action)
			abort();
		return;
	}
	if (!got.matched || got.index != i ||
	    got.origin != POLICY_ORIGIN_USER ||
	    got.action != p->rules[i].action)
		abort();
}

static void check_round_trip(const struct policy *p)
{
	struct policy *p2 = NULL;
	json_t *j = policy_to_json(p);
	char err[256], *s;
	size_t i;

	if (!j)
		return;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return;
	if (policy_parse_json(s, strlen(s), 0, &p2, err, sizeof(err)))
		abort();
	if (p2->n_rules != p->n_rules ||
	    p2->default_action != p->default_action)
		abort();
	for (i = 0; i < p->n_rules; i++) {
		if (p2->rules[i].action != p->rules[i].action ||
		    p2->rules[i].kind != p->rules[i].kind ||
		    strcmp(p2->rules[i].name, p->rules[i].name) ||
		    strcmp(p2->rules[i].target, p->rules[i].target) ||
		    memcmp(&p2->rules[i].addr, &p->rules[i].addr,
			   sizeof(p->rules[i].addr)))
			abort();
	}
	policy_free(p2);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_matcher *m;
	struct policy *p = NULL;
	char err[512], q[600];
	size_t i, n;

	if (policy_parse_json((const char *)data, size, 0, &p, err,
			      sizeof(err)))
		return 0;
	check_round_trip(p);
	if (policy_matcher_new(&m, p, NULL, 0, NULL, 0))
		abort();
	for (i = 0; i < p->n_rules && i < 64; i++) {
		const char *name = p->rules[i].name;
		size_t k;

		n = snprintf(q, sizeof(q), "%s", name);
		check_lookup(p, m, q, n);
		n = snprintf(q, sizeof(q), "x.%s.", name);
		check_lookup(p, m, q, n);
		/* Same name in mixed case. */
		for (k = 0; k < n; k += 2) {
			if (q[k] >= 'a' && q[k] <= 'z')
				q[k] -= 'a' - 'A';
		}
		check_lookup(p, m, q, n);
		n = snprintf(q, sizeof(q), "A.b.%s", name);
		check_lookup(p, m, q, n);
		/* The apex of a wildcard, and its parent. */
		if (strchr(name, '.')) {
			const char *dot = strchr(name, '.');

			check_lookup(p, m, dot + 1, strlen(dot + 1));
		}
	}
	/* A name cut from the input, escapes and all. */
	n = size < sizeof(q) ? size : sizeof(q);
	memcpy(q, data, n);
	check_lookup(p, m, q, n);
	check_lookup(p, m, "", 0);
	check_lookup(p, m, ".", 1);
	check_lookup(p, m, "a\\.b.com", 8);
	policy_matcher_free(m);
	policy_free(p);
	return 0;
}
