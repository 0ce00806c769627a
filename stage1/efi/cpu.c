/*
 * cpu: CPU identification, the TSC, bounded delays
 * and the move onto stage 1's own stack. Works the same before and after
 * ExitBootServices.
 *
 * Every loop here ends on a count, whatever the hardware answers.
 */
#include <canopy/x86/cpu.h>

#include "fw.h"

/*
 * The stack from ExitBootServices to the kernel: in the image's .bss, which
 * every firmware's map types as loader code, so nothing hands it out before
 * the kernel runs on its own stack. after_exit needs a few KiB; a runtime
 * service called from a fatal error runs on it too.
 */
#define OWN_STACK_BYTES (64 * 1024)
static uint8_t own_stack[OWN_STACK_BYTES] __attribute__((aligned(16)));

void cpu_identify(struct cpu_info *out)
{
    *out = (struct cpu_info){.phys_bits = 36};
    out->pat = (arch_cpuid(1, 0).edx >> 16) & 1;
    uint32_t max_ext = arch_cpuid(0x80000000u, 0).eax;
    if (max_ext >= 0x80000001u) {
        struct arch_cpuid_regs r = arch_cpuid(0x80000001u, 0);
        out->nx = (r.edx >> 20) & 1;
        out->pdpe1gb = (r.edx >> 26) & 1;
    }
    if (max_ext >= 0x80000008u)
        out->phys_bits = arch_cpuid(0x80000008u, 0).eax & 0xff;
    out->la57 = (arch_read_cr4() & ARCH_CR4_LA57) != 0;
}

void cpu_set_pat(uint64_t pat)
{
    arch_wrmsr(ARCH_MSR_PAT, pat);
}

uint64_t cpu_tsc(void)
{
    return arch_rdtsc();
}

void cpu_delay_us(uint64_t tsc_hz, uint64_t us)
{
    if (tsc_hz == 0) {
        /* No clock: a write to the POST port takes about a microsecond on ISA timing. */
        for (uint64_t i = 0; i < us; i++)
            arch_io_wait();
        return;
    }
    uint64_t start = cpu_tsc();
    uint64_t ticks = tsc_hz / 1000000 * us;
    /*
     * A TSC that stops (broken firmware or hypervisor) must not hang the
     * caller: no loop turn takes less than a nanosecond, so 1000 turns per
     * microsecond end the wait even then.
     */
    for (uint64_t turns = 0; cpu_tsc() - start < ticks && turns < us * 1000; turns++)
        arch_pause();
}

_Noreturn void cpu_run_on_own_stack(void (*fn)(const struct fw_exit *), const struct fw_exit *ex)
{
    uint64_t top = (uint64_t)(uintptr_t)(own_stack + OWN_STACK_BYTES);
    /* MS x64: rcx holds the argument, 32 bytes of shadow space sit above the return address. */
    __asm__ volatile("mov %0, %%rsp\n\t"
                     "sub $32, %%rsp\n\t"
                     "call *%1\n\t"
                     "ud2"
                     :
                     : "r"(top), "r"(fn), "c"(ex)
                     : "memory");
    __builtin_unreachable();
}
