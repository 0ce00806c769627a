/*
 * x86/reset: the ways a PC can be reset without the firmware, which stage 1
 * and the kernel fall back on when UEFI ResetSystem (and, in the kernel, the
 * ACPI reset register) did not take the machine down. Each caller decides the
 * order and how long to wait between them.
 *
 *   8042 pulse    the keyboard controller pulses the CPU's reset line
 *   port 0xcf9    the chipset's reset control register (Intel PCH, QEMU q35)
 *   triple fault  with an empty IDT no exception can be delivered, so the CPU
 *                 shuts down, which the chipset turns into a reset
 *
 * Header-only and privileged: included only by stage1/efi/ and
 * kernel/arch/x86_64/ (arch/power.h).
 */
#ifndef CANOPY_X86_RESET_H
#define CANOPY_X86_RESET_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/x86/cpu.h>
#include <canopy/x86/i8042.h>

#define I8042_CMD_PULSE_RESET 0xfeu /* pulse output line 0: the CPU's reset */
#define RST_CNT               0xcf9
#define RST_CNT_FULL_RESET    0x0e /* full reset, reset the CPU, system reset */

/* Whether the 8042 still holds a byte written to it (a command now would be lost). */
static inline bool arch_i8042_input_full(void)
{
    return (arch_inb(I8042_STATUS) & I8042_STATUS_INPUT_FULL) != 0;
}

static inline void arch_i8042_pulse_reset(void)
{
    arch_outb(I8042_STATUS, I8042_CMD_PULSE_RESET);
}

static inline void arch_rst_cnt_reset(void)
{
    arch_outb(RST_CNT, RST_CNT_FULL_RESET);
}

/* Loads an empty IDT and raises a breakpoint: the CPU shuts down (a reset on a PC). */
static inline _Noreturn void arch_triple_fault(void)
{
    /* Limit 0, base 0: no vector is deliverable, nor the #GP and #DF that follow. */
    const uint64_t empty_idtr[2] = {0, 0};
    __asm__ volatile("cli; lidt %0; int3" : : "m"(empty_idtr) : "memory");
    for (;;)
        __asm__ volatile("hlt");
}

#endif
