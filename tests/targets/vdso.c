/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vdso - time after a restart. clock_gettime (REALTIME, MONOTONIC),
 * gettimeofday and time() still work through libc, whose pointers into the
 * vDSO were resolved at startup, and give plausible values: not before the
 * checkpoint, within a minute of the kernel's own answer (raw syscall). The
 * [vdso] mapping is where AT_SYSINFO_EHDR says; its __vdso_clock_gettime,
 * called directly, agrees with the syscall. Finally, in a forked child with
 * a seccomp filter that fails the time syscalls, libc's calls still work:
 * they went through the vDSO, not the kernel (checked only if that is also
 * true before the checkpoint: some clock sources make the vDSO fall back).
 */
#include "target.h"

#include <elf.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>

typedef int (*vdso_gettime_fn)(clockid_t, struct timespec *);

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t raw_clock(clockid_t id)
{
	struct timespec ts;

	if (syscall(SYS_clock_gettime, id, &ts) < 0)
		fatal("clock_gettime syscall: %s", strerror(errno));
	return ts_ns(&ts);
}

/* Look a symbol up in the vDSO through its section headers. */
static void *vdso_sym(const char *name)
{
	uintptr_t base = getauxval(AT_SYSINFO_EHDR);
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const Elf64_Shdr *sh;
	uintptr_t load_offset = 0;

	if (!base || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return NULL;
	/* Symbol values are link-time addresses: rebase by the first PT_LOAD. */
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph =
			(const Elf64_Phdr *)(base + eh->e_phoff) + i;

		if (ph->p_type == PT_LOAD) {
			load_offset = base + ph->p_offset - ph->p_vaddr;
			break;
		}
	}
	sh = (const Elf64_Shdr *)(base + eh->e_shoff);
	for (int i = 0; i < eh->e_shnum; i++) {
		const Elf64_Sym *sym;
		const char *strtab;
		size_t n;

		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		sym = (const Elf64_Sym *)(base + sh[i].sh_offset);
		strtab = (const char *)(base + sh[sh[i].sh_link].sh_offset);
		n = sh[i].sh_size / sizeof(*sym);
		for (size_t j = 0; j < n; j++)
			if (sym[j].st_shndx != SHN_UNDEF &&
			    strcmp(strtab + sym[j].st_name, name) == 0)
				return (void *)(load_offset + sym[j].st_value);
	}
	return NULL;
}

/* The start of the mapping named name in /proc/self/maps, or 0. */
static uintptr_t mapping_start(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uintptr_t start = 0;

	if (!f)
		fatal("open /proc/self/maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *nl = strchr(line, '\n');
		size_t len;

		if (nl)
			*nl = '\0';
		len = strlen(line);
		if (len >= strlen(name) &&
		    strcmp(line + len - strlen(name), name) == 0) {
			sscanf(line, "%lx", &start);
			break;
		}
	}
	fclose(f);
	return start;
}

/*
 * In a child: forbid the time syscalls with a seccomp filter (EPERM), then
 * call libc. Exit 0 if every call succeeded without the kernel, 1 if one
 * failed, 2 if the filter could not be installed.
 */
static int child_without_time_syscalls(void)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clock_gettime, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_gettimeofday, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_time, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog prog = { .len = sizeof(insns) / sizeof(insns[0]),
				   .filter = insns };
	struct timespec ts;
	struct timeval tv;
	pid_t pid = fork();
	int status;

	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(2);
		if (clock_gettime(CLOCK_REALTIME, &ts) < 0 ||
		    clock_gettime(CLOCK_MONOTONIC, &ts) < 0 ||
		    gettimeofday(&tv, NULL) < 0 || time(NULL) == (time_t)-1)
			_exit(1);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0)
		fatal("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(status))
		return 100 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int main(void)
{
	struct timespec rt0, mono0, rt1, mono1;
	struct timeval tv1;
	vdso_gettime_fn vdso_gettime;
	uintptr_t ehdr = getauxval(AT_SYSINFO_EHDR);
	time_t t1;
	int vdso_only_before, vdso_only_after;
	int64_t raw;

	if (!ehdr)
		fatal("no vDSO (AT_SYSINFO_EHDR is 0)");
	CHECK(mapping_start("[vdso]") == ehdr,
	      "before: [vdso] at %#lx, AT_SYSINFO_EHDR %#lx",
	      (unsigned long)mapping_start("[vdso]"), (unsigned long)ehdr);
	vdso_only_before = child_without_time_syscalls();
	if (vdso_only_before)
		note("libc's time calls need the kernel here (child status "
		     "%d): not checking that they avoid it",
		     vdso_only_before);
	clock_gettime(CLOCK_REALTIME, &rt0);
	clock_gettime(CLOCK_MONOTONIC, &mono0);
	ready();
	wait_go();

	CHECK(mapping_start("[vdso]") == ehdr,
	      "after: [vdso] at %#lx, AT_SYSINFO_EHDR %#lx",
	      (unsigned long)mapping_start("[vdso]"), (unsigned long)ehdr);
	if (clock_gettime(CLOCK_REALTIME, &rt1) < 0)
		fail("clock_gettime(REALTIME): %s", strerror(errno));
	raw = raw_clock(CLOCK_REALTIME);
	CHECK(ts_ns(&rt1) >= ts_ns(&rt0), "CLOCK_REALTIME went back");
	CHECK(llabs(ts_ns(&rt1) - raw) < 60000000000LL,
	      "CLOCK_REALTIME %lld ns off the syscall's",
	      (long long)(ts_ns(&rt1) - raw));
	if (clock_gettime(CLOCK_MONOTONIC, &mono1) < 0)
		fail("clock_gettime(MONOTONIC): %s", strerror(errno));
	raw = raw_clock(CLOCK_MONOTONIC);
	CHECK(ts_ns(&mono1) >= ts_ns(&mono0), "CLOCK_MONOTONIC went back");
	CHECK(raw >= ts_ns(&mono1) && raw - ts_ns(&mono1) < 60000000000LL,
	      "CLOCK_MONOTONIC %lld ns off the syscall's",
	      (long long)(ts_ns(&mono1) - raw));
	if (gettimeofday(&tv1, NULL) < 0)
		fail("gettimeofday: %s", strerror(errno));
	CHECK(tv1.tv_sec >= rt0.tv_sec && tv1.tv_sec <= rt0.tv_sec + 3600,
	      "gettimeofday: %lld s, %lld s before the checkpoint",
	      (long long)tv1.tv_sec, (long long)rt0.tv_sec);
	t1 = time(NULL);
	CHECK(t1 >= rt0.tv_sec && t1 <= rt0.tv_sec + 3600,
	      "time(): %lld, %lld before the checkpoint", (long long)t1,
	      (long long)rt0.tv_sec);

	vdso_gettime = (vdso_gettime_fn)vdso_sym("__vdso_clock_gettime");
	if (!vdso_gettime) {
		fail("no __vdso_clock_gettime in the vDSO at %#lx",
		     (unsigned long)ehdr);
	} else {
		struct timespec ts;

		if (vdso_gettime(CLOCK_MONOTONIC, &ts) != 0)
			fail("__vdso_clock_gettime failed");
		raw = raw_clock(CLOCK_MONOTONIC);
		CHECK(raw >= ts_ns(&ts) && raw - ts_ns(&ts) < 60000000000LL,
		      "__vdso_clock_gettime(MONOTONIC) %lld ns off the "
		      "syscall's",
		      (long long)(ts_ns(&ts) - raw));
	}
	if (!vdso_only_before) {
		vdso_only_after = child_without_time_syscalls();
		CHECK(vdso_only_after == 0,
		      "after the restart libc's time calls %s (child status "
		      "%d)",
		      vdso_only_after == 1 ? "made syscalls" : "failed",
		      vdso_only_after);
	}
	return finish();
}
