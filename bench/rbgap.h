/*
 * rbgap: the benchmarks' peer for Canopy's range search, a red-black tree of
 * disjoint ranges augmented the way Linux kept its VMAs from v3.8 until the
 * maple tree replaced the rbtree in v6.1 (rb_subtree_gap, unmapped_area()).
 *
 * Each node keeps the free bytes just below its range (gap; for the lowest
 * range, all the bytes below it, from address 0) and the largest gap in its
 * subtree, itself included (subtree_gap). A request for size bytes at align
 * asks for a hole of size + align - 4 KiB bytes, which from any page-aligned
 * start holds an aligned fit, and aligns inside the lowest such hole: it
 * over-asks, and passes over a hole that has an aligned fit but less room.
 * Deciding whether to enter a child reads the child's own subtree_gap.
 *
 * Written for the benchmarks from the published description of that
 * design; the tree has what they time and check (insert, lookup, the
 * search, a checker) and nothing else. Ranges are [start, last], last
 * inclusive, page-grained.
 */
#ifndef BENCH_RBGAP_H
#define BENCH_RBGAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rbgap_node {
    struct rbgap_node *left, *right;
    uintptr_t parent_color; /* the parent's address; bit 0 set for a black node */
    uint64_t start, last;   /* set by the caller before rbgap_insert() */
    uint64_t gap;           /* the hole just below the range */
    uint64_t subtree_gap;   /* the largest gap in the subtree */
};

struct rbgap_tree {
    struct rbgap_node *root;
    uint64_t highest_last; /* the last byte of the highest range (meaningless when empty) */
    size_t count;
};

/* Makes an empty tree. */
void rbgap_init(struct rbgap_tree *t);

/*
 * Links node by its start, sets the gaps that change (its own and its
 * successor's), brings subtree_gap up to date and rebalances.
 * => node->start <= node->last; the range overlaps none in t.
 */
void rbgap_insert(struct rbgap_tree *t, struct rbgap_node *node);

/*
 * The range holding addr, or NULL: the lowest range ending at or above
 * addr, if it starts at or below it (a descent that branches on each
 * comparison, as the search for a faulting address did).
 */
struct rbgap_node *rbgap_lookup(const struct rbgap_tree *t, uint64_t addr);

/*
 * The lowest address from a multiple of align such that size bytes lie in
 * [lo, hi] (hi inclusive), in the lowest hole whose part inside the window
 * holds size + align - 4 KiB bytes; false if there is none. *visits grows
 * by the nodes read (each read node once, a child read only to be turned
 * down included). => size > 0 and page-grained, align a power of two
 * >= 4 KiB, lo page aligned, lo <= hi.
 */
bool rbgap_find_lowest(const struct rbgap_tree *t, uint64_t size, uint64_t align, uint64_t lo,
                       uint64_t hi, uint64_t *addr, uint64_t *visits);

/*
 * Verifies the order, the links, the red-black rules, every gap and
 * subtree_gap, count and highest_last. => false and *why on the first
 * violation.
 */
bool rbgap_check(const struct rbgap_tree *t, const char **why);

#endif
