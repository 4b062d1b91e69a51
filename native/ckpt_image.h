/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ckpt_image.h - the extckpt image format. This header is its only definition:
 * libckpt.so writes it, myrestart reads it, and the Python package parses the
 * section between CFFI-BEGIN and CFFI-END with cffi.
 *
 * Grammar of an image file (all integers little-endian, x86-64 native):
 *
 *   image   := header data tables
 *   header  := struct ckpt_header, zero-padded to CKPT_PAGE_SIZE bytes
 *   data    := for each region in table order, for each of its runs in order,
 *              run.len bytes of memory at file offset run.data_offset
 *              (page-aligned, contiguous, starting at header.data_offset)
 *              then the contents of deleted-but-open files (ghost files),
 *              each at its fd's data_offset, page-aligned, in fd order
 *   tables  := struct ckpt_region regions[header.nr_regions]
 *              struct ckpt_run    runs[header.nr_runs]
 *              struct ckpt_fd     fds[header.nr_fds]
 *              struct ckpt_timer  timers[header.nr_timers]
 *              struct ckpt_signal signals[header.nr_signals]
 *              char               strings[header.strings_size]
 *
 * The header is written last (after the data and the tables), then the file
 * is renamed into place: an image at its final path is always complete.
 *
 * Integrity: header.header_checksum covers the header (with that field zero),
 * header.tables_checksum covers the six tables, each region's checksum
 * covers its stored bytes, and each ghost file's checksum its contents. All
 * are XXH64 with seed 0. A region's bytes are hashed in pieces so that
 * readers can check them on many cores: each run is cut, from its start,
 * into CKPT_HASH_PIECE bytes (the last piece of a run may be shorter); the
 * region's checksum is the XXH64 of the pieces' XXH64 values, each as 8
 * little-endian bytes, in run order (no runs: XXH64 of nothing).
 *
 * What the image does NOT hold: the bytes of file-backed regions that the
 * program has not modified (re-mapped from the file at restart, which is
 * checked against dev/ino/size/mtime), pages never touched (they come back as
 * zero-filled), and the vDSO/vvar pages (the restarter moves its own).
 */
#ifndef CKPT_IMAGE_H
#define CKPT_IMAGE_H

#include <stdint.h>

/* CFFI-BEGIN: only #define of integers and plain structs below this line. */

#define CKPT_FORMAT_VERSION 5
#define CKPT_ARCH_X86_64 62 /* ELF e_machine EM_X86_64 */
#define CKPT_PAGE_SIZE 4096
#define CKPT_HASH_PIECE 1048576 /* region checksums: see Integrity above */
#define CKPT_NSIG 64          /* sigactions[i] is signal i + 1 */
#define CKPT_AUXV_WORDS 128   /* room for 64 auxv (type, value) pairs */
#define CKPT_NGREGS 23        /* glibc's NGREG, REG_R8 .. REG_CR2 order */
#define CKPT_NRLIMITS 16      /* RLIM_NLIMITS */
/* Highest user address with 4-level paging: regions never end above it. */
#define CKPT_USER_TOP 0x7ffffffff000

/* struct ckpt_region.kind */
#define CKPT_KIND_ANON 0        /* anonymous memory: stored pages only */
#define CKPT_KIND_FILE 1        /* file mapping: re-mapped, modified pages stored */
#define CKPT_KIND_VDSO 2        /* [vdso]: the restarter's own is moved here */
#define CKPT_KIND_VVAR 3        /* [vvar]: likewise, never read (can SIGBUS) */
#define CKPT_KIND_VVAR_VCLOCK 4 /* [vvar_vclock] (Linux 6.13+): likewise */

/* struct ckpt_region.flags */
#define CKPT_REGION_SHARED 0x1    /* MAP_SHARED (else MAP_PRIVATE) */
#define CKPT_REGION_GROWSDOWN 0x2 /* the main stack: MAP_GROWSDOWN */
#define CKPT_REGION_HEAP 0x4      /* [heap], the brk area (informational) */
#define CKPT_REGION_CKPTLIB 0x8   /* a mapping of libckpt.so itself */
#define CKPT_REGION_UNREADABLE 0x10 /* had no PROT_READ: read via mprotect */
#define CKPT_REGION_CONTENT_HASH 0x20 /* content_hash is set (file mappings) */

/*
 * struct ckpt_region.vmflags: what /proc/PID/smaps VmFlags said, as far as a
 * restart can set it again (mmap flags, madvise, mlock).
 */
#define CKPT_VM_NORESERVE 0x1   /* nr: MAP_NORESERVE */
#define CKPT_VM_GROWSDOWN 0x2   /* gd: MAP_GROWSDOWN */
#define CKPT_VM_LOCKED 0x4      /* lo: mlock */
#define CKPT_VM_DONTFORK 0x8    /* dc: MADV_DONTFORK */
#define CKPT_VM_WIPEONFORK 0x10 /* wf: MADV_WIPEONFORK */
#define CKPT_VM_DONTDUMP 0x20   /* dd: MADV_DONTDUMP */
#define CKPT_VM_HUGEPAGE 0x40   /* hg: MADV_HUGEPAGE */
#define CKPT_VM_NOHUGEPAGE 0x80 /* nh: MADV_NOHUGEPAGE */
#define CKPT_VM_MERGEABLE 0x100 /* mg: MADV_MERGEABLE */
#define CKPT_VM_SEQUENTIAL 0x200 /* sr: MADV_SEQUENTIAL */
#define CKPT_VM_RANDOM 0x400    /* rr: MADV_RANDOM */

/* struct ckpt_region.prot: PROT_READ 1, PROT_WRITE 2, PROT_EXEC 4 */

/* struct ckpt_fd.type */
#define CKPT_FD_FILE 0   /* regular file: reopened by path, offset restored */
#define CKPT_FD_DIR 1    /* directory: reopened by path */
#define CKPT_FD_GHOST 2  /* regular file deleted while open: contents stored */
#define CKPT_FD_CHAR 3   /* character device (terminal, /dev/null...) */
#define CKPT_FD_PIPE 4   /* pipe or FIFO: not restorable, reported */
#define CKPT_FD_SOCKET 5 /* socket: not restorable, reported */
#define CKPT_FD_OTHER 6  /* eventfd, epoll, timerfd...: not restorable */

/* Exit statuses of myrestart, distinct per failure (the tools rely on them). */
#define CKPT_EXIT_USAGE 2         /* no image argument, unknown option */
#define CKPT_EXIT_OPEN 3          /* cannot open the image (missing, no access) */
#define CKPT_EXIT_NOT_FILE 4      /* the path is a directory or not a file */
#define CKPT_EXIT_EMPTY 5         /* the file is empty */
#define CKPT_EXIT_BAD_MAGIC 6     /* not an extckpt image */
#define CKPT_EXIT_VERSION 7       /* another format version */
#define CKPT_EXIT_ARCH 8          /* another architecture or page size */
#define CKPT_EXIT_TRUNCATED 9     /* shorter (or longer) than the header says */
#define CKPT_EXIT_CORRUPT 10      /* header or tables fail their checks */
#define CKPT_EXIT_DATA_CORRUPT 11 /* a region's data fails its checksum */
#define CKPT_EXIT_MISMATCH 12     /* a mapped file changed, or another kernel */
#define CKPT_EXIT_RESOURCE 13     /* no memory or address space to restart */
#define CKPT_EXIT_RESTORE 14      /* failure after the point of no return */
#define CKPT_EXIT_FILES 15        /* an open file changed: unsafe to go on */
#define CKPT_EXIT_PID 16          /* --pid=require and the pid is not to be had */
#define CKPT_EXIT_OWNER 17        /* another user's image, or writable by others */
/*
 * Not a failure: with CKPT_EXIT_AFTER=1 the program ends with this status
 * once its image is complete (a job script requeues on it). Far from the
 * statuses above so that more of those never collide with it.
 */
#define CKPT_EXIT_CHECKPOINTED 85

struct ckpt_sigaction { /* the kernel's struct for rt_sigaction(2) */
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

struct ckpt_rseq { /* the rseq(2) registration to re-establish */
	uint64_t addr; /* 0: none was registered */
	uint32_t len;
	uint32_t sig;
};

struct ckpt_mm { /* fields of prctl(PR_SET_MM_MAP) */
	uint64_t start_code;
	uint64_t end_code;
	uint64_t start_data;
	uint64_t end_data;
	uint64_t start_brk;
	uint64_t brk;
	uint64_t start_stack;
	uint64_t arg_start;
	uint64_t arg_end;
	uint64_t env_start;
	uint64_t env_end;
	uint64_t auxv_size; /* bytes used in auxv[] */
	uint64_t auxv[CKPT_AUXV_WORDS];
};

struct ckpt_itimer { /* setitimer(2): ITIMER_REAL, VIRTUAL, PROF */
	uint64_t interval_us;
	uint64_t value_us; /* time left at the checkpoint, 0: disarmed */
};

struct ckpt_proc { /* kernel state of the process besides memory */
	uint32_t cwd_offset; /* current directory, in strings */
	uint32_t cwd_len;
	uint32_t umask;
	int32_t thp_disable;    /* PR_GET_THP_DISABLE */
	int32_t dumpable;       /* PR_GET_DUMPABLE */
	int32_t no_new_privs;   /* PR_GET_NO_NEW_PRIVS */
	int32_t child_subreaper; /* PR_GET_CHILD_SUBREAPER */
	int32_t oom_score_adj;  /* /proc/self/oom_score_adj */
	uint64_t timerslack_ns; /* PR_GET_TIMERSLACK */
	char comm[16];          /* PR_GET_NAME */
	uint64_t rlimits[CKPT_NRLIMITS][2]; /* soft, hard */
	struct ckpt_itimer itimers[3];
	/* MEMBARRIER_CMD_GET_REGISTRATIONS: the REGISTER_* commands made */
	uint32_t membarrier;
	uint32_t pad;
};

struct ckpt_header {
	char magic[8];            /* "EXTCKPT" and a NUL */
	uint32_t version;         /* CKPT_FORMAT_VERSION */
	uint32_t header_size;     /* sizeof(struct ckpt_header) */
	uint32_t arch;            /* CKPT_ARCH_X86_64 */
	uint32_t page_size;       /* CKPT_PAGE_SIZE */
	uint64_t image_size;      /* size of the whole file */
	uint64_t header_checksum; /* XXH64 of this header with this field 0 */
	uint64_t tables_checksum; /* XXH64 of regions, runs and strings */
	uint64_t data_offset;     /* CKPT_PAGE_SIZE */
	uint64_t data_size;       /* sum of all run lengths */
	uint64_t regions_offset;
	uint64_t nr_regions;
	uint64_t runs_offset;
	uint64_t nr_runs;
	uint64_t fds_offset;
	uint64_t nr_fds;
	uint64_t timers_offset;
	uint64_t nr_timers;
	uint64_t signals_offset;
	uint64_t nr_signals;
	uint64_t strings_offset;
	uint64_t strings_size;
	uint64_t created_ns;  /* CLOCK_REALTIME when the checkpoint began */
	int32_t pid;          /* of the checkpointed process */
	uint32_t signo;       /* the signal that triggered the checkpoint */
	uint32_t exe_name_offset; /* /proc/self/exe, in strings */
	uint32_t exe_name_len;
	/*
	 * Where myrestart jumps when memory is back: an entry point inside
	 * libckpt.so that unmaps the restarter's last page range and resumes
	 * the signal handler, which returns through the kernel's signal frame.
	 */
	uint64_t resume_entry;
	uint64_t resume_stack; /* a free spot below the handler's stack frame */
	uint64_t fs_base;      /* TLS: glibc's thread pointer */
	uint64_t gs_base;
	uint64_t sigmask;      /* blocked while the handler runs */
	uint64_t gregs[CKPT_NGREGS]; /* interrupted registers, for display */
	struct ckpt_rseq rseq;
	struct ckpt_mm mm;
	struct ckpt_sigaction sigactions[CKPT_NSIG];
	struct ckpt_proc proc;
};

struct ckpt_region {
	uint64_t start; /* page-aligned, regions sorted and disjoint */
	uint64_t end;
	uint64_t file_offset; /* CKPT_KIND_FILE: offset of start in the file */
	uint64_t dev;         /* CKPT_KIND_FILE: st_dev, st_ino, st_size and */
	uint64_t ino;         /* st_mtim at checkpoint, checked at restart */
	uint64_t file_size;
	int64_t mtime_ns;
	uint64_t first_run; /* this region's runs: runs[first_run ..] */
	uint64_t nr_runs;
	uint64_t stored_bytes; /* sum of its runs' lengths */
	uint64_t checksum;     /* XXH64 of its pieces' XXH64s (see top) */
	uint32_t prot;         /* PROT_READ | PROT_WRITE | PROT_EXEC */
	uint32_t kind;         /* CKPT_KIND_* */
	uint32_t flags;        /* CKPT_REGION_* */
	uint32_t name_offset;  /* path or [name] in strings, not NUL-ended */
	uint32_t name_len;
	uint32_t vmflags;      /* CKPT_VM_* */
	/*
	 * CKPT_KIND_FILE with CKPT_REGION_CONTENT_HASH: what identifies the
	 * mapped bytes, [file_offset, file_offset + end - start) clipped at
	 * file_size: the XXH64 of the XXH64s of its 1 MiB pieces. A file
	 * whose device, inode or time differ at restart (a copy, on another
	 * machine) is accepted when its size and this hash agree.
	 */
	uint64_t content_hash;
};

struct ckpt_run { /* pages [start, start + len) stored at data_offset */
	uint64_t start;
	uint64_t len;
	uint64_t data_offset;
};

struct ckpt_fd { /* one open file descriptor */
	int32_t fd;
	uint32_t type;      /* CKPT_FD_* */
	uint32_t flags;     /* fcntl(F_GETFL): access mode, O_APPEND... */
	uint32_t cloexec;   /* FD_CLOEXEC was set */
	uint64_t pos;       /* file offset */
	uint64_t dev;       /* fstat at checkpoint: checked at restart */
	uint64_t ino;
	uint64_t size;
	uint64_t rdev;      /* character devices */
	uint32_t mode;      /* st_mode */
	uint32_t path_offset; /* readlink of /proc/self/fd/N, in strings */
	uint32_t path_len;
	uint32_t pad;
	uint64_t data_offset; /* CKPT_FD_GHOST: its contents in the data */
	uint64_t data_len;    /* (size bytes, zero-padded to a page) */
	uint64_t checksum;    /* XXH64 of the size bytes */
};

struct ckpt_timer { /* a POSIX timer (timer_create), from /proc/PID/timers */
	int32_t id;        /* the kernel's timer id, which timer_t holds */
	int32_t clock;     /* clockid_t */
	int32_t notify;    /* SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD_ID 4 */
	int32_t signo;
	uint64_t sigval;   /* sigev_value */
	uint64_t interval_ns;
	uint64_t value_ns; /* time left; 0: disarmed */
};

struct ckpt_signal { /* one signal pending at the checkpoint */
	int32_t signo;
	int32_t pad;
	uint8_t info[128]; /* its siginfo_t, queued again at restart */
};

/* CFFI-END */

#define CKPT_MAGIC "EXTCKPT"

/* Length of the hash piece of a run that starts done bytes into it. */
static inline uint64_t ckpt_piece_len(uint64_t run_len, uint64_t done)
{
	return run_len - done < CKPT_HASH_PIECE ? run_len - done :
						  CKPT_HASH_PIECE;
}

_Static_assert(sizeof(struct ckpt_sigaction) == 32, "ckpt_sigaction size");
_Static_assert(sizeof(struct ckpt_rseq) == 16, "ckpt_rseq size");
_Static_assert(sizeof(struct ckpt_mm) == 12 * 8 + CKPT_AUXV_WORDS * 8,
	       "ckpt_mm size");
_Static_assert(sizeof(struct ckpt_itimer) == 16, "ckpt_itimer size");
_Static_assert(sizeof(struct ckpt_proc) == 368, "ckpt_proc size");
_Static_assert(sizeof(struct ckpt_header) == 3960, "ckpt_header size");
_Static_assert(sizeof(struct ckpt_header) <= CKPT_PAGE_SIZE,
	       "the header must fit its page");
_Static_assert(sizeof(struct ckpt_region) == 120, "ckpt_region size");
_Static_assert(sizeof(struct ckpt_run) == 24, "ckpt_run size");
_Static_assert(sizeof(struct ckpt_fd) == 96, "ckpt_fd size");
_Static_assert(sizeof(struct ckpt_timer) == 40, "ckpt_timer size");
_Static_assert(sizeof(struct ckpt_signal) == 136, "ckpt_signal size");

#endif /* CKPT_IMAGE_H */
