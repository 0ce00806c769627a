/*
 * power: the one piece of the power functions that C cannot express.
 *
 * arch_call_on_stack runs a C function on another stack: power and EFI
 * runtime calls run on a stack the kernel owns and sized for the firmware,
 * whatever stack the caller (the shell, a boot path) happens to be on.
 * (The triple-fault reset is shared with stage 1: include/canopy/x86/reset.h.)
 */
    .text

/* void arch_call_on_stack(void (*fn)(void *), void *arg, void *stack_top) */
    .globl arch_call_on_stack
    .type arch_call_on_stack, @function
arch_call_on_stack:
    pushq %rbp
    movq %rsp, %rbp
    movq %rdx, %rsp
    andq $-16, %rsp     /* the ABI's alignment at the call below */
    movq %rdi, %rax
    movq %rsi, %rdi
    cld
    call *%rax
    movq %rbp, %rsp     /* back on the caller's stack */
    popq %rbp
    ret
    .size arch_call_on_stack, . - arch_call_on_stack

    .section .note.GNU-stack, "", @progbits
