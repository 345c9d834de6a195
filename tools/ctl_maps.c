// SPDX-License-Identifier: GPL-2.0-only
/*
 * egressctl maps: reads egressd's pinned BPF maps under the pin dir with
 * libbpf (docs/bpf.md; layouts in include/egressd/shared.h) and prints
 * them as text or JSON: the datapath config, learned addresses with
 * their remaining lifetime, static set sizes, per-CPU counters summed.
 * It needs no API, so it works while the agent is down. A pin whose key
 * or value size differs from shared.h's (another egressd version) is
 * refused rather than misread.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/types.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>

#include "egressd/reason.h"
#include "egressd/shared.h"
#include "egressd/util.h"
#include "egressctl.h"

/*
 * The name of counters[i]: below EGRESSD_CNT_ALLOWED a violation reason,
 * from egressd's one reason table (spelled as in log lines), then the
 * other packet counters.
 */
static const char *counter_name(unsigned int i)
{
	static const char *const rest[EGRESSD_CNT_MAX - EGRESSD_CNT_ALLOWED] = {
		[EGRESSD_CNT_ALLOWED - EGRESSD_CNT_ALLOWED] = "allowed",
		[EGRESSD_CNT_RINGBUF_DROPS - EGRESSD_CNT_ALLOWED] =
			"ringbuf_drops",
		[EGRESSD_CNT_BIND_REFUSED - EGRESSD_CNT_ALLOWED] =
			"bind_refused",
	};
	const char *n;

	if (i < EGRESSD_CNT_ALLOWED) {
		n = reason_name(i);
		return n ? n : "?";
	}
	i -= EGRESSD_CNT_ALLOWED;
	return i < ARRAY_SIZE(rest) && rest[i] ? rest[i] : "?";
}

static const char *const lpm_maps[] = {
	EGRESSD_MAP_ALLOW_V4,	  EGRESSD_MAP_ALLOW_V6,	    EGRESSD_MAP_DENY_V4,
	EGRESSD_MAP_DENY_V6,	  EGRESSD_MAP_DOH_V4,	    EGRESSD_MAP_DOH_V6,
	EGRESSD_MAP_DOH_ALLOW_V4, EGRESSD_MAP_DOH_ALLOW_V6,
};

/*
 * Open pinned map NAME and check that its key and value sizes are the
 * ones shared.h describes (a pin of another egressd version must not be
 * misread). Returns an fd or -errno (-EPROTO: layout mismatch).
 */
/*
 * A static-set entry's rule id as egressd's log lines name the rule
 * (shared.h, docs/bpf.md "Rule ids"); an id of no known origin in hex.
 */
static int map_open(struct ctl *ctl, const char *name, __u32 key_size,
		    __u32 value_size)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd, ret;

	if (snprintf(path, sizeof(path), "%s/%s", ctl->pin_dir, name) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	ret = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (ret) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (info.key_size != key_size || info.value_size != value_size) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

/* Exit code and message for a map that cannot be opened. */
static int map_error(struct ctl *ctl, const char *name, int err)
{
	if (err == -ENOENT)
		return ctl_err(
			ctl, CTL_EXIT_CONN,
			"no pinned map %s/%s: egressd's BPF layer is not loaded (or --pin-dir, OPENSANDBOX_EGRESS_BPF_PIN_DIR is wrong)",
			ctl->pin_dir, name);
	if (err == -EPROTO)
		return ctl_err(
			ctl, CTL_EXIT_ERR,
			"%s/%s: key/value sizes differ from this egressctl's (another egressd version?)",
			ctl->pin_dir, name);
	return ctl_err(ctl, CTL_EXIT_ERR, "cannot open %s/%s: %s%s",
		       ctl->pin_dir, name, strerror(-err),
		       err == -EPERM || err == -EACCES ?
			       " (needs root or CAP_BPF)" :
			       "");
}

struct learned_ent {
	char addr[INET6_ADDRSTRLEN];
	__s64 expires_in_ns;
	__s64 idle_ns; /* since last use; < 0: never used */
	__u32 generation;
};

static int learned_cmp(const void *a, const void *b)
{
	const struct learned_ent *x = a, *y = b;

	return strcmp(x->addr, y->addr);
}

/* Read learned_v4/6 into *entsp (sorted). 0 or -errno. */
static int learned_read(struct ctl *ctl, int family, __u64 now,
			struct learned_ent **entsp, size_t *np)
{
	const char *name = family == 4 ? EGRESSD_MAP_LEARNED_V4 :
					 EGRESSD_MAP_LEARNED_V6;
	size_t klen = family == 4 ? sizeof(struct egressd_learned4_key) :
				    sizeof(struct egressd_learned6_key);
	__u8 key[16], next[16];
	struct egressd_learned_val val;
	struct learned_ent *ents = NULL, *p;
	size_t n = 0, cap = 0;
	void *prev = NULL;
	int fd, ret = 0;

	fd = map_open(ctl, name, klen, sizeof(val));
	if (fd < 0)
		return fd;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, klen);
		prev = key;
		if (bpf_map_lookup_elem(fd, key, &val))
			continue; /* deleted meanwhile */
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			p = realloc(ents, cap * sizeof(*ents));
			if (!p) {
				ret = -ENOMEM;
				break;
			}
			ents = p;
		}
		p = &ents[n++];
		inet_ntop(family == 4 ? AF_INET : AF_INET6, key, p->addr,
			  sizeof(p->addr));
		p->expires_in_ns = (__s64)(val.expires_ns - now);
		p->idle_ns =
			val.last_seen_ns ? (__s64)(now - val.last_seen_ns) : -1;
		p->generation = val.generation;
	}
	close(fd);
	if (ret) {
		free(ents);
		return ret;
	}
	if (n)
		qsort(ents, n, sizeof(*ents), learned_cmp);
	*entsp = ents;
	*np = n;
	return 0;
}

/* Whole seconds, rounding towards minus infinity. */
static long long ns_to_s(__s64 ns)
{
	return ns >= 0 ? ns / 1000000000LL :
			 -((-ns + 999999999LL) / 1000000000LL);
}

static json_t *learned_json(const struct learned_ent *e, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < n; i++)
		json_array_append_new(
			arr,
			json_pack("{s:s, s:I, s:b, s:o, s:I}", "addr",
				  e[i].addr, "expires_in_s",
				  (json_int_t)ns_to_s(e[i].expires_in_ns),
				  "expired", e[i].expires_in_ns <= 0,
				  "last_use_s_ago",
				  e[i].idle_ns < 0 ?
					  json_null() :
					  json_integer(ns_to_s(e[i].idle_ns)),
				  "generation", (json_int_t)e[i].generation));
	return arr;
}

static void learned_print(const char *name, const struct learned_ent *e,
			  size_t n)
{
	char when[32], used[32];
	size_t i;

	printf("%s: %zu address%s\n", name, n, n == 1 ? "" : "es");
	if (!n)
		return;
	printf("  %-39s  %12s  %12s  %10s\n", "ADDRESS", "EXPIRES IN",
	       "LAST USE", "GENERATION");
	for (i = 0; i < n; i++) {
		if (e[i].expires_in_ns > 0)
			snprintf(when, sizeof(when), "%lld s",
				 ns_to_s(e[i].expires_in_ns));
		else
			snprintf(when, sizeof(when), "expired");
		if (e[i].idle_ns < 0)
			snprintf(used, sizeof(used), "never");
		else
			snprintf(used, sizeof(used), "%lld s ago",
				 ns_to_s(e[i].idle_ns));
		printf("  %-39s  %12s  %12s  %10u\n", e[i].addr, when, used,
		       e[i].generation);
	}
}

/* Entries of an LPM set, in slot ACTIVE and in the other slot. */
static int lpm_count(struct ctl *ctl, const char *name, __u8 active,
		     long *in_active, long *in_other)
{
	bool v6 = strstr(name, "_v6") != NULL;
	size_t klen = v6 ? sizeof(struct egressd_lpm6_key) :
			   sizeof(struct egressd_lpm4_key);
	union {
		struct egressd_lpm4_key k4;
		struct egressd_lpm6_key k6;
	} key, next;
	void *prev = NULL;
	int fd;

	*in_active = *in_other = 0;
	fd = map_open(ctl, name, klen, sizeof(struct egressd_rule_val));
	if (fd < 0)
		return fd;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		__u8 slot = v6 ? next.k6.slot : next.k4.slot;

		memcpy(&key, &next, klen);
		prev = &key;
		if (slot == active)
			(*in_active)++;
		else
			(*in_other)++;
	}
	close(fd);
	return 0;
}

static int counters_read(struct ctl *ctl, __u64 *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;
	__u32 i;
	int fd, c, ret = 0;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	fd = map_open(ctl, EGRESSD_MAP_COUNTERS, sizeof(__u32), sizeof(__u64));
	if (fd < 0)
		return fd;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals) {
		close(fd);
		return -ENOMEM;
	}
	for (i = 0; i < EGRESSD_CNT_MAX; i++) {
		sum[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, vals)) {
			ret = -errno;
			break;
		}
		for (c = 0; c < ncpu; c++)
			sum[i] += vals[c];
	}
	free(vals);
	close(fd);
	return ret;
}

/* The pinned config map's one entry into *cfg; 0 or the exit code. */
static int config_read(struct ctl *ctl, struct egressd_bpf_cfg *cfg)
{
	__u32 zero = 0;
	int fd, ret;

	fd = map_open(ctl, EGRESSD_MAP_CONFIG, sizeof(__u32), sizeof(*cfg));
	if (fd < 0)
		return map_error(ctl, EGRESSD_MAP_CONFIG, fd);
	ret = bpf_map_lookup_elem(fd, &zero, cfg) ? -errno : 0;
	close(fd);
	return ret ? map_error(ctl, EGRESSD_MAP_CONFIG, ret) : 0;
}

int ctl_maps_show(struct ctl *ctl, int argc, char **argv)
{
	struct learned_ent *l4 = NULL, *l6 = NULL;
	size_t n4 = 0, n6 = 0, i;
	struct egressd_bpf_cfg cfg;
	struct egressd_slot_cfg *s;
	__u64 cnt[EGRESSD_CNT_MAX], now;
	long sets[2][ARRAY_SIZE(lpm_maps)];
	json_t *o, *js, *jc;
	int ret;

	if (argc)
		return ctl_usage(ctl, "maps show takes no arguments");
	ret = config_read(ctl, &cfg);
	if (ret)
		return ret;
	s = &cfg.slot[cfg.active & 1];

	now = util_clock_ns();
	ret = learned_read(ctl, 4, now, &l4, &n4);
	if (ret)
		return map_error(ctl, EGRESSD_MAP_LEARNED_V4, ret);
	ret = learned_read(ctl, 6, now, &l6, &n6);
	if (ret) {
		free(l4);
		return map_error(ctl, EGRESSD_MAP_LEARNED_V6, ret);
	}
	for (i = 0; i < ARRAY_SIZE(lpm_maps); i++) {
		ret = lpm_count(ctl, lpm_maps[i], cfg.active, &sets[0][i],
				&sets[1][i]);
		if (ret)
			goto out_map;
	}
	ret = counters_read(ctl, cnt);
	if (ret) {
		i = SIZE_MAX;
		goto out_map;
	}

	if (ctl->json) {
		js = json_object();
		jc = json_object();
		for (i = 0; i < ARRAY_SIZE(lpm_maps); i++)
			json_object_set_new(js, lpm_maps[i],
					    json_integer(sets[0][i]));
		for (i = 0; i < EGRESSD_CNT_MAX; i++)
			json_object_set_new(jc, counter_name(i),
					    json_integer((json_int_t)cnt[i]));
		o = json_pack(
			"{s:s, s:{s:s, s:i, s:I, s:s, s:b, s:I, s:i}, s:{s:o, s:o}, s:o, s:o}",
			"pin_dir", ctl->pin_dir, "config", "mode",
			cfg.mode == EGRESSD_DP_OBSERVE ? "observe" : "enforce",
			"active_slot", cfg.active, "generation",
			(json_int_t)s->generation, "defaultAction",
			s->default_verdict == EGRESSD_DEFAULT_ALLOW ? "allow" :
								      "deny",
			"ipv6_deny", !!(s->flags & EGRESSD_SLOT_IPV6_DENY),
			"netns_cookie", (json_int_t)cfg.netns_cookie,
			"dns_redirect_port", (int)cfg.dns_port, "learned", "v4",
			learned_json(l4, n4), "v6", learned_json(l6, n6),
			"sets", js, "counters", jc);
		if (o)
			ctl_print_json(ctl, o);
		json_decref(o);
		goto out;
	}
	printf("pin dir %s: mode %s, policy generation %llu (slot %u), default %s%s\n",
	       ctl->pin_dir,
	       cfg.mode == EGRESSD_DP_OBSERVE ? "observe" : "enforce",
	       (unsigned long long)s->generation, cfg.active,
	       s->default_verdict == EGRESSD_DEFAULT_ALLOW ? "allow" : "deny",
	       s->flags & EGRESSD_SLOT_IPV6_DENY ? ", ipv6 denied" : "");
	if (cfg.dns_port)
		printf("dns redirect: port 53 -> 127.0.0.1/::1 port %u (sock_addr programs)\n",
		       (unsigned int)cfg.dns_port);
	learned_print(EGRESSD_MAP_LEARNED_V4, l4, n4);
	learned_print(EGRESSD_MAP_LEARNED_V6, l6, n6);
	printf("sets (prefixes in the active slot):");
	for (i = 0; i < ARRAY_SIZE(lpm_maps); i++)
		printf("%s %s %ld", i ? "," : "", lpm_maps[i], sets[0][i]);
	putchar('\n');
	printf("counters (all CPUs):");
	for (i = 0; i < EGRESSD_CNT_MAX; i++)
		printf("%s %s %llu", i ? "," : "", counter_name(i),
		       (unsigned long long)cnt[i]);
	putchar('\n');
out:
	free(l4);
	free(l6);
	return CTL_EXIT_OK;
out_map:
	free(l4);
	free(l6);
	return map_error(
		ctl, i == SIZE_MAX ? EGRESSD_MAP_COUNTERS : lpm_maps[i], ret);
}

/* maps dump NAME: every entry of a learned or static set. */
int ctl_maps_dump(struct ctl *ctl, int argc, char **argv)
{
	char a[INET6_ADDRSTRLEN], pfx[INET6_ADDRSTRLEN + 16], rname[40];
	union {
		struct egressd_lpm4_key k4;
		struct egressd_lpm6_key k6;
	} key, next;
	struct egressd_rule_val val;
	struct egressd_bpf_cfg cfg;
	json_t *arr;
	void *prev = NULL;
	size_t i, klen;
	bool v6;
	int fd, ret;

	if (argc != 1)
		return ctl_usage(ctl, "maps dump needs one MAP name");
	if (!strcmp(argv[0], EGRESSD_MAP_LEARNED_V4) ||
	    !strcmp(argv[0], EGRESSD_MAP_LEARNED_V6)) {
		struct learned_ent *e = NULL;
		size_t n = 0;

		ret = learned_read(ctl, argv[0][9] == '4' ? 4 : 6,
				   util_clock_ns(), &e, &n);
		if (ret)
			return map_error(ctl, argv[0], ret);
		if (ctl->json) {
			json_t *o = learned_json(e, n);

			ctl_print_json(ctl, o);
			json_decref(o);
		} else {
			learned_print(argv[0], e, n);
		}
		free(e);
		return CTL_EXIT_OK;
	}
	for (i = 0; i < ARRAY_SIZE(lpm_maps); i++)
		if (!strcmp(argv[0], lpm_maps[i]))
			break;
	if (i == ARRAY_SIZE(lpm_maps))
		return ctl_usage(
			ctl,
			"maps dump: unknown map '%s' (learned_v4, learned_v6, allow_v4/6, deny_v4/6, doh_v4/6, doh_allow_v4/6)",
			argv[0]);
	ret = config_read(ctl, &cfg);
	if (ret)
		return ret;
	v6 = strstr(argv[0], "_v6") != NULL;
	klen = v6 ? sizeof(key.k6) : sizeof(key.k4);
	fd = map_open(ctl, argv[0], klen, sizeof(val));
	if (fd < 0)
		return map_error(ctl, argv[0], fd);
	arr = json_array();
	if (!ctl->json)
		printf("%s (active slot %u):\n", argv[0], cfg.active);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		__u32 plen = v6 ? next.k6.prefixlen : next.k4.prefixlen;
		__u8 slot = v6 ? next.k6.slot : next.k4.slot;

		memcpy(&key, &next, klen);
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &val))
			continue;
		inet_ntop(v6 ? AF_INET6 : AF_INET,
			  v6 ? (void *)key.k6.addr : (void *)key.k4.addr, a,
			  sizeof(a));
		snprintf(pfx, sizeof(pfx), "%s/%u", a,
			 plen >= EGRESSD_LPM_SLOT_BITS ?
				 plen - EGRESSD_LPM_SLOT_BITS :
				 0);
		if (reason_rule_name(val.rule, rname, sizeof(rname)))
			snprintf(rname, sizeof(rname), "0x%08x", val.rule);
		if (ctl->json)
			json_array_append_new(
				arr, json_pack("{s:s, s:i, s:b, s:I, s:s}",
					       "prefix", pfx, "slot", slot,
					       "active", slot == cfg.active,
					       "rule", (json_int_t)val.rule,
					       "ruleName", rname));
		else
			printf("  %-44s rule %-16s slot %u%s\n", pfx, rname,
			       slot, slot == cfg.active ? " (active)" : "");
	}
	close(fd);
	if (ctl->json)
		ctl_print_json(ctl, arr);
	else if (!prev)
		printf("  (empty)\n");
	json_decref(arr);
	return CTL_EXIT_OK;
}
