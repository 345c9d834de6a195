/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Log stream: one JSON object per line on stdout, nothing else on stdout.
 * Every line carries "ts" (RFC 3339, UTC, microseconds), "level" and
 * "event" (DESIGN.md §6). Lines are buffered and flushed once per event-loop
 * iteration (log_flush) so a burst of violations costs one write.
 * Errors that stop egressd before its loop runs go to stderr instead
 * (config_die and friends), so a shell user sees them.
 */
#ifndef __EGRESSD_LOG_H
#define __EGRESSD_LOG_H

#include <stdarg.h>
#include <jansson.h>

enum log_level {
	LOG_LVL_DEBUG = 0,
	LOG_LVL_INFO = 1,
	LOG_LVL_WARN = 2,
	LOG_LVL_ERROR = 3,
};

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* "debug", "info", "warn"/"warning", "error": 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* Write "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (28 bytes with NUL) into buf. */
void log_timestamp(char *buf, size_t len);

/*
 * Emit one line {"ts":…,"level":…,"event":event, …fields}. Takes ownership
 * of fields (may be NULL). Lines below the configured level are dropped.
 */
void log_emit(enum log_level lvl, const char *event, json_t *fields);

/* {"event":"warning"|"error"|"info"|"debug","msg":…} convenience forms. */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Flush buffered lines to stdout (called from the loop's before-sleep). */
void log_flush(void);

#endif /* __EGRESSD_LOG_H */
