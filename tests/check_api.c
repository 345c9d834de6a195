// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the HTTP policy API: the pure helpers (mode, token check,
 * listen address, PATCH merge, DELETE) and an in-process server on
 * 127.0.0.1 (ephemeral port) with fake api_ops, driven through the event
 * loop while a client thread speaks plain HTTP/1.1 over a socket.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egressd/api.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/policy.h"

static struct policy *parse(const char *json)
{
	struct policy *p = NULL;
	char err[256];

	ck_assert_msg(!policy_parse_json(json, strlen(json), 0, &p, err,
					 sizeof(err)),
		      "%s", err);
	return p;
}

/* "action target, action target, …" of p, for compact assertions. */
static const char *rules_str(const struct policy *p)
{
	static char buf[4096];
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < p->n_rules; i++)
		o += snprintf(
			buf + o, sizeof(buf) - o, "%s%s %s", i ? ", " : "",
			p->rules[i].action == POLICY_ALLOW ? "allow" : "deny",
			p->rules[i].target);
	return buf;
}

/* ---- pure helpers ----------------------------------------------------- */

START_TEST(test_mode)
{
	struct policy *p;

	ck_assert_int_eq(policy_new(&p, POLICY_DENY), 0);
	ck_assert_str_eq(api_policy_mode(p), "deny_all");
	p->default_action = POLICY_ALLOW;
	ck_assert_str_eq(api_policy_mode(p), "allow_all");
	policy_free(p);
	p = parse(
		"{\"defaultAction\":\"allow\",\"egress\":[{\"action\":\"deny\",\"target\":\"a.com\"}]}");
	ck_assert_str_eq(api_policy_mode(p), "enforcing");
	p->default_action = POLICY_DENY;
	ck_assert_str_eq(api_policy_mode(p), "enforcing");
	policy_free(p);
}
END_TEST

START_TEST(test_token_equal)
{
	ck_assert(api_token_equal("secret", "secret", 6));
	ck_assert(!api_token_equal("secret", "secreT", 6));
	ck_assert(!api_token_equal("secret", "secret2", 7));
	/* got need not be NUL-terminated. */
	ck_assert(api_token_equal("secret", "secret2", 6));
	ck_assert(!api_token_equal("secret", "secre", 5));
	ck_assert(!api_token_equal("secret", NULL, 0));
	ck_assert(!api_token_equal("secret", "", 0));
}
END_TEST

START_TEST(test_patch_parse_errors)
{
	static const struct {
		const char *in, *err;
	} cases[] = {
		{ "[]", "empty array" },
		{ "null", "empty array" },
		{ "{\"action\":\"allow\"}",
		  "must be a JSON array, got object" },
		{ "\"x\"", "must be a JSON array, got string" },
		{ "[", "invalid JSON at line 1" },
		{ "[1]", "patch[0]: must be an object, got number" },
		{ "[{\"action\":\"allow\",\"target\":\"a.com\"},{\"action\":\"allow\",\"target\":\"a.*.com\"}]",
		  "patch[1]: malformed wildcard \"a.*.com\"" },
		{ "[{\"action\":\"permit\",\"target\":\"a.com\"}]",
		  "patch[0]: action \"permit\": must be \"allow\" or \"deny\"" },
		{ "[{\"action\":\"allow\"}]", "patch[0]: target is missing" },
		{ "[{\"target\":7}]",
		  "patch[0]: target must be a string, got number" },
		{ "[{\"action\":\"allow\",\"target\":\"  \"}]",
		  "patch[0]: target is empty" },
	};
	struct policy_rule *r;
	char err[512];
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(api_patch_parse(cases[i].in,
						 strlen(cases[i].in), &r, &n,
						 err, sizeof(err)),
				 -EINVAL);
		ck_assert_msg(strstr(err, cases[i].err),
			      "input %s: got \"%s\", want \"%s\"", cases[i].in,
			      err, cases[i].err);
		ck_assert_ptr_null(r);
	}
}
END_TEST

START_TEST(test_patch_parse_ok)
{
	const char *in = "[{\"Action\":\" ALLOW \",\"TARGET\":\" WWW.x.com \"},"
			 "{\"target\":\"10.0.0.1/8\"}]";
	struct policy_rule *r;
	char err[256];
	size_t n;

	ck_assert_int_eq(
		api_patch_parse(in, strlen(in), &r, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(r[0].action, POLICY_ALLOW);
	ck_assert_str_eq(r[0].target, "WWW.x.com");
	ck_assert_str_eq(r[0].name, "www.x.com");
	ck_assert_int_eq(r[1].action, POLICY_DENY);
	ck_assert_int_eq(r[1].kind, POLICY_KIND_CIDR);
	ck_assert_str_eq(r[1].name, "10.0.0.0/8");
	policy_rules_free(r, n);
}
END_TEST

static struct policy *merge(const char *old_json, const char *patch)
{
	struct policy *old = parse(old_json), *out = NULL;
	struct policy_rule *r;
	char err[256];
	size_t n;

	ck_assert_msg(!api_patch_parse(patch, strlen(patch), &r, &n, err,
				       sizeof(err)),
		      "%s", err);
	ck_assert_int_eq(api_patch_merge(old, r, n, &out), 0);
	policy_rules_free(r, n);
	policy_free(old);
	return out;
}

START_TEST(test_patch_merge)
{
	struct policy *p;

	/* The peer's smoke test: a patch beats an older wildcard. */
	p = merge(
		"{\"defaultAction\":\"deny\",\"egress\":[{\"action\":\"deny\",\"target\":\"*.x.com\"}]}",
		"[{\"action\":\"allow\",\"target\":\"www.x.com\"}]");
	ck_assert_str_eq(rules_str(p), "allow www.x.com, deny *.x.com");
	ck_assert_int_eq(p->default_action, POLICY_DENY);
	policy_free(p);

	/* Same target (any case) replaced; first patch rule wins. */
	p = merge("{\"defaultAction\":\"allow\",\"egress\":["
		  "{\"action\":\"allow\",\"target\":\"a.com\"},"
		  "{\"action\":\"deny\",\"target\":\"B.com\"},"
		  "{\"action\":\"allow\",\"target\":\"c.com\"}]}",
		  "[{\"action\":\"deny\",\"target\":\"b.COM\"},"
		  "{\"action\":\"allow\",\"target\":\"d.com\"},"
		  "{\"action\":\"allow\",\"target\":\"B.com\"},"
		  "{\"action\":\"deny\",\"target\":\"A.com\"}]");
	ck_assert_str_eq(rules_str(p),
			 "deny b.COM, allow d.com, deny A.com, allow c.com");
	ck_assert_int_eq(p->default_action, POLICY_ALLOW);
	ck_assert_str_eq(api_policy_mode(p), "enforcing");
	policy_free(p);

	/* Onto an empty policy. */
	p = merge("{}", "[{\"action\":\"allow\",\"target\":\"e.com\"}]");
	ck_assert_str_eq(rules_str(p), "allow e.com");
	policy_free(p);
}
END_TEST

START_TEST(test_delete)
{
	struct policy *old =
		parse("{\"defaultAction\":\"allow\",\"egress\":["
		      "{\"action\":\"allow\",\"target\":\"A.com\"},"
		      "{\"action\":\"deny\",\"target\":\"*.x.com\"},"
		      "{\"action\":\"deny\",\"target\":\"www.x.com\"},"
		      "{\"action\":\"allow\",\"target\":\"10.0.0.0/8\"}]}");
	struct policy *out;
	const char *in;
	char **t, err[256];
	size_t n, removed;

	in = "[\" a.COM \", \"*.X.com\", \"nothere.com\"]";
	ck_assert_int_eq(
		api_delete_parse(in, strlen(in), &t, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(t[0], "a.com");
	ck_assert_str_eq(t[1], "*.x.com");
	ck_assert_int_eq(api_delete_apply(old, t, n, &out, &removed), 0);
	ck_assert_uint_eq(removed, 2);
	/* No wildcard expansion: www.x.com stays. */
	ck_assert_str_eq(rules_str(out), "deny www.x.com, allow 10.0.0.0/8");
	ck_assert_int_eq(out->default_action, POLICY_ALLOW);
	policy_free(out);
	api_targets_free(t, n);

	in = "[\"nothere.com\"]";
	ck_assert_int_eq(
		api_delete_parse(in, strlen(in), &t, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(api_delete_apply(old, t, n, &out, &removed), 0);
	ck_assert_uint_eq(removed, 0);
	ck_assert_uint_eq(out->n_rules, 4);
	policy_free(out);
	api_targets_free(t, n);

	ck_assert_int_eq(api_delete_parse("[]", 2, &t, &n, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "empty array");
	ck_assert_int_eq(api_delete_parse("null", 4, &t, &n, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "empty array");
	ck_assert_int_eq(api_delete_parse("[\"a\",1]", 7, &t, &n, err,
					  sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "[1]: must be a string, got number");
	ck_assert_int_eq(api_delete_parse("{}", 2, &t, &n, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "must be a JSON array, got object");
	ck_assert_int_eq(api_delete_parse("[x", 2, &t, &n, err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "invalid JSON"));
	policy_free(old);
}
END_TEST

START_TEST(test_buf_printf)
{
	struct api_buf b = { 0 };
	int i;

	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(api_buf_printf(&b, "line %d\n", i), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "line 999\n"));
	ck_assert_uint_eq(b.len, strlen(b.data));
	free(b.data);
}
END_TEST

/* ---- in-process server ------------------------------------------------ */

struct fake {
	bool ready;
	struct policy *policy;
	int replace_ret; /* !0: replace fails with this */
	int replaces;
};

static bool fake_ready(void *arg)
{
	return ((struct fake *)arg)->ready;
}

static const struct policy *fake_policy(void *arg)
{
	return ((struct fake *)arg)->policy;
}

static const char *fake_emode(void *arg)
{
	return "dns+nft";
}

static int fake_replace(void *arg, struct policy *p, char *err, size_t errlen)
{
	struct fake *f = arg;

	if (f->replace_ret) {
		snprintf(err, errlen, "nft said no");
		return f->replace_ret;
	}
	policy_free(f->policy);
	f->policy = p;
	f->replaces++;
	return 0;
}

static json_t *fake_status(void *arg)
{
	return json_pack("{s:s}", "version", "test");
}

static int fake_metrics(void *arg, struct api_buf *out)
{
	return api_buf_printf(out, "egressd_build_info{version=\"test\"} 1\n");
}

struct req {
	const char *method, *path, *headers;
	const char *body;
	size_t body_len; /* 0: strlen(body) */
	bool chunked; /* send the body with chunked encoding */
	/* results */
	int status;
	char head[2048];
	char *resp;
	size_t resp_len;
};

struct client {
	int port;
	struct req *reqs;
	size_t n;
	int done_fd;
};

static void send_all(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w <= 0)
			return; /* the server may close early (413) */
		b += w;
		n -= w;
	}
}

static void do_req(int port, struct req *r)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	size_t blen = r->body ? (r->body_len ? r->body_len : strlen(r->body)) :
				0;
	char hdr[1024], *all = NULL, *sep;
	size_t len = 0, cap = 0;
	int fd, n;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->status = -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	if (r->chunked)
		n = snprintf(
			hdr, sizeof(hdr),
			"%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%sTransfer-Encoding: chunked\r\n\r\n",
			r->method, r->path, r->headers ? r->headers : "");
	else
		n = snprintf(
			hdr, sizeof(hdr),
			"%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
			r->method, r->path, r->headers ? r->headers : "", blen);
	send_all(fd, hdr, n);
	if (r->chunked) {
		size_t off;

		for (off = 0; off < blen; off += 65536) {
			size_t c = blen - off < 65536 ? blen - off : 65536;

			n = snprintf(hdr, sizeof(hdr), "%zx\r\n", c);
			send_all(fd, hdr, n);
			send_all(fd, r->body + off, c);
			send_all(fd, "\r\n", 2);
		}
		send_all(fd, "0\r\n\r\n", 5);
	} else if (blen) {
		send_all(fd, r->body, blen);
	}
	for (;;) {
		ssize_t got;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			all = realloc(all, cap);
		}
		got = recv(fd, all + len, cap - len - 1, 0);
		if (got <= 0)
			break;
		len += got;
	}
	if (!all)
		goto out;
	all[len] = '\0';
	sep = strstr(all, "\r\n\r\n");
	if (!sep || sscanf(all, "HTTP/1.%*d %d", &r->status) != 1)
		goto out;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)(sep - all), all);
	r->resp_len = len - (sep + 4 - all);
	r->resp = strndup(sep + 4, r->resp_len);
out:
	free(all);
	if (fd >= 0)
		close(fd);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	size_t i;

	for (i = 0; i < c->n; i++)
		do_req(c->port, &c->reqs[i]);
	ck_assert_int_eq(write(c->done_fd, "x", 1), 1);
	return NULL;
}

static void done_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	loop_stop(loop);
}

static const struct api_ops fake_ops = {
	.ready = fake_ready,
	.policy = fake_policy,
	.enforcement_mode = fake_emode,
	.replace = fake_replace,
	.status = fake_status,
	.metrics = fake_metrics,
};

/* Serve reqs from a fresh API on 127.0.0.1:0 through a loop. */
static void serve(struct fake *f, const char *token, struct req *reqs, size_t n)
{
	struct api_ops ops = fake_ops;
	struct loop *loop;
	struct client c = { .reqs = reqs, .n = n };
	struct api *api;
	char err[256];
	pthread_t th;
	int pfd[2];

	ck_assert_int_eq(loop_new(&loop), 0);
	ops.arg = f;
	ck_assert_msg(!api_new(&api, loop, "127.0.0.1:0", token, 4, &ops, err,
			       sizeof(err)),
		      "%s", err);
	c.port = api_port(api);
	ck_assert_int_gt(c.port, 0);
	ck_assert_int_eq(pipe(pfd), 0);
	c.done_fd = pfd[1];
	ck_assert_int_eq(loop_add_fd(loop, pfd[0], EPOLLIN, done_cb, NULL), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, client_main, &c), 0);
	ck_assert_int_eq(loop_run(loop), 0);
	pthread_join(th, NULL);
	loop_del_fd(loop, pfd[0]);
	close(pfd[0]);
	close(pfd[1]);
	api_free(api);
	loop_free(loop);
}

static void reqs_free(struct req *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(r[i].resp);
}

static bool has_header(const struct req *r, const char *h)
{
	return strcasestr(r->head, h) != NULL;
}

#define NREQ(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_server_basic)
{
	struct fake f = { .ready = false };
	struct req r[] = {
		{ .method = "GET", .path = "/healthz" },
		{ .method = "GET", .path = "/policy" },
		{ .method = "GET", .path = "/nope" },
		{ .method = "GET", .path = "/policy/" },
		{ .method = "OPTIONS", .path = "/policy" },
		{ .method = "POST",
		  .path = "/policy",
		  .body = "{\"egress\":[{\"action\":\"allow\",\"target\":\"A.com\"}]}" },
		{ .method = "GET", .path = "/policy" },
		{ .method = "PUT", .path = "/policy", .body = "  \n" },
		{ .method = "GET", .path = "/policy" },
		{ .method = "POST", .path = "/policy", .body = "{}" },
		{ .method = "POST", .path = "/policy", .body = "null" },
		{ .method = "POST", .path = "/policy", .body = "{" },
		{ .method = "POST",
		  .path = "/policy",
		  .body = "{\"egres\":[{\"target\":\"a.com\"}]}" },
		{ .method = "POST",
		  .path = "/policy",
		  .body = "{\"egress\":[{\"target\":\"a.com\"},{\"target\":\"*foo.com\"}]}" },
		{ .method = "POST",
		  .path = "/policy",
		  .body = "{\"egress\":[{\"target\":\"a\"},{\"target\":\"b\"},{\"target\":\"c\"},{\"target\":\"d\"},{\"target\":\"e\"}]}" },
		{ .method = "GET", .path = "/status" },
		{ .method = "GET", .path = "/metrics" },
		{ .method = "GET", .path = "/credential-vault" },
		{ .method = "POST",
		  .path = "/credential-vault/credentials",
		  .body = "{}" },
		{ .method = "GET", .path = "/credential-vault/_active" },
	};
	size_t i = 0;

	ck_assert_int_eq(policy_new(&f.policy, POLICY_DENY), 0);
	serve(&f, NULL, r, NREQ(r));
	ck_assert_int_eq(r[i].status, 503);
	ck_assert_str_eq(r[i].resp, "not ready\n");
	ck_assert(has_header(&r[i], "Content-Type: text/plain; charset=utf-8"));
	ck_assert(has_header(&r[i], "X-Content-Type-Options: nosniff"));
	i++;
	ck_assert_int_eq(r[i].status, 200);
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"deny_all\",\"enforcementMode\":\"dns+nft\",\"policy\":{\"egress\":[],\"defaultAction\":\"deny\"}}\n");
	ck_assert(has_header(&r[i], "Content-Type: application/json"));
	i++;
	ck_assert_int_eq(r[i].status, 404);
	ck_assert_str_eq(r[i].resp, "404 page not found\n");
	i++;
	ck_assert_int_eq(r[i].status, 404);
	i++;
	ck_assert_int_eq(r[i].status, 405);
	ck_assert_str_eq(r[i].resp, "method not allowed\n");
	ck_assert(has_header(&r[i], "Allow: GET, POST, PUT, PATCH, DELETE"));
	i++;
	ck_assert_int_eq(r[i].status, 200);
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"enforcing\",\"enforcementMode\":\"dns+nft\"}\n");
	i++;
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"enforcing\",\"enforcementMode\":\"dns+nft\",\"policy\":{\"egress\":[{\"action\":\"allow\",\"target\":\"A.com\"}],\"defaultAction\":\"deny\"}}\n");
	i++;
	ck_assert_int_eq(r[i].status, 200);
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"deny_all\",\"reason\":\"policy reset to default deny-all\"}\n");
	i++;
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"deny_all\",\"enforcementMode\":\"dns+nft\",\"policy\":{\"egress\":[],\"defaultAction\":\"deny\"}}\n");
	i++;
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"deny_all\",\"enforcementMode\":\"dns+nft\"}\n");
	i++;
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"deny_all\",\"enforcementMode\":\"dns+nft\"}\n");
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_msg(!strncmp(r[i].resp, "invalid policy: invalid JSON", 28),
		      "%s", r[i].resp);
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_str_eq(
		r[i].resp,
		"invalid policy: unknown key \"egres\": a policy has only \"defaultAction\" and \"egress\"\n");
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_msg(!strncmp(r[i].resp,
			       "invalid policy: egress[1]: malformed wildcard",
			       45),
		      "%s", r[i].resp);
	i++;
	ck_assert_int_eq(r[i].status, 413);
	ck_assert_str_eq(r[i].resp,
			 "egress rule total count 5 exceeds limit 4\n");
	i++;
	ck_assert_int_eq(r[i].status, 200);
	ck_assert_str_eq(r[i].resp, "{\"version\":\"test\"}\n");
	i++;
	ck_assert_int_eq(r[i].status, 200);
	ck_assert(has_header(
		&r[i],
		"Content-Type: text/plain; version=0.0.4; charset=utf-8"));
	ck_assert_str_eq(r[i].resp, "egressd_build_info{version=\"test\"} 1\n");
	i++;
	ck_assert_int_eq(r[i].status, 404);
	ck_assert_str_eq(r[i].resp, "credential vault not found\n");
	i++;
	ck_assert_int_eq(r[i].status, 412);
	ck_assert_str_eq(r[i].resp,
			 "credential vault requires transparent mitmproxy\n");
	i++;
	ck_assert_int_eq(r[i].status, 403);
	ck_assert_uint_eq(f.replaces, 4);
	reqs_free(r, NREQ(r));
	policy_free(f.policy);
}
END_TEST

START_TEST(test_server_auth)
{
	struct fake f = { .ready = true };
	struct req r[] = {
		{ .method = "GET", .path = "/healthz" },
		{ .method = "GET", .path = "/policy" },
		{ .method = "GET",
		  .path = "/policy",
		  .headers = "OPENSANDBOX-EGRESS-AUTH: wrong\r\n" },
		{ .method = "GET",
		  .path = "/policy",
		  .headers = "OPENSANDBOX-EGRESS-AUTH: s3cret-\r\n" },
		{ .method = "OPTIONS", .path = "/policy" },
		{ .method = "GET",
		  .path = "/policy",
		  .headers = "opensandbox-egress-auth: s3cret\r\n" },
		{ .method = "GET", .path = "/status" },
		{ .method = "GET", .path = "/metrics" },
		{ .method = "POST", .path = "/credential-vault" },
		{ .method = "GET", .path = "/unknown" },
		/* A stock Prometheus: Authorization: Bearer. */
		{ .method = "GET",
		  .path = "/metrics",
		  .headers = "Authorization: Bearer s3cret\r\n" },
		{ .method = "GET",
		  .path = "/policy",
		  .headers = "authorization: bearer   s3cret\r\n" },
		{ .method = "GET",
		  .path = "/metrics",
		  .headers = "Authorization: Bearer s3cre\r\n" },
		{ .method = "GET",
		  .path = "/metrics",
		  .headers = "Authorization: Basic s3cret\r\n" },
		{ .method = "GET",
		  .path = "/metrics",
		  .headers = "Authorization: s3cret\r\n" },
		{ .method = "GET",
		  .path = "/metrics",
		  .headers = "OPENSANDBOX-EGRESS-AUTH: wrong\r\n"
			     "Authorization: Bearer s3cret\r\n" },
	};

	ck_assert_int_eq(policy_new(&f.policy, POLICY_ALLOW), 0);
	serve(&f, "s3cret", r, NREQ(r));
	ck_assert_int_eq(r[0].status, 200);
	ck_assert_str_eq(r[0].resp, "ok");
	ck_assert_int_eq(r[1].status, 401);
	ck_assert_str_eq(r[1].resp, "unauthorized\n");
	ck_assert(has_header(&r[1], "Content-Type: text/plain; charset=utf-8"));
	ck_assert_int_eq(r[2].status, 401);
	ck_assert_int_eq(r[3].status, 401);
	/* Auth before the method check. */
	ck_assert_int_eq(r[4].status, 401);
	ck_assert_int_eq(r[5].status, 200);
	ck_assert_ptr_nonnull(strstr(r[5].resp, "\"mode\":\"allow_all\""));
	ck_assert_int_eq(r[6].status, 401);
	ck_assert_int_eq(r[7].status, 401);
	ck_assert_int_eq(r[8].status, 401);
	ck_assert_int_eq(r[9].status, 404);
	ck_assert_int_eq(r[10].status, 200);
	ck_assert_int_eq(r[11].status, 200);
	ck_assert_int_eq(r[12].status, 401);
	ck_assert_int_eq(r[13].status, 401);
	ck_assert_int_eq(r[14].status, 401);
	ck_assert_int_eq(r[15].status, 200);
	reqs_free(r, NREQ(r));
	policy_free(f.policy);
}
END_TEST

START_TEST(test_server_patch_delete)
{
	struct fake f = { .ready = true };
	struct req r[] = {
		{ .method = "PATCH",
		  .path = "/policy",
		  .body = "[{\"action\":\"allow\",\"target\":\"www.x.com\"}]" },
		{ .method = "GET", .path = "/policy" },
		{ .method = "PATCH", .path = "/policy", .body = " " },
		{ .method = "PATCH", .path = "/policy", .body = "[]" },
		{ .method = "PATCH", .path = "/policy", .body = "{\"a\":1}" },
		{ .method = "PATCH",
		  .path = "/policy",
		  .body = "[{\"action\":\"allow\",\"target\":\"ok.com\"},{\"target\":\"-bad.com\"}]" },
		{ .method = "PATCH",
		  .path = "/policy",
		  .body = "[{\"target\":\"n1.com\"},{\"target\":\"n2.com\"},{\"target\":\"n3.com\"}]" },
		{ .method = "DELETE",
		  .path = "/policy",
		  .body = "[\"nothere.com\"]" },
		{ .method = "DELETE", .path = "/policy", .body = "" },
		{ .method = "DELETE", .path = "/policy", .body = "[]" },
		{ .method = "DELETE", .path = "/policy", .body = "[1]" },
		{ .method = "DELETE",
		  .path = "/policy",
		  .body = "[\" WWW.X.COM \"]" },
		{ .method = "GET", .path = "/policy" },
	};
	size_t i = 0;

	f.policy = parse(
		"{\"defaultAction\":\"deny\",\"egress\":[{\"action\":\"deny\",\"target\":\"*.x.com\"},{\"action\":\"allow\",\"target\":\"y.com\"}]}");
	serve(&f, NULL, r, NREQ(r));
	ck_assert_int_eq(r[i].status, 200);
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"enforcing\",\"enforcementMode\":\"dns+nft\"}\n");
	i++;
	ck_assert_ptr_nonnull(strstr(
		r[i].resp,
		"\"egress\":[{\"action\":\"allow\",\"target\":\"www.x.com\"},{\"action\":\"deny\",\"target\":\"*.x.com\"},{\"action\":\"allow\",\"target\":\"y.com\"}]"));
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_str_eq(r[i].resp, "empty body\n");
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_str_eq(r[i].resp, "invalid patch rules: empty array\n");
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_str_eq(
		r[i].resp,
		"invalid patch rules: must be a JSON array, got object\n");
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_msg(
		!strncmp(
			r[i].resp,
			"invalid patch rules: patch[1]: invalid domain name \"-bad.com\"",
			60),
		"%s", r[i].resp);
	i++;
	/* 3 new + 3 old = 6 > 4 */
	ck_assert_int_eq(r[i].status, 413);
	ck_assert_str_eq(r[i].resp,
			 "egress rule total count 6 exceeds limit 4\n");
	i++;
	ck_assert_int_eq(r[i].status, 200);
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"enforcing\",\"enforcementMode\":\"dns+nft\",\"reason\":\"no matching targets found\"}\n");
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_str_eq(r[i].resp, "empty body\n");
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_str_eq(r[i].resp, "invalid delete targets: empty array\n");
	i++;
	ck_assert_int_eq(r[i].status, 400);
	ck_assert_str_eq(
		r[i].resp,
		"invalid delete targets: [0]: must be a string, got number\n");
	i++;
	ck_assert_int_eq(r[i].status, 200);
	ck_assert_str_eq(
		r[i].resp,
		"{\"status\":\"ok\",\"mode\":\"enforcing\",\"enforcementMode\":\"dns+nft\"}\n");
	i++;
	ck_assert_ptr_nonnull(strstr(
		r[i].resp,
		"\"egress\":[{\"action\":\"deny\",\"target\":\"*.x.com\"},{\"action\":\"allow\",\"target\":\"y.com\"}]"));
	ck_assert_uint_eq(f.replaces, 2);
	reqs_free(r, NREQ(r));
	policy_free(f.policy);
}
END_TEST

START_TEST(test_server_body_limit)
{
	struct fake f = { .ready = true };
	size_t big = API_BODY_MAX + 1;
	char *body = malloc(API_BODY_MAX + 2);
	struct req r[4] = { { 0 } };

	ck_assert_int_eq(policy_new(&f.policy, POLICY_DENY), 0);

	/* 1 MiB + 1 of valid JSON (blanks): rejected, not truncated. */
	memset(body, ' ', big);
	body[0] = '{';
	body[big - 1] = '}';
	body[big] = '\0';
	r[0] = (struct req){ .method = "POST",
			     .path = "/policy",
			     .body = body,
			     .body_len = big };
	r[1] = (struct req){ .method = "POST",
			     .path = "/policy",
			     .body = body,
			     .body_len = big,
			     .chunked = true };
	/* Exactly 1 MiB is fine. */
	r[2] = (struct req){ .method = "POST",
			     .path = "/policy",
			     .body = body + 1,
			     .body_len = API_BODY_MAX };
	body[1] = '{';
	r[3] = (struct req){ .method = "PATCH",
			     .path = "/policy",
			     .body = body,
			     .body_len = big,
			     .chunked = true };
	serve(&f, NULL, r, 4);
	ck_assert_int_eq(r[0].status, 413);
	ck_assert_str_eq(r[0].resp,
			 "request body too large (limit 1048576 bytes)\n");
	ck_assert_int_eq(r[1].status, 413);
	ck_assert_str_eq(r[1].resp,
			 "request body too large (limit 1048576 bytes)\n");
	ck_assert_int_eq(r[2].status, 200);
	ck_assert_int_eq(r[3].status, 413);
	ck_assert_uint_eq(f.replaces, 1);
	reqs_free(r, 4);
	free(body);
	policy_free(f.policy);
}
END_TEST

START_TEST(test_server_replace_fails)
{
	struct fake f = { .ready = true, .replace_ret = -EIO };
	struct req r[] = {
		{ .method = "POST",
		  .path = "/policy",
		  .body = "{\"egress\":[{\"action\":\"allow\",\"target\":\"a.com\"}]}" },
		{ .method = "GET", .path = "/policy" },
	};

	ck_assert_int_eq(policy_new(&f.policy, POLICY_ALLOW), 0);
	serve(&f, NULL, r, NREQ(r));
	ck_assert_int_eq(r[0].status, 500);
	ck_assert_str_eq(r[0].resp, "failed to apply policy: nft said no\n");
	ck_assert_ptr_nonnull(strstr(r[1].resp, "\"mode\":\"allow_all\""));
	reqs_free(r, NREQ(r));

	f.replace_ret = -EINVAL;
	struct req r2[] = {
		{ .method = "POST",
		  .path = "/policy",
		  .body = "{\"egress\":[{\"action\":\"allow\",\"target\":\"2001:db8::1\"}]}" },
	};
	serve(&f, NULL, r2, NREQ(r2));
	ck_assert_int_eq(r2[0].status, 400);
	ck_assert_str_eq(r2[0].resp, "invalid policy: nft said no\n");
	reqs_free(r2, NREQ(r2));
	policy_free(f.policy);
}
END_TEST

START_TEST(test_server_bind_error)
{
	struct fake f = { 0 };
	struct api_ops ops = fake_ops;
	struct loop *loop;
	struct api *a, *b;
	char err[256], addr[64];

	ck_assert_int_eq(policy_new(&f.policy, POLICY_DENY), 0);
	ck_assert_int_eq(loop_new(&loop), 0);
	ops.arg = &f;
	ck_assert_int_eq(api_new(&a, loop, "127.0.0.1:0", NULL, 0, &ops, err,
				 sizeof(err)),
			 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", api_port(a));
	ck_assert_int_eq(api_new(&b, loop, addr, NULL, 0, &ops, err,
				 sizeof(err)),
			 -EADDRINUSE);
	/* As helpful as the DNS proxy's: who, and which setting to change. */
	ck_assert_msg(strstr(err, addr) && strstr(err, "another process") &&
			      strstr(err, "OPENSANDBOX_EGRESS_HTTP_ADDR"),
		      "err: %s", err);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(api_new(&b, loop, "bogus", NULL, 0, &ops, err,
				 sizeof(err)),
			 -EINVAL);
	api_free(a);
	loop_free(loop);
	policy_free(f.policy);
}
END_TEST

/* Starting and stopping the API logs nothing: libmicrohttpd complained
 * at every start when its logger was not the first option. */
START_TEST(test_server_start_logs_nothing)
{
	struct fake f = { 0 };
	struct api_ops ops = fake_ops;
	struct loop *loop;
	char err[256], *text = NULL;
	size_t len = 0;
	struct api *a;
	FILE *mem;

	ck_assert_int_eq(policy_new(&f.policy, POLICY_DENY), 0);
	ck_assert_int_eq(loop_new(&loop), 0);
	ops.arg = &f;
	mem = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(mem);
	log_set_output(mem);
	ck_assert_int_eq(api_new(&a, loop, "127.0.0.1:0", NULL, 0, &ops, err,
				 sizeof(err)),
			 0);
	api_free(a);
	log_flush();
	log_set_output(fopen("/dev/null", "w"));
	fclose(mem);
	ck_assert_msg(len == 0, "logged: %s", text);
	free(text);
	loop_free(loop);
	policy_free(f.policy);
}
END_TEST

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("pure");
	TCase *ts = tcase_create("server");

	tcase_add_test(tc, test_mode);
	tcase_add_test(tc, test_token_equal);
	tcase_add_test(tc, test_patch_parse_errors);
	tcase_add_test(tc, test_patch_parse_ok);
	tcase_add_test(tc, test_patch_merge);
	tcase_add_test(tc, test_delete);
	tcase_add_test(tc, test_buf_printf);
	suite_add_tcase(s, tc);
	tcase_set_timeout(ts, 20);
	tcase_add_test(ts, test_server_basic);
	tcase_add_test(ts, test_server_auth);
	tcase_add_test(ts, test_server_patch_delete);
	tcase_add_test(ts, test_server_body_limit);
	tcase_add_test(ts, test_server_replace_fails);
	tcase_add_test(ts, test_server_bind_error);
	tcase_add_test(ts, test_server_start_logs_nothing);
	suite_add_tcase(s, ts);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(api_suite());
	int failed;

	log_set_output(fopen("/dev/null", "w"));
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
