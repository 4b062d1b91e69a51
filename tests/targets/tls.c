/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tls - thread-local storage through a restart: errno (set to a distinctive
 * value just before waiting; the checkpoint must leave it alone), __thread
 * variables initialised, zero-initialised and modified, the fs base itself,
 * pthread_self(), and the stack-protector canary at %fs:0x28 that every
 * function of this -fstack-protector-all build checks on return.
 */
#include "target.h"

#include <asm/prctl.h>
#include <pthread.h>
#include <sys/syscall.h>

#define MAGIC_ERRNO 4242

static __thread int tls_init = 42;
static __thread char tls_text[64] = "thread-local text";
/* volatile: gcc 12 -O3 vectorises the loops with a TLS relocation the
 * linker then cannot fit. */
static __thread volatile uint64_t tls_zero[64];

static uint64_t canary(void)
{
	uint64_t v;

	asm volatile("mov %%fs:0x28, %0" : "=r"(v));
	return v;
}

static unsigned long fs_base(void)
{
	unsigned long base = 0;

	if (syscall(SYS_arch_prctl, ARCH_GET_FS, &base) < 0)
		fatal("arch_prctl(ARCH_GET_FS): %s", strerror(errno));
	return base;
}

/* Recursion with arrays, so that a wrong canary shows as a crash. */
__attribute__((noinline)) static int deep_canary_use(int n)
{
	volatile char buf[100];

	buf[n % 100] = (char)n;
	if (n == 0)
		return buf[0];
	return deep_canary_use(n - 1) + buf[n % 100] - (char)n;
}

int main(void)
{
	uint64_t canary0 = canary();
	unsigned long fs0 = fs_base();
	pthread_t self0 = pthread_self();
	int saved_errno;

	tls_init += 1000;
	strcat(tls_text, " modified");
	for (int i = 0; i < 64; i++)
		tls_zero[i] = mix64(i);
	CHECK(canary0 != 0, "the stack-protector canary is 0");
	ready();
	errno = MAGIC_ERRNO;
	wait_go();
	saved_errno = errno;

	CHECK(saved_errno == MAGIC_ERRNO, "errno = %d, expected %d",
	      saved_errno, MAGIC_ERRNO);
	CHECK(fs_base() == fs0, "fs base %#lx, expected %#lx", fs_base(), fs0);
	CHECK(canary() == canary0, "canary %#llx, expected %#llx",
	      (unsigned long long)canary(), (unsigned long long)canary0);
	CHECK(pthread_self() == self0, "pthread_self() changed");
	CHECK(tls_init == 1042, "tls_init = %d", tls_init);
	CHECK(strcmp(tls_text, "thread-local text modified") == 0,
	      "tls_text = '%s'", tls_text);
	for (int i = 0; i < 64; i++)
		if (tls_zero[i] != mix64(i)) {
			fail("tls_zero[%d] differs", i);
			break;
		}
	CHECK(deep_canary_use(1000) == 0, "recursion gave a wrong result");
	errno = 0;
	CHECK(write(-1, "", 0) < 0 && errno == EBADF,
	      "errno is not thread-local storage that works: %d", errno);
	return finish();
}
