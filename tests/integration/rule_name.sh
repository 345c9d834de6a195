# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The scenario of test_nft_rule_name and test_bpf_rule_name (sourced after
# lib.sh and egit_init): rule_name_setup adds the hosts and the always
# file and sets RULE_NAME_POLICY; rule_name_checks makes the workload hit
# each rule and checks the "rule" member of its violation line.

rule_name_setup() {
	start_upstream
	inet_addr "10.200.$X.66" "10.200.$X.70" "10.200.$X.71" "10.200.$X.44" \
		"10.200.7.5" "fd00:200:$X::66"
	start_servers web "tcp:10.200.$X.66:80" "tcp:10.200.$X.70:80" \
		"tcp:10.200.$X.71:80" "tcp:10.200.$X.44:443" \
		"tcp:10.200.7.5:80" "tcp:[fd00:200:$X::66]:80"
	printf '# operator denies\nevil.example\n10.200.%s.70/31\n10.200.%s.71\n' \
		"$X" "$X" >"$OPENSANDBOX_EGRESS_RULES_DIR/deny.always"
	export OPENSANDBOX_EGRESS_DOH_BLOCKLIST="192.0.2.1,10.200.$X.44"
	RULE_NAME_POLICY='{"defaultAction":"deny","egress":[
 {"action":"allow","target":"api.github.com"},
 {"action":"allow","target":"10.200.'"$X"'.0/24"},
 {"action":"deny","target":"10.200.'"$X"'.66"},
 {"action":"deny","target":"fd00:200:'"$X"'::66"}]}'
}

rule_name_checks() {
	assert_blocked "10.200.$X.66 (egress[2]) is blocked" "10.200.$X.66" 80
	wait_json_line "its violation line names egress[2]" "$T/egressd.out" \
		event=violation layer=packet reason=deny_rule \
		dst="10.200.$X.66" dport=80 rule="egress[2]"
	assert_blocked "fd00:200:$X::66 (egress[3]) is blocked" "fd00:200:$X::66" 80
	wait_json_line "its violation line names egress[3]" "$T/egressd.out" \
		event=violation layer=packet reason=deny_rule \
		dst="fd00:200:$X::66" dport=80 rule="egress[3]"
	assert_blocked "10.200.$X.70 (deny.always /31) is blocked" "10.200.$X.70" 80
	wait_json_line "its violation line names deny.always[1]" "$T/egressd.out" \
		event=violation layer=packet reason=deny_rule \
		dst="10.200.$X.70" dport=80 rule="deny.always[1]"
	assert_blocked "10.200.$X.71 (deny.always /32 in the /31) is blocked" \
		"10.200.$X.71" 80
	wait_json_line "its violation line names the longer prefix, deny.always[2]" \
		"$T/egressd.out" event=violation layer=packet reason=deny_rule \
		dst="10.200.$X.71" dport=80 rule="deny.always[2]"
	assert_blocked "10.200.$X.44:443 (DoH blocklist) is blocked" "10.200.$X.44" 443
	wait_json_line "its violation line names doh.blocklist[1]" "$T/egressd.out" \
		event=violation layer=packet reason=doh dst="10.200.$X.44" \
		dport=443 rule="doh.blocklist[1]"
	assert_blocked "10.200.7.5 (no rule) is blocked" 10.200.7.5 80
	wait_json_line "its violation line is default_deny" "$T/egressd.out" \
		event=violation layer=packet reason=default_deny dst=10.200.7.5 \
		dport=80
	assert_eq "a default_deny line has no rule member" "" \
		"$(grep '"reason":"default_deny"' "$T/egressd.out" | grep '"rule"')"
}
