/*
 * vmm_bench: the cost of finding a free range, Canopy's augmented AVL search
 * against the classic in-order walk.
 *
 * Implementations, all over the same layout of VMAs:
 *   canopy           vmm_space_find, first-fit (the augmented descent)
 *   canopy-topdown   vmm_space_find with VMM_ALLOC_TOPDOWN
 *   walk-canopy      the corrected in-order walk over Canopy's own tree
 *   walk-gtree       the same walk over GLib's GTree
 *   walk-libavl      the same walk over libavl (its nodes are threaded, so a
 *                    step is one pointer)
 * The walks seek to the window's start in O(log n) first, then test the hole
 * before each VMA with inclusive, overflow-safe bounds.
 *
 * Layouts (n VMAs from 4 KiB up, the lowest address the window allows):
 *   swiss   VMAs of 4 KiB..2 MiB, holes of 1..3 pages: every hole is too
 *           small for the 16 KiB..2 MiB requests, which land above the last VMA
 *           (the walk's worst case, and the search's k = 0 case)
 *   mixed   VMAs and holes of 4 KiB..2 MiB, requests of 4 KiB..2 MiB
 *   exact   64 KiB VMAs 4 KiB apart, one in 1000 removed; requests of
 *           exactly the 72 KiB hole each removal leaves (exact-fit reuse)
 *   narrow  the mixed layout searched in random 64 MiB windows
 * Alignments are 4 KiB..1 GiB. Queries: "fixed" uses the window [4 KiB, 2^47);
 * "random" draws min uniformly below the end of the last VMA.
 *
 * Every answer of every implementation is checked against a reference (a
 * binary search plus linear scan over a sorted array, written separately)
 * before anything is timed; a mismatch stops the program. Canopy's may
 * instead be the over-asked answer its search gives where it runs out of
 * budget (ref_over_asked()).
 *
 * Last, for the fixed window, Canopy at n = 10^3 and at the largest n is
 * measured again in pairs of back-to-back rounds (paired_scaling()): the
 * scaling ratio the target is about, taken so that both sizes see the same
 * load from elsewhere.
 *
 * Usage: vmm_bench [--quick] [--max-n N] [--json FILE]
 *   --quick   n up to 10^4 and short timings (the test suite's smoke run)
 *   --json    also write one JSON object per line per measurement
 */
#define _POSIX_C_SOURCE 200809L
#include <avl.h> /* libavl */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <canopy/page.h>
#include <canopy/rng.h>
#include <vmm/space.h>

#include "nodes.h"

#define PAGE      PAGE_SIZE
#define LAYOUT_AT 0x1000ull             /* the first VMA: right after page 0, so no edge hole */
#define WIN_LAST  0x00007fffffffffffull /* last byte of the fixed window */
#define QUERIES   64                    /* distinct queries per measurement */

struct range {
    uint64_t start, last;
};

struct query {
    uint64_t size, align, min, last;
};

/* ---- helpers ---- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    return splitmix64_next(&rng_state);
}

/* 2^(lo..hi) pages, log-uniform, times a random factor in [1, 2). */
static uint64_t rnd_pages(unsigned lo_shift, unsigned hi_shift)
{
    unsigned shift = lo_shift + (unsigned)(rnd() % (hi_shift - lo_shift + 1));
    uint64_t base = 1ull << shift;

    return base + (shift > lo_shift ? rnd() % base : 0);
}

/*
 * The CPU time this thread has used: on a shared machine, the time other
 * processes hold the core is not charged to the code measured (what they do to
 * the caches still is).
 */
static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The lowest aligned fit in the free span [lo, hi]; overflow-safe. */
static bool fit_low(uint64_t lo, uint64_t hi, const struct query *q, uint64_t *addr)
{
    uint64_t mask = q->align - 1, a = lo;

    if (lo > hi)
        return false;
    if (a & mask) {
        if (a > UINT64_MAX - mask)
            return false;
        a = (a + mask) & ~mask;
    }
    if (a > hi || hi - a < q->size - 1)
        return false;
    *addr = a;
    return true;
}

/* ---- the reference: a sorted array, binary search, linear scans ---- */

static bool ref_lowest(const struct range *r, size_t n, const struct query *q, uint64_t *addr)
{
    size_t lo = 0, hi = n;
    uint64_t from = q->min;

    while (lo < hi) { /* first range with last >= min */
        size_t mid = lo + (hi - lo) / 2;

        if (r[mid].last < q->min)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < n && r[i].start <= q->last; i++) {
        if (r[i].start > from &&
            fit_low(from, r[i].start - 1 < q->last ? r[i].start - 1 : q->last, q, addr))
            return true;
        if (r[i].last >= q->last)
            return false;
        if (r[i].last + 1 > from)
            from = r[i].last + 1;
    }
    return fit_low(from, q->last, q, addr);
}

static bool ref_highest(const struct range *r, size_t n, const struct query *q, uint64_t *addr)
{
    uint64_t to = q->last; /* the highest free candidate byte */

    for (size_t i = n; i-- > 0;) {
        if (r[i].start > q->last)
            continue;
        if (r[i].last < to) {
            uint64_t lo = r[i].last + 1 > q->min ? r[i].last + 1 : q->min;

            if (lo <= to && to - lo >= q->size - 1) {
                uint64_t a = (to - (q->size - 1)) & ~(q->align - 1);

                if (a >= lo) {
                    *addr = a;
                    return true;
                }
            }
        }
        if (r[i].start <= q->min)
            return false;
        if (r[i].start - 1 < to)
            to = r[i].start - 1;
    }
    if (q->min <= to && to - q->min >= q->size - 1) {
        uint64_t a = (to - (q->size - 1)) & ~(q->align - 1);

        if (a >= q->min) {
            *addr = a;
            return true;
        }
    }
    return false;
}

/*
 * What Canopy answers instead of the first fit when its search runs out of
 * budget (vmm/avl.h): the holes in order (from the top for the highest),
 * the two edge holes tested as usual, and a hole between two VMAs taken
 * only if it has room for size + align - b from a multiple of b, b the
 * largest of 4 KiB, 2 MiB and 1 GiB below align.
 */
static bool ref_over_asked(const struct range *r, size_t n, const struct query *q, bool highest,
                           uint64_t *addr)
{
    uint64_t b = q->align > (1ull << 30) ? 1ull << 30 : q->align > (1ull << 21) ? 1ull << 21 : PAGE;
    struct query room = {q->size + q->align - b, b, q->min, q->last};

    for (size_t k = 0; k <= n; k++) {
        size_t i = highest ? n - k : k; /* hole i lies below range i */
        uint64_t lo = i ? r[i - 1].last + 1 : 0, hi = i < n ? r[i].start - 1 : UINT64_MAX;
        uint64_t unused;

        if ((i && r[i - 1].last == UINT64_MAX) || (i < n && r[i].start == 0))
            continue;
        lo = lo > q->min ? lo : q->min;
        hi = hi < q->last ? hi : q->last;
        if (lo > hi || (i > 0 && i < n && !fit_low(lo, hi, &room, &unused)))
            continue;
        if (!highest && fit_low(lo, hi, q, addr))
            return true;
        if (highest && hi - lo >= q->size - 1 && ((hi - (q->size - 1)) & ~(q->align - 1)) >= lo) {
            *addr = (hi - (q->size - 1)) & ~(q->align - 1);
            return true;
        }
    }
    return false;
}

/* ---- layouts and queries ---- */

enum layout { SWISS, MIXED, EXACT, NARROW, LAYOUTS };
static const char *const layout_names[LAYOUTS] = {"swiss", "mixed", "exact", "narrow"};

static struct range *make_layout(enum layout l, size_t n)
{
    struct range *r = malloc(n * sizeof(*r));
    uint64_t at = LAYOUT_AT;

    for (size_t i = 0; i < n; i++) {
        uint64_t size, gap;

        switch (l) {
        case SWISS:
            size = rnd_pages(0, 9) * PAGE;
            gap = (1 + rnd() % 3) * PAGE;
            break;
        case EXACT:
            size = 16 * PAGE;
            gap = (i % 1000 == 500) ? 16 * PAGE + 3 * PAGE : PAGE; /* a removed VMA */
            break;
        default:
            size = rnd_pages(0, 9) * PAGE;
            gap = rnd_pages(0, 9) * PAGE;
            break;
        }
        r[i] = (struct range){at, at + size - 1};
        at += size + gap;
    }
    return r;
}

static void make_queries(enum layout l, bool random_min, const struct range *r, size_t n,
                         struct query *q)
{
    uint64_t end = r[n - 1].last;

    for (int i = 0; i < QUERIES; i++) {
        switch (l) {
        case SWISS:
            q[i].size = rnd_pages(2, 9) * PAGE; /* 16 KiB .. 4 MiB */
            if (q[i].size > 512 * PAGE)
                q[i].size = 512 * PAGE;
            break;
        case EXACT:
            q[i].size = 18 * PAGE;
            break;
        default:
            q[i].size = rnd_pages(0, 9) * PAGE;
            if (q[i].size > 512 * PAGE)
                q[i].size = 512 * PAGE;
            break;
        }
        /* Alignment 4 KiB .. 1 GiB, mostly small as real requests are. */
        q[i].align = PAGE << (rnd() % 4 == 0 ? rnd() % 19 : rnd() % 4);
        if (l == EXACT)
            q[i].align = PAGE;
        q[i].min = PAGE;
        q[i].last = WIN_LAST;
        if (random_min || l == NARROW)
            q[i].min = (PAGE + rnd() % end) & ~(PAGE - 1);
        if (l == NARROW)
            q[i].last = q[i].min + (64ull << 20) - 1;
    }
}

/* ---- Canopy ---- */

/*
 * The VMAs come from the kernel's allocator, placed as the kernel places
 * them (bench/nodes.h): a cache of their own, each on a 64-byte line. (A
 * plain array would put VMA k at 96 k: the tree is built in address order,
 * its upper nodes are VMAs 2^j m - 1, and too many of them would share one
 * set of the 8-way L1; avl_bench.c says more.)
 */
static struct vmm_vma *pool_alloc(void *ctx)
{
    return bench_nodes_alloc(sizeof(struct vmm_vma));
}

static void pool_free(void *ctx, struct vmm_vma *v)
{
    bench_nodes_free(sizeof(struct vmm_vma), v);
}

static bool canopy_build(struct vmm_space *s, const struct range *r, size_t n)
{
    static const struct vmm_attrs attrs = {.name = "bench"};

    if (vmm_space_init(s, 0, UINT64_MAX, 48,
                       (struct vmm_node_source){
                           .alloc = pool_alloc, .free = pool_free, .ctx = NULL}) != VMM_OK)
        return false;
    for (size_t i = 0; i < n; i++)
        if (vmm_space_reserve(s, r[i].start, r[i].last - r[i].start + 1, &attrs, NULL) != VMM_OK)
            return false;
    return true;
}

/* The space the Canopy implementations search; the paired scaling runs switch it. */
static struct vmm_space spaces[2];
static struct vmm_space *space = &spaces[0];

static bool canopy_find(const struct query *q, bool topdown, uint64_t *addr, uint64_t *visits)
{
    struct vmm_alloc_req req = {.size = q->size,
                                .align = q->align,
                                .min = q->min,
                                .last = q->last,
                                .flags = topdown ? VMM_ALLOC_TOPDOWN : 0};
    bool ok = vmm_space_find(space, &req, addr) == VMM_OK;

    *visits += space->last_visits;
    return ok;
}

/*
 * The corrected in-order walk, written once for the three trees through a
 * cursor: first(min) gives the first range whose last byte is >= min.
 */
#define WALK(first_expr, valid_expr, range_expr, next_stmt)                                        \
    do {                                                                                           \
        uint64_t from = q->min;                                                                    \
        for (first_expr; valid_expr; next_stmt) {                                                  \
            const struct range *r_ = (range_expr);                                                 \
            (*steps)++;                                                                            \
            if (r_->start > q->last)                                                               \
                break;                                                                             \
            if (r_->start > from &&                                                                \
                fit_low(from, r_->start - 1 < q->last ? r_->start - 1 : q->last, q, addr))         \
                return true;                                                                       \
            if (r_->last >= q->last)                                                               \
                return false;                                                                      \
            if (r_->last + 1 > from)                                                               \
                from = r_->last + 1;                                                               \
        }                                                                                          \
        return fit_low(from, q->last, q, addr);                                                    \
    } while (0)

static bool walk_canopy(const struct query *q, uint64_t *addr, uint64_t *steps)
{
    const struct vmm_vma *v;

    WALK(v = vmm_space_first_from(space, q->min), v, (const struct range *)&v->node.start,
         v = vmm_space_next(v));
}

/* ---- GTree ---- */

static GTree *gtree;

static gint gtree_cmp(gconstpointer a, gconstpointer b)
{
    const struct range *x = a, *y = b;

    return (x->start > y->start) - (x->start < y->start);
}

static GTreeNode *gtree_first_from(uint64_t min)
{
    struct range key = {min, min};
    GTreeNode *n = g_tree_lower_bound(gtree, &key); /* first start >= min */
    GTreeNode *p = n ? g_tree_node_previous(n) : g_tree_node_last(gtree);

    if (p && ((const struct range *)g_tree_node_key(p))->last >= min)
        return p;
    return n;
}

static bool walk_gtree(const struct query *q, uint64_t *addr, uint64_t *steps)
{
    GTreeNode *n;

    WALK(n = gtree_first_from(q->min), n, g_tree_node_key(n), n = g_tree_node_next(n));
}

/* ---- libavl ---- */

static avl_tree_t *ltree;

static int libavl_cmp(const void *a, const void *b)
{
    const struct range *x = a, *y = b;

    return (x->start > y->start) - (x->start < y->start);
}

static avl_node_t *libavl_first_from(uint64_t min)
{
    struct range key = {min, min};
    avl_node_t *n = NULL;

    avl_search_closest(ltree, &key, &n);
    if (!n)
        return NULL;
    while (n->prev && ((const struct range *)n->prev->item)->last >= min)
        n = n->prev;
    while (n && ((const struct range *)n->item)->last < min)
        n = n->next;
    return n;
}

static bool walk_libavl(const struct query *q, uint64_t *addr, uint64_t *steps)
{
    avl_node_t *n;

    WALK(n = libavl_first_from(q->min), n, n->item, n = n->next);
}

/* ---- measurement ---- */

enum impl { CANOPY, CANOPY_TOPDOWN, WALK_CANOPY, WALK_GTREE, WALK_LIBAVL, IMPLS };
static const char *const impl_names[IMPLS] = {"canopy", "canopy-topdown", "walk-canopy",
                                              "walk-gtree", "walk-libavl"};

static bool run_one(enum impl im, const struct query *q, uint64_t *addr, uint64_t *visits)
{
    switch (im) {
    case CANOPY:
        return canopy_find(q, false, addr, visits);
    case CANOPY_TOPDOWN:
        return canopy_find(q, true, addr, visits);
    case WALK_CANOPY:
        return walk_canopy(q, addr, visits);
    case WALK_GTREE:
        return walk_gtree(q, addr, visits);
    default:
        return walk_libavl(q, addr, visits);
    }
}

static double budget_ns = 2e8; /* per measurement, split into ROUNDS rounds */
#define ROUNDS 5

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/*
 * ns per find over one round: the round cycles through the queries in chunks
 * that double while they are short, so reading the clock costs nothing
 * measurable and a slow walk still stops on time.
 */
static double measure_round(enum impl im, const struct query *q)
{
    uint64_t ops = 0, chunk = 1, sink = 0;
    double t0 = now_ns(), elapsed;

    for (;;) {
        for (uint64_t j = 0; j < chunk; j++) {
            uint64_t a = 0, ignored = 0;

            sink += run_one(im, &q[(ops + j) % QUERIES], &a, &ignored) ? a : 1;
        }
        ops += chunk;
        elapsed = now_ns() - t0;
        if (elapsed >= budget_ns / ROUNDS)
            break;
        if (elapsed < budget_ns / ROUNDS / 8)
            chunk *= 2;
    }
    if (sink == 42)
        printf(" "); /* keep the answers alive */
    return elapsed / (double)ops;
}

/* ns per find: the median of ROUNDS rounds. */
static double measure(enum impl im, const struct query *q)
{
    double per_round[ROUNDS];

    for (int r = 0; r < ROUNDS; r++)
        per_round[r] = measure_round(im, q);
    qsort(per_round, ROUNDS, sizeof(per_round[0]), cmp_double);
    return per_round[ROUNDS / 2];
}
static FILE *json;
static double results[LAYOUTS][2][IMPLS][8]; /* ns per op by n index */

static const size_t sizes[] = {100, 1000, 10000, 100000, 1000000};

/*
 * The scaling target compares a find at n = 10^6 with one at 10^3. This
 * machine's L2 and L3 are shared with other guests, and for seconds at a
 * time a find slows by up to 1.8x (docs/performance.md), so the two sizes'
 * own medians, measured a minute apart, can come from different phases. Here
 * the two are measured in pairs of back-to-back rounds, each pair
 * alternating which size goes first. Reported: the median of the pairs'
 * ratios, and the median of each size's rounds. The layouts and queries are
 * the main run's (same seeds), and every answer is checked again.
 */
#define PAIRS 9
static double paired_ratio[LAYOUTS];

static bool paired_scaling(enum layout li, size_t small_ni, size_t large_ni)
{
    struct query q[2][QUERIES];
    struct range *r[2];
    double t[2][PAIRS], ratio[PAIRS];

    for (int k = 0; k < 2; k++) {
        size_t ni = k ? large_ni : small_ni, n = sizes[ni];

        rng_state = 0xbe9c0000 + (uint64_t)li * 100 + ni;
        r[k] = make_layout(li, n);
        make_queries(li, false, r[k], n, q[k]);
        space = &spaces[k];
        if (!canopy_build(space, r[k], n)) {
            fprintf(stderr, "building the Canopy space failed\n");
            return false;
        }
        for (int i = 0; i < QUERIES; i++) {
            uint64_t want = 0, a = 0, ignored = 0;
            bool want_ok = ref_lowest(r[k], n, &q[k][i], &want);
            bool ok = canopy_find(&q[k][i], false, &a, &ignored);

            if ((ok != want_ok || (ok && a != want)) &&
                (ref_over_asked(r[k], n, &q[k][i], false, &want) != ok || (ok && a != want))) {
                fprintf(stderr, "canopy disagrees with the reference: layout %s, n %zu, query %d\n",
                        layout_names[li], n, i);
                return false;
            }
        }
    }
    for (int p = 0; p < PAIRS; p++) {
        for (int j = 0; j < 2; j++) {
            int k = (p + j) % 2;

            space = &spaces[k];
            t[k][p] = measure_round(CANOPY, q[k]);
        }
        ratio[p] = t[1][p] / t[0][p];
    }
    qsort(t[0], PAIRS, sizeof(double), cmp_double);
    qsort(t[1], PAIRS, sizeof(double), cmp_double);
    qsort(ratio, PAIRS, sizeof(double), cmp_double);
    paired_ratio[li] = ratio[PAIRS / 2];
    printf("%-7s %-6s %8zu canopy, paired with n = %zu: %.1f and %.1f ns per find, ratio %.2f "
           "(pairs %.2f..%.2f)\n",
           layout_names[li], "fixed", sizes[large_ni], sizes[small_ni], t[1][PAIRS / 2],
           t[0][PAIRS / 2], ratio[PAIRS / 2], ratio[0], ratio[PAIRS - 1]);
    if (json)
        fprintf(json,
                "{\"bench\": \"vmm_find_scaling\", \"impl\": \"canopy\", \"layout\": \"%s\", "
                "\"query\": \"fixed\", \"n\": %zu, \"n_base\": %zu, \"ratio\": %.3f, "
                "\"ns_per_op\": %.2f, \"ns_per_op_base\": %.2f}\n",
                layout_names[li], sizes[large_ni], sizes[small_ni], ratio[PAIRS / 2],
                t[1][PAIRS / 2], t[0][PAIRS / 2]);
    for (int k = 0; k < 2; k++) {
        vmm_space_clear(&spaces[k]);
        free(r[k]);
    }
    space = &spaces[0];
    return true;
}

int main(int argc, char **argv)
{
    size_t max_n = 1000000;
    int ni_count = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            max_n = 10000;
            budget_ns = 5e6;
        } else if (strcmp(argv[i], "--max-n") == 0 && i + 1 < argc) {
            max_n = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json = fopen(argv[++i], "w");
            if (!json) {
                perror(argv[i]);
                return 1;
            }
        } else {
            fprintf(stderr, "usage: %s [--quick] [--max-n N] [--json FILE]\n", argv[0]);
            return 2;
        }
    }

    printf("%-7s %-6s %8s %-15s %12s %12s\n", "layout", "query", "n", "impl", "ns/find",
           "nodes/find");
    for (int li = 0; li < LAYOUTS; li++) {
        for (int kind = 0; kind < 2; kind++) {
            if (li == NARROW && kind == 0)
                continue; /* narrow windows are random by construction */
            for (size_t ni = 0; ni < sizeof(sizes) / sizeof(sizes[0]); ni++) {
                size_t n = sizes[ni];
                struct query q[QUERIES];
                uint64_t want[QUERIES];
                bool want_ok[QUERIES], want_top_ok[QUERIES];
                uint64_t want_top[QUERIES];
                struct range *r;
                avl_node_t *lnodes;

                if (n > max_n)
                    break;
                if ((int)ni + 1 > ni_count)
                    ni_count = (int)ni + 1;
                rng_state = 0xbe9c0000 + (uint64_t)li * 100 + ni;
                r = make_layout((enum layout)li, n);
                make_queries((enum layout)li, kind == 1, r, n, q);
                for (int i = 0; i < QUERIES; i++) {
                    want_ok[i] = ref_lowest(r, n, &q[i], &want[i]);
                    want_top_ok[i] = ref_highest(r, n, &q[i], &want_top[i]);
                }

                if (!canopy_build(space, r, n)) {
                    fprintf(stderr, "building the Canopy space failed\n");
                    return 1;
                }
                gtree = g_tree_new(gtree_cmp);
                ltree = avl_alloc_tree(libavl_cmp, NULL);
                lnodes = calloc(n, sizeof(*lnodes));
                for (size_t i = 0; i < n; i++) {
                    g_tree_insert(gtree, &r[i], &r[i]);
                    avl_init_node(&lnodes[i], &r[i]);
                    avl_insert_node(ltree, &lnodes[i]);
                }

                for (int im = 0; im < IMPLS; im++) {
                    uint64_t visits = 0;
                    double ns;

                    /* Every answer checked before timing. */
                    for (int i = 0; i < QUERIES; i++) {
                        uint64_t a = 0, ignored = 0;
                        bool ok = run_one((enum impl)im, &q[i], &a, &ignored);
                        bool top = im == CANOPY_TOPDOWN;

                        bool over = false;

                        if (im <= CANOPY_TOPDOWN && (ok != (top ? want_top_ok[i] : want_ok[i]) ||
                                                     (ok && a != (top ? want_top[i] : want[i])))) {
                            uint64_t b = 0;

                            over = ref_over_asked(r, n, &q[i], top, &b) == ok && (!ok || a == b);
                        }
                        if (!over && (ok != (top ? want_top_ok[i] : want_ok[i]) ||
                                      (ok && a != (top ? want_top[i] : want[i])))) {
                            fprintf(stderr,
                                    "%s disagrees with the reference: layout %s, n %zu, query "
                                    "%d (size %#llx align %#llx min %#llx)\n",
                                    impl_names[im], layout_names[li], n, i,
                                    (unsigned long long)q[i].size, (unsigned long long)q[i].align,
                                    (unsigned long long)q[i].min);
                            return 1;
                        }
                        visits += ignored;
                    }
                    ns = measure((enum impl)im, q);
                    results[li][kind][im][ni] = ns;
                    printf("%-7s %-6s %8zu %-15s %12.1f %12.1f\n", layout_names[li],
                           kind ? "random" : "fixed", n, impl_names[im], ns,
                           (double)visits / QUERIES);
                    if (json)
                        fprintf(json,
                                "{\"bench\": \"vmm_find\", \"impl\": \"%s\", \"layout\": \"%s\", "
                                "\"query\": \"%s\", \"n\": %zu, \"ns_per_op\": %.2f, "
                                "\"nodes_visited\": %.1f}\n",
                                impl_names[im], layout_names[li], kind ? "random" : "fixed", n, ns,
                                (double)visits / QUERIES);
                }
                fflush(stdout);

                avl_clear_tree(ltree); /* the nodes are ours: nothing to free inside */
                free(ltree);
                free(lnodes);
                g_tree_destroy(gtree);
                vmm_space_clear(space);
                free(r);
            }
        }
    }

    /* n = 10^3 against the largest n, in paired rounds (the smoke run's largest is 10^4). */
    if (ni_count >= 3) {
        printf("\n");
        for (int li = 0; li < NARROW; li++)
            if (!paired_scaling((enum layout)li, 1, (size_t)ni_count - 1))
                return 1;
    }

    /* The targets, for the fixed window. */
    if (ni_count >= 5) {
        printf("\ntargets (fixed window):\n");
        for (int li = 0; li < NARROW; li++) {
            double c5 = results[li][0][CANOPY][3], w5 = results[li][0][WALK_CANOPY][3];

            printf("  %-6s n=1e5: walk-canopy / canopy = %8.0fx (target >= 3000x); "
                   "canopy n=1e6 / n=1e3, paired = %.2f (target <= 3)\n",
                   layout_names[li], w5 / c5, paired_ratio[li]);
        }
    }
    if (json)
        fclose(json);
    return 0;
}
