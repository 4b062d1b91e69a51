/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * generations - state that grows with every generation, for chains of
 * checkpoint -> restart -> checkpoint -> restart. Each "step" line checks
 * everything so far, adds a heap block and a stack frame's worth of data for
 * the new generation and answers "step N ok"; "go" checks and ends.
 */
#include "target.h"

#define MAX_GEN 16
#define BLOCK (256 * 1024)

static unsigned char *blocks[MAX_GEN + 1];
static int gen;

static void check_all(const char *when, const uint64_t *stack_vals)
{
	for (int g = 0; g <= gen; g++) {
		long off = check_pattern(blocks[g], BLOCK, 0x6e00 + g);

		CHECK(off < 0, "%s: block of generation %d differs at %ld",
		      when, g, off);
		CHECK(stack_vals[g] == mix64(0x5700 + g),
		      "%s: stack value of generation %d differs", when, g);
	}
}

static void add_generation(uint64_t *stack_vals)
{
	blocks[gen] = malloc(BLOCK);
	if (!blocks[gen])
		fatal("malloc: %s", strerror(errno));
	fill_pattern(blocks[gen], BLOCK, 0x6e00 + gen);
	stack_vals[gen] = mix64(0x5700 + gen);
}

int main(void)
{
	uint64_t stack_vals[MAX_GEN + 1];
	char line[64];

	memset(stack_vals, 0, sizeof(stack_vals));
	add_generation(stack_vals);
	ready();
	for (;;) {
		if (read_line(line, sizeof(line)) < 0)
			fatal("stdin closed");
		if (strcmp(line, "go") == 0)
			break;
		if (strcmp(line, "step") != 0)
			fatal("unknown command '%s'", line);
		check_all("at a step", stack_vals);
		if (target_nr_failures)
			return finish();
		if (gen == MAX_GEN)
			fatal("more than %d generations", MAX_GEN);
		gen++;
		add_generation(stack_vals);
		printf("step %d ok\n", gen);
		fflush(stdout);
	}
	check_all("at the end", stack_vals);
	CHECK(target_eintr == 0, "read(stdin) returned EINTR %d time(s)",
	      target_eintr);
	printf("generations %d\n", gen + 1);
	return finish();
}
