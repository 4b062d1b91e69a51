// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * benchmarks/workload.c - the program benchmarks/run.py checkpoints.
 *
 *   workload MAP_MIB TOUCH_MIB
 *
 * Maps MAP_MIB MiB of private anonymous memory, writes the first TOUCH_MIB
 * MiB of it (every byte, so that each page is a real page, not the zero
 * page), prints "ready PID" and then spins in a tight loop that reads
 * CLOCK_MONOTONIC (vDSO: no system call) and measures the gap between two
 * iterations. MAP_MIB 0 is the tiny program: no mapping beyond libc's own.
 *
 * Lines on stdout (each one write(2), no stdio):
 *   "ready PID"         the memory is touched, the loop is running
 *   "gap NS"            an iteration took more than GAP_REPORT_NS: printed
 *                       at once, so after a restart the first thing the
 *                       program does is this line (its clock jumped by the
 *                       time it was not running); the harness times it
 *   "maxgap NS N S:L S:L ..."
 *                       on SIGUSR1: the longest gap since the last SIGUSR1,
 *                       then the first N gaps longer than GAP_RECORD_NS as
 *                       start:length (CLOCK_MONOTONIC ns, the same clock as
 *                       the harness's time.monotonic()), so that the harness
 *                       can pick the one gap that contains its checkpoint
 *                       signal, not a hiccup of the VM elsewhere in the
 *                       window; then everything is reset
 *   "rewrote NS"        on SIGHUP: the time it took to write every touched
 *                       byte once more (after a restart that left pages
 *                       to fault in later, this is where they would go)
 *   "forked NS"         on SIGALRM: the time a bare fork() of this process
 *                       took (the child exits at once): the floor for the
 *                       pause of a forked checkpoint, which forks the same
 *                       page tables
 *   "dumped NS"         on SIGURG: the time it took to write() its touched
 *                       memory, 1 MiB per call, into a new file at
 *                       $WORKLOAD_DUMP (open to close): the floor for a
 *                       checkpoint, which must read the same memory
 *
 * A gap is the time between the tops of two iterations, printing included:
 * a checkpoint lands somewhere in the loop, maybe inside a write(2), and
 * whatever it interrupts must count. The checkpoint signal is libckpt's
 * (SIGUSR2 by default); SIGUSR1 is ours.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GAP_REPORT_NS 20000000LL /* 20 ms: this VM shows 5-7 ms gaps at idle */
#define GAP_RECORD_NS 100000LL /* 100 us */
#define MAX_RECORD 256
#define PAGE 4096UL

static struct {
	int64_t start, len;
} gaps[MAX_RECORD];
static int nr_gaps;
static char report[64 + MAX_RECORD * 42];

/* requested[SIG]: the harness sent SIG (SIGUSR1, SIGHUP, SIGURG, SIGALRM). */
static volatile sig_atomic_t requested[NSIG];

static void on_request(int sig)
{
	requested[sig] = 1;
}

/* Write n bytes of mem to a new file at path; -1 on any failure. */
static int dump(const char *path, const char *mem, size_t n)
{
	int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < n) {
		size_t len = n - off < (1UL << 20) ? n - off : (1UL << 20);
		ssize_t k = write(fd, mem + off, len);

		if (k <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)k;
	}
	return close(fd);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static size_t put_num(char *buf, long long v)
{
	char num[24];
	size_t n = 0, k = 0;

	if (v < 0) {
		buf[n++] = '-';
		v = -v;
	}
	do {
		num[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (k)
		buf[n++] = num[--k];
	return n;
}

static void put_all(const char *buf, size_t n)
{
	while (n) {
		ssize_t k = write(1, buf, n);

		if (k < 0)
			_exit(3); /* the harness went away */
		buf += k;
		n -= (size_t)k;
	}
}

/* "WORD NUMBER\n" with one write. */
static void say(const char *word, long long v)
{
	char buf[64];
	size_t n = strlen(word);

	memcpy(buf, word, n);
	buf[n++] = ' ';
	n += put_num(buf + n, v);
	buf[n++] = '\n';
	put_all(buf, n);
}

static void say_gaps(int64_t max_gap)
{
	size_t n = 0;
	int i;

	memcpy(report, "maxgap ", 7);
	n = 7;
	n += put_num(report + n, max_gap);
	report[n++] = ' ';
	n += put_num(report + n, nr_gaps);
	for (i = 0; i < nr_gaps; i++) {
		report[n++] = ' ';
		n += put_num(report + n, gaps[i].start);
		report[n++] = ':';
		n += put_num(report + n, gaps[i].len);
	}
	report[n++] = '\n';
	put_all(report, n);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	size_t map_len, touch_len, off;
	int64_t prev, t, gap, max_gap = 0;
	char *mem = NULL;

	if (argc != 3) {
		static const char usage[] = "usage: workload MAP_MIB TOUCH_MIB\n";

		if (write(2, usage, sizeof(usage) - 1) < 0)
			return 2;
		return 2;
	}
	map_len = strtoull(argv[1], NULL, 10) << 20;
	touch_len = strtoull(argv[2], NULL, 10) << 20;
	if (touch_len > map_len)
		return 2;
	if (map_len) {
		mem = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			return 4;
		/* Every byte written: a non-zero pattern, the page's index
		 * first, so that no two pages are alike. */
		memset(mem, 0xa5, touch_len);
		for (off = 0; off < touch_len; off += PAGE)
			*(uint64_t *)(mem + off) = off / PAGE;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_request;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigaction(SIGHUP, &sa, NULL) < 0 ||
	    sigaction(SIGURG, &sa, NULL) < 0 || sigaction(SIGALRM, &sa, NULL) < 0)
		return 5;

	/* prev before "ready": a checkpoint inside that write counts too. */
	prev = now_ns();
	say("ready", getpid());
	for (;;) {
		/* The request is read before the clock: the gap that ends at
		 * this t then contains every signal handled before the read,
		 * the checkpoint's included, and is in the report. */
		int report = requested[SIGUSR1];

		__asm__ volatile("" ::: "memory");
		t = now_ns();
		gap = t - prev;
		prev = t;
		if (gap > max_gap)
			max_gap = gap;
		if (gap > GAP_RECORD_NS && nr_gaps < MAX_RECORD) {
			gaps[nr_gaps].start = t - gap;
			gaps[nr_gaps].len = gap;
			nr_gaps++;
		}
		if (gap > GAP_REPORT_NS)
			say("gap", gap);
		if (report) {
			requested[SIGUSR1] = 0;
			say_gaps(max_gap);
			max_gap = 0;
			nr_gaps = 0;
		}
		if (requested[SIGHUP]) {
			int64_t t0 = now_ns();

			requested[SIGHUP] = 0;
			if (touch_len)
				memset(mem, 0x5a, touch_len);
			say("rewrote", now_ns() - t0);
			prev = now_ns(); /* not a gap the checkpoint made */
		}
		if (requested[SIGALRM]) {
			int64_t t0 = now_ns(), t1;
			pid_t child;

			requested[SIGALRM] = 0;
			child = fork();
			if (child == 0)
				_exit(0);
			t1 = now_ns();
			if (child < 0 || waitpid(child, NULL, 0) != child)
				say("forked", -1);
			else
				say("forked", t1 - t0);
			prev = now_ns();
		}
		if (requested[SIGURG]) {
			int64_t t0 = now_ns();

			requested[SIGURG] = 0;
			if (dump(getenv("WORKLOAD_DUMP"), mem, touch_len) < 0)
				say("dumped", -1);
			else
				say("dumped", now_ns() - t0);
			prev = now_ns();
		}
	}
	/* not reached; keeps mem alive for the compiler */
	return mem != NULL;
}
