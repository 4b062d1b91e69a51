/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * regs - every user register survives a checkpoint and restart taken in the
 * middle of straight-line code. One inline-asm block loads known values into
 * the general registers (rbx, rcx, rdx, rsi, rdi, rbp, r8-r15), the x87
 * stack and control word, MXCSR (round toward zero, FTZ, DAZ) and the
 * vector registers - zmm0-31 and k0-7 where the CPU has AVX-512, else
 * ymm0-15 with AVX, else xmm0-15 - then spins on a flag (no syscalls, no
 * memory writes) until a SIGUSR1 handler sets it, and stores everything
 * back. The checkpoint signal lands in the spin; the harness sends SIGUSR1
 * once the program is restored.
 */
#include "target.h"

#include <signal.h>
#include <stddef.h>

#define NG 15 /* rbx rcx rdx rsi rdi rbp r8 .. r15 */

static const char *const gnames[NG] = {
	"rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9",
	"r10", "r11", "r12", "r13", "r14", "r15", "rax(ptr)",
};

struct regs {
	uint8_t vin[32][64];
	uint8_t vout[32][64];
	uint8_t x87in[8][16];
	uint8_t x87out[8][16];
	uint64_t gin[NG];
	uint64_t gout[NG];
	uint64_t kin[8];
	uint64_t kout[8];
	uint64_t saved_rbp;
	uint32_t mxcsr_in, mxcsr_out, mxcsr_default;
	uint16_t fcw_in, fcw_out, fcw_default;
	volatile int flag;
} __attribute__((aligned(64)));

static struct regs R;

static void on_usr1(int sig)
{
	(void)sig;
	R.flag = 1;
}

/* The operands every variant uses: offsets into struct regs. */
#define OFFSETS                                                        \
	[vin] "i"(offsetof(struct regs, vin)),                         \
		[vout] "i"(offsetof(struct regs, vout)),               \
		[xin] "i"(offsetof(struct regs, x87in)),               \
		[xout] "i"(offsetof(struct regs, x87out)),             \
		[gin] "i"(offsetof(struct regs, gin)),                 \
		[gout] "i"(offsetof(struct regs, gout)),               \
		[kin] "i"(offsetof(struct regs, kin)),                 \
		[kout] "i"(offsetof(struct regs, kout)),               \
		[rbp] "i"(offsetof(struct regs, saved_rbp)),           \
		[mxin] "i"(offsetof(struct regs, mxcsr_in)),           \
		[mxout] "i"(offsetof(struct regs, mxcsr_out)),         \
		[mxdef] "i"(offsetof(struct regs, mxcsr_default)),     \
		[fcwin] "i"(offsetof(struct regs, fcw_in)),            \
		[fcwout] "i"(offsetof(struct regs, fcw_out)),          \
		[fcwdef] "i"(offsetof(struct regs, fcw_default)),      \
		[flag] "i"(offsetof(struct regs, flag))

#define GP_CLOBBERS                                                     \
	"rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", \
		"r13", "r14", "r15", "memory", "cc"
#define X87_CLOBBERS \
	"st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)"
#define XMM_CLOBBERS                                                    \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",  \
		"xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",     \
		"xmm14", "xmm15"
#define XMM_HI_CLOBBERS                                                 \
	"xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",  \
		"xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",   \
		"xmm29", "xmm30", "xmm31"
#define K_CLOBBERS "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"

#define G(i) "%c[gin]+8*" #i "(%%rax)"
#define GO(i) "%c[gout]+8*" #i "(%%rax)"

/* rbp is saved in the struct, not pushed: the red zone may be in use. */
#define LOAD_GP                                 \
	"mov %%rbp, %c[rbp](%%rax)\n\t"         \
	"mov " G(0) ", %%rbx\n\t"               \
	"mov " G(1) ", %%rcx\n\t"               \
	"mov " G(2) ", %%rdx\n\t"               \
	"mov " G(3) ", %%rsi\n\t"               \
	"mov " G(4) ", %%rdi\n\t"               \
	"mov " G(5) ", %%rbp\n\t"               \
	"mov " G(6) ", %%r8\n\t"                \
	"mov " G(7) ", %%r9\n\t"                \
	"mov " G(8) ", %%r10\n\t"               \
	"mov " G(9) ", %%r11\n\t"               \
	"mov " G(10) ", %%r12\n\t"              \
	"mov " G(11) ", %%r13\n\t"              \
	"mov " G(12) ", %%r14\n\t"              \
	"mov " G(13) ", %%r15\n\t"

#define STORE_GP                                \
	"mov %%rbx, " GO(0) "\n\t"              \
	"mov %%rcx, " GO(1) "\n\t"              \
	"mov %%rdx, " GO(2) "\n\t"              \
	"mov %%rsi, " GO(3) "\n\t"              \
	"mov %%rdi, " GO(4) "\n\t"              \
	"mov %%rbp, " GO(5) "\n\t"              \
	"mov %%r8, " GO(6) "\n\t"               \
	"mov %%r9, " GO(7) "\n\t"               \
	"mov %%r10, " GO(8) "\n\t"              \
	"mov %%r11, " GO(9) "\n\t"              \
	"mov %%r12, " GO(10) "\n\t"             \
	"mov %%r13, " GO(11) "\n\t"             \
	"mov %%r14, " GO(12) "\n\t"             \
	"mov %%r15, " GO(13) "\n\t"             \
	"mov %%rax, " GO(14) "\n\t"             \
	"mov %c[rbp](%%rax), %%rbp\n\t"

#define X(i) "%c[xin]+16*" #i "(%%rax)"
#define XO(i) "%c[xout]+16*" #i "(%%rax)"

/* st(0) ends up holding x87in[0]: push in reverse order. */
#define LOAD_X87                                                           \
	"fldcw %c[fcwin](%%rax)\n\t"                                       \
	"fldt " X(7) "\n\tfldt " X(6) "\n\tfldt " X(5) "\n\tfldt " X(4) \
	"\n\tfldt " X(3) "\n\tfldt " X(2) "\n\tfldt " X(1)                \
	"\n\tfldt " X(0) "\n\t"                                            \
	"ldmxcsr %c[mxin](%%rax)\n\t"

#define STORE_X87                                                           \
	"stmxcsr %c[mxout](%%rax)\n\t"                                      \
	"fnstcw %c[fcwout](%%rax)\n\t"                                      \
	"fstpt " XO(0) "\n\tfstpt " XO(1) "\n\tfstpt " XO(2) "\n\tfstpt " \
		XO(3) "\n\tfstpt " XO(4) "\n\tfstpt " XO(5) "\n\tfstpt "   \
		XO(6) "\n\tfstpt " XO(7) "\n\t"                             \
	"fldcw %c[fcwdef](%%rax)\n\t"                                       \
	"ldmxcsr %c[mxdef](%%rax)\n\t"

#define SPIN                              \
	"1:\n\t"                          \
	"pause\n\t"                       \
	"cmpl $0, %c[flag](%%rax)\n\t"    \
	"je 1b\n\t"

#define V(ins, w, n) ins " %c[vin]+64*" #n "(%%rax), %%" w #n "\n\t"
#define VO(ins, w, n) ins " %%" w #n ", %c[vout]+64*" #n "(%%rax)\n\t"
#define V16(M, ins, w)                                                     \
	M(ins, w, 0) M(ins, w, 1) M(ins, w, 2) M(ins, w, 3) M(ins, w, 4)   \
	M(ins, w, 5) M(ins, w, 6) M(ins, w, 7) M(ins, w, 8) M(ins, w, 9)   \
	M(ins, w, 10) M(ins, w, 11) M(ins, w, 12) M(ins, w, 13)            \
	M(ins, w, 14) M(ins, w, 15)
#define V16HI(M, ins, w)                                                     \
	M(ins, w, 16) M(ins, w, 17) M(ins, w, 18) M(ins, w, 19) M(ins, w, 20) \
	M(ins, w, 21) M(ins, w, 22) M(ins, w, 23) M(ins, w, 24)              \
	M(ins, w, 25) M(ins, w, 26) M(ins, w, 27) M(ins, w, 28)              \
	M(ins, w, 29) M(ins, w, 30) M(ins, w, 31)
#define K(ins, n) ins " %c[kin]+8*" #n "(%%rax), %%k" #n "\n\t"
#define KO(ins, n) ins " %%k" #n ", %c[kout]+8*" #n "(%%rax)\n\t"
#define K8(M, ins)                                                    \
	M(ins, 0) M(ins, 1) M(ins, 2) M(ins, 3) M(ins, 4) M(ins, 5) \
	M(ins, 6) M(ins, 7)

static void spin_sse(struct regs *r)
{
	asm volatile(LOAD_X87 V16(V, "movdqu", "xmm") LOAD_GP SPIN STORE_GP
			     V16(VO, "movdqu", "xmm") STORE_X87
		     : "+a"(r)
		     : OFFSETS
		     : GP_CLOBBERS, X87_CLOBBERS, XMM_CLOBBERS);
}

__attribute__((target("avx"))) static void spin_avx(struct regs *r)
{
	asm volatile(LOAD_X87 V16(V, "vmovdqu", "ymm") LOAD_GP SPIN STORE_GP
			     V16(VO, "vmovdqu", "ymm") STORE_X87 "vzeroupper\n\t"
		     : "+a"(r)
		     : OFFSETS
		     : GP_CLOBBERS, X87_CLOBBERS, XMM_CLOBBERS);
}

__attribute__((target("avx512f,avx512bw"))) static void
spin_avx512(struct regs *r)
{
	asm volatile(LOAD_X87 V16(V, "vmovdqu64", "zmm")
			     V16HI(V, "vmovdqu64", "zmm") K8(K, "kmovq")
				     LOAD_GP SPIN STORE_GP
			     V16(VO, "vmovdqu64", "zmm")
				     V16HI(VO, "vmovdqu64", "zmm")
					     K8(KO, "kmovq") STORE_X87
			     "vzeroupper\n\t"
		     : "+a"(r)
		     : OFFSETS
		     : GP_CLOBBERS, X87_CLOBBERS, XMM_CLOBBERS, XMM_HI_CLOBBERS,
		       K_CLOBBERS);
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	int nvec, vbytes, nk = 0;
	const char *kind;
	long double x87vals[8] = {
		1.0L / 3, 3.14159265358979323846264338327950288L, -2.5e300L,
		1e-4000L, 12345678901234567890.0L, -0.0L, 2.0L / 7, 1e4000L,
	};

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		fatal("sigaction(SIGUSR1): %s", strerror(errno));
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512bw")) {
		nvec = 32, vbytes = 64, nk = 8, kind = "zmm";
	} else if (__builtin_cpu_supports("avx")) {
		nvec = 16, vbytes = 32, kind = "ymm";
		note("no AVX-512: checking ymm0-15 only");
	} else {
		nvec = 16, vbytes = 16, kind = "xmm";
		note("no AVX: checking xmm0-15 only");
	}
	for (int i = 0; i < NG; i++)
		R.gin[i] = mix64(0x6700 + i);
	fill_pattern(R.vin, sizeof(R.vin), 0x7600);
	for (int i = 0; i < 8; i++) {
		R.kin[i] = mix64(0x4b00 + i);
		memcpy(R.x87in[i], &x87vals[i], 10);
	}
	R.mxcsr_in = 0xffc0; /* all masked, round toward zero, FTZ, DAZ */
	R.mxcsr_default = 0x1f80;
	R.fcw_in = 0x0a7f; /* double precision, round up */
	R.fcw_default = 0x037f;
	memset(R.vout, 0xee, sizeof(R.vout));
	memset(R.x87out, 0xee, sizeof(R.x87out));

	ready();
	if (nk)
		spin_avx512(&R);
	else if (vbytes == 32)
		spin_avx(&R);
	else
		spin_sse(&R);

	for (int i = 0; i < NG - 1; i++)
		CHECK(R.gout[i] == R.gin[i], "%s = %#llx, expected %#llx",
		      gnames[i], (unsigned long long)R.gout[i],
		      (unsigned long long)R.gin[i]);
	CHECK(R.gout[NG - 1] == (uint64_t)&R, "rax = %#llx, expected %p",
	      (unsigned long long)R.gout[NG - 1], (void *)&R);
	for (int i = 0; i < nvec; i++)
		for (int b = 0; b < vbytes; b++)
			if (R.vout[i][b] != R.vin[i][b]) {
				fail("%s%d byte %d = %#x, expected %#x", kind, i,
				     b, R.vout[i][b], R.vin[i][b]);
				break;
			}
	for (int i = 0; i < nk; i++)
		CHECK(R.kout[i] == R.kin[i], "k%d = %#llx, expected %#llx", i,
		      (unsigned long long)R.kout[i],
		      (unsigned long long)R.kin[i]);
	for (int i = 0; i < 8; i++)
		CHECK(memcmp(R.x87out[i], R.x87in[i], 10) == 0,
		      "st(%d) differs", i);
	CHECK(R.mxcsr_out == R.mxcsr_in, "mxcsr = %#x, expected %#x",
	      R.mxcsr_out, R.mxcsr_in);
	CHECK(R.fcw_out == R.fcw_in, "x87 control word = %#x, expected %#x",
	      R.fcw_out, R.fcw_in);
	return finish();
}
