/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Deny webhook (OPENSANDBOX_EGRESS_DENY_WEBHOOK): a JSON POST per denied
 * DNS name, in the OpenSandbox peer's format, sent off the hot path by
 * libcurl's multi interface driven from egressd's event loop (no threads
 * of ours; libcurl's resolver thread only for a host name). A bounded
 * queue, retries with backoff on network errors and 5xx, and counters for
 * /metrics. docs/webhook.md describes the behaviour; the pure parts
 * (payload, queue, folding, retry schedule) are exposed for unit tests.
 */
#ifndef __EGRESSD_WEBHOOK_H
#define __EGRESSD_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "egressd/loop.h"

/* Events waiting to be sent; beyond that they are dropped (and counted). */
#define WEBHOOK_QUEUE_MAX 256
/* Events being sent (or waiting for a retry) at once. */
#define WEBHOOK_PARALLEL 4
/* Per attempt, connection and answer included. */
#define WEBHOOK_TIMEOUT_MS 5000
/* Retries after the first attempt (so 4 attempts at most). */
#define WEBHOOK_RETRIES 3
/* At most one POST per name per this window (docs/webhook.md). */
#define WEBHOOK_FOLD_MS 1000
#define WEBHOOK_FOLD_SLOTS 1024

struct webhook;

struct webhook_stats {
	uint64_t sent; /* delivered: the receiver answered 2xx */
	uint64_t failed; /* given up: 4xx/3xx, or retries exhausted */
	uint64_t dropped; /* queue full */
	uint64_t folded; /* repeats of a name within WEBHOOK_FOLD_MS */
	uint64_t retries; /* attempts after the first */
};

/*
 * Start the webhook on loop: url is http:// or https://; sandbox_id may be
 * NULL (sent as ""). 0 or -errno with err saying why (bad URL, libcurl).
 */
int webhook_new(struct webhook **out, struct loop *loop, const char *url,
		const char *sandbox_id, char *err, size_t errlen);
/* Pending events are dropped; call before loop_free(). NULL is a no-op. */
void webhook_free(struct webhook *wh);

/*
 * A DNS denial of hostname (presentation form, lower case, no trailing
 * dot). Never blocks: folds, queues or drops. wh may be NULL.
 */
void webhook_dns_denied(struct webhook *wh, const char *hostname);

void webhook_get_stats(const struct webhook *wh, struct webhook_stats *st);

/*
 * Pure helpers behind it (no network; tests/check_webhook.c).
 */

/* RFC 3339 UTC with seconds, as the peer writes it: 2024-05-01T12:00:00Z. */
void webhook_timestamp(time_t t, char *buf, size_t len);

/*
 * The body {"hostname":…,"timestamp":…,"source":"opensandbox-egress",
 * "sandboxId":…} into buf (NUL-terminated). Returns its length, -ENOSPC
 * when size is too small, or -EILSEQ when a string is not valid UTF-8.
 */
int webhook_payload(char *buf, size_t size, const char *hostname,
		    const char *timestamp, const char *sandbox_id);

/* Delay before retry n (1..WEBHOOK_RETRIES): 1000, 2000, 4000 ms; else 0. */
unsigned int webhook_backoff_ms(unsigned int retry);

enum webhook_step {
	WEBHOOK_DONE = 0, /* delivered */
	WEBHOOK_RETRY = 1, /* try again after *delay_ms */
	WEBHOOK_GIVE_UP = 2,
};

/*
 * What follows attempt number attempt (1-based) that got an HTTP answer
 * with status (got_answer) or failed at the network level (timeout,
 * refused, unreachable, resolution): 2xx is done; 5xx and network errors
 * are retried while attempts remain; anything else (4xx, 3xx) is final.
 */
enum webhook_step webhook_next_step(unsigned int attempt, bool got_answer,
				    long status, unsigned int *delay_ms);

/* A FIFO of preformatted bodies with a fixed capacity. */
struct webhook_queue {
	char **v;
	size_t cap, head, n;
};

int webhook_queue_init(struct webhook_queue *q, size_t cap);
/* Frees what is still queued. */
void webhook_queue_fini(struct webhook_queue *q);
/* Takes ownership of body on success: 0, or -ENOSPC when full. */
int webhook_queue_push(struct webhook_queue *q, char *body);
/* The oldest body (the caller frees it), or NULL when empty. */
char *webhook_queue_pop(struct webhook_queue *q);

/*
 * One POST per name per WEBHOOK_FOLD_MS: a direct-mapped cache of the
 * names recently sent. A collision evicts (one POST too many, never one
 * too few).
 */
struct webhook_fold {
	struct {
		char *name;
		uint64_t last_ms;
	} slot[WEBHOOK_FOLD_SLOTS];
};

/* true: send it (and remember now); false: a repeat within the window. */
bool webhook_fold_admit(struct webhook_fold *f, const char *name,
			uint64_t now_ms);
void webhook_fold_fini(struct webhook_fold *f);

#endif /* __EGRESSD_WEBHOOK_H */
