/*
 * Tests for the mapping plan: HHDM requests from a memory map, the pieces of
 * a framebuffer the map leaves out, and the manifest's split into page sizes.
 *
 * Physical layout used below (a q35 guest with 3 GiB):
 *
 *   0x00000000-0x0009ffff  usable
 *   0x00100000-0x7fffffff  usable + reclaimable (three touching ranges)
 *   0x80000000-0x80ffffff  (hole: the framebuffer BAR)
 *   0xb0000000-0xbfffffff  mmio (PCIe ECAM)
 *   0x100000000-0x13fffffff usable
 */
#include <string.h>

#include "../load/mapplan.h"
#include "check.h"

#define HHDM  0xffff800000000000ull
#define LIMIT (CANOPY_DYNAMIC_BASE - HHDM) /* 64 TiB of physical addresses */
#define GiB   (1ull << 30)
#define MiB   (1ull << 20)

static const struct canopy_mem_range q35[] = {
    {.base = 0, .page_count = 0xa0, .type = CANOPY_MEM_USABLE},
    {.base = 0x100000, .page_count = 0x700, .type = CANOPY_MEM_USABLE},
    {.base = 0x800000, .page_count = 0x100, .type = CANOPY_MEM_RECLAIMABLE},
    {.base = 0x900000, .page_count = 0x7f700, .type = CANOPY_MEM_USABLE},
    {.base = 0xb0000000, .page_count = 0x10000, .type = CANOPY_MEM_MMIO},
    {.base = 0x100000000ull, .page_count = 0x40000, .type = CANOPY_MEM_USABLE},
};
#define Q35_N (sizeof(q35) / sizeof(q35[0]))

static void test_mapplan_page_size_rule(void)
{
    CHECK(mapplan_page_size(GiB, GiB, GiB, PAGE_SIZE_1G) == PAGE_SIZE_1G);
    CHECK(mapplan_page_size(GiB, GiB, GiB, PAGE_SIZE_2M) == PAGE_SIZE_2M);
    CHECK(mapplan_page_size(GiB, GiB, GiB - PAGE_SIZE, PAGE_SIZE_1G) == PAGE_SIZE_2M);
    CHECK(mapplan_page_size(GiB, GiB + 2 * MiB, GiB, PAGE_SIZE_1G) == PAGE_SIZE_2M);
    CHECK(mapplan_page_size(GiB, GiB + PAGE_SIZE, GiB, PAGE_SIZE_1G) == PAGE_SIZE);
    CHECK(mapplan_page_size(2 * MiB, 2 * MiB, 2 * MiB - PAGE_SIZE, PAGE_SIZE_1G) == PAGE_SIZE);
    CHECK(mapplan_page_size(2 * MiB, 2 * MiB, 2 * MiB, PAGE_SIZE) == PAGE_SIZE);
}

static void test_mapplan_hhdm_merges_touching_ranges(void)
{
    struct map_request r[8];
    uint32_t n = mapplan_hhdm(q35, Q35_N, HHDM, LIMIT, PAGE_SIZE_1G, r, 8, NULL);
    CHECK(n == 4);
    CHECK(r[0].pa == 0 && r[0].size == 0xa0000 && r[0].va == HHDM);
    CHECK(r[1].pa == 0x100000 && r[1].size == 0x80000000ull - 0x100000);
    CHECK(r[1].va == HHDM + 0x100000);
    CHECK(r[2].pa == 0xb0000000 && r[2].size == 0x10000000);
    CHECK(r[3].pa == 0x100000000ull && r[3].size == GiB);
    for (uint32_t i = 0; i < n; i++) {
        CHECK(r[i].flags == CANOPY_MAP_W);
        CHECK(r[i].owner == CANOPY_OWNER_HHDM);
        CHECK(r[i].max_page_size == PAGE_SIZE_1G);
    }
    CHECK(!mapplan_overlaps(r, n));
    CHECK(mapplan_hhdm(q35, Q35_N, HHDM, LIMIT, PAGE_SIZE_1G, r, 3, NULL) == UINT32_MAX);
    CHECK(mapplan_hhdm(q35, 0, HHDM, LIMIT, PAGE_SIZE_1G, r, 8, NULL) == 0);
}

static void test_mapplan_hhdm_skips_empty_ranges(void)
{
    struct canopy_mem_range m[] = {
        {.base = 0x1000, .page_count = 1},
        {.base = 0x2000, .page_count = 0},
        {.base = 0x2000, .page_count = 2},
    };
    struct map_request r[2];
    CHECK(mapplan_hhdm(m, 3, HHDM, LIMIT, PAGE_SIZE_2M, r, 1, NULL) == 1);
    CHECK(r[0].pa == 0x1000 && r[0].size == 0x3000);
}

static void test_mapplan_hhdm_clips_at_the_limit(void)
{
    struct map_request r[8];
    uint64_t clipped = 1;
    /* A limit of 4.5 GiB: the last range is cut in half. */
    CHECK(mapplan_hhdm(q35, Q35_N, HHDM, 4 * GiB + GiB / 2, PAGE_SIZE_1G, r, 8, &clipped) == 4);
    CHECK(r[3].pa == 4 * GiB && r[3].size == GiB / 2);
    CHECK(clipped == GiB / 2);
    /* A limit of 3 GiB: the last range goes, the MMIO range ends below it and stays. */
    CHECK(mapplan_hhdm(q35, Q35_N, HHDM, 3 * GiB, PAGE_SIZE_1G, r, 8, &clipped) == 3);
    CHECK(clipped == GiB);
    CHECK(r[2].pa + r[2].size == 0xc0000000);
    /* A range far above 64 TiB (a 64-bit BAR) is left out of the real layout. */
    struct canopy_mem_range high[] = {{.base = 0, .page_count = 16},
                                      {.base = 1ull << 47, .page_count = 16}};
    CHECK(mapplan_hhdm(high, 2, HHDM, LIMIT, PAGE_SIZE_1G, r, 8, &clipped) == 1);
    CHECK(clipped == 16 * PAGE_SIZE);
    CHECK(mapplan_hhdm(q35, Q35_N, HHDM, LIMIT, PAGE_SIZE_1G, r, 8, &clipped) == 4);
    CHECK(clipped == 0);
}

static void test_mapplan_manifest_splits_like_pt_map(void)
{
    struct map_request r[8];
    struct canopy_mapping m[32];
    uint32_t n = mapplan_hhdm(q35, Q35_N, HHDM, LIMIT, PAGE_SIZE_1G, r, 8, NULL);
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++)
        CHECK(mapplan_manifest_add(&r[i], m, 32, &count));
    /*
     * [0, 0xa0000)            4K
     * [0x100000, 0x200000)    4K     up to the first 2 MiB boundary
     * [0x200000, 1 GiB)       2M     up to the first 1 GiB boundary
     * [1 GiB, 2 GiB)          1G
     * [0xb0000000, 0xc0000000) 2M    not 1 GiB aligned
     * [4 GiB, 5 GiB)          1G
     */
    CHECK(count == 6);
    CHECK(m[0].pa == 0 && m[0].size_bytes == 0xa0000 && m[0].page_size == PAGE_SIZE);
    CHECK(m[1].pa == 0x100000 && m[1].size_bytes == 0x100000 && m[1].page_size == PAGE_SIZE);
    CHECK(m[2].pa == 0x200000 && m[2].size_bytes == GiB - 0x200000 && m[2].page_size == 2 * MiB);
    CHECK(m[3].pa == GiB && m[3].size_bytes == GiB && m[3].page_size == GiB);
    CHECK(m[3].va == HHDM + GiB);
    CHECK(m[4].pa == 0xb0000000 && m[4].page_size == 2 * MiB && m[4].size_bytes == 0x10000000);
    CHECK(m[5].pa == 4 * GiB && m[5].page_size == GiB);
    for (uint32_t i = 0; i < count; i++)
        CHECK(m[i].flags == CANOPY_MAP_W && m[i].owner == CANOPY_OWNER_HHDM);

    /* Without 1 GiB pages the same map gives 2 MiB runs instead. */
    n = mapplan_hhdm(q35, Q35_N, HHDM, LIMIT, PAGE_SIZE_2M, r, 8, NULL);
    count = 0;
    for (uint32_t i = 0; i < n; i++)
        CHECK(mapplan_manifest_add(&r[i], m, 32, &count));
    CHECK(count == 5);
    CHECK(m[2].pa == 0x200000 && m[2].size_bytes == 0x80000000ull - 0x200000);
    for (uint32_t i = 0; i < count; i++)
        CHECK(m[i].page_size != GiB);
}

static void test_mapplan_manifest_tail_and_capacity(void)
{
    /* 2 MiB + 12 KiB starting 4 KiB below a 2 MiB boundary: 4K, 2M, 4K runs. */
    struct map_request r = {.va = HHDM + 2 * MiB - PAGE_SIZE,
                            .pa = 2 * MiB - PAGE_SIZE,
                            .size = 2 * MiB + 3 * PAGE_SIZE,
                            .max_page_size = PAGE_SIZE_1G,
                            .flags = CANOPY_MAP_W,
                            .owner = CANOPY_OWNER_FRAMEBUFFER};
    struct canopy_mapping m[4];
    uint32_t count = 1; /* something already there */
    memset(m, 0, sizeof(m));
    CHECK(!mapplan_manifest_add(&r, m, 3, &count)); /* needs 3 entries, 2 left */
    CHECK(count == 1);
    CHECK(mapplan_manifest_add(&r, m, 4, &count));
    CHECK(count == 4);
    CHECK(m[1].size_bytes == PAGE_SIZE && m[1].page_size == PAGE_SIZE);
    CHECK(m[2].va == HHDM + 2 * MiB && m[2].page_size == 2 * MiB);
    CHECK(m[3].size_bytes == 2 * PAGE_SIZE && m[3].pa == 4 * MiB);
    CHECK(m[3].owner == CANOPY_OWNER_FRAMEBUFFER);
}

static void test_mapplan_manifest_never_merges_across_requests(void)
{
    struct map_request a = {.va = HHDM, .pa = 0, .size = PAGE_SIZE, .max_page_size = PAGE_SIZE};
    struct map_request b = a;
    b.va += PAGE_SIZE;
    b.pa += PAGE_SIZE;
    b.flags = CANOPY_MAP_X;
    struct canopy_mapping m[4];
    uint32_t count = 0;
    CHECK(mapplan_manifest_add(&a, m, 4, &count) && mapplan_manifest_add(&b, m, 4, &count));
    CHECK(count == 2 && m[1].flags == CANOPY_MAP_X);
}

static void test_mapplan_uncovered_framebuffer(void)
{
    struct map_request h[8], out[4];
    uint32_t n = mapplan_hhdm(q35, Q35_N, HHDM, LIMIT, PAGE_SIZE_1G, h, 8, NULL);
    /* Entirely in the hole after 2 GiB. */
    CHECK(mapplan_uncovered(h, n, HHDM, 0x80000000, 0x300000, PAGE_SIZE_1G, CANOPY_MAP_W,
                            CANOPY_OWNER_FRAMEBUFFER, out, 4) == 1);
    CHECK(out[0].pa == 0x80000000 && out[0].size == 0x300000 && out[0].va == HHDM + 0x80000000);
    CHECK(out[0].owner == CANOPY_OWNER_FRAMEBUFFER);
    /* Inside RAM: nothing to add. */
    CHECK(mapplan_uncovered(h, n, HHDM, 0x200000, 0x1000, PAGE_SIZE_1G, CANOPY_MAP_W,
                            CANOPY_OWNER_FRAMEBUFFER, out, 4) == 0);
    /* Straddling the end of RAM, with a size that is not whole pages. */
    CHECK(mapplan_uncovered(h, n, HHDM, 0x7ff00000, 0x100800, PAGE_SIZE_1G, CANOPY_MAP_W,
                            CANOPY_OWNER_FRAMEBUFFER, out, 4) == 1);
    CHECK(out[0].pa == 0x80000000 && out[0].size == 0x1000);
    /* Across two holes: [0xa0000, 0x100000) and nothing else below 2 GiB. */
    CHECK(mapplan_uncovered(h, n, HHDM, 0x80000, 0x100000, PAGE_SIZE_1G, CANOPY_MAP_W,
                            CANOPY_OWNER_FRAMEBUFFER, out, 4) == 1);
    CHECK(out[0].pa == 0xa0000 && out[0].size == 0x60000);
    CHECK(mapplan_uncovered(h, n, HHDM, 0x7ffff000, 0x30002000, PAGE_SIZE_1G, CANOPY_MAP_W,
                            CANOPY_OWNER_FRAMEBUFFER, out, 4) == 1);
    CHECK(out[0].pa == 0x80000000 && out[0].size == 0x30000000);
    CHECK(mapplan_uncovered(h, n, HHDM, 0x90000000, 0x40000000, PAGE_SIZE_1G, CANOPY_MAP_W,
                            CANOPY_OWNER_FRAMEBUFFER, out, 4) == 2);
    CHECK(out[0].pa == 0x90000000 && out[0].size == 0x20000000);
    CHECK(out[1].pa == 0xc0000000 && out[1].size == 0x10000000);
    /* No room. */
    CHECK(mapplan_uncovered(h, n, HHDM, 0x80000000, 0x1000, PAGE_SIZE_1G, CANOPY_MAP_W,
                            CANOPY_OWNER_FRAMEBUFFER, out, 0) == UINT32_MAX);
    CHECK(mapplan_uncovered(h, n, HHDM, 0x80000000, 0, PAGE_SIZE_1G, CANOPY_MAP_W,
                            CANOPY_OWNER_FRAMEBUFFER, out, 0) == 0);
}

static void test_mapplan_sort_and_overlap(void)
{
    struct map_request r[3] = {
        {.va = 0xffffffff80000000ull, .size = 0x2000},
        {.va = 0x100000, .size = 0x1000},
        {.va = HHDM, .size = GiB},
    };
    mapplan_sort(r, 3);
    CHECK(r[0].va == 0x100000 && r[1].va == HHDM && r[2].va == 0xffffffff80000000ull);
    CHECK(!mapplan_overlaps(r, 3));
    r[1].size = 0x7fff80000000ull + 1; /* reaches the kernel's first byte */
    CHECK(mapplan_overlaps(r, 3));
    r[1].size = 0x7fff80000000ull;
    CHECK(!mapplan_overlaps(r, 3));
}

void mapplan_tests(void)
{
    RUN(test_mapplan_page_size_rule);
    RUN(test_mapplan_hhdm_merges_touching_ranges);
    RUN(test_mapplan_hhdm_skips_empty_ranges);
    RUN(test_mapplan_hhdm_clips_at_the_limit);
    RUN(test_mapplan_manifest_splits_like_pt_map);
    RUN(test_mapplan_manifest_tail_and_capacity);
    RUN(test_mapplan_manifest_never_merges_across_requests);
    RUN(test_mapplan_uncovered_framebuffer);
    RUN(test_mapplan_sort_and_overlap);
}
