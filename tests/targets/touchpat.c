/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * touchpat SEED [DIR] - a random shape of touched memory, for the property
 * test of the page scan (tests/test_native_scan.py): one to four mappings
 * of 4 KiB to 256 MiB - private anonymous (most), shared anonymous, or a
 * private mapping of a file in DIR that the program then writes to (its
 * pages become copies of its own) - with or without THP, pages written at
 * random (single pages and runs of random length, at a random density),
 * some of them dropped again with MADV_DONTNEED, and parts mprotect'ed
 * read-only or PROT_NONE afterwards. Prints "map KIND START END" for each
 * (KIND: private, shared or file), then "ready", and waits for "go" (no
 * restart: the test compares the image's runs with /proc/PID/pagemap
 * while this waits).
 */
#include "target.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>

#define PAGE 4096UL

static uint64_t state;

static uint64_t rnd(void) /* xorshift64*: the same on every libc */
{
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 0x2545F4914F6CDD1DULL;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* A private mapping of a new file of len bytes (holes: cheap to make). */
static unsigned char *map_file(const char *dir, int i, size_t len)
{
	char path[4096];
	unsigned char *m;
	int fd;

	snprintf(path, sizeof(path), "%s/touchpat.%d", dir, i);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		fatal("%s: %s", path, strerror(errno));
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	return m;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 2 ? argv[2] : NULL;
	int i, nmaps;

	state = (argc > 1 ? strtoull(argv[1], NULL, 0) : 1) * 2654435761ULL + 1;
	nmaps = 1 + (int)below(4);
	for (i = 0; i < nmaps; i++) {
		/* 1 page .. 64 Ki pages (256 MiB), log-uniform. */
		size_t pages = (size_t)1 << below(17), p, n, k;
		size_t len = (pages + below(pages)) * PAGE;
		unsigned density = 1 + (unsigned)below(60); /* percent */
		unsigned kind = (unsigned)below(6); /* 0 shared, 1 file, else private */
		const char *kname = kind == 0 ? "shared" : kind == 1 && dir ? "file" : "private";
		unsigned char *m;

		if (kind == 0)
			m = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		else if (kind == 1 && dir)
			m = map_file(dir, i, len);
		else
			m = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m == MAP_FAILED)
			fatal("mmap %zu: %s", len, strerror(errno));
		pages = len / PAGE;
		if (madvise(m, len, below(2) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0)
			fatal("madvise: %s", strerror(errno));
		for (p = 0; p < pages; p += n) {
			n = 1 + below(below(4) ? 1 : 64); /* single pages or runs */
			if (n > pages - p)
				n = pages - p;
			if (below(100) < density)
				for (k = 0; k < n; k++)
					m[(p + k) * PAGE + below(PAGE)] = (unsigned char)(1 + below(255));
		}
		for (k = below(4); k > 0; k--) { /* drop some again */
			size_t at = below(pages), cnt = 1 + below(pages - at);

			madvise(m + at * PAGE, cnt * PAGE, MADV_DONTNEED);
		}
		for (k = below(3); k > 0; k--) { /* protect some */
			size_t at = below(pages), cnt = 1 + below(pages - at);

			mprotect(m + at * PAGE, cnt * PAGE, below(2) ? PROT_READ : PROT_NONE);
		}
		printf("map %s %#lx %#lx\n", kname, (unsigned long)m,
		       (unsigned long)(m + len));
	}
	fflush(stdout);
	ready();
	wait_go();
	return finish();
}
