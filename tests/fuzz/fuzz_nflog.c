// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for the NFLOG parser (agent/nflog.c). Each input is
 * used twice: as a whole recv() buffer of netlink messages, given to
 * nflog_parse_batch() as on_readable() gives what the kernel sent, and as
 * the IP payload of a well-formed NFULNL_MSG_PACKET built around it (with
 * a prefix picked by the first byte), so the IP and IPv6 header walk is
 * reached on every run rather than only when the mutator happens to build
 * a valid netlink message. Besides memory safety (ASan, UBSan) it checks
 * that a packet reported has a known family and reason, ports only for
 * protocols that have them, and addresses copied from the payload.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <libmnl/libmnl.h>

#include "egressd/nflog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Room for the headers, the prefix and the payload (the kernel sends
 * 128 bytes of it: NFLOG_COPY_RANGE). */
#define FUZZ_PAYLOAD_MAX 4096
#define FUZZ_MSG_MAX (FUZZ_PAYLOAD_MAX + 256)

static const char *const fuzz_prefixes[] = {
	"egressd:default_deny",
	"egressd:deny_rule",
	"egressd:dot",
	"egressd:doh",
	"egressd:ipv6_disabled",
	"egressd:other",
	"egressd:",
	"egressd:deny_rule ",
};

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_nflog: invariant broken: %s\n", what);
	abort();
}

static void check_packet(const struct nflog_packet *pk)
{
	bool ports = pk->proto == IPPROTO_TCP || pk->proto == IPPROTO_UDP ||
		     pk->proto == IPPROTO_UDPLITE || pk->proto == IPPROTO_SCTP;

	if (pk->family != AF_INET && pk->family != AF_INET6)
		fuzz_fail("family");
	if (pk->reason != EVENTS_REASON_DEFAULT_DENY &&
	    pk->reason != EVENTS_REASON_DENY_RULE &&
	    pk->reason != EVENTS_REASON_DOT &&
	    pk->reason != EVENTS_REASON_DOH &&
	    pk->reason != EVENTS_REASON_IPV6_DISABLED)
		fuzz_fail("reason");
	if (pk->proto < 0 || pk->proto > 255)
		fuzz_fail("proto");
	if (!ports && (pk->sport || pk->dport))
		fuzz_fail("ports without a transport that has them");
}

static void on_packet(const struct nflog_packet *pk, void *arg)
{
	check_packet(pk);
	(*(size_t *)arg)++;
}

/* One NFULNL_MSG_PACKET with prefix and payload, as the kernel sends it. */
static size_t build_msg(char *buf, const char *prefix, const uint8_t *pl,
			size_t pl_len)
{
	struct nfulnl_msg_packet_hdr ph = { .hw_protocol = htons(0x0800) };
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;

	memset(buf, 0, FUZZ_MSG_MAX);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(1);
	mnl_attr_put(nlh, NFULA_PACKET_HDR, sizeof(ph), &ph);
	mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix);
	mnl_attr_put(nlh, NFULA_PAYLOAD, pl_len, pl);
	return nlh->nlmsg_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char msg[FUZZ_MSG_MAX];
	const char *prefix;
	struct nflog_packet pk;
	size_t n = 0, got, len;
	int ret;

	/* The whole input as one recv() buffer. */
	got = nflog_parse_batch(data, size, on_packet, &n);
	if (got != n)
		fuzz_fail("batch count");
	if (size >= sizeof(struct nlmsghdr)) {
		ret = nflog_parse(data, size, &pk);
		if (!ret)
			check_packet(&pk);
		else if (ret != -EINVAL && ret != -ENOENT)
			fuzz_fail("nflog_parse error code");
	}

	/* The input after its first byte as the payload of a valid message. */
	if (!size || size - 1 > FUZZ_PAYLOAD_MAX)
		return 0;
	prefix = fuzz_prefixes[data[0] % (sizeof(fuzz_prefixes) /
					  sizeof(fuzz_prefixes[0]))];
	len = build_msg(msg, prefix, data + 1, size - 1);
	ret = nflog_parse(msg, len, &pk);
	if (ret == -ENOENT) {
		if (data[0] % 8 < 5)
			fuzz_fail("our prefix not recognised");
		return 0;
	}
	if (!ret && data[0] % 8 >= 5)
		fuzz_fail("foreign prefix accepted");
	if (ret) {
		if (ret != -EINVAL)
			fuzz_fail("nflog_parse error code");
		return 0;
	}
	check_packet(&pk);
	if (pk.family == AF_INET && (memcmp(pk.src, data + 1 + 12, 4) ||
				     memcmp(pk.dst, data + 1 + 16, 4)))
		fuzz_fail("IPv4 addresses");
	if (pk.family == AF_INET6 && (memcmp(pk.src, data + 1 + 8, 16) ||
				      memcmp(pk.dst, data + 1 + 24, 16)))
		fuzz_fail("IPv6 addresses");
	if (nflog_parse_batch(msg, len, on_packet, &n) != 1)
		fuzz_fail("a valid message is not one packet");
	return 0;
}
