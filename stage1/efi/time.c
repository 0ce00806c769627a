/*
 * time: the TSC's rate, and waits through boot services. The rate is found
 * once while boot services live and kept for the waits after them (reset.c).
 *
 * Called by main.c, entry.c and fault.c.
 */
#include <canopy/x86/cpu.h>

#include "fw_efi.h"

/* The TSC rate once fw_tsc_hz has found it, for the waits after ExitBootServices. */
static uint64_t tsc_hz_known;

void fw_stall_us(uint64_t us)
{
    fw_bs->Stall(us);
}

uint64_t fw_tsc_hz(void)
{
    if (tsc_hz_known)
        return tsc_hz_known;
    uint32_t max_leaf = arch_cpuid(0, 0).eax;
    uint64_t hz = 0;
    if (max_leaf >= 0x15) {
        /* TSC = crystal * EBX / EAX, when the CPU names its crystal. */
        struct arch_cpuid_regs r = arch_cpuid(0x15, 0);
        if (r.eax && r.ebx && r.ecx)
            hz = (uint64_t)r.ecx * r.ebx / r.eax;
    }
    if (!hz && max_leaf >= 0x16)
        hz = (uint64_t)(arch_cpuid(0x16, 0).eax & 0xffff) * 1000000;
    if (!hz) {
        /*
         * Measure: Stall against the TSC, five windows of 4 ms, the fewest
         * cycles. A Stall can only end late (a virtual CPU descheduled on a
         * loaded host, an SMI), never early, so each window can only
         * overstate the rate; one 20 ms window on a loaded host made it
         * several times too high, and every wait after it as long.
         */
        uint64_t fewest = UINT64_MAX;
        for (int i = 0; i < 5; i++) {
            uint64_t t0 = arch_rdtsc();
            fw_bs->Stall(4000);
            uint64_t cycles = arch_rdtsc() - t0;
            if (cycles < fewest)
                fewest = cycles;
        }
        hz = fewest * 250;
    }
    tsc_hz_known = hz;
    return hz;
}

/* What fw_tsc_hz found, or 0 if it has not run: callable after ExitBootServices. */
uint64_t fw_tsc_hz_known(void)
{
    return tsc_hz_known;
}
