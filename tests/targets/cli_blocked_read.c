/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cli_blocked_read.c - a target for the extckpt CLI tests: announces
 * "ready", then blocks in read(2) on stdin. When a line arrives it echoes
 * "got <line>" and exits 0: the read must survive a checkpoint (SA_RESTART).
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	char buf[256];
	ssize_t n;

	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	n = read(0, buf, sizeof(buf) - 1);
	if (n < 0) {
		perror("read");
		return 1;
	}
	buf[n] = '\0';
	printf("got %s", buf);
	return 0;
}
