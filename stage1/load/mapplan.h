/*
 * mapplan: the list of mappings stage 1 makes for the kernel, and the mapping
 * manifest derived from it.
 *
 * Pure code: it decides what gets mapped where (the HHDM from the memory map,
 * the framebuffer where the map leaves it out) and how pt_map will split each
 * mapping into pages, so the manifest in the boot info is written from the plan
 * rather than read back from the tables it is meant to check.
 */
#ifndef STAGE1_LOAD_MAPPLAN_H
#define STAGE1_LOAD_MAPPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <canopy/page.h>

/* The most manifest entries one request can produce: 4K, 2M, 1G, 2M, 4K runs. */
#define MAPPLAN_ENTRIES_PER_REQUEST 5

/* One mapping as pt_map is asked for it. */
struct map_request {
    uint64_t va;
    uint64_t pa;
    uint64_t size;          /* bytes, a multiple of 4 KiB */
    uint64_t max_page_size; /* 4 KiB, 2 MiB or 1 GiB */
    uint16_t flags;         /* CANOPY_MAP_* */
    uint16_t owner;         /* enum canopy_owner */
};

/*
 * A request mapped with 4 KiB pages only: what stage 1 makes for the kernel's
 * segments, its boot stack and the trampoline page.
 */
struct map_request mapplan_request_4k(uint64_t va, uint64_t pa, uint64_t size, uint16_t flags,
                                      uint16_t owner);

/*
 * The page pt_map places at (va, pa) with `remaining` bytes left: the largest
 * of 1 GiB, 2 MiB, 4 KiB that is <= max_page_size, divides va and pa and fits.
 * => va, pa, remaining 4 KiB aligned, remaining > 0.
 */
uint64_t mapplan_page_size(uint64_t va, uint64_t pa, uint64_t remaining, uint64_t max_page_size);

/*
 * HHDM requests for a normalised memory map: adjacent ranges are merged first
 * (so large pages can cross range boundaries), each run mapped at hhdm_base +
 * base, RW and NX, owner CANOPY_OWNER_HHDM. Physical memory at or above
 * pa_limit (where the HHDM would run into the next region of the layout) is
 * left out; *clipped_bytes (if not NULL) says how much.
 * => ranges sorted and non-overlapping (as memmap_normalise gives them).
 * => returns the number of requests written, or UINT32_MAX if cap is too small.
 */
uint32_t mapplan_hhdm(const struct canopy_mem_range *ranges, uint32_t range_count,
                      uint64_t hhdm_base, uint64_t pa_limit, uint64_t max_page_size,
                      struct map_request *out, uint32_t cap, uint64_t *clipped_bytes);

/*
 * Requests for the parts of the physical range [base, base + size) (rounded
 * out to pages) that none of the HHDM requests hhdm[0..n) covers, mapped at
 * hhdm_base + phys with `flags` and `owner`: the framebuffer, which firmware
 * often leaves out of the memory map.
 * => hhdm sorted by va, non-overlapping (as mapplan_hhdm gives them).
 * => returns the number written, or UINT32_MAX if cap is too small.
 */
uint32_t mapplan_uncovered(const struct map_request *hhdm, uint32_t n, uint64_t hhdm_base,
                           uint64_t base, uint64_t size, uint64_t max_page_size, uint16_t flags,
                           uint16_t owner, struct map_request *out, uint32_t cap);

/* Sorts requests by va (stable; a few hundred at most). */
void mapplan_sort(struct map_request *r, uint32_t n);

/* True if the sorted requests overlap anywhere. */
bool mapplan_overlaps(const struct map_request *r, uint32_t n);

/*
 * Appends the manifest entries for one request: one entry per run of equal
 * page size, as pt_map will place them.
 * => returns false (and appends nothing) if fewer than the needed entries
 *    are left in out[*count..cap).
 */
bool mapplan_manifest_add(const struct map_request *r, struct canopy_mapping *out, uint32_t cap,
                          uint32_t *count);

#endif
