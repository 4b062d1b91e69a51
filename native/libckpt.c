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

/* ---- one checkpoint ---------------------------------------------------- */

struct dump *dump_new(void)
{
	struct dump *d = own_map(sizeof(*d));

	if (!d)
		return NULL;
	d->pagemap_fd = -1;
	d->strings = own_map(STRINGS_CAP);
	d->fds = own_map(MAX_FDS * sizeof(*d->fds));
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
	if (d->pagemap_fd >= 0)
		close(d->pagemap_fd);
	if (d->strings)
		own_unmap(d->strings, STRINGS_CAP);
	if (d->fds)
		own_unmap(d->fds, MAX_FDS * sizeof(*d->fds));
	own_unmap(d, sizeof(*d));
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

		dumpable_for_checkpoint();
		/* Exiting needs the image whole, hence no forked writer. */
		if (ckpt_fork && !ckpt_exit_after)
			err = checkpoint_forked(uc, sig, &writer);
		else
			err = checkpoint(uc, sig);
		dumpable_restore();
		/* A tracer holding us here sees memory as in the image. */
		errno = saved_errno;
		ckpt_image_done(err, ckpt_image_path, writer);
		exit_if_asked(err);
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

__attribute__((constructor)) static void ckpt_init(void)
{
	const char *image = getenv("CKPT_IMAGE");
	const char *signame = getenv("CKPT_SIGNAL");
	const char *flag;
	struct sigaction act;

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
}
