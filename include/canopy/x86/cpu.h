/*
 * x86/cpu: the privileged and model-specific x86-64 instructions, as tiny
 * inline functions, for stage 1 and the kernel alike.
 *
 * Header-only, and privileged: it is included only by stage1/efi/ and
 * kernel/arch/x86_64/ (whose arch/cpu.h passes it on to the kernel's drivers
 * and core), and by the test firmware layer tests/faultfw/, a UEFI
 * application like stage 1; the freestanding libraries and the host never
 * execute these.
 * Each helper is the bare instruction: no policy, no waiting, no state.
 */
#ifndef CANOPY_X86_CPU_H
#define CANOPY_X86_CPU_H

#include <stdint.h>

/* ---- port I/O ----------------------------------------------------------- */

static inline void arch_outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t arch_inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void arch_outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint16_t arch_inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void arch_outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t arch_inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* The POST diagnostic port: nothing listens, and a write takes about a microsecond. */
#define ARCH_POST_PORT 0x80

/* A write to an unused port: about a microsecond on real hardware. */
static inline void arch_io_wait(void)
{
    arch_outb(ARCH_POST_PORT, 0);
}

/* ---- identification and time -------------------------------------------- */

struct arch_cpuid_regs {
    uint32_t eax, ebx, ecx, edx;
};

/* CPUID leaf `leaf`, subleaf `sub`. */
static inline struct arch_cpuid_regs arch_cpuid(uint32_t leaf, uint32_t sub)
{
    struct arch_cpuid_regs r;
    __asm__ volatile("cpuid"
                     : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                     : "a"(leaf), "c"(sub));
    return r;
}

static inline uint64_t arch_rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* ---- control registers, MSRs, TLB -------------------------------------- */

#define ARCH_MSR_EFER 0xc0000080u
#define ARCH_MSR_PAT  0x277u /* IA32_PAT: the memory type of each PAT index */
#define ARCH_EFER_NXE (1ull << 11)
#define ARCH_CR0_WP   (1ull << 16)
#define ARCH_CR4_LA57 (1ull << 12)
#define ARCH_CR3_ADDR 0x000ffffffffff000ull /* the root table's physical address in CR3 */

static inline uint64_t arch_read_cr0(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}

static inline uint64_t arch_read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline uint64_t arch_read_cr3(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

/* Loads CR3, which also flushes every non-global TLB entry. */
static inline void arch_write_cr3(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

static inline uint64_t arch_read_cr4(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}

static inline void arch_invlpg(uint64_t va)
{
    __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
}

static inline uint64_t arch_rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void arch_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

/* ---- interrupts ----------------------------------------------------------- */

#define ARCH_RFLAGS_IF (1ull << 9)

static inline void arch_cli(void)
{
    __asm__ volatile("cli" ::: "memory");
}

static inline void arch_sti(void)
{
    __asm__ volatile("sti" ::: "memory");
}

/* The spin-wait hint: polling loops call it each turn. */
static inline void arch_pause(void)
{
    __asm__ volatile("pause");
}

static inline uint64_t arch_read_rflags(void)
{
    uint64_t v;
    __asm__ volatile("pushfq; popq %0" : "=r"(v));
    return v;
}

#endif
