/*
 * rbgap: the gap-augmented red-black tree of rbgap.h.
 *
 * Invariants (rbgap_check()): in-order, ranges disjoint and increasing; the
 * root is black, a red node has black children, every path from a node down
 * to an empty link crosses as many black nodes; gap is the hole below the
 * range (start - previous last - 1, or start for the lowest); subtree_gap is
 * the largest gap in the subtree.
 *
 * An insert changes two gaps, the new node's and its successor's (whose hole
 * it splits), and each ancestor of either may see its subtree_gap change: both
 * paths are recomputed up to the root, then the red-black fix-up rotates, and
 * a rotation recomputes the two nodes it turns (the subtree as a whole holds
 * the same holes). Inserts are not what the benchmarks time.
 */
#include "rbgap.h"

#include <canopy/page.h>

#define BLACK ((uintptr_t)1)

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static struct rbgap_node *parent_of(const struct rbgap_node *n)
{
    return (struct rbgap_node *)(n->parent_color & ~BLACK);
}

static bool is_red(const struct rbgap_node *n)
{
    return n && !(n->parent_color & BLACK);
}

static void set_parent(struct rbgap_node *n, struct rbgap_node *p)
{
    n->parent_color = (uintptr_t)p | (n->parent_color & BLACK);
}

static void set_black(struct rbgap_node *n, bool black)
{
    n->parent_color = (n->parent_color & ~BLACK) | (black ? BLACK : 0);
}

/* n's subtree_gap from its own gap and its children's. */
static uint64_t subtree_gap_of(const struct rbgap_node *n)
{
    uint64_t m = n->gap;

    if (n->left)
        m = max_u64(m, n->left->subtree_gap);
    if (n->right)
        m = max_u64(m, n->right->subtree_gap);
    return m;
}

/* Recomputes subtree_gap from n up to the root. */
static void update_to_root(struct rbgap_node *n)
{
    for (; n; n = parent_of(n))
        n->subtree_gap = subtree_gap_of(n);
}

static void replace_child(struct rbgap_tree *t, struct rbgap_node *p, struct rbgap_node *old,
                          struct rbgap_node *new)
{
    if (!p)
        t->root = new;
    else if (p->left == old)
        p->left = new;
    else
        p->right = new;
}

/*
 *      n                r
 *     / \              / \
 *    a   r     =>     n   c
 *       / \          / \
 *      b   c        a   b
 */
static void rotate_left(struct rbgap_tree *t, struct rbgap_node *n)
{
    struct rbgap_node *r = n->right, *p = parent_of(n);

    n->right = r->left;
    if (r->left)
        set_parent(r->left, n);
    r->left = n;
    set_parent(r, p);
    set_parent(n, r);
    replace_child(t, p, n, r);
    r->subtree_gap = n->subtree_gap; /* the same holes as n's subtree before */
    n->subtree_gap = subtree_gap_of(n);
}

/* The mirror image of rotate_left. */
static void rotate_right(struct rbgap_tree *t, struct rbgap_node *n)
{
    struct rbgap_node *l = n->left, *p = parent_of(n);

    n->left = l->right;
    if (l->right)
        set_parent(l->right, n);
    l->right = n;
    set_parent(l, p);
    set_parent(n, l);
    replace_child(t, p, n, l);
    l->subtree_gap = n->subtree_gap;
    n->subtree_gap = subtree_gap_of(n);
}

/* Restores the red-black rules after the red leaf z was linked. */
static void insert_fixup(struct rbgap_tree *t, struct rbgap_node *z)
{
    for (;;) {
        struct rbgap_node *p = parent_of(z), *g, *uncle;

        if (!p) {
            set_black(z, true);
            return;
        }
        if (!is_red(p))
            return;
        g = parent_of(p); /* p is red, so not the root */
        uncle = p == g->left ? g->right : g->left;
        if (is_red(uncle)) {
            /* Push the red up: p and the uncle turn black, g red, and g is the new z. */
            set_black(p, true);
            set_black(uncle, true);
            set_black(g, false);
            z = g;
            continue;
        }
        if (p == g->left) {
            if (z == p->right) {
                rotate_left(t, p);
                p = z;
            }
            set_black(p, true);
            set_black(g, false);
            rotate_right(t, g);
        } else {
            if (z == p->left) {
                rotate_right(t, p);
                p = z;
            }
            set_black(p, true);
            set_black(g, false);
            rotate_left(t, g);
        }
        return;
    }
}

void rbgap_init(struct rbgap_tree *t)
{
    t->root = NULL;
    t->highest_last = 0;
    t->count = 0;
}

void rbgap_insert(struct rbgap_tree *t, struct rbgap_node *node)
{
    struct rbgap_node *n = t->root, *parent = NULL, *pred = NULL, *succ = NULL;
    bool right = false;

    while (n) {
        parent = n;
        right = n->start < node->start;
        if (right)
            pred = n;
        else
            succ = n;
        n = right ? n->right : n->left;
    }
    node->left = node->right = NULL;
    node->parent_color = (uintptr_t)parent; /* red */
    node->gap = pred ? node->start - pred->last - 1 : node->start;
    node->subtree_gap = node->gap;
    if (!parent)
        t->root = node;
    else if (right)
        parent->right = node;
    else
        parent->left = node;
    if (succ)
        succ->gap = succ->start - node->last - 1;
    else
        t->highest_last = node->last;
    t->count++;
    update_to_root(parent);
    if (succ)
        update_to_root(succ);
    insert_fixup(t, node);
}

struct rbgap_node *rbgap_lookup(const struct rbgap_tree *t, uint64_t addr)
{
    struct rbgap_node *n = t->root, *best = NULL;

    while (n) {
        if (n->last >= addr) {
            best = n;
            if (n->start <= addr)
                break;
            n = n->left;
        } else {
            n = n->right;
        }
    }
    return best && best->start <= addr ? best : NULL;
}

bool rbgap_find_lowest(const struct rbgap_tree *t, uint64_t size, uint64_t align, uint64_t lo,
                       uint64_t hi, uint64_t *addr, uint64_t *visits)
{
    uint64_t length = size + (align - PAGE_SIZE), end_at_least, start_at_most, from;
    const struct rbgap_node *n = t->root;

    /* The over-ask: length bytes from a page-aligned start hold size bytes at align. */
    if (length < size || hi - lo < length - 1)
        return false;
    end_at_least = lo + (length - 1);  /* a hole must reach this byte... */
    start_at_most = hi - (length - 1); /* ...and start at or below this one */
    if (!n) {
        from = 0;
        goto found;
    }
    ++*visits;
    if (n->subtree_gap < length)
        goto above_last;
    for (;;) {
        /*
         * The left subtree's holes all end below n's start: worth a look
         * only if n's own hole could reach end_at_least, and then only if
         * the left child's subtree_gap says a hole there is long enough.
         */
        if (n->left && n->start - 1 >= end_at_least) {
            ++*visits;
            if (n->left->subtree_gap >= length) {
                n = n->left;
                continue;
            }
        }
    own_hole:
        from = n->start - n->gap;
        if (from > start_at_most)
            return false; /* every hole from here on starts higher */
        if (n->gap >= length && n->start - 1 >= end_at_least)
            goto found;
        if (n->right) {
            ++*visits;
            if (n->right->subtree_gap >= length) {
                n = n->right;
                continue;
            }
        }
        /* Climb to the first ancestor entered from its left: its hole and right subtree are next.
         */
        for (;;) {
            const struct rbgap_node *p = parent_of(n);

            if (!p)
                goto above_last;
            if (p->left == n) {
                n = p;
                goto own_hole;
            }
            n = p;
        }
    }
above_last:
    from = t->highest_last + 1;
    if (t->highest_last == UINT64_MAX || from > start_at_most)
        return false;
found:
    if (from < lo)
        from = lo;
    *addr = (from + (align - 1)) & ~(align - 1);
    return true;
}

/* ---- checker ---- */

struct check {
    const char *why;
    const struct rbgap_node *prev;
    size_t count;
};

/* The black height of n's subtree, or -1 on a violation; *max gets its largest gap. */
static int check_node(struct check *c, const struct rbgap_node *n, const struct rbgap_node *parent,
                      uint64_t *max)
{
    uint64_t ml = 0, mr = 0;
    int hl, hr;

    *max = 0;
    if (!n)
        return 1;
    if (parent_of(n) != parent) {
        c->why = "parent link does not match child link";
        return -1;
    }
    if (is_red(n) && (is_red(n->left) || is_red(n->right))) {
        c->why = "a red node has a red child";
        return -1;
    }
    hl = check_node(c, n->left, n, &ml);
    if (hl < 0)
        return -1;
    if (n->start > n->last || (c->prev && c->prev->last >= n->start)) {
        c->why = "ranges out of order or overlapping";
        return -1;
    }
    if (n->gap != (c->prev ? n->start - c->prev->last - 1 : n->start)) {
        c->why = "gap is wrong";
        return -1;
    }
    c->prev = n;
    c->count++;
    hr = check_node(c, n->right, n, &mr);
    if (hr < 0)
        return -1;
    if (hl != hr) {
        c->why = "black heights differ";
        return -1;
    }
    *max = max_u64(n->gap, max_u64(ml, mr));
    if (n->subtree_gap != *max) {
        c->why = "subtree_gap is wrong";
        return -1;
    }
    return hl + !is_red(n);
}

bool rbgap_check(const struct rbgap_tree *t, const char **why)
{
    struct check c = {NULL, NULL, 0};
    uint64_t max;

    if (is_red(t->root))
        c.why = "the root is red";
    else if (check_node(&c, t->root, NULL, &max) >= 0) {
        if (c.count != t->count)
            c.why = "count is wrong";
        else if (c.prev && c.prev->last != t->highest_last)
            c.why = "highest_last is wrong";
    }
    if (c.why && why)
        *why = c.why;
    return c.why == NULL;
}
