/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * procset MODE - process settings outside memory (issue 17, part 4):
 *
 *   settings  the process is a child subreaper, has oom_score_adj 500
 *             (raising it needs no privilege) and registered for private
 *             expedited membarrier; after the restart each must hold in
 *             the process that runs on (under the original pid or not)
 *   seccomp   the process installs a seccomp filter (one that allows
 *             everything): a restart could not install it again, so the
 *             checkpoint must be refused and the program run on unharmed
 */
#include "target.h"

#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int oom_score_adj(void)
{
	FILE *f = fopen("/proc/self/oom_score_adj", "r");
	int v = -9999;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -9999;
		fclose(f);
	}
	return v;
}

static void set_oom_score_adj(int v)
{
	FILE *f = fopen("/proc/self/oom_score_adj", "w");

	if (!f || fprintf(f, "%d", v) < 0 || fclose(f) != 0)
		fatal("cannot set oom_score_adj: %s", strerror(errno));
}

static int settings(void)
{
	int sub = 0;
	long r;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		fatal("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	set_oom_score_adj(500);
	if (syscall(SYS_membarrier,
		    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) < 0)
		fatal("membarrier register: %s", strerror(errno));
	ready();
	wait_go();
	prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
	CHECK(sub == 1, "not a child subreaper (%d)", sub);
	CHECK(oom_score_adj() == 500, "oom_score_adj is %d, not 500",
	      oom_score_adj());
	r = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	CHECK(r == 0, "private expedited membarrier: %s (not registered)",
	      r < 0 ? strerror(errno) : "odd result");
	return finish();
}

static int sandboxed(void)
{
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { .len = 1, .filter = &allow };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		fatal("cannot install a seccomp filter: %s", strerror(errno));
	ready();
	wait_go();
	return finish();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "settings";

	if (strcmp(mode, "settings") == 0)
		return settings();
	if (strcmp(mode, "seccomp") == 0)
		return sandboxed();
	fatal("unknown mode %s", mode);
}
