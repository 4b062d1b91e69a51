/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * restore_proc.c - the program's open files and process settings, put back
 * by myrestart before its point of no return: a file that changed is still
 * a polite refusal here, not a crash later.
 *
 * Files are opened first at numbers above all of the program's (so nothing
 * is clobbered while there is still a chance to fail), then moved to their
 * own numbers as the very last step before the jump.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "restore_proc.h"

/* Status flags worth asking open() for again (F_GETFL also reports the
 * access mode and O_LARGEFILE, which open() takes as they are). */
#define REOPEN_FLAGS                                                        \
	(O_ACCMODE | O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME | \
	 O_SYNC | O_DSYNC | O_LARGEFILE)

static const char *fd_type_name(uint32_t type)
{
	switch (type) {
	case CKPT_FD_PIPE:
		return "a pipe";
	case CKPT_FD_SOCKET:
		return "a socket";
	case CKPT_FD_CHAR:
		return "a terminal or device";
	default:
		return "a kernel object (eventfd, epoll...)";
	}
}

int ckpt_fd_floor(const unsigned char *img)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_fd *fds = (const void *)(img + h->fds_offset);

	/* Sorted: the last is the highest. Keep 0-2 free in any case. */
	if (h->nr_fds && fds[h->nr_fds - 1].fd >= 3)
		return fds[h->nr_fds - 1].fd + 1;
	return 3;
}

int ckpt_fd_above(int fd, int floor)
{
	int moved;

	if (fd < 0 || fd >= floor)
		return fd;
	moved = fcntl(fd, F_DUPFD_CLOEXEC, floor);
	if (moved < 0)
		ckpt_die(CKPT_EXIT_RESOURCE,
			 "cannot move a file descriptor above %d: %s", floor,
			 strerror(errno));
	close(fd);
	return moved;
}

static void fd_path(const unsigned char *img, const struct ckpt_fd *f,
		    char *buf, size_t size)
{
	const struct ckpt_header *h = (const void *)img;
	size_t n = f->path_len < size - 1 ? f->path_len : size - 1;

	memcpy(buf, img + h->strings_offset + f->path_offset, n);
	buf[n] = '\0';
}

static const char *file_type_name(mode_t mode)
{
	return S_ISFIFO(mode) ? "a FIFO" :
	       S_ISDIR(mode)  ? "a directory" :
	       S_ISSOCK(mode) ? "a socket" :
	       S_ISCHR(mode)  ? "a character device" :
	       S_ISBLK(mode)  ? "a block device" : "not a regular file";
}

int ckpt_open_nowait(const char *path, int flags, struct stat *st)
{
	int fd = open(path, O_PATH | O_CLOEXEC), fl;

	/* A FIFO or socket: only looked at (its O_PATH fd), never opened. */
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0)
		goto fail;
	if (!S_ISREG(st->st_mode) && !S_ISCHR(st->st_mode) &&
	    !S_ISBLK(st->st_mode))
		return fd;
	close(fd);
	/* Swapped for a FIFO meanwhile: O_NONBLOCK still does not wait. */
	fd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0)
		goto fail;
	if (!(flags & O_NONBLOCK)) {
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			goto fail;
	}
	return fd;
fail:
	fl = errno;
	close(fd);
	errno = fl;
	return -1;
}

void ckpt_need_regular(const char *path, const struct stat *st,
		       const char *what)
{
	if (!S_ISREG(st->st_mode))
		ckpt_die(CKPT_EXIT_FILES,
			 "%s (%s) is %s now, not a regular file: put the file "
			 "back to restart",
			 path, what, file_type_name(st->st_mode));
}

/* A regular file: same inode, and not cut below where the program was. */
static int reopen_file(const struct ckpt_fd *f, const char *path,
		       const struct restore_opts *o)
{
	struct stat st;
	char what[64];
	int fd = ckpt_open_nowait(path, (int)(f->flags & REOPEN_FLAGS), &st);

	if (fd < 0)
		ckpt_die(CKPT_EXIT_FILES,
			 "cannot reopen %s (the program's fd %d): %s; restore "
			 "the file, or restart with --force-files to go on "
			 "without it",
			 path, f->fd, strerror(errno));
	snprintf(what, sizeof(what), "the program's fd %d", f->fd);
	ckpt_need_regular(path, &st, what);
	if (((uint64_t)st.st_dev != f->dev || (uint64_t)st.st_ino != f->ino) &&
	    !o->force_files)
		ckpt_die(CKPT_EXIT_FILES,
			 "%s (the program's fd %d) was replaced by another file "
			 "since the checkpoint; restart with --force-files to "
			 "use the new one",
			 path, f->fd);
	if ((uint64_t)st.st_size < f->pos && !o->force_files)
		ckpt_die(CKPT_EXIT_FILES,
			 "%s (the program's fd %d) was truncated to %lld bytes, "
			 "below the program's offset %llu; restart with "
			 "--force-files to go on anyway",
			 path, f->fd, (long long)st.st_size,
			 (unsigned long long)f->pos);
	if (lseek(fd, (off_t)f->pos, SEEK_SET) < 0 && errno != ESPIPE)
		ckpt_die(CKPT_EXIT_FILES, "cannot seek in %s: %s", path,
			 strerror(errno));
	return fd;
}

/*
 * A file deleted while open: make a new unnamed one (O_TMPFILE) with the
 * saved contents, in the directory it was in if that still exists.
 */
static int recreate_ghost(const unsigned char *img, const struct ckpt_fd *f,
			  const char *path)
{
	static const char deleted[] = " (deleted)";
	char dir[4096], proc[64];
	size_t len = strlen(path), done;
	int fd, reopened;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if (len >= sizeof(deleted) - 1 &&
	    !strcmp(dir + len - (sizeof(deleted) - 1), deleted))
		dir[len - (sizeof(deleted) - 1)] = '\0';
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, f->mode & 07777);
	if (fd < 0)
		fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, f->mode & 07777);
	if (fd < 0)
		ckpt_die(CKPT_EXIT_FILES,
			 "cannot recreate the deleted file %s (the program's fd "
			 "%d): %s",
			 path, f->fd, strerror(errno));
	for (done = 0; done < f->size;) {
		ssize_t n = write(fd, img + f->data_offset + done, f->size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			ckpt_die(CKPT_EXIT_FILES,
				 "cannot recreate the deleted file %s: %s", path,
				 n < 0 ? strerror(errno) : "short write");
		done += (size_t)n;
	}
	/* Now with the program's own access mode and flags. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	reopened = open(proc, (int)(f->flags & REOPEN_FLAGS) | O_CLOEXEC);
	if (reopened < 0)
		ckpt_die(CKPT_EXIT_FILES, "cannot reopen the recreated %s: %s",
			 path, strerror(errno));
	close(fd);
	if (lseek(reopened, (off_t)f->pos, SEEK_SET) < 0)
		ckpt_die(CKPT_EXIT_FILES, "cannot seek in the recreated %s: %s",
			 path, strerror(errno));
	return reopened;
}

/* A device: the same one by its path, if it is still there. */
static int reopen_char(const struct ckpt_fd *f, const char *path)
{
	struct stat st;
	int fd = ckpt_open_nowait(path, (int)(f->flags & REOPEN_FLAGS), &st);

	if (fd >= 0 && (!S_ISCHR(st.st_mode) || (uint64_t)st.st_rdev != f->rdev)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int placeholder(const struct ckpt_fd *f, const char *path)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	fprintf(stderr,
		"myrestart: the program's fd %d was %s (%s), which cannot be "
		"restored; it is /dev/null now\n",
		f->fd, fd_type_name(f->type), path);
	if (fd < 0)
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot open /dev/null: %s",
			 strerror(errno));
	return fd;
}

struct fd_plan *ckpt_prepare_fds(const unsigned char *img, int floor,
				 const struct restore_opts *o)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_fd *fds = (const void *)(img + h->fds_offset);
	struct fd_plan *plan = calloc(1, sizeof(*plan) +
					       h->nr_fds * sizeof(plan->src[0]));
	uint64_t i;

	if (!plan)
		ckpt_die(CKPT_EXIT_RESOURCE, "out of memory");
	plan->nr = h->nr_fds;
	for (i = 0; i < h->nr_fds; i++) {
		const struct ckpt_fd *f = &fds[i];
		char path[4096];
		int fd = -1;

		fd_path(img, f, path, sizeof(path));
		if (f->fd <= 2 && o->keep_stdio) {
			plan->src[i] = KEEP_OURS;
			continue;
		}
		switch (f->type) {
		case CKPT_FD_FILE:
			fd = reopen_file(f, path, o);
			break;
		case CKPT_FD_DIR:
			fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd >= 0)
				lseek(fd, (off_t)f->pos, SEEK_SET);
			else
				fd = placeholder(f, path);
			break;
		case CKPT_FD_GHOST:
			fd = recreate_ghost(img, f, path);
			break;
		case CKPT_FD_CHAR:
			/* A terminal at 0-2: this one, where the user is now. */
			if (f->fd <= 2 && strcmp(path, "/dev/null")) {
				plan->src[i] = KEEP_OURS;
				continue;
			}
			fd = reopen_char(f, path);
			if (fd < 0)
				fd = placeholder(f, path);
			break;
		default:
			/* Pipes and sockets at 0-2 become ours: the usual case of
			 * a program started in a pipeline. */
			if (f->fd <= 2) {
				if (o->verbose)
					fprintf(stderr,
						"myrestart: the program's fd %d "
						"was %s (%s); it is this "
						"process's fd %d now\n",
						f->fd, fd_type_name(f->type),
						path, f->fd);
				plan->src[i] = KEEP_OURS;
				continue;
			}
			fd = placeholder(f, path);
			break;
		}
		plan->src[i] = ckpt_fd_above(fd, floor);
	}
	return plan;
}

void ckpt_install_fds(const unsigned char *img, struct fd_plan *plan,
		      const int *keep, int nr_keep)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_fd *fds = (const void *)(img + h->fds_offset);
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	uint64_t i;
	int k;

	if (!dir)
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot list /proc/self/fd: %s",
			 strerror(errno));
	/* Close what we inherited and the program did not have open. */
	while ((de = readdir(dir))) {
		int fd = atoi(de->d_name), wanted = 0;

		if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
		    fd == dirfd(dir))
			continue;
		for (k = 0; k < nr_keep && !wanted; k++)
			wanted = keep[k] == fd;
		for (i = 0; i < plan->nr && !wanted; i++)
			wanted = plan->src[i] == fd ||
				 (fds[i].fd == fd && plan->src[i] == KEEP_OURS);
		if (!wanted)
			close(fd);
	}
	closedir(dir);
	for (i = 0; i < plan->nr; i++) {
		int flags = fds[i].cloexec ? O_CLOEXEC : 0;

		if (plan->src[i] == KEEP_OURS) {
			fcntl(fds[i].fd, F_SETFD, fds[i].cloexec ? FD_CLOEXEC : 0);
			continue;
		}
		if (dup3(plan->src[i], fds[i].fd, flags) < 0)
			ckpt_die(CKPT_EXIT_RESOURCE,
				 "cannot put the program's fd %d in place: %s",
				 fds[i].fd, strerror(errno));
		close(plan->src[i]);
	}
}

/*
 * Raising oom_score_adj is allowed to anyone; lowering it below what we
 * have needs CAP_SYS_RESOURCE: then say so, and go on with ours.
 */
static void restore_oom_score_adj(int32_t want)
{
	char buf[16];
	int fd, n;

	if (want < -1000 || want > 1000)
		return;
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%d", (int)want);
	if (write(fd, buf, (size_t)n) != n && errno == EACCES)
		fprintf(stderr,
			"myrestart: cannot lower oom_score_adj to %d (that needs "
			"CAP_SYS_RESOURCE); the program keeps this one\n",
			(int)want);
	close(fd);
}

void ckpt_restore_settings(const unsigned char *img)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_proc *p = &h->proc;
	char cwd[4096], comm[17];

	if (p->cwd_len) {
		size_t n = p->cwd_len < sizeof(cwd) - 1 ? p->cwd_len :
							  sizeof(cwd) - 1;

		memcpy(cwd, img + h->strings_offset + p->cwd_offset, n);
		cwd[n] = '\0';
		if (chdir(cwd) < 0)
			fprintf(stderr,
				"myrestart: cannot return to the program's "
				"directory %s (%s); it stays in this one\n",
				cwd, strerror(errno));
	}
	umask((mode_t)p->umask);
	memcpy(comm, p->comm, 16);
	comm[16] = '\0';
	if (comm[0])
		prctl(PR_SET_NAME, comm);
	if (p->thp_disable > 0)
		prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	if (p->dumpable == 0 || p->dumpable == 1)
		prctl(PR_SET_DUMPABLE, p->dumpable, 0, 0, 0);
	if (p->no_new_privs > 0)
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (p->timerslack_ns)
		prctl(PR_SET_TIMERSLACK, p->timerslack_ns, 0, 0, 0);
	restore_oom_score_adj(p->oom_score_adj);
}

#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)

void ckpt_restore_own_settings(const unsigned char *img)
{
	const struct ckpt_proc *p = &((const struct ckpt_header *)img)->proc;
	uint32_t bit;

	if (p->child_subreaper > 0 &&
	    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		fprintf(stderr,
			"myrestart: cannot make the program a child subreaper "
			"again: %s\n",
			strerror(errno));
	/* Each REGISTER_* command the program had made, made again for this
	 * mm (registrations belong to the address space, not inherited). */
	for (bit = 1; bit && bit < MEMBARRIER_CMD_GET_REGISTRATIONS; bit <<= 1)
		if ((p->membarrier & bit) &&
		    syscall(SYS_membarrier, bit, 0, 0) < 0)
			fprintf(stderr,
				"myrestart: cannot register membarrier command "
				"%#x again: %s\n",
				bit, strerror(errno));
}

/* Die the way the program died, so our parent (a shell, make) sees it. */
__attribute__((noreturn)) static void die_like(int sig)
{
	sigset_t one;

	signal(sig, SIG_DFL);
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	raise(sig);
	_exit(128 + sig);
}

/*
 * The parent's whole life: signals sent to our pid go on to the program
 * (those the terminal sent to the whole process group reached it already);
 * its stop stops us too, so that a shell's job control sees it; its exit
 * status or fatal signal becomes ours. Every signal is blocked (main()).
 */
__attribute__((noreturn)) static void supervise(pid_t child)
{
	sigset_t all;

	sigfillset(&all);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si), status;
		pid_t r;

		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			if (si.si_code != SI_KERNEL)
				kill(child, sig);
			continue;
		}
		while ((r = waitpid(child, &status, WNOHANG | WUNTRACED)) == child) {
			if (WIFEXITED(status))
				_exit(WEXITSTATUS(status));
			if (WIFSIGNALED(status))
				die_like(WTERMSIG(status));
			if (WIFSTOPPED(status))
				raise(SIGSTOP);
		}
	}
}

void ckpt_claim_pid(const unsigned char *img, const struct restore_opts *o)
{
	const struct ckpt_header *h = (const void *)img;
	pid_t want = h->pid, tid[1] = { h->pid };
	struct clone_args args;
	long child;

	pid_t self = getpid();

	if (o->pid_mode == PID_NEVER || want == self)
		return;
	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)tid;
	args.set_tid_size = 1;
	/* Needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) and a free pid. */
	child = syscall(SYS_clone3, &args, sizeof(args));
	if (child == 0) {
		/* The program-to-be, under its own pid. Whoever kills its
		 * parent (SIGKILL cannot be passed on) means to kill it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != self)
			_exit(128 + SIGKILL);
		return;
	}
	if (child < 0) {
		const char *why = errno == EEXIST ? "it is in use" :
				  errno == EPERM ? "that needs CAP_CHECKPOINT_RESTORE" :
						   strerror(errno);

		if (o->pid_mode == PID_REQUIRE)
			ckpt_die(CKPT_EXIT_PID,
				 "cannot restart as pid %d: %s (--pid=require)",
				 want, why);
		fprintf(stderr,
			"myrestart: cannot restart as pid %d (%s); the program "
			"goes on as pid %d\n",
			want, why, getpid());
		return;
	}
	if (o->verbose)
		fprintf(stderr, "myrestart: the program is back as pid %d\n",
			want);
	/* Hold nothing of the program's: a pipe we kept open would never
	 * see its end. */
	syscall(SYS_close_range, 0U, ~0U, 0U);
	supervise((pid_t)child);
}
