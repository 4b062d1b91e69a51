/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * restore_blob.c - the part of myrestart that runs after the point of no
 * return. It is compiled position-independent and freestanding (raw
 * syscalls, no libc, no data section, no relocations: the Makefile checks),
 * and myrestart copies it into a hole of the image's address space before
 * jumping to it. From there it can unmap all of myrestart - its code at
 * 0x5000000, its heap and stack, wherever the kernel randomized them - so
 * nothing of ours can collide with the program being restored.
 */
#include <stddef.h>
#include <stdint.h>
#include <asm/prctl.h>
#include <asm/unistd.h>
#include <linux/mman.h>
#include <linux/prctl.h>

#include "ckpt_plan.h"

#define PAGE_SZ ((uint64_t)CKPT_PAGE_SIZE)

static long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)

static size_t str_len(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static void put(const char *s, size_t n)
{
	sys(__NR_write, 2, s, n);
}

static void put_hex(uint64_t v)
{
	char buf[18], zero = '0', x = 'x';
	int i;

	/* Keep gcc from loading "0x" out of a .rodata we do not carry. */
	__asm__("" : "+r"(zero), "+r"(x));
	buf[0] = zero;
	buf[1] = x;
	for (i = 0; i < 16; i++) {
		unsigned d = (unsigned)(v >> (60 - 4 * i)) & 15;

		buf[2 + i] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
	}
	put(buf, sizeof(buf));
}

static void put_msg(const struct ckpt_plan *p, int what)
{
	put(p->msg[what], str_len(p->msg[what]));
}

/* "myrestart: <what> at 0x...: errno ENOMEM", built from the plan's
 * words; an errno the plan has no name for in hex. */
static void warn(const struct ckpt_plan *p, int what, uint64_t addr, long ret)
{
	uint64_t err = (uint64_t)-ret;

	put_msg(p, CKPT_MSG_PREFIX);
	put_msg(p, what);
	put_msg(p, CKPT_MSG_AT);
	put_hex(addr);
	put_msg(p, CKPT_MSG_ERRNO);
	if (err < CKPT_PLAN_ERRNAMES && p->errname[err][0])
		put(p->errname[err], str_len(p->errname[err]));
	else
		put_hex(err);
	put_msg(p, CKPT_MSG_NEWLINE);
}

/* After the point of no return a failure can only be reported and ended. */
__attribute__((noreturn)) static void die(const struct ckpt_plan *p,
					  int what, uint64_t addr, long ret)
{
	warn(p, what, addr, ret);
	for (;;)
		sys(__NR_exit_group, CKPT_EXIT_RESTORE, 0, 0);
}

static void copy_bytes(void *dst, const void *src, size_t n)
{
	/* rep movsb: fast-string microcode moves whole cache lines. */
	__asm__ volatile("rep movsb"
			 : "+D"(dst), "+S"(src), "+c"(n)
			 :
			 : "memory");
}

static long do_mmap(uint64_t addr, uint64_t len, long prot, long flags,
		    long fd, uint64_t off)
{
	return sys6(__NR_mmap, (long)addr, (long)len, prot, flags, fd,
		    (long)off);
}

static void advise(const struct ckpt_plan *p, const struct ckpt_region *r,
		   uint32_t flag, long advice)
{
	long ret;

	if (!(r->vmflags & flag))
		return;
	ret = sys(__NR_madvise, r->start, r->end - r->start, advice);
	if (ret)
		warn(p, CKPT_MSG_MADVISE, r->start, ret);
}

/*
 * madvise and mlock state, as smaps showed it; failures only warn. (Calls,
 * not a table: the blob carries no data section.)
 */
static void restore_vmflags(const struct ckpt_plan *p,
			    const struct ckpt_region *r)
{
	long ret;

	advise(p, r, CKPT_VM_DONTFORK, 10 /* MADV_DONTFORK */);
	advise(p, r, CKPT_VM_WIPEONFORK, 18 /* MADV_WIPEONFORK */);
	advise(p, r, CKPT_VM_DONTDUMP, 16 /* MADV_DONTDUMP */);
	advise(p, r, CKPT_VM_HUGEPAGE, 14 /* MADV_HUGEPAGE */);
	advise(p, r, CKPT_VM_NOHUGEPAGE, 15 /* MADV_NOHUGEPAGE */);
	advise(p, r, CKPT_VM_MERGEABLE, 12 /* MADV_MERGEABLE */);
	advise(p, r, CKPT_VM_SEQUENTIAL, 2 /* MADV_SEQUENTIAL */);
	advise(p, r, CKPT_VM_RANDOM, 1 /* MADV_RANDOM */);
	if (r->vmflags & CKPT_VM_LOCKED) {
		ret = sys(__NR_mlock, r->start, r->end - r->start, 0);
		if (ret)
			warn(p, CKPT_MSG_MLOCK, r->start, ret);
	}
}

/* A region myrestart mapped and filled: only its final state is left. */
static void finish_placed(const struct ckpt_plan *p,
			  const struct ckpt_region *r)
{
	long ret;

	if (r->prot != (PROT_READ | PROT_WRITE)) {
		ret = sys(__NR_mprotect, r->start, r->end - r->start, r->prot);
		if (ret)
			die(p, CKPT_MSG_PROTECT, r->start, ret);
	}
	restore_vmflags(p, r);
}

static void restore_region(const struct ckpt_plan *p,
			   const struct ckpt_header *h,
			   const struct ckpt_region *r, int32_t fd)
{
	const struct ckpt_run *runs =
		(const void *)(p->image_base + h->runs_offset);
	uint64_t len = r->end - r->start, i;
	long prot = r->prot, flags = MAP_FIXED, ret;
	long fill_prot = r->nr_runs ? PROT_READ | PROT_WRITE : 0;

	flags |= (r->flags & CKPT_REGION_SHARED) ? MAP_SHARED : MAP_PRIVATE;
	if (r->flags & CKPT_REGION_GROWSDOWN)
		flags |= MAP_GROWSDOWN;
	if (r->vmflags & CKPT_VM_NORESERVE)
		flags |= MAP_NORESERVE;
	if (r->kind == CKPT_KIND_FILE) {
		ret = do_mmap(r->start, len, prot | fill_prot, flags, fd,
			      r->file_offset);
	} else {
		flags |= MAP_ANONYMOUS;
		ret = do_mmap(r->start, len, prot | fill_prot, flags, -1, 0);
		/* Huge sparse reservations exceed the overcommit heuristic
		 * unless they are not accounted, as they were not before. */
		if (ret == -12 /* ENOMEM */)
			ret = do_mmap(r->start, len, prot | fill_prot,
				      flags | MAP_NORESERVE, -1, 0);
	}
	if (ret != (long)r->start)
		die(p, CKPT_MSG_MAP, r->start, ret < 0 ? ret : -17);
	for (i = 0; i < r->nr_runs; i++) {
		const struct ckpt_run *run = &runs[r->first_run + i];

		/* Fault the run's pages in at once (Linux 5.14), not one
		 * page fault per 4 KiB during the copy; failure is harmless. */
		sys(__NR_madvise, run->start, run->len, 23 /* POPULATE_WRITE */);
		copy_bytes((void *)run->start,
			   (const void *)(p->image_base + run->data_offset),
			   run->len);
	}
	if (fill_prot & ~prot) {
		ret = sys(__NR_mprotect, r->start, len, prot);
		if (ret)
			die(p, CKPT_MSG_PROTECT, r->start, ret);
	}
	restore_vmflags(p, r);
}

/* Unmap all of myrestart: every gap between the ranges to keep. */
static void unmap_gaps(const struct ckpt_plan *p)
{
	uint64_t from = 0;
	long ret = 0;
	int64_t k;

	for (k = 0; k < p->nr_keep && ret == 0; k++) {
		if (p->keep[k].start > from)
			ret = sys(__NR_munmap, from, p->keep[k].start - from, 0);
		from = p->keep[k].end;
	}
	if (ret == 0 && from < p->user_top)
		ret = sys(__NR_munmap, from, p->user_top - from, 0);
	if (ret)
		die(p, CKPT_MSG_UNMAP, from, ret);
}

#define PR_TIMER_CREATE_RESTORE_IDS 77 /* Linux 6.17: timer_create takes the id */

static void restore_timers(const struct ckpt_plan *p,
			   const struct ckpt_header *h)
{
	const struct ckpt_timer *t =
		(const void *)(p->image_base + h->timers_offset);
	long tid = sys(__NR_gettid, 0, 0, 0), ret;
	uint64_t i;

	if (!h->nr_timers)
		return;
	ret = sys6(__NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0, 0);
	if (ret) {
		warn(p, CKPT_MSG_TIMER, 0, ret);
		return;
	}
	for (i = 0; i < h->nr_timers; i++) {
		/* The kernel's struct sigevent: value, signo, notify, tid. */
		struct {
			uint64_t value;
			int32_t signo;
			int32_t notify;
			int32_t tid;
			int32_t pad[11];
		} ev;
		long its[4]; /* interval, value: struct itimerspec */
		int32_t id = t[i].id;
		int k;

		for (k = 0; k < 11; k++)
			ev.pad[k] = 0;
		ev.value = t[i].sigval;
		ev.signo = t[i].signo;
		ev.notify = t[i].notify;
		ev.tid = (int32_t)tid;
		ret = sys(__NR_timer_create, t[i].clock, &ev, &id);
		if (ret) {
			warn(p, CKPT_MSG_TIMER, (uint64_t)t[i].id, ret);
			continue;
		}
		if (!t[i].value_ns)
			continue;
		its[0] = (long)(t[i].interval_ns / 1000000000);
		its[1] = (long)(t[i].interval_ns % 1000000000);
		its[2] = (long)(t[i].value_ns / 1000000000);
		its[3] = (long)(t[i].value_ns % 1000000000);
		ret = sys6(__NR_timer_settime, id, 0, (long)its, 0, 0, 0);
		if (ret)
			warn(p, CKPT_MSG_TIMER, (uint64_t)t[i].id, ret);
	}
	sys6(__NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0, 0);
}

static void restore_signals(const struct ckpt_plan *p,
			    const struct ckpt_header *h)
{
	const struct ckpt_signal *s =
		(const void *)(p->image_base + h->signals_offset);
	long pid = sys(__NR_getpid, 0, 0, 0), ret;
	uint64_t i;

	for (i = 0; i < h->nr_signals; i++) {
		ret = sys(__NR_rt_sigqueueinfo, pid, s[i].signo, s[i].info);
		if (ret)
			warn(p, CKPT_MSG_SIGNAL, (uint64_t)s[i].signo, ret);
	}
}

void ckpt_blob_main(struct ckpt_plan *p)
{
	const struct ckpt_header *h = (const void *)p->image_base;
	const struct ckpt_region *regs =
		(const void *)(p->image_base + h->regions_offset);
	uint64_t resume_entry, resume_stack, fs_base, gs_base, sigmask;
	long itimers[3][4]; /* struct itimerval: interval, value */
	struct prctl_mm_map mm;
	long ret;
	int i;
	uint64_t j;

	/* 1. Park our vDSO and vvar pages inside the kept range. */
	for (i = 0; i < p->nr_special; i++) {
		const struct ckpt_special_move *m = &p->special[i];

		ret = sys6(__NR_mremap, (long)m->cur, (long)m->len, (long)m->len,
			   MREMAP_MAYMOVE | MREMAP_FIXED, (long)m->scratch, 0);
		if (ret != (long)m->scratch)
			die(p, CKPT_MSG_PARK, m->cur, ret);
	}

	/* 2. Unmap all the rest of myrestart, around the kept range and the
	 * memory myrestart already put in place. */
	unmap_gaps(p);

	/* 3. Our vDSO goes where the program's was: glibc caches pointers. */
	for (i = 0; i < p->nr_special; i++) {
		const struct ckpt_special_move *m = &p->special[i];

		ret = sys6(__NR_mremap, (long)m->scratch, (long)m->len,
			   (long)m->len, MREMAP_MAYMOVE | MREMAP_FIXED,
			   (long)m->target, 0);
		if (ret != (long)m->target)
			die(p, CKPT_MSG_VDSO, m->target, ret);
	}

	/* 4. The rest of the program's memory. */
	for (j = 0; j < h->nr_regions; j++)
		if (p->placed[j])
			finish_placed(p, &regs[j]);
		else if (regs[j].kind < CKPT_KIND_VDSO)
			restore_region(p, h, &regs[j], p->region_fd[j]);

	/* 5. Signal dispositions (SIGKILL and SIGSTOP cannot be set). */
	for (i = 1; i <= CKPT_NSIG; i++) {
		if (i == 9 || i == 19)
			continue;
		ret = sys6(__NR_rt_sigaction, i, (long)&h->sigactions[i - 1], 0,
			   8, 0, 0);
		if (ret)
			die(p, CKPT_MSG_SIGACTION, (uint64_t)i, ret);
	}

	/* 6. brk, arg/env and auxv: PR_SET_MM_MAP needs no CAP_SYS_RESOURCE,
	 * unlike the one-field PR_SET_MM calls. Without it, brk() would keep
	 * myrestart's heap limits and malloc's brk growth would fail. */
	mm.start_code = h->mm.start_code;
	mm.end_code = h->mm.end_code;
	mm.start_data = h->mm.start_data;
	mm.end_data = h->mm.end_data;
	mm.start_brk = h->mm.start_brk;
	mm.brk = h->mm.brk;
	mm.start_stack = h->mm.start_stack;
	mm.arg_start = h->mm.arg_start;
	mm.arg_end = h->mm.arg_end;
	mm.env_start = h->mm.env_start;
	mm.env_end = h->mm.env_end;
	mm.auxv = (__u64 *)(uintptr_t)h->mm.auxv;
	mm.auxv_size = (uint32_t)h->mm.auxv_size;
	/* /proc/PID/exe back to the program: allowed with
	 * CAP_CHECKPOINT_RESTORE once no mapping of myrestart is left. */
	mm.exe_fd = (uint32_t)p->exe_fd;
	ret = -1;
	if (p->exe_fd >= 0)
		ret = sys6(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, (long)&mm,
			   sizeof(mm), 0, 0);
	if (ret) {
		mm.exe_fd = (uint32_t)-1;
		ret = sys6(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, (long)&mm,
			   sizeof(mm), 0, 0);
	}
	if (ret)
		warn(p, CKPT_MSG_MM, h->mm.brk, ret);

	/* 7. The program's rseq area, so sched_getcpu() and friends work. */
	if (h->rseq.addr) {
		ret = sys6(__NR_rseq, (long)h->rseq.addr, h->rseq.len, 0,
			   h->rseq.sig, 0, 0);
		if (ret)
			warn(p, CKPT_MSG_RSEQ, h->rseq.addr, ret);
	}

	/* 8. Resource limits, after our own mapping is done: a lower
	 * RLIMIT_AS or RLIMIT_DATA could have got in its way. */
	for (i = 0; i < CKPT_NRLIMITS; i++) {
		ret = sys6(__NR_prlimit64, 0, i, (long)h->proc.rlimits[i], 0, 0,
			   0);
		if (ret)
			warn(p, CKPT_MSG_RLIMIT, (uint64_t)i, ret);
	}

	/* 9. POSIX timers under their own ids (timer_t holds the id), then
	 * the signals that were pending: they wait, blocked, for the handler
	 * to return, as they did in the original process. */
	restore_timers(p, h);
	restore_signals(p, h);

	/* 10. Drop our file descriptors and the image; keep what we need. */
	resume_entry = h->resume_entry;
	resume_stack = h->resume_stack;
	fs_base = h->fs_base;
	gs_base = h->gs_base;
	sigmask = h->sigmask;
	for (i = 0; i < 3; i++) {
		const struct ckpt_itimer *t = &h->proc.itimers[i];

		itimers[i][0] = (long)(t->interval_us / 1000000);
		itimers[i][1] = (long)(t->interval_us % 1000000);
		itimers[i][2] = (long)(t->value_us / 1000000);
		itimers[i][3] = (long)(t->value_us % 1000000);
	}
	for (i = 0; i < p->nr_close_fds; i++)
		sys(__NR_close, p->close_fds[i], 0, 0);
	sys(__NR_munmap, p->image_base, p->image_len, 0);

	/* 11. TLS, then the mask the handler ran with; rt_sigreturn restores
	 * the program's own when the handler returns. */
	ret = sys(__NR_arch_prctl, ARCH_SET_FS, fs_base, 0);
	if (ret == 0 && gs_base)
		ret = sys(__NR_arch_prctl, ARCH_SET_GS, gs_base, 0);
	if (ret)
		die(p, CKPT_MSG_TLS, fs_base, ret);
	sys6(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, (long)&sigmask, 0, 8, 0,
	     0);
	/* Interval timers last: they run from here on, as they were. A
	 * signal they raise waits for the handler's mask to be lifted. */
	for (i = 0; i < 3; i++)
		if (itimers[i][2] || itimers[i][3])
			sys(__NR_setitimer, i, itimers[i], 0);

	/* 12. Into libckpt: it unmaps this blob, its plan and stack, and
	 * returns into the signal handler. Its memory is mapped from no file
	 * of ours: image dev and ino 0 (no file has inode 0). */
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "jmp *%3"
			 :
			 : "r"(resume_stack), "D"(p->keep_start),
			   "S"(p->keep_end - p->keep_start), "r"(resume_entry),
			   "d"(0L), "c"(0L)
			 : "memory");
	__builtin_unreachable();
}
