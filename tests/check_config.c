// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the settings: environment and options, option precedence,
 * defaults, and the errors a typo must produce.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egressd/config.h"

static char resolv[] = "/tmp/check_config_resolvXXXXXX";

static void write_resolv(const char *text)
{
	int fd = mkstemp(resolv);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	setenv("OPENSANDBOX_EGRESS_RESOLV_CONF", resolv, 1);
}

static void setup(void)
{
	static const char *const vars[] = {
		"OPENSANDBOX_EGRESS_MODE",
		"OPENSANDBOX_EGRESS_DNS_UPSTREAM",
		"OPENSANDBOX_EGRESS_MAX_RULES",
		"OPENSANDBOX_EGRESS_IPV6",
		"OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT",
		"OPENSANDBOX_EGRESS_RESOLV_CONF",
	};
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	strcpy(resolv, "/tmp/check_config_resolvXXXXXX");
	write_resolv(
		"# test\nnameserver 10.200.0.53\nnameserver fd00:200::53\n");
}

static void teardown(void)
{
	unlink(resolv);
}

static int load(struct egressd_config *cfg, char *err, size_t errlen, ...)
{
	char *argv[16] = { "egressd" };
	int argc = 1;
	va_list ap;
	char *a;

	va_start(ap, errlen);
	while ((a = va_arg(ap, char *)) && argc < 15)
		argv[argc++] = a;
	va_end(ap);
	return config_load(cfg, argc, argv, err, errlen);
}

START_TEST(test_config_defaults)
{
	struct egressd_config cfg;
	char err[512] = "";

	ck_assert_int_eq(load(&cfg, err, sizeof(err), NULL), 0);
	ck_assert_int_eq(cfg.mode, EGRESSD_MODE_DNS);
	ck_assert_uint_eq(cfg.max_rules, 4096);
	ck_assert_uint_eq(cfg.dns_listen_port, 15353);
	ck_assert_uint_eq(cfg.upstream_timeout_ms, 5000);
	ck_assert_str_eq(cfg.rules_dir, "/var/egress/rules");
	ck_assert_str_eq(cfg.http_addr, ":18080");
	ck_assert_int_eq(cfg.bpf_mode, EGRESSD_BPF_ENFORCE);
	ck_assert_int_eq(cfg.ipv6, EGRESSD_IPV6_ALLOW);
	ck_assert_uint_eq(cfg.learn_ttl_min, 60);
	ck_assert_uint_eq(cfg.learn_ttl_max, 300);
	ck_assert_uint_eq(cfg.learn_grace, 30);
	ck_assert_uint_eq(cfg.learn_max, 32768);
	ck_assert(cfg.frame_guard);
	/* From the resolv.conf written by setup(). */
	ck_assert_int_eq(cfg.n_upstreams, 2);
	ck_assert(cfg.upstreams_from_resolv_conf);
	ck_assert_str_eq(cfg.upstreams[0].text, "10.200.0.53:53");
	ck_assert_str_eq(cfg.upstreams[1].text, "[fd00:200::53]:53");
	config_fini(&cfg);
}
END_TEST

START_TEST(test_config_option_beats_env)
{
	struct egressd_config cfg;
	char err[512] = "";

	setenv("OPENSANDBOX_EGRESS_MODE", "dns", 1);
	setenv("OPENSANDBOX_EGRESS_DNS_UPSTREAM", "10.200.0.1", 1);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--mode", "nft+DNS",
			      "--dns-upstream", "10.200.0.2:5353", NULL),
			 0);
	ck_assert_int_eq(cfg.mode, EGRESSD_MODE_DNS_NFT);
	ck_assert_int_eq(cfg.n_upstreams, 1);
	ck_assert_str_eq(cfg.upstreams[0].text, "10.200.0.2:5353");
	ck_assert(!cfg.upstreams_from_resolv_conf);
	config_fini(&cfg);
}
END_TEST

START_TEST(test_config_upstream_forms)
{
	struct egressd_upstream u[EGRESSD_MAX_UPSTREAMS];
	char err[512] = "";
	int n = 0;

	ck_assert_int_eq(config_parse_upstreams(
				 " 10.200.0.1 , 10.200.0.2:54,[fd00:200::1]:55,"
				 "[fd00:200::2],fd00:200::3,10.200.0.1",
				 u, EGRESSD_MAX_UPSTREAMS, &n, err,
				 sizeof(err)),
			 0);
	ck_assert_int_eq(n, 5); /* the duplicate is dropped */
	ck_assert_str_eq(u[0].text, "10.200.0.1:53");
	ck_assert_str_eq(u[1].text, "10.200.0.2:54");
	ck_assert_str_eq(u[2].text, "[fd00:200::1]:55");
	ck_assert_str_eq(u[3].text, "[fd00:200::2]:53");
	ck_assert_str_eq(u[4].text, "[fd00:200::3]:53");
	ck_assert_int_eq(((struct sockaddr_in *)&u[1].addr)->sin_port,
			 htons(54));
}
END_TEST

START_TEST(test_config_upstream_hostname_rejected)
{
	struct egressd_upstream u[EGRESSD_MAX_UPSTREAMS];
	char err[512] = "";
	int n = 0;

	ck_assert_int_eq(config_parse_upstreams("dns.google", u,
						EGRESSD_MAX_UPSTREAMS, &n, err,
						sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"dns.google\""));
	ck_assert_ptr_nonnull(strstr(err, "host names"));
	ck_assert_int_eq(config_parse_upstreams("10.0.0.1:99999", u,
						EGRESSD_MAX_UPSTREAMS, &n, err,
						sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(config_parse_upstreams("fe80::1%eth0", u,
						EGRESSD_MAX_UPSTREAMS, &n, err,
						sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(config_parse_upstreams("0.0.0.0", u,
						EGRESSD_MAX_UPSTREAMS, &n, err,
						sizeof(err)),
			 -EINVAL);
}
END_TEST

START_TEST(test_config_empty_resolv_conf_is_error)
{
	struct egressd_config cfg;
	char err[512] = "";

	unlink(resolv);
	strcpy(resolv, "/tmp/check_config_resolvXXXXXX");
	write_resolv("search example.com\nnameserver 0.0.0.0\n");
	ck_assert_int_eq(load(&cfg, err, sizeof(err), NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no usable nameserver"));
	ck_assert_ptr_nonnull(strstr(err, "OPENSANDBOX_EGRESS_DNS_UPSTREAM"));
}
END_TEST

START_TEST(test_config_bad_values_name_the_setting)
{
	static const char *const cases[][3] = {
		{ "--mode", "nft", "OPENSANDBOX_EGRESS_MODE" },
		{ "--mode", "dns+mitm", "OPENSANDBOX_EGRESS_MODE" },
		{ "--max-rules", "-1", "OPENSANDBOX_EGRESS_MAX_RULES" },
		{ "--max-rules", "12x", "OPENSANDBOX_EGRESS_MAX_RULES" },
		{ "--dns-upstream-timeout", "0",
		  "OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT" },
		{ "--dns-listen-port", "70000",
		  "OPENSANDBOX_EGRESS_DNS_LISTEN_PORT" },
		{ "--ipv6", "maybe", "OPENSANDBOX_EGRESS_IPV6" },
		{ "--bpf", "on", "OPENSANDBOX_EGRESS_BPF" },
		{ "--block-doh-443", "sure",
		  "OPENSANDBOX_EGRESS_BLOCK_DOH_443" },
		{ "--frame-guard", "maybe", "OPENSANDBOX_EGRESS_FRAME_GUARD" },
		{ "--log-level", "loud", "OPENSANDBOX_EGRESS_LOG_LEVEL" },
	};
	struct egressd_config cfg;
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(load(&cfg, err, sizeof(err), cases[i][0],
				   cases[i][1], NULL) == -EINVAL,
			      "%s %s accepted", cases[i][0], cases[i][1]);
		ck_assert_msg(
			strstr(err, cases[i][2]) && strstr(err, cases[i][1]),
			"%s %s: message \"%s\"", cases[i][0], cases[i][1], err);
	}
}
END_TEST

START_TEST(test_config_fractional_timeout_and_unknown_option)
{
	struct egressd_config cfg;
	char err[512] = "";

	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--dns-upstream-timeout",
			      "0.25", NULL),
			 0);
	ck_assert_uint_eq(cfg.upstream_timeout_ms, 250);
	config_fini(&cfg);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--frobnicate", NULL),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "--frobnicate"));
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "stray", NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "stray"));
}
END_TEST

START_TEST(test_config_ipv6_deny_refuses_v6_upstream)
{
	struct egressd_config cfg;
	char err[512] = "";

	/* setup()'s resolv.conf lists an IPv6 nameserver second. */
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--ipv6", "deny", NULL),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "[fd00:200::53]:53"));
	ck_assert_ptr_nonnull(strstr(err, "OPENSANDBOX_EGRESS_IPV6=deny"));
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--ipv6", "deny",
			      "--dns-upstream", "10.200.0.53", NULL),
			 0);
	config_fini(&cfg);
}
END_TEST

/* config_load with args, its stdout caught into out (for --help). */
static int load_stdout(struct egressd_config *cfg, char *err, size_t errlen,
		       char *out, size_t outlen, const char *arg)
{
	char path[] = "/tmp/check_config_outXXXXXX";
	int fd = mkstemp(path), saved, ret;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	dup2(fd, STDOUT_FILENO);
	ret = load(cfg, err, errlen, arg, NULL);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return ret;
}

START_TEST(test_config_short_h_is_help)
{
	struct egressd_config cfg;
	char err[512] = "", out[8192];

	ck_assert_int_eq(
		load_stdout(&cfg, err, sizeof(err), out, sizeof(out), "-h"), 1);
	ck_assert_msg(strstr(out, "Usage: egressd") != NULL, "out: %s", out);
	ck_assert_ptr_nonnull(strstr(out, "-h, --help"));
	ck_assert_int_eq(load_stdout(&cfg, err, sizeof(err), out, sizeof(out),
				     "--help"),
			 1);
	ck_assert_ptr_nonnull(strstr(out, "Usage: egressd"));
}
END_TEST

START_TEST(test_config_option_errors_say_what_is_wrong)
{
	struct egressd_config cfg;
	char err[512] = "";

	/* --mode is option 0: its missing value must not read as unknown. */
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--mode", NULL), -EINVAL);
	ck_assert_msg(strstr(err, "--mode needs a value") != NULL, "err: %s",
		      err);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--log-level", NULL),
			 -EINVAL);
	ck_assert_msg(strstr(err, "--log-level needs a value") != NULL,
		      "err: %s", err);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "-x", NULL), -EINVAL);
	ck_assert_msg(strstr(err, "unknown option -x") != NULL, "err: %s", err);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--help=1", NULL),
			 -EINVAL);
	ck_assert_msg(strstr(err, "--help takes no value") != NULL, "err: %s",
		      err);
}
END_TEST

START_TEST(test_config_learn_ttl_blames_the_setting_given)
{
	struct egressd_config cfg;
	char err[512] = "";

	/* Only the minimum given, above the default maximum (300). */
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--learn-ttl-min", "600",
			      NULL),
			 -EINVAL);
	ck_assert_msg(strstr(err, "OPENSANDBOX_EGRESS_LEARN_TTL_MIN / "
				  "--learn-ttl-min: invalid value \"600\"") &&
			      strstr(err, "300"),
		      "err: %s", err);
	/* Only the maximum given, below the default minimum (60). */
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--learn-ttl-max", "30",
			      NULL),
			 -EINVAL);
	ck_assert_msg(strstr(err, "OPENSANDBOX_EGRESS_LEARN_TTL_MAX / "
				  "--learn-ttl-max: invalid value \"30\"") &&
			      strstr(err, "60"),
		      "err: %s", err);
	/* Both given: the maximum is named, with the minimum's value. */
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--learn-ttl-min", "100",
			      "--learn-ttl-max", "50", NULL),
			 -EINVAL);
	ck_assert_msg(strstr(err, "--learn-ttl-max: invalid value \"50\"") &&
			      strstr(err, "100"),
		      "err: %s", err);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--learn-ttl-min", "600",
			      "--learn-ttl-max", "600", NULL),
			 0);
	config_fini(&cfg);
}
END_TEST

START_TEST(test_config_upstream_errors_say_what_is_wrong)
{
	static const char *const cases[][2] = {
		{ "10.0.0.1:99999", "port" },
		{ "10.0.0.1:0", "port" },
		{ "[::1]:x", "port" },
		{ "fe80::1%eth0", "zone" },
		{ "0.0.0.0", "unspecified" },
		{ "[::]:53", "unspecified" },
		{ "[::1", "]" },
	};
	struct egressd_upstream u[EGRESSD_MAX_UPSTREAMS];
	char err[512];
	size_t i;
	int n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(config_parse_upstreams(cases[i][0], u,
							EGRESSD_MAX_UPSTREAMS,
							&n, err, sizeof(err)),
				 -EINVAL);
		ck_assert_msg(strstr(err, cases[i][0]) &&
				      strstr(err, cases[i][1]) &&
				      !strstr(err, "host names"),
			      "%s: %s", cases[i][0], err);
	}
}
END_TEST

START_TEST(test_config_listen_addr_forms)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	char err[256], txt[64];
	socklen_t len;
	bool any;

	ck_assert_int_eq(config_parse_listen_addr(":18080", &ss, &len, &any,
						  err, sizeof(err)),
			 0);
	ck_assert(any);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_int_eq(ntohs(s6->sin6_port), 18080);

	ck_assert_int_eq(config_parse_listen_addr(NULL, &ss, &len, &any, err,
						  sizeof(err)),
			 0);
	ck_assert(any);
	ck_assert_int_eq(ntohs(s6->sin6_port), 18080);

	ck_assert_int_eq(config_parse_listen_addr("127.0.0.1:8081", &ss, &len,
						  &any, err, sizeof(err)),
			 0);
	ck_assert(!any);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_int_eq(len, sizeof(*s4));
	ck_assert_int_eq(ntohs(s4->sin_port), 8081);
	inet_ntop(AF_INET, &s4->sin_addr, txt, sizeof(txt));
	ck_assert_str_eq(txt, "127.0.0.1");

	ck_assert_int_eq(config_parse_listen_addr("localhost:1", &ss, &len,
						  &any, err, sizeof(err)),
			 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);

	ck_assert_int_eq(config_parse_listen_addr("[::1]:18080", &ss, &len,
						  &any, err, sizeof(err)),
			 0);
	ck_assert(!any);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	inet_ntop(AF_INET6, &s6->sin6_addr, txt, sizeof(txt));
	ck_assert_str_eq(txt, "::1");

	ck_assert_int_eq(config_parse_listen_addr("::1:80", &ss, &len, &any,
						  err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "[addr]:port"));
	ck_assert_int_eq(config_parse_listen_addr("127.0.0.1", &ss, &len, &any,
						  err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "missing port"));
	ck_assert_int_eq(config_parse_listen_addr(":65536", &ss, &len, &any,
						  err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(config_parse_listen_addr(":", &ss, &len, &any, err,
						  sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(config_parse_listen_addr("[::1]18080", &ss, &len, &any,
						  err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(config_parse_listen_addr("example.com:80", &ss, &len,
						  &any, err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "IP address"));
}
END_TEST

/* A bad --http-addr stops egressd in the configuration step, before any
 * kernel layer is installed, naming the setting. */
START_TEST(test_config_http_addr_validated)
{
	static const char *const cases[][2] = {
		{ "bogus", "missing port" },
		{ "127.0.0.1", "missing port" },
		{ "::1:18080", "[addr]:port" },
		{ ":99999", "port" },
		{ "example.com:80", "IP address" },
	};
	struct egressd_config cfg;
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(load(&cfg, err, sizeof(err), "--http-addr",
				      cases[i][0], NULL),
				 -EINVAL);
		ck_assert_msg(strstr(err, "OPENSANDBOX_EGRESS_HTTP_ADDR / "
					  "--http-addr: invalid value") &&
				      strstr(err, cases[i][0]) &&
				      strstr(err, cases[i][1]),
			      "%s: %s", cases[i][0], err);
	}
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--http-addr",
			      "[::1]:18080", NULL),
			 0);
	config_fini(&cfg);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--http-addr", "", NULL),
			 0);
	config_fini(&cfg);
}
END_TEST

/*
 * Where the peer falls back to its default on a bad number, egressd
 * refuses to start, naming the variable (docs/api.md, "Differences"):
 * MAX_RULES=-1 most likely meant "unlimited", and a timeout of 500 s is
 * not what 120 s or 5 s would give.
 */
START_TEST(test_config_bad_numbers_in_env_stop_start)
{
	static const char *const cases[][2] = {
		{ "OPENSANDBOX_EGRESS_MAX_RULES", "-1" },
		{ "OPENSANDBOX_EGRESS_MAX_RULES", "lots" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT", "abc" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT", "500" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT", "-3" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT", "0" },
	};
	struct egressd_config cfg;
	char err[512], want[160];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv(cases[i][0], cases[i][1], 1);
		err[0] = '\0';
		ck_assert_msg(load(&cfg, err, sizeof(err), NULL) == -EINVAL,
			      "%s=%s accepted", cases[i][0], cases[i][1]);
		snprintf(want, sizeof(want), "%s / --", cases[i][0]);
		ck_assert_msg(strstr(err, want) && strstr(err, cases[i][1]),
			      "%s=%s: message \"%s\"", cases[i][0], cases[i][1],
			      err);
		unsetenv(cases[i][0]);
	}
}
END_TEST

/* OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE(_INTERVAL_SEC): the peer's
 * defaults; a value the peer would replace is a start error instead. */
START_TEST(test_config_upstream_probe_settings)
{
	static const char *const bad[][2] = {
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC", "0" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC", "-5" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC", "abc" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC",
		  "3601" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE", "a..b" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE", "bad name" },
		{ "OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE", ".lead" },
	};
	struct egressd_config cfg;
	char err[512] = "", want[160];
	size_t i;

	ck_assert_int_eq(load(&cfg, err, sizeof(err), NULL), 0);
	ck_assert_str_eq(cfg.upstream_probe, "");
	ck_assert_uint_eq(cfg.upstream_probe_interval_s, 30);
	config_fini(&cfg);

	setenv("OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE", " Health.Corp. ", 1);
	setenv("OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC", "3600", 1);
	ck_assert_msg(load(&cfg, err, sizeof(err), NULL) == 0, "%s", err);
	ck_assert_str_eq(cfg.upstream_probe, "health.corp");
	ck_assert_uint_eq(cfg.upstream_probe_interval_s, 3600);
	config_fini(&cfg);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--dns-upstream-probe",
			      ".", "--dns-upstream-probe-interval", "1", NULL),
			 0);
	ck_assert_str_eq(cfg.upstream_probe, "");
	ck_assert_uint_eq(cfg.upstream_probe_interval_s, 1);
	config_fini(&cfg);
	unsetenv("OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE");
	unsetenv("OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE_INTERVAL_SEC");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(bad[i][0], bad[i][1], 1);
		err[0] = '\0';
		ck_assert_msg(load(&cfg, err, sizeof(err), NULL) == -EINVAL,
			      "%s=%s accepted", bad[i][0], bad[i][1]);
		snprintf(want, sizeof(want), "%s / --", bad[i][0]);
		ck_assert_msg(strstr(err, want) && strstr(err, bad[i][1]),
			      "%s=%s: message \"%s\"", bad[i][0], bad[i][1],
			      err);
		unsetenv(bad[i][0]);
	}
}
END_TEST

/* A variable set to "" or blanks (a template's empty value) is unset. */
START_TEST(test_config_empty_env_is_unset)
{
	static const char *const vars[] = {
		"OPENSANDBOX_EGRESS_MAX_RULES",
		"OPENSANDBOX_EGRESS_MODE",
		"OPENSANDBOX_EGRESS_DNS_UPSTREAM_TIMEOUT",
		"OPENSANDBOX_EGRESS_LOG_LEVEL",
		"OPENSANDBOX_EGRESS_SANDBOX_ID",
	};
	struct egressd_config cfg;
	char err[512] = "";
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		setenv(vars[i], i % 2 ? "" : "  ", 1);
	ck_assert_msg(load(&cfg, err, sizeof(err), NULL) == 0, "%s", err);
	ck_assert_uint_eq(cfg.max_rules, 4096);
	ck_assert_int_eq(cfg.mode, EGRESSD_MODE_DNS);
	ck_assert_uint_eq(cfg.upstream_timeout_ms, 5000);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_INFO);
	ck_assert_ptr_null(cfg.sandbox_id);
	config_fini(&cfg);
	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	/* An option given an empty value is still an error. */
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--max-rules", "", NULL),
			 -EINVAL);
}
END_TEST

START_TEST(test_config_sandbox_id_checked)
{
	char long_id[300];
	struct egressd_config cfg;
	char err[512] = "";

	ck_assert_int_eq(
		load(&cfg, err, sizeof(err), "--sandbox-id", "sb-1", NULL), 0);
	ck_assert_str_eq(cfg.sandbox_id, "sb-1");
	config_fini(&cfg);
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--sandbox-id", "a\nb",
			      NULL),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "OPENSANDBOX_EGRESS_SANDBOX_ID"));
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--sandbox-id", "\xc3(",
			      NULL),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "UTF-8"));
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	ck_assert_int_eq(load(&cfg, err, sizeof(err), "--sandbox-id", long_id,
			      NULL),
			 -EINVAL);
}
END_TEST

/*
 * The peer's settings egressd lacks: one warning each when set, none
 * when unset, false (booleans) or what egressd does anyway.
 */
START_TEST(test_config_unsupported_settings_warn)
{
	static const char *const warned[] = {
		"OPENSANDBOX_EGRESS_NAMESERVER_EXEMPT",
		"OPENSANDBOX_EGRESS_MITMPROXY_TRANSPARENT",
		"OPENSANDBOX_EGRESS_MITMPROXY_PORT",
		"OPENSANDBOX_CREDENTIAL_PROXY_SOCKET",
		"OPENSANDBOX_EGRESS_CREDENTIAL_VAULT_REQUIRE_TLS",
		"OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OPENSANDBOX_EGRESS_METRICS_EXTRA_ATTRS",
		"OPENSANDBOX_LOG_OUTPUT",
	};
	char buf[16384], *p;
	FILE *f = tmpfile();
	size_t i, n;
	int lines = 0;

	ck_assert_ptr_nonnull(f);
	log_set_output(f);
	ck_assert_int_eq(config_warn_unsupported(NULL), 0);
	setenv("OPENSANDBOX_EGRESS_NAMESERVER_EXEMPT", "10.200.0.53", 1);
	setenv("OPENSANDBOX_EGRESS_MITMPROXY_TRANSPARENT", "true", 1);
	setenv("OPENSANDBOX_EGRESS_MITMPROXY_PORT", "18081", 1);
	setenv("OPENSANDBOX_CREDENTIAL_PROXY_SOCKET", "/run/x.sock", 1);
	setenv("OPENSANDBOX_EGRESS_CREDENTIAL_VAULT_REQUIRE_TLS", "maybe", 1);
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://10.200.0.9:4318", 1);
	setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://x:4318", 1);
	setenv("OPENSANDBOX_EGRESS_METRICS_EXTRA_ATTRS", "a=b", 1);
	setenv("OPENSANDBOX_LOG_OUTPUT", "stdout,/var/log/egress.log", 1);
	/* Nothing asked for: no line. */
	setenv("OPENSANDBOX_EGRESS_MITMPROXY_SSL_INSECURE", "false", 1);
	setenv("OPENSANDBOX_EGRESS_MITMPROXY_SCRIPT", "", 1);
	ck_assert_int_eq(config_warn_unsupported(NULL), 9);
	setenv("OPENSANDBOX_LOG_OUTPUT", " stdout ", 1);
	ck_assert_int_eq(config_warn_unsupported(NULL), 8);
	{
		/* egressd's own setting, implemented: no warning. */
		struct egressd_config cfg = { .block_private_answers = true };

		unsetenv("OPENSANDBOX_LOG_OUTPUT");
		ck_assert_int_eq(config_warn_unsupported(&cfg), 8);
	}
	log_flush();
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	for (p = buf; (p = strchr(p, '\n')); p++)
		lines++;
	ck_assert_int_eq(lines, 25);
	ck_assert_ptr_null(strstr(buf, "BLOCK_PRIVATE_ANSWERS"));
	for (i = 0; i < sizeof(warned) / sizeof(warned[0]); i++)
		ck_assert_msg(strstr(buf, warned[i]), "no warning for %s",
			      warned[i]);
	ck_assert_ptr_null(strstr(buf, "SSL_INSECURE"));
	ck_assert_ptr_null(strstr(buf, "MITMPROXY_SCRIPT"));
	ck_assert_ptr_nonnull(strstr(buf, "\"event\":\"warning\""));
	ck_assert_ptr_nonnull(strstr(buf, "unfiltered"));
	log_set_output(NULL);
	fclose(f);
	for (i = 0; i < sizeof(warned) / sizeof(warned[0]); i++)
		unsetenv(warned[i]);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("settings");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_option_beats_env);
	tcase_add_test(tc, test_config_upstream_forms);
	tcase_add_test(tc, test_config_upstream_hostname_rejected);
	tcase_add_test(tc, test_config_empty_resolv_conf_is_error);
	tcase_add_test(tc, test_config_bad_values_name_the_setting);
	tcase_add_test(tc, test_config_fractional_timeout_and_unknown_option);
	tcase_add_test(tc, test_config_ipv6_deny_refuses_v6_upstream);
	tcase_add_test(tc, test_config_short_h_is_help);
	tcase_add_test(tc, test_config_option_errors_say_what_is_wrong);
	tcase_add_test(tc, test_config_learn_ttl_blames_the_setting_given);
	tcase_add_test(tc, test_config_upstream_errors_say_what_is_wrong);
	tcase_add_test(tc, test_config_listen_addr_forms);
	tcase_add_test(tc, test_config_http_addr_validated);
	tcase_add_test(tc, test_config_bad_numbers_in_env_stop_start);
	tcase_add_test(tc, test_config_empty_env_is_unset);
	tcase_add_test(tc, test_config_upstream_probe_settings);
	tcase_add_test(tc, test_config_sandbox_id_checked);
	tcase_add_test(tc, test_config_unsupported_settings_warn);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
