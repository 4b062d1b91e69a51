#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# slurm-up.sh --install-only - install slurm-wlm and munge if missing (.ci/run)
# slurm-up.sh DIR - start a one-node Slurm on this machine, for the tests of
# examples/slurm/: munged, slurmctld and slurmd on localhost, everything
# (config, state, logs, sockets) under DIR, nothing in /etc touched. Installs
# Debian's slurm-wlm and munge first if they are missing (needs root and
# apt-get). Then:
#     export SLURM_CONF=DIR/slurm.conf    # for sbatch, squeue, scontrol ...
#     tests/slurm/slurm-down.sh DIR       # stops it
# Exit 0 once the node is idle; 3 when the packages cannot be installed;
# 1 when Slurm does not come up (its logs are in DIR).
#
# The configuration is the least that works without cgroups or systemd:
# proctrack/linuxproc (a job's processes are found by parentage), task/none,
# no accounting. cred_expire is short because Slurm holds a requeued job
# back until the credentials of its last run have expired (120 s by
# default; slurmd refuses to start a job it killed before that, so
# `scontrol update StartTime=now` is no way round it), and sched_interval
# short so that the job starts as soon as it may: a requeued job runs again
# about 7 s after its requeue.
set -euo pipefail

log() { printf 'slurm-up: %s\n' "$*" >&2; }
install_only=
if [[ ${1-} == --install-only ]]; then
	install_only=1
	dir=$(mktemp -d)
else
	dir=${1:?usage: slurm-up.sh DIR | slurm-up.sh --install-only}
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
fi

install_packages() {
	command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
		command -v munged >/dev/null && command -v sbatch >/dev/null && return 0
	if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
		log "slurm-wlm and munge are not installed, and this is not root with apt-get"
		return 1
	fi
	log "installing slurm-wlm and munge (apt-get)"
	timeout 300 apt-get update -q >"$dir/apt.log" 2>&1 &&
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
			slurm-wlm munge >>"$dir/apt.log" 2>&1 ||
		{ log "apt-get failed; see $dir/apt.log"; return 1; }
}

install_packages || exit 3
[[ -n $install_only ]] && exit 0

host=$(hostname -s)
# The node must resolve; most containers map their own name in /etc/hosts.
getent hosts "$host" >/dev/null || host=localhost
mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/log"
chmod 700 "$dir/munge"

# munged: a private instance with its own key and socket.
if [[ ! -s $dir/munge/munge.key ]]; then
	dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
	chmod 400 "$dir/munge/munge.key"
fi
socket=$dir/munge/munge.socket
munged --force --key-file="$dir/munge/munge.key" --socket="$socket" \
	--pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
	--seed-file="$dir/munge/munged.seed" ||
	{ log "munged did not start; see $dir/log/munged.log"; exit 1; }

cpus=$(nproc)
cat >"$dir/slurm.conf" <<CONF
ClusterName=extckpt
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${SLURM_TEST_PORT:-6917}
SlurmdPort=$(( ${SLURM_TEST_PORT:-6917} + 1 ))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket,cred_expire=5
SchedulerParameters=sched_interval=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf

slurmctld -f "$SLURM_CONF" -i ||
	{ log "slurmctld did not start; see $dir/log/slurmctld.log"; exit 1; }
slurmd -f "$SLURM_CONF" -N "$host" ||
	{ log "slurmd did not start; see $dir/log/slurmd.log"; exit 1; }

# Up when the node is idle; give it 60 s.
for _ in $(seq 120); do
	state=$(sinfo -h -N -o %T 2>/dev/null || true)
	if [[ $state == idle ]]; then
		log "one-node Slurm up in $dir (node $host); export SLURM_CONF=$SLURM_CONF"
		exit 0
	fi
	sleep 0.5
done
log "the node is not idle after 60 s (state: ${state:-none}); see $dir/log/"
exit 1
