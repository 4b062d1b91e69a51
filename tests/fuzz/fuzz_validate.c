/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_validate.c - libFuzzer harness for ckpt_validate (see README.md).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *         -fno-sanitize-recover=all -I native -I tests/fuzz \
 *         -o fuzz_validate tests/fuzz/fuzz_validate.c native/ckpt_validate.c
 *
 * Each input is checked three ways, each in a heap buffer of exactly its
 * size so that ASan sees a read one byte past the end:
 *   - as given;
 *   - with its checksums recomputed (image_size, header, tables, regions),
 *     since a coverage-guided mutator cannot forge XXH64 values and would
 *     otherwise never get past check_header;
 *   - with its table of contents laid out to fit its size, then checksums.
 * The two fixed-up forms are what let the fuzzer explore check_regions and
 * check_data; the raw form keeps the header checks themselves honest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static void check(const unsigned char *data, size_t size, int fix)
{
	unsigned char *buf = malloc(size ? size : 1);
	struct ckpt_verdict v;
	int want, ret, ret0 = 0;

	if (!buf)
		abort();
	if (size)
		memcpy(buf, data, size);
	if (fix == 1)
		fz_fix_checksums(buf, size);
	else if (fix == 2)
		fz_fix_layout(buf, size);
	for (want = 0; want <= 1; want++) {
		const char *broken;

		memset(&v, 0xa5, sizeof(v)); /* no help from a zeroed verdict */
		ret = ckpt_validate(buf, size, want, &v);
		broken = fz_contract(ret, &v, want);
		if (broken) {
			fprintf(stderr,
				"contract broken (fix %d, check_data %d): %s; "
				"status %d\n",
				fix, want, broken, ret);
			abort();
		}
		if (ret == 0 && (broken = fz_check_limits(buf))) {
			fprintf(stderr, "contract broken (limits): %s\n", broken);
			abort();
		}
		/* check_data only adds checks after the others passed. */
		if (want == 0)
			ret0 = ret;
		else if (ret0 != 0 && ret != ret0) {
			fprintf(stderr,
				"check_data changed an earlier verdict: %d then "
				"%d\n",
				ret0, ret);
			abort();
		}
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, 0);
	if (size >= FZ_HDR) {
		check(data, size, 1);
		check(data, size, 2);
	}
	return 0;
}
