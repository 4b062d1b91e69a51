/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * anon - anonymous memory must stay anonymous across a restart. Sets up a
 * malloc'd 1 MiB block (glibc serves it with mmap) and anonymous mappings
 * of a few MiB, each filled with a pattern, and says "ready". Commands on
 * stdin: "check" verifies every pattern and answers "ok" (the harness asks
 * after overwriting, truncating or deleting the image: the memory must
 * not depend on it); "go" verifies, then does what only anonymous memory
 * allows and checks the kernel's answers: realloc of the block to 256 MiB
 * (glibc mremap) with the grown part written and read; MADV_DONTNEED then
 * zeros; MADV_FREE accepted; mremap to a new address and growth there
 * (zeros); munmap of part; fork (the child sees the same memory); and in
 * /proc/self/maps and smaps no mapping of the image, no file behind these
 * regions, no userfaultfd or huge page flag they did not have.
 */
#include "target.h"

#include <libgen.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define MIB (1UL << 20)

static unsigned char *blk, *zap, *lazy, *mov, *cut;
static char image_path[PATH_MAX]; /* where libckpt writes our image */

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal("mmap %zu: %s", len, strerror(errno));
	return p;
}

static void check_region(const char *name, const unsigned char *p, size_t n,
			 uint64_t seed)
{
	long off = check_pattern(p, n, seed);

	CHECK(off < 0, "%s differs at offset %ld", name, off);
}

static void check_all(void)
{
	check_region("the malloc block", blk, MIB, 1);
	for (size_t i = 0; i < 4 * MIB; i++)
		if (zap[i] != 'a') {
			fail("the 'a' mapping differs at offset %zu", i);
			break;
		}
	check_region("the MADV_FREE mapping", lazy, 4 * MIB, 2);
	check_region("the mapping to move", mov, 2 * MIB, 3);
	check_region("the mapping to cut", cut, 4 * MIB, 4);
}

/* The image's absolute path, found before there is an image. */
static void note_image_path(void)
{
	const char *img = getenv("CKPT_IMAGE");
	char dir[PATH_MAX], base[PATH_MAX], real[PATH_MAX];

	if (!img)
		fatal("CKPT_IMAGE is not set");
	snprintf(dir, sizeof(dir), "%s", img);
	snprintf(base, sizeof(base), "%s", img);
	if (!realpath(dirname(dir), real))
		fatal("realpath: %s", strerror(errno));
	if (strlen(real) + strlen(basename(base)) + 2 > sizeof(image_path))
		fatal("CKPT_IMAGE is too long");
	strcpy(image_path, real);
	strcat(image_path, "/");
	strcat(image_path, basename(base));
}

/* Does the mapping [start, end) hold part of our memory? */
static int ours(unsigned long start, unsigned long end)
{
	const unsigned char *r[] = { blk, zap, lazy, mov, cut };
	size_t len[] = { MIB, 4 * MIB, 4 * MIB, 2 * MIB, 4 * MIB };

	for (size_t i = 0; i < 5; i++)
		if (start < (unsigned long)r[i] + len[i] &&
		    end > (unsigned long)r[i])
			return 1;
	return 0;
}

static void check_maps(void)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[PATH_MAX + 256];
	unsigned long start = 0, end = 0, ino = 0;
	int in_ours = 0, seen = 0;

	if (!f)
		fatal("/proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e, off;
		char perm[8], dev[16];

		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &s, &e, perm, &off,
			   dev, &ino) == 6) {
			start = s;
			end = e;
			in_ours = ours(start, end);
			seen += in_ours;
			CHECK(!strstr(line, image_path),
			      "the image is mapped: %s", line);
			CHECK(!in_ours || ino == 0,
			      "anonymous memory has a file behind it: %s", line);
			continue;
		}
		if (in_ours && !strncmp(line, "VmFlags:", 8)) {
			CHECK(!strstr(line, " um") && !strstr(line, " uw") &&
				      !strstr(line, " ui"),
			      "0x%lx-0x%lx is still registered with "
			      "userfaultfd: %s",
			      start, end, line);
			CHECK(!strstr(line, " hg") && !strstr(line, " nh"),
			      "0x%lx-0x%lx has huge page advice it was not "
			      "given: %s",
			      start, end, line);
		}
	}
	fclose(f);
	CHECK(seen, "none of the mappings found in /proc/self/smaps");
}

static void grow_block(void)
{
	unsigned char *big = realloc(blk, 256 * MIB);

	if (!big) {
		fail("realloc to 256 MiB: %s", strerror(errno));
		return;
	}
	blk = big;
	check_region("the malloc block after realloc", blk, MIB, 1);
	/* The grown part: glibc grew the mapping with mremap. Write every
	 * page, then read it back. */
	for (size_t i = MIB; i < 256 * MIB; i += 4096)
		blk[i] = (unsigned char)(i >> 12);
	for (size_t i = MIB; i < 256 * MIB; i += 4096)
		if (blk[i] != (unsigned char)(i >> 12)) {
			fail("the realloc'd block's grown part lost a write at "
			     "%zu",
			     i);
			break;
		}
}

static void drop_pages(void)
{
	CHECK(madvise(zap, 4 * MIB, MADV_DONTNEED) == 0,
	      "MADV_DONTNEED: %s", strerror(errno));
	for (size_t i = 0; i < 4 * MIB; i++)
		if (zap[i] != 0) {
			fail("after MADV_DONTNEED byte %zu is 0x%02x, not 0",
			     i, zap[i]);
			break;
		}
	/* Only private anonymous memory takes MADV_FREE (else EINVAL). */
	CHECK(madvise(lazy, 4 * MIB, MADV_FREE) == 0, "MADV_FREE: %s",
	      strerror(errno));
	fill_pattern(lazy, 4 * MIB, 20);
	check_region("the MADV_FREE mapping rewritten", lazy, 4 * MIB, 20);
}

static void move_and_cut(void)
{
	unsigned char *spot = map_anon(8 * MIB), *moved, *grown;

	moved = mremap(mov, 2 * MIB, 2 * MIB, MREMAP_MAYMOVE | MREMAP_FIXED,
		       spot + 4 * MIB);
	if (moved == MAP_FAILED) {
		fail("mremap to a new address: %s", strerror(errno));
		return;
	}
	check_region("the moved mapping", moved, 2 * MIB, 3);
	munmap(spot, 4 * MIB); /* room to grow: 2 MiB above it are free */
	munmap(spot + 6 * MIB, 2 * MIB);
	grown = mremap(moved, 2 * MIB, 4 * MIB, MREMAP_MAYMOVE);
	if (grown == MAP_FAILED) {
		fail("mremap growth: %s", strerror(errno));
		return;
	}
	check_region("the grown mapping", grown, 2 * MIB, 3);
	for (size_t i = 2 * MIB; i < 4 * MIB; i++)
		if (grown[i] != 0) {
			fail("the grown part of a mapping is not zero at %zu",
			     i);
			break;
		}
	memset(grown + 2 * MIB, 0x5a, 2 * MIB);
	CHECK(grown[4 * MIB - 1] == 0x5a, "the grown part lost a write");

	CHECK(munmap(cut + MIB, MIB) == 0, "munmap of part: %s",
	      strerror(errno));
	check_region("the mapping's first MiB after munmap", cut, MIB, 4);
	fill_pattern(cut + 2 * MIB, 8, 44); /* its tail stays writable */
	check_region("the mapping's tail after munmap", cut + 2 * MIB, 8, 44);
}

static void fork_and_look(void)
{
	pid_t child = fork();
	int status;

	if (child < 0) {
		fail("fork: %s", strerror(errno));
		return;
	}
	if (child == 0) {
		_exit(check_pattern(blk, MIB, 1) < 0 &&
				      check_pattern(lazy, 4 * MIB, 20) < 0 ?
			      0 :
			      1);
	}
	if (waitpid(child, &status, 0) != child)
		fail("waitpid: %s", strerror(errno));
	else
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the forked child saw other memory (status 0x%x)",
		      status);
}

int main(void)
{
	char line[64];

	note_image_path();
	blk = malloc(MIB);
	zap = map_anon(4 * MIB);
	lazy = map_anon(4 * MIB);
	mov = map_anon(2 * MIB);
	cut = map_anon(4 * MIB);
	if (!blk)
		fatal("malloc: %s", strerror(errno));
	fill_pattern(blk, MIB, 1);
	memset(zap, 'a', 4 * MIB);
	fill_pattern(lazy, 4 * MIB, 2);
	fill_pattern(mov, 2 * MIB, 3);
	fill_pattern(cut, 4 * MIB, 4);
	ready();
	for (;;) {
		if (read_line(line, sizeof(line)) < 0)
			fatal("stdin closed");
		check_all();
		if (!strcmp(line, "go"))
			break;
		if (strcmp(line, "check"))
			fatal("unknown command '%s'", line);
		if (target_nr_failures)
			return finish();
		printf("ok\n");
		fflush(stdout);
	}
	if (!target_nr_failures) {
		check_maps();
		grow_block();
		drop_pages();
		move_and_cut();
		fork_and_look();
	}
	return finish();
}
