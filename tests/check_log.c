// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the log stream's output buffer (agent/log.c): with the
 * output a pipe of 4096 bytes that nobody reads, log_emit() and log_flush()
 * never block; lines that do not fit are dropped whole and counted
 * (log_dropped_total), and once the pipe is read again one log_dropped line
 * says how many, before any later line. Attached to the loop, buffered
 * lines drain through EPOLLOUT alone.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/util.h"

struct pipe_out {
	int rfd;
	FILE *w;
	char *data;
	size_t len, cap;
};

static void pipe_open(struct pipe_out *p)
{
	int fds[2];

	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_ge(fcntl(fds[0], F_SETPIPE_SZ, 4096), 4096);
	ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	p->rfd = fds[0];
	p->w = fdopen(fds[1], "w");
	ck_assert_ptr_nonnull(p->w);
	log_set_output(p->w);
}

/* Read what the pipe holds now; returns the bytes read. */
static size_t pipe_read(struct pipe_out *p)
{
	size_t got = 0;
	ssize_t n;

	for (;;) {
		if (p->cap - p->len < 65536) {
			p->cap = p->cap ? p->cap * 2 : 1 << 20;
			p->data = realloc(p->data, p->cap + 1);
			ck_assert_ptr_nonnull(p->data);
		}
		n = read(p->rfd, p->data + p->len, p->cap - p->len);
		if (n <= 0)
			break;
		p->len += (size_t)n;
		got += (size_t)n;
	}
	p->data[p->len] = '\0';
	return got;
}

/* Read and flush until the buffer is empty. */
static void pipe_drain(struct pipe_out *p)
{
	int idle = 0;

	while (idle < 3) {
		log_flush();
		idle = pipe_read(p) ? 0 : idle + 1;
	}
}

static void pipe_close(struct pipe_out *p)
{
	log_set_output(NULL);
	fclose(p->w);
	close(p->rfd);
	free(p->data);
}

static void emit_seq(int i)
{
	log_emit(LOG_LVL_INFO, "t", json_pack("{s:i}", "seq", i));
}

/*
 * Lines of p->data in order: seq numbers as is, the log_dropped line as
 * -1 - dropped. Every line must be one whole JSON object.
 */
static int parse_lines(struct pipe_out *p, long long *out, int max)
{
	char *s = p->data, *nl;
	int n = 0;

	while (*s) {
		json_error_t jerr;
		json_t *o;
		const char *ev;

		nl = strchr(s, '\n');
		ck_assert_msg(nl, "line without newline: %.80s", s);
		*nl = '\0';
		o = json_loads(s, 0, &jerr);
		ck_assert_msg(o, "not JSON: %.120s", s);
		ck_assert_int_lt(n, max);
		ev = json_string_value(json_object_get(o, "event"));
		ck_assert_ptr_nonnull(ev);
		if (!strcmp(ev, "log_dropped")) {
			ck_assert_str_eq(
				json_string_value(json_object_get(o, "level")),
				"warn");
			out[n++] = -1 - json_integer_value(
						json_object_get(o, "dropped"));
		} else {
			out[n++] =
				json_integer_value(json_object_get(o, "seq"));
		}
		json_decref(o);
		s = nl + 1;
	}
	return n;
}

#define N_LINES 30000

START_TEST(test_log_drops_whole_lines)
{
	static long long seq[N_LINES + 8];
	struct pipe_out p;
	long long dropped;
	int i, n, k;

	pipe_open(&p);
	/* Nobody reads: fills the pipe, then the buffer, then drops. */
	for (i = 0; i < N_LINES; i++) {
		emit_seq(i);
		if (i % 100 == 0)
			log_flush();
	}
	log_flush();
	dropped = (long long)log_dropped_total();
	ck_assert_int_gt(dropped, 0);
	ck_assert_int_lt(dropped, N_LINES);
	/* Reading again: the buffer drains, the count follows, then lines
	 * are written again. */
	pipe_drain(&p);
	n = parse_lines(&p, seq, N_LINES + 8);
	/* 0..k-1, then the dropped count, without waiting for a next line. */
	for (k = 0; k < n && seq[k] >= 0; k++)
		ck_assert_int_eq(seq[k], k);
	ck_assert_int_eq(k + dropped, N_LINES);
	ck_assert_int_eq(n, k + 1);
	ck_assert_int_eq(seq[k], -1 - dropped);

	/* Then lines are written again, and the count does not move. */
	p.len = 0;
	emit_seq(N_LINES);
	pipe_drain(&p);
	ck_assert_int_eq((long long)log_dropped_total(), dropped);
	n = parse_lines(&p, seq, N_LINES + 8);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(seq[0], N_LINES);
	pipe_close(&p);
}
END_TEST

/*
 * A reader slower than the writer: once lines are dropped, lines are
 * taken again only when half the buffer has drained, so each stall gives
 * one log_dropped line rather than one per read.
 */
#define N_SLOW 80000

START_TEST(test_log_one_dropped_line_per_stall)
{
	static long long seq[N_SLOW];
	struct pipe_out p;
	int i, n, summaries = 0, next = 0;
	long long total = 0;

	pipe_open(&p);
	for (i = 0; i < N_SLOW; i++) {
		emit_seq(i);
		if (i % 100 == 0) {
			log_flush();
			/* 4 KiB read per ~7 KiB written. */
			pipe_read(&p);
		}
	}
	pipe_drain(&p);
	n = parse_lines(&p, seq, N_SLOW);
	for (i = 0; i < n; i++) {
		if (seq[i] < 0) {
			summaries++;
			total += -1 - seq[i];
			next += (int)(-1 - seq[i]);
			continue;
		}
		ck_assert_int_eq(seq[i], next);
		next++;
	}
	ck_assert_int_eq(next, N_SLOW);
	ck_assert_int_eq(total, (long long)log_dropped_total());
	ck_assert_int_gt(total, 0);
	ck_assert_int_ge(summaries, 1);
	ck_assert_int_le(summaries, 4);
	pipe_close(&p);
}
END_TEST

struct drain_ctx {
	struct pipe_out *p;
	struct loop_timer *t;
	int rounds;
};

/* The reader: reads what the pipe has every 5 ms; never calls log_flush. */
static void reader_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct drain_ctx *c = arg;

	pipe_read(c->p);
	if (strstr(c->p->data ? c->p->data : "", "\"seq\":1999}") ||
	    ++c->rounds > 400) {
		loop_stop(loop);
		return;
	}
	loop_timer_arm(t, 5);
}

START_TEST(test_log_drains_on_epollout)
{
	static long long seq[2100];
	struct loop *loop;
	struct drain_ctx c;
	struct pipe_out p;
	int i, n;

	ck_assert_int_eq(loop_new(&loop), 0);
	pipe_open(&p);
	ck_assert_int_eq(log_attach_loop(loop), 0);
	/* ~100 KiB: far more than the pipe takes at once. */
	for (i = 0; i < 2000; i++)
		emit_seq(i);
	log_flush();
	c.p = &p;
	c.rounds = 0;
	c.t = loop_timer_new(loop, reader_cb, &c);
	ck_assert_ptr_nonnull(c.t);
	loop_timer_arm(c.t, 5);
	ck_assert_int_eq(loop_run(loop), 0);
	n = parse_lines(&p, seq, 2100);
	ck_assert_int_eq(n, 2000);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(seq[i], i);
	ck_assert_int_eq(log_dropped_total(), 0);
	log_close(0);
	loop_timer_free(c.t);
	loop_free(loop);
	pipe_close(&p);
}
END_TEST

/* A reader that never reads again: log_close() gives up in time. */
START_TEST(test_log_close_is_bounded)
{
	struct loop *loop;
	struct pipe_out p;
	uint64_t t0;
	int i;

	ck_assert_int_eq(loop_new(&loop), 0);
	pipe_open(&p);
	ck_assert_int_eq(log_attach_loop(loop), 0);
	for (i = 0; i < 1000; i++)
		emit_seq(i);
	log_flush();
	t0 = util_clock_ms();
	log_close(200);
	ck_assert_uint_ge(util_clock_ms() - t0, 150);
	ck_assert_uint_lt(util_clock_ms() - t0, 1000);
	loop_free(loop);
	/* What is left goes nowhere at exit: forget it. */
	close(p.rfd);
	p.rfd = -1;
	pipe_drain(&p);
	free(p.data);
}
END_TEST

/* What log_* wrote to a temporary file, flushed, as one string. */
static FILE *file_open(void)
{
	FILE *f = tmpfile();

	ck_assert_ptr_nonnull(f);
	log_set_output(f);
	return f;
}

static char *file_text(FILE *f)
{
	static char buf[8192];
	size_t n;

	log_flush();
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	return buf;
}

/* --sandbox-id: "sandboxId" right after "event" on every kind of line. */
START_TEST(test_log_sandbox_id_on_every_line)
{
	static const char members[] = "\"layer\":\"dns\",\"count\":1";
	FILE *f = file_open();
	char *text, *line, *save = NULL;
	int n = 0;

	ck_assert_int_eq(log_set_sandbox_id("sb-42 \"quoted\""), 0);
	log_emit(LOG_LVL_INFO, "start", json_pack("{s:s}", "mode", "dns"));
	log_emit_raw(LOG_LVL_WARN, "violation", members, strlen(members));
	log_warnx("something %d", 1);
	log_info("free text");
	text = file_text(f);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		json_error_t je;
		json_t *o = json_loads(line, 0, &je);

		ck_assert_msg(o, "not JSON: %s", line);
		ck_assert_msg(
			strstr(line,
			       "\",\"sandboxId\":\"sb-42 \\\"quoted\\\"\""),
			"no sandboxId after event: %s", line);
		json_decref(o);
	}
	ck_assert_int_eq(n, 4);
	fclose(f);

	f = file_open();
	ck_assert_int_eq(log_set_sandbox_id(NULL), 0);
	log_info("no id");
	ck_assert_ptr_null(strstr(file_text(f), "sandboxId"));
	ck_assert_int_eq(log_set_sandbox_id("\xff"), -EILSEQ);
	log_set_output(NULL);
	fclose(f);
}
END_TEST

static void lib_print(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vprefixed(lvl, "libbpf", fmt, ap);
	va_end(ap);
}

/* A library's message: its level's event, one prefix, no newline. */
START_TEST(test_log_library_messages)
{
	FILE *f = file_open();
	char *text;

	log_set_level(LOG_LVL_INFO);
	lib_print(LOG_LVL_WARN, "libbpf: map '%s': failed to pin\n", "cfg");
	lib_print(LOG_LVL_INFO, "no prefix of its own\n");
	lib_print(LOG_LVL_DEBUG, "libbpf: debug detail\n");
	text = file_text(f);
	ck_assert_msg(
		strstr(text,
		       "\"level\":\"warn\",\"event\":\"warning\",\"msg\":\"libbpf: map 'cfg': failed to pin\"}\n"),
		"%s", text);
	ck_assert_msg(
		strstr(text,
		       "\"level\":\"info\",\"event\":\"info\",\"msg\":\"libbpf: no prefix of its own\"}\n"),
		"%s", text);
	ck_assert_ptr_null(strstr(text, "libbpf: libbpf"));
	ck_assert_ptr_null(strstr(text, "debug detail"));
	log_set_level(LOG_LVL_DEBUG);
	lib_print(LOG_LVL_DEBUG, "libbpf: debug detail\n");
	ck_assert_ptr_nonnull(strstr(
		file_text(f),
		"\"level\":\"debug\",\"event\":\"debug\",\"msg\":\"libbpf: debug detail\"}"));
	log_set_output(NULL);
	fclose(f);
}
END_TEST

static void fold_stop_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	loop_stop(loop);
}

/* Lines of text with event ev and kind, their count summed into *sum. */
static int kind_lines(const char *text, const char *kind, long long *sum,
		      char *last_msg, size_t last_len)
{
	const char *s = text, *nl;
	int n = 0;

	*sum = 0;
	for (; (nl = strchr(s, '\n')); s = nl + 1) {
		char line[2048];
		json_t *o;

		snprintf(line, sizeof(line), "%.*s", (int)(nl - s), s);
		o = json_loads(line, 0, NULL);
		ck_assert_msg(o, "not JSON: %s", line);
		if (json_is_string(json_object_get(o, "kind")) &&
		    !strcmp(json_string_value(json_object_get(o, "kind")),
			    kind)) {
			n++;
			*sum += json_integer_value(json_object_get(o, "count"));
			snprintf(last_msg, last_len, "%s",
				 json_string_value(json_object_get(o, "msg")));
		}
		json_decref(o);
	}
	return n;
}

/*
 * A warning repeated per query folds per kind: the first at once, the rest
 * of the second as one line with the last message; counts add up; another
 * kind is its own; log_close() writes what is held. Without the loop, each
 * call is a line.
 */
START_TEST(test_log_folded_warning)
{
	struct loop *loop;
	struct loop_timer *t;
	FILE *f = file_open();
	char last[256];
	long long sum;
	int i;

	ck_assert_int_eq(loop_new(&loop), 0);
	log_set_level(LOG_LVL_INFO);
	log_folded(LOG_LVL_WARN, "early", "before the loop %d", 1);
	log_folded(LOG_LVL_WARN, "early", "before the loop %d", 2);
	ck_assert_int_eq(
		kind_lines(file_text(f), "early", &sum, last, sizeof(last)), 2);
	ck_assert_int_eq(log_attach_loop(loop), 0);
	for (i = 0; i < 100; i++)
		log_folded(LOG_LVL_WARN, "learn_failed",
			   "cannot learn the addresses of n%d.example", i);
	log_folded(LOG_LVL_ERROR, "upstream", "upstream %s", "down");
	log_folded(LOG_LVL_DEBUG, "quiet", "below the level");
	ck_assert_int_eq(kind_lines(file_text(f), "learn_failed", &sum, last,
				    sizeof(last)),
			 1);
	ck_assert_int_eq(sum, 1);
	ck_assert_str_eq(last, "cannot learn the addresses of n0.example");
	ck_assert_ptr_nonnull(strstr(
		file_text(f),
		"\"level\":\"warn\",\"event\":\"warning\",\"msg\":\"cannot learn the addresses of n0.example\",\"kind\":\"learn_failed\",\"count\":1}\n"));
	ck_assert_ptr_nonnull(strstr(
		file_text(f),
		"\"level\":\"error\",\"event\":\"error\",\"msg\":\"upstream down\",\"kind\":\"upstream\",\"count\":1}\n"));
	t = loop_timer_new(loop, fold_stop_cb, NULL);
	ck_assert_ptr_nonnull(t);
	loop_timer_arm(t, 1400);
	ck_assert_int_eq(loop_run(loop), 0);
	ck_assert_int_eq(kind_lines(file_text(f), "learn_failed", &sum, last,
				    sizeof(last)),
			 2);
	ck_assert_int_eq(sum, 100);
	ck_assert_str_eq(last, "cannot learn the addresses of n99.example");
	/* The held line opened a new second: these are held, and written by
	 * log_close(). */
	log_folded(LOG_LVL_WARN, "learn_failed", "x");
	log_folded(LOG_LVL_WARN, "learn_failed", "y");
	log_folded(LOG_LVL_WARN, "learn_failed", "z");
	ck_assert_int_eq(kind_lines(file_text(f), "learn_failed", &sum, last,
				    sizeof(last)),
			 2);
	log_close(0);
	ck_assert_int_eq(kind_lines(file_text(f), "learn_failed", &sum, last,
				    sizeof(last)),
			 3);
	ck_assert_int_eq(sum, 103);
	ck_assert_str_eq(last, "z");
	ck_assert_ptr_null(strstr(file_text(f), "below the level"));
	loop_timer_free(t);
	loop_free(loop);
	log_set_output(NULL);
	fclose(f);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("output");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_log_drops_whole_lines);
	tcase_add_test(tc, test_log_one_dropped_line_per_stall);
	tcase_add_test(tc, test_log_drains_on_epollout);
	tcase_add_test(tc, test_log_close_is_bounded);
	tcase_add_test(tc, test_log_sandbox_id_on_every_line);
	tcase_add_test(tc, test_log_library_messages);
	tcase_add_test(tc, test_log_folded_warning);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	/* As in egressd: a reader gone is EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
