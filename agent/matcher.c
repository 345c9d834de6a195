// SPDX-License-Identifier: GPL-2.0-only
/*
 * The policy name matcher: compiles the effective rule list (deny.always,
 * allow.always, user rules) into a structure whose lookup cost does not
 * depend on the number of rules, and answers lookups on the DNS hot path
 * (bench/policy_lookup.c measures it). It is one open-addressing hash
 * table keyed by (normalised name, is_wildcard) that keeps the lowest
 * effective rule index per key; names are hashed from their last byte
 * backwards so the hash of every label-boundary suffix falls out of a
 * single pass over the query. agent/policy.c parses the rules.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "egressd/policy.h"
#include "egressd/util.h"

/*
 * One 16-byte slot of the open-addressing table. eff is the effective
 * index + 1 (0 marks an empty slot); tag is the upper half of the key's
 * hash (the lower half picks the slot), so a probe compares names only
 * when the tags agree.
 */
struct pm_slot {
	uint32_t tag;
	uint32_t eff;
	uint32_t name_off;
	uint16_t name_len;
	uint8_t wildcard;
	uint8_t action;
};

/*
 * Keys are hashed as H = sum of byte[len-1-k] * pow[k] (mod 2^64): the
 * weight of a byte depends on its distance from the END of the name, so
 * the partial sum after the last k bytes of a query is exactly the hash of
 * its k-byte suffix, and one right-to-left pass yields the hash of every
 * label-boundary suffix. The multiplications are independent of each
 * other, so the pass costs about a cycle per byte. The base and the seed
 * are random per matcher; no key is longer than POLICY_NAME_MAX.
 *
 * The filter is a one-hash Bloom filter over the keys (16 bits per key,
 * 20 KiB at 10,000 rules, so it stays in L1): most wildcard probes of a
 * lookup are for suffixes no rule names ("com", "example.com"), and the
 * filter answers those without touching the table.
 */
struct policy_matcher {
	struct pm_slot *slots;
	size_t mask;
	uint64_t *filter;
	size_t fmask; /* filter bits - 1 */
	char *names;
	uint64_t seed;
	size_t n_deny, n_allow;
	enum policy_action default_action;
	/* Bounds that let a lookup skip work no rule could match. */
	size_t max_exact_len; /* 0: no exact rule */
	size_t max_key_len; /* longest key, exact or suffix */
	unsigned int max_wild_labels; /* 0: no wildcard rule */
	/* Bit L: some wildcard suffix has L labels (bit 63: 63 or more). */
	uint64_t wild_labels;
	uint64_t pow[POLICY_NAME_MAX + 1];
};

/*
 * Finalise a key sum into a table hash. The sum's low bits only see the
 * low bits of the bytes, so fold the high half down before and after one
 * multiplication; the low half then picks the slot and the high half is
 * the tag.
 */
static inline uint64_t pm_final(const struct policy_matcher *m, uint64_t h,
				bool wildcard)
{
	h += m->seed + (wildcard ? 0x9e3779b97f4a7c15ULL : 0);
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return h;
}

/* stored is lower case; q is any case, usually lower (dnswire's output). */
static bool name_eq(const char *stored, const char *q, size_t n)
{
	size_t i;

	if (!memcmp(stored, q, n))
		return true;
	for (i = 0; i < n; i++) {
		if (stored[i] != (char)util_ascii_lower(q[i]))
			return false;
	}
	return true;
}

static inline const struct pm_slot *pm_probe(const struct policy_matcher *m,
					     uint64_t h, const char *s,
					     size_t n, bool wildcard)
{
	uint64_t fh = pm_final(m, h, wildcard);
	uint32_t tag = fh >> 32;
	size_t i = fh & m->mask, fb = tag & m->fmask;

	if (!(m->filter[fb / 64] & (1ULL << (fb % 64))))
		return NULL;
	for (;;) {
		const struct pm_slot *sl = &m->slots[i];

		if (!sl->eff)
			return NULL;
		if (sl->tag == tag && sl->name_len == n &&
		    sl->wildcard == wildcard &&
		    name_eq(m->names + sl->name_off, s, n))
			return sl;
		i = (i + 1) & m->mask;
	}
}

static void pm_random(void *buf, size_t len)
{
	uint64_t x;

	if (getrandom(buf, len, GRND_NONBLOCK) == (ssize_t)len)
		return;
	/* No entropy yet (early boot): any value works, only less well. */
	x = util_clock_ns() ^ ((uint64_t)getpid() << 16);
	while (len) {
		size_t k = len < sizeof(x) ? len : sizeof(x);

		x = (x ^ (x >> 31)) * 0x94d049bb133111ebULL + 1;
		memcpy(buf, &x, k);
		buf = (char *)buf + k;
		len -= k;
	}
}

/*
 * Insert one domain/wildcard rule at effective index eff unless its key is
 * already present (an earlier rule wins). The name is normalised again
 * (lower case, one trailing dot dropped) so hand-built rules behave like
 * parsed ones; names longer than POLICY_NAME_MAX, which parsing never
 * produces, are left out.
 */
static void pm_insert(struct policy_matcher *m, size_t *names_len,
		      const struct policy_rule *r, enum policy_action action,
		      uint32_t eff)
{
	bool wildcard = r->kind == POLICY_KIND_WILDCARD;
	const char *name = r->name;
	size_t n = strlen(name), i, labels = 1, slot, fb;
	char *dst = m->names + *names_len;
	uint64_t h = 0, fh;
	uint32_t tag;

	if (n && name[n - 1] == '.')
		n--;
	if (!n || n > POLICY_NAME_MAX)
		return;
	for (i = 0; i < n; i++) {
		dst[i] = util_ascii_lower(name[i]);
		h += (unsigned char)dst[i] * m->pow[n - 1 - i];
		if (dst[i] == '.')
			labels++;
	}
	fh = pm_final(m, h, wildcard);
	tag = fh >> 32;
	for (slot = fh & m->mask; m->slots[slot].eff;
	     slot = (slot + 1) & m->mask) {
		const struct pm_slot *sl = &m->slots[slot];

		if (sl->tag == tag && sl->name_len == n &&
		    sl->wildcard == wildcard &&
		    !memcmp(m->names + sl->name_off, dst, n))
			return;
	}
	fb = tag & m->fmask;
	m->filter[fb / 64] |= 1ULL << (fb % 64);
	m->slots[slot] = (struct pm_slot){
		.tag = tag,
		.eff = eff + 1,
		.name_off = *names_len,
		.name_len = n,
		.wildcard = wildcard,
		.action = action,
	};
	*names_len += n;
	if (n > m->max_key_len)
		m->max_key_len = n;
	if (wildcard) {
		if (labels > m->max_wild_labels)
			m->max_wild_labels = labels;
		m->wild_labels |= 1ULL << (labels < 63 ? labels : 63);
	} else if (n > m->max_exact_len) {
		m->max_exact_len = n;
	}
}

static bool is_name_rule(const struct policy_rule *r)
{
	return (r->kind == POLICY_KIND_DOMAIN ||
		r->kind == POLICY_KIND_WILDCARD) &&
	       r->name;
}

int policy_matcher_new(struct policy_matcher **out, const struct policy *user,
		       const struct policy_rule *deny_always, size_t n_deny,
		       const struct policy_rule *allow_always, size_t n_allow)
{
	const struct policy_rule *lists[3] = { deny_always, allow_always,
					       user ? user->rules : NULL };
	size_t counts[3] = { n_deny, n_allow, user ? user->n_rules : 0 };
	size_t n_names = 0, names_bytes = 0, cap = 8, fbits = 64;
	size_t names_len = 0, l, i, eff = 0;
	struct policy_matcher *m;
	uint64_t base;

	*out = NULL;
	for (l = 0; l < 3; l++) {
		for (i = 0; i < counts[l]; i++) {
			if (!is_name_rule(&lists[l][i]))
				continue;
			n_names++;
			names_bytes += strlen(lists[l][i].name);
		}
	}
	if (counts[0] + counts[1] + counts[2] >= UINT32_MAX ||
	    names_bytes >= UINT32_MAX)
		return -EOVERFLOW;
	/* Load factor at most 0.7 keeps linear-probe chains short. */
	while (cap * 7 < n_names * 10)
		cap *= 2;
	while (fbits < n_names * 16)
		fbits *= 2;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->slots = calloc(cap, sizeof(*m->slots));
	m->filter = calloc(fbits / 64, sizeof(*m->filter));
	m->names = malloc(names_bytes + 1);
	if (!m->slots || !m->filter || !m->names) {
		policy_matcher_free(m);
		return -ENOMEM;
	}
	m->mask = cap - 1;
	m->fmask = fbits - 1;
	m->n_deny = n_deny;
	m->n_allow = n_allow;
	m->default_action = user ? user->default_action : POLICY_DENY;
	pm_random(&m->seed, sizeof(m->seed));
	pm_random(&base, sizeof(base));
	base |= 1; /* odd: no power of it is ever 0 mod 2^64 */
	m->pow[0] = 1;
	for (i = 1; i <= POLICY_NAME_MAX; i++)
		m->pow[i] = m->pow[i - 1] * base;

	for (l = 0; l < 3; l++) {
		for (i = 0; i < counts[l]; i++, eff++) {
			const struct policy_rule *r = &lists[l][i];
			enum policy_action a;

			if (!is_name_rule(r))
				continue;
			/* The always lists decide by where they come from. */
			if (l == 0)
				a = POLICY_DENY;
			else if (l == 1)
				a = POLICY_ALLOW;
			else
				a = r->action;
			pm_insert(m, &names_len, r, a, eff);
		}
	}
	*out = m;
	return 0;
}

void policy_matcher_free(struct policy_matcher *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m->filter);
	free(m->names);
	free(m);
}

/* Is the '.' at name[i] escaped ("\." with an odd run of backslashes)? */
static bool is_escaped(const char *name, size_t i)
{
	size_t run = 0;

	while (i > 0 && name[i - 1] == '\\') {
		run++;
		i--;
	}
	return run & 1;
}

/* Keep the candidate with the lowest effective index. */
static void pm_record(const struct pm_slot *sl, const struct pm_slot **best)
{
	if (sl && (!*best || sl->eff < (*best)->eff))
		*best = sl;
}

/*
 * One right-to-left pass sums the query into h and notes the hash of each
 * label-boundary suffix worth probing; the probes come after, so the byte
 * loop keeps everything in registers and the probes can overlap.
 *
 * Query names in escaped presentation form ("a\.b", "\092") can hold a
 * backslash, which no rule does: nothing reaching over the last backslash
 * can match, so the pass stops there, and a dot right after it is a real
 * boundary only if the backslash run before it has even length.
 */
void policy_matcher_lookup(const struct policy_matcher *m, const char *name,
			   size_t len, struct policy_match *out)
{
	/* A 253-byte suffix has at most 127 labels. */
	struct {
		uint64_t h;
		size_t k;
	} cand[(POLICY_NAME_MAX + 1) / 2];
	const struct pm_slot *best = NULL, *exact = NULL;
	unsigned int labels = 1; /* labels in the suffix right of a dot */
	uint64_t h = 0, wild = m->wild_labels;
	size_t k, lim, n_cand = 0, c, eff;
	const char *bs;
	bool try_exact;

	if (len && name[len - 1] == '.')
		len--;
	try_exact = len && len <= m->max_exact_len;
	/* Suffixes longer than any key cannot match: sum only what can. */
	lim = len <= m->max_key_len ? len : m->max_key_len + 1;
	bs = len ? memrchr(name, '\\', len) : NULL;
	if (bs) {
		try_exact = false;
		if ((size_t)(name + len - 1 - bs) < lim)
			lim = name + len - 1 - bs;
	}

	/* k bytes from the end have been summed into h. */
	for (k = 0; k < lim; k++) {
		unsigned char ch = name[len - 1 - k];

		if (ch == '.') {
			/*
			 * The k-byte suffix right of this dot is a
			 * wildcard candidate if some wildcard rule has
			 * that many labels and the dot has a label on its
			 * left.
			 */
			if (labels <= m->max_wild_labels &&
			    (wild & (1ULL << (labels < 63 ? labels : 63))) &&
			    k + 1 < len && !is_escaped(name, len - 1 - k)) {
				cand[n_cand].h = h;
				cand[n_cand].k = k;
				n_cand++;
			}
			labels++;
		}
		ch |= ((unsigned int)(ch - 'A') < 26) << 5;
		h += ch * m->pow[k];
	}
	for (c = 0; c < n_cand; c++)
		pm_record(pm_probe(m, cand[c].h, name + len - cand[c].k,
				   cand[c].k, true),
			  &best);
	if (try_exact) {
		exact = pm_probe(m, h, name, len, false);
		pm_record(exact, &best);
	}
	out->exact_allow = exact && exact->action == POLICY_ALLOW;

	if (!best) {
		out->matched = false;
		out->action = m->default_action;
		out->origin = POLICY_ORIGIN_USER;
		out->index = 0;
		return;
	}
	out->matched = true;
	out->action = best->action;
	eff = best->eff - 1;
	if (eff < m->n_deny) {
		out->origin = POLICY_ORIGIN_DENY_ALWAYS;
		out->index = eff;
	} else if (eff < m->n_deny + m->n_allow) {
		out->origin = POLICY_ORIGIN_ALLOW_ALWAYS;
		out->index = eff - m->n_deny;
	} else {
		out->origin = POLICY_ORIGIN_USER;
		out->index = eff - m->n_deny - m->n_allow;
	}
}
