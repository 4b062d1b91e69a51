/* SPDX-License-Identifier: GPL-2.0-or-later */
/* cli_threads.c - a multi-threaded target: extckpt attach must refuse it. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, sleeper, NULL))
		return 1;
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
