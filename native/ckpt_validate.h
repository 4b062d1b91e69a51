/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ckpt_validate.h - checking an image held in memory, before anything is
 * restored from it. Pure function of the bytes: myrestart calls it on the
 * mapped image, and the fuzz harness (tests/fuzz/) on arbitrary input.
 */
#ifndef CKPT_VALIDATE_H
#define CKPT_VALIDATE_H

#include <stddef.h>

#include "ckpt_image.h"

struct ckpt_verdict {
	int status;     /* 0 or a CKPT_EXIT_* value */
	char msg[512];  /* one line, no newline, when status != 0 */
};

/*
 * Check the header, the tables and (when check_data) every region's
 * checksum. Returns v->status. Never reads outside [img, img + len).
 */
int ckpt_validate(const void *img, size_t len, int check_data,
		  struct ckpt_verdict *v);

/*
 * The data checks of ckpt_validate, for callers that spread them over
 * threads; only after ckpt_validate has passed the tables. Each returns
 * v->status. A region's checksum covers its pieces (ckpt_image.h,
 * Integrity): ckpt_region_pieces says how many; ckpt_check_region_digests
 * checks the region given the XXH64 of each piece, in order;
 * ckpt_check_region_data hashes the pieces itself.
 */
uint64_t ckpt_region_pieces(const void *img, uint64_t region);
int ckpt_check_region_digests(const void *img, uint64_t region,
			      const uint64_t *digests, struct ckpt_verdict *v);
int ckpt_check_region_data(const void *img, uint64_t region,
			   struct ckpt_verdict *v);
int ckpt_check_ghost_data(const void *img, struct ckpt_verdict *v);

/*
 * What this machine allows a restart: checked by ckpt_check_limits after
 * ckpt_validate has passed, with CKPT_EXIT_RESOURCE. may_map_low: the
 * restarter may map below mmap_min_addr (CAP_SYS_RAWIO).
 */
struct ckpt_limits {
	uint64_t max_map_count;  /* vm.max_map_count */
	uint64_t mmap_min_addr;  /* vm.mmap_min_addr */
	int may_map_low;
};
#define CKPT_OWN_MAPS 16 /* myrestart's own mappings at the jump, at most */
int ckpt_check_limits(const void *img, const struct ckpt_limits *lim,
		      struct ckpt_verdict *v);

/* Name of region r for messages: its path or [name], or "anonymous". */
void ckpt_region_name(const void *img, const struct ckpt_region *r,
		      char *buf, size_t size);

#endif /* CKPT_VALIDATE_H */
