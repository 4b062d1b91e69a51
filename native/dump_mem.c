/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dump_mem.c - which memory an image stores. /proc/self/smaps gives the
 * mappings (one region each, with VmFlags); PAGEMAP_SCAN gives, per region,
 * the runs of pages that a restart cannot get elsewhere: anonymous pages
 * that were touched, the modified pages of private file mappings. Files
 * still there are re-mapped at restart, so their untouched pages cost
 * nothing.
 */
#include "libckpt.h"

/*
 * The lines and bytes of /proc/self/maps, read through a small buffer: every
 * name smaps will give is in there, and smaps adds well under 1 KiB of
 * fields per mapping.
 */
static int measure_maps(size_t *lines, size_t *bytes)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	char buf[4096];
	ssize_t n, i;

	*lines = *bytes = 0;
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return (int)n;
		}
		*bytes += (size_t)n;
		for (i = 0; i < n; i++)
			*lines += buf[i] == '\n';
	}
	close(fd);
	return 0;
}

/*
 * Read /proc/self/smaps whole into a buffer sized from /proc/self/maps,
 * growing it if that was not enough. Room for every name in it is made in
 * the strings first: they may not move once smaps has been read.
 */
static int read_maps(struct dump *d)
{
	size_t lines, bytes, cap;
	int err;

	err = measure_maps(&lines, &bytes);
	if (!err)
		err = ensure_strings(d, bytes + PAGE_SZ);
	if (err)
		return err;
	d->strings_fixed = 1;
	cap = (bytes + (lines + 8) * 1024 + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
	for (;;) {
		ssize_t len;

		d->maps = own_map(cap);
		if (!d->maps)
			return -ENOMEM;
		d->maps_cap = cap;
		len = read_file("/proc/self/smaps", d->maps, cap);
		if (len < 0)
			return (int)len;
		if ((size_t)len < cap) {
			d->maps_len = (size_t)len;
			return 0;
		}
		own_unmap(d->maps, cap);
		d->maps = NULL;
		cap *= 2;
	}
}


static int name_is(const char *name, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

/*
 * Decide how a file mapping is saved. A mapping of a file that is still
 * there (same inode) is re-mapped at restart, and only the pages the
 * program modified are stored. A file deleted or replaced since, or the
 * image we were restarted from, is saved whole, as anonymous memory.
 */
static void classify_file(struct dump *d, struct ckpt_region *r,
			  const char *path, size_t path_len, uint64_t ino)
{
	static const char deleted[] = " (deleted)";
	char cpath[PATH_MAX];
	struct stat st;

	if (path_len >= sizeof(deleted) - 1 &&
	    memcmp(path + path_len - (sizeof(deleted) - 1), deleted,
		   sizeof(deleted) - 1) == 0)
		goto orphan;
	if (path_len >= sizeof(cpath))
		goto orphan;
	memcpy(cpath, path, path_len);
	cpath[path_len] = '\0';
	if (stat(cpath, &st) < 0 || (uint64_t)st.st_ino != ino ||
	    !S_ISREG(st.st_mode))
		goto orphan;
	if ((uint64_t)st.st_ino == ckpt_mapped_image.ino &&
	    (uint64_t)st.st_dev == ckpt_mapped_image.dev)
		goto orphan; /* our memory, mapped from our own old image */
	r->kind = CKPT_KIND_FILE;
	r->dev = (uint64_t)st.st_dev;
	r->ino = (uint64_t)st.st_ino;
	r->file_size = (uint64_t)st.st_size;
	r->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL +
		      st.st_mtim.tv_nsec;
	ckpt_hash_mapping(d, r, cpath);
	return;
orphan:
	r->kind = CKPT_KIND_ANON;
	r->file_offset = 0;
}

/* Add r, less our own buffers from ckpt_own[k..], to the table. */
static void add_region_from(struct dump *d, const struct ckpt_region *r, int k)
{
	struct ckpt_region part;
	uint64_t lo, hi;

	for (; k < ckpt_nr_own; k++)
		if (r->start < ckpt_own[k].hi && r->end > ckpt_own[k].lo)
			break;
	if (k == ckpt_nr_own) {
		if (d->nr_regions < d->regions_cap)
			d->regions[d->nr_regions++] = *r;
		return;
	}
	lo = ckpt_own[k].lo;
	hi = ckpt_own[k].hi;
	if (r->start < lo) {
		part = *r;
		part.end = lo;
		add_region_from(d, &part, k + 1);
	}
	if (r->end > hi) {
		part = *r;
		if (part.kind == CKPT_KIND_FILE)
			part.file_offset += hi - r->start;
		part.start = hi;
		add_region_from(d, &part, k + 1);
	}
}

/* smaps VmFlags: the ones a restart can set again. */
static uint32_t parse_vmflags(const char *p, const char *eol)
{
	static const struct {
		char name[3];
		uint32_t flag;
	} known[] = {
		{ "nr", CKPT_VM_NORESERVE }, { "gd", CKPT_VM_GROWSDOWN },
		{ "lo", CKPT_VM_LOCKED },    { "dc", CKPT_VM_DONTFORK },
		{ "wf", CKPT_VM_WIPEONFORK }, { "dd", CKPT_VM_DONTDUMP },
		{ "hg", CKPT_VM_HUGEPAGE },  { "nh", CKPT_VM_NOHUGEPAGE },
		{ "mg", CKPT_VM_MERGEABLE }, { "sr", CKPT_VM_SEQUENTIAL },
		{ "rr", CKPT_VM_RANDOM },
	};
	uint32_t flags = 0;
	size_t i;

	for (; p + 2 <= eol; p++) {
		if (*p == ' ')
			continue;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (p[0] == known[i].name[0] && p[1] == known[i].name[1])
				flags |= known[i].flag;
		p += 2;
	}
	return flags;
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/*
 * One region per mapping of smaps: the maps line of each gives range,
 * permissions, offset, inode and name; its VmFlags line the madvise state.
 */
static int parse_maps(struct dump *d)
{
	const char *p = d->maps, *end = d->maps + d->maps_len;
	uint64_t self = (uint64_t)(uintptr_t)&ckpt_image_done;
	size_t lines = 0, i, line_first = 0;
	uint64_t line_len = 0; /* of the mapping whose lines follow */

	for (i = 0; i < d->maps_len; i++)
		lines += (i == 0 || d->maps[i - 1] == '\n') && is_hex(d->maps[i]);
	d->regions_cap = 3 * lines + 2; /* a line may split around our buffers */
	d->regions = scratch_map(d->regions_cap * sizeof(*d->regions));
	d->anon_bytes = scratch_map(d->regions_cap * sizeof(*d->anon_bytes));
	if (!d->regions || !d->anon_bytes)
		return -ENOMEM;

	while (p < end) {
		struct ckpt_region r;
		uint64_t start, stop, off, ino, dummy;
		const char *perms, *name, *eol;
		size_t name_len;

		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if (!is_hex(*p)) {
			if (!strncmp(p, "Anonymous:", 10) &&
			    d->nr_regions == line_first + 1 &&
			    d->regions[line_first].end -
					    d->regions[line_first].start ==
				    line_len) {
				uint64_t kib = 0;
				const char *q = p + 10;

				while (*q == ' ')
					q++;
				parse_dec(q, &kib);
				d->anon_bytes[line_first] = kib << 10;
			} else if (!strncmp(p, "VmFlags:", 8)) {
				uint32_t vm = parse_vmflags(p + 8, eol);

				for (i = line_first; i < d->nr_regions; i++) {
					d->regions[i].vmflags = vm;
					if (vm & CKPT_VM_GROWSDOWN)
						d->regions[i].flags |=
							CKPT_REGION_GROWSDOWN;
				}
			}
			p = eol + 1;
			continue;
		}
		memset(&r, 0, sizeof(r));
		p = parse_hex(p, &start) + 1; /* '-' */
		p = parse_hex(p, &stop) + 1;
		perms = p;
		p += 5;
		p = parse_hex(p, &off) + 1;
		p = parse_hex(p, &dummy) + 1; /* dev major:minor */
		p = parse_hex(p, &dummy) + 1;
		p = parse_dec(p, &ino);
		while (*p == ' ')
			p++;
		name = p;
		name_len = (size_t)(eol - name);
		p = eol + 1;
		line_first = d->nr_regions;
		line_len = stop - start;

		r.start = start;
		r.end = stop;
		r.prot = (perms[0] == 'r' ? PROT_READ : 0) |
			 (perms[1] == 'w' ? PROT_WRITE : 0) |
			 (perms[2] == 'x' ? PROT_EXEC : 0);
		if (perms[3] == 's')
			r.flags |= CKPT_REGION_SHARED;
		if (!(r.prot & PROT_READ))
			r.flags |= CKPT_REGION_UNREADABLE;
		r.kind = CKPT_KIND_ANON;

		if (name_is(name, name_len, "[vsyscall]"))
			continue; /* fixed by the kernel, the same everywhere */
		if (name_is(name, name_len, "[vdso]"))
			r.kind = CKPT_KIND_VDSO;
		else if (name_is(name, name_len, "[vvar]"))
			r.kind = CKPT_KIND_VVAR;
		else if (name_is(name, name_len, "[vvar_vclock]"))
			r.kind = CKPT_KIND_VVAR_VCLOCK;
		else if (name_is(name, name_len, "[heap]"))
			r.flags |= CKPT_REGION_HEAP;
		else if (ino != 0 && name_len && name[0] == '/') {
			r.file_offset = off;
			classify_file(d, &r, name, name_len, ino);
			if (self >= start && self < stop)
				d->self_ino = ino;
		}
		r.name_offset = add_string(d, name, name_len);
		r.name_len = (uint32_t)name_len;
		/* Remember the inode until libckpt's own is known below. */
		if (r.kind != CKPT_KIND_FILE)
			r.ino = ino;
		add_region_from(d, &r, 0);
	}
	if (d->nomem)
		return -ENOMEM; /* a name did not fit in the strings */
	for (i = 0; i < d->nr_regions; i++) {
		struct ckpt_region *r = &d->regions[i];

		uint64_t bss = (uint64_t)(uintptr_t)&ckpt_nr_own;

		/* Our file mappings, and our .bss beyond them. */
		if ((d->self_ino && r->ino == d->self_ino) ||
		    (bss >= r->start && bss < r->end))
			r->flags |= CKPT_REGION_CKPTLIB;
		if (r->kind != CKPT_KIND_FILE)
			r->ino = 0;
	}
	return 0;
}

/* Append [start, end) to region r's runs, extending its last run. */
static int add_run(struct dump *d, const struct ckpt_region *r, uint64_t start,
		   uint64_t end)
{
	struct ckpt_run *last =
		d->nr_runs > r->first_run ? &d->runs[d->nr_runs - 1] : NULL;

	if (last && last->start + last->len == start) {
		last->len += end - start;
		return 0;
	}
	if (d->nr_runs == d->runs_cap) {
		size_t old = d->runs_cap * sizeof(*d->runs);
		void *p = mremap(d->runs, old, old * 4, MREMAP_MAYMOVE);

		if (p == MAP_FAILED)
			return -ENOMEM;
		d->runs = p;
		d->runs_cap *= 4;
	}
	d->runs[d->nr_runs].start = start;
	d->runs[d->nr_runs].len = end - start;
	d->runs[d->nr_runs].data_offset = 0;
	d->nr_runs++;
	return 0;
}

/*
 * Sort the runs of r (from first) by start and merge the ones that touch or
 * overlap: whatever order and overlaps the kernel answered in, the table
 * gets each page once, in address order. Insertion sort: the kernel's
 * answer is nearly sorted, so this is one pass in practice.
 */
static void normalize_runs(struct dump *d, struct ckpt_region *r)
{
	struct ckpt_run *runs = d->runs + r->first_run;
	size_t n = d->nr_runs - r->first_run, i, j, out = 0;

	for (i = 1; i < n; i++) {
		struct ckpt_run tmp = runs[i];

		for (j = i; j > 0 && runs[j - 1].start > tmp.start; j--)
			runs[j] = runs[j - 1];
		runs[j] = tmp;
	}
	for (i = 0; i < n; i++) {
		if (out && runs[out - 1].start + runs[out - 1].len >= runs[i].start) {
			uint64_t end = runs[i].start + runs[i].len;

			if (end > runs[out - 1].start + runs[out - 1].len)
				runs[out - 1].len = end - runs[out - 1].start;
			continue;
		}
		runs[out++] = runs[i];
	}
	d->nr_runs = r->first_run + out;
}

/*
 * Find the pages of r that must be stored: for anonymous memory and private
 * file mappings, the pages present (or swapped) that are not page-cache
 * pages of the file and not the shared zero page. PAGEMAP_SCAN (Linux 6.7)
 * returns them as ranges, skipping unpopulated page tables, so a 2 TiB
 * reservation with five pages touched costs microseconds.
 *
 * Its answer is not trusted. When the output vector fills up, the kernel
 * has been seen to report a walk_end before ranges it had already returned
 * (the next call then returns the same pages again); ranges outside the
 * request, unaligned or empty would corrupt the table. So: every range is
 * checked, a full vector continues from the end of the last range returned
 * (never from walk_end), each call must make progress, and the region's
 * runs are sorted and merged at the end. tests/test_native_scan.py checks
 * the result against /proc/PID/pagemap read page by page.
 */
/* A PAGEMAP_SCAN answer we cannot use: say so, write no image. */
static int nonsense(const struct ckpt_region *r, const char *what)
{
	struct logbuf lb = { .len = 0 };

	lb_str(&lb, "PAGEMAP_SCAN answered with ");
	lb_str(&lb, what);
	lb_str(&lb, " for the mapping at byte ");
	lb_num(&lb, r->start);
	lb_str(&lb, "; no image written (report this kernel)");
	lb.buf[lb.len] = '\0';
	ckpt_log(lb.buf, NULL, 0);
	return -EPROTO;
}

/*
 * Shared memory holds pages this process's page table does not map: ones
 * it dropped (MADV_DONTNEED keeps them in the object), ones only another
 * process (a child it forked) wrote. PAGEMAP_SCAN sees the page table;
 * mincore() sees the object's pages in memory. Store both.
 */

static int add_resident_shared(struct dump *d, const struct ckpt_region *r)
{
	uint64_t at;

	if (!d->mincore_vec) {
		d->mincore_vec = scratch_map(MINCORE_CHUNK);
		if (!d->mincore_vec)
			return -ENOMEM;
	}
	for (at = r->start; at < r->end; at += MINCORE_CHUNK * PAGE_SZ) {
		uint64_t len = r->end - at, i, run = 0;
		int err;

		if (len > MINCORE_CHUNK * PAGE_SZ)
			len = MINCORE_CHUNK * PAGE_SZ;
		if (mincore((void *)(uintptr_t)at, len, d->mincore_vec) < 0)
			return -errno;
		for (i = 0; i <= len / PAGE_SZ; i++) {
			int in = i < len / PAGE_SZ && (d->mincore_vec[i] & 1);

			if (in && !run)
				run = at + i * PAGE_SZ;
			if (!in && run) {
				err = add_run(d, r, run, at + i * PAGE_SZ);
				if (err)
					return err;
				run = 0;
			}
		}
	}
	return 0;
}

static int scan_region(struct dump *d, struct ckpt_region *r)
{
	struct pm_scan_arg arg;
	uint64_t pos = r->start;

	r->first_run = d->nr_runs;
	if (r->kind == CKPT_KIND_ANON && (r->flags & CKPT_REGION_SHARED)) {
		/* Shared memory (memfd, shm, MAP_SHARED|MAP_ANONYMOUS) counts
		 * as file pages; store whatever is present. */
		memset(&arg, 0, sizeof(arg));
		arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	} else if ((r->kind == CKPT_KIND_ANON && r->file_offset == 0 &&
		    r->name_len && d->strings[r->name_offset] == '/') ||
		   d->anon_bytes[r - d->regions] == r->end - r->start) {
		/* A deleted or replaced file: every page, read through. Or
		 * every page is the program's own (smaps: Anonymous is the
		 * whole mapping): one run, and no page walk for it. */
		int err = add_run(d, r, r->start, r->end);

		r->nr_runs = d->nr_runs - r->first_run;
		return err;
	} else {
		memset(&arg, 0, sizeof(arg));
		arg.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO;
		arg.category_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO;
		arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	}
	arg.size = sizeof(arg);
	arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	arg.vec = (uint64_t)(uintptr_t)d->scan;
	arg.vec_len = d->scan_cap;
	while (pos < r->end) {
		uint64_t last_end = pos;
		long n, i;

		arg.start = pos;
		arg.end = r->end;
		arg.walk_end = 0;
		n = ioctl(d->pagemap_fd, PAGEMAP_SCAN, &arg);
		if (n < 0)
			return -errno;
		if ((uint64_t)n > arg.vec_len)
			return nonsense(r, "more ranges than asked for");
		for (i = 0; i < n; i++) {
			uint64_t s = d->scan[i].start, e = d->scan[i].end;
			int err;

			if (s >= e || s < pos || e > r->end || (s | e) & (PAGE_SZ - 1))
				return nonsense(r, "a range outside the request");
			err = add_run(d, r, s, e);
			if (err)
				return err;
			if (e > last_end)
				last_end = e;
		}
		if ((uint64_t)n < arg.vec_len) {
			/* The walk got to walk_end with room to spare. */
			if (arg.walk_end >= r->end)
				break;
			pos = arg.walk_end > last_end ? arg.walk_end : last_end;
		} else {
			pos = last_end; /* full: from what it really returned */
		}
		if (pos <= arg.start) /* do not loop for ever */
			return nonsense(r, "no progress through the region");
	}
	if (r->kind == CKPT_KIND_ANON && (r->flags & CKPT_REGION_SHARED)) {
		int err = add_resident_shared(d, r);

		if (err)
			return err;
	}
	normalize_runs(d, r);
	r->nr_runs = d->nr_runs - r->first_run;
	return 0;
}

/* The memory map and the pages to store (in the writer). */
int collect_memory(struct dump *d)
{
	size_t i;
	int err;

	err = read_maps(d);
	if (err)
		return err;
	err = parse_maps(d);
	if (err)
		return err;

	d->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (d->pagemap_fd < 0)
		return -errno;
	d->scan_cap = 4096;
	d->scan = scratch_map(d->scan_cap * sizeof(*d->scan));
	d->runs_cap = 4096;
	d->runs = scratch_map(d->runs_cap * sizeof(*d->runs));
	d->bounce = scratch_map(WRITE_CHUNK);
	if (!d->scan || !d->runs || !d->bounce)
		return -ENOMEM;
	for (i = 0; i < d->nr_regions; i++) {
		struct ckpt_region *r = &d->regions[i];

		r->first_run = d->nr_runs;
		if (r->kind >= CKPT_KIND_VDSO)
			continue; /* no bytes: reading vvar can SIGBUS */
		if (r->kind == CKPT_KIND_FILE && (r->flags & CKPT_REGION_SHARED))
			continue; /* the file itself holds the bytes */
		err = scan_region(d, r);
		if (err)
			return err;
	}
	return 0;
}
