// SPDX-License-Identifier: GPL-2.0-only
/*
 * HTTP policy API server (docs/api.md): libmicrohttpd in external-epoll
 * mode, driven from the agent's event loop (MHD's epoll fd registered with
 * loop_add_fd, MHD's timeouts with a loop timer), so handlers run on the
 * loop thread and never race the policy state. This file is the server
 * side: listening, connection limits and timeouts, auth, and collecting a
 * request's body; agent/apiroutes.c answers the routes, agent/apiedit.c
 * holds the pure PATCH/DELETE merge helpers. Behaviour mirrors the
 * OpenSandbox egress sidecar: same paths, status codes, bodies and auth
 * header.
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
#include "api_int.h"

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

/*
 * Answer at once what needs no body (404, 401, a declared body over the
 * limit): true with *res set, false to read the body first.
 */
static bool early_answer(struct api *api, struct MHD_Connection *c,
			 const char *url, const char *method,
			 enum MHD_Result *res)
{
	enum api_route rt = api_route_of(url);
	const char *cl;

	if (rt == ROUTE_NONE) {
		*res = api_respond_error(api, c, MHD_HTTP_NOT_FOUND, NULL,
					 "404 page not found");
		return true;
	}
	if (rt == ROUTE_HEALTHZ)
		return false;
	if (!authorized(api, c)) {
		api->stats.unauthorized++;
		*res = api_respond_error(api, c, MHD_HTTP_UNAUTHORIZED, NULL,
					 "unauthorized");
		return true;
	}
	if (rt != ROUTE_POLICY || !takes_body(method))
		return false;
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > API_BODY_MAX) {
		*res = api_too_large(api, c, method);
		return true;
	}
	return false;
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
	return api_dispatch(api, c, url, method, req);
}

/*
 * A connection waiting for request headers gets API_HEADER_TIMEOUT_S:
 * when it opens, and again after each answered request (keep-alive).
 */
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

	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned int)API_HEADER_TIMEOUT_S);
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
		util_err(err, errlen, 0, "cannot listen on %s: socket: %s",
			 shown, strerror(-ret));
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

int api_new(struct api **out, struct loop *loop, const char *addr,
	    const char *token, size_t max_rules, const struct api_ops *ops,
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
		(unsigned int)API_PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned int)API_CONN_TIMEOUT_S, MHD_OPTION_END);
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
		util_err(err, errlen, 0, "api: loop_add_fd: %s",
			 strerror(-ret));
		goto err_free;
	}
	api_rearm(api);
	if (!api->token)
		log_warnx(
			"the API on %s has no token (OPENSANDBOX_EGRESS_TOKEN unset): anyone who can reach this port controls the policy. The workload's own connections to it are dropped, but set a token",
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
