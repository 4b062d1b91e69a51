/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kstate.c - what the kernel holds for a process besides its memory: open
 * files with offsets and flags, a deleted-but-open file, the current
 * directory, umask, resource limits, interval timers and alarm(), shared and
 * file mappings, the process name. Sets it all up, prints "ready", waits for
 * "go" on stdin (after the restart), then checks everything and prints PASS
 * or FAIL with what differed.
 *
 * usage: kstate DIR     (a scratch directory of its own)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static int failures;
static volatile sig_atomic_t alarms, vticks;

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			printf("FAIL: " __VA_ARGS__);                       \
			printf("\n");                                       \
			failures++;                                         \
		}                                                           \
	} while (0)

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void on_vtalarm(int sig)
{
	(void)sig;
	vticks++;
}

/* The whole of a small file, as a string ("" if it cannot be read). */
static void read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror(path);
		exit(2);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	char path[4096], buf[256], line[64], cwd[4096];
	int rd, wr, app, ghost, dirfd_;
	char *shared, *priv;
	struct rlimit nofile = { 200, 300 }, core = { 0, 0 }, rl;
	struct itimerval tick = { { 0, 20000 }, { 0, 20000 } }, it;
	ssize_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: kstate DIR\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* A file read half before and half after the checkpoint. */
	snprintf(path, sizeof(path), "%s/input.txt", argv[1]);
	write_file(path, "first-half|second-half");
	rd = open(path, O_RDONLY);
	n = read(rd, buf, 11);
	if (n != 11 || memcmp(buf, "first-half|", 11)) {
		printf("FAIL: setup read\n");
		return 1;
	}
	/* A file written before and after, and one opened O_APPEND. */
	snprintf(path, sizeof(path), "%s/output.txt", argv[1]);
	wr = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (write(wr, "before;", 7) != 7)
		return 2;
	snprintf(path, sizeof(path), "%s/log.txt", argv[1]);
	write_file(path, "log:");
	app = open(path, O_WRONLY | O_APPEND);
	if (write(app, "a", 1) != 1)
		return 2;
	/* A file deleted while open. */
	snprintf(path, sizeof(path), "%s/ghost.txt", argv[1]);
	ghost = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (write(ghost, "boo!", 4) != 4)
		return 2;
	unlink(path);
	/* A directory fd, a working directory, a umask. */
	dirfd_ = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (chdir(argv[1]) < 0)
		return 2;
	umask(0027);
	/* Limits lowered: soft and hard. */
	setrlimit(RLIMIT_NOFILE, &nofile);
	setrlimit(RLIMIT_CORE, &core);
	/* A periodic ITIMER_VIRTUAL (counts CPU time), a pending alarm. */
	signal(SIGVTALRM, on_vtalarm);
	signal(SIGALRM, on_alarm);
	setitimer(ITIMER_VIRTUAL, &tick, NULL);
	alarm(3600);
	/* Shared anonymous memory and a private file mapping written to. */
	shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	strcpy(shared + 4096, "shared page");
	snprintf(path, sizeof(path), "%s/mapped.bin", argv[1]);
	write_file(path, "file contents on disk");
	{
		int fd = open(path, O_RDONLY);

		priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd,
			    0);
		close(fd);
	}
	memcpy(priv, "FILE", 4); /* a private change, not in the file */
	prctl(PR_SET_NAME, "kstate-name");

	printf("ready\n");
	if (!fgets(line, sizeof(line), stdin)) {
		printf("FAIL: no go line\n");
		return 1;
	}

	/* After the restart. */
	n = read(rd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(!strcmp(buf, "second-half"), "read after restart gave '%s'", buf);
	CHECK(write(wr, "after", 5) == 5, "write after restart");
	CHECK(fcntl(wr, F_GETFD) & FD_CLOEXEC, "output fd lost FD_CLOEXEC");
	CHECK(fcntl(app, F_GETFL) & O_APPEND, "log fd lost O_APPEND");
	CHECK(write(app, "b", 1) == 1, "append after restart");
	close(wr);
	close(app);
	snprintf(path, sizeof(path), "%s/output.txt", argv[1]);
	read_file(path, buf, sizeof(buf));
	CHECK(!strcmp(buf, "before;after"), "output file holds '%s'", buf);
	snprintf(path, sizeof(path), "%s/log.txt", argv[1]);
	read_file(path, buf, sizeof(buf));
	CHECK(!strcmp(buf, "log:ab"), "appended file holds '%s'", buf);
	CHECK(lseek(ghost, 0, SEEK_CUR) == 4, "ghost offset %ld",
	      (long)lseek(ghost, 0, SEEK_CUR));
	n = pread(ghost, buf, 4, 0);
	CHECK(n == 4 && !memcmp(buf, "boo!", 4), "ghost contents");
	CHECK(write(ghost, "!", 1) == 1, "ghost writable");
	CHECK(fcntl(dirfd_, F_GETFD) >= 0, "directory fd gone");
	CHECK(getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, argv[1]),
	      "cwd is '%s', not '%s'", cwd, argv[1]);
	{
		mode_t m = umask(0);

		CHECK(m == 0027, "umask is %03o", (unsigned)m);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	CHECK(rl.rlim_cur == 200 && rl.rlim_max == 300, "RLIMIT_NOFILE %lu/%lu",
	      (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
	getrlimit(RLIMIT_CORE, &rl);
	CHECK(rl.rlim_cur == 0 && rl.rlim_max == 0, "RLIMIT_CORE changed");
	getitimer(ITIMER_REAL, &it);
	CHECK(it.it_value.tv_sec > 3000, "alarm() lost: %ld s left",
	      (long)it.it_value.tv_sec);
	{
		volatile unsigned long spin = 0;
		int before = vticks;

		/* Burn CPU until the virtual timer ticks again (bounded). */
		while (vticks == before && spin < 4000000000UL)
			spin++;
		CHECK(vticks > before, "ITIMER_VIRTUAL stopped ticking");
	}
	CHECK(!strcmp(shared + 4096, "shared page"), "shared page lost");
	CHECK(!memcmp(priv, "FILE contents", 13), "private file page '%.13s'",
	      priv);
	prctl(PR_GET_NAME, buf);
	CHECK(!strcmp(buf, "kstate-name"), "process name '%s'", buf);
	printf(failures ? "FAIL: %d checks\n" : "PASS\n", failures);
	return failures ? 1 : 0;
}
