/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The port-53 redirect without nat (docs/design.md, "DNS redirect"):
 * cgroup sock_addr programs rewrite the destination of every UDP send and
 * TCP/UDP connect to port 53 from a socket of egressd's network namespace
 * to the proxy on loopback, before the kernel routes anything, so no
 * conntrack entry is ever needed. The original destination is kept in
 * socket storage: recvmsg and getpeername show it again, so a resolver
 * library that checks where the answer came from (musl, glibc) accepts
 * the proxy's reply. The agent's own sockets are exempt by socket cookie
 * (agent_socks), not by cgroup: joining egressd's cgroup gives nothing.
 *
 * Included once, by egress.bpf.c (the same object: one config map, one
 * skeleton). Return 1 = proceed (0 would fail the call with EPERM).
 */
#ifndef __EGRESSD_REDIRECT_BPF_H
#define __EGRESSD_REDIRECT_BPF_H

#define SOCK_ADDR_PROCEED 1
#define DNS_PORT_BE bpf_htons(EGRESSD_PORT_DNS)
#define LOOPBACK4_BE bpf_htonl(0x7f000001)

/* Original DNS destination per socket; written by these programs. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct egressd_dns_orig);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dns_orig SEC(".maps");

/*
 * The config when this socket call is to be redirected: a TCP or UDP
 * socket of our network namespace, not the agent's, and the redirect
 * enabled by the agent (dns_port set). NULL otherwise.
 */
static __always_inline const struct egressd_bpf_cfg *
redirect_cfg(struct bpf_sock_addr *ctx)
{
	const struct egressd_bpf_cfg *cfg;
	__u32 zero = 0;

	if (ctx->protocol != IPPROTO_UDP && ctx->protocol != IPPROTO_TCP)
		return NULL;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->dns_port || !cfg->netns_cookie)
		return NULL;
	if (bpf_get_netns_cookie(ctx) != cfg->netns_cookie)
		return NULL;
	/* egressd's own sockets (its upstream queries), not its cgroup */
	if (is_agent_cookie(bpf_get_socket_cookie(ctx)))
		return NULL;
	return cfg;
}

/* Remember where the query was going (best effort: the redirect itself
 * does not depend on it). a: 1 (IPv4) or 4 (IPv6) words, network order. */
static __always_inline void remember(struct bpf_sock_addr *ctx, __u8 family,
				     __u32 a0, __u32 a1, __u32 a2, __u32 a3)
{
	struct egressd_dns_orig *o;
	__u32 *w;

	o = bpf_sk_storage_get(&dns_orig, ctx->sk, 0,
			       BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return;
	w = (__u32 *)o->addr;
	w[0] = a0;
	w[1] = a1;
	w[2] = a2;
	w[3] = a3;
	o->port = DNS_PORT_BE;
	o->family = family;
}

static __always_inline int redirect4(struct bpf_sock_addr *ctx)
{
	const struct egressd_bpf_cfg *cfg;

	if (ctx->user_port != DNS_PORT_BE)
		return SOCK_ADDR_PROCEED;
	cfg = redirect_cfg(ctx);
	if (!cfg)
		return SOCK_ADDR_PROCEED;
	remember(ctx, 4, ctx->user_ip4, 0, 0, 0);
	ctx->user_ip4 = LOOPBACK4_BE;
	ctx->user_port = bpf_htons(cfg->dns_port);
	return SOCK_ADDR_PROCEED;
}

/* An IPv4-mapped destination goes to the proxy's IPv4 address. */
static __always_inline int redirect6(struct bpf_sock_addr *ctx)
{
	const struct egressd_bpf_cfg *cfg;
	__u32 a0, a1, a2, a3;

	if (ctx->user_port != DNS_PORT_BE)
		return SOCK_ADDR_PROCEED;
	cfg = redirect_cfg(ctx);
	if (!cfg)
		return SOCK_ADDR_PROCEED;
	a0 = ctx->user_ip6[0];
	a1 = ctx->user_ip6[1];
	a2 = ctx->user_ip6[2];
	a3 = ctx->user_ip6[3];
	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0x0000ffff)) {
		remember(ctx, 4, a3, 0, 0, 0);
		ctx->user_ip6[3] = LOOPBACK4_BE;
	} else {
		remember(ctx, 6, a0, a1, a2, a3);
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(cfg->dns_port);
	return SOCK_ADDR_PROCEED;
}

/*
 * recvmsg / getpeername: an address that is the proxy, on a socket whose
 * query was redirected, becomes the original destination again. The
 * storage only exists on sockets these programs redirected, so nothing
 * else is looked at.
 */
static __always_inline const struct egressd_dns_orig *
orig_of(struct bpf_sock_addr *ctx)
{
	const struct egressd_bpf_cfg *cfg;
	__u32 zero = 0;

	if (ctx->protocol != IPPROTO_UDP && ctx->protocol != IPPROTO_TCP)
		return NULL;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->dns_port ||
	    ctx->user_port != bpf_htons(cfg->dns_port))
		return NULL;
	return bpf_sk_storage_get(&dns_orig, ctx->sk, 0, 0);
}

static __always_inline int restore4(struct bpf_sock_addr *ctx)
{
	const struct egressd_dns_orig *o = orig_of(ctx);

	if (!o || o->family != 4 || ctx->user_ip4 != LOOPBACK4_BE)
		return SOCK_ADDR_PROCEED;
	ctx->user_ip4 = *(const __u32 *)o->addr;
	ctx->user_port = o->port;
	return SOCK_ADDR_PROCEED;
}

static __always_inline int restore6(struct bpf_sock_addr *ctx)
{
	const struct egressd_dns_orig *o = orig_of(ctx);
	const __u32 *w;
	__u32 a0, a1, a2, a3;

	if (!o)
		return SOCK_ADDR_PROCEED;
	w = (const __u32 *)o->addr;
	a0 = ctx->user_ip6[0];
	a1 = ctx->user_ip6[1];
	a2 = ctx->user_ip6[2];
	a3 = ctx->user_ip6[3];
	if (a0 || a1)
		return SOCK_ADDR_PROCEED;
	if (o->family == 4 && a2 == bpf_htonl(0x0000ffff) &&
	    a3 == LOOPBACK4_BE) {
		ctx->user_ip6[3] = w[0];
	} else if (o->family == 6 && a2 == 0 && a3 == bpf_htonl(1)) {
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	} else {
		return SOCK_ADDR_PROCEED;
	}
	ctx->user_port = o->port;
	return SOCK_ADDR_PROCEED;
}

SEC("cgroup/connect4")
int dns_connect4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx);
}

SEC("cgroup/sendmsg4")
int dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx);
}

SEC("cgroup/connect6")
int dns_connect6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx);
}

SEC("cgroup/sendmsg6")
int dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx);
}

SEC("cgroup/recvmsg4")
int dns_recvmsg4(struct bpf_sock_addr *ctx)
{
	return restore4(ctx);
}

SEC("cgroup/recvmsg6")
int dns_recvmsg6(struct bpf_sock_addr *ctx)
{
	return restore6(ctx);
}

SEC("cgroup/getpeername4")
int dns_getpeername4(struct bpf_sock_addr *ctx)
{
	return restore4(ctx);
}

SEC("cgroup/getpeername6")
int dns_getpeername6(struct bpf_sock_addr *ctx)
{
	return restore6(ctx);
}

/*
 * The bind guard (docs/security.md, class 8): while egressd is down (kill -9, a
 * restart) no other process below the attach cgroup may bind its DNS or
 * API port, so that no squatter answers the sandbox's DNS and the restart
 * always gets its ports. egressd registers each socket's cookie before
 * binding it; the map is pinned, so the programs of the previous run,
 * still attached while the new egressd starts, know it too. Any address,
 * TCP and UDP alike: with SO_REUSEADDR (UDP) or SO_REUSEPORT a second
 * socket could otherwise share the port even while egressd holds it.
 * Return 0 fails bind() with EPERM.
 */
static __always_inline int bind_guard(struct bpf_sock_addr *ctx)
{
	const struct egressd_bpf_cfg *cfg;
	__u32 zero = 0;
	__u16 port;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->netns_cookie)
		return SOCK_ADDR_PROCEED;
	port = bpf_ntohs(ctx->user_port);
	if (!port || (port != cfg->api_port && port != cfg->bind_dns_port))
		return SOCK_ADDR_PROCEED;
	if (bpf_get_netns_cookie(ctx) != cfg->netns_cookie)
		return SOCK_ADDR_PROCEED;
	if (is_agent_cookie(bpf_get_socket_cookie(ctx)))
		return SOCK_ADDR_PROCEED;
	count(EGRESSD_CNT_BIND_REFUSED);
	return 0;
}

SEC("cgroup/bind4")
int guard_bind4(struct bpf_sock_addr *ctx)
{
	return bind_guard(ctx);
}

SEC("cgroup/bind6")
int guard_bind6(struct bpf_sock_addr *ctx)
{
	return bind_guard(ctx);
}

#endif /* __EGRESSD_REDIRECT_BPF_H */
