/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * scanpat MODE - memory whose touched pages come in many separate runs,
 * the shapes that made PAGEMAP_SCAN's answers go backwards (issue 11).
 * Every touched page holds its own index; after the restart every page is
 * checked: touched ones hold their index, the others read as zeros.
 *
 *   alternate  80 MiB, every other page touched: 10,240 runs in one mapping
 *   third      64 MiB without THP, one page in three touched at random
 *              (srand(1)): ranges that overflow the scan vector
 *   churn      512 heap slots malloc'ed, realloc'ed between 1 byte and
 *              300 KB and freed, at random, 20,000 times; each slot holds
 *              a pattern of its own, checked after the restart
 */
#include "target.h"

#include <stdint.h>
#include <sys/mman.h>

#define PAGE 4096UL

static unsigned char *map_touched(size_t len, int step, int random)
{
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t i;

	if (m == MAP_FAILED)
		fatal("mmap: %s", strerror(errno));
	if (madvise(m, len, MADV_NOHUGEPAGE) < 0)
		fatal("MADV_NOHUGEPAGE: %s", strerror(errno));
	srand(1);
	for (i = 0; i < len / PAGE; i++) {
		int touch = random ? rand() % 3 == 0 : i % step == 0;

		if (touch)
			*(uint64_t *)(m + i * PAGE) = i + 1;
	}
	return m;
}

static void check_touched(const unsigned char *m, size_t len, int step,
			  int random)
{
	size_t i, bad = 0, first = 0;

	srand(1);
	for (i = 0; i < len / PAGE; i++) {
		int touch = random ? rand() % 3 == 0 : i % step == 0;
		uint64_t want = touch ? i + 1 : 0;

		if (*(const uint64_t *)(m + i * PAGE) != want && !bad++)
			first = i;
	}
	CHECK(!bad, "%zu pages differ, the first at page %zu", bad, first);
}

#define SLOTS 512

struct slot {
	unsigned char *p;
	size_t len;
	unsigned char tag;
};

static void fill(struct slot *s)
{
	size_t i;

	for (i = 0; i < s->len; i++)
		s->p[i] = (unsigned char)(s->tag + i * 7);
}

static int churn(void)
{
	static struct slot slots[SLOTS];
	size_t i, j, bad = 0;

	srand(7);
	for (i = 0; i < 20000; i++) {
		struct slot *s = &slots[rand() % SLOTS];
		int what = rand() % 4;

		if (what == 0 && s->p) {
			free(s->p);
			s->p = NULL;
			s->len = 0;
			continue;
		}
		s->len = 1 + (size_t)rand() % 300000;
		s->p = realloc(s->p, s->len);
		if (!s->p)
			fatal("realloc: out of memory");
		s->tag = (unsigned char)rand();
		fill(s);
	}
	ready();
	wait_go();
	for (i = 0; i < SLOTS; i++)
		for (j = 0; j < slots[i].len; j++)
			if (slots[i].p[j] != (unsigned char)(slots[i].tag + j * 7)) {
				bad++;
				break;
			}
	CHECK(!bad, "%zu heap slots differ", bad);
	return finish();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "alternate";
	size_t len = strcmp(mode, "third") == 0 ? 64UL << 20 : 80UL << 20;
	int random = strcmp(mode, "third") == 0;
	unsigned char *m;

	if (strcmp(mode, "churn") == 0)
		return churn();
	if (strcmp(mode, "alternate") && strcmp(mode, "third"))
		fatal("unknown mode %s", mode);
	m = map_touched(len, 2, random);
	ready();
	wait_go();
	check_touched(m, len, 2, random);
	return finish();
}
