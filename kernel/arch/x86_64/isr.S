/*
 * isr: one entry stub per IDT vector, and the common path that saves the
 * registers into a struct trap_frame (arch/trap.h) and calls
 * arch_trap_dispatch(frame).
 *
 * Each stub is 16 bytes long, so stub v is at arch_isr_stubs + 16 * v. The
 * stubs of vectors without a CPU error code push a 0 in its place, so every
 * frame has the same layout. After the stub's two pushes and the 15 register
 * pushes below, 22 quadwords are on the stack; the CPU aligned RSP to 16
 * before its own 5 pushes, so RSP is 16-byte aligned again at the call.
 */
    .section .text
    .globl arch_isr_stubs
    .balign 16
arch_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    /* #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC and #SX push an error code. */
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    cld
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    call arch_trap_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp /* the vector and the error code */
    iretq

    .section .note.GNU-stack, "", @progbits
