/*
 * power: stack switching for firmware calls and the triple-fault reset
 * (arch/x86_64/power.S).
 */
#ifndef ARCH_POWER_H
#define ARCH_POWER_H

/*
 * Calls fn(arg) on the stack whose top (highest address, exclusive) is
 * stack_top, then returns on the caller's stack.
 * => the stack is mapped writable in the address space fn runs in.
 */
void arch_call_on_stack(void (*fn)(void *), void *arg, void *stack_top);

/* Loads an empty IDT and raises an exception: the CPU shuts down (a reset on a PC). */
_Noreturn void arch_triple_fault(void);

#endif
