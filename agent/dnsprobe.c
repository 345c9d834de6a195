// SPDX-License-Identifier: GPL-2.0-only
/*
 * The DNS proxy's upstreams: their health. Healthy upstreams are tried
 * first, each group in configuration order. Every upstream is probed at
 * start and every probe interval, as the peer does (its
 * OPENSANDBOX_EGRESS_DNS_UPSTREAM_PROBE*; the probe question is ". NS"
 * or "NAME A"); an unhealthy one also every DP_PROBE_MS until it
 * answers. Any answer proves an upstream alive. A failed probe moves the
 * queries waiting on that upstream on (those with a next upstream to go
 * to); a refusal at the transport moves all of them on at once. All of
 * it on the event loop: a query never waits for a probe.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsproxy_int.h"
#include "egressd/log.h"

#define DP_PROBE_MS 5000 /* re-probe unhealthy upstreams */

/* Healthy upstreams first, each group in configuration order. */
void dp_compute_order(struct dnsproxy *p)
{
	int n = 0;

	for (int i = 0; i < p->n_ups; i++)
		if (p->ups[i].healthy)
			p->order[n++] = (uint8_t)i;
	for (int i = 0; i < p->n_ups; i++)
		if (!p->ups[i].healthy)
			p->order[n++] = (uint8_t)i;
}

/* Log once per transition; why is NULL for a timeout. */
void dp_up_mark(struct dp_upstream *up, bool healthy, const char *why)
{
	struct dnsproxy *p = up->p;

	if (up->healthy == healthy)
		return;
	up->healthy = healthy;
	dp_compute_order(p);
	if (healthy) {
		log_info("dns upstream %s answering again", up->cfg.text);
		return;
	}
	if (why)
		log_warnx("dns upstream %s unusable: %s; trying it last "
			  "until it answers",
			  up->cfg.text, why);
	else
		log_warnx("dns upstream %s not answering (no reply within "
			  "%u ms); trying it last until it answers again",
			  up->cfg.text, p->timeout_ms);
	if (!loop_timer_is_armed(p->probe))
		loop_timer_arm(p->probe, DP_PROBE_MS);
}

/*
 * An answer came from up: it is alive. A pending probe is settled as
 * answered: any answer is as good a proof of life as the probe's own.
 * The probe's id stays taken until its own answer or its timeout
 * (dp_probe_answer, dp_probe_tmo_cb), so that answer is still known for
 * the probe's, never counted as late or forged.
 */
void dp_up_alive(struct dp_upstream *up)
{
	if (up->probe_pending)
		dp_probe_done(up, true, NULL);
	else
		dp_up_mark(up, true, NULL);
}

/* ---- health probes ---------------------------------------------------- */

/*
 * Move the queries waiting on up to their next upstream now, instead of
 * letting each wait out its timeout. all: every one of them (the
 * upstream refused: nothing listens); else only those that have a next
 * upstream to go to (a probe went unanswered: likely dead, but the last
 * chance of a query is not cut short on a guess).
 */
static void dp_up_abandon(struct dnsproxy *p, struct dp_upstream *up, bool all)
{
	struct dp_query *s, *next;

	/* Send what is queued first: a query in up's batch that moves on
	 * must not go out again under its next upstream's id. */
	if (up->ntx)
		dp_up_flush(p, up);
	for (s = p->fifo_head; s; s = next) {
		next = s->next;
		if (s->state != DP_Q_UDP || s->order[s->attempt] != up->idx)
			continue;
		if (!all && s->attempt + 1 >= s->n_order)
			continue;
		s->send_failed = false;
		dp_next(p, s);
	}
}

/* An ICMP error (e) for up: fail over at once, do not wait it out. */
void dp_up_refused(struct dnsproxy *p, struct dp_upstream *up, int e)
{
	up->errors++;
	if (up->probe_pending) {
		dp_probe_done(up, false, strerror(e));
	} else {
		dp_up_mark(up, false, strerror(e));
	}
	dp_up_abandon(p, up, true);
}

/*
 * A round (every upstream probed, at start and every interval) is over:
 * the peer's warning when nothing answered. Forwarding still tries every
 * upstream then, in the configured order.
 */
static void dp_round_account(struct dnsproxy *p, bool ok)
{
	if (ok)
		p->round_ok++;
	if (--p->round_left > 0)
		return;
	if (!p->round_ok)
		log_warnx("[dns] all upstream probes failed; using full "
			  "upstream list for forwarding");
}

/*
 * The pending probe of up was answered (ok) or failed (why). A failed
 * probe of a round logs the peer's line ("[dns] upstream probe ADDR
 * failed: …") and marks the upstream unhealthy (tried last); queries
 * waiting on it move on if they can. A failed probe's id is free again;
 * an answered one's only once its own answer or timeout is in.
 */
void dp_probe_done(struct dp_upstream *up, bool ok, const char *why)
{
	struct dnsproxy *p = up->p;
	bool round = up->probe_round;

	up->probe_pending = false;
	up->probe_round = false;
	if (ok) {
		up->probe_answers++;
		dp_up_mark(up, true, NULL);
	} else {
		char buf[160];

		dp_probe_id_release(up);
		up->probe_failures++;
		if (round)
			log_errorx("[dns] upstream probe %s failed: %s",
				   up->cfg.text, why);
		snprintf(buf, sizeof(buf), "health probe failed: %s", why);
		dp_up_mark(up, false, buf);
		dp_up_abandon(p, up, false);
	}
	if (round)
		dp_round_account(p, ok);
}

/* Send up the probe question; a failure to send fails the probe. */
static void dp_probe_send(struct dnsproxy *p, struct dp_upstream *up,
			  bool round)
{
	int rc, tries = 0;

	if (up->probe_pending) {
		/* Already asked (the unhealthy re-probe): it counts. */
		up->probe_round |= round;
		return;
	}
	up->probe_pending = true;
	up->probe_round = round;
	up->probes++;
	if (up->fd < 0) {
		rc = dp_up_open(up);
		if (rc < 0) {
			dp_probe_done(up, false, strerror(-rc));
			return;
		}
	}
	/* The last probe's id may still wait for its answer (an ordinary
	 * answer settled it): the same question under the same id, so
	 * either answer is this probe's. */
	if (!dp_probe_id_held(up)) {
		rc = dp_id_pick(p, up);
		if (rc < 0) {
			dp_probe_done(up, false, strerror(-rc));
			return;
		}
		up->probe_id = (uint16_t)rc;
		up->idmap[rc] = DP_ID_PROBE;
	}
	dnswire_set_id(p->probe_msg, up->probe_id);
	/* A pending ICMP error is an earlier datagram's: once more (a
	 * forged one proves nothing either, dp_up_send_error). */
	do {
		rc = send(up->fd, p->probe_msg, p->probe_len, 0) < 0 ? errno :
								       0;
	} while (rc && tries++ < DP_SEND_TRIES &&
		 dp_up_send_error(p, up, rc, false));
	if (rc) {
		up->errors++;
		dp_probe_done(up, false, strerror(rc));
		return;
	}
	up->probe_sent = loop_now_ms(p->loop);
	if (!loop_timer_is_armed(p->probe_tmo))
		loop_timer_arm(p->probe_tmo, p->probe_timeout_ms);
}

/*
 * Probes with no answer by their deadline fail ("i/o timeout"); the ids
 * of those an ordinary answer settled are free again: an answer now is
 * late.
 */
void dp_probe_tmo_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;
	uint64_t now = loop_now_ms(loop), next = 0;
	char why[64];

	snprintf(why, sizeof(why), "i/o timeout (no answer within %u ms)",
		 p->probe_timeout_ms);
	for (int i = 0; i < p->n_ups; i++) {
		struct dp_upstream *up = &p->ups[i];

		if (!up->probe_pending && !dp_probe_id_held(up))
			continue;
		if (now - up->probe_sent < p->probe_timeout_ms) {
			if (!next ||
			    up->probe_sent + p->probe_timeout_ms < next)
				next = up->probe_sent + p->probe_timeout_ms;
			continue;
		}
		if (up->fd >= 0)
			dp_up_read(p, up, true); /* an answer may be queued */
		if (up->probe_pending)
			dp_probe_done(up, false, why);
		else
			dp_probe_id_release(up);
	}
	if (next)
		loop_timer_arm(t, next > now ? next - now : 1);
	dp_flush(p);
}

/*
 * Every DP_PROBE_MS while an upstream is unhealthy, probe it again (no
 * log line per failure); any answer marks it healthy. Without this an
 * upstream tried last would wait a whole round to recover.
 */
void dp_probe_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;
	bool again = false;

	for (int i = 0; i < p->n_ups; i++) {
		if (p->ups[i].healthy)
			continue;
		again = true;
		dp_probe_send(p, &p->ups[i], false);
	}
	if (again)
		loop_timer_arm(t, DP_PROBE_MS);
	dp_flush(p);
}

/*
 * A round, as the peer's: at start and every probe interval, every
 * upstream is asked the probe question; those that do not answer are
 * tried last until they do. Goes through the loop like everything else:
 * a query never waits for a probe.
 */
void dp_round_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	struct dnsproxy *p = arg;

	if (p->round_left <= 0) {
		/* The previous round is over (an upstream answers late at
		 * worst after its timeout, always below the interval). */
		p->round_left = p->n_ups;
		p->round_ok = 0;
		for (int i = 0; i < p->n_ups; i++)
			dp_probe_send(p, &p->ups[i], true);
	}
	loop_timer_arm(t, p->probe_interval_ms);
	dp_flush(p);
}

/*
 * The probe question, as the peer's: ". NS" for "" (the root: any
 * resolver answers it without going out), else "NAME A"; RD set.
 */
int dp_build_probe(struct dnsproxy *p, const char *name)
{
	uint8_t *b = p->probe_msg;
	size_t n = DNSWIRE_HDR_LEN, nl = strlen(name);
	uint16_t qtype = nl ? DNSWIRE_TYPE_A : DNSWIRE_TYPE_NS;

	if (nl > 253)
		return -EINVAL;
	memset(b, 0, DNSWIRE_HDR_LEN);
	b[2] = 0x01; /* RD */
	b[5] = 1;
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		if (!l || l > 63)
			return -EINVAL;
		b[n++] = (uint8_t)l;
		memcpy(b + n, name, l);
		n += l;
		name += l + (dot ? 1 : 0);
	}
	b[n++] = 0;
	b[n++] = 0;
	b[n++] = (uint8_t)qtype;
	b[n++] = 0;
	b[n++] = 1; /* IN */
	p->probe_len = n;
	return dnswire_parse_query(b, n, &p->probe_q) < 0 ? -EINVAL : 0;
}
