/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * quiet - the checkpoint leaves no trace the program could see: errno
 * keeps the value it had when the signal came, and nothing is written to
 * stdout or stderr but the program's own lines (the harness compares both
 * streams of the original and of the restarted process with exactly
 * "ready" and "PASS").
 */
#include "target.h"

#define MAGIC_ERRNO 31337

int main(void)
{
	int saved;

	ready();
	errno = MAGIC_ERRNO;
	wait_go();
	saved = errno;
	CHECK(saved == MAGIC_ERRNO, "errno = %d, expected %d", saved,
	      MAGIC_ERRNO);
	return finish();
}
