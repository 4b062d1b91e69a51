/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pipewrite FIFO [write|writev] - one large blocking write into a pipe: after
 * "ready" it opens FIFO for writing and writes 8 MiB (byte i is i % 251) in
 * one write() or one writev() of three pieces, then prints "wrote N" with
 * what the call returned, closes the pipe and waits for "go". A checkpoint
 * while the call blocks (the pipe holds 64 KiB) must not cut it short.
 */
#include "target.h"

#include <fcntl.h>
#include <sys/uio.h>

#define LEN (8UL << 20)

int main(int argc, char **argv)
{
	const char *how = argc > 2 ? argv[2] : "write";
	static unsigned char buf[LEN];
	ssize_t n;
	int fd;

	if (argc < 2)
		fatal("usage: pipewrite FIFO [write|writev]");
	for (size_t i = 0; i < LEN; i++)
		buf[i] = (unsigned char)(i % 251);
	ready();
	fd = open(argv[1], O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fatal("open %s: %s", argv[1], strerror(errno));
	if (strcmp(how, "writev") == 0) {
		struct iovec iov[3] = {
			{ buf, 1000 },
			{ buf + 1000, LEN / 2 - 1000 },
			{ buf + LEN / 2, LEN / 2 },
		};

		n = writev(fd, iov, 3);
	} else {
		n = write(fd, buf, LEN);
	}
	if (n < 0)
		fatal("%s: %s", how, strerror(errno));
	printf("wrote %zd\n", n);
	fflush(stdout);
	close(fd);
	wait_go();
	CHECK((size_t)n == LEN, "%s returned %zd of %lu", how, n, LEN);
	return finish();
}
