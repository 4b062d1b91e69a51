/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cli_spin.c - a target for the extckpt CLI tests: announces "ready" and
 * then spins in a tight loop that makes no system calls, so a checkpoint
 * signal always lands in user code. Optional argument: MiB of memory to
 * fill with a pattern first (for verify's speed test).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile unsigned long spins;

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
	unsigned char *p = NULL;
	size_t i;

	if (mib) {
		p = malloc(mib << 20);
		if (!p)
			return 1;
		for (i = 0; i < mib << 20; i++)
			p[i] = (unsigned char)(i * 7 + (i >> 12));
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		spins++;
}
