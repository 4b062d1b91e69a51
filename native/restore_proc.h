/* SPDX-License-Identifier: GPL-2.0-or-later */
/* restore_proc.h - fds and process settings, restored before the jump. */
#ifndef RESTORE_PROC_H
#define RESTORE_PROC_H

#include "ckpt_image.h"

enum pid_mode { PID_TRY, PID_NEVER, PID_REQUIRE };

struct restore_opts {
	enum pid_mode pid_mode; /* restore under the original pid? */
	int keep_stdio;  /* fds 0-2: this process's, whatever they were */
	int force_files; /* go on when an open file was replaced or cut */
	int any_owner;   /* restart an image of another user, or writable by others */
	int verbose;
};

#define KEEP_OURS (-2) /* the fd is myrestart's own one with that number */

struct fd_plan {
	uint64_t nr;
	int src[]; /* per saved fd: where it is open now, or KEEP_OURS */
};

/* myrestart's error exit: one line, a CKPT_EXIT_* status. */
__attribute__((noreturn, format(printf, 2, 3))) void ckpt_die(int status,
							       const char *fmt,
							       ...);

/*
 * Open path without waiting: open() of a FIFO put where a file was would
 * wait for the other end. A FIFO or socket gets an O_PATH fd only (check
 * st before use); anything else is opened with O_NONBLOCK, then given the
 * flags asked for. st is its fstat. Returns the fd, or -1 with errno.
 */
struct stat;
int ckpt_open_nowait(const char *path, int flags, struct stat *st);
/* Die with CKPT_EXIT_FILES unless st is a regular file; what: "the
 * program's fd 3", "mapped at 0x...", "the executable". */
void ckpt_need_regular(const char *path, const struct stat *st,
		       const char *what);

/* Lowest fd number above all of the program's. */
int ckpt_fd_floor(const unsigned char *img);
/* Move fd to a number >= floor (close-on-exec); returns it. */
int ckpt_fd_above(int fd, int floor);
/* Open every saved fd at a number >= floor; dies politely on a change. */
struct fd_plan *ckpt_prepare_fds(const unsigned char *img, int floor,
				 const struct restore_opts *o);
/* Close the rest but keep[], then move each fd to its number. */
void ckpt_install_fds(const unsigned char *img, struct fd_plan *plan,
		      const int *keep, int nr_keep);
/* Directory, umask, name, prctl settings, oom_score_adj. */
void ckpt_restore_settings(const unsigned char *img);
/* What a fork does not inherit, in the process that becomes the program:
 * the child subreaper flag, membarrier registrations. */
void ckpt_restore_own_settings(const unsigned char *img);
/*
 * Fork the process that becomes the program, under its original pid when
 * that can be had. Returns in that process only; myrestart itself stays as
 * its parent, forwarding signals and, at the end, its exit status.
 */
void ckpt_claim_pid(const unsigned char *img, const struct restore_opts *o);

#endif /* RESTORE_PROC_H */
