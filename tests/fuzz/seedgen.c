/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * seedgen.c - seed files for the fuzzers, driven by make_seeds.py.
 *
 *   seedgen synth OUT             a small valid synthetic image
 *   seedgen shrink IN OUT PAGES   a real image cut to PAGES stored pages
 *   seedgen mutants IN DIR        boundary-value variants of IN in DIR
 *   seedgen repro DIR             the reproducers of the findings reported
 *                                 in native/ (README.md), for this format
 *
 * In C so that field offsets come from native/ckpt_image.h (offsetof), not
 * from a second description of the layout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;

	if (!f)
		goto fail;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		goto fail;
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		goto fail;
	fclose(f);
	*len = (size_t)n;
	return buf;
fail:
	fprintf(stderr, "seedgen: cannot read %s: %s\n", path, strerror(errno));
	if (f)
		fclose(f);
	free(buf);
	return NULL;
}

static int write_file(const char *path, const unsigned char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "seedgen: cannot write %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Write buf with field f (at base + f->off) set to val, raw and fixed. */
static int variant(const char *dir, const char *what, const char *how,
		   const unsigned char *img, size_t len, size_t at, size_t size,
		   uint64_t val)
{
	unsigned char *buf = malloc(len);
	char path[4096];
	int err = 0;

	if (!buf || at + size > len) {
		free(buf);
		return 0;
	}
	memcpy(buf, img, len);
	fz_put(buf + at, size, val);
	snprintf(path, sizeof(path), "%s/%s-%s", dir, what, how);
	err |= write_file(path, buf, len);
	fz_fix_checksums(buf, len);
	snprintf(path, sizeof(path), "%s/%s-%s-fixed", dir, what, how);
	err |= write_file(path, buf, len);
	free(buf);
	return err;
}

static int field_variants(const char *dir, const char *prefix,
			  const struct fz_field *f, const unsigned char *img,
			  size_t len, size_t base)
{
	uint64_t max = f->size == 8 ? UINT64_MAX : (1ULL << (8 * f->size)) - 1;
	uint64_t cur = fz_get(img + base + f->off, f->size);
	char what[128];
	int err = 0;

	snprintf(what, sizeof(what), "%s.%s", prefix, f->name);
	err |= variant(dir, what, "zero", img, len, base + f->off, f->size, 0);
	err |= variant(dir, what, "max", img, len, base + f->off, f->size, max);
	err |= variant(dir, what, "plus1", img, len, base + f->off, f->size,
		       cur + 1);
	err |= variant(dir, what, "minus1", img, len, base + f->off, f->size,
		       cur - 1);
	err |= variant(dir, what, "len", img, len, base + f->off, f->size, len);
	err |= variant(dir, what, "huge", img, len, base + f->off, f->size,
		       max >> 1);
	return err;
}

static int mutants(const char *in, const char *dir)
{
	struct ckpt_header h;
	unsigned char *img;
	size_t len, i, k;
	int err = 0;

	img = read_file(in, &len);
	if (!img)
		return 1;
	if (len < FZ_HDR) {
		fprintf(stderr, "seedgen: %s is shorter than a header\n", in);
		free(img);
		return 1;
	}
	memcpy(&h, img, FZ_HDR);
	for (i = 0; i < FZ_NELEM(fz_header_fields); i++)
		err |= field_variants(dir, "header", &fz_header_fields[i], img,
				      len, 0);
	/* the first and the last region, the first run */
	for (k = 0; k < 2 && h.nr_regions; k++) {
		size_t base = h.regions_offset +
			      (k ? h.nr_regions - 1 : 0) * FZ_REG;

		for (i = 0; i < FZ_NELEM(fz_region_fields); i++)
			err |= field_variants(dir, k ? "lastregion" : "region",
					      &fz_region_fields[i], img, len,
					      base);
	}
	if (h.nr_runs)
		for (i = 0; i < FZ_NELEM(fz_run_fields); i++)
			err |= field_variants(dir, "run", &fz_run_fields[i],
					      img, len, h.runs_offset);
	/* truncations: inside the header, at each table, one byte short */
	for (i = 0; i < 6; i++) {
		size_t cut[6] = { 7, FZ_HDR - 1, h.regions_offset,
				  h.runs_offset, h.strings_offset, len - 1 };
		char path[4096];

		if (cut[i] >= len)
			continue;
		snprintf(path, sizeof(path), "%s/truncated-%zu", dir, cut[i]);
		err |= write_file(path, img, cut[i]);
	}
	free(img);
	return err ? 1 : 0;
}

/* The smallest valid image: libckpt.so's code and a writable page. */
static unsigned char *minimal(size_t *len, uint64_t nr_fds)
{
	struct ckpt_region regs[2] = {
		{ .start = 0x10000, .end = 0x11000, .prot = 5,
		  .flags = CKPT_REGION_CKPTLIB },
		{ .start = 0x20000, .end = 0x21000, .prot = 3 },
	};
	struct fz_image im;

	memset(&im, 0, sizeof(im));
	im.regs = regs;
	im.strings = "";
#if FZ_HAVE_FDS
	struct ckpt_fd fds[2] = { { .fd = 0, .type = CKPT_FD_CHAR },
				  { .fd = 1, .type = CKPT_FD_CHAR } };

	im.fds = fds;
	im.h.nr_fds = nr_fds;
#else
	(void)nr_fds;
#endif
	memcpy(im.h.magic, CKPT_MAGIC, sizeof(CKPT_MAGIC));
	im.h.version = CKPT_FORMAT_VERSION;
	im.h.header_size = FZ_HDR;
	im.h.arch = CKPT_ARCH_X86_64;
	im.h.page_size = CKPT_PAGE_SIZE;
	im.h.nr_regions = 2;
	im.h.resume_entry = 0x10000;
	im.h.resume_stack = 0x21000;
	return fz_build(&im, len);
}

static int write_repro(const char *dir, const char *name,
		       unsigned char *buf, size_t len)
{
	char path[4096];
	int err;

	if (!buf)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	err = write_file(path, buf, len);
	free(buf);
	return err;
}

static int repro(const char *dir)
{
	unsigned char *buf;
	size_t len;
	int err = 0;

	/*
	 * misaligned-region-table: data_size 1, so the region table starts at
	 * an odd offset; check_regions reads it through a struct pointer.
	 */
	len = CKPT_PAGE_SIZE + 1 + FZ_REG;
	buf = calloc(1, len);
	if (buf) {
		struct ckpt_header h;

		memset(&h, 0, sizeof(h));
		h.data_size = 1;
		h.nr_regions = 1;
		memcpy(buf, &h, FZ_HDR);
		fz_fix_layout(buf, len); /* identity fields and checksums */
	}
	err |= write_repro(dir, "misaligned-region-table.bin", buf, len);

	/* null-tail-checksum: any valid image, checked with check_data. */
	buf = minimal(&len, 0);
	err |= write_repro(dir, "null-tail-checksum.bin", buf, len);

#if FZ_HAVE_FDS
	/*
	 * ghost-size-wrap: two ghost files of 2^63 bytes each; next_data wraps
	 * back to the end of the runs' data, so the tables pass, and the data
	 * check hashes 2^63 bytes from inside the image.
	 */
	buf = minimal(&len, 2);
	if (buf) {
		struct ckpt_header h;
		struct ckpt_fd f;
		uint64_t i;

		memcpy(&h, buf, FZ_HDR);
		for (i = 0; i < 2; i++) {
			memcpy(&f, buf + h.fds_offset + i * FZ_FD, FZ_FD);
			f.fd = 3 + (int32_t)i;
			f.type = CKPT_FD_GHOST;
			f.size = f.data_len = 1ULL << 63;
			f.data_offset = h.data_offset + h.data_size +
					i * (1ULL << 63);
			memcpy(buf + h.fds_offset + i * FZ_FD, &f, FZ_FD);
		}
		fz_fix_checksums(buf, len);
	}
	err |= write_repro(dir, "ghost-size-wrap.bin", buf, len);
#endif
	return err ? 1 : 0;
}

int main(int argc, char **argv)
{
	unsigned char *img = NULL, *out;
	size_t len = 0, out_len;
	int ret;

	if (argc == 3 && !strcmp(argv[1], "synth")) {
		out = fz_synthetic(&out_len);
		ret = !out || write_file(argv[2], out, out_len);
		free(out);
		return ret;
	}
	if (argc == 5 && !strcmp(argv[1], "shrink")) {
		img = read_file(argv[2], &len);
		if (!img)
			return 1;
		out = fz_shrink(img, len, strtoull(argv[4], NULL, 0), &out_len);
		if (!out) {
			fprintf(stderr, "seedgen: %s is not a valid image\n",
				argv[2]);
			free(img);
			return 1;
		}
		ret = write_file(argv[3], out, out_len);
		free(out);
		free(img);
		return ret ? 1 : 0;
	}
	if (argc == 4 && !strcmp(argv[1], "mutants"))
		return mutants(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "repro"))
		return repro(argv[2]);
	fprintf(stderr, "usage: seedgen synth OUT | shrink IN OUT PAGES | "
			"mutants IN DIR | repro DIR\n");
	return 2;
}
