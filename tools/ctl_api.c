// SPDX-License-Identifier: GPL-2.0-only
/*
 * egressctl's commands over egressd's HTTP API (docs/api.md): policy
 * get/set/patch/delete/reset, status and health. Each renders egressd's
 * answer as text, or as JSON with --json; the requests themselves and
 * the mapping of failures to exit codes are ctl_http.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "egressctl.h"

/*
 * Cap on a body read from FILE or stdin. egressd refuses more than 1 MiB
 * itself (413, with its reason); this only bounds egressctl's memory.
 */
#define CTL_BODY_MAX (16u << 20)

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
	const char *emode = ctl_jstr(o, "enforcementMode", NULL);
	const char *reason = ctl_jstr(o, "reason", NULL);

	printf("%s: mode %s", ctl_jstr(o, "status", "?"),
	       ctl_jstr(o, "mode", "?"));
	if (emode)
		printf(", enforcement %s", emode);
	if (reason)
		printf(" (%s)", reason);
	putchar('\n');
}

int ctl_policy_get(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_http_resp raw;
	json_t *o = NULL, *pol, *egress, *rule;
	size_t i, w = 6;
	int ret;

	if (argc)
		return ctl_usage(ctl, "policy get takes no arguments");
	ret = ctl_http_json(ctl, "GET", "/policy", NULL, 0, &o, &raw);
	if (ret)
		return ret;
	if (ctl->json) {
		if (ctl->pretty)
			ctl_print_json(ctl, o);
		else
			fwrite(raw.body, 1, raw.len, stdout);
		goto out;
	}
	pol = json_object_get(o, "policy");
	egress = json_object_get(pol, "egress");
	printf("mode %s, enforcement %s, defaultAction %s\n",
	       ctl_jstr(o, "mode", "?"), ctl_jstr(o, "enforcementMode", "?"),
	       ctl_jstr(pol, "defaultAction", "?"));
	if (!json_array_size(egress)) {
		printf("no rules: every name gets the defaultAction\n");
		goto out;
	}
	json_array_foreach(egress, i, rule) {
		size_t l = strlen(ctl_jstr(rule, "action", "?"));

		if (l > w)
			w = l;
	}
	printf("%4s  %-*s  %s\n", "#", (int)w, "ACTION", "TARGET");
	json_array_foreach(egress, i, rule)
		printf("%4zu  %-*s  %s\n", i, (int)w,
		       ctl_jstr(rule, "action", "?"),
		       ctl_jstr(rule, "target", "?"));
out:
	ctl_http_resp_free(&raw);
	json_decref(o);
	return CTL_EXIT_OK;
}

/* Send BODY with METHOD to /policy and print the policy status. */
static int policy_send(struct ctl *ctl, const char *method, const char *body,
		       size_t len)
{
	json_t *o = NULL;
	int ret;

	ret = ctl_http_json(ctl, method, "/policy", body, len, &o, NULL);
	if (ret)
		return ret;
	if (ctl->json)
		ctl_print_json(ctl, o);
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
		return ctl_usage(ctl, "expected one FILE (or - for stdin)");
	ret = read_input(argv[0], &buf, &len);
	if (ret)
		return ctl_err(ctl, CTL_EXIT_ERR, "cannot read %s: %s",
			       strcmp(argv[0], "-") ? argv[0] : "stdin",
			       strerror(-ret));
	/* egressd would take it as a reset: say so instead. */
	if (!buf[strspn(buf, " \t\r\n")]) {
		free(buf);
		return ctl_err(
			ctl, CTL_EXIT_ERR,
			"%s is empty (use 'egressctl policy reset' to reset to deny-all)",
			strcmp(argv[0], "-") ? argv[0] : "stdin");
	}
	ret = policy_send(ctl, method, buf, len);
	free(buf);
	return ret;
}

int ctl_policy_set(struct ctl *ctl, int argc, char **argv)
{
	return policy_send_file(ctl, "POST", argc, argv);
}

int ctl_policy_patch(struct ctl *ctl, int argc, char **argv)
{
	return policy_send_file(ctl, "PATCH", argc, argv);
}

int ctl_policy_delete(struct ctl *ctl, int argc, char **argv)
{
	json_t *arr;
	char *body;
	int i, ret;

	if (argc < 1)
		return ctl_usage(ctl,
				 "policy delete needs at least one TARGET");
	arr = json_array();
	for (i = 0; arr && i < argc; i++)
		if (json_array_append_new(arr, json_string(argv[i]))) {
			json_decref(arr);
			return ctl_err(ctl, CTL_EXIT_ERR,
				       "target %d is not valid UTF-8", i + 1);
		}
	body = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	if (!body)
		return ctl_err(ctl, CTL_EXIT_ERR, "out of memory");
	ret = policy_send(ctl, "DELETE", body, strlen(body));
	free(body);
	return ret;
}

int ctl_policy_reset(struct ctl *ctl, int argc, char **argv)
{
	if (argc)
		return ctl_usage(ctl, "policy reset takes no arguments");
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
		const char *why = ctl_jstr(l, "why", NULL);
		const char *redirect = ctl_jstr(l, "redirect", NULL);

		printf("%s%s %s", first ? "" : ", ", name,
		       ctl_jstr(l, "state", "?"));
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
	printf("%-11s %s", "coverage", ctl_jstr(c, "state", "?"));
	if (json_is_object(att)) {
		printf(", BPF at cgroup %s (id %" JSON_INTEGER_FORMAT ")",
		       ctl_jstr(att, "path", "?"), ctl_jint(att, "id"));
		if (ctl_jstr(c, "attach", NULL))
			printf(" [%s]", ctl_jstr(c, "attach", ""));
	} else if (ctl_jstr(c, "attach", NULL)) {
		printf(", no BPF attach point (%s)", ctl_jstr(c, "attach", ""));
	}
	putchar('\n');
	if (ctl_jstr(c, "how", NULL))
		printf("%-11s %s\n", "", ctl_jstr(c, "how", ""));
	if (ctl_jstr(c, "rest", NULL))
		printf("%-11s the rest: %s\n", "", ctl_jstr(c, "rest", ""));
}

int ctl_status(struct ctl *ctl, int argc, char **argv)
{
	json_t *o = NULL, *p, *v, *u, *d;
	const char *name;
	size_t i;
	bool first;
	int ret;

	if (argc)
		return ctl_usage(ctl, "status takes no arguments");
	ret = ctl_http_json(ctl, "GET", "/status", NULL, 0, &o, NULL);
	if (ret)
		return ret;
	if (ctl->json) {
		ctl_print_json(ctl, o);
		json_decref(o);
		return CTL_EXIT_OK;
	}
	printf("%-11s %s, up %" JSON_INTEGER_FORMAT " s\n", "egressd",
	       ctl_jstr(o, "version", "?"), ctl_jint(o, "uptime_s"));
	printf("%-11s %s", "mode", ctl_jstr(o, "mode", "?"));
	if (ctl_jstr(o, "requestedMode", NULL) &&
	    strcmp(ctl_jstr(o, "requestedMode", ""), ctl_jstr(o, "mode", "")))
		printf(" (requested %s)", ctl_jstr(o, "requestedMode", ""));
	printf(", ipv6 %s\n", ctl_jstr(o, "ipv6", "?"));
	print_layers(json_object_get(o, "layers"));
	print_coverage(json_object_get(o, "coverage"));
	p = json_object_get(o, "policy");
	printf("%-11s generation %" JSON_INTEGER_FORMAT
	       ", %" JSON_INTEGER_FORMAT " rules, defaultAction %s",
	       "policy", ctl_jint(p, "generation"), ctl_jint(p, "rules"),
	       ctl_jstr(p, "defaultAction", "?"));
	if (ctl_jstr(p, "source", NULL))
		printf(", from %s", ctl_jstr(p, "source", ""));
	if (json_object_get(p, "denyAlways"))
		printf(", always: %" JSON_INTEGER_FORMAT
		       " deny %" JSON_INTEGER_FORMAT " allow",
		       ctl_jint(p, "denyAlways"), ctl_jint(p, "allowAlways"));
	putchar('\n');
	v = json_object_get(o, "learned");
	printf("%-11s v4 %" JSON_INTEGER_FORMAT ", v6 %" JSON_INTEGER_FORMAT
	       "\n",
	       "learned", ctl_jint(v, "v4"), ctl_jint(v, "v6"));
	printf("%-11s", "upstreams");
	json_array_foreach(json_object_get(o, "upstreams"), i, u)
		printf("%s %s %s", i ? "," : "", ctl_jstr(u, "addr", "?"),
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
		       "dns", ctl_jint(d, "queries"), ctl_jint(d, "allowed"),
		       ctl_jint(d, "denied"), ctl_jint(d, "servfail"),
		       ctl_jint(d, "malformed"));
	json_decref(o);
	return CTL_EXIT_OK;
}

int ctl_health(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_http_resp r;
	size_t n;
	int ret;

	if (argc)
		return ctl_usage(ctl, "health takes no arguments");
	ret = ctl_http_do(ctl, "GET", "/healthz", NULL, 0, &r);
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
			ctl_print_json(ctl, o);
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
	ctl_http_resp_free(&r);
	return ret;
}
