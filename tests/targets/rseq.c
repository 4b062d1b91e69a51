/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rseq - the restartable-sequences registration glibc makes at startup
 * (__rseq_offset/__rseq_size from <sys/rseq.h>) is back after a restart:
 * registering the same area again is refused with the same errno as before
 * the checkpoint (EBUSY: it is registered), the area's cpu_id is valid and
 * agrees with getcpu(2), and sched_getcpu() (which glibc answers from the
 * rseq area) works.
 */
#include "target.h"

#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

static struct rseq *area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() +
			       __rseq_offset);
}

/*
 * The length glibc registered: __rseq_size is the feature size (20 on this
 * glibc), but the area is registered with at least the original 32 bytes,
 * and the kernel answers a different length with EINVAL whether the area is
 * registered or not.
 */
static unsigned registered_len(void)
{
	return __rseq_size < 32 ? 32 : __rseq_size;
}

/* errno of an attempt to register the area again (EBUSY: it is), 0 if it
 * worked (it was not registered). */
static int reregister_errno(void)
{
	long r = syscall(SYS_rseq, area(), registered_len(), 0, RSEQ_SIG);

	if (r == 0) {
		/* It was not registered: undo ours, so glibc's view holds. */
		syscall(SYS_rseq, area(), registered_len(), RSEQ_FLAG_UNREGISTER,
			RSEQ_SIG);
		return 0;
	}
	return errno;
}

static int raw_getcpu(void)
{
	unsigned cpu = 0;

	if (syscall(SYS_getcpu, &cpu, NULL, NULL) < 0)
		fatal("getcpu: %s", strerror(errno));
	return (int)cpu;
}

/* cpu_id against getcpu(2), tolerating a migration in between. */
static void check_cpu(const char *when)
{
	int ok = 0, last_area = -1, last_raw = -1;

	for (int i = 0; i < 100 && !ok; i++) {
		int before = raw_getcpu();

		last_area = (int)(int32_t)__atomic_load_n(&area()->cpu_id,
							  __ATOMIC_RELAXED);
		last_raw = raw_getcpu();
		ok = before == last_raw && last_area == last_raw;
	}
	CHECK(ok, "%s: rseq cpu_id %d, getcpu says %d", when, last_area,
	      last_raw);
	ok = 0;
	for (int i = 0; i < 100 && !ok; i++) {
		int before = raw_getcpu();

		last_area = sched_getcpu();
		last_raw = raw_getcpu();
		ok = before == last_raw && last_area == last_raw;
	}
	CHECK(ok, "%s: sched_getcpu() %d, getcpu says %d", when, last_area,
	      last_raw);
}

int main(void)
{
	int err_before, err_after;

	if (__rseq_size == 0) {
		note("glibc did not register rseq (tunable off?): checking "
		     "sched_getcpu() only");
		ready();
		wait_go();
		CHECK(sched_getcpu() >= 0, "sched_getcpu() failed: %s",
		      strerror(errno));
		return finish();
	}
	err_before = reregister_errno();
	if (err_before != EBUSY)
		fatal("rseq registration not seen before the checkpoint: %s",
		      err_before ? strerror(err_before) : "not registered");
	check_cpu("before");
	ready();
	wait_go();
	err_after = reregister_errno();
	CHECK(err_after == err_before,
	      "registering the rseq area again: %s, before the checkpoint %s",
	      err_after ? strerror(err_after) : "succeeded (so it was not "
						 "registered)",
	      strerror(err_before));
	check_cpu("after");
	return finish();
}
