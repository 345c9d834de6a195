// SPDX-License-Identifier: GPL-2.0-only
/*
 * Micro-benchmark of policy_matcher_lookup(): builds matchers of 10, 1,000
 * and 10,000 rules (a mix of exact names and "*." wildcards, plus a few
 * CIDRs the matcher must ignore) and reports the median nanoseconds per
 * lookup for exact hits, deep wildcard hits and misses. Each figure is the
 * median of BATCHES batches of BATCH_LOOKUPS lookups timed with
 * CLOCK_MONOTONIC, cycling over QUERIES distinct query names so the result
 * is not that of one hot name. Not part of the test run (`make
 * bench-policy`); the target is under 50 ns at 10,000 rules.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "egressd/policy.h"
#include "egressd/util.h"

#define BATCHES 101
#define BATCH_LOOKUPS 10000
#define QUERIES 1024

enum query_kind {
	Q_EXACT,
	Q_WILDCARD,
	Q_MISS,
	Q_KINDS,
};

static const char *const query_kind_name[Q_KINDS] = {
	"exact hit",
	"wildcard hit (deep)",
	"miss",
};

static void die(const char *what, int err)
{
	fprintf(stderr, "policy_lookup: %s: %s\n", what, strerror(err));
	exit(1);
}

/*
 * Rule i: every 50th a CIDR; every 4th a wildcard whose suffix has 2, 3 or
 * 4 labels in turn ("*.zI.example", "*.zI.bench.example",
 * "*.zI.w.bench.example"), so lookups probe several suffix depths; the
 * others exact "hI.svc.bench.example". Alternating actions.
 */
static void wild_suffix(char *buf, size_t len, size_t i)
{
	switch (i / 4 % 3) {
	case 0:
		snprintf(buf, len, "z%zu.example", i);
		break;
	case 1:
		snprintf(buf, len, "z%zu.bench.example", i);
		break;
	default:
		snprintf(buf, len, "z%zu.w.bench.example", i);
		break;
	}
}
static struct policy *build_policy(size_t n)
{
	struct policy *p;
	char target[128], err[256];
	size_t i;
	int ret;

	ret = policy_new(&p, POLICY_DENY);
	if (ret)
		die("policy_new", -ret);
	p->rules = calloc(n, sizeof(*p->rules));
	if (!p->rules)
		die("calloc", errno);
	for (i = 0; i < n; i++) {
		if (i % 50 == 49)
			snprintf(target, sizeof(target), "10.%zu.%zu.0/24",
				 i / 256 % 256, i % 256);
		else if (i % 4 == 0) {
			memcpy(target, "*.", 2);
			wild_suffix(target + 2, sizeof(target) - 2, i);
		} else
			snprintf(target, sizeof(target),
				 "h%zu.svc.bench.example", i);
		ret = policy_parse_target(target, &p->rules[i], err,
					  sizeof(err));
		if (ret) {
			fprintf(stderr, "policy_lookup: %s: %s\n", target, err);
			exit(1);
		}
		p->rules[i].action = i % 2 ? POLICY_ALLOW : POLICY_DENY;
		p->n_rules = i + 1;
	}
	return p;
}

/* QUERIES names of one kind, each stored NUL-terminated in a 128-byte row. */
static char *build_queries(size_t n_rules, enum query_kind kind)
{
	char *q = malloc(QUERIES * 128);
	size_t i, wild = (n_rules + 3) / 4;

	if (!q)
		die("malloc", errno);
	for (i = 0; i < QUERIES; i++) {
		char *row = q + i * 128;
		size_t r;

		switch (kind) {
		case Q_EXACT:
			/* The next exact rule (not 0 mod 4, not 49 mod 50). */
			r = (i * 7919 + 1) % n_rules;
			while (r % 4 == 0 || r % 50 == 49)
				r = (r + 1) % n_rules;
			snprintf(row, 128, "h%zu.svc.bench.example", r);
			break;
		case Q_WILDCARD:
			r = ((i * 7919) % wild) * 4;
			/* Four labels below the suffix, trailing dot. */
			strcpy(row, "api.v2.eu-west.cdn.");
			wild_suffix(row + strlen(row), 100, r);
			strcat(row, ".");
			break;
		default:
			snprintf(row, 128, "www.nothere%zu.example.net", i);
			break;
		}
	}
	return q;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double now_ns(void)
{
	return (double)util_clock_ns();
}

/* Median ns per lookup; want_matched checks the queries do what we say. */
static double run(const struct policy_matcher *m, const char *queries,
		  bool want_matched)
{
	static double samples[BATCHES];
	size_t lens[QUERIES], b, i;
	volatile unsigned long sink = 0;
	struct policy_match r;

	for (i = 0; i < QUERIES; i++) {
		lens[i] = strlen(queries + i * 128);
		policy_matcher_lookup(m, queries + i * 128, lens[i], &r);
		if (r.matched != want_matched) {
			fprintf(stderr, "policy_lookup: %s: matched=%d\n",
				queries + i * 128, r.matched);
			exit(1);
		}
	}
	for (b = 0; b < BATCHES; b++) {
		double t0 = now_ns();
		unsigned long acc = 0;

		for (i = 0; i < BATCH_LOOKUPS; i++) {
			size_t k = i & (QUERIES - 1);

			policy_matcher_lookup(m, queries + k * 128, lens[k],
					      &r);
			acc += r.index + r.matched;
		}
		samples[b] = (now_ns() - t0) / BATCH_LOOKUPS;
		sink += acc;
	}
	(void)sink;
	qsort(samples, BATCHES, sizeof(samples[0]), cmp_double);
	return samples[BATCHES / 2];
}

int main(void)
{
	static const size_t sizes[] = { 10, 1000, 10000 };
	size_t s;
	int k;

	printf("policy_matcher_lookup: median ns/lookup (%d batches x %d lookups, %d distinct names)\n",
	       BATCHES, BATCH_LOOKUPS, QUERIES);
	printf("%8s", "rules");
	for (k = 0; k < Q_KINDS; k++)
		printf("  %20s", query_kind_name[k]);
	printf("\n");
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct policy *p = build_policy(sizes[s]);
		struct policy_matcher *m;
		int ret = policy_matcher_new(&m, p, NULL, 0, NULL, 0);

		if (ret)
			die("policy_matcher_new", -ret);
		printf("%8zu", sizes[s]);
		for (k = 0; k < Q_KINDS; k++) {
			char *q = build_queries(sizes[s], k);

			printf("  %20.1f", run(m, q, k != Q_MISS));
			free(q);
		}
		printf("\n");
		policy_matcher_free(m);
		policy_free(p);
	}
	return 0;
}
