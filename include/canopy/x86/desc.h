/*
 * x86/desc: the descriptor-table formats stage 1 and the kernel both build,
 * and the instructions that load and store their registers.
 *
 *   struct arch_pseudo_desc   what LGDT/LIDT read and SGDT/SIDT write:
 *                             a 16-bit limit (size - 1), then a 64-bit base
 *   struct arch_idt_gate      one 16-byte IDT entry of long mode
 *
 * Header-only and privileged: included only by stage1/efi/ and
 * kernel/arch/x86_64/. #pragma pack rather than a packed attribute: gnu-efi's
 * headers can define __attribute__ away (stage1/efi/fw_efi.h undoes that), and
 * the pragma holds whatever was included before; the assertions check it.
 */
#ifndef CANOPY_X86_DESC_H
#define CANOPY_X86_DESC_H

#include <stdint.h>

#pragma pack(push, 1)
struct arch_pseudo_desc {
    uint16_t limit; /* the table's size in bytes, minus one */
    uint64_t base;
};
#pragma pack(pop)
_Static_assert(sizeof(struct arch_pseudo_desc) == 10, "a 64-bit pseudo-descriptor is 10 bytes");

struct arch_idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;  /* 0, or the TSS's interrupt stack table slot 1-7 */
    uint8_t type; /* ARCH_GATE_INTERRUPT */
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
};
_Static_assert(sizeof(struct arch_idt_gate) == 16, "a 64-bit IDT gate is 16 bytes");

#define ARCH_GATE_INTERRUPT 0x8e /* present, DPL 0, 64-bit interrupt gate (IF cleared on entry) */

/* An interrupt gate to `handler` through code segment `selector`, on IST slot `ist` (0: none). */
static inline struct arch_idt_gate arch_idt_gate(uint64_t handler, uint16_t selector, uint8_t ist)
{
    return (struct arch_idt_gate){.offset_lo = (uint16_t)handler,
                                  .selector = selector,
                                  .ist = ist,
                                  .type = ARCH_GATE_INTERRUPT,
                                  .offset_mid = (uint16_t)(handler >> 16),
                                  .offset_hi = (uint32_t)(handler >> 32)};
}

static inline void arch_lidt(const struct arch_pseudo_desc *d)
{
    __asm__ volatile("lidt %0" : : "m"(*d) : "memory");
}

static inline void arch_sidt(struct arch_pseudo_desc *d)
{
    __asm__ volatile("sidt %0" : "=m"(*d));
}

static inline void arch_sgdt(struct arch_pseudo_desc *d)
{
    __asm__ volatile("sgdt %0" : "=m"(*d));
}

#endif
