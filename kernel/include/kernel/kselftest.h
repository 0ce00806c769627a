/*
 * kselftest: the in-kernel self-test of the memory manager (kernel/mm/selftest.c).
 */
#ifndef KERNEL_KSELFTEST_H
#define KERNEL_KSELFTEST_H

#include <stdint.h>

#include <canopy/bootinfo.h>

/*
 * Runs `ops` random operations on the kernel address space and the heap
 * (allocate, free, partial free, protect, demand-zero touches, kernel stacks,
 * kmalloc churn, refused requests), checking each against a model, then
 * frees everything and proves that the PMM, the VMA tree and the page tables
 * are exactly where they started. Prints progress and ends with the line
 * `selftest: N passed, M failed`. Returns M. seed 0 picks a fixed seed.
 * => after vm_init(); from the boot path or the shell, not from interrupts.
 */
int kselftest_run_ops(uint64_t ops, uint64_t seed);

/* kselftest_run_ops(KSELFTEST_OPS, 0): what the shell's `selftest` runs. */
#define KSELFTEST_OPS 100000u
int kselftest_run(void);

/*
 * The boot hook, after `canopy: ready` (it also learns the TSC rate for the
 * timing line): the command-line word
 *   selftest              runs kselftest_run();
 *   selftest=N            runs N operations (seed from the boot info's random seed);
 *   selftest=kstack-overflow   overflows a kernel stack from the dynamic area
 *                         into its guard page (a fatal "stack overflow" report).
 * Nothing happens without the word.
 */
void kselftest_boot(const struct canopy_bootinfo *bi);

#endif
