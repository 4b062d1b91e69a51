/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * drive_validate.c - a self-contained mutation fuzzer for ckpt_validate that
 * needs only gcc (what CI runs; the libFuzzer harness is fuzz_validate.c).
 *
 *   SAN="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all"
 *   gcc $SAN -fsanitize-coverage=trace-pc -I native -c \
 *       -o ckpt_validate.o native/ckpt_validate.c
 *   gcc $SAN -I native -I tests/fuzz -o drive_validate \
 *       tests/fuzz/drive_validate.c ckpt_validate.o
 *   ./drive_validate [-n MAX_EXECS] [-t SECONDS] [-s SEED] [-o CRASH_DIR]
 *                    [SEED_FILE...]
 *   ./drive_validate -r FILE...       replay: check each file once
 *
 * Seeds: a built-in synthetic valid image plus the files given (see
 * make_seeds.py). Each step takes an input from the pool, applies 1-4
 * mutations (bit flips, boundary values written into header, region, run
 * and fd fields, truncation, extension, inserted or deleted bytes, copied
 * table entries), then, most of the time, recomputes the checksums or the
 * whole table of contents (fuzz_common.h) so that the deeper checks are
 * reached. A mutant joins the pool when it reaches new code: with
 * ckpt_validate.c compiled with gcc's -fsanitize-coverage=trace-pc, the
 * hook below keeps AFL-style edge hit counts. A mutant whose verdict
 * (status and message with numbers blanked) is new joins it too, which is
 * all the feedback there is when the coverage flag was not used.
 *
 * Every input runs in a heap buffer of exactly its size, with check_data 0
 * and 1, and the verdict must keep the contract (fz_contract). A sanitizer
 * report aborts (-fno-sanitize-recover=all); the input that caused it is
 * written to CRASH_DIR first by the sanitizer's death callback.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#include <sanitizer/common_interface_defs.h>
#else /* a plain build, to see what an input does without sanitizers */
#define __sanitizer_set_death_callback(f) ((void)(f))
#endif

#define POOL_MAX 4096
#define COV_SIZE 8192 /* ckpt_validate.c has a few hundred edges */
#define CLASS_MAX 4096
#define FZ_MAX_INPUT (8u << 20)

struct input {
	unsigned char *buf;
	size_t len;
};

static struct input pool[POOL_MAX];
static size_t pool_n;
static uint64_t classes[CLASS_MAX];
static size_t classes_n;
static unsigned long long by_status[16], execs;
static int last_deep; /* the last run_one got past check_header */
static size_t deep[POOL_MAX], deep_n; /* pool indexes */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/*
 * Edge coverage: gcc calls this at every basic block of the code built
 * with -fsanitize-coverage=trace-pc (ckpt_validate.c only; this file is
 * built without it, or the hook would instrument itself).
 */
static unsigned char cov_run[COV_SIZE], cov_seen[COV_SIZE];
static uintptr_t cov_prev;
static size_t cov_edges;

void __sanitizer_cov_trace_pc(void);
void __sanitizer_cov_trace_pc(void)
{
	uintptr_t pc = (uintptr_t)__builtin_return_address(0);
	size_t idx = (size_t)(((pc ^ cov_prev) * 0x9E3779B97F4A7C15ULL) >> 51);

	if (cov_run[idx] < 255)
		cov_run[idx]++;
	cov_prev = pc >> 1;
}

/* AFL's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
static unsigned char bucket(unsigned char n)
{
	if (n < 4)
		return n ? (unsigned char)(1u << (n - 1)) : 0;
	if (n < 8)
		return 8;
	if (n < 16)
		return 16;
	if (n < 32)
		return 32;
	return n < 128 ? 64 : 128;
}

/* Fold this run's hits into what was seen; 1 if anything was new. */
static int cov_new(void)
{
	int fresh = 0;
	size_t i;

	for (i = 0; i < COV_SIZE; i++) {
		unsigned char b;

		if (!cov_run[i])
			continue;
		b = bucket(cov_run[i]);
		if (!cov_seen[i])
			cov_edges++;
		if ((cov_seen[i] | b) != cov_seen[i]) {
			cov_seen[i] |= b;
			fresh = 1;
		}
	}
	return fresh;
}

/* The input under test, for the death callback. */
static const unsigned char *cur_buf;
static size_t cur_len;
static const char *crash_dir;

static uint64_t rnd(void)
{
	/* xorshift64*: fixed seed, same sequence on every machine */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void save_input(const char *path, const unsigned char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(buf, 1, len, f) != len || fclose(f))
		fprintf(stderr, "drive_validate: cannot write %s: %s\n", path,
			strerror(errno));
	else
		fprintf(stderr, "drive_validate: input saved to %s (%zu bytes)\n",
			path, len);
}

static void on_death(void)
{
	char path[4096];

	if (!crash_dir || !cur_buf)
		return;
	snprintf(path, sizeof(path), "%s/crash-%llu.bin", crash_dir, execs);
	save_input(path, cur_buf, cur_len);
	cur_buf = NULL;
}

/*
 * gcc links ASan and UBSan as two runtimes: ASan's death callback does not
 * run when UBSan stops the program. UBSan is told to abort instead (below),
 * and this handler saves the input with async-signal-safe calls only.
 */
static char crash_path[4096];

static void on_signal(int sig)
{
	const unsigned char *p = cur_buf;
	size_t left = cur_len;
	int fd;

	if (p && crash_path[0]) {
		fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		while (fd >= 0 && left) {
			ssize_t n = write(fd, p, left);

			if (n <= 0)
				break;
			p += n;
			left -= (size_t)n;
		}
		if (fd >= 0)
			close(fd);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "print_stacktrace=1:abort_on_error=1:halt_on_error=1";
}

static void broken(const char *what, int fix, int want, int ret,
		   const struct ckpt_verdict *v)
{
	fprintf(stderr,
		"drive_validate: contract broken (fix %d, check_data %d): %s; "
		"status %d, msg \"%.*s\"\n",
		fix, want, what, ret, (int)sizeof(v->msg), v->msg);
	on_death();
	exit(1);
}

/* Verdict class: status and message with every number blanked. */
static uint64_t verdict_class(const struct ckpt_verdict *v)
{
	uint64_t hsh = 1469598103934665603ULL ^ (uint64_t)v->status;
	const char *p = v->msg, *end = v->msg + sizeof(v->msg);

	while (p < end && *p) {
		unsigned char c = (unsigned char)*p++;

		if (isdigit(c)) /* 12, 0x7ffc00012000, 4096-byte: one token */
			while (p < end && (isxdigit((unsigned char)*p) ||
					   *p == 'x'))
				p++;
		hsh = (hsh ^ (isdigit(c) ? '#' : c)) * 1099511628211ULL;
	}
	return hsh;
}

/* Got past check_header: worth mutating more than the rest. */
static int is_deep(const struct ckpt_verdict *v)
{
	return v->status == 0 || v->status == CKPT_EXIT_DATA_CORRUPT ||
	       !strncmp(v->msg, "region ", 7) || strstr(v->msg, "resume") ||
	       strstr(v->msg, "rseq") || strstr(v->msg, "auxv") ||
	       strstr(v->msg, "runs do not");
}

static int new_class(uint64_t c)
{
	size_t i;

	for (i = 0; i < classes_n; i++)
		if (classes[i] == c)
			return 0;
	if (classes_n < CLASS_MAX)
		classes[classes_n++] = c;
	return 1;
}

/* Run buf (exactly len bytes, heap) through ckpt_validate both ways. */
static int run_one(unsigned char *buf, size_t len, int fix, int *is_new)
{
	struct ckpt_verdict v;
	int want, ret, ret0 = 0;

	cur_buf = buf;
	cur_len = len;
	*is_new = 0;
	last_deep = 0;
	for (want = 0; want <= 1; want++) {
		const char *what;

		memset(&v, 0xa5, sizeof(v));
		memset(cov_run, 0, sizeof(cov_run));
		cov_prev = 0;
		ret = ckpt_validate(buf, len, want, &v);
		execs++;
		*is_new |= cov_new();
		what = fz_contract(ret, &v, want);
		if (what)
			broken(what, fix, want, ret, &v);
		if (want == 0)
			ret0 = ret;
		else if (ret0 != 0 && ret != ret0)
			broken("check_data changed an earlier verdict", fix, want,
			       ret, &v);
		if (ret == 0 && (what = fz_check_limits(buf)))
			broken(what, fix, want, ret, &v);
		if (ret >= 0 && ret < 16)
			by_status[ret]++;
		*is_new |= new_class(verdict_class(&v));
		last_deep |= is_deep(&v);
	}
	cur_buf = NULL;
	return ret;
}

static void pool_add(const unsigned char *buf, size_t len, int is_deep)
{
	struct input *in;

	if (pool_n < POOL_MAX)
		in = &pool[pool_n++];
	else {
		/* keep the first entries (the seeds), replace a later one */
		in = &pool[POOL_MAX / 4 + below(POOL_MAX - POOL_MAX / 4)];
		free(in->buf);
	}
	if (is_deep) {
		size_t idx = (size_t)(in - pool);

		if (deep_n < POOL_MAX)
			deep[deep_n++] = idx;
		else
			deep[below(POOL_MAX)] = idx;
	}
	in->buf = malloc(len ? len : 1);
	if (!in->buf) {
		perror("drive_validate: malloc");
		exit(2);
	}
	memcpy(in->buf, buf, len);
	in->len = len;
}

/* ------------------------------------------------------------------ */
/* Mutations, on a growable work buffer. */

struct work {
	unsigned char *buf;
	size_t len, cap;
};

static void work_reserve(struct work *w, size_t len)
{
	if (len <= w->cap)
		return;
	w->cap = len + 4096;
	w->buf = realloc(w->buf, w->cap);
	if (!w->buf) {
		perror("drive_validate: realloc");
		exit(2);
	}
}

static uint64_t boundary(uint64_t cur, size_t len, size_t width)
{
	uint64_t mask = width == 8 ? UINT64_MAX : (1ULL << (8 * width)) - 1;
	static const uint64_t fixed[] = {
		0, 1, 2, 7, 8, 31, 32, CKPT_PAGE_SIZE - 1, CKPT_PAGE_SIZE,
		CKPT_PAGE_SIZE + 1, FZ_HDR, FZ_REG, FZ_RUN, CKPT_USER_TOP,
		CKPT_USER_TOP + CKPT_PAGE_SIZE, 1ULL << 47, 1ULL << 63,
		UINT64_MAX, UINT64_MAX - 7, UINT64_MAX / FZ_REG + 1,
		UINT64_MAX / FZ_RUN + 1, 0x7fffffff, 0x80000000, 0xffffffff,
	};
	uint64_t v;

	switch (below(8)) {
	case 0:
		v = fixed[below(FZ_NELEM(fixed))];
		break;
	case 1:
		v = cur + 1;
		break;
	case 2:
		v = cur - 1;
		break;
	case 3:
		v = cur + (below(2) ? CKPT_PAGE_SIZE : -(uint64_t)CKPT_PAGE_SIZE);
		break;
	case 4:
		v = len + below(3) - 1;
		break;
	case 5:
		v = cur ^ (1ULL << below(8 * width));
		break;
	case 6:
		v = cur + below(64) * 8 - 256;
		break;
	default:
		v = rnd();
		break;
	}
	return v & mask;
}

static void set_field(struct work *w, size_t at, const struct fz_field *f)
{
	if (at + f->off + f->size > w->len)
		return;
	fz_put(w->buf + at + f->off, f->size,
	       boundary(fz_get(w->buf + at + f->off, f->size), w->len,
			f->size));
}

/* Offset of table entry idx of a table at off with n entries, or -1. */
static long long table_entry(const struct work *w, size_t field_off,
			     size_t field_n, size_t entry)
{
	uint64_t off, n;

	if (w->len < FZ_HDR)
		return -1;
	off = fz_get(w->buf + field_off, 8);
	n = fz_get(w->buf + field_n, 8);
	if (!n || off >= w->len)
		return -1;
	n = below(n < 4096 ? n : 4096);
	if (!fz_fits(off, n + 1, entry, w->len))
		return -1;
	return (long long)(off + n * entry);
}

static void mutate(struct work *w)
{
	long long at, at2;
	size_t n, pos;

	switch (below(12 + 2 * FZ_HAVE_FDS)) {
	case 0: /* bit flips, mostly outside the bulk data */
	case 1:
		if (!w->len)
			break;
		pos = below(2) && w->len > FZ_HDR ? below(FZ_HDR) : below(w->len);
		if (below(3) == 0 && w->len > CKPT_PAGE_SIZE)
			pos = w->len - 1 - below(w->len - CKPT_PAGE_SIZE);
		w->buf[pos] ^= (unsigned char)(1u << below(8));
		break;
	case 2: /* a header field, mostly past the identity ones */
	case 3:
	case 4:
		n = below(FZ_NELEM(fz_header_fields));
		if (n < 4 && below(4))
			n += 4 + below(FZ_NELEM(fz_header_fields) - 4 - n);
		set_field(w, 0, &fz_header_fields[n]);
		break;
	case 5: /* a region field */
	case 6:
		at = table_entry(w, offsetof(struct ckpt_header, regions_offset),
				 offsetof(struct ckpt_header, nr_regions), FZ_REG);
		if (at >= 0)
			set_field(w, at, &fz_region_fields[below(
						FZ_NELEM(fz_region_fields))]);
		break;
	case 7: /* a run field */
		at = table_entry(w, offsetof(struct ckpt_header, runs_offset),
				 offsetof(struct ckpt_header, nr_runs), FZ_RUN);
		if (at >= 0)
			set_field(w, at, &fz_run_fields[below(
						FZ_NELEM(fz_run_fields))]);
		break;
#if FZ_HAVE_FDS
	case 12: /* an fd field */
	case 13:
		at = table_entry(w, offsetof(struct ckpt_header, fds_offset),
				 offsetof(struct ckpt_header, nr_fds), FZ_FD);
		if (at >= 0)
			set_field(w, at, &fz_fd_fields[below(
						FZ_NELEM(fz_fd_fields))]);
		break;
#endif
	case 8: /* copy one region entry over another */
		at = table_entry(w, offsetof(struct ckpt_header, regions_offset),
				 offsetof(struct ckpt_header, nr_regions), FZ_REG);
		at2 = table_entry(w, offsetof(struct ckpt_header, regions_offset),
				  offsetof(struct ckpt_header, nr_regions), FZ_REG);
		if (at >= 0 && at2 >= 0)
			memmove(w->buf + at, w->buf + at2, FZ_REG);
		break;
	case 9: /* truncate */
		if (!w->len)
			break;
		switch (below(4)) {
		case 0:
			w->len = below(w->len);
			break;
		case 1:
			w->len = below(FZ_HDR + 16);
			break;
		default:
			w->len -= 1 + below(w->len < 256 ? w->len : 256);
			break;
		}
		break;
	case 10: /* extend */
		n = 1 + below(below(2) ? 64 : 2 * CKPT_PAGE_SIZE);
		if (w->len + n > FZ_MAX_INPUT)
			break;
		work_reserve(w, w->len + n);
		if (below(2))
			memset(w->buf + w->len, 0, n);
		else
			for (pos = 0; pos < n; pos++)
				w->buf[w->len + pos] = (unsigned char)rnd();
		w->len += n;
		break;
	default: /* insert or delete a few bytes: shifts what follows */
		if (!w->len)
			break;
		pos = below(w->len);
		n = 1 + below(16);
		if (below(2)) {
			if (n > w->len - pos)
				n = w->len - pos;
			memmove(w->buf + pos, w->buf + pos + n,
				w->len - pos - n);
			w->len -= n;
		} else if (w->len + n <= FZ_MAX_INPUT) {
			work_reserve(w, w->len + n);
			memmove(w->buf + pos + n, w->buf + pos, w->len - pos);
			memset(w->buf + pos, (int)below(256), n);
			w->len += n;
		}
		break;
	}
}

/* ------------------------------------------------------------------ */

static int load_file(const char *path, struct input *out)
{
	FILE *f = fopen(path, "rb");
	long n;

	out->buf = NULL;
	if (!f)
		goto fail;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) || (size_t)n > FZ_MAX_INPUT)
		goto fail;
	out->buf = malloc(n ? (size_t)n : 1);
	if (!out->buf || fread(out->buf, 1, (size_t)n, f) != (size_t)n)
		goto fail;
	out->len = (size_t)n;
	fclose(f);
	return 0;
fail:
	fprintf(stderr, "drive_validate: cannot read %s: %s\n", path,
		errno ? strerror(errno) : "too large");
	if (f)
		fclose(f);
	free(out->buf);
	return -1;
}

static int add_seed_path(const char *path)
{
	struct input in;
	struct stat st;
	int dummy;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;
		char sub[4096];
		int err = 0;

		if (!d)
			return -1;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(sub, sizeof(sub), "%s/%s", path,
					 e->d_name);
				err |= add_seed_path(sub);
			}
		closedir(d);
		return err;
	}
	if (load_file(path, &in))
		return -1;
	/* every seed runs as given once, and joins the pool */
	run_one(in.buf, in.len, 0, &dummy);
	if (pool_n < POOL_MAX)
		pool_add(in.buf, in.len, last_deep);
	free(in.buf);
	return 0;
}

static int replay(int argc, char **argv)
{
	int i, is_new, status = 0;

	for (i = 0; i < argc; i++) {
		struct input in;
		struct ckpt_verdict v;
		int ret;

		if (load_file(argv[i], &in)) {
			status = 2;
			continue;
		}
		run_one(in.buf, in.len, 0, &is_new);
		ret = ckpt_validate(in.buf, in.len, 1, &v);
		printf("%s: status %d%s%s\n", argv[i], ret, ret ? ": " : "",
		       ret ? v.msg : "");
		free(in.buf);
	}
	return status;
}

int main(int argc, char **argv)
{
	unsigned long long max_execs = 0, seed = 1, iters = 0, added = 0;
	double limit = 20, start, elapsed;
	struct work w = { 0 };
	size_t synth_len, i;
	unsigned char *synth;
	int opt, is_new, replay_mode = 0;

	while ((opt = getopt(argc, argv, "n:t:s:o:r")) != -1) {
		switch (opt) {
		case 'n':
			max_execs = strtoull(optarg, NULL, 0);
			break;
		case 't':
			limit = strtod(optarg, NULL);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'o':
			crash_dir = optarg;
			break;
		case 'r':
			replay_mode = 1;
			break;
		default:
			fprintf(stderr,
				"usage: drive_validate [-n MAX_EXECS] [-t SECONDS] "
				"[-s SEED] [-o CRASH_DIR] [SEED_FILE|DIR...]\n"
				"       drive_validate -r FILE...\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	__sanitizer_set_death_callback(on_death);
	if (crash_dir) {
		snprintf(crash_path, sizeof(crash_path), "%s/crash-ubsan.bin",
			 crash_dir);
		signal(SIGABRT, on_signal);
	}
	if (replay_mode)
		return replay(argc - optind, argv + optind);

	rng_state ^= seed * 0xd1342543de82ef95ULL;
	if (!rng_state)
		rng_state = 1;
	synth = fz_synthetic(&synth_len);
	if (!synth)
		return 2;
	run_one(synth, synth_len, 0, &is_new);
	if (synth_len < FZ_HDR || by_status[0] != 2) {
		fprintf(stderr, "drive_validate: the synthetic seed is not a "
				"valid image\n");
		return 2;
	}
	pool_add(synth, synth_len, 1);
	free(synth);
	for (i = (size_t)optind; i < (size_t)argc; i++)
		if (add_seed_path(argv[i]))
			return 2;
	printf("drive_validate: %zu seeds, seed %llu, up to %.0f s%s\n",
	       pool_n, seed, limit, max_execs ? "" : " (no exec limit)");

	start = now();
	for (;;) {
		/* half the time, an input that got past the header checks */
		struct input *in = &pool[deep_n && below(2) ? deep[below(deep_n)]
							    : below(pool_n)];
		unsigned char *buf;
		int k, fix, nmut = 1 + (int)below(4);

		if ((iters & 255) == 0 && now() - start >= limit)
			break;
		if (max_execs && execs >= max_execs)
			break;
		iters++;
		work_reserve(&w, in->len);
		memcpy(w.buf, in->buf, in->len);
		w.len = in->len;
		for (k = 0; k < nmut; k++)
			mutate(&w);
		/* 1 in 4 raw, else checksums or the whole layout fixed */
		fix = below(4) == 0 ? 0 : 1 + (int)below(2);
		if (fix == 1)
			fz_fix_checksums(w.buf, w.len);
		else if (fix == 2)
			fz_fix_layout(w.buf, w.len);
		/* an exactly-sized copy, so that ASan sees any over-read */
		buf = malloc(w.len ? w.len : 1);
		if (!buf) {
			perror("drive_validate: malloc");
			return 2;
		}
		memcpy(buf, w.buf, w.len);
		run_one(buf, w.len, fix, &is_new);
		if (is_new) {
			pool_add(buf, w.len, last_deep);
			added++;
		}
		free(buf);
	}
	elapsed = now() - start;
	printf("drive_validate: %llu mutants, %llu execs in %.1f s (%.0f/s), "
	       "%zu edges%s, %zu verdict classes, %llu inputs added to the "
	       "pool, %zu past the header checks\n",
	       iters, execs, elapsed, elapsed > 0 ? execs / elapsed : 0.0,
	       cov_edges, cov_edges ? "" : " (no -fsanitize-coverage)",
	       classes_n, added, deep_n);
	printf("drive_validate: verdicts by status:");
	for (i = 0; i < 16; i++)
		if (by_status[i])
			printf(" %zu:%llu", i, by_status[i]);
	printf("\ndrive_validate: no contract or sanitizer failure\n");
	for (i = 0; i < pool_n; i++)
		free(pool[i].buf);
	free(w.buf);
	return 0;
}
