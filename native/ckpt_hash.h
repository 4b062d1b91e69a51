/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ckpt_hash.h - XXH64 (seed 0), written from the published specification,
 * with a streaming form for inputs fed in multiples of 32 bytes (pages).
 *
 * XXH64 rather than a CRC: it runs at memory speed on one core in plain C,
 * so checksumming every region costs a few percent of a checkpoint, and
 * Python reads the same values with the xxhash package.
 *
 * Header-only and free of libc calls: the freestanding restore code uses it.
 */
#ifndef CKPT_HASH_H
#define CKPT_HASH_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_XXH_P1 0x9E3779B185EBCA87ULL
#define CKPT_XXH_P2 0xC2B2AE3D27D4EB4FULL
#define CKPT_XXH_P3 0x165667B19E3779F9ULL
#define CKPT_XXH_P4 0x85EBCA77C2B2AE63ULL
#define CKPT_XXH_P5 0x27D4EB2F165667C5ULL

struct ckpt_xxh64 {
	uint64_t v[4];
	uint64_t total_len;
};

static inline uint64_t ckpt_rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t ckpt_read64(const unsigned char *p)
{
	uint64_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t ckpt_read32(const unsigned char *p)
{
	uint32_t v;

	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t ckpt_xxh_round(uint64_t acc, uint64_t input)
{
	acc += input * CKPT_XXH_P2;
	acc = ckpt_rotl64(acc, 31);
	return acc * CKPT_XXH_P1;
}

static inline uint64_t ckpt_xxh_merge(uint64_t acc, uint64_t val)
{
	acc ^= ckpt_xxh_round(0, val);
	return acc * CKPT_XXH_P1 + CKPT_XXH_P4;
}

static inline void ckpt_xxh64_init(struct ckpt_xxh64 *s)
{
	s->v[0] = CKPT_XXH_P1 + CKPT_XXH_P2;
	s->v[1] = CKPT_XXH_P2;
	s->v[2] = 0;
	s->v[3] = -CKPT_XXH_P1;
	s->total_len = 0;
}

/* Feed len bytes; len must be a multiple of 32 (the stripe size). */
static inline void ckpt_xxh64_stripes(struct ckpt_xxh64 *s, const void *data,
				      size_t len)
{
	const unsigned char *p = data, *end = p + len;
	uint64_t v0 = s->v[0], v1 = s->v[1], v2 = s->v[2], v3 = s->v[3];

	for (; p < end; p += 32) {
		v0 = ckpt_xxh_round(v0, ckpt_read64(p));
		v1 = ckpt_xxh_round(v1, ckpt_read64(p + 8));
		v2 = ckpt_xxh_round(v2, ckpt_read64(p + 16));
		v3 = ckpt_xxh_round(v3, ckpt_read64(p + 24));
	}
	s->v[0] = v0;
	s->v[1] = v1;
	s->v[2] = v2;
	s->v[3] = v3;
	s->total_len += len;
}

/* Finish with the last tail_len (< 32) bytes at tail (NULL if none). */
static inline uint64_t ckpt_xxh64_final(const struct ckpt_xxh64 *s,
					const void *tail, size_t tail_len)
{
	const unsigned char *p = tail;
	size_t i = 0;
	uint64_t h;

	if (s->total_len >= 32) {
		h = ckpt_rotl64(s->v[0], 1) + ckpt_rotl64(s->v[1], 7) +
		    ckpt_rotl64(s->v[2], 12) + ckpt_rotl64(s->v[3], 18);
		h = ckpt_xxh_merge(h, s->v[0]);
		h = ckpt_xxh_merge(h, s->v[1]);
		h = ckpt_xxh_merge(h, s->v[2]);
		h = ckpt_xxh_merge(h, s->v[3]);
	} else {
		h = CKPT_XXH_P5; /* seed 0 */
	}
	h += s->total_len + tail_len;
	/* Indices, not pointer steps: no arithmetic on a NULL tail. */
	for (; i + 8 <= tail_len; i += 8) {
		h ^= ckpt_xxh_round(0, ckpt_read64(p + i));
		h = ckpt_rotl64(h, 27) * CKPT_XXH_P1 + CKPT_XXH_P4;
	}
	if (i + 4 <= tail_len) {
		h ^= (uint64_t)ckpt_read32(p + i) * CKPT_XXH_P1;
		h = ckpt_rotl64(h, 23) * CKPT_XXH_P2 + CKPT_XXH_P3;
		i += 4;
	}
	for (; i < tail_len; i++) {
		h ^= (uint64_t)p[i] * CKPT_XXH_P5;
		h = ckpt_rotl64(h, 11) * CKPT_XXH_P1;
	}
	h ^= h >> 33;
	h *= CKPT_XXH_P2;
	h ^= h >> 29;
	h *= CKPT_XXH_P3;
	h ^= h >> 32;
	return h;
}

/* One-shot XXH64 of any buffer. */
static inline uint64_t ckpt_xxh64(const void *data, size_t len)
{
	struct ckpt_xxh64 s;
	size_t body = len & ~(size_t)31;

	ckpt_xxh64_init(&s);
	ckpt_xxh64_stripes(&s, data, body);
	return ckpt_xxh64_final(&s, (const unsigned char *)data + body,
				len - body);
}

/*
 * XXH64 of a sequence of 64-bit values, each taken as 8 little-endian
 * bytes, fed one at a time: how a region's piece checksums are combined
 * (ckpt_image.h, Integrity).
 */
struct ckpt_xxh64_seq {
	struct ckpt_xxh64 s;
	unsigned char buf[32];
	unsigned n; /* bytes in buf */
};

static inline void ckpt_xxh64_seq_init(struct ckpt_xxh64_seq *q)
{
	ckpt_xxh64_init(&q->s);
	q->n = 0;
}

static inline void ckpt_xxh64_seq_add(struct ckpt_xxh64_seq *q, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		q->buf[q->n++] = (unsigned char)(v >> (8 * i));
	if (q->n == sizeof(q->buf)) {
		ckpt_xxh64_stripes(&q->s, q->buf, sizeof(q->buf));
		q->n = 0;
	}
}

static inline uint64_t ckpt_xxh64_seq_final(const struct ckpt_xxh64_seq *q)
{
	return ckpt_xxh64_final(&q->s, q->buf, q->n);
}

#endif /* CKPT_HASH_H */
