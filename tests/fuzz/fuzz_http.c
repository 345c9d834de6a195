// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for the HTTP request path (agent/api.c, apiroutes.c,
 * apiedit.c): the input is the bytes a client sends on one connection
 * (request line, headers, body, maybe several requests). The real API is
 * started once, as api_new() starts it in egressd: libmicrohttpd on a
 * loopback port, driven by egressd's event loop. Each input is written to a
 * new connection to it and the write side is shut; the loop runs until the
 * server closes or, having answered, goes quiet. So what is fuzzed is
 * egressd's own handling behind libmicrohttpd's parser: routing, auth, body
 * collection and limits, the POST/PATCH/DELETE parsers and merges, and the
 * answers.
 *
 * libmicrohttpd 0.9.75 does not finish a request whose client shut its
 * write side until some other event makes it run again, and then keeps
 * the connection open (until its 30 s timeout). So while waiting, every
 * loop iteration opens and resets a throwaway connection (a "poke"),
 * which runs it; the input is over at EOF or after a few pokes in a row
 * that brought no new bytes, and the connection is then reset.
 *
 * The ops are fakes that keep a policy (reset to the same one before each
 * input, so runs replay). Besides memory safety (ASan, UBSan) it checks:
 * a policy handed to replace never has more rules than the limit and
 * renders to JSON that parses back; the first answer is an HTTP status
 * line; 500 only when the fake replace failed on purpose; every input
 * is done with within a few seconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TOKEN "fuzz-token"
#define FUZZ_MAX_RULES 8
#define FUZZ_RESP_MAX 65536
#define FUZZ_DEADLINE_MS 5000
#define FUZZ_QUIET_POKES 3
/* Longer inputs are cut (libFuzzer makes 4 KiB ones unless -max_len). */
#define FUZZ_INPUT_MAX (256 * 1024)

static const char fuzz_start_policy[] =
	"{\"defaultAction\":\"deny\",\"egress\":["
	"{\"action\":\"allow\",\"target\":\"*.example.com\"},"
	"{\"action\":\"deny\",\"target\":\"api.example.com\"},"
	"{\"action\":\"allow\",\"target\":\"10.0.0.0/8\"}]}";

struct fuzz_state {
	struct loop *loop;
	struct api *api;
	struct loop_timer *deadline;
	struct policy *policy;
	bool ready;
	bool replace_failed; /* a 500 is expected */
	bool timed_out;
	const uint8_t *data; /* the input, sent from the loop */
	size_t size, sent;
	bool shut; /* all sent, write side shut */
	bool eof; /* the server closed */
	int quiet; /* pokes in a row without a new byte */
	size_t seen_len;
	char resp[FUZZ_RESP_MAX];
	size_t resp_len;
};

static struct fuzz_state fs;

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_http: invariant broken: %s\n", what);
	abort();
}

static bool fake_ready(void *arg)
{
	return fs.ready;
}

static const struct policy *fake_policy(void *arg)
{
	return fs.policy;
}

static const char *fake_emode(void *arg)
{
	return "dns+nft";
}

/* Every policy the API hands over must be one egressd could apply. */
static void check_policy(const struct policy *p)
{
	struct policy *back = NULL;
	char err[256], *s;
	json_t *j;

	if (p->n_rules > FUZZ_MAX_RULES)
		fuzz_fail("replace got more rules than the limit");
	j = policy_to_json(p);
	if (!j)
		return; /* ENOMEM */
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return;
	if (policy_parse_json(s, strlen(s), FUZZ_MAX_RULES, &back, err,
			      sizeof(err)))
		fuzz_fail("replaced policy does not parse back");
	if (back->n_rules != p->n_rules ||
	    back->default_action != p->default_action)
		fuzz_fail("replaced policy changes on the way back");
	policy_free(back);
	free(s);
}

/* Names that make the fake fail, to reach the error answers. */
static int fake_replace(void *arg, struct policy *p, char *err, size_t errlen)
{
	size_t i;

	check_policy(p);
	for (i = 0; i < p->n_rules; i++) {
		if (!strcmp(p->rules[i].name, "reject.invalid")) {
			snprintf(err, errlen, "refused by the fake");
			return -EINVAL;
		}
		if (!strcmp(p->rules[i].name, "toobig.invalid"))
			return -E2BIG;
		if (!strcmp(p->rules[i].name, "fail.invalid")) {
			fs.replace_failed = true;
			return -EIO;
		}
	}
	policy_free(fs.policy);
	fs.policy = p;
	return 0;
}

static json_t *fake_status(void *arg)
{
	return json_pack("{s:s}", "version", "fuzz");
}

static int fake_metrics(void *arg, struct api_buf *out)
{
	return api_buf_printf(out, "egressd_build_info{version=\"fuzz\"} 1\n");
}

static void reset_policy(void)
{
	char err[256];

	policy_free(fs.policy);
	fs.policy = NULL;
	if (policy_parse_json(fuzz_start_policy, strlen(fuzz_start_policy), 0,
			      &fs.policy, err, sizeof(err)))
		fuzz_fail("start policy");
}

static void on_deadline(struct loop *loop, struct loop_timer *t, void *arg)
{
	fs.timed_out = true;
	loop_stop(loop);
}

/* Send the input as the socket takes it, then shut the write side. */
static void send_more(struct loop *loop, int fd)
{
	ssize_t n;

	while (fs.sent < fs.size) {
		n = send(fd, fs.data + fs.sent, fs.size - fs.sent,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0)
			break; /* the server closed early: fine */
		fs.sent += (size_t)n;
	}
	fs.sent = fs.size;
	fs.shut = true;
	shutdown(fd, SHUT_WR);
	loop_mod_fd(loop, fd, EPOLLIN);
}

/* Collect the answer until the server closes. */
static void on_client(struct loop *loop, int fd, uint32_t events, void *arg)
{
	char buf[4096];
	ssize_t n;

	if (!fs.shut)
		send_more(loop, fd);
	for (;;) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			size_t room = sizeof(fs.resp) - fs.resp_len;
			size_t k = (size_t)n < room ? (size_t)n : room;

			memcpy(fs.resp + fs.resp_len, buf, k);
			fs.resp_len += k;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* EOF, or ECONNRESET: the server is done with us. */
		fs.eof = true;
		loop_del_fd(loop, fd);
		loop_stop(loop);
		return;
	}
}

static int connect_api(void);

/* Close with a reset: no TIME_WAIT left behind, whatever the rate. */
static void close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/*
 * Before each sleep while waiting for the answer: end the input when the
 * server has gone quiet, else poke it (see the top of the file).
 */
static void before_sleep(struct loop *loop, void *arg)
{
	if (!fs.shut || fs.eof)
		return;
	if (fs.resp_len != fs.seen_len) {
		fs.seen_len = fs.resp_len;
		fs.quiet = 0;
	} else if (++fs.quiet > FUZZ_QUIET_POKES) {
		loop_stop(loop);
		return;
	}
	close_reset(connect_api());
}

static void fuzz_init(void)
{
	static const struct api_ops ops = {
		.ready = fake_ready,
		.policy = fake_policy,
		.enforcement_mode = fake_emode,
		.replace = fake_replace,
		.status = fake_status,
		.metrics = fake_metrics,
	};
	FILE *null;
	char err[256];

	/* Log lines are formatted as in egressd, then thrown away. */
	null = fopen("/dev/null", "we");
	if (!null)
		fuzz_fail("/dev/null");
	log_set_output(null);
	if (loop_new(&fs.loop) || log_attach_loop(fs.loop))
		fuzz_fail("loop");
	reset_policy();
	if (api_new(&fs.api, fs.loop, "127.0.0.1:0", FUZZ_TOKEN, FUZZ_MAX_RULES,
		    &ops, err, sizeof(err))) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		abort();
	}
	fs.deadline = loop_timer_new(fs.loop, on_deadline, NULL);
	if (!fs.deadline || loop_add_before_sleep(fs.loop, before_sleep, NULL))
		fuzz_fail("timer");
}

static int connect_api(void)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)api_port(fs.api)),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fuzz_fail("socket");
	/* Loopback: connect completes without the server's help. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("fuzz_http: connect");
		abort();
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void check_answer(void)
{
	const char *r = fs.resp;
	int status;

	if (!fs.resp_len)
		return; /* closed on a request that never completed */
	if (fs.resp_len < 12 ||
	    (strncmp(r, "HTTP/1.1 ", 9) && strncmp(r, "HTTP/1.0 ", 9)))
		fuzz_fail("answer is not an HTTP status line");
	status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
	if (status < 100 || status > 599)
		fuzz_fail("status code");
	if (status == 500 && !fs.replace_failed)
		fuzz_fail("500 without a failing replace");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd;

	if (!fs.loop)
		fuzz_init();
	reset_policy();
	fs.ready = size % 7 != 0;
	fs.replace_failed = false;
	fs.timed_out = false;
	fs.resp_len = 0;
	if (size > FUZZ_INPUT_MAX)
		size = FUZZ_INPUT_MAX;

	fs.data = data;
	fs.size = size;
	fs.sent = 0;
	fd = connect_api();
	fs.shut = false;
	fs.eof = false;
	fs.quiet = 0;
	fs.seen_len = 0;
	if (loop_add_fd(fs.loop, fd, EPOLLIN | EPOLLOUT, on_client, NULL))
		fuzz_fail("loop_add_fd");
	loop_timer_arm(fs.deadline, FUZZ_DEADLINE_MS);
	if (loop_run(fs.loop))
		fuzz_fail("loop_run");
	loop_timer_disarm(fs.deadline);
	/* FUZZ_HTTP_SHOW=1 prints the answers (checking the seeds). */
	if (getenv("FUZZ_HTTP_SHOW"))
		fprintf(stderr, "%.*s\n----\n", (int)fs.resp_len, fs.resp);
	if (fs.timed_out)
		fuzz_fail("input not done with within the deadline");
	if (!fs.eof)
		loop_del_fd(fs.loop, fd);
	close_reset(fd);
	check_answer();
	return 0;
}
