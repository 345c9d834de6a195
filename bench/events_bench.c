// SPDX-License-Identifier: GPL-2.0-only
/*
 * Micro-benchmark of the violation log path (agent/events.c, agent/log.c):
 * nanoseconds per events_dns_violation() / events_packet_violation() call
 * with stdout on /dev/null, for distinct names (every report a new fold
 * key, so every one is written at once) and for one repeated name (every
 * report after the first is held and folded). Not part of `make test`.
 *
 *   cc -O2 -g -Iinclude -D_GNU_SOURCE -o .output/bench/events_bench \
 *	bench/events_bench.c agent/events.c agent/log.c agent/dnswire.c \
 *	agent/loop.c -ljansson -lpsl
 *   .output/bench/events_bench [N]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "egressd/events.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/util.h"

#define ROUND 4096 /* distinct keys per fold table lifetime */

static double now_ns(void)
{
	return (double)util_clock_ns();
}

static char (*make_names(long n))[64]
{
	char(*names)[64] = calloc(n, sizeof(*names));
	long i;

	if (!names)
		exit(1);
	for (i = 0; i < n; i++)
		snprintf(names[i], sizeof(names[i]),
			 "host-%ld.c2-%ld.denied-bench.example", i, i % 97);
	return names;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000, i;
	char(*names)[64] = make_names(ROUND);
	struct events *ev;
	struct loop *loop;
	uint32_t src = htonl(0x0ac80102), dst;
	double t0, dns_distinct, dns_folded, pkt_distinct, pkt_folded;

	if (loop_new(&loop) || !freopen("/dev/null", "w", stdout))
		return 1;
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (events_new(&ev, loop, NULL, 0))
		return 1;

	/* (a) distinct names: the table is reset every ROUND names. */
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		if (i && i % ROUND == 0) {
			events_flush(ev);
			log_flush();
		}
		events_dns_violation(ev, EVENTS_REASON_DEFAULT_DENY,
				     names[i % ROUND], 1, "nxdomain",
				     "10.200.1.2:41234");
	}
	events_flush(ev);
	log_flush();
	dns_distinct = (now_ns() - t0) / n;

	/* (b) one repeated name: the first written, the rest folded. */
	t0 = now_ns();
	for (i = 0; i < n; i++)
		events_dns_violation(ev, EVENTS_REASON_DEFAULT_DENY, names[0],
				     1, "nxdomain", "10.200.1.2:41234");
	events_flush(ev);
	log_flush();
	dns_folded = (now_ns() - t0) / n;

	/* (c) distinct destination addresses, (d) one repeated. */
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		if (i && i % ROUND == 0) {
			events_flush(ev);
			log_flush();
		}
		dst = htonl(0x0ac81000 + (uint32_t)(i % ROUND));
		events_packet_violation(ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
					IPPROTO_TCP, &src, 50514, &dst, 443,
					names[i % ROUND], "drop", 1);
	}
	events_flush(ev);
	log_flush();
	pkt_distinct = (now_ns() - t0) / n;

	dst = htonl(0x0ac81063);
	t0 = now_ns();
	for (i = 0; i < n; i++)
		events_packet_violation(ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
					IPPROTO_TCP, &src, 50514, &dst, 443,
					NULL, "drop", 1);
	events_flush(ev);
	log_flush();
	pkt_folded = (now_ns() - t0) / n;

	fprintf(stderr,
		"events_dns_violation    distinct names: %7.1f ns/call\n"
		"events_dns_violation    one name:       %7.1f ns/call\n"
		"events_packet_violation distinct dst:   %7.1f ns/call\n"
		"events_packet_violation one dst:        %7.1f ns/call\n"
		"(%ld calls each, stdout on /dev/null)\n",
		dns_distinct, dns_folded, pkt_distinct, pkt_folded, n);
	events_free(ev);
	loop_free(loop);
	free(names);
	return 0;
}
