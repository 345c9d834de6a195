// SPDX-License-Identifier: GPL-2.0-only
/*
 * The HTTP API's routes (docs/api.md): /policy (GET, POST/PUT, PATCH,
 * DELETE), /status, /metrics, /healthz and the credential-vault stubs,
 * with the request and response JSON and text exactly as the OpenSandbox
 * egress sidecar answers them (paths, status codes, bodies). A request
 * gets here from agent/api.c only once it is authorised and its body is
 * complete; policy changes go to the agent through struct api_ops.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "egressd/api.h"
#include "egressd/log.h"
#include "egressd/util.h"
#include "api_int.h"

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

/* ---- responses -------------------------------------------------------- */

enum MHD_Result api_respond(struct api *api, struct MHD_Connection *c,
			    unsigned int status, const char *ctype, char *body,
			    size_t len, const char *allow)
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

enum MHD_Result api_respond_error(struct api *api, struct MHD_Connection *c,
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
	return api_respond(api, c, status, API_CT_TEXT, body, n + 1, allow);
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
		return api_respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
					 NULL, "internal error: out of memory");
	n = strlen(s);
	body = realloc(s, n + 2);
	if (!body) {
		free(s);
		return MHD_NO;
	}
	body[n] = '\n';
	body[n + 1] = '\0';
	return api_respond(api, c, MHD_HTTP_OK, API_CT_JSON, body, n + 1, NULL);
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
			return api_respond_error(api, c, MHD_HTTP_BAD_REQUEST,
						 NULL, "invalid policy: %s",
						 err);
		}
		if (ret == -E2BIG) {
			warn_rejected(method, 413, err);
			return api_respond_error(api, c,
						 MHD_HTTP_CONTENT_TOO_LARGE,
						 NULL, "%s", err);
		}
		warn_rejected(method, 500, err);
		return api_respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
					 NULL, "failed to apply policy: %s",
					 err);
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
		if (policy_new(&p, POLICY_DENY))
			return api_respond_error(api, c,
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
		return api_respond_error(api, c, MHD_HTTP_CONTENT_TOO_LARGE,
					 NULL, "%s", err);
	}
	if (ret == -EINVAL) {
		warn_rejected(method, 400, err);
		return api_respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
					 "invalid policy: %s", err);
	}
	if (ret)
		return api_respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
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
	return api_respond_error(api, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "%s",
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
		return api_respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
					 "empty body");
	ret = api_patch_parse(body, len, &rules, &n, err, sizeof(err));
	if (ret == -EINVAL) {
		warn_rejected("PATCH", 400, err);
		return api_respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
					 "invalid patch rules: %s", err);
	}
	if (!ret)
		ret = api_patch_merge(cur_policy(api), rules, n, &merged);
	policy_rules_free(rules, n);
	if (ret)
		return api_respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
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
		return api_respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
					 "empty body");
	ret = api_delete_parse(body, len, &targets, &n, err, sizeof(err));
	if (ret == -EINVAL) {
		warn_rejected("DELETE", 400, err);
		return api_respond_error(api, c, MHD_HTTP_BAD_REQUEST, NULL,
					 "invalid delete targets: %s", err);
	}
	if (!ret)
		ret = api_delete_apply(cur, targets, n, &p, &removed);
	api_targets_free(targets, n);
	if (ret)
		return api_respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
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
	return api_respond_error(api, c, MHD_HTTP_METHOD_NOT_ALLOWED,
				 API_ALLOW_POLICY, "method not allowed");
}

static enum MHD_Result status_route(struct api *api, struct MHD_Connection *c,
				    const char *method)
{
	json_t *o;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return api_respond_error(api, c, MHD_HTTP_METHOD_NOT_ALLOWED,
					 "GET", "method not allowed");
	o = api->ops.status ? api->ops.status(api->ops.arg) : json_object();
	if (!o)
		return api_respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
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
		return api_respond_error(api, c, MHD_HTTP_METHOD_NOT_ALLOWED,
					 "GET", "method not allowed");
	if (api->ops.metrics)
		ret = api->ops.metrics(api->ops.arg, &b);
	if (!ret && !b.data)
		ret = api_buf_printf(&b, "%s", "");
	if (ret) {
		free(b.data);
		return api_respond_error(api, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
					 NULL, "internal error: %s",
					 strerror(-ret));
	}
	return api_respond(api, c, MHD_HTTP_OK, API_CT_METRICS, b.data, b.len,
			   NULL);
}

static enum MHD_Result vault_route(struct api *api, struct MHD_Connection *c,
				   const char *url, const char *method)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");

	if (get && !strcmp(url, "/credential-vault/_active"))
		return api_respond_error(api, c, MHD_HTTP_FORBIDDEN, NULL,
					 "forbidden");
	if (get)
		return api_respond_error(api, c, MHD_HTTP_NOT_FOUND, NULL,
					 "credential vault not found");
	if (!strcmp(method, "POST") || !strcmp(method, "PUT") ||
	    !strcmp(method, "PATCH") || !strcmp(method, "DELETE"))
		return api_respond_error(
			api, c, MHD_HTTP_PRECONDITION_FAILED, NULL,
			"credential vault requires transparent mitmproxy");
	return api_respond_error(api, c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL,
				 "method not allowed");
}

enum api_route api_route_of(const char *url)
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

enum MHD_Result api_too_large(struct api *api, struct MHD_Connection *c,
			      const char *method)
{
	char err[96];

	snprintf(err, sizeof(err), "request body too large (limit %u bytes)",
		 API_BODY_MAX);
	warn_rejected(method, 413, err);
	return api_respond_error(api, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "%s",
				 err);
}

enum MHD_Result api_dispatch(struct api *api, struct MHD_Connection *c,
			     const char *url, const char *method,
			     struct api_req *req)
{
	switch (api_route_of(url)) {
	case ROUTE_HEALTHZ:
		if (api->ops.ready && !api->ops.ready(api->ops.arg))
			return api_respond_error(api, c,
						 MHD_HTTP_SERVICE_UNAVAILABLE,
						 NULL, "not ready");
		return api_respond(api, c, MHD_HTTP_OK, API_CT_TEXT,
				   strdup("ok"), 2, NULL);
	case ROUTE_POLICY:
		if (req->too_large)
			return api_too_large(api, c, method);
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
	return api_respond_error(api, c, MHD_HTTP_NOT_FOUND, NULL,
				 "404 page not found");
}
