// SPDX-License-Identifier: GPL-2.0-only
/*
 * Deny webhook: a POST of the peer's JSON body per denied DNS name, sent
 * by libcurl's multi interface driven from egressd's event loop. libcurl
 * tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION, mapped onto
 * loop_add_fd/loop_mod_fd/loop_del_fd) and when to call it back
 * (CURLMOPT_TIMERFUNCTION, one loop timer); we hand it readiness with
 * curl_multi_socket_action(). Nothing here blocks the loop: a denial only
 * formats a body and queues it.
 *
 * Up to WEBHOOK_PARALLEL events are in flight, each on its own easy
 * handle (reused, so connections are kept alive), with its own retry
 * timer; the rest wait in a queue of WEBHOOK_QUEUE_MAX. Repeats of a name
 * within WEBHOOK_FOLD_MS are folded (counted, not sent).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "egressd/config.h"
#include "egressd/log.h"
#include "egressd/selfsock.h"
#include "egressd/util.h"
#include "egressd/webhook.h"

/* Room for a body: a 1023-byte name with every byte escaped, a long id. */
#define BODY_FIXED 128
/* At most one "delivery failed" line per this many ms. */
#define FAIL_LOG_MS 10000

struct wh_slot {
	struct webhook *wh;
	CURL *easy;
	char *body;
	unsigned int attempt; /* attempts made for body */
	bool running; /* in the multi handle */
	struct loop_timer *retry;
	char errbuf[CURL_ERROR_SIZE];
};

struct webhook {
	struct loop *loop;
	CURLM *multi;
	struct loop_timer *timer; /* libcurl's timeout */
	struct curl_slist *headers;
	char *url;
	char *sandbox_id;
	struct webhook_queue queue;
	struct webhook_fold fold;
	struct wh_slot slot[WEBHOOK_PARALLEL];
	struct webhook_stats st;
	bool dropping; /* in a burst of drops */
	uint64_t burst_dropped; /* drops in the current burst */
	uint64_t fail_log_ms; /* last "delivery failed" line */
	uint64_t fail_unlogged; /* failures since that line */
	bool global_init;
};

/* ---- pure helpers ------------------------------------------------------ */

void webhook_timestamp(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int webhook_payload(char *buf, size_t size, const char *hostname,
		    const char *timestamp, const char *sandbox_id)
{
	static const char src[] = ",\"source\":\"opensandbox-egress\"";
	size_t len = 0;

#define PUT(s, n)                                \
	do {                                     \
		if (len + (n) <= size)           \
			memcpy(buf + len, s, n); \
		len += (n);                      \
	} while (0)
#define LIT(lit) PUT(lit, sizeof(lit) - 1)
	LIT("{\"hostname\":");
	if (log_json_str(buf, size, &len, hostname))
		return -EILSEQ;
	LIT(",\"timestamp\":");
	if (log_json_str(buf, size, &len, timestamp))
		return -EILSEQ;
	LIT(src);
	LIT(",\"sandboxId\":");
	if (log_json_str(buf, size, &len, sandbox_id ? sandbox_id : ""))
		return -EILSEQ;
	LIT("}");
#undef LIT
#undef PUT
	if (len >= size)
		return -ENOSPC;
	buf[len] = '\0';
	return (int)len;
}

unsigned int webhook_backoff_ms(unsigned int retry)
{
	if (retry < 1 || retry > WEBHOOK_RETRIES)
		return 0;
	return 1000u << (retry - 1);
}

enum webhook_step webhook_next_step(unsigned int attempt, bool got_answer,
				    long status, unsigned int *delay_ms)
{
	*delay_ms = 0;
	if (got_answer && status >= 200 && status < 300)
		return WEBHOOK_DONE;
	if (got_answer && (status < 500 || status > 599))
		return WEBHOOK_GIVE_UP;
	if (attempt < 1 || attempt > WEBHOOK_RETRIES)
		return WEBHOOK_GIVE_UP;
	*delay_ms = webhook_backoff_ms(attempt);
	return WEBHOOK_RETRY;
}

int webhook_queue_init(struct webhook_queue *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	if (!cap)
		return -EINVAL;
	q->v = calloc(cap, sizeof(*q->v));
	if (!q->v)
		return -ENOMEM;
	q->cap = cap;
	return 0;
}

void webhook_queue_fini(struct webhook_queue *q)
{
	char *b;

	if (!q->v)
		return;
	while ((b = webhook_queue_pop(q)))
		free(b);
	free(q->v);
	memset(q, 0, sizeof(*q));
}

int webhook_queue_push(struct webhook_queue *q, char *body)
{
	if (q->n == q->cap)
		return -ENOSPC;
	q->v[(q->head + q->n) % q->cap] = body;
	q->n++;
	return 0;
}

char *webhook_queue_pop(struct webhook_queue *q)
{
	char *b;

	if (!q->n)
		return NULL;
	b = q->v[q->head];
	q->v[q->head] = NULL;
	q->head = (q->head + 1) % q->cap;
	q->n--;
	return b;
}

bool webhook_fold_admit(struct webhook_fold *f, const char *name,
			uint64_t now_ms)
{
	size_t i = util_fnv1a(UTIL_FNV1A_INIT, name, strlen(name)) %
		   WEBHOOK_FOLD_SLOTS;
	char *copy;

	if (f->slot[i].name && !strcmp(f->slot[i].name, name)) {
		if (now_ms - f->slot[i].last_ms < WEBHOOK_FOLD_MS)
			return false;
		f->slot[i].last_ms = now_ms;
		return true;
	}
	/* Remember it if we can; without memory it is simply not folded. */
	copy = strdup(name);
	if (copy) {
		free(f->slot[i].name);
		f->slot[i].name = copy;
		f->slot[i].last_ms = now_ms;
	}
	return true;
}

void webhook_fold_fini(struct webhook_fold *f)
{
	size_t i;

	for (i = 0; i < WEBHOOK_FOLD_SLOTS; i++) {
		free(f->slot[i].name);
		f->slot[i].name = NULL;
	}
}

/* ---- sending ------------------------------------------------------------ */

static void wh_process(struct webhook *wh);
static void wh_pump(struct webhook *wh);

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

static void slot_release(struct wh_slot *s)
{
	free(s->body);
	s->body = NULL;
	s->attempt = 0;
}

static void wh_failed(struct webhook *wh, struct wh_slot *s, const char *why)
{
	uint64_t now = util_clock_ms();

	wh->st.failed++;
	if (wh->fail_log_ms && now - wh->fail_log_ms < FAIL_LOG_MS) {
		wh->fail_unlogged++;
		return;
	}
	if (wh->fail_unlogged)
		log_warnx(
			"deny webhook: delivery failed after %u attempt(s): %s (%llu more failures not logged in the last %d s)",
			s->attempt, why, (unsigned long long)wh->fail_unlogged,
			FAIL_LOG_MS / 1000);
	else
		log_warnx(
			"deny webhook: delivery failed after %u attempt(s): %s",
			s->attempt, why);
	wh->fail_log_ms = now;
	wh->fail_unlogged = 0;
}

/* Start (or restart) an attempt for the slot's body. */
static void slot_start(struct wh_slot *s)
{
	struct webhook *wh = s->wh;
	CURLMcode mc;

	s->errbuf[0] = '\0';
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
	mc = curl_multi_add_handle(wh->multi, s->easy);
	if (mc != CURLM_OK) {
		s->attempt++;
		wh_failed(wh, s, curl_multi_strerror(mc));
		slot_release(s);
		return;
	}
	s->running = true;
}

static void retry_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct wh_slot *s = arg;

	if (!s->body)
		return;
	s->wh->st.retries++;
	slot_start(s);
	wh_pump(s->wh);
}

/* An attempt is over: done, retry later or give up. */
static void slot_done(struct wh_slot *s, CURLcode res)
{
	struct webhook *wh = s->wh;
	unsigned int delay;
	long status = 0;
	char why[CURL_ERROR_SIZE + 64];

	curl_multi_remove_handle(wh->multi, s->easy);
	s->running = false;
	s->attempt++;
	if (res == CURLE_OK)
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	switch (webhook_next_step(s->attempt, res == CURLE_OK, status,
				  &delay)) {
	case WEBHOOK_DONE:
		wh->st.sent++;
		slot_release(s);
		break;
	case WEBHOOK_RETRY:
		loop_timer_arm(s->retry, delay);
		break;
	case WEBHOOK_GIVE_UP:
		if (res == CURLE_OK)
			snprintf(why, sizeof(why), "HTTP %ld", status);
		else
			snprintf(why, sizeof(why), "%s",
				 s->errbuf[0] ? s->errbuf :
						curl_easy_strerror(res));
		wh_failed(wh, s, why);
		slot_release(s);
		break;
	}
}

/* Finished transfers, then fill free slots from the queue. */
static void wh_process(struct webhook *wh)
{
	struct wh_slot *s;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(wh->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		s = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &s);
		if (s)
			slot_done(s, msg->data.result);
	}
	wh_pump(wh);
}

static void wh_pump(struct webhook *wh)
{
	int i;

	for (i = 0; i < WEBHOOK_PARALLEL && wh->queue.n; i++) {
		struct wh_slot *s = &wh->slot[i];

		if (s->body)
			continue;
		s->body = webhook_queue_pop(&wh->queue);
		s->attempt = 0;
		slot_start(s);
	}
}

static void sock_ready(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct webhook *wh = arg;
	int flags = 0, running;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(wh->multi, fd, flags, &running);
	wh_process(wh);
}

static void timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct webhook *wh = arg;
	int running;

	curl_multi_socket_action(wh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	wh_process(wh);
}

/* libcurl: watch s for what (CURLMOPT_SOCKETFUNCTION). */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	struct webhook *wh = userp;
	uint32_t ev = 0;
	int ret;

	if (what == CURL_POLL_REMOVE) {
		if (socketp) {
			loop_del_fd(wh->loop, s);
			curl_multi_assign(wh->multi, s, NULL);
		}
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= EPOLLOUT;
	if (socketp)
		ret = loop_mod_fd(wh->loop, s, ev);
	else
		ret = loop_add_fd(wh->loop, s, ev, sock_ready, wh);
	if (ret) {
		log_warnx("deny webhook: cannot watch socket %d: %s", (int)s,
			  strerror(-ret));
		return -1; /* libcurl fails that transfer */
	}
	if (!socketp)
		curl_multi_assign(wh->multi, s, wh);
	return 0;
}

/* libcurl: call back in timeout_ms (CURLMOPT_TIMERFUNCTION). */
static int timerfn_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct webhook *wh = userp;

	if (timeout_ms < 0)
		loop_timer_disarm(wh->timer);
	else
		loop_timer_arm(wh->timer, (uint64_t)timeout_ms);
	return 0;
}

void webhook_dns_denied(struct webhook *wh, const char *hostname)
{
	char ts[32], *body;
	size_t size;
	int len;

	if (!wh || !hostname)
		return;
	if (!webhook_fold_admit(&wh->fold, hostname, util_clock_ms())) {
		wh->st.folded++;
		return;
	}
	if (wh->queue.n == wh->queue.cap) {
		wh->st.dropped++;
		wh->burst_dropped++;
		if (!wh->dropping)
			log_warnx(
				"deny webhook: queue full (%d events waiting): dropping denial events until it drains",
				WEBHOOK_QUEUE_MAX);
		wh->dropping = true;
		return;
	}
	if (wh->dropping) {
		log_warnx(
			"deny webhook: queue has room again; %llu denial events were dropped",
			(unsigned long long)wh->burst_dropped);
		wh->dropping = false;
		wh->burst_dropped = 0;
	}
	webhook_timestamp(time(NULL), ts, sizeof(ts));
	size = BODY_FIXED + 6 * (strlen(hostname) + strlen(wh->sandbox_id));
	body = malloc(size);
	if (!body) {
		wh->st.dropped++;
		return;
	}
	len = webhook_payload(body, size, hostname, ts, wh->sandbox_id);
	if (len < 0) {
		/* Not valid UTF-8: the peer's JSON encoder would not send it
		 * either (names here are escaped ASCII, so never). */
		free(body);
		wh->st.dropped++;
		return;
	}
	webhook_queue_push(&wh->queue, body);
	wh_pump(wh);
}

void webhook_get_stats(const struct webhook *wh, struct webhook_stats *st)
{
	if (!wh) {
		memset(st, 0, sizeof(*st));
		return;
	}
	*st = wh->st;
}

static bool url_ok(const char *url, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	bool ok = false;

	if (!u) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen,
			 "OPENSANDBOX_EGRESS_DENY_WEBHOOK: \"%s\" is not a URL",
			 url);
	} else if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) {
		snprintf(
			err, errlen,
			"OPENSANDBOX_EGRESS_DENY_WEBHOOK: \"%s\": only http:// and https:// URLs",
			url);
	} else {
		ok = true;
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/*
 * curl's sockets are egressd's own: noted before curl connects them, so
 * the BPF programs exempt the webhook call by socket (not by cgroup).
 */
static curl_socket_t open_sock(void *arg, curlsocktype purpose,
			       struct curl_sockaddr *a)
{
	int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);

	if (fd >= 0)
		selfsock_note(fd);
	return fd >= 0 ? fd : CURL_SOCKET_BAD;
}

static int close_sock(void *arg, curl_socket_t fd)
{
	return selfsock_close(fd);
}

static int slot_init(struct webhook *wh, struct wh_slot *s)
{
	CURL *e;

	s->wh = wh;
	s->retry = loop_timer_new(wh->loop, retry_cb, s);
	e = curl_easy_init();
	s->easy = e;
	if (!s->retry || !e)
		return -ENOMEM;
	if (curl_easy_setopt(e, CURLOPT_URL, wh->url) ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") ||
	    curl_easy_setopt(e, CURLOPT_POST, 1L) ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, wh->headers) ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)WEBHOOK_TIMEOUT_MS) ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb) ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf) ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT,
			     "egressd/" EGRESSD_VERSION) ||
	    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_sock) ||
	    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_sock) ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, s))
		return -EINVAL;
	return 0;
}

int webhook_new(struct webhook **out, struct loop *loop, const char *url,
		const char *sandbox_id, char *err, size_t errlen)
{
	struct webhook *wh;
	int i, ret = -ENOMEM;

	*out = NULL;
	if (!url_ok(url, err, errlen))
		return -EINVAL;
	wh = calloc(1, sizeof(*wh));
	if (!wh)
		goto oom;
	wh->loop = loop;
	/* Single-threaded here: curl_global_init is not thread-safe. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		snprintf(err, errlen,
			 "deny webhook: libcurl initialisation failed");
		free(wh);
		return -EIO;
	}
	wh->global_init = true;
	wh->url = strdup(url);
	wh->sandbox_id = strdup(sandbox_id ? sandbox_id : "");
	wh->multi = curl_multi_init();
	wh->timer = loop_timer_new(loop, timer_cb, wh);
	wh->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (wh->headers)
		wh->headers = curl_slist_append(wh->headers, "Expect:");
	if (!wh->url || !wh->sandbox_id || !wh->multi || !wh->timer ||
	    !wh->headers || webhook_queue_init(&wh->queue, WEBHOOK_QUEUE_MAX))
		goto oom;
	curl_multi_setopt(wh->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(wh->multi, CURLMOPT_SOCKETDATA, wh);
	curl_multi_setopt(wh->multi, CURLMOPT_TIMERFUNCTION, timerfn_cb);
	curl_multi_setopt(wh->multi, CURLMOPT_TIMERDATA, wh);
	for (i = 0; i < WEBHOOK_PARALLEL; i++) {
		ret = slot_init(wh, &wh->slot[i]);
		if (ret)
			break;
	}
	if (ret) {
		snprintf(err, errlen, "deny webhook: cannot set up libcurl: %s",
			 strerror(-ret));
		webhook_free(wh);
		return ret;
	}
	*out = wh;
	return 0;
oom:
	snprintf(err, errlen, "deny webhook: out of memory");
	webhook_free(wh);
	return -ENOMEM;
}

void webhook_free(struct webhook *wh)
{
	int i;

	if (!wh)
		return;
	for (i = 0; i < WEBHOOK_PARALLEL; i++) {
		struct wh_slot *s = &wh->slot[i];

		if (s->running)
			curl_multi_remove_handle(wh->multi, s->easy);
		if (s->easy)
			curl_easy_cleanup(s->easy);
		loop_timer_free(s->retry);
		free(s->body);
	}
	if (wh->multi)
		curl_multi_cleanup(wh->multi);
	loop_timer_free(wh->timer);
	curl_slist_free_all(wh->headers);
	webhook_queue_fini(&wh->queue);
	webhook_fold_fini(&wh->fold);
	free(wh->url);
	free(wh->sandbox_id);
	if (wh->global_init)
		curl_global_cleanup();
	free(wh);
}
