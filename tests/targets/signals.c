/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * signals - signal dispositions and the mask through a restart. Before:
 * SIGINT gets a handler (SA_SIGINFO | SA_RESTART, SIGQUIT and SIGUSR1 in
 * its mask), SIGALRM another (SA_NODEFER | SA_RESETHAND), SIGRTMIN+2 a third
 * (SA_ONSTACK), SIGTERM and SIGPIPE are ignored, SIGHUP and SIGWINCH
 * blocked. After: sigaction() reads back the same for every signal,
 * sigprocmask() the same mask, raise(SIGINT) runs the handler with its mask
 * applied, raise(SIGALRM) runs once and resets, SIGTERM is still ignored
 * and a raised SIGHUP stays pending.
 */
#include "target.h"

#include <signal.h>

static volatile int int_calls, alrm_calls, rt_calls;
static volatile int int_saw_mask_ok, int_saw_info_ok;

static void on_int(int sig, siginfo_t *si, void *uc)
{
	sigset_t cur;

	(void)uc;
	int_calls++;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	int_saw_mask_ok = sigismember(&cur, SIGQUIT) &&
			  sigismember(&cur, SIGUSR1) &&
			  sigismember(&cur, SIGINT) && sigismember(&cur, SIGHUP);
	int_saw_info_ok = sig == SIGINT && si && si->si_signo == SIGINT &&
			  si->si_pid == getpid();
}

static void on_alrm(int sig)
{
	(void)sig;
	alrm_calls++;
}

static void on_rt(int sig)
{
	(void)sig;
	rt_calls++;
}

static struct sigaction before[NSIG];
static int have[NSIG];

static void install(int sig, void (*h)(int), void (*sa)(int, siginfo_t *,
							 void *),
		    int flags, int mask1, int mask2)
{
	struct sigaction act;

	memset(&act, 0, sizeof(act));
	if (sa)
		act.sa_sigaction = sa;
	else
		act.sa_handler = h;
	act.sa_flags = flags;
	sigemptyset(&act.sa_mask);
	if (mask1)
		sigaddset(&act.sa_mask, mask1);
	if (mask2)
		sigaddset(&act.sa_mask, mask2);
	if (sigaction(sig, &act, NULL) < 0)
		fatal("sigaction(%d): %s", sig, strerror(errno));
}

static int same_mask(const sigset_t *a, const sigset_t *b, int *which)
{
	for (int s = 1; s < NSIG; s++)
		if (sigismember(a, s) != sigismember(b, s)) {
			*which = s;
			return 0;
		}
	return 1;
}

int main(void)
{
	sigset_t block, mask_before, mask_after, pending;
	int which;

	install(SIGINT, NULL, on_int, SA_SIGINFO | SA_RESTART, SIGQUIT, SIGUSR1);
	install(SIGALRM, on_alrm, NULL, SA_NODEFER | SA_RESETHAND, 0, 0);
	install(SIGRTMIN + 2, on_rt, NULL, SA_ONSTACK | SA_RESTART, SIGINT, 0);
	install(SIGTERM, SIG_IGN, NULL, 0, 0, 0);
	install(SIGPIPE, SIG_IGN, NULL, SA_RESTART, 0, 0);
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &block, NULL) < 0)
		fatal("sigprocmask: %s", strerror(errno));
	for (int s = 1; s < NSIG; s++)
		have[s] = sigaction(s, NULL, &before[s]) == 0;
	sigprocmask(SIG_BLOCK, NULL, &mask_before);
	ready();
	wait_go();

	for (int s = 1; s < NSIG; s++) {
		struct sigaction now;

		if (!have[s])
			continue;
		if (sigaction(s, NULL, &now) < 0) {
			fail("sigaction(%d) read failed: %s", s,
			     strerror(errno));
			continue;
		}
		CHECK(now.sa_handler == before[s].sa_handler,
		      "signal %d (%s): handler %p, expected %p", s,
		      strsignal(s), (void *)now.sa_handler,
		      (void *)before[s].sa_handler);
		CHECK(now.sa_flags == before[s].sa_flags,
		      "signal %d (%s): flags %#x, expected %#x", s,
		      strsignal(s), now.sa_flags, before[s].sa_flags);
		CHECK(same_mask(&now.sa_mask, &before[s].sa_mask, &which),
		      "signal %d (%s): sa_mask differs in signal %d", s,
		      strsignal(s), which);
	}
	sigprocmask(SIG_BLOCK, NULL, &mask_after);
	CHECK(same_mask(&mask_before, &mask_after, &which),
	      "blocked mask differs in signal %d (%s)", which,
	      strsignal(which));

	raise(SIGINT);
	CHECK(int_calls == 1, "SIGINT handler ran %d times", int_calls);
	CHECK(int_saw_mask_ok, "SIGINT handler ran without its sa_mask");
	CHECK(int_saw_info_ok, "SIGINT handler got a wrong siginfo");
	raise(SIGALRM);
	CHECK(alrm_calls == 1, "SIGALRM handler ran %d times", alrm_calls);
	{
		struct sigaction now;

		sigaction(SIGALRM, NULL, &now);
		CHECK(now.sa_handler == SIG_DFL,
		      "SIGALRM was not reset by SA_RESETHAND");
	}
	raise(SIGRTMIN + 2);
	CHECK(rt_calls == 1, "SIGRTMIN+2 handler ran %d times", rt_calls);
	raise(SIGTERM); /* ignored, or we die here */
	raise(SIGHUP);  /* blocked: stays pending */
	sigpending(&pending);
	CHECK(sigismember(&pending, SIGHUP), "raised SIGHUP is not pending");
	return finish();
}
