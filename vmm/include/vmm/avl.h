/*
 * avl: an intrusive AVL tree of disjoint byte ranges, augmented for gap search.
 *
 * The node is embedded in the caller's structure (a VMA); the tree never
 * allocates. Each node carries its range [start, last] (inclusive last byte,
 * so a range may end at 2^64 - 1 without overflow), and ranges are ordered by
 * start. avl_insert_range() finds a node's place itself; a caller that
 * already knows it (as with Linux's rbtree, from its own descent, or next to
 * a neighbour) hands avl_insert_at() the parent and the child link instead.
 *
 * Invariants (avl_check() verifies all of them):
 *   - in-order, ranges are disjoint and increasing: prev->last < next->start;
 *   - |height(left) - height(right)| <= 1, and each node's stored balance
 *     factor is that difference (heights are not stored);
 *   - parent links match child links; the tree's first and last point at the
 *     lowest and highest range, and count is the number of nodes;
 *   - augmentation:
 *       gap       = the free bytes between the previous range and this one,
 *                   start - prev->last - 1 (0 for the first range: the hole
 *                   below it, like the one above the last, is the tree's);
 *       left_max  = the largest gap in the left subtree (0 if it is empty),
 *       right_max = the same for the right subtree.
 *     A parent's slot depends on its child alone, avl_max_gap(child), so
 *     keeping it up to date never reads a sibling.
 *
 * avl_gap_lowest()/avl_gap_highest() use the augmentation to find the lowest
 * or highest aligned hole in a window without walking the ranges in order.
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
    struct avl_node *left, *right;
    /*
     * The parent's address with the balance factor, height(right) -
     * height(left) plus one (0, 1 or 2), in the two low bits: nodes are at
     * least 8-byte aligned. Read it with avl_parent() and avl_balance(). The
     * node is 64 bytes, one cache line when the caller aligns it so.
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

/*
 * Finds the lowest address satisfying q; false if none exists. *visits (if
 * not NULL) is increased by the number of nodes read: 1 when no hole in the
 * tree is big enough, O(log n + k) in general (see avl.c); a subtree ruled
 * out from its parent's slot is not read.
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

/* The struct that embeds a node, like Linux's container_of. */
#define avl_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
