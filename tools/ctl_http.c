// SPDX-License-Identifier: GPL-2.0-only
/*
 * egressctl's client of egressd's HTTP API (docs/api.md), over libcurl:
 * the base URL from --addr (egressd's listen-address forms), one request
 * with the auth header, and the mapping of what comes back to egressctl's
 * exit codes: unreachable is CTL_EXIT_CONN, a 4xx/5xx answer or a body
 * that is not the JSON object expected is CTL_EXIT_ERR, each with the
 * message the operator sees.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "egressd/defaults.h"
#include "egressctl.h"

#define CTL_CONNECT_TIMEOUT_S 3L
#define CTL_TIMEOUT_S 30L

/*
 * ctl->base_url from ctl->addr, the client's idea of egressd's listen
 * address: ":PORT" (all interfaces, egressd's default form) and the
 * wildcard addresses mean loopback here. 0, -EINVAL (not an address
 * form egressd takes) or -ENAMETOOLONG.
 */
int ctl_http_base_url(struct ctl *ctl)
{
	const char *a = ctl->addr;
	const char *host, *port;
	int n;

	if (!strncmp(a, "http://", 7) || !strncmp(a, "https://", 8)) {
		n = snprintf(ctl->base_url, sizeof(ctl->base_url), "%s", a);
		goto out;
	}
	port = strrchr(a, ':');
	if (!port || !port[1] ||
	    strspn(port + 1, "0123456789") != strlen(port + 1))
		return -EINVAL;
	if (port == a || !strncmp(a, "0.0.0.0:", 8))
		host = "127.0.0.1";
	else if (!strncmp(a, "[::]:", 5))
		host = "[::1]";
	else
		host = NULL;
	if (host)
		n = snprintf(ctl->base_url, sizeof(ctl->base_url),
			     "http://%s%s", host, port);
	else
		n = snprintf(ctl->base_url, sizeof(ctl->base_url), "http://%s",
			     a);
out:
	if (n < 0 || (size_t)n >= sizeof(ctl->base_url))
		return -ENAMETOOLONG;
	/* No trailing slash: paths start with one. */
	while (n > 0 && ctl->base_url[n - 1] == '/')
		ctl->base_url[--n] = '\0';
	return 0;
}

static size_t http_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct ctl_http_resp *r = arg;
	size_t n = size * nmemb;
	char *p;

	p = realloc(r->body, r->len + n + 1);
	if (!p)
		return 0;
	memcpy(p + r->len, ptr, n);
	r->len += n;
	p[r->len] = '\0';
	r->body = p;
	return n;
}

/*
 * One request. 0 when egressd answered (any status, in r->status), or
 * -ECONNREFUSED when it could not be reached (message printed; the
 * caller exits CTL_EXIT_CONN), -ENOMEM.
 */
int ctl_http_do(struct ctl *ctl, const char *method, const char *path,
		const char *body, size_t len, struct ctl_http_resp *r)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	char url[512], auth[1024];
	CURLcode rc;
	CURL *c;
	int ret = 0;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", ctl->base_url, path);
	c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	if (ctl->token && *ctl->token) {
		snprintf(auth, sizeof(auth), EGRESSD_AUTH_HEADER ": %s",
			 ctl->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (body) {
		hdrs = curl_slist_append(hdrs,
					 "Content-Type: application/json");
		/* No "Expect: 100-continue" round trip. */
		hdrs = curl_slist_append(hdrs, "Expect:");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	/* egressd is local: never through an http_proxy from the env. */
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CTL_CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, CTL_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "egressctl/" CTL_VERSION);
	rc = curl_easy_perform(c);
	if (rc == CURLE_WRITE_ERROR) {
		ret = -ENOMEM;
	} else if (rc != CURLE_OK) {
		ctl_err(ctl, CTL_EXIT_CONN,
			"cannot reach egressd at %s: %s (is egressd running? --addr, OPENSANDBOX_EGRESS_HTTP_ADDR)",
			ctl->base_url,
			errbuf[0] ? errbuf : curl_easy_strerror(rc));
		ret = -ECONNREFUSED;
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	if (ret == -ENOMEM)
		ctl_err(ctl, CTL_EXIT_ERR, "out of memory");
	return ret;
}

void ctl_http_resp_free(struct ctl_http_resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* Report a 4xx/5xx answer: status and body, without its trailing newline. */
static int http_error(struct ctl *ctl, const char *method, const char *path,
		      struct ctl_http_resp *r)
{
	size_t n = r->len;

	while (n && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
		n--;
	return ctl_err(ctl, CTL_EXIT_ERR, "%s %s: %ld %.*s", method, path,
		       r->status, (int)n, n ? r->body : "(empty body)");
}

/*
 * method + path; on 2xx *out gets the parsed JSON object. Returns an
 * exit code; CTL_EXIT_OK only with *out set.
 */
int ctl_http_json(struct ctl *ctl, const char *method, const char *path,
		  const char *body, size_t len, json_t **out,
		  struct ctl_http_resp *raw)
{
	json_error_t jerr;
	struct ctl_http_resp r;
	int ret;

	ret = ctl_http_do(ctl, method, path, body, len, &r);
	if (ret == -ECONNREFUSED)
		return CTL_EXIT_CONN;
	if (ret)
		return CTL_EXIT_ERR;
	if (r.status < 200 || r.status > 299) {
		ret = http_error(ctl, method, path, &r);
		ctl_http_resp_free(&r);
		return ret;
	}
	*out = json_loadb(r.body ? r.body : "", r.len, 0, &jerr);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		ret = ctl_err(
			ctl, CTL_EXIT_ERR,
			"%s %s: %ld with a body that is not a JSON object",
			method, path, r.status);
		ctl_http_resp_free(&r);
		return ret;
	}
	if (raw)
		*raw = r;
	else
		ctl_http_resp_free(&r);
	return CTL_EXIT_OK;
}
