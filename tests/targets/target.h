/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * target.h - the protocol every self-judging test target follows, in the
 * manner of CRIU's zdtm tests:
 *
 *   1. set up its state, then print exactly "ready" on a line of its own;
 *   2. wait, keeping the state live: most targets block in read(2) on
 *      stdin for a line "go" (after a restart, stdin is myrestart's); the
 *      ones that must not make syscalls while waiting spin on a flag that a
 *      SIGUSR1 handler sets;
 *   3. check everything and print "PASS" (exit 0) or
 *      "FAIL: <what differed>[; <what else>...]" (exit 1).
 *
 * Other stdout lines ("note: ...", "count N") are informational; the test
 * harness (tests/support.py) looks only for ready, PASS and FAIL.
 * Header-only: each target is a single translation unit.
 */
#ifndef TARGET_H
#define TARGET_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char target_failures[4096];
static size_t target_failures_len;
static int target_nr_failures;

/* Record one failure; all of them are reported at the end, in order. */
__attribute__((format(printf, 1, 2), unused)) static void fail(const char *fmt,
								 ...)
{
	size_t room = sizeof(target_failures) - target_failures_len;
	va_list ap;
	int n;

	target_nr_failures++;
	if (room < 8)
		return;
	if (target_failures_len) {
		memcpy(target_failures + target_failures_len, "; ", 2);
		target_failures_len += 2;
		room -= 2;
	}
	va_start(ap, fmt);
	n = vsnprintf(target_failures + target_failures_len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	target_failures_len += (size_t)n < room ? (size_t)n : room - 1;
}

#define CHECK(cond, ...)                  \
	do {                              \
		if (!(cond))              \
			fail(__VA_ARGS__); \
	} while (0)

/* Print PASS or FAIL and return the exit status for main(). */
__attribute__((unused)) static int finish(void)
{
	if (target_nr_failures) {
		/* Newlines in a message would split the verdict line. */
		for (size_t i = 0; i < target_failures_len; i++)
			if (target_failures[i] == '\n')
				target_failures[i] = ' ';
		printf("FAIL: %s\n", target_failures);
	} else {
		printf("PASS\n");
	}
	fflush(stdout);
	return target_nr_failures ? 1 : 0;
}

__attribute__((noreturn, format(printf, 1, 2), unused)) static void
fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(1);
}

__attribute__((unused)) static void ready(void)
{
	fputs("ready\n", stdout);
	fflush(stdout);
}

__attribute__((format(printf, 1, 2), unused)) static void note(const char *fmt,
								 ...)
{
	va_list ap;

	fputs("note: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* Interrupted reads seen by read_line(): a checkpoint must not cause any,
 * since libckpt's handler is SA_RESTART. */
static int target_eintr;

/*
 * Read one line from stdin with read(2), a byte at a time so that nothing
 * beyond the line is consumed (stdio would buffer it in memory that a
 * checkpoint then carries over). Returns the length, or -1 at end of file.
 */
__attribute__((unused)) static int read_line(char *buf, size_t size)
{
	size_t n = 0;

	for (;;) {
		char c;
		ssize_t r = read(0, &c, 1);

		if (r < 0 && errno == EINTR) {
			target_eintr++;
			continue;
		}
		if (r < 0)
			fatal("read(stdin): %s", strerror(errno));
		if (r == 0)
			return n ? (int)n : -1;
		if (c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
	}
	buf[n] = '\0';
	return (int)n;
}

/* Block until the harness writes "go". */
__attribute__((unused)) static void wait_go(void)
{
	char line[64];

	if (read_line(line, sizeof(line)) < 0)
		fatal("stdin closed before go");
	if (strcmp(line, "go") != 0)
		fatal("expected go on stdin, got '%s'", line);
	CHECK(target_eintr == 0, "read(stdin) returned EINTR %d time(s)",
	      target_eintr);
}

/* A small deterministic generator for patterns (splitmix64). */
__attribute__((unused)) static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

__attribute__((unused)) static void fill_pattern(void *p, size_t n,
						 uint64_t seed)
{
	unsigned char *c = p;
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			v = mix64(seed + i / 8);
		c[i] = (unsigned char)(v >> (8 * (i % 8)));
	}
}

/* Offset of the first byte that differs from the pattern, or -1. */
__attribute__((unused)) static long check_pattern(const void *p, size_t n,
						  uint64_t seed)
{
	const unsigned char *c = p;
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			v = mix64(seed + i / 8);
		if (c[i] != (unsigned char)(v >> (8 * (i % 8))))
			return (long)i;
	}
	return -1;
}

/* Sleep the whole interval even if signals cut nanosleep short. */
__attribute__((unused)) static void sleep_ms(long ms)
{
	struct timespec left = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&left, &left) != 0 && errno == EINTR)
		;
}

#endif /* TARGET_H */
