/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bigmem [MiB] - a large image (default 512 MiB, every page touched with a
 * pattern), for the fault tests: a checkpoint that is killed while it
 * writes, or that runs out of disk. Commands on stdin: "check" verifies the
 * memory and answers "ok"; "go" verifies and ends.
 */
#include "target.h"

#include <sys/mman.h>

#define PAGE 4096UL

static unsigned char *mem;
static size_t size;

static void check_mem(void)
{
	/* One 64-bit word per page is enough to catch a lost page; the
	 * first page of each MiB is checked whole. */
	for (size_t p = 0; p < size / PAGE; p++) {
		uint64_t want = mix64(p);

		if (*(uint64_t *)(mem + p * PAGE) != want) {
			fail("page %zu lost its value", p);
			return;
		}
		if (p % 256 == 0 &&
		    check_pattern(mem + p * PAGE + 8, PAGE - 8, p) >= 0) {
			fail("page %zu differs", p);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	char line[64];

	size = (argc > 1 ? strtoul(argv[1], NULL, 10) : 512) << 20;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fatal("mmap %zu bytes: %s", size, strerror(errno));
	for (size_t p = 0; p < size / PAGE; p++) {
		*(uint64_t *)(mem + p * PAGE) = mix64(p);
		if (p % 256 == 0)
			fill_pattern(mem + p * PAGE + 8, PAGE - 8, p);
	}
	ready();
	for (;;) {
		if (read_line(line, sizeof(line)) < 0)
			fatal("stdin closed");
		check_mem();
		if (strcmp(line, "go") == 0)
			break;
		if (strcmp(line, "check") != 0)
			fatal("unknown command '%s'", line);
		if (target_nr_failures)
			return finish();
		printf("ok\n");
		fflush(stdout);
	}
	return finish();
}
