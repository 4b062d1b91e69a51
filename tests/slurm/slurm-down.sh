#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# slurm-down.sh DIR - stop the Slurm that slurm-up.sh DIR started: slurmd,
# slurmctld and munged, each by the pid in its pid file under DIR (never
# by name: other Slurm or munge daemons on the machine are left alone).
# Waits up to 10 s for each, then SIGKILLs it. DIR itself is kept (logs).
set -uo pipefail

dir=${1:?usage: slurm-down.sh DIR}

stop() {
	local pidfile=$1 pid
	[[ -s $pidfile ]] || return 0
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	printf 'slurm-down: %s (pid %s) still there after 10 s: SIGKILL\n' "$pidfile" "$pid" >&2
	kill -KILL "$pid" 2>/dev/null
	return 0
}

stop "$dir/slurmd.pid"
stop "$dir/slurmctld.pid"
stop "$dir/munge/munged.pid"
