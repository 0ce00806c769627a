/*
 * trap: dispatch of every vector, and the fatal-exception report.
 *
 * isr.S calls arch_trap_dispatch() with the saved registers. A vector with a
 * registered handler runs it; an exception without one, or an interrupt
 * nobody claimed, is reported. Exceptions are fatal: the report goes to
 * every console, then the CPU halts. The report itself must not fault; if it
 * does (a broken framebuffer, say), the nested trap prints one line on
 * whatever console still works and halts.
 */
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <arch/trap.h>
#include <kernel/console.h>

static trap_handler handlers[256];
static volatile int fatal_depth;
static uint64_t unexpected_count;

static const struct {
    const char *mnemonic;
    const char *name;
} exceptions[TRAP_EXCEPTION_COUNT] = {
    {"#DE", "divide error"},
    {"#DB", "debug"},
    {"NMI", "non-maskable interrupt"},
    {"#BP", "breakpoint"},
    {"#OF", "overflow"},
    {"#BR", "bound range exceeded"},
    {"#UD", "invalid opcode"},
    {"#NM", "device not available"},
    {"#DF", "double fault"},
    {"#09", "coprocessor segment overrun"},
    {"#TS", "invalid TSS"},
    {"#NP", "segment not present"},
    {"#SS", "stack-segment fault"},
    {"#GP", "general protection fault"},
    {"#PF", "page fault"},
    {"#15", "reserved"},
    {"#MF", "x87 floating-point error"},
    {"#AC", "alignment check"},
    {"#MC", "machine check"},
    {"#XM", "SIMD floating-point exception"},
    {"#VE", "virtualization exception"},
    {"#CP", "control protection exception"},
    {"#22", "reserved"},
    {"#23", "reserved"},
    {"#24", "reserved"},
    {"#25", "reserved"},
    {"#26", "reserved"},
    {"#27", "reserved"},
    {"#HV", "hypervisor injection exception"},
    {"#VC", "VMM communication exception"},
    {"#SX", "security exception"},
    {"#31", "reserved"},
};

const char *arch_exception_mnemonic(unsigned v)
{
    return v < TRAP_EXCEPTION_COUNT ? exceptions[v].mnemonic : "?";
}

const char *arch_exception_name(unsigned v)
{
    return v < TRAP_EXCEPTION_COUNT ? exceptions[v].name : "?";
}

void arch_trap_set_handler(uint8_t vector, trap_handler handler)
{
    handlers[vector] = handler;
}

_Noreturn void arch_trap_fatal(const struct trap_frame *f, const char *detail)
{
    arch_cli();
    if (++fatal_depth > 1) {
        /* Faulted while reporting: the framebuffer is the likely culprit. */
        console_disable_fb();
        if (fatal_depth == 2)
            kprintf("\n*** nested %s (vector %llu) at RIP 0x%016llx while reporting a trap; "
                    "halted\n",
                    arch_exception_mnemonic((unsigned)f->vector), (unsigned long long)f->vector,
                    (unsigned long long)f->rip);
        arch_halt_forever();
    }

    uint64_t cr2 = arch_read_cr2();
    kprintf("\n*** CPU exception %llu: %s %s, error code 0x%llx\n", (unsigned long long)f->vector,
            arch_exception_mnemonic((unsigned)f->vector), arch_exception_name((unsigned)f->vector),
            (unsigned long long)f->error_code);
    kprintf("RIP %016llx  CS %04llx  RFLAGS %016llx\n", (unsigned long long)f->rip,
            (unsigned long long)f->cs, (unsigned long long)f->rflags);
    kprintf("RSP %016llx  SS %04llx  CR2 %016llx  CR3 %016llx\n", (unsigned long long)f->rsp,
            (unsigned long long)f->ss, (unsigned long long)cr2,
            (unsigned long long)arch_read_cr3());
    kprintf("RAX %016llx  RBX %016llx  RCX %016llx\n", (unsigned long long)f->rax,
            (unsigned long long)f->rbx, (unsigned long long)f->rcx);
    kprintf("RDX %016llx  RSI %016llx  RDI %016llx\n", (unsigned long long)f->rdx,
            (unsigned long long)f->rsi, (unsigned long long)f->rdi);
    kprintf("RBP %016llx  R8  %016llx  R9  %016llx\n", (unsigned long long)f->rbp,
            (unsigned long long)f->r8, (unsigned long long)f->r9);
    kprintf("R10 %016llx  R11 %016llx  R12 %016llx\n", (unsigned long long)f->r10,
            (unsigned long long)f->r11, (unsigned long long)f->r12);
    kprintf("R13 %016llx  R14 %016llx  R15 %016llx\n", (unsigned long long)f->r13,
            (unsigned long long)f->r14, (unsigned long long)f->r15);
    kprintf("CR0 %016llx  CR4 %016llx  EFER %016llx\n", (unsigned long long)arch_read_cr0(),
            (unsigned long long)arch_read_cr4(), (unsigned long long)arch_rdmsr(ARCH_MSR_EFER));
    if (detail != NULL)
        kprintf("%s", detail);
    kprintf("*** system halted\n");
    arch_halt_forever();
}

void arch_trap_dispatch(struct trap_frame *f)
{
    uint8_t vector = (uint8_t)f->vector;
    if (handlers[vector] != NULL) {
        handlers[vector](f);
        return;
    }
    if (vector < TRAP_EXCEPTION_COUNT)
        arch_trap_fatal(f, NULL);
    /*
     * An interrupt nobody claimed: firmware left a source enabled, or a
     * spurious one. Say so a few times, then keep quiet and carry on.
     */
    if (unexpected_count++ < 4)
        kprintf("trap: unexpected interrupt, vector %u, ignored\n", vector);
}
