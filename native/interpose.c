/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * interpose.c - libc functions libckpt stands in front of. The checkpoint
 * signal belongs to us: a program that installs its own handler for it, or
 * blocks it, is told it succeeded and reads back what it set, while the
 * real disposition and mask stay ours. syscall() is watched for the rseq
 * area a program may register itself.
 */
#include "libckpt.h"

int (*ckpt_real_sigaction)(int, const struct sigaction *, struct sigaction *);
static int (*real_sigprocmask)(int, const sigset_t *, sigset_t *);
static int (*real_pthread_sigmask)(int, const sigset_t *, sigset_t *);
long (*ckpt_libc_syscall)(long, ...);

struct ckpt_prog_rseq ckpt_prog_rseq;

/* What the program believes about the checkpoint signal (see sigaction()). */
static struct sigaction ckpt_prog_action;
static int ckpt_prog_blocked;
int ckpt_armed;

/*
 * Memory the program marks MADV_DONTFORK is not in a forked copy at all,
 * and MADV_WIPEONFORK memory reads as zeros there: a forked writer would
 * write an image without it (a restart then crashes or sees zeros). Once
 * the program has asked for either, checkpoints are taken synchronously.
 */
int ckpt_fork_blind;

CKPT_EXPORT int madvise(void *addr, size_t len, int advice)
{
	static int (*real)(void *, size_t, int);
	int ret;

	if (!real)
		real = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "madvise");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	ret = real(addr, len, advice);
	if (ret == 0 && (advice == MADV_DONTFORK || advice == MADV_WIPEONFORK))
		ckpt_fork_blind = 1;
	return ret;
}

int ckpt_interpose_init(void)
{
	ckpt_real_sigaction = dlsym(RTLD_NEXT, "sigaction");
	real_sigprocmask = dlsym(RTLD_NEXT, "sigprocmask");
	ckpt_libc_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	real_pthread_sigmask = dlsym(RTLD_NEXT, "pthread_sigmask");
	ckpt_prog_action.sa_handler = SIG_DFL;
	return ckpt_real_sigaction && real_sigprocmask && real_pthread_sigmask ?
		       0 :
		       -1;
}

/*
 * The checkpoint signal belongs to us. A program that installs its own
 * handler for it, or blocks it, is told it succeeded, and reads back what
 * it set; the real disposition and mask stay ours. (Its handler is
 * therefore never called: choose another CKPT_SIGNAL for such programs.)
 */
CKPT_EXPORT int sigaction(int sig, const struct sigaction *act,
			  struct sigaction *old)
{
	if (!ckpt_real_sigaction)
		ckpt_real_sigaction = dlsym(RTLD_NEXT, "sigaction");
	if (!ckpt_armed || sig != ckpt_signo)
		return ckpt_real_sigaction(sig, act, old);
	if (old)
		*old = ckpt_prog_action;
	if (act)
		ckpt_prog_action = *act;
	return 0;
}

static __sighandler_t install_simple(int sig, __sighandler_t handler, int flags)
{
	struct sigaction act, old;

	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	act.sa_flags = flags;
	sigemptyset(&act.sa_mask);
	if (!(flags & SA_NODEFER))
		sigaddset(&act.sa_mask, sig);
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* glibc's signal() calls its internal sigaction, which we cannot see. */
CKPT_EXPORT __sighandler_t signal(int sig, __sighandler_t handler)
{
	return install_simple(sig, handler, SA_RESTART);
}

CKPT_EXPORT __sighandler_t bsd_signal(int sig, __sighandler_t handler)
{
	return install_simple(sig, handler, SA_RESTART);
}

CKPT_EXPORT __sighandler_t sysv_signal(int sig, __sighandler_t handler)
{
	return install_simple(sig, handler, SA_RESETHAND | SA_NODEFER);
}

static int filter_mask(int (*real)(int, const sigset_t *, sigset_t *), int how,
		       const sigset_t *set, sigset_t *old)
{
	sigset_t mine;
	int was_blocked = ckpt_prog_blocked, ret;

	if (!ckpt_armed)
		return real(how, set, old);
	if (set) {
		mine = *set;
		if (sigismember(&mine, ckpt_signo)) {
			if (how == SIG_BLOCK || how == SIG_SETMASK)
				ckpt_prog_blocked = 1;
			else if (how == SIG_UNBLOCK)
				ckpt_prog_blocked = 0;
			sigdelset(&mine, ckpt_signo);
		} else if (how == SIG_SETMASK) {
			ckpt_prog_blocked = 0;
		}
	}
	ret = real(how, set ? &mine : NULL, old);
	if (ret == 0 && old) {
		if (was_blocked)
			sigaddset(old, ckpt_signo);
		else
			sigdelset(old, ckpt_signo);
	}
	return ret;
}

CKPT_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	if (!real_sigprocmask)
		real_sigprocmask = dlsym(RTLD_NEXT, "sigprocmask");
	return filter_mask(real_sigprocmask, how, set, old);
}

CKPT_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	if (!real_pthread_sigmask)
		real_pthread_sigmask = dlsym(RTLD_NEXT, "pthread_sigmask");
	return filter_mask(real_pthread_sigmask, how, set, old);
}

/*
 * syscall(2) is where a program registers an rseq area of its own (glibc
 * has no other interface for it): note what it registers, pass everything
 * on unchanged.
 */
CKPT_EXPORT long syscall(long nr, ...)
{
	long a[6], ret;
	va_list ap;
	int i;

	if (!ckpt_libc_syscall)
		ckpt_libc_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	va_start(ap, nr);
	for (i = 0; i < 6; i++) /* as glibc's own: six register arguments */
		a[i] = va_arg(ap, long);
	va_end(ap);
	ret = ckpt_libc_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (nr == SYS_rseq && ret == 0 && ckpt_armed) {
		ckpt_prog_rseq.known = 1;
		if (a[2] & RSEQ_FLAG_UNREGISTER) {
			ckpt_prog_rseq.addr = 0;
		} else {
			ckpt_prog_rseq.addr = (uint64_t)a[0];
			ckpt_prog_rseq.len = (uint32_t)a[1];
			ckpt_prog_rseq.sig = (uint32_t)a[3];
		}
	}
	return ret;
}
