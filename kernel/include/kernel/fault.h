/*
 * fault: the page-fault handler and the description of an address for fatal
 * reports (the page-table walk for it; which guard page it hits).
 */
#ifndef KERNEL_FAULT_H
#define KERNEL_FAULT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Installs the page-fault handler. Walks use the live CR3 with the given
 * HHDM base and paging depth, so they work before and after kmm_adopt().
 */
void fault_init(uint64_t hhdm_base, unsigned paging_levels);

/*
 * Names [va, va + size) as a guard page: a fault there is reported as a
 * stack overflow of `name`. Returns false if the small table is full.
 */
bool fault_add_guard(uint64_t va, uint64_t size, const char *name);

#endif
