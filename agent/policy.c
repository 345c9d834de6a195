// SPDX-License-Identifier: GPL-2.0-only
/*
 * Policy model: parses and validates the OpenSandbox policy JSON and the
 * always-rules files into struct policy / struct policy_rule, renders a
 * policy back to JSON, and compiles the effective rule list (deny.always,
 * allow.always, user rules) into a name matcher whose lookup cost does not
 * depend on the number of rules. The matcher is one open-addressing hash
 * table keyed by (normalised name, is_wildcard) that keeps the lowest
 * effective rule index per key; names are hashed from their last byte
 * backwards so the hash of every label-boundary suffix falls out of a single
 * pass over the query. docs/policy.md describes the user-visible rules.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "egressd/policy.h"
#include "egressd/util.h"

#define POLICY_NAME_MAX 253
#define POLICY_LABEL_MAX 63
/* Longest target text we quote in an error message. */

static unsigned char lower(unsigned char c)
{
	return c | ((unsigned int)(c - 'A') < 26) << 5;
}

const char *policy_quote(char *buf, size_t buflen, const char *s, size_t n)
{
	size_t o = 0, i;

	buf[o++] = '"';
	for (i = 0; i < n && o + 8 < buflen; i++) {
		unsigned char c = s[i];

		if (i == POLICY_QUOTE_MAX) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = c;
		} else if (c < 0x20 || c >= 0x7f) {
			o += snprintf(buf + o, buflen - o, "\\x%02x", c);
		} else {
			buf[o++] = c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

const char *policy_json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "value";
}

/* ---- rules and policies ---------------------------------------------- */

static void rule_fini(struct policy_rule *r)
{
	free(r->target);
	free(r->name);
	r->target = NULL;
	r->name = NULL;
}

static int rule_copy(struct policy_rule *dst, const struct policy_rule *src)
{
	*dst = *src;
	dst->target = NULL;
	dst->name = NULL;
	if (src->target && !(dst->target = strdup(src->target)))
		return -ENOMEM;
	if (src->name && !(dst->name = strdup(src->name))) {
		rule_fini(dst);
		return -ENOMEM;
	}
	return 0;
}

void policy_rules_free(struct policy_rule *rules, size_t n)
{
	size_t i;

	if (!rules)
		return;
	for (i = 0; i < n; i++)
		rule_fini(&rules[i]);
	free(rules);
}

struct policy *policy_new(enum policy_action default_action)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->default_action = default_action;
	return p;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	policy_rules_free(p->rules, p->n_rules);
	free(p);
}

struct policy *policy_dup(const struct policy *p)
{
	struct policy *d = policy_new(p->default_action);
	size_t i;

	if (!d)
		return NULL;
	if (!p->n_rules)
		return d;
	d->rules = calloc(p->n_rules, sizeof(*d->rules));
	if (!d->rules)
		goto err_free;
	for (i = 0; i < p->n_rules; i++) {
		if (rule_copy(&d->rules[i], &p->rules[i]))
			goto err_free;
		d->n_rules = i + 1;
	}
	return d;

err_free:
	policy_free(d);
	errno = ENOMEM;
	return NULL;
}

/* ---- target parsing --------------------------------------------------- */

static bool is_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Validate the dotted name s[0..n) (no trailing dot, no "*." prefix):
 * non-empty labels of at most 63 characters from [A-Za-z0-9_-], not
 * starting or ending with '-', and a last label that is not all digits
 * (such a name is either an IPv4 address in a form inet_pton refuses, or
 * something resolvers would treat as one). On error, writes the problem
 * (after the quoted target q) to err.
 */
static int check_name(const char *s, size_t n, const char *q, char *err,
		      size_t errlen)
{
	char lq[POLICY_QBUF_LEN];
	size_t start = 0, i;
	bool all_digits = true;

	for (i = 0; i <= n; i++) {
		size_t llen;

		if (i < n && s[i] != '.') {
			unsigned char c = s[i];

			if (c == '*') {
				util_err(err, errlen, 0,
					"malformed wildcard %s: '*' is only allowed as the whole first label, as in \"*.example.com\"",
					q);
				return -EINVAL;
			}
			if (!is_label_char(c)) {
				char cq[16];

				util_err(err, errlen, 0,
					"invalid domain name %s: invalid character %s (allowed: letters, digits, '-', '_')",
					q, policy_quote(cq, sizeof(cq), s + i, 1));
				return -EINVAL;
			}
			if (c < '0' || c > '9')
				all_digits = false;
			continue;
		}
		llen = i - start;
		if (!llen) {
			util_err(err, errlen, 0,
				"invalid domain name %s: empty label", q);
			return -EINVAL;
		}
		if (llen > POLICY_LABEL_MAX) {
			util_err(err, errlen, 0,
				"invalid domain name %s: label %s longer than 63 characters",
				q, policy_quote(lq, sizeof(lq), s + start, llen));
			return -EINVAL;
		}
		if (s[start] == '-' || s[i - 1] == '-') {
			util_err(err, errlen, 0,
				"invalid domain name %s: label %s %s with a hyphen",
				q, policy_quote(lq, sizeof(lq), s + start, llen),
				s[start] == '-' ? "starts" : "ends");
			return -EINVAL;
		}
		if (i < n)
			all_digits = true;
		start = i + 1;
	}
	if (all_digits) {
		util_err(err, errlen, 0,
			"ambiguous target %s: all-numeric last label, but not a valid IP address",
			q);
		return -EINVAL;
	}
	return 0;
}

static char *lower_dup(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	size_t i;

	if (!d)
		return NULL;
	for (i = 0; i < n; i++)
		d[i] = lower(s[i]);
	d[n] = '\0';
	return d;
}

static int parse_domain(const char *s, size_t n, const char *q,
			struct policy_rule *rule, char *err, size_t errlen)
{
	bool wildcard = false;
	size_t total;
	int ret;

	/* One trailing dot is the root label and means nothing here. */
	if (n && s[n - 1] == '.')
		n--;
	total = n;
	if (n && s[0] == '*') {
		if (n < 3 || s[1] != '.') {
			util_err(err, errlen, 0,
				"malformed wildcard %s: must be \"*.\" followed by a domain name",
				q);
			return -EINVAL;
		}
		s += 2;
		n -= 2;
		wildcard = true;
	}
	ret = check_name(s, n, q, err, errlen);
	if (ret)
		return ret;
	if (total > POLICY_NAME_MAX) {
		util_err(err, errlen, 0,
			"invalid domain name %s: longer than 253 characters", q);
		return -EINVAL;
	}
	rule->kind = wildcard ? POLICY_KIND_WILDCARD : POLICY_KIND_DOMAIN;
	rule->name = lower_dup(s, n);
	return rule->name ? 0 : -ENOMEM;
}

/* Zero the host bits of a network of plen bits. */
static void mask_addr(uint8_t *a, size_t bytes, unsigned int plen)
{
	size_t i;

	for (i = 0; i < bytes; i++) {
		unsigned int bit = i * 8;

		if (bit >= plen)
			a[i] = 0;
		else if (plen - bit < 8)
			a[i] &= (uint8_t)(0xff00 >> (plen - bit));
	}
}

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0,
					     0, 0, 0, 0, 0xff, 0xff };

/*
 * Parse "ADDR" or "ADDR/LEN" (s[0..n), trimmed) into a, masking host bits
 * and folding IPv4-mapped IPv6 into IPv4. Returns 0, -EINVAL with the
 * problem in err, or 1 when s is no address at all and should be tried as
 * a name (no '/', no ':').
 */
static int parse_addr(const char *s, size_t n, const char *q,
		      struct policy_addr *a, bool *is_cidr, char *err,
		      size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	unsigned long plen = 0;
	unsigned int max;

	memset(a, 0, sizeof(*a));
	*is_cidr = slash != NULL;
	if (memchr(s, '%', alen) && memchr(s, ':', alen)) {
		util_err(err, errlen, 0,
			"zoned IPv6 address %s not allowed (drop the %%zone)",
			q);
		return -EINVAL;
	}
	if (alen < sizeof(buf)) {
		memcpy(buf, s, alen);
		buf[alen] = '\0';
		if (inet_pton(AF_INET, buf, a->addr) == 1)
			a->family = AF_INET;
		else if (inet_pton(AF_INET6, buf, a->addr) == 1)
			a->family = AF_INET6;
	}
	if (!a->family) {
		if (slash) {
			util_err(err, errlen, 0,
				"invalid CIDR %s: address part is not an IPv4 or IPv6 address",
				q);
			return -EINVAL;
		}
		if (memchr(s, ':', n)) {
			util_err(err, errlen, 0, "invalid IPv6 address %s", q);
			return -EINVAL;
		}
		return 1;
	}
	max = a->family == AF_INET ? 32 : 128;
	if (slash) {
		const char *p = slash + 1;
		size_t plen_len = n - alen - 1;
		size_t i;
		bool ok = plen_len >= 1 && plen_len <= 3 &&
			  !(plen_len > 1 && p[0] == '0');

		for (i = 0; ok && i < plen_len; i++) {
			if (p[i] < '0' || p[i] > '9')
				ok = false;
			else
				plen = plen * 10 + (p[i] - '0');
		}
		if (!ok || plen > max) {
			char pq[POLICY_QBUF_LEN];

			util_err(err, errlen, 0,
				"invalid CIDR %s: bad prefix length %s (IPv%d allows 0-%u)",
				q, policy_quote(pq, sizeof(pq), p, plen_len),
				a->family == AF_INET ? 4 : 6, max);
			return -EINVAL;
		}
	} else {
		plen = max;
	}
	mask_addr(a->addr, a->family == AF_INET ? 4 : 16, plen);
	a->prefixlen = plen;
	/* ::ffff:a.b.c.d and ::ffff:0:0/96+n stand for IPv4. */
	if (a->family == AF_INET6 && plen >= 96 &&
	    !memcmp(a->addr, v4mapped_prefix, sizeof(v4mapped_prefix))) {
		memmove(a->addr, a->addr + 12, 4);
		memset(a->addr + 4, 0, 12);
		a->family = AF_INET;
		a->prefixlen = plen - 96;
	}
	return 0;
}

int policy_parse_target(const char *target, struct policy_rule *rule,
			char *err, size_t errlen)
{
	char q[POLICY_QBUF_LEN], text[INET6_ADDRSTRLEN + 8];
	size_t n = target ? strlen(target) : 0;
	const char *s = target ? util_trim(target, &n) : "";
	bool is_cidr;
	int ret;

	if (!n) {
		util_err(err, errlen, 0, "target is empty");
		return -EINVAL;
	}
	policy_quote(q, sizeof(q), s, n);
	rule->target = NULL;
	rule->name = NULL;
	memset(&rule->addr, 0, sizeof(rule->addr));

	ret = parse_addr(s, n, q, &rule->addr, &is_cidr, err, errlen);
	if (ret < 0)
		return ret;
	if (ret == 0) {
		struct policy_addr *a = &rule->addr;

		if (!inet_ntop(a->family, a->addr, text, sizeof(text)))
			return -errno;
		if (is_cidr)
			snprintf(text + strlen(text),
				 sizeof(text) - strlen(text), "/%u",
				 a->prefixlen);
		rule->kind = is_cidr ? POLICY_KIND_CIDR : POLICY_KIND_IP;
		rule->name = strdup(text);
		if (!rule->name)
			return -ENOMEM;
	} else {
		ret = parse_domain(s, n, q, rule, err, errlen);
		if (ret)
			return ret;
	}
	rule->target = strndup(s, n);
	if (!rule->target) {
		rule_fini(rule);
		return -ENOMEM;
	}
	return 0;
}

/* ---- JSON ------------------------------------------------------------- */

/*
 * "allow"/"deny", trimmed and case-insensitive; empty means deny (peer
 * compatibility). 0 or -EINVAL.
 */
static int parse_action(const char *v, size_t n, enum policy_action *out)
{
	const char *s = util_trim(v, &n);

	if (!n || (n == 4 && !strncasecmp(s, "deny", 4)))
		*out = POLICY_DENY;
	else if (n == 5 && !strncasecmp(s, "allow", 5))
		*out = POLICY_ALLOW;
	else
		return -EINVAL;
	return 0;
}

/*
 * The value of key (ASCII case-insensitive) in obj, last one winning, as
 * Go's encoding/json does when a document repeats a field.
 */
static json_t *get_ci(json_t *obj, const char *key)
{
	json_t *found = NULL, *v;
	const char *k;

	json_object_foreach(obj, k, v) {
		if (!strcasecmp(k, key))
			found = v;
	}
	return found;
}

int policy_rule_from_json(json_t *jr, const char *list, size_t i,
			  struct policy_rule *rule, char *err, size_t errlen)
{
	char q[POLICY_QBUF_LEN], msg[512];
	json_t *ja, *jt;
	int ret;

	if (!json_is_object(jr)) {
		util_err(err, errlen, 0, "%s[%zu]: must be an object, got %s",
			list, i, policy_json_kind(jr));
		return -EINVAL;
	}
	ja = get_ci(jr, "action");
	jt = get_ci(jr, "target");
	rule->action = POLICY_DENY;
	if (ja && !json_is_null(ja)) {
		if (!json_is_string(ja)) {
			util_err(err, errlen, 0,
				"%s[%zu]: action must be a string, got %s",
				list, i, policy_json_kind(ja));
			return -EINVAL;
		}
		if (parse_action(json_string_value(ja), json_string_length(ja),
				 &rule->action)) {
			util_err(err, errlen, 0,
				"%s[%zu]: action %s: must be \"allow\" or \"deny\"",
				list, i,
				policy_quote(q, sizeof(q), json_string_value(ja),
					     json_string_length(ja)));
			return -EINVAL;
		}
	}
	if (!jt || json_is_null(jt)) {
		util_err(err, errlen, 0, "%s[%zu]: target is missing", list, i);
		return -EINVAL;
	}
	if (!json_is_string(jt)) {
		util_err(err, errlen, 0,
			"%s[%zu]: target must be a string, got %s", list, i,
			policy_json_kind(jt));
		return -EINVAL;
	}
	if (strlen(json_string_value(jt)) != json_string_length(jt)) {
		util_err(err, errlen, 0, "%s[%zu]: target contains a NUL byte",
			list, i);
		return -EINVAL;
	}
	ret = policy_parse_target(json_string_value(jt), rule, msg,
				  sizeof(msg));
	if (ret == -EINVAL)
		util_err(err, errlen, 0, "%s[%zu]: %s", list, i, msg);
	else if (ret)
		util_err(err, errlen, 0, "%s[%zu]: %s", list, i, strerror(-ret));
	return ret;
}

static int parse_default(json_t *jd, enum policy_action *out, char *err,
			 size_t errlen)
{
	char q[POLICY_QBUF_LEN];

	*out = POLICY_DENY;
	if (!jd || json_is_null(jd))
		return 0;
	if (!json_is_string(jd)) {
		util_err(err, errlen, 0, "defaultAction: must be a string, got %s",
			policy_json_kind(jd));
		return -EINVAL;
	}
	if (parse_action(json_string_value(jd), json_string_length(jd), out)) {
		util_err(err, errlen, 0,
			"defaultAction %s: must be \"allow\" or \"deny\"",
			policy_quote(q, sizeof(q), json_string_value(jd),
			      json_string_length(jd)));
		return -EINVAL;
	}
	return 0;
}

/*
 * A policy object has only defaultAction and egress (any case). Anything
 * else is refused: a misspelt "egres" would otherwise mean zero rules, a
 * deny-all nobody asked for. (The peer ignores unknown keys; keys inside a
 * rule still are ignored here.)
 */
static int check_top_keys(json_t *root, char *err, size_t errlen)
{
	char q[POLICY_QBUF_LEN];
	const char *k;
	json_t *v;

	json_object_foreach(root, k, v) {
		if (!strcasecmp(k, "defaultAction") || !strcasecmp(k, "egress"))
			continue;
		util_err(err, errlen, 0,
			"unknown key %s: a policy has only \"defaultAction\" and \"egress\"",
			policy_quote(q, sizeof(q), k, strlen(k)));
		return -EINVAL;
	}
	return 0;
}

int policy_parse_json(const char *buf, size_t len, size_t max_rules,
		      struct policy **out, char *err, size_t errlen)
{
	enum policy_action def;
	struct policy *p = NULL;
	json_t *root = NULL, *je;
	json_error_t jerr;
	const char *s;
	size_t n = len, i, count;
	int ret;

	*out = NULL;
	s = buf ? util_trim(buf, &n) : "";
	if (!n)
		goto empty;
	root = json_loadb(s, n, JSON_DECODE_ANY, &jerr);
	if (!root) {
		util_err(err, errlen, 0, "invalid JSON at line %d column %d: %s",
			jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	if (json_is_null(root))
		goto empty;
	if (!json_is_object(root)) {
		util_err(err, errlen, 0, "policy must be a JSON object, got %s",
			policy_json_kind(root));
		ret = -EINVAL;
		goto out_root;
	}
	ret = check_top_keys(root, err, errlen);
	if (ret)
		goto out_root;
	ret = parse_default(get_ci(root, "defaultAction"), &def, err, errlen);
	if (ret)
		goto out_root;
	je = get_ci(root, "egress");
	if (je && !json_is_null(je) && !json_is_array(je)) {
		util_err(err, errlen, 0, "egress: must be an array, got %s",
			policy_json_kind(je));
		ret = -EINVAL;
		goto out_root;
	}
	count = json_is_array(je) ? json_array_size(je) : 0;
	if (max_rules && count > max_rules) {
		util_err(err, errlen, 0,
			"egress rule total count %zu exceeds limit %zu", count,
			max_rules);
		ret = -E2BIG;
		goto out_root;
	}
	p = policy_new(def);
	if (!p)
		goto out_nomem;
	if (count) {
		p->rules = calloc(count, sizeof(*p->rules));
		if (!p->rules)
			goto out_nomem;
	}
	for (i = 0; i < count; i++) {
		ret = policy_rule_from_json(json_array_get(je, i), "egress", i,
					    &p->rules[i], err, errlen);
		if (ret)
			goto out_policy;
		p->n_rules = i + 1;
	}
	json_decref(root);
	*out = p;
	return 0;

empty:
	json_decref(root);
	*out = policy_new(POLICY_DENY);
	return *out ? 0 : -ENOMEM;

out_nomem:
	util_err(err, errlen, 0, "out of memory");
	ret = -ENOMEM;
out_policy:
	policy_free(p);
out_root:
	json_decref(root);
	return ret;
}

static const char *action_name(enum policy_action a)
{
	return a == POLICY_ALLOW ? "allow" : "deny";
}

json_t *policy_to_json(const struct policy *p)
{
	json_t *root = json_object(), *arr = json_array();
	size_t i;

	if (!root || !arr)
		goto err;
	if (json_object_set(root, "egress", arr))
		goto err;
	for (i = 0; i < p->n_rules; i++) {
		const struct policy_rule *r = &p->rules[i];
		json_t *o = json_pack("{s:s, s:s}", "action",
				      action_name(r->action), "target",
				      r->target ? r->target : "");

		if (!o || json_array_append_new(arr, o))
			goto err;
	}
	if (json_object_set_new(root, "defaultAction",
				json_string(action_name(p->default_action))))
		goto err;
	json_decref(arr);
	return root;

err:
	json_decref(arr);
	json_decref(root);
	errno = ENOMEM;
	return NULL;
}

/* ---- always-rules files ---------------------------------------------- */

int policy_parse_always_buf(const char *buf, size_t size, const char *origin,
			    enum policy_action action,
			    struct policy_rule **rules, size_t *n, char *err,
			    size_t errlen)
{
	struct policy_rule *v = NULL, *nv;
	size_t nv_len = 0, cap = 0, lineno = 0, pos = 0;
	char *line = NULL, msg[512];
	int ret = 0;

	*rules = NULL;
	*n = 0;
	while (pos < size) {
		const char *start = buf + pos, *s, *eol;
		size_t len;

		eol = memchr(start, '\n', size - pos);
		len = eol ? (size_t)(eol - start) : size - pos;
		pos += len + (eol ? 1 : 0);
		lineno++;
		s = util_trim(start, &len);
		if (!len || s[0] == '#')
			continue;
		if (memchr(s, '\0', len)) {
			util_err(err, errlen, 0, "%s:%zu: NUL byte in line",
				 origin, lineno);
			ret = -EINVAL;
			break;
		}
		if (nv_len == cap) {
			cap = cap ? cap * 2 : 16;
			nv = reallocarray(v, cap, sizeof(*v));
			if (!nv) {
				ret = -ENOMEM;
				break;
			}
			v = nv;
		}
		/* policy_parse_target wants a C string: one line's copy. */
		free(line);
		line = strndup(s, len);
		if (!line) {
			ret = -ENOMEM;
			break;
		}
		memset(&v[nv_len], 0, sizeof(v[nv_len]));
		ret = policy_parse_target(line, &v[nv_len], msg, sizeof(msg));
		if (ret) {
			util_err(err, errlen, 0, "%s:%zu: %s", origin, lineno,
				 ret == -EINVAL ? msg : strerror(-ret));
			break;
		}
		v[nv_len++].action = action;
	}
	free(line);
	if (ret == -ENOMEM)
		util_err(err, errlen, 0, "%s: out of memory", origin);
	if (ret) {
		policy_rules_free(v, nv_len);
		return ret;
	}
	*rules = v;
	*n = nv_len;
	return 0;
}

int policy_load_always_file(const char *path, enum policy_action action,
			    struct policy_rule **rules, size_t *n, char *err,
			    size_t errlen)
{
	size_t len = 0, cap = 0, got;
	char *buf = NULL, *nb;
	FILE *f;
	int ret = 0;

	*rules = NULL;
	*n = 0;
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		if (ret == -ENOENT)
			return 0;
		util_err(err, errlen, 0, "%s: %s", path, strerror(-ret));
		return ret;
	}
	/* Read it whole, then parse the bytes (policy_parse_always_buf). */
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				ret = -ENOMEM;
				util_err(err, errlen, 0, "%s: out of memory",
					 path);
				break;
			}
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got)
			continue;
		if (ferror(f)) {
			ret = errno ? -errno : -EIO;
			util_err(err, errlen, 0, "%s: %s", path,
				 strerror(-ret));
		}
		break;
	}
	fclose(f);
	if (!ret)
		ret = policy_parse_always_buf(buf, len, path, action, rules, n,
					      err, errlen);
	free(buf);
	return ret;
}

/* ---- compiled matcher ------------------------------------------------- */

/*
 * One 16-byte slot of the open-addressing table. eff is the effective
 * index + 1 (0 marks an empty slot); tag is the upper half of the key's
 * hash (the lower half picks the slot), so a probe compares names only
 * when the tags agree.
 */
struct pm_slot {
	uint32_t tag;
	uint32_t eff;
	uint32_t name_off;
	uint16_t name_len;
	uint8_t wildcard;
	uint8_t action;
};

/*
 * Keys are hashed as H = sum of byte[len-1-k] * pow[k] (mod 2^64): the
 * weight of a byte depends on its distance from the END of the name, so
 * the partial sum after the last k bytes of a query is exactly the hash of
 * its k-byte suffix, and one right-to-left pass yields the hash of every
 * label-boundary suffix. The multiplications are independent of each
 * other, so the pass costs about a cycle per byte. The base and the seed
 * are random per matcher; no key is longer than POLICY_NAME_MAX.
 *
 * The filter is a one-hash Bloom filter over the keys (16 bits per key,
 * 20 KiB at 10,000 rules, so it stays in L1): most wildcard probes of a
 * lookup are for suffixes no rule names ("com", "example.com"), and the
 * filter answers those without touching the table.
 */
struct policy_matcher {
	struct pm_slot *slots;
	size_t mask;
	uint64_t *filter;
	size_t fmask; /* filter bits - 1 */
	char *names;
	uint64_t seed;
	size_t n_deny, n_allow;
	enum policy_action default_action;
	/* Bounds that let a lookup skip work no rule could match. */
	size_t max_exact_len;	      /* 0: no exact rule */
	size_t max_key_len;	      /* longest key, exact or suffix */
	unsigned int max_wild_labels; /* 0: no wildcard rule */
	/* Bit L: some wildcard suffix has L labels (bit 63: 63 or more). */
	uint64_t wild_labels;
	uint64_t pow[POLICY_NAME_MAX + 1];
};

/*
 * Finalise a key sum into a table hash. The sum's low bits only see the
 * low bits of the bytes, so fold the high half down before and after one
 * multiplication; the low half then picks the slot and the high half is
 * the tag.
 */
static inline uint64_t pm_final(const struct policy_matcher *m, uint64_t h,
				bool wildcard)
{
	h += m->seed + (wildcard ? 0x9e3779b97f4a7c15ULL : 0);
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return h;
}

/* stored is lower case; q is any case, usually lower (dnswire's output). */
static bool name_eq(const char *stored, const char *q, size_t n)
{
	size_t i;

	if (!memcmp(stored, q, n))
		return true;
	for (i = 0; i < n; i++) {
		if (stored[i] != (char)lower(q[i]))
			return false;
	}
	return true;
}

static inline const struct pm_slot *
pm_probe(const struct policy_matcher *m, uint64_t h, const char *s, size_t n,
	 bool wildcard)
{
	uint64_t fh = pm_final(m, h, wildcard);
	uint32_t tag = fh >> 32;
	size_t i = fh & m->mask, fb = tag & m->fmask;

	if (!(m->filter[fb / 64] & (1ULL << (fb % 64))))
		return NULL;
	for (;;) {
		const struct pm_slot *sl = &m->slots[i];

		if (!sl->eff)
			return NULL;
		if (sl->tag == tag && sl->name_len == n &&
		    sl->wildcard == wildcard &&
		    name_eq(m->names + sl->name_off, s, n))
			return sl;
		i = (i + 1) & m->mask;
	}
}

static void pm_random(void *buf, size_t len)
{
	uint64_t x;
	struct timespec ts;

	if (getrandom(buf, len, GRND_NONBLOCK) == (ssize_t)len)
		return;
	/* No entropy yet (early boot): any value works, only less well. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	x = ((uint64_t)ts.tv_sec << 32) ^ ts.tv_nsec ^
	    ((uint64_t)getpid() << 16);
	while (len) {
		size_t k = len < sizeof(x) ? len : sizeof(x);

		x = (x ^ (x >> 31)) * 0x94d049bb133111ebULL + 1;
		memcpy(buf, &x, k);
		buf = (char *)buf + k;
		len -= k;
	}
}

/*
 * Insert one domain/wildcard rule at effective index eff unless its key is
 * already present (an earlier rule wins). The name is normalised again
 * (lower case, one trailing dot dropped) so hand-built rules behave like
 * parsed ones; names longer than POLICY_NAME_MAX, which parsing never
 * produces, are left out.
 */
static void pm_insert(struct policy_matcher *m, size_t *names_len,
		      const struct policy_rule *r, enum policy_action action,
		      uint32_t eff)
{
	bool wildcard = r->kind == POLICY_KIND_WILDCARD;
	const char *name = r->name;
	size_t n = strlen(name), i, labels = 1, slot, fb;
	char *dst = m->names + *names_len;
	uint64_t h = 0, fh;
	uint32_t tag;

	if (n && name[n - 1] == '.')
		n--;
	if (!n || n > POLICY_NAME_MAX)
		return;
	for (i = 0; i < n; i++) {
		dst[i] = lower(name[i]);
		h += (unsigned char)dst[i] * m->pow[n - 1 - i];
		if (dst[i] == '.')
			labels++;
	}
	fh = pm_final(m, h, wildcard);
	tag = fh >> 32;
	for (slot = fh & m->mask; m->slots[slot].eff;
	     slot = (slot + 1) & m->mask) {
		const struct pm_slot *sl = &m->slots[slot];

		if (sl->tag == tag && sl->name_len == n &&
		    sl->wildcard == wildcard &&
		    !memcmp(m->names + sl->name_off, dst, n))
			return;
	}
	fb = tag & m->fmask;
	m->filter[fb / 64] |= 1ULL << (fb % 64);
	m->slots[slot] = (struct pm_slot){
		.tag = tag,
		.eff = eff + 1,
		.name_off = *names_len,
		.name_len = n,
		.wildcard = wildcard,
		.action = action,
	};
	*names_len += n;
	if (n > m->max_key_len)
		m->max_key_len = n;
	if (wildcard) {
		if (labels > m->max_wild_labels)
			m->max_wild_labels = labels;
		m->wild_labels |= 1ULL << (labels < 63 ? labels : 63);
	} else if (n > m->max_exact_len) {
		m->max_exact_len = n;
	}
}

static bool is_name_rule(const struct policy_rule *r)
{
	return (r->kind == POLICY_KIND_DOMAIN ||
		r->kind == POLICY_KIND_WILDCARD) &&
	       r->name;
}

struct policy_matcher *policy_matcher_new(const struct policy *user,
					  const struct policy_rule *deny_always,
					  size_t n_deny,
					  const struct policy_rule *allow_always,
					  size_t n_allow)
{
	const struct policy_rule *lists[3] = { deny_always, allow_always,
					       user ? user->rules : NULL };
	size_t counts[3] = { n_deny, n_allow, user ? user->n_rules : 0 };
	size_t n_names = 0, names_bytes = 0, cap = 8, fbits = 64;
	size_t names_len = 0, l, i, eff = 0;
	struct policy_matcher *m;
	uint64_t base;

	for (l = 0; l < 3; l++) {
		for (i = 0; i < counts[l]; i++) {
			if (!is_name_rule(&lists[l][i]))
				continue;
			n_names++;
			names_bytes += strlen(lists[l][i].name);
		}
	}
	if (counts[0] + counts[1] + counts[2] >= UINT32_MAX ||
	    names_bytes >= UINT32_MAX) {
		errno = EOVERFLOW;
		return NULL;
	}
	/* Load factor at most 0.7 keeps linear-probe chains short. */
	while (cap * 7 < n_names * 10)
		cap *= 2;
	while (fbits < n_names * 16)
		fbits *= 2;

	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->slots = calloc(cap, sizeof(*m->slots));
	m->filter = calloc(fbits / 64, sizeof(*m->filter));
	m->names = malloc(names_bytes + 1);
	if (!m->slots || !m->filter || !m->names) {
		policy_matcher_free(m);
		errno = ENOMEM;
		return NULL;
	}
	m->mask = cap - 1;
	m->fmask = fbits - 1;
	m->n_deny = n_deny;
	m->n_allow = n_allow;
	m->default_action = user ? user->default_action : POLICY_DENY;
	pm_random(&m->seed, sizeof(m->seed));
	pm_random(&base, sizeof(base));
	base |= 1; /* odd: no power of it is ever 0 mod 2^64 */
	m->pow[0] = 1;
	for (i = 1; i <= POLICY_NAME_MAX; i++)
		m->pow[i] = m->pow[i - 1] * base;

	for (l = 0; l < 3; l++) {
		for (i = 0; i < counts[l]; i++, eff++) {
			const struct policy_rule *r = &lists[l][i];
			enum policy_action a;

			if (!is_name_rule(r))
				continue;
			/* The always lists decide by where they come from. */
			if (l == 0)
				a = POLICY_DENY;
			else if (l == 1)
				a = POLICY_ALLOW;
			else
				a = r->action;
			pm_insert(m, &names_len, r, a, eff);
		}
	}
	return m;
}

void policy_matcher_free(struct policy_matcher *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m->filter);
	free(m->names);
	free(m);
}

/* Is the '.' at name[i] escaped ("\." with an odd run of backslashes)? */
static bool is_escaped(const char *name, size_t i)
{
	size_t run = 0;

	while (i > 0 && name[i - 1] == '\\') {
		run++;
		i--;
	}
	return run & 1;
}

/* Keep the candidate with the lowest effective index. */
static void pm_record(const struct pm_slot *sl, const struct pm_slot **best)
{
	if (sl && (!*best || sl->eff < (*best)->eff))
		*best = sl;
}

/*
 * One right-to-left pass sums the query into h and notes the hash of each
 * label-boundary suffix worth probing; the probes come after, so the byte
 * loop keeps everything in registers and the probes can overlap.
 *
 * Query names in escaped presentation form ("a\.b", "\092") can hold a
 * backslash, which no rule does: nothing reaching over the last backslash
 * can match, so the pass stops there, and a dot right after it is a real
 * boundary only if the backslash run before it has even length.
 */
void policy_matcher_lookup(const struct policy_matcher *m, const char *name,
			   size_t len, struct policy_match *out)
{
	/* A 253-byte suffix has at most 127 labels. */
	struct {
		uint64_t h;
		size_t k;
	} cand[(POLICY_NAME_MAX + 1) / 2];
	const struct pm_slot *best = NULL, *exact = NULL;
	unsigned int labels = 1; /* labels in the suffix right of a dot */
	uint64_t h = 0, wild = m->wild_labels;
	size_t k, lim, n_cand = 0, c, eff;
	const char *bs;
	bool try_exact;

	if (len && name[len - 1] == '.')
		len--;
	try_exact = len && len <= m->max_exact_len;
	/* Suffixes longer than any key cannot match: sum only what can. */
	lim = len <= m->max_key_len ? len : m->max_key_len + 1;
	bs = len ? memrchr(name, '\\', len) : NULL;
	if (bs) {
		try_exact = false;
		if ((size_t)(name + len - 1 - bs) < lim)
			lim = name + len - 1 - bs;
	}

	/* k bytes from the end have been summed into h. */
	for (k = 0; k < lim; k++) {
		unsigned char ch = name[len - 1 - k];

		if (ch == '.') {
			/*
			 * The k-byte suffix right of this dot is a
			 * wildcard candidate if some wildcard rule has
			 * that many labels and the dot has a label on its
			 * left.
			 */
			if (labels <= m->max_wild_labels &&
			    (wild & (1ULL << (labels < 63 ? labels : 63))) &&
			    k + 1 < len && !is_escaped(name, len - 1 - k)) {
				cand[n_cand].h = h;
				cand[n_cand].k = k;
				n_cand++;
			}
			labels++;
		}
		ch |= ((unsigned int)(ch - 'A') < 26) << 5;
		h += ch * m->pow[k];
	}
	for (c = 0; c < n_cand; c++)
		pm_record(pm_probe(m, cand[c].h, name + len - cand[c].k,
				   cand[c].k, true),
			  &best);
	if (try_exact) {
		exact = pm_probe(m, h, name, len, false);
		pm_record(exact, &best);
	}
	out->exact_allow = exact && exact->action == POLICY_ALLOW;

	if (!best) {
		out->matched = false;
		out->action = m->default_action;
		out->origin = POLICY_ORIGIN_USER;
		out->index = 0;
		return;
	}
	out->matched = true;
	out->action = best->action;
	eff = best->eff - 1;
	if (eff < m->n_deny) {
		out->origin = POLICY_ORIGIN_DENY_ALWAYS;
		out->index = eff;
	} else if (eff < m->n_deny + m->n_allow) {
		out->origin = POLICY_ORIGIN_ALLOW_ALWAYS;
		out->index = eff - m->n_deny;
	} else {
		out->origin = POLICY_ORIGIN_USER;
		out->index = eff - m->n_deny - m->n_allow;
	}
}

long policy_find_ipv6_allow(const struct policy_rule *rules, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rules[i].action == POLICY_ALLOW &&
		    (rules[i].kind == POLICY_KIND_IP ||
		     rules[i].kind == POLICY_KIND_CIDR) &&
		    rules[i].addr.family == AF_INET6)
			return (long)i;
	return -1;
}
