/*
 * trampoline: the switch from the firmware's page tables to the kernel's.
 *
 * It sits alone at the start of a page-aligned section and is far shorter
 * than a page, so the page that executes `mov %rcx, %cr3` is the one page
 * the new tables identity-map (R+X). Everything it needs is in registers
 * before CR3 changes; it never touches the old stack afterwards.
 *
 *   void trampoline_enter(uint64_t cr3,         rcx
 *                         uint64_t stack_top,   rdx
 *                         uint64_t entry,       r8
 *                         uint64_t bootinfo_va, r9
 *                         uint64_t set_nxe);    [rsp + 40] (MS x64: after the
 *                                               return address and 32 bytes of
 *                                               shadow space)
 *
 * Called from C with the MS x64 ABI; enters the kernel with the SysV one:
 * %rdi = boot info, %rsp = stack_top - 8 holding a zero return address
 * (so %rsp + 8 is 16-byte aligned, as after a call), %rbp = 0.
 */
    .section .text$trampoline, "xr"
    .p2align 12
    .globl trampoline_start
    .globl trampoline_enter
    .globl trampoline_end
trampoline_start:
trampoline_enter:
    cli
    mov     40(%rsp), %rax
    test    %rax, %rax
    jz      1f
    /* EFER.NXE before any NX bit can be walked; rdmsr/wrmsr use ecx, edx. */
    mov     %rcx, %r10
    mov     %rdx, %r11
    mov     $0xc0000080, %ecx
    rdmsr
    or      $0x800, %eax
    wrmsr
    mov     %r10, %rcx
    mov     %r11, %rdx
1:
    mov     %rcx, %cr3
    /* CR0.WP: read-only pages stay read-only for the kernel too. */
    mov     %cr0, %rax
    or      $0x10000, %rax
    mov     %rax, %cr0
    mov     %rdx, %rsp
    xor     %ebp, %ebp
    mov     %r9, %rdi
    pushq   $0
    jmp     *%r8
trampoline_end:
