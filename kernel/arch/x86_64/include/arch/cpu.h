/*
 * cpu: the privileged x86-64 instructions the kernel uses. The inline
 * helpers (port I/O, cpuid, rdtsc, control registers, MSRs, invlpg,
 * cli/sti/pause) are stage 1's too and live in include/canopy/x86/cpu.h;
 * this header passes them on and adds the kernel's out-of-line ones. Only
 * kernel/arch/x86_64/ and code that includes this header on purpose (drivers
 * doing port I/O) execute privileged instructions; the freestanding
 * libraries never do.
 */
#ifndef ARCH_CPU_H
#define ARCH_CPU_H

#include <stdint.h>

#include <canopy/x86/cpu.h>

/* Stops this CPU for good: interrupts off, hlt forever (an NMI only resumes the loop). */
_Noreturn void arch_halt_forever(void);

/*
 * Ends QEMU through its isa-debug-exit device (iobase 0xf4): QEMU exits with
 * status (code << 1) | 1. On a machine without that device the write is
 * ignored and the call returns.
 */
void arch_qemu_exit(uint32_t code);

#endif
