/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * deep - a checkpoint taken 3 to 5 MiB deep in the stack. The program
 * recurses 15,000 frames, each with locals derived from its depth, and
 * waits at the bottom (so the checkpoint signal lands there). After the
 * restart the recursion unwinds and every frame checks its locals; then it
 * recurses deeper than before - further than the stack ever reached before
 * the checkpoint - so the restored stack must still grow down.
 */
#include "target.h"

#include <sys/resource.h>

#define DEPTH 15000
#define NLOC 16

static long bad_frames, first_bad = -1;
static uintptr_t frame_top, frame_bottom;

static uint64_t local_value(long depth, int i)
{
	return mix64((uint64_t)depth * NLOC + i);
}

static void at_bottom(int phase)
{
	if (phase == 0) {
		ready();
		wait_go();
	}
}

__attribute__((noinline)) static long recurse(long depth, long max, int phase)
{
	volatile uint64_t loc[NLOC];
	long r;

	for (int i = 0; i < NLOC; i++)
		loc[i] = local_value(depth, i);
	if (depth == 0)
		frame_top = (uintptr_t)loc;
	if (depth == max) {
		frame_bottom = (uintptr_t)loc;
		at_bottom(phase);
		r = 0;
	} else {
		r = recurse(depth + 1, max, phase);
	}
	for (int i = 0; i < NLOC; i++)
		if (loc[i] != local_value(depth, i)) {
			if (!bad_frames++ || depth < first_bad)
				first_bad = depth;
			break;
		}
	return r + 1;
}

int main(void)
{
	struct rlimit rl;
	long depth2, r;
	size_t used, frame, room;

	r = recurse(0, DEPTH, 0);
	used = frame_top - frame_bottom;
	frame = used / DEPTH;
	CHECK(r == DEPTH + 1, "recursion returned %ld, expected %d", r,
	      DEPTH + 1);
	CHECK(!bad_frames, "%ld frames lost their locals (deepest-first "
			    "unwinding; shallowest bad depth %ld)",
	      bad_frames, first_bad);
	if (target_nr_failures)
		return finish();

	/* Deeper than before, keeping 1 MiB of the stack limit spare. */
	if (getrlimit(RLIMIT_STACK, &rl) < 0)
		fatal("getrlimit: %s", strerror(errno));
	room = rl.rlim_cur == RLIM_INFINITY ? 4 * used : rl.rlim_cur;
	room = room > (1 << 20) ? room - (1 << 20) : 0;
	depth2 = frame ? (long)(room / frame) : 0;
	if (depth2 > 2 * DEPTH)
		depth2 = 2 * DEPTH;
	if (depth2 < DEPTH + DEPTH / 4)
		fatal("RLIMIT_STACK %lu leaves no room to recurse deeper than "
		      "%d frames of %zu bytes",
		      (unsigned long)rl.rlim_cur, DEPTH, frame);
	r = recurse(0, depth2, 1);
	CHECK(r == depth2 + 1, "deeper recursion returned %ld", r);
	CHECK(!bad_frames, "%ld frames of the deeper recursion went wrong",
	      bad_frames);
	printf("depth %d then %ld, %zu bytes a frame\n", DEPTH, depth2, frame);
	return finish();
}
