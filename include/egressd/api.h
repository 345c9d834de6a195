/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * HTTP policy API, compatible with the OpenSandbox egress sidecar (same
 * paths, JSON, auth header, status codes; docs/api.md), plus /status and
 * /metrics. Served by libmicrohttpd driven from egressd's event loop (no
 * threads), so a request never races the policy state. The API knows
 * nothing of the agent's internals: what it needs comes through struct
 * api_ops, which agent.c fills.
 */
#ifndef __EGRESSD_API_H
#define __EGRESSD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <jansson.h>

#include "egressd/loop.h"
#include "egressd/policy.h"

struct api;

/* Request bodies larger than this are rejected with 413 (never truncated). */
#define API_BODY_MAX (1u << 20)

/* A growable text buffer for /metrics. */
struct api_buf {
	char *data;
	size_t len, cap;
};
int api_buf_printf(struct api_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct api_ops {
	void *arg;
	/* Enforcement installed (redirect, nftables and BPF as configured). */
	bool (*ready)(void *arg);
	/* The user policy in force (never NULL). */
	const struct policy *(*policy)(void *arg);
	/* "dns" or "dns+nft": the enforcement mode in force. */
	const char *(*enforcement_mode)(void *arg);
	/*
	 * Replace the user policy, all or nothing across DNS, nftables and
	 * BPF, then persist it (policy file) once applied. Takes ownership
	 * of p on success only. 0, or -errno with err saying why (the old
	 * policy stays in force everywhere).
	 */
	int (*replace)(void *arg, struct policy *p, char *err, size_t errlen);
	/* GET /status body (docs/api.md); new reference. */
	json_t *(*status)(void *arg);
	/* GET /metrics body, Prometheus text format. 0 or -ENOMEM. */
	int (*metrics)(void *arg, struct api_buf *out);
};

/*
 * Listen on addr ("[host]:port", ":port", "host:port"; the agent's
 * default is defaults.h's EGRESSD_DEFAULT_HTTP_ADDR) and serve from loop. token NULL = no auth. max_rules as for
 * policy_parse_json. 0 or -errno with err saying which address and why.
 */
int api_new(struct api **out, struct loop *loop, const char *addr,
	    const char *token, size_t max_rules, const struct api_ops *ops,
	    char *err, size_t errlen);
void api_free(struct api *api);

/* Counters for /metrics. */
struct api_stats {
	unsigned long long requests, unauthorized, errors;
};
void api_get_stats(const struct api *api, struct api_stats *st);

/* The TCP port actually bound (useful with port 0). */
int api_port(const struct api *api);

/*
 * Pure helpers behind the handlers (no socket; unit-tested).
 */

/* "allow_all" (allow, no rules), "deny_all" (deny, no rules), "enforcing". */
const char *api_policy_mode(const struct policy *p);

/*
 * Constant-time token check (lengths compared first, as the peer does).
 * got may be NULL (header missing); it need not be NUL-terminated.
 */
bool api_token_equal(const char *want, const char *got, size_t got_len);

/*
 * PATCH body: a JSON array of {"action","target"} rules, validated as
 * policy rules are (errors name the rule as patch[i]). "null" and "[]"
 * give -EINVAL "empty array". 0, -EINVAL or -ENOMEM; *rules is freed with
 * policy_rules_free(*rules, *n).
 */
int api_patch_parse(const char *buf, size_t len, struct policy_rule **rules,
		    size_t *n, char *err, size_t errlen);

/*
 * The peer's merge: patch rules first, deduplicated by lower-cased target
 * (first wins), then the old rules whose lower-cased target is not in the
 * patch; defaultAction kept. No rule cap here (the caller checks). 0 or
 * -ENOMEM.
 */
int api_patch_merge(const struct policy *old, const struct policy_rule *patch,
		    size_t n_patch, struct policy **out);

/*
 * DELETE body: a JSON array of strings, each trimmed and lower-cased.
 * "null" and "[]" give -EINVAL "empty array". Free with api_targets_free.
 */
int api_delete_parse(const char *buf, size_t len, char ***targets, size_t *n,
		     char *err, size_t errlen);
void api_targets_free(char **targets, size_t n);

/*
 * old minus the rules whose lower-cased target equals one of targets
 * (already lower-cased, as api_delete_parse gives them); *removed says how
 * many went. 0 or -ENOMEM.
 */
int api_delete_apply(const struct policy *old, char *const *targets,
		     size_t n_targets, struct policy **out, size_t *removed);

#endif /* __EGRESSD_API_H */
