/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ckpt_util.c - libckpt's small helpers: logging, whole reads and writes,
 * parsing of /proc text, and scratch buffers. All async-signal-safe: they
 * run inside the checkpoint signal handler (no stdio, no malloc).
 */
#include "libckpt.h"

struct ckpt_own_range ckpt_own[MAX_OWN];
int ckpt_nr_own;

/* ---- async-signal-safe logging --------------------------------------- */

void lb_str(struct logbuf *lb, const char *s)
{
	while (*s && lb->len < sizeof(lb->buf) - 1)
		lb->buf[lb->len++] = *s++;
}

void lb_num(struct logbuf *lb, unsigned long long v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && lb->len < sizeof(lb->buf) - 1)
		lb->buf[lb->len++] = tmp[--n];
}

/*
 * A failure that a resource limit caused: name the limit and its value, so
 * that the user knows what to raise (the errno alone blames memory or
 * "too many files" in general).
 */
static void lb_limit_hint(struct logbuf *lb, int err)
{
	struct rlimit rl;
	int res = err == ENOMEM ? RLIMIT_AS : RLIMIT_NOFILE;

	if ((err != ENOMEM && err != EMFILE) ||
	    syscall(SYS_prlimit64, 0, res, NULL, &rl) < 0 ||
	    rl.rlim_cur == RLIM_INFINITY)
		return;
	if (err == ENOMEM) {
		lb_str(lb, " (RLIMIT_AS limits the address space to ");
		lb_num(lb, rl.rlim_cur >> 10);
		lb_str(lb, " KiB and a checkpoint needs a few MiB more: "
			   "raise it, e.g. ulimit -v)");
	} else {
		lb_str(lb, " (all ");
		lb_num(lb, rl.rlim_cur);
		lb_str(lb, " file descriptors RLIMIT_NOFILE allows are in use "
			   "and a checkpoint needs a few more: raise it, e.g. "
			   "ulimit -n, or close some)");
	}
}

void ckpt_log(const char *what, const char *path, int err)
{
	struct logbuf lb = { .len = 0 };
	const char *desc;

	lb_str(&lb, "libckpt: ");
	lb_str(&lb, what);
	if (path) {
		lb_str(&lb, " ");
		lb_str(&lb, path);
	}
	if (err) {
		/* A static table, no locale: safe where strerror() is not. */
		desc = strerrordesc_np(err);
		lb_str(&lb, ": ");
		if (desc) {
			lb_str(&lb, desc);
		} else {
			lb_str(&lb, "errno ");
			lb_num(&lb, (unsigned)err);
		}
		lb_limit_hint(&lb, err);
	}
	lb.buf[lb.len++] = '\n';
	if (write(STDERR_FILENO, lb.buf, lb.len) < 0) {
		/* Nowhere left to report to. */
	}
}

/* ---- small helpers ---------------------------------------------------- */

int write_full(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		p += n;
		if (off >= 0)
			off += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	return write_full(fd, buf, len, -1);
}

ssize_t read_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return -errno;
	while (len < size) {
		ssize_t n = read(fd, buf + len, size - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	return err ? err : (ssize_t)len;
}

const char *parse_hex(const char *p, uint64_t *out)
{
	uint64_t v = 0;

	for (;; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			break;
		v = (v << 4) | (uint64_t)d;
	}
	*out = v;
	return p;
}

int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

const char *parse_dec(const char *p, uint64_t *out)
{
	uint64_t v = 0;

	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	*out = v;
	return p;
}

void *scratch_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void *own_map(size_t len)
{
	void *p;

	if (ckpt_nr_own == MAX_OWN)
		return NULL;
	p = scratch_map(len);
	if (p) {
		ckpt_own[ckpt_nr_own].lo = (uint64_t)(uintptr_t)p;
		ckpt_own[ckpt_nr_own].hi =
			((uint64_t)(uintptr_t)p + len + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
		ckpt_nr_own++;
	}
	return p;
}

void own_unmap(void *p, size_t len)
{
	int i;

	for (i = 0; i < ckpt_nr_own; i++)
		if (ckpt_own[i].lo == (uint64_t)(uintptr_t)p) {
			ckpt_own[i] = ckpt_own[--ckpt_nr_own];
			break;
		}
	munmap(p, len);
}

int own_remap(void **p, size_t len, size_t new_len)
{
	void *q = mremap(*p, len, new_len, MREMAP_MAYMOVE);
	int i;

	if (q == MAP_FAILED)
		return -errno;
	for (i = 0; i < ckpt_nr_own; i++)
		if (ckpt_own[i].lo == (uint64_t)(uintptr_t)*p) {
			ckpt_own[i].lo = (uint64_t)(uintptr_t)q;
			ckpt_own[i].hi = ((uint64_t)(uintptr_t)q + new_len +
					  PAGE_SZ - 1) & ~(PAGE_SZ - 1);
			break;
		}
	*p = q;
	return 0;
}

int ensure_strings(struct dump *d, size_t len)
{
	size_t cap = d->strings_cap;
	void *p = d->strings;
	int err;

	if (len <= cap - d->strings_len)
		return 0;
	if (d->strings_fixed)
		return -ENOMEM; /* moving it now would change what smaps said */
	while (len > cap - d->strings_len)
		cap *= 2;
	err = own_remap(&p, d->strings_cap, cap);
	if (err)
		return err;
	d->strings = p;
	d->strings_cap = cap;
	return 0;
}

uint32_t add_string(struct dump *d, const char *s, size_t len)
{
	uint32_t off = (uint32_t)d->strings_len;

	if (ensure_strings(d, len) < 0) {
		d->nomem = 1;
		return off; /* the checkpoint fails: prepare() and parse_maps() */
	}
	memcpy(d->strings + d->strings_len, s, len);
	d->strings_len += len;
	return off;
}
