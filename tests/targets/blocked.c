/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blocked MODE - the checkpoint lands while the program sleeps in the
 * kernel, and must not show: the call returns as if nothing had happened,
 * never with EINTR. Each MODE makes exactly one call, with no retry loop:
 *
 *   read        read(2) on stdin (restarted thanks to SA_RESTART)
 *   poll        poll(2) on stdin, infinite timeout
 *   ppoll       ppoll(2) on stdin, no timeout
 *   select      select(2) on stdin, no timeout
 *   pselect     pselect(2) on stdin, no timeout
 *   epoll       epoll_wait(2) on stdin, infinite timeout (the epoll fd is
 *               not carried over a restart yet: used without restart)
 *   nanosleep   nanosleep(2) for 2 s, then read "go"
 *   sleep       libc's sleep(2 s): must return 0 (nothing unslept)
 *
 * The waiting modes then read the "go" line.
 */
#include "target.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

static void check_ret(const char *what, long r)
{
	if (r < 0)
		fatal("%s returned -1 (%s) after the checkpoint", what,
		      strerror(errno));
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "read";
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	fd_set rd;
	char buf[8];
	long r;

	FD_ZERO(&rd);
	FD_SET(0, &rd);
	if (strcmp(mode, "epoll") == 0) {
		struct epoll_event ev = { .events = EPOLLIN }, out;
		int ep = epoll_create1(0);

		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0)
			fatal("epoll: %s", strerror(errno));
		ready();
		check_ret("epoll_wait", epoll_wait(ep, &out, 1, -1));
		wait_go();
		return finish();
	}
	ready();
	if (strcmp(mode, "read") == 0) {
		r = read(0, buf, sizeof(buf));
		check_ret("read", r);
		CHECK(r == 3 && memcmp(buf, "go\n", 3) == 0,
		      "read returned %ld bytes, not the go line", r);
		return finish();
	} else if (strcmp(mode, "poll") == 0) {
		r = poll(&pfd, 1, -1);
		check_ret("poll", r);
		CHECK(r == 1 && (pfd.revents & POLLIN),
		      "poll returned %ld, revents %#x", r, pfd.revents);
	} else if (strcmp(mode, "ppoll") == 0) {
		r = ppoll(&pfd, 1, NULL, NULL);
		check_ret("ppoll", r);
		CHECK(r == 1 && (pfd.revents & POLLIN),
		      "ppoll returned %ld, revents %#x", r, pfd.revents);
	} else if (strcmp(mode, "select") == 0) {
		r = select(1, &rd, NULL, NULL, NULL);
		check_ret("select", r);
		CHECK(r == 1 && FD_ISSET(0, &rd), "select returned %ld", r);
	} else if (strcmp(mode, "pselect") == 0) {
		r = pselect(1, &rd, NULL, NULL, NULL, NULL);
		check_ret("pselect", r);
		CHECK(r == 1 && FD_ISSET(0, &rd), "pselect returned %ld", r);
	} else if (strcmp(mode, "nanosleep") == 0) {
		struct timespec ts = { 2, 0 }, left = { 0, 0 };

		r = nanosleep(&ts, &left);
		if (r < 0)
			fatal("nanosleep returned -1 (%s) with %ld.%09ld s "
			      "left after the checkpoint",
			      strerror(errno), (long)left.tv_sec,
			      left.tv_nsec);
	} else if (strcmp(mode, "sleep") == 0) {
		r = sleep(2);
		CHECK(r == 0, "sleep(2) returned %ld s unslept", r);
	} else {
		fatal("unknown mode %s", mode);
	}
	wait_go();
	return finish();
}
