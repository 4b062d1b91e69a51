/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * corners.c - ordinary-but-unusual memory maps (issue 7) and a collision
 * with the restarter's own address (issue 2):
 *   - 16 MiB mapped at 0x5000000, where myrestart's code is linked;
 *   - a 2 TiB MAP_NORESERVE reservation with five pages touched;
 *   - 10,000 separate one-page mappings, each with its own value;
 *   - a MAP_GROWSDOWN region that is not the main stack;
 *   - madvise DONTFORK, DONTDUMP, HUGEPAGE, NOHUGEPAGE, RANDOM, and mlock.
 * After the restart every byte and every VmFlags entry in smaps must match.
 */
#include <sys/mman.h>

#include "target.h"

#define FIXED_ADDR ((char *)0x5000000)
#define FIXED_LEN (16UL << 20)
#define HUGE_LEN (2UL << 40)
#define NR_SMALL 10000
#define PAGE 4096UL

/* The VmFlags line of the mapping that holds addr, or "" if none. */
static const char *vmflags_of(const void *addr)
{
	static char flags[512];
	char line[512];
	int inside = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	flags[0] = '\0';
	if (!f)
		return flags;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = (unsigned long)addr >= lo &&
				 (unsigned long)addr < hi;
			continue;
		}
		if (inside && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, sizeof(flags), "%s", line + 8);
			break;
		}
	}
	fclose(f);
	return flags;
}

static int has_flag(const void *addr, const char *flag)
{
	char want[8];

	snprintf(want, sizeof(want), " %s", flag);
	return strstr(vmflags_of(addr), want) != NULL;
}

struct advised {
	const char *name;
	int advice;
	const char *flag;
	char *mem;
};

int main(void)
{
	static struct advised adv[] = {
		{ "dontfork", MADV_DONTFORK, "dc", NULL },
		{ "dontdump", MADV_DONTDUMP, "dd", NULL },
		{ "hugepage", MADV_HUGEPAGE, "hg", NULL },
		{ "nohugepage", MADV_NOHUGEPAGE, "nh", NULL },
		{ "random", MADV_RANDOM, "rr", NULL },
	};
	char *fixed, *huge, *gd, *locked, **small, line[64];
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	fixed = mmap(FIXED_ADDR, FIXED_LEN, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (fixed != FIXED_ADDR) {
		printf("FAIL: setup: cannot map at 0x5000000\n");
		return 1;
	}
	for (i = 0; i < FIXED_LEN; i += PAGE)
		fixed[i] = (char)(i / PAGE);
	huge = mmap(NULL, HUGE_LEN, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (huge == MAP_FAILED) {
		printf("FAIL: setup: no 2 TiB reservation\n");
		return 1;
	}
	for (i = 0; i < 5; i++)
		huge[i * (HUGE_LEN / 5)] = (char)(0x40 + i);
	small = calloc(NR_SMALL, sizeof(*small));
	for (i = 0; i < NR_SMALL; i++) {
		/* Alternate permissions so that neighbours never merge. */
		small[i] = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (small[i] == MAP_FAILED) {
			printf("FAIL: setup: mapping %zu\n", i);
			return 1;
		}
		*(size_t *)small[i] = i * 2654435761UL;
		if (i & 1)
			mprotect(small[i], PAGE, PROT_READ);
	}
	gd = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
	strcpy(gd + 15 * PAGE, "grows down");
	for (i = 0; i < sizeof(adv) / sizeof(adv[0]); i++) {
		adv[i].mem = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		strcpy(adv[i].mem, adv[i].name);
		if (madvise(adv[i].mem, 4 << 20, adv[i].advice))
			printf("note: madvise %s: %s\n", adv[i].name,
			       strerror(errno));
	}
	locked = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	strcpy(locked, "locked");
	if (mlock(locked, PAGE))
		printf("note: mlock: %s\n", strerror(errno));
	/* Whatever smaps says now is what must come back. */
	int want_nr = has_flag(huge, "nr"), want_gd = has_flag(gd + 15 * PAGE, "gd");
	int want_lo = has_flag(locked, "lo"), want_adv[8];

	for (i = 0; i < sizeof(adv) / sizeof(adv[0]); i++)
		want_adv[i] = has_flag(adv[i].mem, adv[i].flag);

	printf("ready\n");
	if (!fgets(line, sizeof(line), stdin))
		return 1;

	for (i = 0; i < FIXED_LEN; i += PAGE)
		if (fixed[i] != (char)(i / PAGE)) {
			fail("page %zu at 0x5000000 holds %d", i / PAGE, fixed[i]);
			break;
		}
	for (i = 0; i < 5; i++)
		if (huge[i * (HUGE_LEN / 5)] != (char)(0x40 + i))
			fail("touched page %zu of the 2 TiB reservation lost", i);
	if (huge[12345 * PAGE] != 0)
		fail("an untouched page of the reservation is not zero");
	if (want_nr && !has_flag(huge, "nr"))
		fail("the reservation lost MAP_NORESERVE (VmFlags:%s)",
		     vmflags_of(huge));
	for (i = 0; i < NR_SMALL; i++)
		if (*(size_t *)small[i] != i * 2654435761UL) {
			fail("small mapping %zu lost its value", i);
			break;
		}
	if (strcmp(gd + 15 * PAGE, "grows down"))
		fail("the MAP_GROWSDOWN region lost its contents");
	if (want_gd && !has_flag(gd + 15 * PAGE, "gd"))
		fail("the second MAP_GROWSDOWN region does not grow down");
	for (i = 0; i < sizeof(adv) / sizeof(adv[0]); i++) {
		if (strcmp(adv[i].mem, adv[i].name))
			fail("the %s region lost its contents", adv[i].name);
		if (want_adv[i] && !has_flag(adv[i].mem, adv[i].flag))
			fail("madvise %s lost (VmFlags:%s)", adv[i].name,
			     vmflags_of(adv[i].mem));
	}
	if (strcmp(locked, "locked"))
		fail("the locked page lost its contents");
	if (want_lo && !has_flag(locked, "lo"))
		fail("mlock lost");
	return finish();
}
