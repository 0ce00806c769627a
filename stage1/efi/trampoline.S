/*
 * trampoline: the switch from the firmware's page tables to the kernel's, and
 * the first instructions of stage 1's exception handlers.
 *
 * Everything here sits alone at the start of a page-aligned section and is
 * far shorter than a page, so the page that executes `mov %rcx, %cr3` is the
 * one page the new tables identity-map (R+X), and the exception stubs are
 * mapped at the same address under the firmware's tables and the kernel's.
 * The switch needs only registers once CR3 changes; it never touches the old
 * stack afterwards.
 *
 *   void trampoline_enter(uint64_t cr3,         rcx
 *                         uint64_t stack_top,   rdx
 *                         uint64_t entry,       r8
 *                         uint64_t bootinfo_va, r9
 *                         uint64_t set_nxe,     [rsp + 40] (MS x64: after the
 *                         uint64_t tables_va);  [rsp + 48]  return address and
 *                                                           32 bytes of shadow)
 *
 * Called from C with the MS x64 ABI; enters the kernel with the SysV one:
 * %rdi = boot info, %rsp = stack_top - 8 holding a zero return address
 * (so %rsp + 8 is 16-byte aligned, as after a call), %rbp = 0.
 *
 * The descriptor tables across the switch: tables_va is the identity address
 * of four pseudo-descriptors (efi/fault.c), in pages that both sets of tables
 * map at that address. Right before `mov cr3` it loads the GDT and IDT through
 * their identity addresses (offsets 32 and 48), so an NMI or exception at any
 * instruction of the switch finds both tables mapped; right after it, the same
 * tables through the HHDM (offsets 0 and 16), which the kernel keeps mapped,
 * so a fault in the kernel before its own lidt still reaches the stubs below.
 *
 * The stubs: one per vector 0-31, 16 bytes apart from fault_stubs (efi/fault.c
 * builds the IDT from that), each pushing a zero error code where the CPU
 * pushes none, then the vector. fault_common finds the data block that
 * follows the 4 KiB IDT through SIDT (the IDT's linear address is valid in
 * whichever tables are live), takes vector, error code, RIP and CR2, switches
 * back to the firmware's CR3 and a rescue stack, and calls the C report
 * (MS x64: rcx vector, rdx error code, r8 RIP, r9 CR2, [rsp + 32] the CR3 at
 * the fault). A fault while one is being reported resets the machine through
 * a triple fault: an empty IDT, then ud2.
 */
#define FAULT_FW_CR3     4096 /* offsets in struct fault_page (efi/fault.c) */
#define FAULT_RESCUE_RSP 4104
#define FAULT_HANDLER    4112
#define FAULT_DEPTH      4120

    .section .text$trampoline, "xr"
    .p2align 12
    .globl trampoline_start
    .globl trampoline_enter
    .globl trampoline_end
    .globl fault_stubs
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
    mov     48(%rsp), %rsi
    lgdt    32(%rsi)              /* identity: mapped before and after the switch */
    lidt    48(%rsi)
    mov     %rcx, %cr3
    lgdt    (%rsi)                /* HHDM: mapped as long as the kernel runs */
    lidt    16(%rsi)
    /* CR0.WP: read-only pages stay read-only for the kernel too. */
    mov     %cr0, %rax
    or      $0x10000, %rax
    mov     %rax, %cr0
    mov     %rdx, %rsp
    xor     %ebp, %ebp
    mov     %r9, %rdi
    pushq   $0
    jmp     *%r8

/* An IDT pseudo-descriptor with limit 0: any exception after lidt is a triple fault. */
    .p2align 4
empty_idtr:
    .quad   0, 0

/* Vectors whose exceptions push an error code: 8, 10-14, 17, 21, 29, 30. */
    .p2align 4
fault_stubs:
    .irp    v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .p2align 4
    .if     (\v == 8) || (\v >= 10 && \v <= 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    pushq   $\v
    .else
    pushq   $0
    pushq   $\v
    .endif
    jmp     fault_common
    .endr

fault_common:
    /* Stack: vector, error code, RIP, CS, RFLAGS, RSP, SS. */
    sub     $16, %rsp
    sidt    6(%rsp)               /* limit at 6, base at 8 */
    mov     8(%rsp), %rax         /* the IDT, and the data block after it */
    add     $16, %rsp
    pop     %rcx                  /* vector */
    pop     %rdx                  /* error code */
    mov     (%rsp), %r8           /* RIP */
    mov     %cr2, %r9
    mov     %cr3, %r10
    lock incq FAULT_DEPTH(%rax)
    cmpq    $1, FAULT_DEPTH(%rax)
    jne     2f
    mov     FAULT_FW_CR3(%rax), %r11
    mov     FAULT_RESCUE_RSP(%rax), %rsi
    mov     FAULT_HANDLER(%rax), %rax
    cmp     %r10, %r11
    je      1f
    /* Back to the firmware's tables, which map stage 1, the framebuffer and runtime services. */
    mov     %cr0, %rdi
    btr     $16, %rdi             /* CR0.WP off: some firmware writes its own read-only tables */
    mov     %rdi, %cr0
    mov     %r11, %cr3
1:
    mov     %rsi, %rsp
    sub     $48, %rsp
    mov     %r10, 32(%rsp)
    call    *%rax
2:
    lidt    empty_idtr(%rip)
    ud2
trampoline_end:
