/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * filemap - a private, writable mapping of a file (the program's own
 * executable): the image stores only the page the program modified and
 * re-maps the rest from the file. After the restart the modified page holds
 * its pattern, every other page equals the file's bytes, and a page
 * modified after the restart does not reach the file.
 */
#include "target.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE 4096L

static unsigned char *map;
static long npages;
static int fd;

static void compare_with_file(long skip_page, const char *when)
{
	unsigned char buf[PAGE];

	for (long p = 0; p < npages; p++) {
		ssize_t n;

		if (p == skip_page)
			continue;
		n = pread(fd, buf, PAGE, p * PAGE);
		if (n <= 0) {
			fail("%s: pread page %ld: %s", when, p,
			     n < 0 ? strerror(errno) : "end of file");
			return;
		}
		if (memcmp(buf, map + p * PAGE, n) != 0) {
			fail("%s: page %ld differs from the file", when, p);
			return;
		}
	}
}

int main(void)
{
	struct stat st;
	long modified;

	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		fatal("open /proc/self/exe: %s", strerror(errno));
	npages = (st.st_size + PAGE - 1) / PAGE;
	if (npages < 3)
		fatal("the executable is too small (%ld pages)", npages);
	map = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		   fd, 0);
	if (map == MAP_FAILED)
		fatal("mmap: %s", strerror(errno));
	modified = npages / 2;
	fill_pattern(map + modified * PAGE, PAGE, 0xf11e);
	compare_with_file(modified, "before");
	close(fd); /* fds are not restored yet */
	ready();
	wait_go();
	CHECK(check_pattern(map + modified * PAGE, PAGE, 0xf11e) < 0,
	      "the modified page %ld lost its pattern", modified);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fatal("reopen /proc/self/exe: %s", strerror(errno));
	compare_with_file(modified, "after");
	map[0] ^= 0xff;
	map[0] ^= 0xff;
	fill_pattern(map + PAGE, PAGE, 0xf12e);
	{
		unsigned char buf[16];

		CHECK(pread(fd, buf, 16, PAGE) == 16 &&
			      memcmp(buf, map + PAGE, 16) != 0,
		      "a write to the private mapping reached the file");
	}
	return finish();
}
