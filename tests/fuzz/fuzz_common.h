/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_common.h - what the libFuzzer harness, the gcc driver and the seed
 * generator share: the contract check on a verdict, the fix-ups that let
 * mutated inputs get past the XXH64 checksums, and a builder for small
 * valid images. The layout comes from native/ckpt_image.h only (offsetof,
 * sizeof); nothing here restates it.
 *
 * Everything reads the (hostile) buffer with memcpy and overflow-checked
 * offsets: a harness bug must not be mistaken for one in ckpt_validate.
 *
 * FZ_HAVE_FDS: format version 2 added the fd table (struct ckpt_fd,
 * between the runs and the strings) and ghost-file data after the runs'.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_hash.h"
#include "ckpt_image.h"
#include "ckpt_validate.h"

#define FZ_HDR sizeof(struct ckpt_header)
#define FZ_REG sizeof(struct ckpt_region)
#define FZ_RUN sizeof(struct ckpt_run)
#if CKPT_FORMAT_VERSION >= 2
#define FZ_HAVE_FDS 1
#define FZ_FD sizeof(struct ckpt_fd)
#else
#define FZ_HAVE_FDS 0
#endif
/* Format version 3 added the POSIX timer and pending signal tables. */
#if CKPT_FORMAT_VERSION >= 3
#define FZ_HAVE_TIMERS 1
#define FZ_TIMER sizeof(struct ckpt_timer)
#define FZ_SIGNAL sizeof(struct ckpt_signal)
#else
#define FZ_HAVE_TIMERS 0
#endif

/* A field that a mutation may overwrite: offset and width in bytes. */
struct fz_field {
	const char *name;
	size_t off;
	size_t size;
};

#define FZ_H(f) { #f, offsetof(struct ckpt_header, f), \
		  sizeof(((struct ckpt_header *)0)->f) }
#define FZ_R(f) { #f, offsetof(struct ckpt_region, f), \
		  sizeof(((struct ckpt_region *)0)->f) }
#define FZ_U(f) { #f, offsetof(struct ckpt_run, f), \
		  sizeof(((struct ckpt_run *)0)->f) }
#define FZ_F(f) { #f, offsetof(struct ckpt_fd, f), \
		  sizeof(((struct ckpt_fd *)0)->f) }

static const struct fz_field fz_header_fields[] = {
	FZ_H(version), FZ_H(header_size), FZ_H(arch), FZ_H(page_size),
	FZ_H(image_size), FZ_H(header_checksum), FZ_H(tables_checksum),
	FZ_H(data_offset), FZ_H(data_size), FZ_H(regions_offset),
	FZ_H(nr_regions), FZ_H(runs_offset), FZ_H(nr_runs),
#if FZ_HAVE_FDS
	FZ_H(fds_offset), FZ_H(nr_fds), FZ_H(proc.cwd_offset),
	FZ_H(proc.cwd_len),
#endif
#if FZ_HAVE_TIMERS
	FZ_H(timers_offset), FZ_H(nr_timers), FZ_H(signals_offset),
	FZ_H(nr_signals),
#endif
	FZ_H(strings_offset), FZ_H(strings_size), FZ_H(exe_name_offset),
	FZ_H(exe_name_len), FZ_H(resume_entry), FZ_H(resume_stack),
	FZ_H(rseq.addr), FZ_H(mm.auxv_size),
	/* The timer values refused before the point of no return. */
	FZ_H(proc.timerslack_ns), FZ_H(proc.itimers[0].interval_us),
	FZ_H(proc.itimers[0].value_us), FZ_H(proc.itimers[2].value_us),
};

static const struct fz_field fz_region_fields[] = {
	FZ_R(start), FZ_R(end), FZ_R(file_offset), FZ_R(first_run),
	FZ_R(nr_runs), FZ_R(stored_bytes), FZ_R(checksum), FZ_R(prot),
	FZ_R(kind), FZ_R(flags), FZ_R(name_offset), FZ_R(name_len),
};

static const struct fz_field fz_run_fields[] = {
	FZ_U(start), FZ_U(len), FZ_U(data_offset),
};

#if FZ_HAVE_FDS
static const struct fz_field fz_fd_fields[] = {
	FZ_F(fd), FZ_F(type), FZ_F(path_offset), FZ_F(path_len),
	FZ_F(size), FZ_F(data_offset), FZ_F(data_len), FZ_F(checksum),
};
#endif

#define FZ_NELEM(a) (sizeof(a) / sizeof((a)[0]))

static inline uint64_t fz_get(const unsigned char *p, size_t size)
{
	uint64_t v = 0;

	memcpy(&v, p, size); /* little-endian: the low bytes */
	return v;
}

static inline void fz_put(unsigned char *p, size_t size, uint64_t v)
{
	memcpy(p, &v, size);
}

/* off + n * size fits in len (all overflow-checked). */
static inline int fz_fits(uint64_t off, uint64_t n, uint64_t size,
			  uint64_t len)
{
	uint64_t prod, end;

	return !__builtin_mul_overflow(n, size, &prod) &&
	       !__builtin_add_overflow(off, prod, &end) && end <= len;
}

/*
 * The contract of ckpt_validate for any input: the return value is the
 * verdict's status, 0 or a CKPT_EXIT_* value; a failure has a non-empty,
 * NUL-terminated, one-line message. Returns NULL or what was broken.
 */
static inline const char *fz_contract(int ret, const struct ckpt_verdict *v,
				      int check_data)
{
	const char *end = memchr(v->msg, '\0', sizeof(v->msg));

	if (ret != v->status)
		return "the return value differs from v->status";
	if (ret == 0)
		return NULL;
	if (ret < CKPT_EXIT_USAGE || ret > CKPT_EXIT_RESTORE)
		return "the status is not a CKPT_EXIT_* value";
	if (!check_data && ret == CKPT_EXIT_DATA_CORRUPT)
		return "a data checksum failure without check_data";
	if (!end)
		return "the message is not NUL-terminated";
	if (end == v->msg)
		return "the message is empty";
	if (memchr(v->msg, '\n', (size_t)(end - v->msg)))
		return "the message has a newline";
	return NULL;
}

/*
 * After ckpt_validate passed: the machine's limits (ckpt_check_limits),
 * small ones so that mutated region counts and addresses reach both
 * refusals. Same contract, and only CKPT_EXIT_RESOURCE may come of it.
 */
static inline const char *fz_check_limits(const void *img)
{
	static const struct ckpt_limits lim = { 64, 65536, 0 };
	struct ckpt_verdict v;
	const char *what;
	int ret;

	memset(&v, 0xa5, sizeof(v));
	ret = ckpt_check_limits(img, &lim, &v);
	what = fz_contract(ret, &v, 0);
	if (!what && ret && ret != CKPT_EXIT_RESOURCE)
		what = "ckpt_check_limits gave another status than RESOURCE";
	return what;
}

/* Feed one run's bytes to a region checksum: 1 MiB pieces (ckpt_image.h). */
static inline void fz_hash_run(struct ckpt_xxh64_seq *xs,
			       const unsigned char *p, uint64_t len)
{
	uint64_t done;

	for (done = 0; done < len; done += CKPT_HASH_PIECE)
		ckpt_xxh64_seq_add(xs, ckpt_xxh64(p + done,
						  ckpt_piece_len(len, done)));
}

/*
 * Recompute the region checksums (where the region's runs and their data
 * are in bounds), the tables checksum and the header checksum, and set
 * image_size to len: the checks behind the checksums become reachable.
 */
static inline void fz_fix_checksums(unsigned char *buf, size_t len)
{
	struct ckpt_header h;
	/* Overlapping runs could make this quadratic: bound the work. */
	uint64_t steps = 4 * (uint64_t)len + 4096, i, j;

	if (len < FZ_HDR)
		return;
	memcpy(&h, buf, FZ_HDR);
	h.image_size = len;
	if (fz_fits(h.regions_offset, h.nr_regions, FZ_REG, len) &&
	    fz_fits(h.runs_offset, h.nr_runs, FZ_RUN, len)) {
		for (i = 0; i < h.nr_regions; i++) {
			unsigned char *rp = buf + h.regions_offset + i * FZ_REG;
			struct ckpt_region r;
			struct ckpt_xxh64_seq xs;

			memcpy(&r, rp, FZ_REG);
			if (r.first_run > h.nr_runs ||
			    r.nr_runs > h.nr_runs - r.first_run)
				continue;
			ckpt_xxh64_seq_init(&xs);
			for (j = 0; j < r.nr_runs; j++) {
				struct ckpt_run run;

				memcpy(&run, buf + h.runs_offset +
						     (r.first_run + j) * FZ_RUN,
				       FZ_RUN);
				if ((run.len & 31) || run.len / 32 + 1 > steps ||
				    !fz_fits(run.data_offset, 1, run.len, len))
					break;
				steps -= run.len / 32 + 1;
				fz_hash_run(&xs, buf + run.data_offset, run.len);
			}
			if (j < r.nr_runs)
				continue;
			r.checksum = ckpt_xxh64_seq_final(&xs);
			memcpy(rp, &r, FZ_REG);
		}
	}
#if FZ_HAVE_FDS
	if (fz_fits(h.fds_offset, h.nr_fds, FZ_FD, len)) {
		for (i = 0; i < h.nr_fds; i++) {
			unsigned char *fp = buf + h.fds_offset + i * FZ_FD;
			struct ckpt_fd f;

			memcpy(&f, fp, FZ_FD);
			if (f.type != CKPT_FD_GHOST || f.size > steps ||
			    !fz_fits(f.data_offset, 1, f.size, len))
				continue;
			steps -= f.size;
			f.checksum = ckpt_xxh64(buf + f.data_offset, f.size);
			memcpy(fp, &f, FZ_FD);
		}
	}
#endif
	if (h.regions_offset <= len)
		h.tables_checksum = ckpt_xxh64(buf + h.regions_offset,
					       len - h.regions_offset);
	h.header_checksum = 0;
	h.header_checksum = ckpt_xxh64(&h, FZ_HDR);
	memcpy(buf, &h, FZ_HDR);
}

/*
 * Restore the identity fields (magic, version, sizes, arch), make the table
 * of contents consistent with len (data at the page after the header, then
 * regions, runs, strings to the end), keeping the counts where they fit,
 * then fix the checksums.
 */
static inline void fz_fix_layout(unsigned char *buf, size_t len)
{
	struct ckpt_header h;
	uint64_t left;

	if (len < CKPT_PAGE_SIZE)
		return fz_fix_checksums(buf, len);
	memcpy(&h, buf, FZ_HDR);
	memcpy(h.magic, CKPT_MAGIC, sizeof(CKPT_MAGIC));
	h.version = CKPT_FORMAT_VERSION;
	h.header_size = FZ_HDR;
	h.arch = CKPT_ARCH_X86_64;
	h.page_size = CKPT_PAGE_SIZE;
	h.data_offset = CKPT_PAGE_SIZE;
	left = len - CKPT_PAGE_SIZE;
	if (h.data_size > left)
		h.data_size = left & ~(uint64_t)(CKPT_PAGE_SIZE - 1);
	left -= h.data_size;
	h.regions_offset = h.data_offset + h.data_size;
	if (h.nr_regions > left / FZ_REG)
		h.nr_regions = left / FZ_REG;
	left -= h.nr_regions * FZ_REG;
	h.runs_offset = h.regions_offset + h.nr_regions * FZ_REG;
	if (h.nr_runs > left / FZ_RUN)
		h.nr_runs = left / FZ_RUN;
	left -= h.nr_runs * FZ_RUN;
	h.strings_offset = h.runs_offset + h.nr_runs * FZ_RUN;
#if FZ_HAVE_FDS
	h.fds_offset = h.strings_offset;
	if (h.nr_fds > left / FZ_FD)
		h.nr_fds = left / FZ_FD;
	left -= h.nr_fds * FZ_FD;
	h.strings_offset = h.fds_offset + h.nr_fds * FZ_FD;
#endif
#if FZ_HAVE_TIMERS
	h.timers_offset = h.strings_offset;
	if (h.nr_timers > left / FZ_TIMER)
		h.nr_timers = left / FZ_TIMER;
	left -= h.nr_timers * FZ_TIMER;
	h.signals_offset = h.timers_offset + h.nr_timers * FZ_TIMER;
	if (h.nr_signals > left / FZ_SIGNAL)
		h.nr_signals = left / FZ_SIGNAL;
	left -= h.nr_signals * FZ_SIGNAL;
	h.strings_offset = h.signals_offset + h.nr_signals * FZ_SIGNAL;
#endif
	h.strings_size = left;
	memcpy(buf, &h, FZ_HDR);
	fz_fix_checksums(buf, len);
}

/* ------------------------------------------------------------------ */
/* Building images: the synthetic seed and the shrinking of real ones. */

struct fz_image {
	struct ckpt_header h;
	struct ckpt_region *regs;
	struct ckpt_run *runs;
	const unsigned char **run_data; /* run i's bytes */
#if FZ_HAVE_FDS
	struct ckpt_fd *fds;
	const unsigned char **fd_data; /* ghost fd i's size bytes */
#endif
#if FZ_HAVE_TIMERS
	const unsigned char *timers;  /* nr_timers entries, or NULL */
	const unsigned char *signals; /* nr_signals entries, or NULL */
#endif
	const char *strings;
};

/*
 * Serialize: lay data, regions, runs and strings out after the header page,
 * fill in every offset, stored size and checksum. The caller sets the
 * regions' runs (first_run, nr_runs), run start/len and the other header
 * fields. Returns a malloc'd buffer of *len bytes, or NULL.
 */
static inline unsigned char *fz_build(struct fz_image *im, size_t *len)
{
	struct ckpt_header *h = &im->h;
	uint64_t data = 0, off, i, j;
	unsigned char *buf;

	for (i = 0; i < h->nr_runs; i++)
		data += im->runs[i].len;
#if FZ_HAVE_FDS
	for (i = 0; i < h->nr_fds; i++) {
		struct ckpt_fd *f = &im->fds[i];

		f->data_len = f->type == CKPT_FD_GHOST
				      ? (f->size + CKPT_PAGE_SIZE - 1) &
						~(uint64_t)(CKPT_PAGE_SIZE - 1)
				      : 0;
		data += f->data_len;
	}
#endif
	h->data_offset = CKPT_PAGE_SIZE;
	h->data_size = data;
	h->regions_offset = h->data_offset + data;
	h->runs_offset = h->regions_offset + h->nr_regions * FZ_REG;
	h->strings_offset = h->runs_offset + h->nr_runs * FZ_RUN;
#if FZ_HAVE_FDS
	h->fds_offset = h->strings_offset;
	h->strings_offset = h->fds_offset + h->nr_fds * FZ_FD;
#endif
#if FZ_HAVE_TIMERS
	if (!im->timers)
		h->nr_timers = 0;
	if (!im->signals)
		h->nr_signals = 0;
	h->timers_offset = h->strings_offset;
	h->signals_offset = h->timers_offset + h->nr_timers * FZ_TIMER;
	h->strings_offset = h->signals_offset + h->nr_signals * FZ_SIGNAL;
#endif
	h->image_size = h->strings_offset + h->strings_size;
	buf = calloc(1, h->image_size);
	if (!buf)
		return NULL;
	off = h->data_offset;
	for (i = 0; i < h->nr_regions; i++) {
		struct ckpt_region *r = &im->regs[i];
		struct ckpt_xxh64_seq xs;

		ckpt_xxh64_seq_init(&xs);
		r->stored_bytes = 0;
		for (j = r->first_run; j < r->first_run + r->nr_runs; j++) {
			struct ckpt_run *run = &im->runs[j];

			run->data_offset = off;
			memcpy(buf + off, im->run_data[j], run->len);
			fz_hash_run(&xs, buf + off, run->len);
			off += run->len;
			r->stored_bytes += run->len;
		}
		r->checksum = ckpt_xxh64_seq_final(&xs);
	}
#if FZ_HAVE_FDS
	for (i = 0; i < h->nr_fds; i++) {
		struct ckpt_fd *f = &im->fds[i];

		if (f->type != CKPT_FD_GHOST)
			continue;
		f->data_offset = off;
		memcpy(buf + off, im->fd_data[i], f->size);
		f->checksum = ckpt_xxh64(buf + off, f->size);
		off += f->data_len;
	}
	if (h->nr_fds)
		memcpy(buf + h->fds_offset, im->fds, h->nr_fds * FZ_FD);
#endif
#if FZ_HAVE_TIMERS
	if (h->nr_timers)
		memcpy(buf + h->timers_offset, im->timers, h->nr_timers * FZ_TIMER);
	if (h->nr_signals)
		memcpy(buf + h->signals_offset, im->signals,
		       h->nr_signals * FZ_SIGNAL);
#endif
	/* memcpy from NULL is undefined even for 0 bytes */
	if (h->nr_regions)
		memcpy(buf + h->regions_offset, im->regs,
		       h->nr_regions * FZ_REG);
	if (h->nr_runs)
		memcpy(buf + h->runs_offset, im->runs, h->nr_runs * FZ_RUN);
	if (h->strings_size)
		memcpy(buf + h->strings_offset, im->strings, h->strings_size);
	h->tables_checksum = ckpt_xxh64(buf + h->regions_offset,
					h->image_size - h->regions_offset);
	h->header_checksum = 0;
	h->header_checksum = ckpt_xxh64(h, FZ_HDR);
	memcpy(buf, h, FZ_HDR);
	*len = h->image_size;
	return buf;
}

/*
 * A small image that passes ckpt_validate with check_data: libckpt.so's
 * code, a data page, the stack with two stored pages, the vDSO and vvar.
 */
static inline unsigned char *fz_synthetic(size_t *len)
{
	static const char strings[] =
		"/opt/extckpt/libckpt.so[stack][vdso][vvar]/dev/null/tmp/x";
	static unsigned char page_a[CKPT_PAGE_SIZE], page_b[2 * CKPT_PAGE_SIZE];
#if FZ_HAVE_FDS
	static const unsigned char ghost[] = "contents of a deleted file\n";
	const unsigned char *fd_data[2] = { NULL, ghost };
	struct ckpt_fd fds[2] = {
		{ .fd = 0, .type = CKPT_FD_CHAR, .flags = 2, .rdev = 0x103,
		  .mode = 020666, .path_offset = 42, .path_len = 9 },
		{ .fd = 3, .type = CKPT_FD_GHOST, .flags = 2,
		  .size = sizeof(ghost) - 1, .mode = 0100600,
		  .path_offset = 51, .path_len = 6 },
	};
#endif
	const uint64_t lib = 0x7f0000000000ULL, stk = 0x7ffc00000000ULL;
	struct ckpt_region regs[5];
	struct ckpt_run runs[2];
	const unsigned char *run_data[2] = { page_a, page_b };
	struct fz_image im = { .regs = regs, .runs = runs,
			       .run_data = run_data, .strings = strings };
	struct ckpt_header *h = &im.h;
	size_t i;

#if FZ_HAVE_FDS
	im.fds = fds;
	im.fd_data = fd_data;
#endif
	for (i = 0; i < sizeof(page_a); i++)
		page_a[i] = (unsigned char)(i * 7);
	for (i = 0; i < sizeof(page_b); i++)
		page_b[i] = (unsigned char)(i >> 3);
	memset(regs, 0, sizeof(regs));
	memset(runs, 0, sizeof(runs));
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, CKPT_MAGIC, sizeof(CKPT_MAGIC));
	h->version = CKPT_FORMAT_VERSION;
	h->header_size = FZ_HDR;
	h->arch = CKPT_ARCH_X86_64;
	h->page_size = CKPT_PAGE_SIZE;
	h->nr_regions = 5;
	h->nr_runs = 2;
	h->strings_size = sizeof(strings) - 1;
	h->pid = 4242;
	h->signo = 12;
	h->exe_name_offset = 0;
	h->exe_name_len = 23;
	h->resume_entry = lib + 0x1230;
	h->resume_stack = stk + 0x3f00;
	h->rseq.addr = stk + 0x100;
	h->rseq.len = 32;
	h->mm.auxv_size = 32;
#if FZ_HAVE_FDS
	h->nr_fds = 2;
	h->proc.cwd_offset = 51; /* "/tmp" */
	h->proc.cwd_len = 4;
#endif

	/* libckpt.so code, file-backed, nothing stored */
	regs[0] = (struct ckpt_region){ .start = lib, .end = lib + 0x4000,
		.prot = 5, .kind = CKPT_KIND_FILE, .flags = CKPT_REGION_CKPTLIB,
		.name_offset = 0, .name_len = 23, .dev = 0x803, .ino = 99,
		.file_size = 0x6000, .mtime_ns = 1 };
	/* libckpt.so data, one modified page */
	regs[1] = (struct ckpt_region){ .start = lib + 0x5000,
		.end = lib + 0x6000, .file_offset = 0x5000, .prot = 3,
		.kind = CKPT_KIND_FILE, .flags = CKPT_REGION_CKPTLIB,
		.name_offset = 0, .name_len = 23, .first_run = 0, .nr_runs = 1,
		.dev = 0x803, .ino = 99, .file_size = 0x6000, .mtime_ns = 1 };
	runs[0] = (struct ckpt_run){ .start = lib + 0x5000,
				     .len = CKPT_PAGE_SIZE };
	/* the stack, two of its four pages stored */
	regs[2] = (struct ckpt_region){ .start = stk, .end = stk + 0x4000,
		.prot = 3, .kind = CKPT_KIND_ANON,
		.flags = CKPT_REGION_GROWSDOWN, .name_offset = 23,
		.name_len = 7, .first_run = 1, .nr_runs = 1 };
	runs[1] = (struct ckpt_run){ .start = stk + 0x2000,
				     .len = 2 * CKPT_PAGE_SIZE };
	regs[3] = (struct ckpt_region){ .start = stk + 0x10000,
		.end = stk + 0x12000, .prot = 5, .kind = CKPT_KIND_VDSO,
		.name_offset = 30, .name_len = 6, .first_run = 2 };
	regs[4] = (struct ckpt_region){ .start = stk + 0x12000,
		.end = stk + 0x16000, .prot = 1, .kind = CKPT_KIND_VVAR,
		.name_offset = 36, .name_len = 6, .first_run = 2 };
	return fz_build(&im, len);
}

/*
 * Rebuild a valid image keeping every region but at most max_pages pages
 * of stored data (the first runs, cut to fit), so a real multi-megabyte
 * checkpoint becomes a seed of a few KB with its real tables.
 */
static inline unsigned char *fz_shrink(const unsigned char *img, size_t len,
				       uint64_t max_pages, size_t *out_len)
{
	struct ckpt_verdict v;
	struct fz_image im;
	struct ckpt_run *old_runs;
	uint64_t budget = max_pages * CKPT_PAGE_SIZE, i, j, n = 0;
	unsigned char *out = NULL;

	if (ckpt_validate(img, len, 1, &v))
		return NULL;
	memset(&im, 0, sizeof(im));
	memcpy(&im.h, img, FZ_HDR);
	im.regs = malloc(im.h.nr_regions * FZ_REG + 1);
	old_runs = malloc(im.h.nr_runs * FZ_RUN + 1);
	im.runs = malloc(im.h.nr_runs * FZ_RUN + 1);
	im.run_data = malloc(im.h.nr_runs * sizeof(*im.run_data) + 1);
	im.strings = (const char *)img + im.h.strings_offset;
	if (!im.regs || !old_runs || !im.runs || !im.run_data)
		goto out;
#if FZ_HAVE_FDS
	im.fds = malloc(im.h.nr_fds * FZ_FD + 1);
	im.fd_data = malloc(im.h.nr_fds * sizeof(*im.fd_data) + 1);
	if (!im.fds || !im.fd_data)
		goto out;
	memcpy(im.fds, img + im.h.fds_offset, im.h.nr_fds * FZ_FD);
	for (i = 0; i < im.h.nr_fds; i++)
		im.fd_data[i] = img + im.fds[i].data_offset;
#endif
#if FZ_HAVE_TIMERS
	im.timers = img + im.h.timers_offset;
	im.signals = img + im.h.signals_offset;
#endif
	memcpy(im.regs, img + im.h.regions_offset, im.h.nr_regions * FZ_REG);
	memcpy(old_runs, img + im.h.runs_offset, im.h.nr_runs * FZ_RUN);
	for (i = 0; i < im.h.nr_regions; i++) {
		struct ckpt_region *r = &im.regs[i];
		uint64_t first = n;

		for (j = r->first_run; j < r->first_run + r->nr_runs; j++) {
			struct ckpt_run run = old_runs[j];

			if (!budget)
				break;
			if (run.len > budget)
				run.len = budget;
			budget -= run.len;
			im.run_data[n] = img + run.data_offset;
			im.runs[n++] = run;
		}
		r->first_run = first;
		r->nr_runs = n - first;
	}
	im.h.nr_runs = n;
	out = fz_build(&im, out_len);
out:
#if FZ_HAVE_FDS
	free(im.fds);
	free((void *)im.fd_data);
#endif
	free(im.regs);
	free(old_runs);
	free(im.runs);
	free((void *)im.run_data);
	return out;
}

#endif /* FUZZ_COMMON_H */
