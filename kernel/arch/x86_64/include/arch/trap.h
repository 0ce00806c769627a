/*
 * trap: the IDT and what runs when an exception or interrupt arrives.
 *
 * Every one of the 256 vectors has an assembly stub (isr.S) that saves all
 * general registers into a struct trap_frame and calls arch_trap_dispatch().
 * A vector with a registered handler gets it (and returns with iretq);
 * an exception without one is fatal: its report names the vector, error
 * code, RIP, CR2 and every register on all consoles, then the CPU halts.
 */
#ifndef ARCH_TRAP_H
#define ARCH_TRAP_H

#include <stdbool.h>
#include <stdint.h>

/* What isr.S pushes, lowest address first. The CPU's frame ends it. */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector;
    uint64_t error_code; /* 0 for vectors without one */
    uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct trap_frame) == 22 * 8, "isr.S builds this layout");

#define TRAP_DIVIDE_ERROR    0
#define TRAP_NMI             2
#define TRAP_BREAKPOINT      3
#define TRAP_DOUBLE_FAULT    8
#define TRAP_GP_FAULT        13
#define TRAP_PAGE_FAULT      14
#define TRAP_MACHINE_CHECK   18
#define TRAP_EXCEPTION_COUNT 32

/* Page-fault error code bits. */
#define PF_ERR_PRESENT 0x01u /* the page was present: a protection violation */
#define PF_ERR_WRITE   0x02u
#define PF_ERR_USER    0x04u
#define PF_ERR_RSVD    0x08u /* a reserved bit was set in a paging entry */
#define PF_ERR_FETCH   0x10u /* instruction fetch */

/* A handler for one vector; it may return, and the interrupted code resumes. */
typedef void (*trap_handler)(struct trap_frame *frame);

/*
 * Builds the IDT (every vector to its stub; #DF, #PF, NMI and #MC on IST
 * stacks) and loads it. => after arch_gdt_init(), interrupts off.
 */
void arch_idt_init(void);

/* Installs (or with NULL removes) the handler for a vector. */
void arch_trap_set_handler(uint8_t vector, trap_handler handler);

/* The mnemonic ("#PF") and name ("page fault") of exception vector v, or "?". */
const char *arch_exception_mnemonic(unsigned v);
const char *arch_exception_name(unsigned v);

/*
 * Reports a fatal trap on every console: vector, name, error code, RIP, CR2,
 * CR3 and all registers, then `detail` lines a handler formatted (may be
 * NULL), then halts the CPU. A fault during the report halts quietly after
 * one line on serial.
 */
_Noreturn void arch_trap_fatal(const struct trap_frame *frame, const char *detail);

/* Called by isr.S only. */
void arch_trap_dispatch(struct trap_frame *frame);

#endif
