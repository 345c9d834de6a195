// SPDX-License-Identifier: GPL-2.0-only
/*
 * The API's policy edits as pure functions over policies and JSON bodies
 * (no socket, no MHD; unit-tested in check_api and fuzzed through
 * fuzz_http): PATCH's parse and merge (patch rules first, deduplicated
 * by lower-cased target, then the old rules not patched) and DELETE's
 * parse and removal by lower-cased target, as the OpenSandbox egress
 * sidecar does them. agent/apiroutes.c calls them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "egressd/api.h"
#include "egressd/util.h"

/* Trimmed, ASCII lower-cased copy of [s, s+n); NULL on ENOMEM. */
static char *lower_trim_dup(const char *s, size_t n)
{
	const char *t = util_trim(s, &n);

	return util_lower_dup(t, n);
}

/* Parse a JSON array body; "null" counts as an empty array (as in Go). */
static int load_array(const char *buf, size_t len, json_t **out, char *err,
		      size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	root = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
	if (!root) {
		util_err(err, errlen, 0,
			 "invalid JSON at line %d column %d: %s", jerr.line,
			 jerr.column, jerr.text);
		return -EINVAL;
	}
	if (json_is_null(root) ||
	    (json_is_array(root) && !json_array_size(root))) {
		json_decref(root);
		util_err(err, errlen, 0, "empty array");
		return -EINVAL;
	}
	if (!json_is_array(root)) {
		util_err(err, errlen, 0, "must be a JSON array, got %s",
			 policy_json_kind(root));
		json_decref(root);
		return -EINVAL;
	}
	*out = root;
	return 0;
}

int api_patch_parse(const char *buf, size_t len, struct policy_rule **rules,
		    size_t *n, char *err, size_t errlen)
{
	struct policy_rule *r = NULL;
	size_t count, i;
	json_t *root;
	int ret;

	*rules = NULL;
	*n = 0;
	ret = load_array(buf, len, &root, err, errlen);
	if (ret)
		return ret;
	count = json_array_size(root);
	r = calloc(count, sizeof(*r));
	if (!r) {
		util_err(err, errlen, 0, "out of memory");
		json_decref(root);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++) {
		ret = policy_rule_from_json(json_array_get(root, i), "patch", i,
					    &r[i], err, errlen);
		if (ret) {
			policy_rules_free(r, i);
			json_decref(root);
			return ret;
		}
	}
	json_decref(root);
	*rules = r;
	*n = count;
	return 0;
}

/* A lower-cased target and where it came from, for sort + bsearch. */
struct api_key {
	char *key;
	size_t idx;
};

static int key_cmp(const void *a, const void *b)
{
	const struct api_key *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int key_cmp_str(const void *k, const void *elem)
{
	return strcmp(k, ((const struct api_key *)elem)->key);
}

static void keys_free(struct api_key *keys, size_t n)
{
	size_t i;

	if (!keys)
		return;
	for (i = 0; i < n; i++)
		free(keys[i].key);
	free(keys);
}

/* Sorted lower-cased copies of n strings (strs[i] or rules[i].target). */
static struct api_key *keys_new(const struct policy_rule *rules,
				char *const *strs, size_t n)
{
	struct api_key *keys = calloc(n ? n : 1, sizeof(*keys));
	size_t i;

	if (!keys)
		return NULL;
	for (i = 0; i < n; i++) {
		const char *s = rules ? rules[i].target : strs[i];

		keys[i].key = lower_trim_dup(s ? s : "", s ? strlen(s) : 0);
		keys[i].idx = i;
		if (!keys[i].key) {
			keys_free(keys, i);
			return NULL;
		}
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	return keys;
}

static bool keys_has(const struct api_key *keys, size_t n, const char *s)
{
	char *k = lower_trim_dup(s ? s : "", s ? strlen(s) : 0);
	bool found;

	if (!k)
		return false;
	found = bsearch(k, keys, n, sizeof(*keys), key_cmp_str) != NULL;
	free(k);
	return found;
}

int api_patch_merge(const struct policy *old, const struct policy_rule *patch,
		    size_t n_patch, struct policy **out)
{
	struct api_key *keys = NULL;
	struct policy *p = NULL;
	bool *keep = NULL;
	size_t i, total = n_patch + old->n_rules;

	*out = NULL;
	policy_new(&p, old->default_action); /* p NULL on -ENOMEM */
	keys = keys_new(patch, NULL, n_patch);
	keep = calloc(n_patch ? n_patch : 1, sizeof(*keep));
	if (!p || !keys || !keep)
		goto nomem;
	if (total) {
		p->rules = calloc(total, sizeof(*p->rules));
		if (!p->rules)
			goto nomem;
	}
	/* The first of each same-key group (sorted by key, then index). */
	for (i = 0; i < n_patch; i++) {
		if (!i || strcmp(keys[i].key, keys[i - 1].key))
			keep[keys[i].idx] = true;
	}
	for (i = 0; i < n_patch; i++) {
		if (!keep[i])
			continue;
		if (policy_rule_copy(&p->rules[p->n_rules], &patch[i]))
			goto nomem;
		p->n_rules++;
	}
	for (i = 0; i < old->n_rules; i++) {
		if (keys_has(keys, n_patch, old->rules[i].target))
			continue;
		if (policy_rule_copy(&p->rules[p->n_rules], &old->rules[i]))
			goto nomem;
		p->n_rules++;
	}
	keys_free(keys, n_patch);
	free(keep);
	*out = p;
	return 0;

nomem:
	keys_free(keys, n_patch);
	free(keep);
	policy_free(p);
	return -ENOMEM;
}

void api_targets_free(char **targets, size_t n)
{
	size_t i;

	if (!targets)
		return;
	for (i = 0; i < n; i++)
		free(targets[i]);
	free(targets);
}

int api_delete_parse(const char *buf, size_t len, char ***targets, size_t *n,
		     char *err, size_t errlen)
{
	size_t count, i;
	json_t *root, *v;
	char **t;
	int ret;

	*targets = NULL;
	*n = 0;
	ret = load_array(buf, len, &root, err, errlen);
	if (ret)
		return ret;
	count = json_array_size(root);
	t = calloc(count, sizeof(*t));
	if (!t)
		goto nomem;
	json_array_foreach(root, i, v) {
		if (!json_is_string(v)) {
			util_err(err, errlen, 0,
				 "[%zu]: must be a string, got %s", i,
				 policy_json_kind(v));
			api_targets_free(t, count);
			json_decref(root);
			return -EINVAL;
		}
		t[i] = lower_trim_dup(json_string_value(v),
				      strlen(json_string_value(v)));
		if (!t[i]) {
			api_targets_free(t, count);
			goto nomem;
		}
	}
	json_decref(root);
	*targets = t;
	*n = count;
	return 0;

nomem:
	json_decref(root);
	util_err(err, errlen, 0, "out of memory");
	return -ENOMEM;
}

int api_delete_apply(const struct policy *old, char *const *targets,
		     size_t n_targets, struct policy **out, size_t *removed)
{
	struct api_key *keys;
	struct policy *p;
	size_t i;

	*out = NULL;
	*removed = 0;
	policy_new(&p, old->default_action); /* p NULL on -ENOMEM */
	keys = keys_new(NULL, targets, n_targets);
	if (!p || !keys)
		goto nomem;
	if (old->n_rules) {
		p->rules = calloc(old->n_rules, sizeof(*p->rules));
		if (!p->rules)
			goto nomem;
	}
	for (i = 0; i < old->n_rules; i++) {
		if (keys_has(keys, n_targets, old->rules[i].target)) {
			(*removed)++;
			continue;
		}
		if (policy_rule_copy(&p->rules[p->n_rules], &old->rules[i]))
			goto nomem;
		p->n_rules++;
	}
	keys_free(keys, n_targets);
	*out = p;
	return 0;

nomem:
	keys_free(keys, n_targets);
	policy_free(p);
	*removed = 0;
	return -ENOMEM;
}
