/*
 * avl: an intrusive AVL tree of disjoint byte ranges, augmented for gap search.
 *
 * The node is embedded in the caller's structure (a VMA); the tree never
 * allocates. Each node carries its range [start, last] (inclusive last byte,
 * so a range may end at 2^64 - 1 without overflow), and ranges are ordered by
 * start. avl_insert_range() finds a node's place itself; a caller that
 * already knows it (as with Linux's rbtree, from its own descent, or next to
 * a neighbour) hands avl_insert_at() the parent and the child link instead,
 * and one that searched for a hole links the node at the hole the search
 * found with avl_insert_prev().
 *
 * Invariants (avl_check() verifies all of them):
 *   - in-order, ranges are disjoint and increasing: prev->last < next->start;
 *   - |height(left) - height(right)| <= 1, and each node's stored balance
 *     factor is that difference (heights are not stored);
 *   - parent links match child links; the tree's first and last point at the
 *     lowest and highest range, and count is the number of nodes;
 *   - augmentation:
 *       gap        = the free bytes between the previous range and this one,
 *                    start - prev->last - 1 (0 for the first range: the hole
 *                    below it, like the one above the last, is the tree's);
 *       left_max   = the largest gap in the left subtree (0 if it is empty),
 *       right_max  = the same for the right subtree;
 *       fit_2m[s]  = the largest size that fits from a 2 MiB-aligned
 *                    address in one hole of that subtree, in 4 KiB pages,
 *                    rounded up, and UINT32_MAX for 2^32 - 1 pages (16 TiB)
 *                    or more,
 *       fit_1g[s]  = the same at 1 GiB alignment.
 *     A parent's slot depends on its child alone, so keeping it up to date
 *     never reads a sibling. Where ranges start and end on pages, the fit
 *     fields are exact.
 *
 * avl_gap_find() uses the augmentation to find the lowest or highest aligned
 * hole in a window without walking the ranges in order. It bounds each
 * subtree by the largest gap, or at align 2 MiB and up by the largest fit at
 * 2 MiB, or at 1 GiB and up at 1 GiB, and reads a child only when its slot
 * in the parent passes. What it costs, in nodes read, for a tree of n
 * ranges and height h (h < 1.44 log2(n + 2)), and what it returns:
 *   - align 1, or ranges that start and end on pages, a size below 16 TiB
 *     and an align of at most 4 KiB, or 2 MiB, or 1 GiB: the bound is
 *     exact; at most 3h - 2 reads (the paths to the window's two edges and
 *     the one to the answer), and the answer is the first fit;
 *   - any other align A: the search asks for size + A - b bytes from a
 *     multiple of b instead (b = 1 GiB, 2 MiB or 4 KiB, the largest below
 *     A): that much room holds an A-aligned fit, and the slots bound it
 *     exactly in a page-grained tree: at most 3h - 2 reads, and the answer
 *     is the lowest (highest) A-aligned fit in the lowest (highest) hole
 *     with that much room. Linux's VMA tree asked for size + A - 4 KiB.
 *     The holes below the first range and above the last are tried exactly;
 *   - off the page grain, or past 16 TiB, those bounds are upper bounds
 *     only: once a search has read more than avl_gap_budget(n) nodes (it
 *     checks as it climbs, so at most h - 1 more), it asks for size +
 *     align - 1 bytes at any address instead, which the largest gap bounds
 *     exactly: at most avl_gap_budget(n) + 4h - 2 reads in all.
 *
 * No name here collides with libavl's (avl_insert, avl_insert_after, ...), so
 * the benchmarks can link both.
 */
#ifndef VMM_AVL_H
#define VMM_AVL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct avl_node {
    /*
     * What a lookup, a search at 4 KiB alignment and the walk after an
     * insert or erase read comes first, 64 bytes: one cache line when the
     * caller aligns the node so.
     */
    struct avl_node *left, *right;
    /*
     * The parent's address with the balance factor, height(right) -
     * height(left) plus one (0, 1 or 2), in the two low bits: nodes are at
     * least 8-byte aligned. Read it with avl_parent() and avl_balance().
     */
    uintptr_t parent_balance;
    uint64_t start, last; /* this node's range, set by the caller before insertion */
    uint64_t gap;         /* augmentation: see the invariants above */
    union {
        struct {
            uint64_t left_max;
            uint64_t right_max;
        };
        /*
         * The same two slots indexed by side, child_max[right]: the walks up
         * pick a slot by the side they came from with an index, not a
         * branch or a select between two addresses.
         */
        uint64_t child_max[2];
    };
    uint32_t fit_2m[2], fit_1g[2]; /* by side, as child_max */
};

/* The bits of avl_node.parent_balance that hold the balance factor. */
#define AVL_BALANCE_MASK ((uintptr_t)3)

/* n's parent, NULL at the root. */
static inline struct avl_node *avl_parent(const struct avl_node *n)
{
    return (struct avl_node *)(n->parent_balance & ~AVL_BALANCE_MASK);
}

/* n's balance factor, height(right) - height(left): -1, 0 or 1 in a valid tree. */
static inline int avl_balance(const struct avl_node *n)
{
    return (int)(n->parent_balance & AVL_BALANCE_MASK) - 1;
}

/*
 * n's right child if `right`, else its left, chosen without a branch: both
 * links are in the node's cache line, and a descent that selects instead of
 * branching has no misprediction per level, so the processor can go on to
 * the next lookup while this one waits for memory. For callers' descents
 * (vmm/src/space.c's lookup, the benchmark's).
 *
 * The empty asm makes both links values before the choice. Without it Clang
 * selects between the two addresses and loads once, after the comparison,
 * which puts a second load on each level's critical path: over a cached
 * path (10^5 sequential lookups) that was 71 cycles per lookup against 58
 * with this form. Where the descent misses the cache on most levels (random
 * keys at 10^6) the single load is cheaper, 772 cycles against 1097, but
 * there the lookups keep a wide lead over the peers (docs/performance.md).
 */
static inline struct avl_node *avl_child(const struct avl_node *n, bool right)
{
    struct avl_node *l = n->left, *r = n->right;

    __asm__("" : "+r"(l), "+r"(r));
    return right ? r : l;
}

/* The largest gap in n's subtree, n's own included. */
static inline uint64_t avl_max_gap(const struct avl_node *n)
{
    uint64_t m = n->left_max > n->right_max ? n->left_max : n->right_max;

    return n->gap > m ? n->gap : m;
}

struct avl_tree {
    struct avl_node *root;
    struct avl_node *first, *last; /* the lowest and highest range, for the edge holes */
    size_t count;
};

/* Makes an empty tree. */
void avl_init(struct avl_tree *t);

/*
 * Links node as the child *link of parent (parent NULL and link = &t->root
 * for an empty tree), then rebalances and updates the augmentation to the root.
 * => node->start <= node->last are set; *link is NULL; the position keeps the
 *    in-order ranges disjoint and increasing.
 */
void avl_insert_at(struct avl_tree *t, struct avl_node *node, struct avl_node *parent,
                   struct avl_node **link);

/*
 * Descends by node->start and links node where it belongs: the usual insert,
 * for callers with no position in hand. => node->start <= node->last are
 * set; the range overlaps none in t.
 */
void avl_insert_range(struct avl_tree *t, struct avl_node *node);

/* Links node directly after pos in order (no comparisons needed). => as avl_insert_at. */
void avl_insert_next(struct avl_tree *t, struct avl_node *pos, struct avl_node *node);

/*
 * Links node directly before pos in order, or after the last range when pos
 * is NULL (no comparisons needed). With pos = r->next of an avl_gap_find()
 * that found r->addr, this links a range at the place the search found, with
 * no second descent by address: the slot is pos's left link or the end of
 * the right spine below it, and pos is the new node's successor. => as
 * avl_insert_at; for a search's result, t unchanged since the search and
 * node's range inside the hole below r->next.
 */
void avl_insert_prev(struct avl_tree *t, struct avl_node *pos, struct avl_node *node);

/* Unlinks node and rebalances. => node is in t. The node's memory is the caller's again. */
void avl_erase(struct avl_tree *t, struct avl_node *node);

/*
 * Changes node's range in place and updates the augmentation up to the root.
 * => start <= last, and the new range still lies strictly between the
 *    node's in-order neighbours (its position does not change).
 */
void avl_adjust(struct avl_tree *t, struct avl_node *node, uint64_t start, uint64_t last);

/* In-order navigation; NULL past either end. avl_first and avl_last are O(1). */
struct avl_node *avl_first(const struct avl_tree *t);
struct avl_node *avl_last(const struct avl_tree *t);
struct avl_node *avl_next(const struct avl_node *n);
struct avl_node *avl_prev(const struct avl_node *n);

/*
 * A request for a hole: size bytes at an address that is a multiple of align,
 * lying wholly inside the window [lo, hi] (hi inclusive) and touching no range.
 * => size > 0, align a power of two, lo <= hi.
 */
struct avl_gap_query {
    uint64_t size;
    uint64_t align;
    uint64_t lo, hi;
};

/* The alignments beside 1 whose usable sizes the augmentation keeps. */
#define AVL_ALIGN_2M ((uint64_t)1 << 21)
#define AVL_ALIGN_1G ((uint64_t)1 << 30)

/* avl_gap_find() flags. */
#define AVL_GAP_HIGHEST 0x1u /* the highest fitting address instead of the lowest */

/* What avl_gap_find() found. */
struct avl_gap_result {
    uint64_t addr;         /* the address, when found */
    struct avl_node *next; /* the range just above addr (NULL: above the last range);
                              avl_insert_prev(t, next, ...) links a range there */
    uint64_t visits;       /* nodes read */
    uint64_t over_align;   /* 0, or the b of the over-asked search that answered */
};

/*
 * The reads after which a search whose bound is not exact (above) asks for
 * size + align - 1 bytes at any address instead: 3 ceil(1.5 ceil(log2(count
 * + 2))), above the 3h - 2 an exact search can need; 96 at 2^20.
 */
uint64_t avl_gap_budget(size_t count);

/*
 * Finds the lowest (with AVL_GAP_HIGHEST the highest) address satisfying q
 * and fills *r; false if there is none, or none that an over-asked search
 * sees. Where the bound is exact for q (above), the answer is the first fit
 * (the last, for AVL_GAP_HIGHEST). At an align the slots do not know, the
 * tree's holes are searched for size + align - b bytes from a multiple of b
 * (b = 1 GiB, 2 MiB or 4 KiB, the largest below align; from a multiple of b,
 * align - b more bytes reach a multiple of align): r->addr is then the
 * lowest (highest) align-aligned fit, clipped to the window, in the lowest
 * (highest) hole with that much room, and a fit in a lower (higher) hole
 * with less room is not seen. Where even that bound is not exact (ranges off
 * the page grain, sizes past 16 TiB) and the search has read more than
 * avl_gap_budget(t->count) nodes, b = 1 instead, from the root again, which
 * the largest gap bounds exactly. r->over_align is that b (0: not
 * over-asked). The holes below the first range and above the last are
 * always tried exactly, before and after the tree.
 */
bool avl_gap_find(const struct avl_tree *t, const struct avl_gap_query *q, unsigned flags,
                  struct avl_gap_result *r);

/*
 * avl_gap_find() for the lowest address, its result in *addr; *visits (if
 * not NULL) is increased by the nodes read (none when the window cannot
 * hold the request or the hole below the first range answers, 1 when the
 * root shows no gap big enough).
 */
bool avl_gap_lowest(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *addr,
                    uint64_t *visits);

/* As avl_gap_lowest, for the highest address satisfying q. */
bool avl_gap_highest(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *addr,
                     uint64_t *visits);

/*
 * Verifies every invariant listed at the top of this file in O(n).
 * => returns false and points *why (if not NULL) at a short reason on the first violation.
 */
bool avl_check(const struct avl_tree *t, const char **why);

/*
 * avl_check's rules around one node, in O(height): n's range against its
 * in-order neighbours (order, gap, the tree's first and last), and for n and
 * each ancestor the parent and child links and both slots against the
 * children's own fields. Not checked: balance (heights are not stored) and
 * the count. For a check after each of many small changes (the fuzzer).
 */
bool avl_check_path(const struct avl_tree *t, const struct avl_node *n, const char **why);

/* The struct that embeds a node, like Linux's container_of. */
#define avl_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
