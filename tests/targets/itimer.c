/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * itimer - a periodic ITIMER_REAL (10 ms) whose SIGALRM handler counts.
 * After the restart the timer must still be armed with the same interval
 * and the count must keep rising.
 */
#include "target.h"

#include <signal.h>
#include <sys/time.h>

static volatile long ticks;

static void on_alrm(int sig)
{
	(void)sig;
	ticks++;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait up to timeout_ms for the count to pass target. */
static int wait_ticks(long target, long timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (ticks < target && now_ms() < end)
		sleep_ms(1);
	return ticks >= target;
}

int main(void)
{
	struct sigaction sa;
	struct itimerval it = { { 0, 10000 }, { 0, 10000 } }, now;
	long t0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0 ||
	    setitimer(ITIMER_REAL, &it, NULL) < 0)
		fatal("arming the timer: %s", strerror(errno));
	if (!wait_ticks(3, 5000))
		fatal("the timer does not tick even before the checkpoint");
	ready();
	wait_go();

	if (getitimer(ITIMER_REAL, &now) < 0)
		fail("getitimer: %s", strerror(errno));
	CHECK(now.it_interval.tv_sec == 0 && now.it_interval.tv_usec == 10000,
	      "itimer interval is %ld.%06ld s, expected 0.010000",
	      (long)now.it_interval.tv_sec, (long)now.it_interval.tv_usec);
	CHECK(now.it_value.tv_sec || now.it_value.tv_usec,
	      "itimer is disarmed after the restart");
	t0 = ticks;
	CHECK(wait_ticks(t0 + 10, 3000),
	      "the timer stopped: %ld ticks before the wait, %ld 3 s later",
	      t0, (long)ticks);
	return finish();
}
