/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libckpt.c - the checkpoint half of extckpt, preloaded into the program:
 *
 *   LD_PRELOAD=/abs/path/libckpt.so ./prog      then   kill -USR2 <pid>
 *
 * This file holds the control flow (the other files: see libckpt.h). The
 * constructor installs a handler for the checkpoint signal. The handler
 * saves a resume point (ckpt_save_resume, a setjmp of our own), then has
 * every mapping's bytes that a restart needs written into a temporary file
 * that is renamed into place, by itself or by a forked copy of the process.
 * myrestart later maps that memory back and jumps to ckpt_restart_entry,
 * which makes ckpt_save_resume return a second time, with 1: the handler
 * returns, and the kernel's own signal frame, restored with the stack, gives
 * the program back every register (vector state included) and its signal
 * mask through rt_sigreturn.
 *
 * We are a guest in someone else's process: the handler uses only
 * async-signal-safe calls (no stdio, no malloc), everything but the
 * interposed libc functions is hidden, and errno is left as we found it.
 */
#include "libckpt.h"

/* ---- settings, from the environment at start-up ---------------------- */

int ckpt_signo = SIGUSR2;
int ckpt_fsync;
int ckpt_exit_after;
int ckpt_fork;
int ckpt_verbose;
char ckpt_image_path[PATH_MAX];
int ckpt_program_errno;
volatile unsigned ckpt_eintr_gen;
volatile unsigned ckpt_signal_gen;

/*
 * Only the process libckpt was started for writes its image. Its children
 * inherit LD_PRELOAD and CKPT_IMAGE, and a signal to the process group
 * reaches them too: they must neither write over its image nor die of the
 * signal. The first process marks the environment with its pid; a process
 * that finds another pid there descends from it (exec), and one whose pid
 * is not the owner's was forked from it. The mark lives in our memory, so
 * that a restart under another pid can put the new one in place.
 */
#define OWNER_VAR "CKPT_OWNER_PID"
static char ckpt_owner_env[sizeof(OWNER_VAR "=") + 12] = OWNER_VAR "=";
static pid_t ckpt_owner;

/* ---- the resume point ------------------------------------------------- */

struct ckpt_resume_ctx ckpt_resume_ctx;
struct ckpt_image_id ckpt_mapped_image;

int ckpt_save_resume(struct ckpt_resume_ctx *ctx) __attribute__((returns_twice));

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
 * Called when the image at path is complete (err == 0) or the checkpoint
 * failed with errno err, while the process is still inside the handler, its
 * memory as in the image. With forked checkpointing (CKPT_FORK=1), writer is
 * the pid of the process still writing the image (a copy of this one, frozen
 * at the fork), else 0; stamp is the image's created_ns, so that a tracer
 * can tell this checkpoint's image from an older one left at the path.
 *
 * It tells a tracer (extckpt attach, which runs us with PTRACE_SYSCALL during
 * the checkpoint) by one marker system call, getpid() with the arguments in
 * registers: no breakpoint stays armed in us, so a tracer that dies at any
 * instant leaves nothing behind - the kernel detaches us and the call just
 * runs. Why getpid and not an unknown number that fails with ENOSYS: a
 * seccomp filter inherited from a sandbox may kill the process for an
 * unknown call; every filter lets a process ask its own pid.
 */
CKPT_EXPORT __attribute__((noinline)) void ckpt_image_done(long err,
							    const char *path,
							    long writer,
							    uint64_t stamp)
{
	register long r10 __asm__("r10") = (long)stamp;
	register long r8 __asm__("r8") = (long)CKPT_DONE_MARK1;
	register long r9 __asm__("r9") = (long)CKPT_DONE_MARK2;
	long ret = SYS_getpid;

	__asm__ volatile("syscall"
			 : "+a"(ret)
			 : "D"(err), "S"(path), "d"(writer), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "rcx", "r11", "memory");
}

/* ---- one checkpoint ---------------------------------------------------- */

struct dump *dump_new(void)
{
	struct dump *d = own_map(sizeof(*d));

	if (!d)
		return NULL;
	d->pagemap_fd = -1;
	d->strings = own_map(STRINGS_START);
	d->strings_cap = STRINGS_START;
	return d;
}

void dump_free(struct dump *d)
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
	if (d->hashbuf)
		munmap(d->hashbuf, CKPT_HASH_PIECE);
	if (d->mincore_vec)
		munmap(d->mincore_vec, MINCORE_CHUNK);
	if (d->pagemap_fd >= 0)
		close(d->pagemap_fd);
	if (d->strings)
		own_unmap(d->strings, d->strings_cap);
	if (d->fds)
		own_unmap(d->fds, d->fds_cap * sizeof(*d->fds));
	own_unmap(d, sizeof(*d));
}


/* The synchronous checkpoint: the program waits until the image is whole. */
static int checkpoint(const ucontext_t *uc, int sig, uint64_t *stamp)
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
		err = write_checkpoint(d);
	*stamp = d->hdr.created_ns;
	dump_free(d);
	return err;
}

/*
 * The last forked writer, so that the next one can wait for it: its pid and
 * its start time (field 22 of /proc/PID/stat), which tells it from a later
 * process that got the same pid. Set by the go-between, in our memory.
 */
static struct {
	pid_t pid;
	uint64_t start;
} ckpt_last_writer;

/* A process's start time in clock ticks since boot; 0 if it is gone. */
static uint64_t start_time(pid_t pid)
{
	struct logbuf lb = { .len = 0 };
	char buf[1024];
	uint64_t v = 0;
	ssize_t len;
	char *p;
	int field;

	lb_str(&lb, "/proc/");
	lb_num(&lb, (unsigned)pid);
	lb_str(&lb, "/stat");
	lb.buf[lb.len] = '\0';
	len = read_file(lb.buf, buf, sizeof(buf) - 1);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return 0;
	for (field = 2, p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	parse_dec(p, &v);
	return v;
}

/*
 * A pidfd of the last forked writer if it is still running, else -1. Open
 * it first, then check the start time: if the pid was taken by another
 * process in between, ours is gone anyway.
 */
static int last_writer_pidfd(void)
{
	int fd;

	if (!ckpt_last_writer.pid)
		return -1;
	fd = (int)syscall(SYS_pidfd_open, ckpt_last_writer.pid, 0);
	if (fd < 0)
		return -1;
	if (start_time(ckpt_last_writer.pid) != ckpt_last_writer.start) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Until the process of pidfd has exited (it is nobody's child of ours). */
static void wait_pidfd(int pidfd)
{
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

	while (syscall(SYS_ppoll, &pfd, 1UL, NULL, NULL, 0UL) < 0 &&
	       errno == EINTR)
		;
	close(pidfd);
}

struct fork_args {
	struct dump *d;
	int last_writer; /* pidfd of the writer before, or -1 */
	long writer; /* set by the go-between: the writer's pid or -errno */
};

/*
 * The go-between runs in our memory (CLONE_VM) on a stack of its own while
 * we wait (CLONE_VFORK). It forks the writer - the one copy of the page
 * tables we pay for - and exits at once. The writer is then nobody's child
 * to reap: the program sees no SIGCHLD and keeps no zombie.
 *
 * Writers take turns: a writer first waits until the one before it has
 * exited, so that images are written one at a time, in the order of the
 * signals, and the last image renamed into place is the newest. The wait
 * happens in the writer, not in the program, whose pause stays one fork;
 * each waiting writer holds the pages the program changes meanwhile.
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
		if (fa->last_writer >= 0)
			wait_pidfd(fa->last_writer);
		syscall(SYS_exit_group, write_checkpoint(fa->d) ? 1 : 0);
	}
	fa->writer = pid < 0 ? -errno : pid;
	if (pid > 0) {
		ckpt_last_writer.pid = (pid_t)pid;
		ckpt_last_writer.start = start_time((pid_t)pid);
	}
	return 0;
}

/*
 * Forked checkpointing: a copy-on-write copy of the process writes the
 * image while the program goes on at once; the pause is one fork's worth of
 * page-table copying, plus reading the fd table and process settings.
 */
static int checkpoint_forked(const ucontext_t *uc, int sig, pid_t *writer,
			     uint64_t *stamp)
{
	struct fork_args fa = { dump_new(), -1, -EAGAIN };
	char *stack = NULL;
	long child;
	int status, err;

	err = fa.d ? -prepare(fa.d, uc, sig, getpid()) : ENOMEM;
	if (fa.d)
		*stamp = fa.d->hdr.created_ns;
	if (!err) {
		stack = own_map(WRITER_STACK);
		err = stack ? 0 : ENOMEM;
	}
	if (!err) {
		/* After prepare(): the image does not list this fd. */
		fa.last_writer = last_writer_pidfd();
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
		if (fa.last_writer >= 0)
			close(fa.last_writer);
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

/*
 * A process that made itself non-dumpable (PR_SET_DUMPABLE 0, or the kernel
 * after a change of credentials) owns none of its /proc files: unless it
 * is root it cannot open its own pagemap or fds. It is dumpable while its
 * image is taken (the image records what the program had: ckpt_prog_dumpable)
 * and non-dumpable again as soon as the image is written or the writer
 * forked. A forked writer keeps the dumpable copy; it exits when done.
 */
int ckpt_prog_dumpable = 1;

static void dumpable_for_checkpoint(void)
{
	ckpt_prog_dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	if (ckpt_prog_dumpable == 0 && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		ckpt_log("cannot make the process dumpable for its checkpoint",
			 NULL, errno);
}

static void dumpable_restore(void)
{
	if (ckpt_prog_dumpable == 0)
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/*
 * Seccomp filters are inherited across fork and exec: the ones the program
 * started with (a container's, a service manager's) are myrestart's too
 * when it is restarted in the same place. One the program installed itself
 * could not be installed again (the kernel does not give a process its own
 * filters back): such a program is refused, never restored unsandboxed.
 */
static int ckpt_seccomp_inherited;

static int seccomp_filters(void)
{
	char buf[4096];
	ssize_t len = read_file("/proc/self/status", buf, sizeof(buf) - 1);
	const char *p;
	uint64_t n = 0;

	if (len <= 0)
		return 0;
	buf[len] = '\0';
	p = strstr(buf, "\nSeccomp_filters:");
	if (!p)
		return 0; /* before Linux 5.9 */
	p += strlen("\nSeccomp_filters:");
	while (*p == ' ' || *p == '\t')
		p++;
	parse_dec(p, &n);
	return (int)n;
}

/* Write pid into our CKPT_OWNER_PID=... string, in place: no allocation. */
static void set_owner(pid_t pid)
{
	struct logbuf lb = { .len = 0 };
	size_t at = sizeof(OWNER_VAR "=") - 1;

	lb_num(&lb, (unsigned)pid);
	memcpy(ckpt_owner_env + at, lb.buf, lb.len);
	ckpt_owner_env[at + lb.len] = '\0';
	ckpt_owner = pid;
}

/* Back from a restart, in the handler: forget what belonged to the old life. */
static void resumed(void)
{
	ckpt_last_writer.pid = 0; /* a pid of the process before the restart */
	set_owner(getpid()); /* children started from now on know us */
}

/* A child of the program got the checkpoint signal: it ignores it. */
static void not_the_owner(void)
{
	struct logbuf lb = { .len = 0 };

	lb_str(&lb, "not checkpointing process ");
	lb_num(&lb, (unsigned)getpid());
	lb_str(&lb, ": it is a child of process ");
	lb_num(&lb, (unsigned)ckpt_owner);
	lb_str(&lb, ", the one whose image this is (children are not "
		    "checkpointed; signal that process alone)");
	lb.buf[lb.len] = '\0';
	ckpt_log(lb.buf, NULL, 0);
	ckpt_image_done(ECHILD, ckpt_image_path, 0, 0);
}

/*
 * CKPT_EXIT_AFTER=1: "checkpoint, then exit", for a job script that must
 * free its node once the image is whole. Only after a checkpoint that
 * succeeded (a failed one leaves the program running, its last image in
 * place) and only on the checkpoint's path through the handler: a restarted
 * process comes back through ckpt_save_resume's second return and never
 * gets here for the checkpoint it resumes from.
 */
static void exit_if_asked(long err)
{
	if (ckpt_exit_after && err == 0)
		syscall(SYS_exit_group, CKPT_EXIT_CHECKPOINTED);
}

/* True (after one line, the first time) when a forked writer could not see
 * all of the program's memory: the checkpoint is then synchronous. */
static int fork_blind_said(void)
{
	static int said;

	if (ckpt_fork_blind && !said) {
		ckpt_log("the program marked memory MADV_DONTFORK or "
			 "MADV_WIPEONFORK, which a forked copy cannot see: its "
			 "checkpoints are synchronous (CKPT_FORK ignored)",
			 NULL, 0);
		said = 1;
	}
	return ckpt_fork_blind;
}

static void ckpt_handler(int sig, siginfo_t *si, void *ucv)
{
	const ucontext_t *uc = ucv;
	int saved_errno = errno;
	int nthreads;
	long err;

	(void)si;
	ckpt_signal_gen++; /* a write it cut short is finished (eintr.c) */
	ckpt_program_errno = saved_errno;
	/* No buffer of ours exists between checkpoints; a restarted process
	 * inherits the list as it was in the middle of writing its image. */
	ckpt_nr_own = 0;
	/* After a syscall instruction rcx holds the return address: rax ==
	 * -EINTR there means we cut a non-restartable call short. */
	if (uc->uc_mcontext.gregs[REG_RAX] == -EINTR &&
	    uc->uc_mcontext.gregs[REG_RCX] == uc->uc_mcontext.gregs[REG_RIP])
		ckpt_eintr_gen++;
	if (getpid() != ckpt_owner) {
		not_the_owner();
		errno = saved_errno;
		return;
	}
	if (seccomp_filters() > ckpt_seccomp_inherited) {
		ckpt_log("refusing to checkpoint: the program installed a seccomp "
			 "filter, which a restart cannot install again (its "
			 "sandbox would be gone)",
			 NULL, 0);
		ckpt_image_done(EPERM, ckpt_image_path, 0, 0);
		ckpt_periodic_arm();
		errno = saved_errno;
		return;
	}
	nthreads = thread_count();
	if (nthreads < 0) {
		/* Not a guess at the threads: the real cause (often every fd
		 * in use, which the log line turns into the limit to raise). */
		ckpt_log("cannot checkpoint: cannot read /proc/self/stat", NULL,
			 -nthreads);
		ckpt_image_done(-nthreads, ckpt_image_path, 0, 0);
		errno = saved_errno;
		return;
	}
	if (nthreads != 1) {
		ckpt_log("refusing to checkpoint: the process has more than one "
			 "thread (only single-threaded programs are supported)",
			 NULL, 0);
		ckpt_image_done(EBUSY, ckpt_image_path, 0, 0);
		ckpt_periodic_arm();
		errno = saved_errno;
		return;
	}
	if (ckpt_save_resume(&ckpt_resume_ctx) == 0) {
		pid_t writer = 0;
		uint64_t stamp = 0;

		dumpable_for_checkpoint();
		/* Exiting needs the image whole, hence no forked writer. */
		if (ckpt_fork && !ckpt_exit_after && !fork_blind_said())
			err = checkpoint_forked(uc, sig, &writer, &stamp);
		else
			err = checkpoint(uc, sig, &stamp);
		dumpable_restore();
		/* A tracer holding us here sees memory as in the image. */
		errno = saved_errno;
		ckpt_image_done(err, ckpt_image_path, writer, stamp);
		exit_if_asked(err);
		ckpt_periodic_arm(); /* the next one an interval from now */
	} else {
		resumed();
		ckpt_periodic_restarted();
		ckpt_seccomp_inherited = seccomp_filters();
	}
	/* Both after the checkpoint and after a restart: return through the
	 * kernel's signal frame, which holds every register of the program. */
	errno = saved_errno;
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

/* Who owns the image: this process, or the one in the environment's mark. */
static int init_owner(void)
{
	const char *mark = getenv(OWNER_VAR);
	uint64_t pid;

	if (mark && *mark && *parse_dec(mark, &pid) == '\0' && pid) {
		ckpt_owner = (pid_t)pid; /* ours if we are it, after an exec */
		return 0;
	}
	set_owner(getpid());
	if (putenv(ckpt_owner_env) < 0) {
		ckpt_log("cannot mark the environment for children; not armed",
			 NULL, errno);
		return -1;
	}
	return 0;
}

__attribute__((constructor)) static void ckpt_init(void)
{
	const char *image = getenv("CKPT_IMAGE");
	const char *signame = getenv("CKPT_SIGNAL");
	const char *flag;
	struct sigaction act;

	ckpt_eintr_init();
	if (ckpt_interpose_init() < 0) {
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
	flag = getenv("CKPT_EXIT_AFTER");
	ckpt_exit_after = flag && *flag && *flag != '0';
	if (init_owner() < 0)
		return;

	memset(&act, 0, sizeof(act));
	act.sa_sigaction = ckpt_handler;
	act.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&act.sa_mask);
	if (ckpt_real_sigaction(ckpt_signo, &act, NULL) < 0) {
		ckpt_log("cannot install the checkpoint signal handler", NULL,
			 errno);
		return;
	}
	ckpt_armed = 1;
	ckpt_seccomp_inherited = seccomp_filters();
	/* A child the program started has no image of its own to take. */
	if (getpid() == ckpt_owner)
		ckpt_periodic_init(getenv("CKPT_INTERVAL"));
}
