/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * myrestart.c - restart a program from an extckpt image:
 *
 *   myrestart IMAGE
 *
 * A static binary linked at 0x5000000, away from where programs usually
 * live. Up to its point of no return it is ordinary C: it maps the image,
 * validates every byte of it (header, tables, each region's checksum),
 * checks that the files to re-map are unchanged and the kernel's vDSO has
 * the same shape, and finds a hole in the image's address space for the
 * restore blob. Any failure there is one line on stderr and a distinct exit
 * status (CKPT_EXIT_* in ckpt_image.h); the caller's terminal is untouched.
 *
 * Then it copies the blob (restore_blob.c) into the hole and jumps to it.
 * The blob unmaps all of myrestart, moves the vDSO, maps the program back
 * and enters libckpt.so's resume code: the program continues inside its
 * checkpoint signal handler, with myrestart's pid and file descriptors.
 * The program's private anonymous memory is mapped anonymous again and
 * filled before the point of no return (restore_mem.c), so that its
 * checksums are checked where it lies; nothing of the program refers to the
 * image once it runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ckpt_filehash.h"
#include "ckpt_hash.h"
#include "ckpt_plan.h"
#include "ckpt_validate.h"
#include "restore_mem.h"
#include "restore_proc.h"

#define PAGE_SZ ((uint64_t)CKPT_PAGE_SIZE)
#define BLOB_STACK (256UL << 10)
#define RSEQ_SIG_X86 0x53053053

/* The blob's code, placed by the linker in its own section (see Makefile). */
extern char __start_ckpt_blob[], __stop_ckpt_blob[];

static const char *prog = "myrestart";
static struct restore_opts opts;

void ckpt_die(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static uint64_t page_up(uint64_t v)
{
	return (v + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
}

struct range {
	uint64_t start, end;
};

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Our own mappings, with the vDSO/vvar ones picked out. */
struct self_maps {
	struct range *busy;
	size_t nr_busy;
	struct {
		uint64_t start, end;
	} special[CKPT_KIND_VVAR_VCLOCK + 1];
};

static void read_self_maps(struct self_maps *sm)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	size_t cap = 64;

	if (!f)
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot read /proc/self/maps: %s",
		    strerror(errno));
	memset(sm, 0, sizeof(*sm));
	sm->busy = malloc(cap * sizeof(*sm->busy));
	while (sm->busy && fgets(line, sizeof(line), f)) {
		unsigned long long start, end;
		int kind = -1;

		if (sscanf(line, "%llx-%llx", &start, &end) != 2)
			continue;
		if (strstr(line, "[vdso]"))
			kind = CKPT_KIND_VDSO;
		else if (strstr(line, "[vvar_vclock]"))
			kind = CKPT_KIND_VVAR_VCLOCK;
		else if (strstr(line, "[vvar]"))
			kind = CKPT_KIND_VVAR;
		if (kind >= 0) {
			sm->special[kind].start = start;
			sm->special[kind].end = end;
		}
		if (sm->nr_busy == cap) {
			cap *= 2;
			sm->busy = realloc(sm->busy, cap * sizeof(*sm->busy));
			if (!sm->busy)
				break;
		}
		sm->busy[sm->nr_busy].start = start;
		sm->busy[sm->nr_busy].end = end;
		sm->nr_busy++;
	}
	fclose(f);
	if (!sm->busy)
		ckpt_die(CKPT_EXIT_RESOURCE, "out of memory");
}

/*
 * Find len bytes of address space that neither the image nor myrestart
 * uses, as high as possible (far from brk heaps and from 0x5000000).
 */
static uint64_t find_hole(const struct ckpt_region *regs, uint64_t nr_regs,
			  const struct self_maps *sm, uint64_t len)
{
	size_t n = nr_regs + sm->nr_busy, i, k = 0;
	struct range *all = malloc((n + 1) * sizeof(*all));
	uint64_t hole = 0, gap_end = CKPT_USER_TOP;

	if (!all)
		ckpt_die(CKPT_EXIT_RESOURCE, "out of memory");
	for (i = 0; i < nr_regs; i++) {
		all[k].start = regs[i].start;
		all[k++].end = regs[i].end;
	}
	for (i = 0; i < sm->nr_busy; i++)
		if (sm->busy[i].start < CKPT_USER_TOP)
			all[k++] = sm->busy[i];
	qsort(all, k, sizeof(*all), range_cmp);
	/* Ranges may overlap: let each end cover all that start before it. */
	for (i = 1; i < k; i++)
		if (all[i].end < all[i - 1].end)
			all[i].end = all[i - 1].end;
	/* Walk the gaps from the top down, keeping a page free either side. */
	for (i = k; i-- > 0;) {
		uint64_t gap_start = all[i].end + PAGE_SZ;

		if (gap_end > gap_start && gap_end - gap_start >= len + PAGE_SZ) {
			hole = (gap_end - PAGE_SZ - len) & ~(PAGE_SZ - 1);
			break;
		}
		if (all[i].start < gap_end)
			gap_end = all[i].start;
	}
	free(all);
	if (!hole)
		ckpt_die(CKPT_EXIT_RESOURCE,
		    "no free address range of %llu bytes outside the image's "
		    "memory map to restart from",
		    (unsigned long long)len);
	return hole;
}

/* The program's executable, for /proc/PID/exe; -1 if it is gone. */
static int open_exe(const unsigned char *img)
{
	const struct ckpt_header *h = (const void *)img;
	char path[4096];
	size_t n = h->exe_name_len < sizeof(path) - 1 ? h->exe_name_len :
							 sizeof(path) - 1;
	struct stat st;
	int fd;

	if (!n)
		return -1;

	memcpy(path, img + h->strings_offset + h->exe_name_offset, n);
	path[n] = '\0';
	fd = ckpt_open_nowait(path, O_RDONLY, &st);
	if (fd >= 0)
		ckpt_need_regular(path, &st, "the program's executable");
	return fd;
}

static const char *kind_name(int kind)
{
	return kind == CKPT_KIND_VDSO ? "[vdso]" :
	       kind == CKPT_KIND_VVAR ? "[vvar]" : "[vvar_vclock]";
}

/*
 * A mapped file must hold the bytes the program had mapped. The same inode
 * with the same size and time is taken as it is (no read: a restart on the
 * same machine costs nothing here). Anything else - a copy on another
 * machine, a file restored from a backup - is read, and accepted when the
 * mapped range has the recorded size and content hash (ckpt_filehash.h).
 */
static void check_mapped_file(const unsigned char *img,
			      const struct ckpt_region *r, int fd,
			      const char *path, unsigned char **buf)
{
	struct stat st;
	uint64_t hash = 0;
	int64_t mtime;
	int err;

	if (fstat(fd, &st) < 0)
		ckpt_die(CKPT_EXIT_MISMATCH, "cannot stat %s: %s", path,
		    strerror(errno));
	mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	/* Not one page of it to map: the program would die of SIGBUS. */
	if (r->file_offset >= (uint64_t)st.st_size)
		ckpt_die(CKPT_EXIT_MISMATCH,
			 "%s is %lld bytes, but the program mapped it from "
			 "offset %llu at 0x%llx: every access there would be "
			 "a SIGBUS",
			 path, (long long)st.st_size,
			 (unsigned long long)r->file_offset,
			 (unsigned long long)r->start);
	if ((uint64_t)st.st_dev == r->dev && (uint64_t)st.st_ino == r->ino &&
	    (uint64_t)st.st_size == r->file_size && mtime == r->mtime_ns)
		return;
	if (!(r->flags & CKPT_REGION_CONTENT_HASH)) {
		if ((uint64_t)st.st_dev != r->dev || (uint64_t)st.st_ino != r->ino)
			ckpt_die(CKPT_EXIT_MISMATCH,
			    "%s is not the file the program had mapped (it was "
			    "replaced since the checkpoint)",
			    path);
		ckpt_die(CKPT_EXIT_MISMATCH,
		    "%s changed since the checkpoint (size or modification "
		    "time differ); restarting could corrupt the program",
		    path);
	}
	if ((uint64_t)st.st_size != r->file_size)
		ckpt_die(CKPT_EXIT_MISMATCH,
		    "%s is not the file the program had mapped: it has %llu "
		    "bytes, the program's had %llu; restart where the program's "
		    "files are",
		    path, (unsigned long long)st.st_size,
		    (unsigned long long)r->file_size);
	if (!*buf) {
		*buf = malloc(CKPT_HASH_PIECE);
		if (!*buf)
			ckpt_die(CKPT_EXIT_RESOURCE, "out of memory");
	}
	err = ckpt_hash_file_range(fd, r->file_offset, r->end - r->start,
				   r->file_size, *buf, &hash);
	if (err)
		ckpt_die(CKPT_EXIT_MISMATCH, "cannot read %s: %s", path,
		    strerror(-err));
	if (hash != r->content_hash)
		ckpt_die(CKPT_EXIT_MISMATCH,
		    "%s is not the file the program had mapped: same size, other "
		    "bytes (mapped at 0x%llx); restart where the program's files "
		    "are, or with the same versions of them",
		    path, (unsigned long long)r->start);
	if (opts.verbose)
		fprintf(stderr,
			"myrestart: %s: another copy of the same bytes (mapped at "
			"0x%llx)\n",
			path, (unsigned long long)r->start);
	(void)img;
}

/* Open every mapped file, once each, and check it holds the mapped bytes. */
static void open_files(const unsigned char *img, int floor, int32_t *region_fd,
		       int32_t *close_fds, int32_t *nr_close)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *regs = (const void *)(img + h->regions_offset);
	unsigned char *buf = NULL;
	uint64_t i, j;

	for (i = 0; i < h->nr_regions; i++) {
		const struct ckpt_region *r = &regs[i];
		char path[4096], what[64];
		struct stat st;
		int fd, want_write;

		region_fd[i] = -1;
		if (r->kind != CKPT_KIND_FILE)
			continue;
		ckpt_region_name(img, r, path, sizeof(path));
		want_write = (r->flags & CKPT_REGION_SHARED) && (r->prot & 2);
		for (j = 0; j < i; j++)
			if (region_fd[j] >= 0 && regs[j].ino == r->ino &&
			    regs[j].dev == r->dev &&
			    (!want_write || ((regs[j].flags & CKPT_REGION_SHARED) &&
					     (regs[j].prot & 2))))
				break;
		if (j < i) {
			region_fd[i] = region_fd[j];
			check_mapped_file(img, r, region_fd[i], path, &buf);
			continue;
		}
		fd = ckpt_open_nowait(path, want_write ? O_RDWR : O_RDONLY, &st);
		if (fd < 0)
			ckpt_die(CKPT_EXIT_MISMATCH,
			    "cannot open %s, mapped by the program at 0x%llx: %s",
			    path, (unsigned long long)r->start, strerror(errno));
		snprintf(what, sizeof(what), "mapped by the program at 0x%llx",
			 (unsigned long long)r->start);
		ckpt_need_regular(path, &st, what);
		check_mapped_file(img, r, fd, path, &buf);
		fd = ckpt_fd_above(fd, floor);
		region_fd[i] = fd;
		close_fds[(*nr_close)++] = fd;
	}
	free(buf);
}

/* Our vDSO must have the same parts and sizes as the program's had. */
static void plan_specials(const unsigned char *img, const struct self_maps *sm,
			  struct ckpt_plan *plan, uint64_t scratch)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *regs = (const void *)(img + h->regions_offset);
	uint64_t want[CKPT_KIND_VVAR_VCLOCK + 1][2] = { { 0 } };
	uint64_t used = 0, i;
	int kind;

	for (i = 0; i < h->nr_regions; i++)
		if (regs[i].kind >= CKPT_KIND_VDSO) {
			want[regs[i].kind][0] = regs[i].start;
			want[regs[i].kind][1] = regs[i].end;
		}
	for (kind = CKPT_KIND_VDSO; kind <= CKPT_KIND_VVAR_VCLOCK; kind++) {
		uint64_t have = sm->special[kind].end - sm->special[kind].start;
		uint64_t need = want[kind][1] - want[kind][0];
		struct ckpt_special_move *m;

		if (have != need)
			ckpt_die(CKPT_EXIT_MISMATCH,
			    "the image was made under another kernel: its %s is "
			    "%llu bytes, this kernel's is %llu; restart it on the "
			    "kernel it was made on",
			    kind_name(kind), (unsigned long long)need,
			    (unsigned long long)have);
		if (!have)
			continue;
		m = &plan->special[plan->nr_special++];
		m->cur = sm->special[kind].start;
		m->len = have;
		m->target = want[kind][0];
		m->scratch = scratch + used;
		used += have;
	}
}

static void set_msgs(struct ckpt_plan *p)
{
	static const char *const text[CKPT_NR_MSGS] = {
		[CKPT_MSG_PREFIX] = "myrestart: failed after the point of no return: ",
		[CKPT_MSG_PARK] = "cannot move the vDSO aside",
		[CKPT_MSG_UNMAP] = "cannot unmap myrestart",
		[CKPT_MSG_VDSO] = "cannot move the vDSO into place",
		[CKPT_MSG_MAP] = "cannot map a region",
		[CKPT_MSG_PROTECT] = "cannot set a region's permissions",
		[CKPT_MSG_SIGACTION] = "cannot restore the handler of signal",
		[CKPT_MSG_MM] = "(warning, going on) cannot restore the program "
				"break and arg/env layout, brk",
		[CKPT_MSG_RSEQ] = "(warning, going on) cannot register rseq",
		[CKPT_MSG_TLS] = "cannot restore the thread pointer",
		[CKPT_MSG_MADVISE] = "(warning, going on) cannot restore the "
				     "madvise flags of the region",
		[CKPT_MSG_MLOCK] = "(warning, going on) cannot lock the region",
		[CKPT_MSG_RLIMIT] = "(warning, going on) cannot restore the "
				    "resource limit number",
		[CKPT_MSG_TIMER] = "(warning, going on) cannot restore the POSIX "
				   "timer",
		[CKPT_MSG_SIGNAL] = "(warning, going on) cannot queue the pending "
				    "signal",
		[CKPT_MSG_AT] = " at ",
		[CKPT_MSG_ERRNO] = ", errno ",
		[CKPT_MSG_NEWLINE] = "\n",
	};
	int i;

	for (i = 0; i < CKPT_NR_MSGS; i++)
		snprintf(p->msg[i], sizeof(p->msg[i]), "%s", text[i]);
	for (i = 1; i < CKPT_PLAN_ERRNAMES; i++) {
		const char *name = strerrorname_np(i);

		if (name)
			snprintf(p->errname[i], sizeof(p->errname[i]), "%s",
				 name);
	}
}

/*
 * glibc registered an rseq area for our thread inside our TLS; once that
 * memory is gone the kernel would kill us on the next preemption.
 */
static void unregister_own_rseq(void)
{
	void *area;

	if (__rseq_size == 0)
		return;
	area = (char *)__builtin_thread_pointer() + __rseq_offset;
	if (syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG_X86) &&
	    syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER,
		    RSEQ_SIG_X86))
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot unregister our rseq area: %s",
		    strerror(errno));
}

static int keep_cmp(const void *a, const void *b)
{
	const struct ckpt_keep_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* The kept range and the placed regions, sorted, touching ones merged. */
static void plan_keep(const unsigned char *img, struct ckpt_plan *plan)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *regs = (const void *)(img + h->regions_offset);
	struct ckpt_keep_range *k = plan->keep;
	int64_t n = 0, i, m = 0;
	uint64_t j;

	k[n].start = plan->keep_start;
	k[n++].end = plan->keep_end;
	for (j = 0; j < h->nr_regions; j++)
		if (plan->placed[j]) {
			k[n].start = regs[j].start;
			k[n++].end = regs[j].end;
		}
	qsort(k, (size_t)n, sizeof(*k), keep_cmp);
	for (i = 1; i < n; i++) {
		if (k[i].start <= k[m].end) {
			if (k[i].end > k[m].end)
				k[m].end = k[i].end;
		} else {
			k[++m] = k[i];
		}
	}
	plan->nr_keep = n ? m + 1 : 0;
}

/* The login name of uid from /etc/passwd (no NSS in a static binary). */
static void user_name(uid_t uid, char *buf, size_t size)
{
	FILE *f = fopen("/etc/passwd", "re");
	char line[1024], *colon;
	unsigned long id;

	snprintf(buf, size, "uid %u", (unsigned)uid);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (!p || !(p = strchr(p + 1, ':')))
			continue;
		id = strtoul(p + 1, &colon, 10);
		if (*colon == ':' && id == uid) {
			*strchr(line, ':') = '\0';
			snprintf(buf, size, "%.64s (uid %u)", line, (unsigned)uid);
			break;
		}
	}
	fclose(f);
}

/*
 * An image is a program that runs as whoever restarts it: one that another
 * user wrote, or that others could have rewritten (a name in a shared
 * directory, a planted file), runs their code as you. Only your own
 * images (root's, for root), writable by no one else, unless --any-owner.
 */
static void check_owner(const char *path, const struct stat *st)
{
	char owner[128];

	if (st->st_uid != geteuid()) {
		user_name(st->st_uid, owner, sizeof(owner));
		ckpt_die(CKPT_EXIT_OWNER,
			 "%s belongs to %s, not to you (uid %u): restarting "
			 "it runs its code as you; if you trust its owner, "
			 "restart with --any-owner",
			 path, owner, (unsigned)geteuid());
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		ckpt_die(CKPT_EXIT_OWNER,
			 "%s is writable by %s (mode %04o): anyone who could "
			 "write it may have changed the program; if you trust "
			 "it, `chmod go-w` it or restart with --any-owner",
			 path,
			 (st->st_mode & S_IWOTH) ? "others" : "its group",
			 (unsigned)(st->st_mode & 07777));
}

static uint64_t read_sysctl(const char *path, uint64_t dflt)
{
	FILE *f = fopen(path, "re");
	unsigned long long x;

	if (!f)
		return dflt;
	if (fscanf(f, "%llu", &x) != 1)
		x = dflt;
	fclose(f);
	return x;
}

/* CAP_SYS_RAWIO in our effective set: we may map below mmap_min_addr. */
static int may_map_low(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data) < 0)
		return 0;
	return !!(data[CAP_SYS_RAWIO / 32].effective &
		  (1U << (CAP_SYS_RAWIO % 32)));
}

/*
 * What this machine allows, checked before the point of no return: past
 * it, too many regions or one below mmap_min_addr would end in exit 14.
 */
static void check_limits(const unsigned char *img, const char *path)
{
	struct ckpt_limits lim = {
		.max_map_count = read_sysctl("/proc/sys/vm/max_map_count", 65530),
		.mmap_min_addr = read_sysctl("/proc/sys/vm/mmap_min_addr", 65536),
		.may_map_low = may_map_low(),
	};
	struct ckpt_verdict v;

	if (ckpt_check_limits(img, &lim, &v))
		ckpt_die(v.status, "%s: %s", path, v.msg);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: myrestart [-v] [--pid=try|never|require] [--keep-stdio] "
		"[--force-files] [--copy] [--any-owner] IMAGE\n"
		"Restart the program saved in IMAGE (written by libckpt.so on "
		"its checkpoint\nsignal). It continues with this process's pid; "
		"its files are reopened at\ntheir numbers and offsets, and "
		"terminals, pipes and sockets among fds 0-2\nbecome this "
		"process's.\n"
		"  -v             say what is restored\n"
		"  --pid=MODE     restart under the original pid: try (the "
		"default; if it\n                 is taken or not permitted, "
		"say so and go on with this one),\n                 never, "
		"or require (exit 16 if it cannot). With the original\n"
		"                 pid, myrestart stays as the program's parent: "
		"signals sent to\n                 it are passed on, and it "
		"exits as the program does.\n"
		"  --keep-stdio   give the program this process's fds 0, 1 and 2, "
		"whatever\n                 they were (its output then "
		"appears here)\n"
		"  --force-files  go on when a file the program had open was "
		"replaced or cut\n                 below its offset\n"
		"  --copy         accepted and ignored (memory is always copied "
		"into place:\n                 once restarted, the program "
		"does not need IMAGE)\n"
		"  --any-owner    restart an image that is not yours (root's, "
		"for root) or that\n                 others may write: it runs "
		"as you (exit 17 without it)\n"
		"Exit statuses when it cannot restart: see README or "
		"ckpt_image.h.\n");
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	const unsigned char *img;
	const struct ckpt_header *h;
	struct ckpt_verdict verdict;
	struct self_maps sm;
	struct ckpt_plan *plan;
	struct stat st;
	uint64_t blob_len, data_len, stack_len, special_len, image_len, total;
	uint64_t keep, nr_regions;
	unsigned char *base;
	struct fd_plan *fdplan;
	sigset_t all, stop;
	int fd, i, floor;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			opts.verbose = 1;
		} else if (!strncmp(argv[i], "--pid=", 6)) {
			const char *m = argv[i] + 6;

			if (!strcmp(m, "try"))
				opts.pid_mode = PID_TRY;
			else if (!strcmp(m, "never"))
				opts.pid_mode = PID_NEVER;
			else if (!strcmp(m, "require"))
				opts.pid_mode = PID_REQUIRE;
			else
				ckpt_die(CKPT_EXIT_USAGE,
					 "--pid takes try, never or require");
		} else if (!strcmp(argv[i], "--keep-stdio")) {
			opts.keep_stdio = 1;
		} else if (!strcmp(argv[i], "--force-files")) {
			opts.force_files = 1;
		} else if (!strcmp(argv[i], "--copy")) {
			/* What every restart does now; kept for old scripts. */
		} else if (!strcmp(argv[i], "--any-owner")) {
			opts.any_owner = 1;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			usage(stderr);
			ckpt_die(CKPT_EXIT_USAGE, "unknown option %s", argv[i]);
		} else if (!path) {
			path = argv[i];
		} else {
			ckpt_die(CKPT_EXIT_USAGE, "one image at a time, please");
		}
	}
	if (!path) {
		usage(stderr);
		ckpt_die(CKPT_EXIT_USAGE, "no image given");
	}

	/* O_NONBLOCK: a FIFO must not hang us until a writer comes. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		ckpt_die(CKPT_EXIT_OPEN, "cannot open image %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) < 0)
		ckpt_die(CKPT_EXIT_OPEN, "cannot stat image %s: %s", path,
		    strerror(errno));
	if (!S_ISREG(st.st_mode))
		ckpt_die(CKPT_EXIT_NOT_FILE, "%s is %s, not an image file", path,
		    S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
	if (!opts.any_owner)
		check_owner(path, &st);
	if (st.st_size == 0)
		ckpt_die(CKPT_EXIT_EMPTY, "%s: the image file is empty", path);
	image_len = page_up((uint64_t)st.st_size);
	/* Not MAP_POPULATE: the copy (restore_mem.c) populates each piece on
	 * the thread that copies it. */
	img = mmap(NULL, image_len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img == MAP_FAILED)
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot map image %s: %s", path,
		    strerror(errno));
	/* The memory's checksums are checked as it is copied into place,
	 * later; the saved contents of deleted files are needed sooner. */
	if (ckpt_validate(img, (size_t)st.st_size, 0, &verdict) ||
	    ckpt_check_ghost_data(img, &verdict))
		ckpt_die(verdict.status, "%s: %s", path, verdict.msg);
	check_limits(img, path);
	h = (const void *)img;
	nr_regions = h->nr_regions;
	/* Our own fds live above all of the program's numbers. */
	floor = ckpt_fd_floor(img);
	fd = ckpt_fd_above(fd, floor);

	/*
	 * The kept range: blob code | plan, fd tables | stack | parked vDSO
	 * | the image file. It must collide with nothing of the image.
	 */
	read_self_maps(&sm);
	blob_len = page_up((uint64_t)(__stop_ckpt_blob - __start_ckpt_blob));
	data_len = page_up(sizeof(*plan) + (nr_regions * 2 + 2) * sizeof(int32_t) +
			   (nr_regions + 2) * sizeof(struct ckpt_keep_range) +
			   nr_regions);
	stack_len = BLOB_STACK;
	special_len = 0;
	for (i = CKPT_KIND_VDSO; i <= CKPT_KIND_VVAR_VCLOCK; i++)
		special_len += sm.special[i].end - sm.special[i].start;
	total = blob_len + data_len + stack_len + special_len + image_len;
	keep = find_hole((const void *)(img + h->regions_offset), nr_regions,
			 &sm, total);
	base = mmap((void *)keep, total, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (base != (void *)keep)
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot reserve 0x%llx-0x%llx: %s",
		    (unsigned long long)keep, (unsigned long long)(keep + total),
		    strerror(errno));
	if (mprotect(base, blob_len + data_len + stack_len,
		     PROT_READ | PROT_WRITE) < 0)
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot set up the restore area: %s",
		    strerror(errno));
	img = mremap((void *)img, image_len, image_len,
		     MREMAP_MAYMOVE | MREMAP_FIXED, base + total - image_len);
	if (img == MAP_FAILED)
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot move the image mapping: %s",
		    strerror(errno));
	h = (const void *)img;

	plan = (void *)(base + blob_len);
	memset(plan, 0, sizeof(*plan));
	plan->keep_start = keep;
	plan->keep_end = keep + total;
	plan->image_base = (uint64_t)(uintptr_t)img;
	plan->image_len = image_len;
	plan->user_top = CKPT_USER_TOP;
	plan->region_fd = (int32_t *)(plan + 1);
	plan->close_fds = plan->region_fd + nr_regions;
	plan->keep = (void *)((uintptr_t)(plan->close_fds + nr_regions + 2 + 1) &
			      ~(uintptr_t)7);
	plan->placed = (uint8_t *)(plan->keep + nr_regions + 1);
	plan->exe_fd = -1;
	set_msgs(plan);
	plan_specials(img, &sm, plan,
		      keep + blob_len + data_len + stack_len);
	open_files(img, floor, plan->region_fd, plan->close_fds,
		   &plan->nr_close_fds);
	plan->close_fds[plan->nr_close_fds++] = fd;
	plan->exe_fd = ckpt_fd_above(open_exe(img), floor);
	if (plan->exe_fd >= 0)
		plan->close_fds[plan->nr_close_fds++] = plan->exe_fd;

	memcpy(base, __start_ckpt_blob,
	       (size_t)(__stop_ckpt_blob - __start_ckpt_blob));
	if (mprotect(base, blob_len, PROT_READ | PROT_EXEC) < 0)
		ckpt_die(CKPT_EXIT_RESOURCE, "cannot make the restore code executable: %s",
		    strerror(errno));
	if (opts.verbose)
		fprintf(stderr,
			"myrestart: %s: %llu regions, %llu bytes stored; "
			"restoring from 0x%llx\n",
			path, (unsigned long long)nr_regions,
			(unsigned long long)h->data_size,
			(unsigned long long)keep);

	/* The program's files at high numbers, its directory and settings;
	 * then its fds in place: the last step that can still fail politely. */
	fdplan = ckpt_prepare_fds(img, floor, &opts);
	ckpt_restore_settings(img);
	fflush(stdout);
	fflush(stderr);
	/*
	 * Until here SIGINT and SIGTERM end myrestart, which has changed
	 * nothing of the program's yet. Signals sent to us from now on are
	 * meant for the program: they wait, blocked, and reach its own
	 * handlers when it runs again; a parent left under the original pid
	 * inherits them pending and passes them on (supervise()).
	 */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	/* From here on, maybe in a child under the program's own pid. */
	ckpt_claim_pid(img, &opts);
	ckpt_restore_own_settings(img);
	/* Here, not sooner: the memory must land in the process that becomes
	 * the program; and before the fds: a failure still reaches stderr.
	 * It is the long step (checksums and copies): SIGINT, SIGTERM and
	 * SIGHUP still end the restart there, which has touched nothing of
	 * the program's yet (under the original pid the parent passes them on
	 * and dies as this process does). */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_UNBLOCK, &stop, NULL);
	ckpt_restore_memory(img, fd, path, plan->placed, opts.verbose);
	plan_keep(img, plan);
	sigprocmask(SIG_BLOCK, &all, NULL);
	ckpt_install_fds(img, fdplan, plan->close_fds, plan->nr_close_fds);

	/* The point of no return. */
	unregister_own_rseq();
	{
		uint64_t entry = keep + (uint64_t)((char *)ckpt_blob_main -
						   __start_ckpt_blob);
		uint64_t sp = keep + blob_len + data_len + stack_len - 64;

		__asm__ volatile("mov %0, %%rsp\n\t"
				 "xor %%ebp, %%ebp\n\t"
				 "call *%2"
				 :
				 : "r"(sp), "D"(plan), "r"(entry)
				 : "memory");
	}
	__builtin_unreachable();
}
