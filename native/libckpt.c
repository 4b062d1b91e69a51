/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libckpt.c - the checkpoint half of extckpt, preloaded into the program:
 *
 *   LD_PRELOAD=/abs/path/libckpt.so ./prog      then   kill -USR2 <pid>
 *
 * The constructor installs a handler for the checkpoint signal. The handler
 * saves a resume point (ckpt_save_resume, a setjmp of our own), then writes
 * every mapping's bytes that a restart needs into a temporary file and renames
 * it into place. myrestart later maps that memory back and jumps to
 * ckpt_restart_entry, which makes ckpt_save_resume return a second time, with
 * 1: the handler returns, and the kernel's own signal frame, restored with the
 * stack, gives the program back every register (vector state included) and
 * its signal mask through rt_sigreturn.
 *
 * We are a guest in someone else's process: the handler uses only
 * async-signal-safe calls (no stdio, no malloc), everything but the
 * interposed libc functions is hidden, and errno is left as we found it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h> /* rename() only */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <asm/prctl.h>

#include "ckpt_hash.h"
#include "ckpt_image.h"
#include "ckpt_pagemap.h"

#define CKPT_EXPORT __attribute__((visibility("default")))
#define PAGE_SZ ((uint64_t)CKPT_PAGE_SIZE)
/* Hash and write in chunks that stay in L2 (the write's copy reads cached
 * data); one chunk is one of the format's hash pieces. */
#define WRITE_CHUNK CKPT_HASH_PIECE
#define RSEQ_SIG_X86 0x53053053
/* Stack of the go-between process of forked checkpointing. */
#define WRITER_STACK (256UL << 10)

/* ---- state set up by the constructor --------------------------------- */

/*
 * Our own buffers of the checkpoint in progress (the dump, its tables, the
 * forked writer's stack...). They are never part of an image: each region
 * is clipped against them, as they may have merged with a program mapping.
 */
#define MAX_OWN 8
static struct {
	uint64_t lo, hi;
} ckpt_own[MAX_OWN];
static int ckpt_nr_own;

static int ckpt_signo = SIGUSR2;
static int ckpt_fsync;
static int ckpt_fork;
static int ckpt_verbose;
static char ckpt_image_path[PATH_MAX];
static char ckpt_tmp_path[PATH_MAX + 32];

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static int (*real_sigprocmask)(int, const sigset_t *, sigset_t *);
static int (*real_pthread_sigmask)(int, const sigset_t *, sigset_t *);

/*
 * Bumped each time the checkpoint signal interrupts a system call that the
 * kernel will not restart (poll, select, nanosleep... fail with EINTR even
 * under SA_RESTART). The wrappers in eintr.c retry those calls.
 */
__attribute__((visibility("hidden"))) volatile unsigned ckpt_eintr_gen;

/*
 * The program's errno when the signal came. Our own failing calls change
 * errno while we write; putting it back before each write keeps the image's
 * TLS page as the program had it.
 */
static int ckpt_program_errno;

/*
 * The rseq area the program registered itself through syscall(2), if it
 * did: glibc registers one per thread, but a program or runtime may
 * unregister it and register its own (see syscall() below).
 */
static struct {
	int known;     /* the program made an rseq call of its own */
	uint64_t addr; /* 0: it unregistered */
	uint32_t len, sig;
} ckpt_prog_rseq;

/* libc's syscall(), for our own rseq probes: ours would record them. */
static long (*libc_syscall)(long, ...);

/* What the program believes about the checkpoint signal (see sigaction()). */
static struct sigaction ckpt_prog_action;
static int ckpt_prog_blocked;
static int ckpt_armed;

/*
 * The resume point. Its layout is fixed by the assembly below. It lives in
 * our .bss, so it is inside the image: the restarter only needs its address.
 */
struct ckpt_resume_ctx {
	uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rip;
	uint32_t mxcsr;
	uint16_t fpu_cw;
	uint16_t pad;
};
__attribute__((visibility("hidden"))) struct ckpt_resume_ctx ckpt_resume_ctx;

/*
 * The image this process was restarted from, if it was: myrestart maps the
 * image's larger runs of anonymous memory straight from that file
 * (copy-on-write). Such mappings are the program's anonymous memory, not a
 * file it mapped: a later checkpoint must store them whole, never point
 * back at the old image.
 */
__attribute__((visibility("hidden"))) struct {
	uint64_t dev, ino;
} ckpt_mapped_image;

int ckpt_save_resume(struct ckpt_resume_ctx *ctx) __attribute__((returns_twice));
void ckpt_restart_entry(void);

/*
 * ckpt_save_resume: save the callee-saved registers, return 0.
 * ckpt_restart_entry(addr, len, dev, ino): myrestart jumps here with its own
 * last pages in [addr, addr + len); note the image file it restarted from
 * (dev, ino: ckpt_mapped_image), unmap those pages (code running from there
 * could not do it itself), reload the saved registers and return 1 from
 * ckpt_save_resume. Needs no stack until the saved one is back.
 */
__asm__(".text\n"
	".globl ckpt_save_resume\n"
	".hidden ckpt_save_resume\n"
	".type ckpt_save_resume,@function\n"
	"ckpt_save_resume:\n"
	"	mov %rbx, 0(%rdi)\n"
	"	mov %rbp, 8(%rdi)\n"
	"	mov %r12, 16(%rdi)\n"
	"	mov %r13, 24(%rdi)\n"
	"	mov %r14, 32(%rdi)\n"
	"	mov %r15, 40(%rdi)\n"
	"	lea 8(%rsp), %rax\n"
	"	mov %rax, 48(%rdi)\n"
	"	mov (%rsp), %rax\n"
	"	mov %rax, 56(%rdi)\n"
	"	stmxcsr 64(%rdi)\n"
	"	fnstcw 68(%rdi)\n"
	"	xor %eax, %eax\n"
	"	ret\n"
	".size ckpt_save_resume, .-ckpt_save_resume\n"
	".globl ckpt_restart_entry\n"
	".hidden ckpt_restart_entry\n"
	".type ckpt_restart_entry,@function\n"
	"ckpt_restart_entry:\n"
	"	mov %rdx, ckpt_mapped_image(%rip)\n"
	"	mov %rcx, ckpt_mapped_image+8(%rip)\n"
	"	mov $11, %eax\n" /* munmap(rdi, rsi) */
	"	syscall\n"
	"	lea ckpt_resume_ctx(%rip), %rdi\n"
	"	mov 0(%rdi), %rbx\n"
	"	mov 8(%rdi), %rbp\n"
	"	mov 16(%rdi), %r12\n"
	"	mov 24(%rdi), %r13\n"
	"	mov 32(%rdi), %r14\n"
	"	mov 40(%rdi), %r15\n"
	"	ldmxcsr 64(%rdi)\n"
	"	fldcw 68(%rdi)\n"
	"	mov 48(%rdi), %rsp\n"
	"	mov $1, %eax\n"
	"	jmp *56(%rdi)\n"
	".size ckpt_restart_entry, .-ckpt_restart_entry\n");

/*
 * A tracer (extckpt attach) puts a breakpoint here: when it is hit, the image
 * at path is complete (err == 0) or the checkpoint failed with errno err, and
 * the process is still inside the handler, its memory as in the image. With
 * forked checkpointing (CKPT_FORK=1), writer is the pid of the process still
 * writing the image (a copy of this one, frozen at the fork): the image is
 * complete when it has exited and the file exists. Otherwise writer is 0.
 */
CKPT_EXPORT __attribute__((noinline)) void ckpt_image_done(long err,
							    const char *path,
							    long writer)
{
	__asm__ volatile("" : : "r"(err), "r"(path), "r"(writer) : "memory");
}

/* ---- async-signal-safe logging --------------------------------------- */

struct logbuf {
	char buf[768];
	size_t len;
};

static void lb_str(struct logbuf *lb, const char *s)
{
	while (*s && lb->len < sizeof(lb->buf) - 1)
		lb->buf[lb->len++] = *s++;
}

static void lb_num(struct logbuf *lb, unsigned long long v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && lb->len < sizeof(lb->buf) - 1)
		lb->buf[lb->len++] = tmp[--n];
}

/* "libckpt: <what>[ <path>][: <strerror(err)>]\n" on stderr. */
static void ckpt_log(const char *what, const char *path, int err)
{
	struct logbuf lb = { .len = 0 };
	const char *desc;

	lb_str(&lb, "libckpt: ");
	lb_str(&lb, what);
	if (path) {
		lb_str(&lb, " ");
		lb_str(&lb, path);
	}
	if (err) {
		/* A static table, no locale: safe where strerror() is not. */
		desc = strerrordesc_np(err);
		lb_str(&lb, ": ");
		if (desc) {
			lb_str(&lb, desc);
		} else {
			lb_str(&lb, "errno ");
			lb_num(&lb, (unsigned)err);
		}
	}
	lb.buf[lb.len++] = '\n';
	if (write(STDERR_FILENO, lb.buf, lb.len) < 0) {
		/* Nowhere left to report to. */
	}
}

/* ---- small helpers ---------------------------------------------------- */

/* Write all of buf at off, or at the file offset if off < 0; -errno. */
static int write_full(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		p += n;
		if (off >= 0)
			off += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	return write_full(fd, buf, len, -1);
}

/* Read a whole (proc) file into buf; returns its length or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	while (len < size) {
		ssize_t n = read(fd, buf + len, size - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	return err ? err : (ssize_t)len;
}

static const char *parse_hex(const char *p, uint64_t *out)
{
	uint64_t v = 0;

	for (;; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			break;
		v = (v << 4) | (uint64_t)d;
	}
	*out = v;
	return p;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static const char *parse_dec(const char *p, uint64_t *out)
{
	uint64_t v = 0;

	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	*out = v;
	return p;
}

static void *scratch_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* A scratch buffer that exists while /proc/self/maps is read: excluded. */
static void *own_map(size_t len)
{
	void *p;

	if (ckpt_nr_own == MAX_OWN)
		return NULL;
	p = scratch_map(len);
	if (p) {
		ckpt_own[ckpt_nr_own].lo = (uint64_t)(uintptr_t)p;
		ckpt_own[ckpt_nr_own].hi =
			((uint64_t)(uintptr_t)p + len + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
		ckpt_nr_own++;
	}
	return p;
}

static void own_unmap(void *p, size_t len)
{
	int i;

	for (i = 0; i < ckpt_nr_own; i++)
		if (ckpt_own[i].lo == (uint64_t)(uintptr_t)p) {
			ckpt_own[i] = ckpt_own[--ckpt_nr_own];
			break;
		}
	munmap(p, len);
}

static int thread_count(void)
{
	char buf[1024];
	ssize_t len = read_file("/proc/self/stat", buf, sizeof(buf) - 1);
	uint64_t v = 0;
	char *p;
	int field;

	if (len <= 0)
		return -1;
	buf[len] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return -1;
	/* After ") " comes field 3 (state); num_threads is field 20. */
	for (field = 2, p++; *p && field < 20; p++)
		if (*p == ' ')
			field++;
	parse_dec(p, &v);
	return (int)v;
}

/* ---- collecting what to save ------------------------------------------ */

/*
 * The checksum runs on the second core while the first writes: a thread of
 * our own (raw clone, no libc inside it, only futex calls) hashes chunk k
 * while write() copies it; the writer waits for it before handing over
 * chunk k + 1. Without it XXH64 (4.8 GB/s here) would nearly double the
 * time of a checkpoint into the page cache.
 */
#define HASHER_STACK (64UL << 10)

struct hasher {
	uint32_t seq;  /* bumped by the writer for each job (futex) */
	uint32_t done; /* set to seq by the hasher when it is hashed (futex) */
	int32_t tid;   /* cleared by the kernel when the thread is gone */
	int running;
	const void *p; /* the job: XXH64 of len bytes at p */
	size_t len;    /* 0: quit */
	uint64_t digest; /* the job's result */
	char *stack;
};

static long raw_futex(uint32_t *addr, long op, uint32_t val)
{
	long ret;
	register long r10 __asm__("r10") = 0; /* no timeout */

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"((long)SYS_futex), "D"(addr), "S"(op), "d"((long)val),
			   "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

/* Wait while *addr == val. */
static void futex_wait(uint32_t *addr, uint32_t val)
{
	while (__atomic_load_n(addr, __ATOMIC_ACQUIRE) == val)
		raw_futex(addr, FUTEX_WAIT, val);
}

static void futex_wake(uint32_t *addr)
{
	raw_futex(addr, FUTEX_WAKE, 1);
}

static int hasher_main(void *arg)
{
	struct hasher *hs = arg;
	uint32_t seen = 0;

	for (;;) {
		futex_wait(&hs->seq, seen);
		seen = __atomic_load_n(&hs->seq, __ATOMIC_ACQUIRE);
		if (!hs->len)
			return 0;
		hs->digest = ckpt_xxh64(hs->p, hs->len);
		__atomic_store_n(&hs->done, seen, __ATOMIC_RELEASE);
		futex_wake(&hs->done);
	}
}

/*
 * Under a tracer (extckpt attach) the process may run its handler while a
 * group stop is pending (it was stopped, and the tracer resumed this one
 * thread): a thread created then joins the stop at once and would never
 * hash. Only a traced process can be in that state.
 */
static int traced(void)
{
	char buf[2048];
	ssize_t len = read_file("/proc/self/status", buf, sizeof(buf) - 1);

	if (len <= 0)
		return 1;
	buf[len] = '\0';
	return !strstr(buf, "\nTracerPid:\t0\n");
}

static void hasher_start(struct hasher *hs)
{
	long tid;

	memset(hs, 0, sizeof(*hs));
	if (traced())
		return; /* then the writer hashes itself */
	hs->stack = scratch_map(HASHER_STACK);
	if (!hs->stack)
		return; /* then the writer hashes itself */
	tid = clone(hasher_main, hs->stack + HASHER_STACK,
		    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
			    CLONE_THREAD | CLONE_SYSVSEM | CLONE_PARENT_SETTID |
			    CLONE_CHILD_CLEARTID,
		    hs, &hs->tid, NULL, &hs->tid);
	if (tid < 0) {
		munmap(hs->stack, HASHER_STACK);
		hs->stack = NULL;
		return;
	}
	hs->running = 1;
}

/* Hash len bytes at p: handed to the hasher, or here and now. */
static void hash_submit(struct hasher *hs, const void *p, size_t len)
{
	if (!hs->running) {
		hs->digest = ckpt_xxh64(p, len);
		return;
	}
	hs->p = p;
	hs->len = len;
	__atomic_add_fetch(&hs->seq, 1, __ATOMIC_RELEASE);
	futex_wake(&hs->seq);
}

/*
 * The last job is hashed: its bytes may be touched again; its XXH64. Sleep
 * only on the value of done that was seen short of seq: reading it again
 * for the futex could see the hasher's final store and sleep for ever.
 */
static uint64_t hash_wait(struct hasher *hs)
{
	uint32_t want, done;

	if (!hs->running)
		return hs->digest;
	want = __atomic_load_n(&hs->seq, __ATOMIC_ACQUIRE); /* ours alone */
	while ((done = __atomic_load_n(&hs->done, __ATOMIC_ACQUIRE)) != want)
		futex_wait(&hs->done, done);
	return hs->digest;
}

static void hasher_stop(struct hasher *hs)
{
	int32_t tid;

	if (!hs->running)
		return;
	hs->len = 0;
	__atomic_add_fetch(&hs->seq, 1, __ATOMIC_RELEASE);
	futex_wake(&hs->seq);
	/* CLONE_CHILD_CLEARTID: the kernel zeroes tid and wakes us when the
	 * thread is gone; only then is its stack free. */
	while ((tid = __atomic_load_n(&hs->tid, __ATOMIC_ACQUIRE)) != 0)
		raw_futex((uint32_t *)&hs->tid, FUTEX_WAIT, (uint32_t)tid);
	munmap(hs->stack, HASHER_STACK);
	hs->running = 0;
}

/*
 * Everything the handler builds lives in scratch mappings, not the heap.
 * The dump, its strings and its fd table are made before a forked writer
 * exists (they describe the instant of the checkpoint); the rest is made by
 * whoever writes the image.
 */
#define STRINGS_CAP (64UL << 20) /* NORESERVE: only what is used costs */
#define MAX_FDS 65536
#define MAX_TIMERS 256
#define MAX_SIGNALS 256

struct dump {
	char *maps;		/* /proc/self/smaps text */
	size_t maps_len, maps_cap;
	struct ckpt_region *regions;
	size_t nr_regions, regions_cap;
	/* Per region, smaps' Anonymous bytes when the region is a whole
	 * mapping (0 when it is part of one): all of it means one run. */
	uint64_t *anon_bytes;
	char *strings;
	size_t strings_len;
	struct ckpt_run *runs;
	size_t nr_runs, runs_cap;
	struct ckpt_fd *fds;
	size_t nr_fds;
	struct ckpt_timer timers[MAX_TIMERS];
	size_t nr_timers;
	struct ckpt_signal signals[MAX_SIGNALS];
	size_t nr_signals;
	char timers_text[32768]; /* /proc/self/timers */
	char *bounce; /* WRITE_CHUNK bytes: copies of our own, moving stack */
	struct hasher hasher;
	struct page_region *scan; /* PAGEMAP_SCAN output */
	size_t scan_cap;
	int pagemap_fd;
	uint64_t self_ino; /* libckpt.so's inode, to flag its mappings */
	struct ckpt_header hdr;
};

static struct dump *dump_new(void)
{
	struct dump *d = own_map(sizeof(*d));

	if (!d)
		return NULL;
	d->pagemap_fd = -1;
	d->strings = own_map(STRINGS_CAP);
	d->fds = own_map(MAX_FDS * sizeof(*d->fds));
	return d;
}

static void dump_free(struct dump *d)
{
	if (d->maps)
		own_unmap(d->maps, d->maps_cap);
	if (d->regions)
		munmap(d->regions, d->regions_cap * sizeof(*d->regions));
	if (d->anon_bytes)
		munmap(d->anon_bytes, d->regions_cap * sizeof(*d->anon_bytes));
	if (d->runs)
		munmap(d->runs, d->runs_cap * sizeof(*d->runs));
	if (d->scan)
		munmap(d->scan, d->scan_cap * sizeof(*d->scan));
	if (d->bounce)
		munmap(d->bounce, WRITE_CHUNK);
	if (d->pagemap_fd >= 0)
		close(d->pagemap_fd);
	if (d->strings)
		own_unmap(d->strings, STRINGS_CAP);
	if (d->fds)
		own_unmap(d->fds, MAX_FDS * sizeof(*d->fds));
	own_unmap(d, sizeof(*d));
}

/* Read /proc/self/smaps whole, growing the buffer until it fits. */
static int read_maps(struct dump *d)
{
	size_t cap = 4UL << 20;

	for (;;) {
		ssize_t len;

		d->maps = own_map(cap);
		if (!d->maps)
			return -ENOMEM;
		d->maps_cap = cap;
		len = read_file("/proc/self/smaps", d->maps, cap);
		if (len < 0)
			return (int)len;
		if ((size_t)len < cap) {
			d->maps_len = (size_t)len;
			return 0;
		}
		own_unmap(d->maps, cap);
		d->maps = NULL;
		cap *= 4;
	}
}

static uint32_t add_string(struct dump *d, const char *s, size_t len)
{
	uint32_t off = (uint32_t)d->strings_len;

	if (len > STRINGS_CAP - d->strings_len)
		len = 0; /* cannot happen below vm.max_map_count */
	memcpy(d->strings + d->strings_len, s, len);
	d->strings_len += len;
	return off;
}

static int name_is(const char *name, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

/*
 * Decide how a file mapping is saved. A mapping of a file that is still
 * there (same inode) is re-mapped at restart, and only the pages the
 * program modified are stored. A file deleted or replaced since, or the
 * image we were restarted from, is saved whole, as anonymous memory.
 */
static void classify_file(struct ckpt_region *r, const char *path,
			  size_t path_len, uint64_t ino)
{
	static const char deleted[] = " (deleted)";
	char cpath[PATH_MAX];
	struct stat st;

	if (path_len >= sizeof(deleted) - 1 &&
	    memcmp(path + path_len - (sizeof(deleted) - 1), deleted,
		   sizeof(deleted) - 1) == 0)
		goto orphan;
	if (path_len >= sizeof(cpath))
		goto orphan;
	memcpy(cpath, path, path_len);
	cpath[path_len] = '\0';
	if (stat(cpath, &st) < 0 || (uint64_t)st.st_ino != ino ||
	    !S_ISREG(st.st_mode))
		goto orphan;
	if ((uint64_t)st.st_ino == ckpt_mapped_image.ino &&
	    (uint64_t)st.st_dev == ckpt_mapped_image.dev)
		goto orphan; /* our memory, mapped from our own old image */
	r->kind = CKPT_KIND_FILE;
	r->dev = (uint64_t)st.st_dev;
	r->ino = (uint64_t)st.st_ino;
	r->file_size = (uint64_t)st.st_size;
	r->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL +
		      st.st_mtim.tv_nsec;
	return;
orphan:
	r->kind = CKPT_KIND_ANON;
	r->file_offset = 0;
}

/* Add r, less our own buffers from ckpt_own[k..], to the table. */
static void add_region_from(struct dump *d, const struct ckpt_region *r, int k)
{
	struct ckpt_region part;
	uint64_t lo, hi;

	for (; k < ckpt_nr_own; k++)
		if (r->start < ckpt_own[k].hi && r->end > ckpt_own[k].lo)
			break;
	if (k == ckpt_nr_own) {
		if (d->nr_regions < d->regions_cap)
			d->regions[d->nr_regions++] = *r;
		return;
	}
	lo = ckpt_own[k].lo;
	hi = ckpt_own[k].hi;
	if (r->start < lo) {
		part = *r;
		part.end = lo;
		add_region_from(d, &part, k + 1);
	}
	if (r->end > hi) {
		part = *r;
		if (part.kind == CKPT_KIND_FILE)
			part.file_offset += hi - r->start;
		part.start = hi;
		add_region_from(d, &part, k + 1);
	}
}

/* smaps VmFlags: the ones a restart can set again. */
static uint32_t parse_vmflags(const char *p, const char *eol)
{
	static const struct {
		char name[3];
		uint32_t flag;
	} known[] = {
		{ "nr", CKPT_VM_NORESERVE }, { "gd", CKPT_VM_GROWSDOWN },
		{ "lo", CKPT_VM_LOCKED },    { "dc", CKPT_VM_DONTFORK },
		{ "wf", CKPT_VM_WIPEONFORK }, { "dd", CKPT_VM_DONTDUMP },
		{ "hg", CKPT_VM_HUGEPAGE },  { "nh", CKPT_VM_NOHUGEPAGE },
		{ "mg", CKPT_VM_MERGEABLE }, { "sr", CKPT_VM_SEQUENTIAL },
		{ "rr", CKPT_VM_RANDOM },
	};
	uint32_t flags = 0;
	size_t i;

	for (; p + 2 <= eol; p++) {
		if (*p == ' ')
			continue;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (p[0] == known[i].name[0] && p[1] == known[i].name[1])
				flags |= known[i].flag;
		p += 2;
	}
	return flags;
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/*
 * One region per mapping of smaps: the maps line of each gives range,
 * permissions, offset, inode and name; its VmFlags line the madvise state.
 */
static int parse_maps(struct dump *d)
{
	const char *p = d->maps, *end = d->maps + d->maps_len;
	uint64_t self = (uint64_t)(uintptr_t)&ckpt_image_done;
	size_t lines = 0, i, line_first = 0;
	uint64_t line_len = 0; /* of the mapping whose lines follow */

	for (i = 0; i < d->maps_len; i++)
		lines += (i == 0 || d->maps[i - 1] == '\n') && is_hex(d->maps[i]);
	d->regions_cap = 3 * lines + 2; /* a line may split around our buffers */
	d->regions = scratch_map(d->regions_cap * sizeof(*d->regions));
	d->anon_bytes = scratch_map(d->regions_cap * sizeof(*d->anon_bytes));
	if (!d->regions || !d->anon_bytes)
		return -ENOMEM;

	while (p < end) {
		struct ckpt_region r;
		uint64_t start, stop, off, ino, dummy;
		const char *perms, *name, *eol;
		size_t name_len;

		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if (!is_hex(*p)) {
			if (!strncmp(p, "Anonymous:", 10) &&
			    d->nr_regions == line_first + 1 &&
			    d->regions[line_first].end -
					    d->regions[line_first].start ==
				    line_len) {
				uint64_t kib = 0;
				const char *q = p + 10;

				while (*q == ' ')
					q++;
				parse_dec(q, &kib);
				d->anon_bytes[line_first] = kib << 10;
			} else if (!strncmp(p, "VmFlags:", 8)) {
				uint32_t vm = parse_vmflags(p + 8, eol);

				for (i = line_first; i < d->nr_regions; i++) {
					d->regions[i].vmflags = vm;
					if (vm & CKPT_VM_GROWSDOWN)
						d->regions[i].flags |=
							CKPT_REGION_GROWSDOWN;
				}
			}
			p = eol + 1;
			continue;
		}
		memset(&r, 0, sizeof(r));
		p = parse_hex(p, &start) + 1; /* '-' */
		p = parse_hex(p, &stop) + 1;
		perms = p;
		p += 5;
		p = parse_hex(p, &off) + 1;
		p = parse_hex(p, &dummy) + 1; /* dev major:minor */
		p = parse_hex(p, &dummy) + 1;
		p = parse_dec(p, &ino);
		while (*p == ' ')
			p++;
		name = p;
		name_len = (size_t)(eol - name);
		p = eol + 1;
		line_first = d->nr_regions;
		line_len = stop - start;

		r.start = start;
		r.end = stop;
		r.prot = (perms[0] == 'r' ? PROT_READ : 0) |
			 (perms[1] == 'w' ? PROT_WRITE : 0) |
			 (perms[2] == 'x' ? PROT_EXEC : 0);
		if (perms[3] == 's')
			r.flags |= CKPT_REGION_SHARED;
		if (!(r.prot & PROT_READ))
			r.flags |= CKPT_REGION_UNREADABLE;
		r.kind = CKPT_KIND_ANON;

		if (name_is(name, name_len, "[vsyscall]"))
			continue; /* fixed by the kernel, the same everywhere */
		if (name_is(name, name_len, "[vdso]"))
			r.kind = CKPT_KIND_VDSO;
		else if (name_is(name, name_len, "[vvar]"))
			r.kind = CKPT_KIND_VVAR;
		else if (name_is(name, name_len, "[vvar_vclock]"))
			r.kind = CKPT_KIND_VVAR_VCLOCK;
		else if (name_is(name, name_len, "[heap]"))
			r.flags |= CKPT_REGION_HEAP;
		else if (ino != 0 && name_len && name[0] == '/') {
			r.file_offset = off;
			classify_file(&r, name, name_len, ino);
			if (self >= start && self < stop)
				d->self_ino = ino;
		}
		r.name_offset = add_string(d, name, name_len);
		r.name_len = (uint32_t)name_len;
		/* Remember the inode until libckpt's own is known below. */
		if (r.kind != CKPT_KIND_FILE)
			r.ino = ino;
		add_region_from(d, &r, 0);
	}
	for (i = 0; i < d->nr_regions; i++) {
		struct ckpt_region *r = &d->regions[i];

		uint64_t bss = (uint64_t)(uintptr_t)&ckpt_nr_own;

		/* Our file mappings, and our .bss beyond them. */
		if ((d->self_ino && r->ino == d->self_ino) ||
		    (bss >= r->start && bss < r->end))
			r->flags |= CKPT_REGION_CKPTLIB;
		if (r->kind != CKPT_KIND_FILE)
			r->ino = 0;
	}
	return 0;
}

/* Append [start, end) to region r's runs, extending its last run. */
static int add_run(struct dump *d, const struct ckpt_region *r, uint64_t start,
		   uint64_t end)
{
	struct ckpt_run *last =
		d->nr_runs > r->first_run ? &d->runs[d->nr_runs - 1] : NULL;

	if (last && last->start + last->len == start) {
		last->len += end - start;
		return 0;
	}
	if (d->nr_runs == d->runs_cap) {
		size_t old = d->runs_cap * sizeof(*d->runs);
		void *p = mremap(d->runs, old, old * 4, MREMAP_MAYMOVE);

		if (p == MAP_FAILED)
			return -ENOMEM;
		d->runs = p;
		d->runs_cap *= 4;
	}
	d->runs[d->nr_runs].start = start;
	d->runs[d->nr_runs].len = end - start;
	d->runs[d->nr_runs].data_offset = 0;
	d->nr_runs++;
	return 0;
}

/*
 * Find the pages of r that must be stored: for anonymous memory and private
 * file mappings, the pages present (or swapped) that are not page-cache
 * pages of the file and not the shared zero page. PAGEMAP_SCAN (Linux 6.7)
 * returns them as ranges, skipping unpopulated page tables, so a 2 TiB
 * reservation with five pages touched costs microseconds.
 */
static int scan_region(struct dump *d, struct ckpt_region *r)
{
	struct pm_scan_arg arg;
	uint64_t pos = r->start;

	r->first_run = d->nr_runs;
	if (r->kind == CKPT_KIND_ANON && (r->flags & CKPT_REGION_SHARED)) {
		/* Shared memory (memfd, shm, MAP_SHARED|MAP_ANONYMOUS) counts
		 * as file pages; store whatever is present. */
		memset(&arg, 0, sizeof(arg));
		arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	} else if ((r->kind == CKPT_KIND_ANON && r->file_offset == 0 &&
		    r->name_len && d->strings[r->name_offset] == '/') ||
		   d->anon_bytes[r - d->regions] == r->end - r->start) {
		/* A deleted or replaced file: every page, read through. Or
		 * every page is the program's own (smaps: Anonymous is the
		 * whole mapping): one run, and no page walk for it. */
		int err = add_run(d, r, r->start, r->end);

		r->nr_runs = d->nr_runs - r->first_run;
		return err;
	} else {
		memset(&arg, 0, sizeof(arg));
		arg.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO;
		arg.category_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO;
		arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	}
	arg.size = sizeof(arg);
	arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	arg.vec = (uint64_t)(uintptr_t)d->scan;
	arg.vec_len = d->scan_cap;
	while (pos < r->end) {
		long n, i;

		arg.start = pos;
		arg.end = r->end;
		arg.walk_end = 0;
		n = ioctl(d->pagemap_fd, PAGEMAP_SCAN, &arg);
		if (n < 0)
			return -errno;
		for (i = 0; i < n; i++) {
			int err = add_run(d, r, d->scan[i].start,
					  d->scan[i].end);

			if (err)
				return err;
		}
		if (arg.walk_end <= pos)
			break;
		pos = arg.walk_end;
	}
	r->nr_runs = d->nr_runs - r->first_run;
	return 0;
}

/* Directory, umask, limits, timers, prctl settings. */
static void collect_proc(struct dump *d)
{
	struct ckpt_proc *pr = &d->hdr.proc;
	char cwd[PATH_MAX];
	ssize_t len;
	mode_t mask;
	int i;

	len = readlink("/proc/self/cwd", cwd, sizeof(cwd));
	if (len > 0) {
		pr->cwd_offset = add_string(d, cwd, (size_t)len);
		pr->cwd_len = (uint32_t)len;
	}
	mask = umask(0); /* the only way to read it; single-threaded */
	umask(mask);
	pr->umask = (uint32_t)mask;
	for (i = 0; i < CKPT_NRLIMITS; i++)
		syscall(SYS_prlimit64, 0, i, NULL, pr->rlimits[i]);
	for (i = 0; i < 3; i++) {
		struct itimerval it;

		if (getitimer(i, &it) == 0) {
			pr->itimers[i].interval_us =
				(uint64_t)it.it_interval.tv_sec * 1000000 +
				(uint64_t)it.it_interval.tv_usec;
			pr->itimers[i].value_us =
				(uint64_t)it.it_value.tv_sec * 1000000 +
				(uint64_t)it.it_value.tv_usec;
			/* ITIMER_REAL re-arms when its SIGALRM is dequeued,
			 * and we block it: just after an expiry a periodic
			 * timer reads as disarmed. It is not. */
			if (!pr->itimers[i].value_us)
				pr->itimers[i].value_us = pr->itimers[i].interval_us;
		}
	}
	prctl(PR_GET_NAME, pr->comm);
	pr->thp_disable = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	pr->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	pr->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	prctl(PR_GET_CHILD_SUBREAPER, &pr->child_subreaper, 0, 0, 0);
	pr->timerslack_ns = (uint64_t)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
}

/* How one open fd is saved. */
static void collect_fd(struct dump *d, int fd)
{
	struct ckpt_fd *f = &d->fds[d->nr_fds];
	char link[32], path[PATH_MAX];
	struct logbuf lb = { .len = 0 };
	struct stat st;
	ssize_t len;
	off_t pos;

	if (fstat(fd, &st) < 0)
		return;
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->flags = (uint32_t)fcntl(fd, F_GETFL);
	f->cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) ? 1 : 0;
	pos = lseek(fd, 0, SEEK_CUR);
	f->pos = pos < 0 ? 0 : (uint64_t)pos;
	f->dev = (uint64_t)st.st_dev;
	f->ino = (uint64_t)st.st_ino;
	f->size = (uint64_t)st.st_size;
	f->rdev = (uint64_t)st.st_rdev;
	f->mode = (uint32_t)st.st_mode;

	lb_str(&lb, "/proc/self/fd/");
	lb_num(&lb, (unsigned)fd);
	lb.buf[lb.len] = '\0';
	memcpy(link, lb.buf, lb.len + 1);
	len = readlink(link, path, sizeof(path));
	if (len < 0)
		len = 0;
	f->path_offset = add_string(d, path, (size_t)len);
	f->path_len = (uint32_t)len;

	if (S_ISREG(st.st_mode) && len && path[0] == '/')
		f->type = st.st_nlink == 0 ? CKPT_FD_GHOST : CKPT_FD_FILE;
	else if (S_ISDIR(st.st_mode))
		f->type = CKPT_FD_DIR;
	else if (S_ISCHR(st.st_mode))
		f->type = CKPT_FD_CHAR;
	else if (S_ISFIFO(st.st_mode))
		f->type = CKPT_FD_PIPE;
	else if (S_ISSOCK(st.st_mode))
		f->type = CKPT_FD_SOCKET;
	else
		f->type = CKPT_FD_OTHER;
	if (f->type == CKPT_FD_GHOST)
		f->data_len = (f->size + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
	d->nr_fds++;
}

/* The program's open fds, in order, before we open any of our own. */
static int collect_fds(struct dump *d)
{
	char buf[4096];
	int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n;

	if (dir < 0)
		return -errno;
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		long off = 0;

		while (off < n) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *de = (void *)(buf + off);
			uint64_t fd;

			off += de->reclen;
			if (de->name[0] < '0' || de->name[0] > '9')
				continue;
			parse_dec(de->name, &fd);
			if ((int)fd != dir && d->nr_fds < MAX_FDS)
				collect_fd(d, (int)fd);
		}
	}
	close(dir);
	/* getdents order is the kernel's; the restarter wants them sorted. */
	for (size_t i = 1; i < d->nr_fds; i++) {
		struct ckpt_fd tmp = d->fds[i];
		size_t j = i;

		for (; j > 0 && d->fds[j - 1].fd > tmp.fd; j--)
			d->fds[j] = d->fds[j - 1];
		d->fds[j] = tmp;
	}
	return n < 0 ? -errno : 0;
}

/*
 * Which rseq area is registered: the program's own if it registered one
 * through syscall(), else glibc's (at thread pointer + __rseq_offset, at
 * least the original 32 bytes). The kernel says whether an area is the
 * registered one: registering it again fails with EBUSY.
 */
static void collect_rseq(struct ckpt_header *h)
{
	uint64_t addr = h->fs_base + (uint64_t)__rseq_offset;
	uint32_t len = __rseq_size < 32 ? 32 : __rseq_size, sig = RSEQ_SIG_X86;

	if (ckpt_prog_rseq.known) {
		addr = ckpt_prog_rseq.addr;
		len = ckpt_prog_rseq.len;
		sig = ckpt_prog_rseq.sig;
	} else if (__rseq_size == 0) {
		return; /* glibc did not register (tunable off) */
	}
	if (!addr)
		return;
	if (!libc_syscall)
		return;
	if (libc_syscall(SYS_rseq, addr, len, 0, sig) == 0) {
		/* Nothing was registered, and now we did: undo it. */
		libc_syscall(SYS_rseq, addr, len, RSEQ_FLAG_UNREGISTER, sig);
		return;
	}
	if (errno != EBUSY) {
		ckpt_log("an rseq area libckpt does not know is registered; the "
			 "restart will not register it again",
			 NULL, 0);
		return;
	}
	h->rseq.addr = addr;
	h->rseq.len = len;
	h->rseq.sig = sig;
}

/* Registers, handlers, mm layout: everything but the memory itself. */
static void collect_process_state(struct dump *d, const ucontext_t *uc, int sig,
				  pid_t pid)
{
	struct ckpt_header *h = &d->hdr;
	char buf[1024];
	struct timespec ts;
	ssize_t len;
	char *p;
	int i;

	memcpy(h->magic, CKPT_MAGIC, sizeof(CKPT_MAGIC));
	h->version = CKPT_FORMAT_VERSION;
	h->header_size = sizeof(*h);
	h->arch = CKPT_ARCH_X86_64;
	h->page_size = CKPT_PAGE_SIZE;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->created_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	h->pid = pid;
	h->signo = (uint32_t)sig;
	h->resume_entry = (uint64_t)(uintptr_t)&ckpt_restart_entry;
	h->resume_stack = ckpt_resume_ctx.rsp;
	syscall(SYS_arch_prctl, ARCH_GET_FS, &h->fs_base);
	syscall(SYS_arch_prctl, ARCH_GET_GS, &h->gs_base);
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &h->sigmask, 8);
	for (i = 0; i < CKPT_NGREGS; i++)
		h->gregs[i] = (uint64_t)uc->uc_mcontext.gregs[i];
	for (i = 1; i <= CKPT_NSIG; i++)
		syscall(SYS_rt_sigaction, i, NULL, &h->sigactions[i - 1], 8);

	collect_rseq(h);

	/* The mm layout for PR_SET_MM_MAP: fields 26-28 and 45-51 of stat. */
	len = read_file("/proc/self/stat", buf, sizeof(buf) - 1);
	if (len > 0) {
		static const struct {
			int field;
			size_t off;
		} want[] = {
			{ 26, offsetof(struct ckpt_mm, start_code) },
			{ 27, offsetof(struct ckpt_mm, end_code) },
			{ 28, offsetof(struct ckpt_mm, start_stack) },
			{ 45, offsetof(struct ckpt_mm, start_data) },
			{ 46, offsetof(struct ckpt_mm, end_data) },
			{ 47, offsetof(struct ckpt_mm, start_brk) },
			{ 48, offsetof(struct ckpt_mm, arg_start) },
			{ 49, offsetof(struct ckpt_mm, arg_end) },
			{ 50, offsetof(struct ckpt_mm, env_start) },
			{ 51, offsetof(struct ckpt_mm, env_end) },
		};
		size_t w = 0;
		int field = 3;

		buf[len] = '\0';
		p = strrchr(buf, ')');
		for (p = p ? p + 2 : buf + len; *p && w < 10; field++) {
			uint64_t v;
			const char *q = parse_dec(p, &v);

			if (field == want[w].field) {
				*(uint64_t *)((char *)&h->mm + want[w].off) = v;
				w++;
			}
			p = (char *)q;
			while (*p && *p != ' ')
				p++;
			if (*p)
				p++;
		}
	}
	h->mm.brk = (uint64_t)syscall(SYS_brk, 0);
	len = read_file("/proc/self/auxv", (char *)h->mm.auxv, sizeof(h->mm.auxv));
	h->mm.auxv_size = len > 0 ? (uint64_t)len : 0;

	len = readlink("/proc/self/exe", buf, sizeof(buf));
	if (len > 0) {
		h->exe_name_offset = add_string(d, buf, (size_t)len);
		h->exe_name_len = (uint32_t)len;
	}
	collect_proc(d);
}

/* POSIX timers (timer_create), as /proc/self/timers lists them. */
static void collect_timers(struct dump *d)
{
	ssize_t len = read_file("/proc/self/timers", d->timers_text,
				sizeof(d->timers_text) - 1);
	char *p = d->timers_text, *end;
	struct ckpt_timer *t = NULL;

	if (len <= 0)
		return;
	end = d->timers_text + len;
	*end = '\0';
	for (; p < end; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : end) {
		uint64_t v;

		if (!strncmp(p, "ID: ", 4)) {
			struct {
				struct timespec interval, value;
			} its;

			if (d->nr_timers == MAX_TIMERS)
				break;
			t = &d->timers[d->nr_timers++];
			memset(t, 0, sizeof(*t));
			parse_dec(p + 4, &v);
			t->id = (int32_t)v;
			if (syscall(SYS_timer_gettime, t->id, &its) == 0) {
				t->interval_ns = (uint64_t)ts_ns(&its.interval);
				t->value_ns = (uint64_t)ts_ns(&its.value);
				/* Like ITIMER_REAL: a periodic timer whose signal
				 * is pending re-arms only when it is taken. */
				if (!t->value_ns)
					t->value_ns = t->interval_ns;
			}
		} else if (t && !strncmp(p, "signal: ", 8)) {
			const char *q = parse_dec(p + 8, &v);

			t->signo = (int32_t)v;
			if (*q == '/')
				parse_hex(q + 1, &t->sigval);
		} else if (t && !strncmp(p, "notify: ", 8)) {
			t->notify = !strncmp(p + 8, "thread", 6) ? 4 /* THREAD_ID */ :
				    !strncmp(p + 8, "none", 4)   ? 1 /* NONE */ :
								   0 /* SIGNAL */;
		} else if (t && !strncmp(p, "ClockID: ", 9)) {
			parse_dec(p + 9, &v);
			t->clock = (int32_t)v;
		}
	}
}

/*
 * Signals pending now (blocked by the program, or arriving during the
 * handler): the only way to read their siginfo is to take them, so take
 * each one and queue it again at once, in order; the program loses none.
 */
static void collect_signals(struct dump *d)
{
	struct timespec zero = { 0, 0 };
	uint64_t pending = 0;
	size_t i, first = 0;
	int sig;

	syscall(SYS_rt_sigpending, &pending, 8);
	for (sig = 1; sig <= CKPT_NSIG && pending; sig++) {
		uint64_t one = 1ULL << (sig - 1);

		if (!(pending & one))
			continue;
		while (d->nr_signals < MAX_SIGNALS) {
			struct ckpt_signal *s = &d->signals[d->nr_signals];

			memset(s, 0, sizeof(*s));
			if (syscall(SYS_rt_sigtimedwait, &one, s->info, &zero, 8) !=
			    sig)
				break;
			s->signo = sig;
			d->nr_signals++;
		}
	}
	for (i = first; i < d->nr_signals; i++)
		if (syscall(SYS_rt_sigqueueinfo, getpid(), d->signals[i].signo,
			    d->signals[i].info) < 0)
			ckpt_log("lost a pending signal while saving it", NULL,
				 errno);
}

/* What must be taken at the instant of the checkpoint, before any fork. */
static int prepare(struct dump *d, const ucontext_t *uc, int sig, pid_t pid)
{
	if (!d->strings || !d->fds)
		return -ENOMEM;
	collect_process_state(d, uc, sig, pid);
	collect_timers(d);
	collect_signals(d);
	return collect_fds(d);
}

/* The memory map and the pages to store (in the writer). */
static int collect_memory(struct dump *d)
{
	size_t i;
	int err;

	err = read_maps(d);
	if (err)
		return err;
	err = parse_maps(d);
	if (err)
		return err;

	d->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (d->pagemap_fd < 0)
		return -errno;
	d->scan_cap = 4096;
	d->scan = scratch_map(d->scan_cap * sizeof(*d->scan));
	d->runs_cap = 4096;
	d->runs = scratch_map(d->runs_cap * sizeof(*d->runs));
	d->bounce = scratch_map(WRITE_CHUNK);
	if (!d->scan || !d->runs || !d->bounce)
		return -ENOMEM;
	for (i = 0; i < d->nr_regions; i++) {
		struct ckpt_region *r = &d->regions[i];

		r->first_run = d->nr_runs;
		if (r->kind >= CKPT_KIND_VDSO)
			continue; /* no bytes: reading vvar can SIGBUS */
		if (r->kind == CKPT_KIND_FILE && (r->flags & CKPT_REGION_SHARED))
			continue; /* the file itself holds the bytes */
		err = scan_region(d, r);
		if (err)
			return err;
	}
	return 0;
}

/* ---- writing ---------------------------------------------------------- */

static int write_region_data(struct dump *d, int fd, struct ckpt_region *r,
			     uint64_t *offset)
{
	struct ckpt_xxh64_seq xs; /* of the pieces' XXH64s */
	uint64_t i, here = (uint64_t)(uintptr_t)&xs;
	uint64_t rseq = d->hdr.rseq.addr, rseq_end = rseq + d->hdr.rseq.len;
	/* Memory that changes under us while we hash and write it: the region
	 * of our own stack (our calls), and the rseq area, where the kernel
	 * writes the cpu number whenever this thread moves to the other core.
	 * Snapshot each chunk of the one and the chunk holding the other, so
	 * that what is hashed is what is written. */
	int own_stack = here >= r->start && here < r->end;
	int err = 0;

	ckpt_xxh64_seq_init(&xs);
	if (r->nr_runs && (r->flags & CKPT_REGION_UNREADABLE) &&
	    mprotect((void *)(uintptr_t)r->start, r->end - r->start,
		     (int)r->prot | PROT_READ) < 0)
		return -errno;
	for (i = 0; i < r->nr_runs && !err; i++) {
		struct ckpt_run *run = &d->runs[r->first_run + i];
		const char *p = (const char *)(uintptr_t)run->start;
		uint64_t done;

		run->data_offset = *offset;
		for (done = 0; done < run->len && !err; done += WRITE_CHUNK) {
			size_t n = ckpt_piece_len(run->len, done);
			const char *src = p + done;
			uint64_t at = run->start + done;

			if (own_stack || (rseq && rseq < at + n && rseq_end > at)) {
				memcpy(d->bounce, src, n);
				src = d->bounce;
			}
			hash_submit(&d->hasher, src, n);
			errno = ckpt_program_errno;
			err = write_all(fd, src, n);
			ckpt_xxh64_seq_add(&xs, hash_wait(&d->hasher));
		}
		*offset += run->len;
		r->stored_bytes += run->len;
	}
	if (r->nr_runs && (r->flags & CKPT_REGION_UNREADABLE))
		mprotect((void *)(uintptr_t)r->start, r->end - r->start,
			 (int)r->prot);
	r->checksum = ckpt_xxh64_seq_final(&xs);
	return err;
}

/*
 * A file deleted while open (a ghost) exists only through its fds: store its
 * contents, zero-padded to a page, so the restart can recreate it.
 */
static int write_ghost(struct dump *d, int fd, struct ckpt_fd *f,
		       uint64_t *offset)
{
	struct ckpt_xxh64 xs;
	uint64_t done;
	int err = 0;

	ckpt_xxh64_init(&xs);
	f->data_offset = *offset;
	for (done = 0; done < f->data_len && !err; done += WRITE_CHUNK) {
		size_t n = f->data_len - done < WRITE_CHUNK ?
				   f->data_len - done : WRITE_CHUNK;
		size_t got = 0, want = done < f->size ?
					      (f->size - done < n ? f->size - done : n) : 0;

		while (got < want) {
			ssize_t r = pread(f->fd, d->bounce + got, want - got,
					  (off_t)(done + got));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break; /* shrank since: the rest reads as zeros */
			got += (size_t)r;
		}
		memset(d->bounce + got, 0, n - got);
		if (want & 31) {
			ckpt_xxh64_stripes(&xs, d->bounce, want & ~(size_t)31);
			f->checksum = ckpt_xxh64_final(&xs, d->bounce + (want & ~(size_t)31),
						       want & 31);
		} else {
			ckpt_xxh64_stripes(&xs, d->bounce, want);
		}
		err = write_all(fd, d->bounce, n);
	}
	if (!(f->size & 31))
		f->checksum = ckpt_xxh64_final(&xs, NULL, 0);
	*offset += f->data_len;
	return err;
}

static int write_image(struct dump *d, int fd)
{
	struct ckpt_header *h = &d->hdr;
	uint64_t off = CKPT_PAGE_SIZE;
	size_t i, tables_len;
	char *tables;
	int err;

	if (lseek(fd, (off_t)off, SEEK_SET) < 0)
		return -errno;
	hasher_start(&d->hasher);
	for (i = 0, err = 0; i < d->nr_regions && !err; i++)
		err = write_region_data(d, fd, &d->regions[i], &off);
	hasher_stop(&d->hasher);
	if (err)
		return err;
	for (i = 0; i < d->nr_fds; i++) {
		if (d->fds[i].type != CKPT_FD_GHOST)
			continue;
		err = write_ghost(d, fd, &d->fds[i], &off);
		if (err)
			return err;
	}
	h->data_offset = CKPT_PAGE_SIZE;
	h->data_size = off - CKPT_PAGE_SIZE;

	/* The six tables, contiguous, after the data. */
	h->regions_offset = off;
	h->nr_regions = d->nr_regions;
	h->runs_offset = off + d->nr_regions * sizeof(struct ckpt_region);
	h->nr_runs = d->nr_runs;
	h->fds_offset = h->runs_offset + d->nr_runs * sizeof(struct ckpt_run);
	h->nr_fds = d->nr_fds;
	h->timers_offset = h->fds_offset + d->nr_fds * sizeof(struct ckpt_fd);
	h->nr_timers = d->nr_timers;
	h->signals_offset =
		h->timers_offset + d->nr_timers * sizeof(struct ckpt_timer);
	h->nr_signals = d->nr_signals;
	h->strings_offset =
		h->signals_offset + d->nr_signals * sizeof(struct ckpt_signal);
	h->strings_size = d->strings_len;
	h->image_size = h->strings_offset + h->strings_size;

	/* Gather them in one buffer: one write, one checksum. */
	tables_len = (size_t)(h->image_size - h->regions_offset);
	tables = scratch_map(tables_len);
	if (!tables)
		return -ENOMEM;
	memcpy(tables, d->regions, d->nr_regions * sizeof(struct ckpt_region));
	memcpy(tables + (h->runs_offset - h->regions_offset), d->runs,
	       d->nr_runs * sizeof(struct ckpt_run));
	memcpy(tables + (h->fds_offset - h->regions_offset), d->fds,
	       d->nr_fds * sizeof(struct ckpt_fd));
	memcpy(tables + (h->timers_offset - h->regions_offset), d->timers,
	       d->nr_timers * sizeof(struct ckpt_timer));
	memcpy(tables + (h->signals_offset - h->regions_offset), d->signals,
	       d->nr_signals * sizeof(struct ckpt_signal));
	memcpy(tables + (h->strings_offset - h->regions_offset), d->strings,
	       d->strings_len);
	h->tables_checksum = ckpt_xxh64(tables, tables_len);
	err = write_all(fd, tables, tables_len);
	munmap(tables, tables_len);
	if (err)
		return err;

	h->header_checksum = 0;
	h->header_checksum = ckpt_xxh64(h, sizeof(*h));
	err = write_full(fd, h, sizeof(*h), 0);
	if (!err && ckpt_fsync && fdatasync(fd) < 0)
		err = -errno;
	return err;
}

/*
 * A write past RLIMIT_FSIZE raises SIGXFSZ, which would kill the program
 * once the handler's mask is lifted. Swallow it if we caused it.
 */
static void drop_our_sigxfsz(int was_pending)
{
	sigset_t set;
	struct timespec zero = { 0, 0 };

	if (was_pending)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGXFSZ);
	syscall(SYS_rt_sigtimedwait, &set, NULL, &zero, 8);
}

static int sigxfsz_pending(void)
{
	uint64_t pending = 0;

	syscall(SYS_rt_sigpending, &pending, 8);
	return (pending >> (SIGXFSZ - 1)) & 1;
}

/*
 * Write the image of the process d describes to a temporary file and rename
 * it into place. Runs in the process itself, or in the forked writer.
 */
static int write_checkpoint(struct dump *d, pid_t pid)
{
	int fd, err, xfsz_before = sigxfsz_pending();
	size_t n;

	/* The tmp name: "<image>.tmp.<pid>", built without snprintf. */
	n = strlen(ckpt_image_path);
	memcpy(ckpt_tmp_path, ckpt_image_path, n);
	{
		struct logbuf lb = { .len = 0 };

		lb_str(&lb, ".tmp.");
		lb_num(&lb, (unsigned long long)pid);
		memcpy(ckpt_tmp_path + n, lb.buf, lb.len);
		ckpt_tmp_path[n + lb.len] = '\0';
	}

	fd = open(ckpt_tmp_path,
		  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err = errno;
		ckpt_log("cannot create", ckpt_tmp_path, err);
		goto out;
	}
	if (fchmod(fd, 0600) < 0) { /* whatever the umask: it is all our memory */
		err = errno;
		ckpt_log("cannot chmod", ckpt_tmp_path, err);
		goto out_unlink;
	}
	err = -collect_memory(d);
	if (err) {
		ckpt_log("cannot read the process's memory map", NULL, err);
		goto out_unlink;
	}
	err = -write_image(d, fd);
	if (err) {
		ckpt_log("cannot write", ckpt_tmp_path, err);
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		err = errno;
		ckpt_log("cannot write", ckpt_tmp_path, err);
		goto out_unlink;
	}
	fd = -1;
	if (rename(ckpt_tmp_path, ckpt_image_path) < 0) {
		err = errno;
		ckpt_log("cannot rename the image to", ckpt_image_path, err);
		goto out_unlink;
	}
	if (ckpt_verbose)
		ckpt_log("image written to", ckpt_image_path, 0);
	goto out;

out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(ckpt_tmp_path);
out:
	drop_our_sigxfsz(xfsz_before);
	return err;
}

/* The synchronous checkpoint: the program waits until the image is whole. */
static int checkpoint(const ucontext_t *uc, int sig)
{
	struct dump *d = dump_new();
	int err;

	if (!d) {
		ckpt_log("cannot checkpoint: out of memory", NULL, ENOMEM);
		return ENOMEM;
	}
	err = -prepare(d, uc, sig, getpid());
	if (err)
		ckpt_log("cannot read the process's state", NULL, err);
	else
		err = write_checkpoint(d, getpid());
	dump_free(d);
	return err;
}

struct fork_args {
	struct dump *d;
	pid_t self;
	long writer; /* set by the go-between: the writer's pid or -errno */
};

/*
 * The go-between runs in our memory (CLONE_VM) on a stack of its own while
 * we wait (CLONE_VFORK). It forks the writer - the one copy of the page
 * tables we pay for - and exits at once. The writer is then nobody's child
 * to reap: the program sees no SIGCHLD and keeps no zombie.
 */
static int go_between(void *arg)
{
	struct fork_args *fa = arg;
	/* exit signal 0: nobody is told when the writer ends. */
	long pid = syscall(SYS_clone, 0UL, NULL, NULL, NULL, 0UL);

	if (pid == 0) {
		/* The writer: our memory as it was at the fork, frozen. Its
		 * own session, so a Ctrl-C meant for the program does not cut
		 * the image short. */
		setsid();
		syscall(SYS_exit_group, write_checkpoint(fa->d, fa->self) ? 1 : 0);
	}
	fa->writer = pid < 0 ? -errno : pid;
	return 0;
}

/*
 * Forked checkpointing: a copy-on-write copy of the process writes the
 * image while the program goes on at once; the pause is one fork's worth of
 * page-table copying, plus reading the fd table and process settings.
 */
static int checkpoint_forked(const ucontext_t *uc, int sig, pid_t *writer)
{
	struct fork_args fa = { dump_new(), getpid(), -EAGAIN };
	char *stack = NULL;
	long child;
	int status, err;

	err = fa.d ? -prepare(fa.d, uc, sig, fa.self) : ENOMEM;
	if (!err) {
		stack = own_map(WRITER_STACK);
		err = stack ? 0 : ENOMEM;
	}
	if (!err) {
		child = clone(go_between, stack + WRITER_STACK,
			      CLONE_VM | CLONE_VFORK, &fa);
		if (child < 0) {
			err = errno;
		} else {
			while (syscall(SYS_wait4, child, &status, __WALL,
				       NULL) < 0 &&
			       errno == EINTR)
				;
			if (fa.writer < 0)
				err = (int)-fa.writer;
		}
	}
	if (stack)
		own_unmap(stack, WRITER_STACK);
	if (fa.d)
		dump_free(fa.d);
	if (err) {
		ckpt_log("cannot fork the image writer", NULL, err);
		return err;
	}
	*writer = (pid_t)fa.writer;
	return 0;
}

static void ckpt_handler(int sig, siginfo_t *si, void *ucv)
{
	const ucontext_t *uc = ucv;
	int saved_errno = errno;
	int nthreads;
	long err;

	(void)si;
	ckpt_program_errno = saved_errno;
	/* No buffer of ours exists between checkpoints; a restarted process
	 * inherits the list as it was in the middle of writing its image. */
	ckpt_nr_own = 0;
	/* After a syscall instruction rcx holds the return address: rax ==
	 * -EINTR there means we cut a non-restartable call short. */
	if (uc->uc_mcontext.gregs[REG_RAX] == -EINTR &&
	    uc->uc_mcontext.gregs[REG_RCX] == uc->uc_mcontext.gregs[REG_RIP])
		ckpt_eintr_gen++;
	nthreads = thread_count();
	if (nthreads != 1) {
		ckpt_log("refusing to checkpoint: the process has more than one "
			 "thread (only single-threaded programs are supported)",
			 NULL, 0);
		ckpt_image_done(EBUSY, ckpt_image_path, 0);
		errno = saved_errno;
		return;
	}
	if (ckpt_save_resume(&ckpt_resume_ctx) == 0) {
		pid_t writer = 0;

		if (ckpt_fork)
			err = checkpoint_forked(uc, sig, &writer);
		else
			err = checkpoint(uc, sig);
		/* A tracer holding us here sees memory as in the image. */
		errno = saved_errno;
		ckpt_image_done(err, ckpt_image_path, writer);
	}
	/* Both after the checkpoint and after a restart: return through the
	 * kernel's signal frame, which holds every register of the program. */
	errno = saved_errno;
}

/* ---- the program's view of the checkpoint signal ---------------------- */

/*
 * The checkpoint signal belongs to us. A program that installs its own
 * handler for it, or blocks it, is told it succeeded, and reads back what
 * it set; the real disposition and mask stay ours. (Its handler is
 * therefore never called: choose another CKPT_SIGNAL for such programs.)
 */
CKPT_EXPORT int sigaction(int sig, const struct sigaction *act,
			  struct sigaction *old)
{
	if (!real_sigaction)
		real_sigaction = dlsym(RTLD_NEXT, "sigaction");
	if (!ckpt_armed || sig != ckpt_signo)
		return real_sigaction(sig, act, old);
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

	if (!libc_syscall)
		libc_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	va_start(ap, nr);
	for (i = 0; i < 6; i++) /* as glibc's own: six register arguments */
		a[i] = va_arg(ap, long);
	va_end(ap);
	ret = libc_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
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

/* ---- set-up ----------------------------------------------------------- */

/* "12", "USR2", "SIGUSR2", "RTMIN+3" -> signal number, or 0. */
static int parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int num;
	} names[] = {
		{ "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT },
		{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "ALRM", SIGALRM },
		{ "TERM", SIGTERM }, { "PWR", SIGPWR },	  { "URG", SIGURG },
		{ "XCPU", SIGXCPU }, { "WINCH", SIGWINCH },
	};
	char *end;
	long v;
	size_t i;

	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	if (strncmp(s, "RTMIN", 5) == 0) {
		v = s[5] == '+' ? strtol(s + 6, &end, 10) : 0;
		if (s[5] && (s[5] != '+' || *end))
			return 0;
		v += SIGRTMIN;
		return v <= SIGRTMAX ? (int)v : 0;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].num;
	v = strtol(s, &end, 10);
	if (*s && !*end && v > 0 && v <= SIGRTMAX && v != SIGKILL &&
	    v != SIGSTOP)
		return (int)v;
	return 0;
}

__attribute__((constructor)) static void ckpt_init(void)
{
	const char *image = getenv("CKPT_IMAGE");
	const char *signame = getenv("CKPT_SIGNAL");
	const char *flag;
	struct sigaction act;

	real_sigaction = dlsym(RTLD_NEXT, "sigaction");
	real_sigprocmask = dlsym(RTLD_NEXT, "sigprocmask");
	libc_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	real_pthread_sigmask = dlsym(RTLD_NEXT, "pthread_sigmask");
	if (!real_sigaction || !real_sigprocmask || !real_pthread_sigmask) {
		ckpt_log("cannot find libc's signal functions; not armed", NULL, 0);
		return;
	}
	if (!image || !*image)
		image = "myckpt";
	if (strlen(image) >= sizeof(ckpt_image_path)) {
		ckpt_log("CKPT_IMAGE is too long; not armed", NULL, 0);
		return;
	}
	strcpy(ckpt_image_path, image);
	if (signame && *signame) {
		ckpt_signo = parse_signal(signame);
		if (!ckpt_signo) {
			ckpt_log("CKPT_SIGNAL is not a signal name or number "
				 "(try USR2 or RTMIN+3); not armed:",
				 signame, 0);
			return;
		}
	}
	flag = getenv("CKPT_FSYNC");
	ckpt_fsync = flag && *flag && *flag != '0';
	flag = getenv("CKPT_VERBOSE");
	ckpt_verbose = flag && *flag && *flag != '0';
	flag = getenv("CKPT_FORK");
	ckpt_fork = flag && *flag && *flag != '0';

	memset(&act, 0, sizeof(act));
	act.sa_sigaction = ckpt_handler;
	act.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&act.sa_mask);
	if (real_sigaction(ckpt_signo, &act, NULL) < 0) {
		ckpt_log("cannot install the checkpoint signal handler", NULL,
			 errno);
		return;
	}
	ckpt_prog_action.sa_handler = SIG_DFL;
	ckpt_armed = 1;
}
