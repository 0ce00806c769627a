/*
 * vaddr: the x86-64 rules for virtual addresses, for 4-level (48-bit) and
 * 5-level (57-bit) paging. An address is canonical when bits 63 down to
 * va_bits - 1 are all equal; between the two canonical halves lies the
 * non-canonical hole, where no mapping and no allocation can exist.
 *
 *   0                       lower half                     va_lower_end()
 *   va_lower_end()          non-canonical hole             va_upper_start()
 *   va_upper_start()        upper half                     2^64
 *
 * The one home of these rules: the page tables, the address spaces, the ELF
 * checks and the shell all call these.
 */
#ifndef CANOPY_VADDR_H
#define CANOPY_VADDR_H

#include <stdbool.h>
#include <stdint.h>

#define VA_BITS_4L 48u /* 4-level paging */
#define VA_BITS_5L 57u /* 5-level paging (LA57) */

/* The width of a virtual address for a paging depth. => levels is 4 or 5 */
static inline unsigned va_bits(unsigned levels)
{
    return levels == 5 ? VA_BITS_5L : VA_BITS_4L;
}

/* The first address above the lower half: the start of the non-canonical hole. */
static inline uint64_t va_lower_end(unsigned levels)
{
    return 1ull << (va_bits(levels) - 1);
}

/* The first address of the upper half: the end of the non-canonical hole. */
static inline uint64_t va_upper_start(unsigned levels)
{
    return ~0ull << (va_bits(levels) - 1);
}

/* Sign-extends the low va_bits(levels) bits of v (a page walk's index bits) into an address. */
static inline uint64_t va_sign_extend(uint64_t v, unsigned levels)
{
    unsigned shift = 64 - va_bits(levels);
    return (uint64_t)((int64_t)(v << shift) >> shift);
}

static inline bool va_is_canonical(uint64_t va, unsigned levels)
{
    return va_sign_extend(va, levels) == va;
}

/* [va, last] is canonical, does not wrap and lies in one half (never across the hole). */
static inline bool va_range_is_canonical(uint64_t va, uint64_t last, unsigned levels)
{
    return last >= va && va_is_canonical(va, levels) && va_is_canonical(last, levels) &&
           (va < va_lower_end(levels)) == (last < va_lower_end(levels));
}

#endif
