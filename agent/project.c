// SPDX-License-Identifier: GPL-2.0-only
/*
 * The nftables and BPF views of a compiled policy (compiled.h): each is
 * the compiled policy's projection plus what only the agent knows (its
 * cgroups, the hand-off to BPF, the API rules), so the two layers always
 * enforce the same lists. Also the learned-address revocation that
 * follows a policy change, and the rule named on violation lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egressd/agent.h"
#include "egressd/bpfsync.h"
#include "egressd/compiled.h"
#include "egressd/events.h"
#include "egressd/learned.h"
#include "egressd/log.h"
#include "egressd/loop.h"
#include "egressd/nflog.h"
#include "egressd/util.h"

/*
 * The rules that keep the workload off the API, and the state of
 * egressd's exemption: where nft can name the workload cgroup only the workload is kept off
 * the API (operators' tools elsewhere in the namespace keep it), else
 * every cgroup but the API cgroup.
 */
static void api_nft_fill(const struct agent *a, struct nftsync_config *c)
{
	c->agent_withdrawn = a->agent_foreign;
	if (!a->api_port || !a->api_cg.nft_ok || a->api_cg.id <= 1)
		return;
	c->api_port = a->api_port;
	c->api_cgroup_id = a->api_cg.id;
	c->api_cgroup_level = a->api_cg.nft_level;
	c->api_workload_only = a->has_attach && a->workload.nft_ok &&
			       a->workload.level > 0 && a->workload.id > 1;
}

/* The nftables view of pc (docs/nftables.md). */
static void nft_config_fill(const struct agent *a,
			    const struct policy_compiled *pc,
			    struct nftsync_config *c)
{
	memset(c, 0, sizeof(*c));
	policy_compiled_nft(pc, c);
	c->dns_port = a->cfg->dns_listen_port;
	c->agent_cgroup_id = a->cg.id;
	c->agent_cgroup_level = a->cg.nft_level;
	/* The fast path only while BPF covers the whole namespace. */
	c->bpf_covers_all = a->cov.state == COVERAGE_NAMESPACE;
	/* A hand-off by cgroup only where nft can name the cgroup (not the
	 * sandbox above a namespace root on kernels that count from it):
	 * otherwise nftables judges the workload too, before BPF does. */
	c->bpf_handoff = a->bpf_state == AGENT_BPF_ENFORCE &&
			 (c->bpf_covers_all || a->workload.nft_ok);
	c->bpf_redirect = a->bpf_redirect && c->bpf_covers_all;
	c->workload_cgroup_id = a->workload.id;
	c->workload_cgroup_level = a->workload.nft_level;
	api_nft_fill(a, c);
}

/*
 * Program nftables for compiled policy pc, removing the learned addresses
 * of forget[] in the same batch (agent_learned_revoked()); 0 or -errno.
 * When the learned sets were emptied or replaced, the next answers write
 * every address again.
 */
int agent_nft_apply(struct agent *a, const struct policy_compiled *pc,
		    const struct policy_addr *forget, size_t n_forget,
		    char *err, size_t errlen)
{
	struct nftsync_update upd = { .forget = forget, .n_forget = n_forget };
	struct nftsync_config c;
	int ret;

	nft_config_fill(a, pc, &c);
	ret = nftsync_apply(a->nft, &c, &upd, err, errlen);
	if (!ret && nftsync_learned_reset(a->nft))
		learned_mark_stale(a->learned);
	return ret;
}

/* Write compiled policy pc into the BPF maps as generation; 0 or -errno. */
int agent_bpf_apply(struct agent *a, const struct policy_compiled *pc,
		    uint64_t generation, char *err, size_t errlen)
{
	struct bpfsync_policy bp;
	int ret;

	policy_compiled_bpf(pc, generation, &bp);
	ret = a->bpf_ops->apply_policy(a->bpf, &bp);
	if (ret) {
		a->bpf_errors++;
		snprintf(
			err, errlen, "BPF maps: %s%s", strerror(-ret),
			ret == -E2BIG ?
				" (a set has more prefixes than the maps hold)" :
				"");
	}
	return ret;
}

bool agent_rule_name(const struct agent *a, int reason, int family,
		     const void *dst, uint32_t rule, char *buf, size_t len)
{
	enum policy_compiled_list list;

	if (reason == EVENTS_REASON_DENY_RULE)
		list = POLICY_COMPILED_DENY;
	else if (reason == EVENTS_REASON_DOH)
		list = POLICY_COMPILED_DOH;
	else
		return false;
	/* The policy in force puts dst in the set the reason names (the
	 * longest prefix, as the BPF maps would answer). */
	if (rule == EGRESSD_RULE_NONE && a->compiled)
		rule = policy_compiled_lookup(a->compiled, list, family, dst);
	return !reason_rule_name(rule, buf, len);
}

/* nftables logs only the reason of a drop, never the rule. */
bool agent_nflog_rule(void *arg, const struct nflog_packet *pk, char *buf,
		      size_t len)
{
	return agent_rule_name(arg, pk->reason, pk->family, pk->dst,
			       EGRESSD_RULE_NONE, buf, len);
}

const struct agent_bpf_ops agent_bpf_default_ops = {
	.apply_policy = bpfsync_apply_policy,
	.forget = bpfsync_forget,
};
