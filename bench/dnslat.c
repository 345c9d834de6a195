// SPDX-License-Identifier: GPL-2.0-only
/*
 * dnslat: unloaded DNS latency client for bench/nft.sh. Sends one A query
 * per name read from a file, strictly one at a time over UDP, and times
 * each with CLOCK_MONOTONIC from just before send() to just after the
 * matching answer arrives. Prints one line:
 *   n=N ok=N timeouts=N p50_us=X p90_us=X p99_us=X mean_us=X
 * Bounded: at most MAX names, each with a 1 s timeout.
 *
 *   dnslat SERVER_IPV4 PORT NAMEFILE [MAX]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static size_t build_query(uint8_t *buf, uint16_t id, const char *name)
{
	size_t n = 12;
	const char *p = name;

	memset(buf, 0, 12);
	buf[0] = (uint8_t)(id >> 8);
	buf[1] = (uint8_t)id;
	buf[2] = 0x01; /* RD */
	buf[5] = 1; /* QDCOUNT */
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);

		if (len == 0 || len > 63 || n + len + 6 > 300)
			return 0;
		buf[n++] = (uint8_t)len;
		memcpy(buf + n, p, len);
		n += len;
		p += len;
		if (*p == '.')
			p++;
	}
	buf[n++] = 0;
	buf[n++] = 0;
	buf[n++] = 1; /* A */
	buf[n++] = 0;
	buf[n++] = 1; /* IN */
	return n;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	size_t max = argc > 4 ? strtoul(argv[4], NULL, 10) : 100000;
	size_t n = 0, ok = 0, timeouts = 0;
	double *lat, sum = 0;
	char line[512];
	FILE *f;
	int fd;

	if (argc < 4) {
		fprintf(stderr,
			"usage: dnslat SERVER_IPV4 PORT NAMEFILE [MAX]\n");
		return 2;
	}
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "dnslat: bad address %s\n", argv[1]);
		return 2;
	}
	f = fopen(argv[3], "r");
	if (!f) {
		perror(argv[3]);
		return 2;
	}
	lat = calloc(max ? max : 1, sizeof(*lat));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (!lat || fd < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("dnslat");
		return 2;
	}
	while (n < max && fgets(line, sizeof(line), f)) {
		uint8_t q[320], r[4096];
		uint16_t id = (uint16_t)(n * 7919 + 1);
		size_t qlen;
		double t0, deadline;

		line[strcspn(line, " \t\r\n")] = '\0';
		if (!line[0])
			continue;
		qlen = build_query(q, id, line);
		if (!qlen)
			continue;
		n++;
		t0 = now_us();
		if (send(fd, q, qlen, 0) < 0) {
			perror("send");
			return 1;
		}
		deadline = t0 + 1e6;
		for (;;) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			double left = deadline - now_us();
			ssize_t got;

			if (left <= 0 ||
			    poll(&pfd, 1, (int)(left / 1000) + 1) <= 0) {
				timeouts++;
				break;
			}
			got = recv(fd, r, sizeof(r), 0);
			if (got >= 12 && r[0] == q[0] && r[1] == q[1]) {
				double us = now_us() - t0;

				lat[ok++] = us;
				sum += us;
				break;
			}
			if (got < 0 && errno != EINTR && errno != EAGAIN)
				break; /* e.g. ECONNREFUSED: counted as a timeout */
		}
	}
	qsort(lat, ok, sizeof(*lat), cmp_double);
#define PCT(p) (ok ? lat[(size_t)((double)(ok - 1) * (p))] : 0.0)
	printf("n=%zu ok=%zu timeouts=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f\n",
	       n, ok, timeouts, PCT(0.5), PCT(0.9), PCT(0.99),
	       ok ? sum / (double)ok : 0.0);
	return 0;
}
