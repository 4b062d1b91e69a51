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
 *   semop       semop(2) waiting for a System V semaphore that a child of
 *               ours posts 1.5 s later
 *   semtimedop  semtimedop(2) on a semaphore nobody posts, 1.5 s timeout:
 *               must fail with EAGAIN, not EINTR
 *   msgrcv      msgrcv(2) on an empty queue; a child sends 1.5 s later
 *   msgsnd      msgsnd(2) on a full queue; a child takes one 1.5 s later
 *
 * (System V IPC objects are not part of an image: these modes are checked
 * without a restart.) The waiting modes then read the "go" line.
 */
#include "target.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/wait.h>

static void check_ret(const char *what, long r)
{
	if (r < 0)
		fatal("%s returned -1 (%s) after the checkpoint", what,
		      strerror(errno));
}

struct msg {
	long type;
	char text[1024];
};

/* A child of ours that does `act` on the object 1.5 s from now, then exits. */
static pid_t later(void (*act)(int), int id)
{
	pid_t pid = fork();

	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		struct timespec ts = { 1, 500000000 };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		act(id);
		_exit(0);
	}
	return pid;
}

static void post_sem(int id)
{
	struct sembuf op = { 0, 1, 0 };

	semop(id, &op, 1);
}

static void send_msg(int id)
{
	struct msg m = { 1, "late" };

	msgsnd(id, &m, sizeof(m.text), 0);
}

static void take_msg(int id)
{
	struct msg m;

	msgrcv(id, &m, sizeof(m.text), 0, 0);
}

/* One System V wait, as MODE says; the object is removed afterwards. */
static int sysv(const char *mode)
{
	struct sembuf op = { 0, -1, 0 };
	struct timespec tmo = { 1, 500000000 };
	struct msg m = { 1, "fill" };
	int sem = -1, q = -1;
	pid_t child = -1;
	long r;

	if (strncmp(mode, "sem", 3) == 0) {
		sem = semget(IPC_PRIVATE, 1, 0600);
		if (sem < 0)
			fatal("semget: %s", strerror(errno));
	} else {
		q = msgget(IPC_PRIVATE, 0600);
		if (q < 0)
			fatal("msgget: %s", strerror(errno));
	}
	if (strcmp(mode, "semop") == 0) {
		child = later(post_sem, sem);
		ready();
		r = semop(sem, &op, 1);
		check_ret("semop", r);
	} else if (strcmp(mode, "semtimedop") == 0) {
		ready();
		r = semtimedop(sem, &op, 1, &tmo);
		CHECK(r < 0 && errno == EAGAIN,
		      "semtimedop returned %ld (%s), not the timeout", r,
		      r < 0 ? strerror(errno) : "no error");
	} else if (strcmp(mode, "msgrcv") == 0) {
		child = later(send_msg, q);
		ready();
		r = msgrcv(q, &m, sizeof(m.text), 0, 0);
		check_ret("msgrcv", r);
		CHECK(strcmp(m.text, "late") == 0, "msgrcv got \"%s\"", m.text);
	} else {
		while (msgsnd(q, &m, sizeof(m.text), IPC_NOWAIT) == 0)
			;
		if (errno != EAGAIN)
			fatal("filling the queue: %s", strerror(errno));
		child = later(take_msg, q);
		ready();
		r = msgsnd(q, &m, sizeof(m.text), 0);
		check_ret("msgsnd", r);
	}
	if (child > 0)
		waitpid(child, NULL, 0);
	if (sem >= 0)
		semctl(sem, 0, IPC_RMID);
	if (q >= 0)
		msgctl(q, IPC_RMID, NULL);
	wait_go();
	return finish();
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
	if (strncmp(mode, "sem", 3) == 0 || strncmp(mode, "msg", 3) == 0)
		return sysv(mode);
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
