/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Policy model, OpenSandbox-compatible: parsing and validation of the JSON
 * policy and of the always-rules files, and the compiled name matcher used
 * by the DNS proxy.
 *
 * Semantics (docs/policy.md): the effective rule list is deny.always rules,
 * then allow.always rules, then the user's egress[] rules; the first rule
 * that matches decides, otherwise defaultAction. Names are compared
 * case-insensitively and a trailing dot is ignored on rules and queries.
 * "*.example.com" matches any name below example.com (any depth), never the
 * apex.
 */
#ifndef __EGRESSD_POLICY_H
#define __EGRESSD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum policy_action {
	POLICY_DENY = 0,
	POLICY_ALLOW = 1,
};

enum policy_kind {
	POLICY_KIND_DOMAIN = 0, /* exact name */
	POLICY_KIND_WILDCARD = 1, /* "*.suffix" */
	POLICY_KIND_IP = 2, /* single address (prefixlen 32/128) */
	POLICY_KIND_CIDR = 3, /* network, masked to prefixlen */
};

enum policy_origin {
	POLICY_ORIGIN_USER = 0,
	POLICY_ORIGIN_DENY_ALWAYS = 1,
	POLICY_ORIGIN_ALLOW_ALWAYS = 2,
};

/*
 * An address or network. IPv4-mapped IPv6 (::ffff:a.b.c.d, and
 * ::ffff:0:0/96+n) is stored as the IPv4 address/network it stands for.
 */
struct policy_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefixlen; /* 0..32 or 0..128; host bits are zero */
	uint8_t addr[16]; /* network byte order; IPv4 in addr[0..3] */
};

struct policy_rule {
	enum policy_action action;
	enum policy_kind kind;
	/* The target as given, trimmed (what GET /policy returns). */
	char *target;
	/*
	 * DOMAIN: the normalised name (lower case, no trailing dot).
	 * WILDCARD: the normalised suffix without "*." ("example.com").
	 * IP/CIDR: canonical text ("10.0.0.0/8", "2001:db8::1").
	 */
	char *name;
	struct policy_addr addr; /* IP and CIDR only */
};

struct policy {
	enum policy_action default_action;
	size_t n_rules;
	struct policy_rule *rules;
};

/*
 * An empty policy with the given default into *out: 0 or -ENOMEM (the
 * only failure, so no err buffer).
 */
int policy_new(struct policy **out, enum policy_action default_action);
struct policy *policy_dup(const struct policy *p);
void policy_free(struct policy *p);

/*
 * Parse the OpenSandbox policy JSON
 *   {"defaultAction":"allow"|"deny","egress":[{"action":…,"target":…}]}.
 * len 0, whitespace only, "null" and "{}" mean deny-all. A missing or
 * empty defaultAction means deny; a missing or empty rule action means
 * deny. Keys match case-insensitively and unknown keys are ignored (as the
 * peer does). max_rules 0 means unlimited.
 *
 * Returns 0; -EINVAL with err set, naming the rule as egress[i] (0-based)
 * and the problem; or -E2BIG with err "egress rule total count N exceeds
 * limit M" when there are more rules than max_rules.
 */
int policy_parse_json(const char *buf, size_t len, size_t max_rules,
		      struct policy **out, char *err, size_t errlen);

/*
 * Classify and validate one target (trimmed by the caller or not) into
 * rule (action left untouched). 0, or -EINVAL with err describing the
 * problem without any egress[i] prefix. Frees nothing in rule on failure;
 * on success rule->target and rule->name are newly allocated.
 */
int policy_parse_target(const char *target, struct policy_rule *rule, char *err,
			size_t errlen);

/*
 * Index of the first allow rule naming an IPv6 address or network (IPv4-
 * mapped ones count as IPv4), or -1. With OPENSANDBOX_EGRESS_IPV6=deny
 * such a rule could never take effect, so egressd refuses it.
 */
long policy_find_ipv6_allow(const struct policy_rule *rules, size_t n);

/* {"egress":[{"action":…,"target":…},…],"defaultAction":…}; egress is
 * always an array. NULL on ENOMEM. */
json_t *policy_to_json(const struct policy *p);

/*
 * Load an always-rules file: one target per line, surrounding blanks
 * trimmed, blank lines and lines starting with '#' skipped. A missing file
 * is an empty list (0). Invalid lines give -EINVAL with err
 * "PATH:LINE: problem". Other read errors give -errno.
 */
int policy_load_always_file(const char *path, enum policy_action action,
			    struct policy_rule **rules, size_t *n, char *err,
			    size_t errlen);
/*
 * The parser behind it, over size bytes in memory (no NUL needed; the
 * last line may lack its newline). origin names the source in errors
 * ("ORIGIN:LINE: problem"). 0, -EINVAL or -ENOMEM; on error *rules is
 * NULL and *n 0.
 */
int policy_parse_always_buf(const char *buf, size_t size, const char *origin,
			    enum policy_action action,
			    struct policy_rule **rules, size_t *n, char *err,
			    size_t errlen);
void policy_rules_free(struct policy_rule *rules, size_t n);
/* Deep copy of one rule (its strings duplicated); 0 or -ENOMEM. */
int policy_rule_copy(struct policy_rule *dst, const struct policy_rule *src);

/* Longest name a domain or wildcard rule holds (no trailing dot). */
#define POLICY_NAME_MAX 253

/* Compiled matcher over the effective list (agent/matcher.c). */
struct policy_matcher;

struct policy_match {
	enum policy_action action;
	bool matched; /* false: defaultAction decided */
	enum policy_origin origin; /* valid when matched */
	size_t index; /* rule index within its origin */
	/*
	 * The first exact-name rule (not a wildcard) for this very name,
	 * wherever it stands, allows it. Lifts the DoH/DoT provider block
	 * (docs/nftables.md): only a rule naming the provider exactly does.
	 */
	bool exact_allow;
};

/*
 * Build the matcher. The matcher copies what it needs: the inputs may be
 * freed afterwards. IP/CIDR rules are ignored by name lookups. Rules from
 * deny_always always deny and rules from allow_always always allow,
 * whatever their action field says. user may be NULL (deny-all). Into
 * *out: 0, or -ENOMEM / -EOVERFLOW (too many rules or name bytes).
 */
int policy_matcher_new(struct policy_matcher **out, const struct policy *user,
		       const struct policy_rule *deny_always, size_t n_deny,
		       const struct policy_rule *allow_always, size_t n_allow);
void policy_matcher_free(struct policy_matcher *m);

/*
 * Judge a query name (any case, optional single trailing dot, as produced
 * by dnswire). Cost does not depend on the number of rules.
 */
void policy_matcher_lookup(const struct policy_matcher *m, const char *name,
			   size_t len, struct policy_match *out);

/*
 * One rule object of a JSON policy array ({"action":…,"target":…}, keys
 * case-insensitive, a missing or null action meaning deny), as in
 * "egress": errors name it list[i] (the API's PATCH body uses "patch").
 * 0, -EINVAL with err set, or -ENOMEM.
 */
int policy_rule_from_json(json_t *jr, const char *list, size_t i,
			  struct policy_rule *rule, char *err, size_t errlen);

/*
 * Untrusted text for an error message: "…" with quotes, backslashes and
 * non-printable bytes escaped and input past POLICY_QUOTE_MAX bytes cut,
 * so a message is always one short printable line. buf needs
 * POLICY_QBUF_LEN bytes.
 */
#define POLICY_QUOTE_MAX 80
#define POLICY_QBUF_LEN (POLICY_QUOTE_MAX * 4 + 16)
const char *policy_quote(char *buf, size_t buflen, const char *s, size_t n);

/* "object", "array", "string", "number", "boolean", "null": what a JSON
 * value is, for error messages. */
const char *policy_json_kind(const json_t *v);

#endif /* __EGRESSD_POLICY_H */
