// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for the agent's apply/rollback (agent/agent.c) without a
 * kernel: nftables batches go to a fake talker (nftsync_new_with_talker)
 * that can refuse them, and the BPF layer is a stub ops table that
 * records every policy written to "the maps". A bare agent
 * (agent_alloc) gets a policy, the two layers and optionally a policy
 * file; the tests check what each layer holds after an apply, a refused
 * apply and a failed persist.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egressd/agent.h"
#include "egressd/bpfsync.h"
#include "egressd/events.h"
#include "egressd/learned.h"
#include "egressd/loop.h"
#include "egressd/nflog.h"
#include "egressd/nftsync.h"
#include "egressd/policy.h"
#include "egressd/util.h"

/* ---- the fake layers ------------------------------------------------- */

struct fake_nft {
	int calls;
	int refuse; /* batches still to refuse */
};

static int fake_talk(const struct nftsync_batch *b, void *arg, char *err,
		     size_t errlen)
{
	struct fake_nft *f = arg;

	f->calls++;
	if (f->refuse) {
		f->refuse--;
		snprintf(err, errlen, "fake refusal");
		return -EINVAL;
	}
	return 0;
}

/* What the stub BPF maps hold: the last policy written, and a history. */
struct fake_bpf {
	int calls;
	int fail; /* -errno for the next write, 0: accept */
	uint64_t generation;
	size_t n_allow;
	bool default_allow;
	uint64_t gens[16];
	size_t n_deny;
	uint32_t deny_rules[8]; /* rule ids of the first deny prefixes */
};

static struct fake_bpf fbpf;

static int stub_apply_policy(struct bpfsync *bs, const struct bpfsync_policy *p)
{
	ck_assert_ptr_eq(bs, (struct bpfsync *)&fbpf);
	if (fbpf.calls < 16)
		fbpf.gens[fbpf.calls] = p->generation;
	fbpf.calls++;
	if (fbpf.fail)
		return fbpf.fail;
	fbpf.generation = p->generation;
	fbpf.n_allow = p->n[BPFSYNC_SET_ALLOW];
	fbpf.default_allow = p->default_allow;
	fbpf.n_deny = p->n[BPFSYNC_SET_DENY];
	for (size_t i = 0; i < fbpf.n_deny && i < 8; i++)
		fbpf.deny_rules[i] = p->set[BPFSYNC_SET_DENY][i].rule;
	return 0;
}

/* Addresses the agent told BPF to forget. */
static struct {
	int calls;
	int family;
	uint8_t addr[16];
} fforget;

static int stub_forget(struct bpfsync *bs, int family, const void *addr)
{
	fforget.calls++;
	fforget.family = family;
	memcpy(fforget.addr, addr, family == AF_INET6 ? 16 : 4);
	return 0;
}

static const struct agent_bpf_ops stub_ops = {
	.apply_policy = stub_apply_policy,
	.forget = stub_forget,
};

/* ---- a bare agent with both layers ---------------------------------- */

#define ONE_ALLOW                                  \
	"{\"defaultAction\":\"deny\",\"egress\":[" \
	"{\"action\":\"allow\",\"target\":\"192.0.2.1\"}]}"
#define TWO_ALLOW                                          \
	"{\"defaultAction\":\"deny\",\"egress\":["         \
	"{\"action\":\"allow\",\"target\":\"192.0.2.1\"}," \
	"{\"action\":\"allow\",\"target\":\"198.51.100.0/24\"}]}"

static struct policy *parse(const char *json)
{
	struct policy *p = NULL;
	char err[256];

	ck_assert_msg(!policy_parse_json(json, strlen(json), 0, &p, err,
					 sizeof(err)),
		      "%s", err);
	return p;
}

struct rig {
	struct egressd_config cfg;
	struct fake_nft nft;
	struct agent *a;
	char dir[64];
	char file[128];
};

/* An agent in mode dns+nft enforcing ONE_ALLOW at generation 1. */
static void rig_up(struct rig *r, const char *policy_file)
{
	char err[512];

	/* r->dir and r->file (rig_file()) are kept */
	memset(&r->cfg, 0, sizeof(r->cfg));
	memset(&r->nft, 0, sizeof(r->nft));
	memset(&fbpf, 0, sizeof(fbpf));
	r->cfg.mode = EGRESSD_MODE_DNS_NFT;
	r->cfg.dns_listen_port = 15353;
	if (policy_file)
		r->cfg.policy_file = (char *)policy_file;
	ck_assert_int_eq(agent_alloc(&r->a, &r->cfg), 0);
	/* egressd's own cgroup, as nftables names it */
	r->a->cg.id = 1234;
	r->a->cg.level = 1;
	r->a->cg.nft_level = 1;
	r->a->cg.nft_ok = true;
	r->a->policy = parse(ONE_ALLOW);
	r->a->policy_source = "env";
	ck_assert_int_eq(
		nftsync_new_with_talker(&r->a->nft, fake_talk, &r->nft), 0);
	r->a->nft_state = AGENT_NFT_ON;
	/* Never dereferenced: every BPF call of an apply goes to stub_ops. */
	r->a->bpf = (struct bpfsync *)&fbpf;
	r->a->bpf_ops = &stub_ops;
	r->a->bpf_state = AGENT_BPF_ENFORCE;
	ck_assert_msg(!agent_apply_policy(r->a, "start", err, sizeof(err)),
		      "%s", err);
	ck_assert_uint_eq(r->a->generation, 1);
	ck_assert_uint_eq(fbpf.generation, 1);
	ck_assert_uint_eq(fbpf.n_allow, 1);
	ck_assert_int_eq(r->nft.calls, 1);
}

static void rig_down(struct rig *r)
{
	r->a->bpf = NULL; /* not a real bpfsync */
	agent_free(r->a);
}

/* A policy file in a fresh directory of its own. */
static const char *rig_file(struct rig *r)
{
	snprintf(r->dir, sizeof(r->dir), "/tmp/check_agent.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(r->dir));
	snprintf(r->file, sizeof(r->file), "%s/policy.json", r->dir);
	return r->file;
}

static void rig_file_rm(struct rig *r)
{
	unlink(r->file);
	rmdir(r->dir);
}

/* ---- tests ----------------------------------------------------------- */

/*
 * A policy change revokes learned addresses through the registry with
 * nftables down too: BPF is told to forget the address of a name no
 * longer allowed, the registry stops counting it and keeps its name for
 * the drop line. (With nftables unavailable nothing did before.)
 */
START_TEST(test_agent_revokes_learned_without_nft)
{
	struct policy_addr a = { .family = AF_INET,
				 .prefixlen = 32,
				 .addr = { 203, 0, 113, 9 } };
	struct rig r = { 0 };
	uint64_t now;
	size_t v4, v6;
	char err[512];

	rig_up(&r, NULL);
	nftsync_free(r.a->nft);
	r.a->nft = NULL;
	r.a->nft_state = AGENT_NFT_UNAVAILABLE;
	memset(&fforget, 0, sizeof(fforget));
	now = util_clock_ms();
	ck_assert_int_eq(learned_add(r.a->learned, now, "gone.example", &a,
				     now + 100000),
			 0);
	/* TWO_ALLOW allows no name: gone.example is revoked */
	ck_assert_int_eq(agent_replace_policy(r.a, parse(TWO_ALLOW), "api", err,
					      sizeof(err)),
			 0);
	ck_assert_int_eq(fforget.calls, 1);
	ck_assert_int_eq(fforget.family, AF_INET);
	ck_assert_mem_eq(fforget.addr, a.addr, 4);
	learned_counts(r.a->learned, util_clock_ms(), &v4, &v6);
	ck_assert_uint_eq(v4, 0);
	ck_assert_str_eq(learned_domain_of(r.a->learned, AF_INET, a.addr),
			 "gone.example");
	rig_down(&r);
}
END_TEST

/* Applied everywhere: BPF, nftables, the generation; persisted. */
START_TEST(test_agent_apply_bumps_generation)
{
	struct rig r = { 0 };
	char err[512], buf[4096];
	const struct policy_compiled *before;
	size_t n;
	FILE *f;

	rig_up(&r, rig_file(&r));
	before = r.a->compiled;
	ck_assert_int_eq(agent_replace_policy(r.a, parse(TWO_ALLOW), "api", err,
					      sizeof(err)),
			 0);
	ck_assert_uint_eq(r.a->generation, 2);
	ck_assert_uint_eq(fbpf.generation, 2);
	ck_assert_uint_eq(fbpf.n_allow, 2);
	ck_assert_int_eq(r.nft.calls, 2);
	ck_assert_ptr_ne(r.a->compiled, before);
	ck_assert_str_eq(r.a->policy_source, "api");
	ck_assert_uint_eq(r.a->policy->n_rules, 2);
	ck_assert_uint_eq(r.a->applies_ok, 2);
	ck_assert_uint_eq(r.a->applies_failed, 0);
	f = fopen(r.file, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "198.51.100.0/24"));
	/* one newline at the end, not two */
	ck_assert_uint_gt(n, 2);
	ck_assert_int_eq(buf[n - 1], '\n');
	ck_assert_int_ne(buf[n - 2], '\n');
	rig_file_rm(&r);
	rig_down(&r);
}
END_TEST

/* nftables refuses after BPF took the new policy: BPF gets the old back. */
START_TEST(test_agent_nft_refused_rolls_back_bpf)
{
	const struct policy_compiled *before;
	struct rig r;
	struct policy *old, *p;
	char err[512];

	rig_up(&r, NULL);
	old = r.a->policy;
	before = r.a->compiled;
	/* the incremental batch and the full replacement both refused */
	r.nft.refuse = 2;
	p = parse(TWO_ALLOW);
	ck_assert_int_lt(agent_replace_policy(r.a, p, "api", err, sizeof(err)),
			 0);
	policy_free(p); /* taken on success only */
	ck_assert_ptr_nonnull(strstr(err, "fake refusal"));
	/* BPF saw the new policy (generation 2), then the old one again */
	ck_assert_int_eq(fbpf.calls, 3);
	ck_assert_uint_eq(fbpf.gens[1], 2);
	ck_assert_uint_eq(fbpf.gens[2], 1);
	ck_assert_uint_eq(fbpf.generation, 1);
	ck_assert_uint_eq(fbpf.n_allow, 1);
	/* the agent still holds and counts the old one, compiled as it was */
	ck_assert_ptr_eq(r.a->compiled, before);
	ck_assert_ptr_eq(r.a->policy, old);
	ck_assert_str_eq(r.a->policy_source, "env");
	ck_assert_uint_eq(r.a->generation, 1);
	ck_assert_uint_eq(r.a->applies_failed, 1);
	rig_down(&r);
}
END_TEST

/* BPF refuses (a full map): nothing else is touched, nothing undone. */
START_TEST(test_agent_bpf_refused_leaves_nft_alone)
{
	struct rig r;
	struct policy *p;
	char err[512];

	rig_up(&r, NULL);
	fbpf.fail = -E2BIG;
	p = parse(TWO_ALLOW);
	ck_assert_int_eq(agent_replace_policy(r.a, p, "api", err, sizeof(err)),
			 -E2BIG);
	policy_free(p);
	ck_assert_ptr_nonnull(strstr(err, "BPF maps"));
	ck_assert_int_eq(r.nft.calls, 1);
	ck_assert_uint_eq(r.a->generation, 1);
	ck_assert_uint_eq(r.a->bpf_errors, 2); /* the write and the rollback */
	rig_down(&r);
}
END_TEST

/* The policy file cannot be written: the new policy is never enforced. */
START_TEST(test_agent_persist_failed_never_applies)
{
	struct rig r;
	struct policy *old, *p;
	char err[512];

	rig_up(&r, "/nonexistent/check_agent/policy.json");
	old = r.a->policy;
	p = parse(TWO_ALLOW);
	ck_assert_int_eq(agent_replace_policy(r.a, p, "api", err, sizeof(err)),
			 -ENOENT);
	policy_free(p);
	ck_assert_ptr_nonnull(strstr(err, "failed to persist policy"));
	ck_assert_ptr_eq(r.a->policy, old);
	ck_assert_str_eq(r.a->policy_source, "env");
	/* no layer saw the new policy; the failure is counted */
	ck_assert_uint_eq(r.a->generation, 1);
	ck_assert_int_eq(r.nft.calls, 1);
	ck_assert_int_eq(fbpf.calls, 1);
	ck_assert_uint_eq(fbpf.n_allow, 1);
	ck_assert_uint_eq(r.a->applies_failed, 1);
	rig_down(&r);
}
END_TEST

/* The rename into place fails (the path is a directory): the previous
 * policy is re-applied and no temporary file is left. */
START_TEST(test_agent_persist_commit_failed_reapplies_previous)
{
	char dir[] = "/tmp/check_agent-XXXXXX", path[64];
	struct rig r;
	struct policy *old, *p;
	char err[512];
	DIR *d;
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	rig_up(&r, path);
	old = r.a->policy;
	p = parse(TWO_ALLOW);
	ck_assert_int_lt(agent_replace_policy(r.a, p, "api", err, sizeof(err)),
			 0);
	policy_free(p); /* taken on success only */
	ck_assert_ptr_nonnull(strstr(err, "failed to persist policy"));
	ck_assert_ptr_eq(r.a->policy, old);
	ck_assert_str_eq(r.a->policy_source, "env");
	/* new policy applied (2), previous one applied again (3) */
	ck_assert_uint_eq(r.a->generation, 3);
	ck_assert_int_eq(r.nft.calls, 3);
	ck_assert_uint_eq(fbpf.generation, 3);
	ck_assert_uint_eq(fbpf.n_allow, 1);
	rig_down(&r);
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	ck_assert_int_eq(n, 1); /* policy.json, the directory, alone */
	ck_assert_int_eq(rmdir(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* An IPv6 allow while IPv6 is denied is refused before any layer. */
START_TEST(test_agent_ipv6_allow_refused_early)
{
	struct rig r;
	char err[512];
	struct policy *p;

	rig_up(&r, NULL);
	r.cfg.ipv6 = EGRESSD_IPV6_DENY;
	p = parse(
		"{\"egress\":[{\"action\":\"allow\",\"target\":\"2001:db8::1\"}]}");
	ck_assert_int_eq(agent_replace_policy(r.a, p, "api", err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "egress[0]"));
	policy_free(p);
	ck_assert_int_eq(fbpf.calls, 1);
	ck_assert_int_eq(r.nft.calls, 1);
	rig_down(&r);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* SIGHUP's reload: policy file and always-rules read again, even unchanged. */
START_TEST(test_agent_reload_reads_file_and_always)
{
	struct rig r = { 0 };
	char always[192];

	rig_up(&r, rig_file(&r));
	r.cfg.rules_dir = r.dir;
	write_file(r.file, TWO_ALLOW "\n");
	snprintf(always, sizeof(always), "%s/allow.always", r.dir);
	write_file(always, "example.com\n");
	ck_assert_int_eq(agent_reload(r.a, "sighup"), 0);
	ck_assert_uint_eq(r.a->generation, 2);
	ck_assert_str_eq(r.a->policy_source, "file");
	ck_assert_uint_eq(r.a->policy->n_rules, 2);
	ck_assert_uint_eq(r.a->always[1].n, 1);
	ck_assert_uint_eq(fbpf.n_allow, 2);
	/* unchanged files: applied again all the same */
	ck_assert_int_eq(agent_reload(r.a, "sighup"), 0);
	ck_assert_uint_eq(r.a->generation, 3);
	/* a broken policy file keeps the policy; always-rules still read */
	write_file(r.file, "{\"defaultAction\":");
	write_file(always, "example.com\nexample.org\n");
	ck_assert_int_eq(agent_reload(r.a, "sighup"), 0);
	ck_assert_uint_eq(r.a->policy->n_rules, 2);
	ck_assert_uint_eq(r.a->always[1].n, 2);
	/* nftables refuses: the previous rules and policy stay */
	write_file(r.file, ONE_ALLOW "\n");
	r.nft.refuse = 2;
	ck_assert_int_lt(agent_reload(r.a, "sighup"), 0);
	ck_assert_uint_eq(r.a->policy->n_rules, 2);
	ck_assert_uint_eq(r.a->always[1].n, 2);
	ck_assert_uint_eq(fbpf.n_allow, 2);
	unlink(always);
	rig_file_rm(&r);
	rig_down(&r);
}
END_TEST

/* The BPF sets carry the rule ids of the compiled policy, and an
 * nftables drop is named from it by address. */
START_TEST(test_agent_rule_ids_reach_bpf_and_nflog)
{
	struct nflog_packet pk = { .reason = EVENTS_REASON_DENY_RULE,
				   .family = AF_INET,
				   .dst = { 198, 51, 100, 7 } };
	struct rig r;
	char err[512], name[64];

	rig_up(&r, NULL);
	ck_assert_int_eq(
		policy_parse_always_buf("198.51.100.0/24\n", 16, "deny.always",
					POLICY_DENY, &r.a->always[0].rules,
					&r.a->always[0].n, err, sizeof(err)),
		0);
	ck_assert_int_eq(
		agent_replace_policy(
			r.a,
			parse("{\"egress\":["
			      "{\"action\":\"allow\",\"target\":\"a.example\"},"
			      "{\"action\":\"deny\",\"target\":\"198.51.100.7\"}]}"),
			"api", err, sizeof(err)),
		0);
	ck_assert_uint_eq(fbpf.n_deny, 2);
	ck_assert_uint_eq(fbpf.deny_rules[0],
			  EGRESSD_RULE_ID(EGRESSD_RULE_DENY_ALWAYS, 0));
	ck_assert_uint_eq(fbpf.deny_rules[1], 1); /* egress[1] */
	/* nftables says deny_rule; the longest prefix is egress[1] */
	ck_assert(agent_nflog_rule(r.a, &pk, name, sizeof(name)));
	ck_assert_str_eq(name, "egress[1]");
	pk.dst[3] = 8;
	ck_assert(agent_nflog_rule(r.a, &pk, name, sizeof(name)));
	ck_assert_str_eq(name, "deny.always[0]");
	/* no rule decides a default_deny */
	pk.reason = EVENTS_REASON_DEFAULT_DENY;
	ck_assert(!agent_nflog_rule(r.a, &pk, name, sizeof(name)));
	/* BPF events: the id the program reported wins; without one (a
	 * record drained from the fold map) the address is looked up */
	ck_assert(agent_rule_name(r.a, EVENTS_REASON_DOH, AF_INET, pk.dst,
				  EGRESSD_RULE_ID(EGRESSD_RULE_DOH_BUILTIN, 4),
				  name, sizeof(name)));
	ck_assert_str_eq(name, "doh.builtin[4]");
	ck_assert(agent_rule_name(r.a, EVENTS_REASON_DENY_RULE, AF_INET, pk.dst,
				  EGRESSD_RULE_NONE, name, sizeof(name)));
	ck_assert_str_eq(name, "deny.always[0]");
	ck_assert(!agent_rule_name(r.a, EVENTS_REASON_DEFAULT_DENY, AF_INET,
				   pk.dst, 0, name, sizeof(name)));
	rig_down(&r);
}
END_TEST

START_TEST(test_agent_state_names)
{
	ck_assert_str_eq(agent_nft_state_name(AGENT_NFT_ON), "on");
	ck_assert_str_eq(agent_nft_state_name(AGENT_NFT_OFF), "off");
	ck_assert_str_eq(agent_nft_state_name(AGENT_NFT_UNAVAILABLE),
			 "unavailable");
	ck_assert_str_eq(agent_frames_state_name(AGENT_FRAMES_ON), "on");
	ck_assert_str_eq(agent_frames_state_name(AGENT_FRAMES_UNAVAILABLE),
			 "unavailable");
	ck_assert_str_eq(agent_bpf_state_name(AGENT_BPF_ENFORCE), "enforce");
	ck_assert_str_eq(agent_bpf_state_name(AGENT_BPF_OBSERVE), "observe");
	ck_assert_str_eq(agent_bpf_state_name(AGENT_BPF_OFF), "off");
	ck_assert_str_eq(agent_bpf_state_name(AGENT_BPF_UNAVAILABLE),
			 "unavailable");
	ck_assert_str_eq(agent_dns_redirect_name(AGENT_REDIRECT_BPF_NFT),
			 "bpf+nft");
	ck_assert_str_eq(agent_dns_redirect_name(AGENT_REDIRECT_NONE), "none");
	ck_assert_str_eq(agent_bpf_state_name((enum agent_bpf_state)99), "?");
}
END_TEST

static Suite *agent_suite(void)
{
	Suite *s = suite_create("agent");
	TCase *tc = tcase_create("apply");

	tcase_add_test(tc, test_agent_apply_bumps_generation);
	tcase_add_test(tc, test_agent_nft_refused_rolls_back_bpf);
	tcase_add_test(tc, test_agent_bpf_refused_leaves_nft_alone);
	tcase_add_test(tc, test_agent_persist_failed_never_applies);
	tcase_add_test(tc, test_agent_persist_commit_failed_reapplies_previous);
	tcase_add_test(tc, test_agent_ipv6_allow_refused_early);
	tcase_add_test(tc, test_agent_reload_reads_file_and_always);
	tcase_add_test(tc, test_agent_rule_ids_reach_bpf_and_nflog);
	tcase_add_test(tc, test_agent_state_names);
	tcase_add_test(tc, test_agent_revokes_learned_without_nft);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(agent_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
