// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the deny webhook's pure parts (agent/webhook.c): the exact
 * body bytes and their escaping, the timestamp format, the retry schedule
 * and which answers are retried, the bounded queue, folding per name and
 * window, URL checks, and the drop/fold accounting of webhook_dns_denied()
 * with the loop never run (so nothing is ever sent).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/webhook.h"

START_TEST(test_payload_exact)
{
	char buf[512];
	int n;

	n = webhook_payload(buf, sizeof(buf), "evil.example.com",
			    "2024-05-01T12:00:00Z", "sb-1");
	ck_assert_str_eq(
		buf,
		"{\"hostname\":\"evil.example.com\",\"timestamp\":\"2024-05-01T12:00:00Z\",\"source\":\"opensandbox-egress\",\"sandboxId\":\"sb-1\"}");
	ck_assert_int_eq(n, (int)strlen(buf));
	/* No sandbox id: "" as the peer sends it (env unset). */
	webhook_payload(buf, sizeof(buf), "a.b", "2024-05-01T12:00:00Z", NULL);
	ck_assert_str_eq(
		buf,
		"{\"hostname\":\"a.b\",\"timestamp\":\"2024-05-01T12:00:00Z\",\"source\":\"opensandbox-egress\",\"sandboxId\":\"\"}");
}
END_TEST

START_TEST(test_payload_escaping_and_json)
{
	char buf[512];
	json_t *j;
	json_error_t e;
	int n;

	n = webhook_payload(buf, sizeof(buf), "we\\\"ird\\032.name", "t",
			    "id \"x\"\n");
	ck_assert_int_gt(n, 0);
	j = json_loads(buf, 0, &e);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "hostname")),
			 "we\\\"ird\\032.name");
	ck_assert_str_eq(json_string_value(json_object_get(j, "sandboxId")),
			 "id \"x\"\n");
	ck_assert_str_eq(json_string_value(json_object_get(j, "source")),
			 "opensandbox-egress");
	ck_assert_int_eq(json_object_size(j), 4);
	json_decref(j);
	ck_assert_int_eq(webhook_payload(buf, sizeof(buf), "\xff", "t", ""),
			 -EILSEQ);
}
END_TEST

START_TEST(test_payload_too_small)
{
	char buf[512];
	int n;

	n = webhook_payload(buf, sizeof(buf), "x.com", "t", "");
	ck_assert_int_gt(n, 0);
	/* Exactly the length is one short (the NUL). */
	ck_assert_int_eq(webhook_payload(buf, (size_t)n, "x.com", "t", ""),
			 -ENOSPC);
	ck_assert_int_eq(webhook_payload(buf, (size_t)n + 1, "x.com", "t", ""),
			 n);
	ck_assert_int_eq(webhook_payload(buf, 3, "x.com", "t", ""), -ENOSPC);
}
END_TEST

START_TEST(test_timestamp)
{
	char buf[32];

	webhook_timestamp(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1970-01-01T00:00:00Z");
	webhook_timestamp(1714564800 + 3723, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2024-05-01T13:02:03Z");
}
END_TEST

START_TEST(test_backoff_schedule)
{
	ck_assert_uint_eq(webhook_backoff_ms(0), 0);
	ck_assert_uint_eq(webhook_backoff_ms(1), 1000);
	ck_assert_uint_eq(webhook_backoff_ms(2), 2000);
	ck_assert_uint_eq(webhook_backoff_ms(3), 4000);
	ck_assert_uint_eq(webhook_backoff_ms(4), 0);
}
END_TEST

START_TEST(test_next_step)
{
	unsigned int d, total = 0, a;

	ck_assert_int_eq(webhook_next_step(1, true, 200, &d), WEBHOOK_DONE);
	ck_assert_int_eq(webhook_next_step(1, true, 204, &d), WEBHOOK_DONE);
	ck_assert_int_eq(webhook_next_step(4, true, 200, &d), WEBHOOK_DONE);
	/* 4xx and 3xx: never retried. */
	ck_assert_int_eq(webhook_next_step(1, true, 400, &d), WEBHOOK_GIVE_UP);
	ck_assert_uint_eq(d, 0);
	ck_assert_int_eq(webhook_next_step(1, true, 404, &d), WEBHOOK_GIVE_UP);
	ck_assert_int_eq(webhook_next_step(1, true, 429, &d), WEBHOOK_GIVE_UP);
	ck_assert_int_eq(webhook_next_step(1, true, 302, &d), WEBHOOK_GIVE_UP);
	/* 5xx and network errors: 1 s, 2 s, 4 s, then give up. */
	ck_assert_int_eq(webhook_next_step(1, true, 500, &d), WEBHOOK_RETRY);
	ck_assert_uint_eq(d, 1000);
	ck_assert_int_eq(webhook_next_step(2, true, 503, &d), WEBHOOK_RETRY);
	ck_assert_uint_eq(d, 2000);
	ck_assert_int_eq(webhook_next_step(3, false, 0, &d), WEBHOOK_RETRY);
	ck_assert_uint_eq(d, 4000);
	ck_assert_int_eq(webhook_next_step(4, true, 500, &d), WEBHOOK_GIVE_UP);
	ck_assert_int_eq(webhook_next_step(4, false, 0, &d), WEBHOOK_GIVE_UP);
	/* A dead receiver: 4 attempts, 7 s of backoff in all. */
	for (a = 1; webhook_next_step(a, false, 0, &d) == WEBHOOK_RETRY; a++)
		total += d;
	ck_assert_uint_eq(a, 1 + WEBHOOK_RETRIES);
	ck_assert_uint_eq(total, 7000);
}
END_TEST

START_TEST(test_queue)
{
	struct webhook_queue q;
	char name[16], *b;
	int i, round;

	ck_assert_int_eq(webhook_queue_init(&q, 4), 0);
	ck_assert_ptr_null(webhook_queue_pop(&q));
	/* Several rounds so the ring wraps. */
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 4; i++) {
			snprintf(name, sizeof(name), "%d-%d", round, i);
			ck_assert_int_eq(webhook_queue_push(&q, strdup(name)),
					 0);
		}
		b = strdup("over");
		ck_assert_int_eq(webhook_queue_push(&q, b), -ENOSPC);
		free(b);
		for (i = 0; i < 3; i++) {
			snprintf(name, sizeof(name), "%d-%d", round, i);
			b = webhook_queue_pop(&q);
			ck_assert_str_eq(b, name);
			free(b);
		}
		b = webhook_queue_pop(&q);
		free(b);
		ck_assert_uint_eq(q.n, 0);
	}
	/* What is left is freed by fini (valgrind/ASan would tell). */
	webhook_queue_push(&q, strdup("left"));
	webhook_queue_fini(&q);
	ck_assert_int_eq(webhook_queue_init(&q, 0), -EINVAL);
}
END_TEST

START_TEST(test_fold)
{
	struct webhook_fold *f = calloc(1, sizeof(*f));
	char a[32], b[32];
	int i, j;

	ck_assert_ptr_nonnull(f);
	ck_assert(webhook_fold_admit(f, "x.com", 10000));
	ck_assert(!webhook_fold_admit(f, "x.com", 10000));
	ck_assert(!webhook_fold_admit(f, "x.com", 10999));
	ck_assert(webhook_fold_admit(f, "y.com", 10999));
	/* Window over: the next one is sent and opens a new window. */
	ck_assert(webhook_fold_admit(f, "x.com", 11000));
	ck_assert(!webhook_fold_admit(f, "x.com", 11500));
	ck_assert(webhook_fold_admit(f, "x.com", 12000));

	/* Two names sharing a slot: each evicts the other, none is lost. */
	for (i = 0; i < 100000; i++) {
		snprintf(a, sizeof(a), "n%d.example", i);
		ck_assert(webhook_fold_admit(f, a, 50000));
		for (j = 0; j < i; j++) {
			snprintf(b, sizeof(b), "n%d.example", j);
			if (!webhook_fold_admit(f, b, 50000))
				continue;
			/* b was evicted by a: same slot. */
			ck_assert(webhook_fold_admit(f, a, 50001));
			ck_assert(webhook_fold_admit(f, b, 50002));
			goto found;
		}
	}
	ck_abort_msg("no two names share a slot");
found:
	webhook_fold_fini(f);
	free(f);
}
END_TEST

START_TEST(test_url_checks)
{
	struct loop *loop;
	struct webhook *wh;
	char err[256];

	ck_assert_int_eq(loop_new(&loop), 0);
	ck_assert_int_eq(webhook_new(&wh, loop, "ftp://10.0.0.1/x", "", err,
				     sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "only http:// and https://"));
	ck_assert_int_eq(webhook_new(&wh, loop, "not a url", "", err,
				     sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "OPENSANDBOX_EGRESS_DENY_WEBHOOK"));
	ck_assert_int_eq(webhook_new(&wh, loop,
				     "https://hooks.example.com/deny", "sb",
				     err, sizeof(err)),
			 0);
	webhook_free(wh);
	loop_free(loop);
}
END_TEST

/*
 * The loop never runs, so nothing is sent: WEBHOOK_PARALLEL events go to
 * the slots, WEBHOOK_QUEUE_MAX wait, the rest are dropped; repeats of a
 * name are folded.
 */
START_TEST(test_accounting_without_network)
{
	struct loop *loop;
	struct webhook_stats st;
	struct webhook *wh;
	char err[256], name[64];
	FILE *logf = tmpfile();
	int i, total = WEBHOOK_PARALLEL + WEBHOOK_QUEUE_MAX + 10;

	ck_assert_int_eq(loop_new(&loop), 0);
	ck_assert_ptr_nonnull(logf);
	log_set_output(logf);
	ck_assert_int_eq(webhook_new(&wh, loop, "http://127.0.0.1:9/deny", NULL,
				     err, sizeof(err)),
			 0);
	for (i = 0; i < total; i++) {
		snprintf(name, sizeof(name), "n%d.example.com", i);
		webhook_dns_denied(wh, name);
		webhook_dns_denied(wh, name); /* folded */
	}
	webhook_get_stats(wh, &st);
	ck_assert_uint_eq(st.dropped, 10);
	ck_assert_uint_eq(st.folded, (uint64_t)total);
	ck_assert_uint_eq(st.sent, 0);
	ck_assert_uint_eq(st.failed, 0);
	webhook_dns_denied(NULL, "x"); /* no webhook: no-op */
	webhook_free(wh);
	log_flush();
	/* One warning for the whole burst of drops. */
	{
		char line[512];
		int warns = 0;

		rewind(logf);
		while (fgets(line, sizeof(line), logf))
			if (strstr(line, "queue full"))
				warns++;
		ck_assert_int_eq(warns, 1);
	}
	log_set_output(NULL);
	fclose(logf);
	loop_free(loop);
}
END_TEST

static Suite *webhook_suite(void)
{
	Suite *s = suite_create("webhook");
	TCase *tc = tcase_create("webhook");

	tcase_add_test(tc, test_payload_exact);
	tcase_add_test(tc, test_payload_escaping_and_json);
	tcase_add_test(tc, test_payload_too_small);
	tcase_add_test(tc, test_timestamp);
	tcase_add_test(tc, test_backoff_schedule);
	tcase_add_test(tc, test_next_step);
	tcase_add_test(tc, test_queue);
	tcase_add_test(tc, test_fold);
	tcase_add_test(tc, test_url_checks);
	tcase_add_test(tc, test_accounting_without_network);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(webhook_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
