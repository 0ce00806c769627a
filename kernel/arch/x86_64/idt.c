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
#include <canopy/x86/desc.h>

#define ISR_STUB_SIZE 16 /* see isr.S */

extern const char arch_isr_stubs[];

static struct arch_idt_gate idt[256] __attribute__((aligned(16)));

void arch_idt_init(void)
{
    uint64_t stubs = (uint64_t)(uintptr_t)arch_isr_stubs;
    for (unsigned v = 0; v < 256; v++)
        idt[v] = arch_idt_gate(stubs + (uint64_t)v * ISR_STUB_SIZE, GDT_KERNEL_CODE, 0);
    idt[TRAP_DOUBLE_FAULT].ist = IST_DOUBLE_FAULT;
    idt[TRAP_PAGE_FAULT].ist = IST_PAGE_FAULT;
    idt[TRAP_NMI].ist = IST_NMI;
    idt[TRAP_MACHINE_CHECK].ist = IST_MACHINE_CHECK;

    struct arch_pseudo_desc ptr = {.limit = sizeof(idt) - 1, .base = (uint64_t)(uintptr_t)idt};
    arch_lidt(&ptr);
}
