/*
 * Host tests for the mapping manifest (kernel/mm/manifest.c): that it splits
 * and merges exactly as vmm/src/pt.c does, so `pt check` finds no difference after
 * any sequence of mirrored pt_map / pt_unmap / pt_protect calls, and that
 * `pt check` names each kind of difference when the two disagree.
 *
 * Page tables live in a host buffer standing in for physical memory at
 * TABLE_BASE (host_pt.h); the mapped frames are only numbers.
 */
#include <kernel/manifest.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>
#include <canopy/page.h>
#include <canopy/rng.h>

#include "host_pt.h"

unsigned check_passed, check_failed;

#define K4 PAGE_SIZE
#define M2 PAGE_SIZE_2M
#define G1 PAGE_SIZE_1G

#define HIGH 0xffff800000000000ull

/* Simulated physical address of the table buffer (host_pt.h). */
#define TABLE_BASE 0x40000000ull

static void new_pt(struct pt *pt)
{
    host_pt_new(pt, true);
}

/* ---- a manifest with growable storage ------------------------------------------------------ */

static bool grow_allowed = true;

static bool grow(void *ctx, struct manifest *m, uint32_t need)
{
    (void)ctx;
    if (!grow_allowed)
        return false;
    uint32_t cap = m->capacity * 2 > need ? m->capacity * 2 : need;
    struct canopy_mapping *e = realloc(m->entries, cap * sizeof(*e));
    if (!e)
        return false;
    m->entries = e;
    m->capacity = cap;
    return true;
}

static void new_manifest(struct manifest *m)
{
    *m = (struct manifest){
        .entries = malloc(4 * sizeof(struct canopy_mapping)), .capacity = 4, .grow = grow};
}

static uint64_t compare(const struct manifest *m, const struct pt *pt)
{
    out_clear();
    return manifest_set_compare(m, pt, sink, NULL);
}

static uint32_t pt_attrs(uint16_t flags)
{
    return flags; /* CANOPY_MAP_W/X/U/G are PT_W/X/U/G */
}

/* ---- directed tests ------------------------------------------------------------------------ */

static void test_add_splits_like_pt_map(void)
{
    struct manifest m;
    new_manifest(&m);
    /* 4K pages up to the 2 MiB boundary, 2M pages to 1 GiB, one 1G page, 2M, then 4K. */
    uint64_t va = HIGH + G1 - 3 * M2 - 2 * K4, size = 2 * K4 + 3 * M2 + G1 + M2 + K4;
    CHECK(manifest_set_add(&m, va, va - HIGH, size, G1, CANOPY_MAP_W, CANOPY_OWNER_HHDM));
    CHECK(m.count == 5);
    CHECK(m.entries[0].page_size == K4 && m.entries[0].size_bytes == 2 * K4);
    CHECK(m.entries[1].page_size == M2 && m.entries[1].size_bytes == 3 * M2);
    CHECK(m.entries[2].page_size == G1 && m.entries[2].va == HIGH + G1);
    CHECK(m.entries[3].page_size == M2 && m.entries[4].page_size == K4);
    struct pt pt;
    new_pt(&pt);
    CHECK(pt_map(&pt, va_init(va), pa_init(va - HIGH), size, PT_W, G1) == PT_OK);
    CHECK(compare(&m, &pt) == 0);
    CHECK(strcmp(out, "pt check: OK (5 mappings)\n") == 0);
    const char *why = NULL;
    CHECK(manifest_set_check(&m, &why) && why == NULL);
    free(m.entries);
}

static void test_add_refuses_bad_ranges(void)
{
    struct manifest m;
    new_manifest(&m);
    CHECK(manifest_set_add(&m, HIGH, 0, 4 * K4, K4, 0, CANOPY_OWNER_TEST));
    CHECK(!manifest_set_add(&m, HIGH + 3 * K4, 0x100000, K4, K4, 0, 0));    /* overlaps */
    CHECK(!manifest_set_add(&m, HIGH + 5 * K4 + 1, 0, K4, K4, 0, 0));       /* misaligned */
    CHECK(!manifest_set_add(&m, HIGH + 8 * K4, 0, 0, K4, 0, 0));            /* empty */
    CHECK(!manifest_set_add(&m, UINT64_MAX - K4 + 1, 0, 2 * K4, K4, 0, 0)); /* wraps */
    CHECK(!manifest_set_add(&m, HIGH + 8 * K4, 0, K4, 8192, 0, 0));         /* page size */
    CHECK(!manifest_set_add(&m, HIGH + 8 * K4, 0, K4, K4, 0x80, 0));        /* flags */
    CHECK(m.count == 1 && m.entries[0].size_bytes == 4 * K4);
    free(m.entries);
}

static void test_unmap_inside_a_1g_page(void)
{
    struct manifest m;
    new_manifest(&m);
    struct pt pt;
    new_pt(&pt);
    CHECK(manifest_set_add(&m, HIGH, 0, G1, G1, CANOPY_MAP_W, CANOPY_OWNER_HHDM));
    CHECK(pt_map(&pt, va_init(HIGH), pa_init(0), G1, PT_W, G1) == PT_OK);
    uint64_t hole = HIGH + 5 * M2 + 7 * K4;
    CHECK(manifest_set_remove(&m, hole, K4));
    CHECK(pt_unmap(&pt, va_init(hole), K4) == PT_OK);
    /* 2M x5 | 4K x7 | (hole) | 4K x504 | 2M x506 */
    CHECK(m.count == 4);
    CHECK(m.entries[0].page_size == M2 && m.entries[0].size_bytes == 5 * M2);
    CHECK(m.entries[1].page_size == K4 && m.entries[1].size_bytes == 7 * K4);
    CHECK(m.entries[2].va == hole + K4 && m.entries[2].size_bytes == 504 * K4);
    CHECK(m.entries[3].page_size == M2 && m.entries[3].size_bytes == 506 * M2);
    CHECK(compare(&m, &pt) == 0);
    free(m.entries);
}

static void test_protect_leaves_unchanged_pages_whole(void)
{
    struct manifest m;
    new_manifest(&m);
    struct pt pt;
    new_pt(&pt);
    CHECK(manifest_set_add(&m, HIGH, 0, 2 * M2, M2, CANOPY_MAP_W, CANOPY_OWNER_HHDM));
    CHECK(pt_map(&pt, va_init(HIGH), pa_init(0), 2 * M2, PT_W, M2) == PT_OK);
    /* Same flags over a part of a 2M page: nothing splits, in pt or in the manifest. */
    CHECK(manifest_set_protect(&m, HIGH + K4, K4, CANOPY_MAP_W));
    CHECK(pt_protect(&pt, va_init(HIGH + K4), K4, PT_W) == PT_OK);
    CHECK(m.count == 1 && compare(&m, &pt) == 0);
    /* Read-only over one 4K page of the second 2M page: that page splits. */
    CHECK(manifest_set_protect(&m, HIGH + M2 + K4, K4, 0));
    CHECK(pt_protect(&pt, va_init(HIGH + M2 + K4), K4, 0) == PT_OK);
    CHECK(m.count == 4);
    CHECK(compare(&m, &pt) == 0);
    free(m.entries);
}

static void test_failed_growth_changes_nothing(void)
{
    struct manifest m;
    new_manifest(&m); /* capacity 4 */
    CHECK(manifest_set_add(&m, HIGH, 0, G1, G1, CANOPY_MAP_W, CANOPY_OWNER_HHDM));
    for (uint64_t i = 0; i < 3; i++)
        CHECK(manifest_set_add(&m, HIGH + 2 * G1 + 2 * i * K4, 0x10000000 + 2 * i * K4, K4, K4, 0,
                               CANOPY_OWNER_TEST));
    CHECK(m.count == 4 && m.capacity == 4);
    grow_allowed = false;
    /* A 4K hole in the 1G page needs three more entries: refused, nothing changed. */
    CHECK(!manifest_set_remove(&m, HIGH + K4, K4));
    CHECK(!manifest_set_protect(&m, HIGH + K4, K4, 0));
    CHECK(m.count == 4 && m.entries[0].size_bytes == G1 && m.entries[0].page_size == G1 &&
          m.entries[0].flags == CANOPY_MAP_W);
    /* Removing a whole entry, or protecting to the same flags, needs no room even when full. */
    CHECK(manifest_set_protect(&m, HIGH + K4, K4, CANOPY_MAP_W));
    CHECK(manifest_set_remove(&m, HIGH + 2 * G1, K4));
    CHECK(m.count == 3);
    grow_allowed = true;
    CHECK(manifest_set_remove(&m, HIGH + K4, K4));
    CHECK(m.count == 5 && m.capacity > 4);
    CHECK(m.entries[0].page_size == K4 && m.entries[0].size_bytes == K4);
    CHECK(m.entries[1].va == HIGH + 2 * K4 && m.entries[1].size_bytes == 510 * K4);
    CHECK(m.entries[2].page_size == M2 && m.entries[2].size_bytes == 511 * M2);
    free(m.entries);
}

static void test_compare_names_each_difference(void)
{
    struct manifest m;
    new_manifest(&m);
    struct pt pt;
    new_pt(&pt);
    /* Recorded and mapped the same: a 4K run. */
    CHECK(manifest_set_add(&m, HIGH, 0x100000, 4 * K4, K4, CANOPY_MAP_W, CANOPY_OWNER_HEAP));
    CHECK(pt_map(&pt, va_init(HIGH), pa_init(0x100000), 4 * K4, PT_W, K4) == PT_OK);
    CHECK(compare(&m, &pt) == 0);
    /* missing: recorded, not mapped */
    CHECK(manifest_set_add(&m, HIGH + M2, 0x200000, 2 * K4, K4, 0, CANOPY_OWNER_STACK));
    /* extra: mapped, not recorded */
    CHECK(pt_map(&pt, va_init(HIGH + 2 * M2), pa_init(0x300000), K4, 0, K4) == PT_OK);
    /* wrong PA */
    CHECK(manifest_set_add(&m, HIGH + 3 * M2, 0x400000, K4, K4, 0, CANOPY_OWNER_VMM));
    CHECK(pt_map(&pt, va_init(HIGH + 3 * M2), pa_init(0x500000), K4, 0, K4) == PT_OK);
    /* wrong page size: recorded as 4K pages, mapped as one 2M page */
    CHECK(manifest_set_add(&m, HIGH + 4 * M2, 0x600000, M2, K4, 0, CANOPY_OWNER_VMM));
    CHECK(pt_map(&pt, va_init(HIGH + 4 * M2), pa_init(0x600000), M2, 0, M2) == PT_OK);
    /* wrong flags */
    CHECK(manifest_set_add(&m, HIGH + 6 * M2, 0x900000, K4, K4, CANOPY_MAP_X, CANOPY_OWNER_TEST));
    CHECK(pt_map(&pt, va_init(HIGH + 6 * M2), pa_init(0x900000), K4, PT_W, K4) == PT_OK);
    /* W+X, recorded as such: only the W+X line */
    CHECK(manifest_set_add(&m, HIGH + 7 * M2, 0xa00000, 3 * K4, K4, CANOPY_MAP_W | CANOPY_MAP_X,
                           CANOPY_OWNER_TEST));
    CHECK(pt_map(&pt, va_init(HIGH + 7 * M2), pa_init(0xa00000), 3 * K4, PT_W | PT_X, K4) == PT_OK);
    /* wrong memory type: recorded write-combining, mapped uncached */
    CHECK(manifest_set_add(&m, HIGH + 8 * M2, 0xc0000000, 2 * K4, K4, CANOPY_MAP_W | CANOPY_MAP_WC,
                           CANOPY_OWNER_FRAMEBUFFER));
    CHECK(pt_map(&pt, va_init(HIGH + 8 * M2), pa_init(0xc0000000), 2 * K4, PT_W | PT_CACHE_UC,
                 K4) == PT_OK);

    CHECK(compare(&m, &pt) == 7);
    CHECK(strstr(out, "pt check: missing ffff800000200000-ffff800000202000 8K (stack): "
                      "not mapped\n") != NULL);
    CHECK(strstr(out, "pt check: extra   ffff800000400000-ffff800000401000 4K: mapped to "
                      "0000000000300000, not in the manifest\n") != NULL);
    CHECK(strstr(out, "pt check: wrong PA ffff800000600000-ffff800000601000 4K (vmm): maps "
                      "0000000000500000, manifest 0000000000400000\n") != NULL);
    CHECK(strstr(out, "pt check: wrong page size ffff800000800000-ffff800000a00000 2M (vmm): "
                      "2M pages, manifest 4K\n") != NULL);
    CHECK(strstr(out, "pt check: wrong flags ffff800000c00000-ffff800000c01000 4K (test): "
                      "RW- kernel WB, manifest R-X kernel WB\n") != NULL);
    CHECK(strstr(out, "pt check: wrong flags ffff800001000000-ffff800001002000 8K (framebuffer): "
                      "RW- kernel UC, manifest RW- kernel WC\n") != NULL);
    CHECK(strstr(out, "pt check: W+X ffff800000e00000-ffff800000e03000 12K (3 pages)\n") != NULL);
    CHECK(strstr(out, "pt check: 7 differences\n") != NULL);
    free(m.entries);
}

/* ---- mirrored random operations ------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t n)
{
    uint64_t r = xorshift64_next(&rng_state);

    return n ? r % n : 0;
}

/* A range in a 4 GiB window, aligned to a random granularity. */
static void random_range(uint64_t *va, uint64_t *size, uint64_t *gran)
{
    static const uint64_t grans[] = {K4, K4, M2, G1};
    static const uint64_t most[] = {64, 600, 8, 2};
    unsigned g = (unsigned)rnd(4);
    *gran = grans[g];
    *size = (1 + rnd(most[g])) * grans[g];
    *va = HIGH + rnd(4 * G1 / grans[g]) * grans[g];
}

static void test_random_ops_stay_equal(void)
{
    static const uint16_t flag_sets[] = {0, CANOPY_MAP_W, CANOPY_MAP_X, CANOPY_MAP_W | CANOPY_MAP_G,
                                         CANOPY_MAP_G};
    struct manifest m;
    new_manifest(&m);
    struct pt pt;
    new_pt(&pt);
    unsigned mismatches = 0, maps = 0, refused = 0;
    for (unsigned step = 0; step < 1000 && mismatches < 5; step++) {
        uint64_t va, size, gran;
        random_range(&va, &size, &gran);
        uint16_t flags = flag_sets[rnd(5)];
        unsigned op = (unsigned)rnd(10);
        if (op < 5) {
            uint64_t pa = rnd(64) * (gran > M2 ? G1 : M2) + (gran == K4 ? rnd(512) * K4 : 0);
            uint64_t max = (uint64_t[]){K4, M2, G1}[rnd(3)];
            enum pt_status st = pt_map(&pt, va_init(va), pa_init(pa), size, pt_attrs(flags), max);
            bool added = manifest_set_add(&m, va, pa, size, (uint32_t)max, flags, 1);
            if ((st == PT_OK) != added || (st != PT_OK && st != PT_ERR_EXISTS)) {
                fprintf(stderr, "step %u: pt_map %s, manifest %s\n", step, pt_status_str(st),
                        added ? "added" : "refused");
                mismatches++;
            }
            maps += added;
            refused += !added;
        } else if (op < 8) {
            CHECK(pt_unmap(&pt, va_init(va), size) == PT_OK);
            CHECK(manifest_set_remove(&m, va, size));
        } else {
            CHECK(pt_protect(&pt, va_init(va), size, pt_attrs(flags)) == PT_OK);
            CHECK(manifest_set_protect(&m, va, size, flags));
        }
        const char *why = NULL;
        if (!manifest_set_check(&m, &why)) {
            fprintf(stderr, "step %u: manifest_set_check: %s\n", step, why);
            mismatches++;
        }
        uint64_t wx = 0;
        for (uint32_t i = 0; i < m.count; i++)
            wx += (m.entries[i].flags & (CANOPY_MAP_W | CANOPY_MAP_X)) ==
                  (CANOPY_MAP_W | CANOPY_MAP_X);
        /* W+X never occurs: the flag sets have no W|X. */
        if (wx != 0 || compare(&m, &pt) != 0) {
            fprintf(stderr, "step %u (op %u, va %llx size %llx):\n%s", step, op,
                    (unsigned long long)va, (unsigned long long)size, out);
            mismatches++;
        }
    }
    CHECK(mismatches == 0);
    CHECK(maps > 100 && refused > 10); /* both paths were exercised */
    pt_destroy(&pt);
    free(m.entries);
}

int main(void)
{
    host_pt_open(TABLE_BASE);
    test_add_splits_like_pt_map();
    test_add_refuses_bad_ranges();
    test_unmap_inside_a_1g_page();
    test_protect_leaves_unchanged_pages_whole();
    test_failed_growth_changes_nothing();
    test_compare_names_each_difference();
    test_random_ops_stay_equal();
    host_pt_close();
    return check_finish();
}
