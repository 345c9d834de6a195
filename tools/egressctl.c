// SPDX-License-Identifier: GPL-2.0-only
/*
 * egressctl: the operator's CLI for egressd, shaped like bpftool:
 * `egressctl [OPTIONS] OBJECT VERB [ARGS]`, objects and verbs matched by
 * prefix (first match in table order, bpftool's is_prefix), --json
 * everywhere, errors on stderr and exit codes scripts can trust
 * (docs/egressctl.md). This file is the command line: options, the
 * command tables, help, and the output helpers every command uses.
 * policy, status and health talk to egressd's HTTP API (ctl_api.c over
 * ctl_http.c, libcurl); maps reads the pinned BPF maps directly with
 * libbpf (ctl_maps.c), so it works without the API and even while the
 * agent is down; watch follows the violation lines of egressd's log
 * stream from stdin or a log file (ctl_follow.c).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>
#include <curl/curl.h>
#include <jansson.h>

#include "egressd/defaults.h"
#include "egressctl.h"

/*
 * A command: handlers return an exit code (CTL_EXIT_*). An object's
 * handler selects among its verbs with cmd_select().
 */
struct cmd {
	const char *name;
	int (*func)(struct ctl *ctl, int argc, char **argv);
	const char *synopsis; /* after "egressctl OBJECT VERB" */
	const char *doc;
	unsigned int opts; /* command-specific OPT_* it accepts */
};

static int vmsg(struct ctl *ctl, int code, const char *fmt, va_list ap)
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
int ctl_err(struct ctl *ctl, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(ctl, code, fmt, ap);
	va_end(ap);
	return code;
}

int ctl_usage(struct ctl *ctl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(ctl, CTL_EXIT_USAGE, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'egressctl --help' or '%s --help'.\n",
		ctl && ctl->path ? ctl->path : "egressctl OBJECT");
	return CTL_EXIT_USAGE;
}

static bool is_prefix(const char *pfx, const char *str)
{
	return *pfx && !strncmp(str, pfx, strlen(pfx));
}

void ctl_print_json(struct ctl *ctl, json_t *o)
{
	json_dumpf(o, stdout,
		   ctl->pretty ? JSON_INDENT(2) | JSON_PRESERVE_ORDER :
				 JSON_COMPACT | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

const char *ctl_jstr(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

json_int_t ctl_jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* libbpf stays quiet: egressctl reports each failure itself. */
static int silent_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	return 0;
}

static const struct cmd policy_cmds[] = {
	{ "get", ctl_policy_get, "",
	  "Print the rules (# is the egress[i] index of error messages), the mode and the defaultAction. --json: the API answer as is.",
	  0 },
	{ "set", ctl_policy_set, "FILE|-",
	  "Replace the policy with the JSON object in FILE (- reads stdin): POST /policy.",
	  0 },
	{ "patch", ctl_policy_patch, "FILE|-",
	  "Merge the JSON array of rules in FILE (- reads stdin) in front of the current rules: PATCH /policy.",
	  0 },
	{ "delete", ctl_policy_delete, "TARGET...",
	  "Remove the rules with these targets (exact, any case; unknown targets are ignored): DELETE /policy.",
	  0 },
	{ "reset", ctl_policy_reset, "",
	  "Reset to deny-all (POST /policy with an empty body).", 0 },
	{ 0 }
};

static const struct cmd maps_cmds[] = {
	{ "show", ctl_maps_show, "",
	  "Learned addresses with their remaining lifetime and last use, static set sizes, counters summed over CPUs (read from the pinned maps, no API needed).",
	  0 },
	{ "dump", ctl_maps_dump, "MAP",
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
	{ "status", ctl_status, "",
	  "What egressd enforces: mode, layers and why, policy generation, learned addresses, upstream health, violations (GET /status).",
	  0 },
	{ "maps", do_maps, "{ show | dump MAP }",
	  "Read the pinned BPF maps directly (root; --pin-dir).", 0 },
	{ "watch", ctl_watch,
	  "[--log FILE [--from-start] [--no-follow]] [--layer dns|packet] [--reason REASON]",
	  "Print egressd's violation lines as they come, from stdin (egressd | egressctl watch) or by following its log FILE. --json passes the lines through unchanged.",
	  OPT_WATCH },
	{ "health", ctl_health, "",
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
			return ctl_usage(ctl, "unknown %s command '%s'", obj,
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
		return ctl_usage(ctl, "option --%s is not valid for %s",
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
		return ctl_usage(
			ctl,
			"missing OBJECT (policy, status, maps, watch, health)");
	}
	for (c = main_cmds; c->name; c++)
		if (is_prefix(argv[0], c->name))
			break;
	if (!c->name)
		return ctl_usage(ctl, "unknown object '%s'", argv[0]);
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
		return ctl_usage(ctl, "option --%s is not valid for %s",
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
			return ctl_usage(&ctl, "option %s needs an argument",
					 argv[optind - 1]);
		default:
			return ctl_usage(&ctl, "unknown option %s",
					 argv[optind - 1]);
		}
	}
	if (ctl.layer && strcmp(ctl.layer, "dns") &&
	    strcmp(ctl.layer, "packet"))
		return ctl_usage(&ctl, "--layer is dns or packet, not '%s'",
				 ctl.layer);
	if (ctl_http_base_url(&ctl))
		return ctl_usage(
			&ctl,
			"bad address '%s' (expected HOST:PORT, :PORT, [IPV6]:PORT or http://...)",
			ctl.addr);
	libbpf_set_print(silent_print);
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return ctl_err(&ctl, CTL_EXIT_ERR, "cannot initialise libcurl");
	ret = main_select(&ctl, argc - optind, argv + optind);
	curl_global_cleanup();
	if (fflush(stdout) && !ret)
		ret = CTL_EXIT_ERR;
	return ret;
}
