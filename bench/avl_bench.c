/*
 * avl_bench: raw tree operations, Canopy's intrusive AVL tree against GLib's
 * GTree and libavl.
 *
 * Implementations:
 *   canopy            vmm/avl.h: the node sits in the item; the caller descends
 *                     by start and links (the augmentation is kept up to date,
 *                     as the VMM needs it, so its cost is included)
 *   gtree             GTree keyed by the item (it allocates its own nodes)
 *   libavl            libavl by key: avl_insert/avl_search/avl_delete (allocates)
 *   libavl-intrusive  libavl with the node in the item: avl_insert_node,
 *                     avl_unlink_node
 *
 * Operations, with sequential or random (shuffled) keys:
 *   avl_insert             insert n items into an empty tree (ns per insert)
 *   avl_lookup             find each of the n items by key
 *   avl_erase              remove all n items; the intrusive trees unlink the
 *                          item's node, the others remove by key
 *   avl_insert_erase_pair  on a full tree: remove an item, insert it again
 *
 * Before timing, each implementation's tree is checked: every key is found
 * and maps to its own item, a missing key is not found, and the count is n
 * (for Canopy also avl_check).
 *
 * Usage: avl_bench [--quick] [--json FILE]
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

#include <vmm/avl.h>

struct item {
    uint64_t key;
    struct avl_node cnode; /* Canopy's node */
    avl_node_t lnode;      /* libavl's node, for the intrusive variant */
};

static uint64_t rng_state = 0xa71b;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ---- Canopy: the caller's descent ---- */

static struct avl_tree ctree;

/* Keys are stored as ranges [16 key, 16 key + 7] so the gap augmentation is live. */
static void canopy_insert(struct item *it)
{
    struct avl_node *parent = NULL, **link = &ctree.root;
    uint64_t start = it->key * 16;

    while (*link) {
        parent = *link;
        link = start < parent->start ? &parent->left : &parent->right;
    }
    it->cnode.start = start;
    it->cnode.last = start + 7;
    avl_insert_at(&ctree, &it->cnode, parent, link);
}

static struct item *canopy_lookup(uint64_t key)
{
    struct avl_node *n = ctree.root;
    uint64_t start = key * 16;

    while (n) {
        if (start < n->start)
            n = n->left;
        else if (start > n->start)
            n = n->right;
        else
            return avl_entry(n, struct item, cnode);
    }
    return NULL;
}

/* ---- GTree ---- */

static GTree *gtree;

static gint key_cmp(gconstpointer a, gconstpointer b)
{
    uint64_t x = ((const struct item *)a)->key, y = ((const struct item *)b)->key;

    return (x > y) - (x < y);
}

static int key_cmp_avl(const void *a, const void *b)
{
    return key_cmp(a, b);
}

/* ---- libavl ---- */

static avl_tree_t ltree;

/* ---- the benchmark ---- */

enum impl { CANOPY, GTREE, LIBAVL, LIBAVL_INTRUSIVE, IMPLS };
static const char *const impl_names[IMPLS] = {"canopy", "gtree", "libavl", "libavl-intrusive"};

static struct item *items;
static size_t *order; /* the order keys are used in */
static size_t n;
static FILE *json;

static void tree_init(enum impl im)
{
    switch (im) {
    case CANOPY:
        avl_init(&ctree);
        break;
    case GTREE:
        gtree = g_tree_new(key_cmp);
        break;
    default:
        avl_init_tree(&ltree, key_cmp_avl, NULL);
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
        avl_free_nodes(&ltree); /* nodes were malloc()ed by avl_insert */
        break;
    default:
        break; /* intrusive: the nodes are in items */
    }
}

static void op_insert(enum impl im, struct item *it)
{
    switch (im) {
    case CANOPY:
        canopy_insert(it);
        break;
    case GTREE:
        g_tree_insert(gtree, it, it);
        break;
    case LIBAVL:
        avl_insert(&ltree, it);
        break;
    default:
        avl_init_node(&it->lnode, it);
        avl_insert_node(&ltree, &it->lnode);
        break;
    }
}

static struct item *op_lookup(enum impl im, uint64_t key)
{
    struct item probe = {.key = key};
    avl_node_t *ln;

    switch (im) {
    case CANOPY:
        return canopy_lookup(key);
    case GTREE:
        return g_tree_lookup(gtree, &probe);
    default:
        ln = avl_search(&ltree, &probe);
        return ln ? ln->item : NULL;
    }
}

static void op_erase(enum impl im, struct item *it)
{
    switch (im) {
    case CANOPY:
        avl_erase(&ctree, &it->cnode);
        break;
    case GTREE:
        g_tree_remove(gtree, it);
        break;
    case LIBAVL:
        avl_delete(&ltree, it);
        break;
    default:
        avl_unlink_node(&ltree, &it->lnode);
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

/* Every key maps to its own item, a key past the end is absent, the count is n. */
static bool verify(enum impl im)
{
    const char *why = NULL;

    if (tree_count(im) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (op_lookup(im, items[i].key) != &items[i])
            return false;
    if (op_lookup(im, n + 1) != NULL)
        return false;
    return im != CANOPY || avl_check(&ctree, &why);
}

static void report(const char *bench, enum impl im, const char *keys, double ns)
{
    printf("%-22s %-17s %-10s %8zu %10.1f\n", bench, impl_names[im], keys, n, ns);
    if (json)
        fprintf(json,
                "{\"bench\": \"%s\", \"impl\": \"%s\", \"keys\": \"%s\", \"n\": %zu, "
                "\"ns_per_op\": %.2f}\n",
                bench, impl_names[im], keys, n, ns);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

#define ROUNDS 3

/* One implementation, one key order: the median over ROUNDS builds. */
static bool bench_impl(enum impl im, const char *keys)
{
    double ins[ROUNDS], look[ROUNDS], era[ROUNDS], pair[ROUNDS];

    for (int r = 0; r < ROUNDS; r++) {
        double t0;
        size_t found = 0;

        tree_init(im);
        t0 = now_ns();
        for (size_t i = 0; i < n; i++)
            op_insert(im, &items[order[i]]);
        ins[r] = (now_ns() - t0) / n;
        if (!verify(im)) {
            fprintf(stderr, "%s: the tree is wrong after inserting %zu keys\n", impl_names[im], n);
            return false;
        }

        t0 = now_ns();
        for (size_t i = 0; i < n; i++)
            found += op_lookup(im, items[order[i]].key) != NULL;
        look[r] = (now_ns() - t0) / n;
        if (found != n)
            return false;

        /* Steady state: remove one item and put it back, in the key order. */
        t0 = now_ns();
        for (size_t i = 0; i < n; i++) {
            struct item *it = &items[order[(i * 7) % n]];

            op_erase(im, it);
            op_insert(im, it);
        }
        pair[r] = (now_ns() - t0) / n;
        if (!verify(im)) {
            fprintf(stderr, "%s: the tree is wrong after erase/insert pairs\n", impl_names[im]);
            return false;
        }

        t0 = now_ns();
        for (size_t i = 0; i < n; i++)
            op_erase(im, &items[order[i]]);
        era[r] = (now_ns() - t0) / n;
        if (tree_count(im) != 0)
            return false;
        tree_fini(im);
    }
    qsort(ins, ROUNDS, sizeof(double), cmp_double);
    qsort(look, ROUNDS, sizeof(double), cmp_double);
    qsort(era, ROUNDS, sizeof(double), cmp_double);
    qsort(pair, ROUNDS, sizeof(double), cmp_double);
    report("avl_insert", im, keys, ins[ROUNDS / 2]);
    report("avl_lookup", im, keys, look[ROUNDS / 2]);
    report("avl_erase", im, keys, era[ROUNDS / 2]);
    report("avl_insert_erase_pair", im, keys, pair[ROUNDS / 2]);
    return true;
}

int main(int argc, char **argv)
{
    size_t sizes[2] = {100000, 1000000};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            sizes[0] = 1000;
            sizes[1] = 10000;
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json = fopen(argv[++i], "w");
            if (!json) {
                perror(argv[i]);
                return 1;
            }
        } else {
            fprintf(stderr, "usage: %s [--quick] [--json FILE]\n", argv[0]);
            return 2;
        }
    }
    printf("%-22s %-17s %-10s %8s %10s\n", "bench", "impl", "keys", "n", "ns/op");
    for (int si = 0; si < 2; si++) {
        n = sizes[si];
        items = calloc(n, sizeof(*items));
        order = malloc(n * sizeof(*order));
        for (size_t i = 0; i < n; i++)
            items[i].key = i;
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
            for (int im = 0; im < IMPLS; im++)
                if (!bench_impl((enum impl)im, random_keys ? "random" : "sequential"))
                    return 1;
            fflush(stdout);
        }
        free(items);
        free(order);
    }
    if (json)
        fclose(json);
    return 0;
}
