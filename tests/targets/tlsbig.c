/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsbig - 8 MiB of thread-local data, so that the main thread's TLS block,
 * with glibc's rseq area at its end, is one large mapping. The kernel
 * writes the rseq area's cpu fields whenever the thread moves to another
 * CPU, in the middle of a checkpoint too: the test moves it back and forth
 * while checkpointing and checks every image's checksums. The program
 * itself checks its TLS after the restart.
 */
#include "target.h"

#define TLS_SIZE (8UL << 20)

static __thread unsigned char tls_data[TLS_SIZE];

int main(void)
{
	fill_pattern(tls_data, TLS_SIZE, 77);
	ready();
	wait_go();
	CHECK(check_pattern(tls_data, TLS_SIZE, 77) < 0,
	      "the thread-local data differs");
	return finish();
}
