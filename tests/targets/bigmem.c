/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bigmem [MiB [holes]] - a large image (default 512 MiB, every page touched with a
 * pattern), for the fault tests (a checkpoint that is killed while it
 * writes, or that runs out of disk) and for memory restored before the
 * point of no return. Commands on stdin: "check" verifies the memory and answers "ok";
 * "bump" verifies it, then rewrites every page for the next generation of
 * values and answers "bumped N"; "go" verifies and ends. With "holes", every other
 * 64 KiB is left untouched (and must stay zero): the image then holds
 * many separate runs.
 */
#include "target.h"

#include <sys/mman.h>

#define PAGE 4096UL

static unsigned char *mem;
static size_t size;
static uint64_t gen; /* how many times "bump" rewrote the memory */
static int holes;

static int is_hole(size_t p)
{
	return holes && (p / 16) % 2 == 1;
}

static uint64_t page_seed(size_t p)
{
	return p + (gen << 40);
}

static void fill_mem(void)
{
	for (size_t p = 0; p < size / PAGE; p++) {
		if (is_hole(p))
			continue;
		*(uint64_t *)(mem + p * PAGE) = mix64(page_seed(p));
		if (p % 256 == 0)
			fill_pattern(mem + p * PAGE + 8, PAGE - 8, page_seed(p));
	}
}

static void check_mem(void)
{
	/* One 64-bit word per page is enough to catch a lost page; the
	 * first page of each MiB is checked whole. */
	for (size_t p = 0; p < size / PAGE; p++) {
		uint64_t want = is_hole(p) ? 0 : mix64(page_seed(p));

		if (*(uint64_t *)(mem + p * PAGE) != want) {
			fail("page %zu lost its value", p);
			return;
		}
		if (p % 256 == 0 && !is_hole(p) &&
		    check_pattern(mem + p * PAGE + 8, PAGE - 8, page_seed(p)) >= 0) {
			fail("page %zu differs", p);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	char line[64];

	size = (argc > 1 ? strtoul(argv[1], NULL, 10) : 512) << 20;
	holes = argc > 2 && strcmp(argv[2], "holes") == 0;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fatal("mmap %zu bytes: %s", size, strerror(errno));
	/* Holes must stay holes: a huge page would fill them. */
	if (holes && madvise(mem, size, MADV_NOHUGEPAGE))
		fatal("madvise: %s", strerror(errno));
	fill_mem();
	ready();
	for (;;) {
		if (read_line(line, sizeof(line)) < 0)
			fatal("stdin closed");
		check_mem();
		if (strcmp(line, "go") == 0)
			break;
		if (strcmp(line, "bump") == 0 && !target_nr_failures) {
			gen++;
			fill_mem();
			printf("bumped %llu\n", (unsigned long long)gen);
			fflush(stdout);
			continue;
		}
		if (strcmp(line, "check") != 0)
			fatal("unknown command '%s'", line);
		if (target_nr_failures)
			return finish();
		printf("ok\n");
		fflush(stdout);
	}
	return finish();
}
