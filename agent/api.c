// SPDX-License-Identifier: GPL-2.0-only
/*
 * HTTP policy API (docs/api.md): libmicrohttpd in external-epoll mode,
 * driven from the agent's event loop (MHD's epoll fd registered with
 * loop_add_fd, MHD's timeouts with a loop timer), so handlers run on the
 * loop thread and never race the policy state. Behaviour mirrors the
 * OpenSandbox egress sidecar: same paths, status codes, bodies and auth
 * header. The PATCH/DELETE merge logic and the mode name are pure
 * functions, exported for the unit tests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "egressd/api.h"
#include "egressd/config.h"
#include "egressd/defaults.h"
#include "egressd/util.h"
#include "egressd/log.h"
#include "egressd/selfsock.h"

#define API_DEFAULT_ADDR EGRESSD_DEFAULT_HTTP_ADDR
/* Idle connections are closed after this many seconds. */
#define API_CONN_TIMEOUT_S 30
/*
 * A connection whose request headers are not complete after this long
 * without progress is closed (a slow or idle client holds no slot for
 * long); once they are, API_CONN_TIMEOUT_S applies.
 */
#define API_HEADER_TIMEOUT_S 5
#define API_CONN_LIMIT 64
/* Connections one client address may hold at once. */
#define API_PER_IP_LIMIT 8
/*
 * Past API_BODY_MAX the body is discarded (the answer will be 413); a
 * client that keeps sending past API_BODY_HARD_MAX is disconnected.
 */
#define API_BODY_HARD_MAX (16u << 20)
#define API_AUTH_HEADER EGRESSD_AUTH_HEADER
#define API_ALLOW_POLICY "GET, POST, PUT, PATCH, DELETE"
#define API_CT_TEXT "text/plain; charset=utf-8"
#define API_CT_JSON "application/json"
#define API_CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct api {
	struct loop *loop;
	struct MHD_Daemon *mhd;
	struct loop_timer *timer;
	int epfd;
	int port;
	char *token;
	size_t max_rules;
	struct api_ops ops;
	struct api_stats stats;
};

/* One request in progress: its body as it arrives. */
struct api_req {
	char *body;
	size_t len, cap;
	size_t seen; /* body bytes received, kept or not */
	bool too_large; /* more than API_BODY_MAX bytes */
	bool responded; /* a response is already queued */
};

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Trimmed, ASCII lower-cased copy of [s, s+n); NULL on ENOMEM. */
static char *lower_trim_dup(const char *s, size_t n)
{
	const char *t = util_trim(s, &n);
	char *d = malloc(n + 1);
	size_t i;

	if (!d)
		return NULL;
	for (i = 0; i < n; i++)
		d[i] = ascii_lower(t[i]);
	d[n] = '\0';
	return d;
}

/* ---- pure helpers (exported for tests) -------------------------------- */

int api_buf_printf(struct api_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < room) {
			b->len += n;
			return 0;
		}
		size_t cap = b->cap ? b->cap : 256;
		char *d;

		while (cap - b->len <= (size_t)n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
}

const char *api_policy_mode(const struct policy *p)
{
	if (p->n_rules)
		return "enforcing";
	return p->default_action == POLICY_ALLOW ? "allow_all" : "deny_all";
}

bool api_token_equal(const char *want, const char *got, size_t got_len)
{
	size_t n = strlen(want), i;
	volatile unsigned char d = 0;

	if (!got || got_len != n)
		return false;
	for (i = 0; i < n; i++)
		d |= (unsigned char)want[i] ^ (unsigned char)got[i];
	return d == 0;
}

static int rule_copy(struct policy_rule *dst, const struct policy_rule *src)
{
	*dst = *src;
	dst->target = NULL;
	dst->name = NULL;
	if (src->target && !(dst->target = strdup(src->target)))
		return -ENOMEM;
	if (src->name && !(dst->name = strdup(src->name))) {
		free(dst->target);
		dst->target = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Parse a JSON array body; "null" counts as an empty array (as in Go). */
static int load_array(const char *buf, size_t len, json_t **out, char *err,
		      size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	root = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
	if (!root) {
		util_err(err, errlen, 0, "invalid JSON at line %d column %d: %s",
			jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	if (json_is_null(root) ||
	    (json_is_array(root) && !json_array_size(root))) {
		json_decref(root);
		util_err(err, errlen, 0, "empty array");
		return -EINVAL;
	}
	if (!json_is_array(root)) {
		util_err(err, errlen, 0, "must be a JSON array, got %s",
			policy_json_kind(root));
		json_decref(root);
		return -EINVAL;
	}
	*out = root;
	return 0;
}

int api_patch_parse(const char *buf, size_t len, struct policy_rule **rules,
		    size_t *n, char *err, size_t errlen)
{
	struct policy_rule *r = NULL;
	size_t count, i;
	json_t *root;
	int ret;

	*rules = NULL;
	*n = 0;
	ret = load_array(buf, len, &root, err, errlen);
	if (ret)
		return ret;
	count = json_array_size(root);
	r = calloc(count, sizeof(*r));
	if (!r) {
		util_err(err, errlen, 0, "out of memory");
		json_decref(root);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++) {
		ret = policy_rule_from_json(json_array_get(root, i), "patch", i,
					    &r[i], err, errlen);
		if (ret) {
			policy_rules_free(r, i);
			json_decref(root);
			return ret;
		}
	}
	json_decref(root);
	*rules = r;
	*n = count;
	return 0;
}

/* A lower-cased target and where it came from, for sort + bsearch. */
struct api_key {
	char *key;
	size_t idx;
};

static int key_cmp(const void *a, const void *b)
{
	const struct api_key *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int key_cmp_str(const void *k, const void *elem)
{
	return strcmp(k, ((const struct api_key *)elem)->key);
}

static void keys_free(struct api_key *keys, size_t n)
{
	size_t i;

	if (!keys)
		return;
	for (i = 0; i < n; i++)
		free(keys[i].key);
	free(keys);
}

/* Sorted lower-cased copies of n strings (strs[i] or rules[i].target). */
static struct api_key *keys_new(const struct policy_rule *rules,
				char *const *strs, size_t n)
{
	struct api_key *keys = calloc(n ? n : 1, sizeof(*keys));
	size_t i;

	if (!keys)
		return NULL;
	for (i = 0; i < n; i++) {
		const char *s = rules ? rules[i].target : strs[i];

		keys[i].key = lower_trim_dup(s ? s : "", s ? strlen(s) : 0);
		keys[i].idx = i;
		if (!keys[i].key) {
			keys_free(keys, i);
			return NULL;
		}
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	return keys;
}

static bool keys_has(const struct api_key *keys, size_t n, const char *s)
{
	char *k = lower_trim_dup(s ? s : "", s ? strlen(s) : 0);
	bool found;

	if (!k)
		return false;
	found = bsearch(k, keys, n, sizeof(*keys), key_cmp_str) != NULL;
	free(k);
	return found;
}

int api_patch_merge(const struct policy *old, const struct policy_rule *patch,
		    size_t n_patch, struct policy **out)
{
	struct api_key *keys = NULL;
	struct policy *p = NULL;
	bool *keep = NULL;
	size_t i, total = n_patch + old->n_rules;

	*out = NULL;
	p = policy_new(old->default_action);
	keys = keys_new(patch, NULL, n_patch);
	keep = calloc(n_patch ? n_patch : 1, sizeof(*keep));
	if (!p || !keys || !keep)
		goto nomem;
	if (total) {
		p->rules = calloc(total, sizeof(*p->rules));
		if (!p->rules)
			goto nomem;
	}
	/* The first of each same-key group (sorted by key, then index). */
	for (i = 0; i < n_patch; i++) {
		if (!i || strcmp(keys[i].key, keys[i - 1].key))
			keep[keys[i].idx] = true;
	}
	for (i = 0; i < n_patch; i++) {
		if (!keep[i])
			continue;
		if (rule_copy(&p->rules[p->n_rules], &patch[i]))
			goto nomem;
		p->n_rules++;
	}
	for (i = 0; i < old->n_rules; i++) {
		if (keys_has(keys, n_patch, old->rules[i].target))
			continue;
		if (rule_copy(&p->rules[p->n_rules], &old->rules[i]))
			goto nomem;
		p->n_rules++;
	}
	keys_free(keys, n_patch);
	free(keep);
	*out = p;
	return 0;

nomem:
	keys_free(keys, n_patch);
	free(keep);
	policy_free(p);
	return -ENOMEM;
}

void api_targets_free(char **targets, size_t n)
{
	size_t i;

	if (!targets)
		return;
	for (i = 0; i < n; i++)
		free(targets[i]);
	free(targets);
}

int api_delete_parse(const char *buf, size_t len, char ***targets, size_t *n,
		     char *err, size_t errlen)
{
	size_t count, i;
	json_t *root, *v;
	char **t;
	int ret;

	*targets = NULL;
	*n = 0;
	ret = load_array(buf, len, &root, err, errlen);
	if (ret)
		return ret;
	count = json_array_size(root);
	t = calloc(count, sizeof(*t));
	if (!t)
		goto nomem;
	json_array_foreach(root, i, v) {
		if (!json_is_string(v)) {
			util_err(err, errlen, 0, "[%zu]: must be a string, got %s",
				i, policy_json_kind(v));
			api_targets_free(t, count);
			json_decref(root);
			return -EINVAL;
		}
		t[i] = lower_trim_dup(json_string_value(v),
				      strlen(json_string_value(v)));
		if (!t[i]) {
			api_targets_free(t, count);
			goto nomem;
		}
	}
	json_decref(root);
	*targets = t;
	*n = count;
	return 0;

nomem:
	json_decref(root);
	util_err(err, errlen, 0, "out of memory");
	return -ENOMEM;
}

int api_delete_apply(const struct policy *old, char *const *targets,
		     size_t n_targets, struct policy **out, size_t *removed)
{
	struct api_key *keys;
	struct policy *p;
	size_t i;

	*out = NULL;
	*removed = 0;
	p = policy_new(old->default_action);
	keys = keys_new(NULL, targets, n_targets);
	if (!p || !keys)
		goto nomem;
	if (old->n_rules) {
		p->rules = calloc(old->n_rules, sizeof(*p->rules));
		if (!p->rules)
			goto nomem;
	}
	for (i = 0; i < old->n_rules; i++) {
		if (keys_has(keys, n_targets, old->rules[i].target)) {
			(*removed)++;
			continue;
		}
		if (rule_copy(&p->rules[p->n_rules], &old->rules[i]))
			goto nomem;
		p->n_rules++;
	}
	keys_free(keys, n_targets);
	*out = p;
	return 0;

nomem:
	keys_free(keys, n_targets);
	policy_free(p);
	*removed = 0;
	return -ENOMEM;
}

/* ---- responses -------------------------------------------------------- */

static enum MHD_Result respond(struct api *api, struct MHD_Connection *c,
			       unsigned int status, const char *ctype,
			       char *body, size_t len, const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status >= 400)
		MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	if (status >= 400 && status != MHD_HTTP_UNAUTHORIZED)
		api->stats.errors++;
	return ret;
}

/* Go's http.Error: text/plain, nosniff, message + "\n". */
static enum MHD_Result respond_error(struct api *api, struct MHD_Connection *c,
				     unsigned int status, const char *allow,
				     const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static enum MHD_Result respond_error(struct api *api, struct MHD_Connection *c,
				     unsigned int status, const char *allow,
				     const char *fmt, ...)
{
	char *msg = NULL, *body;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	body = realloc(msg, n + 2);
	if (!body) {
		free(msg);
		return MHD_NO;
	}
	body[n] = '\n';
	body[n + 1] = '\0';
	return respond(api, c, status, API_CT_TEXT, body, n + 1, allow);
}

/* json.Encoder output: compact JSON and "\n". Takes ownership of o. */
static enum MHD_Result respond_json(struct api *api, struct MHD_Connection *c,
				    json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	size_t n;
	char *body;

	json_decref(o);
	if (!s)
		return respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				     NULL, "internal error: out of memory");
	n = strlen(s);
	body = realloc(s, n + 2);
	if (!body) {
		free(s);
		return MHD_NO;
	}
	body[n] = '\n';
	body[n + 1] = '\0';
	return respond(api, c, MHD_HTTP_OK, API_CT_JSON, body, n + 1, NULL);
}

/*
 * {"status":"ok","mode":…,"enforcementMode":…,"reason":…} (peer key
 * order; enforcementMode and reason only when given).
 */
static json_t *status_obj(const char *mode, const char *emode,
			  const char *reason)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (json_object_set_new(o, "status", json_string("ok")) ||
	    json_object_set_new(o, "mode", json_string(mode)) ||
	    (emode &&
	     json_object_set_new(o, "enforcementMode", json_string(emode))) ||
	    (reason && json_object_set_new(o, "reason", json_string(reason)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- handlers --------------------------------------------------------- */

static const char *emode(struct api *api)
{
	const char *m = api->ops.enforcement_mode ?
				api->ops.enforcement_mode(api->ops.arg) :
				NULL;

	return m ? m : "dns";
}

static const struct policy *cur_policy(struct api *api)
{
	return api->ops.policy(api->ops.arg);
}

static void warn_rejected(const char *method, unsigned int status,
			  const char *why)
{
	log_warnx("api: %s /policy rejected (%u): %s", method, status, why);
}

/*
 * Hand p to ops->replace and answer. The reason, when given, replaces
 * enforcementMode in the reply (POST with an empty body, as the peer).
 */
static enum MHD_Result apply(struct api *api, struct MHD_Connection *c,
			     const char *method, struct policy *p,
			     const char *reason)
{
	char err[512] = "";
	const char *mode = api_policy_mode(p);
	int ret;

	ret = api->ops.replace(api->ops.arg, p, err, sizeof(err));
	if (ret) {
		policy_free(p);
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(-ret));
		if (ret == -EINVAL) {
			warn_rejected(method, 400, err);
			return respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
					     "invalid policy: %s", err);
		}
		if (ret == -E2BIG) {
			warn_rejected(method, 413, err);
			return respond_error(api, c, MHD_HTTP_CONTENT_TOO_LARGE,
					     NULL, "%s", err);
		}
		warn_rejected(method, 500, err);
		return respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				     NULL, "failed to apply policy: %s", err);
	}
	return respond_json(
		api, c, status_obj(mode, reason ? NULL : emode(api), reason));
}

static enum MHD_Result policy_get(struct api *api, struct MHD_Connection *c)
{
	const struct policy *p = cur_policy(api);
	json_t *o = status_obj(api_policy_mode(p), emode(api), NULL);

	if (o && json_object_set_new(o, "policy", policy_to_json(p))) {
		json_decref(o);
		o = NULL;
	}
	return respond_json(api, c, o);
}

static enum MHD_Result policy_post(struct api *api, struct MHD_Connection *c,
				   const char *method, const char *body,
				   size_t len)
{
	struct policy *p = NULL;
	char err[512] = "";
	int ret;

	body = util_trim(body, &len);
	if (!len) {
		p = policy_new(POLICY_DENY);
		if (!p)
			return respond_error(api, c,
					     MHD_HTTP_INTERNAL_SERVER_ERROR,
					     NULL, "internal error: %s",
					     strerror(ENOMEM));
		return apply(api, c, method, p,
			     "policy reset to default deny-all");
	}
	ret = policy_parse_json(body, len, api->max_rules, &p, err,
				sizeof(err));
	if (ret == -E2BIG) {
		warn_rejected(method, 413, err);
		return respond_error(api, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
				     "%s", err);
	}
	if (ret == -EINVAL) {
		warn_rejected(method, 400, err);
		return respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
				     "invalid policy: %s", err);
	}
	if (ret)
		return respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				     NULL, "internal error: %s",
				     err[0] ? err : strerror(-ret));
	return apply(api, c, method, p, NULL);
}

static enum MHD_Result too_many(struct api *api, struct MHD_Connection *c,
				const char *method, size_t n)
{
	char err[128];

	snprintf(err, sizeof(err),
		 "egress rule total count %zu exceeds limit %zu", n,
		 api->max_rules);
	warn_rejected(method, 413, err);
	return respond_error(api, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "%s",
			     err);
}

static enum MHD_Result policy_patch(struct api *api, struct MHD_Connection *c,
				    const char *body, size_t len)
{
	struct policy_rule *rules = NULL;
	struct policy *merged = NULL;
	char err[512] = "";
	size_t n = 0;
	int ret;

	body = util_trim(body, &len);
	if (!len)
		return respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
				     "empty body");
	ret = api_patch_parse(body, len, &rules, &n, err, sizeof(err));
	if (ret == -EINVAL) {
		warn_rejected("PATCH", 400, err);
		return respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
				     "invalid patch rules: %s", err);
	}
	if (!ret)
		ret = api_patch_merge(cur_policy(api), rules, n, &merged);
	policy_rules_free(rules, n);
	if (ret)
		return respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				     NULL, "internal error: %s",
				     strerror(-ret));
	if (api->max_rules && merged->n_rules > api->max_rules) {
		n = merged->n_rules;
		policy_free(merged);
		return too_many(api, c, "PATCH", n);
	}
	return apply(api, c, "PATCH", merged, NULL);
}

static enum MHD_Result policy_delete(struct api *api, struct MHD_Connection *c,
				     const char *body, size_t len)
{
	const struct policy *cur = cur_policy(api);
	struct policy *p = NULL;
	char **targets = NULL;
	char err[512] = "";
	size_t n = 0, removed = 0;
	int ret;

	body = util_trim(body, &len);
	if (!len)
		return respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
				     "empty body");
	ret = api_delete_parse(body, len, &targets, &n, err, sizeof(err));
	if (ret == -EINVAL) {
		warn_rejected("DELETE", 400, err);
		return respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
				     "invalid delete targets: %s", err);
	}
	if (!ret)
		ret = api_delete_apply(cur, targets, n, &p, &removed);
	api_targets_free(targets, n);
	if (ret)
		return respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				     NULL, "internal error: %s",
				     strerror(-ret));
	if (!removed) {
		policy_free(p);
		return respond_json(api, c,
				    status_obj(api_policy_mode(cur), emode(api),
					       "no matching targets found"));
	}
	return apply(api, c, "DELETE", p, NULL);
}

static enum MHD_Result policy_route(struct api *api, struct MHD_Connection *c,
				    const char *method, struct api_req *req)
{
	const char *body = req->body ? req->body : "";

	if (!strcmp(method, "GET"))
		return policy_get(api, c);
	if (!strcmp(method, "POST") || !strcmp(method, "PUT"))
		return policy_post(api, c, method, body, req->len);
	if (!strcmp(method, "PATCH"))
		return policy_patch(api, c, body, req->len);
	if (!strcmp(method, "DELETE"))
		return policy_delete(api, c, body, req->len);
	return respond_error(api, c, MHD_HTTP_METHOD_NOT_ALLOWED,
			     API_ALLOW_POLICY, "method not allowed");
}

static enum MHD_Result status_route(struct api *api, struct MHD_Connection *c,
				    const char *method)
{
	json_t *o;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return respond_error(api, c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET",
				     "method not allowed");
	o = api->ops.status ? api->ops.status(api->ops.arg) : json_object();
	if (!o)
		return respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				     NULL,
				     "internal error: status unavailable");
	return respond_json(api, c, o);
}

static enum MHD_Result metrics_route(struct api *api, struct MHD_Connection *c,
				     const char *method)
{
	struct api_buf b = { 0 };
	int ret = 0;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return respond_error(api, c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET",
				     "method not allowed");
	if (api->ops.metrics)
		ret = api->ops.metrics(api->ops.arg, &b);
	if (!ret && !b.data)
		ret = api_buf_printf(&b, "%s", "");
	if (ret) {
		free(b.data);
		return respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				     NULL, "internal error: %s",
				     strerror(-ret));
	}
	return respond(api, c, MHD_HTTP_OK, API_CT_METRICS, b.data, b.len,
		       NULL);
}

static enum MHD_Result vault_route(struct api *api, struct MHD_Connection *c,
				   const char *url, const char *method)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");

	if (get && !strcmp(url, "/credential-vault/_active"))
		return respond_error(api, c, MHD_HTTP_FORBIDDEN, NULL,
				     "forbidden");
	if (get)
		return respond_error(api, c, MHD_HTTP_NOT_FOUND, NULL,
				     "credential vault not found");
	if (!strcmp(method, "POST") || !strcmp(method, "PUT") ||
	    !strcmp(method, "PATCH") || !strcmp(method, "DELETE"))
		return respond_error(
			api, c, MHD_HTTP_PRECONDITION_FAILED, NULL,
			"credential vault requires transparent mitmproxy");
	return respond_error(api, c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL,
			     "method not allowed");
}

enum api_route {
	ROUTE_NONE,
	ROUTE_HEALTHZ,
	ROUTE_POLICY,
	ROUTE_STATUS,
	ROUTE_METRICS,
	ROUTE_VAULT,
};

static enum api_route route_of(const char *url)
{
	if (!strcmp(url, "/healthz"))
		return ROUTE_HEALTHZ;
	if (!strcmp(url, "/policy"))
		return ROUTE_POLICY;
	if (!strcmp(url, "/status"))
		return ROUTE_STATUS;
	if (!strcmp(url, "/metrics"))
		return ROUTE_METRICS;
	if (!strcmp(url, "/credential-vault") ||
	    !strncmp(url, "/credential-vault/", 18))
		return ROUTE_VAULT;
	return ROUTE_NONE;
}

/*
 * The token in OPENSANDBOX-EGRESS-AUTH (the peer's header), or as
 * "Authorization: Bearer <token>" so a stock Prometheus (its scrape
 * config's authorization or bearer_token) can read /metrics.
 */
static bool authorized(struct api *api, struct MHD_Connection *c)
{
	const char *v = NULL;
	size_t vlen = 0;

	if (!api->token)
		return true;
	if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, API_AUTH_HEADER,
					  strlen(API_AUTH_HEADER), &v,
					  &vlen) == MHD_YES &&
	    api_token_equal(api->token, v, vlen))
		return true;
	v = NULL;
	if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND,
					  MHD_HTTP_HEADER_AUTHORIZATION,
					  strlen(MHD_HTTP_HEADER_AUTHORIZATION),
					  &v, &vlen) != MHD_YES ||
	    !v || vlen < 7 || strncasecmp(v, "Bearer ", 7))
		return false;
	for (v += 7, vlen -= 7; vlen && *v == ' '; v++, vlen--)
		;
	return api_token_equal(api->token, v, vlen);
}

static bool takes_body(const char *method)
{
	return !strcmp(method, "POST") || !strcmp(method, "PUT") ||
	       !strcmp(method, "PATCH") || !strcmp(method, "DELETE");
}

static enum MHD_Result too_large(struct api *api, struct MHD_Connection *c,
				 const char *method)
{
	char err[96];

	snprintf(err, sizeof(err), "request body too large (limit %u bytes)",
		 API_BODY_MAX);
	warn_rejected(method, 413, err);
	return respond_error(api, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "%s",
			     err);
}

/*
 * Answer at once what needs no body (404, 401, a declared body over the
 * limit): true with *res set, false to read the body first.
 */
static bool early_answer(struct api *api, struct MHD_Connection *c,
			 const char *url, const char *method,
			 enum MHD_Result *res)
{
	enum api_route rt = route_of(url);
	const char *cl;

	if (rt == ROUTE_NONE) {
		*res = respond_error(api, c, MHD_HTTP_NOT_FOUND, NULL,
				     "404 page not found");
		return true;
	}
	if (rt == ROUTE_HEALTHZ)
		return false;
	if (!authorized(api, c)) {
		api->stats.unauthorized++;
		*res = respond_error(api, c, MHD_HTTP_UNAUTHORIZED, NULL,
				     "unauthorized");
		return true;
	}
	if (rt != ROUTE_POLICY || !takes_body(method))
		return false;
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > API_BODY_MAX) {
		*res = too_large(api, c, method);
		return true;
	}
	return false;
}

static enum MHD_Result dispatch(struct api *api, struct MHD_Connection *c,
				const char *url, const char *method,
				struct api_req *req)
{
	switch (route_of(url)) {
	case ROUTE_HEALTHZ:
		if (api->ops.ready && !api->ops.ready(api->ops.arg))
			return respond_error(api, c,
					     MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
					     "not ready");
		return respond(api, c, MHD_HTTP_OK, API_CT_TEXT, strdup("ok"),
			       2, NULL);
	case ROUTE_POLICY:
		if (req->too_large)
			return too_large(api, c, method);
		return policy_route(api, c, method, req);
	case ROUTE_STATUS:
		return status_route(api, c, method);
	case ROUTE_METRICS:
		return metrics_route(api, c, method);
	case ROUTE_VAULT:
		return vault_route(api, c, url, method);
	case ROUTE_NONE:
		break;
	}
	return respond_error(api, c, MHD_HTTP_NOT_FOUND, NULL,
			     "404 page not found");
}

static int body_append(struct api_req *req, const char *data, size_t n)
{
	req->seen += n;
	if (req->too_large || req->seen > API_BODY_MAX) {
		req->too_large = true;
		free(req->body);
		req->body = NULL;
		req->len = req->cap = 0;
		return req->seen > API_BODY_HARD_MAX ? -E2BIG : 0;
	}
	if (req->len + n + 1 > req->cap) {
		size_t cap = req->cap ? req->cap : 1024;
		char *b;

		while (cap < req->len + n + 1)
			cap *= 2;
		b = realloc(req->body, cap);
		if (!b)
			return -ENOMEM;
		req->body = b;
		req->cap = cap;
	}
	memcpy(req->body + req->len, data, n);
	req->len += n;
	req->body[req->len] = '\0';
	return 0;
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct api *api = cls;
	struct api_req *req = *con_cls;
	enum MHD_Result res;

	if (!req) {
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		*con_cls = req;
		api->stats.requests++;
		/* Headers complete: the ordinary idle timeout from now on. */
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned int)API_CONN_TIMEOUT_S);
		if (early_answer(api, c, url, method, &res)) {
			req->responded = true;
			return res;
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		int ret = 0;

		if (!req->responded)
			ret = body_append(req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return ret ? MHD_NO : MHD_YES;
	}
	if (req->responded)
		return MHD_YES;
	req->responded = true;
	return dispatch(api, c, url, method, req);
}

/* A new connection gets API_HEADER_TIMEOUT_S to send its headers. */
static void api_connection(void *cls, struct MHD_Connection *c,
			   void **socket_context,
			   enum MHD_ConnectionNotificationCode toe)
{
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned int)API_HEADER_TIMEOUT_S);
}

static void api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct api_req *req = *con_cls;

	if (!req)
		return;
	free(req->body);
	free(req);
	*con_cls = NULL;
}

static void api_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	/* Per connection, so a flood of bad requests would be a flood of
	 * lines: folded. */
	log_folded(LOG_LVL_WARN, "api_server", "api: %s", buf);
}

/* ---- event loop glue -------------------------------------------------- */

/* After any MHD_run: wake up again when MHD says so (0 = work pending). */
static void api_rearm(struct api *api)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(api->mhd, &ms) == MHD_YES)
		loop_timer_arm(api->timer, ms);
	else
		loop_timer_disarm(api->timer);
}

static void api_run(struct api *api)
{
	MHD_run(api->mhd);
	api_rearm(api);
}

static void api_fd_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	api_run(arg);
}

static void api_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	api_run(arg);
}

static int api_listen(const char *addr, int *out, int *port, char *err,
		      size_t errlen)
{
	struct sockaddr_storage ss, bound;
	socklen_t sslen, blen = sizeof(bound);
	const char *shown = addr && *addr ? addr : API_DEFAULT_ADDR;
	int fd, ret, one = 1, zero = 0;
	char why[160];
	bool any;

	ret = config_parse_listen_addr(addr, &ss, &sslen, &any, why,
				       sizeof(why));
	if (ret) {
		util_err(err, errlen, 0, "invalid listen address \"%s\": %s",
			 shown, why);
		return ret;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0 && any && errno == EAFNOSUPPORT) {
		/* No IPv6 in this kernel: all IPv4 interfaces. */
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		in_port_t p = ((struct sockaddr_in6 *)&ss)->sin6_port;

		memset(&ss, 0, sizeof(ss));
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		s4->sin_port = p;
		sslen = sizeof(*s4);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    0);
	}
	if (fd < 0) {
		ret = -errno;
		util_err(err, errlen, 0, "cannot listen on %s: socket: %s", shown,
			strerror(-ret));
		return ret;
	}
	/* Before bind: the BPF bind guard keeps this port egressd's. */
	selfsock_note(fd);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (any && ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 64) < 0) {
		const char *hint = "";

		ret = -errno;
		if (ret == -EADDRINUSE)
			hint = " (another process, perhaps another egressd, "
			       "holds this port: stop it or choose another "
			       "address with OPENSANDBOX_EGRESS_HTTP_ADDR)";
		else if (ret == -EACCES)
			hint = " (ports below 1024 need "
			       "CAP_NET_BIND_SERVICE: grant it or use a "
			       "higher port in OPENSANDBOX_EGRESS_HTTP_ADDR)";
		else if (ret == -EADDRNOTAVAIL)
			hint = " (no interface of this network namespace has "
			       "this address: fix OPENSANDBOX_EGRESS_HTTP_ADDR)";
		util_err(err, errlen, 0, "cannot listen on %s (API): %s%s",
			 shown, strerror(-ret), hint);
		selfsock_close(fd);
		return ret;
	}
	*port = 0;
	if (!getsockname(fd, (struct sockaddr *)&bound, &blen))
		*port = ntohs(
			bound.ss_family == AF_INET6 ?
				((struct sockaddr_in6 *)&bound)->sin6_port :
				((struct sockaddr_in *)&bound)->sin_port);
	*out = fd;
	return 0;
}

int api_new(struct loop *loop, const char *addr, const char *token,
	    size_t max_rules, const struct api_ops *ops, struct api **out,
	    char *err, size_t errlen)
{
	const union MHD_DaemonInfo *info;
	struct api *api;
	int fd = -1, ret;

	*out = NULL;
	if (!ops || !ops->policy || !ops->replace) {
		util_err(err, errlen, 0,
			"api: policy and replace callbacks needed");
		return -EINVAL;
	}
	api = calloc(1, sizeof(*api));
	if (!api)
		goto nomem;
	api->loop = loop;
	api->epfd = -1;
	api->ops = *ops;
	api->max_rules = max_rules;
	if (token && *token && !(api->token = strdup(token)))
		goto nomem;
	api->timer = loop_timer_new(loop, api_timer_cb, api);
	if (!api->timer)
		goto nomem;
	ret = api_listen(addr, &fd, &api->port, err, errlen);
	if (ret)
		goto err_free;
	/* The logger goes first: libmicrohttpd logs a warning at every
	 * start when another option precedes it. */
	api->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, api_access,
		api, MHD_OPTION_EXTERNAL_LOGGER, api_mhd_log, api,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_NOTIFY_COMPLETED, api_completed, api,
		MHD_OPTION_NOTIFY_CONNECTION, api_connection, api,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)API_CONN_LIMIT,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned int)API_PER_IP_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)API_CONN_TIMEOUT_S,
		MHD_OPTION_END);
	if (!api->mhd) {
		ret = -EIO;
		util_err(err, errlen, 0,
			"cannot serve on %s: libmicrohttpd failed to start",
			addr && *addr ? addr : API_DEFAULT_ADDR);
		close(fd);
		goto err_free;
	}
	info = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		ret = -EIO;
		util_err(err, errlen, 0, "api: libmicrohttpd has no epoll fd");
		goto err_free;
	}
	api->epfd = info->epoll_fd;
	ret = loop_add_fd(loop, api->epfd, EPOLLIN, api_fd_cb, api);
	if (ret) {
		api->epfd = -1;
		util_err(err, errlen, 0, "api: loop_add_fd: %s", strerror(-ret));
		goto err_free;
	}
	api_rearm(api);
	if (!api->token)
		log_warnx("the API on %s has no token (OPENSANDBOX_EGRESS_TOKEN unset): anyone who can reach this port controls the policy. The workload's own connections to it are dropped, but set a token",
			  addr && *addr ? addr : API_DEFAULT_ADDR);
	*out = api;
	return 0;

nomem:
	ret = -ENOMEM;
	util_err(err, errlen, 0, "api: out of memory");
err_free:
	api_free(api);
	return ret;
}

void api_free(struct api *api)
{
	if (!api)
		return;
	if (api->epfd >= 0)
		loop_del_fd(api->loop, api->epfd);
	if (api->mhd)
		MHD_stop_daemon(api->mhd);
	if (api->timer)
		loop_timer_free(api->timer);
	free(api->token);
	free(api);
}

int api_port(const struct api *api)
{
	return api->port;
}

void api_get_stats(const struct api *api, struct api_stats *st)
{
	*st = api->stats;
}
