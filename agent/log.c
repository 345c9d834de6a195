// SPDX-License-Identifier: GPL-2.0-only
/*
 * The log stream: every line on stdout is one JSON object with ts, level
 * and event first. stdout is fully buffered and flushed by the event loop
 * once per iteration, so a flood of violations costs a few writes, while a
 * reader still sees each line within one loop iteration.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "egressd/log.h"

static enum log_level min_level = LOG_LVL_INFO;

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

void log_timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char date[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06ldZ", date, ts.tv_nsec / 1000);
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
	json_dumpf(line, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(line);
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
	fflush(stdout);
}
