/*
 * Tests for the mapping plan: the direct map's requests from a memory map
 * (RAM only), the read-only aliases cut out of them, the framebuffer's
 * request, and the manifest's split into page sizes.
 *
 * Physical layout used below (a q35 guest with 3 GiB):
 *
 *   0x00000000-0x0009ffff  usable
 *   0x00100000-0x7f0fffff  usable + reclaimable + acpi-nvs (touching ranges)
 *   0x7f100000-0x7f1fffff  runtime services data (not in the direct map)
 *   0x7f200000-0x7fffffff  acpi-reclaim
 *   0x80000000-0x80ffffff  (hole: the framebuffer BAR)
 *   0xb0000000-0xbfffffff  mmio (PCIe ECAM)
 *   0xffc00000-0xffffffff  runtime mmio (the flash)
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
    {.base = 0x900000, .page_count = 0x7e600, .type = CANOPY_MEM_USABLE},
    {.base = 0x7ef00000, .page_count = 0x200, .type = CANOPY_MEM_ACPI_NVS},
    {.base = 0x7f100000, .page_count = 0x100, .type = CANOPY_MEM_RUNTIME},
    {.base = 0x7f200000, .page_count = 0xe00, .type = CANOPY_MEM_ACPI_RECLAIM},
    {.base = 0xb0000000, .page_count = 0x10000, .type = CANOPY_MEM_MMIO},
    {.base = 0xffc00000, .page_count = 0x400, .type = CANOPY_MEM_RUNTIME},
    {.base = 0x100000000ull, .page_count = 0x40000, .type = CANOPY_MEM_USABLE},
};
#define Q35_N (sizeof(q35) / sizeof(q35[0]))

static void test_mapplan_page_size_rule(void)
{
    CHECK(mapplan_page_size(va_init(GiB), pa_init(GiB), GiB, PAGE_SIZE_1G) == PAGE_SIZE_1G);
    CHECK(mapplan_page_size(va_init(GiB), pa_init(GiB), GiB, PAGE_SIZE_2M) == PAGE_SIZE_2M);
    CHECK(mapplan_page_size(va_init(GiB), pa_init(GiB), GiB - PAGE_SIZE, PAGE_SIZE_1G) ==
          PAGE_SIZE_2M);
    CHECK(mapplan_page_size(va_init(GiB), pa_init(GiB + 2 * MiB), GiB, PAGE_SIZE_1G) ==
          PAGE_SIZE_2M);
    CHECK(mapplan_page_size(va_init(GiB), pa_init(GiB + PAGE_SIZE), GiB, PAGE_SIZE_1G) ==
          PAGE_SIZE);
    CHECK(mapplan_page_size(va_init(2 * MiB), pa_init(2 * MiB), 2 * MiB - PAGE_SIZE,
                            PAGE_SIZE_1G) == PAGE_SIZE);
    CHECK(mapplan_page_size(va_init(2 * MiB), pa_init(2 * MiB), 2 * MiB, PAGE_SIZE) == PAGE_SIZE);
}

static void test_mapplan_hhdm_maps_ram_only(void)
{
    struct map_request r[10];
    uint32_t n = mapplan_hhdm(q35, Q35_N, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_1G, r, 10, NULL);
    CHECK(n == 4);
    CHECK(r[0].pa == 0 && r[0].size == 0xa0000 && r[0].va == HHDM);
    /* usable, reclaimable, usable, acpi-nvs: one run up to the runtime range */
    CHECK(r[1].pa == 0x100000 && r[1].size == 0x7f100000 - 0x100000);
    CHECK(r[1].va == HHDM + 0x100000);
    CHECK(r[2].pa == 0x7f200000 && r[2].size == 0xe00000);
    CHECK(r[3].pa == 0x100000000ull && r[3].size == GiB);
    for (uint32_t i = 0; i < n; i++) {
        CHECK(r[i].flags == CANOPY_MAP_W);
        CHECK(r[i].owner == CANOPY_OWNER_HHDM);
        CHECK(r[i].max_page_size == PAGE_SIZE_1G);
    }
    CHECK(!mapplan_overlaps(r, n));
    CHECK(mapplan_hhdm(q35, Q35_N, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_1G, r, 3, NULL) ==
          UINT32_MAX);
    CHECK(mapplan_hhdm(q35, 0, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_1G, r, 10, NULL) == 0);
    /* Every other type stays out, persistent memory goes in. */
    static const uint32_t others[] = {
        CANOPY_MEM_RUNTIME, CANOPY_MEM_MMIO, CANOPY_MEM_RESERVED, CANOPY_MEM_BAD, 0, 42};
    for (unsigned i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        struct canopy_mem_range m = {.base = 0x1000, .page_count = 1, .type = others[i]};
        CHECK(mapplan_hhdm(&m, 1, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_2M, r, 1, NULL) == 0);
    }
    struct canopy_mem_range pmem = {
        .base = GiB, .page_count = 0x40000, .type = CANOPY_MEM_PERSISTENT};
    CHECK(mapplan_hhdm(&pmem, 1, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_1G, r, 1, NULL) == 1);
}

static void test_mapplan_hhdm_skips_empty_ranges(void)
{
    struct canopy_mem_range m[] = {
        {.base = 0x1000, .page_count = 1, .type = CANOPY_MEM_USABLE},
        {.base = 0x2000, .page_count = 0, .type = CANOPY_MEM_USABLE},
        {.base = 0x2000, .page_count = 2, .type = CANOPY_MEM_RECLAIMABLE},
    };
    struct map_request r[2];
    CHECK(mapplan_hhdm(m, 3, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_2M, r, 1, NULL) == 1);
    CHECK(r[0].pa == 0x1000 && r[0].size == 0x3000);
}

static void test_mapplan_hhdm_clips_at_the_limit(void)
{
    struct map_request r[10];
    uint64_t clipped = 1;
    /* A limit of 4.5 GiB: the last range is cut in half. */
    CHECK(mapplan_hhdm(q35, Q35_N, va_init(HHDM), pa_init(4 * GiB + GiB / 2), PAGE_SIZE_1G, r, 10,
                       &clipped) == 4);
    CHECK(r[3].pa == 4 * GiB && r[3].size == GiB / 2);
    CHECK(clipped == GiB / 2);
    /* A limit of 3 GiB: the last range goes; the MMIO below it was never RAM. */
    CHECK(mapplan_hhdm(q35, Q35_N, va_init(HHDM), pa_init(3 * GiB), PAGE_SIZE_1G, r, 10,
                       &clipped) == 3);
    CHECK(clipped == GiB);
    CHECK(r[2].pa + r[2].size == 0x80000000);
    /* RAM far above 64 TiB is left out of the real layout; a BAR there was never counted. */
    struct canopy_mem_range high[] = {
        {.base = 0, .page_count = 16, .type = CANOPY_MEM_USABLE},
        {.base = 1ull << 47, .page_count = 16, .type = CANOPY_MEM_USABLE},
        {.base = 1ull << 48, .page_count = 16, .type = CANOPY_MEM_MMIO},
    };
    CHECK(mapplan_hhdm(high, 3, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_1G, r, 10, &clipped) == 1);
    CHECK(clipped == 16 * PAGE_SIZE);
    CHECK(mapplan_hhdm(q35, Q35_N, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_1G, r, 10, &clipped) ==
          4);
    CHECK(clipped == 0);
}

/* A direct-map request for [pa, pa + size), RW. */
static struct map_request hhdm_req(uint64_t pa, uint64_t size)
{
    return (struct map_request){.va = HHDM + pa,
                                .pa = pa,
                                .size = size,
                                .max_page_size = PAGE_SIZE_1G,
                                .flags = CANOPY_MAP_W,
                                .owner = CANOPY_OWNER_HHDM};
}

static bool req_is(const struct map_request *r, uint64_t pa, uint64_t size, uint16_t flags)
{
    return r->pa == pa && r->va == HHDM + pa && r->size == size && r->flags == flags &&
           r->owner == CANOPY_OWNER_HHDM && r->max_page_size == PAGE_SIZE_1G;
}

static void test_mapplan_hhdm_protect_cuts_aliases(void)
{
    struct map_request r[8] = {hhdm_req(0, 0xa0000), hhdm_req(0x100000, 0x7f000000)};
    uint32_t n = 2;
    /* .text in the middle of the second run: three pieces. */
    CHECK(mapplan_hhdm_protect(r, &n, 8, pa_init(0x1e00000), 0x21000, CANOPY_MAP_X));
    CHECK(n == 4);
    CHECK(req_is(&r[0], 0, 0xa0000, CANOPY_MAP_W));
    CHECK(req_is(&r[1], 0x100000, 0x1d00000, CANOPY_MAP_W));
    CHECK(req_is(&r[2], 0x1e00000, 0x21000, 0)); /* X never granted: read-only */
    CHECK(req_is(&r[3], 0x1e21000, 0x7f100000 - 0x1e21000, CANOPY_MAP_W));
    /* .rodata right after it: the third piece splits in two. */
    CHECK(mapplan_hhdm_protect(r, &n, 8, pa_init(0x1e21000), 0x9000, 0));
    CHECK(n == 5 && req_is(&r[3], 0x1e21000, 0x9000, 0));
    CHECK(req_is(&r[4], 0x1e2a000, 0x7f100000 - 0x1e2a000, CANOPY_MAP_W));
    CHECK(!mapplan_overlaps(r, n));
    /* The first page of the first run, and all of a request: one piece each, no growth. */
    CHECK(mapplan_hhdm_protect(r, &n, 8, pa_init(0), PAGE_SIZE, 0));
    CHECK(n == 6 && req_is(&r[0], 0, PAGE_SIZE, 0) &&
          req_is(&r[1], PAGE_SIZE, 0x9f000, CANOPY_MAP_W));
    CHECK(mapplan_hhdm_protect(r, &n, 8, pa_init(0x1e21000), 0x9000, 0) && n == 6);
    /* Outside the direct map (the legacy hole): nothing to do. */
    struct map_request before[8];
    memcpy(before, r, sizeof(r));
    CHECK(mapplan_hhdm_protect(r, &n, 8, pa_init(0xa0000), 0x60000, 0) && n == 6);
    CHECK(memcmp(before, r, sizeof(r)) == 0);
    /* No room for two more pieces: refused, nothing changed. */
    CHECK(!mapplan_hhdm_protect(r, &n, 7, pa_init(0x3000000), PAGE_SIZE, 0));
    CHECK(n == 6 && memcmp(before, r, sizeof(r)) == 0);
    /* Across two runs and the hole between them: each run cut where it is covered. */
    struct map_request t[6] = {hhdm_req(0, 0x9f000), hhdm_req(0x100000, 0x100000)};
    uint32_t m = 2;
    CHECK(mapplan_hhdm_protect(t, &m, 6, pa_init(0x9e000), 0x63000, 0));
    CHECK(m == 4);
    CHECK(req_is(&t[0], 0, 0x9e000, CANOPY_MAP_W) && req_is(&t[1], 0x9e000, 0x1000, 0));
    CHECK(req_is(&t[2], 0x100000, 0x1000, 0) && req_is(&t[3], 0x101000, 0xff000, CANOPY_MAP_W));
}

static void test_mapplan_framebuffer_and_ram(void)
{
    /* The BAR in the hole after 2 GiB is no RAM; PCIe space neither; the top of low RAM is. */
    CHECK(!mapplan_touches_ram(q35, Q35_N, pa_init(0x80000000), 0x3e8000));
    CHECK(!mapplan_touches_ram(q35, Q35_N, pa_init(0xb0000000), 0x1000));
    CHECK(!mapplan_touches_ram(q35, Q35_N, pa_init(0x7f100000), 0x100000)); /* runtime data */
    CHECK(mapplan_touches_ram(q35, Q35_N, pa_init(0x7f0ff000), 0x2000)); /* its last page of NVS */
    CHECK(mapplan_touches_ram(q35, Q35_N, pa_init(0x9f000), 0x100000));  /* reaches into 1 MiB */
    CHECK(!mapplan_touches_ram(q35, Q35_N, pa_init(0xa0000), 0x60000));
    uint64_t fb_va = 0;
    struct map_request r = mapplan_framebuffer(pa_init(0x80000000), 0x3e8000, true, &fb_va);
    CHECK(r.va == MAPPLAN_FB_VA && fb_va == MAPPLAN_FB_VA && r.pa == 0x80000000);
    CHECK(r.size == 0x3e8000 && r.max_page_size == PAGE_SIZE);
    CHECK(r.flags == (CANOPY_MAP_W | CANOPY_MAP_WC) && r.owner == CANOPY_OWNER_FRAMEBUFFER);
    /* Not page aligned, no PAT: the pages around it, uncached, fb_va at the same offset. */
    r = mapplan_framebuffer(pa_init(0xc0000800), 0x1000, false, &fb_va);
    CHECK(r.pa == 0xc0000000 && r.size == 0x2000 && fb_va == MAPPLAN_FB_VA + 0x800);
    CHECK(r.flags == (CANOPY_MAP_W | CANOPY_MAP_UC));
    /* Past the boot stack and its guard, inside the dynamic area. */
    CHECK(MAPPLAN_FB_VA >= CANOPY_DYNAMIC_BASE + PAGE_SIZE + CANOPY_BOOT_STACK_SIZE);
}

static void test_mapplan_manifest_splits_like_pt_map(void)
{
    struct map_request r[10];
    struct canopy_mapping m[32];
    uint32_t n = mapplan_hhdm(q35, Q35_N, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_1G, r, 10, NULL);
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++)
        CHECK(mapplan_manifest_add(&r[i], m, 32, &count));
    /*
     * [0, 0xa0000)               4K
     * [0x100000, 0x200000)       4K    up to the first 2 MiB boundary
     * [0x200000, 0x7f000000)     2M    no whole GiB before the runtime range
     * [0x7f000000, 0x7f100000)   4K    its edge
     * [0x7f200000, 0x80000000)   2M
     * [4 GiB, 5 GiB)             1G
     */
    CHECK(count == 6);
    CHECK(m[0].pa == 0 && m[0].size_bytes == 0xa0000 && m[0].page_size == PAGE_SIZE);
    CHECK(m[1].pa == 0x100000 && m[1].size_bytes == 0x100000 && m[1].page_size == PAGE_SIZE);
    CHECK(m[2].pa == 0x200000 && m[2].size_bytes == 0x7f000000 - 0x200000);
    CHECK(m[2].page_size == 2 * MiB);
    CHECK(m[3].pa == 0x7f000000 && m[3].size_bytes == MiB && m[3].page_size == PAGE_SIZE);
    CHECK(m[4].pa == 0x7f200000 && m[4].page_size == 2 * MiB && m[4].size_bytes == 0xe00000);
    CHECK(m[5].pa == 4 * GiB && m[5].page_size == GiB && m[5].va == HHDM + 4 * GiB);
    for (uint32_t i = 0; i < count; i++)
        CHECK(m[i].flags == CANOPY_MAP_W && m[i].owner == CANOPY_OWNER_HHDM);

    /* Without 1 GiB pages the same map gives 2 MiB runs instead. */
    n = mapplan_hhdm(q35, Q35_N, va_init(HHDM), pa_init(LIMIT), PAGE_SIZE_2M, r, 10, NULL);
    count = 0;
    for (uint32_t i = 0; i < n; i++)
        CHECK(mapplan_manifest_add(&r[i], m, 32, &count));
    CHECK(count == 6);
    CHECK(m[5].pa == 4 * GiB && m[5].page_size == 2 * MiB && m[5].size_bytes == GiB);
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
    RUN(test_mapplan_hhdm_maps_ram_only);
    RUN(test_mapplan_hhdm_skips_empty_ranges);
    RUN(test_mapplan_hhdm_clips_at_the_limit);
    RUN(test_mapplan_hhdm_protect_cuts_aliases);
    RUN(test_mapplan_framebuffer_and_ram);
    RUN(test_mapplan_manifest_splits_like_pt_map);
    RUN(test_mapplan_manifest_tail_and_capacity);
    RUN(test_mapplan_manifest_never_merges_across_requests);
    RUN(test_mapplan_sort_and_overlap);
}
