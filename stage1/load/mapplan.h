/*
 * mapplan: the list of mappings stage 1 makes for the kernel, and the mapping
 * manifest derived from it.
 *
 * Pure code: it decides what gets mapped where (the direct map from the
 * memory map's RAM, with read-only aliases of the read-only kernel frames; the
 * framebuffer in the dynamic area) and how pt_map will split each mapping into
 * pages, so the manifest in the boot info is written from the plan rather than
 * read back from the tables it is meant to check. Nothing here needs boot
 * services to have ended: a plan can be made from any memory map, and the
 * number of requests (so of page-table frames, by pt_min_tables) is bounded
 * by the map's ranges and the fixed requests.
 *
 * The functions take addresses as vaddr_t and paddr_t (canopy/addr.h), so a
 * virtual and a physical address cannot be passed in each other's place; a
 * map_request holds plain numbers, named va and pa.
 */
#ifndef STAGE1_LOAD_MAPPLAN_H
#define STAGE1_LOAD_MAPPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/addr.h>
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
struct map_request mapplan_request_4k(vaddr_t va, paddr_t pa, uint64_t size, uint16_t flags,
                                      uint16_t owner);

/*
 * The page pt_map places at (va, pa) with `remaining` bytes left: the largest
 * of 1 GiB, 2 MiB, 4 KiB that is <= max_page_size, divides va and pa and fits.
 * => va, pa, remaining 4 KiB aligned, remaining > 0.
 */
uint64_t mapplan_page_size(vaddr_t va, paddr_t pa, uint64_t remaining, uint64_t max_page_size);

/*
 * The direct map's requests for a normalised memory map: the RAM-like ranges
 * (canopy_mem_is_direct_mapped) and nothing else, those that touch merged (so
 * large pages can cross from one kind of RAM to another), each run mapped at
 * hhdm_base + base, RW, NX, write-back, owner CANOPY_OWNER_HHDM, in pages up
 * to max_page_size. A request never covers a byte of another type or a hole,
 * so pt_map's large pages stop at its edges. RAM at or above pa_limit (where
 * the direct map would run into the next region of the layout) is left out;
 * *clipped_bytes (if not NULL) says how much.
 * => ranges sorted and non-overlapping (as memmap_normalise gives them).
 * => returns the number of requests written (at most range_count), or
 *    UINT32_MAX if cap is too small.
 */
uint32_t mapplan_hhdm(const struct canopy_mem_range *ranges, uint32_t range_count,
                      vaddr_t hhdm_base, paddr_t pa_limit, uint64_t max_page_size,
                      struct map_request *out, uint32_t cap, uint64_t *clipped_bytes);

/*
 * Gives the direct-map alias of the frames [pa, pa + size) the flags `flags`
 * less CANOPY_MAP_X (a kernel segment's protection less execute: read-only
 * for .text, .rodata and the trampoline page): each request of req[0..*n) that covers
 * part of it is split in up to three, the covered piece taking `flags`. Frames
 * outside the direct map are skipped. At most two more requests per request
 * cut, so per protected alias when it lies in one run of RAM.
 * => req holds direct-map requests (as mapplan_hhdm gives them), sorted and
 *    non-overlapping; pa, size 4 KiB aligned.
 * => false, and nothing changed, if the splits need more than cap requests.
 */
bool mapplan_hhdm_protect(struct map_request *req, uint32_t *n, uint32_t cap, paddr_t pa,
                          uint64_t size, uint16_t flags);

/* True if a byte of [base, base + size) lies in a range the direct map holds (RAM). */
bool mapplan_touches_ram(const struct canopy_mem_range *ranges, uint32_t range_count, paddr_t base,
                         uint64_t size);

/* Where the framebuffer is mapped: the first 2 MiB boundary of the dynamic area past the boot
 * stack, plus the framebuffer's offset in its first page. */
#define MAPPLAN_FB_VA (CANOPY_DYNAMIC_BASE + PAGE_SIZE_2M)

/*
 * The framebuffer's request: the pages holding [base, base + size) at
 * MAPPLAN_FB_VA, RW, NX, 4 KiB pages, owner FRAMEBUFFER, write-combining
 * (CANOPY_MAP_WC) when the CPU has PAT, uncached otherwise. *fb_va gets the
 * address of base itself.
 * => size > 0; the framebuffer is not RAM (mapplan_touches_ram is false).
 */
struct map_request mapplan_framebuffer(paddr_t base, uint64_t size, bool pat, uint64_t *fb_va);

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
