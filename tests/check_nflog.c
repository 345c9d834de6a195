// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the NFLOG parser (agent/nflog.c): messages built as the
 * kernel sends them for table inet egressd (payload from the IP header)
 * and table netdev egressd (payload from the Ethernet header), mapped to
 * reason, family, addresses and ports; frames that are not IP give no
 * line. No kernel needed.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <libmnl/libmnl.h>

#include "egressd/nflog.h"

static char buf[512];

/* One NFULNL_MSG_PACKET of family fam, prefix and payload. */
static size_t msg(uint8_t fam, const char *prefix, const void *payload,
		  size_t len)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;

	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = fam;
	nfg->version = NFNETLINK_V0;
	mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix);
	mnl_attr_put(nlh, NFULA_PAYLOAD, len, payload);
	return nlh->nlmsg_len;
}

/* An IPv4/UDP packet 10.200.1.2:40001 -> 10.200.1.81:5000 at p. */
static size_t udp4(uint8_t *p)
{
	memset(p, 0, 28);
	p[0] = 0x45;
	p[9] = IPPROTO_UDP;
	inet_pton(AF_INET, "10.200.1.2", p + 12);
	inet_pton(AF_INET, "10.200.1.81", p + 16);
	p[20] = 40001 >> 8;
	p[21] = 40001 & 0xff;
	p[22] = 5000 >> 8;
	p[23] = 5000 & 0xff;
	return 28;
}

START_TEST(test_nflog_inet_packet)
{
	struct nflog_packet pk;
	uint8_t ip[28], want[4];
	size_t n;

	udp4(ip);
	n = msg(NFPROTO_INET, "egressd:default_deny", ip, sizeof(ip));
	ck_assert_int_eq(nflog_parse(buf, n, &pk), 0);
	ck_assert_int_eq(pk.reason, EVENTS_REASON_DEFAULT_DENY);
	ck_assert_int_eq(pk.family, AF_INET);
	ck_assert_int_eq(pk.proto, IPPROTO_UDP);
	inet_pton(AF_INET, "10.200.1.81", want);
	ck_assert_mem_eq(pk.dst, want, 4);
	ck_assert_uint_eq(pk.sport, 40001);
	ck_assert_uint_eq(pk.dport, 5000);
}
END_TEST

/* Table netdev egressd logs the frame from its Ethernet header. */
START_TEST(test_nflog_netdev_frame)
{
	struct nflog_packet pk;
	uint8_t f[14 + 28], want[4];
	size_t n;

	memset(f, 0xaa, 12);
	f[12] = 0x08;
	f[13] = 0x00;
	udp4(f + 14);
	n = msg(NFPROTO_NETDEV, "egressd:raw_frame", f, sizeof(f));
	ck_assert_int_eq(nflog_parse(buf, n, &pk), 0);
	ck_assert_int_eq(pk.reason, EVENTS_REASON_RAW_FRAME);
	ck_assert_int_eq(pk.family, AF_INET);
	inet_pton(AF_INET, "10.200.1.81", want);
	ck_assert_mem_eq(pk.dst, want, 4);
	ck_assert_uint_eq(pk.dport, 5000);
	ck_assert_str_eq(events_reason_name(pk.reason), "raw_frame");

	/* read as an IP header, the Ethernet header would be garbage */
	n = msg(NFPROTO_INET, "egressd:raw_frame", f, sizeof(f));
	ck_assert_int_ne(nflog_parse(buf, n, &pk), 0);
}
END_TEST

/* ARP (or any non-IP frame) is counted in nft, but makes no line. */
START_TEST(test_nflog_netdev_not_ip)
{
	struct nflog_packet pk;
	uint8_t f[14 + 28] = { 0 };
	size_t n;

	f[12] = 0x08;
	f[13] = 0x06;
	n = msg(NFPROTO_NETDEV, "egressd:raw_frame", f, sizeof(f));
	ck_assert_int_eq(nflog_parse(buf, n, &pk), -EPROTONOSUPPORT);
	n = msg(NFPROTO_NETDEV, "egressd:raw_frame", f, 10);
	ck_assert_int_eq(nflog_parse(buf, n, &pk), -EPROTONOSUPPORT);
	/* an IPv6 frame parses */
	{
		uint8_t g[14 + 48] = { 0 };

		g[12] = 0x86;
		g[13] = 0xdd;
		g[14] = 0x60;
		g[14 + 6] = IPPROTO_UDP;
		inet_pton(AF_INET6, "fd00:200:1::81", g + 14 + 24);
		g[14 + 42] = 53 >> 8;
		g[14 + 43] = 53;
		n = msg(NFPROTO_NETDEV, "egressd:raw_frame", g, sizeof(g));
		ck_assert_int_eq(nflog_parse(buf, n, &pk), 0);
		ck_assert_int_eq(pk.family, AF_INET6);
		ck_assert_uint_eq(pk.dport, 53);
	}
}
END_TEST

static Suite *nflog_suite(void)
{
	Suite *s = suite_create("nflog");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_nflog_inet_packet);
	tcase_add_test(tc, test_nflog_netdev_frame);
	tcase_add_test(tc, test_nflog_netdev_not_ip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(nflog_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
