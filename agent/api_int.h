/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The HTTP API's insides, shared by its files and by nothing else: api.c
 * (the server: libmicrohttpd set-up and event-loop glue, connection
 * limits and timeouts, auth, body collection) and apiroutes.c (routing,
 * the handlers and their JSON and text answers). apiedit.c holds the pure
 * PATCH/DELETE helpers and needs nothing from here. Other modules use
 * include/egressd/api.h. Everything here runs on the one event loop.
 */
#ifndef __EGRESSD_API_INT_H
#define __EGRESSD_API_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#include "egressd/api.h"

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

enum api_route {
	ROUTE_NONE,
	ROUTE_HEALTHZ,
	ROUTE_POLICY,
	ROUTE_STATUS,
	ROUTE_METRICS,
	ROUTE_VAULT,
};

/* Which route url names (exact paths; ROUTE_NONE answers 404). */
enum api_route api_route_of(const char *url);

/*
 * Queue an answer on c; api_respond takes ownership of body (NULL:
 * MHD_NO). Every status >= 400 but 401 counts in api->stats.errors.
 */
enum MHD_Result api_respond(struct api *api, struct MHD_Connection *c,
			    unsigned int status, const char *ctype, char *body,
			    size_t len, const char *allow);
/* Go's http.Error: text/plain, nosniff, message + "\n". */
enum MHD_Result api_respond_error(struct api *api, struct MHD_Connection *c,
				  unsigned int status, const char *allow,
				  const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* 413 for a body over API_BODY_MAX, with a warning line. */
enum MHD_Result api_too_large(struct api *api, struct MHD_Connection *c,
			      const char *method);
/* Answer a complete request (headers and body in req) on its route. */
enum MHD_Result api_dispatch(struct api *api, struct MHD_Connection *c,
			     const char *url, const char *method,
			     struct api_req *req);

#endif /* __EGRESSD_API_INT_H */
