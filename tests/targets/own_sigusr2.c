/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * own_sigusr2 - a program that claims the checkpoint signal for itself:
 * it installs a SIGUSR2 handler with signal(), replaces it with another
 * through sigaction() (with flags and a mask) and blocks SIGUSR2. libckpt
 * keeps the signal: a checkpoint with SIGUSR2 still works, the program's
 * handler is never called for it, and the program reads back, before and
 * after the restart, exactly the handler, flags, mask and blocked state it
 * set.
 */
#include "target.h"

#include <signal.h>

static volatile int calls1, calls2;

static void handler1(int sig)
{
	(void)sig;
	calls1++;
}

static void handler2(int sig)
{
	(void)sig;
	calls2++;
}

static void check_view(const char *when)
{
	struct sigaction cur;
	sigset_t mask;

	if (sigaction(SIGUSR2, NULL, &cur) < 0) {
		fail("%s: sigaction(SIGUSR2, NULL, &old): %s", when,
		     strerror(errno));
		return;
	}
	CHECK(cur.sa_handler == handler2,
	      "%s: sigaction reads back handler %p, not the program's %p",
	      when, (void *)cur.sa_handler, (void *)handler2);
	CHECK(cur.sa_flags & SA_RESTART, "%s: SA_RESTART lost (flags %#x)",
	      when, cur.sa_flags);
	CHECK(sigismember(&cur.sa_mask, SIGINT) &&
		      sigismember(&cur.sa_mask, SIGTERM),
	      "%s: sa_mask lost", when);
	sigprocmask(SIG_BLOCK, NULL, &mask);
	CHECK(sigismember(&mask, SIGUSR2),
	      "%s: SIGUSR2 no longer reads as blocked", when);
	CHECK(calls1 == 0 && calls2 == 0,
	      "%s: the program's handlers ran (%d, %d times)", when, calls1,
	      calls2);
}

int main(void)
{
	struct sigaction act, old;
	sigset_t block;
	void (*prev)(int);

	prev = signal(SIGUSR2, handler1);
	CHECK(prev == SIG_DFL, "signal() returned %p, expected SIG_DFL",
	      (void *)prev);
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler2;
	act.sa_flags = SA_RESTART;
	sigemptyset(&act.sa_mask);
	sigaddset(&act.sa_mask, SIGINT);
	sigaddset(&act.sa_mask, SIGTERM);
	if (sigaction(SIGUSR2, &act, &old) < 0)
		fatal("sigaction(SIGUSR2): %s", strerror(errno));
	CHECK(old.sa_handler == handler1,
	      "sigaction's old handler %p, not the one signal() set %p",
	      (void *)old.sa_handler, (void *)handler1);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &block, NULL) < 0)
		fatal("sigprocmask: %s", strerror(errno));
	check_view("before");
	ready();
	wait_go();
	check_view("after");
	return finish();
}
