/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Inside the nftables layer (agent/nft*.c; other modules use nftsync.h):
 * the batch buffer and the object emitters. A batch is BEGIN, commands,
 * END in one buffer, each command numbered and described so that an
 * error ACK can name it. The emitters write one table, chain, counter,
 * set, element list or rule message each, for either family egressd uses
 * (inet: the filter; netdev: the packet-socket guard); what goes into the
 * table, and in which order, is nftruleset.c's and nftnetdev.c's.
 */
#ifndef __EGRESSD_NFTBATCH_H
#define __EGRESSD_NFTBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "egressd/nftsync.h"

struct nftnl_rule;

/*
 * What a message does, kept as pointers to static strings and numbers and
 * only turned into text when an ACK reports an error (or a test asks):
 * "<verb> <what> <name>[ \"<comment>\"][ [<first>..<last> of <total>]]",
 * or just <what> when verb is NULL ("batch begin").
 */
struct nftbatch_desc {
	const char *verb;
	const char *what;
	const char *name;
	const char *comment;
	uint32_t first, last, total; /* element range, total 0: none */
};

struct nftsync_batch {
	char *buf;
	size_t len, cap;
	uint32_t seq_base; /* sequence number of BEGIN */
	uint32_t seq; /* next sequence number */
	struct nftbatch_desc *desc; /* desc[i] describes seq_base + i */
	size_t ndesc, desc_cap;
	size_t ncmds;
	size_t room; /* bytes promised to the message being built */
	size_t dirty; /* buf[dirty..cap) is zero, see batch_reserve() */
	uint32_t set_id;
	bool finished;
	char *text; /* DESC_TEXT_MAX bytes for nftsync_batch_describe */
	char **names; /* nftbatch_keep()'s copies */
	size_t nnames, names_cap;
};

/*
 * A copy of s that lives as long as this build of b (until it is reset or
 * freed), for names that descriptions keep but that are not static (a
 * netdev chain's "frames_<ifname>"). NULL on ENOMEM.
 */
const char *nftbatch_keep(struct nftsync_batch *b, const char *s);

/* BEGIN into an empty batch; END, after which the batch can be sent. */
int nftbatch_begin(struct nftsync_batch *b);
int nftbatch_end(struct nftsync_batch *b);

/* Address length of an AF_INET/AF_INET6 key. */
static inline size_t nftbatch_alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

/*
 * Table egressd of family (NFPROTO_INET or NFPROTO_NETDEV), type
 * NFT_MSG_NEWTABLE (create if missing) or NFT_MSG_DELTABLE.
 */
int nftbatch_table(struct nftsync_batch *b, uint8_t family, uint16_t type);

struct nftbatch_chain {
	const char *name;
	const char *type; /* "filter", "nat" */
	uint8_t family; /* NFPROTO_INET, NFPROTO_NETDEV */
	uint32_t hook; /* NF_INET_LOCAL_OUT, NF_NETDEV_EGRESS */
	int prio;
	const char *dev; /* netdev: the interface, else NULL */
	const char *comment;
};

/* type: NFT_MSG_NEWCHAIN (create if missing; an existing chain keeps its
 * comment) or NFT_MSG_DELCHAIN (with its rules). */
int nftbatch_chain(struct nftsync_batch *b, const struct nftbatch_chain *cs,
		   uint16_t type);

struct nftbatch_counter {
	const char *name;
	const char *comment;
};

/* A named counter of table egressd of family: NFT_MSG_NEWOBJ (created at
 * zero if missing; an existing one keeps its numbers) or NFT_MSG_DELOBJ. */
int nftbatch_counter(struct nftsync_batch *b, uint8_t family,
		     const struct nftbatch_counter *cs, uint16_t type);

/* A named address set of table inet egressd. */
struct nftbatch_set {
	const char *name;
	int family; /* of its keys: AF_INET, AF_INET6 */
	uint32_t flags; /* NFT_SET_INTERVAL, NFT_SET_TIMEOUT */
	const char *comment;
};

/* NFT_MSG_NEWSET (create if missing) or NFT_MSG_DELSET. */
int nftbatch_set(struct nftsync_batch *b, const struct nftbatch_set *ss,
		 uint16_t type);

/* One set element: a key, and for interval sets maybe an interval end. */
struct nftbatch_elem {
	uint8_t key[16];
	bool end;
};

/* What an element command does to the set. */
enum nftbatch_elem_op {
	NFTBATCH_ELEM_ADD, /* NEWSETELEM: create, or keep an existing one */
	NFTBATCH_ELEM_CREATE, /* NEWSETELEM | NLM_F_EXCL: EEXIST if it exists */
	NFTBATCH_ELEM_DELETE, /* DELSETELEM; with n == 0 flushes the set */
};

/*
 * Element commands for v[0..n) (timeout_ms 0: none), in as many messages
 * as they need. NFTBATCH_ELEM_DELETE with n == 0 flushes the set.
 */
int nftbatch_elems(struct nftsync_batch *b, const struct nftbatch_set *ss,
		   enum nftbatch_elem_op op, const struct nftbatch_elem *v,
		   size_t n, uint64_t timeout_ms);

/*
 * Append rule r (its table, chain and family set) with its comment, what
 * `nft list` shows. The message header carries the rule's family.
 */
int nftbatch_rule(struct nftsync_batch *b, struct nftnl_rule *r,
		  const char *chain, const char *comment);

#endif /* __EGRESSD_NFTBATCH_H */
