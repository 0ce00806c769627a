/*
 * gdt: the kernel's Global Descriptor Table and Task State Segment.
 *
 * Stage 1 jumps to the kernel on the firmware's GDT, which lives in
 * boot-services memory that the HHDM does not promise to keep and that the
 * kernel reclaims. So the very first thing the kernel does is load this one:
 *
 *   0x00 null
 *   0x08 kernel code, 64-bit (L=1), DPL 0
 *   0x10 kernel data, DPL 0
 *   0x18 TSS (a 16-byte system descriptor, two slots)
 *
 * The TSS only carries the interrupt stack table; the stacks are in .bss.
 * Called by kernel_main once, interrupts off.
 */
#include <stddef.h>
#include <stdint.h>

#include <arch/gdt.h>
#include <canopy/x86/desc.h>

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss) == 104, "the 64-bit TSS is 104 bytes");
_Static_assert(offsetof(struct tss, ist) == 36, "IST1 lives at offset 0x24");

#define IST_STACK_SIZE (16 * 1024)
#define IST_COUNT      4

static struct tss tss;
static uint64_t gdt[5] __attribute__((aligned(16)));
static uint8_t ist_stacks[IST_COUNT][IST_STACK_SIZE] __attribute__((aligned(16)));

/* Access byte 0x9a: present, DPL 0, code, readable; flags 0xa: L=1, G=1. */
#define GDT_CODE64 0x00af9a000000ffffull
/* Access byte 0x92: present, DPL 0, data, writable; flags 0xc: D/B=1, G=1. */
#define GDT_DATA 0x00cf92000000ffffull

static void gdt_set_tss(uint64_t *slot, uint64_t base, uint32_t limit)
{
    /* Access byte 0x89: present, DPL 0, type 9 (available 64-bit TSS). */
    slot[0] = (limit & 0xffffull) | ((base & 0xffffffull) << 16) | (0x89ull << 40) |
              ((uint64_t)((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xffull) << 56);
    slot[1] = base >> 32;
}

void arch_ist_range(unsigned ist, uint64_t *low, uint64_t *high)
{
    if (ist < 1 || ist > IST_COUNT) {
        *low = *high = 0;
        return;
    }
    *low = (uint64_t)(uintptr_t)ist_stacks[ist - 1];
    *high = *low + IST_STACK_SIZE;
}

void arch_gdt_init(void)
{
    for (unsigned i = 0; i < IST_COUNT; i++)
        tss.ist[i] = (uint64_t)(uintptr_t)(ist_stacks[i] + IST_STACK_SIZE);
    tss.iomap_base = sizeof(tss); /* no I/O permission bitmap */

    gdt[0] = 0;
    gdt[1] = GDT_CODE64;
    gdt[2] = GDT_DATA;
    gdt_set_tss(&gdt[3], (uint64_t)(uintptr_t)&tss, sizeof(tss) - 1);

    struct arch_pseudo_desc ptr = {.limit = sizeof(gdt) - 1, .base = (uint64_t)(uintptr_t)gdt};
    /*
     * CS can only be reloaded by a far transfer: push the selector and the
     * return address and lretq to the next instruction.
     */
    __asm__ volatile("lgdt %0\n\t"
                     "pushq %1\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:\n\t"
                     "movw %w2, %%ax\n\t"
                     "movw %%ax, %%ds\n\t"
                     "movw %%ax, %%es\n\t"
                     "movw %%ax, %%ss\n\t"
                     "movw %%ax, %%fs\n\t"
                     "movw %%ax, %%gs\n\t"
                     "ltr %w3\n\t"
                     :
                     : "m"(ptr), "i"(GDT_KERNEL_CODE), "r"((uint16_t)GDT_KERNEL_DATA),
                       "r"((uint16_t)GDT_TSS)
                     : "rax", "memory");
}
