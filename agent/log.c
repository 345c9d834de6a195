// SPDX-License-Identifier: GPL-2.0-only
/*
 * The log stream: every line on stdout is one JSON object with ts, level
 * and event first. stdout is fully buffered and flushed by the event loop
 * once per iteration, so a flood of violations costs a few writes, while a
 * reader still sees each line within one loop iteration. Hot fixed-shape
 * lines (violations) are preformatted by their module and written with
 * log_emit_raw(), byte for byte what log_emit() writes, without jansson.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "egressd/log.h"

static enum log_level min_level = LOG_LVL_INFO;
static FILE *log_out; /* NULL: stdout */

static FILE *out(void)
{
	return log_out ? log_out : stdout;
}

void log_set_output(FILE *f)
{
	log_out = f;
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
		date_len = strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S",
				    &tm);
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
	if (fields) {
		json_object_update_missing(line, fields);
		json_decref(fields);
	}
	json_dumpf(line, out(), JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', out());
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
	return n;
}

void log_emit_raw(enum log_level lvl, const char *event, const char *members,
		  size_t len)
{
	char head[256], *big = NULL, *h = head;
	size_t n;
	FILE *f = out();
	int err;

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
	fwrite_unlocked(h, 1, n, f);
	if (len) {
		fputc_unlocked(',', f);
		fwrite_unlocked(members, 1, len, f);
	}
	fwrite_unlocked("}\n", 1, 2, f);
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

void log_flush(void)
{
	fflush(out());
}
