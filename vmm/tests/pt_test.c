/*
 * Host tests for pt.c over a simulated physical memory (pt_sim.h): mapping
 * with the largest page sizes, prepare/commit under an allocation failure at
 * every possible point, splits on unmap and protect, freeing of empty tables,
 * exact table counts, canonical checks, 4- and 5-level hierarchies.
 *
 * Expected values are worked out by hand in the comments beside them.
 */
#include "pt_sim.h"

#include <vmm/pt.h>
#include <vmm/pte.h>

#include <stdint.h>
#include <canopy/check.h>
#include <canopy/rng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned check_passed, check_failed;

static struct sim sim;

/* A fresh hierarchy over the shared simulated memory. */
static struct pt fresh(unsigned levels)
{
    struct pt pt;
    sim.fail_after = -1;
    enum pt_status st = pt_init(&pt, levels, true, sim_offset(&sim), sim_frames(&sim));
    if (st != PT_OK) {
        printf("pt_init failed: %s\n", pt_status_str(st));
        exit(1);
    }
    return pt;
}

/* Checks the invariants and that the sim holds exactly the tables, then frees all. */
static void finish(struct pt *pt)
{
    const char *why = NULL;
    CHECKF(pt_check(pt, &why), "pt_check: %s", why);
    CHECKF(sim.held == pt->table_count, "sim holds %llu frames, table_count %llu",
           (unsigned long long)sim.held, (unsigned long long)pt->table_count);
    pt_destroy(pt);
    CHECKF(sim.held == 0 && pt->table_count == 0, "destroy left %llu frames",
           (unsigned long long)sim.held);
    CHECKF(sim.bad_frees == 0, "%llu bad frees", (unsigned long long)sim.bad_frees);
    sim.bad_frees = 0;
}

#define MAXLEAVES 4096
struct leaves {
    size_t n;
    struct pt_leaf l[MAXLEAVES];
};

static bool collect(void *ctx, const struct pt_leaf *leaf)
{
    struct leaves *ls = ctx;
    if (ls->n < MAXLEAVES)
        ls->l[ls->n] = *leaf;
    ls->n++;
    return true;
}

static struct leaves *all_leaves(const struct pt *pt, uint64_t first, uint64_t last)
{
    static struct leaves ls;
    ls.n = 0;
    pt_for_each_leaf(pt, first, last, collect, &ls);
    return &ls;
}

static bool leaf_is(const struct pt_leaf *l, uint64_t va, uint64_t pa, uint64_t size,
                    uint32_t attrs)
{
    return l->va == va && l->pa == pa && l->page_size == size && l->attrs == attrs;
}

/* ---- pte.h ------------------------------------------------------------------------------ */

static void test_pte_encoding_bits(void)
{
    uint64_t e = pte_make_leaf_4k(0x123456789000ull, PTE_W | PTE_NX | PTE_PAT_4K | PTE_G);
    CHECKF(e == (0x123456789000ull | PTE_P | PTE_W | PTE_NX | (1ull << 7) | (1ull << 8)),
           "4k leaf %llx", (unsigned long long)e);
    CHECKF(pte_is_present(e) && pte_is_writable(e) && pte_is_nx(e) && pte_is_global(e) &&
               !pte_is_user(e),
           "4k predicates");
    CHECKF(pte_pat_index(e, PAGE_SIZE) == 4, "PAT index of a 4K leaf with bit 7");
    CHECKF(pte_is_leaf(e, 1) && !pte_is_leaf(pte_make_table(0x1000, false), 2), "leaf test");

    uint64_t m = pte_make_leaf_2m(0x40200000ull, PTE_PAT_LARGE | PTE_PCD | PTE_U);
    CHECKF(m == (0x40200000ull | PTE_P | PTE_PS | (1ull << 12) | (1ull << 4) | (1ull << 2)),
           "2m leaf %llx", (unsigned long long)m);
    CHECKF(pte_leaf_addr(m, PAGE_SIZE_2M) == 0x40200000ull, "PAT bit 12 is not part of a 2M frame");
    CHECKF(pte_pat_index(m, PAGE_SIZE_2M) == 6, "PAT index 6 = PAT|PCD");
    CHECKF(pte_is_leaf(m, 2) && pte_is_leaf(m, 3) && !pte_is_leaf(m, 4), "PS only at 2 and 3");

    uint64_t g = pte_make_leaf_1g(0x80000000ull, PTE_PWT);
    CHECKF(g == (0x80000000ull | PTE_P | PTE_PS | PTE_PWT), "1g leaf %llx", (unsigned long long)g);
    CHECKF(pte_make_table(0x5000, true) == (0x5000 | 7u), "table entry P|W|U");
    CHECKF(pte_make_table(0x5000, false) == (0x5000 | 3u), "table entry P|W");

    /* Splitting a 2M leaf with PAT moves the bit from 12 to 7 and back. */
    CHECKF(pte_leaf_flags_convert(m, PAGE_SIZE_2M, PAGE_SIZE) == (PTE_PAT_4K | PTE_PCD | PTE_U),
           "convert 2M->4K");
    CHECKF(pte_leaf_flags_convert(pte_make_leaf_4k(0, PTE_PAT_4K), PAGE_SIZE, PAGE_SIZE_2M) ==
               PTE_PAT_LARGE,
           "convert 4K->2M");
    CHECKF(pte_pat_bits(5, PAGE_SIZE) == (PTE_PAT_4K | PTE_PWT) &&
               pte_pat_bits(5, PAGE_SIZE_1G) == (PTE_PAT_LARGE | PTE_PWT),
           "pat bits");
    CHECKF(pte_index(0xffffffff80201000ull, 4) == 511 &&
               pte_index(0xffffffff80201000ull, 3) == 510 &&
               pte_index(0xffffffff80201000ull, 2) == 1 && pte_index(0xffffffff80201000ull, 1) == 1,
           "indices of ffffffff80201000");
    CHECKF(pte_index(0xff00000000000000ull, 5) == 256, "PML5 index of the 5-level HHDM");
}

/* ---- basics ------------------------------------------------------------------------------- */

static void test_init_rejects_bad_levels_and_reports_nomem(void)
{
    struct pt pt;
    CHECKF(pt_init(&pt, 3, true, sim_offset(&sim), sim_frames(&sim)) == PT_ERR_INVALID, "3 levels");
    CHECKF(pt_init(&pt, 6, true, sim_offset(&sim), sim_frames(&sim)) == PT_ERR_INVALID, "6 levels");
    sim.fail_after = 0;
    CHECKF(pt_init(&pt, 4, true, sim_offset(&sim), sim_frames(&sim)) == PT_ERR_NOMEM, "no root");
    CHECKF(sim.held == 0, "no frame kept");
    sim.fail_after = -1;
    pt = fresh(4);
    CHECKF(pt.table_count == 1 && sim.held == 1, "root only");
    const uint64_t *root = (const uint64_t *)(uintptr_t)(pt.root + pt.virt_offset);
    bool zero = true;
    for (int i = 0; i < 512; i++)
        zero = zero && root[i] == 0;
    CHECKF(zero, "the root is zeroed (the sim hands out junk)");
    finish(&pt);
}

static void test_canonical_edges(void)
{
    CHECKF(va_is_canonical(0, 4) && va_is_canonical(0x00007fffffffffffull, 4), "lower top, 4");
    CHECKF(!va_is_canonical(0x0000800000000000ull, 4), "2^47 is not canonical at 4 levels");
    CHECKF(va_is_canonical(0xffff800000000000ull, 4), "upper bottom, 4");
    CHECKF(!va_is_canonical(0xfffe800000000000ull, 4), "bit 48 clear, 4");
    CHECKF(va_is_canonical(0x0000800000000000ull, 5), "2^47 is canonical at 5 levels");
    CHECKF(va_is_canonical(0x00ffffffffffffffull, 5) && !va_is_canonical(0x0100000000000000ull, 5),
           "lower top, 5");
    CHECKF(va_is_canonical(0xff00000000000000ull, 5) && !va_is_canonical(0xfe00000000000000ull, 5),
           "upper bottom, 5");
    CHECKF(va_is_canonical(UINT64_MAX, 4) && va_is_canonical(UINT64_MAX, 5), "all ones");
}

static void test_map_4k_query_and_walk(void)
{
    struct pt pt = fresh(4);
    uint64_t va = 0xffffffff80201000ull;
    CHECKF(pt_map(&pt, va_init(va), pa_init(0x200000), PAGE_SIZE, PT_G, PAGE_SIZE_2M) == PT_OK,
           "map");
    /* PML4, PDPT, PD, PT: root + 3. */
    CHECKF(pt.table_count == 4 && sim.held == 4, "tables %llu", (unsigned long long)pt.table_count);
    struct pt_leaf l;
    CHECKF(pt_query(&pt, va_init(va + 0x123), &l) == PT_OK &&
               leaf_is(&l, va, 0x200000, PAGE_SIZE, PT_G),
           "query: va %llx pa %llx attrs %x", (unsigned long long)l.va, (unsigned long long)l.pa,
           l.attrs);
    CHECKF(l.entry == (0x200000 | PTE_P | PTE_G | PTE_NX), "raw leaf %llx",
           (unsigned long long)l.entry);
    CHECKF(pt_query(&pt, va_init(va + PAGE_SIZE), &l) == PT_ERR_NOT_MAPPED, "next page unmapped");
    CHECKF(pt_query(&pt, va_init(va - 1), &l) == PT_ERR_NOT_MAPPED, "previous byte unmapped");
    CHECKF(pt_query(&pt, va_init(0x0000800000000000ull), &l) == PT_ERR_NOT_MAPPED, "non-canonical");

    struct pt_walk w;
    pt_walk(&pt, va_init(va), &w);
    CHECKF(w.present && w.depth == 4, "walk depth %u", w.depth);
    CHECKF(w.level[0].index == 511 && w.level[1].index == 510 && w.level[2].index == 1 &&
               w.level[3].index == 1,
           "walk indices");
    CHECKF((w.level[0].entry & 0xfff) == 3 && (w.level[2].entry & 0xfff) == 3,
           "non-leaf entries are P|W");
    CHECKF(w.level[3].entry == l.entry, "leaf raw entry");

    pt_walk(&pt, va_init(0xffffffff80400000ull), &w); /* PD index 2: not present */
    CHECKF(!w.present && w.depth == 3 && w.level[2].entry == 0 && w.level[2].index == 2,
           "walk stops at the missing PD entry, depth %u", w.depth);
    pt_walk(&pt, va_init(0x1000), &w);
    CHECKF(!w.present && w.depth == 1, "walk stops at the PML4");
    pt_walk(&pt, va_init(0x0000800000000000ull), &w);
    CHECKF(!w.present && w.depth == 0, "non-canonical walk");
    finish(&pt);
}

static void test_map_picks_largest_pages(void)
{
    struct pt pt = fresh(4);
    /*
     * [1G - 8K, 2G + 2M + 12K) with pa = va + 4G: two 4K pages up to 1G, one
     * 1G page, one 2M page, three 4K pages.
     */
    uint64_t va = PAGE_SIZE_1G - 2 * PAGE_SIZE,
             size = 2 * PAGE_SIZE + PAGE_SIZE_1G + PAGE_SIZE_2M + 3 * PAGE_SIZE,
             off = 4 * PAGE_SIZE_1G;
    CHECKF(pt_map(&pt, va_init(va), pa_init(va + off), size, PT_W, PAGE_SIZE_1G) == PT_OK, "map");
    struct leaves *ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 7, "%zu leaves", ls->n);
    uint64_t want_va[7] = {PAGE_SIZE_1G - 2 * PAGE_SIZE,
                           PAGE_SIZE_1G - PAGE_SIZE,
                           PAGE_SIZE_1G,
                           2 * PAGE_SIZE_1G,
                           2 * PAGE_SIZE_1G + PAGE_SIZE_2M,
                           2 * PAGE_SIZE_1G + PAGE_SIZE_2M + PAGE_SIZE,
                           2 * PAGE_SIZE_1G + PAGE_SIZE_2M + 2 * PAGE_SIZE};
    uint64_t want_size[7] = {PAGE_SIZE, PAGE_SIZE, PAGE_SIZE_1G, PAGE_SIZE_2M,
                             PAGE_SIZE, PAGE_SIZE, PAGE_SIZE};
    for (int i = 0; i < 7 && i < (int)ls->n; i++)
        CHECKF(leaf_is(&ls->l[i], want_va[i], want_va[i] + off, want_size[i], PT_W),
               "leaf %d: va %llx size %llx", i, (unsigned long long)ls->l[i].va,
               (unsigned long long)ls->l[i].page_size);
    /*
     * Tables: root; one PDPT (all below 512G); PD for 0..1G (the two 4K pages)
     * and PD for 2G..3G; PT for 1G-2M..1G and PT for 2G+2M..2G+4M: 6.
     */
    CHECKF(pt.table_count == 6, "tables %llu", (unsigned long long)pt.table_count);
    finish(&pt);
}

static void test_map_respects_max_page_size_and_pa_alignment(void)
{
    struct pt pt = fresh(4);
    /* 1G of va/pa both 1G aligned, capped at 2M: 512 2M pages in one PD. */
    CHECKF(pt_map(&pt, va_init(0xffff800000000000ull), pa_init(0), PAGE_SIZE_1G, PT_W,
                  PAGE_SIZE_2M) == PT_OK,
           "map capped");
    struct leaves *ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 512 && ls->l[0].page_size == PAGE_SIZE_2M &&
               ls->l[511].page_size == PAGE_SIZE_2M,
           "%zu leaves", ls->n);
    CHECKF(pt.table_count == 3, "root, PDPT, PD: %llu", (unsigned long long)pt.table_count);
    /* va 2M aligned but pa only 4K aligned: 4K pages throughout. */
    CHECKF(pt_map(&pt, va_init(0x200000), pa_init(0x1001000), PAGE_SIZE_2M, 0, PAGE_SIZE_1G) ==
               PT_OK,
           "map misaligned pa");
    ls = all_leaves(&pt, 0, 0x7fffffffffffull);
    CHECKF(ls->n == 512 && ls->l[0].page_size == PAGE_SIZE && ls->l[0].pa == 0x1001000 &&
               ls->l[511].pa == 0x1001000 + 511 * PAGE_SIZE,
           "%zu 4K leaves", ls->n);
    /* Any max below 2M means 4K; below 4K is invalid. */
    CHECKF(pt_map(&pt, va_init(0x40000000), pa_init(0x40000000), PAGE_SIZE_2M, 0,
                  PAGE_SIZE_2M - 1) == PT_OK,
           "max 2M-1");
    CHECKF(all_leaves(&pt, 0x40000000, 0x40000000)->l[0].page_size == PAGE_SIZE,
           "4K under max 2M-1");
    CHECKF(pt_map(&pt, va_init(0x80000000), pa_init(0), PAGE_SIZE, 0, 2048) == PT_ERR_INVALID,
           "max below 4K");
    finish(&pt);
}

static void test_map_rejects_bad_arguments(void)
{
    struct pt pt = fresh(4);
    uint64_t h = sim_hash(&pt);
    CHECKF(pt_map(&pt, va_init(0x1000), pa_init(0x1000), 0, 0, PAGE_SIZE) == PT_ERR_INVALID,
           "zero size");
    CHECKF(pt_map(&pt, va_init(0x1001), pa_init(0x1000), PAGE_SIZE, 0, PAGE_SIZE) == PT_ERR_INVALID,
           "va misaligned");
    CHECKF(pt_map(&pt, va_init(0x1000), pa_init(0x1800), PAGE_SIZE, 0, PAGE_SIZE) == PT_ERR_INVALID,
           "pa misaligned");
    CHECKF(pt_map(&pt, va_init(0x1000), pa_init(0x1000), 0x800, 0, PAGE_SIZE) == PT_ERR_INVALID,
           "size misaligned");
    CHECKF(pt_map(&pt, va_init(0x0000800000000000ull), pa_init(0), PAGE_SIZE, 0, PAGE_SIZE) ==
               PT_ERR_INVALID,
           "non-canonical");
    CHECKF(pt_map(&pt, va_init(0x00007ffffffff000ull), pa_init(0), 2 * PAGE_SIZE, 0, PAGE_SIZE) ==
               PT_ERR_INVALID,
           "runs off the lower half");
    CHECKF(pt_map(&pt, va_init(0xfffffffffffff000ull), pa_init(0), 2 * PAGE_SIZE, 0, PAGE_SIZE) ==
               PT_ERR_INVALID,
           "wraps");
    CHECKF(pt_map(&pt, va_init(0x1000), pa_init(0x1000), PAGE_SIZE, 0x80, PAGE_SIZE) ==
               PT_ERR_INVALID,
           "unknown attribute");
    CHECKF(pt_map(&pt, va_init(0x1000), pa_init(0x000ffffffffff000ull), 2 * PAGE_SIZE, 0,
                  PAGE_SIZE) == PT_ERR_INVALID,
           "pa beyond 52 bits");
    CHECKF(pt_map(&pt, va_init(0x1000), pa_init(0x000ffffffffff000ull), PAGE_SIZE, 0, PAGE_SIZE) ==
               PT_OK,
           "highest frame");
    CHECKF(pt_unmap(&pt, va_init(0x1000), 0) == PT_ERR_INVALID &&
               pt_unmap(&pt, va_init(0x1800), PAGE_SIZE) == PT_ERR_INVALID,
           "unmap arguments");
    CHECKF(pt_protect(&pt, va_init(0x1000), PAGE_SIZE, 0x80) == PT_ERR_INVALID, "protect attrs");
    CHECKF(pt_unmap(&pt, va_init(0x1000), PAGE_SIZE) == PT_OK && sim_hash(&pt) == h,
           "back to empty");
    finish(&pt);
}

static void test_map_over_existing_fails_and_changes_nothing(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0x400000), pa_init(0x400000), PAGE_SIZE_2M, PT_W, PAGE_SIZE_2M) ==
               PT_OK,
           "2M page");
    CHECKF(pt_map(&pt, va_init(0x7ff000), pa_init(0x900000), PAGE_SIZE, 0, PAGE_SIZE) == PT_OK,
           "4K page");
    CHECKF(pt_map(&pt, va_init(0x40000000000ull - 0x1000), pa_init(0), 0x1000, 0, PAGE_SIZE) ==
               PT_OK,
           "far page");
    uint64_t h = sim_hash(&pt), tables = pt.table_count;
    CHECKF(pt_map(&pt, va_init(0x200000), pa_init(0x10000000), 0x201000, 0, PAGE_SIZE_2M) ==
               PT_ERR_EXISTS,
           "hits the 2M page");
    CHECKF(pt_map(&pt, va_init(0x7fe000), pa_init(0x10000000), 0x2000, 0, PAGE_SIZE_2M) ==
               PT_ERR_EXISTS,
           "hits the 4K page");
    CHECKF(pt_map(&pt, va_init(0x600000), pa_init(0x600000), PAGE_SIZE_2M, 0, PAGE_SIZE_2M) ==
               PT_ERR_EXISTS,
           "a 2M page over a table with a mapping");
    CHECKF(pt_map(&pt, va_init(0), pa_init(0), PAGE_SIZE_1G, 0, PAGE_SIZE_1G) == PT_ERR_EXISTS,
           "a 1G page over everything");
    CHECKF(sim_hash(&pt) == h && pt.table_count == tables && sim.held == tables, "unchanged");
    finish(&pt);
}

/*
 * Runs op with an allocation failure injected after 0, 1, 2, ... successes
 * until it succeeds; each failure must be PT_ERR_NOMEM with nothing changed
 * and no frame kept. Returns the number of failures seen.
 */
typedef enum pt_status (*op_fn)(struct pt *pt, const uint64_t *args);

static int fail_at_every_point(struct pt *pt, op_fn op, const uint64_t *args, const char *what)
{
    uint64_t h = sim_hash(pt), tables = pt->table_count, held = sim.held;
    for (int n = 0; n < 64; n++) {
        sim.fail_after = n;
        enum pt_status st = op(pt, args);
        sim.fail_after = -1;
        if (st == PT_OK)
            return n;
        CHECKF(st == PT_ERR_NOMEM, "%s: failure %d gave %s", what, n, pt_status_str(st));
        CHECKF(sim_hash(pt) == h && pt->table_count == tables && sim.held == held,
               "%s: failure after %d allocations changed something", what, n);
    }
    CHECKF(false, "%s never succeeded", what);
    return -1;
}

static enum pt_status op_map(struct pt *pt, const uint64_t *a)
{
    return pt_map(pt, va_init(a[0]), pa_init(a[1]), a[2], (uint32_t)a[3], a[4]);
}
static enum pt_status op_unmap(struct pt *pt, const uint64_t *a)
{
    return pt_unmap(pt, va_init(a[0]), a[1]);
}
static enum pt_status op_protect(struct pt *pt, const uint64_t *a)
{
    return pt_protect(pt, va_init(a[0]), a[1], (uint32_t)a[2]);
}

static void test_map_prepare_commit_under_allocation_failure(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0xffffffff80000000ull), pa_init(0x100000), PAGE_SIZE, 0,
                  PAGE_SIZE) == PT_OK,
           "existing");
    /*
     * [ffffffff7fffe000, ffffffff80000000) + [.., ffffffff80400000) and a
     * second PDPT entry: the range needs a new PD (for 0xffffffff40000000)
     * and PT below it, plus a PT next to the existing one for 0xffffffff80201000.
     * From ffffffff7fffe000: 2 pages in a new PD+PT under PDPT 509; then
     * ffffffff80000000 is taken? No: start after it.
     */
    uint64_t a[5] = {0xffffffff7fffe000ull, 0x7fffe000, 2 * PAGE_SIZE, PT_W, PAGE_SIZE_1G};
    int fails = fail_at_every_point(&pt, op_map, a, "map 2 pages in a new PD");
    CHECKF(fails == 2, "needed 2 new tables, failed %d times", fails);
    uint64_t b[5] = {0xffffffff80001000ull, 0x80001000, 0x600000 - PAGE_SIZE, PT_W, PAGE_SIZE_2M};
    /* 511 4K pages in the existing PT, then 2M pages at 2M and 4M: no new table. */
    fails = fail_at_every_point(&pt, op_map, b, "map into existing tables");
    CHECKF(fails == 0, "needed no table, failed %d times", fails);
    uint64_t c[5] = {0x0000100000000000ull, 0x200000000ull, 4 * PAGE_SIZE_2M + 3 * PAGE_SIZE, 0,
                     PAGE_SIZE_2M};
    /* A new PML4 slot: PDPT, PD, PT (for the 3 tail pages). */
    fails = fail_at_every_point(&pt, op_map, c, "map in a new PML4 slot");
    CHECKF(fails == 3, "needed 3 new tables, failed %d times", fails);
    uint64_t d[5] = {0x0000200000000000ull - 2 * PAGE_SIZE, 0x300000000ull - 2 * PAGE_SIZE,
                     4 * PAGE_SIZE, PT_U, PAGE_SIZE};
    /* Across a 512G boundary: two PDPT+PD+PT chains. */
    fails = fail_at_every_point(&pt, op_map, d, "map across PML4 slots");
    CHECKF(fails == 6, "needed 6 new tables, failed %d times", fails);
    finish(&pt);
}

/* ---- unmap ------------------------------------------------------------------------------- */

static void test_unmap_frees_emptied_tables_but_not_the_root(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0x1000), pa_init(0x1000), PAGE_SIZE, 0, PAGE_SIZE) == PT_OK, "map");
    CHECKF(pt_map(&pt, va_init(0xffffc00000000000ull), pa_init(0x5000), 3 * PAGE_SIZE, PT_W,
                  PAGE_SIZE) == PT_OK,
           "map 2");
    CHECKF(pt.table_count == 7, "root + 2 chains of 3: %llu", (unsigned long long)pt.table_count);
    CHECKF(pt_unmap(&pt, va_init(0x1000), PAGE_SIZE) == PT_OK && pt.table_count == 4,
           "first chain gone");
    CHECKF(pt_unmap(&pt, va_init(0xffffc00000001000ull), PAGE_SIZE) == PT_OK && pt.table_count == 4,
           "middle page gone, tables stay");
    struct leaves *ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 2 && ls->l[0].va == 0xffffc00000000000ull &&
               ls->l[1].va == 0xffffc00000002000ull,
           "two pages left");
    CHECKF(pt_unmap(&pt, va_init(0xffff800000000000ull), 0x7ffffffff000ull) == PT_OK,
           "unmap the whole upper half but the last page");
    CHECKF(pt.table_count == 1 && sim.held == 1, "only the root: %llu",
           (unsigned long long)pt.table_count);
    CHECKF(pt_unmap(&pt, va_init(0x1000), PAGE_SIZE) == PT_OK, "unmapping nothing is fine");
    finish(&pt);
}

static void test_unmap_splits_large_pages(void)
{
    struct pt pt = fresh(4);
    uint64_t va = 0xffff800000000000ull;
    CHECKF(pt_map(&pt, va_init(va), pa_init(0), 2 * PAGE_SIZE_1G, PT_W | PT_G, PAGE_SIZE_1G) ==
               PT_OK,
           "two 1G pages");
    CHECKF(pt.table_count == 2, "root + PDPT");
    /* Cut [1G - 4K, 1G + 2M + 4K): the first 1G page loses its last 4K (PD + PT),
       the second loses its first 2M + 4K (PD + PT). */
    uint64_t a[2] = {va + PAGE_SIZE_1G - PAGE_SIZE, PAGE_SIZE_2M + 2 * PAGE_SIZE};
    int fails = fail_at_every_point(&pt, op_unmap, a, "unmap across two 1G pages");
    CHECKF(fails == 4, "4 tables, failed %d times", fails);
    CHECKF(pt.table_count == 6, "tables %llu", (unsigned long long)pt.table_count);
    struct pt_leaf l;
    CHECKF(pt_query(&pt, va_init(va + PAGE_SIZE_1G - 2 * PAGE_SIZE), &l) == PT_OK &&
               leaf_is(&l, va + PAGE_SIZE_1G - 2 * PAGE_SIZE, PAGE_SIZE_1G - 2 * PAGE_SIZE,
                       PAGE_SIZE, PT_W | PT_G),
           "4K page before the hole");
    CHECKF(pt_query(&pt, va_init(va + PAGE_SIZE_1G - 2 * PAGE_SIZE_2M + 0x1234), &l) == PT_OK &&
               leaf_is(&l, va + PAGE_SIZE_1G - 2 * PAGE_SIZE_2M, PAGE_SIZE_1G - 2 * PAGE_SIZE_2M,
                       PAGE_SIZE_2M, PT_W | PT_G),
           "2M page before that");
    CHECKF(pt_query(&pt, va_init(va + PAGE_SIZE_1G - PAGE_SIZE), &l) == PT_ERR_NOT_MAPPED &&
               pt_query(&pt, va_init(va + PAGE_SIZE_1G + PAGE_SIZE_2M), &l) == PT_ERR_NOT_MAPPED,
           "the hole");
    CHECKF(pt_query(&pt, va_init(va + PAGE_SIZE_1G + PAGE_SIZE_2M + PAGE_SIZE), &l) == PT_OK &&
               leaf_is(&l, va + PAGE_SIZE_1G + PAGE_SIZE_2M + PAGE_SIZE,
                       PAGE_SIZE_1G + PAGE_SIZE_2M + PAGE_SIZE, PAGE_SIZE, PT_W | PT_G),
           "4K page after the hole");
    CHECKF(pt_query(&pt, va_init(va + PAGE_SIZE_1G + 2 * PAGE_SIZE_2M), &l) == PT_OK &&
               leaf_is(&l, va + PAGE_SIZE_1G + 2 * PAGE_SIZE_2M, PAGE_SIZE_1G + 2 * PAGE_SIZE_2M,
                       PAGE_SIZE_2M, PT_W | PT_G),
           "2M page after that");
    /* Leaves: 511 2M + 511 4K, then 511 4K + 510 2M. */
    struct leaves *ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 511 + 511 + 511 + 510, "%zu leaves", ls->n);
    finish(&pt);
}

static void test_unmap_split_keeps_bits_and_moves_pat(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0x40000000), pa_init(0x80000000), PAGE_SIZE_2M,
                  PT_W | PT_U | PT_G | PT_CACHE_UC, PAGE_SIZE_2M) == PT_OK,
           "2M page");
    /* Give the leaf PAT, A and D by hand, as a PAT-aware kernel or the CPU would. */
    struct pt_walk w;
    pt_walk(&pt, va_init(0x40000000), &w);
    CHECKF(w.present && w.depth == 3, "2M leaf at depth 3");
    uint64_t *pd = (uint64_t *)(uintptr_t)(pte_table_addr(w.level[1].entry) + pt.virt_offset);
    pd[0] |= PTE_PAT_LARGE | PTE_A | PTE_D;
    CHECKF(pt_unmap(&pt, va_init(0x40000000), PAGE_SIZE) == PT_OK, "unmap the first 4K");
    struct pt_leaf l;
    CHECKF(pt_query(&pt, va_init(0x40001000), &l) == PT_OK, "second 4K page");
    uint64_t want = 0x80001000 | PTE_P | PTE_W | PTE_U | PTE_PWT | PTE_PCD | PTE_A | PTE_D |
                    PTE_PAT_4K | PTE_G | PTE_NX;
    CHECKF(l.entry == want && l.page_size == PAGE_SIZE, "split entry %llx want %llx",
           (unsigned long long)l.entry, (unsigned long long)want);
    CHECKF(pte_pat_index(l.entry, PAGE_SIZE) == 7, "PAT index kept");
    finish(&pt);
}

static void test_memory_type_sets_the_pat_index_at_every_size(void)
{
    struct pt pt = fresh(4);
    /* Write-combining is PAT entry 5: PWT and the PAT bit, bit 7 in a 4K leaf, 12 in 2M and 1G. */
    static const uint64_t sizes[] = {PAGE_SIZE, PAGE_SIZE_2M, PAGE_SIZE_1G};
    for (unsigned i = 0; i < 3; i++) {
        uint64_t va = (uint64_t)(i + 1) * 4 * PAGE_SIZE_1G, ps = sizes[i];
        REQUIRE(pt_map(&pt, va_init(va), pa_init(va), ps, PT_W | PT_CACHE_WC, ps) == PT_OK);
        struct pt_leaf l;
        REQUIRE(pt_query(&pt, va_init(va), &l) == PT_OK);
        uint64_t pat = ps == PAGE_SIZE ? PTE_PAT_4K : PTE_PAT_LARGE;
        CHECKF((l.entry & (pat | PTE_PWT | PTE_PCD)) == (pat | PTE_PWT) && l.page_size == ps,
               "%llu-byte WC leaf %llx", (unsigned long long)ps, (unsigned long long)l.entry);
        CHECK_EQ(pte_pat_index(l.entry, ps), 5u);
        CHECK(leaf_is(&l, va, va, ps, PT_W | PT_CACHE_WC));
    }
    /* UC- and UC stay PCD and PCD|PWT, no PAT bit: their power-on encodings. */
    REQUIRE(pt_map(&pt, va_init(0x1000), pa_init(0x1000), PAGE_SIZE, PT_CACHE_UCM, PAGE_SIZE) ==
            PT_OK);
    REQUIRE(pt_map(&pt, va_init(0x2000), pa_init(0x2000), PAGE_SIZE, PT_CACHE_UC, PAGE_SIZE) ==
            PT_OK);
    struct pt_leaf l;
    REQUIRE(pt_query(&pt, va_init(0x1000), &l) == PT_OK);
    CHECK((l.entry & (PTE_PAT_4K | PTE_PCD | PTE_PWT)) == PTE_PCD);
    CHECK_EQ(l.attrs & PT_CACHE_MASK, PT_CACHE_UCM);
    REQUIRE(pt_query(&pt, va_init(0x2000), &l) == PT_OK);
    CHECK((l.entry & (PTE_PAT_4K | PTE_PCD | PTE_PWT)) == (PTE_PCD | PTE_PWT));
    finish(&pt);
}

static void test_protect_moves_the_pat_bit_when_it_splits(void)
{
    struct pt pt = fresh(4);
    uint64_t va = PAGE_SIZE_1G;
    REQUIRE(pt_map(&pt, va_init(va), pa_init(0x80000000), PAGE_SIZE_2M, PT_W | PT_CACHE_WC,
                   PAGE_SIZE_2M) == PT_OK);
    /* The same type again changes nothing: no split, no table. */
    uint64_t tables = pt.table_count;
    REQUIRE(pt_protect(&pt, va_init(va), PAGE_SIZE_2M, PT_W | PT_CACHE_WC) == PT_OK);
    CHECK_EQ(pt.table_count, tables);
    /* One 4K page uncached: the 2M page splits, the rest stay write-combining at bit 7. */
    REQUIRE(pt_protect(&pt, va_init(va + 3 * PAGE_SIZE), PAGE_SIZE, PT_W | PT_CACHE_UC) == PT_OK);
    struct pt_leaf l;
    REQUIRE(pt_query(&pt, va_init(va + 2 * PAGE_SIZE), &l) == PT_OK);
    CHECK(leaf_is(&l, va + 2 * PAGE_SIZE, 0x80002000, PAGE_SIZE, PT_W | PT_CACHE_WC));
    CHECK((l.entry & (PTE_PAT_4K | PTE_PWT | PTE_PCD)) == (PTE_PAT_4K | PTE_PWT));
    REQUIRE(pt_query(&pt, va_init(va + 3 * PAGE_SIZE), &l) == PT_OK);
    CHECK(leaf_is(&l, va + 3 * PAGE_SIZE, 0x80003000, PAGE_SIZE, PT_W | PT_CACHE_UC));
    CHECK((l.entry & (PTE_PAT_4K | PTE_PWT | PTE_PCD)) == (PTE_PWT | PTE_PCD));
    finish(&pt);
}

/* ---- protect ------------------------------------------------------------------------------ */

static void test_protect_splits_and_changes_only_the_range(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0), pa_init(0), PAGE_SIZE_1G, PT_W, PAGE_SIZE_1G) == PT_OK,
           "1G page");
    /* Make [2M + 4K, 4M) read-only and executable: PD + one PT. */
    uint64_t a[3] = {PAGE_SIZE_2M + PAGE_SIZE, PAGE_SIZE_2M - PAGE_SIZE, PT_X};
    int fails = fail_at_every_point(&pt, op_protect, a, "protect inside a 1G page");
    CHECKF(fails == 2, "2 tables, failed %d times", fails);
    struct pt_leaf l;
    CHECKF(pt_query(&pt, va_init(PAGE_SIZE_2M), &l) == PT_OK &&
               leaf_is(&l, PAGE_SIZE_2M, PAGE_SIZE_2M, PAGE_SIZE, PT_W),
           "first 4K keeps W");
    CHECKF(pt_query(&pt, va_init(PAGE_SIZE_2M + PAGE_SIZE), &l) == PT_OK &&
               leaf_is(&l, PAGE_SIZE_2M + PAGE_SIZE, PAGE_SIZE_2M + PAGE_SIZE, PAGE_SIZE, PT_X),
           "second 4K is R+X");
    CHECKF(pt_query(&pt, va_init(2 * PAGE_SIZE_2M), &l) == PT_OK &&
               leaf_is(&l, 2 * PAGE_SIZE_2M, 2 * PAGE_SIZE_2M, PAGE_SIZE_2M, PT_W),
           "next 2M untouched");
    CHECKF(pt_query(&pt, va_init(0), &l) == PT_OK && leaf_is(&l, 0, 0, PAGE_SIZE_2M, PT_W),
           "first 2M untouched");
    /* Protecting to the attributes a large page already has splits nothing. */
    uint64_t tables = pt.table_count;
    CHECKF(pt_protect(&pt, va_init(8 * PAGE_SIZE_2M + PAGE_SIZE), PAGE_SIZE, PT_W) == PT_OK &&
               pt.table_count == tables,
           "no split for a no-op");
    /* Protect keeps A and D but nothing else of the old bits. */
    struct pt_walk w;
    pt_walk(&pt, va_init(PAGE_SIZE_2M + PAGE_SIZE), &w);
    uint64_t *ptab = (uint64_t *)(uintptr_t)(pte_table_addr(w.level[2].entry) + pt.virt_offset);
    ptab[1] |= PTE_A | PTE_D;
    CHECKF(pt_protect(&pt, va_init(0), 2 * PAGE_SIZE_2M, PT_U | PT_G) == PT_OK, "protect 4M");
    CHECKF(pt_query(&pt, va_init(PAGE_SIZE_2M + PAGE_SIZE), &l) == PT_OK &&
               l.entry ==
                   ((PAGE_SIZE_2M + PAGE_SIZE) | PTE_P | PTE_U | PTE_G | PTE_NX | PTE_A | PTE_D),
           "A and D kept: %llx", (unsigned long long)l.entry);
    CHECKF(
        pt_query(&pt, va_init(PAGE_SIZE_2M + PAGE_SIZE), &l) == PT_OK &&
            leaf_is(&l, PAGE_SIZE_2M + PAGE_SIZE, PAGE_SIZE_2M + PAGE_SIZE, PAGE_SIZE, PT_U | PT_G),
        "now user, global, NX");
    pt_walk(&pt, va_init(PAGE_SIZE_2M + PAGE_SIZE), &w);
    CHECKF(pte_is_user(w.level[0].entry) && pte_is_user(w.level[1].entry) &&
               pte_is_user(w.level[2].entry),
           "parents gained U");
    CHECKF(pt_protect(&pt, va_init(0), 2 * PAGE_SIZE_2M, 0) == PT_OK, "back to kernel");
    pt_walk(&pt, va_init(PAGE_SIZE_2M + PAGE_SIZE), &w);
    CHECKF(!pte_is_user(w.level[0].entry) && !pte_is_user(w.level[2].entry), "parents lost U");
    finish(&pt);
}

static void test_user_bit_on_parents_follows_the_leaves(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0x401000), pa_init(0x401000), PAGE_SIZE, 0, PAGE_SIZE) == PT_OK,
           "kernel page");
    struct pt_walk w;
    pt_walk(&pt, va_init(0x401000), &w);
    CHECKF((w.level[0].entry & 7) == 3 && (w.level[2].entry & 7) == 3, "P|W above, no U");
    CHECKF(pt_map(&pt, va_init(0x400000), pa_init(0x400000), PAGE_SIZE, PT_U, PAGE_SIZE) == PT_OK,
           "user page");
    pt_walk(&pt, va_init(0x401000), &w);
    CHECKF((w.level[0].entry & 7) == 7 && (w.level[2].entry & 7) == 7, "P|W|U above");
    struct pt_leaf l;
    CHECKF(pt_query(&pt, va_init(0x401000), &l) == PT_OK && l.attrs == 0,
           "kernel page stays kernel");
    CHECKF(pt_unmap(&pt, va_init(0x400000), PAGE_SIZE) == PT_OK, "unmap the user page");
    pt_walk(&pt, va_init(0x401000), &w);
    CHECKF((w.level[0].entry & 7) == 3 && (w.level[2].entry & 7) == 3, "U cleared above");
    finish(&pt);
}

/* ---- effective attributes ------------------------------------------------------------------ */

static void test_effective_attributes_are_anded_over_levels(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0x200000), pa_init(0x200000), PAGE_SIZE, PT_W | PT_X | PT_U,
                  PAGE_SIZE) == PT_OK,
           "map");
    struct pt_walk w;
    pt_walk(&pt, va_init(0x200000), &w);
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(pt.root + pt.virt_offset);
    uint64_t *pdpt = (uint64_t *)(uintptr_t)(pte_table_addr(w.level[0].entry) + pt.virt_offset);
    struct pt_leaf l;
    CHECKF(pt_query(&pt, va_init(0x200000), &l) == PT_OK && l.attrs == (PT_W | PT_X | PT_U),
           "leaf decides");
    pdpt[0] &= ~PTE_W; /* a read-only PDPT entry makes everything below read-only */
    CHECKF(pt_query(&pt, va_init(0x200000), &l) == PT_OK && l.attrs == (PT_X | PT_U), "W ANDed");
    pml4[0] |= PTE_NX; /* NX anywhere above makes it non-executable */
    CHECKF(pt_query(&pt, va_init(0x200000), &l) == PT_OK && l.attrs == PT_U, "NX ORed");
    pdpt[0] &= ~PTE_U;
    struct leaves *ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 1 && ls->l[0].attrs == 0, "for_each_leaf agrees: %x",
           ls->n ? ls->l[0].attrs : 0);
    const char *why = NULL;
    CHECKF(!pt_check(&pt, &why) && why != NULL, "pt_check notices the odd parent");
    pdpt[0] |= PTE_W | PTE_U;
    pml4[0] &= ~PTE_NX;
    finish(&pt);
}

/* ---- iteration ------------------------------------------------------------------------------ */

static bool stop_after_two(void *ctx, const struct pt_leaf *leaf)
{
    int *n = ctx;
    (void)leaf;
    return ++*n < 2;
}

static void test_for_each_leaf_orders_and_clips(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0xffffffff80000000ull), pa_init(0x1000000), 3 * PAGE_SIZE, 0,
                  PAGE_SIZE) == PT_OK,
           "kernel");
    CHECKF(pt_map(&pt, va_init(0xffff800000000000ull), pa_init(0), PAGE_SIZE_2M, PT_W,
                  PAGE_SIZE_2M) == PT_OK,
           "hhdm");
    CHECKF(pt_map(&pt, va_init(0x7ffffffff000ull), pa_init(0x5000), PAGE_SIZE, PT_U | PT_W,
                  PAGE_SIZE) == PT_OK,
           "lower top");
    CHECKF(pt_map(&pt, va_init(0x1000), pa_init(0x6000), PAGE_SIZE, PT_U, PAGE_SIZE) == PT_OK,
           "lower bottom");
    struct leaves *ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 6, "%zu leaves", ls->n);
    uint64_t order[6] = {0x1000,
                         0x7ffffffff000ull,
                         0xffff800000000000ull,
                         0xffffffff80000000ull,
                         0xffffffff80001000ull,
                         0xffffffff80002000ull};
    for (int i = 0; i < 6 && i < (int)ls->n; i++)
        CHECKF(ls->l[i].va == order[i], "leaf %d at %llx", i, (unsigned long long)ls->l[i].va);
    /* A range that starts inside the 2M page still reports it whole. */
    ls = all_leaves(&pt, 0xffff800000100000ull, 0xffffffff80000fffull);
    CHECKF(ls->n == 2 && ls->l[0].va == 0xffff800000000000ull &&
               ls->l[0].page_size == PAGE_SIZE_2M && ls->l[1].va == 0xffffffff80000000ull,
           "clipped: %zu", ls->n);
    /* A range in the non-canonical hole reports nothing; one spanning it both sides. */
    CHECKF(all_leaves(&pt, 0x0000800000000000ull, 0xffff7fffffffffffull)->n == 0, "hole");
    CHECKF(all_leaves(&pt, 0x7ffffffff000ull, 0xffff800000000000ull)->n == 2, "across the hole");
    CHECKF(all_leaves(&pt, 5, 4)->n == 0, "empty range");
    int n = 0;
    CHECKF(!pt_for_each_leaf(&pt, 0, UINT64_MAX, stop_after_two, &n) && n == 2, "early stop");
    finish(&pt);
}

static void test_top_of_the_address_space(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0xffffffffffe00000ull), pa_init(0x40000000), PAGE_SIZE_2M, PT_W,
                  PAGE_SIZE_1G) == PT_OK,
           "last 2M, ending at 2^64");
    struct leaves *ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 1 && ls->l[0].page_size == PAGE_SIZE_2M && ls->l[0].va == 0xffffffffffe00000ull,
           "one 2M leaf");
    CHECKF(pt_unmap(&pt, va_init(0xfffffffffffff000ull), PAGE_SIZE) == PT_OK,
           "unmap the last page (split)");
    ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 511 && ls->l[510].va == 0xffffffffffffe000ull, "511 pages left");
    CHECKF(pt_map(&pt, va_init(0xfffffffffffff000ull), pa_init(0x1234000), PAGE_SIZE, 0,
                  PAGE_SIZE) == PT_OK,
           "last page");
    struct pt_leaf l;
    CHECKF(pt_query(&pt, va_init(UINT64_MAX), &l) == PT_OK && l.pa == 0x1234000, "last byte maps");
    CHECKF(pt_protect(&pt, va_init(0xffffffffffe00000ull), PAGE_SIZE_2M, PT_G) == PT_OK,
           "protect to the top");
    CHECKF(pt_unmap(&pt, va_init(0xffff800000000000ull), 0x800000000000ull) == PT_OK,
           "unmap the whole upper half");
    CHECKF(pt.table_count == 1, "root only");
    finish(&pt);
}

/* ---- 5-level --------------------------------------------------------------------------------- */

static void test_five_level_maps_the_whole_57_bit_space(void)
{
    struct pt pt = fresh(5);
    CHECKF(pt_map(&pt, va_init(0xff00000000000000ull), pa_init(0), 2 * PAGE_SIZE_1G, PT_W,
                  PAGE_SIZE_1G) == PT_OK,
           "5-level hhdm");
    CHECKF(pt_map(&pt, va_init(0x00fffffffffff000ull), pa_init(0x3000), PAGE_SIZE, PT_U,
                  PAGE_SIZE) == PT_OK,
           "top of lower half");
    CHECKF(pt_map(&pt, va_init(0x0000800000000000ull), pa_init(0x4000), PAGE_SIZE, 0, PAGE_SIZE) ==
               PT_OK,
           "2^47 is canonical with 5 levels");
    CHECKF(pt_map(&pt, va_init(0x0100000000000000ull), pa_init(0), PAGE_SIZE, 0, PAGE_SIZE) ==
               PT_ERR_INVALID,
           "2^56 is not");
    /* root + (PML4 + PDPT) for the hhdm + (PML4, PDPT, PD, PT) + (PML4, PDPT, PD, PT). */
    CHECKF(pt.table_count == 11, "tables %llu", (unsigned long long)pt.table_count);
    struct pt_walk w;
    pt_walk(&pt, va_init(0x00fffffffffff000ull), &w);
    CHECKF(w.present && w.depth == 5 && w.level[0].index == 255 && w.level[4].index == 511,
           "five entries");
    pt_walk(&pt, va_init(0xff00000040000000ull), &w);
    CHECKF(w.present && w.depth == 3 && w.level[0].index == 256 &&
               w.leaf.page_size == PAGE_SIZE_1G && w.leaf.pa == PAGE_SIZE_1G,
           "1G leaf at depth 3");
    struct leaves *ls = all_leaves(&pt, 0, UINT64_MAX);
    CHECKF(ls->n == 4 && ls->l[0].va == 0x0000800000000000ull &&
               ls->l[1].va == 0x00fffffffffff000ull && ls->l[2].va == 0xff00000000000000ull,
           "order across the 57-bit halves");
    uint64_t tables;
    struct pt_span spans[3] = {{0x0000800000000000ull, 0x4000, PAGE_SIZE, PAGE_SIZE},
                               {0x00fffffffffff000ull, 0x3000, PAGE_SIZE, PAGE_SIZE},
                               {0xff00000000000000ull, 0, 2 * PAGE_SIZE_1G, PAGE_SIZE_1G}};
    CHECKF(pt_min_tables(spans, 3, 5, &tables) == PT_OK && tables == 11, "minimum %llu",
           (unsigned long long)tables);
    CHECKF(pt_unmap(&pt, va_init(0xff00000000000000ull), 2 * PAGE_SIZE_1G) == PT_OK &&
               pt.table_count == 9,
           "hhdm tables freed");
    finish(&pt);
}

/* ---- adopt, destroy, minimum ----------------------------------------------------------------- */

static void test_adopt_counts_tables(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0xffffffff80000000ull), pa_init(0x100000),
                  5 * PAGE_SIZE_2M + PAGE_SIZE, 0, PAGE_SIZE_2M) == PT_OK,
           "map");
    CHECKF(pt_map(&pt, va_init(0xffff800000000000ull), pa_init(0), 4 * PAGE_SIZE_1G, PT_W,
                  PAGE_SIZE_1G) == PT_OK,
           "map hhdm");
    struct pt other;
    pt_adopt(&other, pa_init(pt.root), 4, true, pt.virt_offset, sim_frames(&sim));
    CHECKF(other.table_count == pt.table_count, "adopted %llu, built %llu",
           (unsigned long long)other.table_count, (unsigned long long)pt.table_count);
    CHECKF(pt_check(&other, NULL), "adopted hierarchy checks");
    finish(&other);
}

static void test_min_tables_by_hand(void)
{
    uint64_t n = 0;
    struct pt_span one = {0, 0, PAGE_SIZE, PAGE_SIZE};
    CHECKF(pt_min_tables(&one, 1, 4, &n) == PT_OK && n == 4, "one page: %llu",
           (unsigned long long)n);
    CHECKF(pt_min_tables(&one, 1, 5, &n) == PT_OK && n == 5, "one page, 5 levels");
    CHECKF(pt_min_tables(NULL, 0, 4, &n) == PT_OK && n == 1, "nothing: the root");
    /* A kernel like stage 1's: text, rodata, data in one PT; HHDM of 4G with 1G pages;
       a stack in the dynamic area; a trampoline page at 1M. */
    struct pt_span k[] = {
        {0x100000, 0x100000, PAGE_SIZE, PAGE_SIZE},                  /* PML4 0: PDPT, PD, PT */
        {0xffff800000000000ull, 0, 4 * PAGE_SIZE_1G, PAGE_SIZE_1G},  /* PML4 256: PDPT */
        {0xffffc00000001000ull, 0x500000, 4 * PAGE_SIZE, PAGE_SIZE}, /* PML4 384: PDPT, PD, PT */
        {0xffffffff80000000ull, 0x200000, 5 * PAGE_SIZE, PAGE_SIZE}, /* PML4 511: PDPT, PD, PT */
        {0xffffffff80005000ull, 0x205000, 2 * PAGE_SIZE, PAGE_SIZE}, /*   same PT */
        {0xffffffff80400000ull, 0x400000, 2 * PAGE_SIZE_2M + PAGE_SIZE,
         PAGE_SIZE_2M}, /*   two 2M in the same PD + PT */
    };
    CHECKF(pt_min_tables(k, 6, 4, &n) == PT_OK && n == 1 + 3 + 1 + 3 + 3 + 1, "layout: %llu",
           (unsigned long long)n);
    struct pt_span bad[2] = {{0x2000, 0, PAGE_SIZE, PAGE_SIZE}, {0x1000, 0, PAGE_SIZE, PAGE_SIZE}};
    CHECKF(pt_min_tables(bad, 2, 4, &n) == PT_ERR_INVALID, "unsorted");
    bad[1].va = 0x2000;
    CHECKF(pt_min_tables(bad, 2, 4, &n) == PT_ERR_INVALID, "overlapping");
    bad[1].va = 0x0000800000000000ull;
    CHECKF(pt_min_tables(bad, 2, 4, &n) == PT_ERR_INVALID, "non-canonical");
    CHECKF(pt_min_tables(&one, 1, 3, &n) == PT_ERR_INVALID, "3 levels");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    return xorshift64_next(&rng_state);
}

static void test_min_tables_matches_mapping_in_any_order(void)
{
    for (int round = 0; round < 40; round++) {
        unsigned levels = round % 2 ? 5 : 4;
        struct pt_span spans[24];
        size_t n = 0;
        uint64_t va = (round % 3 == 0) ? 0xffff800000000000ull : 0x1000;
        if (levels == 5 && round % 3 == 0)
            va = 0xff00000000000000ull;
        while (n < 24) {
            va += (rng() % 4) * ((rng() % 2) ? PAGE_SIZE_1G : PAGE_SIZE_2M) +
                  (rng() % 3) * PAGE_SIZE; /* a gap */
            uint64_t size = (rng() % 3) * PAGE_SIZE_1G + (rng() % 600) * PAGE_SIZE_2M +
                            (rng() % 700) * PAGE_SIZE;
            if (size == 0)
                size = PAGE_SIZE;
            uint64_t max[3] = {PAGE_SIZE, PAGE_SIZE_2M, PAGE_SIZE_1G};
            /* pa shares va's alignment (large pages possible) unless the span is small. */
            uint64_t pa = (va & (PAGE_SIZE_1G - 1)) + (rng() % 64) * PAGE_SIZE_1G;
            if (size < 64 * PAGE_SIZE_2M && rng() % 2)
                pa += (1 + rng() % 7) * PAGE_SIZE;
            spans[n++] = (struct pt_span){va, pa, size, max[1 + rng() % 2]};
            va += size;
        }
        uint64_t want = 0;
        CHECKF(pt_min_tables(spans, n, levels, &want) == PT_OK, "min round %d", round);
        struct pt pt = fresh(levels);
        /* Map in a shuffled order. */
        size_t idx[24];
        for (size_t i = 0; i < n; i++)
            idx[i] = i;
        for (size_t i = n; i > 1; i--) {
            size_t j = rng() % i, t = idx[i - 1];
            idx[i - 1] = idx[j];
            idx[j] = t;
        }
        bool ok = true;
        for (size_t i = 0; i < n; i++) {
            const struct pt_span *s = &spans[idx[i]];
            ok = ok && pt_map(&pt, va_init(s->va), pa_init(s->pa), s->size, PT_W,
                              s->max_page_size) == PT_OK;
        }
        CHECKF(ok, "maps in round %d", round);
        CHECKF(pt.table_count == want, "round %d: %llu tables, minimum %llu", round,
               (unsigned long long)pt.table_count, (unsigned long long)want);
        finish(&pt);
    }
}

static void test_destroy_returns_every_frame(void)
{
    struct pt pt = fresh(4);
    CHECKF(pt_map(&pt, va_init(0), pa_init(0x100000),
                  3 * PAGE_SIZE_1G + 5 * PAGE_SIZE_2M + 7 * PAGE_SIZE, PT_W, PAGE_SIZE_1G) == PT_OK,
           "map");
    CHECKF(pt_map(&pt, va_init(0xffffc00000000000ull), pa_init(0x100000), 300 * PAGE_SIZE, PT_W,
                  PAGE_SIZE) == PT_OK,
           "map 2");
    uint64_t tables = pt.table_count;
    CHECKF(tables > 2 && sim.held == tables, "held %llu", (unsigned long long)sim.held);
    pt_destroy(&pt);
    CHECKF(sim.held == 0 && pt.table_count == 0 && sim.bad_frees == 0, "all frames back");
}

int main(void)
{
    sim_init(&sim, 8192);
    test_pte_encoding_bits();
    test_init_rejects_bad_levels_and_reports_nomem();
    test_canonical_edges();
    test_map_4k_query_and_walk();
    test_map_picks_largest_pages();
    test_map_respects_max_page_size_and_pa_alignment();
    test_map_rejects_bad_arguments();
    test_map_over_existing_fails_and_changes_nothing();
    test_map_prepare_commit_under_allocation_failure();
    test_unmap_frees_emptied_tables_but_not_the_root();
    test_unmap_splits_large_pages();
    test_unmap_split_keeps_bits_and_moves_pat();
    test_memory_type_sets_the_pat_index_at_every_size();
    test_protect_moves_the_pat_bit_when_it_splits();
    test_protect_splits_and_changes_only_the_range();
    test_user_bit_on_parents_follows_the_leaves();
    test_effective_attributes_are_anded_over_levels();
    test_for_each_leaf_orders_and_clips();
    test_top_of_the_address_space();
    test_five_level_maps_the_whole_57_bit_space();
    test_adopt_counts_tables();
    test_min_tables_by_hand();
    test_min_tables_matches_mapping_in_any_order();
    test_destroy_returns_every_frame();
    sim_fini(&sim);
    printf("%u passed, %u failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
