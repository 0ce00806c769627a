/*
 * entry: the kernel's ELF entry point.
 *
 * Stage 1 jumps here with %rdi = the boot info's HHDM address (SysV ABI),
 * interrupts off, on its page tables and on the 64 KiB boot stack in the
 * dynamic area. The boot stack is PMM-owned (CANOPY_OWNER_STACK) and stays
 * the kernel's stack; nothing here needs memory of its own.
 */
    .section .text.entry, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    xorl %ebp, %ebp     /* the end of the frame-pointer chain for backtraces */
    andq $-16, %rsp     /* the ABI's alignment at a call, whatever stage 1 left */
    call kernel_main    /* %rdi is still the boot info */
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
