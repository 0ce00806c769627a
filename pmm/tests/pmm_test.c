/*
 * pmm_test: the buddy allocator over simulated physical memory (an anonymous
 * mapping with virt_offset = buffer - simulated base), built from synthetic
 * firmware maps through the normaliser, with pmm_check after every step and a
 * randomized run against a frame-by-frame model.
 *
 * The "PC" map most tests use (physical addresses):
 *
 *   0        1000     9f000  a0000   100000    800000   900000   a00000     4000000  4010000
 *   |bs code |  conv  | res  | hole  |  conv   | loader | bs data |   conv    | acpi   |
 *   \______________ first MiB: never handed out _____/                   state ^ (5 pages)
 *
 * plus MMIO at 0xfec00000 and 1 GiB of BAR space at 16 TiB (not tracked).
 */
#include "pmm_sim.h"
#include "pmm_model.h"

#include <canopy/rng.h>

unsigned check_passed, check_failed;

typedef struct canopy_mem_range range_t;

struct env {
    struct efimap m;
    range_t *r;
    uint32_t n;
    struct sim s;
    struct pmm p;
};

static enum pmm_status env_init(struct env *e, uint64_t sim_size)
{
    if (efimap_normalise(&e->m, &e->r, &e->n) != PMM_OK)
        abort();
    sim_open(&e->s, 0, sim_size);
    return pmm_init(&e->p, e->r, e->n, e->s.offset);
}

static void env_free(struct env *e)
{
    sim_close(&e->s);
    free(e->r);
    efimap_free(&e->m);
}

static void pc_map(struct efimap *m)
{
    efimap_init(m, 48);
    efimap_add(m, EFI_MMIO, 0x100000000000ull, 0x40000, 0);
    efimap_add(m, EFI_CONVENTIONAL, 0xa00000, 0x3600, EFI_ATTR_WB);
    efimap_add(m, EFI_BS_CODE, 0, 1, EFI_ATTR_WB);
    efimap_add(m, EFI_CONVENTIONAL, 0x1000, 0x9e, EFI_ATTR_WB);
    efimap_add(m, EFI_RESERVED, 0x9f000, 1, 0);
    efimap_add(m, EFI_CONVENTIONAL, 0x100000, 0x700, EFI_ATTR_WB);
    efimap_add(m, EFI_LOADER_DATA, 0x800000, 0x100, EFI_ATTR_WB);
    efimap_add(m, EFI_BS_DATA, 0x900000, 0x100, EFI_ATTR_WB);
    efimap_add(m, EFI_ACPI_RECLAIM, 0x4000000, 0x10, EFI_ATTR_WB);
    efimap_add(m, EFI_MMIO, 0xfec00000, 1, EFI_ATTR_RUNTIME);
}

#define PC_SIM_SIZE 0x4010000ull
/* The PC map's state region: the section table (padded to 64 bytes), 0x4000 bytes, the chunk index.
 */
#define PC_STATE_PAGES 5u

static void pc_env(struct env *e)
{
    pc_map(&e->m);
    if (env_init(e, PC_SIM_SIZE) != PMM_OK)
        abort();
}

/* A copy of the struct and the state array, to prove that a call changed nothing. */
struct snap {
    struct pmm p;
    unsigned char *state;
};

static void snap_take(struct snap *s, const struct pmm *p)
{
    s->p = *p;
    s->state = malloc(p->state_bytes);
    memcpy(s->state, (void *)(uintptr_t)(p->state + p->virt_offset), p->state_bytes);
}

static int snap_same(struct snap *s, const struct pmm *p)
{
    int same =
        memcmp(&s->p, p, sizeof(*p)) == 0 &&
        memcmp(s->state, (void *)(uintptr_t)(p->state + p->virt_offset), p->state_bytes) == 0;
    free(s->state);
    return same;
}

/* ---- init ------------------------------------------------------------- */

static void test_init_puts_every_frame_in_exactly_one_state(void)
{
    struct env e;
    pc_env(&e);
    REQUIRE_PMM(&e.p);
    REQUIRE(e.p.base_frame == 0);
    REQUIRE(e.p.frame_count == 0x4000); /* up to the end of RAM, not to the MMIO */
    REQUIRE(e.p.state_bytes == PC_STATE_PAGES * PAGE_SIZE);
    REQUIRE(counts_of(&e.p).free == 0x700 + 0x3600 - PC_STATE_PAGES);
    REQUIRE(counts_of(&e.p).reclaimable == 0x200);
    REQUIRE(counts_of(&e.p).used == PC_STATE_PAGES &&
            counts_of(&e.p).owner[CANOPY_OWNER_PMM] == PC_STATE_PAGES);
    REQUIRE(counts_of(&e.p).reserved == 0x100);
    REQUIRE(counts_of(&e.p).free + counts_of(&e.p).used + counts_of(&e.p).reclaimable +
                counts_of(&e.p).reserved ==
            e.p.frame_count);
    env_free(&e);
}

static void test_state_array_is_carved_from_usable_ram_and_owned_by_the_pmm(void)
{
    struct env e;
    pc_env(&e);
    REQUIRE(e.p.state >= 0xa00000 && e.p.state + e.p.state_bytes <= 0x4000000);
    for (uint64_t a = e.p.state; a < e.p.state + e.p.state_bytes; a += PAGE_SIZE) {
        REQUIRE_EQ(pmm_owner_of(&e.p, a), CANOPY_OWNER_PMM);
        REQUIRE(!pmm_is_free(&e.p, a));
    }
    /* It is never given back. */
    REQUIRE_EQ(pmm_free(&e.p, e.p.state, 2), PMM_ERR_NOT_OWNED);
    REQUIRE_EQ(pmm_free(&e.p, e.p.state, 0), PMM_ERR_NOT_OWNED);
    REQUIRE_EQ(pmm_free(&e.p, e.p.state + PAGE_SIZE, 0), PMM_ERR_NOT_OWNED);
    uint64_t x;
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_PMM, &x), PMM_ERR_INVALID);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void test_init_rejects_maps_it_cannot_use(void)
{
    struct pmm p;
    range_t r[3] = {
        {0x200000, 16, CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0},
        {0x100000, 16, CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0},
    };
    REQUIRE_EQ(pmm_init(&p, r, 0, 0), PMM_ERR_BAD_MAP);
    REQUIRE_EQ(pmm_init(&p, NULL, 1, 0), PMM_ERR_BAD_MAP);
    REQUIRE_EQ(pmm_init(&p, r, 2, 0), PMM_ERR_BAD_MAP); /* unsorted */
    r[0] = (range_t){0x100000, 16, CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0};
    r[1] = (range_t){0x10f000, 16, CANOPY_MEM_RESERVED, EFI_RESERVED, 0};
    REQUIRE_EQ(pmm_init(&p, r, 2, 0), PMM_ERR_BAD_MAP); /* overlapping */
    r[1] = (range_t){0x200800, 16, CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0};
    REQUIRE_EQ(pmm_init(&p, r, 2, 0), PMM_ERR_BAD_MAP); /* misaligned */
    r[1] = (range_t){0x200000, 0, CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0};
    REQUIRE_EQ(pmm_init(&p, r, 2, 0), PMM_ERR_BAD_MAP); /* empty range */
    r[1] = (range_t){0xfffffffffff00000ull, 0x200, CANOPY_MEM_RESERVED, EFI_RESERVED, 0};
    REQUIRE_EQ(pmm_init(&p, r, 2, 0), PMM_ERR_BAD_MAP); /* wraps */
    r[0] = (range_t){0x1000, 0x9f, CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0};
    REQUIRE_EQ(pmm_init(&p, r, 1, 0), PMM_ERR_BAD_MAP); /* RAM only below 1 MiB */
    r[0] = (range_t){0x100000, 16, CANOPY_MEM_MMIO, EFI_MMIO, 0};
    REQUIRE_EQ(pmm_init(&p, r, 1, 0), PMM_ERR_BAD_MAP); /* no RAM at all */
    /* RAM in one-page islands cannot hold a multi-page state array. */
    range_t isl[3] = {
        {0x100000, 1, CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0},
        {0x200000, 1, CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0},
        {0x40000000, 0x100, CANOPY_MEM_RECLAIMABLE, EFI_BS_DATA, 0},
    };
    REQUIRE_EQ(pmm_init(&p, isl, 3, 0), PMM_ERR_NOMEM);
    REQUIRE_EQ(pmm_check(&p, NULL, 0), PMM_ERR_CORRUPT); /* a failed init leaves no valid pmm */
}

static void test_tracking_ends_at_the_highest_ram_not_the_highest_mmio(void)
{
    struct env e;
    efimap_init(&e.m, 40);
    efimap_add(&e.m, EFI_MMIO, 0x3f0000000000ull, 0x100000, 0); /* 4 GiB of BARs at 63 TiB */
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000, 0x300, 0);
    efimap_add(&e.m, EFI_MMIO_PORT, 0xfffffffff0000000ull, 0x10000, 0);
    REQUIRE_EQ(env_init(&e, 0x400000), PMM_OK);
    REQUIRE(e.p.frame_count == 0x400);
    REQUIRE_EQ(e.p.state_bytes, PAGE_SIZE);
    REQUIRE_EQ(pmm_owner_of(&e.p, 0x3f0000000000ull), CANOPY_OWNER_NONE);
    REQUIRE(!pmm_is_free(&e.p, 0x3f0000000000ull));
    REQUIRE_EQ(pmm_free(&e.p, 0x3f0000000000ull, 0), PMM_ERR_NOT_OWNED);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

/* q35 with 8 GiB: 2 GiB low, the rest at 4 GiB; the buffer is touched only where written. */
static void test_ram_above_4gib_is_tracked_and_alloc_below_keeps_under_4gib(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000000ull, 0x100000, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000, 0x7ff00, 0);
    efimap_add(&e.m, EFI_RESERVED, 0xb0000000, 0x10000, 0);
    REQUIRE_EQ(env_init(&e, 0x200000000ull), PMM_OK);
    REQUIRE_PMM(&e.p);
    REQUIRE(e.p.frame_count == 0x200000);
    REQUIRE(e.p.state >= 0x100000000ull); /* the highest usable run */
    uint64_t a;
    REQUIRE_EQ(pmm_alloc(&e.p, PMM_MAX_ORDER, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a >= 0x100000000ull && a % GiB == 0);
    uint64_t b;
    REQUIRE_EQ(pmm_alloc_below(&e.p, 9, 0x100000000ull, CANOPY_OWNER_TEST, &b), PMM_OK);
    REQUIRE(b + 2 * MiB <= 0x100000000ull && b >= 0x100000);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(pmm_free(&e.p, a, PMM_MAX_ORDER), PMM_OK);
    REQUIRE_EQ(pmm_free(&e.p, b, 9), PMM_OK);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

/*
 * Memory the kernel cannot reach (beyond the direct map's 64 TiB with 4-level
 * paging) is not the PMM's. Scaled down: RAM up to 5 GiB, the reach at 2 GiB,
 * and simulated memory that ends at 2 GiB, so any write of the PMM beyond it
 * (the state array, a free block's links) would fault.
 */
static void test_init_below_tracks_nothing_past_the_limit(void)
{
    const uint64_t limit = 2 * GiB;
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000000ull, 0x40000, 0); /* 4-5 GiB: beyond */
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000, 0x1ff00, 0);       /* 1 MiB - 512 MiB */
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x40000000, 0x80000, 0);     /* 1-3 GiB: cut at 2 */
    efimap_add(&e.m, EFI_LOADER_DATA, 0xc0000000, 0x100, 0);        /* reclaimable, beyond */
    if (efimap_normalise(&e.m, &e.r, &e.n) != PMM_OK)
        abort();
    sim_open(&e.s, 0, limit);
    REQUIRE_EQ(pmm_init_below(&e.p, e.r, e.n, e.s.offset, limit), PMM_OK);
    REQUIRE_PMM(&e.p);
    CHECK((e.p.base_frame + e.p.frame_count) << PAGE_SHIFT <= limit);
    CHECK(e.p.state >= GiB && e.p.state + e.p.state_bytes <= limit);
    uint64_t below = (512 * MiB - MiB + GiB) >> PAGE_SHIFT;
    CHECK_EQ(counts_of(&e.p).free + counts_of(&e.p).used, below);
    CHECK_EQ(counts_of(&e.p).reclaimable, 0u);
    CHECK(!pmm_is_free(&e.p, limit) && !pmm_is_free(&e.p, 0x100000000ull));
    CHECK_EQ(pmm_owner_of(&e.p, 0xc0000000ull), CANOPY_OWNER_NONE);
    /* Everything it hands out lies below the limit, down to the last frame. */
    uint64_t a, got = 0;
    while (pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &a) == PMM_OK) {
        if (a >= limit) {
            CHECKF(false, "frame 0x%llx handed out beyond the limit", (unsigned long long)a);
            break;
        }
        got++;
    }
    CHECK_EQ(got, below - e.p.state_bytes / PAGE_SIZE);
    REQUIRE_PMM(&e.p);
    CHECK_EQ(pmm_reclaim(&e.p), 0u);
    env_free(&e);
}

static void test_adjacent_usable_ranges_with_other_attributes_form_one_buddy_run(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x200000, 0x100, 0);           /* [2M, 3M) */
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x300000, 0x100, EFI_ATTR_WB); /* [3M, 4M) */
    efimap_add(&e.m, EFI_RESERVED, 0x400000, 0x100, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x800000, 0x800, 0); /* the state array goes here */
    REQUIRE_EQ(env_init(&e, 0x1000000), PMM_OK);
    REQUIRE(e.n == 4);
    REQUIRE_PMM(&e.p); /* would report unmerged buddies at 2M and 3M */
    REQUIRE(pmm_is_free(&e.p, 0x200000) && pmm_is_free(&e.p, 0x3ff000));
    uint64_t a;
    REQUIRE_EQ(pmm_alloc_below(&e.p, 9, 0x400000, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a == 0x200000);
    env_free(&e);
}

/*
 * A sparse map: RAM at [0, 2 GiB) and [64 GiB, 66 GiB), nothing between.
 * The 62 GiB hole holds no RAM, so it costs its section table entries
 * (4 bytes per 128 MiB) and not a byte per frame:
 *
 *   0          2 GiB                                  64 GiB       66 GiB
 *   | 16 sections |   496 sections without state bytes   | 16 sections |
 *                                                          state region ^
 */
static void test_sparse_map_keeps_state_only_for_sections_with_ram(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, 64 * GiB, 2 * GiB / PAGE_SIZE, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0, 2 * GiB / PAGE_SIZE, 0);
    REQUIRE_EQ(env_init(&e, 66 * GiB), PMM_OK);
    REQUIRE_PMM(&e.p);
    const uint64_t usable = 4 * GiB / PAGE_SIZE; /* the frames the map calls usable */
    REQUIRE_EQ(e.p.frame_count, 66 * GiB / PAGE_SIZE);
    REQUIRE_EQ(e.p.section_count, 528u);
    REQUIRE_EQ(e.p.section_slots, 32u);
    REQUIRE_EQ(e.p.state_bytes, pmm_state_bytes(e.r, e.n, UINT64_MAX));
    /*
     * 32 sections of bytes, the 2112-byte table padded to 64, and the chunk
     * index: 1152 bytes per section and one summary word per indexed order.
     * 266 pages in all.
     */
    REQUIRE_EQ(e.p.index_offset, 2112 + 32 * PMM_SECTION_FRAMES);
    REQUIRE_EQ(e.p.state_bytes,
               page_up(2112 + 32 * PMM_SECTION_FRAMES + 32 * 1152 + PMM_INDEX_ORDER * 8));
    CHECKF(e.p.state_bytes + sizeof(struct pmm) <= usable * 105 / 100,
           "%llu bytes of state and %zu of struct pmm for %llu usable frames",
           (unsigned long long)e.p.state_bytes, sizeof(struct pmm), (unsigned long long)usable);
    REQUIRE(e.p.state >= 64 * GiB); /* the highest usable run */
    struct pmm_counts c = counts_of(&e.p);
    REQUIRE_EQ(c.free + c.used, usable - (PMM_LOW_RESERVED >> PAGE_SHIFT));
    REQUIRE_EQ(c.reserved, e.p.frame_count - c.free - c.used);

    /* The hole: reserved, never handed out, never freed. */
    REQUIRE(!pmm_is_free(&e.p, 10 * GiB) && !pmm_is_free(&e.p, 64 * GiB - PAGE_SIZE));
    REQUIRE_EQ(pmm_owner_of(&e.p, 10 * GiB), CANOPY_OWNER_NONE);
    REQUIRE_EQ(pmm_free(&e.p, 10 * GiB, 0), PMM_ERR_NOT_OWNED);
    REQUIRE_EQ(pmm_free(&e.p, 2 * GiB, 9), PMM_ERR_NOT_OWNED);

    /* Every 1 GiB block comes from one side or the other; none reaches into the hole. */
    uint64_t big[4], nbig = 0, a;
    while (nbig < 4 && pmm_alloc(&e.p, PMM_MAX_ORDER, CANOPY_OWNER_TEST, &a) == PMM_OK)
        big[nbig++] = a;
    REQUIRE_EQ(nbig, 2u); /* [1 GiB, 2 GiB) and [64 GiB, 65 GiB); the state sits in the last */
    for (uint64_t i = 0; i < nbig; i++)
        REQUIRE(big[i] == GiB || big[i] == 64 * GiB);
    REQUIRE(big[0] != big[1]);
    REQUIRE_PMM(&e.p);
    /* Below a limit in the low part, and above the hole through alloc_below's walk. */
    uint64_t lo, hi;
    REQUIRE_EQ(pmm_alloc_below(&e.p, 9, 2 * GiB, CANOPY_OWNER_TEST, &lo), PMM_OK);
    REQUIRE(lo + 2 * MiB <= GiB && lo >= PMM_LOW_RESERVED);
    uint64_t held[1024], nheld = 0;
    while (nheld < 1024 &&
           pmm_alloc_below(&e.p, 9, 2 * GiB, CANOPY_OWNER_TEST, &held[nheld]) == PMM_OK)
        nheld++;
    REQUIRE(nheld > 400 && nheld < 512); /* the low GiB but its first 2 MiB block */
    REQUIRE_EQ(pmm_alloc_below(&e.p, 9, 65 * GiB + 2 * MiB, CANOPY_OWNER_TEST, &hi), PMM_OK);
    REQUIRE(hi >= 65 * GiB && hi + 2 * MiB <= 65 * GiB + 2 * MiB);
    REQUIRE_PMM(&e.p);
    /* Single frames on both sides, through the CPU's cache and without it. */
    uint64_t f0, f1;
    REQUIRE_EQ(pmm_cpu_alloc(&e.p, 0, 0, CANOPY_OWNER_TEST, &f0), PMM_OK);
    REQUIRE_EQ(pmm_cpu_alloc(&e.p, PMM_NO_CPU, 0, CANOPY_OWNER_TEST, &f1), PMM_OK);
    REQUIRE_PMM(&e.p);

    /* Everything back: the same free frames, merged to the same blocks. */
    REQUIRE_EQ(pmm_cpu_free(&e.p, 0, f0, 0), PMM_OK);
    REQUIRE_EQ(pmm_cpu_free(&e.p, PMM_NO_CPU, f1, 0), PMM_OK);
    REQUIRE_EQ(pmm_free(&e.p, hi, 9), PMM_OK);
    for (uint64_t i = 0; i < nheld; i++)
        REQUIRE_EQ(pmm_free(&e.p, held[i], 9), PMM_OK);
    REQUIRE_EQ(pmm_free(&e.p, lo, 9), PMM_OK);
    for (uint64_t i = 0; i < nbig; i++)
        REQUIRE_EQ(pmm_free(&e.p, big[i], PMM_MAX_ORDER), PMM_OK);
    pmm_drain(&e.p);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(counts_of(&e.p).free, c.free);
    REQUIRE_EQ(e.p.free_frames, c.free);
    REQUIRE_EQ(e.p.free_blocks[PMM_MAX_ORDER], 2u);
    env_free(&e);
}

/* ---- without free lists: create, claim, build ------------------------ */

/*
 * The PC map's loader data [8M, 9M) stands for what stage 1 allocated from
 * the firmware before ExitBootServices: the state array at its start, then
 * claims. Simulated memory is filled with a pattern first, so any byte the
 * PMM writes outside its state array shows.
 */
#define CLAIMED_BASE 0x800000ull
#define PATTERN      0xa7

/*
 * RAM that ends 2 frames into a chunk: the top chunk's scan stops at the last
 * tracked frame. The bytes between the last state byte and the chunk index
 * are set to a free head code here; no allocation may come from them.
 */
static void test_the_top_chunk_ends_at_the_last_frame(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000, 0x702, EFI_ATTR_WB);
    REQUIRE_EQ(env_init(&e, 0x802000), PMM_OK);
    REQUIRE_EQ(e.p.frame_count, 0x802u);
    uint64_t bytes_end = e.p.slots_offset + e.p.frame_count;
    REQUIRE(e.p.index_offset > bytes_end);
    unsigned char *region = (unsigned char *)(uintptr_t)(e.p.state + e.p.virt_offset);
    memset(region + bytes_end, 0x20, e.p.index_offset - bytes_end);
    REQUIRE_PMM(&e.p);
    uint64_t a, n = 0, end = e.p.frame_count << PAGE_SHIFT;
    while (pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &a) == PMM_OK) {
        REQUIRE(a >= PMM_LOW_RESERVED && a < end);
        n++;
    }
    REQUIRE_EQ(n, counts_of(&e.p).used - e.p.owner_frames[CANOPY_OWNER_PMM]);
    REQUIRE_EQ(counts_of(&e.p).free, 0u);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void pc_env_unlisted(struct env *e)
{
    pc_map(&e->m);
    if (efimap_normalise(&e->m, &e->r, &e->n) != PMM_OK)
        abort();
    sim_open(&e->s, 0, PC_SIM_SIZE);
    memset(e->s.buf, PATTERN, PC_SIM_SIZE);
    REQUIRE_EQ(pmm_state_bytes(e->r, e->n, UINT64_MAX), PC_STATE_PAGES * PAGE_SIZE);
    REQUIRE_EQ(pmm_create(&e->p, e->r, e->n, e->s.offset, UINT64_MAX, CLAIMED_BASE, 8 * PAGE_SIZE),
               PMM_OK);
}

static void test_create_writes_only_its_state_array_and_builds_no_lists(void)
{
    struct env e;
    pc_env_unlisted(&e);
    REQUIRE_PMM(&e.p);
    REQUIRE(!pmm_has_lists(&e.p));
    REQUIRE(e.p.state == CLAIMED_BASE && e.p.state_bytes == PC_STATE_PAGES * PAGE_SIZE);
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++)
        REQUIRE(e.p.free_head[k] == PMM_NIL && e.p.free_blocks[k] == 0);
    /* The same frames in the same states as pmm_init, the array now in loader data. */
    REQUIRE(counts_of(&e.p).free == 0x700 + 0x3600);
    REQUIRE(counts_of(&e.p).reclaimable == 0x200 - PC_STATE_PAGES);
    REQUIRE(counts_of(&e.p).used == PC_STATE_PAGES &&
            counts_of(&e.p).owner[CANOPY_OWNER_PMM] == PC_STATE_PAGES);
    REQUIRE(counts_of(&e.p).reserved == 0x100);
    REQUIRE(pmm_is_free(&e.p, 0xa00000) && pmm_is_free(&e.p, 0x100000));
    REQUIRE_EQ(pmm_owner_of(&e.p, CLAIMED_BASE + (PC_STATE_PAGES - 1) * PAGE_SIZE),
               CANOPY_OWNER_PMM);
    REQUIRE_EQ(pmm_owner_of(&e.p, CLAIMED_BASE + PC_STATE_PAGES * PAGE_SIZE), CANOPY_OWNER_NONE);
    /* Not a byte outside the state region: the free blocks are untouched. */
    uint64_t written = 0, first = 0;
    for (uint64_t a = 0; a < PC_SIM_SIZE; a++) {
        if (a >= CLAIMED_BASE && a < CLAIMED_BASE + e.p.state_bytes)
            continue;
        if (e.s.buf[a] != PATTERN && written++ == 0)
            first = a;
    }
    CHECKF(written == 0, "%llu bytes written outside the state array, the first at 0x%llx",
           (unsigned long long)written, (unsigned long long)first);
    env_free(&e);
}

static void test_without_lists_nothing_is_allocated_or_freed(void)
{
    struct env e;
    pc_env_unlisted(&e);
    struct snap s;
    snap_take(&s, &e.p);
    uint64_t a;
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &a), PMM_ERR_NO_LISTS);
    REQUIRE_EQ(pmm_alloc(&e.p, 5, CANOPY_OWNER_TEST, &a), PMM_ERR_NO_LISTS);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 0, 0x4000000, CANOPY_OWNER_TEST, &a), PMM_ERR_NO_LISTS);
    REQUIRE_EQ(pmm_alloc_run(&e.p, 3, CANOPY_OWNER_TEST, &a), PMM_ERR_NO_LISTS);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_NONE, &a), PMM_ERR_INVALID); /* arguments first */
    REQUIRE_EQ(pmm_free(&e.p, 0xa00000, 0), PMM_ERR_NO_LISTS);
    REQUIRE_EQ(pmm_free_run(&e.p, 0xa00000, 2), PMM_ERR_NO_LISTS);
    REQUIRE_EQ(pmm_reclaim(&e.p), 0u);
    REQUIRE_EQ(pmm_drain(&e.p), 0u);
    REQUIRE(snap_same(&s, &e.p));
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void test_claim_hands_reclaimable_frames_to_their_owner(void)
{
    struct env e;
    pc_env_unlisted(&e);
    const uint64_t seg = CLAIMED_BASE + 8 * PAGE_SIZE, pt = seg + 5 * PAGE_SIZE;
    REQUIRE_EQ(pmm_claim(&e.p, seg, 5, CANOPY_OWNER_KERNEL_IMAGE), PMM_OK);
    REQUIRE_EQ(pmm_claim(&e.p, pt, 1, CANOPY_OWNER_PAGE_TABLE), PMM_OK);
    REQUIRE_PMM(&e.p);
    REQUIRE(counts_of(&e.p).reclaimable == 0x200 - PC_STATE_PAGES - 6 &&
            counts_of(&e.p).used == PC_STATE_PAGES + 6);
    REQUIRE(counts_of(&e.p).owner[CANOPY_OWNER_KERNEL_IMAGE] == 5);
    for (int i = 0; i < 5; i++)
        REQUIRE_EQ(pmm_owner_of(&e.p, seg + i * PAGE_SIZE), CANOPY_OWNER_KERNEL_IMAGE);
    REQUIRE_EQ(pmm_owner_of(&e.p, pt), CANOPY_OWNER_PAGE_TABLE);

    /* Anything but reclaimable frames is refused, and nothing changes. */
    struct snap s;
    snap_take(&s, &e.p);
    REQUIRE_EQ(pmm_claim(&e.p, seg, 1, CANOPY_OWNER_STACK), PMM_ERR_NOT_OWNED); /* used */
    REQUIRE_EQ(pmm_claim(&e.p, CLAIMED_BASE, 1, CANOPY_OWNER_STACK), PMM_ERR_NOT_OWNED);
    REQUIRE_EQ(pmm_claim(&e.p, 0xa00000, 1, CANOPY_OWNER_STACK), PMM_ERR_NOT_OWNED);  /* free */
    REQUIRE_EQ(pmm_claim(&e.p, 0x9ff000, 2, CANOPY_OWNER_STACK), PMM_ERR_NOT_OWNED);  /* half */
    REQUIRE_EQ(pmm_claim(&e.p, 0x9f000, 1, CANOPY_OWNER_STACK), PMM_ERR_NOT_OWNED);   /* reserved */
    REQUIRE_EQ(pmm_claim(&e.p, 0x4000000, 1, CANOPY_OWNER_STACK), PMM_ERR_NOT_OWNED); /* beyond */
    REQUIRE_EQ(pmm_claim(&e.p, 0x3fff000, 2, CANOPY_OWNER_STACK), PMM_ERR_NOT_OWNED); /* past end */
    REQUIRE_EQ(pmm_claim(&e.p, pt + PAGE_SIZE, 1, CANOPY_OWNER_PMM), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_claim(&e.p, pt + PAGE_SIZE, 1, CANOPY_OWNER_NONE), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_claim(&e.p, pt + PAGE_SIZE, 1, CANOPY_OWNER_COUNT), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_claim(&e.p, pt + 1, 1, CANOPY_OWNER_STACK), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_claim(&e.p, pt + PAGE_SIZE, 0, CANOPY_OWNER_STACK), PMM_ERR_INVALID);
    REQUIRE(snap_same(&s, &e.p));

    /* Once the lists exist each claimed frame is an order-0 block like pmm_alloc_run's. */
    REQUIRE_EQ(pmm_build_lists(&e.p), PMM_OK);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(pmm_free(&e.p, pt, 0), PMM_OK);
    REQUIRE_EQ(pmm_free(&e.p, seg + 2 * PAGE_SIZE, 0), PMM_OK);
    REQUIRE_EQ(pmm_free_run(&e.p, seg, 2), PMM_OK);
    REQUIRE_EQ(pmm_free_run(&e.p, seg + 3 * PAGE_SIZE, 2), PMM_OK);
    REQUIRE_PMM(&e.p);
    REQUIRE(counts_of(&e.p).owner[CANOPY_OWNER_KERNEL_IMAGE] == 0 &&
            counts_of(&e.p).used == PC_STATE_PAGES);
    /* With lists too, and the loader data left over is reclaimed as before. */
    REQUIRE_EQ(pmm_claim(&e.p, 0x900000, 16, CANOPY_OWNER_BOOTINFO), PMM_OK);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(pmm_reclaim(&e.p), 0x200u - PC_STATE_PAGES - 6 - 16);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(pmm_owner_of(&e.p, 0x900000), CANOPY_OWNER_BOOTINFO);
    env_free(&e);
}

/* Walks list k of p into out (at most cap nodes); returns the length. */
static uint64_t list_nodes(const struct pmm *p, unsigned k, uint64_t *out, uint64_t cap)
{
    uint64_t n = 0;
    for (uint64_t node = p->free_head[k]; node != PMM_NIL && n < cap;
         node = *(const uint64_t *)(uintptr_t)(node + p->virt_offset))
        out[n++] = node;
    return n;
}

static void test_building_the_lists_gives_what_init_gives(void)
{
    struct env a, b;
    pc_env(&a);
    pc_map(&b.m);
    if (efimap_normalise(&b.m, &b.r, &b.n) != PMM_OK)
        abort();
    sim_open(&b.s, 0, PC_SIM_SIZE);
    REQUIRE_EQ(pmm_create(&b.p, b.r, b.n, b.s.offset, UINT64_MAX, a.p.state, a.p.state_bytes),
               PMM_OK);
    REQUIRE_EQ(pmm_build_lists(&b.p), PMM_OK);
    REQUIRE_PMM(&b.p);
    REQUIRE(pmm_has_lists(&b.p));
    REQUIRE_EQ(pmm_build_lists(&b.p), PMM_ERR_INVALID); /* once only */
    REQUIRE_PMM(&b.p);
    struct pmm pa = a.p, pb = b.p;
    pa.virt_offset = pb.virt_offset = 0;
    REQUIRE(memcmp(&pa, &pb, sizeof(pa)) == 0);
    REQUIRE(memcmp(a.s.buf + a.p.state, b.s.buf + b.p.state, a.p.state_bytes) == 0);
    static uint64_t la[4096], lb[4096];
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++) {
        uint64_t na = list_nodes(&a.p, k, la, 4096), nb = list_nodes(&b.p, k, lb, 4096);
        REQUIRE(na == nb && memcmp(la, lb, na * sizeof(la[0])) == 0);
    }
    env_free(&a);
    env_free(&b);
}

static void test_create_refuses_a_state_array_outside_ram(void)
{
    struct env e;
    pc_map(&e.m);
    if (efimap_normalise(&e.m, &e.r, &e.n) != PMM_OK)
        abort();
    sim_open(&e.s, 0, PC_SIM_SIZE);
    const uint64_t need = PC_STATE_PAGES * PAGE_SIZE, off = e.s.offset;
    struct pmm *p = &e.p;
    REQUIRE_EQ(pmm_create(p, e.r, e.n, off, UINT64_MAX, 0x1000, need), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_create(p, e.r, e.n, off, UINT64_MAX, 0x9e000, need), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_create(p, e.r, e.n, off, UINT64_MAX, 0x4000000, need), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_create(p, e.r, e.n, off, UINT64_MAX, 0x3ffe000, need), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_create(p, e.r, e.n, off, UINT64_MAX, 0x800800, need), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_create(p, e.r, e.n, off, UINT64_MAX, 0x800000, need - 1), PMM_ERR_NO_SPACE);
    REQUIRE_EQ(pmm_create(p, e.r, e.n, off, 0x802000, 0x900000, need), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_create(p, e.r, 0, off, UINT64_MAX, 0x800000, need), PMM_ERR_BAD_MAP);
    REQUIRE_EQ(pmm_check(p, NULL, 0), PMM_ERR_CORRUPT); /* a refused create leaves no pmm */
    /* Across loader data and boot-services data (both reclaimable): fine. */
    REQUIRE_EQ(pmm_create(p, e.r, e.n, off, UINT64_MAX, 0x8fe000, need), PMM_OK);
    REQUIRE_PMM(p);
    REQUIRE(p->reclaimable_frames == 0x200 - PC_STATE_PAGES);
    env_free(&e);
}

static void test_state_bytes_do_not_grow_when_ram_only_shrinks(void)
{
    struct efimap m;
    range_t *r;
    uint32_t n;
    pc_map(&m);
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    uint64_t before = pmm_state_bytes(r, n, UINT64_MAX);
    REQUIRE_EQ(before, PC_STATE_PAGES * PAGE_SIZE);
    REQUIRE_EQ(pmm_state_bytes(r, n, 0x2000000), 3 * PAGE_SIZE); /* below a limit: 64 + 0x2000 */
    REQUIRE_EQ(pmm_state_bytes(r, 0, UINT64_MAX), 0u);
    free(r);
    /* The top 4 MiB of RAM become runtime data, loader data conventional memory. */
    efimap_add(&m, EFI_RT_DATA, 0x3c00000, 0x400, EFI_ATTR_RUNTIME);
    efimap_add(&m, EFI_CONVENTIONAL, 0x800000, 0x100, EFI_ATTR_WB);
    REQUIRE_EQ(efimap_normalise(&m, &r, &n), PMM_OK);
    uint64_t after = pmm_state_bytes(r, n, UINT64_MAX);
    /* The table, 0x3c00 state bytes, one slot's chunk index and its summary. */
    CHECKF(after <= before && after == page_up(64 + 0x3c00 + 1152 + PMM_INDEX_ORDER * 8), "%llu",
           (unsigned long long)after);
    free(r);
    efimap_free(&m);
}

static void test_check_without_lists_finds_what_lists_would_hide(void)
{
    struct env e;
    pc_env_unlisted(&e);
    char msg[160];
    struct pmm good = e.p;
    e.p.free_head[3] = 0xa00000;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "no free lists") != NULL);
    e.p = good;
    e.p.free_blocks[0] = 1;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    e.p = good;
    e.p.free_orders = 1u << 4;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    e.p = good;
    e.p.flags = 2;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "flags") != NULL);
    e.p = good;
    /* Claiming to have lists that were never built: every free block is unlisted. */
    e.p.flags = PMM_LISTS;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    e.p = good;
    /* The chunk index is built with the lists: until then every byte of it is 0. */
    unsigned char *ix =
        (unsigned char *)(uintptr_t)(e.p.state + e.p.virt_offset + e.p.index_offset);
    ix[0] = 1;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "chunk index") != NULL);
    ix[0] = 0;
    REQUIRE_PMM(&e.p);
    unsigned char *st = state_byte(&e.p, 0x800 + 8);
    *st = 0x62; /* a cached frame, but there is no cache */
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    *st = 0x61;
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

/* ---- alloc and free --------------------------------------------------- */

static void test_every_order_allocates_aligned_and_frees_back_to_the_same_tiling(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000, 0xbff00, 0); /* [1 MiB, 3 GiB) */
    REQUIRE_EQ(env_init(&e, 3 * GiB), PMM_OK);
    struct pmm start = e.p;
    for (unsigned order = 0; order <= PMM_MAX_ORDER; order++) {
        uint64_t a, size = PAGE_SIZE << order;
        REQUIRE_EQ(pmm_alloc(&e.p, order, CANOPY_OWNER_TEST, &a), PMM_OK);
        REQUIRE(a % size == 0 && a >= PMM_LOW_RESERVED && a + size <= 3 * GiB);
        REQUIRE_EQ(pmm_owner_of(&e.p, a), CANOPY_OWNER_TEST);
        REQUIRE_EQ(pmm_owner_of(&e.p, a + size - PAGE_SIZE), CANOPY_OWNER_TEST);
        REQUIRE(!pmm_is_free(&e.p, a + size / 2));
        REQUIRE(counts_of(&e.p).free == counts_of(&start).free - (1ull << order));
        REQUIRE(counts_of(&e.p).owner[CANOPY_OWNER_TEST] == 1ull << order);
        REQUIRE_PMM(&e.p);
        REQUIRE_EQ(pmm_free(&e.p, a, order), PMM_OK);
        REQUIRE_PMM(&e.p);
        /* A single frame waits in the cache, with the rest of the batch the cache took. */
        REQUIRE(pmm_drain(&e.p) == (order == 0 ? PMM_CACHE_BATCH : 0));
        REQUIRE_PMM(&e.p);
        REQUIRE(memcmp(e.p.free_blocks, start.free_blocks, sizeof(start.free_blocks)) == 0);
        REQUIRE(counts_of(&e.p).free == counts_of(&start).free &&
                counts_of(&e.p).used == counts_of(&start).used);
    }
    uint64_t a;
    REQUIRE_EQ(pmm_alloc(&e.p, PMM_MAX_ORDER + 1, CANOPY_OWNER_TEST, &a), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_NONE, &a), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_COUNT, &a), PMM_ERR_INVALID);
    env_free(&e);
}

/* One 1 GiB block: splitting down to any order and freeing both halves merges it back. */
static void test_freeing_both_buddies_merges_up_to_the_largest_block(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, GiB, 0x40000, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 3 * GiB, 0x1000, 0); /* the state array goes here */
    REQUIRE_EQ(env_init(&e, 3 * GiB + 16 * MiB), PMM_OK);
    REQUIRE(e.p.state >= 3 * GiB);
    REQUIRE(e.p.free_blocks[PMM_MAX_ORDER] == 1 && e.p.free_head[PMM_MAX_ORDER] == GiB);
    struct pmm start = e.p;
    for (unsigned order = 0; order < PMM_MAX_ORDER; order++) {
        uint64_t a, b, size = PAGE_SIZE << order;
        REQUIRE_EQ(pmm_alloc_below(&e.p, order, 2 * GiB, CANOPY_OWNER_TEST, &a), PMM_OK);
        REQUIRE_EQ(pmm_alloc_below(&e.p, order, 2 * GiB, CANOPY_OWNER_TEST, &b), PMM_OK);
        REQUIRE((a ^ b) == size); /* buddies */
        REQUIRE(e.p.free_blocks[PMM_MAX_ORDER] == 0);
        REQUIRE_PMM(&e.p);
        REQUIRE_EQ(pmm_free(&e.p, a, order), PMM_OK);
        REQUIRE_PMM(&e.p);
        REQUIRE_EQ(pmm_free(&e.p, b, order), PMM_OK);
        REQUIRE_PMM(&e.p);
        REQUIRE(pmm_drain(&e.p) == (order == 0 ? 2u : 0u));
        REQUIRE_PMM(&e.p);
        REQUIRE(e.p.free_blocks[PMM_MAX_ORDER] == 1 && e.p.free_head[PMM_MAX_ORDER] == GiB);
        REQUIRE(memcmp(e.p.free_blocks, start.free_blocks, sizeof(start.free_blocks)) == 0);
    }
    env_free(&e);
}

/*
 * Freed single frames wait unmerged in the CPU's LIFO cache, are handed out
 * first, spill their oldest half when the cache is full, and merge as soon
 * as a larger request needs them.
 */
static void test_order0_cache_defers_merging_until_a_request_needs_it(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, GiB, 0x40000, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 3 * GiB, 0x1000, 0);
    REQUIRE_EQ(env_init(&e, 3 * GiB + 16 * MiB), PMM_OK);
    const struct pmm_cpu *c = &e.p.cpu[0];
    uint64_t f[PMM_CACHE_FRAMES + 8];
    for (int i = 0; i < PMM_CACHE_FRAMES + 8; i++)
        REQUIRE_EQ(pmm_alloc_below(&e.p, 0, 2 * GiB, CANOPY_OWNER_TEST, &f[i]), PMM_OK);
    REQUIRE(c->count == 0);
    for (int i = 0; i < PMM_CACHE_FRAMES + 8; i++) {
        REQUIRE_EQ(pmm_free(&e.p, f[i], 0), PMM_OK);
        /* Full at PMM_CACHE_FRAMES: the next free spills the oldest PMM_CACHE_BATCH first. */
        uint64_t want = i < PMM_CACHE_FRAMES ? (uint64_t)i + 1 : (uint64_t)i + 1 - PMM_CACHE_BATCH;
        REQUIRE_EQ(c->count, want);
        REQUIRE(c->frames[c->count - 1] == f[i]);
        REQUIRE_PMM(&e.p);
    }
    REQUIRE(c->frames[0] == f[PMM_CACHE_BATCH]); /* f[0 .. BATCH) went back, merging */
    REQUIRE(pmm_is_free(&e.p, f[0]) && pmm_owner_of(&e.p, f[0]) == CANOPY_OWNER_NONE);
    REQUIRE_EQ(pmm_free(&e.p, f[0], 0), PMM_ERR_DOUBLE_FREE);                       /* spilled */
    REQUIRE_EQ(pmm_free(&e.p, f[PMM_CACHE_FRAMES + 7], 0), PMM_ERR_DOUBLE_FREE);    /* cached */
    REQUIRE_EQ(pmm_cpu_free(&e.p, 1, f[PMM_CACHE_FRAMES], 0), PMM_ERR_DOUBLE_FREE); /* any CPU */
    uint64_t a;
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_STACK, &a), PMM_OK);
    REQUIRE(a == f[PMM_CACHE_FRAMES + 7]); /* the newest cached frame */
    REQUIRE_EQ(pmm_owner_of(&e.p, a), CANOPY_OWNER_STACK);
    REQUIRE(counts_of(&e.p).owner[CANOPY_OWNER_STACK] == 1);
    REQUIRE(e.p.owner_frames[CANOPY_OWNER_STACK] == 0); /* a delta of CPU 0's, not yet folded */
    REQUIRE_EQ(pmm_free(&e.p, a, 0), PMM_OK);
    REQUIRE_PMM(&e.p);
    /* The 1 GiB block exists only once the cached frames merge: the allocation drains. */
    REQUIRE(e.p.free_blocks[PMM_MAX_ORDER] == 0);
    REQUIRE_EQ(pmm_alloc_below(&e.p, PMM_MAX_ORDER, 2 * GiB, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a == GiB && c->count == 0);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(pmm_free(&e.p, a, PMM_MAX_ORDER), PMM_OK);
    /* An empty cache takes a batch at once; the rest of the batch stays cached. */
    REQUIRE_EQ(pmm_alloc_below(&e.p, 0, 2 * GiB, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(pmm_free(&e.p, a, 0) == PMM_OK && c->count == 1);
    REQUIRE(e.p.free_blocks[PMM_MAX_ORDER] == 0);
    REQUIRE_EQ(pmm_alloc(&e.p, PMM_MAX_ORDER, CANOPY_OWNER_TEST, &a), PMM_OK); /* drains too */
    REQUIRE(a == GiB && c->count == 0);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(pmm_free(&e.p, a, PMM_MAX_ORDER), PMM_OK);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(c->count == PMM_CACHE_BATCH - 1);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(pmm_free(&e.p, a, 0), PMM_OK);
    REQUIRE(pmm_drain(&e.p) == PMM_CACHE_BATCH && c->count == 0);
    REQUIRE(e.p.free_blocks[PMM_MAX_ORDER] == 1);
    REQUIRE_PMM(&e.p);
    /* A CPU index out of range is refused; PMM_NO_CPU bypasses every cache. */
    REQUIRE_EQ(pmm_cpu_alloc(&e.p, PMM_MAX_CPUS, 0, CANOPY_OWNER_TEST, &a), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_cpu_alloc(&e.p, PMM_NO_CPU, 0, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE_EQ(pmm_cpu_free(&e.p, PMM_MAX_CPUS, a, 0), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_cpu_free(&e.p, PMM_NO_CPU, a, 0), PMM_OK);
    REQUIRE(c->count == 0 && e.p.free_blocks[PMM_MAX_ORDER] == 1);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

/*
 * An empty cache takes the smallest free blocks first, and of those the
 * lowest, chunk by chunk: several from one word of state bytes (frames 1,
 * 3, 4 and 6 share one), past an order-1 block in the same words, none
 * twice, and every frame comes back.
 */
static void test_a_refill_takes_the_smallest_blocks_lowest_first(void)
{
    static const uint64_t lone[] = {1, 3, 4, 6, 9, 17, 18, 321, 519}; /* frames past 1 GiB */
    enum { N = 1024 };
    static uint64_t held[N];
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, GiB, N, 0);          /* two chunks */
    efimap_add(&e.m, EFI_CONVENTIONAL, 3 * GiB, 0x1000, 0); /* the state region */
    REQUIRE_EQ(env_init(&e, 3 * GiB + 16 * MiB), PMM_OK);
    uint64_t free_before = counts_of(&e.p).free, n = 0, a;
    while (pmm_alloc_below(&e.p, 0, 2 * GiB, CANOPY_OWNER_TEST, &a) == PMM_OK) {
        REQUIRE(n < N && a >= GiB && a < GiB + N * PAGE_SIZE);
        held[n++] = a;
    }
    REQUIRE_EQ(n, (uint64_t)N);
    /* Lone free frames (their buddies stay used), and frames 12-13 merged into an order-1 block. */
    for (unsigned i = 0; i < sizeof lone / sizeof lone[0]; i++)
        REQUIRE_EQ(pmm_cpu_free(&e.p, PMM_NO_CPU, GiB + lone[i] * PAGE_SIZE, 0), PMM_OK);
    REQUIRE_EQ(pmm_cpu_free(&e.p, PMM_NO_CPU, GiB + 12 * PAGE_SIZE, 0), PMM_OK);
    REQUIRE_EQ(pmm_cpu_free(&e.p, PMM_NO_CPU, GiB + 13 * PAGE_SIZE, 0), PMM_OK);
    REQUIRE(!pmm_is_free(&e.p, GiB + 14 * PAGE_SIZE));
    REQUIRE_PMM(&e.p);

    const struct pmm_cpu *c = &e.p.cpu[0];
    REQUIRE(c->count == 0);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_STACK, &a), PMM_OK);
    REQUIRE(c->count == PMM_CACHE_BATCH - 1);
    for (unsigned i = 0; i < sizeof lone / sizeof lone[0]; i++) {
        REQUIRE(c->frames[i] == GiB + lone[i] * PAGE_SIZE);
        REQUIRE_EQ(pmm_free(&e.p, c->frames[i], 0), PMM_ERR_DOUBLE_FREE); /* cached */
    }
    for (uint64_t i = 0; i < c->count; i++)
        for (uint64_t j = 0; j < i; j++)
            REQUIRE(c->frames[i] != c->frames[j]);
    REQUIRE_PMM(&e.p);

    REQUIRE_EQ(pmm_free(&e.p, a, 0), PMM_OK);
    pmm_drain(&e.p);
    for (uint64_t i = 0; i < N; i++) {
        bool lone_frame = held[i] == GiB + 12 * PAGE_SIZE || held[i] == GiB + 13 * PAGE_SIZE;
        for (unsigned j = 0; j < sizeof lone / sizeof lone[0]; j++)
            lone_frame |= held[i] == GiB + lone[j] * PAGE_SIZE;
        if (!lone_frame)
            REQUIRE_EQ(pmm_free(&e.p, held[i], 0), PMM_OK);
    }
    pmm_drain(&e.p);
    REQUIRE(counts_of(&e.p).free == free_before);
    /* Both chunks merged back into the 4 MiB block at 1 GiB. */
    REQUIRE_EQ(pmm_alloc_below(&e.p, PMM_INDEX_ORDER + 1, 2 * GiB, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a == GiB);
    REQUIRE_EQ(pmm_free(&e.p, a, PMM_INDEX_ORDER + 1), PMM_OK);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void test_frames_below_1mib_are_never_handed_out(void)
{
    struct env e;
    pc_env(&e);
    uint64_t total = counts_of(&e.p).free, count = 0, a;
    while (pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &a) == PMM_OK) {
        REQUIRE(a >= PMM_LOW_RESERVED);
        count++;
    }
    REQUIRE(count == total && counts_of(&e.p).free == 0);
    REQUIRE_PMM(&e.p);
    REQUIRE(pmm_reclaim(&e.p) == 0x200); /* the boot-services page at 0 is not among them */
    REQUIRE(!pmm_is_free(&e.p, 0));
    while (pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &a) == PMM_OK)
        REQUIRE(a >= PMM_LOW_RESERVED);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void test_exhaustion_reports_nomem_and_changes_nothing(void)
{
    struct env e;
    pc_env(&e);
    uint64_t total = counts_of(&e.p).free, a;
    uint64_t *got = malloc(total * sizeof(*got));
    uint64_t n = 0;
    while (pmm_alloc(&e.p, 2, CANOPY_OWNER_HEAP, &a) == PMM_OK)
        got[n++] = a;
    REQUIRE(n > 0);
    REQUIRE_PMM(&e.p);
    /* Whatever is left is smaller than an order-2 block. */
    REQUIRE(e.p.free_orders >> 2 == 0);
    struct snap s;
    snap_take(&s, &e.p);
    for (unsigned order = 2; order <= PMM_MAX_ORDER; order++)
        REQUIRE_EQ(pmm_alloc(&e.p, order, CANOPY_OWNER_HEAP, &a), PMM_ERR_NOMEM);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 3, 0x2000000, CANOPY_OWNER_HEAP, &a), PMM_ERR_NOMEM);
    REQUIRE(snap_same(&s, &e.p));
    for (uint64_t i = 0; i < n; i++)
        REQUIRE_EQ(pmm_free(&e.p, got[i], 2), PMM_OK);
    REQUIRE_PMM(&e.p);
    REQUIRE(counts_of(&e.p).free == total);
    free(got);
    env_free(&e);
}

static void test_alloc_below_keeps_the_whole_block_under_the_limit(void)
{
    struct env e;
    pc_env(&e);
    uint64_t a;
    /* Order 8 is indexed: the block it gives is the lowest, [1M, 2M). */
    REQUIRE(e.p.free_head[8] == PMM_NIL && e.p.free_blocks[8] > 1);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 8, 0x3eff000, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a == 0x100000);
    REQUIRE_EQ(pmm_free(&e.p, a, 8), PMM_OK);
    /* Order 9 is listed, the highest block first: one page short of it, the walk finds a lower one.
     */
    uint64_t top = e.p.free_head[9];
    REQUIRE(top != PMM_NIL && e.p.free_blocks[9] > 1);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 9, top + 2 * MiB - PAGE_SIZE, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a + 2 * MiB <= top && (a & (2 * MiB - 1)) == 0);
    REQUIRE_EQ(pmm_free(&e.p, a, 9), PMM_OK);
    /* [1M, 2M) is one order-8 block; a limit one byte short of its end refuses it. */
    REQUIRE_EQ(pmm_alloc_below(&e.p, 8, 0x1fffff, CANOPY_OWNER_TEST, &a), PMM_ERR_NOMEM);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 8, 0x200000, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a == 0x100000);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 0, 0x200000, CANOPY_OWNER_TEST, &a), PMM_ERR_NOMEM);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 0, PMM_LOW_RESERVED, CANOPY_OWNER_TEST, &a), PMM_ERR_NOMEM);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 0, 0, CANOPY_OWNER_TEST, &a), PMM_ERR_NOMEM);
    REQUIRE_PMM(&e.p);
    /* List heads sit high: these take the walk over the state bytes. */
    for (int i = 0; i < 200; i++) {
        uint64_t b;
        REQUIRE_EQ(pmm_alloc_below(&e.p, 0, 0x300000, CANOPY_OWNER_TEST, &b), PMM_OK);
        REQUIRE(b >= 0x200000 && b < 0x300000);
    }
    REQUIRE_PMM(&e.p);
    /* A limit above everything behaves as pmm_alloc. */
    REQUIRE_EQ(pmm_alloc_below(&e.p, 10, UINT64_MAX, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a % (PAGE_SIZE << 10) == 0);
    REQUIRE_EQ(pmm_alloc_below(&e.p, 0, UINT64_MAX, CANOPY_OWNER_NONE, &a), PMM_ERR_INVALID);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void test_double_free_is_detected_and_changes_nothing(void)
{
    struct env e;
    pc_env(&e);
    uint64_t a, b;
    REQUIRE_EQ(pmm_alloc(&e.p, 3, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &b), PMM_OK);
    REQUIRE_EQ(pmm_free(&e.p, a, 3), PMM_OK);
    REQUIRE_EQ(pmm_free(&e.p, b, 0), PMM_OK);
    struct snap s;
    snap_take(&s, &e.p);
    unsigned char *mem = malloc(PC_SIM_SIZE);
    memcpy(mem, e.s.buf, PC_SIM_SIZE);
    REQUIRE_EQ(pmm_free(&e.p, a, 3), PMM_ERR_DOUBLE_FREE);
    REQUIRE_EQ(pmm_free(&e.p, a, 0), PMM_ERR_DOUBLE_FREE);
    REQUIRE_EQ(pmm_free(&e.p, a + PAGE_SIZE, 0), PMM_ERR_DOUBLE_FREE); /* inside a free block */
    REQUIRE_EQ(pmm_free(&e.p, b, 0), PMM_ERR_DOUBLE_FREE);
    REQUIRE(memcmp(mem, e.s.buf, PC_SIM_SIZE) == 0); /* free lists untouched too */
    REQUIRE(snap_same(&s, &e.p));
    REQUIRE_PMM(&e.p);
    free(mem);
    env_free(&e);
}

/*
 * The cache's free reads a frame's byte and the next without the lock; the
 * next is in another section for the last frame of a section, and there is
 * none for the last frame of RAM. Both free (once) and give back every frame.
 */
static void test_frames_at_a_section_end_and_the_ram_end_free_through_the_cache(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    /* Three frames from the section's last on, too few for the state region, which goes lower. */
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000, PMM_SECTION_FRAMES - 0x110, EFI_ATTR_WB);
    efimap_add(&e.m, EFI_CONVENTIONAL, (PMM_SECTION_FRAMES - 1) << PAGE_SHIFT, 3, EFI_ATTR_WB);
    REQUIRE_EQ(env_init(&e, (PMM_SECTION_FRAMES + 2) << PAGE_SHIFT), PMM_OK);
    REQUIRE_EQ(e.p.frame_count, PMM_SECTION_FRAMES + 2);
    uint64_t section_end = (PMM_SECTION_FRAMES - 1) << PAGE_SHIFT;
    uint64_t ram_end = (PMM_SECTION_FRAMES + 1) << PAGE_SHIFT, a, n = 0, seen = 0;
    uint64_t *held = malloc(e.p.frame_count * sizeof(*held));
    while (pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &a) == PMM_OK) {
        seen += (a == section_end) + (a == ram_end);
        held[n++] = a;
    }
    REQUIRE_EQ(seen, 2u);
    REQUIRE_EQ(pmm_free(&e.p, section_end, 1), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_free(&e.p, section_end, 0), PMM_OK);
    REQUIRE_EQ(pmm_free(&e.p, section_end, 0), PMM_ERR_DOUBLE_FREE);
    REQUIRE_EQ(pmm_free(&e.p, ram_end, 0), PMM_OK);
    REQUIRE_EQ(pmm_free(&e.p, ram_end, 0), PMM_ERR_DOUBLE_FREE);
    REQUIRE_PMM(&e.p);
    for (uint64_t i = 0; i < n; i++)
        if (held[i] != section_end && held[i] != ram_end)
            REQUIRE_EQ(pmm_free(&e.p, held[i], 0), PMM_OK);
    pmm_drain(&e.p);
    REQUIRE_EQ(counts_of(&e.p).used, e.p.owner_frames[CANOPY_OWNER_PMM]);
    REQUIRE_PMM(&e.p);
    free(held);
    env_free(&e);
}

static void test_bad_frees_are_reported_and_change_nothing(void)
{
    struct env e;
    pc_env(&e);
    uint64_t a;
    REQUIRE_EQ(pmm_alloc(&e.p, 3, CANOPY_OWNER_TEST, &a), PMM_OK);
    struct snap s;
    snap_take(&s, &e.p);
    REQUIRE_EQ(pmm_free(&e.p, 0x800000, 0), PMM_ERR_NOT_OWNED);          /* reclaimable */
    REQUIRE_EQ(pmm_free(&e.p, 0x9f000, 0), PMM_ERR_NOT_OWNED);           /* reserved */
    REQUIRE_EQ(pmm_free(&e.p, 0x1000, 0), PMM_ERR_NOT_OWNED);            /* usable, below 1 MiB */
    REQUIRE_EQ(pmm_free(&e.p, 0x4000000, 0), PMM_ERR_NOT_OWNED);         /* ACPI, past the RAM */
    REQUIRE_EQ(pmm_free(&e.p, 0x100000000000ull, 0), PMM_ERR_NOT_OWNED); /* far MMIO */
    REQUIRE_EQ(pmm_free(&e.p, a + 0x800, 3), PMM_ERR_INVALID);           /* not page aligned */
    REQUIRE_EQ(pmm_free(&e.p, a, 2), PMM_ERR_INVALID);                   /* wrong order */
    REQUIRE_EQ(pmm_free(&e.p, a, 4), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_free(&e.p, a, 0), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_free(&e.p, a + PAGE_SIZE, 0), PMM_ERR_INVALID); /* its interior */
    REQUIRE_EQ(pmm_free(&e.p, a + 4 * PAGE_SIZE, 2), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_free(&e.p, a, PMM_MAX_ORDER + 1), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_free_run(&e.p, a, 8), PMM_ERR_INVALID); /* a block is not a run */
    REQUIRE(snap_same(&s, &e.p));
    REQUIRE_EQ(pmm_free(&e.p, a, 3), PMM_OK);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void test_reclaim_frees_loader_and_boot_memory_and_merges_buddies(void)
{
    struct env e;
    pc_env(&e);
    uint64_t free_before = counts_of(&e.p).free;
    REQUIRE(!pmm_is_free(&e.p, 0x800000) && !pmm_is_free(&e.p, 0x9ff000));
    REQUIRE(pmm_reclaim(&e.p) == 0x200);
    REQUIRE_PMM(&e.p);
    REQUIRE(counts_of(&e.p).reclaimable == 0 && counts_of(&e.p).free == free_before + 0x200);
    REQUIRE(pmm_is_free(&e.p, 0x800000) && pmm_is_free(&e.p, 0x9ff000));
    /* [8M, 10M) reclaimed + [10M, 16M) free merge into one 8 MiB block. */
    uint64_t a;
    REQUIRE_EQ(pmm_alloc_below(&e.p, 11, 0x1000000, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE(a == 0x800000);
    REQUIRE(pmm_reclaim(&e.p) == 0);
    REQUIRE_EQ(pmm_free(&e.p, 0x0, 0), PMM_ERR_NOT_OWNED); /* page 0 stays reserved */
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void test_run_allocation_is_exact_and_frees_in_pieces(void)
{
    struct env e;
    pc_env(&e);
    struct pmm start = e.p;
    uint64_t a;
    REQUIRE_EQ(pmm_alloc_run(&e.p, 5, CANOPY_OWNER_KERNEL_IMAGE, &a), PMM_OK);
    REQUIRE(a % (8 * PAGE_SIZE) == 0);
    REQUIRE_PMM(&e.p);
    REQUIRE(counts_of(&e.p).free == counts_of(&start).free - 5);
    REQUIRE(counts_of(&e.p).owner[CANOPY_OWNER_KERNEL_IMAGE] == 5);
    for (int i = 0; i < 5; i++)
        REQUIRE_EQ(pmm_owner_of(&e.p, a + i * PAGE_SIZE), CANOPY_OWNER_KERNEL_IMAGE);
    for (int i = 5; i < 8; i++)
        REQUIRE(pmm_is_free(&e.p, a + i * PAGE_SIZE));
    REQUIRE_EQ(pmm_free_run(&e.p, a + PAGE_SIZE, 2), PMM_OK);
    REQUIRE_PMM(&e.p);
    struct snap s;
    snap_take(&s, &e.p);
    REQUIRE_EQ(pmm_free_run(&e.p, a, 5), PMM_ERR_DOUBLE_FREE); /* a + 1 is free now */
    REQUIRE_EQ(pmm_free_run(&e.p, a + 3 * PAGE_SIZE, 3), PMM_ERR_DOUBLE_FREE);
    REQUIRE_EQ(pmm_free_run(&e.p, a, 0), PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_free_run(&e.p, 0x3fff000, 2), PMM_ERR_NOT_OWNED); /* runs past the end */
    REQUIRE(snap_same(&s, &e.p));
    REQUIRE_EQ(pmm_free(&e.p, a, 0), PMM_OK); /* one frame of a run is an order-0 block */
    REQUIRE_EQ(pmm_free_run(&e.p, a + 3 * PAGE_SIZE, 2), PMM_OK);
    REQUIRE_PMM(&e.p);
    pmm_drain(&e.p);
    REQUIRE(memcmp(e.p.free_blocks, start.free_blocks, sizeof(start.free_blocks)) == 0);
    REQUIRE_EQ(pmm_alloc_run(&e.p, 0, CANOPY_OWNER_TEST, &a), PMM_ERR_INVALID);
    REQUIRE(pmm_alloc_run(&e.p, (1ull << PMM_MAX_ORDER) + 1, CANOPY_OWNER_TEST, &a) ==
            PMM_ERR_INVALID);
    REQUIRE_EQ(pmm_alloc_run(&e.p, 1ull << 14, CANOPY_OWNER_TEST, &a), PMM_ERR_NOMEM);
    REQUIRE_EQ(pmm_alloc_run(&e.p, 0x801, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE_PMM(&e.p);
    REQUIRE_EQ(pmm_free_run(&e.p, a, 0x801), PMM_OK);
    REQUIRE_PMM(&e.p);
    env_free(&e);
}

static void test_rebase_of_a_memcpy_continues_on_the_new_mapping(void)
{
    struct env e;
    pc_env(&e);
    uint64_t held[64];
    for (int i = 0; i < 64; i++)
        REQUIRE_EQ(pmm_alloc(&e.p, (unsigned)(i % 5), CANOPY_OWNER_TEST, &held[i]), PMM_OK);
    for (int i = 0; i < 64; i += 2)
        REQUIRE_EQ(pmm_free(&e.p, held[i], (unsigned)(i % 5)), PMM_OK);
    /* The same physical memory seen at another virtual address (stage 1 -> HHDM). */
    struct sim moved;
    sim_open(&moved, 0, PC_SIM_SIZE);
    memcpy(moved.buf, e.s.buf, PC_SIM_SIZE);
    REQUIRE(mprotect(e.s.buf, PC_SIM_SIZE, PROT_NONE) == 0); /* any use of the old view faults */
    struct pmm q;
    memcpy(&q, &e.p, sizeof(q));
    pmm_rebase(&q, moved.offset);
    REQUIRE(q.virt_offset == moved.offset);
    REQUIRE_PMM(&q);
    for (int i = 1; i < 64; i += 2)
        REQUIRE_EQ(pmm_free(&q, held[i], (unsigned)(i % 5)), PMM_OK);
    REQUIRE(pmm_reclaim(&q) == 0x200);
    uint64_t a;
    REQUIRE_EQ(pmm_alloc(&q, 9, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE_PMM(&q);
    REQUIRE(mprotect(e.s.buf, PC_SIM_SIZE, PROT_READ | PROT_WRITE) == 0);
    sim_close(&moved);
    env_free(&e);
}

static void test_owner_and_free_lookups_answer_for_interior_frames(void)
{
    struct env e;
    pc_env(&e);
    uint64_t a, b;
    REQUIRE_EQ(pmm_alloc(&e.p, 5, CANOPY_OWNER_PAGE_TABLE, &a), PMM_OK);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_STACK, &b), PMM_OK);
    for (uint64_t i = 0; i < 32; i++) {
        REQUIRE_EQ(pmm_owner_of(&e.p, a + i * PAGE_SIZE + 123), CANOPY_OWNER_PAGE_TABLE);
        REQUIRE(!pmm_is_free(&e.p, a + i * PAGE_SIZE));
    }
    REQUIRE_EQ(pmm_owner_of(&e.p, b), CANOPY_OWNER_STACK);
    REQUIRE_EQ(pmm_owner_of(&e.p, 0x800000), CANOPY_OWNER_NONE); /* reclaimable */
    REQUIRE_EQ(pmm_owner_of(&e.p, 0x9f000), CANOPY_OWNER_NONE);  /* reserved */
    REQUIRE(pmm_is_free(&e.p, 0x2345678));                       /* deep inside a free block */
    REQUIRE(!pmm_is_free(&e.p, 0x9f000) && !pmm_is_free(&e.p, 0x800000));
    env_free(&e);
}

static void test_check_names_the_first_inconsistency(void)
{
    struct env e;
    pc_env(&e);
    uint64_t a, b;
    REQUIRE_EQ(pmm_alloc(&e.p, 4, CANOPY_OWNER_TEST, &a), PMM_OK);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &b), PMM_OK);
    REQUIRE_PMM(&e.p);
    char msg[160];
    struct {
        uint64_t frame;
        unsigned char byte;
    } corrupt[] = {
        {a >> PAGE_SHIFT, 0x00},       /* a head byte erased: interior where a block starts */
        {(a >> PAGE_SHIFT) + 1, 0x03}, /* wrong order mark */
        {(a >> PAGE_SHIFT) + 2, 0x41}, /* a head code inside a block */
        {b >> PAGE_SHIFT, 0x20},       /* used frame claims to be free */
        {0x9f, 0x61},                  /* reclaimable below 1 MiB */
        {0x800, 0x60},                 /* reclaimable frame now reserved: counts disagree */
        {b >> PAGE_SHIFT, 0x40},       /* owner 0 */
        {b >> PAGE_SHIFT, 0x9c},       /* a byte no encoding uses */
    };
    for (size_t i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
        unsigned char *st = state_byte(&e.p, corrupt[i].frame);
        unsigned char old = *st;
        *st = corrupt[i].byte;
        msg[0] = 0;
        REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
        REQUIRE(strncmp(msg, "pmm: ", 5) == 0 && strchr(msg, '\n') == NULL);
        *st = old;
        REQUIRE_PMM(&e.p);
    }
    /* Counters, the non-empty mask and the links. */
    e.p.free_frames++;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "free frames") != NULL);
    e.p.free_frames--;
    e.p.owner_frames[CANOPY_OWNER_TEST]--;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    e.p.owner_frames[CANOPY_OWNER_TEST]++;
    e.p.free_orders ^= 1;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    e.p.free_orders ^= 1;
    /* The chunk index: a chunk mask bit, the slot's section, an order-0 count, a word mask bit, a
     * summary bit. */
    unsigned char *ix =
        (unsigned char *)(uintptr_t)(e.p.state + e.p.virt_offset + e.p.index_offset);
    const size_t ix_bytes[] = {0, 7, 72, 80, 88, e.p.section_slots * 1152};
    for (size_t i = 0; i < sizeof(ix_bytes) / sizeof(ix_bytes[0]); i++) {
        ix[ix_bytes[i]] ^= 0x80;
        REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
        REQUIRE(strncmp(msg, "pmm: ", 5) == 0);
        ix[ix_bytes[i]] ^= 0x80;
        REQUIRE_PMM(&e.p);
    }
    e.p.free_head[0] = 0xa00000; /* an indexed order with a list */
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    e.p.free_head[0] = PMM_NIL;
    uint64_t head = PMM_NIL;
    for (unsigned k = PMM_INDEX_ORDER; k <= PMM_MAX_ORDER && head == PMM_NIL; k++)
        head = e.p.free_head[k];
    REQUIRE(head != PMM_NIL);
    uint64_t *link = (uint64_t *)(uintptr_t)(head + e.p.virt_offset);
    uint64_t old_next = link[0];
    link[0] = head; /* a cycle */
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    link[0] = 0x9f000; /* points at a reserved frame */
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    link[0] = old_next;
    REQUIRE_PMM(&e.p);
    /* The order-0 cache: an entry twice, an entry that is not a cached frame. */
    uint64_t c0, c1;
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &c0), PMM_OK);
    REQUIRE_EQ(pmm_alloc(&e.p, 0, CANOPY_OWNER_TEST, &c1), PMM_OK);
    REQUIRE(pmm_free(&e.p, c0, 0) == PMM_OK && pmm_free(&e.p, c1, 0) == PMM_OK);
    struct pmm_cpu *c = &e.p.cpu[0];
    uint64_t n = c->count;
    REQUIRE(n >= 2 && c->frames[n - 2] == c0 && c->frames[n - 1] == c1);
    REQUIRE_PMM(&e.p);
    c->frames[n - 1] = c0; /* c1's byte still says cached, but no entry names it */
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "listed twice") != NULL);
    c->frames[n - 1] = b; /* a used frame */
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "not a cached frame") != NULL);
    c->frames[n - 1] = c1 + 1; /* not frame aligned */
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    c->frames[n - 1] = c1;
    REQUIRE_PMM(&e.p);
    /* The same frame in two CPUs' caches; a counter delta that does not add up; the lock. */
    e.p.cpu[3].frames[0] = c1;
    e.p.cpu[3].count = 1;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "listed twice") != NULL);
    e.p.cpu[3].count = 0;
    e.p.cpu[5].free_delta = 1;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "free frames") != NULL);
    e.p.cpu[5].free_delta = 0;
    e.p.lock = 1;
    REQUIRE_EQ(pmm_check(&e.p, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE(strstr(msg, "lock") != NULL);
    e.p.lock = 0;
    REQUIRE_PMM(&e.p);
    struct pmm bad = e.p;
    bad.magic ^= 1;
    REQUIRE_EQ(pmm_check(&bad, msg, sizeof(msg)), PMM_ERR_CORRUPT);
    REQUIRE_EQ(pmm_check(&bad, NULL, 0), PMM_ERR_CORRUPT); /* no message buffer is fine */
    env_free(&e);
}

static void test_status_strings_are_distinct(void)
{
    for (int i = PMM_OK; i <= PMM_ERR_NO_LISTS; i++)
        for (int j = i + 1; j <= PMM_ERR_NO_LISTS; j++)
            REQUIRE(strcmp(pmm_status_str((enum pmm_status)i),
                           pmm_status_str((enum pmm_status)j)) != 0);
    REQUIRE(strcmp(pmm_status_str(PMM_ERR_DOUBLE_FREE), "double free") == 0);
}

/* ---- randomized, against a frame-by-frame model ----------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rng(void)
{
    return xorshift64_next(&rng_state);
}

static unsigned random_order(void)
{
    uint64_t r = rng() % 16;
    return r < 8 ? 0 : r < 11 ? 1 : r < 13 ? (unsigned)(2 + rng() % 3) : (unsigned)(rng() % 12);
}

static void test_random_operations_match_a_model(void)
{
    struct env e;
    efimap_init(&e.m, 48);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0xc00000, 0x400, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x780000, 0x480, EFI_ATTR_WB);
    efimap_add(&e.m, EFI_BS_DATA, 0x700000, 0x80, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x341000, 0x3bf, 0);
    efimap_add(&e.m, EFI_RESERVED, 0x340000, 1, 0);
    efimap_add(&e.m, EFI_LOADER_DATA, 0x300000, 0x40, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x100000, 0x200, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x1000, 0x9e, 0);
    efimap_add(&e.m, EFI_CONVENTIONAL, 0x328000, 0x8, 0); /* nested in loader data: loses */
    REQUIRE_EQ(env_init(&e, 0x1000000), PMM_OK);
    REQUIRE(e.p.frame_count == 0x1000);

    struct model m;
    REQUIRE(model_init(&m, 0x1000, e.r, e.n, &e.p));

    bool reclaimed = false;
    for (int step = 0; step < 30000; step++) {
        uint64_t op = rng() % 100, a;
        if (op < 38) {
            unsigned order = random_order(), owner = 1 + (unsigned)(rng() % 15);
            enum pmm_status st = pmm_alloc(&e.p, order, owner, &a);
            if (owner == CANOPY_OWNER_PMM) {
                REQUIRE_EQ(st, PMM_ERR_INVALID);
            } else if (model_has_block(&m, order, UINT64_MAX)) {
                REQUIRE_EQ(st, PMM_OK);
                REQUIRE(a % (PAGE_SIZE << order) == 0);
                for (uint64_t j = 0; j < (1ull << order); j++)
                    REQUIRE_EQ(m.state[(a >> PAGE_SHIFT) + j], M_FREE);
                model_take(&m, a, order, owner);
            } else {
                REQUIRE_EQ(st, PMM_ERR_NOMEM);
            }
        } else if (op < 66) {
            if (m.live_count == 0)
                continue;
            uint64_t pick = m.live[rng() % m.live_count];
            uint64_t phys = page_down(pick);
            unsigned order = (unsigned)(pick & (PAGE_SIZE - 1));
            REQUIRE_EQ(pmm_free(&e.p, phys, order), PMM_OK);
            model_release(&m, phys, order);
        } else if (op < 76) {
            /* Anything at all: the PMM must agree with the model on what it means. */
            uint64_t phys = (rng() % (m.frames + 64)) << PAGE_SHIFT;
            if (rng() % 8 == 0)
                phys += rng() % PAGE_SIZE;
            if (m.live_count && rng() % 2) {
                uint64_t pick = m.live[rng() % m.live_count];
                phys = page_down(pick) + (rng() % 3) * PAGE_SIZE;
            }
            unsigned order = (unsigned)(rng() % 4 ? rng() % 6 : rng() % 21);
            enum pmm_status want = model_free_status(&m, phys, order);
            struct snap s;
            snap_take(&s, &e.p);
            enum pmm_status got = pmm_free(&e.p, phys, order);
            REQUIRE(got == want);
            if (got == PMM_OK) {
                free(s.state);
                model_release(&m, phys, order);
            } else {
                REQUIRE(snap_same(&s, &e.p));
            }
        } else if (op < 86) {
            unsigned order = random_order();
            uint64_t limit = (rng() % (m.frames + 16)) << PAGE_SHIFT;
            if (rng() % 2)
                limit += rng() % PAGE_SIZE;
            enum pmm_status st = pmm_alloc_below(&e.p, order, limit, CANOPY_OWNER_TEST, &a);
            if (model_has_block(&m, order, limit >> PAGE_SHIFT)) {
                REQUIRE_EQ(st, PMM_OK);
                REQUIRE(a + (PAGE_SIZE << order) <= limit);
                model_take(&m, a, order, CANOPY_OWNER_TEST);
            } else {
                REQUIRE_EQ(st, PMM_ERR_NOMEM);
            }
        } else if (op < 91) {
            uint64_t count = 1 + rng() % 40;
            unsigned order = 0;
            while ((1ull << order) < count)
                order++;
            enum pmm_status st = pmm_alloc_run(&e.p, count, CANOPY_OWNER_VMM, &a);
            if (model_has_block(&m, order, UINT64_MAX)) {
                REQUIRE_EQ(st, PMM_OK);
                for (uint64_t j = 0; j < count; j++)
                    model_take(&m, a + j * PAGE_SIZE, 0, CANOPY_OWNER_VMM);
            } else {
                REQUIRE_EQ(st, PMM_ERR_NOMEM);
            }
        } else if (op < 95) {
            if (m.live_count == 0)
                continue;
            uint64_t phys = page_down(m.live[rng() % m.live_count]);
            uint64_t count = 1 + rng() % 4;
            enum pmm_status want = PMM_OK;
            if ((phys >> PAGE_SHIFT) + count > m.frames)
                want = PMM_ERR_NOT_OWNED;
            for (uint64_t j = 0; j < count && want == PMM_OK; j++)
                want = model_free_status(&m, phys + j * PAGE_SIZE, 0);
            struct snap s;
            snap_take(&s, &e.p);
            enum pmm_status got = pmm_free_run(&e.p, phys, count);
            REQUIRE(got == want);
            if (got == PMM_OK) {
                free(s.state);
                for (uint64_t j = 0; j < count; j++)
                    model_release(&m, phys + j * PAGE_SIZE, 0);
            } else {
                REQUIRE(snap_same(&s, &e.p));
            }
        } else if (op < 96) {
            if (reclaimed || step < 10000)
                continue;
            uint64_t want = model_reclaim(&m);
            REQUIRE(pmm_reclaim(&e.p) == want);
            reclaimed = true;
        } else {
            uint64_t f = rng() % m.frames;
            REQUIRE(pmm_is_free(&e.p, f << PAGE_SHIFT) == (m.state[f] == M_FREE));
            REQUIRE(pmm_owner_of(&e.p, f << PAGE_SHIFT) == model_owner(&m, f));
        }
        REQUIRE_PMM(&e.p);
        REQUIRE(counts_of(&e.p).free == m.free_count);
        REQUIRE(counts_of(&e.p).reclaimable == m.reclaim_count);
    }
    REQUIRE(reclaimed);
    model_free(&m);
    env_free(&e);
}

int main(void)
{
    RUN(test_init_puts_every_frame_in_exactly_one_state);
    RUN(test_state_array_is_carved_from_usable_ram_and_owned_by_the_pmm);
    RUN(test_init_rejects_maps_it_cannot_use);
    RUN(test_tracking_ends_at_the_highest_ram_not_the_highest_mmio);
    RUN(test_ram_above_4gib_is_tracked_and_alloc_below_keeps_under_4gib);
    RUN(test_sparse_map_keeps_state_only_for_sections_with_ram);
    RUN(test_the_top_chunk_ends_at_the_last_frame);
    RUN(test_init_below_tracks_nothing_past_the_limit);
    RUN(test_adjacent_usable_ranges_with_other_attributes_form_one_buddy_run);
    RUN(test_create_writes_only_its_state_array_and_builds_no_lists);
    RUN(test_without_lists_nothing_is_allocated_or_freed);
    RUN(test_claim_hands_reclaimable_frames_to_their_owner);
    RUN(test_building_the_lists_gives_what_init_gives);
    RUN(test_create_refuses_a_state_array_outside_ram);
    RUN(test_state_bytes_do_not_grow_when_ram_only_shrinks);
    RUN(test_check_without_lists_finds_what_lists_would_hide);
    RUN(test_every_order_allocates_aligned_and_frees_back_to_the_same_tiling);
    RUN(test_freeing_both_buddies_merges_up_to_the_largest_block);
    RUN(test_order0_cache_defers_merging_until_a_request_needs_it);
    RUN(test_a_refill_takes_the_smallest_blocks_lowest_first);
    RUN(test_frames_below_1mib_are_never_handed_out);
    RUN(test_exhaustion_reports_nomem_and_changes_nothing);
    RUN(test_alloc_below_keeps_the_whole_block_under_the_limit);
    RUN(test_double_free_is_detected_and_changes_nothing);
    RUN(test_bad_frees_are_reported_and_change_nothing);
    RUN(test_frames_at_a_section_end_and_the_ram_end_free_through_the_cache);
    RUN(test_reclaim_frees_loader_and_boot_memory_and_merges_buddies);
    RUN(test_run_allocation_is_exact_and_frees_in_pieces);
    RUN(test_rebase_of_a_memcpy_continues_on_the_new_mapping);
    RUN(test_owner_and_free_lookups_answer_for_interior_frames);
    RUN(test_check_names_the_first_inconsistency);
    RUN(test_status_strings_are_distinct);
    RUN(test_random_operations_match_a_model);
    return check_finish();
}
