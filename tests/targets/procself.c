/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * procself [ARGS...] - what /proc/self says about the program after a
 * restart: the exe link and comm are the program's (not myrestart's),
 * cmdline is its argv, getenv() and the auxv
 * (AT_PHDR, AT_ENTRY, AT_EXECFN, AT_RANDOM) still answer as before.
 */
#include "target.h"

#include <fcntl.h>
#include <sys/auxv.h>

static size_t read_whole(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		fatal("open %s: %s", path, strerror(errno));
	while (n < size && (r = read(fd, buf + n, size - n)) > 0)
		n += (size_t)r;
	close(fd);
	return n;
}

/* argv or environ as /proc shows them: strings with their NULs. */
static size_t flatten(char **v, char *buf, size_t size)
{
	size_t n = 0;

	for (; *v; v++) {
		size_t len = strlen(*v) + 1;

		if (n + len > size)
			fatal("too long");
		memcpy(buf + n, *v, len);
		n += len;
	}
	return n;
}

static char exe0[4096], comm0[64];
static unsigned long aux0[4];
static const unsigned long aux_types[4] = { AT_PHDR, AT_ENTRY, AT_EXECFN,
					    AT_RANDOM };

int main(int argc, char **argv)
{
	static char want[65536], got[65536];
	char exe[4096], comm[64];
	size_t nwant, ngot;
	ssize_t n;

	(void)argc;
	n = readlink("/proc/self/exe", exe0, sizeof(exe0) - 1);
	if (n < 0)
		fatal("readlink: %s", strerror(errno));
	read_whole("/proc/self/comm", comm0, sizeof(comm0) - 1);
	for (int i = 0; i < 4; i++)
		aux0[i] = getauxval(aux_types[i]);
	if (setenv("PROCSELF_MARK", "set-before", 1) < 0)
		fatal("setenv failed");
	ready();
	wait_go();

	memset(exe, 0, sizeof(exe));
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	CHECK(n > 0 && strcmp(exe, exe0) == 0, "/proc/self/exe is '%s', was '%s'",
	      exe, exe0);
	memset(comm, 0, sizeof(comm));
	read_whole("/proc/self/comm", comm, sizeof(comm) - 1);
	CHECK(strcmp(comm, comm0) == 0, "/proc/self/comm is '%.*s', was '%.*s'",
	      (int)strcspn(comm, "\n"), comm, (int)strcspn(comm0, "\n"), comm0);
	nwant = flatten(argv, want, sizeof(want));
	ngot = read_whole("/proc/self/cmdline", got, sizeof(got));
	CHECK(ngot == nwant && memcmp(got, want, nwant) == 0,
	      "/proc/self/cmdline (%zu bytes) differs from argv (%zu bytes)",
	      ngot, nwant);
	CHECK(getenv("PROCSELF_MARK") &&
		      strcmp(getenv("PROCSELF_MARK"), "set-before") == 0,
	      "getenv(PROCSELF_MARK) lost");
	CHECK(getenv("PATH") != NULL, "getenv(PATH) lost");
	for (int i = 0; i < 4; i++)
		CHECK(getauxval(aux_types[i]) == aux0[i],
		      "getauxval(%lu) = %#lx, was %#lx", aux_types[i],
		      getauxval(aux_types[i]), aux0[i]);
	return finish();
}
