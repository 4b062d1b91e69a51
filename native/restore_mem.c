/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * restore_mem.c - the program's private anonymous memory comes back as
 * private anonymous memory, filled before the point of no return.
 *
 * Each such region with data is mapped at its own address while myrestart
 * still runs (MAP_FIXED_NOREPLACE: where myrestart's own code, heap, stacks
 * or restore area are in the way, the region is left to the restore blob,
 * which copies it after unmapping them). Its runs are then copied in, on
 * two threads, piece by piece (the format's 1 MiB hash pieces), and each
 * piece is hashed from where it now lies, while it is still in the cache:
 * the image is read from the page cache once, and what is checked is what
 * the program gets. Pieces of the regions left to the blob are hashed in
 * the image. A mismatch still ends in one line and exit 11.
 *
 * The copy: UFFDIO_COPY (userfaultfd, registered on the placed regions
 * for missing pages) allocates each page and fills it in one step, where
 * a fault or MADV_POPULATE_WRITE would zero it first; measured 15-20%
 * faster than populating then pread() (benchmarks/README.md). The file
 * descriptor is closed before the program runs, which unregisters every
 * range: nothing of it stays in the program's VmFlags. Without
 * userfaultfd (kernel config, seccomp), or with MYRESTART_NO_UFFD=1 set,
 * each piece is populated and read with pread() instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ckpt_hash.h"
#include "ckpt_validate.h"
#include "restore_mem.h"
#include "restore_proc.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1 /* Linux 5.11 */
#endif

struct piece {
	uint64_t src; /* offset in the image */
	uint64_t len;
	uint64_t dst; /* where it goes now, or 0: hash it in the image */
};

struct fill {
	const unsigned char *img;
	const struct piece *pieces;
	uint64_t *digests;
	uint64_t nr;
	int uffd;     /* or -1: pread from image_fd */
	int image_fd;
	atomic_uint_fast64_t next;
	atomic_int error; /* errno of the first failed copy */
	atomic_uint_fast64_t error_at;
};

#define PIECES_PER_TAKE 4

/*
 * Map r at its address, readable and writable for the copy (the blob sets
 * its final permissions), with the flags restore_region of the blob would
 * give it. 1: placed; 0: in the way of something of ours (or refused),
 * left to the blob; -errno: no memory for it.
 */
static int place_region(const struct ckpt_region *r)
{
	uint64_t len = r->end - r->start;
	int prot = (int)r->prot | PROT_READ | PROT_WRITE;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
	void *want = (void *)(uintptr_t)r->start, *got;

	if (r->vmflags & CKPT_VM_NORESERVE)
		flags |= MAP_NORESERVE;
	got = mmap(want, len, prot, flags, -1, 0);
	/* Huge sparse reservations exceed the overcommit heuristic unless
	 * they are not accounted, as they were not before (same as the blob). */
	if (got == MAP_FAILED && errno == ENOMEM)
		got = mmap(want, len, prot, flags | MAP_NORESERVE, -1, 0);
	if (got == MAP_FAILED)
		return errno == ENOMEM ? -ENOMEM : 0;
	if (got != want) { /* a kernel that took NOREPLACE as a hint */
		munmap(got, len);
		return 0;
	}
	return 1;
}

/* userfaultfd for our own copies only: no privilege needed. -1: none. */
static int open_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	const char *no = getenv("MYRESTART_NO_UFFD");
	int fd;

	if (no && *no && strcmp(no, "0"))
		return -1;
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int uffd_copy(int uffd, uint64_t dst, const unsigned char *src,
		     uint64_t len)
{
	while (len) {
		struct uffdio_copy c = {
			.dst = dst, .src = (uintptr_t)src, .len = len, .mode = 0
		};

		if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		/* EAGAIN: the address space changed under the copy; go on
		 * from what was copied. */
		if (c.copy > 0) {
			dst += (uint64_t)c.copy;
			src += c.copy;
			len -= (uint64_t)c.copy;
		} else if (errno != EAGAIN) {
			return -errno;
		}
	}
	return 0;
}

static int pread_copy(int fd, uint64_t dst, uint64_t src, uint64_t len)
{
	/* Fault the pages in at once, not one fault per page inside the
	 * read; failure (an old kernel) only costs time. */
	madvise((void *)(uintptr_t)dst, len, MADV_POPULATE_WRITE);
	while (len) {
		ssize_t n = pread(fd, (void *)(uintptr_t)dst, len, (off_t)src);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		dst += (uint64_t)n;
		src += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static void *fill_worker(void *arg)
{
	struct fill *f = arg;
	uint64_t k, end;

	while ((k = atomic_fetch_add(&f->next, PIECES_PER_TAKE)) < f->nr) {
		end = k + PIECES_PER_TAKE < f->nr ? k + PIECES_PER_TAKE : f->nr;
		for (; k < end && !atomic_load(&f->error); k++) {
			const struct piece *p = &f->pieces[k];
			const unsigned char *src = f->img + p->src;
			int err;

			if (!p->dst || f->uffd >= 0)
				madvise((void *)src, p->len, MADV_POPULATE_READ);
			if (!p->dst) {
				f->digests[k] = ckpt_xxh64(src, p->len);
				continue;
			}
			err = f->uffd >= 0 ?
				      uffd_copy(f->uffd, p->dst, src, p->len) :
				      pread_copy(f->image_fd, p->dst, p->src,
						 p->len);
			if (err) {
				atomic_store(&f->error_at, p->dst);
				atomic_store(&f->error, -err);
				break;
			}
			f->digests[k] = ckpt_xxh64((const void *)(uintptr_t)p->dst,
						   p->len);
		}
	}
	return NULL;
}

static uint64_t place_regions(const unsigned char *img, uint8_t *placed)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *regs = (const void *)(img + h->regions_offset);
	uint64_t i, bytes = 0;
	int ret;

	for (i = 0; i < h->nr_regions; i++) {
		placed[i] = 0;
		if (!ckpt_region_placeable(&regs[i]))
			continue;
		ret = place_region(&regs[i]);
		if (ret < 0)
			ckpt_die(CKPT_EXIT_RESOURCE,
			    "cannot map the program's memory at 0x%llx-0x%llx: %s",
			    (unsigned long long)regs[i].start,
			    (unsigned long long)regs[i].end, strerror(-ret));
		placed[i] = (uint8_t)ret;
		bytes += ret ? regs[i].end - regs[i].start : 0;
	}
	return bytes;
}

/* Register the placed regions for missing pages, or give userfaultfd up. */
static int uffd_for(const unsigned char *img, const uint8_t *placed)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *regs = (const void *)(img + h->regions_offset);
	int uffd = open_uffd();
	uint64_t i;

	for (i = 0; uffd >= 0 && i < h->nr_regions; i++) {
		struct uffdio_register reg = {
			.range = { .start = regs[i].start,
				   .len = regs[i].end - regs[i].start },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (placed[i] && ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
			close(uffd); /* unregisters what was registered */
			uffd = -1;
		}
	}
	return uffd;
}

static struct piece *list_pieces(const unsigned char *img,
				 const uint8_t *placed, uint64_t *nr)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *regs = (const void *)(img + h->regions_offset);
	const struct ckpt_run *runs = (const void *)(img + h->runs_offset);
	uint64_t i, j, done, n = 0;
	struct piece *pieces;

	for (i = 0; i < h->nr_regions; i++)
		n += ckpt_region_pieces(img, i);
	pieces = malloc((n + 1) * sizeof(*pieces));
	if (!pieces)
		ckpt_die(CKPT_EXIT_RESOURCE, "out of memory");
	n = 0;
	for (i = 0; i < h->nr_regions; i++)
		for (j = 0; j < regs[i].nr_runs; j++) {
			const struct ckpt_run *run = &runs[regs[i].first_run + j];

			for (done = 0; done < run->len; done += CKPT_HASH_PIECE) {
				pieces[n].src = run->data_offset + done;
				pieces[n].len = ckpt_piece_len(run->len, done);
				pieces[n].dst = placed[i] ? run->start + done : 0;
				n++;
			}
		}
	*nr = n;
	return pieces;
}

static void check_digests(const unsigned char *img, const uint64_t *digests,
			  const char *path)
{
	const struct ckpt_header *h = (const void *)img;
	struct ckpt_verdict v = { 0 };
	uint64_t i, first = 0;

	for (i = 0; i < h->nr_regions && !v.status; i++) {
		ckpt_check_region_digests(img, i, digests + first, &v);
		first += ckpt_region_pieces(img, i);
	}
	if (v.status)
		ckpt_die(v.status, "%s: %s", path, v.msg);
}

uint64_t ckpt_restore_memory(const unsigned char *img, int image_fd,
			     const char *path, uint8_t *placed, int verbose)
{
	struct fill f = { .img = img, .image_fd = image_fd };
	uint64_t bytes = place_regions(img, placed);
	struct piece *pieces;
	pthread_t helper;
	int have_helper;

	f.uffd = uffd_for(img, placed);
	pieces = list_pieces(img, placed, &f.nr);
	f.pieces = pieces;
	f.digests = malloc((f.nr + 1) * sizeof(*f.digests));
	if (!f.digests)
		ckpt_die(CKPT_EXIT_RESOURCE, "out of memory");
	/* Without a second thread (limits), this one does it all. */
	have_helper = pthread_create(&helper, NULL, fill_worker, &f) == 0;
	fill_worker(&f);
	if (have_helper)
		pthread_join(helper, NULL);
	if (f.uffd >= 0)
		close(f.uffd);
	if (atomic_load(&f.error))
		ckpt_die(atomic_load(&f.error) == ENOMEM ? CKPT_EXIT_RESOURCE :
							  CKPT_EXIT_TRUNCATED,
		    "cannot copy the program's memory into place at 0x%llx: %s",
		    (unsigned long long)atomic_load(&f.error_at),
		    strerror(atomic_load(&f.error)));
	check_digests(img, f.digests, path);
	if (verbose)
		fprintf(stderr,
			"myrestart: %llu bytes of address space placed and "
			"filled before the point of no return (%s)\n",
			(unsigned long long)bytes,
			f.uffd >= 0 ? "userfaultfd" : "pread");
	free(pieces);
	free(f.digests);
	return bytes;
}
