/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dump_filehash.c - the content hash of each file mapping (ckpt_filehash.h),
 * so that a restart on another machine accepts a copy of the same bytes
 * under another device and inode. Hashing a library costs a read of it from
 * the page cache (about 1 ms for the 2 MiB of libc); a process keeps the
 * hashes of what it already hashed, by device, inode, size and time, so
 * that its later checkpoints do not read its files again.
 */
#include "libckpt.h"
#include "ckpt_filehash.h"

#define NR_CACHED 256

static struct cached_hash {
	uint64_t dev, ino, size;
	int64_t mtime_ns;
	uint64_t off, len, hash;
} cache[NR_CACHED];
static unsigned cache_next;

static struct cached_hash *cache_find(const struct ckpt_region *r, uint64_t len)
{
	unsigned i;

	for (i = 0; i < NR_CACHED; i++) {
		struct cached_hash *c = &cache[i];

		if (c->ino == r->ino && c->dev == r->dev && c->size == r->file_size &&
		    c->mtime_ns == r->mtime_ns && c->off == r->file_offset &&
		    c->len == len && c->len)
			return c;
	}
	return NULL;
}

/*
 * Set r->content_hash for the file at path (already checked to be the
 * mapped inode) and flag it; on any failure leave it unflagged: the
 * restart then wants the very same file (device and inode).
 */
void ckpt_hash_mapping(struct dump *d, struct ckpt_region *r, const char *path)
{
	uint64_t len = r->end - r->start, hash = 0;
	struct cached_hash *c = cache_find(r, len);
	struct stat st;
	int fd, err;

	if (c) {
		r->content_hash = c->hash;
		r->flags |= CKPT_REGION_CONTENT_HASH;
		return;
	}
	if (!d->hashbuf) {
		d->hashbuf = scratch_map(CKPT_HASH_PIECE);
		if (!d->hashbuf)
			return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return;
	/* The file must still be the one mapped, unchanged. */
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != r->ino ||
	    (uint64_t)st.st_dev != r->dev || (uint64_t)st.st_size != r->file_size) {
		close(fd);
		return;
	}
	err = ckpt_hash_file_range(fd, r->file_offset, len, r->file_size,
				   (unsigned char *)d->hashbuf, &hash);
	close(fd);
	if (err)
		return;
	r->content_hash = hash;
	r->flags |= CKPT_REGION_CONTENT_HASH;
	c = &cache[cache_next++ % NR_CACHED];
	c->dev = r->dev;
	c->ino = r->ino;
	c->size = r->file_size;
	c->mtime_ns = r->mtime_ns;
	c->off = r->file_offset;
	c->len = len;
	c->hash = hash;
}
