/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * egressctl's private header: what its parts share. egressctl.c is the
 * command line (options, the command tables, prefix matching, help) and
 * the output helpers every command uses; ctl_http.c the libcurl client of
 * egressd's API; ctl_api.c the commands over that API (policy, status,
 * health); ctl_maps.c the reader of the pinned BPF maps (maps); ctl_follow.c
 * the log follower (watch). Command handlers return an exit code
 * (CTL_EXIT_*); the other functions return 0 or -errno unless they say
 * otherwise.
 */
#ifndef __EGRESSCTL_H
#define __EGRESSCTL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The Makefile's EGRESSD_VERSION: egressctl ships with egressd. */
#define CTL_VERSION EGRESSD_VERSION

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Exit codes (docs/egressctl.md, "Exit status"); keep the doc in sync. */
#define CTL_EXIT_OK 0
#define CTL_EXIT_ERR 1 /* egressd answered 4xx/5xx, or an operation failed */
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_CONN 3 /* egressd not reachable / nothing pinned */

/* Options; bits of struct ctl.seen for the command-specific ones. */
enum {
	OPT_ADDR = 1 << 0,
	OPT_TOKEN = 1 << 1,
	OPT_JSON = 1 << 2,
	OPT_PRETTY = 1 << 3,
	OPT_PIN_DIR = 1 << 4,
	OPT_HELP = 1 << 5,
	OPT_LOG = 1 << 6,
	OPT_FROM_START = 1 << 7,
	OPT_NO_FOLLOW = 1 << 8,
	OPT_LAYER = 1 << 9,
	OPT_REASON = 1 << 10,
};
#define OPT_GLOBAL \
	(OPT_ADDR | OPT_TOKEN | OPT_JSON | OPT_PRETTY | OPT_PIN_DIR | OPT_HELP)
#define OPT_WATCH \
	(OPT_LOG | OPT_FROM_START | OPT_NO_FOLLOW | OPT_LAYER | OPT_REASON)

/* Everything a command needs, passed down explicitly. */
struct ctl {
	const char *addr;
	const char *token;
	const char *pin_dir;
	const char *log_file;
	const char *layer;
	const char *reason;
	bool json;
	bool pretty;
	bool help;
	bool from_start;
	bool follow;
	unsigned int seen; /* OPT_* given on the command line */
	const char *path; /* "egressctl policy get", for messages */
	char base_url[320];
};

/* ---- output (egressctl.c) ------------------------------------------- */

/* Report an error (stderr; with --json also {"error":…} on stdout). */
int ctl_err(struct ctl *ctl, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A usage error: the message, a pointer to --help, CTL_EXIT_USAGE. */
int ctl_usage(struct ctl *ctl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ctl_print_json(struct ctl *ctl, json_t *o);
/* o[key] as a string or an integer; dflt (0) when absent or mistyped. */
const char *ctl_jstr(json_t *o, const char *key, const char *dflt);
json_int_t ctl_jint(json_t *o, const char *key);

/* ---- HTTP client (ctl_http.c) --------------------------------------- */

struct ctl_http_resp {
	long status;
	char *body; /* NUL-terminated, or NULL when empty */
	size_t len;
};

int ctl_http_base_url(struct ctl *ctl);
int ctl_http_do(struct ctl *ctl, const char *method, const char *path,
		const char *body, size_t len, struct ctl_http_resp *r);
void ctl_http_resp_free(struct ctl_http_resp *r);
int ctl_http_json(struct ctl *ctl, const char *method, const char *path,
		  const char *body, size_t len, json_t **out,
		  struct ctl_http_resp *raw);

/* ---- commands ------------------------------------------------------- */

/* ctl_api.c: over egressd's HTTP API. */
int ctl_policy_get(struct ctl *ctl, int argc, char **argv);
int ctl_policy_set(struct ctl *ctl, int argc, char **argv);
int ctl_policy_patch(struct ctl *ctl, int argc, char **argv);
int ctl_policy_delete(struct ctl *ctl, int argc, char **argv);
int ctl_policy_reset(struct ctl *ctl, int argc, char **argv);
int ctl_status(struct ctl *ctl, int argc, char **argv);
int ctl_health(struct ctl *ctl, int argc, char **argv);

/* ctl_maps.c: from the pinned BPF maps, without the API. */
int ctl_maps_show(struct ctl *ctl, int argc, char **argv);
int ctl_maps_dump(struct ctl *ctl, int argc, char **argv);

/* ctl_follow.c: egressd's log stream. */
int ctl_watch(struct ctl *ctl, int argc, char **argv);

#endif /* __EGRESSCTL_H */
