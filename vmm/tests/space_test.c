/*
 * space_test: unit tests of the address space (vmm/space.h), then a long
 * random sequence checked step by step against the naive model in
 * space_oracle.c.
 *
 * Address spaces are drawn in the comments: '#' is a VMA, '.' a free page,
 * '|' the window edges. Each of the seven classic bugs of the in-order walk
 * (DESIGN.md) has a test named test_bugN_....
 *
 * The random sequence runs 300,000 operations by default (a few seconds under
 * ASan). For a longer run: `vmm_space_test --ops 5000000` or set
 * CANOPY_VMM_DIFF_OPS=5000000; `--seed N` (or CANOPY_VMM_DIFF_SEED) picks
 * another sequence.
 */
#include <vmm/space.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>
#include <canopy/page.h>
#include <canopy/rng.h>

#include "space_oracle.h"

unsigned check_passed, check_failed;

/* REQUIRE that vmm_space_check finds s consistent, with its reason when it does not. */
#define REQUIRE_SPACE(s)                                                                           \
    do {                                                                                           \
        const char *why_ = "";                                                                     \
        REQUIREF(vmm_space_check((s), &why_), "vmm_space_check: %s", why_);                        \
    } while (0)

#define M       0x100000ull
#define G       0x40000000ull
#define TOPPG   page_down(UINT64_MAX) /* the last page of the address space */
#define HOLE_LO 0x0000800000000000ull /* first non-canonical address (48-bit) */
#define HOLE_HI 0xffff800000000000ull /* first canonical address above the hole */

/* ---- a malloc-backed node source that can be told to run dry ---- */

static long live_nodes;
static long node_budget = -1; /* -1: unlimited */

static struct vmm_vma *host_alloc(void *ctx)
{
    struct vmm_vma *v;

    if (node_budget == 0)
        return NULL;
    if (node_budget > 0)
        node_budget--;
    v = malloc(sizeof(*v));
    if (v)
        live_nodes++;
    return v;
}

static void host_free(void *ctx, struct vmm_vma *v)
{
    live_nodes--;
    free(v);
}

static const struct vmm_node_source host_nodes = {.alloc = host_alloc, .free = host_free};
static const struct vmm_attrs anon = {.name = "anon", .prot = 3};

static bool space_new(struct vmm_space *s, uint64_t start, uint64_t last)
{
    node_budget = -1;
    live_nodes = 0; /* a failed test before may have leaked */
    return vmm_space_init(s, start, last, 48, host_nodes) == VMM_OK;
}

/* Frees everything and checks that every node came back. */
static bool space_done(struct vmm_space *s)
{
    vmm_space_clear(s);
    return live_nodes == 0 && vmm_space_count(s) == 0;
}

static bool reserve(struct vmm_space *s, uint64_t start, uint64_t size)
{
    return vmm_space_reserve(s, start, size, &anon, NULL) == VMM_OK;
}

/* Allocates and returns the status; *addr gets the start on success. */
static enum vmm_status alloc(struct vmm_space *s, uint64_t size, uint64_t align, uint64_t min,
                             uint64_t last, unsigned flags, uint64_t *addr)
{
    struct vmm_alloc_req req = {
        .size = size, .align = align, .min = min, .last = last, .flags = flags};
    struct vmm_vma *v = NULL;
    enum vmm_status st = vmm_space_alloc(s, &req, &anon, &v);

    if (st == VMM_OK)
        *addr = vmm_vma_start(v);
    return st;
}

/* True if the space holds exactly the ranges given as (start, last) pairs, in order. */
static bool layout_is(const struct vmm_space *s, const uint64_t *pairs, size_t n)
{
    const struct vmm_vma *v = vmm_space_first(s);

    for (size_t i = 0; i < n; i++, v = vmm_space_next(v))
        if (!v || vmm_vma_start(v) != pairs[2 * i] || vmm_vma_last(v) != pairs[2 * i + 1])
            return false;
    return v == NULL && vmm_space_count(s) == n;
}

static unsigned ceil_log2(uint64_t x)
{
    unsigned r = 0;

    while ((1ull << r) < x && r < 63)
        r++;
    return r;
}

/* ---- basics ---- */

static void test_space_init_rejects_bad_bounds(void)
{
    struct vmm_space s;

    REQUIRE_EQ(vmm_space_init(&s, 0x1800, 0xffff, 48, host_nodes), VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_init(&s, 0x1000, 0xfffe, 48, host_nodes), VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_init(&s, 0x2000, 0x1fff, 48, host_nodes), VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_init(&s, 0x1000, 0xffff, 39, host_nodes), VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_init(&s, 0, UINT64_MAX, 57, host_nodes), VMM_OK);
    REQUIRE_SPACE(&s);
}

/*
 *   0x10000                    0x20000
 *   |####|....|########|..........|      reserve A, B; lookup hits and misses
 *    A          B
 */
static void test_space_reserve_and_lookup(void)
{
    struct vmm_space s;
    struct vmm_vma *a = NULL, *b = NULL;

    REQUIRE(space_new(&s, 0x10000, 0x2ffff));
    REQUIRE_EQ(vmm_space_reserve(&s, 0x10000, 0x1000, &anon, &a), VMM_OK);
    REQUIRE_EQ(vmm_space_reserve(&s, 0x12000, 0x4000, &anon, &b), VMM_OK);
    REQUIRE_SPACE(&s);
    REQUIRE(vmm_space_lookup(&s, 0x10000) == a);
    REQUIRE(vmm_space_lookup(&s, 0x10fff) == a);
    REQUIRE(vmm_space_lookup(&s, 0x11000) == NULL);
    REQUIRE(vmm_space_lookup(&s, 0x12000) == b && vmm_space_lookup(&s, 0x15fff) == b);
    REQUIRE(vmm_space_lookup(&s, 0x16000) == NULL);
    REQUIRE(vmm_space_first_from(&s, 0x11000) == b);
    REQUIRE(vmm_space_first_from(&s, 0x10800) == a);
    REQUIRE(vmm_space_first_from(&s, 0x16000) == NULL);
    REQUIRE(strcmp(b->attrs.name, "anon") == 0 && b->attrs.prot == 3);
    REQUIRE(space_done(&s));
}

/*
 *   |..####..|   A = [0x3000, 0x4fff]
 *      ##        overlapping at either end or inside: VMM_ERR_OVERLAP
 *    #      #    touching A's edges: fine
 */
static void test_space_reserve_overlap_rejected_touching_accepted(void)
{
    struct vmm_space s;

    REQUIRE(space_new(&s, 0x1000, 0x9fff));
    REQUIRE(reserve(&s, 0x3000, 0x2000));
    REQUIRE_EQ(vmm_space_reserve(&s, 0x2000, 0x2000, &anon, NULL), VMM_ERR_OVERLAP);
    REQUIRE_EQ(vmm_space_reserve(&s, 0x4000, 0x2000, &anon, NULL), VMM_ERR_OVERLAP);
    REQUIRE_EQ(vmm_space_reserve(&s, 0x3000, 0x1000, &anon, NULL), VMM_ERR_OVERLAP);
    REQUIRE_EQ(vmm_space_reserve(&s, 0x1000, 0x8000, &anon, NULL), VMM_ERR_OVERLAP);
    REQUIRE(reserve(&s, 0x2000, 0x1000));
    REQUIRE(reserve(&s, 0x5000, 0x1000));
    REQUIRE_SPACE(&s);
    REQUIRE(vmm_space_count(&s) == 3);
    REQUIRE(space_done(&s));
}

static void test_space_reserve_rejects_invalid_ranges(void)
{
    struct vmm_space s;

    REQUIRE(space_new(&s, 0, UINT64_MAX));
    REQUIRE_EQ(vmm_space_reserve(&s, 0, 0x1000, &anon, NULL), VMM_ERR_INVALID); /* page 0 */
    REQUIRE_EQ(vmm_space_reserve(&s, 0x1000, 0, &anon, NULL), VMM_ERR_INVALID); /* empty */
    REQUIRE_EQ(vmm_space_reserve(&s, 0x1800, 0x1000, &anon, NULL), VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_reserve(&s, 0x1000, 0x1800, &anon, NULL), VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_reserve(&s, TOPPG, 0x2000, &anon, NULL), VMM_ERR_INVALID); /* wraps */
    REQUIRE(vmm_space_reserve(&s, HOLE_LO - PAGE_SIZE, 2 * PAGE_SIZE, &anon, NULL) ==
            VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_reserve(&s, HOLE_LO, PAGE_SIZE, &anon, NULL), VMM_ERR_INVALID);
    REQUIRE(vmm_space_reserve(&s, HOLE_HI - PAGE_SIZE, 2 * PAGE_SIZE, &anon, NULL) ==
            VMM_ERR_INVALID);
    REQUIRE(vmm_space_count(&s) == 0);
    REQUIRE(reserve(&s, HOLE_LO - PAGE_SIZE, PAGE_SIZE)); /* the last canonical low page */
    REQUIRE(reserve(&s, HOLE_HI, PAGE_SIZE));             /* the first canonical high page */
    REQUIRE(reserve(&s, TOPPG, PAGE_SIZE));               /* the last page of all */
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));

    REQUIRE(space_new(&s, 0x100000, 0x1fffff));
    REQUIRE_EQ(vmm_space_reserve(&s, 0xff000, 0x2000, &anon, NULL), VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_reserve(&s, 0x1ff000, 0x2000, &anon, NULL), VMM_ERR_INVALID);
    REQUIRE(space_done(&s));
}

static void test_space_alloc_rejects_invalid_requests(void)
{
    struct vmm_space s;
    uint64_t a = 0;

    REQUIRE(space_new(&s, 0x100000, 0x1fffff));
    REQUIRE_EQ(alloc(&s, 0, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_INVALID);
    REQUIRE_EQ(alloc(&s, 0x800, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_INVALID);
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, 0, 0, UINT64_MAX, 0, &a), VMM_ERR_INVALID);
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, 3 * PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_INVALID);
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, (1ull << 63) | PAGE_SIZE, 0, UINT64_MAX, 0, &a),
               VMM_ERR_INVALID);
    /* The top bit alone is one bit: a valid request that nothing in this space meets. */
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, 1ull << 63, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0x200000, 0x1fffff, 0, &a) ==
            VMM_ERR_INVALID); /* min > last */
    /* A window outside the space is not invalid, just empty. */
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0x300000, 0x3fffff, 0, &a), VMM_ERR_NO_SPACE);
    /* Alignment below a page means a page. */
    REQUIRE(alloc(&s, PAGE_SIZE, 16, 0x100800, UINT64_MAX, 0, &a) == VMM_OK && a == 0x101000);
    REQUIRE(space_done(&s));
}

/*
 *   0x100000                                       0x1fffff
 *   |###.##..####......................................###|
 *        ^ first-fit 1 page      top-down 2 pages ^^
 */
static void test_space_alloc_first_fit_and_top_down(void)
{
    struct vmm_space s;
    uint64_t a = 0;

    REQUIRE(space_new(&s, 0x100000, 0x1fffff));
    REQUIRE(reserve(&s, 0x100000, 3 * PAGE_SIZE));
    REQUIRE(reserve(&s, 0x104000, 2 * PAGE_SIZE));
    REQUIRE(reserve(&s, 0x108000, 4 * PAGE_SIZE));
    REQUIRE(reserve(&s, 0x1fd000, 3 * PAGE_SIZE));
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a) == VMM_OK && a == 0x103000);
    REQUIRE(alloc(&s, 2 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a) == VMM_OK && a == 0x106000);
    REQUIRE(alloc(&s, 2 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == 0x1fb000);
    REQUIRE(alloc(&s, 2 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a) == VMM_OK && a == 0x10c000);
    REQUIRE_SPACE(&s);
    REQUIRE(vmm_space_count(&s) == 8);
    REQUIRE(space_done(&s));
}

/* ---- the seven classic bugs ---- */

/*
 * Bug 1: a hole that fits exactly is rejected (strict '<').
 *
 *   |###...###|    the 3-page hole takes a 3-page request, and then the
 *       ^^^        space is full
 */
static void test_bug1_exact_fit_hole_is_taken(void)
{
    struct vmm_space s;
    uint64_t a = 0;

    REQUIRE(space_new(&s, 0x10000, 0x18fff));
    REQUIRE(reserve(&s, 0x10000, 3 * PAGE_SIZE));
    REQUIRE(reserve(&s, 0x16000, 3 * PAGE_SIZE));
    REQUIRE(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a) == VMM_OK && a == 0x13000);
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE_EQ(vmm_space_free(&s, 0x13000, 3 * PAGE_SIZE), VMM_OK);
    REQUIRE(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == 0x13000);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/*
 * Bug 2: when the predecessor ends below min, the hole from min to the next
 * node is skipped.
 *
 *   0x10000    0x14000            0x20000
 *   |##........|...........|######|
 *              min         ^ the answer is min itself, inside the hole
 *                            that began below it
 */
static void test_bug2_hole_straddling_min_is_used(void)
{
    struct vmm_space s;
    uint64_t a = 0;

    REQUIRE(space_new(&s, 0x10000, 0xfffff));
    REQUIRE(reserve(&s, 0x10000, 2 * PAGE_SIZE));
    REQUIRE(reserve(&s, 0x20000, 4 * PAGE_SIZE));
    REQUIRE(alloc(&s, 4 * PAGE_SIZE, PAGE_SIZE, 0x14000, UINT64_MAX, 0, &a) == VMM_OK &&
            a == 0x14000);
    /* The same with min in the hole before the first VMA of a bigger tree. */
    for (uint64_t i = 0; i < 64; i++)
        REQUIRE(reserve(&s, 0x24000 + 2 * i * PAGE_SIZE, PAGE_SIZE));
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0x19000, UINT64_MAX, 0, &a) == VMM_OK && a == 0x19000);
    /* And top-down with the window's end inside a hole. */
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, 0x1dfff, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == 0x1d000);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/*
 * Bug 3: address 0 doubles as the failure value. Results come back with a
 * status, so a failure cannot look like an address; and page 0 itself is
 * never handed out, so no caller can confuse a result with NULL either.
 *
 *   0x0   0x1000
 *   |....|#####...|    a space starting at 0: the first fit is 0x1000
 */
static void test_bug3_zero_is_never_the_failure_value(void)
{
    struct vmm_space s;
    struct vmm_vma *v = (struct vmm_vma *)&s; /* a sentinel that must survive a failure */
    struct vmm_alloc_req req = {.size = PAGE_SIZE, .align = PAGE_SIZE, .min = 0, .last = 0xfff};
    uint64_t a = 0;

    REQUIRE(space_new(&s, 0, 0xfffff));
    /* A window holding only page 0: no space, and *out untouched. */
    REQUIRE_EQ(vmm_space_alloc(&s, &req, &anon, &v), VMM_ERR_NO_SPACE);
    REQUIRE(v == (struct vmm_vma *)&s);
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a) == VMM_OK && a == 0x1000);
    /* The only 1 MiB-aligned address in the space is 0: that is "no space", never 0. */
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, 1ull << 20, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE(alloc(&s, PAGE_SIZE, 1ull << 20, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) ==
            VMM_ERR_NO_SPACE);
    /* Fill everything: the next request fails by status, with page 0 still free. */
    REQUIRE(reserve(&s, 0x2000, 0xfe000));
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) ==
            VMM_ERR_NO_SPACE);
    REQUIRE(vmm_space_lookup(&s, 0) == NULL);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/*
 * Bug 4: a range ending exactly at the window's end is rejected.
 *
 *   0x10000          0x14000
 *   |#####....|......          window [0x11000, 0x14000): the 3 pages
 *         ^^^ fit                 0x11000..0x13fff end exactly at max
 */
static void test_bug4_range_ending_at_window_end_fits(void)
{
    struct vmm_space s;
    uint64_t a = 0;

    REQUIRE(space_new(&s, 0x10000, 0x1ffff));
    REQUIRE(reserve(&s, 0x10000, PAGE_SIZE));
    REQUIRE(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0x11000, 0x14000 - 1, 0, &a) == VMM_OK &&
            a == 0x11000);
    REQUIRE_EQ(vmm_space_free(&s, 0x11000, 3 * PAGE_SIZE), VMM_OK);
    REQUIRE(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0x11000, 0x14000 - 1, VMM_ALLOC_TOPDOWN, &a) ==
                VMM_OK &&
            a == 0x11000);
    /* One byte less and it does not fit. */
    REQUIRE_EQ(vmm_space_free(&s, 0x11000, 3 * PAGE_SIZE), VMM_OK);
    REQUIRE_EQ(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0x11000, 0x14000 - 2, 0, &a), VMM_ERR_NO_SPACE);
    /* Ending at the space's own last byte. */
    REQUIRE(alloc(&s, 2 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == 0x1e000);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/*
 * Bug 5: the size is rounded up to the alignment, so a 4 KiB request with
 * 2 MiB alignment eats 2 MiB. Here the only 2 MiB-aligned hole is a single
 * page, and it must be found; and the VMA is one page, not 2 MiB.
 *
 *   2M-4K  2M   2M+4K                    4M
 *   |####|....|#########################|
 *         ^ 4 KiB at 2 MiB alignment fits here
 */
static void test_bug5_alignment_does_not_inflate_size(void)
{
    struct vmm_space s;
    uint64_t a = 0;
    struct vmm_vma *v;

    REQUIRE(space_new(&s, 2 * M - PAGE_SIZE, 4 * M - 1));
    REQUIRE(reserve(&s, 2 * M - PAGE_SIZE, PAGE_SIZE));
    REQUIRE(reserve(&s, 2 * M + PAGE_SIZE, 2 * M - PAGE_SIZE));
    REQUIRE(alloc(&s, PAGE_SIZE, 2 * M, 0, UINT64_MAX, 0, &a) == VMM_OK && a == 2 * M);
    v = vmm_space_lookup(&s, 2 * M);
    REQUIRE(v && vmm_vma_last(v) == 2 * M + PAGE_SIZE - 1);
    REQUIRE_EQ(vmm_space_free(&s, 2 * M, PAGE_SIZE), VMM_OK);
    REQUIRE(alloc(&s, PAGE_SIZE, 2 * M, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == 2 * M);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/*
 * Bug 6: `end + align - 1` and `end + size` overflow near the top of the
 * address space and wrap to small addresses.
 *
 *   ...  2^64-2G            2^64-8K  2^64
 *   |####|....................|....|       the top hole takes exactly what fits;
 *                                          alignment past 2^64 fails cleanly
 */
static void test_bug6_no_overflow_near_top_of_address_space(void)
{
    struct vmm_space s;
    uint64_t a = 0;

    REQUIRE(space_new(&s, 0xffffffff80000000ull, UINT64_MAX));
    REQUIRE(reserve(&s, 0xffffffff80000000ull, 0x80000000ull - 2 * PAGE_SIZE));
    /* Two pages left at the very top. */
    REQUIRE(alloc(&s, 2 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a) == VMM_OK &&
            a == TOPPG - PAGE_SIZE);
    REQUIRE_EQ(vmm_space_free(&s, TOPPG - PAGE_SIZE, 2 * PAGE_SIZE), VMM_OK);
    /* 3 pages would need to wrap past 2^64. */
    REQUIRE_EQ(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) ==
            VMM_ERR_NO_SPACE);
    /* The next 1 GiB boundary above the hole is 2^64: it must not wrap to 0. */
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, G, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, G, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a), VMM_ERR_NO_SPACE);
    /* 8 KiB alignment: the top two pages start on one. */
    REQUIRE(alloc(&s, PAGE_SIZE, 2 * PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == TOPPG - PAGE_SIZE);
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == TOPPG);
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/*
 * Bug 7: the non-canonical hole is not a place to allocate.
 *
 *   2^47-8K      2^47 ......................... 2^64-2^47       +8K
 *   |####|....| (non-canonical: never)          |....|####|
 *
 * A 3-page request could only fit by straddling the hole: it must fail.
 * Two pages fit on either side.
 */
static void test_bug7_noncanonical_hole_never_handed_out(void)
{
    struct vmm_space s;
    uint64_t a = 0;

    REQUIRE(space_new(&s, HOLE_LO - 4 * PAGE_SIZE, HOLE_HI + 4 * PAGE_SIZE - 1));
    REQUIRE(reserve(&s, HOLE_LO - 4 * PAGE_SIZE, 2 * PAGE_SIZE));
    REQUIRE(reserve(&s, HOLE_HI + 2 * PAGE_SIZE, 2 * PAGE_SIZE));
    REQUIRE_EQ(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE(alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) ==
            VMM_ERR_NO_SPACE);
    REQUIRE(alloc(&s, 2 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a) == VMM_OK &&
            a == HOLE_LO - 2 * PAGE_SIZE);
    REQUIRE(alloc(&s, 2 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a) == VMM_OK && a == HOLE_HI);
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));

    /* In a space over everything, a window inside the hole is empty. */
    REQUIRE(space_new(&s, 0, UINT64_MAX));
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, PAGE_SIZE, HOLE_LO, HOLE_HI - 1, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, HOLE_LO, UINT64_MAX, 0, &a) == VMM_OK && a == HOLE_HI);
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, HOLE_HI - 1, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == HOLE_LO - PAGE_SIZE);
    /* With 57-bit addresses the hole moves. */
    REQUIRE(space_done(&s));
    REQUIRE_EQ(vmm_space_init(&s, 0, UINT64_MAX, 57, host_nodes), VMM_OK);
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, HOLE_LO, UINT64_MAX, 0, &a) == VMM_OK && a == HOLE_LO);
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) == VMM_OK &&
            a == TOPPG);
    REQUIRE(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0x0100000000000000ull, UINT64_MAX - PAGE_SIZE, 0, &a) ==
                VMM_OK &&
            a == 0xff00000000000000ull);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/* ---- free and protect ---- */

/*
 *   0x10000         0x20000
 *   |################|        one 16-page VMA
 *   |....############|        free the head
 *   |....########....|        free the tail
 *   |....##..####....|        punch a hole: a second node
 *   |................|        free the rest, piece by piece
 */
static void test_space_free_head_tail_middle_whole(void)
{
    struct vmm_space s;

    REQUIRE(space_new(&s, 0x10000, 0x2ffff));
    REQUIRE(reserve(&s, 0x10000, 16 * PAGE_SIZE));
    REQUIRE_EQ(vmm_space_free(&s, 0x10000, 4 * PAGE_SIZE), VMM_OK);
    REQUIRE(layout_is(&s, (uint64_t[]){0x14000, 0x1ffff}, 1));
    REQUIRE_EQ(vmm_space_free(&s, 0x1c000, 4 * PAGE_SIZE), VMM_OK);
    REQUIRE(layout_is(&s, (uint64_t[]){0x14000, 0x1bfff}, 1));
    REQUIRE_EQ(vmm_space_free(&s, 0x16000, 2 * PAGE_SIZE), VMM_OK);
    REQUIRE(layout_is(&s, (uint64_t[]){0x14000, 0x15fff, 0x18000, 0x1bfff}, 2));
    REQUIRE(live_nodes == 2);
    REQUIRE_SPACE(&s);
    /* The split half keeps the attributes. */
    REQUIRE(strcmp(vmm_space_lookup(&s, 0x18000)->attrs.name, "anon") == 0);
    REQUIRE_EQ(vmm_space_free(&s, 0x18000, 4 * PAGE_SIZE), VMM_OK);
    REQUIRE_EQ(vmm_space_free(&s, 0x14000, 2 * PAGE_SIZE), VMM_OK);
    REQUIRE(vmm_space_count(&s) == 0 && live_nodes == 0);
    REQUIRE(space_done(&s));
}

/*
 *   |##AA##|##BB##|##CC##|..|##DD##|
 *        xxxxxxxxxxxxxxx            free across A, B, C: A and C trimmed, B gone
 *                        xxxxxx     across a gap: VMM_ERR_NOT_MAPPED, nothing changes
 */
static void test_space_free_across_vmas_and_gaps(void)
{
    struct vmm_space s;

    REQUIRE(space_new(&s, 0x10000, 0x3ffff));
    REQUIRE(reserve(&s, 0x10000, 4 * PAGE_SIZE)); /* A */
    REQUIRE(reserve(&s, 0x14000, 4 * PAGE_SIZE)); /* B */
    REQUIRE(reserve(&s, 0x18000, 4 * PAGE_SIZE)); /* C */
    REQUIRE(reserve(&s, 0x1e000, 4 * PAGE_SIZE)); /* D */
    REQUIRE_EQ(vmm_space_free(&s, 0x1b000, 4 * PAGE_SIZE), VMM_ERR_NOT_MAPPED);
    REQUIRE_EQ(vmm_space_free(&s, 0x1c000, PAGE_SIZE), VMM_ERR_NOT_MAPPED);
    REQUIRE_EQ(vmm_space_free(&s, 0x22000, PAGE_SIZE), VMM_ERR_NOT_MAPPED);
    REQUIRE_EQ(vmm_space_free(&s, 0x1800, PAGE_SIZE), VMM_ERR_INVALID);
    REQUIRE_EQ(vmm_space_free(&s, TOPPG, 2 * PAGE_SIZE), VMM_ERR_INVALID);
    REQUIRE(vmm_space_count(&s) == 4);
    REQUIRE_EQ(vmm_space_free(&s, 0x12000, 8 * PAGE_SIZE), VMM_OK);
    REQUIRE(layout_is(&s, (uint64_t[]){0x10000, 0x11fff, 0x1a000, 0x1bfff, 0x1e000, 0x21fff}, 3));
    REQUIRE(live_nodes == 3);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/*
 *   |RRRRRRRRRRRRRRRR|          one VMA, prot R
 *   |RRRRWWWWWWWWRRRR|          protect the middle: three VMAs
 *   |RRRRWWXXXXXXXXRR|          protect across two of them: splits at both ends
 */
static void test_space_protect_splits_as_needed(void)
{
    struct vmm_space s;
    struct vmm_vma *v;

    REQUIRE(space_new(&s, 0x10000, 0x2ffff));
    REQUIRE(vmm_space_reserve(&s, 0x10000, 16 * PAGE_SIZE,
                              &(struct vmm_attrs){.name = "r", .prot = 1}, NULL) == VMM_OK);
    REQUIRE_EQ(vmm_space_protect(&s, 0x14000, 8 * PAGE_SIZE, 2), VMM_OK);
    REQUIRE(layout_is(&s, (uint64_t[]){0x10000, 0x13fff, 0x14000, 0x1bfff, 0x1c000, 0x1ffff}, 3));
    REQUIRE(vmm_space_lookup(&s, 0x13fff)->attrs.prot == 1);
    REQUIRE(vmm_space_lookup(&s, 0x14000)->attrs.prot == 2);
    REQUIRE(vmm_space_lookup(&s, 0x1c000)->attrs.prot == 1);
    REQUIRE_EQ(vmm_space_protect(&s, 0x16000, 8 * PAGE_SIZE, 4), VMM_OK);
    REQUIRE(layout_is(&s,
                      (uint64_t[]){0x10000, 0x13fff, 0x14000, 0x15fff, 0x16000, 0x1bfff, 0x1c000,
                                   0x1dfff, 0x1e000, 0x1ffff},
                      5));
    v = vmm_space_lookup(&s, 0x1d000);
    REQUIRE(v->attrs.prot == 4 && strcmp(v->attrs.name, "r") == 0);
    REQUIRE(vmm_space_lookup(&s, 0x1e000)->attrs.prot == 1);
    /* The whole range, already split at every edge: no new node. */
    REQUIRE_EQ(vmm_space_protect(&s, 0x10000, 16 * PAGE_SIZE, 7), VMM_OK);
    REQUIRE(vmm_space_count(&s) == 5 && live_nodes == 5);
    for (v = vmm_space_first(&s); v; v = vmm_space_next(v))
        REQUIRE(v->attrs.prot == 7);
    REQUIRE_EQ(vmm_space_protect(&s, 0x20000, PAGE_SIZE, 1), VMM_ERR_NOT_MAPPED);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/* When the node source runs dry, a command fails with VMM_ERR_NOMEM and changes nothing. */
static void test_space_out_of_nodes_changes_nothing(void)
{
    struct vmm_space s;
    uint64_t a = 0;
    const uint64_t one[] = {0x10000, 0x1ffff};

    REQUIRE(space_new(&s, 0x10000, 0x2ffff));
    REQUIRE(reserve(&s, 0x10000, 16 * PAGE_SIZE));
    node_budget = 0;
    REQUIRE_EQ(vmm_space_free(&s, 0x14000, PAGE_SIZE), VMM_ERR_NOMEM); /* needs a split */
    REQUIRE(layout_is(&s, one, 1));
    REQUIRE_EQ(vmm_space_free(&s, 0x10000, PAGE_SIZE), VMM_OK); /* a trim needs no node */
    REQUIRE_EQ(vmm_space_reserve(&s, 0x10000, PAGE_SIZE, &anon, NULL), VMM_ERR_NOMEM);
    REQUIRE_EQ(alloc(&s, PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_NOMEM);
    node_budget = -1;
    REQUIRE(reserve(&s, 0x10000, PAGE_SIZE));
    /* Protecting the middle needs two nodes; with one, nothing changes and none leaks. */
    REQUIRE_EQ(vmm_space_free(&s, 0x10000, PAGE_SIZE), VMM_OK);
    node_budget = 1;
    REQUIRE_EQ(vmm_space_protect(&s, 0x14000, PAGE_SIZE, 5), VMM_ERR_NOMEM);
    REQUIRE(layout_is(&s, (uint64_t[]){0x11000, 0x1ffff}, 1));
    REQUIRE(vmm_space_first(&s)->attrs.prot == anon.prot);
    REQUIRE(live_nodes == 1);
    node_budget = -1;
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/* ---- guards ---- */

static const struct vmm_attrs guard_attrs = {.name = "guard", .prot = 0, .kind = 7};

/* A guarded allocation; *addr gets the first usable byte. */
static enum vmm_status alloc_guarded(struct vmm_space *s, uint64_t size, uint64_t align,
                                     uint64_t guard, uint64_t min, uint64_t last, unsigned flags,
                                     uint64_t *addr)
{
    struct vmm_alloc_req req = {.size = size,
                                .align = align,
                                .min = min,
                                .last = last,
                                .flags = flags,
                                .guard = guard,
                                .guard_attrs = &guard_attrs};
    struct vmm_vma *v = NULL;
    enum vmm_status st = vmm_space_alloc(s, &req, &anon, &v);

    if (st == VMM_OK)
        *addr = vmm_vma_start(v);
    return st;
}

/* The usable address is aligned, the guard page right below it its own VMA. */
static bool guarded_at(const struct vmm_space *s, uint64_t addr, uint64_t size, uint64_t guard)
{
    const struct vmm_vma *v = vmm_space_lookup(s, addr), *g = vmm_space_lookup(s, addr - guard);

    return v && g && v != g && vmm_vma_start(v) == addr && vmm_vma_last(v) == addr + size - 1 &&
           vmm_vma_start(g) == addr - guard && vmm_vma_last(g) == addr - 1 &&
           g->attrs.kind == guard_attrs.kind && v->attrs.kind == anon.kind;
}

/*
 * align applies to the first usable byte, not to the guard: a hole that
 * starts on a multiple of 2 MiB holds the guard there and the area 2 MiB
 * up; one that starts a page below a multiple puts the guard in that page.
 */
static void test_space_guard_alignment_is_the_usable_address(void)
{
    struct vmm_space s;
    uint64_t a = 0;
    const uint64_t M2 = 0x200000;

    REQUIRE(space_new(&s, 0, HOLE_LO - 1));
    REQUIRE(reserve(&s, PAGE_SIZE, M2 - PAGE_SIZE)); /* the free space starts at 2 MiB */
    REQUIRE_EQ(alloc_guarded(&s, 4 * PAGE_SIZE, M2, PAGE_SIZE, 0, HOLE_LO - 1, 0, &a), VMM_OK);
    REQUIRE_EQ(a, 2 * M2);
    REQUIRE(guarded_at(&s, a, 4 * PAGE_SIZE, PAGE_SIZE));
    REQUIRE(s.last_searches == 1); /* the first fit had no room below: the next multiple */
    /* At 4 KiB the guard is a multiple of align: one search for both, from 2 MiB. */
    REQUIRE_EQ(alloc_guarded(&s, PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, 0, HOLE_LO - 1, 0, &a), VMM_OK);
    REQUIRE_EQ(a, M2 + PAGE_SIZE);
    REQUIRE(guarded_at(&s, a, PAGE_SIZE, PAGE_SIZE) && s.last_searches == 1);
    /* Top-down: the highest multiple of 1 GiB with two free pages below. */
    REQUIRE_EQ(alloc_guarded(&s, M2, 1ull << 30, 2 * PAGE_SIZE, 0, (8ull << 30) - 1,
                             VMM_ALLOC_TOPDOWN, &a),
               VMM_OK);
    REQUIRE_EQ(a, 7ull << 30);
    REQUIRE(guarded_at(&s, a, M2, 2 * PAGE_SIZE));
    /* Top-down again: [7 GiB - 8 KiB, 7 GiB) is taken, so 6 GiB. */
    REQUIRE_EQ(alloc_guarded(&s, M2, 1ull << 30, PAGE_SIZE, 0, (7ull << 30) + M2 - 1,
                             VMM_ALLOC_TOPDOWN, &a),
               VMM_OK);
    REQUIRE_EQ(a, 6ull << 30);
    /* A window with room for the area but not for its guard too. */
    REQUIRE_EQ(
        alloc_guarded(&s, 4 * PAGE_SIZE, M2, PAGE_SIZE, 8 * M2, 8 * M2 + 4 * PAGE_SIZE - 1, 0, &a),
        VMM_ERR_NO_SPACE);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));

    /* The free space starts a page below 2 MiB: the guard takes that page. */
    REQUIRE(space_new(&s, 0, HOLE_LO - 1));
    REQUIRE(reserve(&s, PAGE_SIZE, M2 - 2 * PAGE_SIZE));
    REQUIRE_EQ(alloc_guarded(&s, 4 * PAGE_SIZE, M2, PAGE_SIZE, 0, HOLE_LO - 1, 0, &a), VMM_OK);
    REQUIRE_EQ(a, M2);
    REQUIRE(guarded_at(&s, a, 4 * PAGE_SIZE, PAGE_SIZE));
    REQUIRE(s.last_searches == 1);
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

static void test_space_guard_rejects_bad_requests_and_needs_two_nodes(void)
{
    struct vmm_space s;
    uint64_t a = 0;

    REQUIRE(space_new(&s, 0, (HOLE_LO - 1)));
    REQUIRE(reserve(&s, 0x100000, PAGE_SIZE));
    REQUIRE_EQ(alloc_guarded(&s, PAGE_SIZE, PAGE_SIZE, 0x800, 0, (HOLE_LO - 1), 0, &a),
               VMM_ERR_INVALID);
    REQUIRE_EQ(
        alloc_guarded(&s, PAGE_SIZE, PAGE_SIZE, UINT64_MAX & ~0xfffull, 0, (HOLE_LO - 1), 0, &a),
        VMM_ERR_INVALID);
    node_budget = 1;
    REQUIRE_EQ(alloc_guarded(&s, PAGE_SIZE, 0x200000, PAGE_SIZE, 0, (HOLE_LO - 1), 0, &a),
               VMM_ERR_NOMEM);
    REQUIRE(live_nodes == 1 && vmm_space_count(&s) == 1);
    node_budget = -1;
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/*
 * Holes that start on a multiple of 2 MiB and hold 2 MiB: room for the
 * area, none for its guard. After them, a hole from a page below a multiple
 * with exactly a guarded fit, and far above, room to spare. While the
 * searches last (VMM_GUARD_SEARCHES; a search from a page past such a
 * hole's end steps over the next one too) they step over the holes to the
 * exact first fit; once they run out, the request over-asks (2 MiB + 2 MiB
 * at 2 MiB) and lands above them all, as vmm/space.h says. Both happen.
 */
static void test_space_guard_steps_over_aligned_holes_then_over_asks(void)
{
    const uint64_t M2 = 0x200000, base = 1ull << 32;
    unsigned exact = 0, over = 0;

    for (unsigned holes = 1; holes <= 2 * VMM_GUARD_SEARCHES + 2; holes++) {
        struct vmm_space s;
        uint64_t a = 0, at = base, fit, top;

        REQUIRE(space_new(&s, 0, HOLE_LO - 1));
        REQUIRE(reserve(&s, PAGE_SIZE, base - PAGE_SIZE));
        for (unsigned i = 0; i < holes; i++) {
            REQUIRE(reserve(&s, at + M2, M2)); /* the hole [at, at + 2 MiB) */
            at += 2 * M2;
        }
        /* The hole [at + 2 MiB - 4 KiB, at + 4 MiB): a guarded fit at at + 2 MiB, just. */
        REQUIRE(reserve(&s, at, M2 - PAGE_SIZE));
        fit = at + M2;
        REQUIRE(reserve(&s, at + 2 * M2, 6 * M2));
        top = at + 8 * M2;
        REQUIRE_EQ(alloc_guarded(&s, M2, M2, PAGE_SIZE, 0, HOLE_LO - 1, 0, &a), VMM_OK);
        REQUIRE(guarded_at(&s, a, M2, PAGE_SIZE));
        REQUIRE(s.last_searches <= holes + 1 && s.last_searches <= VMM_GUARD_SEARCHES + 1);
        if (s.last_searches <= VMM_GUARD_SEARCHES) {
            REQUIRE_EQ(a, fit);
            exact++;
        } else {
            REQUIRE_EQ(a, top + M2); /* the over-ask's guard is the top page of its extra 2 MiB */
            over++;
        }
        REQUIRE(s.last_visits <= (VMM_GUARD_SEARCHES + 1) * (3 * (2 * ceil_log2(holes + 8)) + 2));
        REQUIRE_SPACE(&s);
        REQUIRE(space_done(&s));
    }
    REQUIRE(exact > 0 && over > 0);
}

static void test_space_iterates_in_order_both_ways(void)
{
    struct vmm_space s;
    const struct vmm_vma *v;
    uint64_t a = 0, prev = 0;
    int n = 0;

    REQUIRE(space_new(&s, 0x100000, 0x1ffffff));
    for (int i = 0; i < 200; i++)
        REQUIRE(alloc(&s, (uint64_t)(1 + i % 7) * PAGE_SIZE, PAGE_SIZE << (i % 4), 0, UINT64_MAX,
                      i % 2 ? VMM_ALLOC_TOPDOWN : 0, &a) == VMM_OK);
    REQUIRE_SPACE(&s);
    for (v = vmm_space_first(&s); v; v = vmm_space_next(v), n++) {
        REQUIRE(n == 0 || vmm_vma_start(v) > prev);
        prev = vmm_vma_last(v);
    }
    REQUIRE(n == 200);
    for (v = vmm_space_first_from(&s, UINT64_MAX - 1); v; v = vmm_space_prev(v))
        n--;
    REQUIRE(n == 200); /* nothing lies at or above the top */
    v = vmm_space_first(&s);
    while (vmm_space_next(v))
        v = vmm_space_next(v);
    for (; v; v = vmm_space_prev(v))
        n--;
    REQUIRE(n == 0);
    REQUIRE(space_done(&s));
}

/* ---- cost ---- */

/*
 * A space of 100,000 single pages with 1..3-page holes ("Swiss cheese").
 * A request bigger than every hole fails after looking at the root alone;
 * a request that fits visits O(log n) nodes.
 */
static void test_space_search_cost_is_logarithmic(void)
{
    enum { N = 100000 };
    struct vmm_space s;
    uint64_t at = 0x10000000, a = 0, worst = 0, seed = 1;

    REQUIRE(space_new(&s, 0x10000000, 0x10000000 + (uint64_t)N * 8 * PAGE_SIZE - 1));
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        REQUIRE(reserve(&s, at, PAGE_SIZE));
        at += PAGE_SIZE * (2 + (seed >> 33) % 3);
    }
    /* Fill the edge hole after the last VMA so the root's max gap decides. */
    REQUIRE(reserve(&s, at, 0x10000000 + (uint64_t)N * 8 * PAGE_SIZE - at));
    REQUIRE_SPACE(&s);
    REQUIRE_EQ(alloc(&s, 4 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, 0, &a), VMM_ERR_NO_SPACE);
    REQUIRE(s.last_visits == 1);
    REQUIRE(alloc(&s, 4 * PAGE_SIZE, PAGE_SIZE, 0, UINT64_MAX, VMM_ALLOC_TOPDOWN, &a) ==
            VMM_ERR_NO_SPACE);
    REQUIRE(s.last_visits == 1);

    /* Now free 200 random pages (making 3..7-page holes) and search from random places. */
    for (int i = 0; i < 200; i++) {
        struct vmm_vma *v;

        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        v = vmm_space_first_from(&s, 0x10000000 + (seed >> 20) % ((uint64_t)N * 3 * PAGE_SIZE));
        if (v && vmm_vma_last(v) - vmm_vma_start(v) == PAGE_SIZE - 1)
            REQUIRE_EQ(vmm_space_free(&s, vmm_vma_start(v), PAGE_SIZE), VMM_OK);
    }
    for (int i = 0; i < 4000; i++) {
        uint64_t min;

        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        min = 0x10000000 + (seed >> 20) % ((uint64_t)N * 3 * PAGE_SIZE);
        if (alloc(&s, 3 * PAGE_SIZE, PAGE_SIZE, min, UINT64_MAX, i % 2 ? VMM_ALLOC_TOPDOWN : 0,
                  &a) == VMM_OK)
            REQUIRE_EQ(vmm_space_free(&s, a, 3 * PAGE_SIZE), VMM_OK);
        if (s.last_visits > worst)
            worst = s.last_visits;
    }
    printf("  space of %d VMAs: a search visits at most %llu nodes (bound %u)\n", N,
           (unsigned long long)worst, 4 * ceil_log2(N));
    REQUIRE(worst <= 4 * ceil_log2(N));
    REQUIRE_SPACE(&s);
    REQUIRE(space_done(&s));
}

/* ---- the differential sequence ---- */

static uint64_t diff_seed = 0xc0ffee;
static uint64_t diff_ops = 300000;

static uint64_t splitmix(void *ctx)
{
    return splitmix64_next(ctx);
}

/*
 * Random operations in each scenario space, compared with the model after
 * every step (statuses, addresses, every VMA, vmm_space_check, no leaked
 * node). The VMA count drifts between small and a few hundred so both
 * shallow and deep trees are exercised.
 */
static void test_space_matches_oracle_random_ops(void)
{
    static struct diff d;
    uint64_t state = diff_seed, per = diff_ops / DIFF_SCENARIOS, total_found = 0, finds = 0;

    for (unsigned sc = 0; sc < DIFF_SCENARIOS; sc++) {
        struct diff_rand r = {.next = splitmix, .ctx = &state};

        REQUIRE(diff_init_scenario(&d, sc));
        for (uint64_t i = 0; i < per; i++) {
            size_t target = (i / 20000) % 2 ? 400 : 40;

            REQUIREF(diff_random_op(&d, &r, target), "scenario %u, seed %#llx: %s", sc,
                     (unsigned long long)diff_seed, d.err);
        }
        total_found += d.found;
        finds += d.finds;
        REQUIREF(diff_fini(&d), "scenario %u: %s", sc, d.err);
    }
    printf("  %llu random operations agree with the model (%llu finds, %llu found)\n",
           (unsigned long long)(per * DIFF_SCENARIOS), (unsigned long long)finds,
           (unsigned long long)total_found);
    /* The sequence must exercise both outcomes of a find. */
    REQUIRE(total_found > finds / 10 && total_found < finds);
}

int main(int argc, char **argv)
{
    const char *env = getenv("CANOPY_VMM_DIFF_OPS");

    if (env)
        diff_ops = strtoull(env, NULL, 0);
    env = getenv("CANOPY_VMM_DIFF_SEED");
    if (env)
        diff_seed = strtoull(env, NULL, 0);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ops") == 0)
            diff_ops = strtoull(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "--seed") == 0)
            diff_seed = strtoull(argv[i + 1], NULL, 0);
    }

    RUN(test_space_init_rejects_bad_bounds);
    RUN(test_space_reserve_and_lookup);
    RUN(test_space_reserve_overlap_rejected_touching_accepted);
    RUN(test_space_reserve_rejects_invalid_ranges);
    RUN(test_space_alloc_rejects_invalid_requests);
    RUN(test_space_alloc_first_fit_and_top_down);
    RUN(test_bug1_exact_fit_hole_is_taken);
    RUN(test_bug2_hole_straddling_min_is_used);
    RUN(test_bug3_zero_is_never_the_failure_value);
    RUN(test_bug4_range_ending_at_window_end_fits);
    RUN(test_bug5_alignment_does_not_inflate_size);
    RUN(test_bug6_no_overflow_near_top_of_address_space);
    RUN(test_bug7_noncanonical_hole_never_handed_out);
    RUN(test_space_free_head_tail_middle_whole);
    RUN(test_space_free_across_vmas_and_gaps);
    RUN(test_space_protect_splits_as_needed);
    RUN(test_space_out_of_nodes_changes_nothing);
    RUN(test_space_guard_alignment_is_the_usable_address);
    RUN(test_space_guard_rejects_bad_requests_and_needs_two_nodes);
    RUN(test_space_guard_steps_over_aligned_holes_then_over_asks);
    RUN(test_space_iterates_in_order_both_ways);
    RUN(test_space_search_cost_is_logarithmic);
    RUN(test_space_matches_oracle_random_ops);
    return check_finish();
}
