/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ckpt_filehash.h - what identifies the bytes of a mapped file: the XXH64
 * of the XXH64s of the 1 MiB pieces of the mapped range (as region
 * checksums are made, ckpt_image.h), the range clipped at the file's end.
 * libckpt records it for each file mapping; myrestart computes it again
 * for a file whose device, inode or time differ (a copy on another machine,
 * the same bytes) and refuses the file only if the bytes differ.
 *
 * Header-only and async-signal-safe (pread, no allocation): libckpt runs it
 * inside its signal handler. buf must hold CKPT_HASH_PIECE bytes.
 */
#ifndef CKPT_FILEHASH_H
#define CKPT_FILEHASH_H

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "ckpt_hash.h"
#include "ckpt_image.h"

/* Bytes of [off, off + len) that lie inside a file of size bytes. */
static inline uint64_t ckpt_file_range_len(uint64_t off, uint64_t len,
					   uint64_t size)
{
	if (off >= size)
		return 0;
	return size - off < len ? size - off : len;
}

/* 0 and *out, or -errno (a read error, or the file shorter than size). */
static inline int ckpt_hash_file_range(int fd, uint64_t off, uint64_t len,
				       uint64_t size, unsigned char *buf,
				       uint64_t *out)
{
	struct ckpt_xxh64_seq q;
	uint64_t done, n = ckpt_file_range_len(off, len, size);

	ckpt_xxh64_seq_init(&q);
	for (done = 0; done < n; done += CKPT_HASH_PIECE) {
		uint64_t piece = ckpt_piece_len(n, done), got = 0;

		while (got < piece) {
			ssize_t r = pread(fd, buf + got, (size_t)(piece - got),
					  (off_t)(off + done + got));

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0)
				return -ENODATA; /* shorter than its size said */
			got += (uint64_t)r;
		}
		ckpt_xxh64_seq_add(&q, ckpt_xxh64(buf, (size_t)piece));
	}
	*out = ckpt_xxh64_seq_final(&q);
	return 0;
}

#endif /* CKPT_FILEHASH_H */
