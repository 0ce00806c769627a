/*
 * A multiboot (v1) stub that QEMU loads with -kernel, so that QEMU's own
 * monitor can be asked about page tables built by pt.c on the host.
 *
 * The tables are loaded separately at 0x200000 (root first) by QEMU's generic
 * loader device; the word at 0x2ff000 holds the CR4 bits to set (PAE, plus
 * LA57 for 5-level). The stub switches to long mode (compatibility mode is
 * enough: the monitor only needs CR0.PG, CR4.PAE and EFER.LMA) and halts.
 * The hierarchy identity-maps this page so the next fetch after CR0.PG works.
 */
    .code32
    .text
    .globl _start
_start:
    .long 0x1BADB002                        /* magic */
    .long 0x00010000                        /* flags: the address fields below are valid */
    .long -(0x1BADB002 + 0x00010000)        /* checksum */
    .long 0x100000                          /* header_addr: the image starts with the header */
    .long 0x100000                          /* load_addr */
    .long 0x100000 + (end - _start)         /* load_end_addr */
    .long 0x100000 + (end - _start)         /* bss_end_addr: no bss */
    .long 0x100000 + (entry - _start)       /* entry_addr */
entry:
    mov $0x200000, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or 0x2ff000, %eax
    mov %eax, %cr4
    mov $0xC0000080, %ecx                   /* EFER */
    rdmsr
    or $0x900, %eax                         /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $0x80000000, %eax                    /* PG: EFER.LMA becomes 1 */
    mov %eax, %cr0
1:  hlt
    jmp 1b
end:
