/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Small helpers several agent modules share: filling a caller's error
 * buffer, trimming ASCII blanks off a counted string, and the monotonic
 * clock. Header-only
 * (static inline) so every module and test keeps linking as before.
 */
#ifndef __EGRESSD_UTIL_H
#define __EGRESSD_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Format into err (if any) and return ret, for "return util_err(…)". */
static inline int util_err(char *err, size_t errlen, int ret, const char *fmt,
			   ...) __attribute__((format(printf, 4, 5)));

static inline int util_err(char *err, size_t errlen, int ret, const char *fmt,
			   ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static inline bool util_is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

/* Surrounding ASCII whitespace off [s, s+*n); returns the new start. */
static inline const char *util_trim(const char *s, size_t *n)
{
	size_t len = *n;

	while (len && util_is_blank(s[0])) {
		s++;
		len--;
	}
	while (len && util_is_blank(s[len - 1]))
		len--;
	*n = len;
	return s;
}

/*
 * Read the whole (small) file at path into *out, NUL-terminated, its
 * length in *len: 0 or -errno (-ENOENT: no such file).
 */
static inline int util_read_file(const char *path, char **out, size_t *len)
{
	size_t cap = 0, n = 0, r;
	char *buf = NULL, *nb;
	FILE *f = fopen(path, "re");
	int ret = 0;

	*out = NULL;
	*len = 0;
	if (!f)
		return -errno;
	errno = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (!nb) {
				ret = -ENOMEM;
				break;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0) {
			if (ferror(f))
				ret = errno ? -errno : -EIO;
			break;
		}
	}
	fclose(f);
	if (ret) {
		free(buf);
		return ret;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* ASCII lower case, no locale (DNS names, policy targets, JSON keys). */
static inline unsigned char util_ascii_lower(unsigned char c)
{
	return c | ((unsigned int)(c - 'A') < 26) << 5;
}

/* util_ascii_lower() copy of [s, s+n), NUL-terminated; NULL on ENOMEM. */
static inline char *util_lower_dup(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	size_t i;

	if (!d)
		return NULL;
	for (i = 0; i < n; i++)
		d[i] = (char)util_ascii_lower((unsigned char)s[i]);
	d[n] = '\0';
	return d;
}

/*
 * Is the IPv6 address at a16 ::ffff:a.b.c.d (reached as a.b.c.d)? Bytes,
 * not IN6_IS_ADDR_V4MAPPED: addresses inside DNS messages sit at any
 * offset, and the macro reads 32-bit words (UBSan).
 */
static inline bool util_is_v4mapped(const void *a16)
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(a16, prefix, sizeof(prefix));
}

/*
 * FNV-1a, 64 bits, over n bytes at p continuing from h (start with
 * UTIL_FNV1A_INIT): the hash of egressd's in-memory tables.
 */
#define UTIL_FNV1A_INIT 0xcbf29ce484222325ULL

static inline uint64_t util_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (; n; n--, s++) {
		h ^= *s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * The one monotonic clock of egressd: nanoseconds since an arbitrary
 * start (CLOCK_MONOTONIC, the clock bpf_ktime_get_ns() and timerfds use),
 * and its microsecond and millisecond views.
 */
static inline uint64_t util_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline uint64_t util_clock_us(void)
{
	return util_clock_ns() / 1000;
}

static inline uint64_t util_clock_ms(void)
{
	return util_clock_ns() / 1000000;
}

#endif /* __EGRESSD_UTIL_H */
