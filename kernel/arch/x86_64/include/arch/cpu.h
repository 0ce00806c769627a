/*
 * cpu: the privileged x86-64 instructions the kernel uses, as tiny inline
 * helpers. Only kernel/arch/x86_64/ and code that includes this header on
 * purpose (drivers doing port I/O) execute privileged instructions; the
 * freestanding libraries never do.
 */
#ifndef ARCH_CPU_H
#define ARCH_CPU_H

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

/* A write to an unused port: about a microsecond on real hardware. */
static inline void arch_io_wait(void)
{
    arch_outb(0x80, 0);
}

/* ---- control registers, MSRs, TLB -------------------------------------- */

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

#define ARCH_MSR_EFER 0xc0000080u
#define ARCH_EFER_NXE (1ull << 11)
#define ARCH_CR0_WP   (1ull << 16)
#define ARCH_CR4_LA57 (1ull << 12)
#define ARCH_CR3_ADDR 0x000ffffffffff000ull /* the root table's physical address in CR3 */

static inline uint64_t arch_rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void arch_cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c,
                              uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

/* ---- interrupts and halting --------------------------------------------- */

static inline void arch_cli(void)
{
    __asm__ volatile("cli" ::: "memory");
}

static inline void arch_sti(void)
{
    __asm__ volatile("sti" ::: "memory");
}

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

/* Stops this CPU for good: interrupts off, hlt forever (an NMI only resumes the loop). */
_Noreturn void arch_halt_forever(void);

/*
 * Ends QEMU through its isa-debug-exit device (iobase 0xf4): QEMU exits with
 * status (code << 1) | 1. On a machine without that device the write is
 * ignored and the call returns.
 */
void arch_qemu_exit(uint32_t code);

#endif
