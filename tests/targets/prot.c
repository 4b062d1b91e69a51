/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * prot - page protections and the data behind them. One mapping of five
 * pages, each filled with a pattern and then given its own protection:
 * rw-, r--, --- (PROT_NONE with data), r-x (holding code we call), and
 * rw- again; plus a separate PROT_NONE reservation that was never touched.
 * After the restart: the data is intact (PROT_NONE is made readable for a
 * moment to look), /proc/self/maps shows the same permissions page by page,
 * and a write to the read-only page still faults.
 */
#include "target.h"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#define PAGE 4096UL
#define NPAGES 5
#define GUARD_PAGES 16

static const int prots[NPAGES] = {
	PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE, PROT_READ | PROT_EXEC,
	PROT_READ | PROT_WRITE,
};

static unsigned char *map, *guard;
static char perms_before[NPAGES + 1][8];

/* The permission string ("r-xp") of the mapping that holds addr. */
static int perms_of(const void *addr, char out[8])
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;

	if (!f)
		fatal("open /proc/self/maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		if ((unsigned long)addr >= lo && (unsigned long)addr < hi) {
			memcpy(out, perms, 8);
			found = 1;
			break;
		}
	}
	fclose(f);
	if (!found)
		strcpy(out, "none");
	return found;
}

static void record_perms(char perms[NPAGES + 1][8])
{
	for (int i = 0; i < NPAGES; i++)
		perms_of(map + i * PAGE, perms[i]);
	perms_of(guard, perms[NPAGES]);
}

static sigjmp_buf segv_jmp;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_jmp, 1);
}

static int write_faults(volatile unsigned char *p)
{
	struct sigaction sa = { .sa_handler = on_segv }, old;
	int faulted = 0;

	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(segv_jmp, 1))
		faulted = 1;
	else
		*p = 0x5a;
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}

int main(void)
{
	char perms_after[NPAGES + 1][8];
	long off;

	map = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	guard = mmap(NULL, GUARD_PAGES * PAGE, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED || guard == MAP_FAILED)
		fatal("mmap: %s", strerror(errno));
	for (int i = 0; i < NPAGES; i++)
		fill_pattern(map + i * PAGE, PAGE, 100 + i);
	/* Page 3: "mov $0x2a, %eax; ret" at its start, then the pattern. */
	memcpy(map + 3 * PAGE, "\xb8\x2a\x00\x00\x00\xc3", 6);
	for (int i = 0; i < NPAGES; i++)
		if (mprotect(map + i * PAGE, PAGE, prots[i]) < 0)
			fatal("mprotect page %d: %s", i, strerror(errno));
	record_perms(perms_before);
	ready();
	wait_go();

	record_perms(perms_after);
	for (int i = 0; i <= NPAGES; i++)
		CHECK(strcmp(perms_before[i], perms_after[i]) == 0,
		      "%s %d: permissions %s before, %s after",
		      i < NPAGES ? "page" : "guard", i, perms_before[i],
		      perms_after[i]);
	for (int i = 0; i < NPAGES; i++) {
		unsigned char *p = map + i * PAGE;
		size_t skip = i == 3 ? 6 : 0;

		if (prots[i] == PROT_NONE &&
		    mprotect(p, PAGE, PROT_READ) < 0) {
			fail("mprotect page %d readable: %s", i,
			     strerror(errno));
			continue;
		}
		/* Compare the pattern past the code bytes of page 3. */
		off = check_pattern(p, PAGE, 100 + i);
		if (skip && off >= 0 && (size_t)off < skip) {
			unsigned char tmp[PAGE];

			memcpy(tmp, p, PAGE);
			fill_pattern(tmp, skip, 100 + i);
			off = check_pattern(tmp, PAGE, 100 + i);
		}
		CHECK(off < 0, "page %d (%s) differs at offset %ld", i,
		      perms_before[i], off);
		if (prots[i] == PROT_NONE &&
		    mprotect(p, PAGE, PROT_NONE) < 0)
			fail("mprotect page %d back to none: %s", i,
			     strerror(errno));
	}
	CHECK(memcmp(map + 3 * PAGE, "\xb8\x2a\x00\x00\x00\xc3", 6) == 0,
	      "the code in page 3 changed");
	if (!target_nr_failures) {
		int (*fn)(void) = (int (*)(void))(void *)(map + 3 * PAGE);

		CHECK(fn() == 42, "code in the r-x page returned the wrong value");
	}
	CHECK(write_faults(map + 1 * PAGE),
	      "a write to the read-only page did not fault");
	CHECK(write_faults(guard + 3 * PAGE),
	      "a write to the PROT_NONE guard did not fault");
	CHECK(!write_faults(map + 4 * PAGE),
	      "a write to the read-write page faulted");
	return finish();
}
