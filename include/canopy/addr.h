/*
 * addr: distinct types for physical and virtual addresses at the page-table
 * and mapping-plan boundaries.
 *
 * Both kinds are 64-bit numbers, so a function that takes one of each, as
 * pt_map(pt, va, pa, ...) does, would take them swapped without a word. Each
 * kind is wrapped in its own one-member struct instead: C converts no struct
 * into another, so passing a paddr_t where a vaddr_t is expected (or a plain
 * integer where either is) does not compile. The wrappers cost nothing: a
 * struct of one uint64_t is passed and returned in a register like the
 * integer itself.
 *
 * The types are for interfaces. Code converts at its edges with the
 * constructors and accessors below, and does its arithmetic on plain
 * integers inside. tests/addr_types/ checks that a swap fails to compile.
 */
#ifndef CANOPY_ADDR_H
#define CANOPY_ADDR_H

#include <stdint.h>

/* A physical address: what a page-table entry or CR3 holds. */
typedef struct {
    uint64_t pa;
} paddr_t;

/* A virtual (linear) address: what the CPU translates through the tables. */
typedef struct {
    uint64_t va;
} vaddr_t;

/* The physical address pa. */
static inline paddr_t pa_init(uint64_t pa)
{
    return (paddr_t){pa};
}

/* The number inside a physical address. */
static inline uint64_t pa_addr(paddr_t pa)
{
    return pa.pa;
}

/* The virtual address va. */
static inline vaddr_t va_init(uint64_t va)
{
    return (vaddr_t){va};
}

/* The number inside a virtual address. */
static inline uint64_t va_addr(vaddr_t va)
{
    return va.va;
}

#endif
