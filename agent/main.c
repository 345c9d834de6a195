// SPDX-License-Identifier: GPL-2.0-only
/*
 * egressd's entry point: read the settings, then one of three things:
 * --check-host-network (say whether this namespace looks like the host's),
 * --cleanup (remove what egressd installed), or a run of the agent
 * (agent.h) until SIGTERM/SIGINT. Errors before the agent runs go to
 * stderr with a non-zero exit; everything after is a JSON log line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egressd/agent.h"
#include "egressd/config.h"
#include "egressd/log.h"
#include "egressd/netns.h"

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("egressd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILURE);
}

/* --check-host-network: the answer on stderr, the verdict as exit code. */
static int check_host_network(void)
{
	char why[1024];
	int ret;

	ret = netns_looks_like_host(why, sizeof(why));
	if (ret < 0)
		die("cannot list this namespace's interfaces: %s",
		    strerror(-ret));
	fprintf(stderr, "egressd: %s\n",
		ret ? why : "this namespace does not look like the host's");
	return ret ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	struct egressd_config cfg;
	struct agent *a;
	char err[1024];
	int ret;

	ret = config_load(&cfg, argc, argv, err, sizeof(err));
	if (ret == 1)
		return EXIT_SUCCESS;
	if (ret < 0)
		die("%s", err);
	log_set_level(cfg.log_level);
	log_set_sandbox_id(cfg.sandbox_id); /* checked by config_load */

	if (cfg.check_host_network) {
		ret = check_host_network();
		config_fini(&cfg);
		return ret;
	}
	if (cfg.cleanup) {
		if (agent_cleanup(&cfg, err, sizeof(err)))
			die("%s", err);
		fprintf(stderr, "egressd: %s\n", err);
		config_fini(&cfg);
		return EXIT_SUCCESS;
	}

	if (agent_new(&a, &cfg, err, sizeof(err)))
		die("%s", err);
	ret = agent_run(a);
	agent_free(a);
	config_fini(&cfg);
	return ret ? EXIT_FAILURE : EXIT_SUCCESS;
}
