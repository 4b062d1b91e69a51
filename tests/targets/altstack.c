/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * altstack - an alternate signal stack (sigaltstack) and an SA_ONSTACK
 * handler. After the restart sigaltstack() reads back the same stack, and
 * the handler still runs on it (the address of one of its locals lies
 * inside the alternate stack). The checkpoint itself runs on the normal
 * stack: libckpt's handler has no SA_ONSTACK.
 */
#include "target.h"

#include <signal.h>

#define ALT_SIZE (256 * 1024)

static char *alt;
static volatile uintptr_t handler_local;
static volatile int calls;

static void on_usr1(int sig)
{
	volatile char here = (char)sig;

	handler_local = (uintptr_t)&here;
	calls++;
}

static int on_alt_stack(void)
{
	return handler_local >= (uintptr_t)alt &&
	       handler_local < (uintptr_t)alt + ALT_SIZE;
}

int main(void)
{
	stack_t ss = { 0 }, now;
	struct sigaction sa;

	alt = malloc(ALT_SIZE);
	if (!alt)
		fatal("malloc failed");
	ss.ss_sp = alt;
	ss.ss_size = ALT_SIZE;
	if (sigaltstack(&ss, NULL) < 0)
		fatal("sigaltstack: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		fatal("sigaction: %s", strerror(errno));
	raise(SIGUSR1);
	if (calls != 1 || !on_alt_stack())
		fatal("the handler did not run on the alternate stack even "
		      "before the checkpoint");
	ready();
	wait_go();
	if (sigaltstack(NULL, &now) < 0)
		fail("sigaltstack: %s", strerror(errno));
	CHECK(now.ss_sp == alt && now.ss_size == ALT_SIZE && now.ss_flags == 0,
	      "sigaltstack reads back sp %p size %zu flags %#x, expected %p "
	      "%d 0",
	      now.ss_sp, now.ss_size, now.ss_flags, (void *)alt, ALT_SIZE);
	handler_local = 0;
	raise(SIGUSR1);
	CHECK(calls == 2, "the SIGUSR1 handler ran %d times in all", calls);
	CHECK(on_alt_stack(), "the handler ran at %p, outside the alternate "
			      "stack [%p, %p)",
	      (void *)handler_local, (void *)alt, (void *)(alt + ALT_SIZE));
	return finish();
}
