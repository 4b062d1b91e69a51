/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * multithread - a program with two threads. libckpt must refuse to
 * checkpoint it (a "libckpt: ..." line on stderr, no image) and leave it
 * running untouched: both threads keep working, and at "go" the worker is
 * stopped and joined.
 */
#include "target.h"

#include <pthread.h>

static volatile int stop;
static volatile long worker_rounds;

static void *worker(void *arg)
{
	(void)arg;
	while (!stop) {
		worker_rounds++;
		sleep_ms(5);
	}
	return NULL;
}

int main(void)
{
	pthread_t t;
	long rounds;

	if (pthread_create(&t, NULL, worker, NULL) != 0)
		fatal("pthread_create failed");
	while (worker_rounds < 2)
		sleep_ms(1);
	ready();
	wait_go();
	rounds = worker_rounds;
	sleep_ms(50);
	CHECK(worker_rounds > rounds, "the worker thread stopped");
	stop = 1;
	CHECK(pthread_join(t, NULL) == 0, "pthread_join failed");
	return finish();
}
