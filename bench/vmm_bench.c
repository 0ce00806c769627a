/*
 * vmm_bench: finding a free range and looking up the range that holds an
 * address, Canopy's VMM against an augmented peer and the in-order walks.
 *
 * Implementations, all over the same VMAs:
 *   canopy       avl_gap_find() on the space's tree, what vmm_space_find()
 *                calls once it has validated the request: the descent over
 *                the largest gap, or at 2 MiB and 1 GiB alignment over the
 *                usable size there, kept per child slot (vmm/src/avl.c);
 *                the first fit at 4 KiB, 2 MiB and 1 GiB, and at any other
 *                alignment A the lowest hole with size + A - b of room at b,
 *                the largest of those three below A
 *   canopy-space vmm_space_find() itself: the same search behind the checks
 *                of the request and the cut at the canonical hole
 *   canopy-over  avl_gap_find() asked the peer's question: size + align -
 *                4 KiB at 4 KiB, the address then rounded up to align. The
 *                same answers as the peer's, so that the two trees can be
 *                compared apart from the exact first fit that canopy finds
 *   rbgap        the peer: a red-black tree with the gap below each node and
 *                its subtree's largest gap, searched for size + align - 4 KiB
 *                as Linux did before the maple tree (bench/rbgap.c): it
 *                over-asks, so its answer can lie above the first fit
 *   walk-canopy  the in-order walk over Canopy's own tree
 *   walk-gtree   the same walk over GLib's GTree
 *   walk-libavl  the same walk over libavl (threaded: a step is one pointer)
 *   wide-16      in the scaling part only: a B-tree yardstick of 16-entry
 *                nodes over the holes (struct wide_node), the first fit
 * The walks seek to the window's start in O(log n), then test the hole
 * before each VMA with inclusive, overflow-safe bounds.
 *
 * Canopy's and the peer's VMAs come from bench_nodes_alloc() (nodes.h), as
 * the kernel allocates them, in the order they are inserted: random, so
 * that memory order is not address order. Every structure is built in that
 * order, the walks' items included.
 *
 * Layouts (n VMAs, the answer somewhere in the middle unless said):
 *   random     VMAs of 4 KiB..4 MiB, holes of 4 KiB..4 MiB with one in 32 of
 *              4..128 MiB; each query aims at a hole j in the middle half of
 *              the space, asks for between half and all of what j holds at
 *              its alignment (4 KiB half the time, 16 KiB..1 MiB, 2 MiB, rarely
 *              1 GiB), from a window that starts 1..j VMAs below j and ends
 *              at the top or inside VMA j: the first fit lies between
 *   swiss      VMAs of 4 KiB..4 MiB, holes of 1..3 pages: every hole is too
 *              small, the answer lies above the last VMA (the walks' worst
 *              case); kept from the first benchmarks, one layout among others
 *   short-4k   one-page VMAs, holes one page short of the 64 KiB request but
 *              for one in 256, at 4 KiB: the search at 4 KiB's adversary
 *   misal-16k, misal-2m, misal-1g
 *              the misaligned holes of issue 18: holes of size to size +
 *              align / 2 - 4 KiB starting align / 2 past a multiple of align
 *              (big enough, never aligned room), one in 512 holding an
 *              aligned fit of exactly size (which only an exact search sees)
 *              and one in 512 with size + align of room (which the peer's
 *              over-ask sees); 8 KiB at 16 KiB, 2 MiB at 2 MiB, 1 GiB at 1 GiB
 * Windows start at a random VMA and end at the top of the 57-bit lower half
 * unless said.
 *
 * Queries: cold, COLD distinct windows each used once per round, in one
 * pass; hot, the first HOT of them, cycled. Each round measures every
 * implementation hot, then cold, Canopy and the peer back to back and the
 * order reversed every other round; ns are the medians of the rounds, and
 * the Canopy / peer ratio is the median of the rounds' ratios. A walk's cold
 * pass stops after COLD_CAP_NS; its ns are over the queries it ran. Each
 * round's cold passes come after settle_ns of untimed ones (settle()).
 *
 * Lookups (vmm_lookup), in the random layout: the VMA holding an address,
 * for COLD addresses in random VMAs (and HOT of them, cycled), as a chain in
 * which each address depends on the previous result (the latency a page
 * fault sees) and as independent lookups (throughput). canopy is
 * vmm_space_lookup(), rbgap the peer's descent, gtree and libavl their
 * searches.
 *
 * Last, Canopy's cold finds in the random layout at n = 10^3 and at the
 * largest n are measured again in pairs of back-to-back rounds (the scaling
 * target; the peer's and a wide-node yardstick's too, for comparison: see
 * struct wide_node), and at both sizes what one node read costs when its
 * address depends on the read before (node_read_ns()).
 *
 * Every answer is checked before anything is timed, against references over
 * a sorted array written apart from the trees: Canopy's against the first
 * fit, or at other alignments the over-asked answer avl.h describes;
 * the peer's against the lowest hole with size + align - 4 KiB of room; the
 * walks' against the first fit (on the hot queries and the first
 * WALK_CHECKED cold ones, over which their nodes are counted); lookups
 * against the VMA the address was drawn in. A mismatch ends the program
 * with status 1. Nodes visited: Canopy's last_visits, the peer's nodes
 * read, the walks' VMAs stepped over. "Not first fit": the share of
 * Canopy's and the peer's answers that differ from the first fit (a later
 * hole, or none), what each pays less for.
 *
 * Usage: vmm_bench [--quick] [--max-n N] [--rounds R] [--layout NAME]
 *                  [--parts find,lookup,scaling] [--no-walks] [--json FILE]
 *   --quick    small n, few queries, short timings (the test suite's smoke run)
 *   --json     also write one JSON object per line per measurement
 */
#define _POSIX_C_SOURCE 200809L
#include <avl.h> /* libavl */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/page.h>
#include <canopy/rng.h>
#include <vmm/space.h>

#include "rbgap.h"
#include "nodes.h"
#include "support.h"

#define PAGE         PAGE_SIZE
#define MIB          (1ull << 20)
#define GIB          (1ull << 30)
#define VA_BITS      57                 /* room for the misaligned 1 GiB layout at 2^20 VMAs */
#define WIN_LAST     ((1ull << 56) - 1) /* the last byte of the lower canonical half */
#define HOT          16                 /* hot queries, cycled */
#define WALK_CHECKED 64                 /* cold queries the walks are checked and counted on */
#define SHORT_SIZE   (16 * PAGE)        /* short-4k's request */
#define MAX_ROUNDS   16

static size_t cold_count = 65536;
static double hot_slice_ns = 2e7; /* per hot measurement */
static double cold_cap_ns = 1e8;  /* a cold pass stops here (only the walks get near it) */
static double settle_ns = 5e6;    /* untimed cold passes before timed ones (settle()) */
static int rounds = 5;
static bool with_walks = true;

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

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);

    if (!p) {
        fprintf(stderr, "vmm_bench: out of memory\n");
        exit(1);
    }
    return p;
}

/* The lowest multiple of align at or above a, false if it wraps (page.h's align_up cannot say). */
static bool align_up_checked(uint64_t a, uint64_t align, uint64_t *out)
{
    uint64_t mask = align - 1;

    if (a & mask) {
        if (a > UINT64_MAX - mask)
            return false;
        a = (a + mask) & ~mask;
    }
    *out = a;
    return true;
}

/* The lowest address from a multiple of align with size bytes inside [lo, hi]. */
static bool fit_low(uint64_t lo, uint64_t hi, uint64_t size, uint64_t align, uint64_t *addr)
{
    uint64_t a;

    if (lo > hi || !align_up_checked(lo, align, &a) || a > hi || hi - a < size - 1)
        return false;
    *addr = a;
    return true;
}

/* ---- layouts ---- */

enum layout { RANDOM, SWISS, SHORT_4K, MISAL_16K, MISAL_2M, MISAL_1G, LAYOUTS };
static const char *const layout_names[LAYOUTS] = {"random",    "swiss",    "short-4k",
                                                  "misal-16k", "misal-2m", "misal-1g"};

/* The misaligned layouts' alignment and request. */
static void misal_params(enum layout l, uint64_t *align, uint64_t *size)
{
    *align = l == MISAL_16K ? 16 * 1024 : l == MISAL_2M ? 2 * MIB : GIB;
    *size = l == MISAL_16K ? 8 * 1024 : *align;
}

/*
 * n ranges sorted by address, and the sizes of the holes between them for
 * the reference's skips: hole i lies below range i (hole 0 from address 0,
 * hole n above the last range).
 */
struct layout_data {
    enum layout kind;
    size_t n;
    struct range *r;
    size_t *order;       /* the order the ranges are inserted in */
    uint64_t *block_max; /* the longest hole among holes [64 b, 64 b + 63] */
    uint64_t *super_max; /* ... among holes [4096 s, 4096 s + 4095] */
};

#define BLOCK 64
#define SUPER 4096

static uint64_t hole_lo(const struct layout_data *L, size_t i)
{
    return i ? L->r[i - 1].last + 1 : 0;
}

static uint64_t hole_hi(const struct layout_data *L, size_t i)
{
    return i < L->n ? L->r[i].start - 1 : UINT64_MAX;
}

static struct range *make_ranges(enum layout l, size_t n)
{
    struct range *r = xmalloc(n * sizeof(*r));
    uint64_t at = PAGE, align = 0, size = 0, width = 0, base = 0;

    if (l >= MISAL_16K) {
        misal_params(l, &align, &size);
        width = align * (2 + 2 * ((size + align - 1) / align));
        base = 64 * align;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t len, gap;

        switch (l) {
        case RANDOM:
            len = rnd_pages(0, 9) * PAGE;
            gap = (rnd() % 32 == 0 ? rnd_pages(10, 14) : rnd_pages(0, 9)) * PAGE;
            r[i] = (struct range){at, at + len - 1};
            at += len + gap;
            break;
        case SWISS:
            len = rnd_pages(0, 9) * PAGE;
            gap = (1 + rnd() % 3) * PAGE;
            r[i] = (struct range){at, at + len - 1};
            at += len + gap;
            break;
        case SHORT_4K:
            gap = rnd() % 256 == 0 ? SHORT_SIZE + (rnd() % 4) * PAGE : SHORT_SIZE - PAGE;
            r[i] = (struct range){at, at + PAGE - 1};
            at += PAGE + gap;
            break;
        default: {
            /*
             * Cell i holds hole i, align / 2 past its multiple of align,
             * then range i up to align / 2 past the next cell's start:
             *   cell i        cell i + 1
             *   |..hole i..RRRRRR|..hole i+1..RRRRRR|
             */
            uint64_t cell = base + width * i, kind = rnd() % 512;

            if (kind == 0)
                len = size + align / 2; /* an aligned fit of exactly size */
            else if (kind == 1)
                len = size + align; /* room for the over-ask */
            else
                len = size + (rnd() % (align / 2 / PAGE)) * PAGE; /* big, misaligned */
            r[i] = (struct range){cell + align / 2 + len, cell + width + align / 2 - 1};
            break;
        }
        }
    }
    return r;
}

/* 0..n-1 in a random order (Fisher-Yates, from rnd()). */
static size_t *random_order(size_t n)
{
    size_t *order = xmalloc(n * sizeof(*order));

    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rnd() % (i + 1)), t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    return order;
}

static struct layout_data make_layout(enum layout l, size_t n)
{
    struct layout_data L = {.kind = l, .n = n};
    size_t blocks = (n + 1 + BLOCK - 1) / BLOCK, supers = (n + 1 + SUPER - 1) / SUPER;

    L.r = make_ranges(l, n);
    L.order = random_order(n);
    L.block_max = calloc(blocks, sizeof(uint64_t));
    L.super_max = calloc(supers, sizeof(uint64_t));
    if (!L.block_max || !L.super_max) {
        fprintf(stderr, "vmm_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 1; i < n; i++) { /* the holes between two ranges */
        uint64_t len = L.r[i].start - L.r[i - 1].last - 1;

        if (len > L.block_max[i / BLOCK])
            L.block_max[i / BLOCK] = len;
        if (len > L.super_max[i / SUPER])
            L.super_max[i / SUPER] = len;
    }
    return L;
}

static void free_layout(struct layout_data *L)
{
    free(L->r);
    free(L->order);
    free(L->block_max);
    free(L->super_max);
}

/* The largest size, in pages, that fits in hole i from a multiple of align. */
static uint64_t hole_cap_pages(const struct layout_data *L, size_t i, uint64_t align)
{
    uint64_t a;

    if (!align_up_checked(hole_lo(L, i), align, &a) || a > hole_hi(L, i))
        return 0;
    return (hole_hi(L, i) - a + 1) / PAGE;
}

static void make_random_query(const struct layout_data *L, struct query *q)
{
    size_t n = L->n, j = n / 8 + (size_t)(rnd() % (n - n / 4)), i, d;
    unsigned bits = 64 - (unsigned)__builtin_clzll(j), u = (unsigned)(rnd() % 20);
    uint64_t pages;

    q->align = u < 10 ? PAGE : u < 14 ? PAGE << (2 + rnd() % 7) : u < 19 ? 2 * MIB : GIB;
    pages = hole_cap_pages(L, j, q->align);
    if (pages == 0) {
        q->align = PAGE;
        pages = hole_cap_pages(L, j, PAGE);
    }
    q->size = (pages - rnd() % (pages / 2 + 1)) * PAGE;
    /* The window starts 1..j VMAs below hole j, log-uniformly... */
    d = 1 + (size_t)(rnd() % (1ull << (rnd() % bits)));
    i = j - (d < j ? d : j);
    q->min = L->r[i].start;
    if (i > 0 && rnd() % 2) /* ...at a VMA, or inside the hole below it */
        q->min = hole_lo(L, i) + rnd() % ((hole_hi(L, i) - hole_lo(L, i) + 1) / PAGE) * PAGE;
    /* ...and ends at the top, or inside VMA j (at the end of hole j at the least). */
    q->last = WIN_LAST;
    if (rnd() % 2)
        q->last =
            L->r[j].start - 1 + rnd() % ((L->r[j].last - L->r[j].start + 1) / PAGE + 1) * PAGE;
}

static struct query *make_queries(const struct layout_data *L, size_t count)
{
    struct query *q = xmalloc(count * sizeof(*q));
    uint64_t align, size;

    for (size_t k = 0; k < count; k++) {
        switch (L->kind) {
        case RANDOM:
            make_random_query(L, &q[k]);
            continue;
        case SWISS:
            q[k].size = rnd_pages(2, 9) * PAGE; /* 16 KiB .. 4 MiB, capped at 2 MiB */
            if (q[k].size > 512 * PAGE)
                q[k].size = 512 * PAGE;
            q[k].align = PAGE << (rnd() % 4 == 0 ? rnd() % 19 : rnd() % 4);
            break;
        case SHORT_4K:
            q[k].size = SHORT_SIZE;
            q[k].align = PAGE;
            break;
        default:
            misal_params(L->kind, &align, &size);
            q[k].size = size;
            q[k].align = align;
            break;
        }
        q[k].min = L->r[rnd() % L->n].start;
        q[k].last = WIN_LAST;
    }
    return q;
}

/* ---- references: a sorted array and a scan of its holes ---- */

enum ref_kind {
    REF_FIRST_FIT,   /* the lowest aligned fit */
    REF_OVER_CANOPY, /* Canopy at other alignments (avl_gap_find() in vmm/avl.h) */
    REF_OVER_PEER,   /* the peer: the lowest hole with size + align - 4 KiB of room */
};

/* Whether hole i, clipped to q's window as [lo, hi], answers q for this kind of reference. */
static bool ref_hole(const struct layout_data *L, size_t i, uint64_t lo, uint64_t hi,
                     const struct query *q, enum ref_kind kind, uint64_t *addr)
{
    uint64_t b, unused;

    switch (kind) {
    case REF_FIRST_FIT:
        return fit_low(lo, hi, q->size, q->align, addr);
    case REF_OVER_CANOPY:
        /* The edge holes are always tried exactly; between ranges, room from a multiple of b. */
        b = q->align > GIB ? GIB : q->align > 2 * MIB ? 2 * MIB : PAGE;
        if (i > 0 && i < L->n && !fit_low(lo, hi, q->size + q->align - b, b, &unused))
            return false;
        return fit_low(lo, hi, q->size, q->align, addr);
    default:
        if (!fit_low(lo, hi, q->size + q->align - PAGE, PAGE, &unused))
            return false;
        return align_up_checked(lo, q->align, addr);
    }
}

/* The fewest bytes a hole between two ranges must span to answer q, for the skips. */
static uint64_t ref_need(const struct query *q, enum ref_kind kind)
{
    switch (kind) {
    case REF_FIRST_FIT:
        return q->size;
    case REF_OVER_CANOPY:
        return q->size + q->align - (q->align > GIB ? GIB : q->align > 2 * MIB ? 2 * MIB : PAGE);
    default:
        return q->size + q->align - PAGE;
    }
}

static bool ref_find(const struct layout_data *L, const struct query *q, enum ref_kind kind,
                     uint64_t *addr)
{
    size_t n = L->n, lo_i = 0, hi_i = n, i;
    uint64_t need = ref_need(q, kind);

    while (lo_i < hi_i) { /* the first range whose last byte is >= min */
        size_t mid = lo_i + (hi_i - lo_i) / 2;

        if (L->r[mid].last < q->min)
            lo_i = mid + 1;
        else
            hi_i = mid;
    }
    /* Hole lo_i lies below that range; if min is inside the range, the next hole is the first. */
    i = lo_i < n && L->r[lo_i].start <= q->min ? lo_i + 1 : lo_i;
    while (i <= n) {
        uint64_t lo = hole_lo(L, i), hi = hole_hi(L, i);

        if (lo > q->last)
            return false;
        /* Skip whole blocks of holes between ranges that are all too short. */
        if (i > 0 && i < n && i % SUPER == 0 && i + SUPER <= n && L->super_max[i / SUPER] < need) {
            i += SUPER;
            continue;
        }
        if (i > 0 && i < n && i % BLOCK == 0 && i + BLOCK <= n && L->block_max[i / BLOCK] < need) {
            i += BLOCK;
            continue;
        }
        if (lo < q->min)
            lo = q->min;
        if (hi > q->last)
            hi = q->last;
        if (lo <= hi && ref_hole(L, i, lo, hi, q, kind, addr))
            return true;
        i++;
    }
    return false;
}

/* ---- the structures ---- */

struct peer_vma {
    struct rbgap_node node;
    struct vmm_attrs attrs; /* as Canopy's VMA carries them, for the same size class */
};

static struct vmm_space *space;
static struct rbgap_tree *peer;
static GTree *gtree;
static avl_tree_t *ltree;

static struct vmm_vma *canopy_node_alloc(void *ctx)
{
    (void)ctx;
    return bench_nodes_alloc(sizeof(struct vmm_vma));
}

static void canopy_node_free(void *ctx, struct vmm_vma *v)
{
    (void)ctx;
    bench_nodes_free(sizeof(struct vmm_vma), v);
}

/* Ordered by address; ranges that overlap compare equal, so a one-byte range finds its VMA. */
static int range_cmp(const void *a, const void *b)
{
    const struct range *x = a, *y = b;

    return x->last < y->start ? -1 : x->start > y->last ? 1 : 0;
}

static gint gtree_cmp(gconstpointer a, gconstpointer b)
{
    return range_cmp(a, b);
}

/* Everything one layout is measured over, built in the layout's insertion order. */
struct built {
    struct vmm_space space;
    struct rbgap_tree peer;
    struct peer_vma **peer_nodes;
    GTree *gtree;
    avl_tree_t *ltree;
    avl_node_t *lnodes;
    struct range *items; /* the walks' items, in insertion order */
};

static void build(struct built *b, const struct layout_data *L, bool walks)
{
    static const struct vmm_attrs attrs = {.name = "bench"};
    const char *why = NULL;
    size_t n = L->n;

    if (vmm_space_init(&b->space, 0, UINT64_MAX, VA_BITS,
                       (struct vmm_node_source){.alloc = canopy_node_alloc,
                                                .free = canopy_node_free,
                                                .ctx = NULL}) != VMM_OK) {
        fprintf(stderr, "vmm_bench: vmm_space_init failed\n");
        exit(1);
    }
    for (size_t k = 0; k < n; k++) {
        const struct range *r = &L->r[L->order[k]];

        if (vmm_space_reserve(&b->space, r->start, r->last - r->start + 1, &attrs, NULL) !=
            VMM_OK) {
            fprintf(stderr, "vmm_bench: reserving a VMA failed\n");
            exit(1);
        }
    }
    rbgap_init(&b->peer);
    b->peer_nodes = xmalloc(n * sizeof(*b->peer_nodes));
    for (size_t k = 0; k < n; k++) {
        const struct range *r = &L->r[L->order[k]];
        struct peer_vma *v = bench_nodes_alloc(sizeof(*v));

        v->node.start = r->start;
        v->node.last = r->last;
        v->attrs = attrs;
        rbgap_insert(&b->peer, &v->node);
        b->peer_nodes[k] = v;
    }
    if (!vmm_space_check(&b->space, &why) || !rbgap_check(&b->peer, &why)) {
        fprintf(stderr, "vmm_bench: a tree is inconsistent after building: %s\n", why);
        exit(1);
    }
    b->gtree = NULL;
    b->ltree = NULL;
    b->lnodes = NULL;
    b->items = NULL;
    if (!walks)
        return;
    b->items = xmalloc(n * sizeof(*b->items));
    b->lnodes = calloc(n, sizeof(*b->lnodes));
    b->gtree = g_tree_new(gtree_cmp);
    b->ltree = avl_alloc_tree(range_cmp, NULL);
    if (!b->lnodes || !b->ltree) {
        fprintf(stderr, "vmm_bench: out of memory\n");
        exit(1);
    }
    for (size_t k = 0; k < n; k++) {
        b->items[k] = L->r[L->order[k]];
        g_tree_insert(b->gtree, &b->items[k], &b->items[k]);
        avl_init_node(&b->lnodes[k], &b->items[k]);
        avl_insert_node(b->ltree, &b->lnodes[k]);
    }
}

static void unbuild(struct built *b, size_t n)
{
    vmm_space_clear(&b->space);
    for (size_t k = 0; k < n; k++)
        bench_nodes_free(sizeof(struct peer_vma), b->peer_nodes[k]);
    free(b->peer_nodes);
    if (b->gtree) {
        avl_clear_tree(b->ltree); /* the nodes are ours: nothing to free inside */
        free(b->ltree);
        free(b->lnodes);
        g_tree_destroy(b->gtree);
        free(b->items);
    }
}

/* Points the implementations at b. */
static void use(struct built *b)
{
    space = &b->space;
    peer = &b->peer;
    gtree = b->gtree;
    ltree = b->ltree;
}

/* ---- the finds ---- */

enum impl {
    CANOPY,
    PEER,
    CANOPY_SPACE,
    CANOPY_OVER,
    WALK_CANOPY,
    WALK_GTREE,
    WALK_LIBAVL,
    WIDE,
    IMPLS
};
static const char *const impl_names[IMPLS] = {"canopy",      "rbgap",       "canopy-space",
                                              "canopy-over", "walk-canopy", "walk-gtree",
                                              "walk-libavl", "wide-16"};

/* The tree's search, as vmm_space_find() calls it once the request is validated. */
static bool find_canopy(const struct query *q, uint64_t *addr, uint64_t *visits)
{
    struct avl_gap_query gq = {.size = q->size, .align = q->align, .lo = q->min, .hi = q->last};
    struct avl_gap_result r;
    bool found = avl_gap_find(&space->tree, &gq, 0, &r);

    if (found)
        *addr = r.addr;
    *visits += r.visits;
    return found;
}

static bool find_canopy_space(const struct query *q, uint64_t *addr, uint64_t *visits)
{
    struct vmm_alloc_req req = {
        .size = q->size, .align = q->align, .min = q->min, .last = q->last, .flags = 0};
    bool ok = vmm_space_find(space, &req, addr) == VMM_OK;

    *visits += space->last_visits;
    return ok;
}

/*
 * Canopy's tree asked what the peer asks: the lowest hole with size + align
 * - 4 KiB of room from a page boundary, which holds size bytes at align.
 */
static bool find_canopy_over(const struct query *q, uint64_t *addr, uint64_t *visits)
{
    struct avl_gap_query gq = {
        .size = q->size + (q->align - PAGE), .align = PAGE, .lo = q->min, .hi = q->last};
    struct avl_gap_result r;
    bool found = avl_gap_find(&space->tree, &gq, 0, &r);

    if (found)
        *addr = (r.addr + (q->align - 1)) & ~(q->align - 1);
    *visits += r.visits;
    return found;
}

static bool find_peer(const struct query *q, uint64_t *addr, uint64_t *visits)
{
    return rbgap_find_lowest(peer, q->size, q->align, q->min, q->last, addr, visits);
}

/*
 * The in-order walk, written once for the three trees through a cursor:
 * first(min) gives the first range whose last byte is >= min.
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
                fit_low(from, r_->start - 1 < q->last ? r_->start - 1 : q->last, q->size,          \
                        q->align, addr))                                                           \
                return true;                                                                       \
            if (r_->last >= q->last)                                                               \
                return false;                                                                      \
            if (r_->last + 1 > from)                                                               \
                from = r_->last + 1;                                                               \
        }                                                                                          \
        return fit_low(from, q->last, q->size, q->align, addr);                                    \
    } while (0)

static bool find_walk_canopy(const struct query *q, uint64_t *addr, uint64_t *steps)
{
    const struct vmm_vma *v;

    WALK(v = vmm_space_first_from(space, q->min), v, (const struct range *)&v->node.start,
         v = vmm_space_next(v));
}

static bool find_walk_gtree(const struct query *q, uint64_t *addr, uint64_t *steps)
{
    struct range key = {q->min, q->min};
    GTreeNode *n;

    /* With overlapping ranges comparing equal, the lower bound is the first with last >= min. */
    WALK(n = g_tree_lower_bound(gtree, &key), n, g_tree_node_key(n), n = g_tree_node_next(n));
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

static bool find_walk_libavl(const struct query *q, uint64_t *addr, uint64_t *steps)
{
    avl_node_t *n;

    WALK(n = libavl_first_from(q->min), n, n->item, n = n->next);
}

/*
 * The wide-node yardstick, measured only in the scaling part: what a cold
 * find would cost in a B-tree over the holes, the shape the scaling target
 * points to (Linux's maple tree is one). WIDE_B entries a node, filled to
 * WIDE_FILL of them, about what a B-tree holds after random inserts (69 %);
 * the nodes from the VMAs' slab allocator, each at a random place among all
 * of them, so that memory order is not tree order; 8-byte fields, as a
 * 57-bit space needs. A leaf entry is a hole between two VMAs, its first and
 * last byte; an internal entry a child, the first byte of its lowest hole
 * and its longest hole. The search is the first fit at any alignment; it
 * passes over a child only by its longest hole, and its answers are checked
 * like the others. Built once from the sorted holes, with no insert or
 * erase, no edge holes (queries in the random layout never end there) and no
 * per-alignment fits, it is a lower bound on such a tree's cold find, not a
 * design.
 */
#define WIDE_B    16
#define WIDE_FILL 11

struct wide_node {
    unsigned count;
    bool leaf;
    uint64_t lo[WIDE_B];  /* a hole's first byte; a child's lowest hole's */
    uint64_t len[WIDE_B]; /* a hole's length in bytes; a child's longest hole's */
    struct wide_node *child[WIDE_B];
};

static struct wide_node *wide_root;

/* The first fit for q in w's holes from the one holding q->min on (with edge) or from the first. */
static bool wide_search(const struct wide_node *w, const struct query *q, bool edge, uint64_t *addr,
                        uint64_t *visits)
{
    unsigned c = 0;

    ++*visits;
    if (edge)
        while (c + 1 < w->count && w->lo[c + 1] <= q->min)
            c++;
    for (; c < w->count; c++) {
        if (w->lo[c] > q->last)
            return false;
        if (w->len[c] < q->size)
            continue;
        if (w->leaf) {
            uint64_t lo = w->lo[c] > q->min ? w->lo[c] : q->min;
            uint64_t hi = w->lo[c] + (w->len[c] - 1);

            if (fit_low(lo, hi < q->last ? hi : q->last, q->size, q->align, addr))
                return true;
        } else if (wide_search(w->child[c], q, edge, addr, visits)) {
            return true;
        }
        edge = false;
    }
    return false;
}

static bool find_wide(const struct query *q, uint64_t *addr, uint64_t *visits)
{
    return wide_search(wide_root, q, true, addr, visits);
}

/* The yardstick over L's holes between VMAs; *nodes_out and *count_out for wide_free(). */
static struct wide_node *wide_build(const struct layout_data *L, struct wide_node ***nodes_out,
                                    size_t *count_out)
{
    size_t holes = L->n - 1, count = 0, level = (holes + WIDE_FILL - 1) / WIDE_FILL, next = 0;
    struct wide_node **pool, **below, **above, *root;
    size_t *place;

    if (level == 0)
        level = 1; /* one empty leaf */
    for (size_t m = level;; m = (m + WIDE_FILL - 1) / WIDE_FILL) {
        count += m;
        if (m == 1)
            break;
    }
    pool = xmalloc(count * sizeof(*pool));
    for (size_t i = 0; i < count; i++) /* allocated in order, placed at random below */
        pool[i] = bench_nodes_alloc(sizeof(struct wide_node));
    place = random_order(count);
    below = xmalloc(level * sizeof(*below));
    for (size_t j = 0; j < level; j++) {
        struct wide_node *w = pool[place[next++]];

        w->leaf = true;
        w->count = 0;
        for (size_t i = j * WIDE_FILL + 1; i <= holes && w->count < WIDE_FILL; i++, w->count++) {
            w->lo[w->count] = hole_lo(L, i);
            w->len[w->count] = hole_hi(L, i) - hole_lo(L, i) + 1;
        }
        below[j] = w;
    }
    while (level > 1) {
        size_t up = (level + WIDE_FILL - 1) / WIDE_FILL;

        above = xmalloc(up * sizeof(*above));
        for (size_t j = 0; j < up; j++) {
            struct wide_node *w = pool[place[next++]];

            w->leaf = false;
            w->count = 0;
            for (size_t i = j * WIDE_FILL; i < level && w->count < WIDE_FILL; i++, w->count++) {
                const struct wide_node *c = below[i];
                uint64_t longest = 0;

                for (unsigned e = 0; e < c->count; e++)
                    longest = c->len[e] > longest ? c->len[e] : longest;
                w->lo[w->count] = c->lo[0];
                w->len[w->count] = longest;
                w->child[w->count] = below[i];
            }
            above[j] = w;
        }
        free(below);
        below = above;
        level = up;
    }
    root = below[0];
    free(below);
    free(place);
    *nodes_out = pool;
    *count_out = count;
    return root;
}

static void wide_free(struct wide_node **pool, size_t count)
{
    for (size_t i = 0; i < count; i++)
        bench_nodes_free(sizeof(struct wide_node), pool[i]);
    free(pool);
}

static bool (*const finds[IMPLS])(const struct query *, uint64_t *, uint64_t *) = {
    find_canopy,      find_peer,       find_canopy_space, find_canopy_over,
    find_walk_canopy, find_walk_gtree, find_walk_libavl,  find_wide};

/* Whether Canopy's slots know align: 4 KiB (the least the space asks for), 2 MiB or 1 GiB. */
static bool align_known(uint64_t align)
{
    return align == PAGE || align == 2 * MIB || align == GIB;
}

/*
 * Checks impl's answers to q[0..count) and counts its nodes: the mean into
 * *mean, the most into *most, and the share of answers that are not the
 * first fit into *away. false, with a line on stderr, on a wrong answer.
 */
static bool check_finds(enum impl im, const struct layout_data *L, const struct query *q,
                        size_t count, double *mean, uint64_t *most, double *away)
{
    uint64_t total = 0, aways = 0;

    *most = 0;
    for (size_t k = 0; k < count; k++) {
        uint64_t a = 0, want = 0, visits = 0, first = 0;
        bool ok = finds[im](&q[k], &a, &visits), right, want_ok;
        bool first_ok = ref_find(L, &q[k], REF_FIRST_FIT, &first);

        if (im == PEER || im == CANOPY_OVER)
            want_ok = ref_find(L, &q[k], REF_OVER_PEER, &want);
        else if ((im == CANOPY || im == CANOPY_SPACE) && !align_known(q[k].align))
            want_ok = ref_find(L, &q[k], REF_OVER_CANOPY, &want);
        else
            want_ok = first_ok, want = first;
        right = want_ok == ok && (!ok || a == want);
        aways += first_ok != ok || (ok && a != first);
        if (!right) {
            fprintf(stderr,
                    "vmm_bench: %s disagrees with the reference: layout %s, n %zu, query %zu "
                    "(size %#llx align %#llx window %#llx..%#llx): %s %#llx, reference %#llx\n",
                    impl_names[im], layout_names[L->kind], L->n, k, (unsigned long long)q[k].size,
                    (unsigned long long)q[k].align, (unsigned long long)q[k].min,
                    (unsigned long long)q[k].last, ok ? "found" : "none", (unsigned long long)a,
                    (unsigned long long)want);
            return false;
        }
        total += visits;
        if (visits > *most)
            *most = visits;
    }
    *mean = (double)total / (double)count;
    *away = (double)aways / (double)count;
    return true;
}

/* Where the answers go, so that no find or lookup is optimised away. */
static volatile uint64_t sink;

/* ns per find, cycling the HOT queries for hot_slice_ns (chunks double while short). */
static double time_hot(enum impl im, const struct query *q)
{
    bool (*find)(const struct query *, uint64_t *, uint64_t *) = finds[im];
    uint64_t ops = 0, chunk = 1, s = 0;
    double t0 = bench_now_ns(), elapsed;

    for (;;) {
        for (uint64_t j = 0; j < chunk; j++) {
            uint64_t a = 0, v = 0;

            s += find(&q[(ops + j) % HOT], &a, &v) ? a : 1;
        }
        ops += chunk;
        elapsed = bench_now_ns() - t0;
        if (elapsed >= hot_slice_ns)
            break;
        if (elapsed < hot_slice_ns / 8)
            chunk *= 2;
    }
    sink += s;
    return elapsed / (double)ops;
}

/* ns per find over one pass of the cold queries, or as many as run within cold_cap_ns. */
static double time_cold(enum impl im, const struct query *q, size_t count)
{
    bool (*find)(const struct query *, uint64_t *, uint64_t *) = finds[im];
    size_t done = 0, chunk = 1;
    uint64_t s = 0;
    double t0 = bench_now_ns(), elapsed;

    for (;;) {
        size_t end = done + chunk < count ? done + chunk : count;

        for (size_t k = done; k < end; k++) {
            uint64_t a = 0, v = 0;

            s += find(&q[k], &a, &v) ? a : 1;
        }
        done = end;
        elapsed = bench_now_ns() - t0;
        if (done == count || elapsed >= cold_cap_ns)
            break;
        if (chunk < 4096)
            chunk *= 2;
    }
    sink += s;
    return elapsed / (double)done;
}

/*
 * Untimed cold finds by im, for settle_ns at least, before a round's timed
 * ones. After the workload changes (hot to cold, another tree) the machine
 * runs slower for a millisecond or two, whichever code runs: in a cold
 * swiss round (5 ns finds, 0.3 ms a pass) the first pass took up to twice
 * what the same code took later in the round, and a pass run again at once
 * still a third more. Without this, the implementation that goes first in
 * most rounds (Canopy, with an odd number of rounds) paid for it.
 */
static void settle(enum impl im, const struct query *q)
{
    double t0 = bench_now_ns();

    do
        (void)time_cold(im, q, cold_count);
    while (bench_now_ns() - t0 < settle_ns);
}

static FILE *json;

/* The implementations measured, Canopy and the peer first (back to back in every round). */
static int impl_count(void)
{
    return with_walks ? WALK_LIBAVL + 1 : CANOPY_OVER + 1;
}

/* n as the target lines say it: 2^k for a power of two, else in decimal. */
static const char *n_label(size_t n, char buf[24])
{
    if (n && (n & (n - 1)) == 0)
        snprintf(buf, 24, "2^%d", 63 - __builtin_clzll(n));
    else
        snprintf(buf, 24, "%zu", n);
    return buf;
}

/* One layout at one n: every implementation checked, then timed in interleaved rounds. */
static bool bench_finds(const struct layout_data *L, const struct query *q)
{
    static double ns[IMPLS][2][MAX_ROUNDS], ratio[2][MAX_ROUNDS], ratio_over[2][MAX_ROUNDS];
    static const char *const temp_names[2] = {"hot", "cold"};
    double mean[IMPLS][2], over[IMPLS][2];
    uint64_t most[IMPLS][2];
    int impls = impl_count();
    char name[128], label[24];

    for (int im = 0; im < impls; im++) {
        size_t cold = im >= WALK_CANOPY && cold_count > WALK_CHECKED ? WALK_CHECKED : cold_count;

        if (!check_finds((enum impl)im, L, q, HOT, &mean[im][0], &most[im][0], &over[im][0]) ||
            !check_finds((enum impl)im, L, q, cold, &mean[im][1], &most[im][1], &over[im][1]))
            return false;
    }
    for (int r = 0; r < rounds; r++) {
        for (int t = 0; t < 2; t++) {
            if (t)
                settle(PEER, q);
            for (int k = 0; k < impls; k++) {
                int im = r % 2 ? impls - 1 - k : k;

                ns[im][t][r] =
                    t ? time_cold((enum impl)im, q, cold_count) : time_hot((enum impl)im, q);
            }
            ratio[t][r] = ns[CANOPY][t][r] / ns[PEER][t][r];
            ratio_over[t][r] = ns[CANOPY_OVER][t][r] / ns[PEER][t][r];
        }
    }
    for (int t = 0; t < 2; t++) {
        double rt = bench_median(ratio[t], rounds), rt_over = bench_median(ratio_over[t], rounds);

        for (int im = 0; im < impls; im++) {
            double med = bench_median(ns[im][t], rounds);

            printf("%-9s %-4s %8zu %-12s %12.1f %9.1f %7llu", layout_names[L->kind], temp_names[t],
                   L->n, impl_names[im], med, mean[im][t], (unsigned long long)most[im][t]);
            if (im == CANOPY || im == PEER || im == CANOPY_OVER)
                printf("  not first fit %.1f%%", 100 * over[im][t]);
            if (im == CANOPY)
                printf(", canopy / rbgap %.2f", rt);
            if (im == CANOPY_OVER)
                printf(", canopy-over / rbgap %.2f", rt_over);
            printf("\n");
            if (json) {
                fprintf(json,
                        "{\"bench\": \"vmm_find\", \"impl\": \"%s\", \"layout\": \"%s\", "
                        "\"query\": \"%s\", \"n\": %zu, \"ns_per_op\": %.2f, "
                        "\"nodes_visited\": %.2f, \"nodes_max\": %llu",
                        impl_names[im], layout_names[L->kind], temp_names[t], L->n, med,
                        mean[im][t], (unsigned long long)most[im][t]);
                if (im == CANOPY || im == PEER || im == CANOPY_OVER)
                    fprintf(json, ", \"not_first_fit\": %.4f", over[im][t]);
                if (im == CANOPY_OVER)
                    fprintf(json, ", \"ratio_to_rbgap\": %.4f", rt_over);
                fprintf(json, "}\n");
            }
        }
        if (json)
            fprintf(json,
                    "{\"bench\": \"vmm_find_vs_rbgap\", \"impl\": \"canopy\", \"layout\": \"%s\", "
                    "\"query\": \"%s\", \"n\": %zu, \"ratio\": %.4f}\n",
                    layout_names[L->kind], temp_names[t], L->n, rt);
        snprintf(name, sizeof(name), "vmm_find %s %s, n = %s: canopy / rbgap ns",
                 layout_names[L->kind], temp_names[t], n_label(L->n, label));
        bench_target(json, name, rt, BENCH_AT_MOST, 1.2, BENCH_RUNS_MEDIAN);
    }
    if (L->kind >= SHORT_4K) {
        /* Issue 18: an adversarial find reads at most 4 log2(n) nodes, hot or cold. */
        uint64_t align, size,
            worst = most[CANOPY][0] > most[CANOPY][1] ? most[CANOPY][0] : most[CANOPY][1];

        if (L->kind == SHORT_4K)
            align = PAGE;
        else
            misal_params(L->kind, &align, &size);
        snprintf(name, sizeof(name), "vmm_find %s, n = %s, at %llu %s: most nodes one find read",
                 layout_names[L->kind], n_label(L->n, label),
                 (unsigned long long)(align >= GIB   ? align / GIB
                                      : align >= MIB ? align / MIB
                                                     : align >> 10),
                 align >= GIB   ? "GiB"
                 : align >= MIB ? "MiB"
                                : "KiB");
        bench_target(json, name, (double)worst, BENCH_AT_MOST, 4.0 * (63 - __builtin_clzll(L->n)),
                     BENCH_RUNS_WORST);
    }
    fflush(stdout);
    return true;
}

/* ---- lookups ---- */

enum lookup_impl { L_CANOPY, L_PEER, L_GTREE, L_LIBAVL, LOOKUP_IMPLS };
static const char *const lookup_names[LOOKUP_IMPLS] = {"canopy", "rbgap", "gtree", "libavl"};

/* The start of the range the implementation's result holds (1 for none: never a start here). */
static uint64_t lookup_start(enum lookup_impl im, uint64_t a)
{
    struct range key = {a, a};
    const struct vmm_vma *v;
    const struct rbgap_node *p;
    const struct range *g;
    avl_node_t *l;

    switch (im) {
    case L_CANOPY:
        v = vmm_space_lookup(space, a);
        return v ? v->node.start : 1;
    case L_PEER:
        p = rbgap_lookup(peer, a);
        return p ? p->start : 1;
    case L_GTREE:
        g = g_tree_lookup(gtree, &key);
        return g ? g->start : 1;
    default:
        l = avl_search(ltree, &key);
        return l ? ((const struct range *)l->item)->start : 1;
    }
}

/*
 * The lookup loop for one implementation: each key is keys[k & mask] plus
 * d, and the tree is reached through its pointer plus d, where d is dep &
 * zero, zero is 0 but opaque to the compiler, and dep is the previous
 * result when chained and 0 when not. Chained, no part of a lookup can start
 * before the one before it has ended, not even a descent whose branches
 * are predicted: the latency a page fault sees, one fault after another.
 */
#define LOOKUP_PASS(type, tree, expr, chained)                                                     \
    for (size_t k = 0; k < ops; k++) {                                                             \
        uint64_t d = dep & zero, a = keys[k & mask] + d;                                           \
        type *t_ = (type *)((uintptr_t)(tree) + d);                                                \
        uint64_t res = (uint64_t)(uintptr_t)(expr);                                                \
        s += res;                                                                                  \
        if (chained)                                                                               \
            dep = res;                                                                             \
    }
/* The two loops apart, so that an independent lookup carries no dependence at all. */
#define LOOKUP_LOOP(type, tree, expr)                                                              \
    do {                                                                                           \
        if (chain) {                                                                               \
            LOOKUP_PASS(type, tree, expr, true)                                                    \
        } else {                                                                                   \
            LOOKUP_PASS(type, tree, expr, false)                                                   \
        }                                                                                          \
    } while (0)

static uint64_t run_lookups(enum lookup_impl im, const uint64_t *keys, size_t mask, size_t ops,
                            bool chain)
{
    uint64_t s = 0, dep = 0, zero = 0;
    struct range key;

    __asm__("" : "+r"(zero));
    switch (im) {
    case L_CANOPY:
        LOOKUP_LOOP(const struct vmm_space, space, vmm_space_lookup(t_, a));
        break;
    case L_PEER:
        LOOKUP_LOOP(const struct rbgap_tree, peer, rbgap_lookup(t_, a));
        break;
    case L_GTREE:
        LOOKUP_LOOP(GTree, gtree, (key = (struct range){a, a}, g_tree_lookup(t_, &key)));
        break;
    default:
        LOOKUP_LOOP(avl_tree_t, ltree, (key = (struct range){a, a}, avl_search(t_, &key)));
        break;
    }
    return s;
}

/* ns per lookup: hot cycles HOT keys for hot_slice_ns, cold makes one pass over count keys. */
static double time_lookups(enum lookup_impl im, const uint64_t *keys, size_t count, bool hot,
                           bool chain)
{
    double t0 = bench_now_ns(), elapsed;
    uint64_t ops = 0, chunk = 64;

    if (!hot) {
        sink += run_lookups(im, keys, count - 1, count, chain);
        return (bench_now_ns() - t0) / (double)count;
    }
    for (;;) {
        sink += run_lookups(im, keys, HOT - 1, chunk, chain);
        ops += chunk;
        elapsed = bench_now_ns() - t0;
        if (elapsed >= hot_slice_ns)
            break;
        if (elapsed < hot_slice_ns / 8)
            chunk *= 2;
    }
    return elapsed / (double)ops;
}

/* Lookups over the random layout's structures: keys in random VMAs, checked, then timed. */
static bool bench_lookups(const struct layout_data *L)
{
    static const char *const mode_names[2] = {"chain", "independent"};
    static const char *const temp_names[2] = {"hot", "cold"};
    static double ns[LOOKUP_IMPLS][2][2][MAX_ROUNDS];
    size_t count = cold_count; /* a power of two */
    uint64_t *keys = xmalloc(count * sizeof(*keys));
    size_t *from = xmalloc(count * sizeof(*from));

    for (size_t k = 0; k < count; k++) {
        const struct range *r = &L->r[rnd() % L->n];

        from[k] = (size_t)(r - L->r);
        keys[k] = r->start + rnd() % (r->last - r->start + 1);
    }
    for (int im = 0; im < LOOKUP_IMPLS; im++) {
        for (size_t k = 0; k < count; k++) {
            if (lookup_start((enum lookup_impl)im, keys[k]) != L->r[from[k]].start) {
                fprintf(stderr, "vmm_bench: %s lookup of %#llx missed its VMA (n %zu)\n",
                        lookup_names[im], (unsigned long long)keys[k], L->n);
                return false;
            }
        }
    }
    for (int r = 0; r < rounds; r++)
        for (int t = 0; t < 2; t++)
            for (int m = 0; m < 2; m++) {
                double t0 = bench_now_ns();

                /* As settle() does for the finds. */
                while (t && bench_now_ns() - t0 < settle_ns)
                    (void)time_lookups(L_PEER, keys, count, false, m == 0);
                for (int k = 0; k < LOOKUP_IMPLS; k++) {
                    int im = r % 2 ? LOOKUP_IMPLS - 1 - k : k;

                    ns[im][t][m][r] =
                        time_lookups((enum lookup_impl)im, keys, count, t == 0, m == 0);
                }
            }
    for (int t = 0; t < 2; t++)
        for (int m = 0; m < 2; m++)
            for (int im = 0; im < LOOKUP_IMPLS; im++) {
                double med = bench_median(ns[im][t][m], rounds);

                printf("lookup    %-4s %8zu %-12s %12.1f  (%s)\n", temp_names[t], L->n,
                       lookup_names[im], med, mode_names[m]);
                if (json)
                    fprintf(json,
                            "{\"bench\": \"vmm_lookup\", \"impl\": \"%s\", \"query\": \"%s\", "
                            "\"mode\": \"%s\", \"n\": %zu, \"ns_per_op\": %.2f}\n",
                            lookup_names[im], temp_names[t], mode_names[m], L->n, med);
            }
    free(keys);
    free(from);
    fflush(stdout);
    return true;
}

/* ---- the scaling pairs ---- */

static uint64_t seed_of(enum layout l, size_t n)
{
    return 0xbe9c0000ull + (uint64_t)l * 0x1000000 + n;
}

/*
 * ns per read of one VMA-sized object when each read's address comes from
 * the one before, over n objects from the VMAs' slab cache linked in a
 * random cycle: what a node read costs when the tree has n nodes and the
 * reads miss as a cold find's do. A find reads at least one node.
 */
static double node_read_ns(size_t n)
{
    void **obj = xmalloc(n * sizeof(*obj)), *p;
    size_t *order = random_order(n), steps = cold_count * 64;
    double t0;

    for (size_t i = 0; i < n; i++)
        obj[i] = bench_nodes_alloc(sizeof(struct vmm_vma));
    for (size_t i = 0; i < n; i++)
        *(void **)obj[order[i]] = obj[order[(i + 1) % n]];
    p = obj[order[0]];
    for (size_t i = 0; i < n; i++) /* one lap first: every page mapped */
        p = *(void **)p;
    t0 = bench_now_ns();
    for (size_t i = 0; i < steps; i++)
        p = *(void **)p;
    t0 = (bench_now_ns() - t0) / (double)steps;
    sink += (uintptr_t)p;
    for (size_t i = 0; i < n; i++)
        bench_nodes_free(sizeof(struct vmm_vma), obj[i]);
    free(order);
    free(obj);
    return t0;
}

/*
 * Canopy's cold finds in the random layout at n_base and n, in PAIRS pairs
 * of back-to-back rounds, each pair alternating which size goes first, so
 * that both see the same load from elsewhere; the peer's and the wide-node
 * yardstick's the same way. Reported: the medians of the pairs' ratios and
 * of each size's rounds.
 */
#define PAIRS 9
static bool scaling_pairs(size_t n_base, size_t n)
{
    static const enum impl timed[] = {CANOPY, PEER, WIDE};
    enum { TIMED = sizeof(timed) / sizeof(timed[0]) };
    struct layout_data L[2];
    struct query *q[2];
    struct built b[2];
    struct wide_node *wide[2], **wide_pool[2];
    size_t wide_count[2];
    double t[TIMED][2][PAIRS], ratio[TIMED][PAIRS], nodes[TIMED][2];
    int pairs = rounds > 1 ? PAIRS : 1;

    for (int k = 0; k < 2; k++) {
        double over;
        uint64_t most;

        rng_state = seed_of(RANDOM, k ? n : n_base);
        L[k] = make_layout(RANDOM, k ? n : n_base);
        q[k] = make_queries(&L[k], cold_count);
        build(&b[k], &L[k], false);
        wide[k] = wide_build(&L[k], &wide_pool[k], &wide_count[k]);
        use(&b[k]);
        wide_root = wide[k];
        for (int i = 0; i < TIMED; i++)
            if (!check_finds(timed[i], &L[k], q[k], cold_count, &nodes[i][k], &most, &over))
                return false;
    }
    for (int p = 0; p < pairs; p++) {
        for (int i = 0; i < TIMED; i++) {
            for (int j = 0; j < 2; j++) {
                int k = (p + j) % 2;

                use(&b[k]);
                wide_root = wide[k];
                settle(timed[i], q[k]); /* each pass follows another tree's */
                t[i][k][p] = time_cold(timed[i], q[k], cold_count);
            }
            ratio[i][p] = t[i][1][p] / t[i][0][p];
        }
    }
    for (int i = 0; i < TIMED; i++) {
        double r = bench_median(ratio[i], pairs), big = bench_median(t[i][1], pairs);
        double small = bench_median(t[i][0], pairs);

        printf("random    cold %8zu %-12s paired with n = %zu: %.1f and %.1f ns per find "
               "(%.1f and %.1f nodes), ratio %.2f\n",
               n, impl_names[timed[i]], n_base, big, small, nodes[i][1], nodes[i][0], r);
        if (json)
            fprintf(json,
                    "{\"bench\": \"vmm_find_scaling\", \"impl\": \"%s\", \"layout\": \"random\", "
                    "\"query\": \"cold\", \"n\": %zu, \"n_base\": %zu, \"ratio\": %.4f, "
                    "\"ns_per_op\": %.2f, \"ns_per_op_base\": %.2f, \"nodes\": %.2f, "
                    "\"nodes_base\": %.2f}\n",
                    impl_names[timed[i]], n, n_base, r, big, small, nodes[i][1], nodes[i][0]);
        if (timed[i] == CANOPY) {
            char name[128];

            snprintf(name, sizeof(name),
                     "vmm_find random cold: canopy n = %zu over n = %zu, paired rounds", n, n_base);
            bench_target(json, name, r, BENCH_AT_MOST, 3, BENCH_RUNS_MEDIAN);
        }
    }
    /* What one node read costs at each size: the floor under a cold find there. */
    for (int k = 0; k < 2; k++) {
        size_t nk = k ? n : n_base;
        double ns = node_read_ns(nk);

        printf("node read chain %8zu: %.1f ns per dependent read\n", nk, ns);
        if (json)
            fprintf(json,
                    "{\"bench\": \"vmm_node_read\", \"impl\": \"slab\", \"n\": %zu, "
                    "\"ns_per_op\": %.2f}\n",
                    nk, ns);
    }
    for (int k = 0; k < 2; k++) {
        unbuild(&b[k], L[k].n);
        wide_free(wide_pool[k], wide_count[k]);
        free(q[k]);
        free_layout(&L[k]);
    }
    return true;
}

/* ---- main ---- */

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--quick] [--max-n N] [--rounds R] [--layout NAME] "
            "[--parts find,lookup,scaling] [--no-walks] [--json FILE]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    size_t general[] = {1000, 10000, 100000, 1000000}, adversarial[] = {1u << 10, 1u << 20};
    size_t max_n = SIZE_MAX, general_count = 4, adversarial_count = 2;
    const char *parts = "find,lookup,scaling";
    int only = -1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            general_count = 2;
            adversarial[1] = 1u << 13;
            cold_count = 4096;
            hot_slice_ns = 1e6;
            cold_cap_ns = 5e6;
            settle_ns = 2.5e5;
            rounds = 1;
        } else if (strcmp(argv[i], "--max-n") == 0 && i + 1 < argc) {
            max_n = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
            if (rounds < 1 || rounds > MAX_ROUNDS)
                usage(argv[0]);
        } else if (strcmp(argv[i], "--layout") == 0 && i + 1 < argc) {
            i++;
            for (int l = 0; l < LAYOUTS; l++)
                if (strcmp(argv[i], layout_names[l]) == 0)
                    only = l;
            if (only < 0)
                usage(argv[0]);
        } else if (strcmp(argv[i], "--parts") == 0 && i + 1 < argc) {
            parts = argv[++i];
        } else if (strcmp(argv[i], "--no-walks") == 0) {
            with_walks = false;
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json = fopen(argv[++i], "w");
            if (!json) {
                perror(argv[i]);
                return 1;
            }
        } else {
            usage(argv[0]);
        }
    }

    printf("%-9s %-4s %8s %-12s %12s %9s %7s\n", "layout", "temp", "n", "impl", "ns/op", "nodes",
           "most");
    for (int l = 0; l < LAYOUTS; l++) {
        bool adv = l >= SHORT_4K;
        const size_t *sizes = adv ? adversarial : general;
        size_t count = adv ? adversarial_count : general_count;

        if (only >= 0 && l != only)
            continue;
        for (size_t si = 0; si < count && sizes[si] <= max_n; si++) {
            bool finds_wanted = strstr(parts, "find") != NULL;
            bool lookups_wanted = l == RANDOM && strstr(parts, "lookup") != NULL;
            struct layout_data L;
            struct query *q;
            struct built b;

            if (!finds_wanted && !lookups_wanted)
                continue;
            rng_state = seed_of((enum layout)l, sizes[si]);
            L = make_layout((enum layout)l, sizes[si]);
            q = make_queries(&L, cold_count);
            build(&b, &L, with_walks || lookups_wanted);
            use(&b);
            if (finds_wanted && !bench_finds(&L, q))
                return 1;
            if (lookups_wanted && !bench_lookups(&L))
                return 1;
            unbuild(&b, L.n);
            free(q);
            free_layout(&L);
        }
    }
    if (strstr(parts, "scaling") && (only < 0 || only == RANDOM)) {
        size_t largest = general[0];

        for (size_t si = 0; si < general_count && general[si] <= max_n; si++)
            largest = general[si];
        if (largest > general[0] && !scaling_pairs(general[0], largest))
            return 1;
    }
    if (json)
        fclose(json);
    return 0;
}
