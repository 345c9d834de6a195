# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Removing a test's cgroup, sourced by lib.sh and run.sh.
#
# A killed process leaves cgroup.procs before it has finished exiting; until
# it has, the cgroup is still "populated" and rmdir fails with EBUSY. So the
# cgroup is emptied (cgroup.kill where the kernel has it, 5.14 and later;
# SIGKILL to each listed process otherwise, and the survivors moved out),
# then rmdir is retried until cgroup.events says "populated 0" and the
# directory is gone.

# egit_rmcg DIR [PARK]: remove the cgroup DIR and every cgroup below it,
# killing what runs there; PARK is a cgroup directory to move survivors to
# (default: the cgroup2 root DIR lives under). Waits up to 5 s per cgroup;
# returns 1 (and says which) if one is still there.
egit_rmcg() {
	local d=$1 park=${2:-} c p i
	[ -d "$d" ] || return 0
	if [ -z "$park" ]; then
		park=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	fi
	for c in "$d"/*/; do
		[ -d "$c" ] && { egit_rmcg "${c%/}" "$park" || return 1; }
	done
	[ -w "$d/cgroup.kill" ] && echo 1 >"$d/cgroup.kill" 2>/dev/null
	for i in $(seq 100); do
		rmdir "$d" 2>/dev/null && return 0
		[ -d "$d" ] || return 0
		if [ -s "$d/cgroup.procs" ]; then
			while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$d/cgroup.procs"
			# After a second, move what SIGKILL did not stop.
			if [ "$i" -gt 20 ]; then
				while read -r p; do
					echo "$p" >"$park/cgroup.procs" 2>/dev/null
				done <"$d/cgroup.procs"
			fi
		fi
		sleep 0.05
	done
	echo "warning: could not remove cgroup $d ($(tr '\n' ' ' <"$d/cgroup.events" 2>/dev/null))" >&2
	return 1
}
