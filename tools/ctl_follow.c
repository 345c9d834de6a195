// SPDX-License-Identifier: GPL-2.0-only
/*
 * egressctl watch: follows egressd's log stream (docs/logs.md), from
 * stdin or from a log file it tails like `tail -F` (truncation and
 * rotation by rename are followed), and prints the violation lines that
 * pass --layer and --reason: one text line each, or the JSON line as is.
 * Lines that are not JSON, or not violations, are skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <jansson.h>

#include "egressctl.h"

/* How often a followed log file is looked at once its end is reached. */
#define CTL_WATCH_POLL_NS 200000000L

/* One log line: print it if it is a violation (or a summary of
 * violations) that passes the filters. */
static void watch_line(struct ctl *ctl, char *line, size_t len)
{
	json_error_t jerr;
	json_t *o, *dom;
	const char *layer, *ev;
	bool summary;

	o = json_loadb(line, len, 0, &jerr);
	if (!o)
		return; /* not JSON: not one of egressd's lines */
	/* violation_summary: a DNS flood past its budget, counted in one
	 * line per registered domain and second (docs/logs.md) */
	ev = ctl_jstr(o, "event", "");
	summary = !strcmp(ev, "violation_summary");
	if (strcmp(ev, "violation") && !summary)
		goto out;
	layer = ctl_jstr(o, "layer", "?");
	if (ctl->layer && strcmp(layer, ctl->layer))
		goto out;
	if (ctl->reason && strcmp(ctl_jstr(o, "reason", ""), ctl->reason))
		goto out;
	if (ctl->json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		goto flush;
	}
	printf("%s  %-6s  %-13s  %-8s  ", ctl_jstr(o, "ts", "-"), layer,
	       ctl_jstr(o, "reason", "?"), ctl_jstr(o, "action", "?"));
	if (!strcmp(layer, "dns")) {
		printf("%s %s", ctl_jstr(o, "qname", "?"),
		       ctl_jstr(o, "qtype", "?"));
		if (ctl_jstr(o, "client", NULL))
			printf("  from %s", ctl_jstr(o, "client", ""));
		if (summary) {
			dom = json_object_get(o, "domain");
			if (json_is_string(dom))
				printf("  (summary: names under %s)",
				       json_string_value(dom));
			else
				printf("  (summary: names past the budget)");
		}
	} else {
		bool v6 = ctl_jint(o, "family") == 6;

		printf("%s %s%s%s:%" JSON_INTEGER_FORMAT
		       " -> %s%s%s:%" JSON_INTEGER_FORMAT,
		       ctl_jstr(o, "proto", "?"), v6 ? "[" : "",
		       ctl_jstr(o, "src", "?"), v6 ? "]" : "",
		       ctl_jint(o, "sport"), v6 ? "[" : "",
		       ctl_jstr(o, "dst", "?"), v6 ? "]" : "",
		       ctl_jint(o, "dport"));
		dom = json_object_get(o, "domain");
		if (json_is_string(dom))
			printf("  (%s)", json_string_value(dom));
	}
	if (ctl_jint(o, "count") > 1)
		printf("  x%" JSON_INTEGER_FORMAT, ctl_jint(o, "count"));
	putchar('\n');
flush:
	fflush(stdout);
out:
	json_decref(o);
}

struct linebuf {
	char *buf;
	size_t len, cap;
};

/* Append what read() gives and hand complete lines to watch_line(). */
static int watch_feed(struct ctl *ctl, struct linebuf *lb, int fd)
{
	char *nl, *p;
	size_t off;
	ssize_t n;

	if (lb->cap - lb->len < 65536) {
		p = realloc(lb->buf, lb->cap + 65536);
		if (!p)
			return -ENOMEM;
		lb->buf = p;
		lb->cap += 65536;
	}
	n = read(fd, lb->buf + lb->len, lb->cap - lb->len);
	if (n < 0)
		return errno == EINTR ? 1 : -errno;
	if (!n)
		return 0;
	lb->len += n;
	off = 0;
	while ((nl = memchr(lb->buf + off, '\n', lb->len - off))) {
		watch_line(ctl, lb->buf + off, nl - (lb->buf + off));
		off = nl - lb->buf + 1;
	}
	memmove(lb->buf, lb->buf + off, lb->len - off);
	lb->len -= off;
	/* A line longer than 1 MiB is no line of egressd's: drop it. */
	if (lb->len > (1u << 20))
		lb->len = 0;
	return 1;
}

static int watch_file(struct ctl *ctl, struct linebuf *lb)
{
	struct timespec tick = { 0, CTL_WATCH_POLL_NS };
	struct stat st, cur;
	int fd, ret;

	fd = open(ctl->log_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!ctl->from_start)
		lseek(fd, 0, SEEK_END);
	for (;;) {
		ret = watch_feed(ctl, lb, fd);
		if (ret < 0)
			break;
		if (ret)
			continue;
		if (!ctl->follow)
			break;
		/* At the end: follow truncation (copytruncate) and renames. */
		if (!fstat(fd, &cur) && lseek(fd, 0, SEEK_CUR) > cur.st_size)
			lseek(fd, 0, SEEK_SET);
		if (!stat(ctl->log_file, &st) &&
		    (st.st_ino != cur.st_ino || st.st_dev != cur.st_dev)) {
			int nfd = open(ctl->log_file, O_RDONLY | O_CLOEXEC);

			if (nfd >= 0) {
				close(fd);
				fd = nfd;
				lb->len = 0;
				continue;
			}
		}
		nanosleep(&tick, NULL);
	}
	close(fd);
	return ret;
}

int ctl_watch(struct ctl *ctl, int argc, char **argv)
{
	struct linebuf lb = { 0 };
	int ret;

	if (argc)
		return ctl_usage(
			ctl, "watch takes no arguments (--log FILE or stdin)");
	if ((ctl->seen & (OPT_FROM_START | OPT_NO_FOLLOW)) && !ctl->log_file)
		return ctl_usage(
			ctl, "--from-start and --no-follow need --log FILE");
	if (!ctl->log_file && isatty(STDIN_FILENO))
		return ctl_usage(
			ctl,
			"watch reads egressd's stdout: pipe it in (egressd | egressctl watch) or give --log FILE");
	if (ctl->log_file) {
		ret = watch_file(ctl, &lb);
	} else {
		while ((ret = watch_feed(ctl, &lb, STDIN_FILENO)) > 0)
			;
		if (!ret && lb.len)
			watch_line(ctl, lb.buf, lb.len); /* last, no newline */
	}
	free(lb.buf);
	if (ret < 0)
		return ctl_err(ctl, CTL_EXIT_ERR, "cannot read %s: %s",
			       ctl->log_file ? ctl->log_file : "stdin",
			       strerror(-ret));
	return CTL_EXIT_OK;
}
