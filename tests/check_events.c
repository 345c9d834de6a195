// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the violation lines (agent/events.c, agent/log.c): the
 * exact bytes and key order of DNS and packet lines, JSON escaping of the
 * variable strings, folding per key and second with exact counts, and
 * events_flush() writing held lines. Lines are captured with
 * log_set_output() into a temporary file.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "egressd/events.h"
#include "egressd/log.h"
#include "egressd/loop.h"

#define MAX_LINES 256

struct capture {
	FILE *f;
	struct loop *loop;
	struct events *ev;
	char *buf;
	char *lines[MAX_LINES];
	int n;
};

static void cap_start(struct capture *c)
{
	memset(c, 0, sizeof(*c));
	c->f = tmpfile();
	ck_assert_ptr_nonnull(c->f);
	log_set_output(c->f);
	ck_assert_int_eq(loop_new(&c->loop), 0);
	ck_assert_int_eq(events_new(&c->ev, c->loop, NULL, 0), 0);
}

/* Read every line written so far (replacing the previous read). */
static int cap_read(struct capture *c)
{
	long size;
	char *p, *nl;

	log_flush();
	free(c->buf);
	/* log.c writes to the fd, not through the FILE: its size, not ftell. */
	size = lseek(fileno(c->f), 0, SEEK_END);
	ck_assert_int_ge(size, 0);
	c->buf = calloc(1, (size_t)size + 1);
	ck_assert_ptr_nonnull(c->buf);
	rewind(c->f);
	ck_assert_int_eq(fread(c->buf, 1, (size_t)size, c->f), size);
	c->n = 0;
	for (p = c->buf; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		ck_assert_msg(nl, "line without newline: %s", p);
		*nl = '\0';
		ck_assert_int_lt(c->n, MAX_LINES);
		c->lines[c->n++] = p;
	}
	return c->n;
}

static void cap_end(struct capture *c)
{
	events_free(c->ev);
	log_set_output(NULL);
	loop_free(c->loop);
	fclose(c->f);
	free(c->buf);
}

/*
 * The line after its timestamp: checks that it starts with
 * {"ts":"YYYY-MM-DDTHH:MM:SS.uuuuuuZ", and returns what follows the comma.
 */
static const char *after_ts(const char *line)
{
	regex_t re;

	ck_assert_int_eq(regcomp(&re,
				 "^\\{\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T"
				 "[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z\",",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	ck_assert_msg(!regexec(&re, line, 0, NULL, 0), "bad ts: %s", line);
	regfree(&re);
	return line + strlen("{\"ts\":\"2026-11-29T07:40:01.123456Z\",");
}

/* Parse line and check its keys come in exactly the order of keys. */
static json_t *parse_ordered(const char *line, const char *const *keys)
{
	json_error_t err;
	json_t *o = json_loads(line, 0, &err);
	const char *pos = line, *k;
	char pat[64];
	size_t i;

	ck_assert_msg(o && json_is_object(o), "not JSON: %.300s (%s)", line,
		      err.text);
	for (i = 0; keys[i]; i++) {
		snprintf(pat, sizeof(pat), "\"%s\":", keys[i]);
		k = strstr(pos, pat);
		ck_assert_msg(k, "key %s missing or out of order: %.300s",
			      keys[i], line);
		pos = k + strlen(pat);
	}
	ck_assert_uint_eq(json_object_size(o), i);
	return o;
}

static const char *const dns_keys[] = { "ts",	  "level", "event", "layer",
					"reason", "qname", "qtype", "action",
					"client", "count", NULL };
static const char *const dns_keys_noclient[] = { "ts",	  "level",  "event",
						 "layer", "reason", "qname",
						 "qtype", "action", "count",
						 NULL };
static const char *const pkt_keys[] = { "ts",	  "level",  "event", "layer",
					"reason", "action", "proto", "family",
					"dst",	  "dport",  "src",   "sport",
					"domain", "count",  NULL };

START_TEST(test_events_dns_line_shape)
{
	struct capture c;
	json_t *o;

	cap_start(&c);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY,
			     "evil.example.com", 1, "nxdomain",
			     "10.200.1.2:41234");
	ck_assert_int_eq(cap_read(&c), 1);
	ck_assert_str_eq(after_ts(c.lines[0]),
			 "\"level\":\"warn\",\"event\":\"violation\","
			 "\"layer\":\"dns\",\"reason\":\"default_deny\","
			 "\"qname\":\"evil.example.com\",\"qtype\":\"A\","
			 "\"action\":\"nxdomain\","
			 "\"client\":\"10.200.1.2:41234\",\"count\":1}");
	o = parse_ordered(c.lines[0], dns_keys);
	ck_assert_str_eq(json_string_value(json_object_get(o, "qname")),
			 "evil.example.com");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "count")), 1);
	json_decref(o);
	cap_end(&c);
}
END_TEST

START_TEST(test_events_packet_line_shape)
{
	struct capture c;
	struct in_addr s4, d4;
	struct in6_addr s6, d6;
	json_t *o;

	ck_assert_int_eq(inet_pton(AF_INET, "10.200.1.2", &s4), 1);
	ck_assert_int_eq(inet_pton(AF_INET, "10.200.1.99", &d4), 1);
	ck_assert_int_eq(inet_pton(AF_INET6, "fd00:200::2", &s6), 1);
	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::99", &d6), 1);
	cap_start(&c);
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, &s4, 50514, &d4, 443, NULL, "drop",
				1);
	events_packet_violation(c.ev, EVENTS_REASON_DOT, AF_INET6, IPPROTO_UDP,
				&s6, 0, &d6, 853, "dns.example", "observe", 1);
	events_packet_violation(c.ev, EVENTS_REASON_REBINDING, AF_INET, 47, &s4,
				0, &d4, 0, NULL, "drop", 1);
	ck_assert_int_eq(cap_read(&c), 3);
	ck_assert_str_eq(after_ts(c.lines[0]),
			 "\"level\":\"warn\",\"event\":\"violation\","
			 "\"layer\":\"packet\",\"reason\":\"default_deny\","
			 "\"action\":\"drop\",\"proto\":\"tcp\",\"family\":4,"
			 "\"dst\":\"10.200.1.99\",\"dport\":443,"
			 "\"src\":\"10.200.1.2\",\"sport\":50514,"
			 "\"domain\":null,\"count\":1}");
	ck_assert_str_eq(
		after_ts(c.lines[1]),
		"\"level\":\"warn\",\"event\":\"violation\","
		"\"layer\":\"packet\",\"reason\":\"dot\","
		"\"action\":\"observe\",\"proto\":\"udp\",\"family\":6,"
		"\"dst\":\"2001:db8::99\",\"dport\":853,"
		"\"src\":\"fd00:200::2\",\"sport\":0,"
		"\"domain\":\"dns.example\",\"count\":1}");
	/* An unnamed protocol is its number, as a string. */
	ck_assert_str_eq(after_ts(c.lines[2]),
			 "\"level\":\"warn\",\"event\":\"violation\","
			 "\"layer\":\"packet\",\"reason\":\"rebinding\","
			 "\"action\":\"drop\",\"proto\":\"47\",\"family\":4,"
			 "\"dst\":\"10.200.1.99\",\"dport\":0,"
			 "\"src\":\"10.200.1.2\",\"sport\":0,"
			 "\"domain\":null,\"count\":1}");
	o = parse_ordered(c.lines[0], pkt_keys);
	ck_assert(json_is_null(json_object_get(o, "domain")));
	json_decref(o);
	o = parse_ordered(c.lines[1], pkt_keys);
	ck_assert_str_eq(json_string_value(json_object_get(o, "domain")),
			 "dns.example");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "family")), 6);
	json_decref(o);
	cap_end(&c);
}
END_TEST

START_TEST(test_events_qname_escaping)
{
	/* Presentation names: \. and \DDD escapes, a quote, a control. */
	static const char *const names[] = {
		"a\\.b\\092c.example",	"x\\\\y\\000z",
		"q\"uote\\034.example", "tab\there\x01\x7f/",
		"caf\xc3\xa9.example",
	};
	static const char *const want[] = {
		"\"qname\":\"a\\\\.b\\\\092c.example\",",
		"\"qname\":\"x\\\\\\\\y\\\\000z\",",
		"\"qname\":\"q\\\"uote\\\\034.example\",",
		"\"qname\":\"tab\\there\\u0001\x7f/\",",
		"\"qname\":\"caf\xc3\xa9.example\",",
	};
	struct capture c;
	json_t *o;
	size_t i;

	cap_start(&c);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		events_dns_violation(c.ev, EVENTS_REASON_DENY_RULE, names[i],
				     28, "nxdomain", "c\"lient");
	ck_assert_int_eq(cap_read(&c), (int)i);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ck_assert_msg(strstr(c.lines[i], want[i]), "%s lacks %s",
			      c.lines[i], want[i]);
		ck_assert_ptr_nonnull(
			strstr(c.lines[i], "\"client\":\"c\\\"lient\","));
		o = parse_ordered(c.lines[i], dns_keys);
		ck_assert_str_eq(json_string_value(json_object_get(o, "qname")),
				 names[i]);
		ck_assert_str_eq(json_string_value(json_object_get(o, "qtype")),
				 "AAAA");
		json_decref(o);
	}
	cap_end(&c);
}
END_TEST

/* A name longer than any presentation name still makes a whole line. */
START_TEST(test_events_long_qname)
{
	struct capture c;
	char name[5000];
	json_t *o;
	size_t i;

	for (i = 0; i < sizeof(name) - 1; i++)
		name[i] = i % 3 ? 'a' : '\\';
	name[i] = '\0';
	cap_start(&c);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, name, 1,
			     "nxdomain", NULL);
	ck_assert_int_eq(cap_read(&c), 1);
	o = parse_ordered(c.lines[0], dns_keys_noclient);
	ck_assert_str_eq(json_string_value(json_object_get(o, "qname")), name);
	json_decref(o);
	cap_end(&c);
}
END_TEST

START_TEST(test_events_client_omitted)
{
	struct capture c;
	json_t *o;

	cap_start(&c);
	events_dns_violation(c.ev, EVENTS_REASON_IPV6_DISABLED, "v6.example",
			     28, "nodata", NULL);
	ck_assert_int_eq(cap_read(&c), 1);
	ck_assert_str_eq(after_ts(c.lines[0]),
			 "\"level\":\"warn\",\"event\":\"violation\","
			 "\"layer\":\"dns\",\"reason\":\"ipv6_disabled\","
			 "\"qname\":\"v6.example\",\"qtype\":\"AAAA\","
			 "\"action\":\"nodata\",\"count\":1}");
	o = parse_ordered(c.lines[0], dns_keys_noclient);
	ck_assert_ptr_null(json_object_get(o, "client"));
	json_decref(o);
	cap_end(&c);
}
END_TEST

START_TEST(test_events_domain_null_vs_string)
{
	struct capture c;
	uint8_t s[4] = { 10, 0, 0, 2 }, d1[4] = { 10, 0, 0, 9 },
		d2[4] = { 10, 0, 0, 10 };

	cap_start(&c);
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 1, d1, 80, NULL, "drop", 1);
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 1, d2, 80, "we\\\"ird.example",
				"drop", 1);
	ck_assert_int_eq(cap_read(&c), 2);
	ck_assert_ptr_nonnull(
		strstr(c.lines[0], ",\"domain\":null,\"count\":1}"));
	ck_assert_ptr_nonnull(
		strstr(c.lines[1],
		       ",\"domain\":\"we\\\\\\\"ird.example\",\"count\":1}"));
	json_decref(parse_ordered(c.lines[1], pkt_keys));
	cap_end(&c);
}
END_TEST

/* The rule that decided follows domain; no rule, no member. */
START_TEST(test_events_packet_rule_member)
{
	static const char *const keys[] = {
		"ts",	  "level",  "event", "layer", "reason", "action",
		"proto",  "family", "dst",   "dport", "src",	"sport",
		"domain", "rule",   "count", NULL
	};
	struct capture c;
	uint8_t s[4] = { 10, 0, 0, 2 }, d1[4] = { 10, 0, 0, 11 },
		d2[4] = { 10, 0, 0, 12 };
	json_t *o;

	cap_start(&c);
	events_packet_violation_rule(c.ev, EVENTS_REASON_DENY_RULE, AF_INET,
				     IPPROTO_TCP, s, 1, d1, 80, NULL,
				     "deny.always[2]", "drop", 1);
	events_packet_violation_rule(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				     IPPROTO_TCP, s, 1, d2, 80, NULL, NULL,
				     "drop", 1);
	ck_assert_int_eq(cap_read(&c), 2);
	ck_assert_ptr_nonnull(strstr(
		c.lines[0],
		",\"domain\":null,\"rule\":\"deny.always[2]\",\"count\":1}"));
	o = parse_ordered(c.lines[0], keys);
	ck_assert_str_eq(json_string_value(json_object_get(o, "rule")),
			 "deny.always[2]");
	json_decref(o);
	ck_assert_ptr_null(strstr(c.lines[1], "\"rule\""));
	cap_end(&c);
}
END_TEST

static void stop_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	loop_stop(loop);
}

/* Run the loop (the fold timer) for ms milliseconds. */
static void run_for(struct loop *loop, uint64_t ms)
{
	struct loop_timer *t = loop_timer_new(loop, stop_cb, NULL);

	ck_assert_ptr_nonnull(t);
	loop_timer_arm(t, ms);
	ck_assert_int_eq(loop_run(loop), 0);
	loop_timer_free(t);
}

START_TEST(test_events_fold_window)
{
	struct capture c;
	json_t *o;

	cap_start(&c);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "hammer.example",
			     1, "nxdomain", "10.0.0.2:1001");
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "hammer.example",
			     1, "nxdomain", "10.0.0.2:1002");
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "hammer.example",
			     1, "nxdomain", "10.0.0.2:1003");
	/* The first at once, the other two held. */
	ck_assert_int_eq(cap_read(&c), 1);
	ck_assert_ptr_nonnull(strstr(c.lines[0], "1001\",\"count\":1}"));
	run_for(c.loop, 1300);
	/* The window is over: one line for the two, as the last of them. */
	ck_assert_int_eq(cap_read(&c), 2);
	ck_assert_str_eq(after_ts(c.lines[1]),
			 "\"level\":\"warn\",\"event\":\"violation\","
			 "\"layer\":\"dns\",\"reason\":\"default_deny\","
			 "\"qname\":\"hammer.example\",\"qtype\":\"A\","
			 "\"action\":\"nxdomain\","
			 "\"client\":\"10.0.0.2:1003\",\"count\":2}");
	o = parse_ordered(c.lines[1], dns_keys);
	json_decref(o);
	/* A new window: written at once again. */
	run_for(c.loop, 1100);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "hammer.example",
			     1, "nxdomain", "10.0.0.2:1004");
	ck_assert_int_eq(cap_read(&c), 3);
	ck_assert_ptr_nonnull(strstr(c.lines[2], "1004\",\"count\":1}"));
	cap_end(&c);
}
END_TEST

START_TEST(test_events_fold_distinct_keys)
{
	struct capture c;
	int i;

	cap_start(&c);
	/* Each differs from the first in one part of the key. */
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "k.example", 1,
			     "nxdomain", NULL);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "k2.example", 1,
			     "nxdomain", NULL);
	events_dns_violation(c.ev, EVENTS_REASON_DENY_RULE, "k.example", 1,
			     "nxdomain", NULL);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "k.example", 28,
			     "nxdomain", NULL);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "k.example", 1,
			     "observe", NULL);
	/* A different client is the same key. */
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "k.example", 1,
			     "nxdomain", "10.0.0.2:53");
	ck_assert_int_eq(cap_read(&c), 5);
	for (i = 0; i < 5; i++)
		ck_assert_ptr_nonnull(strstr(c.lines[i], ",\"count\":1}"));
	ck_assert_ptr_null(strstr(c.buf, "10.0.0.2:53"));
	events_flush(c.ev);
	ck_assert_int_eq(cap_read(&c), 6);
	ck_assert_ptr_nonnull(
		strstr(c.lines[5], "\"client\":\"10.0.0.2:53\",\"count\":1}"));
	cap_end(&c);
}
END_TEST

START_TEST(test_events_fold_packets_summed)
{
	struct capture c;
	uint8_t s[4] = { 10, 0, 0, 2 }, d[4] = { 10, 0, 0, 9 },
		d2[4] = { 10, 0, 0, 10 };

	cap_start(&c);
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 1000, d, 443, NULL, "drop", 5);
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 1001, d, 443, NULL, "drop", 3);
	/* Same destination, other source and domain: same key. */
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_UDP, s, 1002, d, 443, "late.example",
				"drop", 4);
	/* 0 packets counts as one. */
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_UDP, s, 1003, d, 443, "late.example",
				"drop", 0);
	/* Another port is another key. */
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 1004, d, 80, NULL, "drop", 2);
	/* Another address is another key. */
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 1005, d2, 443, NULL, "drop", 1);
	ck_assert_int_eq(cap_read(&c), 3);
	ck_assert_ptr_nonnull(strstr(c.lines[0], "\"sport\":1000,"));
	ck_assert_ptr_nonnull(strstr(c.lines[0], ",\"count\":5}"));
	ck_assert_ptr_nonnull(strstr(c.lines[1], "\"dport\":80,"));
	ck_assert_ptr_nonnull(strstr(c.lines[1], ",\"count\":2}"));
	ck_assert_ptr_nonnull(strstr(c.lines[2], "\"dst\":\"10.0.0.10\","));
	ck_assert_uint_eq(events_count(c.ev, "packet",
				       EVENTS_REASON_DEFAULT_DENY),
			  5 + 3 + 4 + 1 + 2 + 1);
	events_flush(c.ev);
	ck_assert_int_eq(cap_read(&c), 4);
	ck_assert_str_eq(after_ts(c.lines[3]),
			 "\"level\":\"warn\",\"event\":\"violation\","
			 "\"layer\":\"packet\",\"reason\":\"default_deny\","
			 "\"action\":\"drop\",\"proto\":\"udp\",\"family\":4,"
			 "\"dst\":\"10.0.0.9\",\"dport\":443,"
			 "\"src\":\"10.0.0.2\",\"sport\":1003,"
			 "\"domain\":\"late.example\",\"count\":8}");
	cap_end(&c);
}
END_TEST

/* A held report with a much longer line than the first one of its key. */
START_TEST(test_events_fold_held_longer_line)
{
	struct capture c;
	uint8_t s[4] = { 10, 0, 0, 2 }, d[4] = { 10, 0, 0, 9 };
	char domain[400];
	json_t *o;

	memset(domain, 'd', sizeof(domain) - 1);
	domain[sizeof(domain) - 1] = '\0';
	cap_start(&c);
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 1, d, 443, NULL, "drop", 1);
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 2, d, 443, domain, "drop", 1);
	events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 3, d, 443, domain, "drop", 1);
	ck_assert_int_eq(cap_read(&c), 1);
	events_flush(c.ev);
	ck_assert_int_eq(cap_read(&c), 2);
	o = parse_ordered(c.lines[1], pkt_keys);
	ck_assert_str_eq(json_string_value(json_object_get(o, "domain")),
			 domain);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "sport")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "count")), 2);
	json_decref(o);
	cap_end(&c);
}
END_TEST

START_TEST(test_events_counters_exact)
{
	uint8_t a[4] = { 192, 0, 2, 1 };
	struct capture c;
	int i, lines;

	cap_start(&c);
	for (i = 0; i < 1000; i++)
		events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY,
				     i % 2 ? "odd.example" : "even.example", 1,
				     "nxdomain", NULL);
	for (i = 0; i < 7; i++)
		events_dns_violation(c.ev, EVENTS_REASON_DENY_RULE, "r.example",
				     16, "nxdomain", NULL);
	for (i = 0; i < 10; i++)
		events_packet_violation(c.ev, EVENTS_REASON_DENY_RULE, AF_INET,
					IPPROTO_TCP, a, 1, a, 22, NULL, "drop",
					(uint64_t)i);
	ck_assert_uint_eq(events_count(c.ev, "dns", EVENTS_REASON_DEFAULT_DENY),
			  1000);
	ck_assert_uint_eq(events_count(c.ev, "dns", EVENTS_REASON_DENY_RULE),
			  7);
	/* 1 + 1 + 2 + ... + 9 (0 packets counts as one). */
	ck_assert_uint_eq(events_count(c.ev, "packet", EVENTS_REASON_DENY_RULE),
			  46);
	ck_assert_uint_eq(events_count(c.ev, "dns", EVENTS_REASON_MAX), 0);
	ck_assert_int_eq(cap_read(&c), 4);
	events_flush(c.ev);
	lines = cap_read(&c);
	ck_assert_int_eq(lines, 8);
	/* The counts of the lines add up to the counters. */
	{
		uint64_t sum[3] = { 0, 0, 0 };
		json_t *o;

		for (i = 0; i < lines; i++) {
			o = json_loads(c.lines[i], 0, NULL);
			ck_assert_ptr_nonnull(o);
			if (strstr(c.lines[i], "\"layer\":\"packet\""))
				sum[2] += json_integer_value(
					json_object_get(o, "count"));
			else if (strstr(c.lines[i], "deny_rule"))
				sum[1] += json_integer_value(
					json_object_get(o, "count"));
			else
				sum[0] += json_integer_value(
					json_object_get(o, "count"));
			json_decref(o);
		}
		ck_assert_uint_eq(sum[0], 1000);
		ck_assert_uint_eq(sum[1], 7);
		ck_assert_uint_eq(sum[2], 46);
	}
	cap_end(&c);
}
END_TEST

START_TEST(test_events_flush_writes_held)
{
	struct capture c;
	int i;

	cap_start(&c);
	for (i = 0; i < 4; i++)
		events_dns_violation(c.ev, EVENTS_REASON_DOH, "held.example",
				     65, "nxdomain", "10.0.0.3:5353");
	ck_assert_int_eq(cap_read(&c), 1);
	events_flush(c.ev);
	log_emit(LOG_LVL_INFO, "stop", json_pack("{s:s}", "reason", "signal"));
	ck_assert_int_eq(cap_read(&c), 3);
	ck_assert_str_eq(after_ts(c.lines[1]),
			 "\"level\":\"warn\",\"event\":\"violation\","
			 "\"layer\":\"dns\",\"reason\":\"doh\","
			 "\"qname\":\"held.example\",\"qtype\":\"HTTPS\","
			 "\"action\":\"nxdomain\","
			 "\"client\":\"10.0.0.3:5353\",\"count\":3}");
	ck_assert_str_eq(after_ts(c.lines[2]),
			 "\"level\":\"info\",\"event\":\"stop\","
			 "\"reason\":\"signal\"}");
	/* Nothing left held: a second flush writes nothing. */
	events_flush(c.ev);
	ck_assert_int_eq(cap_read(&c), 3);
	cap_end(&c);
}
END_TEST

/* Below the log level nothing is written, and counting goes on. */
START_TEST(test_events_level_error_silent)
{
	struct capture c;

	cap_start(&c);
	log_set_level(LOG_LVL_ERROR);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "quiet.example",
			     1, "nxdomain", NULL);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "quiet.example",
			     1, "nxdomain", NULL);
	events_flush(c.ev);
	ck_assert_int_eq(cap_read(&c), 0);
	ck_assert_uint_eq(events_count(c.ev, "dns", EVENTS_REASON_DEFAULT_DENY),
			  2);
	log_set_level(LOG_LVL_INFO);
	cap_end(&c);
}
END_TEST

/* log_json_str escapes every byte as jansson's compact dump does. */
START_TEST(test_events_json_escape_matches_jansson)
{
	static const char *const utf8[] = {
		"\xc3\xa9",
		"\xe2\x82\xac",
		"\xf0\x9f\x98\x80",
		"\xef\xbf\xbf",
	};
	static const char *const bad[] = {
		"\x80",
		"\xc0\xaf",
		"\xc1\xbf",
		"\xc3",
		"\xc3(",
		"\xe0\x80\xaf",
		"\xed\xa0\x80",
		"\xf4\x90\x80\x80",
		"\xf5\x80\x80\x80",
		"\xff",
	};
	char in[8], out[64], *want;
	size_t len;
	json_t *j;
	int c;
	size_t i;

	for (c = 1; c < 0x80; c++) {
		snprintf(in, sizeof(in), "a%cb", c);
		j = json_string(in);
		want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		len = 0;
		ck_assert_int_eq(log_json_str(out, sizeof(out), &len, in), 0);
		ck_assert_uint_eq(len, strlen(want));
		out[len] = '\0';
		ck_assert_msg(!strcmp(out, want), "byte 0x%02x: %s != %s", c,
			      out, want);
		free(want);
		json_decref(j);
	}
	for (i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++) {
		len = 0;
		ck_assert_int_eq(log_json_str(out, sizeof(out), &len, utf8[i]),
				 0);
		ck_assert_uint_eq(len, strlen(utf8[i]) + 2);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_ptr_null(json_string(bad[i]));
		len = 3;
		ck_assert_int_eq(log_json_str(out, sizeof(out), &len, bad[i]),
				 -EILSEQ);
		ck_assert_uint_eq(len, 3);
	}
	/* Too small: nothing past size written, the full length counted. */
	memset(out, 'x', sizeof(out));
	len = 0;
	ck_assert_int_eq(log_json_str(out, 4, &len, "a\"bcdef"), 0);
	ck_assert_uint_eq(len, 10);
	ck_assert_int_eq(out[4], 'x');
}
END_TEST

/* log_emit_raw writes what log_emit writes for the same members. */
START_TEST(test_events_emit_raw_matches_emit)
{
	static const char members[] = "\"a\":\"x\\\"y\",\"n\":3,\"z\":null";
	struct capture c;

	cap_start(&c);
	log_emit(LOG_LVL_WARN, "violation",
		 json_pack("{s:s, s:i, s:n}", "a", "x\"y", "n", 3, "z"));
	log_emit_raw(LOG_LVL_WARN, "violation", members, strlen(members));
	log_emit(LOG_LVL_ERROR, "error", NULL);
	log_emit_raw(LOG_LVL_ERROR, "error", "", 0);
	log_emit_raw(LOG_LVL_DEBUG, "debug", "", 0); /* below the level */
	ck_assert_int_eq(cap_read(&c), 4);
	ck_assert_str_eq(after_ts(c.lines[0]), after_ts(c.lines[1]));
	ck_assert_str_eq(after_ts(c.lines[2]), after_ts(c.lines[3]));
	ck_assert_str_eq(after_ts(c.lines[3]),
			 "\"level\":\"error\",\"event\":\"error\"}");
	cap_end(&c);
}
END_TEST

/* Sum of "count" over the lines of event ev ("violation", …) whose text
 * holds needle (NULL: every such line); *nlines gets how many there were. */
static uint64_t count_sum(struct capture *c, const char *ev, const char *needle,
			  int *nlines)
{
	char pat[64];
	uint64_t sum = 0;
	json_t *o;
	int i;

	snprintf(pat, sizeof(pat), "\"event\":\"%s\",", ev);
	*nlines = 0;
	for (i = 0; i < c->n; i++) {
		if (!strstr(c->lines[i], pat))
			continue;
		if (needle && !strstr(c->lines[i], needle))
			continue;
		o = json_loads(c->lines[i], 0, NULL);
		ck_assert_ptr_nonnull(o);
		sum += (uint64_t)json_integer_value(
			json_object_get(o, "count"));
		json_decref(o);
		(*nlines)++;
	}
	return sum;
}

/* Whether a line holds needle. */
static int any_line(struct capture *c, const char *needle)
{
	int i;

	for (i = 0; i < c->n; i++)
		if (strstr(c->lines[i], needle))
			return 1;
	return 0;
}

static const char *const summary_keys[] = { "ts",     "level",	"event",
					    "layer",  "reason", "domain",
					    "qname",  "qtype",	"action",
					    "client", "count",	NULL };

/*
 * 1000 denied names, each new, under one registered domain (a tunnel):
 * 10 lines at once, then one violation_summary line for the rest once the
 * second is over; the counts add up to the queries.
 */
START_TEST(test_events_flood_distinct_names)
{
	struct capture c;
	char name[64];
	int i, n;
	json_t *o;

	cap_start(&c);
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "x%d.Evil.Example", i);
		events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, name, 1,
				     "nxdomain", "10.0.0.2:53");
	}
	ck_assert_int_eq(cap_read(&c), 10);
	ck_assert_uint_eq(count_sum(&c, "violation", NULL, &n), 10);
	run_for(c.loop, 1400);
	ck_assert_int_eq(cap_read(&c), 11);
	ck_assert_str_eq(after_ts(c.lines[10]),
			 "\"level\":\"warn\",\"event\":\"violation_summary\","
			 "\"layer\":\"dns\",\"reason\":\"default_deny\","
			 "\"domain\":\"evil.example\","
			 "\"qname\":\"x999.Evil.Example\",\"qtype\":\"A\","
			 "\"action\":\"nxdomain\","
			 "\"client\":\"10.0.0.2:53\",\"count\":990}");
	o = parse_ordered(c.lines[10], summary_keys);
	json_decref(o);
	/* A new second: lines again. */
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "y.evil.example",
			     1, "nxdomain", NULL);
	ck_assert_int_eq(cap_read(&c), 12);
	ck_assert_ptr_nonnull(strstr(c.lines[11], "\"event\":\"violation\","));
	cap_end(&c);
}
END_TEST

/*
 * Distinct registered domains: 100 lines in all per second, the rest in
 * one catch-all summary of the (reason, action), "domain":null. Other
 * reasons and actions are other groups.
 */
START_TEST(test_events_flood_many_domains)
{
	struct capture c;
	char name[64];
	int i, n, ns;
	uint64_t sum;

	cap_start(&c);
	for (i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "a.n%d.example", i);
		events_dns_violation(c.ev, EVENTS_REASON_DENY_RULE, name, 28,
				     "nxdomain", NULL);
	}
	ck_assert_int_eq(cap_read(&c), 100);
	events_flush(c.ev);
	ck_assert_int_eq(cap_read(&c), 101);
	sum = count_sum(&c, "violation", NULL, &n) +
	      count_sum(&c, "violation_summary", NULL, &ns);
	ck_assert_int_eq(n, 100);
	ck_assert_int_eq(ns, 1);
	ck_assert_uint_eq(sum, 500);
	ck_assert_str_eq(after_ts(c.lines[100]),
			 "\"level\":\"warn\",\"event\":\"violation_summary\","
			 "\"layer\":\"dns\",\"reason\":\"deny_rule\","
			 "\"domain\":null,"
			 "\"qname\":\"a.n499.example\",\"qtype\":\"AAAA\","
			 "\"action\":\"nxdomain\",\"count\":400}");
	cap_end(&c);
}
END_TEST

/*
 * Nothing is lost in a mixed flood: repeats of a few names, new names
 * under two domains, other reasons; held lines and summaries are written
 * by events_flush(), and the counts of all lines add up per reason.
 */
START_TEST(test_events_flood_counts_add_up)
{
	struct capture c;
	char name[64];
	int i, n1, n2, n3, n4;
	uint64_t dd, rb;

	cap_start(&c);
	for (i = 0; i < 3000; i++) {
		if (i % 3 == 0)
			snprintf(name, sizeof(name), "r%d.bbc.co.uk", i % 7);
		else if (i % 3 == 1)
			snprintf(name, sizeof(name), "t%d.news.bbc.co.uk", i);
		else
			snprintf(name, sizeof(name), "t%d.other.example", i);
		events_dns_violation(c.ev,
				     i % 10 ? EVENTS_REASON_DEFAULT_DENY :
					      EVENTS_REASON_REBINDING,
				     name, 1, i % 10 ? "nxdomain" : "stripped",
				     NULL);
	}
	events_flush(c.ev);
	cap_read(&c);
	ck_assert_int_le(c.n, 60);
	dd = count_sum(&c, "violation", "default_deny", &n1) +
	     count_sum(&c, "violation_summary", "default_deny", &n2);
	rb = count_sum(&c, "violation", "rebinding", &n3) +
	     count_sum(&c, "violation_summary", "rebinding", &n4);
	ck_assert_uint_eq(dd, 2700);
	ck_assert_uint_eq(rb, 300);
	ck_assert_uint_eq(events_count(c.ev, "dns", EVENTS_REASON_DEFAULT_DENY),
			  2700);
	ck_assert_uint_eq(events_count(c.ev, "dns", EVENTS_REASON_REBINDING),
			  300);
	/* news.bbc.co.uk is under bbc.co.uk: one group. */
	ck_assert_int_eq(any_line(&c, "\"domain\":\"bbc.co.uk\""), 1);
	ck_assert_int_eq(any_line(&c, "\"domain\":\"news.bbc.co.uk\""), 0);
	ck_assert_int_eq(any_line(&c, "\"domain\":\"other.example\""), 1);
	cap_end(&c);
}
END_TEST

/* Packet lines have no flood budget: each new key is a line. */
START_TEST(test_events_flood_packets_unbudgeted)
{
	struct capture c;
	uint8_t s[4] = { 10, 0, 0, 2 }, d[4] = { 10, 0, 0, 9 };
	int i;

	cap_start(&c);
	for (i = 0; i < 200; i++)
		events_packet_violation(c.ev, EVENTS_REASON_DEFAULT_DENY,
					AF_INET, IPPROTO_UDP, s, 1000, d,
					(uint16_t)(2000 + i), NULL, "drop", 1);
	ck_assert_int_eq(cap_read(&c), 200);
	cap_end(&c);
}
END_TEST

/* One reason table: names, numbers and the layers each comes from. */
/*
 * Reporters are objects: two count apart, one without a loop writes every
 * line as it comes (nothing held), and a NULL handle reports nothing.
 */
START_TEST(test_events_objects_independent)
{
	uint8_t s[4] = { 10, 0, 0, 2 }, d[4] = { 10, 0, 0, 9 };
	struct events *other;
	struct capture c;

	cap_start(&c);
	ck_assert_int_eq(events_new(&other, NULL, NULL, 0), 0);
	events_dns_violation(c.ev, EVENTS_REASON_DEFAULT_DENY, "a.example", 1,
			     "nxdomain", NULL);
	events_dns_violation(other, EVENTS_REASON_DEFAULT_DENY, "b.example", 1,
			     "nxdomain", NULL);
	events_dns_violation(other, EVENTS_REASON_DEFAULT_DENY, "b.example", 1,
			     "nxdomain", NULL);
	events_packet_violation(NULL, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				IPPROTO_TCP, s, 1, d, 443, NULL, "drop", 1);
	ck_assert_uint_eq(events_count(c.ev, "dns", EVENTS_REASON_DEFAULT_DENY),
			  1);
	ck_assert_uint_eq(
		events_count(other, "dns", EVENTS_REASON_DEFAULT_DENY), 2);
	ck_assert_uint_eq(events_count(NULL, "dns", EVENTS_REASON_DEFAULT_DENY),
			  0);
	/* a.example once, b.example twice: no loop, no folding. */
	ck_assert_int_eq(cap_read(&c), 3);
	events_free(other);
	ck_assert_int_eq(cap_read(&c), 3);
	cap_end(&c);
}
END_TEST

START_TEST(test_events_reason_table)
{
	enum events_reason r;
	unsigned int i;

	for (i = 0; i < EVENTS_REASON_MAX; i++) {
		const char *name = reason_name(i);

		ck_assert_str_eq(reason_name((enum events_reason)i), name);
		ck_assert_int_eq(reason_from_name(name, strlen(name),
						  REASON_ANY, &r),
				 0);
		ck_assert_uint_eq(r, i);
	}
	ck_assert_str_eq(reason_name(EVENTS_REASON_MAX), "unknown");
	ck_assert_str_eq(reason_name(EVENTS_REASON_MAX), "unknown");
	ck_assert_int_eq(reason_from_name("rebinding", 9, REASON_PACKET, &r),
			 -ENOENT);
	ck_assert_int_eq(reason_from_name("dot", 2, REASON_PACKET, &r),
			 -ENOENT);
	ck_assert_str_eq(reason_name(EGRESSD_REASON_API), "api");
	ck_assert(reason_info(EVENTS_REASON_DOT)->layers & REASON_BPF);
	ck_assert(!(reason_info(EVENTS_REASON_RAW_FRAME)->layers & REASON_BPF));
}
END_TEST

static Suite *events_suite(void)
{
	Suite *s = suite_create("events");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_events_dns_line_shape);
	tcase_add_test(tc, test_events_packet_line_shape);
	tcase_add_test(tc, test_events_qname_escaping);
	tcase_add_test(tc, test_events_long_qname);
	tcase_add_test(tc, test_events_client_omitted);
	tcase_add_test(tc, test_events_domain_null_vs_string);
	tcase_add_test(tc, test_events_packet_rule_member);
	tcase_add_test(tc, test_events_fold_window);
	tcase_add_test(tc, test_events_fold_distinct_keys);
	tcase_add_test(tc, test_events_fold_packets_summed);
	tcase_add_test(tc, test_events_fold_held_longer_line);
	tcase_add_test(tc, test_events_counters_exact);
	tcase_add_test(tc, test_events_flush_writes_held);
	tcase_add_test(tc, test_events_level_error_silent);
	tcase_add_test(tc, test_events_json_escape_matches_jansson);
	tcase_add_test(tc, test_events_emit_raw_matches_emit);
	tcase_add_test(tc, test_events_flood_distinct_names);
	tcase_add_test(tc, test_events_flood_many_domains);
	tcase_add_test(tc, test_events_flood_counts_add_up);
	tcase_add_test(tc, test_events_flood_packets_unbudgeted);
	tcase_add_test(tc, test_events_objects_independent);
	tcase_add_test(tc, test_events_reason_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(events_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
