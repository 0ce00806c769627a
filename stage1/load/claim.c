/*
 * claim: placing stage 1's claims in the memory map, top down.
 *
 * A run is a maximal stretch of touching usable ranges, clipped to [lo, hi).
 * Runs are tried from the highest down; inside a run a window of the size
 * asked slides down from the run's top, jumping below the highest span to
 * avoid that it meets, until it fits or leaves the run:
 *
 *   run:     [ ................................................ )
 *   avoid:                 [ claim ]          [ refused ]
 *   tries:                                           [ window ]   overlaps
 *                               [ window ]  <- ends at the refused span's start
 *
 * Each jump moves the window's end to the start of a span, strictly lower,
 * so a run costs at most one step per span. Nothing here allocates; main.c
 * asks the firmware for the place found (claim_memory).
 */
#include "claim.h"

#include <canopy/page.h>

/*
 * The next run down: the highest run of usable ranges that ends at or below
 * ranges[*i - 1], clipped to [lo, hi) and not empty. *i starts at n and
 * moves to the run's first range; false when no run is left.
 */
static bool run_prev(const struct canopy_mem_range *r, uint32_t *i, uint64_t lo, uint64_t hi,
                     uint64_t *a, uint64_t *b)
{
    while (*i > 0) {
        (*i)--;
        if (r[*i].type != CANOPY_MEM_USABLE)
            continue;
        *b = r[*i].base + r[*i].page_count * PAGE_SIZE;
        *a = r[*i].base;
        while (*i > 0 && r[*i - 1].type == CANOPY_MEM_USABLE &&
               r[*i - 1].base + r[*i - 1].page_count * PAGE_SIZE == *a) {
            (*i)--;
            *a = r[*i].base;
        }
        if (*a < lo)
            *a = lo;
        if (*b > hi)
            *b = hi;
        if (*a < *b)
            return true;
    }
    return false;
}

bool claim_place(const struct canopy_mem_range *r, uint32_t n, uint64_t lo, uint64_t hi,
                 const struct claim_span *avoid, uint32_t avoid_count, uint64_t page_count,
                 uint64_t *pa)
{
    uint64_t size = page_count * PAGE_SIZE;
    uint64_t a, b;
    for (uint32_t i = n; run_prev(r, &i, lo, hi, &a, &b);) {
        uint64_t end = b;
        while (end - a >= size) {
            uint64_t start = end - size, next = end;
            for (uint32_t k = 0; k < avoid_count; k++) {
                uint64_t s = avoid[k].pa, e = s + avoid[k].page_count * PAGE_SIZE;
                if (s < end && start < e && (next == end || s > next))
                    next = s; /* the highest span the window meets */
            }
            if (next == end) {
                *pa = start;
                return true;
            }
            if (next <= a)
                break;
            end = next;
        }
    }
    return false;
}

uint64_t claim_free_pages(const struct canopy_mem_range *r, uint32_t n, uint64_t lo, uint64_t hi,
                          const struct claim_span *avoid, uint32_t avoid_count,
                          uint64_t *largest_run)
{
    uint64_t total = 0, largest = 0;
    uint64_t a, b;
    for (uint32_t i = n; run_prev(r, &i, lo, hi, &a, &b);) {
        /* Walk the run upwards from a, past each span in address order. */
        uint64_t at = a;
        while (at < b) {
            uint64_t gap_end = b, skip_to = b;
            for (uint32_t k = 0; k < avoid_count; k++) {
                uint64_t s = avoid[k].pa, e = s + avoid[k].page_count * PAGE_SIZE;
                if (e <= at || s >= b)
                    continue;
                if (s <= at) { /* a span covers at: the gap starts after it */
                    gap_end = at;
                    skip_to = e;
                    break;
                }
                if (s < gap_end) {
                    gap_end = s;
                    skip_to = e;
                }
            }
            uint64_t gap = (gap_end - at) / PAGE_SIZE;
            total += gap;
            if (gap > largest)
                largest = gap;
            at = skip_to;
        }
    }
    if (largest_run)
        *largest_run = largest;
    return total;
}

uint64_t claim_pt_bound(uint64_t planned_tables)
{
    return planned_tables + CLAIM_PT_PER_HOLE * CLAIM_PT_HOLES;
}
