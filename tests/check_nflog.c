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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <libmnl/libmnl.h>

#include "egressd/nflog.h"

static char nlbuf[512];

/* One NFULNL_MSG_PACKET of family fam, prefix and payload. */
static size_t msg(uint8_t fam, const char *prefix, const void *payload,
		  size_t len)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(nlbuf);
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
	ck_assert_int_eq(nflog_parse(nlbuf, n, &pk), 0);
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
	ck_assert_int_eq(nflog_parse(nlbuf, n, &pk), 0);
	ck_assert_int_eq(pk.reason, EVENTS_REASON_RAW_FRAME);
	ck_assert_int_eq(pk.family, AF_INET);
	inet_pton(AF_INET, "10.200.1.81", want);
	ck_assert_mem_eq(pk.dst, want, 4);
	ck_assert_uint_eq(pk.dport, 5000);
	ck_assert_str_eq(reason_name(pk.reason), "raw_frame");

	/* read as an IP header, the Ethernet header would be garbage */
	n = msg(NFPROTO_INET, "egressd:raw_frame", f, sizeof(f));
	ck_assert_int_ne(nflog_parse(nlbuf, n, &pk), 0);
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
	ck_assert_int_eq(nflog_parse(nlbuf, n, &pk), -EPROTONOSUPPORT);
	n = msg(NFPROTO_NETDEV, "egressd:raw_frame", f, 10);
	ck_assert_int_eq(nflog_parse(nlbuf, n, &pk), -EPROTONOSUPPORT);
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
		ck_assert_int_eq(nflog_parse(nlbuf, n, &pk), 0);
		ck_assert_int_eq(pk.family, AF_INET6);
		ck_assert_uint_eq(pk.dport, 53);
	}
}
END_TEST

/* ---- the batch walk (nflog_parse_batch), as the fuzzer drives it ---- */

#define BUF_MAX 4096

/* Append one NFULNL_MSG_PACKET at buf + *off; returns its start. */
static struct nlmsghdr *put_msg(char *buf, size_t *off, const char *prefix,
				const void *payload, size_t len)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;

	ck_assert_uint_lt(*off + 256 + len, BUF_MAX);
	nlh = mnl_nlmsg_put_header(buf + *off);
	nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix);
	mnl_attr_put(nlh, NFULA_PAYLOAD, len, payload);
	*off += MNL_ALIGN(nlh->nlmsg_len);
	return nlh;
}

/* A 20-byte IPv4 header 10.200.0.2 -> 10.200.1.9 and four port bytes. */
static void ipv4(uint8_t *p, int proto, uint16_t sport, uint16_t dport,
		 uint16_t frag)
{
	memset(p, 0, 24);
	p[0] = 0x45;
	p[6] = frag >> 8;
	p[7] = frag & 0xff;
	p[9] = proto;
	memcpy(p + 12, (uint8_t[]){ 10, 200, 0, 2 }, 4);
	memcpy(p + 16, (uint8_t[]){ 10, 200, 1, 9 }, 4);
	p[20] = sport >> 8;
	p[21] = sport & 0xff;
	p[22] = dport >> 8;
	p[23] = dport & 0xff;
}

struct seen {
	struct nflog_packet pk[8];
	size_t n;
};

static void collect(const struct nflog_packet *pk, void *arg)
{
	struct seen *s = arg;

	ck_assert_uint_lt(s->n, 8);
	s->pk[s->n++] = *pk;
}

START_TEST(test_nflog_parse_ipv4)
{
	static char buf[BUF_MAX];
	struct nflog_packet pk;
	struct nlmsghdr *nlh;
	uint8_t ip[24];
	size_t off = 0;

	memset(buf, 0, sizeof(buf));
	ipv4(ip, IPPROTO_TCP, 40000, 443, 0);
	nlh = put_msg(buf, &off, "egressd:deny_rule", ip, sizeof(ip));
	ck_assert_int_eq(nflog_parse(nlh, nlh->nlmsg_len, &pk), 0);
	ck_assert_int_eq(pk.reason, EVENTS_REASON_DENY_RULE);
	ck_assert_int_eq(pk.family, AF_INET);
	ck_assert_int_eq(pk.proto, IPPROTO_TCP);
	ck_assert_mem_eq(pk.dst, ((uint8_t[]){ 10, 200, 1, 9 }), 4);
	ck_assert_uint_eq(pk.sport, 40000);
	ck_assert_uint_eq(pk.dport, 443);

	/* A later fragment has no ports. */
	off = 0;
	ipv4(ip, IPPROTO_UDP, 1, 53, 0x00b9);
	nlh = put_msg(buf, &off, "egressd:default_deny", ip, sizeof(ip));
	ck_assert_int_eq(nflog_parse(nlh, nlh->nlmsg_len, &pk), 0);
	ck_assert_int_eq(pk.reason, EVENTS_REASON_DEFAULT_DENY);
	ck_assert_uint_eq(pk.sport, 0);
	ck_assert_uint_eq(pk.dport, 0);

	/* Not ours, or not a whole header. */
	off = 0;
	nlh = put_msg(buf, &off, "egressd:other", ip, sizeof(ip));
	ck_assert_int_eq(nflog_parse(nlh, nlh->nlmsg_len, &pk), -ENOENT);
	off = 0;
	nlh = put_msg(buf, &off, "egressd:dot", ip, 19);
	ck_assert_int_eq(nflog_parse(nlh, nlh->nlmsg_len, &pk), -EINVAL);
}
END_TEST

START_TEST(test_nflog_parse_ipv6_extension_headers)
{
	static char buf[BUF_MAX];
	struct nflog_packet pk;
	struct nlmsghdr *nlh;
	uint8_t ip[40 + 16 + 4] = { 0x60 };
	size_t off = 0;

	memset(buf, 0, sizeof(buf));
	ip[6] = IPPROTO_HOPOPTS;
	ip[24] = 0xfd;
	ip[39] = 9;
	/* hop-by-hop (8 bytes) -> fragment, offset 0 (8 bytes) -> UDP */
	ip[40] = IPPROTO_FRAGMENT;
	ip[48] = IPPROTO_UDP;
	ip[56] = 0x12;
	ip[57] = 0x34;
	ip[59] = 53;
	nlh = put_msg(buf, &off, "egressd:ipv6_disabled", ip, sizeof(ip));
	ck_assert_int_eq(nflog_parse(nlh, nlh->nlmsg_len, &pk), 0);
	ck_assert_int_eq(pk.reason, EVENTS_REASON_IPV6_DISABLED);
	ck_assert_int_eq(pk.family, AF_INET6);
	ck_assert_int_eq(pk.proto, IPPROTO_UDP);
	ck_assert_uint_eq(pk.dst[0], 0xfd);
	ck_assert_uint_eq(pk.dst[15], 9);
	ck_assert_uint_eq(pk.sport, 0x1234);
	ck_assert_uint_eq(pk.dport, 53);
}
END_TEST

START_TEST(test_nflog_parse_batch)
{
	static char buf[BUF_MAX];
	struct seen s = { 0 };
	struct nlmsghdr *nlh;
	uint8_t ip[24];
	size_t off = 0, end;

	memset(buf, 0, sizeof(buf));
	ipv4(ip, IPPROTO_TCP, 1, 443, 0);
	put_msg(buf, &off, "egressd:doh", ip, sizeof(ip));
	put_msg(buf, &off, "someone:else", ip, sizeof(ip));
	ipv4(ip, IPPROTO_UDP, 2, 853, 0);
	put_msg(buf, &off, "egressd:dot", ip, sizeof(ip));
	end = off;
	/* A last message cut short, as a full buffer can end. */
	put_msg(buf, &off, "egressd:deny_rule", ip, sizeof(ip));
	ck_assert_uint_eq(nflog_parse_batch(buf, end + 20, collect, &s), 2);
	ck_assert_int_eq(s.pk[0].reason, EVENTS_REASON_DOH);
	ck_assert_uint_eq(s.pk[0].dport, 443);
	ck_assert_int_eq(s.pk[1].reason, EVENTS_REASON_DOT);
	ck_assert_uint_eq(s.pk[1].dport, 853);

	/* A length over 2 GiB stops the walk (libmnl took it as negative). */
	s.n = 0;
	nlh = (struct nlmsghdr *)(buf + end);
	nlh->nlmsg_len = 0x9c9c9c9c;
	ck_assert_uint_eq(nflog_parse_batch(buf, off, collect, &s), 2);
	ck_assert_uint_eq(nflog_parse_batch(buf, 0, collect, &s), 0);
}
END_TEST

/*
 * Every reason nftables logs maps back from its prefix through reason.h's
 * table; DNS-only reasons, near misses and other prefixes do not.
 */
START_TEST(test_nflog_prefix_reasons)
{
	static const char *const bad[] = {
		"egressd:rebinding",
		"egressd:",
		"egressd:default_den",
		"egressd:default_deny ",
		"egressd:unknown",
		"other:dot",
		"egressd",
	};
	enum events_reason r;
	char prefix[64];
	unsigned int i;

	for (i = 0; i < EVENTS_REASON_MAX; i++) {
		if (!(reason_info(i)->layers & REASON_PACKET))
			continue;
		snprintf(prefix, sizeof(prefix), "egressd:%s", reason_name(i));
		ck_assert_int_eq(nflog_prefix_reason(prefix, &r), 0);
		ck_assert_uint_eq(r, i);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(nflog_prefix_reason(bad[i], &r) == -ENOENT, "%s",
			      bad[i]);
}
END_TEST

static Suite *nflog_suite(void)
{
	Suite *s = suite_create("nflog");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_nflog_inet_packet);
	tcase_add_test(tc, test_nflog_netdev_frame);
	tcase_add_test(tc, test_nflog_netdev_not_ip);
	tcase_add_test(tc, test_nflog_parse_ipv4);
	tcase_add_test(tc, test_nflog_parse_ipv6_extension_headers);
	tcase_add_test(tc, test_nflog_parse_batch);
	tcase_add_test(tc, test_nflog_prefix_reasons);
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
