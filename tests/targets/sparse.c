/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sparse - a 1 GiB anonymous mapping with only a few pages touched. Only
 * those pages belong in the image (the harness checks that the image is
 * small); after the restart they hold their patterns and every other page
 * of the gigabyte reads as zero.
 */
#include "target.h"

#include <sys/mman.h>

#define SIZE (1UL << 30)
#define PAGE 4096UL

static const size_t touched[] = {
	0, 1, 77, (SIZE / 2) / PAGE, (SIZE / 2) / PAGE + 3, SIZE / PAGE - 1,
};
#define NTOUCHED (sizeof(touched) / sizeof(touched[0]))

static int is_touched(size_t page)
{
	for (size_t i = 0; i < NTOUCHED; i++)
		if (touched[i] == page)
			return 1;
	return 0;
}

int main(void)
{
	unsigned char *map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);
	size_t nonzero = 0, first_nonzero = 0;

	if (map == MAP_FAILED)
		fatal("mmap 1 GiB: %s", strerror(errno));
	/* Keep transparent huge pages out: one touch would store 2 MiB. */
	madvise(map, SIZE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < NTOUCHED; i++)
		fill_pattern(map + touched[i] * PAGE, PAGE, touched[i]);
	ready();
	wait_go();
	for (size_t i = 0; i < NTOUCHED; i++) {
		long off = check_pattern(map + touched[i] * PAGE, PAGE,
					 touched[i]);

		CHECK(off < 0, "touched page %zu differs at offset %ld",
		      touched[i], off);
	}
	for (size_t page = 0; page < SIZE / PAGE; page++) {
		const uint64_t *w = (const uint64_t *)(map + page * PAGE);
		uint64_t acc = 0;

		if (is_touched(page))
			continue;
		for (size_t j = 0; j < PAGE / 8; j++)
			acc |= w[j];
		if (acc && !nonzero++)
			first_nonzero = page;
	}
	CHECK(!nonzero, "%zu untouched pages are not zero (first: page %zu)",
	      nonzero, first_nonzero);
	munmap(map, SIZE);
	return finish();
}
