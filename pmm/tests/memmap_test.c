/*
 * memmap_test: the memory-map normaliser against hand-written firmware maps
 * with every quirk real firmware shows (edk2's 48-byte descriptors, unsorted
 * and overlapping entries, partial pages, thousands of entries, RAM above
 * 4 GiB, MMIO far above RAM) and against a page-by-page painter on random maps.
 */
#include "pmm_sim.h"

#include <canopy/rng.h>

unsigned check_passed, check_failed;

typedef struct canopy_mem_range range_t;

static uint64_t end_of(const range_t *r)
{
    return r->base + r->page_count * PAGE_SIZE;
}

/* The output is sorted, non-overlapping, page aligned and has no mergeable neighbours. */
static int well_formed(const range_t *r, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (r[i].base % PAGE_SIZE || r[i].page_count == 0)
            return 0;
        if (i > 0) {
            if (r[i].base < end_of(&r[i - 1]))
                return 0;
            if (r[i].base == end_of(&r[i - 1]) && r[i].type == r[i - 1].type &&
                r[i].efi_type == r[i - 1].efi_type && r[i].efi_attr == r[i - 1].efi_attr)
                return 0;
        }
    }
    return 1;
}

static void test_efi_types_map_to_canopy_types(void)
{
    REQUIRE_EQ(memmap_type_of(EFI_CONVENTIONAL, EFI_ATTR_WB), CANOPY_MEM_USABLE);
    REQUIRE_EQ(memmap_type_of(EFI_LOADER_CODE, 0), CANOPY_MEM_RECLAIMABLE);
    REQUIRE_EQ(memmap_type_of(EFI_LOADER_DATA, 0), CANOPY_MEM_RECLAIMABLE);
    REQUIRE_EQ(memmap_type_of(EFI_BS_CODE, 0), CANOPY_MEM_RECLAIMABLE);
    REQUIRE_EQ(memmap_type_of(EFI_BS_DATA, 0), CANOPY_MEM_RECLAIMABLE);
    REQUIRE_EQ(memmap_type_of(EFI_ACPI_RECLAIM, 0), CANOPY_MEM_ACPI_RECLAIM);
    REQUIRE_EQ(memmap_type_of(EFI_ACPI_NVS, 0), CANOPY_MEM_ACPI_NVS);
    REQUIRE_EQ(memmap_type_of(EFI_RT_CODE, 0), CANOPY_MEM_RUNTIME);
    REQUIRE_EQ(memmap_type_of(EFI_RT_DATA, 0), CANOPY_MEM_RUNTIME);
    REQUIRE_EQ(memmap_type_of(EFI_MMIO, 0), CANOPY_MEM_MMIO);
    REQUIRE_EQ(memmap_type_of(EFI_MMIO_PORT, 0), CANOPY_MEM_MMIO);
    REQUIRE_EQ(memmap_type_of(EFI_PERSISTENT, 0), CANOPY_MEM_PERSISTENT);
    REQUIRE_EQ(memmap_type_of(EFI_UNUSABLE, 0), CANOPY_MEM_BAD);
    REQUIRE_EQ(memmap_type_of(EFI_RESERVED, 0), CANOPY_MEM_RESERVED);
    REQUIRE_EQ(memmap_type_of(EFI_PAL_CODE, 0), CANOPY_MEM_RESERVED);
    REQUIRE_EQ(memmap_type_of(EFI_UNACCEPTED, 0), CANOPY_MEM_RESERVED);
    REQUIRE_EQ(memmap_type_of(16, 0), CANOPY_MEM_RESERVED);
    REQUIRE_EQ(memmap_type_of(0x80000001u, 0), CANOPY_MEM_RESERVED);
    REQUIRE_EQ(memmap_type_of(0xffffffffu, 0), CANOPY_MEM_RESERVED);
    /* The runtime attribute wins over any type (OVMF's flash is MMIO + runtime). */
    REQUIRE_EQ(memmap_type_of(EFI_MMIO, EFI_ATTR_RUNTIME), CANOPY_MEM_RUNTIME);
    REQUIRE_EQ(memmap_type_of(EFI_CONVENTIONAL, EFI_ATTR_RUNTIME | EFI_ATTR_WB),
               CANOPY_MEM_RUNTIME);
}

static void test_type_names_cover_every_type(void)
{
    REQUIRE(strcmp(memmap_type_name(CANOPY_MEM_USABLE), "usable") == 0);
    REQUIRE(strcmp(memmap_type_name(CANOPY_MEM_RECLAIMABLE), "reclaimable") == 0);
    REQUIRE(strcmp(memmap_type_name(CANOPY_MEM_BAD), "bad") == 0);
    REQUIRE(strcmp(memmap_type_name(0), "unknown") == 0);
    REQUIRE(strcmp(memmap_type_name(1000), "unknown") == 0);
    for (uint32_t t = CANOPY_MEM_USABLE; t <= CANOPY_MEM_BAD; t++)
        REQUIRE(strcmp(memmap_type_name(t), "unknown") != 0);
    REQUIRE(strcmp(memmap_efi_type_name(EFI_CONVENTIONAL), "conventional") == 0);
    REQUIRE(strcmp(memmap_efi_type_name(EFI_BS_DATA), "boot-data") == 0);
    REQUIRE(strcmp(memmap_efi_type_name(EFI_UNACCEPTED), "unaccepted") == 0);
    REQUIRE(strcmp(memmap_efi_type_name(16), "unknown") == 0);
    REQUIRE(strcmp(memmap_efi_type_name(0x80000000u), "os-defined") == 0);
}

static void test_restrictiveness_order_is_the_documented_one(void)
{
    static const uint32_t order[] = {
        CANOPY_MEM_USABLE,     CANOPY_MEM_RECLAIMABLE, CANOPY_MEM_ACPI_RECLAIM,
        CANOPY_MEM_PERSISTENT, CANOPY_MEM_BAD,         CANOPY_MEM_RESERVED,
        CANOPY_MEM_ACPI_NVS,   CANOPY_MEM_MMIO,        CANOPY_MEM_RUNTIME,
    };
    for (size_t i = 1; i < sizeof(order) / sizeof(order[0]); i++)
        REQUIRE(memmap_restrictiveness(order[i - 1]) < memmap_restrictiveness(order[i]));
}

static void test_bad_map_arguments_are_rejected(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000, 16, 0);
    range_t out[8];
    uint32_t n = 99;
    REQUIRE_EQ(memmap_normalise(m.buf, efimap_size(&m), 48, 2, out, 8, &n), PMM_ERR_BAD_MAP);
    REQUIRE(n == 0);
    REQUIRE_EQ(memmap_normalise(m.buf, efimap_size(&m), 32, 1, out, 8, &n), PMM_ERR_BAD_MAP);
    REQUIRE_EQ(memmap_normalise(m.buf, efimap_size(&m) - 1, 48, 1, out, 8, &n), PMM_ERR_BAD_MAP);
    REQUIRE_EQ(memmap_normalise(m.buf, 0, 48, 1, out, 8, &n), PMM_ERR_BAD_MAP);
    REQUIRE_EQ(memmap_normalise(NULL, 48, 48, 1, out, 8, &n), PMM_ERR_BAD_MAP);
    REQUIRE(memmap_capacity_for(480, 48) == 30);
    REQUIRE(memmap_capacity_for(480, 39) == 0);
    REQUIRE_EQ(memmap_normalise(m.buf, efimap_size(&m), 48, 1, out, 8, &n), PMM_OK);
    REQUIRE(n == 1);
    efimap_free(&m);
}

/* OVMF-like: RAM above 4 GiB listed first, nothing sorted, 48-byte descriptors. */
static void test_unsorted_48_byte_map_comes_out_sorted(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000000ull, 0x40000, EFI_ATTR_WB); /* 1 GiB at 4 GiB */
    efimap_add(&m, EFI_ACPI_NVS, 0x7f000000, 0x100, 0);
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000, 0x700, EFI_ATTR_WB);
    efimap_add(&m, EFI_BS_CODE, 0, 1, EFI_ATTR_WB);
    efimap_add(&m, EFI_CONVENTIONAL, 0x1000, 0x9f, EFI_ATTR_WB);
    efimap_add(&m, EFI_MMIO, 0xffc00000, 0x400, EFI_ATTR_RUNTIME);
    range_t *r;
    uint32_t n;
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    REQUIRE(n == 6);
    REQUIRE(well_formed(r, n));
    REQUIRE(r[0].base == 0 && r[0].page_count == 1 && r[0].type == CANOPY_MEM_RECLAIMABLE);
    REQUIRE(r[1].base == 0x1000 && r[1].page_count == 0x9f && r[1].type == CANOPY_MEM_USABLE);
    REQUIRE(r[1].efi_attr == EFI_ATTR_WB && r[1].efi_type == EFI_CONVENTIONAL);
    REQUIRE(r[2].base == 0x100000 && r[2].type == CANOPY_MEM_USABLE);
    REQUIRE(r[3].base == 0x7f000000 && r[3].type == CANOPY_MEM_ACPI_NVS);
    REQUIRE(r[4].base == 0xffc00000 && r[4].type == CANOPY_MEM_RUNTIME &&
            r[4].efi_type == EFI_MMIO && r[4].efi_attr == EFI_ATTR_RUNTIME);
    REQUIRE(r[5].base == 0x100000000ull && r[5].page_count == 0x40000);
    free(r);
    efimap_free(&m);
}

static void test_descriptor_size_is_honoured_not_assumed(void)
{
    /* 40, 48 and an odd 72: the same map must come out the same. */
    size_t sizes[] = {40, 48, 72};
    range_t first[8];
    uint32_t first_n = 0;
    for (size_t s = 0; s < 3; s++) {
        struct efimap m;
        efimap_init(&m, sizes[s]);
        efimap_add(&m, EFI_CONVENTIONAL, 0x200000, 10, 0);
        efimap_add(&m, EFI_LOADER_DATA, 0x100000, 3, 0);
        efimap_add(&m, EFI_RESERVED, 0x300000, 1, 0);
        range_t *r;
        uint32_t n;
        REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
        REQUIRE(n == 3);
        REQUIRE(r[0].base == 0x100000 && r[0].page_count == 3 && r[0].efi_type == EFI_LOADER_DATA);
        if (s == 0) {
            memcpy(first, r, n * sizeof(*r));
            first_n = n;
        } else {
            REQUIRE(n == first_n && memcmp(first, r, n * sizeof(*r)) == 0);
        }
        free(r);
        efimap_free(&m);
    }
}

/*
 * A reserved range nested inside usable RAM (Limine's B550 report):
 *
 *   usable   |-------------------------------------|
 *   reserved            |------|
 *   result   |- usable -|-res--|----- usable ------|
 */
static void test_nested_reserved_range_splits_usable(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000, 0x100, 0);
    efimap_add(&m, EFI_RESERVED, 0x150000, 0x10, 0);
    range_t *r;
    uint32_t n;
    struct memmap_stats st;
    uint32_t cap = memmap_capacity_for(efimap_size(&m), 48);
    r = calloc(cap, sizeof(*r));
    REQUIRE_EQ(memmap_normalise_stats(m.buf, efimap_size(&m), 48, 1, r, cap, &n, &st), PMM_OK);
    REQUIRE(n == 3);
    REQUIRE(r[0].base == 0x100000 && r[0].page_count == 0x50 && r[0].type == CANOPY_MEM_USABLE);
    REQUIRE(r[1].base == 0x150000 && r[1].page_count == 0x10 && r[1].type == CANOPY_MEM_RESERVED);
    REQUIRE(r[2].base == 0x160000 && r[2].page_count == 0xa0 && r[2].type == CANOPY_MEM_USABLE);
    REQUIRE(st.overlaps == 1 && st.descriptors == 2);
    free(r);
    efimap_free(&m);
}

static void test_overlap_goes_to_the_more_restrictive_type(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    /* Partial overlaps in both directions, and a runtime range over MMIO. */
    efimap_add(&m, EFI_BS_DATA, 0x100000, 0x20, 0);      /* [1M, 1M+128K) */
    efimap_add(&m, EFI_CONVENTIONAL, 0x110000, 0x20, 0); /* overlaps its top half */
    efimap_add(&m, EFI_ACPI_RECLAIM, 0x0f8000, 0x10, 0); /* overlaps its bottom */
    efimap_add(&m, EFI_MMIO, 0xfe000000, 0x100, 0);
    efimap_add(&m, EFI_RT_DATA, 0xfe080000, 0x10, EFI_ATTR_RUNTIME);
    range_t *r;
    uint32_t n;
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    REQUIRE(well_formed(r, n));
    REQUIRE(n == 6);
    REQUIRE(r[0].base == 0xf8000 && r[0].page_count == 0x10 &&
            r[0].type == CANOPY_MEM_ACPI_RECLAIM);
    REQUIRE(r[1].base == 0x108000 && r[1].page_count == 0x18 &&
            r[1].type == CANOPY_MEM_RECLAIMABLE);
    REQUIRE(r[2].base == 0x120000 && r[2].page_count == 0x10 && r[2].type == CANOPY_MEM_USABLE);
    REQUIRE(r[3].base == 0xfe000000 && r[3].page_count == 0x80 && r[3].type == CANOPY_MEM_MMIO);
    REQUIRE(r[4].base == 0xfe080000 && r[4].page_count == 0x10 && r[4].type == CANOPY_MEM_RUNTIME);
    REQUIRE(r[5].base == 0xfe090000 && r[5].page_count == 0x70 && r[5].type == CANOPY_MEM_MMIO);
    free(r);
    efimap_free(&m);
}

static void test_identical_duplicates_collapse_and_ties_are_order_independent(void)
{
    range_t *a, *b;
    uint32_t na, nb;
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_LOADER_CODE, 0x200000, 8, 0);
    efimap_add(&m, EFI_BS_CODE, 0x200000, 8, 0);
    efimap_add(&m, EFI_BS_CODE, 0x200000, 8, 0);
    REQUIRE_EQ(efimap_normalise(&m, &a, &na), PMM_OK);
    efimap_free(&m);
    efimap_init(&m, 48);
    efimap_add(&m, EFI_BS_CODE, 0x200000, 8, 0);
    efimap_add(&m, EFI_LOADER_CODE, 0x200000, 8, 0);
    REQUIRE_EQ(efimap_normalise(&m, &b, &nb), PMM_OK);
    REQUIRE(na == 1 && nb == 1);
    REQUIRE(memcmp(a, b, sizeof(*a)) == 0);
    REQUIRE(a[0].efi_type == EFI_BS_CODE && a[0].page_count == 8);
    free(a);
    free(b);
    efimap_free(&m);
}

static void test_partial_pages_trim_usable_inward_and_widen_reserved(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_CONVENTIONAL, 0x100800, 4, 0); /* [0x100800, 0x104800) */
    efimap_add(&m, EFI_ACPI_NVS, 0x200800, 1, 0);     /* [0x200800, 0x201800) */
    efimap_add(&m, EFI_LOADER_DATA, 0x300010, 1, 0);  /* less than one whole page */
    range_t *r;
    uint32_t n;
    struct memmap_stats st;
    uint32_t cap = memmap_capacity_for(efimap_size(&m), 48);
    r = calloc(cap, sizeof(*r));
    REQUIRE_EQ(memmap_normalise_stats(m.buf, efimap_size(&m), 48, 1, r, cap, &n, &st), PMM_OK);
    REQUIRE(n == 2);
    REQUIRE(r[0].base == 0x101000 && r[0].page_count == 3 && r[0].type == CANOPY_MEM_USABLE);
    REQUIRE(r[1].base == 0x200000 && r[1].page_count == 2 && r[1].type == CANOPY_MEM_ACPI_NVS);
    REQUIRE(st.trimmed == 3 && st.empty == 1);
    free(r);
    efimap_free(&m);
}

static void test_zero_page_entries_are_dropped(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000, 0, 0);
    efimap_add(&m, EFI_RESERVED, 0x100000, 0, 0);
    efimap_add(&m, EFI_CONVENTIONAL, 0x200000, 2, 0);
    range_t *r;
    uint32_t n;
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    REQUIRE(n == 1 && r[0].base == 0x200000 && r[0].page_count == 2);
    free(r);
    efimap_free(&m);
    /* A map of nothing but empty entries is empty, not an error. */
    efimap_init(&m, 48);
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000, 0, 0);
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    REQUIRE(n == 0);
    free(r);
    efimap_free(&m);
}

static void test_entries_wrapping_past_2_pow_64_are_clipped(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_RESERVED, 0xfffffffffff00000ull, 0x1000, 0); /* wraps */
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000, UINT64_MAX, 0);      /* pages overflow */
    efimap_add(&m, EFI_MMIO, 0xfffffffffffff000ull, 1, 0);          /* the very last page */
    range_t *r;
    uint32_t n;
    struct memmap_stats st;
    uint32_t cap = memmap_capacity_for(efimap_size(&m), 48);
    r = calloc(cap, sizeof(*r));
    REQUIRE_EQ(memmap_normalise_stats(m.buf, efimap_size(&m), 48, 1, r, cap, &n, &st), PMM_OK);
    REQUIRE(st.clipped == 3);
    REQUIRE(well_formed(r, n));
    REQUIRE(n == 2);
    REQUIRE(r[0].base == 0x100000 && r[0].type == CANOPY_MEM_USABLE);
    REQUIRE(end_of(&r[0]) == 0xfffffffffff00000ull);
    REQUIRE(r[1].base == 0xfffffffffff00000ull && r[1].type == CANOPY_MEM_RESERVED);
    REQUIRE(r[1].page_count == 0xff);
    free(r);
    efimap_free(&m);
}

static void test_adjacent_equal_ranges_merge_and_different_ones_do_not(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000, 0x10, EFI_ATTR_WB);
    efimap_add(&m, EFI_CONVENTIONAL, 0x110000, 0x10, EFI_ATTR_WB);
    efimap_add(&m, EFI_CONVENTIONAL, 0x120000, 0x10, 0); /* other attributes */
    efimap_add(&m, EFI_BS_DATA, 0x130000, 0x10, 0);
    efimap_add(&m, EFI_BS_DATA, 0x150000, 0x10, 0); /* a hole before it */
    range_t *r;
    uint32_t n;
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    REQUIRE(n == 4);
    REQUIRE(r[0].base == 0x100000 && r[0].page_count == 0x20);
    REQUIRE(r[1].base == 0x120000 && r[1].efi_attr == 0);
    REQUIRE(r[2].base == 0x130000 && r[3].base == 0x150000);
    free(r);
    efimap_free(&m);
}

/* Real boards produce hundreds of entries; split descriptors give thousands. */
static void test_thousands_of_entries_with_no_cap(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    const uint32_t count = 5000;
    /* Reverse order, alternating types, every third one overlapping its neighbour. */
    for (uint32_t i = count; i-- > 0;) {
        uint64_t base = 0x100000 + (uint64_t)i * 0x4000;
        uint32_t type = (i % 2) ? EFI_CONVENTIONAL : EFI_BS_DATA;
        efimap_add(&m, type, base, (i % 3 == 0) ? 5 : 4, 0);
    }
    range_t *r;
    uint32_t n;
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    REQUIRE(well_formed(r, n));
    REQUIRE(n == count);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t base = 0x100000 + (uint64_t)i * 0x4000;
        /* Entry i+1 loses its first page to entry i where that overlaps and wins. */
        int overlapped = i > 0 && (i - 1) % 3 == 0;
        uint32_t type = (i % 2) ? CANOPY_MEM_USABLE : CANOPY_MEM_RECLAIMABLE;
        REQUIRE(r[i].type == type);
        if (overlapped && type == CANOPY_MEM_USABLE) {
            REQUIRE(r[i].base == base + 0x1000 && r[i].page_count == 3);
        } else {
            REQUIRE(r[i].base == base);
            REQUIRE(r[i].page_count == ((i % 3 == 0 && i % 2 == 0) ? 5u : 4u));
        }
    }
    free(r);
    efimap_free(&m);
}

static void test_ram_above_4gib_and_mmio_far_above(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    efimap_add(&m, EFI_MMIO, 0x7000000000000ull, 0x40000000, 0);   /* 4 TiB of BAR space */
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000000ull, 0x300000, 0); /* 12 GiB at 4 GiB */
    efimap_add(&m, EFI_CONVENTIONAL, 0x100000, 0x7ff00, 0);        /* 2 GiB low */
    range_t *r;
    uint32_t n;
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    REQUIRE(n == 3 && well_formed(r, n));
    REQUIRE(r[1].base == 0x100000000ull && end_of(&r[1]) == 0x400000000ull);
    REQUIRE(r[2].type == CANOPY_MEM_MMIO && r[2].page_count == 0x40000000);
    free(r);
    efimap_free(&m);
}

/* Ranges above the physical address width are dropped, a straddling one cut at the limit. */
static void test_clip_drops_what_lies_above_the_limit(void)
{
    const uint64_t limit = 1ull << 39; /* a CPU with 39 physical address bits */
    range_t r[] = {
        {.base = 0x100000, .page_count = 0x7ff00, .type = CANOPY_MEM_USABLE},
        {.base = limit - 0x200000, .page_count = 0x400, .type = CANOPY_MEM_USABLE},
        {.base = limit + 0x1000, .page_count = 0x10, .type = CANOPY_MEM_MMIO},
        {.base = 0xfffffffffff00000ull, .page_count = 0x100, .type = CANOPY_MEM_RESERVED},
    };
    uint32_t n = 4;
    uint64_t dropped = memmap_clip(r, &n, limit);
    CHECK_EQ(n, 2);
    CHECK(well_formed(r, n));
    CHECK(r[0].base == 0x100000 && r[0].page_count == 0x7ff00);
    CHECK(r[1].base == limit - 0x200000 && end_of(&r[1]) == limit);
    CHECK_EQ(dropped, 0x200000 + 0x10000 + 0x100000);
    /* Nothing above: nothing changes; everything above: nothing is left. */
    CHECK_EQ(memmap_clip(r, &n, limit), 0);
    CHECK_EQ(n, 2);
    CHECK_EQ(memmap_clip(r, &n, 0), 0x7ff00ull * PAGE_SIZE + 0x200000);
    CHECK_EQ(n, 0);
    /* A range ending exactly at 2^64 and a limit at the top page. */
    range_t top[] = {{.base = 0xfffffffffff00000ull, .page_count = 0x100, .type = CANOPY_MEM_MMIO}};
    n = 1;
    CHECK_EQ(memmap_clip(top, &n, 0xfffffffffffff000ull), PAGE_SIZE);
    CHECK(n == 1 && top[0].page_count == 0xff);
}

static void test_too_small_output_reports_no_space_and_stays_inside(void)
{
    struct efimap m;
    efimap_init(&m, 48);
    for (uint32_t i = 0; i < 10; i++)
        efimap_add(&m, i % 2 ? EFI_CONVENTIONAL : EFI_RESERVED, 0x100000 + i * 0x2000, 1, 0);
    range_t buf[40];
    memset(buf, 0x5a, sizeof(buf));
    uint32_t n = 7;
    /* Fewer slots than descriptors: refused before anything is written. */
    REQUIRE_EQ(memmap_normalise(m.buf, efimap_size(&m), 48, 1, buf, 9, &n), PMM_ERR_NO_SPACE);
    REQUIRE(n == 0);
    /* Enough for the input but not for the 10 output ranges plus work space. */
    REQUIRE_EQ(memmap_normalise(m.buf, efimap_size(&m), 48, 1, buf, 15, &n), PMM_ERR_NO_SPACE);
    for (size_t i = 15; i < 40; i++) {
        unsigned char *p = (unsigned char *)&buf[i];
        for (size_t j = 0; j < sizeof(buf[i]); j++)
            REQUIRE(p[j] == 0x5a);
    }
    REQUIRE_EQ(memmap_normalise(m.buf, efimap_size(&m), 48, 1, buf, 30, &n), PMM_OK);
    REQUIRE(n == 10 && well_formed(buf, n));
    efimap_free(&m);
}

/* ---- against a page painter ------------------------------------------ */

static unsigned ref_rank(uint32_t t)
{
    static const uint32_t order[] = {
        CANOPY_MEM_USABLE,     CANOPY_MEM_RECLAIMABLE, CANOPY_MEM_ACPI_RECLAIM,
        CANOPY_MEM_PERSISTENT, CANOPY_MEM_BAD,         CANOPY_MEM_RESERVED,
        CANOPY_MEM_ACPI_NVS,   CANOPY_MEM_MMIO,        CANOPY_MEM_RUNTIME,
    };
    for (unsigned i = 0; i < 9; i++)
        if (order[i] == t)
            return i;
    return 99;
}

struct ref_desc {
    uint32_t efi_type;
    uint64_t start, pages, attr;
};

static int ref_beats(const struct ref_desc *a, const struct ref_desc *b)
{
    uint32_t ta = memmap_type_of(a->efi_type, a->attr), tb = memmap_type_of(b->efi_type, b->attr);
    if (ref_rank(ta) != ref_rank(tb))
        return ref_rank(ta) > ref_rank(tb);
    if (a->efi_type != b->efi_type)
        return a->efi_type > b->efi_type;
    return a->attr > b->attr;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    return xorshift64_next(&rng_state);
}

static void test_random_maps_match_a_page_painter(void)
{
    enum { PAGES = 96, MAXD = 24 };
    static const uint32_t types[] = {EFI_CONVENTIONAL, EFI_CONVENTIONAL, EFI_BS_DATA,
                                     EFI_LOADER_CODE,  EFI_RESERVED,     EFI_ACPI_RECLAIM,
                                     EFI_ACPI_NVS,     EFI_MMIO,         EFI_RT_CODE,
                                     EFI_UNUSABLE,     EFI_PERSISTENT,   0x80000005u};
    for (int round = 0; round < 3000; round++) {
        struct ref_desc d[MAXD];
        int nd = 1 + (int)(rng() % MAXD);
        struct efimap m;
        efimap_init(&m, 40 + 8 * (rng() % 3));
        for (int i = 0; i < nd; i++) {
            d[i].efi_type = types[rng() % (sizeof(types) / sizeof(types[0]))];
            d[i].start = (rng() % PAGES) * PAGE_SIZE + ((rng() % 4 == 0) ? rng() % PAGE_SIZE : 0);
            d[i].pages = rng() % 12;
            d[i].attr = (rng() % 8 == 0) ? EFI_ATTR_RUNTIME : (rng() % 2) * EFI_ATTR_WB;
            efimap_add(&m, d[i].efi_type, d[i].start, d[i].pages, d[i].attr);
        }
        /* Paint: each page takes the strongest descriptor that covers it after trimming. */
        int owner[PAGES + 16];
        for (int p = 0; p < PAGES + 16; p++) {
            owner[p] = -1;
            for (int i = 0; i < nd; i++) {
                uint32_t t = memmap_type_of(d[i].efi_type, d[i].attr);
                uint64_t s = d[i].start, e = d[i].start + d[i].pages * PAGE_SIZE;
                uint64_t ps, pe;
                if (t == CANOPY_MEM_USABLE || t == CANOPY_MEM_RECLAIMABLE) {
                    ps = pages_for_bytes(s);
                    pe = e / PAGE_SIZE;
                } else {
                    ps = s / PAGE_SIZE;
                    pe = pages_for_bytes(e);
                }
                if (d[i].pages > 0 && (uint64_t)p >= ps && (uint64_t)p < pe &&
                    (owner[p] < 0 || ref_beats(&d[i], &d[owner[p]])))
                    owner[p] = i;
            }
        }
        range_t expect[PAGES + 16];
        uint32_t ne = 0;
        for (int p = 0; p < PAGES + 16; p++) {
            if (owner[p] < 0)
                continue;
            const struct ref_desc *w = &d[owner[p]];
            uint32_t t = memmap_type_of(w->efi_type, w->attr);
            if (ne > 0 && end_of(&expect[ne - 1]) == (uint64_t)p * PAGE_SIZE &&
                expect[ne - 1].type == t && expect[ne - 1].efi_type == w->efi_type &&
                expect[ne - 1].efi_attr == w->attr) {
                expect[ne - 1].page_count++;
                continue;
            }
            expect[ne].base = (uint64_t)p * PAGE_SIZE;
            expect[ne].page_count = 1;
            expect[ne].type = t;
            expect[ne].efi_type = w->efi_type;
            expect[ne].efi_attr = w->attr;
            ne++;
        }
        range_t *r;
        uint32_t n;
        REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
        if (n != ne || memcmp(r, expect, n * sizeof(*r)) != 0) {
            fprintf(stderr, "round %d: %u ranges, painter says %u\n", round, n, ne);
            for (uint32_t i = 0; i < n; i++)
                fprintf(stderr, "  got    %#llx +%llu %s\n", (unsigned long long)r[i].base,
                        (unsigned long long)r[i].page_count, memmap_type_name(r[i].type));
            for (uint32_t i = 0; i < ne; i++)
                fprintf(stderr, "  expect %#llx +%llu %s\n", (unsigned long long)expect[i].base,
                        (unsigned long long)expect[i].page_count, memmap_type_name(expect[i].type));
        }
        int same = n == ne && memcmp(r, expect, n * sizeof(*r)) == 0;
        free(r);
        efimap_free(&m);
        REQUIRE(same);
    }
}

int main(void)
{
    RUN(test_efi_types_map_to_canopy_types);
    RUN(test_type_names_cover_every_type);
    RUN(test_restrictiveness_order_is_the_documented_one);
    RUN(test_bad_map_arguments_are_rejected);
    RUN(test_unsorted_48_byte_map_comes_out_sorted);
    RUN(test_descriptor_size_is_honoured_not_assumed);
    RUN(test_nested_reserved_range_splits_usable);
    RUN(test_overlap_goes_to_the_more_restrictive_type);
    RUN(test_identical_duplicates_collapse_and_ties_are_order_independent);
    RUN(test_partial_pages_trim_usable_inward_and_widen_reserved);
    RUN(test_zero_page_entries_are_dropped);
    RUN(test_entries_wrapping_past_2_pow_64_are_clipped);
    RUN(test_adjacent_equal_ranges_merge_and_different_ones_do_not);
    RUN(test_thousands_of_entries_with_no_cap);
    RUN(test_ram_above_4gib_and_mmio_far_above);
    RUN(test_clip_drops_what_lies_above_the_limit);
    RUN(test_too_small_output_reports_no_space_and_stays_inside);
    RUN(test_random_maps_match_a_page_painter);
    return check_finish();
}
