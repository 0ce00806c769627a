/*
 * claim: where stage 1 puts the memory it writes after ExitBootServices.
 *
 * Before the exit, stage 1 allocates through boot services everything it
 * will write afterwards (the boot info, the PMM's state array, the boot
 * stack, each kernel segment, the page tables), at addresses it chooses from
 * the memory map as a PMM would see it, as Limine and Linux's EFI stub do:
 * the highest place in usable memory at or above 1 MiB and below the direct
 * map's reach. Pure code over a normalised map; main.c asks the firmware for
 * each place (AllocateAddress) and, when it refuses one, adds it to the
 * places to avoid and asks again.
 */
#ifndef STAGE1_LOAD_CLAIM_H
#define STAGE1_LOAD_CLAIM_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/bootinfo.h>

/* Pages from pa: a claim, or a place the firmware refused. */
struct claim_span {
    uint64_t pa;
    uint64_t page_count;
};

/*
 * The highest pa such that [pa, pa + page_count pages) lies in usable memory
 * (CANOPY_MEM_USABLE ranges; touching ones form one run), inside [lo, hi)
 * and overlaps none of avoid[0..avoid_count).
 * => ranges sorted and non-overlapping (memmap_normalise's output); lo, hi
 *    page aligned; page_count >= 1.
 * => false if there is no such place.
 */
bool claim_place(const struct canopy_mem_range *ranges, uint32_t range_count, uint64_t lo,
                 uint64_t hi, const struct claim_span *avoid, uint32_t avoid_count,
                 uint64_t page_count, uint64_t *pa);

/*
 * The usable pages inside [lo, hi) that no span of avoid covers, and in
 * *largest_run (if not NULL) the longest contiguous stretch of them: what a
 * refusal line reports.
 * => as claim_place; the spans of avoid do not overlap one another.
 */
uint64_t claim_free_pages(const struct canopy_mem_range *ranges, uint32_t range_count, uint64_t lo,
                          uint64_t hi, const struct claim_span *avoid, uint32_t avoid_count,
                          uint64_t *largest_run);

/*
 * Page tables: stage 1 computes them (mapplan + pt_min_tables) from the map
 * it plans with; the final map may differ from it. The direct map covers the
 * RAM-like ranges, and between the two maps memory changes type only through
 * allocations and frees: stage 1's claims and the firmware's boot-services
 * and loader allocations turn RAM into RAM, which the direct map covers
 * alike, so they change no request. Only a firmware allocation of a type
 * outside the direct map (runtime services, reserved) can cut a hole in a
 * run of RAM. Each edge of such a hole needs at most one new page table (the
 * 4 KiB pages at a boundary that is not 2 MiB aligned) and one new page
 * directory (the 2 MiB pages at a boundary inside a 1 GiB page); the tables
 * above hold addresses that were mapped before. So a hole costs at most
 * CLAIM_PT_PER_HOLE tables, and CLAIM_PT_HOLES of them are allowed for; the
 * final map's exact need is checked against the claim after the exit.
 */
#define CLAIM_PT_PER_HOLE 4u
#define CLAIM_PT_HOLES    8u

/* The page-table frames to claim when the plan needs planned_tables. */
uint64_t claim_pt_bound(uint64_t planned_tables);

#endif
