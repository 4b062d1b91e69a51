/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * restore_mem.h - the program's private anonymous memory, put in place and
 * checked before the point of no return.
 */
#ifndef RESTORE_MEM_H
#define RESTORE_MEM_H

#include <stdint.h>

#include "ckpt_plan.h"

/*
 * Map each private anonymous region that has data at its address
 * (MAP_FIXED_NOREPLACE: one that collides with myrestart's own mappings is
 * left to the blob; placed[i] says which were placed), copy its runs into
 * place on two threads and verify every region's checksum, hashing what
 * was copied where it was copied to. Dies with CKPT_EXIT_DATA_CORRUPT on a
 * mismatch, CKPT_EXIT_RESOURCE when memory runs out. Returns the bytes
 * placed.
 */
uint64_t ckpt_restore_memory(const unsigned char *img, int image_fd,
			     const char *path, uint8_t *placed, int verbose);

#endif /* RESTORE_MEM_H */
