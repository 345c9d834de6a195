// SPDX-License-Identifier: GPL-2.0-only
/*
 * Verdict tests of the real egress.bpf.o: the skeleton is loaded (maps not
 * pinned), the maps are filled with one fixture policy, and table-driven
 * crafted IPv4/IPv6 packets are run through bpf_prog_test_run_opts(). Each
 * case checks the return code, which per-reason counter moved, and the
 * ring-buffer event (reason, action, rule, domain, flags, count).
 *
 * Under BPF_PROG_TEST_RUN a cgroup_skb program gets an skb built by
 * bpf_prog_test_run_skb(): data_in must start with an Ethernet header, the
 * kernel sets skb->protocol from its type and pulls it, so the program sees
 * skb->data at the IP header as on the real hook. The skb is owned by a
 * dummy socket of the caller's network namespace and cgroup, so the
 * netns-cookie and API-cgroup checks are exercised for real here (the
 * program's no-socket branch, judged fail-closed, cannot be reached).
 *
 * The whole table runs twice: with the netns guard off (skb_netns_cookie
 * 0, what the agent loads on kernels before 6.15) and on. The guard-on
 * pass needs a kernel that gives cgroup_skb programs
 * bpf_get_netns_cookie(); on an older one the test checks instead that
 * such an object is refused, so the probe the agent relies on is right.
 *
 * Needs root (CAP_BPF + CAP_NET_ADMIN); without it prints SKIP and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/types.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "egressd/shared.h"
#include "egress.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#define EGRESS_DROP 0
#define EGRESS_ALLOW 1
#define NONE -1
#define MAX_EVENTS 8

/* Config variants a case runs under. */
enum cfg_variant {
	CFG_DENY, /* default deny, enforce, slot 0 */
	CFG_ALLOW, /* default allow */
	CFG_OBSERVE, /* default deny, observe */
	CFG_V6DENY, /* default allow, IPv6 deny */
	CFG_V6DENY_DD, /* default deny, IPv6 deny */
	CFG_OTHER_NS, /* netns cookie of another namespace */
	CFG_SLOT1, /* policy slot 1 active */
	CFG_API, /* API on 18080, another cgroup may reach it */
	CFG_API_SELF, /* API on 18080, this process's cgroup may reach it */
	CFG_IDLE, /* config never written (netns_cookie 0) */
};

/* Packet shapes beyond a plain IP + L4 header. */
enum pkt_shape {
	SHAPE_PLAIN,
	SHAPE_V6_EXTHDRS, /* hop-by-hop + dest opts + first fragment */
	SHAPE_V6_FRAG_LATER, /* fragment header, offset != 0 */
	SHAPE_V4_FRAG_LATER, /* IPv4 fragment offset != 0 */
	SHAPE_V4_BAD_IHL, /* IPv4 header length field < 5 */
	SHAPE_HLIM1, /* IPv6 hop limit 1 (otherwise 64) */
	SHAPE_HLIM255, /* IPv6 hop limit 255 */
	SHAPE_ICMP6_ANSWER, /* ICMPv6 error embedding a packet from dst */
	SHAPE_ICMP6_OTHER, /* ICMPv6 error embedding a packet from elsewhere */
	SHAPE_ND_NUD, /* NS as the kernel's NUD: 24 bytes, target = dst, hl 255 */
	SHAPE_ND_ANSWER, /* NA as the kernel answers: S, target = src, TLLA */
	SHAPE_ND_CARGO, /* NUD-like NS with 8 more bytes that are no option */
	SHAPE_ND_ROUTER, /* NA-like, but with the router flag */
};

/* Which pass a case belongs to (the netns guard, skb_netns_cookie). */
enum guard_pass {
	G_BOTH, /* the guard changes nothing for it */
	G_ON, /* only with the guard */
	G_OFF, /* only without it */
};

struct tcase {
	const char *desc;
	enum guard_pass guard;
	int family;
	const char *dst;
	int proto;
	int dport; /* or ICMP type */
	enum cfg_variant cfg;
	enum pkt_shape shape;
	int retval;
	int counter; /* EGRESSD_CNT_* index that grows, NONE */
	int reason; /* event reason, NONE for no event */
	int action;
	__u32 rule;
	__u32 ev_flags;
	bool dev; /* leaves through another interface than lo (dev_ifindex) */
	bool root_cg; /* its socket is in the cgroup2 root, as the kernel's
		       * ICMP sockets are (the test moves itself there) */
};

#define R_NONE EGRESSD_RULE_NONE
/* Rule ids of the fixture's entries that events report (shared.h): user
 * rules are their index, the others carry their origin in the high byte. */
#define R_DENY_ALWAYS_1 EGRESSD_RULE_ID(EGRESSD_RULE_DENY_ALWAYS, 1)
#define R_DOH_BUILTIN_6 EGRESSD_RULE_ID(EGRESSD_RULE_DOH_BUILTIN, 6)
#define R_DOH_BLOCKLIST_0 EGRESSD_RULE_ID(EGRESSD_RULE_DOH_BLOCKLIST, 0)

/* One case per block reads better than one field a line. */
/* clang-format off */
static const struct tcase cases[] = {
	{ .desc = "allowed static v4", .family = 4, .dst = "93.184.216.34",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_DENY,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "allowed static v6", .family = 6, .dst = "2001:db8:1::5",
	  .proto = IPPROTO_TCP, .dport = 443, .cfg = CFG_DENY,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "learned v4", .family = 4, .dst = "198.51.100.10",
	  .proto = IPPROTO_TCP, .dport = 443, .cfg = CFG_DENY,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "learned v6", .family = 6, .dst = "2001:db8:2::10",
	  .proto = IPPROTO_UDP, .dport = 443, .cfg = CFG_DENY,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "expired learned v4", .family = 4, .dst = "198.51.100.11",
	  .proto = IPPROTO_TCP, .dport = 443, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE, .ev_flags = EGRESSD_EV_EXPIRED },
	{ .desc = "denied v4", .family = 4, .dst = "203.0.113.7",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DENY_RULE,
	  .reason = EGRESSD_REASON_DENY_RULE, .action = EGRESSD_ACTION_DROP,
	  .rule = 3 },
	{ .desc = "deny inside allow v4", .family = 4, .dst = "93.184.216.66",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DENY_RULE,
	  .reason = EGRESSD_REASON_DENY_RULE, .action = EGRESSD_ACTION_DROP,
	  .rule = R_DENY_ALWAYS_1 },
	{ .desc = "deny beats learned v4", .family = 4, .dst = "203.0.113.50",
	  .proto = IPPROTO_UDP, .dport = 53, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DENY_RULE,
	  .reason = EGRESSD_REASON_DENY_RULE, .action = EGRESSD_ACTION_DROP,
	  .rule = 3 },
	{ .desc = "denied v6", .family = 6, .dst = "2001:db8:dead::1",
	  .proto = IPPROTO_UDP, .dport = 53, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DENY_RULE,
	  .reason = EGRESSD_REASON_DENY_RULE, .action = EGRESSD_ACTION_DROP,
	  .rule = 5 },
	{ .desc = "DoT tcp to allowed v4", .family = 4, .dst = "93.184.216.34",
	  .proto = IPPROTO_TCP, .dport = 853, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DOT,
	  .reason = EGRESSD_REASON_DOT, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "DoT udp to allowed v6", .family = 6, .dst = "2001:db8:1::5",
	  .proto = IPPROTO_UDP, .dport = 853, .cfg = CFG_ALLOW,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DOT,
	  .reason = EGRESSD_REASON_DOT, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "DoT exception (upstream)", .family = 4, .dst = "8.8.8.8",
	  .proto = IPPROTO_TCP, .dport = 853, .cfg = CFG_DENY,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "DoH tcp v4", .family = 4, .dst = "1.1.1.1",
	  .proto = IPPROTO_TCP, .dport = 443, .cfg = CFG_ALLOW,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DOH,
	  .reason = EGRESSD_REASON_DOH, .action = EGRESSD_ACTION_DROP,
	  .rule = R_DOH_BUILTIN_6 },
	{ .desc = "DoH udp v6", .family = 6, .dst = "2606:4700:4700::1111",
	  .proto = IPPROTO_UDP, .dport = 443, .cfg = CFG_ALLOW,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DOH,
	  .reason = EGRESSD_REASON_DOH, .action = EGRESSD_ACTION_DROP,
	  .rule = R_DOH_BLOCKLIST_0 },
	{ .desc = "DoH set on port 80 is not DoH", .family = 4,
	  .dst = "1.1.1.1", .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_ALLOW,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "DoH exception (upstream)", .family = 4, .dst = "8.8.8.8",
	  .proto = IPPROTO_TCP, .dport = 443, .cfg = CFG_DENY,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "port 53 around the redirect, allowed v4", .family = 4,
	  .dst = "93.184.216.34", .proto = IPPROTO_UDP, .dport = 53,
	  .cfg = CFG_ALLOW, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "port 53 around the redirect, learned v6 tcp", .family = 6,
	  .dst = "2001:db8:2::10", .proto = IPPROTO_TCP, .dport = 53,
	  .cfg = CFG_DENY, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "loopback v4", .family = 4, .dst = "127.0.0.53",
	  .proto = IPPROTO_UDP, .dport = 53, .cfg = CFG_V6DENY_DD,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "loopback v6", .family = 6, .dst = "::1",
	  .proto = IPPROTO_UDP, .dport = 853, .cfg = CFG_V6DENY_DD,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "loopback v4-mapped", .family = 6, .dst = "::ffff:127.0.0.1",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_V6DENY_DD,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "default deny v4", .family = 4, .dst = "192.0.2.1",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "default deny v6", .family = 6, .dst = "2001:db8:9::1",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "default allow v4", .family = 4, .dst = "192.0.2.1",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_ALLOW,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "default allow keeps deny rules", .family = 4,
	  .dst = "203.0.113.7", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_ALLOW, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DENY_RULE,
	  .reason = EGRESSD_REASON_DENY_RULE, .action = EGRESSD_ACTION_DROP,
	  .rule = 3 },
	{ .desc = "observe default deny", .family = 4, .dst = "192.0.2.1",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_OBSERVE,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_OBSERVE, .rule = R_NONE },
	{ .desc = "observe DoT", .family = 4, .dst = "93.184.216.34",
	  .proto = IPPROTO_UDP, .dport = 853, .cfg = CFG_OBSERVE,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_REASON_DOT,
	  .reason = EGRESSD_REASON_DOT, .action = EGRESSD_ACTION_OBSERVE,
	  .rule = R_NONE },
	{ .desc = "observe allowed", .family = 4, .dst = "93.184.216.34",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_OBSERVE,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "ipv6 deny", .family = 6, .dst = "2001:db8:9::1",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_V6DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_IPV6_DISABLED,
	  .reason = EGRESSD_REASON_IPV6_DISABLED, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "ipv6 deny keeps static allow", .family = 6,
	  .dst = "2001:db8:1::5", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_V6DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ipv6 deny keeps learned", .family = 6,
	  .dst = "2001:db8:2::10", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_V6DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ipv6 deny spares ICMPv6 NS to solicited-node", .family = 6,
	  .dst = "ff02::1:ff00:1", .proto = IPPROTO_ICMPV6, .dport = 135,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ICMPv6 NS to link-local", .family = 6,
	  .dst = "fe80::1", .proto = IPPROTO_ICMPV6, .dport = 135,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ICMPv6 NS to a global address", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 135,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "ICMPv6 NS to an allowed global address", .family = 6,
	  .dst = "2001:db8:1::5", .proto = IPPROTO_ICMPV6, .dport = 135,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "kernel NUD: NS to an on-link neighbour's global address", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 135,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_ND_NUD, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "kernel answer: solicited NA to a global address", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 136,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_ND_ANSWER, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "NS shaped like NUD with cargo", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 135,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_ND_CARGO, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "NA with the router flag to a global address", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 136,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_ND_ROUTER, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "ICMPv6 NS with hop limit 64", .family = 6,
	  .dst = "ff02::1:ff00:1", .proto = IPPROTO_ICMPV6, .dport = 135,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_PLAIN, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "ICMPv6 NA to all-nodes", .family = 6,
	  .dst = "ff02::1", .proto = IPPROTO_ICMPV6, .dport = 136,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ICMPv6 NA to link-local", .family = 6,
	  .dst = "fe80::9", .proto = IPPROTO_ICMPV6, .dport = 136,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ICMPv6 NA to a global address", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 136,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "ICMPv6 RS to all-routers", .family = 6,
	  .dst = "ff02::2", .proto = IPPROTO_ICMPV6, .dport = 133,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ICMPv6 RS to all-nodes", .family = 6,
	  .dst = "ff02::1", .proto = IPPROTO_ICMPV6, .dport = 133,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "ICMPv6 RS to a global address", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 133,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "MLDv2 report to ff02::16", .family = 6,
	  .dst = "ff02::16", .proto = IPPROTO_ICMPV6, .dport = 143,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM1, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "MLDv2 report with hop limit 255", .family = 6,
	  .dst = "ff02::16", .proto = IPPROTO_ICMPV6, .dport = 143,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM255, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "MLDv2 report to a global address", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 143,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM1, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "MLDv1 report to a link-scope group", .family = 6,
	  .dst = "ff02::fb", .proto = IPPROTO_ICMPV6, .dport = 131,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM1, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "MLDv1 report to a global-scope group", .family = 6,
	  .dst = "ff0e::fb", .proto = IPPROTO_ICMPV6, .dport = 131,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_HLIM1, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "ICMPv6 packet too big answering nothing", .family = 6,
	  .dst = "2001:db8:1::5", .proto = IPPROTO_ICMPV6, .dport = 2,
	  .cfg = CFG_DENY, .shape = SHAPE_PLAIN, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE, .dev = true },
	{ .desc = "ICMPv6 packet too big about a third party", .family = 6,
	  .dst = "2001:db8:1::5", .proto = IPPROTO_ICMPV6, .dport = 2,
	  .cfg = CFG_DENY, .shape = SHAPE_ICMP6_OTHER, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE, .dev = true },
	{ .desc = "ICMPv6 packet too big to an allowed peer", .family = 6,
	  .dst = "2001:db8:1::5", .proto = IPPROTO_ICMPV6, .dport = 2,
	  .cfg = CFG_DENY, .shape = SHAPE_ICMP6_ANSWER, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE, .dev = true },
	{ .desc = "ICMPv6 unreachable to a learned peer", .family = 6,
	  .dst = "2001:db8:2::10", .proto = IPPROTO_ICMPV6, .dport = 1,
	  .cfg = CFG_DENY, .shape = SHAPE_ICMP6_ANSWER, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE, .dev = true },
	{ .desc = "ICMPv6 packet too big to a non-allowed peer", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 2,
	  .cfg = CFG_DENY, .shape = SHAPE_ICMP6_ANSWER, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY, .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE, .dev = true },
	{ .desc = "ICMPv6 time exceeded, IPv6 off", .family = 6,
	  .dst = "2001:db8:9::1", .proto = IPPROTO_ICMPV6, .dport = 3,
	  .cfg = CFG_V6DENY_DD, .shape = SHAPE_ICMP6_ANSWER, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_IPV6_DISABLED, .reason = EGRESSD_REASON_IPV6_DISABLED,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE, .dev = true },
	{ .desc = "ICMPv6 echo is judged", .family = 6, .dst = "2001:db8:9::1",
	  .proto = IPPROTO_ICMPV6, .dport = 128, .cfg = CFG_V6DENY_DD,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_IPV6_DISABLED,
	  .reason = EGRESSD_REASON_IPV6_DISABLED, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	/*
	 * docs/security.md, class 2b: an ICMP error a process sends through
	 * lo forges a refusal from whatever source it writes; dropped before
	 * the loopback allow. The test skb leaves through lo unless .dev.
	 */
	{ .desc = "ICMP unreachable to 127.0.0.1 dropped", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_ICMP, .dport = 3,
	  .cfg = CFG_DENY, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "ICMP unreachable to 127.0.0.1, default allow, dropped",
	  .family = 4, .dst = "127.0.0.1", .proto = IPPROTO_ICMP, .dport = 3,
	  .cfg = CFG_ALLOW, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "ICMP time exceeded to its own address (via lo) dropped",
	  .family = 4, .dst = "10.200.1.2", .proto = IPPROTO_ICMP, .dport = 11,
	  .cfg = CFG_ALLOW, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "ICMP redirect to 127.0.0.1 dropped", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_ICMP, .dport = 5,
	  .cfg = CFG_DENY, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "ICMP parameter problem to 127.0.0.1 dropped", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_ICMP, .dport = 12,
	  .cfg = CFG_DENY, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	/* the kernel's own errors: its ICMP sockets are in the cgroup2 root */
	{ .desc = "ICMP unreachable to 127.0.0.1 from the root cgroup passes",
	  .family = 4, .dst = "127.0.0.1", .proto = IPPROTO_ICMP, .dport = 3,
	  .cfg = CFG_DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE, .root_cg = true },
	{ .desc = "ICMPv6 unreachable to ::1 from the root cgroup passes",
	  .family = 6, .dst = "::1", .proto = IPPROTO_ICMPV6, .dport = 1,
	  .cfg = CFG_DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE, .root_cg = true },
	{ .desc = "ICMP unreachable to 127.0.0.1, observe: reported, passes",
	  .family = 4, .dst = "127.0.0.1", .proto = IPPROTO_ICMP, .dport = 3,
	  .cfg = CFG_OBSERVE, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY,
	  .action = EGRESSD_ACTION_OBSERVE, .rule = R_NONE },
	{ .desc = "ICMPv6 unreachable to ::1 dropped", .family = 6,
	  .dst = "::1", .proto = IPPROTO_ICMPV6, .dport = 1, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "ICMPv6 unreachable to ::1 answering ::1 dropped",
	  .family = 6, .dst = "::1", .proto = IPPROTO_ICMPV6, .dport = 1,
	  .cfg = CFG_ALLOW, .shape = SHAPE_ICMP6_ANSWER, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "ICMPv6 packet too big to its own address (via lo) dropped",
	  .family = 6, .dst = "fd00:200::2", .proto = IPPROTO_ICMPV6,
	  .dport = 2, .cfg = CFG_ALLOW, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "ICMP echo request to 127.0.0.1 passes", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_ICMP, .dport = 8,
	  .cfg = CFG_DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ICMP echo reply to 127.0.0.1 passes", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_ICMP, .dport = 0,
	  .cfg = CFG_DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ICMPv6 echo request to ::1 passes", .family = 6,
	  .dst = "::1", .proto = IPPROTO_ICMPV6, .dport = 128,
	  .cfg = CFG_DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "ICMP unreachable to an allowed peer (not lo) passes",
	  .family = 4, .dst = "93.184.216.34", .proto = IPPROTO_ICMP,
	  .dport = 3, .cfg = CFG_DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE, .dev = true },
	{ .desc = "ICMP unreachable to a non-allowed peer (not lo) judged",
	  .family = 4, .dst = "192.0.2.1", .proto = IPPROTO_ICMP, .dport = 3,
	  .cfg = CFG_DENY, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE, .dev = true },
	{ .desc = "v4-mapped denied", .family = 6, .dst = "::ffff:203.0.113.7",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DENY_RULE,
	  .reason = EGRESSD_REASON_DENY_RULE, .action = EGRESSD_ACTION_DROP,
	  .rule = 3, .ev_flags = EGRESSD_EV_V4MAPPED },
	{ .desc = "v4-mapped allowed", .family = 6,
	  .dst = "::ffff:93.184.216.34", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "v4-mapped learned", .family = 6,
	  .dst = "::ffff:198.51.100.10", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "v4-mapped not ipv6 deny", .family = 6,
	  .dst = "::ffff:192.0.2.1", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_V6DENY, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "v4-mapped default deny", .family = 6,
	  .dst = "::ffff:192.0.2.1", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_DENY, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE, .ev_flags = EGRESSD_EV_V4MAPPED },
	{ .desc = "v6 ext headers then DoT", .family = 6,
	  .dst = "2001:db8:1::5", .proto = IPPROTO_TCP, .dport = 853,
	  .cfg = CFG_DENY, .shape = SHAPE_V6_EXTHDRS, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DOT, .reason = EGRESSD_REASON_DOT,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "v6 later fragment judged by address", .family = 6,
	  .dst = "2001:db8:dead::1", .proto = IPPROTO_TCP, .dport = 853,
	  .cfg = CFG_DENY, .shape = SHAPE_V6_FRAG_LATER, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DENY_RULE,
	  .reason = EGRESSD_REASON_DENY_RULE, .action = EGRESSD_ACTION_DROP,
	  .rule = 5, .ev_flags = EGRESSD_EV_NO_L4 },
	{ .desc = "v4 later fragment to allowed", .family = 4,
	  .dst = "93.184.216.34", .proto = IPPROTO_TCP, .dport = 853,
	  .cfg = CFG_DENY, .shape = SHAPE_V4_FRAG_LATER, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "v4 bad header length gets default", .family = 4,
	  .dst = "93.184.216.34", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_DENY, .shape = SHAPE_V4_BAD_IHL, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "other netns untouched", .guard = G_ON, .family = 4,
	  .dst = "203.0.113.7", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_OTHER_NS, .retval = EGRESS_ALLOW, .counter = NONE,
	  .reason = NONE },
	/* without the guard the cookie in the config is not compared */
	{ .desc = "other netns judged without the guard", .guard = G_OFF,
	  .family = 4, .dst = "203.0.113.7", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_OTHER_NS, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DENY_RULE,
	  .reason = EGRESSD_REASON_DENY_RULE, .action = EGRESSD_ACTION_DROP,
	  .rule = 3 },
	{ .desc = "not configured: untouched", .family = 4,
	  .dst = "203.0.113.7", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_IDLE, .retval = EGRESS_ALLOW, .counter = NONE,
	  .reason = NONE },
	/* docs/security.md, class 5: the API port over loopback is egressd's. */
	{ .desc = "api: workload to 127.0.0.1:API dropped", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_TCP, .dport = 18080,
	  .cfg = CFG_API, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_API, .reason = EGRESSD_REASON_API,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "api: workload to [::1]:API dropped", .family = 6,
	  .dst = "::1", .proto = IPPROTO_TCP, .dport = 18080,
	  .cfg = CFG_API, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_API, .reason = EGRESSD_REASON_API,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "api: workload to ::ffff:127.0.0.1:API dropped",
	  .family = 6, .dst = "::ffff:127.0.0.1", .proto = IPPROTO_TCP,
	  .dport = 18080, .cfg = CFG_API, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_API, .reason = EGRESSD_REASON_API,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE,
	  .ev_flags = EGRESSD_EV_V4MAPPED },
	/* the test skb leaves through lo: as the sandbox's own address would */
	{ .desc = "api: workload to its own address:API (via lo) dropped",
	  .family = 4, .dst = "10.200.1.2", .proto = IPPROTO_TCP,
	  .dport = 18080, .cfg = CFG_API, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_API, .reason = EGRESSD_REASON_API,
	  .action = EGRESSD_ACTION_DROP, .rule = R_NONE },
	{ .desc = "api: the API cgroup (egressctl) passes", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_TCP, .dport = 18080,
	  .cfg = CFG_API_SELF, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "api: other loopback ports still pass", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_TCP, .dport = 15353,
	  .cfg = CFG_API, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "api: UDP to the API port is not the API", .family = 4,
	  .dst = "127.0.0.1", .proto = IPPROTO_UDP, .dport = 18080,
	  .cfg = CFG_API, .retval = EGRESS_ALLOW,
	  .counter = EGRESSD_CNT_ALLOWED, .reason = NONE },
	{ .desc = "slot 1 allow", .family = 4, .dst = "10.9.9.9",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_SLOT1,
	  .retval = EGRESS_ALLOW, .counter = EGRESSD_CNT_ALLOWED,
	  .reason = NONE },
	{ .desc = "slot 0 allow unseen in slot 1", .family = 4,
	  .dst = "93.184.216.34", .proto = IPPROTO_TCP, .dport = 80,
	  .cfg = CFG_SLOT1, .retval = EGRESS_DROP,
	  .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
	{ .desc = "slot 1 unseen in slot 0", .family = 4, .dst = "10.9.9.9",
	  .proto = IPPROTO_TCP, .dport = 80, .cfg = CFG_DENY,
	  .retval = EGRESS_DROP, .counter = EGRESSD_REASON_DEFAULT_DENY,
	  .reason = EGRESSD_REASON_DEFAULT_DENY, .action = EGRESSD_ACTION_DROP,
	  .rule = R_NONE },
};
/* clang-format on */

static struct egress_bpf *skel;
static struct ring_buffer *rb;
static struct egressd_event events_seen[MAX_EVENTS];
static int n_events;
static __u64 netns_cookie;
static int dev_ifindex; /* an interface other than lo, 0 when none */
static __u64 self_cgid;
static __u32 self_level;
static int passed, failed;
static bool guard; /* this pass's skb_netns_cookie */
static bool quiet; /* a refusal is expected: keep libbpf's log out */

#define CHECK(cond, name, fmt, ...)                                        \
	({                                                                 \
		bool __ok = (cond);                                        \
		if (!__ok)                                                 \
			printf("FAIL:%s: " fmt "\n", name, ##__VA_ARGS__); \
		__ok;                                                      \
	})

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (level == LIBBPF_DEBUG || quiet)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int on_event(void *ctx, void *data, size_t len)
{
	if (len < sizeof(struct egressd_event) || n_events >= MAX_EVENTS)
		return 0;
	memcpy(&events_seen[n_events++], data, sizeof(struct egressd_event));
	return 0;
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int put_lpm(struct bpf_map *map, int family, __u8 slot, const char *addr,
		   int plen, __u32 rule)
{
	struct egressd_rule_val val = { .rule = rule };
	struct egressd_lpm4_key k4 = {};
	struct egressd_lpm6_key k6 = {};

	if (family == 4) {
		k4.prefixlen = EGRESSD_LPM_SLOT_BITS + plen;
		k4.slot = slot;
		inet_pton(AF_INET, addr, k4.addr);
		return bpf_map__update_elem(map, &k4, sizeof(k4), &val,
					    sizeof(val), BPF_ANY);
	}
	k6.prefixlen = EGRESSD_LPM_SLOT_BITS + plen;
	k6.slot = slot;
	inet_pton(AF_INET6, addr, k6.addr);
	return bpf_map__update_elem(map, &k6, sizeof(k6), &val, sizeof(val),
				    BPF_ANY);
}

static int put_learned(int family, const char *addr, __s64 ttl_ns)
{
	struct egressd_learned_val val = {
		.expires_ns = now_ns() + ttl_ns,
	};
	__u8 key[16];

	inet_pton(family == 4 ? AF_INET : AF_INET6, addr, key);
	if (family == 4)
		return bpf_map__update_elem(skel->maps.learned_v4, key, 4, &val,
					    sizeof(val), BPF_ANY);
	return bpf_map__update_elem(skel->maps.learned_v6, key, 16, &val,
				    sizeof(val), BPF_ANY);
}

/* The fixture policy: slot 0 is the policy under test, slot 1 a decoy. */
static int fill_policy(void)
{
	int err = 0;

	err |= put_lpm(skel->maps.allow_v4, 4, 0, "93.184.216.0", 24, 1);
	err |= put_lpm(skel->maps.allow_v6, 6, 0, "2001:db8:1::", 48, 2);
	err |= put_lpm(skel->maps.deny_v4, 4, 0, "203.0.113.0", 24, 3);
	err |= put_lpm(skel->maps.deny_v4, 4, 0, "93.184.216.66", 32,
		       R_DENY_ALWAYS_1);
	err |= put_lpm(skel->maps.deny_v6, 6, 0, "2001:db8:dead::", 48, 5);
	err |= put_lpm(skel->maps.doh_v4, 4, 0, "1.1.1.1", 32, R_DOH_BUILTIN_6);
	err |= put_lpm(skel->maps.doh_v4, 4, 0, "8.8.8.8", 32, 7);
	err |= put_lpm(skel->maps.doh_v6, 6, 0, "2606:4700:4700::1111", 128,
		       R_DOH_BLOCKLIST_0);
	err |= put_lpm(skel->maps.doh_allow_v4, 4, 0, "8.8.8.8", 32, 9);
	err |= put_lpm(skel->maps.allow_v4, 4, 0, "8.8.8.8", 32, 10);
	err |= put_lpm(skel->maps.allow_v4, 4, 1, "10.9.9.0", 24, 100);
	err |= put_learned(4, "198.51.100.10", 60000000000LL);
	err |= put_learned(4, "198.51.100.11", -1000000000LL);
	err |= put_learned(4, "203.0.113.50", 60000000000LL);
	err |= put_learned(6, "2001:db8:2::10", 60000000000LL);
	return err ? -EIO : 0;
}

static int set_config(enum cfg_variant v)
{
	struct egressd_bpf_cfg cfg = {};
	__u32 zero = 0;

	cfg.netns_cookie = netns_cookie;
	cfg.slot[0].generation = 7;
	cfg.slot[1].generation = 8;
	switch (v) {
	case CFG_DENY:
		break;
	case CFG_ALLOW:
		cfg.slot[0].default_verdict = EGRESSD_DEFAULT_ALLOW;
		break;
	case CFG_OBSERVE:
		cfg.mode = EGRESSD_DP_OBSERVE;
		break;
	case CFG_V6DENY:
		cfg.slot[0].default_verdict = EGRESSD_DEFAULT_ALLOW;
		cfg.slot[0].flags = EGRESSD_SLOT_IPV6_DENY;
		break;
	case CFG_V6DENY_DD:
		cfg.slot[0].flags = EGRESSD_SLOT_IPV6_DENY;
		break;
	case CFG_OTHER_NS:
		cfg.netns_cookie = netns_cookie + 1000;
		break;
	case CFG_SLOT1:
		cfg.active = 1;
		cfg.slot[0].default_verdict = EGRESSD_DEFAULT_ALLOW;
		break;
	case CFG_IDLE:
		cfg.netns_cookie = 0;
		break;
	case CFG_API:
		cfg.api_port = 18080;
		cfg.api_cgid = self_cgid + 1000000;
		cfg.api_level = self_level;
		break;
	case CFG_API_SELF:
		cfg.api_port = 18080;
		cfg.api_cgid = self_cgid;
		cfg.api_level = self_level;
		break;
	}
	return bpf_map__update_elem(skel->maps.config, &zero, sizeof(zero),
				    &cfg, sizeof(cfg), BPF_ANY);
}

static __u64 read_counter(__u32 idx)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 vals[ncpu], sum = 0;
	int i;

	if (bpf_map__lookup_elem(skel->maps.counters, &idx, sizeof(idx), vals,
				 sizeof(vals), 0))
		return ~0ULL;
	for (i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

static void read_counters(__u64 *out)
{
	int i;

	for (i = 0; i < EGRESSD_CNT_MAX; i++)
		out[i] = read_counter(i);
}

static void clear_fold(void)
{
	struct egressd_fold_key k;
	int fd = bpf_map__fd(skel->maps.event_fold);

	while (!bpf_map_get_next_key(fd, NULL, &k))
		bpf_map_delete_elem(fd, &k);
}

/* Ethernet + IP (+ extension headers) + L4 header; returns the length. */
static size_t build_pkt(__u8 *buf, size_t cap, int family, const char *dst,
			int proto, int dport, enum pkt_shape shape)
{
	size_t off = 14;
	__u8 *ip = buf + 14;

	memset(buf, 0, cap);
	if (family == 4) {
		buf[12] = 0x08;
		buf[13] = 0x00;
		ip[0] = 0x45;
		ip[8] = 64;
		ip[9] = proto;
		inet_pton(AF_INET, "10.200.0.2", ip + 12);
		inet_pton(AF_INET, dst, ip + 16);
		if (shape == SHAPE_V4_FRAG_LATER)
			ip[7] = 0x10; /* offset 16 * 8 */
		if (shape == SHAPE_V4_BAD_IHL)
			ip[0] = 0x44;
		off += 20;
	} else {
		__u8 *nh = ip + 6;

		buf[12] = 0x86;
		buf[13] = 0xdd;
		ip[0] = 0x60;
		ip[7] = shape == SHAPE_HLIM1 ? 1 :
			shape == SHAPE_PLAIN || shape == SHAPE_ICMP6_ANSWER ||
					shape == SHAPE_ICMP6_OTHER ?
					       64 :
					       255;
		inet_pton(AF_INET6, "fd00:200::2", ip + 8);
		inet_pton(AF_INET6, dst, ip + 24);
		off += 40;
		if (shape == SHAPE_V6_EXTHDRS) {
			/* hop-by-hop (8 bytes), dest opts (16), fragment (8) */
			*nh = IPPROTO_HOPOPTS;
			nh = buf + off;
			off += 8;
			*nh = IPPROTO_DSTOPTS;
			nh = buf + off;
			buf[off + 1] = 1;
			off += 16;
			*nh = IPPROTO_FRAGMENT;
			nh = buf + off;
			buf[off + 3] = 1; /* offset 0, M flag */
			off += 8;
		} else if (shape == SHAPE_V6_FRAG_LATER) {
			*nh = IPPROTO_FRAGMENT;
			nh = buf + off;
			buf[off + 2] = 0x01; /* offset 32 */
			off += 8;
		}
		*nh = proto;
	}
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		buf[off] = 0xc3; /* sport 50000 */
		buf[off + 1] = 0x50;
		buf[off + 2] = dport >> 8;
		buf[off + 3] = dport & 0xff;
		if (proto == IPPROTO_TCP)
			buf[off + 12] = 5 << 4;
		off += proto == IPPROTO_TCP ? 20 : 8;
	} else {
		buf[off] = dport; /* ICMP type */
		if (shape >= SHAPE_ND_NUD) {
			/* target: the destination (NS) or our source (NA) */
			memcpy(buf + off + 8,
			       shape == SHAPE_ND_NUD ||
					       shape == SHAPE_ND_CARGO ?
				       ip + 24 :
				       ip + 8,
			       16);
			if (shape == SHAPE_ND_ANSWER)
				buf[off + 4] = 0x60; /* solicited, override */
			if (shape == SHAPE_ND_ROUTER)
				buf[off + 4] = 0xe0;
			off += 24;
			if (shape == SHAPE_ND_ANSWER ||
			    shape == SHAPE_ND_ROUTER) {
				buf[off] = 2; /* target link-layer address */
				buf[off + 1] = 1;
				off += 8;
			} else if (shape == SHAPE_ND_CARGO) {
				memcpy(buf + off, "cargo!!!", 8);
				off += 8;
			}
		} else {
			off += 8;
		}
		if (shape == SHAPE_ICMP6_ANSWER || shape == SHAPE_ICMP6_OTHER) {
			/* the offending packet: IPv6 + UDP, peer -> us */
			buf[off] = 0x60;
			buf[off + 6] = IPPROTO_UDP;
			buf[off + 7] = 64;
			inet_pton(AF_INET6,
				  shape == SHAPE_ICMP6_ANSWER ?
					  dst :
					  "2001:db8:77::1",
				  buf + off + 8);
			inet_pton(AF_INET6, "fd00:200::2", buf + off + 24);
			off += 48;
		}
	}
	if (family == 4) {
		ip[2] = (off - 14) >> 8;
		ip[3] = (off - 14) & 0xff;
	} else {
		ip[4] = (off - 54) >> 8;
		ip[5] = (off - 54) & 0xff;
	}
	return off;
}

/*
 * Run one packet. The kernel sends the test skb out through lo unless the
 * context names another interface (ifindex > 1).
 */
static int run_pkt_dev(const __u8 *pkt, size_t len, int ifindex, __u32 *retval)
{
	struct __sk_buff ctx = { .ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = pkt,
		    .data_size_in = len, .repeat = 1);
	int err;

	if (ifindex > 1) {
		topts.ctx_in = &ctx;
		topts.ctx_size_in = sizeof(ctx);
	}

	err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.egress_filter),
				     &topts);
	*retval = topts.retval;
	return err;
}

static int run_pkt(const __u8 *pkt, size_t len, __u32 *retval)
{
	return run_pkt_dev(pkt, len, 0, retval);
}

static int cgroup2_mount(char *mnt, size_t len);
static int self_cgroup_path(char *path, size_t len);
static int move_self(const char *dir);

/*
 * Move this process into the cgroup2 root for one case (the test_run skb's
 * dummy socket takes the caller's cgroup), and back: 0 or -errno.
 */
static int root_cg_enter(char *back, size_t len)
{
	char mnt[256];
	int err;

	err = cgroup2_mount(mnt, sizeof(mnt));
	if (!err)
		err = self_cgroup_path(back, len);
	if (!err)
		err = move_self(mnt);
	return err;
}

static void run_case(const struct tcase *tc)
{
	__u64 before[EGRESSD_CNT_MAX], after[EGRESSD_CNT_MAX];
	const struct egressd_event *e = &events_seen[0];
	char back[1024];
	__u8 pkt[256];
	__u32 retval = ~0U;
	size_t len;
	bool ok = true;
	int i, err;

	if (tc->dev && !dev_ifindex) {
		printf("SKIP:%s: no interface but lo to send through\n",
		       tc->desc);
		return;
	}
	if (set_config(tc->cfg)) {
		printf("FAIL:%s: config update failed\n", tc->desc);
		failed++;
		return;
	}
	clear_fold();
	ring_buffer__consume(rb);
	n_events = 0;
	read_counters(before);
	len = build_pkt(pkt, sizeof(pkt), tc->family, tc->dst, tc->proto,
			tc->dport, tc->shape);
	if (tc->root_cg) {
		err = root_cg_enter(back, sizeof(back));
		if (err) {
			printf("SKIP:%s: cannot enter the cgroup2 root: %s\n",
			       tc->desc, strerror(-err));
			return;
		}
	}
	err = run_pkt_dev(pkt, len, tc->dev ? dev_ifindex : 0, &retval) ?
		      -errno :
		      0;
	if (tc->root_cg && move_self(back))
		printf("WARN:%s: cannot move back to %s\n", tc->desc, back);
	ok &= CHECK(err == 0, tc->desc, "test_run failed: %s", strerror(-err));
	ok &= CHECK(retval == (__u32)tc->retval, tc->desc, "retval %u, want %d",
		    retval, tc->retval);
	read_counters(after);
	for (i = 0; i < EGRESSD_CNT_MAX; i++) {
		__u64 want = before[i] + (i == tc->counter);

		ok &= CHECK(after[i] == want, tc->desc,
			    "counter %d is +%llu, want +%llu", i,
			    (unsigned long long)(after[i] - before[i]),
			    (unsigned long long)(want - before[i]));
	}
	ring_buffer__consume(rb);
	if (tc->reason == NONE) {
		ok &= CHECK(n_events == 0, tc->desc, "%d events, want 0",
			    n_events);
		goto out;
	}
	ok &= CHECK(n_events == 1, tc->desc, "%d events, want 1", n_events);
	if (n_events != 1)
		goto out;
	ok &= CHECK(e->reason == tc->reason, tc->desc, "reason %u, want %d",
		    e->reason, tc->reason);
	ok &= CHECK(e->action == tc->action, tc->desc, "action %u, want %d",
		    e->action, tc->action);
	ok &= CHECK(e->rule == tc->rule, tc->desc, "rule %u, want %u", e->rule,
		    tc->rule);
	ok &= CHECK(e->flags == tc->ev_flags, tc->desc, "flags %#x, want %#x",
		    e->flags, tc->ev_flags);
	ok &= CHECK(e->count == 1, tc->desc, "count %llu, want 1",
		    (unsigned long long)e->count);
	if (tc->shape != SHAPE_V4_BAD_IHL) {
		__u8 want[16] = {};

		inet_pton(tc->family == 4 ? AF_INET : AF_INET6, tc->dst, want);
		ok &= CHECK(e->family == tc->family, tc->desc,
			    "family %u, want %d", e->family, tc->family);
		ok &= CHECK(!memcmp(e->dst, want, 16), tc->desc,
			    "event dst differs");
		if (tc->proto == IPPROTO_TCP || tc->proto == IPPROTO_UDP) {
			if (!(tc->ev_flags & EGRESSD_EV_NO_L4))
				ok &= CHECK(e->sport == 50000 &&
						    e->dport == tc->dport,
					    tc->desc, "ports %u->%u", e->sport,
					    e->dport);
		} else {
			ok &= CHECK(!e->sport && !e->dport, tc->desc,
				    "ports %u->%u, want 0", e->sport, e->dport);
		}
		ok &= CHECK(e->proto == tc->proto, tc->desc,
			    "proto %u, want %d", e->proto, tc->proto);
	} else {
		ok &= CHECK(e->family == 0, tc->desc, "family %u, want 0",
			    e->family);
	}
	ok &= CHECK(e->generation == (tc->cfg == CFG_SLOT1 ? 8 : 7), tc->desc,
		    "generation %llu", (unsigned long long)e->generation);
	ok &= CHECK(e->sk_cookie != 0 && e->ts_ns != 0, tc->desc,
		    "cookie/ts missing");
out:
	if (ok) {
		printf("PASS:%s\n", tc->desc);
		passed++;
	} else {
		failed++;
	}
}

/* Send n copies of one denied packet; return the events seen. */
static int flood(const char *dst, int n, __u32 *drops)
{
	__u8 pkt[128];
	__u32 retval;
	size_t len;
	int i;

	len = build_pkt(pkt, sizeof(pkt), 4, dst, IPPROTO_UDP, 9999,
			SHAPE_PLAIN);
	for (i = 0; i < n; i++) {
		if (run_pkt(pkt, len, &retval) || retval != EGRESS_DROP)
			(*drops)++;
	}
	ring_buffer__consume(rb);
	return n_events;
}

/*
 * Folding: a burst gives one event and exact counters; once the window has
 * passed (simulated by ageing the fold entry) the next event carries the
 * folded packets in count.
 */
static void test_folding(void)
{
	const char *name = "folding: one event per second, count carries rest";
	struct egressd_fold_key fk = {};
	struct egressd_fold_val fv;
	__u64 before, after;
	__u32 bad = 0;
	bool ok = true;

	set_config(CFG_DENY);
	clear_fold();
	ring_buffer__consume(rb);
	n_events = 0;
	before = read_counter(EGRESSD_REASON_DEFAULT_DENY);
	ok &= CHECK(flood("192.0.2.77", 5, &bad) == 1, name,
		    "%d events after 5 packets, want 1", n_events);
	after = read_counter(EGRESSD_REASON_DEFAULT_DENY);
	ok &= CHECK(after - before == 5, name, "counter +%llu, want +5",
		    (unsigned long long)(after - before));

	inet_pton(AF_INET, "192.0.2.77", fk.dst);
	fk.dport = 9999;
	fk.reason = EGRESSD_REASON_DEFAULT_DENY;
	fk.family = 4;
	ok &= CHECK(!bpf_map__lookup_elem(skel->maps.event_fold, &fk,
					  sizeof(fk), &fv, sizeof(fv), 0),
		    name, "no fold entry");
	ok &= CHECK(fv.folded == 4, name, "folded %llu, want 4",
		    (unsigned long long)fv.folded);
	fv.last_emit_ns -= 2 * EGRESSD_FOLD_NS;
	bpf_map__update_elem(skel->maps.event_fold, &fk, sizeof(fk), &fv,
			     sizeof(fv), BPF_EXIST);
	ok &= CHECK(flood("192.0.2.77", 3, &bad) == 2, name,
		    "%d events, want 2", n_events);
	ok &= CHECK(n_events == 2 && events_seen[1].count == 5, name,
		    "second event count %llu, want 5",
		    (unsigned long long)events_seen[1].count);
	ok &= CHECK(bad == 0, name, "%u packets not dropped", bad);
	if (ok) {
		printf("PASS:%s\n", name);
		passed++;
	} else {
		failed++;
	}
}

/*
 * A full ring buffer bumps ringbuf_drops and changes no verdict; the
 * packets that could not be reported are folded into the next record.
 */
static void test_ringbuf_full(void)
{
	const char *name = "ring buffer full: drops counted, verdict kept";
	__u64 drops_before, drops_after, dd_before, dd_after;
	int i, n = EGRESSD_EVENTS_BYTES / sizeof(struct egressd_event) + 64;
	__u8 pkt[128];
	__u32 retval, bad = 0;
	char dst[32];
	size_t len;
	bool ok = true;

	set_config(CFG_DENY);
	clear_fold();
	ring_buffer__consume(rb);
	drops_before = read_counter(EGRESSD_CNT_RINGBUF_DROPS);
	dd_before = read_counter(EGRESSD_REASON_DEFAULT_DENY);
	for (i = 0; i < n; i++) {
		snprintf(dst, sizeof(dst), "100.64.%d.%d", i / 250, i % 250);
		len = build_pkt(pkt, sizeof(pkt), 4, dst, IPPROTO_TCP, 80,
				SHAPE_PLAIN);
		if (run_pkt(pkt, len, &retval) || retval != EGRESS_DROP)
			bad++;
	}
	drops_after = read_counter(EGRESSD_CNT_RINGBUF_DROPS);
	dd_after = read_counter(EGRESSD_REASON_DEFAULT_DENY);
	ok &= CHECK(bad == 0, name, "%u packets not dropped", bad);
	ok &= CHECK(drops_after > drops_before, name, "no ringbuf drops");
	ok &= CHECK(dd_after - dd_before == (__u64)n, name,
		    "default_deny +%llu, want +%d",
		    (unsigned long long)(dd_after - dd_before), n);
	n_events = MAX_EVENTS; /* discard */
	ring_buffer__consume(rb);
	n_events = 0;

	/* the last destination was not reported: its next packet is, x2 */
	len = build_pkt(pkt, sizeof(pkt), 4, dst, IPPROTO_TCP, 80, SHAPE_PLAIN);
	run_pkt(pkt, len, &retval);
	ring_buffer__consume(rb);
	ok &= CHECK(n_events == 1 && events_seen[0].count == 2, name,
		    "%d events, count %llu, want 1 event count 2", n_events,
		    n_events ? (unsigned long long)events_seen[0].count : 0);
	if (ok) {
		printf("PASS:%s\n", name);
		passed++;
	} else {
		failed++;
	}
}

/* Using a learned address refreshes its last_seen for the agent. */
static void test_last_seen(void)
{
	const char *name = "learned use refreshes last_seen";
	struct egressd_learned_val val;
	__u8 key[4], pkt[128];
	__u32 retval;
	size_t len;
	bool ok = true;

	set_config(CFG_DENY);
	inet_pton(AF_INET, "198.51.100.10", key);
	bpf_map__lookup_elem(skel->maps.learned_v4, key, 4, &val, sizeof(val),
			     0);
	val.last_seen_ns = 0;
	bpf_map__update_elem(skel->maps.learned_v4, key, 4, &val, sizeof(val),
			     BPF_EXIST);
	len = build_pkt(pkt, sizeof(pkt), 4, "198.51.100.10", IPPROTO_TCP, 80,
			SHAPE_PLAIN);
	run_pkt(pkt, len, &retval);
	bpf_map__lookup_elem(skel->maps.learned_v4, key, 4, &val, sizeof(val),
			     0);
	ok &= CHECK(retval == EGRESS_ALLOW, name, "retval %u", retval);
	ok &= CHECK(val.last_seen_ns + 2 * EGRESSD_FOLD_NS > now_ns() &&
			    val.last_seen_ns != 0,
		    name, "last_seen %llu, now %llu",
		    (unsigned long long)val.last_seen_ns,
		    (unsigned long long)now_ns());
	if (ok) {
		printf("PASS:%s\n", name);
		passed++;
	} else {
		failed++;
	}
}

/* Ethernet + IPv4 + TCP/UDP with explicit addresses, ports, TCP flags. */
static size_t build_v4(__u8 *buf, size_t cap, const char *src, int sport,
		       const char *dst, int dport, int proto, __u8 tcp_flags)
{
	__u8 *ip = buf + 14, *l4 = buf + 34;
	size_t len = 34 + (proto == IPPROTO_TCP ? 20 : 8);

	memset(buf, 0, cap);
	buf[12] = 0x08;
	ip[0] = 0x45;
	ip[2] = (len - 14) >> 8;
	ip[3] = (len - 14) & 0xff;
	ip[8] = 64;
	ip[9] = proto;
	inet_pton(AF_INET, src, ip + 12);
	inet_pton(AF_INET, dst, ip + 16);
	l4[0] = sport >> 8;
	l4[1] = sport & 0xff;
	l4[2] = dport >> 8;
	l4[3] = dport & 0xff;
	if (proto == IPPROTO_TCP) {
		l4[12] = 5 << 4;
		l4[13] = tcp_flags;
	}
	return len;
}

static __u32 run_prog(struct bpf_program *prog, const __u8 *pkt, size_t len)
{
	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = pkt,
		    .data_size_in = len, .repeat = 1);

	if (bpf_prog_test_run_opts(bpf_program__fd(prog), &topts))
		return ~0U;
	return topts.retval;
}

/*
 * Replies to peers that contacted the workload first pass, like
 * nftables' "ct state established" for inbound flows: a TCP SYN or a UDP
 * datagram seen by ingress_track opens the reverse direction from that
 * local port to that peer; other ports, other peers, a TCP packet that
 * was not a SYN, and IPv6 off stay closed.
 */
static void test_inbound(void)
{
	static const struct {
		const char *desc;
		int proto;
		__u8 in_flags; /* ingress TCP flags; 0xff: no ingress */
		const char *peer;
		int peer_port, local_port;
		int out_port; /* local port of the reply */
		__u32 want;
	} t[] = {
		{ "inbound tcp: SYN-ACK to the client passes", IPPROTO_TCP,
		  0x02, "192.0.2.77", 40000, 8080, 8080, EGRESS_ALLOW },
		{ "inbound tcp: other local port stays closed", IPPROTO_TCP,
		  0x02, "192.0.2.78", 40000, 8080, 8081, EGRESS_DROP },
		{ "inbound tcp: a SYN-ACK in does not open (reply to ours)",
		  IPPROTO_TCP, 0x12, "192.0.2.79", 443, 50001, 50001,
		  EGRESS_DROP },
		{ "inbound udp: reply to the sender passes", IPPROTO_UDP, 0,
		  "192.0.2.80", 5353, 9999, 9999, EGRESS_ALLOW },
		{ "inbound: no ingress, no reply", IPPROTO_UDP, 0xff,
		  "192.0.2.81", 5353, 9999, 9999, EGRESS_DROP },
	};
	__u8 pkt[128];
	size_t i, len;
	__u32 r;
	bool ok;

	set_config(CFG_DENY);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ok = true;
		if (t[i].in_flags != 0xff) {
			len = build_v4(pkt, sizeof(pkt), t[i].peer,
				       t[i].peer_port, "10.200.0.2",
				       t[i].local_port, t[i].proto,
				       t[i].in_flags);
			r = run_prog(skel->progs.ingress_track, pkt, len);
			ok &= CHECK(r == 1, t[i].desc, "ingress retval %u", r);
		}
		len = build_v4(pkt, sizeof(pkt), "10.200.0.2", t[i].out_port,
			       t[i].peer, t[i].peer_port, t[i].proto, 0x12);
		r = run_prog(skel->progs.egress_filter, pkt, len);
		ok &= CHECK(r == t[i].want, t[i].desc,
			    "egress retval %u, want %u", r, t[i].want);
		if (ok) {
			printf("PASS:%s\n", t[i].desc);
			passed++;
		} else {
			failed++;
		}
	}
	/* the peer's entry is there, keyed by the local port */
	{
		struct egressd_inbound_key k = { .peer_port = 40000,
						 .local_port = 8080,
						 .family = 4,
						 .proto = IPPROTO_TCP };
		__u64 seen = 0;
		const char *name =
			"inbound: entry keyed (peer, peer port, local port)";

		inet_pton(AF_INET, "192.0.2.77", k.peer);
		ok = CHECK(!bpf_map__lookup_elem(skel->maps.inbound, &k,
						 sizeof(k), &seen, sizeof(seen),
						 0) &&
				   seen,
			   name, "no entry");
		if (ok) {
			printf("PASS:%s\n", name);
			passed++;
		} else {
			failed++;
		}
	}
	/* the drops above left events and fold state behind */
	ring_buffer__consume(rb);
	n_events = 0;
	clear_fold();
}

/*
 * ingress_track has the same netns guard as egress_filter: with it, a
 * SYN to a socket the config says is of another namespace is not
 * remembered; without it, it is.
 */
static void test_inbound_other_ns(void)
{
	struct egressd_inbound_key k = { .peer_port = 40001,
					 .local_port = 8082,
					 .family = 4,
					 .proto = IPPROTO_TCP };
	const char *name = guard ? "inbound: other netns not tracked (guard)" :
				   "inbound: other netns tracked (no guard)";
	__u64 seen = 0;
	__u8 pkt[128];
	size_t len;
	bool ok;
	__u32 r;

	set_config(CFG_OTHER_NS);
	len = build_v4(pkt, sizeof(pkt), "192.0.2.90", 40001, "10.200.0.2",
		       8082, IPPROTO_TCP, 0x02);
	r = run_prog(skel->progs.ingress_track, pkt, len);
	ok = CHECK(r == 1, name, "ingress retval %u", r);
	inet_pton(AF_INET, "192.0.2.90", k.peer);
	if (guard)
		ok &= CHECK(bpf_map__lookup_elem(skel->maps.inbound, &k,
						 sizeof(k), &seen, sizeof(seen),
						 0) &&
				    errno == ENOENT,
			    name, "entry present");
	else
		ok &= CHECK(!bpf_map__lookup_elem(skel->maps.inbound, &k,
						  sizeof(k), &seen,
						  sizeof(seen), 0) &&
				    seen,
			    name, "no entry");
	if (ok) {
		printf("PASS:%s\n", name);
		passed++;
	} else {
		failed++;
	}
}

/*
 * Can a cgroup_skb program call bpf_get_netns_cookie() here? The same
 * probe as bpfsync.c's probe_skb_netns_cookie() (keep in sync): the
 * guard-off pass checks that its answer matches what the kernel does
 * with the real object.
 */
static bool probe_skb_netns_cookie(void)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_JMP | BPF_CALL,
		  .imm = BPF_FUNC_get_netns_cookie },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K,
		  .dst_reg = BPF_REG_0,
		  .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts,
		    .expected_attach_type = BPF_CGROUP_INET_EGRESS);
	int fd;

	fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SKB, "egressd_probe", "GPL",
			   insns, sizeof(insns) / sizeof(insns[0]), &opts);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Cookie of our network namespace, as bpf_get_netns_cookie() sees it. */
static int get_netns_cookie(__u64 *cookie)
{
	socklen_t len = sizeof(*cookie);
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		err = -errno;
	close(fd);
	return err;
}

/* Where cgroup2 is mounted (here /sys/fs/cgroup/unified). */
static int cgroup2_mount(char *mnt, size_t len)
{
	char line[512], dev[64], dir[256], type[64];
	int err = -ENOENT;
	FILE *f;

	f = fopen("/proc/mounts", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %255s %63s", dev, dir, type) == 3 &&
		    !strcmp(type, "cgroup2")) {
			snprintf(mnt, len, "%s", dir);
			err = 0;
			break;
		}
	}
	fclose(f);
	return err;
}

/* Our cgroup v2 directory, from the 0:: line of /proc/self/cgroup. */
static int self_cgroup_path(char *path, size_t len)
{
	char line[512], mnt[256];
	int err = -ENOENT;
	FILE *f;

	if (cgroup2_mount(mnt, sizeof(mnt)))
		return -ENOENT;
	f = fopen("/proc/self/cgroup", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = 0;
			snprintf(path, len, "%s%s", mnt,
				 strcmp(line + 3, "/") ? line + 3 : "");
			err = 0;
			break;
		}
	}
	fclose(f);
	return err;
}

/* Our cgroup v2 id (inode of its directory) and depth below the root. */
static int get_self_cgroup(__u64 *id, __u32 *level)
{
	char path[1024], mnt[256];
	const char *p;
	struct stat st;

	if (cgroup2_mount(mnt, sizeof(mnt)) ||
	    self_cgroup_path(path, sizeof(path)) || stat(path, &st))
		return -ENOENT;
	*id = st.st_ino;
	*level = 0;
	for (p = path + strlen(mnt); *p; p++)
		if (*p == '/')
			(*level)++;
	return 0;
}

static int move_self(const char *dir)
{
	char path[1100];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	if (fprintf(f, "%d\n", getpid()) < 0)
		err = -EIO;
	if (fclose(f))
		err = -errno;
	return err;
}

/*
 * Run inside a fresh child cgroup so the API-cgroup cases test a
 * real ancestor level (the dummy socket of test_run takes our cgroup).
 * Best effort: without it the cases run at our current cgroup.
 */
static char test_cg[1024], orig_cg[1024];

static void enter_test_cgroup(void)
{
	char mnt[256];

	if (cgroup2_mount(mnt, sizeof(mnt)) ||
	    self_cgroup_path(orig_cg, sizeof(orig_cg)))
		return;
	snprintf(test_cg, sizeof(test_cg), "%s/egressd-test-bpf.%d", mnt,
		 getpid());
	if (mkdir(test_cg, 0755) || move_self(test_cg)) {
		rmdir(test_cg);
		test_cg[0] = 0;
	}
}

static void leave_test_cgroup(void)
{
	if (!test_cg[0])
		return;
	move_self(orig_cg);
	rmdir(test_cg);
}

/*
 * Root has what the tests need. A non-root caller with file capabilities
 * is rare; it gets the same SKIP, and a root caller refused by the kernel
 * (EPERM at load, e.g. in a restricted container) is reported as SKIP too.
 */
static bool is_privileged(void)
{
	return geteuid() == 0;
}

/*
 * Open the object with skb_netns_cookie = with_guard, private maps (never
 * touch pins), and load it. 0, -EPERM (not allowed here) or -errno.
 */
static int load_skel(bool with_guard)
{
	struct bpf_map *map;
	int err;

	skel = egress_bpf__open();
	if (!skel)
		return -errno;
	skel->rodata->skb_netns_cookie = with_guard;
	bpf_object__for_each_map(map, skel->obj)
		bpf_map__set_pin_path(map, NULL);
	err = egress_bpf__load(skel);
	if (err) {
		egress_bpf__destroy(skel);
		skel = NULL;
	}
	return err;
}

/* The first interface of this namespace other than lo, or 0. */
static int find_dev_ifindex(void)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int found = 0;

	if (!ifs)
		return 0;
	for (i = ifs; i->if_index; i++) {
		if (i->if_index > 1) {
			found = i->if_index;
			break;
		}
	}
	if_freenameindex(ifs);
	return found;
}

/* Every case and scenario of this pass's object (skel). */
static int run_pass(void)
{
	size_t i;
	int err;

	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL,
			      NULL);
	if (!rb)
		return -errno;
	err = fill_policy();
	if (err) {
		fprintf(stderr, "test-bpf: filling maps failed\n");
		goto out;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if ((cases[i].guard == G_ON && !guard) ||
		    (cases[i].guard == G_OFF && guard))
			continue;
		run_case(&cases[i]);
	}
	test_folding();
	test_last_seen();
	test_inbound();
	test_inbound_other_ns();
	test_ringbuf_full();
out:
	ring_buffer__free(rb);
	rb = NULL;
	return err;
}

/*
 * On a kernel without the helper for cgroup_skb the guard-on object must
 * be refused (and the probe must say so); otherwise the agent's probe
 * would load a program the verifier rejects, or skip a guard it could
 * have.
 */
static void check_probe(bool have, int load_err)
{
	const char *name = "netns guard: the probe matches the kernel";
	bool ok;

	ok = CHECK(have == !load_err, name,
		   "probe says %s, the object with the guard %s (%s)",
		   have ? "yes" : "no", load_err ? "was refused" : "loads",
		   strerror(-load_err));
	if (ok) {
		printf("PASS:%s\n", name);
		passed++;
	} else {
		failed++;
	}
}

int main(void)
{
	bool have_helper;
	int err, pass;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!is_privileged()) {
		printf("test-bpf: SKIP: BPF verdict tests need root (CAP_BPF, CAP_NET_ADMIN); nothing was run\n");
		return 0;
	}
	libbpf_set_print(libbpf_print);

	err = get_netns_cookie(&netns_cookie);
	if (err) {
		fprintf(stderr, "test-bpf: SO_NETNS_COOKIE: %s\n",
			strerror(-err));
		return 1;
	}
	enter_test_cgroup();
	if (get_self_cgroup(&self_cgid, &self_level))
		fprintf(stderr,
			"test-bpf: cgroup v2 not found: exemption cases will fail\n");
	else
		printf("test-bpf: netns cookie %llu, cgroup id %llu level %u\n",
		       (unsigned long long)netns_cookie,
		       (unsigned long long)self_cgid, self_level);

	dev_ifindex = find_dev_ifindex();
	if (!dev_ifindex)
		printf("test-bpf: no interface but lo: cases sent through another interface are skipped\n");
	have_helper = probe_skb_netns_cookie();
	for (pass = 0; pass < 2; pass++) {
		guard = pass;
		/* a refusal of the guard-on object is expected without it */
		quiet = guard && !have_helper;
		err = load_skel(guard);
		quiet = false;
		if (guard)
			check_probe(have_helper, err);
		if (err == -EPERM && !guard) {
			printf("test-bpf: SKIP: loading BPF was refused (EPERM); nothing was run\n");
			err = 0;
			goto out;
		}
		if (err && guard && !have_helper) {
			printf("test-bpf: netns guard on: not run, this kernel gives cgroup_skb no bpf_get_netns_cookie() (6.15+)\n");
			err = 0;
			break;
		}
		if (err) {
			fprintf(stderr,
				"test-bpf: load (netns guard %s) failed: %s\n",
				guard ? "on" : "off", strerror(-err));
			goto out;
		}
		printf("test-bpf: netns guard %s\n", guard ? "on" : "off");
		err = run_pass();
		egress_bpf__destroy(skel);
		skel = NULL;
		if (err)
			goto out;
	}

out:
	leave_test_cgroup();
	if (err) {
		fprintf(stderr, "test-bpf: setup failed: %s\n", strerror(-err));
		return 1;
	}
	printf("bpf: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
