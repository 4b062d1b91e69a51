/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nodump - a process that made itself non-dumpable (PR_SET_DUMPABLE 0, as
 * programs holding secrets do, and as the kernel does after a setuid) can
 * be checkpointed, and is non-dumpable again after the checkpoint and after
 * a restart. The kernel hides /proc/self/pagemap and the like from such a
 * process unless it runs as root: the test runs it as another user.
 */
#include "target.h"

#include <sys/prctl.h>

int main(void)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fatal("PR_SET_DUMPABLE: %s", strerror(errno));
	ready();
	wait_go();
	CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0,
	      "dumpable is %d, not 0", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	return finish();
}
