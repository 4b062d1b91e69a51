/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dump_check.c - the last step before an image is published: read back
 * what was written and check its header and tables with the validator
 * myrestart uses (ckpt_validate.c), so that an image the restarter would
 * refuse never appears at the image's path. The data's checksums were
 * computed while it was written; this reads only the header and the
 * tables, through mappings of the file.
 *
 * Only the header page and the tables are mapped, each where it would be
 * in a mapping of the whole file (the pages between are never read with
 * the data checks off): a program close to its RLIMIT_AS still pays only
 * for the tables, not for its whole image.
 */
#include "libckpt.h"
#include "ckpt_validate.h"

#define TRIES 8

/* Map [off, off + len) of fd read-only, at want or anywhere (want 0). */
static char *map_at(int fd, uint64_t want, uint64_t len, uint64_t off)
{
	int flags = MAP_SHARED | (want ? MAP_FIXED_NOREPLACE : 0);
	void *p = mmap((void *)(uintptr_t)want, len, PROT_READ, flags, fd,
		       (off_t)off);

	if (p == MAP_FAILED)
		return NULL;
	if (want && (uint64_t)(uintptr_t)p != want) { /* kernels before 4.17 */
		munmap(p, len);
		return NULL;
	}
	return p;
}

/* 0, or -EBADMSG after one libckpt: line naming the failed check. */
int ckpt_self_check(int fd, const struct ckpt_header *h)
{
	uint64_t tables_len = (h->image_size - h->regions_offset + PAGE_SZ - 1) &
			      ~(PAGE_SZ - 1);
	struct ckpt_verdict v;
	char *tables = NULL, *head = NULL;
	int i, err = 0;

	if (h->regions_offset & (PAGE_SZ - 1) || h->image_size < h->regions_offset)
		return -EBADMSG; /* the writer's own arithmetic: cannot be */
	/* The header page must lie regions_offset below the tables: try a
	 * few bases in the middle of the address space, where programs
	 * rarely map anything, 8 TiB apart. */
	for (i = 0; i < TRIES && !tables; i++) {
		uint64_t base = (16ULL << 40) + (uint64_t)i * (8ULL << 40);

		head = map_at(fd, base, PAGE_SZ, 0);
		if (!head)
			continue;
		tables = map_at(fd, base + h->regions_offset, tables_len,
				h->regions_offset);
		if (!tables) {
			munmap(head, PAGE_SZ);
			head = NULL;
		}
	}
	if (!tables) {
		err = errno ? errno : ENOMEM;
		ckpt_log("cannot read the image back to check it; not published",
			 NULL, err);
		return -err;
	}
	if (ckpt_validate(head, (size_t)h->image_size, 0, &v)) {
		struct logbuf lb = { .len = 0 };

		lb_str(&lb, "the image failed its own check and was not "
			    "published (an older image at the path is kept): ");
		lb_str(&lb, v.msg);
		lb.buf[lb.len] = '\0';
		ckpt_log(lb.buf, NULL, 0);
		err = -EBADMSG;
	}
	munmap(head, PAGE_SZ);
	munmap(tables, tables_len);
	return err;
}
