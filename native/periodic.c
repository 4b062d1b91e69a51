/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * periodic.c - CKPT_INTERVAL=SECONDS: a checkpoint every SECONDS, measured
 * from the end of the previous one (so a slow disk never makes them pile
 * up). A POSIX timer of libckpt's own sends the checkpoint signal; it is
 * one-shot, armed again at the end of each checkpoint.
 *
 * The timer is ours, not the program's: it is left out of every image
 * (collect_timers asks ckpt_periodic_is_ours) and made again after a
 * restart. Where the kernel lets us choose timer ids (Linux 6.17,
 * PR_TIMER_CREATE_RESTORE_IDS) it takes a high id, so that the program's
 * own timers get the ids they would get without libckpt; elsewhere it takes
 * the first free id, which shifts the program's by one.
 */
#include "libckpt.h"

#define PR_TIMER_CREATE_RESTORE_IDS 77
#define OUR_TIMER_ID 0x7fffffff /* INT_MAX: the kernel then goes on from 0 */

static int64_t interval_ns; /* 0: no periodic checkpoints */
static int timer_id = -1;

int ckpt_periodic_is_ours(int id)
{
	return timer_id >= 0 && id == timer_id;
}

/* The kernel's struct sigevent, without glibc's SIGEV_THREAD machinery. */
struct kernel_sigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t pad[12];
};

static int create_timer(void)
{
	struct kernel_sigevent ev;
	int id = OUR_TIMER_ID;

	memset(&ev, 0, sizeof(ev));
	ev.signo = ckpt_signo;
	ev.notify = SIGEV_SIGNAL;
	if (syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0) {
		long ret = syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id);

		syscall(SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
		if (ret == 0)
			return id;
	}
	if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id) < 0)
		return -errno;
	return id;
}

/* Arm the timer for one interval from now. */
void ckpt_periodic_arm(void)
{
	struct itimerspec its;

	if (timer_id < 0)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = interval_ns / 1000000000;
	its.it_value.tv_nsec = interval_ns % 1000000000;
	if (syscall(SYS_timer_settime, timer_id, 0, &its, NULL) < 0)
		ckpt_log("cannot arm the CKPT_INTERVAL timer", NULL, errno);
}

/* After a restart the timer is gone with the old process: make it again. */
void ckpt_periodic_restarted(void)
{
	int id;

	if (!interval_ns)
		return;
	timer_id = -1;
	id = create_timer();
	if (id < 0) {
		ckpt_log("cannot create the CKPT_INTERVAL timer after the restart; "
			 "no more periodic checkpoints",
			 NULL, -id);
		return;
	}
	timer_id = id;
	ckpt_periodic_arm();
}

/*
 * From the constructor, once the handler is installed: "30", "0.5", "1e3"
 * seconds; 0 or unset: off. A bad value costs the periodic checkpoints,
 * not the handler: the program can still be checkpointed by a signal.
 */
void ckpt_periodic_init(const char *value)
{
	char *end;
	double secs;
	int id;

	if (!value || !*value)
		return;
	secs = strtod(value, &end);
	if (end == value || *end || !(secs >= 0) || secs > 1e9) {
		ckpt_log("CKPT_INTERVAL is not a number of seconds (try 600 or "
			 "0.5); no periodic checkpoints:",
			 value, 0);
		return;
	}
	interval_ns = (int64_t)(secs * 1e9);
	if (!interval_ns)
		return;
	id = create_timer();
	if (id < 0) {
		ckpt_log("cannot create the CKPT_INTERVAL timer; no periodic "
			 "checkpoints",
			 NULL, -id);
		interval_ns = 0;
		return;
	}
	timer_id = id;
	ckpt_periodic_arm();
}
