/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * children MODE - a program that runs children, which inherit LD_PRELOAD
 * and CKPT_IMAGE. After "ready" it waits for a line "run", then:
 *
 *   system  system("echo child running; exec sleep 120"): the shell, then
 *           sleep, both preloaded; when system() returns (its child killed,
 *           or after a restart, when the child is not ours any more) it
 *           prints "system returned R errno NAME"
 *   fork    fork() without exec: the child loops in pause(); the parent
 *           prints "child PID"
 *
 * then waits for "go" and checks that its memory is as it set it.
 */
#include "target.h"

#include <signal.h>
#include <sys/wait.h>

static uint64_t pattern[512];

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "system";
	char line[64];

	fill_pattern(pattern, sizeof(pattern), 15);
	ready();
	if (read_line(line, sizeof(line)) < 0 || strcmp(line, "run") != 0)
		fatal("expected 'run'");
	if (strcmp(mode, "system") == 0) {
		int r = system("echo child running; exec sleep 120");
		int e = errno;

		printf("system returned %d errno %s\n", r,
		       r == -1 ? strerrorname_np(e) : "-");
		fflush(stdout);
	} else if (strcmp(mode, "fork") == 0) {
		pid_t pid = fork();

		if (pid < 0)
			fatal("fork: %s", strerror(errno));
		if (pid == 0)
			for (;;)
				pause();
		printf("child %d\n", (int)pid);
		fflush(stdout);
	} else {
		fatal("unknown mode '%s'", mode);
	}
	wait_go();
	if (check_pattern(pattern, sizeof(pattern), 15) >= 0)
		fail("the pattern changed");
	return finish();
}
