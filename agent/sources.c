// SPDX-License-Identifier: GPL-2.0-only
/*
 * Where the agent's policy comes from: at start the policy file, else
 * OPENSANDBOX_EGRESS_RULES, else deny all; and the always-rules files
 * (deny.always, allow.always in the rules directory), polled for changes
 * and applied on top of the user policy without ever being persisted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "egressd/agent.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/util.h"

#define ALWAYS_POLL_MS 2000

static bool is_blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/*
 * The policy file's policy into *out: 0, or -ENOENT (no file), -ENODATA
 * (blank), -EINVAL (not a valid policy: why says what is wrong) or the
 * -errno of reading it.
 */
static int policy_file_read(const struct agent *a, struct policy **out,
			    char *why, size_t whylen)
{
	size_t len;
	char *buf;
	int ret;

	*out = NULL;
	ret = util_read_file(a->cfg->policy_file, &buf, &len);
	if (ret)
		return util_err(why, whylen, ret, "%s", strerror(-ret));
	if (is_blank(buf, len))
		ret = util_err(why, whylen, -ENODATA, "empty");
	else if (policy_parse_json(buf, len, a->cfg->max_rules, out, why,
				   whylen))
		ret = -EINVAL;
	else
		ret = 0;
	free(buf);
	return ret;
}

/* Start-up policy: policy file > OPENSANDBOX_EGRESS_RULES > deny all. */
int agent_load_initial_policy(struct agent *a, char *err, size_t errlen)
{
	char perr[512];
	int ret;

	if (a->cfg->policy_file) {
		ret = policy_file_read(a, &a->policy, perr, sizeof(perr));
		if (!ret) {
			a->policy_source = "file";
			return 0;
		}
		if (ret == -ENODATA)
			log_warnx(
				"policy file %s is empty: using OPENSANDBOX_EGRESS_RULES",
				a->cfg->policy_file);
		else if (ret == -EINVAL)
			log_warnx(
				"policy file %s is not a valid policy (%s): using OPENSANDBOX_EGRESS_RULES",
				a->cfg->policy_file, perr);
		else if (ret != -ENOENT)
			return util_err(err, errlen, ret,
					"cannot read policy file %s: %s",
					a->cfg->policy_file, perr);
	}
	if (a->cfg->rules_json) {
		ret = policy_parse_json(a->cfg->rules_json,
					strlen(a->cfg->rules_json),
					a->cfg->max_rules, &a->policy, perr,
					sizeof(perr));
		if (ret)
			return util_err(err, errlen, -EINVAL,
					"OPENSANDBOX_EGRESS_RULES: %s", perr);
		a->policy_source = "env";
		return 0;
	}
	ret = policy_new(&a->policy, POLICY_DENY);
	if (ret)
		return util_err(err, errlen, -ENOMEM, "out of memory");
	a->policy_source = "default";
	return 0;
}

/*
 * IPv6 off: an allow rule for an IPv6 address could never take effect.
 * 0, or -EINVAL with err naming the rule.
 */
int agent_check_ipv6_rules(const struct agent *a,
			   const struct policy_rule *rules, size_t n,
			   const char *where, bool egress_index, char *err,
			   size_t errlen)
{
	long i;

	if (a->cfg->ipv6 != EGRESSD_IPV6_DENY)
		return 0;
	i = policy_find_ipv6_allow(rules, n);
	if (i < 0)
		return 0;
	if (egress_index)
		snprintf(
			err, errlen,
			"%segress[%ld]: target \"%s\": IPv6 cannot be allowed while OPENSANDBOX_EGRESS_IPV6=deny",
			where, i, rules[i].target);
	else
		snprintf(
			err, errlen,
			"%s: \"%s\": IPv6 cannot be allowed while OPENSANDBOX_EGRESS_IPV6=deny",
			where, rules[i].target);
	return -EINVAL;
}

static void always_path(const struct agent *a,
			const struct agent_always_file *f, char *buf,
			size_t len)
{
	snprintf(buf, len, "%s/%s", a->cfg->rules_dir, f->name);
}

/*
 * Load one always-rules file if it changed since the last look (or, with
 * force, in any case). Returns 1 with the new rules in *rules and *n (the
 * caller swaps them in), 0 when unchanged, <0 on error (err set). Either
 * way f->st records what was seen, so a broken file is reported once per
 * change, not every poll.
 */
int agent_always_reload(struct agent *a, struct agent_always_file *f,
			bool force, struct policy_rule **rules, size_t *n,
			char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	int ret;

	*rules = NULL;
	*n = 0;
	always_path(a, f, path, sizeof(path));
	if (stat(path, &st) < 0)
		memset(&st, 0, sizeof(st));
	if (!force && st.st_ino == f->st.st_ino &&
	    st.st_size == f->st.st_size &&
	    st.st_mtim.tv_sec == f->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == f->st.st_mtim.tv_nsec &&
	    st.st_ctim.tv_sec == f->st.st_ctim.tv_sec &&
	    st.st_ctim.tv_nsec == f->st.st_ctim.tv_nsec)
		return 0;
	f->st = st;
	ret = policy_load_always_file(path, f->action, rules, n, err, errlen);
	if (ret)
		return ret;
	ret = agent_check_ipv6_rules(a, *rules, *n, path, false, err, errlen);
	if (ret) {
		policy_rules_free(*rules, *n);
		*rules = NULL;
		*n = 0;
		return ret;
	}
	return 1;
}

/*
 * Read the always-rules files again (force: even those that look
 * unchanged) and, when they changed or a new user policy np comes with
 * them, apply the result in one step with trigger why. All or nothing:
 * on failure the previous rules and policy stay, and np is freed.
 * 0 (also when nothing changed) or the apply's -errno.
 */
static int sources_apply(struct agent *a, struct policy *np, bool force,
			 const char *why)
{
	struct policy_rule *nr[2] = { NULL, NULL }, *old[2];
	size_t nn[2] = { 0, 0 }, on[2];
	bool changed[2] = { false, false };
	struct policy *op = a->policy;
	const char *osrc = a->policy_source;
	char err[1024];
	int i, ret;

	for (i = 0; i < 2; i++) {
		ret = agent_always_reload(a, &a->always[i], force, &nr[i],
					  &nn[i], err, sizeof(err));
		if (ret < 0)
			log_warnx(
				"always rules not reloaded, previous rules stay: %s",
				err);
		changed[i] = ret > 0;
	}
	if (!np && !changed[0] && !changed[1])
		return 0;
	for (i = 0; i < 2; i++) {
		old[i] = a->always[i].rules;
		on[i] = a->always[i].n;
		if (changed[i]) {
			a->always[i].rules = nr[i];
			a->always[i].n = nn[i];
		}
	}
	if (np) {
		a->policy = np;
		a->policy_source = "file";
	}
	ret = agent_apply_policy(a, why, err, sizeof(err));
	/* Keep the winner, free the loser. */
	for (i = 0; i < 2; i++) {
		if (!changed[i])
			continue;
		if (ret) {
			a->always[i].rules = old[i];
			a->always[i].n = on[i];
			policy_rules_free(nr[i], nn[i]);
		} else {
			policy_rules_free(old[i], on[i]);
		}
	}
	if (np && ret) {
		a->policy = op;
		a->policy_source = osrc;
		policy_free(np);
	} else if (np) {
		policy_free(op);
	}
	if (ret)
		agent_apply_rollback(a);
	return ret;
}

static void always_timer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
	sources_apply(arg, NULL, false, "always-rules");
	loop_timer_arm(t, ALWAYS_POLL_MS);
}

/*
 * SIGHUP: the policy file and both always-rules files are read again,
 * changed or not, and applied in one step. A policy file that is
 * missing, empty or not a valid policy leaves the user policy in force
 * (it does not fall back to OPENSANDBOX_EGRESS_RULES as at start); a
 * broken always file keeps its previous rules, as the poll does.
 */
int agent_reload(struct agent *a, const char *why)
{
	const char *file = a->cfg->policy_file;
	struct policy *np = NULL;
	char perr[1024];
	int ret;

	log_info(
		"%s: reading the policy file%s%s and the always-rules in %s again",
		why, file ? " " : " (none set)", file ? file : "",
		a->cfg->rules_dir);
	if (file) {
		ret = policy_file_read(a, &np, perr, sizeof(perr));
		if (!ret && agent_check_ipv6_rules(a, np->rules, np->n_rules,
						   "policy file: ", true, perr,
						   sizeof(perr))) {
			policy_free(np);
			np = NULL;
			ret = -EINVAL;
		}
		if (ret)
			log_warnx(
				"policy file %s not reloaded (%s): the policy in force stays",
				file, perr);
	}
	return sources_apply(a, np, true, why);
}

int agent_sources_start(struct agent *a)
{
	a->always_timer = loop_timer_new(a->loop, always_timer_cb, a);
	if (!a->always_timer)
		return -ENOMEM;
	loop_timer_arm(a->always_timer, ALWAYS_POLL_MS);
	return 0;
}
