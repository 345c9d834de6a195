/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Log stream: one JSON object per line on stdout, nothing else on stdout.
 * Every line carries "ts" (RFC 3339, UTC, microseconds), "level" and
 * "event" (DESIGN.md §6). Lines are buffered (1 MiB) and written without
 * ever blocking, once per event-loop iteration (log_flush) so a burst of
 * violations costs one write, and as the output drains (log_attach_loop).
 * When the buffer is full, whole lines are dropped and counted, and a
 * log_dropped line says how many once writing resumes (docs/logs.md).
 * Errors that stop egressd before its loop runs go to stderr instead
 * (config_load() fills an error buffer, main.c prints it), so a shell
 * user sees them.
 */
#ifndef __EGRESSD_LOG_H
#define __EGRESSD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
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

/*
 * The same line from preformatted members: members is len bytes of JSON
 * object members ("\"k\":v,\"k2\":v2", no braces, no leading comma; may
 * be empty), written after ts, level and event exactly as log_emit() would
 * write them. For hot fixed-shape lines (violations) that must not go
 * through jansson.
 */
void log_emit_raw(enum log_level lvl, const char *event, const char *members,
		  size_t len);

/* Whether a line of level lvl would be written. */
bool log_enabled(enum log_level lvl);

/*
 * Append s as a JSON string, quotes included, escaped byte for byte as
 * jansson's compact dump escapes it (\" \\ \b \f \n \r \t, other controls
 * as \u00XX, UTF-8 passed through), to the size-byte buffer dst that holds
 * *len bytes. Bytes past size are not written but *len always grows by the
 * full length, so *len > size afterwards says the buffer was too small.
 * -EILSEQ if s is not valid UTF-8 (json_string() would refuse it), else 0.
 */
int log_json_str(char *dst, size_t size, size_t *len, const char *s);

/*
 * Where lines go: fileno(f), stdout unless set (tests); NULL restores
 * stdout. What is buffered for the old output is flushed to it first.
 */
void log_set_output(FILE *f);

/* Lines dropped because the output did not keep up, since start. */
uint64_t log_dropped_total(void);

/* {"event":"warning"|"error"|"info"|"debug","msg":…} convenience forms. */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A message that can repeat per query or packet (a learn failure, an
 * upstream error), folded per kind (a short fixed name, "learn_failed")
 * and level: the first in a second is written at once, the rest of that
 * second as one line with the last message when the second is over; each
 * line is the convenience form plus "kind" and "count" (the messages it
 * stands for), so the counts add up to the calls (docs/logs.md). Before
 * log_attach_loop() (no timer) every call is a line with count 1.
 */
void log_folded(enum log_level lvl, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Write every held folded message now (before the stop line). */
void log_folded_flush(void);

/*
 * A library's message (libbpf_set_print) as one line of the convenience
 * form for lvl, msg "prefix: text": trailing newlines are cut, and a
 * "prefix:" the library put there itself is not repeated.
 */
void log_vprefixed(enum log_level lvl, const char *prefix, const char *fmt,
		   va_list ap) __attribute__((format(printf, 3, 0)));

/*
 * Every line carries "sandboxId":id after "event" (NULL or "": none).
 * 0, -EILSEQ (not UTF-8) or -ENAMETOOLONG (too long once escaped;
 * config.c allows 256 bytes without control characters, which fit).
 */
int log_set_sandbox_id(const char *id);

/*
 * Write buffered lines without blocking (called from the loop's
 * before-sleep). What the output cannot take yet stays buffered.
 */
void log_flush(void);

struct loop;
/*
 * Let buffered lines drain as the output accepts them (EPOLLOUT on it)
 * rather than at the next event. 0 or -ENOMEM. Undo with log_close()
 * before loop_free().
 */
int log_attach_loop(struct loop *loop);

/*
 * Write held folded messages, detach from the loop and write what is
 * buffered, waiting at most timeout_ms for a slow reader (at stop). Lines
 * logged later are still buffered; at exit they are written the same way
 * (1 s at most; no wait when a drain already timed out).
 */
void log_close(int timeout_ms);

#endif /* __EGRESSD_LOG_H */
