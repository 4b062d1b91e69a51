#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# demo.sh check|res - what `make check` and `make res` run.
#   check: start the counter preloaded, wait until it counts, send SIGUSR2,
#          wait for the image to appear (it appears only complete), stop the
#          counter and summarise.
#   res:   restart the counter from the image; it counts on to the end.
set -eu
cd "$(dirname "$0")"
IMAGE=${IMAGE:-myckpt}
LOG=counter.log

wait_for() { # wait_for SECONDS COMMAND...: poll COMMAND until true
	limit=$(($1 * 20)); shift
	while ! "$@"; do
		limit=$((limit - 1))
		[ "$limit" -gt 0 ] || return 1
		sleep 0.05
	done
}

case "${1:-}" in
check)
	rm -f "$IMAGE" "$LOG"
	CKPT_IMAGE="$IMAGE" LD_PRELOAD="$PWD/libckpt.so" ./counter >"$LOG" 2>&1 &
	pid=$!
	# Stop the counter whatever happens; quietly, no "Killed" noise.
	trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
	if ! wait_for 10 grep -qs '^count 5 ' "$LOG"; then
		echo "demo: the counter did not start:"; cat "$LOG"; exit 1
	fi
	kill -USR2 "$pid"
	if ! wait_for 30 test -f "$IMAGE"; then
		echo "demo: no image after 30 s:"; cat "$LOG"; exit 1
	fi
	at=$(grep '^count ' "$LOG" | tail -n 1 | cut -d' ' -f2)
	size=$(wc -c <"$IMAGE")
	echo "checkpointed the counter (pid $pid) near count $at:" \
		"$IMAGE, $((size / 1024)) KiB; run 'make res' to resume it"
	;;
res)
	if [ ! -f "$IMAGE" ]; then
		echo "demo: no image $IMAGE; run 'make check' first"; exit 1
	fi
	# The counter wrote to counter.log; resume it on this terminal instead.
	exec ./myrestart --keep-stdio "$IMAGE"
	;;
*)
	echo "usage: $0 check|res"; exit 2
	;;
esac
