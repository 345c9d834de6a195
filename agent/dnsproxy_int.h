/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The DNS proxy's insides, shared by its files and by nothing else:
 * dnsproxy.c (core: slots, replies, UDP listeners, set-up), dnsupstream.c
 * (forwarding, upstream answers, TCP retries, timeouts), dnsicmp.c (ICMP
 * errors for an upstream, judged by their sender), dnsprobe.c (health
 * and probe rounds), dnstcp.c (the TCP server) and dnsdecide.c (what a
 * query and an answer get). Other modules use include/egressd/dnsproxy.h. dp_ is the module's
 * private prefix: these symbols are not an interface, and everything here
 * runs on the one event loop (no locking anywhere).
 */
#ifndef __EGRESSD_DNSPROXY_INT_H
#define __EGRESSD_DNSPROXY_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "egressd/dnsguard.h"
#include "egressd/dnsproxy.h"
#include "egressd/dnswire.h"
#include "egressd/loop.h"

#define DP_BATCH 64 /* datagrams per recvmmsg/sendmmsg */
#define DP_UDP_BUF 4096 /* per-datagram receive buffer */
#define DP_REPLY_BUF 512 /* replies we build: header+question+OPT */
#define DP_MAX_INFLIGHT 8192 /* ids per upstream stay sparse (1/8) */
#define DP_MAX_CONNS 256 /* TCP client connections */
#define DP_RAND_N 2048 /* ids and 0x20 bits: 9 draws a query */
#define DP_MAX_LISTENERS 4
/* idmap value of the id the upstream's health probe went out with (slot
 * indices stay below DP_MAX_INFLIGHT) */
#define DP_ID_PROBE 0xffff
_Static_assert(DP_MAX_INFLIGHT < DP_ID_PROBE, "idmap: probe sentinel");

enum dp_qstate {
	DP_Q_FREE = 0,
	DP_Q_UDP = 1, /* waiting for a UDP answer from order[attempt] */
	DP_Q_TCP = 2, /* TCP retry to order[attempt] after a TC answer */
	DP_Q_WAIT = 3, /* coalesced: waits for the answer of s->lead */
};

/* Where a reply goes: a UDP peer of a listener, or a TCP connection. */
struct dp_client {
	bool tcp;
	uint8_t listener;
	const struct sockaddr_storage *addr;
	socklen_t addrlen;
	uint16_t conn;
	uint32_t gen;
};

/* One in-flight query. Lives in p->slots[idx] until answered or failed. */
struct dp_query {
	struct dp_query *prev, *next; /* timeout FIFO, or free list (next) */
	struct dnsproxy *p;
	uint32_t idx;
	uint8_t state;
	uint8_t n_order, attempt;
	uint8_t order[EGRESSD_MAX_UPSTREAMS];
	bool has_id; /* up_id is registered in the upstream's id map */
	bool send_failed; /* listed in p->retry */
	uint16_t client_id, up_id;
	uint64_t deadline;
	uint64_t sent_us; /* this attempt's send, for the RTT histogram */

	bool from_tcp;
	uint8_t listener;
	socklen_t clientlen;
	struct sockaddr_storage client;
	uint16_t conn;
	uint32_t conn_gen;

	uint8_t *msg; /* the client's query; id (and 0x20 case) rewritten
		       * per attempt */
	size_t len, cap;
	struct dnswire_question q;
	/* The question as the client wrote it: restored in every reply. */
	uint8_t qorig[DNSWIRE_HDR_LEN + 255 + 4];
	bool caps; /* this attempt went out with 0x20 case */
	bool nocaps; /* a case mismatch was seen: no 0x20 any more */

	/* Coalescing (dp_coalesce): one upstream query per key. */
	struct dp_query *lead; /* follower: the query it waits on */
	struct dp_query *fhead; /* leader: its followers */
	struct dp_query *fnext; /* follower: next of the same leader */
	struct dp_query *hnext; /* leader: hash chain */
	uint32_t hash;
	bool in_table;

	/* TCP retry to the upstream */
	int tfd;
	bool twriting;
	uint8_t *tbuf; /* 2-byte length + message */
	size_t tlen, toff;
};

struct dp_conn {
	struct dnsproxy *p;
	int fd;
	uint16_t idx;
	uint32_t gen; /* bumped on close: late answers see a mismatch */
	bool rd_closed, dirty;
	uint32_t events;
	unsigned int inflight;
	uint64_t last;
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint8_t *wbuf;
	size_t woff, wlen, wcap;
	socklen_t peerlen;
	struct sockaddr_storage peer;
};

/* Pending UDP replies of one listener, flushed with one sendmmsg. */
struct dp_tx {
	unsigned int n;
	struct mmsghdr msgs[DP_BATCH];
	struct iovec iov[DP_BATCH];
	struct sockaddr_storage dst[DP_BATCH];
	/* Every UDP answer fits (it came in through a DP_UDP_BUF buffer):
	 * copied, so that one answer can go to several coalesced clients
	 * with a different id each. */
	uint8_t buf[DP_BATCH][DP_UDP_BUF];
};

struct dp_listener {
	struct dnsproxy *p;
	int fd;
	uint8_t idx;
	bool tcp;
	struct dp_tx *tx; /* UDP only */
};

struct dp_upstream {
	struct dnsproxy *p;
	int idx;
	int fd;
	struct egressd_upstream cfg;
	bool healthy;
	/* On loopback or a local address: its answers arrive on lo. */
	bool local;
	uint8_t caps_bad; /* answers in a row that lost the 0x20 case */
	uint64_t caps_off_until; /* loop ms; 0x20 off while now < this */
	uint64_t queries, timeouts, errors;
	/* upstream id -> slot index + 1, DP_ID_PROBE (probe_id), 0: free */
	uint16_t *idmap;
	/* pending forwarded queries, flushed with one sendmmsg */
	unsigned int ntx;
	struct mmsghdr txmsgs[DP_BATCH];
	struct iovec txiov[DP_BATCH];
	uint32_t txslot[DP_BATCH];
	bool probe_pending; /* a probe is out and not yet settled */
	bool probe_round; /* the pending probe is one of a round: logged */
	bool refused; /* a send met a pending ICMP error (dp_flush) */
	/* The last probe's id: taken (DP_ID_PROBE) from its send until its
	 * answer or timeout, even once an ordinary answer settled it. */
	uint16_t probe_id;
	uint64_t probe_sent; /* loop ms */
	uint64_t probes, probe_answers, probe_failures;
};

/* Shared receive batch: filled and fully processed by one callback. */
struct dp_rx {
	struct mmsghdr msgs[DP_BATCH];
	struct iovec iov[DP_BATCH];
	struct sockaddr_storage addr[DP_BATCH];
	uint8_t buf[DP_BATCH][DP_UDP_BUF];
};

struct dnsproxy {
	struct loop *loop;
	const struct policy_matcher *matcher;
	bool block_doh_names;
	bool aaaa_nodata;
	dnsproxy_answer_cb hook;
	void *hook_arg;
	struct events *events; /* violation lines, or NULL */
	unsigned int timeout_ms;
	uint16_t port;

	struct dp_listener lst[DP_MAX_LISTENERS];
	int n_lst;

	struct dp_upstream ups[EGRESSD_MAX_UPSTREAMS];
	int n_ups;
	uint8_t order[EGRESSD_MAX_UPSTREAMS]; /* healthy first, cfg order */

	struct dp_query **slots;
	uint32_t n_slots; /* allocated */
	struct dp_query *free_q;
	struct dp_query *fifo_head, *fifo_tail;
	struct loop_timer *tmo;
	struct dnswire_question scratch_q; /* when no slot is free */
	/* queries whose send failed, to be moved on after a flush */
	uint32_t *retry;
	uint32_t n_retry;

	struct dp_conn *conns;
	uint16_t *free_conns;
	unsigned int n_free_conns;
	uint16_t *dirty;
	unsigned int n_dirty;
	struct loop_timer *sweep;

	struct dp_rx *rx;

	struct dnsguard *guard;
	struct dp_query **ctab; /* coalescing: leaders by key hash */
	int lo_ifindex;

	uint8_t probe_msg[DNSWIRE_HDR_LEN + 255 + 4];
	size_t probe_len;
	struct dnswire_question probe_q;
	struct loop_timer *probe; /* re-probe unhealthy upstreams */
	struct loop_timer *probe_round; /* every upstream, every interval */
	struct loop_timer *probe_tmo; /* pending probes' deadline */
	unsigned int probe_timeout_ms, probe_interval_ms;
	int round_left, round_ok; /* probes of the round not yet done, ok */

	uint16_t rand[DP_RAND_N];
	unsigned int rand_pos;
	uint64_t xs; /* fallback PRNG state if getrandom is unavailable */

	struct dnsproxy_stats st;
};

/* dnsproxy.c (core) */
uint16_t dp_rand16(struct dnsproxy *p);
void dp_addr_text(const struct sockaddr_storage *ss, char *buf, size_t len);
void dp_set_sockbuf(int fd);
struct dp_query *dp_slot_get(struct dnsproxy *p);
void dp_slot_put(struct dnsproxy *p, struct dp_query *s);
void dp_fifo_del(struct dnsproxy *p, struct dp_query *s);
void dp_rtt_record(struct dnsproxy *p, const struct dp_query *s);
void dp_fifo_push(struct dnsproxy *p, struct dp_query *s);
void dp_send_client(struct dnsproxy *p, const struct dp_client *cl,
		    const uint8_t *data, size_t len);
void dp_query_client(const struct dp_query *s, struct dp_client *cl);
size_t dp_qlen(const struct dp_query *s);
void dp_fail_reply(struct dnsproxy *p, struct dp_query *s, int rcode);
void dp_send_answer(struct dnsproxy *p, struct dp_query *s, uint8_t *msg,
		    size_t len);
bool dp_coalesce(struct dnsproxy *p, struct dp_query *s);
void dp_flush(struct dnsproxy *p);
int dp_recv_batch(struct dnsproxy *p, int fd, bool want_addr);

/* sends again after a pending ICMP error (dnsicmp.c) */
#define DP_SEND_TRIES 4

/* dnsupstream.c */
int dp_up_open(struct dp_upstream *up);
int dp_id_pick(struct dnsproxy *p, const struct dp_upstream *up);
bool dp_probe_id_held(const struct dp_upstream *up);
void dp_probe_id_release(struct dp_upstream *up);
void dp_id_release(struct dnsproxy *p, struct dp_query *s);
void dp_tcp_close(struct dnsproxy *p, struct dp_query *s);
void dp_attempt(struct dnsproxy *p, struct dp_query *s);
void dp_next(struct dnsproxy *p, struct dp_query *s);
void dp_up_flush(struct dnsproxy *p, struct dp_upstream *up);
void dp_up_read(struct dnsproxy *p, struct dp_upstream *up, bool err);
void dp_timeout_cb(struct loop *loop, struct loop_timer *t, void *arg);

/* dnsicmp.c */
struct ifaddrs;
int dp_up_recverr(int fd, int family);
bool dp_is_icmp_error(int e);
bool dp_icmp_refusal(uint8_t origin, uint8_t type, uint8_t code);
bool dp_icmp_trusted(bool up_local, const struct sockaddr *offender,
		     const struct ifaddrs *own);
bool dp_up_send_error(struct dnsproxy *p, struct dp_upstream *up, int e,
		      bool mark);
int dp_up_icmp(struct dnsproxy *p, struct dp_upstream *up);

/* dnsprobe.c */
void dp_compute_order(struct dnsproxy *p);
void dp_up_mark(struct dp_upstream *up, bool healthy, const char *why);
void dp_up_alive(struct dp_upstream *up);
void dp_up_refused(struct dnsproxy *p, struct dp_upstream *up, int e);
void dp_probe_done(struct dp_upstream *up, bool ok, const char *why);
void dp_probe_tmo_cb(struct loop *loop, struct loop_timer *t, void *arg);
void dp_probe_cb(struct loop *loop, struct loop_timer *t, void *arg);
void dp_round_cb(struct loop *loop, struct loop_timer *t, void *arg);
int dp_build_probe(struct dnsproxy *p, const char *name);

/* dnstcp.c */
struct dp_conn *dp_conn_of(struct dnsproxy *p, uint16_t idx, uint32_t gen);
void dp_conn_mark_dirty(struct dnsproxy *p, struct dp_conn *c);
void dp_conn_append(struct dp_conn *c, const uint8_t *data, size_t len);
void dp_conn_close(struct dp_conn *c);
void dp_conn_service(struct dp_conn *c);
void dp_sweep_cb(struct loop *loop, struct loop_timer *t, void *arg);
void dp_accept_cb(struct loop *loop, int fd, uint32_t events, void *arg);

/* dnsdecide.c */
void dp_deliver(struct dnsproxy *p, struct dp_query *s, uint8_t *msg,
		size_t len, struct dnswire_response *r);
void dp_handle_query(struct dnsproxy *p, const uint8_t *msg, size_t len,
		     const struct dp_client *cl);

#endif /* __EGRESSD_DNSPROXY_INT_H */
