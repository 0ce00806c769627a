/*
 * idt: the Interrupt Descriptor Table.
 *
 * All 256 gates are 64-bit interrupt gates (IF cleared on entry) to the
 * stubs in isr.S, DPL 0. Four exceptions switch to an IST stack because the
 * current stack cannot be trusted when they arrive: #DF (anything may have
 * gone wrong), #PF (a boot-stack overflow faults on the guard page, and
 * pushing the frame onto that same stack would turn it into a #DF), NMI and
 * #MC (they can arrive anywhere). A page fault inside the page-fault handler
 * restarts on the same IST stack; the handler therefore never faults on
 * purpose.
 *
 * Called by kernel_main once, right after arch_gdt_init().
 */
#include <stdint.h>

#include <arch/gdt.h>
#include <arch/trap.h>

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct idt_gate) == 16, "64-bit IDT gates are 16 bytes");

struct idt_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

#define IDT_INTERRUPT_GATE 0x8e /* present, DPL 0, type 0xe */
#define ISR_STUB_SIZE      16   /* see isr.S */

extern const char arch_isr_stubs[];

static struct idt_gate idt[256] __attribute__((aligned(16)));

static void idt_set(unsigned vector, uint64_t handler, uint8_t ist)
{
    idt[vector] = (struct idt_gate){
        .offset_low = (uint16_t)handler,
        .selector = GDT_KERNEL_CODE,
        .ist = ist,
        .type_attr = IDT_INTERRUPT_GATE,
        .offset_mid = (uint16_t)(handler >> 16),
        .offset_high = (uint32_t)(handler >> 32),
    };
}

void arch_idt_init(void)
{
    uint64_t stubs = (uint64_t)(uintptr_t)arch_isr_stubs;
    for (unsigned v = 0; v < 256; v++)
        idt_set(v, stubs + (uint64_t)v * ISR_STUB_SIZE, 0);
    idt[TRAP_DOUBLE_FAULT].ist = IST_DOUBLE_FAULT;
    idt[TRAP_PAGE_FAULT].ist = IST_PAGE_FAULT;
    idt[TRAP_NMI].ist = IST_NMI;
    idt[TRAP_MACHINE_CHECK].ist = IST_MACHINE_CHECK;

    struct idt_pointer ptr = {.limit = sizeof(idt) - 1, .base = (uint64_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(ptr) : "memory");
}
