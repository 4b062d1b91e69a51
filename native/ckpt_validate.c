/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ckpt_validate.c - reject a bad image with a sentence and a distinct status
 * before myrestart destroys anything. Every offset and count read from the
 * file is bounds-checked before use, with overflow-safe arithmetic: the
 * input is hostile until proven otherwise (tests/fuzz feeds it garbage).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ckpt_hash.h"
#include "ckpt_validate.h"

#define PAGE_MASK ((uint64_t)CKPT_PAGE_SIZE - 1)
#define KNOWN_FLAGS                                                        \
	(CKPT_REGION_SHARED | CKPT_REGION_GROWSDOWN | CKPT_REGION_HEAP |   \
	 CKPT_REGION_CKPTLIB | CKPT_REGION_UNREADABLE | CKPT_REGION_CONTENT_HASH)
#define KNOWN_VMFLAGS 0x7ffU

__attribute__((format(printf, 3, 4))) static int
fail(struct ckpt_verdict *v, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
	va_end(ap);
	v->status = status;
	return status;
}

void ckpt_region_name(const void *img, const struct ckpt_region *r,
		      char *buf, size_t size)
{
	const struct ckpt_header *h = img;
	const char *s = (const char *)img + h->strings_offset + r->name_offset;
	size_t n = r->name_len < size - 1 ? r->name_len : size - 1;

	if (!r->name_len) {
		snprintf(buf, size, "anonymous");
		return;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
}

/* a + b * c <= limit, without overflow; stores a + b * c in *out. */
static int span_ok(uint64_t a, uint64_t b, uint64_t c, uint64_t limit,
		   uint64_t *out)
{
	uint64_t prod, sum;

	if (__builtin_mul_overflow(b, c, &prod) ||
	    __builtin_add_overflow(a, prod, &sum) || sum > limit)
		return 0;
	*out = sum;
	return 1;
}

static int check_header(const unsigned char *img, size_t len,
			struct ckpt_verdict *v)
{
	struct ckpt_header h;
	uint64_t sum, end;

	if (len == 0)
		return fail(v, CKPT_EXIT_EMPTY, "the image file is empty");
	if (len < sizeof(CKPT_MAGIC) ||
	    memcmp(img, CKPT_MAGIC, sizeof(CKPT_MAGIC)) != 0)
		return fail(v, CKPT_EXIT_BAD_MAGIC,
			    "not an extckpt image (no EXTCKPT magic at its start)");
	if (len < sizeof(h))
		return fail(v, CKPT_EXIT_TRUNCATED,
			    "the image is truncated: %zu bytes, shorter than its "
			    "%zu-byte header",
			    len, sizeof(h));
	memcpy(&h, img, sizeof(h));
	if (h.version != CKPT_FORMAT_VERSION)
		return fail(v, CKPT_EXIT_VERSION,
			    "the image has format version %u; this extckpt reads "
			    "version %u only",
			    h.version, CKPT_FORMAT_VERSION);
	if (h.arch != CKPT_ARCH_X86_64 || h.page_size != CKPT_PAGE_SIZE)
		return fail(v, CKPT_EXIT_ARCH,
			    "the image is for machine type %u with %u-byte pages; "
			    "this is x86-64 (%u) with %u-byte pages",
			    h.arch, h.page_size, CKPT_ARCH_X86_64, CKPT_PAGE_SIZE);
	if (h.header_size != sizeof(h))
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image header is corrupted (size %u, expected %zu)",
			    h.header_size, sizeof(h));
	sum = h.header_checksum;
	h.header_checksum = 0;
	if (ckpt_xxh64(&h, sizeof(h)) != sum)
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image header is corrupted (checksum mismatch)");
	if (h.image_size != len)
		return fail(v, CKPT_EXIT_TRUNCATED,
			    "the image is %s: %zu bytes, its header says %llu",
			    len < h.image_size ? "truncated" : "longer than written",
			    len, (unsigned long long)h.image_size);

	/* header | data | regions | runs | strings, contiguous. */
	/* Page-aligned data keeps every table that follows it aligned. */
	if (h.data_offset != CKPT_PAGE_SIZE || (h.data_size & PAGE_MASK) ||
	    !span_ok(h.data_offset, h.data_size, 1, len, &end) ||
	    h.regions_offset != end ||
	    !span_ok(h.regions_offset, h.nr_regions, sizeof(struct ckpt_region),
		     len, &end) ||
	    h.runs_offset != end ||
	    !span_ok(h.runs_offset, h.nr_runs, sizeof(struct ckpt_run), len,
		     &end) ||
	    h.fds_offset != end ||
	    !span_ok(h.fds_offset, h.nr_fds, sizeof(struct ckpt_fd), len,
		     &end) ||
	    h.timers_offset != end ||
	    !span_ok(h.timers_offset, h.nr_timers, sizeof(struct ckpt_timer),
		     len, &end) ||
	    h.signals_offset != end ||
	    !span_ok(h.signals_offset, h.nr_signals,
		     sizeof(struct ckpt_signal), len, &end) ||
	    h.strings_offset != end ||
	    !span_ok(h.strings_offset, h.strings_size, 1, len, &end) ||
	    end != len)
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's table of contents is corrupted");
	if (ckpt_xxh64(img + h.regions_offset, len - h.regions_offset) !=
	    h.tables_checksum)
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's region tables are corrupted (checksum "
			    "mismatch)");
	if (h.exe_name_offset > h.strings_size ||
	    h.exe_name_len > h.strings_size - h.exe_name_offset ||
	    h.proc.cwd_offset > h.strings_size ||
	    h.proc.cwd_len > h.strings_size - h.proc.cwd_offset)
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's program name or directory is out of "
			    "bounds");
	return 0;
}

static const struct ckpt_region *find_region(const struct ckpt_region *regs,
					     uint64_t n, uint64_t addr)
{
	uint64_t lo = 0, hi = n;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (addr < regs[mid].start)
			hi = mid;
		else if (addr >= regs[mid].end)
			lo = mid + 1;
		else
			return &regs[mid];
	}
	return NULL;
}

/* fds: sorted, distinct, known types; ghost data follows the runs' data. */
static int check_fds(const unsigned char *img, uint64_t next_data,
		     struct ckpt_verdict *v)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_fd *fds = (const void *)(img + h->fds_offset);
	uint64_t i;

	for (i = 0; i < h->nr_fds; i++) {
		const struct ckpt_fd *f = &fds[i];

		if (f->fd < 0 || (i && f->fd <= fds[i - 1].fd) ||
		    f->type > CKPT_FD_OTHER || f->path_offset > h->strings_size ||
		    f->path_len > h->strings_size - f->path_offset)
			return fail(v, CKPT_EXIT_CORRUPT,
				    "the image's entry for fd %d is corrupted",
				    f->fd);
		if (f->type == CKPT_FD_GHOST) {
			uint64_t end;

			/* Bounded by the data area: no sum of sizes can wrap. */
			if (f->data_offset != next_data ||
			    !span_ok(f->data_offset, f->data_len, 1,
				     h->data_offset + h->data_size, &end) ||
			    f->data_len != ((f->size + CKPT_PAGE_SIZE - 1) &
					    ~PAGE_MASK) ||
			    f->size > f->data_len)
				return fail(v, CKPT_EXIT_CORRUPT,
					    "the image's saved contents of fd %d "
					    "are out of bounds",
					    f->fd);
			next_data += f->data_len;
		} else if (f->data_len) {
			return fail(v, CKPT_EXIT_CORRUPT,
				    "the image's entry for fd %d is corrupted",
				    f->fd);
		}
	}
	if (next_data != h->data_offset + h->data_size)
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's runs and files do not cover its data");
	return 0;
}

static int check_itimers_slack(const struct ckpt_header *h,
			       struct ckpt_verdict *v);

static int check_timers_signals(const unsigned char *img,
				struct ckpt_verdict *v)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_timer *t = (const void *)(img + h->timers_offset);
	const struct ckpt_signal *sg = (const void *)(img + h->signals_offset);
	uint64_t i;

	for (i = 0; i < h->nr_timers; i++)
		if (t[i].id < 0 || t[i].signo < 0 || t[i].signo > CKPT_NSIG ||
		    (t[i].notify != 0 && t[i].notify != 1 && t[i].notify != 4))
			return fail(v, CKPT_EXIT_CORRUPT,
				    "the image's POSIX timer %llu is corrupted",
				    (unsigned long long)i);
	for (i = 0; i < h->nr_signals; i++)
		if (sg[i].signo < 1 || sg[i].signo > CKPT_NSIG)
			return fail(v, CKPT_EXIT_CORRUPT,
				    "the image's pending signal %llu is corrupted",
				    (unsigned long long)i);
	return check_itimers_slack(h, v);
}

/*
 * The kernel keeps timer values as signed 64-bit nanoseconds (ktime_t): an
 * interval timer or a timer slack beyond that was never reported by it,
 * and setitimer() or PR_SET_TIMERSLACK, after the point of no return,
 * would clamp or refuse it.
 */
#define KTIME_MAX_NS ((uint64_t)INT64_MAX)

static int check_itimers_slack(const struct ckpt_header *h,
			       struct ckpt_verdict *v)
{
	static const char *const names[3] = { "ITIMER_REAL", "ITIMER_VIRTUAL",
					      "ITIMER_PROF" };
	int i;

	for (i = 0; i < 3; i++) {
		const struct ckpt_itimer *t = &h->proc.itimers[i];

		if (t->interval_us > KTIME_MAX_NS / 1000 ||
		    t->value_us > KTIME_MAX_NS / 1000)
			return fail(v, CKPT_EXIT_CORRUPT,
				    "the image's %s (interval %llu us, value "
				    "%llu us) is beyond what the kernel keeps",
				    names[i],
				    (unsigned long long)t->interval_us,
				    (unsigned long long)t->value_us);
	}
	if (h->proc.timerslack_ns > KTIME_MAX_NS)
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's timer slack (%llu ns) is beyond what "
			    "the kernel keeps",
			    (unsigned long long)h->proc.timerslack_ns);
	return 0;
}

int ckpt_check_limits(const void *img, const struct ckpt_limits *lim,
		      struct ckpt_verdict *v)
{
	const struct ckpt_header *h = img;
	const struct ckpt_region *regs =
		(const void *)((const unsigned char *)img + h->regions_offset);
	char name[256];

	v->status = 0;
	v->msg[0] = '\0';
	/* Our blob, plan and stack and the image take a few more. */
	if (h->nr_regions + CKPT_OWN_MAPS > lim->max_map_count)
		return fail(v, CKPT_EXIT_RESOURCE,
			    "the image has %llu memory regions; "
			    "vm.max_map_count (%llu) allows fewer: raise it "
			    "(sysctl vm.max_map_count=%llu) to restart",
			    (unsigned long long)h->nr_regions,
			    (unsigned long long)lim->max_map_count,
			    (unsigned long long)(h->nr_regions + 1024));
	if (h->nr_regions && regs[0].start < lim->mmap_min_addr &&
	    !lim->may_map_low) {
		ckpt_region_name(img, &regs[0], name, sizeof(name));
		return fail(v, CKPT_EXIT_RESOURCE,
			    "the image has memory at 0x%llx (%s), below "
			    "vm.mmap_min_addr (0x%llx): restart as root "
			    "(CAP_SYS_RAWIO) or lower vm.mmap_min_addr",
			    (unsigned long long)regs[0].start, name,
			    (unsigned long long)lim->mmap_min_addr);
	}
	return 0;
}

static int check_regions(const unsigned char *img, struct ckpt_verdict *v)
{
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *regs = (const void *)(img + h->regions_offset);
	const struct ckpt_run *runs = (const void *)(img + h->runs_offset);
	uint64_t prev_end = 0, next_run = 0, next_data = h->data_offset;
	unsigned special_seen = 0;
	const struct ckpt_region *r;
	uint64_t i, j;

	for (i = 0; i < h->nr_regions; i++) {
		uint64_t stored = 0;

		r = &regs[i];
		if (r->start >= r->end || (r->start & PAGE_MASK) ||
		    (r->end & PAGE_MASK) || r->end > CKPT_USER_TOP ||
		    r->start < prev_end)
			return fail(v, CKPT_EXIT_CORRUPT,
				    "region %llu has a bad address range "
				    "0x%llx-0x%llx",
				    (unsigned long long)i,
				    (unsigned long long)r->start,
				    (unsigned long long)r->end);
		prev_end = r->end;
		if (r->kind > CKPT_KIND_VVAR_VCLOCK || (r->flags & ~KNOWN_FLAGS) ||
		    (r->prot & ~7U) || (r->vmflags & ~KNOWN_VMFLAGS) ||
		    r->name_offset > h->strings_size ||
		    r->name_len > h->strings_size - r->name_offset)
			return fail(v, CKPT_EXIT_CORRUPT,
				    "region %llu at 0x%llx has bad fields",
				    (unsigned long long)i,
				    (unsigned long long)r->start);
		if (r->kind >= CKPT_KIND_VDSO) {
			unsigned bit = 1U << r->kind;

			if ((special_seen & bit) || r->nr_runs)
				return fail(v, CKPT_EXIT_CORRUPT,
					    "region %llu: a second or non-empty "
					    "vDSO/vvar region",
					    (unsigned long long)i);
			special_seen |= bit;
		}
		if (r->kind == CKPT_KIND_FILE &&
		    (!r->name_len ||
		     img[h->strings_offset + r->name_offset] != '/' ||
		     (r->file_offset & PAGE_MASK)))
			return fail(v, CKPT_EXIT_CORRUPT,
				    "region %llu: a file mapping without a path",
				    (unsigned long long)i);
		if (r->first_run != next_run || r->nr_runs > h->nr_runs - next_run)
			return fail(v, CKPT_EXIT_CORRUPT,
				    "region %llu: its runs are out of order",
				    (unsigned long long)i);
		for (j = 0; j < r->nr_runs; j++) {
			const struct ckpt_run *run = &runs[next_run + j];
			uint64_t run_end;

			if (!run->len || (run->start & PAGE_MASK) ||
			    (run->len & PAGE_MASK) || run->start < r->start ||
			    __builtin_add_overflow(run->start, run->len,
						   &run_end) ||
			    run_end > r->end ||
			    (j && run->start < runs[next_run + j - 1].start +
						       runs[next_run + j - 1].len) ||
			    run->data_offset != next_data)
				return fail(v, CKPT_EXIT_CORRUPT,
					    "region %llu: run %llu is out of "
					    "bounds",
					    (unsigned long long)i,
					    (unsigned long long)j);
			next_data += run->len;
			stored += run->len;
		}
		if (stored != r->stored_bytes)
			return fail(v, CKPT_EXIT_CORRUPT,
				    "region %llu: stored size does not add up",
				    (unsigned long long)i);
		next_run += r->nr_runs;
	}
	if (next_run != h->nr_runs)
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's runs do not match its regions");
	if (check_fds(img, next_data, v) || check_timers_signals(img, v))
		return v->status;

	/* Where myrestart will jump and what it will register must exist. */
	r = find_region(regs, h->nr_regions, h->resume_entry);
	if (!r || !(r->prot & 4) || !(r->flags & CKPT_REGION_CKPTLIB))
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's resume address 0x%llx is not in "
			    "libckpt.so's code",
			    (unsigned long long)h->resume_entry);
	r = find_region(regs, h->nr_regions, h->resume_stack - 8);
	if (!r || !(r->prot & 2))
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's resume stack 0x%llx is not writable "
			    "memory",
			    (unsigned long long)h->resume_stack);
	if (h->rseq.addr && (!(r = find_region(regs, h->nr_regions,
					       h->rseq.addr)) ||
			     !(r->prot & 2)))
		return fail(v, CKPT_EXIT_CORRUPT,
			    "the image's rseq area 0x%llx is not writable memory",
			    (unsigned long long)h->rseq.addr);
	if (h->mm.auxv_size > sizeof(h->mm.auxv) || (h->mm.auxv_size & 15))
		return fail(v, CKPT_EXIT_CORRUPT, "the image's auxv is corrupted");
	return 0;
}

static int region_mismatch(const unsigned char *img, const struct ckpt_region *r,
			   struct ckpt_verdict *v)
{
	char name[256];

	ckpt_region_name(img, r, name, sizeof(name));
	return fail(v, CKPT_EXIT_DATA_CORRUPT,
		    "the image's data is corrupted: region 0x%llx-0x%llx (%s) "
		    "fails its checksum",
		    (unsigned long long)r->start, (unsigned long long)r->end,
		    name);
}

static const struct ckpt_region *region_at(const unsigned char *img,
					   uint64_t i)
{
	const struct ckpt_header *h = (const void *)img;

	return (const struct ckpt_region *)(img + h->regions_offset) + i;
}

uint64_t ckpt_region_pieces(const void *image, uint64_t i)
{
	const unsigned char *img = image;
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *r = region_at(img, i);
	const struct ckpt_run *runs = (const void *)(img + h->runs_offset);
	uint64_t j, n = 0;

	for (j = 0; j < r->nr_runs; j++)
		n += (runs[r->first_run + j].len + CKPT_HASH_PIECE - 1) /
		     CKPT_HASH_PIECE;
	return n;
}

int ckpt_check_region_digests(const void *image, uint64_t i,
			      const uint64_t *digests, struct ckpt_verdict *v)
{
	const unsigned char *img = image;
	struct ckpt_xxh64_seq xs;
	uint64_t k, n = ckpt_region_pieces(img, i);

	ckpt_xxh64_seq_init(&xs);
	for (k = 0; k < n; k++)
		ckpt_xxh64_seq_add(&xs, digests[k]);
	if (ckpt_xxh64_seq_final(&xs) == region_at(img, i)->checksum)
		return 0;
	return region_mismatch(img, region_at(img, i), v);
}

int ckpt_check_region_data(const void *image, uint64_t i,
			   struct ckpt_verdict *v)
{
	const unsigned char *img = image;
	const struct ckpt_header *h = (const void *)img;
	const struct ckpt_region *r = region_at(img, i);
	const struct ckpt_run *runs = (const void *)(img + h->runs_offset);
	struct ckpt_xxh64_seq xs;
	uint64_t j, done;

	ckpt_xxh64_seq_init(&xs);
	for (j = 0; j < r->nr_runs; j++) {
		const struct ckpt_run *run = &runs[r->first_run + j];

		for (done = 0; done < run->len; done += CKPT_HASH_PIECE)
			ckpt_xxh64_seq_add(
				&xs, ckpt_xxh64(img + run->data_offset + done,
						ckpt_piece_len(run->len, done)));
	}
	if (ckpt_xxh64_seq_final(&xs) == r->checksum)
		return 0;
	return region_mismatch(img, r, v);
}

int ckpt_check_ghost_data(const void *image, struct ckpt_verdict *v)
{
	const unsigned char *img = image;
	const struct ckpt_header *h = (const void *)img;
	uint64_t i;

	for (i = 0; i < h->nr_fds; i++) {
		const struct ckpt_fd *f =
			(const void *)(img + h->fds_offset + i * sizeof(*f));

		if (f->type == CKPT_FD_GHOST &&
		    ckpt_xxh64(img + f->data_offset, f->size) != f->checksum)
			return fail(v, CKPT_EXIT_DATA_CORRUPT,
				    "the image's data is corrupted: the saved "
				    "contents of deleted file fd %d fail their "
				    "checksum",
				    f->fd);
	}
	return 0;
}

int ckpt_validate(const void *img, size_t len, int want_data,
		  struct ckpt_verdict *v)
{
	v->status = 0;
	v->msg[0] = '\0';
	if (check_header(img, len, v) || check_regions(img, v))
		return v->status;
	if (want_data) {
		const struct ckpt_header *h = img;
		uint64_t i;

		for (i = 0; i < h->nr_regions; i++)
			if (ckpt_check_region_data(img, i, v))
				return v->status;
		ckpt_check_ghost_data(img, v);
	}
	return v->status;
}
