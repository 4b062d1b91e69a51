#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# job.sh - a Slurm job that survives its time limit and preemption with
# extckpt. Submit it with the program to run:
#
#     sbatch examples/slurm/job.sh ./my_program arg1 arg2
#
# First run: the program starts (with libckpt.so preloaded). Slurm sends
# SIGUSR2 to this script N seconds before the time limit (or scancel
# --signal=USR2 --batch JOBID does, at once); the script passes it on, the
# program writes its image and exits with status 85 (CKPT_EXIT_AFTER=1),
# and the script requeues the job. The next run resumes from the image.
# When the program ends by itself, the job ends with its status and the
# image is removed.
#
# N (the 120 below) must cover writing the image: its size over the disk's
# write speed, with room to spare (README.md, "Under a scheduler").
#
#SBATCH --job-name=extckpt-job
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:USR2@120
#SBATCH --output=%x-%j.out
#SBATCH --error=%x-%j.err
#
# The program's output is appended to %x-%j.out across the runs, exactly as
# one uninterrupted run would write it; this script's lines (and Slurm's
# "CANCELLED ... DUE TO JOB REQUEUE") go to %x-%j.err.
#
# Settings, from the environment (sbatch --export=ALL,JOB_IMAGE=... or here):
#   JOB_IMAGE  the image's path, on storage every node of the job can reach
#              [$SLURM_SUBMIT_DIR/extckpt-$SLURM_JOB_ID.ckpt]; set it to go
#              on from a job that ended (scancel, a crash) in a new one
#   JOB_GRACE  seconds to wait for the image after the signal before giving
#              up on it and requeueing from the previous one [100]
#   EXTCKPT    the extckpt command [extckpt]
#
# What happens when things go wrong (each one tested in
# tests/test_extckpt_resume.py; tests/test_slurm.py runs this on Slurm):
#   - the signal comes while the job starts or resumes: it waits (extckpt
#     blocks it) and the program checkpoints as soon as it runs again; if it
#     comes in the first instants, before extckpt has blocked it, extckpt
#     dies of it and the job is requeued from the image it had.
#   - the signal comes twice: one image, one requeue.
#   - the checkpoint fails (disk full, ...): the program goes on, libckpt
#     says why on stderr; after JOB_GRACE seconds the script ends it and
#     requeues from the previous image, which a failed checkpoint never
#     touches.
#   - the job is killed in the middle of writing: the previous image is
#     intact (libckpt writes IMAGE.tmp.PID and renames it when complete);
#     the next run resumes from it and removes the leftover.
#   - the file at JOB_IMAGE is not an image of this program: the job fails
#     (exit 2) with a message, and the file is left as it is.
set -u

image=${JOB_IMAGE:-${SLURM_SUBMIT_DIR:-$PWD}/extckpt-${SLURM_JOB_ID:-0}.ckpt}
grace=${JOB_GRACE:-100}
read -r -a extckpt <<<"${EXTCKPT:-extckpt}"
checkpointed=85 # CKPT_EXIT_CHECKPOINTED in native/ckpt_image.h

say() { printf 'job.sh: %s: %s\n' "$(date +%T.%3N)" "$*" >&2; }
now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

pid=
signalled=
timer=
forward() {
	if [[ -z $signalled ]]; then
		signalled=$(now)
		# The grace timer: SIGALRM to this script when it runs out.
		(
			trap 'kill "$s"; exit' TERM
			sleep "$grace" &
			s=$!
			wait "$s" && kill -ALRM $$
		) 2>/dev/null &
		timer=$!
	fi
	say "checkpoint signal: passed on to the program${pid:+ (pid $pid)}"
	[[ -n $pid ]] && kill -USR2 "$pid" 2>/dev/null
}
timed_out=
trap forward USR2
trap 'timed_out=1' ALRM

requeue() {
	say "$1; requeueing job ${SLURM_JOB_ID:-?}"
	[[ -n $timer ]] && kill "$timer" 2>/dev/null
	if ! scontrol requeue "${SLURM_JOB_ID:?not under Slurm}"; then
		say "scontrol requeue failed: resubmit this job to resume it from $image"
		exit 1
	fi
	exit 0
}

started=$(now)
if [[ -e $image ]]; then
	say "resuming from $image"
else
	say "starting $*"
fi
CKPT_EXIT_AFTER=1 "${extckpt[@]}" run --resume --image "$image" -- "$@" &
pid=$!
[[ -n $signalled ]] && kill -USR2 "$pid" 2>/dev/null

# bash runs a trap only between commands or while it waits: wait returns
# (status > 128) when one ran. Wait again until the program itself ended.
while :; do
	wait "$pid"
	status=$?
	if [[ -n $timed_out ]] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		requeue "no image $grace s after the signal (see the libckpt: line above); ended the program"
	fi
	# Still there (or a zombie not yet collected): the wait was cut short.
	((status > 128)) && kill -0 "$pid" 2>/dev/null && continue
	# Gone. If a trap cut the last wait short, status is the trap's; bash
	# keeps the program's own status for another wait.
	wait "$pid"
	status=$?
	break
done

if [[ -n $signalled && $status == "$checkpointed" ]]; then
	requeue "image complete $(seconds_since "$signalled") s after the signal ($(stat -c %s "$image") bytes, ran $(seconds_since "$started") s)"
fi
if [[ -n $signalled ]] && ((status > 128)); then
	requeue "the program was still starting when the signal came (status $status); the image is unchanged"
fi
[[ -n $timer ]] && kill "$timer" 2>/dev/null
if [[ $status == 0 ]]; then
	say "the program ended (status 0) after $(seconds_since "$started") s; removing $image"
	rm -f -- "$image"
else
	say "the program ended with status $status; not requeued (the image, if any, is kept)"
fi
exit "$status"
