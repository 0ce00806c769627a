/*
 * power: the two pieces of the power functions that C cannot express.
 *
 * arch_call_on_stack runs a C function on another stack: power and EFI
 * runtime calls run on a stack the kernel owns and sized for the firmware,
 * whatever stack the caller (the shell, a boot path) happens to be on.
 *
 * arch_triple_fault is the reset of last resort: with an empty IDT, the
 * breakpoint exception cannot be delivered, nor can the #GP and #DF that
 * follow, and the CPU shuts down, which the chipset turns into a reset.
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

/* _Noreturn void arch_triple_fault(void) */
    .globl arch_triple_fault
    .type arch_triple_fault, @function
arch_triple_fault:
    cli
    lidt empty_idt(%rip)
    int3
1:  hlt                 /* not reached: the CPU shuts down on the int3 */
    jmp 1b
    .size arch_triple_fault, . - arch_triple_fault

    .section .rodata
    .balign 16
empty_idt:
    .word 0             /* limit 0: no vector is deliverable */
    .quad 0

    .section .note.GNU-stack, "", @progbits
