/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dump_proc.c - the state of the process that the kernel holds, taken at
 * the instant of the checkpoint (before a forked writer exists): registers
 * and handlers, the mm layout for PR_SET_MM_MAP, rseq, the current
 * directory, umask, limits, interval and POSIX timers, prctl settings,
 * pending signals and the open file descriptors.
 */
#include "libckpt.h"

/* The number of threads of the process, or -errno if it cannot be read. */
int thread_count(void)
{
	char buf[1024];
	ssize_t len = read_file("/proc/self/stat", buf, sizeof(buf) - 1);
	uint64_t v = 0;
	char *p;
	int field;

	if (len <= 0)
		return len < 0 ? (int)len : -EIO;
	buf[len] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return -EIO;
	/* After ") " comes field 3 (state); num_threads is field 20. */
	for (field = 2, p++; *p && field < 20; p++)
		if (*p == ' ')
			field++;
	parse_dec(p, &v);
	return (int)v;
}

#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)

static int32_t read_oom_score_adj(void)
{
	char buf[32];
	ssize_t len = read_file("/proc/self/oom_score_adj", buf, sizeof(buf) - 1);
	uint64_t v = 0;

	if (len <= 0)
		return 0;
	buf[len] = '\0';
	if (buf[0] == '-') {
		parse_dec(buf + 1, &v);
		return -(int32_t)v;
	}
	parse_dec(buf, &v);
	return (int32_t)v;
}

/* Directory, umask, limits, timers, prctl and other settings. */
static void collect_proc(struct dump *d)
{
	struct ckpt_proc *pr = &d->hdr.proc;
	char cwd[PATH_MAX];
	ssize_t len;
	mode_t mask;
	long ret;
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
	pr->dumpable = ckpt_prog_dumpable;
	pr->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	prctl(PR_GET_CHILD_SUBREAPER, &pr->child_subreaper, 0, 0, 0);
	pr->timerslack_ns = (uint64_t)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	pr->oom_score_adj = read_oom_score_adj();
	/* Linux 6.3; before it the call fails and nothing is recorded. */
	ret = syscall(SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
	pr->membarrier = ret > 0 ? (uint32_t)ret : 0;
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

struct linux_dirent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

/* How many entries /proc/self/fd lists (our own dir fd among them). */
static long count_fds(int dir)
{
	char buf[4096];
	long n, count = 0;

	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		long off = 0;

		while (off < n) {
			struct linux_dirent64 *de = (void *)(buf + off);

			off += de->reclen;
			count += de->name[0] >= '0' && de->name[0] <= '9';
		}
	}
	if (n < 0)
		return -errno;
	if (lseek(dir, 0, SEEK_SET) < 0)
		return -errno;
	return count;
}

/* The program's open fds, in order, before we open any of our own. */
static int collect_fds(struct dump *d)
{
	char buf[4096];
	int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n;

	if (dir < 0)
		return -errno;
	/* A table for the fds there are, not for the most there could be. */
	n = count_fds(dir);
	if (n >= 0) {
		d->fds_cap = (size_t)n + 1;
		d->fds = own_map(d->fds_cap * sizeof(*d->fds));
		n = d->fds ? 0 : -ENOMEM;
	}
	if (n < 0) {
		close(dir);
		return (int)n;
	}
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		long off = 0;

		while (off < n) {
			struct linux_dirent64 *de = (void *)(buf + off);
			uint64_t fd;

			off += de->reclen;
			if (de->name[0] < '0' || de->name[0] > '9')
				continue;
			parse_dec(de->name, &fd);
			if ((int)fd != dir && d->nr_fds < d->fds_cap)
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
	if (!ckpt_libc_syscall)
		return;
	if (ckpt_libc_syscall(SYS_rseq, addr, len, 0, sig) == 0) {
		/* Nothing was registered, and now we did: undo it. */
		ckpt_libc_syscall(SYS_rseq, addr, len, RSEQ_FLAG_UNREGISTER, sig);
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

			parse_dec(p + 4, &v);
			t = NULL;
			if (ckpt_periodic_is_ours((int)v))
				continue; /* libckpt's own (CKPT_INTERVAL) */
			if (d->nr_timers == MAX_TIMERS)
				break;
			t = &d->timers[d->nr_timers++];
			memset(t, 0, sizeof(*t));
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
int prepare(struct dump *d, const ucontext_t *uc, int sig, pid_t pid)
{
	int err;

	if (!d->strings)
		return -ENOMEM;
	collect_process_state(d, uc, sig, pid);
	collect_timers(d);
	collect_signals(d);
	err = collect_fds(d);
	return err ? err : d->nomem ? -ENOMEM : 0;
}
