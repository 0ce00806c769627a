/*
 * gdt: the kernel's GDT and TSS. The TSS exists for its interrupt stack
 * table: exceptions that must not run on a possibly broken stack get a
 * known-good one.
 */
#ifndef ARCH_GDT_H
#define ARCH_GDT_H

#include <stdint.h>

#define GDT_KERNEL_CODE 0x08
#define GDT_KERNEL_DATA 0x10
#define GDT_TSS         0x18

/* IST slots (1-based, as the IDT gate encodes them). */
#define IST_DOUBLE_FAULT  1
#define IST_PAGE_FAULT    2 /* a boot-stack overflow faults on the guard page: needs another stack */
#define IST_NMI           3
#define IST_MACHINE_CHECK 4

/*
 * Loads the kernel's GDT, reloads every segment register and loads the TSS.
 * => called once, first thing at entry, with interrupts off.
 */
void arch_gdt_init(void);

/* The [low, high) range of IST stack `ist` (1..4), for fault diagnostics. */
void arch_ist_range(unsigned ist, uint64_t *low, uint64_t *high);

#endif
