/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rseq_own - a program that unregisters glibc's rseq area and registers one
 * of its own, with its own signature, through syscall(2) (as runtimes do).
 * After the restart that area - not glibc's - must be the registered one,
 * and the kernel must keep its cpu_id up to date.
 */
#include "target.h"

#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#define OWN_SIG 0x0badf00d

static struct rseq own __attribute__((aligned(32)));

/* errno of registering area again: EBUSY if it is the registered one. */
static int probe(void *area, unsigned len, unsigned sig)
{
	long r = syscall(SYS_rseq, area, len, 0, sig);

	if (r == 0) {
		syscall(SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, sig);
		return 0;
	}
	return errno;
}

int main(void)
{
	void *glibc = (char *)__builtin_thread_pointer() + __rseq_offset;
	unsigned glibc_len = __rseq_size < 32 ? 32 : __rseq_size;
	cpu_set_t one;
	int cpu, ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

	if (__rseq_size == 0) {
		note("glibc did not register rseq: nothing to replace");
		ready();
		wait_go();
		return finish();
	}
	if (syscall(SYS_rseq, glibc, glibc_len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG))
		fatal("cannot unregister glibc's rseq area: %s", strerror(errno));
	if (syscall(SYS_rseq, &own, 32, 0, OWN_SIG))
		fatal("cannot register our own rseq area: %s", strerror(errno));
	ready();
	wait_go();

	CHECK(probe(&own, 32, OWN_SIG) == EBUSY,
	      "our own rseq area is not registered after the restart (%s)",
	      strerror(probe(&own, 32, OWN_SIG)));
	/* The kernel writes cpu_id on the way back to user space: move to
	 * each CPU in turn and read it. */
	for (cpu = 0; cpu < ncpu && cpu < 4; cpu++) {
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one))
			continue;
		sched_yield();
		CHECK((int)__atomic_load_n(&own.cpu_id, __ATOMIC_RELAXED) == cpu,
		      "on CPU %d our rseq area says cpu_id %d", cpu,
		      (int)own.cpu_id);
	}
	return finish();
}
