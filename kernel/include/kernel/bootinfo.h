/*
 * bootinfo: the kernel's check of what stage 1 handed over.
 */
#ifndef KERNEL_BOOTINFO_H
#define KERNEL_BOOTINFO_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/bootinfo.h>

/* What the CPU says, to compare with what the boot info claims. */
struct bootinfo_cpu {
    uint64_t cr3_root; /* CR3's table address */
    bool la57;         /* CR4.LA57 */
    bool nxe;          /* EFER.NXE */
};

/*
 * Checks the boot info: magic, version, size, then that its fields are
 * consistent with each other and with the CPU (HHDM base, paging levels,
 * page-table root, segments, stack, counts). Returns NULL if it is usable,
 * else one line saying what is wrong. Pure: touches only *bi.
 */
const char *bootinfo_problem(const struct canopy_bootinfo *bi, const struct bootinfo_cpu *cpu);

/* The physical address of a boot-info pointer (an HHDM address). */
uint64_t bootinfo_phys(const struct canopy_bootinfo *bi);

#endif
