/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ckpt_plan.h - what myrestart hands to the restore blob (not part of the
 * image format). myrestart prepares everything while it can still fail
 * politely; the blob, running from a private copy of itself in a hole of the
 * image's address space, only carries the plan out.
 */
#ifndef CKPT_PLAN_H
#define CKPT_PLAN_H

#include <stdint.h>

#include "ckpt_image.h"

#define CKPT_PLAN_MSG_LEN 96

struct ckpt_special_move { /* one of our vDSO/vvar mappings */
	uint64_t cur;     /* where the kernel put ours */
	uint64_t scratch; /* parking spot inside the kept range */
	uint64_t target;  /* where the image wants it */
	uint64_t len;
};

#define CKPT_PLAN_ERRNAMES 76 /* up to EOVERFLOW */

enum ckpt_plan_msg {
	CKPT_MSG_PREFIX,
	CKPT_MSG_PARK,
	CKPT_MSG_UNMAP,
	CKPT_MSG_VDSO,
	CKPT_MSG_MAP,
	CKPT_MSG_PROTECT,
	CKPT_MSG_SIGACTION,
	CKPT_MSG_MM,
	CKPT_MSG_RSEQ,
	CKPT_MSG_TLS,
	CKPT_MSG_MADVISE,
	CKPT_MSG_MLOCK,
	CKPT_MSG_RLIMIT,
	CKPT_MSG_TIMER,
	CKPT_MSG_SIGNAL,
	CKPT_MSG_AT,
	CKPT_MSG_ERRNO,
	CKPT_MSG_NEWLINE,
	CKPT_NR_MSGS
};

struct ckpt_keep_range {
	uint64_t start, end;
};

struct ckpt_plan {
	/* [keep_start, keep_end): blob, plan, stack, parked vDSO and the
	 * mapped image file. libckpt's resume entry finally unmaps it. */
	uint64_t keep_start;
	uint64_t keep_end;
	uint64_t image_base; /* the image file, mapped read-only */
	uint64_t image_len;
	uint64_t user_top;   /* unmap everything below this but keep[] */
	/* What survives the blob's unmapping of myrestart, sorted, not
	 * touching: the kept range and the regions myrestart already put in
	 * place (placed[]). */
	struct ckpt_keep_range *keep;
	int64_t nr_keep;
	uint8_t *placed; /* per region: mapped and filled by myrestart */
	int32_t exe_fd; /* the program's executable, or -1 */
	int32_t nr_special;
	struct ckpt_special_move special[3];
	int32_t *region_fd; /* per region: the file to map, or -1 */
	int32_t *close_fds; /* every fd to close before resuming */
	int32_t nr_close_fds;
	/* Messages live here: the blob has no data section of its own. */
	char msg[CKPT_NR_MSGS][CKPT_PLAN_MSG_LEN];
	/* errno names ("ENOMEM") by number, below CKPT_PLAN_ERRNAMES: the
	 * likely ones of mmap, mremap, mprotect, prctl and friends. */
	char errname[CKPT_PLAN_ERRNAMES][16];
};

/*
 * Does myrestart map and fill r before the point of no return
 * (restore_mem.c)? Private anonymous memory with data, but not the stack
 * (it must be mapped MAP_GROWSDOWN) and not libckpt's own mappings: the
 * blob maps and copies those, as every other kind of region.
 */
static inline int ckpt_region_placeable(const struct ckpt_region *r)
{
	return r->kind == CKPT_KIND_ANON && r->nr_runs &&
	       !(r->flags & (CKPT_REGION_SHARED | CKPT_REGION_GROWSDOWN |
			     CKPT_REGION_CKPTLIB)) &&
	       !(r->vmflags & CKPT_VM_GROWSDOWN);
}

/* Entry point of the blob, copied out of myrestart's ckpt_blob section. */
void ckpt_blob_main(struct ckpt_plan *plan) __attribute__((noreturn));

#endif /* CKPT_PLAN_H */
