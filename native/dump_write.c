/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dump_write.c - the writer: the stored pages (hashed on the second core
 * while this one writes), deleted files' contents, the tables and last the
 * header go into a new file of our own (unnamed, O_TMPFILE, where the
 * filesystem allows), which is then given a name and renamed to IMAGE. It
 * runs in the process itself, or in the forked writer (CKPT_FORK=1).
 */
#include "libckpt.h"

#include <sys/random.h>

/*
 * The image being written. Static, not on the handler's stack: two paths of
 * PATH_MAX. A forked writer has its own copy.
 */
static struct image_file {
	int fd;
	int unnamed;		/* O_TMPFILE: no name until published */
	int named;		/* tmp is a name of ours to remove on failure */
	char dir[PATH_MAX];	/* the image's directory */
	char tmp[PATH_MAX + 32]; /* IMAGE.tmp.<16 random hex digits> */
} img;

/*
 * The checksum runs on the second core while the first writes: a thread of
 * our own (raw clone, no libc inside it, only futex calls) hashes chunk k
 * while write() copies it; the writer waits for it before handing over
 * chunk k + 1. Without it XXH64 (4.8 GB/s here) would nearly double the
 * time of a checkpoint into the page cache.
 */

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
 * Small pieces - a region of thousands of separate 4 KiB runs, as a heap
 * that churned leaves - are not worth a write() and a hand-over to the
 * hasher each: they are hashed here and gathered into one writev() of up
 * to BATCH_IOV pieces. 40 MiB in 10,240 runs of 4 KiB took 145-380 ms
 * to checkpoint with a write and a hand-over per run, 40-45 ms so, against
 * 30 ms for one run of the same 40 MiB.
 * A gathered piece that can change under us is copied into the bounce
 * buffer first, at its own place in it.
 */
#define SMALL_PIECE (64UL << 10)
#define BATCH_IOV 512

struct batch {
	struct iovec iov[BATCH_IOV];
	int n;
	size_t bounced; /* bytes of the bounce buffer in use */
};

static int batch_flush(int fd, struct batch *b)
{
	struct iovec *iov = b->iov;
	int n = b->n;

	while (n) {
		ssize_t w;

		errno = ckpt_program_errno;
		w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -ENOSPC;
		while (n && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	b->n = 0;
	b->bounced = 0;
	return 0;
}

/* Hash a small piece now and queue its write; 0 or -errno. */
static int batch_add(struct dump *d, int fd, struct batch *b,
		     struct ckpt_xxh64_seq *xs, const char *src, size_t n,
		     int volatile_src)
{
	int err = 0;

	if (b->n == BATCH_IOV || (volatile_src && b->bounced + n > WRITE_CHUNK))
		err = batch_flush(fd, b);
	if (err)
		return err;
	if (volatile_src) {
		memcpy(d->bounce + b->bounced, src, n);
		src = d->bounce + b->bounced;
		b->bounced += n;
	}
	ckpt_xxh64_seq_add(xs, ckpt_xxh64(src, n));
	b->iov[b->n].iov_base = (void *)src;
	b->iov[b->n].iov_len = n;
	b->n++;
	return 0;
}

static int write_region_data(struct dump *d, int fd, struct ckpt_region *r,
			     uint64_t *offset)
{
	struct ckpt_xxh64_seq xs; /* of the pieces' XXH64s */
	struct batch b = { .n = 0, .bounced = 0 };
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
			int moving = own_stack || (rseq && rseq < at + n && rseq_end > at);

			if (n < SMALL_PIECE) {
				err = batch_add(d, fd, &b, &xs, src, n, moving);
				continue;
			}
			err = batch_flush(fd, &b);
			if (err)
				break;
			if (moving) {
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
	/* Before the region's protection goes back: the queue points into it. */
	if (!err)
		err = batch_flush(fd, &b);
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

#ifdef CKPT_TESTING
/*
 * Test builds only (libckpt-test.so, never installed): CKPT_TEST_SPOIL_TABLE
 * puts the last run outside its region, with a valid tables checksum, as
 * a wrong answer from the kernel once did; the self-check must catch it.
 */
static int test_spoil;

__attribute__((constructor)) static void test_hooks(void)
{
	test_spoil = getenv("CKPT_TEST_SPOIL_TABLE") != NULL;
}

static void test_spoil_tables(const struct ckpt_header *h, char *tables)
{
	struct ckpt_run *runs = (void *)(tables + (h->runs_offset - h->regions_offset));

	if (test_spoil && h->nr_runs)
		runs[h->nr_runs - 1].start = CKPT_USER_TOP;
}
#else
static void test_spoil_tables(const struct ckpt_header *h, char *tables)
{
	(void)h;
	(void)tables;
}
#endif

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
	test_spoil_tables(h, tables);
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
 * The final path may already hold an image of ours, to be replaced; never
 * a symbolic link (a rename would replace the link, but whoever planted it
 * meant us to write where it points) nor a file of another user (who could
 * then read or rewrite what the program's user restarts later). Say which,
 * so that the user does not read "Permission denied" and guess.
 */
static int check_final_path(void)
{
	struct logbuf lb = { .len = 0 };
	struct stat st;

	if (lstat(ckpt_image_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		ckpt_log("cannot checkpoint: cannot look at", ckpt_image_path,
			 errno);
		return errno;
	}
	if (S_ISREG(st.st_mode) && st.st_uid == geteuid())
		return 0;
	lb_str(&lb, "refusing to checkpoint: ");
	lb_str(&lb, ckpt_image_path);
	if (S_ISLNK(st.st_mode)) {
		lb_str(&lb, " is a symbolic link (an image is never written "
			    "through one); remove it or choose another "
			    "CKPT_IMAGE");
	} else if (!S_ISREG(st.st_mode)) {
		lb_str(&lb, " exists and is not a regular file; remove it or "
			    "choose another CKPT_IMAGE");
	} else {
		lb_str(&lb, " belongs to user ");
		lb_num(&lb, st.st_uid);
		lb_str(&lb, ", not to this process's user ");
		lb_num(&lb, geteuid());
		lb_str(&lb, "; remove it or choose another CKPT_IMAGE");
	}
	lb.buf[lb.len] = '\0';
	ckpt_log(lb.buf, NULL, 0);
	return S_ISLNK(st.st_mode) ? ELOOP : EEXIST;
}

/*
 * img.tmp = IMAGE ".tmp." and 16 hex digits nobody can guess, so that no
 * one can plant a file or a link there beforehand (O_EXCL refuses one
 * anyway; unguessable, nobody can make us fail by planting every name).
 */
static void random_tmp_name(void)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(ckpt_image_path);
	uint64_t r = 0;
	int i;

	if (getrandom(&r, sizeof(r), GRND_INSECURE) != sizeof(r)) {
		struct timespec ts;

		/* Guessable, but O_EXCL still makes the file ours. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = ckpt_xxh64(&ts, sizeof(ts)) ^ (uint64_t)getpid();
	}
	memcpy(img.tmp, ckpt_image_path, n);
	memcpy(img.tmp + n, ".tmp.", 5);
	n += 5;
	for (i = 0; i < 16; i++, r >>= 4)
		img.tmp[n++] = hex[r & 15];
	img.tmp[n] = '\0';
}

/* img.dir = the directory of ckpt_image_path. */
static void image_dir(void)
{
	const char *slash = strrchr(ckpt_image_path, '/');
	size_t n = slash ? (size_t)(slash - ckpt_image_path) : 0;

	if (!slash) {
		strcpy(img.dir, ".");
		return;
	}
	if (n == 0)
		n = 1; /* "/image" */
	memcpy(img.dir, ckpt_image_path, n);
	img.dir[n] = '\0';
}

/*
 * A new, empty file that only we have ever had open. An unnamed one
 * (O_TMPFILE) cannot be seen, opened or linked to by anyone while it is
 * written, and vanishes by itself if we are killed; where the filesystem
 * cannot make one, a new name of our own with O_EXCL (never an existing
 * file, never through a link).
 */
static int create_image_file(void)
{
	struct stat st;
	int tries, err;

	memset(&img, 0, sizeof(img));
	img.fd = -1;
	err = check_final_path();
	if (err)
		return err;
	image_dir();
	/* O_RDWR: the self-check maps what was written (dump_check.c). */
	img.fd = open(img.dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (img.fd >= 0) {
		img.unnamed = 1;
	} else if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
		for (tries = 0; tries < 16; tries++) {
			random_tmp_name();
			img.fd = open(img.tmp, O_RDWR | O_CREAT | O_EXCL |
					       O_NOFOLLOW | O_CLOEXEC, 0600);
			if (img.fd >= 0 || errno != EEXIST)
				break;
		}
		img.named = img.fd >= 0;
	}
	if (img.fd < 0) {
		err = errno;
		ckpt_log("cannot create the image in", img.dir, err);
		return err;
	}
	/* It is new and ours, but say so only after checking. */
	if (fstat(img.fd, &st) < 0) {
		err = errno;
		ckpt_log("cannot stat the new image file in", img.dir, err);
		return err;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_nlink != (img.unnamed ? 0U : 1U)) {
		ckpt_log("refusing to write the image: the new file is not a "
			 "regular file of ours alone (choose a private "
			 "directory for CKPT_IMAGE) in",
			 img.dir, 0);
		return EEXIST;
	}
	/* Whatever the umask: it is all our memory. */
	if (fchmod(img.fd, 0600) < 0) {
		err = errno;
		ckpt_log("cannot chmod the new image file in", img.dir, err);
		return err;
	}
	return 0;
}

/*
 * Give an unnamed file a name: linkat never replaces an existing name, so
 * link it to a new unguessable one (through /proc/self/fd, which needs no
 * capability, unlike AT_EMPTY_PATH), then rename that over IMAGE.
 */
static int link_unnamed(void)
{
	struct logbuf lb = { .len = 0 };
	int tries;

	lb_str(&lb, "/proc/self/fd/");
	lb_num(&lb, (unsigned)img.fd);
	lb.buf[lb.len] = '\0';
	for (tries = 0; tries < 16; tries++) {
		random_tmp_name();
		if (linkat(AT_FDCWD, lb.buf, AT_FDCWD, img.tmp,
			   AT_SYMLINK_FOLLOW) == 0) {
			img.named = 1;
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	ckpt_log("cannot give the image a name in", img.dir, errno);
	return errno;
}

/*
 * The image is complete: name it if it has no name yet, close it (a
 * filesystem may report a failed write only then), and put it at the final
 * path in one step.
 */
static int publish_image_file(void)
{
	int err;

	if (img.unnamed) {
		err = link_unnamed();
		if (err)
			return err;
	}
	err = close(img.fd) < 0 ? errno : 0;
	img.fd = -1;
	if (err) {
		ckpt_log("cannot write the image", ckpt_image_path, err);
		return err;
	}
	/* Planted while we wrote? Same message as before writing. */
	err = check_final_path();
	if (err)
		return err;
	if (rename(img.tmp, ckpt_image_path) < 0) {
		err = errno;
		ckpt_log("cannot rename the image to", ckpt_image_path, err);
		return err;
	}
	img.named = 0;
	return 0;
}

/* A failed checkpoint leaves nothing behind (an unnamed file vanishes). */
static void discard_image_file(void)
{
	if (img.fd >= 0)
		close(img.fd);
	img.fd = -1;
	if (img.named)
		unlink(img.tmp);
	img.named = 0;
}

/*
 * Write the image of the process d describes to a new file and put it at
 * the final path. Runs in the process itself, or in the forked writer.
 */
int write_checkpoint(struct dump *d)
{
	int err, xfsz_before = sigxfsz_pending();

	err = create_image_file();
	if (err)
		goto out_discard;
	err = -collect_memory(d);
	if (err) {
		ckpt_log("cannot read the process's memory map", NULL, err);
		goto out_discard;
	}
	err = -write_image(d, img.fd);
	if (err) {
		ckpt_log("cannot write the image", ckpt_image_path, err);
		goto out_discard;
	}
	err = -ckpt_self_check(img.fd, &d->hdr);
	if (err)
		goto out_discard;
	err = publish_image_file();
	if (err)
		goto out_discard;
	if (ckpt_verbose)
		ckpt_log("image written to", ckpt_image_path, 0);
	goto out;

out_discard:
	discard_image_file();
out:
	drop_our_sigxfsz(xfsz_before);
	return err;
}
