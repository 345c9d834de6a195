/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Defaults that egressd and egressctl must agree on: where the API
 * listens, the header that carries its token, where the BPF objects are
 * pinned, and the DNS proxy's port. Both sides include this header, so a
 * default changes in one place; docs/configuration.md and
 * docs/egressctl.md document the same values.
 */
#ifndef __EGRESSD_DEFAULTS_H
#define __EGRESSD_DEFAULTS_H

#define EGRESSD_STRINGIFY_(x) #x
#define EGRESSD_STRINGIFY(x) EGRESSD_STRINGIFY_(x)

/* OPENSANDBOX_EGRESS_HTTP_ADDR: ":PORT" is every address to egressd. */
#define EGRESSD_DEFAULT_HTTP_ADDR ":18080"

/* The API token's header when OPENSANDBOX_EGRESS_TOKEN is set. */
#define EGRESSD_AUTH_HEADER "OPENSANDBOX-EGRESS-AUTH"

/* OPENSANDBOX_EGRESS_BPF_PIN_DIR: one directory per egressd instance. */
#define EGRESSD_DEFAULT_PIN_DIR "/sys/fs/bpf/egressd"

/* OPENSANDBOX_EGRESS_DNS_LISTEN_PORT, on 127.0.0.1 and ::1. */
#define EGRESSD_DEFAULT_DNS_LISTEN_PORT 15353
#define EGRESSD_DEFAULT_DNS_LISTEN_PORT_STR \
	EGRESSD_STRINGIFY(EGRESSD_DEFAULT_DNS_LISTEN_PORT)

#endif /* __EGRESSD_DEFAULTS_H */
