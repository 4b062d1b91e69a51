/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ckpt_pagemap.h - the PAGEMAP_SCAN ioctl of /proc/PID/pagemap (Linux 6.7),
 * declared here because the build machine's kernel headers may predate it.
 * Layout and values as documented in ioctl_pagemap_scan(2).
 */
#ifndef CKPT_PAGEMAP_H
#define CKPT_PAGEMAP_H

#include <stdint.h>
#include <sys/ioctl.h>

#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)   /* page-cache or shared-memory page */
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5) /* the shared zero page: reads as zeros */
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};

struct pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#endif /* CKPT_PAGEMAP_H */
