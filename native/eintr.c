/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * eintr.c - the program must never notice a checkpoint. A handler that runs
 * while the program sleeps in poll(), select(), epoll_wait(), nanosleep(),
 * pause() and a few more makes the kernel return EINTR, SA_RESTART or not
 * (see signal(7)). These wrappers retry such a call when the EINTR was ours
 * (the handler bumps ckpt_eintr_gen), with the time that was left: the
 * approach DMTCP takes. System V IPC waits (semop, semtimedop, msgrcv,
 * msgsnd) are in the same list of signal(7): never restarted. A signal of the program's own arriving in the same
 * instant is then absorbed too; calls made from inside libc are not seen.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/select.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CKPT_EXPORT __attribute__((visibility("default")))

extern volatile unsigned ckpt_eintr_gen;
extern volatile unsigned ckpt_signal_gen;
void ckpt_eintr_init(void);

#define REAL(name)                                                          \
	static __typeof__(name) *real;                                      \
	if (!real)                                                          \
		real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

/* Was this failure our checkpoint's doing (since generation gen)? */
static int ours(int failed, unsigned gen)
{
	return failed && errno == EINTR && gen != ckpt_eintr_gen;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Time left until deadline, never more than the whole wait (a restart on
 * another boot has another monotonic clock) and never negative.
 */
static int64_t left_ns(int64_t deadline, int64_t whole)
{
	int64_t left = deadline - now_ns();

	return left < 0 ? 0 : left > whole ? whole : left;
}

static int left_ms(int timeout_ms, int64_t deadline)
{
	if (timeout_ms < 0)
		return timeout_ms;
	return (int)((left_ns(deadline, (int64_t)timeout_ms * 1000000) +
		      999999) / 1000000);
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* A timespec timeout (NULL: none) and what is left of it on each retry. */
struct left {
	struct timespec ts, *p; /* p: &ts, or NULL for no timeout */
	int64_t whole, deadline;
};

static void left_start(struct left *l, const struct timespec *tmo)
{
	l->p = tmo ? &l->ts : NULL;
	l->whole = tmo ? ts_ns(tmo) : 0;
	l->deadline = now_ns() + l->whole;
	if (tmo)
		l->ts = *tmo;
}

static void left_update(struct left *l)
{
	int64_t ns;

	if (!l->p)
		return;
	ns = left_ns(l->deadline, l->whole);
	l->ts.tv_sec = ns / 1000000000;
	l->ts.tv_nsec = ns % 1000000000;
}

CKPT_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	int64_t deadline = timeout > 0 ? now_ns() + timeout * 1000000LL : 0;
	unsigned gen;
	int ret;

	REAL(poll);
	do {
		gen = ckpt_eintr_gen;
		ret = real(fds, n, timeout);
		timeout = left_ms(timeout, deadline);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
		      const sigset_t *mask)
{
	struct left l;
	unsigned gen;
	int ret;

	REAL(ppoll);
	left_start(&l, tmo);
	do {
		gen = ckpt_eintr_gen;
		ret = real(fds, n, l.p, mask);
		left_update(&l);
	} while (ours(ret < 0, gen));
	return ret;
}

/* Linux's select() updates *tv to the time left, EINTR included. */
CKPT_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e,
		       struct timeval *tv)
{
	unsigned gen;
	int ret;

	REAL(select);
	do {
		gen = ckpt_eintr_gen;
		ret = real(n, r, w, e, tv);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e,
			const struct timespec *tmo, const sigset_t *mask)
{
	struct left l;
	unsigned gen;
	int ret;

	REAL(pselect);
	left_start(&l, tmo);
	do {
		gen = ckpt_eintr_gen;
		ret = real(n, r, w, e, l.p, mask);
		left_update(&l);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int epoll_wait(int ep, struct epoll_event *ev, int max, int timeout)
{
	int64_t deadline = timeout > 0 ? now_ns() + timeout * 1000000LL : 0;
	unsigned gen;
	int ret;

	REAL(epoll_wait);
	do {
		gen = ckpt_eintr_gen;
		ret = real(ep, ev, max, timeout);
		timeout = left_ms(timeout, deadline);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int epoll_pwait(int ep, struct epoll_event *ev, int max,
			    int timeout, const sigset_t *mask)
{
	int64_t deadline = timeout > 0 ? now_ns() + timeout * 1000000LL : 0;
	unsigned gen;
	int ret;

	REAL(epoll_pwait);
	do {
		gen = ckpt_eintr_gen;
		ret = real(ep, ev, max, timeout, mask);
		timeout = left_ms(timeout, deadline);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	struct timespec left = *req, mine;
	unsigned gen;
	int ret;

	REAL(nanosleep);
	do {
		gen = ckpt_eintr_gen;
		ret = real(&left, &mine);
		left = mine; /* the kernel's own count of what is left */
	} while (ours(ret < 0, gen));
	if (ret < 0 && rem)
		*rem = mine;
	return ret;
}

/* clock_nanosleep returns the error instead of setting errno. */
CKPT_EXPORT int clock_nanosleep(clockid_t clk, int flags,
				const struct timespec *req, struct timespec *rem)
{
	struct timespec left = *req, mine;
	unsigned gen;
	int ret;

	REAL(clock_nanosleep);
	for (;;) {
		gen = ckpt_eintr_gen;
		ret = real(clk, flags, &left, &mine);
		if (ret != EINTR || gen == ckpt_eintr_gen)
			break;
		if (!(flags & TIMER_ABSTIME))
			left = mine;
	}
	if (ret == EINTR && rem && !(flags & TIMER_ABSTIME))
		*rem = mine;
	return ret;
}

/* sleep() and usleep() call nanosleep inside libc, out of our sight. */
CKPT_EXPORT unsigned sleep(unsigned seconds)
{
	struct timespec req = { seconds, 0 }, rem;

	if (nanosleep(&req, &rem) < 0)
		return (unsigned)rem.tv_sec + (rem.tv_nsec > 0);
	return 0;
}

CKPT_EXPORT int usleep(useconds_t usec)
{
	struct timespec req = { usec / 1000000, (long)(usec % 1000000) * 1000 };

	return nanosleep(&req, NULL);
}

CKPT_EXPORT int pause(void)
{
	unsigned gen;
	int ret;

	REAL(pause);
	do {
		gen = ckpt_eintr_gen;
		ret = real();
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int sigsuspend(const sigset_t *mask)
{
	unsigned gen;
	int ret;

	REAL(sigsuspend);
	do {
		gen = ckpt_eintr_gen;
		ret = real(mask);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info,
			     const struct timespec *tmo)
{
	struct left l;
	unsigned gen;
	int ret;

	REAL(sigtimedwait);
	left_start(&l, tmo);
	do {
		gen = ckpt_eintr_gen;
		ret = real(set, info, l.p);
		left_update(&l);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
	return sigtimedwait(set, info, NULL);
}

/* ---- System V IPC: never restarted after a handler (signal(7)) -------- */

CKPT_EXPORT int semop(int id, struct sembuf *ops, size_t n)
{
	return semtimedop(id, ops, n, NULL);
}

CKPT_EXPORT int semtimedop(int id, struct sembuf *ops, size_t n,
			   const struct timespec *tmo)
{
	struct left l;
	unsigned gen;
	int ret;

	REAL(semtimedop);
	left_start(&l, tmo);
	do {
		gen = ckpt_eintr_gen;
		ret = real(id, ops, n, l.p);
		left_update(&l);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT ssize_t msgrcv(int id, void *msg, size_t size, long type, int flags)
{
	unsigned gen;
	ssize_t ret;

	REAL(msgrcv);
	do {
		gen = ckpt_eintr_gen;
		ret = real(id, msg, size, type, flags);
	} while (ours(ret < 0, gen));
	return ret;
}

CKPT_EXPORT int msgsnd(int id, const void *msg, size_t size, int flags)
{
	unsigned gen;
	int ret;

	REAL(msgsnd);
	do {
		gen = ckpt_eintr_gen;
		ret = real(id, msg, size, flags);
	} while (ours(ret < 0, gen));
	return ret;
}

/*
 * A blocking write() to a pipe or socket that a signal interrupts after
 * some bytes went through returns that short count, SA_RESTART or not: a
 * program writing 8 MiB into a pipe would see 65,536 written because of a
 * checkpoint. When the checkpoint signal came during the call (the handler
 * bumps ckpt_signal_gen) and the fd is blocking, write the rest, as the
 * call would have without us. A short count for any other reason (the
 * program's own signal, a full disk) is returned as the kernel gave it.
 */
static __typeof__(write) *real_write;
static __typeof__(writev) *real_writev;

/* Called by the constructor: no dlsym() inside the signal handler. */
void ckpt_eintr_init(void)
{
	real_write = (__typeof__(write) *)dlsym(RTLD_NEXT, "write");
	real_writev = (__typeof__(writev) *)dlsym(RTLD_NEXT, "writev");
}

static int blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && !(fl & O_NONBLOCK);
}

/*
 * The rest of a write the checkpoint cut short: how much more went
 * through; *cut is cleared when a part was short for a reason of its own.
 */
static size_t write_rest(int fd, const char *p, size_t len, int *cut)
{
	size_t done = 0;
	unsigned gen;
	ssize_t ret;

	while (done < len && *cut) {
		gen = ckpt_signal_gen;
		ret = real_write(fd, p + done, len - done);
		if (ret < 0 && errno == EINTR && gen != ckpt_signal_gen)
			continue; /* ours again, nothing written */
		if (ret <= 0)
			*cut = 0; /* its error shows at the next call */
		else
			done += (size_t)ret;
		if (gen == ckpt_signal_gen && done < len)
			*cut = 0;
	}
	return done;
}

CKPT_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	int saved, cut = 1;
	unsigned gen;
	ssize_t ret;

	if (!real_write)
		ckpt_eintr_init();
	gen = ckpt_signal_gen;
	ret = real_write(fd, buf, len);
	if (ret <= 0 || (size_t)ret >= len || gen == ckpt_signal_gen)
		return ret;
	saved = errno;
	if (blocking(fd))
		ret += (ssize_t)write_rest(fd, (const char *)buf + ret,
					   len - (size_t)ret, &cut);
	errno = saved;
	return ret;
}

CKPT_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	size_t skip, total = 0;
	int i, saved, cut = 1;
	unsigned gen;
	ssize_t ret;

	if (!real_writev)
		ckpt_eintr_init();
	gen = ckpt_signal_gen;
	ret = real_writev(fd, iov, cnt);
	if (ret <= 0 || gen == ckpt_signal_gen)
		return ret;
	for (i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	if ((size_t)ret >= total)
		return ret;
	saved = errno;
	if (blocking(fd)) {
		for (i = 0, skip = (size_t)ret; i < cnt && cut; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			ret += (ssize_t)write_rest(fd, (const char *)iov[i].iov_base +
							       skip,
						   iov[i].iov_len - skip, &cut);
			skip = 0;
		}
	}
	errno = saved;
	return ret;
}
