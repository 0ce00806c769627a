/*
 * claim_test: where stage 1 puts its claims (load/claim.c), against a
 * page-by-page oracle on random maps, and the page-table bound it claims
 * (claim_pt_bound) against the exact need once the firmware has cut holes in
 * the RAM the plan was made from.
 *
 * The fixed map most tests use (MiB):
 *
 *   0    1               8   9          12            16        20
 *   | us | usable        |res| usable   | usable (WB)  |  hole   | usable ...
 *                             \____ one run: touching ____/
 */
#include <stdlib.h>
#include <string.h>

#include <canopy/rng.h>
#include <vmm/pt.h>

#include "../load/claim.h"
#include "../load/mapplan.h"
#include "check.h"

#define MiB (1024ull * 1024)
#define GiB (1024 * MiB)

typedef struct canopy_mem_range range_t;

static const range_t fixed_map[] = {
    {.base = 0, .page_count = 0x9f, .type = CANOPY_MEM_USABLE},
    {.base = 1 * MiB, .page_count = 7 * MiB / PAGE_SIZE, .type = CANOPY_MEM_USABLE},
    {.base = 8 * MiB, .page_count = MiB / PAGE_SIZE, .type = CANOPY_MEM_RESERVED},
    {.base = 9 * MiB, .page_count = 3 * MiB / PAGE_SIZE, .type = CANOPY_MEM_USABLE},
    {.base = 12 * MiB, .page_count = 4 * MiB / PAGE_SIZE, .type = CANOPY_MEM_USABLE, .efi_attr = 8},
    {.base = 20 * MiB, .page_count = 4 * MiB / PAGE_SIZE, .type = CANOPY_MEM_RECLAIMABLE},
};
#define FIXED_N (sizeof(fixed_map) / sizeof(fixed_map[0]))

static void test_claim_place_takes_the_highest_fit(void)
{
    uint64_t pa;
    CHECK(claim_place(fixed_map, FIXED_N, MiB, GiB, NULL, 0, 4, &pa) && pa == 16 * MiB - 0x4000);
    struct claim_span avoid[] = {{16 * MiB - 0x2000, 2}};
    CHECK(claim_place(fixed_map, FIXED_N, MiB, GiB, avoid, 1, 4, &pa) && pa == 16 * MiB - 0x6000);
    /* Across the two touching ranges at 12 MiB, below a span. */
    struct claim_span high[] = {{13 * MiB, 3 * MiB / PAGE_SIZE}};
    CHECK(claim_place(fixed_map, FIXED_N, MiB, GiB, high, 1, MiB / PAGE_SIZE * 4, &pa) &&
          pa == 9 * MiB);
    /* Too big for the run at 9 MiB: the one below the reserved MiB. */
    CHECK(claim_place(fixed_map, FIXED_N, MiB, GiB, high, 1, MiB / PAGE_SIZE * 5, &pa) &&
          pa == 3 * MiB);
    /* Reclaimable memory is not free; nothing fits 8 MiB whole. */
    CHECK(!claim_place(fixed_map, FIXED_N, MiB, GiB, NULL, 0, 8 * MiB / PAGE_SIZE, &pa));
}

static void test_claim_place_keeps_inside_lo_and_hi(void)
{
    uint64_t pa;
    /* Below 1 MiB never; the window ends where hi cuts a run. */
    CHECK(claim_place(fixed_map, FIXED_N, MiB, 10 * MiB, NULL, 0, 1, &pa) &&
          pa == 10 * MiB - PAGE_SIZE);
    CHECK(claim_place(fixed_map, FIXED_N, MiB, 9 * MiB, NULL, 0, 1, &pa) &&
          pa == 8 * MiB - PAGE_SIZE);
    struct claim_span all[] = {{MiB, 7 * MiB / PAGE_SIZE}};
    CHECK(!claim_place(fixed_map, FIXED_N, MiB, 9 * MiB, all, 1, 1, &pa)); /* not in [0, 1M) */
    CHECK(claim_place(fixed_map, FIXED_N, 0, 9 * MiB, all, 1, 1, &pa) && pa < MiB);
}

static void test_claim_free_pages_counts_around_the_spans(void)
{
    uint64_t largest;
    uint64_t free = claim_free_pages(fixed_map, FIXED_N, MiB, GiB, NULL, 0, &largest);
    CHECK_EQ(free, (7 + 7) * MiB / PAGE_SIZE);
    CHECK_EQ(largest, 7 * MiB / PAGE_SIZE);
    struct claim_span avoid[] = {{10 * MiB, MiB / PAGE_SIZE}, {2 * MiB, 1}, {16 * MiB - 0x1000, 1}};
    free = claim_free_pages(fixed_map, FIXED_N, MiB, GiB, avoid, 3, &largest);
    CHECK_EQ(free, (14 - 1) * MiB / PAGE_SIZE - 2);
    CHECK_EQ(largest, 6 * MiB / PAGE_SIZE - 1); /* [2M + 4K, 8M) */
    CHECK_EQ(claim_free_pages(fixed_map, FIXED_N, MiB, GiB, NULL, 0, NULL), free + 0x102u);
}

/* ---- against a page-by-page oracle ------------------------------------- */

#define ORACLE_PAGES 512 /* the random maps cover [0, 2 MiB) */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(uint64_t n)
{
    return xorshift64_next(&rng_state) % n;
}

static bool page_free(const range_t *r, uint32_t n, const struct claim_span *avoid, uint32_t an,
                      uint64_t lo, uint64_t hi, uint64_t page)
{
    uint64_t pa = page * PAGE_SIZE;
    if (pa < lo || pa >= hi)
        return false;
    bool usable = false;
    for (uint32_t i = 0; i < n; i++)
        if (pa >= r[i].base && pa < r[i].base + r[i].page_count * PAGE_SIZE)
            usable = r[i].type == CANOPY_MEM_USABLE;
    for (uint32_t k = 0; k < an; k++)
        if (pa >= avoid[k].pa && pa < avoid[k].pa + avoid[k].page_count * PAGE_SIZE)
            usable = false;
    return usable;
}

static void test_claim_place_matches_an_oracle_on_random_maps(void)
{
    static const uint32_t types[] = {CANOPY_MEM_USABLE, CANOPY_MEM_USABLE, CANOPY_MEM_RECLAIMABLE,
                                     CANOPY_MEM_RESERVED};
    unsigned bad = 0;
    for (unsigned round = 0; round < 3000 && bad < 3; round++) {
        range_t r[24];
        uint32_t n = 0;
        for (uint64_t page = rnd(4); page < ORACLE_PAGES && n < 24;) {
            uint64_t len = 1 + rnd(48);
            if (page + len > ORACLE_PAGES)
                len = ORACLE_PAGES - page;
            r[n++] = (range_t){.base = page * PAGE_SIZE,
                               .page_count = len,
                               .type = types[rnd(4)],
                               .efi_attr = rnd(2)};
            page += len + (rnd(3) == 0 ? rnd(4) : 0); /* holes now and then */
        }
        struct claim_span avoid[6];
        uint32_t an = (uint32_t)rnd(7);
        for (uint32_t k = 0; k < an; k++) /* disjoint: each in its own eighth of the space */
            avoid[k] =
                (struct claim_span){(k * ORACLE_PAGES / 6 + rnd(20)) * PAGE_SIZE, 1 + rnd(30)};
        uint64_t lo = rnd(64) * PAGE_SIZE, hi = (ORACLE_PAGES - rnd(64)) * PAGE_SIZE;
        uint64_t want_pages = 1 + rnd(40);

        /* Oracle: the highest page run of want_pages free pages. */
        uint64_t want = UINT64_MAX, total = 0, longest = 0, cur = 0;
        for (uint64_t p = 0; p < ORACLE_PAGES; p++) {
            bool f = page_free(r, n, avoid, an, lo, hi, p);
            cur = f ? cur + 1 : 0;
            total += f;
            if (cur > longest)
                longest = cur;
            if (cur >= want_pages)
                want = (p + 1 - want_pages) * PAGE_SIZE;
        }
        uint64_t got = UINT64_MAX, largest = 0;
        if (!claim_place(r, n, lo, hi, avoid, an, want_pages, &got))
            got = UINT64_MAX;
        uint64_t free = claim_free_pages(r, n, lo, hi, avoid, an, &largest);
        if (got != want || free != total || largest != longest) {
            CHECKF(false,
                   "round %u: place 0x%llx (want 0x%llx), free %llu (want %llu), run %llu "
                   "(want %llu)",
                   round, (unsigned long long)got, (unsigned long long)want,
                   (unsigned long long)free, (unsigned long long)total, (unsigned long long)largest,
                   (unsigned long long)longest);
            bad++;
        }
    }
    CHECK_EQ(bad, 0u);
}

/* ---- the page-table bound ----------------------------------------------- */

/* The page-table frames stage 1's plan needs for this map: what main.c's plan_mappings builds. */
static uint64_t tables_needed(const range_t *r, uint32_t n, uint64_t max_page, unsigned levels)
{
    enum { CAP = 160 };
    uint64_t hhdm = levels == 5 ? CANOPY_HHDM_BASE_5L : CANOPY_HHDM_BASE_4L;
    struct map_request req[CAP];
    uint32_t k = mapplan_hhdm(r, n, va_init(hhdm), pa_init(CANOPY_DYNAMIC_BASE - hhdm), max_page,
                              req, CAP - 8, NULL);
    if (k == UINT32_MAX)
        abort();
    /* .text and .rodata read-only in the direct map; then the segments and the stack. */
    if (!mapplan_hhdm_protect(req, &k, CAP - 8, pa_init(0x7e400000), 0x27000, 0) ||
        !mapplan_hhdm_protect(req, &k, CAP - 8, pa_init(0x7e427000), 0xa000, 0))
        abort();
    req[k++] = mapplan_request_4k(va_init(0xffffffff80000000ull), pa_init(0x7e400000), 0x27000,
                                  CANOPY_MAP_X, CANOPY_OWNER_KERNEL_IMAGE);
    req[k++] = mapplan_request_4k(va_init(0xffffffff80027000ull), pa_init(0x7e427000), 0xa000, 0,
                                  CANOPY_OWNER_KERNEL_IMAGE);
    req[k++] = mapplan_request_4k(va_init(0xffffffff80031000ull), pa_init(0x7e431000), 0x40000,
                                  CANOPY_MAP_W, CANOPY_OWNER_KERNEL_IMAGE);
    req[k++] = mapplan_request_4k(va_init(CANOPY_DYNAMIC_BASE + PAGE_SIZE), pa_init(0x7e300000),
                                  0x10000, CANOPY_MAP_W, CANOPY_OWNER_STACK);
    mapplan_sort(req, k);
    struct pt_span spans[CAP];
    for (uint32_t i = 0; i < k; i++)
        spans[i] = (struct pt_span){req[i].va, req[i].pa, req[i].size, req[i].max_page_size};
    uint64_t tables = 0;
    if (pt_min_tables(spans, k, levels, &tables) != PT_OK)
        abort();
    return tables;
}

/* Cuts a non-RAM range of `pages` at `pa` into the sorted map (inside one range). */
static void cut_hole(range_t *r, uint32_t *n, uint64_t pa, uint64_t pages, uint32_t type)
{
    for (uint32_t i = 0; i < *n; i++) {
        uint64_t end = r[i].base + r[i].page_count * PAGE_SIZE;
        if (pa < r[i].base || pa + pages * PAGE_SIZE > end)
            continue;
        range_t before = r[i], after = r[i];
        before.page_count = (pa - r[i].base) / PAGE_SIZE;
        after.base = pa + pages * PAGE_SIZE;
        after.page_count = (end - after.base) / PAGE_SIZE;
        range_t hole = {.base = pa, .page_count = pages, .type = type};
        range_t pieces[3];
        uint32_t m = 0;
        if (before.page_count)
            pieces[m++] = before;
        pieces[m++] = hole;
        if (after.page_count)
            pieces[m++] = after;
        memmove(&r[i + m], &r[i + 1], (*n - i - 1) * sizeof(*r));
        memcpy(&r[i], pieces, m * sizeof(*r));
        *n += m - 1;
        return;
    }
}

/*
 * The argument in claim.h, tested: a q35-like map with 6 GiB, the plan's
 * need from it, then up to CLAIM_PT_HOLES runtime-services allocations cut
 * into its RAM anywhere (page-sized or large, at or off 2 MiB and 1 GiB
 * boundaries), and stage 1's claims turning usable memory into loader memory.
 * The final map never needs more than claim_pt_bound of the first.
 */
static void test_the_page_table_bound_holds_when_the_firmware_cuts_holes(void)
{
    static const uint64_t max_pages[] = {PAGE_SIZE_1G, PAGE_SIZE_2M};
    unsigned over = 0;
    uint64_t worst = 0;
    for (unsigned round = 0; round < 600; round++) {
        uint64_t max_page = max_pages[round % 2];
        unsigned levels = round % 5 == 4 ? 5 : 4;
        range_t r[64] = {
            {.base = 0x1000, .page_count = 0x9e, .type = CANOPY_MEM_USABLE},
            {.base = MiB, .page_count = 0x7f000, .type = CANOPY_MEM_USABLE},
            {.base = 0x80000000ull, .page_count = 0x200, .type = CANOPY_MEM_ACPI_NVS},
            {.base = 0x80200000ull, .page_count = 0x1fe00, .type = CANOPY_MEM_RECLAIMABLE},
            {.base = 0xb0000000ull, .page_count = 0x10000, .type = CANOPY_MEM_MMIO},
            {.base = 4 * GiB, .page_count = 0x100000, .type = CANOPY_MEM_USABLE},
        };
        uint32_t n = 6;
        uint64_t before = tables_needed(r, n, max_page, levels);
        unsigned holes = (unsigned)rnd(CLAIM_PT_HOLES + 1);
        for (unsigned h = 0; h < holes; h++) {
            const range_t *in = &r[rnd(n)];
            uint64_t at, pages;
            if (!canopy_mem_is_direct_mapped(in->type) || in->page_count < 8)
                continue;
            switch (rnd(3)) {
            case 0: /* a page or a few, anywhere */
                pages = 1 + rnd(4);
                at = in->base + rnd(in->page_count - pages) * PAGE_SIZE;
                break;
            case 1: /* around a 2 MiB boundary */
                pages = 1 + rnd(600);
                at = align_up(in->base + rnd(in->page_count / 2) * PAGE_SIZE, PAGE_SIZE_2M) -
                     rnd(3) * PAGE_SIZE;
                break;
            default: /* around a 1 GiB boundary */
                pages = 1 + rnd(0x40000);
                at = align_up(in->base + rnd(in->page_count / 2) * PAGE_SIZE, PAGE_SIZE_1G) -
                     rnd(5) * PAGE_SIZE_2M;
                break;
            }
            if (at < in->base || at + pages * PAGE_SIZE > in->base + in->page_count * PAGE_SIZE)
                continue;
            cut_hole(r, &n, at, pages, rnd(2) ? CANOPY_MEM_RUNTIME : CANOPY_MEM_RESERVED);
        }
        /* The claims: usable memory becomes loader memory, which the direct map covers alike. */
        cut_hole(r, &n, 0x7e300000, 0x200, CANOPY_MEM_RECLAIMABLE);
        uint64_t after = tables_needed(r, n, max_page, levels);
        if (after > before && after - before > worst)
            worst = after - before;
        if (after > claim_pt_bound(before) && over++ < 3)
            CHECKF(false, "round %u: %llu tables before, %llu after %u holes", round,
                   (unsigned long long)before, (unsigned long long)after, holes);
    }
    CHECK_EQ(over, 0u);
    printf("  the most tables holes added in a round: %llu (bound %u)\n", (unsigned long long)worst,
           CLAIM_PT_PER_HOLE * CLAIM_PT_HOLES);
}

void claim_tests(void)
{
    RUN(test_claim_place_takes_the_highest_fit);
    RUN(test_claim_place_keeps_inside_lo_and_hi);
    RUN(test_claim_free_pages_counts_around_the_spans);
    RUN(test_claim_place_matches_an_oracle_on_random_maps);
    RUN(test_the_page_table_bound_holds_when_the_firmware_cuts_holes);
}
