#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2119,SC2317
# SPDX-License-Identifier: GPL-2.0-only
#
# make install honours PREFIX and DESTDIR: both programs in sbin, the man
# pages egressd.8 and egressctl.8 in man8 (rendered by man without a
# warning), the docs in share/doc/egressd; the installed egressd runs.
# make uninstall removes exactly that, leaving the staging tree's other
# files alone.

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

egit_init
D=$T/stage
mk() { make -s -C "$EGIT_ROOT" --no-print-directory "$@" DESTDIR="$D" PREFIX=/opt/egressd; }

out=$(mk install 2>&1)
assert_eq "make install succeeds" 0 "$?"
for f in sbin/egressd sbin/egressctl share/man/man8/egressd.8 \
	share/man/man8/egressctl.8 share/doc/egressd/README.md \
	share/doc/egressd/CHANGELOG.md share/doc/egressd/configuration.md \
	share/doc/egressd/logs.md share/doc/egressd/api.md; do
	if [ -f "$D/opt/egressd/$f" ]; then
		pass "installed: $f"
	else
		fail "installed: $f" "make install said: $out"
	fi
done
assert_eq "nothing installed outside PREFIX under DESTDIR" "opt" "$(ls "$D")"
assert_eq "egressd is executable" 0 "$([ -x "$D/opt/egressd/sbin/egressd" ]; echo $?)"
v=$("$D/opt/egressd/sbin/egressd" --version)
assert_eq "the installed egressd is the built one" "$("$EGRESSD" --version)" "$v"
for p in egressd egressctl; do
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l \
		"$D/opt/egressd/share/man/man8/$p.8" 2>&1 >/dev/null)
	assert_eq "man $p.8 renders without warnings" "" "$w"
	assert_contains "man -M finds $p(8)" \
		"$(MANWIDTH=80 man -M "$D/opt/egressd/share/man" 8 "$p" 2>/dev/null | head -3)" \
		"$(tr '[:lower:]' '[:upper:]' <<<"$p")(8)"
done
page=$(MANWIDTH=200 man -l "$D/opt/egressd/share/man/man8/egressd.8" 2>/dev/null)
for o in $("$EGRESSD" --help | grep -oE '^  (-h, )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+'); do
	assert_contains "egressd.8 documents $o" "$page" "$o"
done

touch "$D/opt/egressd/share/doc/egressd/local-note"
mk uninstall >/dev/null 2>&1
assert_eq "make uninstall succeeds" 0 "$?"
left=$(cd "$D" && find . -type f | sort)
assert_eq "uninstall leaves only what it did not install" \
	"./opt/egressd/share/doc/egressd/local-note" "$left"
egit_finish
