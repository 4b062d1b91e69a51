/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * digest STEPS [MIB] - a long computation to checkpoint: STEPS steps over a
 * MIB MiB array (default 16; a multiple of 16), each a fixed amount of work on 16 MiB of it
 * (the rest is there to make the image bigger); after each step
 * one line "step I HASH" on stdout (flushed, so a checkpoint finds part of
 * the output written), at the end "digest HASH". The output depends on
 * nothing but the arguments: a run that was checkpointed, ended and resumed
 * any number of times must print exactly what an uninterrupted one prints.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

int main(int argc, char **argv)
{
	long steps = argc > 1 ? atol(argv[1]) : 40;
	long mib = argc > 2 ? atol(argv[2]) : 16;
	size_t n = (size_t)mib << 17; /* u64s */
	size_t window = (size_t)16 << 17, base;
	uint64_t *a = malloc(n * sizeof(*a)), h = 0;
	long s;
	size_t i;
	int round;

	if (!a || steps < 1 || mib < 16 || mib % 16) {
		fprintf(stderr, "usage: digest STEPS [MIB, a multiple of 16]\n");
		return 2;
	}
	for (i = 0; i < n; i++)
		a[i] = mix(i);
	for (s = 1; s <= steps; s++) {
		base = (size_t)(s - 1) * window % n;
		for (round = 0; round < 8; round++)
			for (i = base; i < base + window; i++) {
				a[i] = mix(a[i] ^ h);
				h += a[i];
			}
		printf("step %ld %016llx\n", s, (unsigned long long)h);
		fflush(stdout);
	}
	printf("digest %016llx\n", (unsigned long long)h);
	return 0;
}
