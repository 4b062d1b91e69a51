/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * counter - counts every 20 ms ("count N" lines), keeping a running sum per
 * step in a heap array. It announces ready after 3 counts and keeps
 * counting; it polls stdin (timeout 0, so no call ever sleeps in the
 * kernel) for "go". After a restart the count continues from where the
 * checkpoint caught it; at go it checks the whole history.
 */
#include "target.h"

#include <poll.h>

#define MAX_STEPS 100000L

static int input_waiting(void)
{
	struct pollfd pfd = { .fd = 0, .events = POLLIN };

	return poll(&pfd, 1, 0) > 0;
}

int main(void)
{
	long *history = calloc(MAX_STEPS + 1, sizeof(*history));
	long n = 0, sum = 0;
	char line[64];

	if (!history)
		fatal("calloc failed");
	for (;;) {
		n++;
		if (n > MAX_STEPS)
			fatal("no go after %ld counts", MAX_STEPS);
		history[n] = history[n - 1] + n;
		sum += n;
		if (history[n] != sum)
			fatal("memory corrupted at step %ld: %ld != %ld", n,
			      history[n], sum);
		printf("count %ld\n", n);
		fflush(stdout);
		if (n == 3)
			ready();
		if (n >= 3 && input_waiting()) {
			if (read_line(line, sizeof(line)) < 0)
				fatal("stdin closed before go");
			if (strcmp(line, "go") == 0)
				break;
			fatal("expected go, got '%s'", line);
		}
		sleep_ms(20);
	}
	for (long i = 1; i <= n; i++)
		if (history[i] != i * (i + 1) / 2) {
			fail("history[%ld] = %ld, expected %ld", i, history[i],
			     i * (i + 1) / 2);
			break;
		}
	printf("counted %ld\n", n);
	free(history);
	return finish();
}
