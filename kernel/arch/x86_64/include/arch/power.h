/*
 * power: stack switching for firmware calls (arch/x86_64/power.S) and the
 * resets that need no firmware: the 8042 pulse, port 0xcf9 and the triple
 * fault, shared with stage 1 (include/canopy/x86/reset.h).
 */
#ifndef ARCH_POWER_H
#define ARCH_POWER_H

#include <canopy/x86/reset.h>

/*
 * Calls fn(arg) on the stack whose top (highest address, exclusive) is
 * stack_top, then returns on the caller's stack.
 * => the stack is mapped writable in the address space fn runs in.
 */
void arch_call_on_stack(void (*fn)(void *), void *arg, void *stack_top);

#endif
