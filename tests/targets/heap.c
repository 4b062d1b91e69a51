/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * heap - malloc state across a restart. Before: heavy churn (malloc/free
 * of varied sizes, some above the mmap threshold), every live block filled
 * with a pattern derived from its seed. After: every live block still holds
 * its pattern; then malloc a lot more - small blocks until the brk heap has
 * grown (sbrk(0) moves up from the restored break) and large ones that
 * glibc serves with mmap - use them, free them, and check the old blocks
 * again.
 */
#include "target.h"

#include <malloc.h>

#define NSLOTS 4096
#define CHURN 200000
#define MMAP_THRESHOLD (128 * 1024)

struct block {
	unsigned char *p;
	size_t n;
	uint64_t seed;
};

static struct block slots[NSLOTS];
static char *brk_start; /* the break when main() began */

static size_t pick_size(uint64_t r)
{
	switch (r % 100) {
	case 0:
		return MMAP_THRESHOLD + 1 + (r >> 8) % (512 * 1024);
	case 1 ... 4:
		return 4096 + (r >> 8) % 60000;
	case 5 ... 30:
		return 256 + (r >> 8) % 3840;
	default:
		return 1 + (r >> 8) % 255;
	}
}

static void churn(void)
{
	for (uint64_t i = 0; i < CHURN; i++) {
		uint64_t r = mix64(i * 7919);
		struct block *b = &slots[r % NSLOTS];

		if (b->p) {
			free(b->p);
			b->p = NULL;
			continue;
		}
		b->n = pick_size(r >> 12);
		b->seed = r;
		b->p = malloc(b->n);
		if (!b->p)
			fatal("malloc(%zu) failed", b->n);
		fill_pattern(b->p, b->n, b->seed);
	}
}

static void check_blocks(const char *when)
{
	int bad = 0;

	for (int i = 0; i < NSLOTS; i++) {
		long off;

		if (!slots[i].p)
			continue;
		off = check_pattern(slots[i].p, slots[i].n, slots[i].seed);
		if (off >= 0 && bad++ < 3)
			fail("%s: block %d (%zu bytes at %p) differs at offset "
			     "%ld",
			     when, i, slots[i].n, (void *)slots[i].p, off);
	}
	if (bad > 3)
		fail("%s: %d blocks differ in all", when, bad);
}

/* After the restart: the heap must keep working and growing. */
static void grow(void)
{
	enum { NSMALL = 40000, NLARGE = 16 };
	static unsigned char *small[NSMALL], *large[NLARGE];
	char *brk_before = sbrk(0), *brk_after;
	size_t small_total = 0;

	for (int i = 0; i < NSMALL; i++) {
		size_t n = 64 + mix64(i) % 960;

		small[i] = malloc(n);
		if (!small[i]) {
			fail("malloc(%zu) of small block %d failed", n, i);
			return;
		}
		fill_pattern(small[i], n, 1000000 + i);
		small_total += n;
	}
	brk_after = sbrk(0);
	CHECK(brk_after > brk_before,
	      "sbrk(0) did not grow: %p before %zu bytes of small blocks, %p "
	      "after",
	      (void *)brk_before, small_total, (void *)brk_after);
	for (int i = 0; i < NLARGE; i++) {
		size_t n = (1 + i) * 256 * 1024;

		large[i] = malloc(n);
		if (!large[i]) {
			fail("malloc(%zu) of a large block failed", n);
			return;
		}
		/* Above the threshold glibc must have used mmap, not brk. */
		CHECK((char *)large[i] + n <= brk_start ||
			      (char *)large[i] >= (char *)sbrk(0),
		      "large block %d at %p is inside the brk heap [%p, %p)",
		      i, (void *)large[i], (void *)brk_start, sbrk(0));
		fill_pattern(large[i], n, 2000000 + i);
	}
	for (int i = 0; i < NSMALL; i++)
		if (check_pattern(small[i], 64 + mix64(i) % 960, 1000000 + i) >=
		    0) {
			fail("new small block %d was overwritten", i);
			break;
		}
	for (int i = 0; i < NLARGE; i++)
		if (check_pattern(large[i], (1 + i) * 256 * 1024, 2000000 + i) >=
		    0) {
			fail("new large block %d was overwritten", i);
			break;
		}
	for (int i = 0; i < NSMALL; i++)
		free(small[i]);
	for (int i = 0; i < NLARGE; i++)
		free(large[i]);
}

int main(void)
{
	/* A fixed threshold: glibc would otherwise raise it as blocks above
	 * it are freed, and "large" would no longer mean "mmap". */
	brk_start = sbrk(0);
	if (!mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
		fatal("mallopt failed");
	churn();
	check_blocks("before the checkpoint");
	ready();
	wait_go();
	check_blocks("after the restart");
	grow();
	check_blocks("after the heap grew");
	for (int i = 0; i < NSLOTS; i++)
		free(slots[i].p);
	return finish();
}
