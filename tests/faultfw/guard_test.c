/*
 * guard_test: host checks of the fault layer's free-memory guard on page
 * tables in a buffer. The property that matters: after hiding ranges, a page
 * is present exactly when it was present before and lies outside every
 * range, and a present page still maps the same physical page with every
 * attribute it had (write, user, cache bits, PAT, global, NX, keys), checked
 * page by page with a walker.
 *
 * The hierarchy (4 levels, identity), tables in frames 0..7 of the buffer:
 *
 *   [0, 4 GiB)        1 GiB pages: RW; RO+NX; RW+PCD; RW+PAT+PWT (write-combining)
 *   [4 GiB, 5 GiB)    2 MiB pages, every other one NX and global
 *   [5 GiB, +2 MiB)   4 KiB pages, user, with a hole at +64 KiB
 *   above             nothing
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>

#include "guard.h"

#include <canopy/page.h>
#include <vmm/pte.h>

#define MiB         (1024ull * 1024)
#define GiB         (1024 * MiB)
#define FRAMES      64u
#define POOL_FIRST  8u
#define TOP_CHECKED (5 * GiB + 2 * MiB)

#define P   PTE_P
#define W   PTE_W
#define U   PTE_U
#define PWT PTE_PWT
#define PCD PTE_PCD
#define PS  PTE_PS
#define G   PTE_G
#define PAT PTE_PAT_LARGE
#define NX  PTE_NX
#define KEY (3ull << 59)

unsigned check_passed, check_failed;

static uint64_t mem[FRAMES][512] __attribute__((aligned(4096)));

static struct guard fresh(uint32_t pool_frames)
{
    memset(mem, 0, sizeof(mem));
    uint64_t *pml4 = mem[0], *pdpt = mem[1], *pd4 = mem[2], *pd5 = mem[3], *pt5 = mem[4];
    pml4[0] = 1 * PAGE_SIZE | P | W | U;
    pdpt[0] = 0 * GiB | P | W | PS;
    pdpt[1] = 1 * GiB | P | PS | NX;
    pdpt[2] = 2 * GiB | P | W | PS | PCD | KEY;
    pdpt[3] = 3 * GiB | P | W | PS | PAT | PWT;
    pdpt[4] = 2 * PAGE_SIZE | P | W;
    pdpt[5] = 3 * PAGE_SIZE | P | W | U;
    for (uint64_t i = 0; i < 512; i++)
        pd4[i] = (4 * GiB + i * 2 * MiB) | P | W | PS | ((i & 1) ? NX | G : 0);
    pd5[0] = 4 * PAGE_SIZE | P | W | U;
    for (uint64_t i = 0; i < 512; i++)
        pt5[i] = i == 16 ? 0 : (5 * GiB + i * PAGE_SIZE) | P | W | U | NX;
    return (struct guard){.root = 0,
                          .levels = 4,
                          .virt_offset = (uint64_t)(uintptr_t)mem,
                          .pool = POOL_FIRST * PAGE_SIZE,
                          .pool_frames = pool_frames};
}

struct range {
    uint64_t lo, hi;
};

static bool in_ranges(const struct range *r, size_t n, uint64_t a)
{
    for (size_t i = 0; i < n; i++)
        if (a >= r[i].lo && a < r[i].hi)
            return true;
    return false;
}

/* The leaf flags of every 4 KiB page below TOP_CHECKED (0: not present). */
static uint64_t *snapshot(const struct guard *g)
{
    uint64_t *flags = calloc(TOP_CHECKED / PAGE_SIZE, sizeof(*flags));
    if (!flags)
        abort();
    for (uint64_t a = 0; a < TOP_CHECKED; a += PAGE_SIZE) {
        uint64_t pa, leaf, size;
        if (guard_lookup(g, a, &pa, &leaf, &size)) {
            if (pa != a)
                abort(); /* the fixture maps 1:1 */
            flags[a / PAGE_SIZE] = leaf | P;
        }
    }
    return flags;
}

static void test_hides_exactly_the_ranges_and_keeps_every_attribute(void)
{
    struct guard g = fresh(FRAMES - POOL_FIRST);
    uint64_t *before = snapshot(&g);
    const struct range r[] = {
        {1 * MiB, 3 * MiB + PAGE_SIZE}, /* inside a 1 GiB page: two splits */
        {1 * GiB, 2 * GiB},             /* a whole 1 GiB page */
        {3 * GiB - 8 * PAGE_SIZE,
         3 * GiB + 12 * PAGE_SIZE}, /* across two 1 GiB pages, one with PAT */
        {4 * GiB + 2 * MiB - 8 * PAGE_SIZE, 4 * GiB + 4 * MiB + 12 * PAGE_SIZE}, /* 2 MiB pages */
        {5 * GiB + PAGE_SIZE, 5 * GiB + 20 * PAGE_SIZE}, /* 4 KiB pages, across the hole */
        {6 * GiB, 6 * GiB + PAGE_SIZE},                  /* nothing mapped there */
    };
    const size_t n = sizeof(r) / sizeof(r[0]);
    for (size_t i = 0; i < n; i++)
        REQUIRE(guard_hide(&g, r[i].lo, r[i].hi));
    uint64_t *after = snapshot(&g);
    uint64_t wrong = 0, kept = 0, hidden = 0;
    for (uint64_t a = 0; a < TOP_CHECKED; a += PAGE_SIZE) {
        uint64_t want = in_ranges(r, n, a) ? 0 : before[a / PAGE_SIZE];
        if (after[a / PAGE_SIZE] != want && wrong++ < 4)
            CHECKF(false, "page 0x%llx: flags 0x%llx, expected 0x%llx", (unsigned long long)a,
                   (unsigned long long)after[a / PAGE_SIZE], (unsigned long long)want);
        kept += after[a / PAGE_SIZE] != 0;
        hidden += before[a / PAGE_SIZE] != 0 && after[a / PAGE_SIZE] == 0;
    }
    CHECK_EQ(wrong, 0u);
    CHECK(kept > 0 && hidden == (2 * MiB + PAGE_SIZE) / PAGE_SIZE + GiB / PAGE_SIZE + 20 +
                                    2 * MiB / PAGE_SIZE + 20 + 18);
    /*
     * Tables taken: at 1 MiB a 1 GiB page splits and two of its 2 MiB pages (3);
     * around 3 GiB two 1 GiB pages and one 2 MiB page of each (4); around
     * 4 GiB + 2 MiB a 2 MiB page at each edge (2); the 4 KiB range none.
     */
    CHECKF(g.pool_used == 9, "%u tables used", g.pool_used);
    free(before);
    free(after);
}

static void test_an_empty_pool_stops_with_false(void)
{
    struct guard g = fresh(1);
    REQUIRE(!guard_hide(&g, 1 * MiB, 1 * MiB + PAGE_SIZE)); /* needs a 2 MiB and a 4 KiB table */
    REQUIRE(g.pool_used == 1);
    g = fresh(2);
    REQUIRE(guard_hide(&g, 1 * MiB, 1 * MiB + PAGE_SIZE));
    uint64_t pa, leaf, size;
    REQUIRE(!guard_lookup(&g, 1 * MiB, &pa, &leaf, &size));
    REQUIRE(guard_lookup(&g, 1 * MiB + PAGE_SIZE, &pa, &leaf, &size) && size == PAGE_SIZE &&
            pa == 1 * MiB + PAGE_SIZE);
    REQUIRE(guard_lookup(&g, 2 * MiB, &pa, &leaf, &size) && size == 2 * MiB);
}

static void test_five_levels_and_ranges_beyond_the_reach(void)
{
    struct guard g = fresh(FRAMES - POOL_FIRST);
    /* A PML5 on top: frame 5 holds it, entry 0 points at the PML4. */
    mem[5][0] = 0 * PAGE_SIZE | P | W | U;
    g.root = 5 * PAGE_SIZE;
    g.levels = 5;
    REQUIRE(guard_hide(&g, 4 * GiB, 4 * GiB + 2 * MiB));
    REQUIRE(guard_hide(&g, 1ull << 57, (1ull << 57) + PAGE_SIZE)); /* beyond: nothing to do */
    uint64_t pa, leaf, size;
    REQUIRE(!guard_lookup(&g, 4 * GiB + 4096, &pa, &leaf, &size));
    REQUIRE(guard_lookup(&g, 4 * GiB + 2 * MiB, &pa, &leaf, &size) && (leaf & NX) && (leaf & G));
    REQUIRE(g.pool_used == 0);
}

int main(void)
{
    test_hides_exactly_the_ranges_and_keeps_every_attribute();
    test_an_empty_pool_stops_with_false();
    test_five_levels_and_ranges_beyond_the_reach();
    return check_finish();
}
