/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libckpt.h - what the files of libckpt.so share (not the image format:
 * that is ckpt_image.h). libckpt.so is built from:
 *
 *   libckpt.c     the checkpoint's control flow: the signal handler, the
 *                 synchronous and forked checkpoint, the resume point that a
 *                 restart returns through, and the constructor
 *   dump_mem.c    which memory to store: /proc/self/smaps into regions,
 *                 PAGEMAP_SCAN into runs of pages
 *   dump_filehash.c  the content hash of each file mapping (restart
 *                 elsewhere: the same bytes under another inode)
 *   dump_proc.c   the state the kernel holds: registers, handlers, mm layout,
 *                 rseq, limits, timers, pending signals, open files
 *   dump_check.c  the image read back and validated before it is published
 *   dump_write.c  the writer: data (checksummed on a second core), tables
 *                 and header into a temporary file, renamed into place
 *   interpose.c   the program's view of the checkpoint signal (sigaction,
 *                 signal, sigprocmask...) and syscall() for rseq
 *   periodic.c    CKPT_INTERVAL: the timer of periodic checkpoints
 *   eintr.c       calls a handler always interrupts, retried after ours
 *   ckpt_util.c   async-signal-safe logging, I/O and parsing helpers
 *
 * Everything here is hidden (-fvisibility=hidden): only the interposed libc
 * functions and ckpt_image_done are exported.
 */
#ifndef LIBCKPT_H
#define LIBCKPT_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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
#include <sys/uio.h>
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

/* ---- settings, from the environment at start-up (libckpt.c) ---------- */

extern int ckpt_signo;
extern int ckpt_fsync;
extern int ckpt_exit_after;
extern int ckpt_fork;
extern int ckpt_verbose;
extern char ckpt_image_path[PATH_MAX];

/*
 * The program's errno when the signal came. Our own failing calls change
 * errno while we write; putting it back before each write keeps the image's
 * TLS page as the program had it.
 */
extern int ckpt_program_errno;

/* PR_GET_DUMPABLE as the program had it (libckpt.c, dumpable_for_checkpoint). */
extern int ckpt_prog_dumpable;

/*
 * Bumped each time the checkpoint signal interrupts a system call that the
 * kernel will not restart (poll, select, nanosleep... fail with EINTR even
 * under SA_RESTART). The wrappers in eintr.c retry those calls.
 */
extern volatile unsigned ckpt_eintr_gen;

/*
 * Bumped by every run of the handler: a blocking write() it cut short is
 * finished by the wrapper in eintr.c. ckpt_eintr_init() finds libc's
 * write functions (from the constructor, not the handler).
 */
extern volatile unsigned ckpt_signal_gen;
void ckpt_eintr_init(void);

/* ---- the resume point (libckpt.c) ------------------------------------ */

/*
 * The resume point. Its layout is fixed by the assembly in libckpt.c. It
 * lives in our .bss, so it is inside the image: the restarter only needs
 * its address.
 */
struct ckpt_resume_ctx {
	uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rip;
	uint32_t mxcsr;
	uint16_t fpu_cw;
	uint16_t pad;
};
extern struct ckpt_resume_ctx ckpt_resume_ctx;
void ckpt_restart_entry(void);

/*
 * The image this process was restarted from, if it was: myrestart maps the
 * image's larger runs of anonymous memory straight from that file
 * (copy-on-write). Such mappings are the program's anonymous memory, not a
 * file it mapped: a later checkpoint must store them whole, never point
 * back at the old image.
 */
struct ckpt_image_id {
	uint64_t dev, ino;
};
extern struct ckpt_image_id ckpt_mapped_image;

/*
 * ckpt_image_done's marker: getpid() with these in r8 and r9 (getpid ignores
 * its arguments). extckpt attach recognises it at its syscall-entry stop;
 * extckpt/attach.py holds the same values.
 */
#define CKPT_DONE_MARK1 0x6578746370745f64ULL /* "extcpt_d" */
#define CKPT_DONE_MARK2 0x6f6e655f6d61726bULL /* "one_mark" */

void ckpt_image_done(long err, const char *path, long writer, uint64_t stamp);

/* ---- the program's own signal and rseq settings (interpose.c) -------- */

extern int ckpt_armed;
extern int (*ckpt_real_sigaction)(int, const struct sigaction *,
				  struct sigaction *);
/* libc's syscall(), for our own rseq probes: ours would record them. */
extern long (*ckpt_libc_syscall)(long, ...);

/*
 * The rseq area the program registered itself through syscall(2), if it
 * did: glibc registers one per thread, but a program or runtime may
 * unregister it and register its own (see syscall() in interpose.c).
 */
struct ckpt_prog_rseq {
	int known;     /* the program made an rseq call of its own */
	uint64_t addr; /* 0: it unregistered */
	uint32_t len, sig;
};
extern struct ckpt_prog_rseq ckpt_prog_rseq;

/* The program asked for MADV_DONTFORK or MADV_WIPEONFORK (interpose.c). */
extern int ckpt_fork_blind;

/* Find libc's functions that we stand in front of; -1 if one is missing. */
int ckpt_interpose_init(void);

/* ---- our own buffers (ckpt_util.c) ----------------------------------- */

/*
 * Our own buffers of the checkpoint in progress (the dump, its tables, the
 * forked writer's stack...). They are never part of an image: each region
 * is clipped against them, as they may have merged with a program mapping.
 */
#define MAX_OWN 8
struct ckpt_own_range {
	uint64_t lo, hi;
};
extern struct ckpt_own_range ckpt_own[MAX_OWN];
extern int ckpt_nr_own;

void *scratch_map(size_t len);
/* A scratch buffer that exists while /proc/self/maps is read: excluded. */
void *own_map(size_t len);
void own_unmap(void *p, size_t len);
/* Grow an own_map buffer (it may move); -ENOMEM, p unchanged, if it cannot. */
int own_remap(void **p, size_t len, size_t new_len);

/* ---- async-signal-safe logging and I/O (ckpt_util.c) ----------------- */

struct logbuf {
	char buf[768];
	size_t len;
};

void lb_str(struct logbuf *lb, const char *s);
void lb_num(struct logbuf *lb, unsigned long long v);
/* "libckpt: <what>[ <path>][: <strerror(err)>]\n" on stderr. */
void ckpt_log(const char *what, const char *path, int err);
/* Write all of buf at off, or at the file offset if off < 0; -errno. */
int write_full(int fd, const void *buf, size_t len, off_t off);
int write_all(int fd, const void *buf, size_t len);
/* Read a whole (proc) file into buf; returns its length or -errno. */
ssize_t read_file(const char *path, char *buf, size_t size);
const char *parse_hex(const char *p, uint64_t *out);
const char *parse_dec(const char *p, uint64_t *out);
int64_t ts_ns(const struct timespec *ts);

/* ---- the dump: one checkpoint in progress ------------------------------ */

/*
 * The checksum runs on the second core while the first writes (see
 * dump_write.c); this is the hand-over between the writer and that thread.
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

/*
 * Everything the handler builds lives in scratch mappings, not the heap.
 * The dump, its strings and its fd table are made before a forked writer
 * exists (they describe the instant of the checkpoint); the rest is made by
 * whoever writes the image.
 */
/*
 * Buffers are sized to the process, not to the largest one: each costs
 * address space, which a program near its RLIMIT_AS lacks. The strings grow
 * (mremap) until /proc/self/smaps is read, and are then given room for
 * every name in it (ensure_strings); the fd table is counted first.
 */
#define STRINGS_START (64UL << 10)
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
	size_t strings_len, strings_cap;
	int strings_fixed; /* smaps was read: the buffer may not move */
	int nomem;	   /* a string did not fit */
	struct ckpt_run *runs;
	size_t nr_runs, runs_cap;
	struct ckpt_fd *fds;
	size_t nr_fds, fds_cap;
	struct ckpt_timer timers[MAX_TIMERS];
	size_t nr_timers;
	struct ckpt_signal signals[MAX_SIGNALS];
	size_t nr_signals;
	char timers_text[32768]; /* /proc/self/timers */
	char *bounce; /* WRITE_CHUNK bytes: copies of our own, moving stack */
	char *hashbuf; /* CKPT_HASH_PIECE bytes: file mappings' content hashes */
	unsigned char *mincore_vec; /* MINCORE_CHUNK: shared memory's pages */
	struct hasher hasher;
	struct page_region *scan; /* PAGEMAP_SCAN output */
	size_t scan_cap;
	int pagemap_fd;
	uint64_t self_ino; /* libckpt.so's inode, to flag its mappings */
	struct ckpt_header hdr;
};

#define MINCORE_CHUNK (64UL << 10) /* pages per mincore() call */

struct dump *dump_new(void);
void dump_free(struct dump *d);
uint32_t add_string(struct dump *d, const char *s, size_t len);
/* Room for len more bytes of strings, made before smaps is read. */
int ensure_strings(struct dump *d, size_t len);

/* dump_proc.c: what must be taken at the instant of the checkpoint, before
 * any fork; the number of threads of the process. */
int prepare(struct dump *d, const ucontext_t *uc, int sig, pid_t pid);
int thread_count(void);

/* dump_mem.c: the memory map and the pages to store (in the writer). */
int collect_memory(struct dump *d);

/* dump_filehash.c: what identifies the bytes of a file mapping. */
void ckpt_hash_mapping(struct dump *d, struct ckpt_region *r, const char *path);

/* periodic.c: CKPT_INTERVAL, a checkpoint every so many seconds. */
void ckpt_periodic_init(const char *value);
void ckpt_periodic_arm(void);
void ckpt_periodic_restarted(void);
int ckpt_periodic_is_ours(int timer_id);

/* dump_check.c: the image in fd, checked as myrestart would check it. */
int ckpt_self_check(int fd, const struct ckpt_header *h);

/* dump_write.c: write the image of d to a new file of ours, rename it. */
int write_checkpoint(struct dump *d);

#endif /* LIBCKPT_H */
