/*
 * avl_bench: raw tree operations, Canopy's intrusive AVL tree against GLib's
 * GTree and libavl.
 *
 * Implementations, each with its own array of n items (like with like: the
 * key is a uint64_t everywhere, and no item carries another tree's node):
 *   canopy            vmm/avl.h: the node is the item (its key is the range
 *                     [16 key, 16 key + 7], so the gap augmentation the VMM
 *                     needs is live and its upkeep is included);
 *                     avl_insert_range / avl_erase, and the caller's own
 *                     descent for lookups, as space.c's
 *   libavl-intrusive  libavl with the node in the item ({key, avl_node_t}):
 *                     avl_insert_node / avl_unlink_node / avl_search; libavl
 *                     keeps a depth and a subtree count (its own augmentation)
 *   gtree             GTree keyed by the item ({key}); every insert allocates a
 *                     GTreeNode (40 bytes, g_slice) and every removal frees it
 *   libavl            libavl by key: avl_insert/avl_delete allocate and free
 *                     an avl_node_t (56 bytes, malloc)
 * The intrusive items of both intrusive trees come from bench_nodes_alloc()
 * (nodes.h), the kernel's allocator for tree nodes, one per key in the
 * order the keys are first inserted (so with random keys memory order is
 * not key order), before anything is timed; the allocating trees pay their
 * allocator on every insert and erase, which is what using them costs.
 * node_alloc measures that part alone: n allocations of the node's size,
 * then n frees, per node. The timed loops reach an intrusive item by its
 * place in the insertion order, an array read in the order of the loop, as
 * the other trees' keys are.
 *
 * Operations, with sequential or random (shuffled) keys:
 *   avl_insert  insert n items into an empty tree (ns per insert)
 *   avl_lookup  find each of the n items by key, in the key order
 *   avl_pair    on the full tree: remove an item and insert it again
 *   avl_erase   remove all n items (the intrusive trees unlink the item's
 *               node, the others remove by key)
 *
 * Before timing and after each phase, each tree is checked: every key maps
 * to its own item, a missing key is absent, the count is n (and for Canopy
 * avl_check). A failure ends the program with status 1.
 *
 * Usage: avl_bench [--quick] [--n N] [--impl NAME] [--rounds R] [--json FILE]
 *   --quick  n = 10^3 and 10^4, one round (the test suite's smoke run)
 *   --json   also write one JSON object per line per measurement
 */
#define _POSIX_C_SOURCE 200809L
#include <avl.h> /* libavl */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/rng.h>
#include <vmm/avl.h>

#include "nodes.h"
#include "support.h"

/* The four item types. */
struct canopy_item {
    struct avl_node node;
};
struct libavl_item {
    uint64_t key;
    avl_node_t node;
};
struct key_item {
    uint64_t key;
};

#define CANOPY_START(key) ((key)*16)

static uint64_t rng_state = 0xa71b;
static uint64_t rnd(void)
{
    return splitmix64_next(&rng_state);
}

static void *alloc_or_die(size_t bytes)
{
    void *p = malloc(bytes);

    if (!p) {
        fprintf(stderr, "avl_bench: out of memory\n");
        exit(1);
    }
    memset(p, 0, bytes);
    return p;
}

/* ---- the state of one run ---- */

enum impl { CANOPY, LIBAVL_INTRUSIVE, GTREE, LIBAVL, IMPLS };
static const char *const impl_names[IMPLS] = {"canopy", "libavl-intrusive", "gtree", "libavl"};

static size_t n;
static size_t *order; /* the order keys are used in: a permutation of 0..n-1 */

/* The intrusive items by place in the insertion order (the timed loops) and by key (the checks). */
static struct canopy_item **citem_at, **citem_of;
static struct libavl_item **litem_at, **litem_of;
static struct key_item *kitems;

static struct avl_tree ctree;
static avl_tree_t ltree;
static GTree *gtree;

/* The intrusive items of one key order, from the node allocator in that order. */
static void items_alloc(void)
{
    for (size_t i = 0; i < n; i++) {
        citem_at[i] = citem_of[order[i]] = bench_nodes_alloc(sizeof(struct canopy_item));
        litem_at[i] = litem_of[order[i]] = bench_nodes_alloc(sizeof(struct libavl_item));
        litem_at[i]->key = order[i];
    }
}

static void items_free(void)
{
    for (size_t i = 0; i < n; i++) {
        bench_nodes_free(sizeof(struct canopy_item), citem_at[i]);
        bench_nodes_free(sizeof(struct libavl_item), litem_at[i]);
    }
}

/* ---- Canopy: the caller's descent ---- */

static void canopy_insert(size_t i)
{
    struct avl_node *node = &citem_at[i]->node;
    uint64_t key = order[i];

    node->start = CANOPY_START(key);
    node->last = node->start + 7;
    avl_insert_range(&ctree, node);
}

static void *canopy_lookup(uint64_t key)
{
    const struct avl_node *node = ctree.root, *best = NULL;
    uint64_t start = CANOPY_START(key);

    /* As space.c's lookup: the last node starting at or below the key, found without branches. */
    while (node) {
        bool right = node->start <= start;

        best = right ? node : best;
        node = avl_child(node, right);
    }
    return best && best->start == start ? (void *)best : NULL;
}

/* ---- the peers' comparison ---- */

/* Both peers compare items through a callback; the key is each item's first field. */
static int key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

static gint gtree_cmp(gconstpointer a, gconstpointer b)
{
    return key_cmp(a, b);
}

/* ---- the operations ---- */

static void tree_init(enum impl im)
{
    switch (im) {
    case CANOPY:
        avl_init(&ctree);
        break;
    case GTREE:
        gtree = g_tree_new(gtree_cmp);
        break;
    default:
        avl_init_tree(&ltree, key_cmp, NULL);
        break;
    }
}

static void tree_fini(enum impl im)
{
    switch (im) {
    case GTREE:
        g_tree_destroy(gtree);
        break;
    case LIBAVL:
        avl_free_nodes(&ltree); /* avl_insert malloc()ed the nodes */
        break;
    default:
        break; /* intrusive: the nodes are the items */
    }
}

/* Inserts the key at place i of the insertion order. */
static inline void op_insert(enum impl im, size_t i)
{
    uint64_t key = order[i];

    switch (im) {
    case CANOPY:
        canopy_insert(i);
        break;
    case LIBAVL_INTRUSIVE:
        avl_init_node(&litem_at[i]->node, litem_at[i]);
        avl_insert_node(&ltree, &litem_at[i]->node);
        break;
    case GTREE:
        g_tree_insert(gtree, &kitems[key], &kitems[key]);
        break;
    default:
        avl_insert(&ltree, &kitems[key]);
        break;
    }
}

/* The item holding key, or NULL. */
static inline void *op_lookup(enum impl im, uint64_t key)
{
    avl_node_t *ln;

    switch (im) {
    case CANOPY:
        return canopy_lookup(key);
    case LIBAVL_INTRUSIVE:
        ln = avl_search(&ltree, &key);
        return ln ? ln->item : NULL;
    case GTREE:
        return g_tree_lookup(gtree, &key);
    default:
        ln = avl_search(&ltree, &key);
        return ln ? ln->item : NULL;
    }
}

/* Erases the key at place i of the insertion order (the intrusive trees unlink its item). */
static inline void op_erase(enum impl im, size_t i)
{
    uint64_t key = order[i];

    switch (im) {
    case CANOPY:
        avl_erase(&ctree, &citem_at[i]->node);
        break;
    case LIBAVL_INTRUSIVE:
        avl_unlink_node(&ltree, &litem_at[i]->node);
        break;
    case GTREE:
        g_tree_remove(gtree, &key);
        break;
    default:
        avl_delete(&ltree, &key);
        break;
    }
}

static size_t tree_count(enum impl im)
{
    switch (im) {
    case CANOPY:
        return ctree.count;
    case GTREE:
        return (size_t)g_tree_nnodes(gtree);
    default:
        return avl_count(&ltree);
    }
}

static void *item_of(enum impl im, uint64_t key)
{
    switch (im) {
    case CANOPY:
        return citem_of[key];
    case LIBAVL_INTRUSIVE:
        return litem_of[key];
    default:
        return &kitems[key];
    }
}

/* Every key maps to its own item, the key past the end is absent, the count is n. */
static bool verify(enum impl im, const char *after)
{
    const char *why = "a key maps to the wrong item";
    bool ok = tree_count(im) == n;

    if (!ok)
        why = "the count is wrong";
    for (size_t k = 0; ok && k < n; k++)
        ok = op_lookup(im, k) == item_of(im, k);
    if (ok && op_lookup(im, n) != NULL) {
        ok = false;
        why = "a missing key was found";
    }
    if (ok && im == CANOPY)
        ok = avl_check(&ctree, &why);
    if (!ok)
        fprintf(stderr, "avl_bench: %s, n %zu, after %s: %s\n", impl_names[im], n, after, why);
    return ok;
}

/* ---- measurement ---- */

static FILE *json;
static int rounds = 5;

static void report(const char *bench, const char *impl, const char *keys, double ns)
{
    printf("%-11s %-17s %-10s %8zu %10.1f\n", bench, impl, keys, n, ns);
    if (json)
        fprintf(json,
                "{\"bench\": \"%s\", \"impl\": \"%s\", \"keys\": \"%s\", \"n\": %zu, "
                "\"ns_per_op\": %.2f}\n",
                bench, impl, keys, n, ns);
}

#define MAX_ROUNDS 32

enum phase { INSERT, LOOKUP, PAIR, ERASE, PHASES };
static const char *const phase_names[PHASES] = {"avl_insert", "avl_lookup", "avl_pair",
                                                "avl_erase"};

/* One round of one implementation: each phase's ns per operation into ns[]. */
static bool bench_round(enum impl im, double ns[PHASES])
{
    double t0;
    size_t found = 0;

    tree_init(im);
    t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        op_insert(im, i);
    ns[INSERT] = (bench_now_ns() - t0) / n;
    if (!verify(im, "inserting"))
        return false;

    t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        found += op_lookup(im, order[i]) != NULL;
    ns[LOOKUP] = (bench_now_ns() - t0) / n;
    if (found != n)
        return false;

    /* Steady state: remove one item and put it back, striding through the key order. */
    t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        size_t at = (i * 7) % n;

        op_erase(im, at);
        op_insert(im, at);
    }
    ns[PAIR] = (bench_now_ns() - t0) / n;
    if (!verify(im, "erase+insert pairs"))
        return false;

    t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        op_erase(im, i);
    ns[ERASE] = (bench_now_ns() - t0) / n;
    if (tree_count(im) != 0) {
        fprintf(stderr, "avl_bench: %s: not empty after erasing every key\n", impl_names[im]);
        return false;
    }
    tree_fini(im);
    return true;
}

/*
 * Every implementation, one key order: a warm-up round (unless quick), then
 * the median over the rounds of each phase's ns per operation. The rounds
 * are interleaved: round r runs each implementation once, starting with a
 * different one each time. Other guests load this machine's shared caches
 * in phases of seconds (docs/performance.md); run one implementation's
 * rounds after another's and a phase can land on one of them alone.
 */
static bool bench_keys(int only, const char *keys, bool warm_up)
{
    static double ns[IMPLS][PHASES][MAX_ROUNDS];
    int total = rounds + (warm_up ? 1 : 0);

    for (int r = 0; r < total; r++) {
        int slot = warm_up ? r - 1 : r;

        for (int k = 0; k < IMPLS; k++) {
            enum impl im = (enum impl)((r + k) % IMPLS);
            double one[PHASES];

            if (only >= 0 && only != (int)im)
                continue;
            if (!bench_round(im, one))
                return false;
            for (int ph = 0; slot >= 0 && ph < PHASES; ph++)
                ns[im][ph][slot] = one[ph];
        }
    }
    for (int im = 0; im < IMPLS; im++)
        for (int ph = 0; ph < PHASES && (only < 0 || only == im); ph++)
            report(phase_names[ph], impl_names[im], keys, bench_median(ns[im][ph], rounds));
    return true;
}

/*
 * What the allocating trees pay their allocator per node: n allocations of
 * the node's size, then n frees (in allocation order), per node.
 */
static void measure_node_alloc(bool warm_up)
{
    static const struct {
        const char *impl;
        size_t size;
        bool slice;
    } kinds[] = {
        {"gtree", 40, true},                  /* sizeof(GTreeNode) in GLib 2.74, from g_slice */
        {"libavl", sizeof(avl_node_t), false} /* from malloc */
    };
    void **p = alloc_or_die(n * sizeof(*p));

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        double per[MAX_ROUNDS];
        int total = rounds + (warm_up ? 1 : 0);

        for (int r = 0; r < total; r++) {
            double t0 = bench_now_ns();

            for (size_t i = 0; i < n; i++)
                p[i] = kinds[k].slice ? g_slice_alloc(kinds[k].size) : malloc(kinds[k].size);
            for (size_t i = 0; i < n; i++) {
                if (kinds[k].slice)
                    g_slice_free1(kinds[k].size, p[i]);
                else
                    free(p[i]);
            }
            if (!warm_up || r > 0)
                per[warm_up ? r - 1 : r] = (bench_now_ns() - t0) / n;
        }
        report("node_alloc", kinds[k].impl, "-", bench_median(per, rounds));
    }
    free(p);
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--quick] [--n N] [--impl NAME] [--rounds R] [--json FILE]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    size_t sizes[2] = {100000, 1000000};
    int size_count = 2, only = -1;
    bool quick = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
            sizes[0] = 1000;
            sizes[1] = 10000;
            rounds = 1;
        } else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
            sizes[0] = strtoull(argv[++i], NULL, 0);
            size_count = 1;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
            if (rounds < 1 || rounds > MAX_ROUNDS)
                usage(argv[0]);
        } else if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc) {
            for (int im = 0; im < IMPLS; im++)
                if (strcmp(argv[i + 1], impl_names[im]) == 0)
                    only = im;
            if (only < 0)
                usage(argv[0]);
            i++;
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

    printf("%-11s %-17s %-10s %8s %10s\n", "bench", "impl", "keys", "n", "ns/op");
    for (int si = 0; si < size_count; si++) {
        n = sizes[si];
        if (n < 2)
            usage(argv[0]);
        citem_at = alloc_or_die(n * sizeof(*citem_at));
        citem_of = alloc_or_die(n * sizeof(*citem_of));
        litem_at = alloc_or_die(n * sizeof(*litem_at));
        litem_of = alloc_or_die(n * sizeof(*litem_of));
        kitems = alloc_or_die(n * sizeof(*kitems));
        order = alloc_or_die(n * sizeof(*order));
        for (size_t k = 0; k < n; k++)
            kitems[k].key = k;
        for (int random_keys = 0; random_keys < 2; random_keys++) {
            for (size_t i = 0; i < n; i++)
                order[i] = i;
            if (random_keys) {
                for (size_t i = n - 1; i > 0; i--) {
                    size_t j = (size_t)(rnd() % (i + 1)), t = order[i];

                    order[i] = order[j];
                    order[j] = t;
                }
            }
            items_alloc();
            if (!bench_keys(only, random_keys ? "random" : "sequential", !quick))
                return 1;
            items_free();
            fflush(stdout);
        }
        if (only < 0 || only == GTREE || only == LIBAVL)
            measure_node_alloc(!quick);
        free(citem_at);
        free(citem_of);
        free(litem_at);
        free(litem_of);
        free(kitems);
        free(order);
    }
    if (json)
        fclose(json);
    return 0;
}
