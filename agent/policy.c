// SPDX-License-Identifier: GPL-2.0-only
/*
 * Policy model: parses and validates the OpenSandbox policy JSON and the
 * always-rules files into struct policy / struct policy_rule, and renders
 * a policy back to JSON. agent/matcher.c compiles the effective rule list
 * into the name matcher that DNS lookups consult. docs/policy.md describes
 * the user-visible rules.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egressd/policy.h"
#include "egressd/util.h"

#define POLICY_LABEL_MAX 63
/* Longest target text we quote in an error message. */

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

int policy_rule_copy(struct policy_rule *dst, const struct policy_rule *src)
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

int policy_new(struct policy **out, enum policy_action default_action)
{
	struct policy *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->default_action = default_action;
	*out = p;
	return 0;
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
	struct policy *d;
	size_t i;

	if (policy_new(&d, p->default_action)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!p->n_rules)
		return d;
	d->rules = calloc(p->n_rules, sizeof(*d->rules));
	if (!d->rules)
		goto err_free;
	for (i = 0; i < p->n_rules; i++) {
		if (policy_rule_copy(&d->rules[i], &p->rules[i]))
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
				util_err(
					err, errlen, 0,
					"malformed wildcard %s: '*' is only allowed as the whole first label, as in \"*.example.com\"",
					q);
				return -EINVAL;
			}
			if (!is_label_char(c)) {
				char cq[16];

				util_err(
					err, errlen, 0,
					"invalid domain name %s: invalid character %s (allowed: letters, digits, '-', '_')",
					q,
					policy_quote(cq, sizeof(cq), s + i, 1));
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
			util_err(
				err, errlen, 0,
				"invalid domain name %s: label %s longer than 63 characters",
				q,
				policy_quote(lq, sizeof(lq), s + start, llen));
			return -EINVAL;
		}
		if (s[start] == '-' || s[i - 1] == '-') {
			util_err(
				err, errlen, 0,
				"invalid domain name %s: label %s %s with a hyphen",
				q,
				policy_quote(lq, sizeof(lq), s + start, llen),
				s[start] == '-' ? "starts" : "ends");
			return -EINVAL;
		}
		if (i < n)
			all_digits = true;
		start = i + 1;
	}
	if (all_digits) {
		util_err(
			err, errlen, 0,
			"ambiguous target %s: all-numeric last label, but not a valid IP address",
			q);
		return -EINVAL;
	}
	return 0;
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
			util_err(
				err, errlen, 0,
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
			 "invalid domain name %s: longer than 253 characters",
			 q);
		return -EINVAL;
	}
	rule->kind = wildcard ? POLICY_KIND_WILDCARD : POLICY_KIND_DOMAIN;
	rule->name = util_lower_dup(s, n);
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

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0,    0,
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
			util_err(
				err, errlen, 0,
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

			util_err(
				err, errlen, 0,
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

int policy_parse_target(const char *target, struct policy_rule *rule, char *err,
			size_t errlen)
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
			util_err(
				err, errlen, 0,
				"%s[%zu]: action %s: must be \"allow\" or \"deny\"",
				list, i,
				policy_quote(q, sizeof(q),
					     json_string_value(ja),
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
		util_err(err, errlen, 0, "%s[%zu]: %s", list, i,
			 strerror(-ret));
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
		util_err(err, errlen, 0,
			 "defaultAction: must be a string, got %s",
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
		util_err(
			err, errlen, 0,
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
		util_err(err, errlen, 0,
			 "invalid JSON at line %d column %d: %s", jerr.line,
			 jerr.column, jerr.text);
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
	if (policy_new(&p, def))
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
	return policy_new(out, POLICY_DENY);

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
	size_t len;
	char *buf;
	int ret;

	*rules = NULL;
	*n = 0;
	/* Read it whole, then parse the bytes (policy_parse_always_buf). */
	ret = util_read_file(path, &buf, &len);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return util_err(err, errlen, ret, "%s: %s", path,
				ret == -ENOMEM ? "out of memory" :
						 strerror(-ret));
	ret = policy_parse_always_buf(buf, len, path, action, rules, n, err,
				      errlen);
	free(buf);
	return ret;
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
