// SPDX-License-Identifier: GPL-2.0-only
/*
 * egressctl: the operator's CLI for egressd, shaped like bpftool:
 * `egressctl [OPTIONS] OBJECT VERB [ARGS]`, objects and verbs matched by
 * prefix (first match in table order, bpftool's is_prefix), --json
 * everywhere, errors on stderr and exit codes scripts can trust
 * (docs/egressctl.md). policy, status and health talk to egressd's HTTP
 * API (docs/api.md) with libcurl; maps reads the pinned BPF maps directly
 * with libbpf (docs/bpf.md, include/egressd/shared.h), so it works without
 * the API and even while the agent is down; watch follows the violation
 * lines of egressd's log stream (docs/logs.md) from stdin or a log file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/types.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <curl/curl.h>
#include <jansson.h>

#include "egressd/defaults.h"
#include "egressd/shared.h"

/* The Makefile's EGRESSD_VERSION: egressctl ships with egressd. */
#define CTL_VERSION EGRESSD_VERSION

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Exit codes (docs/egressctl.md, "Exit status"); keep the doc in sync. */
#define CTL_EXIT_OK 0
#define CTL_EXIT_ERR 1 /* egressd answered 4xx/5xx, or an operation failed */
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_CONN 3 /* egressd not reachable / nothing pinned */

/* Bodies read from FILE or stdin; egressd itself refuses more than 1 MiB. */
#define CTL_BODY_MAX (16u << 20)
#define CTL_CONNECT_TIMEOUT_S 3L
#define CTL_TIMEOUT_S 30L
#define CTL_WATCH_POLL_NS 200000000L

/* Options; bits of struct ctl.seen for the command-specific ones. */
enum {
	OPT_ADDR = 1 << 0,
	OPT_TOKEN = 1 << 1,
	OPT_JSON = 1 << 2,
	OPT_PRETTY = 1 << 3,
	OPT_PIN_DIR = 1 << 4,
	OPT_HELP = 1 << 5,
	OPT_LOG = 1 << 6,
	OPT_FROM_START = 1 << 7,
	OPT_NO_FOLLOW = 1 << 8,
	OPT_LAYER = 1 << 9,
	OPT_REASON = 1 << 10,
};
#define OPT_GLOBAL \
	(OPT_ADDR | OPT_TOKEN | OPT_JSON | OPT_PRETTY | OPT_PIN_DIR | OPT_HELP)
#define OPT_WATCH \
	(OPT_LOG | OPT_FROM_START | OPT_NO_FOLLOW | OPT_LAYER | OPT_REASON)

/* Everything a command needs, passed down explicitly. */
struct ctl {
	const char *addr;
	const char *token;
	const char *pin_dir;
	const char *log_file;
	const char *layer;
	const char *reason;
	bool json;
	bool pretty;
	bool help;
	bool from_start;
	bool follow;
	unsigned int seen; /* OPT_* given on the command line */
	const char *path; /* "egressctl policy get", for messages */
	char base_url[320];
};

/*
 * A command: handlers return an exit code (CTL_EXIT_*), helpers below
 * return 0 or -errno.
 */
struct cmd {
	const char *name;
	int (*func)(struct ctl *ctl, int argc, char **argv);
	const char *synopsis; /* after "egressctl OBJECT VERB" */
	const char *doc;
	unsigned int opts; /* command-specific OPT_* it accepts */
};

struct http_resp {
	long status;
	char *body;
	size_t len;
};

static int p_vmsg(struct ctl *ctl, int code, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "egressctl: %s\n", msg);
	if (ctl && ctl->json) {
		json_t *o = json_pack("{s:s, s:i}", "error", msg, "exit", code);

		if (o) {
			json_dumpf(o, stdout, JSON_COMPACT);
			fputc('\n', stdout);
			json_decref(o);
		}
	}
	return code;
}

/* Report an error (stderr; with --json also {"error":…} on stdout). */
static int __attribute__((format(printf, 3, 4)))
p_err(struct ctl *ctl, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	p_vmsg(ctl, code, fmt, ap);
	va_end(ap);
	return code;
}

static int __attribute__((format(printf, 2, 3)))
p_usage(struct ctl *ctl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	p_vmsg(ctl, CTL_EXIT_USAGE, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'egressctl --help' or '%s --help'.\n",
		ctl && ctl->path ? ctl->path : "egressctl OBJECT");
	return CTL_EXIT_USAGE;
}

static bool is_prefix(const char *pfx, const char *str)
{
	return *pfx && !strncmp(str, pfx, strlen(pfx));
}

static void print_json(struct ctl *ctl, json_t *o)
{
	json_dumpf(o, stdout,
		   ctl->pretty ? JSON_INDENT(2) | JSON_PRESERVE_ORDER :
				 JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

static const char *jstr(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

static json_int_t jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* ---- HTTP ---------------------------------------------------------- */

/*
 * The client's idea of egressd's listen address: ":PORT" (all interfaces,
 * egressd's default form) and the wildcard addresses mean loopback here.
 */
static int build_base_url(struct ctl *ctl)
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
	struct http_resp *r = arg;
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
static int http_do(struct ctl *ctl, const char *method, const char *path,
		   const char *body, size_t len, struct http_resp *r)
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
		p_err(ctl, CTL_EXIT_CONN,
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
		p_err(ctl, CTL_EXIT_ERR, "out of memory");
	return ret;
}

static void http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* An error answer's text, without the trailing newline. */
static int api_error(struct ctl *ctl, const char *method, const char *path,
		     struct http_resp *r)
{
	size_t n = r->len;

	while (n && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
		n--;
	return p_err(ctl, CTL_EXIT_ERR, "%s %s: %ld %.*s", method, path,
		     r->status, (int)n, n ? r->body : "(empty body)");
}

/*
 * method + path; on 2xx *out gets the parsed JSON object. Returns an
 * exit code; CTL_EXIT_OK only with *out set.
 */
static int api_json(struct ctl *ctl, const char *method, const char *path,
		    const char *body, size_t len, json_t **out,
		    struct http_resp *raw)
{
	json_error_t jerr;
	struct http_resp r;
	int ret;

	ret = http_do(ctl, method, path, body, len, &r);
	if (ret == -ECONNREFUSED)
		return CTL_EXIT_CONN;
	if (ret)
		return CTL_EXIT_ERR;
	if (r.status < 200 || r.status > 299) {
		ret = api_error(ctl, method, path, &r);
		http_resp_free(&r);
		return ret;
	}
	*out = json_loadb(r.body ? r.body : "", r.len, 0, &jerr);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		ret = p_err(ctl, CTL_EXIT_ERR,
			    "%s %s: %ld with a body that is not a JSON object",
			    method, path, r.status);
		http_resp_free(&r);
		return ret;
	}
	if (raw)
		*raw = r;
	else
		http_resp_free(&r);
	return CTL_EXIT_OK;
}

/* ---- input ---------------------------------------------------------- */

/* Read FILE ("-" = stdin) into a NUL-terminated buffer. 0 or -errno. */
static int read_input(const char *file, char **bufp, size_t *lenp)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *p;
	ssize_t n;
	int fd, ret = 0;

	fd = strcmp(file, "-") ? open(file, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			p = realloc(buf, cap + 1);
			if (!p) {
				ret = -ENOMEM;
				break;
			}
			buf = p;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (!n)
			break;
		len += n;
		if (len > CTL_BODY_MAX) {
			ret = -EFBIG;
			break;
		}
	}
	if (fd)
		close(fd);
	if (ret) {
		free(buf);
		return ret;
	}
	if (!buf)
		buf = calloc(1, 1);
	if (!buf)
		return -ENOMEM;
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}

/* ---- policy ------------------------------------------------------- */

static void print_policy_status(json_t *o)
{
	const char *emode = jstr(o, "enforcementMode", NULL);
	const char *reason = jstr(o, "reason", NULL);

	printf("%s: mode %s", jstr(o, "status", "?"), jstr(o, "mode", "?"));
	if (emode)
		printf(", enforcement %s", emode);
	if (reason)
		printf(" (%s)", reason);
	putchar('\n');
}

static int do_policy_get(struct ctl *ctl, int argc, char **argv)
{
	struct http_resp raw;
	json_t *o = NULL, *pol, *egress, *rule;
	size_t i, w = 6;
	int ret;

	if (argc)
		return p_usage(ctl, "policy get takes no arguments");
	ret = api_json(ctl, "GET", "/policy", NULL, 0, &o, &raw);
	if (ret)
		return ret;
	if (ctl->json) {
		if (ctl->pretty)
			print_json(ctl, o);
		else
			fwrite(raw.body, 1, raw.len, stdout);
		goto out;
	}
	pol = json_object_get(o, "policy");
	egress = json_object_get(pol, "egress");
	printf("mode %s, enforcement %s, defaultAction %s\n",
	       jstr(o, "mode", "?"), jstr(o, "enforcementMode", "?"),
	       jstr(pol, "defaultAction", "?"));
	if (!json_array_size(egress)) {
		printf("no rules: every name gets the defaultAction\n");
		goto out;
	}
	json_array_foreach(egress, i, rule) {
		size_t l = strlen(jstr(rule, "action", "?"));

		if (l > w)
			w = l;
	}
	printf("%4s  %-*s  %s\n", "#", (int)w, "ACTION", "TARGET");
	json_array_foreach(egress, i, rule)
		printf("%4zu  %-*s  %s\n", i, (int)w, jstr(rule, "action", "?"),
		       jstr(rule, "target", "?"));
out:
	http_resp_free(&raw);
	json_decref(o);
	return CTL_EXIT_OK;
}

/* Send BODY with METHOD to /policy and print the policy status. */
static int policy_send(struct ctl *ctl, const char *method, const char *body,
		       size_t len)
{
	json_t *o = NULL;
	int ret;

	ret = api_json(ctl, method, "/policy", body, len, &o, NULL);
	if (ret)
		return ret;
	if (ctl->json)
		print_json(ctl, o);
	else
		print_policy_status(o);
	json_decref(o);
	return CTL_EXIT_OK;
}

static int policy_send_file(struct ctl *ctl, const char *method, int argc,
			    char **argv)
{
	size_t len = 0;
	char *buf = NULL;
	int ret;

	if (argc != 1)
		return p_usage(ctl, "expected one FILE (or - for stdin)");
	ret = read_input(argv[0], &buf, &len);
	if (ret)
		return p_err(ctl, CTL_EXIT_ERR, "cannot read %s: %s",
			     strcmp(argv[0], "-") ? argv[0] : "stdin",
			     strerror(-ret));
	/* egressd would take it as a reset: say so instead. */
	if (!buf[strspn(buf, " \t\r\n")]) {
		free(buf);
		return p_err(
			ctl, CTL_EXIT_ERR,
			"%s is empty (use 'egressctl policy reset' to reset to deny-all)",
			strcmp(argv[0], "-") ? argv[0] : "stdin");
	}
	ret = policy_send(ctl, method, buf, len);
	free(buf);
	return ret;
}

static int do_policy_set(struct ctl *ctl, int argc, char **argv)
{
	return policy_send_file(ctl, "POST", argc, argv);
}

static int do_policy_patch(struct ctl *ctl, int argc, char **argv)
{
	return policy_send_file(ctl, "PATCH", argc, argv);
}

static int do_policy_delete(struct ctl *ctl, int argc, char **argv)
{
	json_t *arr;
	char *body;
	int i, ret;

	if (argc < 1)
		return p_usage(ctl, "policy delete needs at least one TARGET");
	arr = json_array();
	for (i = 0; arr && i < argc; i++)
		if (json_array_append_new(arr, json_string(argv[i]))) {
			json_decref(arr);
			return p_err(ctl, CTL_EXIT_ERR,
				     "target %d is not valid UTF-8", i + 1);
		}
	body = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	if (!body)
		return p_err(ctl, CTL_EXIT_ERR, "out of memory");
	ret = policy_send(ctl, "DELETE", body, strlen(body));
	free(body);
	return ret;
}

static int do_policy_reset(struct ctl *ctl, int argc, char **argv)
{
	if (argc)
		return p_usage(ctl, "policy reset takes no arguments");
	return policy_send(ctl, "POST", "", 0);
}

/* ---- status, health ------------------------------------------------ */

static void print_layers(json_t *layers)
{
	const char *name;
	json_t *l;
	bool first = true;

	printf("%-11s ", "layers");
	json_object_foreach(layers, name, l) {
		const char *why = jstr(l, "why", NULL);
		const char *redirect = jstr(l, "redirect", NULL);

		printf("%s%s %s", first ? "" : ", ", name,
		       jstr(l, "state", "?"));
		if (redirect)
			printf(" (redirect %s)", redirect);
		if (why)
			printf(" (%s)", why);
		first = false;
	}
	putchar('\n');
}

/* Who covers which process: BPF at its attach cgroup, nftables the rest. */
static void print_coverage(json_t *c)
{
	json_t *att = json_object_get(c, "attachCgroup");

	if (!c)
		return;
	printf("%-11s %s", "coverage", jstr(c, "state", "?"));
	if (json_is_object(att)) {
		printf(", BPF at cgroup %s (id %" JSON_INTEGER_FORMAT ")",
		       jstr(att, "path", "?"), jint(att, "id"));
		if (jstr(c, "attach", NULL))
			printf(" [%s]", jstr(c, "attach", ""));
	} else if (jstr(c, "attach", NULL)) {
		printf(", no BPF attach point (%s)", jstr(c, "attach", ""));
	}
	putchar('\n');
	if (jstr(c, "how", NULL))
		printf("%-11s %s\n", "", jstr(c, "how", ""));
	if (jstr(c, "rest", NULL))
		printf("%-11s the rest: %s\n", "", jstr(c, "rest", ""));
}

static int do_status(struct ctl *ctl, int argc, char **argv)
{
	json_t *o = NULL, *p, *v, *u, *d;
	const char *name;
	size_t i;
	bool first;
	int ret;

	if (argc)
		return p_usage(ctl, "status takes no arguments");
	ret = api_json(ctl, "GET", "/status", NULL, 0, &o, NULL);
	if (ret)
		return ret;
	if (ctl->json) {
		print_json(ctl, o);
		json_decref(o);
		return CTL_EXIT_OK;
	}
	printf("%-11s %s, up %" JSON_INTEGER_FORMAT " s\n", "egressd",
	       jstr(o, "version", "?"), jint(o, "uptime_s"));
	printf("%-11s %s", "mode", jstr(o, "mode", "?"));
	if (jstr(o, "requestedMode", NULL) &&
	    strcmp(jstr(o, "requestedMode", ""), jstr(o, "mode", "")))
		printf(" (requested %s)", jstr(o, "requestedMode", ""));
	printf(", ipv6 %s\n", jstr(o, "ipv6", "?"));
	print_layers(json_object_get(o, "layers"));
	print_coverage(json_object_get(o, "coverage"));
	p = json_object_get(o, "policy");
	printf("%-11s generation %" JSON_INTEGER_FORMAT
	       ", %" JSON_INTEGER_FORMAT " rules, defaultAction %s",
	       "policy", jint(p, "generation"), jint(p, "rules"),
	       jstr(p, "defaultAction", "?"));
	if (jstr(p, "source", NULL))
		printf(", from %s", jstr(p, "source", ""));
	if (json_object_get(p, "denyAlways"))
		printf(", always: %" JSON_INTEGER_FORMAT
		       " deny %" JSON_INTEGER_FORMAT " allow",
		       jint(p, "denyAlways"), jint(p, "allowAlways"));
	putchar('\n');
	v = json_object_get(o, "learned");
	printf("%-11s v4 %" JSON_INTEGER_FORMAT ", v6 %" JSON_INTEGER_FORMAT
	       "\n",
	       "learned", jint(v, "v4"), jint(v, "v6"));
	printf("%-11s", "upstreams");
	json_array_foreach(json_object_get(o, "upstreams"), i, u)
		printf("%s %s %s", i ? "," : "", jstr(u, "addr", "?"),
		       json_is_true(json_object_get(u, "healthy")) ?
			       "healthy" :
			       "UNHEALTHY");
	if (!json_array_size(json_object_get(o, "upstreams")))
		printf(" none");
	putchar('\n');
	printf("%-11s", "violations");
	first = true;
	json_object_foreach(json_object_get(o, "violations"), name, v) {
		printf("%s %s %" JSON_INTEGER_FORMAT, first ? "" : ",", name,
		       json_integer_value(v));
		first = false;
	}
	putchar('\n');
	d = json_object_get(o, "dns");
	if (d)
		printf("%-11s %" JSON_INTEGER_FORMAT
		       " queries, %" JSON_INTEGER_FORMAT
		       " allowed, %" JSON_INTEGER_FORMAT
		       " denied, %" JSON_INTEGER_FORMAT
		       " servfail, %" JSON_INTEGER_FORMAT " malformed\n",
		       "dns", jint(d, "queries"), jint(d, "allowed"),
		       jint(d, "denied"), jint(d, "servfail"),
		       jint(d, "malformed"));
	json_decref(o);
	return CTL_EXIT_OK;
}

static int do_health(struct ctl *ctl, int argc, char **argv)
{
	struct http_resp r;
	size_t n;
	int ret;

	if (argc)
		return p_usage(ctl, "health takes no arguments");
	ret = http_do(ctl, "GET", "/healthz", NULL, 0, &r);
	if (ret == -ECONNREFUSED)
		return CTL_EXIT_CONN;
	if (ret)
		return CTL_EXIT_ERR;
	n = r.len;
	while (n && (r.body[n - 1] == '\n' || r.body[n - 1] == '\r'))
		n--;
	if (ctl->json) {
		json_t *o = json_pack("{s:b, s:i, s:s%}", "healthy",
				      r.status == 200, "status", (int)r.status,
				      "body", r.body ? r.body : "", n);

		if (o)
			print_json(ctl, o);
		json_decref(o);
	} else if (r.status == 200) {
		printf("%.*s\n", (int)n, n ? r.body : "ok");
	}
	ret = CTL_EXIT_OK;
	if (r.status != 200) {
		/* Not p_err: with --json the object above is the answer. */
		fprintf(stderr, "egressctl: GET /healthz: %ld %.*s\n", r.status,
			(int)n, n ? r.body : "(empty body)");
		ret = CTL_EXIT_ERR;
	}
	http_resp_free(&r);
	return ret;
}

/* ---- maps ----------------------------------------------------------- */

static const char *const counter_names[EGRESSD_CNT_MAX] = {
	[EGRESSD_REASON_DEFAULT_DENY] = "default_deny",
	[EGRESSD_REASON_DENY_RULE] = "deny_rule",
	[EGRESSD_REASON_DOT] = "dot",
	[EGRESSD_REASON_DOH] = "doh",
	[EGRESSD_REASON_IPV6_DISABLED] = "ipv6_disabled",
	[5] = "rebinding", /* DNS layer only: always 0 here */
	[EGRESSD_REASON_API] = "api",
	[EGRESSD_CNT_ALLOWED] = "allowed",
	[EGRESSD_CNT_RINGBUF_DROPS] = "ringbuf_drops",
	[EGRESSD_CNT_BIND_REFUSED] = "bind_refused",
};

static const char *const lpm_maps[] = {
	EGRESSD_MAP_ALLOW_V4,	  EGRESSD_MAP_ALLOW_V6,	    EGRESSD_MAP_DENY_V4,
	EGRESSD_MAP_DENY_V6,	  EGRESSD_MAP_DOH_V4,	    EGRESSD_MAP_DOH_V6,
	EGRESSD_MAP_DOH_ALLOW_V4, EGRESSD_MAP_DOH_ALLOW_V6,
};

static int silent_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	return 0;
}

/*
 * Open pinned map NAME and check that its key and value sizes are the
 * ones shared.h describes (a pin of another egressd version must not be
 * misread). Returns an fd or -errno (-EPROTO: layout mismatch).
 */
static int map_open(struct ctl *ctl, const char *name, __u32 key_size,
		    __u32 value_size)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd, ret;

	if (snprintf(path, sizeof(path), "%s/%s", ctl->pin_dir, name) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	ret = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (ret) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (info.key_size != key_size || info.value_size != value_size) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

/* Exit code and message for a map that cannot be opened. */
static int map_error(struct ctl *ctl, const char *name, int err)
{
	if (err == -ENOENT)
		return p_err(
			ctl, CTL_EXIT_CONN,
			"no pinned map %s/%s: egressd's BPF layer is not loaded (or --pin-dir, OPENSANDBOX_EGRESS_BPF_PIN_DIR is wrong)",
			ctl->pin_dir, name);
	if (err == -EPROTO)
		return p_err(
			ctl, CTL_EXIT_ERR,
			"%s/%s: key/value sizes differ from this egressctl's (another egressd version?)",
			ctl->pin_dir, name);
	return p_err(ctl, CTL_EXIT_ERR, "cannot open %s/%s: %s%s", ctl->pin_dir,
		     name, strerror(-err),
		     err == -EPERM || err == -EACCES ?
			     " (needs root or CAP_BPF)" :
			     "");
}

static __u64 mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

struct learned_ent {
	char addr[INET6_ADDRSTRLEN];
	__s64 expires_in_ns;
	__s64 idle_ns; /* since last use; < 0: never used */
	__u32 domain_id;
	__u32 generation;
};

static int learned_cmp(const void *a, const void *b)
{
	const struct learned_ent *x = a, *y = b;

	return strcmp(x->addr, y->addr);
}

/* Read learned_v4/6 into *entsp (sorted). 0 or -errno. */
static int learned_read(struct ctl *ctl, int family, __u64 now,
			struct learned_ent **entsp, size_t *np)
{
	const char *name = family == 4 ? EGRESSD_MAP_LEARNED_V4 :
					 EGRESSD_MAP_LEARNED_V6;
	size_t klen = family == 4 ? sizeof(struct egressd_learned4_key) :
				    sizeof(struct egressd_learned6_key);
	__u8 key[16], next[16];
	struct egressd_learned_val val;
	struct learned_ent *ents = NULL, *p;
	size_t n = 0, cap = 0;
	void *prev = NULL;
	int fd, ret = 0;

	fd = map_open(ctl, name, klen, sizeof(val));
	if (fd < 0)
		return fd;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, klen);
		prev = key;
		if (bpf_map_lookup_elem(fd, key, &val))
			continue; /* deleted meanwhile */
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			p = realloc(ents, cap * sizeof(*ents));
			if (!p) {
				ret = -ENOMEM;
				break;
			}
			ents = p;
		}
		p = &ents[n++];
		inet_ntop(family == 4 ? AF_INET : AF_INET6, key, p->addr,
			  sizeof(p->addr));
		p->expires_in_ns = (__s64)(val.expires_ns - now);
		p->idle_ns =
			val.last_seen_ns ? (__s64)(now - val.last_seen_ns) : -1;
		p->domain_id = val.domain_id;
		p->generation = val.generation;
	}
	close(fd);
	if (ret) {
		free(ents);
		return ret;
	}
	if (n)
		qsort(ents, n, sizeof(*ents), learned_cmp);
	*entsp = ents;
	*np = n;
	return 0;
}

/* Whole seconds, rounding towards minus infinity. */
static long long ns_to_s(__s64 ns)
{
	return ns >= 0 ? ns / 1000000000LL :
			 -((-ns + 999999999LL) / 1000000000LL);
}

static json_t *learned_json(const struct learned_ent *e, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < n; i++)
		json_array_append_new(
			arr,
			json_pack("{s:s, s:I, s:b, s:o, s:I, s:I}", "addr",
				  e[i].addr, "expires_in_s",
				  (json_int_t)ns_to_s(e[i].expires_in_ns),
				  "expired", e[i].expires_in_ns <= 0,
				  "last_use_s_ago",
				  e[i].idle_ns < 0 ?
					  json_null() :
					  json_integer(ns_to_s(e[i].idle_ns)),
				  "domain_id", (json_int_t)e[i].domain_id,
				  "generation", (json_int_t)e[i].generation));
	return arr;
}

static void learned_print(const char *name, const struct learned_ent *e,
			  size_t n)
{
	char when[32], used[32];
	size_t i;

	printf("%s: %zu address%s\n", name, n, n == 1 ? "" : "es");
	if (!n)
		return;
	printf("  %-39s  %12s  %12s  %9s\n", "ADDRESS", "EXPIRES IN",
	       "LAST USE", "DOMAIN ID");
	for (i = 0; i < n; i++) {
		if (e[i].expires_in_ns > 0)
			snprintf(when, sizeof(when), "%lld s",
				 ns_to_s(e[i].expires_in_ns));
		else
			snprintf(when, sizeof(when), "expired");
		if (e[i].idle_ns < 0)
			snprintf(used, sizeof(used), "never");
		else
			snprintf(used, sizeof(used), "%lld s ago",
				 ns_to_s(e[i].idle_ns));
		printf("  %-39s  %12s  %12s  %9u\n", e[i].addr, when, used,
		       e[i].domain_id);
	}
}

/* Entries of an LPM set, in slot ACTIVE and in the other slot. */
static int lpm_count(struct ctl *ctl, const char *name, __u8 active,
		     long *in_active, long *in_other)
{
	bool v6 = strstr(name, "_v6") != NULL;
	size_t klen = v6 ? sizeof(struct egressd_lpm6_key) :
			   sizeof(struct egressd_lpm4_key);
	union {
		struct egressd_lpm4_key k4;
		struct egressd_lpm6_key k6;
	} key, next;
	void *prev = NULL;
	int fd;

	*in_active = *in_other = 0;
	fd = map_open(ctl, name, klen, sizeof(struct egressd_rule_val));
	if (fd < 0)
		return fd;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		__u8 slot = v6 ? next.k6.slot : next.k4.slot;

		memcpy(&key, &next, klen);
		prev = &key;
		if (slot == active)
			(*in_active)++;
		else
			(*in_other)++;
	}
	close(fd);
	return 0;
}

static int counters_read(struct ctl *ctl, __u64 *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;
	__u32 i;
	int fd, c, ret = 0;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	fd = map_open(ctl, EGRESSD_MAP_COUNTERS, sizeof(__u32), sizeof(__u64));
	if (fd < 0)
		return fd;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals) {
		close(fd);
		return -ENOMEM;
	}
	for (i = 0; i < EGRESSD_CNT_MAX; i++) {
		sum[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, vals)) {
			ret = -errno;
			break;
		}
		for (c = 0; c < ncpu; c++)
			sum[i] += vals[c];
	}
	free(vals);
	close(fd);
	return ret;
}

static int do_maps_show(struct ctl *ctl, int argc, char **argv)
{
	struct learned_ent *l4 = NULL, *l6 = NULL;
	size_t n4 = 0, n6 = 0, i;
	struct egressd_bpf_cfg cfg;
	struct egressd_slot_cfg *s;
	__u64 cnt[EGRESSD_CNT_MAX], now;
	long sets[2][ARRAY_SIZE(lpm_maps)];
	json_t *o, *js, *jc;
	__u32 zero = 0;
	int fd, ret;

	if (argc)
		return p_usage(ctl, "maps show takes no arguments");
	fd = map_open(ctl, EGRESSD_MAP_CONFIG, sizeof(__u32), sizeof(cfg));
	if (fd < 0)
		return map_error(ctl, EGRESSD_MAP_CONFIG, fd);
	ret = bpf_map_lookup_elem(fd, &zero, &cfg) ? -errno : 0;
	close(fd);
	if (ret)
		return map_error(ctl, EGRESSD_MAP_CONFIG, ret);
	s = &cfg.slot[cfg.active & 1];

	now = mono_now_ns();
	ret = learned_read(ctl, 4, now, &l4, &n4);
	if (ret)
		return map_error(ctl, EGRESSD_MAP_LEARNED_V4, ret);
	ret = learned_read(ctl, 6, now, &l6, &n6);
	if (ret) {
		free(l4);
		return map_error(ctl, EGRESSD_MAP_LEARNED_V6, ret);
	}
	for (i = 0; i < ARRAY_SIZE(lpm_maps); i++) {
		ret = lpm_count(ctl, lpm_maps[i], cfg.active, &sets[0][i],
				&sets[1][i]);
		if (ret)
			goto out_map;
	}
	ret = counters_read(ctl, cnt);
	if (ret) {
		i = SIZE_MAX;
		goto out_map;
	}

	if (ctl->json) {
		js = json_object();
		jc = json_object();
		for (i = 0; i < ARRAY_SIZE(lpm_maps); i++)
			json_object_set_new(js, lpm_maps[i],
					    json_integer(sets[0][i]));
		for (i = 0; i < EGRESSD_CNT_MAX; i++)
			json_object_set_new(jc, counter_names[i],
					    json_integer((json_int_t)cnt[i]));
		o = json_pack(
			"{s:s, s:{s:s, s:i, s:I, s:s, s:b, s:I, s:I, s:i}, s:{s:o, s:o}, s:o, s:o}",
			"pin_dir", ctl->pin_dir, "config", "mode",
			cfg.mode == EGRESSD_DP_OBSERVE ? "observe" : "enforce",
			"active_slot", cfg.active, "generation",
			(json_int_t)s->generation, "defaultAction",
			s->default_verdict == EGRESSD_DEFAULT_ALLOW ? "allow" :
								      "deny",
			"ipv6_deny", !!(s->flags & EGRESSD_SLOT_IPV6_DENY),
			"netns_cookie", (json_int_t)cfg.netns_cookie,
			"agent_cgroup_id", (json_int_t)cfg.agent_cgid,
			"dns_redirect_port", (int)cfg.dns_port, "learned", "v4", learned_json(l4, n4), "v6",
			learned_json(l6, n6), "sets", js, "counters", jc);
		if (o)
			print_json(ctl, o);
		json_decref(o);
		goto out;
	}
	printf("pin dir %s: mode %s, policy generation %llu (slot %u), default %s%s\n",
	       ctl->pin_dir,
	       cfg.mode == EGRESSD_DP_OBSERVE ? "observe" : "enforce",
	       (unsigned long long)s->generation, cfg.active,
	       s->default_verdict == EGRESSD_DEFAULT_ALLOW ? "allow" : "deny",
	       s->flags & EGRESSD_SLOT_IPV6_DENY ? ", ipv6 denied" : "");
	if (cfg.dns_port)
		printf("dns redirect: port 53 -> 127.0.0.1/::1 port %u (sock_addr programs)\n",
		       (unsigned int)cfg.dns_port);
	learned_print(EGRESSD_MAP_LEARNED_V4, l4, n4);
	learned_print(EGRESSD_MAP_LEARNED_V6, l6, n6);
	printf("sets (prefixes in the active slot):");
	for (i = 0; i < ARRAY_SIZE(lpm_maps); i++)
		printf("%s %s %ld", i ? "," : "", lpm_maps[i], sets[0][i]);
	putchar('\n');
	printf("counters (all CPUs):");
	for (i = 0; i < EGRESSD_CNT_MAX; i++)
		printf("%s %s %llu", i ? "," : "", counter_names[i],
		       (unsigned long long)cnt[i]);
	putchar('\n');
out:
	free(l4);
	free(l6);
	return CTL_EXIT_OK;
out_map:
	free(l4);
	free(l6);
	return map_error(
		ctl, i == SIZE_MAX ? EGRESSD_MAP_COUNTERS : lpm_maps[i], ret);
}

/* maps dump NAME: every entry of a learned or static set. */
static int do_maps_dump(struct ctl *ctl, int argc, char **argv)
{
	char a[INET6_ADDRSTRLEN], pfx[INET6_ADDRSTRLEN + 16];
	union {
		struct egressd_lpm4_key k4;
		struct egressd_lpm6_key k6;
	} key, next;
	struct egressd_rule_val val;
	struct egressd_bpf_cfg cfg;
	json_t *arr;
	void *prev = NULL;
	__u32 zero = 0;
	size_t i, klen;
	bool v6;
	int fd, ret;

	if (argc != 1)
		return p_usage(ctl, "maps dump needs one MAP name");
	if (!strcmp(argv[0], EGRESSD_MAP_LEARNED_V4) ||
	    !strcmp(argv[0], EGRESSD_MAP_LEARNED_V6)) {
		struct learned_ent *e = NULL;
		size_t n = 0;

		ret = learned_read(ctl, argv[0][9] == '4' ? 4 : 6,
				   mono_now_ns(), &e, &n);
		if (ret)
			return map_error(ctl, argv[0], ret);
		if (ctl->json) {
			json_t *o = learned_json(e, n);

			print_json(ctl, o);
			json_decref(o);
		} else {
			learned_print(argv[0], e, n);
		}
		free(e);
		return CTL_EXIT_OK;
	}
	for (i = 0; i < ARRAY_SIZE(lpm_maps); i++)
		if (!strcmp(argv[0], lpm_maps[i]))
			break;
	if (i == ARRAY_SIZE(lpm_maps))
		return p_usage(
			ctl,
			"maps dump: unknown map '%s' (learned_v4, learned_v6, allow_v4/6, deny_v4/6, doh_v4/6, doh_allow_v4/6)",
			argv[0]);
	fd = map_open(ctl, EGRESSD_MAP_CONFIG, sizeof(__u32), sizeof(cfg));
	if (fd < 0)
		return map_error(ctl, EGRESSD_MAP_CONFIG, fd);
	ret = bpf_map_lookup_elem(fd, &zero, &cfg) ? -errno : 0;
	close(fd);
	if (ret)
		return map_error(ctl, EGRESSD_MAP_CONFIG, ret);
	v6 = strstr(argv[0], "_v6") != NULL;
	klen = v6 ? sizeof(key.k6) : sizeof(key.k4);
	fd = map_open(ctl, argv[0], klen, sizeof(val));
	if (fd < 0)
		return map_error(ctl, argv[0], fd);
	arr = json_array();
	if (!ctl->json)
		printf("%s (active slot %u):\n", argv[0], cfg.active);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		__u32 plen = v6 ? next.k6.prefixlen : next.k4.prefixlen;
		__u8 slot = v6 ? next.k6.slot : next.k4.slot;

		memcpy(&key, &next, klen);
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &val))
			continue;
		inet_ntop(v6 ? AF_INET6 : AF_INET,
			  v6 ? (void *)key.k6.addr : (void *)key.k4.addr, a,
			  sizeof(a));
		snprintf(pfx, sizeof(pfx), "%s/%u", a,
			 plen >= EGRESSD_LPM_SLOT_BITS ?
				 plen - EGRESSD_LPM_SLOT_BITS :
				 0);
		if (ctl->json)
			json_array_append_new(
				arr, json_pack("{s:s, s:i, s:b, s:I}", "prefix",
					       pfx, "slot", slot, "active",
					       slot == cfg.active, "rule",
					       (json_int_t)val.rule));
		else
			printf("  %-44s rule %-6u slot %u%s\n", pfx, val.rule,
			       slot, slot == cfg.active ? " (active)" : "");
	}
	close(fd);
	if (ctl->json)
		print_json(ctl, arr);
	else if (!prev)
		printf("  (empty)\n");
	json_decref(arr);
	return CTL_EXIT_OK;
}

/* ---- watch ---------------------------------------------------------- */

/* One log line: print it if it is a violation that passes the filters. */
static void watch_line(struct ctl *ctl, char *line, size_t len)
{
	json_error_t jerr;
	json_t *o, *dom;
	const char *layer;

	o = json_loadb(line, len, 0, &jerr);
	if (!o)
		return; /* not JSON: not one of egressd's lines */
	if (strcmp(jstr(o, "event", ""), "violation"))
		goto out;
	layer = jstr(o, "layer", "?");
	if (ctl->layer && strcmp(layer, ctl->layer))
		goto out;
	if (ctl->reason && strcmp(jstr(o, "reason", ""), ctl->reason))
		goto out;
	if (ctl->json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		goto flush;
	}
	printf("%s  %-6s  %-13s  %-8s  ", jstr(o, "ts", "-"), layer,
	       jstr(o, "reason", "?"), jstr(o, "action", "?"));
	if (!strcmp(layer, "dns")) {
		printf("%s %s", jstr(o, "qname", "?"), jstr(o, "qtype", "?"));
		if (jstr(o, "client", NULL))
			printf("  from %s", jstr(o, "client", ""));
	} else {
		bool v6 = jint(o, "family") == 6;

		printf("%s %s%s%s:%" JSON_INTEGER_FORMAT
		       " -> %s%s%s:%" JSON_INTEGER_FORMAT,
		       jstr(o, "proto", "?"), v6 ? "[" : "",
		       jstr(o, "src", "?"), v6 ? "]" : "", jint(o, "sport"),
		       v6 ? "[" : "", jstr(o, "dst", "?"), v6 ? "]" : "",
		       jint(o, "dport"));
		dom = json_object_get(o, "domain");
		if (json_is_string(dom))
			printf("  (%s)", json_string_value(dom));
	}
	if (jint(o, "count") > 1)
		printf("  x%" JSON_INTEGER_FORMAT, jint(o, "count"));
	putchar('\n');
flush:
	fflush(stdout);
out:
	json_decref(o);
}

struct linebuf {
	char *buf;
	size_t len, cap;
};

/* Append what read() gives and hand complete lines to watch_line(). */
static int watch_feed(struct ctl *ctl, struct linebuf *lb, int fd)
{
	char *nl, *p;
	size_t off;
	ssize_t n;

	if (lb->cap - lb->len < 65536) {
		p = realloc(lb->buf, lb->cap + 65536);
		if (!p)
			return -ENOMEM;
		lb->buf = p;
		lb->cap += 65536;
	}
	n = read(fd, lb->buf + lb->len, lb->cap - lb->len);
	if (n < 0)
		return errno == EINTR ? 1 : -errno;
	if (!n)
		return 0;
	lb->len += n;
	off = 0;
	while ((nl = memchr(lb->buf + off, '\n', lb->len - off))) {
		watch_line(ctl, lb->buf + off, nl - (lb->buf + off));
		off = nl - lb->buf + 1;
	}
	memmove(lb->buf, lb->buf + off, lb->len - off);
	lb->len -= off;
	/* A line longer than 1 MiB is no line of egressd's: drop it. */
	if (lb->len > (1u << 20))
		lb->len = 0;
	return 1;
}

static int watch_file(struct ctl *ctl, struct linebuf *lb)
{
	struct timespec tick = { 0, CTL_WATCH_POLL_NS };
	struct stat st, cur;
	int fd, ret;

	fd = open(ctl->log_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!ctl->from_start)
		lseek(fd, 0, SEEK_END);
	for (;;) {
		ret = watch_feed(ctl, lb, fd);
		if (ret < 0)
			break;
		if (ret)
			continue;
		if (!ctl->follow)
			break;
		/* At the end: follow truncation (copytruncate) and renames. */
		if (!fstat(fd, &cur) && lseek(fd, 0, SEEK_CUR) > cur.st_size)
			lseek(fd, 0, SEEK_SET);
		if (!stat(ctl->log_file, &st) &&
		    (st.st_ino != cur.st_ino || st.st_dev != cur.st_dev)) {
			int nfd = open(ctl->log_file, O_RDONLY | O_CLOEXEC);

			if (nfd >= 0) {
				close(fd);
				fd = nfd;
				lb->len = 0;
				continue;
			}
		}
		nanosleep(&tick, NULL);
	}
	close(fd);
	return ret;
}

static int do_watch(struct ctl *ctl, int argc, char **argv)
{
	struct linebuf lb = { 0 };
	int ret;

	if (argc)
		return p_usage(
			ctl, "watch takes no arguments (--log FILE or stdin)");
	if ((ctl->seen & (OPT_FROM_START | OPT_NO_FOLLOW)) && !ctl->log_file)
		return p_usage(ctl,
			       "--from-start and --no-follow need --log FILE");
	if (!ctl->log_file && isatty(STDIN_FILENO))
		return p_usage(
			ctl,
			"watch reads egressd's stdout: pipe it in (egressd | egressctl watch) or give --log FILE");
	if (ctl->log_file) {
		ret = watch_file(ctl, &lb);
	} else {
		while ((ret = watch_feed(ctl, &lb, STDIN_FILENO)) > 0)
			;
		if (!ret && lb.len)
			watch_line(ctl, lb.buf, lb.len); /* last, no newline */
	}
	free(lb.buf);
	if (ret < 0)
		return p_err(ctl, CTL_EXIT_ERR, "cannot read %s: %s",
			     ctl->log_file ? ctl->log_file : "stdin",
			     strerror(-ret));
	return CTL_EXIT_OK;
}

/* ---- dispatch ------------------------------------------------------- */

static const struct cmd policy_cmds[] = {
	{ "get", do_policy_get, "",
	  "Print the rules (# is the egress[i] index of error messages), the mode and the defaultAction. --json: the API answer as is.",
	  0 },
	{ "set", do_policy_set, "FILE|-",
	  "Replace the policy with the JSON object in FILE (- reads stdin): POST /policy.",
	  0 },
	{ "patch", do_policy_patch, "FILE|-",
	  "Merge the JSON array of rules in FILE (- reads stdin) in front of the current rules: PATCH /policy.",
	  0 },
	{ "delete", do_policy_delete, "TARGET...",
	  "Remove the rules with these targets (exact, any case; unknown targets are ignored): DELETE /policy.",
	  0 },
	{ "reset", do_policy_reset, "",
	  "Reset to deny-all (POST /policy with an empty body).", 0 },
	{ 0 }
};

static const struct cmd maps_cmds[] = {
	{ "show", do_maps_show, "",
	  "Learned addresses with their remaining lifetime and last use, static set sizes, counters summed over CPUs (read from the pinned maps, no API needed).",
	  0 },
	{ "dump", do_maps_dump, "MAP",
	  "Every entry of one map: learned_v4, learned_v6, or a static set (allow_v4, deny_v6, doh_allow_v4, ...).",
	  0 },
	{ 0 }
};

static int cmd_select(struct ctl *ctl, const char *obj, const struct cmd *cmds,
		      int argc, char **argv);

/* The long name of the lowest OPT_* bit in MASK. */
static const char *opt_name(unsigned int mask)
{
	static const char *const names[] = {
		"addr", "token",      "json",	   "pretty", "pin-dir", "help",
		"log",	"from-start", "no-follow", "layer",  "reason",
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (mask & (1u << i))
			return names[i];
	return "?";
}

static int do_policy(struct ctl *ctl, int argc, char **argv)
{
	return cmd_select(ctl, "policy", policy_cmds, argc, argv);
}

static int do_maps(struct ctl *ctl, int argc, char **argv)
{
	return cmd_select(ctl, "maps", maps_cmds, argc, argv);
}

static int do_help(struct ctl *ctl, int argc, char **argv);

/* Objects; the first match of a prefix wins, so the order matters. */
static const struct cmd main_cmds[] = {
	{ "policy", do_policy,
	  "{ get | set FILE | patch FILE | delete TARGET... | reset }",
	  "Read and change the policy through egressd's HTTP API.", 0 },
	{ "status", do_status, "",
	  "What egressd enforces: mode, layers and why, policy generation, learned addresses, upstream health, violations (GET /status).",
	  0 },
	{ "maps", do_maps, "{ show | dump MAP }",
	  "Read the pinned BPF maps directly (root; --pin-dir).", 0 },
	{ "watch", do_watch,
	  "[--log FILE [--from-start] [--no-follow]] [--layer dns|packet] [--reason REASON]",
	  "Print egressd's violation lines as they come, from stdin (egressd | egressctl watch) or by following its log FILE. --json passes the lines through unchanged.",
	  OPT_WATCH },
	{ "health", do_health, "",
	  "GET /healthz: exit 0 when egressd answers 200 (enforcement installed).",
	  0 },
	{ "help", do_help, "", "This text.", 0 },
	{ 0 }
};

/* Print TEXT indented by IND, broken at blanks before column WIDTH. */
static void print_wrapped(const char *text, int ind, int width)
{
	const char *p = text, *brk, *q;

	while (*p) {
		brk = NULL;
		for (q = p; *q && q - p <= width - ind; q++)
			if (*q == ' ')
				brk = q;
		if (!*q || !brk)
			brk = q + strcspn(q, " ");
		printf("%*s%.*s\n", ind, "", (int)(brk - p), p);
		p = brk + strspn(brk, " ");
	}
}

static void print_cmd(const char *obj, const struct cmd *c, bool doc)
{
	printf("  egressctl %s%s%s%s%s\n", obj ? obj : "", obj ? " " : "",
	       c->name, *c->synopsis ? " " : "", c->synopsis);
	if (doc)
		print_wrapped(c->doc, 6, 78);
}

static void print_options(void)
{
	printf("\nOPTIONS (anywhere on the line):\n"
	       "  -a, --addr ADDR     egressd's API address, default %s (:PORT is\n"
	       "                      127.0.0.1:PORT); env OPENSANDBOX_EGRESS_HTTP_ADDR\n"
	       "  -t, --token TOKEN   value of the %s header;\n"
	       "                      env OPENSANDBOX_EGRESS_TOKEN\n"
	       "  -P, --pin-dir DIR   BPF pin directory (maps), default %s;\n"
	       "                      env OPENSANDBOX_EGRESS_BPF_PIN_DIR\n"
	       "  -j, --json          JSON output; errors also as {\"error\":...} on stdout\n"
	       "  -p, --pretty        indented JSON (implies --json)\n"
	       "  -h, --help          help for the object or command given\n"
	       "  -V, --version       print the version\n"
	       "\nEXIT STATUS: 0 ok; 1 egressd answered an error (4xx/5xx) or an operation failed;\n"
	       "  2 usage error; 3 egressd not reachable (or, for maps, nothing pinned).\n",
	       EGRESSD_DEFAULT_HTTP_ADDR, EGRESSD_AUTH_HEADER,
	       EGRESSD_DEFAULT_PIN_DIR);
}

static int do_help(struct ctl *ctl, int argc, char **argv)
{
	const struct cmd *c;

	printf("Usage: egressctl [OPTIONS] OBJECT [VERB] [ARGS]\n"
	       "Objects and verbs may be abbreviated to any prefix (first match in this order).\n\n");
	for (c = main_cmds; c->name; c++)
		print_cmd(NULL, c, true);
	print_options();
	return CTL_EXIT_OK;
}

/*
 * bpftool's cmd_select: no verb runs the first one (get, show); --help
 * prints the object's or the verb's help; options not meant for the verb
 * are a usage error.
 */
static int cmd_select(struct ctl *ctl, const char *obj, const struct cmd *cmds,
		      int argc, char **argv)
{
	static char path[64];
	const struct cmd *c;

	if (!argc && ctl->help) {
		printf("Usage:\n");
		for (c = cmds; c->name; c++)
			print_cmd(obj, c, true);
		print_options();
		return CTL_EXIT_OK;
	}
	if (!argc) {
		c = cmds;
	} else {
		for (c = cmds; c->name; c++)
			if (is_prefix(argv[0], c->name))
				break;
		if (!c->name) {
			snprintf(path, sizeof(path), "egressctl %s", obj);
			ctl->path = path;
			return p_usage(ctl, "unknown %s command '%s'", obj,
				       argv[0]);
		}
		argc--;
		argv++;
	}
	snprintf(path, sizeof(path), "egressctl %s %s", obj, c->name);
	ctl->path = path;
	if (ctl->help) {
		printf("Usage:\n");
		print_cmd(obj, c, true);
		print_options();
		return CTL_EXIT_OK;
	}
	if (ctl->seen & ~(OPT_GLOBAL | c->opts))
		return p_usage(ctl, "option --%s is not valid for %s",
			       opt_name(ctl->seen & ~(OPT_GLOBAL | c->opts)),
			       path);
	return c->func(ctl, argc, argv);
}

static int main_select(struct ctl *ctl, int argc, char **argv)
{
	static char path[64];
	const struct cmd *c;

	if (!argc) {
		if (ctl->help)
			return do_help(ctl, 0, NULL);
		return p_usage(
			ctl,
			"missing OBJECT (policy, status, maps, watch, health)");
	}
	for (c = main_cmds; c->name; c++)
		if (is_prefix(argv[0], c->name))
			break;
	if (!c->name)
		return p_usage(ctl, "unknown object '%s'", argv[0]);
	if (c->func == do_help)
		return do_help(ctl, 0, NULL);
	if (c->func == do_policy || c->func == do_maps)
		return c->func(ctl, argc - 1, argv + 1);
	snprintf(path, sizeof(path), "egressctl %s", c->name);
	ctl->path = path;
	if (ctl->help) {
		printf("Usage:\n");
		print_cmd(NULL, c, true);
		print_options();
		return CTL_EXIT_OK;
	}
	if (ctl->seen & ~(OPT_GLOBAL | c->opts))
		return p_usage(ctl, "option --%s is not valid for %s",
			       opt_name(ctl->seen & ~(OPT_GLOBAL | c->opts)),
			       path);
	return c->func(ctl, argc - 1, argv + 1);
}

static const struct option long_opts[] = {
	{ "addr", required_argument, NULL, 'a' },
	{ "token", required_argument, NULL, 't' },
	{ "pin-dir", required_argument, NULL, 'P' },
	{ "json", no_argument, NULL, 'j' },
	{ "pretty", no_argument, NULL, 'p' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "log", required_argument, NULL, 'l' },
	{ "from-start", no_argument, NULL, 'F' },
	{ "no-follow", no_argument, NULL, 'N' },
	{ "layer", required_argument, NULL, 'L' },
	{ "reason", required_argument, NULL, 'R' },
	{ 0 }
};

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

int main(int argc, char **argv)
{
	struct ctl ctl = {
		.addr = env_or("OPENSANDBOX_EGRESS_HTTP_ADDR",
			       EGRESSD_DEFAULT_HTTP_ADDR),
		.token = env_or("OPENSANDBOX_EGRESS_TOKEN", NULL),
		.pin_dir = env_or("OPENSANDBOX_EGRESS_BPF_PIN_DIR",
				  EGRESSD_DEFAULT_PIN_DIR),
		.follow = true,
	};
	int opt, ret;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":a:t:P:jphVl:", long_opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'a':
			ctl.addr = optarg;
			ctl.seen |= OPT_ADDR;
			break;
		case 't':
			ctl.token = optarg;
			ctl.seen |= OPT_TOKEN;
			break;
		case 'P':
			ctl.pin_dir = optarg;
			ctl.seen |= OPT_PIN_DIR;
			break;
		case 'p':
			ctl.pretty = true;
			ctl.seen |= OPT_PRETTY;
			/* fall through */
		case 'j':
			ctl.json = true;
			ctl.seen |= OPT_JSON;
			break;
		case 'h':
			ctl.help = true;
			ctl.seen |= OPT_HELP;
			break;
		case 'V':
			printf("egressctl %s (libcurl %s, libbpf %s)\n",
			       CTL_VERSION,
			       curl_version_info(CURLVERSION_NOW)->version,
			       libbpf_version_string());
			return CTL_EXIT_OK;
		case 'l':
			ctl.log_file = optarg;
			ctl.seen |= OPT_LOG;
			break;
		case 'F':
			ctl.from_start = true;
			ctl.seen |= OPT_FROM_START;
			break;
		case 'N':
			ctl.follow = false;
			ctl.seen |= OPT_NO_FOLLOW;
			break;
		case 'L':
			ctl.layer = optarg;
			ctl.seen |= OPT_LAYER;
			break;
		case 'R':
			ctl.reason = optarg;
			ctl.seen |= OPT_REASON;
			break;
		case ':':
			return p_usage(&ctl, "option %s needs an argument",
				       argv[optind - 1]);
		default:
			return p_usage(&ctl, "unknown option %s",
				       argv[optind - 1]);
		}
	}
	if (ctl.layer && strcmp(ctl.layer, "dns") &&
	    strcmp(ctl.layer, "packet"))
		return p_usage(&ctl, "--layer is dns or packet, not '%s'",
			       ctl.layer);
	if (build_base_url(&ctl))
		return p_usage(
			&ctl,
			"bad address '%s' (expected HOST:PORT, :PORT, [IPV6]:PORT or http://...)",
			ctl.addr);
	libbpf_set_print(silent_print);
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return p_err(&ctl, CTL_EXIT_ERR, "cannot initialise libcurl");
	ret = main_select(&ctl, argc - optind, argv + optind);
	curl_global_cleanup();
	if (fflush(stdout) && !ret)
		ret = CTL_EXIT_ERR;
	return ret;
}
