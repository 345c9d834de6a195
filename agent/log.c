// SPDX-License-Identifier: GPL-2.0-only
/*
 * The log stream: every line on stdout is one JSON object with ts, level
 * and event first. Lines go into a bounded buffer owned here and leave it
 * with non-blocking writes, once per loop iteration (log_flush) and when
 * the output can take more (EPOLLOUT, log_attach_loop), so a flood of
 * violations costs a few writes and a reader that stops reading can never
 * stall the loop: when the buffer is full, whole lines are dropped and
 * counted, and one log_dropped line says how many once writing resumes.
 * Hot fixed-shape lines (violations) are preformatted by their module and
 * written with log_emit_raw(), byte for byte what log_emit() writes,
 * without jansson.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/util.h"

static enum log_level min_level = LOG_LVL_INFO;

/*
 * ,"sandboxId":"…" as every line carries it after "event" (the peer's
 * sandbox_id on every line), preformatted once; empty when unset.
 */
static char sandbox_member[600];
static size_t sandbox_member_len;
static json_t *sandbox_id_json;

/*
 * The output: a ring of LOG_BUF_SIZE bytes that only ever holds whole
 * lines (a line that does not fit is dropped, never cut), written to fd.
 * Once a line is dropped, lines keep being dropped until the ring is half
 * empty, so a slow reader gets one log_dropped line per stall rather than
 * one per freed line.
 */
#define LOG_BUF_SIZE (1u << 20)
/* After a write error other than EAGAIN (reader gone): retry this late. */
#define LOG_RETRY_MS 1000

static struct {
	char buf[LOG_BUF_SIZE];
	size_t head; /* first unwritten byte */
	size_t used; /* bytes after head */
	int fd; /* -1: not opened yet */
	bool own_fd; /* fd is our reopen of the output: close it */
	bool is_sock; /* write with send(MSG_DONTWAIT) */
	bool pollable; /* epoll accepts fd */
	FILE *target; /* NULL: stdout */
	bool dropping; /* dropping lines until the ring is half empty */
	uint64_t dropped; /* lines dropped since the last log_dropped line */
	uint64_t dropped_total;
	uint64_t retry_at; /* util_clock_ms(): no write before (error) */
	struct loop *loop;
	bool watching; /* fd registered for EPOLLOUT */
	struct loop_timer *retry;
	bool atexit_done;
	bool gave_up; /* a bounded drain timed out: do not wait again */
} lo = { .fd = -1 };

static void log_atexit(void);

/*
 * Pick how to write to fd without ever blocking: a regular file (or block
 * device) never blocks for long and is written as is; a socket takes
 * MSG_DONTWAIT per call. Anything else (a pipe, a FIFO, a terminal) may
 * be shared with other processes, whose writes must not start failing
 * with EAGAIN: reopen it through /proc for a file description of our own
 * and make that non-blocking. Only when that fails (no /proc, a FIFO
 * without a reader yet) is O_NONBLOCK set on the shared description.
 */
static void out_open(void)
{
	int fd = lo.target ? fileno(lo.target) : STDOUT_FILENO;
	char path[64];
	struct stat st;
	int nfd, fl;

	lo.fd = fd;
	lo.own_fd = false;
	lo.is_sock = false;
	lo.pollable = false;
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return;
	lo.pollable = true;
	if (S_ISSOCK(st.st_mode)) {
		lo.is_sock = true;
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (nfd >= 0) {
		lo.fd = nfd;
		lo.own_fd = true;
		return;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void unwatch(void)
{
	if (lo.watching && lo.loop)
		loop_del_fd(lo.loop, lo.fd);
	lo.watching = false;
}

static void out_close(void)
{
	unwatch();
	if (lo.own_fd && lo.fd >= 0)
		close(lo.fd);
	lo.fd = -1;
	lo.own_fd = false;
}

/*
 * One non-blocking write of what the ring holds: 0 when it is empty
 * afterwards, -EAGAIN when the output is full, another -errno when the
 * output failed (the bytes stay for a later try).
 */
static int out_write(void)
{
	struct iovec iov[2];
	size_t first;
	ssize_t n;
	int iovcnt;

	if (!lo.used)
		return 0;
	if (lo.fd < 0)
		out_open();
	if (lo.fd < 0)
		return -EBADF;
	while (lo.used) {
		first = LOG_BUF_SIZE - lo.head;
		if (first > lo.used)
			first = lo.used;
		iov[0].iov_base = lo.buf + lo.head;
		iov[0].iov_len = first;
		iov[1].iov_base = lo.buf;
		iov[1].iov_len = lo.used - first;
		iovcnt = iov[1].iov_len ? 2 : 1;
		if (lo.is_sock) {
			struct msghdr mh = { .msg_iov = iov,
					     .msg_iovlen = iovcnt };

			n = sendmsg(lo.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			n = writev(lo.fd, iov, iovcnt);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		if (!n)
			return -EAGAIN;
		lo.head = (lo.head + (size_t)n) % LOG_BUF_SIZE;
		lo.used -= (size_t)n;
	}
	lo.head = 0;
	return 0;
}

static void ring_put(const void *p, size_t n)
{
	size_t tail = (lo.head + lo.used) % LOG_BUF_SIZE;
	size_t first = LOG_BUF_SIZE - tail;

	if (first > n)
		first = n;
	memcpy(lo.buf + tail, p, first);
	memcpy(lo.buf, (const char *)p + first, n - first);
	lo.used += n;
}

static size_t line_head(char *buf, size_t size, enum log_level lvl,
			const char *event, int *err);

/*
 * The log_dropped line, when lines were dropped and it fits: written
 * whatever the level, as it accounts for lines the level let through.
 */
static void put_dropped_line(bool force)
{
	char line[1024];
	size_t n;
	int err;

	if (!lo.dropped || (!force && lo.used > LOG_BUF_SIZE / 2))
		return;
	n = line_head(line, sizeof(line), LOG_LVL_WARN, "log_dropped", &err);
	n += (size_t)snprintf(line + n, sizeof(line) - n,
			      ",\"dropped\":%llu}\n",
			      (unsigned long long)lo.dropped);
	if (n >= sizeof(line) || LOG_BUF_SIZE - lo.used < n)
		return;
	ring_put(line, n);
	lo.dropped = 0;
	lo.dropping = false;
}

/* One whole line from parts, or none: dropped and counted. */
static void out_line(const struct iovec *parts, int nparts)
{
	size_t len = 0;
	int i;

	if (!lo.atexit_done) {
		/* Lines still buffered at exit go out (bounded wait). */
		lo.atexit_done = true;
		atexit(log_atexit);
	}
	for (i = 0; i < nparts; i++)
		len += parts[i].iov_len;
	if (lo.dropping)
		put_dropped_line(false);
	if (lo.dropping || LOG_BUF_SIZE - lo.used < len) {
		lo.dropping = true;
		lo.dropped++;
		lo.dropped_total++;
		return;
	}
	for (i = 0; i < nparts; i++)
		ring_put(parts[i].iov_base, parts[i].iov_len);
}

int log_set_sandbox_id(const char *id)
{
	char m[sizeof(sandbox_member)];
	size_t n = 0;

	if (!id || !*id) {
		sandbox_member_len = 0;
		json_decref(sandbox_id_json);
		sandbox_id_json = NULL;
		return 0;
	}
	memcpy(m, ",\"sandboxId\":", 13);
	n = 13;
	if (log_json_str(m, sizeof(m), &n, id))
		return -EILSEQ;
	if (n > sizeof(m))
		return -ENAMETOOLONG;
	json_decref(sandbox_id_json);
	sandbox_id_json = json_string(id);
	if (!sandbox_id_json) {
		sandbox_member_len = 0;
		return -ENOMEM;
	}
	memcpy(sandbox_member, m, n);
	sandbox_member_len = n;
	return 0;
}

void log_set_output(FILE *f)
{
	/* What was written for the old output goes there. */
	log_flush();
	out_close();
	lo.target = f;
	lo.retry_at = 0;
}

uint64_t log_dropped_total(void)
{
	return lo.dropped_total;
}

bool log_enabled(enum log_level lvl)
{
	return lvl >= min_level;
}

void log_set_level(enum log_level lvl)
{
	min_level = lvl;
}

enum log_level log_get_level(void)
{
	return min_level;
}

int log_parse_level(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level lvl;
	} names[] = {
		{ "debug", LOG_LVL_DEBUG }, { "info", LOG_LVL_INFO },
		{ "warn", LOG_LVL_WARN },   { "warning", LOG_LVL_WARN },
		{ "error", LOG_LVL_ERROR },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcasecmp(s, names[i].name)) {
			*out = names[i].lvl;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_DEBUG:
		return "debug";
	case LOG_LVL_INFO:
		return "info";
	case LOG_LVL_WARN:
		return "warn";
	case LOG_LVL_ERROR:
		return "error";
	}
	return "info";
}

/*
 * "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" into buf (at least 48 bytes), NUL
 * terminated; returns its length. The broken-down date is computed once
 * per second.
 */
static size_t ts_format(char *buf)
{
	static time_t cached_sec = (time_t)-1;
	static char date[24];
	static size_t date_len;
	struct timespec ts;
	struct tm tm;
	long us;
	size_t n;
	int i;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != cached_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		date_len =
			strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
		cached_sec = ts.tv_sec;
	}
	memcpy(buf, date, date_len);
	n = date_len;
	buf[n++] = '.';
	us = ts.tv_nsec / 1000;
	for (i = 5; i >= 0; i--) {
		buf[n + i] = (char)('0' + us % 10);
		us /= 10;
	}
	n += 6;
	buf[n++] = 'Z';
	buf[n] = '\0';
	return n;
}

void log_timestamp(char *buf, size_t len)
{
	char tmp[48];
	size_t n = ts_format(tmp);

	if (!len)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(buf, tmp, n);
	buf[n] = '\0';
}

void log_emit(enum log_level lvl, const char *event, json_t *fields)
{
	json_t *line;
	char ts[40];

	if (lvl < min_level) {
		json_decref(fields);
		return;
	}
	log_timestamp(ts, sizeof(ts));
	/* Build ts/level/event first so every line starts the same way. */
	line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level",
			 log_level_name(lvl), "event", event);
	if (!line) {
		json_decref(fields);
		return;
	}
	if (sandbox_id_json)
		json_object_set(line, "sandboxId", sandbox_id_json);
	if (fields) {
		json_object_update_missing(line, fields);
		json_decref(fields);
	}
	{
		char small[1024], *big = NULL;
		struct iovec part[2];
		size_t n;

		n = json_dumpb(line, small, sizeof(small),
			       JSON_COMPACT | JSON_PRESERVE_ORDER);
		part[0].iov_base = small;
		if (n > sizeof(small)) {
			big = malloc(n);
			if (big)
				n = json_dumpb(line, big, n,
					       JSON_COMPACT |
						       JSON_PRESERVE_ORDER);
			part[0].iov_base = big;
		}
		part[0].iov_len = n;
		part[1].iov_base = "\n";
		part[1].iov_len = 1;
		if (n && part[0].iov_base)
			out_line(part, 2);
		free(big);
	}
	json_decref(line);
}

static inline void put(char *dst, size_t size, size_t *len, const void *src,
		       size_t n)
{
	if (*len + n <= size)
		memcpy(dst + *len, src, n);
	*len += n;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0. */
static size_t utf8_seq_len(const unsigned char *p)
{
	unsigned int c = p[0], v, k, i;

	if (c < 0xc2 || c > 0xf4)
		return 0; /* continuation byte, overlong lead or > U+10FFFF */
	if (c < 0xe0) {
		k = 2;
		v = c & 0x1f;
	} else if (c < 0xf0) {
		k = 3;
		v = c & 0x0f;
	} else {
		k = 4;
		v = c & 0x07;
	}
	for (i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		v = (v << 6) | (p[i] & 0x3f);
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	if ((k == 3 && v < 0x800) || (k == 4 && v < 0x10000))
		return 0;
	return k;
}

int log_json_str(char *dst, size_t size, size_t *len, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s, *run;
	size_t n = *len, k;
	char esc[6];
	unsigned char c;

	put(dst, size, &n, "\"", 1);
	for (;;) {
		run = p;
		while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		put(dst, size, &n, run, (size_t)(p - run));
		c = *p;
		if (!c)
			break;
		if (c >= 0x80) {
			k = utf8_seq_len(p);
			if (!k)
				return -EILSEQ;
			put(dst, size, &n, p, k);
			p += k;
			continue;
		}
		esc[0] = '\\';
		k = 2;
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			k = 6;
			break;
		}
		put(dst, size, &n, esc, k);
		p++;
	}
	put(dst, size, &n, "\"", 1);
	*len = n;
	return 0;
}

/* {"ts":…,"level":…,"event":…, into buf; its length (> size: too small). */
static size_t line_head(char *buf, size_t size, enum log_level lvl,
			const char *event, int *err)
{
	const char *lname = log_level_name(lvl);
	char ts[48];
	size_t n = 0, tlen = ts_format(ts);

	put(buf, size, &n, "{\"ts\":\"", 7);
	put(buf, size, &n, ts, tlen);
	put(buf, size, &n, "\",\"level\":\"", 11);
	put(buf, size, &n, lname, strlen(lname));
	put(buf, size, &n, "\",\"event\":", 10);
	*err = log_json_str(buf, size, &n, event);
	put(buf, size, &n, sandbox_member, sandbox_member_len);
	return n;
}

void log_emit_raw(enum log_level lvl, const char *event, const char *members,
		  size_t len)
{
	char head[256], *big = NULL, *h = head;
	struct iovec part[4];
	size_t n;
	int err, k = 0;

	if (lvl < min_level)
		return;
	n = line_head(head, sizeof(head), lvl, event, &err);
	if (!err && n > sizeof(head)) {
		/* An unusually long event name. */
		big = malloc(n);
		if (!big)
			return;
		n = line_head(big, n, lvl, event, &err);
		h = big;
	}
	if (err) {
		/* json_pack() would have refused the event name: no line. */
		free(big);
		return;
	}
	part[k].iov_base = h;
	part[k++].iov_len = n;
	if (len) {
		part[k].iov_base = ",";
		part[k++].iov_len = 1;
		part[k].iov_base = (void *)members;
		part[k++].iov_len = len;
	}
	part[k].iov_base = "}\n";
	part[k++].iov_len = 2;
	out_line(part, k);
	free(big);
}

static void log_msg(enum log_level lvl, const char *event, const char *fmt,
		    va_list ap)
{
	char buf[1024];

	if (lvl < min_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_emit(lvl, event, json_pack("{s:s}", "msg", buf));
}

/* The convenience forms' event for each level. */
static const char *msg_event(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_DEBUG:
		return "debug";
	case LOG_LVL_INFO:
		return "info";
	case LOG_LVL_WARN:
		return "warning";
	case LOG_LVL_ERROR:
		return "error";
	}
	return "info";
}

void log_vprefixed(enum log_level lvl, const char *prefix, const char *fmt,
		   va_list ap)
{
	size_t plen = strlen(prefix), len;
	char buf[1024];
	const char *text = buf;

	if (lvl < min_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	len = strlen(buf);
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	/* The library's own "prefix: " would make it "prefix: prefix: ". */
	if (!strncmp(text, prefix, plen) && text[plen] == ':') {
		text += plen + 1;
		while (*text == ' ')
			text++;
	}
	log_emit(lvl, msg_event(lvl),
		 json_pack("{s:s++}", "msg", prefix, ": ", text));
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_msg(LOG_LVL_WARN, "warning", fmt, ap);
	va_end(ap);
}

void log_errorx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_msg(LOG_LVL_ERROR, "error", fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_msg(LOG_LVL_INFO, "info", fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_msg(LOG_LVL_DEBUG, "debug", fmt, ap);
	va_end(ap);
}

/*
 * Folded messages (log_folded): per kind, the first in a window is written
 * at once and the rest of the window as one line, with the last message,
 * once it is over. Kinds are few and fixed (string literals at the call
 * sites), so a small table searched in order is enough; past FOLD_KINDS
 * kinds, lines are written as they come.
 */
#define FOLD_KINDS 64
#define FOLD_WINDOW_MS 1000
#define FOLD_KIND_MAX 48

static struct fold_msg {
	char kind[FOLD_KIND_MAX];
	enum log_level lvl;
	uint64_t window_ms; /* util_clock_ms() the window started */
	uint64_t pending; /* messages held since then */
	char msg[1024]; /* the last of them */
} folds[FOLD_KINDS];
static size_t n_folds;
static struct loop_timer *fold_timer;

static void fold_line(enum log_level lvl, const char *kind, const char *msg,
		      uint64_t count)
{
	log_emit(lvl, msg_event(lvl),
		 json_pack("{s:s, s:s, s:I}", "msg", msg, "kind", kind, "count",
			   (json_int_t)count));
}

/* Write held messages whose window is over (all: every one). */
static void fold_sweep(bool all)
{
	uint64_t now = util_clock_ms();
	bool held = false;
	size_t i;

	for (i = 0; i < n_folds; i++) {
		struct fold_msg *f = &folds[i];

		if (!f->pending)
			continue;
		if (all || now - f->window_ms >= FOLD_WINDOW_MS) {
			fold_line(f->lvl, f->kind, f->msg, f->pending);
			f->pending = 0;
			f->window_ms = now;
		} else {
			held = true;
		}
	}
	if (held && fold_timer && !loop_timer_is_armed(fold_timer))
		loop_timer_arm(fold_timer, FOLD_WINDOW_MS / 4);
}

static void fold_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	fold_sweep(false);
}

void log_folded(enum log_level lvl, const char *kind, const char *fmt, ...)
{
	uint64_t now = util_clock_ms();
	struct fold_msg *f = NULL;
	char msg[sizeof(folds[0].msg)];
	va_list ap;
	size_t i;

	if (lvl < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (i = 0; i < n_folds; i++) {
		if (!strncmp(folds[i].kind, kind, FOLD_KIND_MAX - 1) &&
		    folds[i].lvl == lvl) {
			f = &folds[i];
			break;
		}
	}
	/* Without the loop no timer writes held lines: write each. */
	if (!fold_timer) {
		fold_line(lvl, kind, msg, 1);
		return;
	}
	if (f && now - f->window_ms < FOLD_WINDOW_MS) {
		f->pending++;
		memcpy(f->msg, msg, sizeof(msg));
		if (!loop_timer_is_armed(fold_timer))
			loop_timer_arm(fold_timer, FOLD_WINDOW_MS / 4);
		return;
	}
	if (f) {
		/* Window over: what it held first, then this one. */
		if (f->pending)
			fold_line(f->lvl, f->kind, f->msg, f->pending);
		f->pending = 0;
		f->window_ms = now;
	} else if (n_folds < FOLD_KINDS) {
		f = &folds[n_folds++];
		snprintf(f->kind, sizeof(f->kind), "%s", kind);
		f->lvl = lvl;
		f->window_ms = now;
		f->pending = 0;
	}
	fold_line(lvl, kind, msg, 1);
}

void log_folded_flush(void)
{
	fold_sweep(true);
}

static void flush(void);

static void watch_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	flush();
}

static void retry_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	flush();
}

/*
 * Write what the ring holds without blocking. What the output cannot take
 * now waits for EPOLLOUT (or, for an output epoll refuses or one that
 * failed, for a timer), so it leaves without waiting for the next event.
 */
static void flush(void)
{
	int ret;

	if (lo.retry_at && util_clock_ms() < lo.retry_at)
		return;
	lo.retry_at = 0;
	ret = out_write();
	if (lo.dropping) {
		/* Writing resumed: say how many lines are missing (once the
		 * ring is half empty). */
		put_dropped_line(false);
		if (!ret)
			ret = out_write();
	}
	if (!ret) {
		unwatch();
		return;
	}
	if (!lo.loop)
		return;
	if (ret == -EAGAIN && lo.pollable && !lo.watching) {
		if (!loop_add_fd(lo.loop, lo.fd, EPOLLOUT, watch_cb, NULL))
			lo.watching = true;
		else
			lo.pollable = false;
	}
	if (ret == -EAGAIN && lo.watching)
		return;
	/* Failed (EPIPE, EIO, …) or not pollable: try again later, without
	 * a watch that would report the error at every iteration. */
	unwatch();
	if (ret != -EAGAIN)
		lo.retry_at = util_clock_ms() + LOG_RETRY_MS;
	if (lo.retry && !loop_timer_is_armed(lo.retry))
		loop_timer_arm(lo.retry, ret == -EAGAIN ? 50 : LOG_RETRY_MS);
}

void log_flush(void)
{
	/* While the output is full, EPOLLOUT says when to try again: no
	 * failing write at every loop iteration. */
	if (!lo.watching)
		flush();
}

int log_attach_loop(struct loop *loop)
{
	lo.retry = loop_timer_new(loop, retry_cb, NULL);
	if (!lo.retry)
		return -ENOMEM;
	fold_timer = loop_timer_new(loop, fold_timer_cb, NULL);
	if (!fold_timer) {
		loop_timer_free(lo.retry);
		lo.retry = NULL;
		return -ENOMEM;
	}
	lo.loop = loop;
	return 0;
}

/*
 * Write out the ring, waiting at most timeout_ms in all for the output to
 * take it. Touches no loop state (runs at exit too).
 */
static void drain(int timeout_ms)
{
	uint64_t end = util_clock_ms() + (uint64_t)timeout_ms, now;
	struct pollfd pfd;
	int ret;

	for (;;) {
		ret = out_write();
		if (!ret && lo.dropped) {
			put_dropped_line(true);
			if (lo.used)
				continue;
		}
		if (ret != -EAGAIN)
			break;
		now = util_clock_ms();
		if (now >= end) {
			lo.gave_up = true;
			break;
		}
		pfd.fd = lo.fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)(end - now)) < 0 && errno != EINTR)
			break;
	}
}

void log_close(int timeout_ms)
{
	/* Held folded messages go out first (they are older). */
	fold_sweep(true);
	if (fold_timer)
		loop_timer_free(fold_timer);
	fold_timer = NULL;
	unwatch();
	if (lo.retry)
		loop_timer_free(lo.retry);
	lo.retry = NULL;
	lo.loop = NULL;
	lo.retry_at = 0;
	drain(timeout_ms);
}

static void log_atexit(void)
{
	/* The loop may be gone by now: only the output is touched. After
	 * log_close() gave up on a stalled reader, exit at once. */
	lo.retry_at = 0;
	drain(lo.gave_up ? 0 : 1000);
}
