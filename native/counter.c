/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * counter.c - the demo target: counts to a fixed number, one step every
 * 100 ms, keeping a running sum in a heap array so that a bad restart shows.
 * `make check` checkpoints it part-way, `make res` resumes it to the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define STEPS 30

int main(void)
{
	long *history = calloc(STEPS + 1, sizeof(*history));
	struct timespec step = { 0, 100 * 1000 * 1000 };
	long sum = 0;

	if (!history)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("counter: pid %d, counting to %d\n", (int)getpid(), STEPS);
	for (int i = 1; i <= STEPS; i++) {
		history[i] = history[i - 1] + i;
		sum += i;
		if (sum != history[i]) {
			printf("counter: memory corrupted at step %d\n", i);
			return 1;
		}
		printf("count %d (sum %ld)\n", i, sum);
		/* Sleep the whole step even if a signal cuts it short. */
		struct timespec left = step;
		while (nanosleep(&left, &left) != 0)
			;
	}
	printf("counter: done, sum %ld\n", sum);
	free(history);
	return 0;
}
