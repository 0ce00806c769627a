/*
 * page: the x86-64 page sizes and the arithmetic on them. This is the one
 * home of "4096" for every target (stage 1, the kernel, the host tools and
 * tests); nothing else defines a page size or open-codes a round-up.
 *
 * Every helper takes and returns uint64_t, so physical addresses, virtual
 * addresses and byte counts all work, and none can overflow silently:
 * page_up() and align_up() are only for values that cannot wrap (callers that
 * take untrusted sizes check `v > UINT64_MAX - (a - 1)` first, or use
 * pages_for_bytes(), which never wraps).
 */
#ifndef CANOPY_PAGE_H
#define CANOPY_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#define PAGE_SHIFT    12
#define PAGE_SIZE     (1ull << PAGE_SHIFT) /* 4 KiB: a PTE's page, a frame */
#define PAGE_SHIFT_2M 21
#define PAGE_SIZE_2M  (1ull << PAGE_SHIFT_2M) /* a PDE's large page */
#define PAGE_SHIFT_1G 30
#define PAGE_SIZE_1G  (1ull << PAGE_SHIFT_1G) /* a PDPTE's huge page (pdpe1gb) */

/* => a is a power of two; v + a - 1 does not wrap */
static inline uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* => a is a power of two */
static inline uint64_t align_down(uint64_t v, uint64_t a)
{
    return v & ~(a - 1);
}

/* => a is a power of two */
static inline bool is_aligned(uint64_t v, uint64_t a)
{
    return (v & (a - 1)) == 0;
}

/* The start of the page after v, or v itself if aligned. => v + PAGE_SIZE - 1 does not wrap */
static inline uint64_t page_up(uint64_t v)
{
    return align_up(v, PAGE_SIZE);
}

/* The start of the page that holds v. */
static inline uint64_t page_down(uint64_t v)
{
    return align_down(v, PAGE_SIZE);
}

static inline bool page_is_aligned(uint64_t v)
{
    return is_aligned(v, PAGE_SIZE);
}

/* How many pages hold `bytes` bytes; never wraps (UINT64_MAX gives 2^52). */
static inline uint64_t pages_for_bytes(uint64_t bytes)
{
    return (bytes >> PAGE_SHIFT) + ((bytes & (PAGE_SIZE - 1)) != 0);
}

/* Units for messages: a count of pages or bytes in KiB or MiB (rounded down). */
static inline uint64_t pages_to_kib(uint64_t pages)
{
    return pages << (PAGE_SHIFT - 10);
}

static inline uint64_t pages_to_mib(uint64_t pages)
{
    return pages >> (20 - PAGE_SHIFT);
}

static inline uint64_t bytes_to_kib(uint64_t bytes)
{
    return bytes >> 10;
}

static inline uint64_t bytes_to_mib(uint64_t bytes)
{
    return bytes >> 20;
}

#endif
