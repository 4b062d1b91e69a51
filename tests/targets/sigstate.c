/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sigstate.c - signals pending at the checkpoint and POSIX timers (issue 7):
 *   - SIGUSR1 and three queued SIGRTMIN+1 (values 1, 2, 3) pending, blocked;
 *   - a periodic timer_create timer (SIGRTMIN+2, sigev_value 0xabc, 20 ms);
 *   - a SIGEV_NONE timer with an hour to go, and a disarmed one.
 * After the restart: the same signals are pending, arrive in order with
 * their values once unblocked; the timers have the same ids and keep going.
 */
#include <signal.h>
#include <sys/syscall.h>

#include "target.h"

static volatile sig_atomic_t usr1, ticks, bad_tick_value;
static volatile int rt_values[8], nr_rt;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (nr_rt < 8)
		rt_values[nr_rt++] = si->si_value.sival_int;
}

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	ticks++;
	if (si->si_value.sival_ptr != (void *)0xabc)
		bad_tick_value = 1;
}

static void handle(int sig, void (*fn)(int, siginfo_t *, void *))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(sig, &sa, NULL);
}

int main(void)
{
	struct sigevent ev;
	struct itimerspec its, got;
	timer_t periodic, none, idle;
	sigset_t block, pend;
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);
	handle(SIGRTMIN + 1, on_rt);
	handle(SIGRTMIN + 2, on_tick);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	raise(SIGUSR1);
	for (i = 1; i <= 3; i++) {
		union sigval v = { .sival_int = i };

		sigqueue(getpid(), SIGRTMIN + 1, v);
	}

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN + 2;
	ev.sigev_value.sival_ptr = (void *)0xabc;
	if (timer_create(CLOCK_MONOTONIC, &ev, &periodic))
		fatal("timer_create: %s", strerror(errno));
	its.it_interval.tv_sec = 0;
	its.it_interval.tv_nsec = 20 * 1000 * 1000;
	its.it_value = its.it_interval;
	timer_settime(periodic, 0, &its, NULL);
	ev.sigev_notify = SIGEV_NONE;
	timer_create(CLOCK_REALTIME, &ev, &none);
	its.it_interval.tv_nsec = 0;
	its.it_value.tv_sec = 3600;
	its.it_value.tv_nsec = 0;
	timer_settime(none, 0, &its, NULL);
	ev.sigev_notify = SIGEV_SIGNAL;
	timer_create(CLOCK_MONOTONIC, &ev, &idle);

	ready();
	wait_go();

	sigpending(&pend);
	CHECK(sigismember(&pend, SIGUSR1), "SIGUSR1 is no longer pending");
	CHECK(sigismember(&pend, SIGRTMIN + 1), "SIGRTMIN+1 is no longer pending");
	CHECK(!sigismember(&pend, SIGUSR2), "the checkpoint signal shows as pending");
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	CHECK(usr1 == 1, "SIGUSR1 delivered %d times", (int)usr1);
	CHECK(nr_rt == 3 && rt_values[0] == 1 && rt_values[1] == 2 &&
		      rt_values[2] == 3,
	      "SIGRTMIN+1 values: %d of them, %d %d %d", nr_rt, rt_values[0],
	      rt_values[1], rt_values[2]);

	if (timer_gettime(periodic, &got))
		fail("the periodic timer's id is gone: %s", strerror(errno));
	else
		CHECK(got.it_interval.tv_nsec == 20 * 1000 * 1000,
		      "periodic timer interval %ld ns",
		      (long)got.it_interval.tv_nsec);
	{
		int before = ticks;
		struct timespec t0, now;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do
			clock_gettime(CLOCK_MONOTONIC, &now);
		while (ticks < before + 3 && now.tv_sec - t0.tv_sec < 3);
		CHECK(ticks >= before + 3, "the periodic timer stopped: %d ticks",
		      (int)(ticks - before));
	}
	CHECK(!bad_tick_value, "a tick came with the wrong sigev_value");
	if (timer_gettime(none, &got))
		fail("the SIGEV_NONE timer's id is gone");
	else
		CHECK(got.it_value.tv_sec > 3000, "the SIGEV_NONE timer has %ld s left",
		      (long)got.it_value.tv_sec);
	if (timer_gettime(idle, &got))
		fail("the disarmed timer's id is gone");
	else
		CHECK(!got.it_value.tv_sec && !got.it_value.tv_nsec,
		      "the disarmed timer is armed");
	return finish();
}
