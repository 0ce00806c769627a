/*
 * mapx_test: host checks of the fault layer's memory-map rewriting, on a map
 * shaped like OVMF's (q35, 512 MiB). The property that matters most: no
 * rewriting reports memory usable that was not usable before (or the layer's
 * own allocation), page by page; and the rewritten maps really are what each
 * scenario claims (strides, order, counts, overlaps).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>

#include "mapx.h"

unsigned check_passed, check_failed;

/* A map like OVMF's: unsorted, with loader data (stage 1) next to conventional memory. */
static const struct mapx_desc base_map[] = {
    {.type = 7, .phys = 0x100000000ull, .pages = 0x40000, .attr = 0xf},
    {.type = 4, .phys = 0x0, .pages = 1, .attr = 0xf},
    {.type = 7, .phys = 0x1000, .pages = 0x9f, .attr = 0xf},
    {.type = 7, .phys = 0x100000, .pages = 0x700, .attr = 0xf},
    {.type = 10, .phys = 0x800000, .pages = 8, .attr = 0xf},
    {.type = 7, .phys = 0x808000, .pages = 0x1f000, .attr = 0xf},
    {.type = 2, .phys = 0x1f808000, .pages = 0x300, .attr = 0xf},
    {.type = 1, .phys = 0x1fb08000, .pages = 0x40, .attr = 0xf},
    {.type = 4, .phys = 0x1fb48000, .pages = 0x400, .attr = 0xf},
    {.type = 6, .phys = 0x1ff48000, .pages = 0x10, .attr = 0x800000000000000full},
    {.type = 0, .phys = 0xffc00000ull, .pages = 0x400, .attr = 0x8000000000000001ull},
};
#define BASE_COUNT (sizeof(base_map) / sizeof(base_map[0]))

/* Whether the page at `pa` is usable per the map, with the most restrictive entry winning. */
static bool usable(const struct mapx_desc *d, uint32_t n, uint64_t pa)
{
    bool any = false;
    for (uint32_t i = 0; i < n; i++) {
        if (pa < d[i].phys || pa >= d[i].phys + d[i].pages * PAGE_SIZE)
            continue;
        if (d[i].type != MAPX_EFI_CONVENTIONAL)
            return false;
        any = true;
    }
    return any;
}

/* Every page usable after the rewrite was usable before or lies in [own_lo, own_hi). */
static bool never_more_usable(const struct mapx_desc *out, uint32_t m, uint64_t own_lo,
                              uint64_t own_hi)
{
    for (uint32_t i = 0; i < m; i++) {
        for (uint64_t pa = out[i].phys; pa < out[i].phys + out[i].pages * PAGE_SIZE;
             pa += PAGE_SIZE) {
            if (pa >= own_lo && pa < own_hi)
                continue;
            if (usable(out, m, pa) && !usable(base_map, BASE_COUNT, pa))
                return false;
        }
    }
    return true;
}

static uint64_t usable_pages(const struct mapx_desc *d, uint32_t n)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        if (d[i].type == MAPX_EFI_CONVENTIONAL)
            total += d[i].pages;
    return total;
}

static struct mapx_desc out[1 << 16];

static void test_reorder(void)
{
    struct mapx_params p = {.kind = MAPX_REVERSE, .out_stride = 48};
    uint32_t m = mapx_transform(&p, base_map, BASE_COUNT, out, 1 << 16, NULL);
    CHECK(m == BASE_COUNT);
    CHECK(memcmp(&out[0], &base_map[BASE_COUNT - 1], sizeof(out[0])) == 0);
    CHECK(memcmp(&out[BASE_COUNT - 1], &base_map[0], sizeof(out[0])) == 0);

    p.kind = MAPX_SHUFFLE;
    p.seed = 0x5eed;
    m = mapx_transform(&p, base_map, BASE_COUNT, out, 1 << 16, NULL);
    CHECK(m == BASE_COUNT);
    /* A permutation: each input exactly once, and not the input order. */
    bool same_order = true;
    for (uint32_t i = 0; i < BASE_COUNT; i++) {
        unsigned seen = 0;
        for (uint32_t j = 0; j < m; j++)
            seen += memcmp(&out[j], &base_map[i], sizeof(out[j])) == 0;
        CHECK(seen == 1);
        same_order &= memcmp(&out[i], &base_map[i], sizeof(out[i])) == 0;
    }
    CHECK(!same_order);
    CHECK(mapx_transform(&p, base_map, BASE_COUNT, out, BASE_COUNT - 1, NULL) == UINT32_MAX);
}

static void test_split(void)
{
    struct mapx_params p = {.kind = MAPX_SPLIT, .out_stride = 48, .split_pages = 64};
    uint32_t m = mapx_transform(&p, base_map, BASE_COUNT, out, 1 << 16, NULL);
    CHECK(m != UINT32_MAX && m > 512);
    CHECK(usable_pages(out, m) == usable_pages(base_map, BASE_COUNT));
    CHECK(never_more_usable(out, m, 0, 0));
    for (uint32_t i = 0; i < m; i++)
        if (out[i].type == MAPX_EFI_CONVENTIONAL)
            CHECK(out[i].pages <= 64 && out[i].pages > 0);
    /* The pieces tile the original: consecutive, no gaps. */
    uint64_t next = 0x808000;
    for (uint32_t i = 0; i < m; i++)
        if (out[i].phys == next && out[i].type == MAPX_EFI_CONVENTIONAL)
            next += out[i].pages * PAGE_SIZE;
    CHECK(next == 0x808000 + 0x1f000 * PAGE_SIZE);
    CHECK(mapx_transform(&p, base_map, BASE_COUNT, out, 100, NULL) == UINT32_MAX);
}

static void test_overlap(void)
{
    /* The layer's own megabyte inside the loader-data descriptor at 0x1f808000. */
    struct mapx_params p = {.kind = MAPX_OVERLAP,
                            .out_stride = 48,
                            .own_base = 0x1f908000,
                            .own_pages = 256,
                            .canary_base = 0x1f988000,
                            .canary_pages = 128};
    struct mapx_overlay ov;
    uint32_t m = mapx_transform(&p, base_map, BASE_COUNT, out, 1 << 16, &ov);
    CHECK(m != UINT32_MAX);
    uint64_t own_lo = p.own_base, own_hi = p.own_base + 256 * PAGE_SIZE;
    CHECK(never_more_usable(out, m, own_lo, own_hi));
    /* The own range: usable below the canary, reserved in it; loader data around it stays. */
    CHECK(usable(out, m, own_lo));
    CHECK(usable(out, m, p.canary_base - PAGE_SIZE));
    CHECK(!usable(out, m, p.canary_base));
    CHECK(!usable(out, m, own_hi - PAGE_SIZE));
    CHECK(!usable(out, m, own_lo - PAGE_SIZE));
    CHECK(!usable(out, m, own_hi));
    /* Boot-services data over the largest usable descriptor's start, and its duplicate. */
    const uint64_t big = 0x100000000ull;
    CHECK(ov.bs_base == big && ov.bs_pages == 16);
    CHECK(!usable(out, m, big) && usable(out, m, big + 16 * PAGE_SIZE));
    CHECK(ov.dup_base == big && ov.dup_pages == 0x40000);
    unsigned copies = 0;
    for (uint32_t i = 0; i < m; i++)
        copies += out[i].type == 7 && out[i].phys == big && out[i].pages == 0x40000;
    CHECK(copies == 2);
    /* The straddle: across the end of a usable descriptor not followed by loader memory. */
    CHECK(ov.straddle_pages == 16);
    CHECK(ov.straddle_base == 0x100000 + 0x700 * PAGE_SIZE - 8 * PAGE_SIZE);
    CHECK(!usable(out, m, ov.straddle_base) && usable(out, m, ov.straddle_base - PAGE_SIZE));
    /* Outside every rewrite, the map is the same. */
    CHECK(usable(out, m, 0x808000) && !usable(out, m, 0xffc00000ull));
}

static void test_hide_low(void)
{
    /* One usable descriptor across the limit, so it must be cut there. */
    struct mapx_desc map[BASE_COUNT + 1];
    memcpy(map, base_map, sizeof(base_map));
    map[BASE_COUNT] = (struct mapx_desc){.type = 7, .phys = 0xfff00000ull, .pages = 0x200};
    struct mapx_params p = {.kind = MAPX_HIDE_LOW, .out_stride = 48, .limit = 1ull << 32};
    uint32_t m = mapx_transform(&p, map, BASE_COUNT + 1, out, 1 << 16, NULL);
    CHECK(m == BASE_COUNT + 2);
    CHECK(never_more_usable(out, m, 0, 0));
    CHECK(!usable(out, m, 0x808000) && !usable(out, m, 0xfffff000ull));
    CHECK(usable(out, m, 1ull << 32) && usable(out, m, 0x1000ff000ull));
    uint64_t low_pages = 0;
    for (uint32_t i = 0; i < m; i++)
        if (out[i].type == MAPX_EFI_BS_DATA && out[i].phys < (1ull << 32) &&
            out[i].phys + out[i].pages * PAGE_SIZE <= (1ull << 32))
            low_pages += out[i].pages;
    /* 0x9f + 0x700 + 0x1f000 + 0x100 usable pages were below 4 GiB, plus two BS pages. */
    CHECK(low_pages == 0x9f + 0x700 + 0x1f000 + 0x100 + 1 + 0x400);
    CHECK(mapx_transform(&p, map, BASE_COUNT + 1, out, BASE_COUNT + 1, NULL) == UINT32_MAX);
}

/* Memory that cannot exist, above a 40-bit physical address width, added usable. */
static void test_add_above(void)
{
    struct mapx_params p = {
        .kind = MAPX_ADD_ABOVE, .out_stride = 48, .limit = 1ull << 40, .above_pages = 0x40000};
    uint32_t m = mapx_transform(&p, base_map, BASE_COUNT, out, 1 << 16, NULL);
    CHECK(m == BASE_COUNT + 1);
    CHECK(memcmp(out, base_map, sizeof(base_map)) == 0);
    CHECK(out[BASE_COUNT].phys == 1ull << 40 && out[BASE_COUNT].pages == 0x40000);
    /* Nothing below the limit became usable. */
    CHECK(never_more_usable(out, m, 1ull << 40, (1ull << 40) + 0x40000 * PAGE_SIZE));
    CHECK(mapx_transform(&p, base_map, BASE_COUNT, out, BASE_COUNT, NULL) == UINT32_MAX);
}

static void test_strides(void)
{
    static uint8_t raw[BASE_COUNT * 80];
    static struct mapx_desc back[BASE_COUNT];
    mapx_encode(base_map, BASE_COUNT, 80, raw);
    CHECK(raw[40] == 0xA5 && raw[79] == 0xA5);
    uint64_t phys;
    memcpy(&phys, raw + 80 + 8, 8);
    CHECK(phys == base_map[1].phys);
    mapx_decode(raw, 80, BASE_COUNT, back);
    CHECK(memcmp(back, base_map, sizeof(back)) == 0);
}

int main(void)
{
    test_reorder();
    test_split();
    test_overlap();
    test_hide_low();
    test_add_above();
    test_strides();
    return check_finish();
}
