#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# dns+nft without BPF: a packet violation line names the rule that
# decided it ("rule", docs/logs.md) although nftables logs only the
# reason: a user deny rule as egress[i], a deny.always line as
# deny.always[i] (comments and names counted as the file's rules are),
# the DoH blocklist entry as doh.blocklist[i]. A deny inside a wider deny
# names the longer prefix. A default_deny line has no rule member.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
export OPENSANDBOX_EGRESS_BPF=off
# shellcheck source=rule_name.sh
. "$(dirname "$0")/rule_name.sh"
rule_name_setup
start_egressd_nft --rules "$RULE_NAME_POLICY"
rule_name_checks
egit_finish
