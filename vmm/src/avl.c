/*
 * avl: the intrusive, gap-augmented AVL tree declared in vmm/avl.h.
 *
 * Heights are not stored: each node keeps its balance factor in the two low
 * bits of its parent link.
 *
 * The augmentation is split so that no update ever reads a sibling. A node
 * holds the hole just below its own range (gap) and one slot per child: the
 * largest gap in that child's subtree (left_max, right_max) and the largest
 * sizes that fit there at 2 MiB and at 1 GiB alignment (fit_2m, fit_1g, in
 * pages). A slot is a function of its child alone, so after a change the
 * walk towards the root finishes each ancestor from the child it came from,
 * and stops at the first slot that already holds the child's new values:
 * everything above was computed from them. (Keeping one summary per node
 * instead, of its whole subtree, means a shrinking maximum must be
 * recomputed from both children at every level; on a tree too big for the
 * cache each of those sibling reads is a miss.) The fits are kept as they
 * are, not relative to the gap, so where they stop changing, which in most
 * layouts is at once, the rest of the walk is that of a tree that keeps the
 * largest gap alone (walk_gap()), and touches none of their fields.
 *
 * Why three values: with the largest gap alone, a search at an alignment
 * must enter every subtree that has a hole big enough, aligned or not, and
 * a layout of many big but misaligned holes (a space fragmented by 2-4 MiB
 * holes, searched at 2 MiB) makes it read them all. With the largest fit
 * at 1 (the gap), 2 MiB and 1 GiB, a subtree is entered only if it really
 * holds a fit at that alignment, and other alignments get a budget
 * (avl_gap_find() in avl.h).
 *
 * An insert or an erase changes at most two gaps, the node's own and its
 * successor's, and the successor always lies on the path the rebalancing walk
 * takes (an ancestor of the new leaf; on erase, the node that moves up or an
 * ancestor of the erased one). Gaps are set first, then the walk runs: while
 * the height below has changed (rebalance()) it adjusts balance factors,
 * rotates where one reaches +-2 (a rotation only moves slots between the two
 * nodes it turns) and refreshes each parent's slot; once heights stop
 * changing, walk_up() carries the new values up until nothing changes, with
 * the largest gap alone once the fits at 2 MiB and 1 GiB stop changing. A
 * last walk from the successor covers a walk that stopped below it.
 * O(log n) at worst.
 *
 * The holes below the first range and above the last are not stored in any
 * node: the tree keeps first and last, and the gap search tries those two
 * holes directly.
 *
 * The gap search (gap_lowest/gap_highest) descends with the span of
 * addresses a subtree's holes can lie in, [lo, hi], clipped to the query
 * window: below a node's hole for its left subtree, above its range for its
 * right. A subtree is entered only if its bound at the search's level is big
 * enough and its span has an aligned place for the request; both are known
 * in the parent (its slot for the child, and the span), so a subtree that
 * fails them is never read. tree_holes() has the cost.
 *
 * Callers: vmm/src/space.c (the address space), the host tests and benchmarks.
 */
#include <vmm/avl.h>

#include <canopy/page.h>

_Static_assert(_Alignof(struct avl_node) > AVL_BALANCE_MASK, "no room for the balance bits");
_Static_assert(offsetof(struct avl_node, child_max[1]) == offsetof(struct avl_node, right_max),
               "child_max[] and the named slots must be the same storage");
_Static_assert(offsetof(struct avl_node, fit_2m) == 64,
               "a lookup's, a 4 KiB search's and an update's fields fill the first 64 bytes");

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void set_parent(struct avl_node *n, struct avl_node *p)
{
    n->parent_balance = (uintptr_t)p | (n->parent_balance & AVL_BALANCE_MASK);
}

/* => -1 <= b <= 1 */
static void set_balance(struct avl_node *n, int b)
{
    n->parent_balance = (n->parent_balance & ~AVL_BALANCE_MASK) | (uintptr_t)(b + 1);
}

/* Points whatever referred to old (its parent's link or the root) at new. */
static void replace_child(struct avl_tree *t, struct avl_node *parent, struct avl_node *old,
                          struct avl_node *new)
{
    if (!parent)
        t->root = new;
    else if (parent->left == old)
        parent->left = new;
    else
        parent->right = new;
}

/* The nearest ancestor that has n in its left subtree: n's successor when n has no right child. */
static struct avl_node *next_above(const struct avl_node *n)
{
    struct avl_node *p;

    while ((p = avl_parent(n)) && p->right == n)
        n = p;
    return p;
}

/* ---- the augmentation ---- */

#define MASK_2M (AVL_ALIGN_2M - 1)
#define MASK_1G (AVL_ALIGN_1G - 1)

/*
 * What a set of holes can hold: the largest gap, and the largest sizes that
 * fit at a 2 MiB-aligned and at a 1 GiB-aligned address in one hole, as
 * the slots keep them (fit_pages()).
 */
struct fits {
    uint64_t gap;
    uint32_t at_2m, at_1g;
};

/* A slot's fit field for a fit of that many bytes: 4 KiB pages, rounded up, at most FIT_SAT. */
#define FIT_SAT UINT32_MAX

static inline uint32_t fit_pages(uint64_t bytes)
{
    uint64_t pages = pages_for_bytes(bytes);

    return pages < FIT_SAT ? (uint32_t)pages : FIT_SAT;
}

/* The most bytes that fit from a multiple of mask + 1 in n's own hole. */
static inline uint64_t hole_fit(const struct avl_node *n, uint64_t mask)
{
    /* The hole starts at start - gap; the way up to the next multiple is its negation. */
    uint64_t pad = (n->gap - n->start) & mask;

    return n->gap > pad ? n->gap - pad : 0;
}

static inline struct fits own_fits(const struct avl_node *n)
{
    struct fits f = {n->gap, fit_pages(hole_fit(n, MASK_2M)), 0};

    /* Nothing fits at 1 GiB where nothing does at 2 MiB, as in most holes. */
    if (f.at_2m)
        f.at_1g = fit_pages(hole_fit(n, MASK_1G));
    return f;
}

/* What n's slot for one side says about that subtree. */
static inline struct fits slot_fits(const struct avl_node *n, bool right)
{
    return (struct fits){n->child_max[right], n->fit_2m[right], n->fit_1g[right]};
}

static inline uint32_t max_u32(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

static inline struct fits max_fits(struct fits a, struct fits b)
{
    return (struct fits){max_u64(a.gap, b.gap), max_u32(a.at_2m, b.at_2m),
                         max_u32(a.at_1g, b.at_1g)};
}

/* n's whole subtree: its own hole and both slots. */
static inline struct fits subtree_fits(const struct avl_node *n)
{
    return max_fits(own_fits(n), max_fits(slot_fits(n, false), slot_fits(n, true)));
}

static inline void set_slot(struct avl_node *n, bool right, struct fits f)
{
    n->child_max[right] = f.gap;
    n->fit_2m[right] = f.at_2m;
    n->fit_1g[right] = f.at_1g;
}

static inline void copy_slot(struct avl_node *to, bool to_right, const struct avl_node *from,
                             bool from_right)
{
    to->child_max[to_right] = from->child_max[from_right];
    to->fit_2m[to_right] = from->fit_2m[from_right];
    to->fit_1g[to_right] = from->fit_1g[from_right];
}

static inline void clear_slot(struct avl_node *n, bool right)
{
    n->child_max[right] = 0;
    n->fit_2m[right] = n->fit_1g[right] = 0;
}

static inline bool fits_differ(struct fits a, struct fits b)
{
    return a.at_2m != b.at_2m || a.at_1g != b.at_1g;
}

/*
 * Stores g as the largest gap of n's slot on one side, whose subtree's fits
 * have not changed. Returns whether the slot held another gap.
 */
static inline bool set_slot_gap(struct avl_node *n, bool right, uint64_t g)
{
    if (n->child_max[right] == g)
        return false;
    n->child_max[right] = g;
    return true;
}

/*
 * The successor of an inserted or erased node, whose own hole changed too,
 * until a walk has taken that into account.
 */
struct pending {
    const struct avl_node *succ;
    bool fits; /* its hole's fits at 2 MiB or 1 GiB changed, not just its size */
};

/*
 * The walk of a tree that keeps the largest gap alone: the subtree under
 * p's slot on one side now has largest gap m and the fits the slot says.
 * Stores m, and goes up while a slot changes. The maximum travels in a
 * register: each level's is computed from the one below and the parent's
 * other two values, never read back from a store. (A pending successor
 * passed on the way is left pending: finish() walks from it.)
 */
static void walk_gap(struct avl_node *p, bool right, uint64_t m)
{
    for (;;) {
        struct avl_node *c;

        if (!set_slot_gap(p, right, m))
            return;
        m = max_u64(m, max_u64(p->child_max[!right], p->gap));
        c = p;
        if (!(p = avl_parent(c)))
            return;
        right = p->right == c;
    }
}

/*
 * c's own values and slots are right, and its subtree's fits may have
 * changed: makes each ancestor's slot for the child below it match that
 * child. The fits travel in registers, each level's computed from the ones
 * below and the parent's other slot and own hole; at the first slot that
 * already holds them nothing above can see them change, and walk_gap()
 * finishes.
 */
static void walk_fits(struct avl_node *c, struct pending *pd)
{
    struct avl_node *p;
    struct fits f = subtree_fits(c);

    if (c == pd->succ)
        pd->succ = NULL;
    while ((p = avl_parent(c))) {
        bool right = p->right == c;

        if (!fits_differ(slot_fits(p, right), f)) {
            walk_gap(p, right, f.gap);
            return;
        }
        set_slot(p, right, f);
        f = max_fits(f, max_fits(slot_fits(p, !right), own_fits(p)));
        if (p == pd->succ)
            pd->succ = NULL;
        c = p;
    }
}

/* From c up, where c's subtree's fits may have changed (fits) or only its largest gap. */
static void walk_up(struct avl_node *c, bool fits, struct pending *pd)
{
    struct avl_node *p;

    if (c == pd->succ) {
        fits = fits || pd->fits;
        pd->succ = NULL;
    }
    if (fits)
        walk_fits(c, pd);
    else if ((p = avl_parent(c)))
        walk_gap(p, p->right == c, avl_max_gap(c));
}

/*
 * The walk from the successor unless one that recomputed its fits passed it
 * (a walk of the gap alone may have stopped below it).
 */
static void finish(struct pending *pd)
{
    struct pending none = {NULL, false};

    if (pd->succ)
        walk_up((struct avl_node *)pd->succ, pd->fits, &none);
}

/*
 * Relinks and moves the slots; balance factors are the caller's. The
 * subtree holds the same holes, so the parent's slot stays right.
 *
 *      n                r
 *     / \              / \
 *    a   r     =>     n   c
 *       / \          / \
 *      b   c        a   b
 */
static struct avl_node *rotate_left(struct avl_tree *t, struct avl_node *n)
{
    struct avl_node *r = n->right, *p = avl_parent(n);

    n->right = r->left;
    copy_slot(n, true, r, false);
    if (r->left)
        set_parent(r->left, n);
    r->left = n;
    set_slot(r, false, subtree_fits(n));
    set_parent(n, r);
    set_parent(r, p);
    replace_child(t, p, n, r);
    return r;
}

/*
 *        n            l
 *       / \          / \
 *      l   c   =>   a   n
 *     / \              / \
 *    a   b            b   c
 */
static struct avl_node *rotate_right(struct avl_tree *t, struct avl_node *n)
{
    struct avl_node *l = n->left, *p = avl_parent(n);

    n->left = l->right;
    copy_slot(n, false, l, true);
    if (l->right)
        set_parent(l->right, n);
    l->right = n;
    set_slot(l, true, subtree_fits(n));
    set_parent(n, l);
    set_parent(l, p);
    replace_child(t, p, n, l);
    return l;
}

/*
 * n's balance reached +2 (right-heavy); rotates it back and sets every
 * balance factor. Returns the subtree's new root; *lower tells whether the
 * subtree is now one level lower than before the rotation.
 */
static struct avl_node *fix_right_heavy(struct avl_tree *t, struct avl_node *n, bool *lower)
{
    struct avl_node *r = n->right, *m;
    int br = avl_balance(r);

    if (br >= 0) {
        m = rotate_left(t, n);
        /* br == 0 happens only after an erase: the height stays. */
        set_balance(n, br == 0 ? 1 : 0);
        set_balance(m, br == 0 ? -1 : 0);
        *lower = br != 0;
    } else {
        int bm = avl_balance(r->left);

        rotate_right(t, r);
        m = rotate_left(t, n);
        set_balance(n, bm > 0 ? -1 : 0);
        set_balance(r, bm < 0 ? 1 : 0);
        set_balance(m, 0);
        *lower = true;
    }
    return m;
}

/* The mirror image of fix_right_heavy, for a balance of -2. */
static struct avl_node *fix_left_heavy(struct avl_tree *t, struct avl_node *n, bool *lower)
{
    struct avl_node *l = n->left, *m;
    int bl = avl_balance(l);

    if (bl <= 0) {
        m = rotate_right(t, n);
        set_balance(n, bl == 0 ? -1 : 0);
        set_balance(m, bl == 0 ? 1 : 0);
        *lower = bl != 0;
    } else {
        int bm = avl_balance(l->right);

        rotate_left(t, l);
        m = rotate_right(t, n);
        set_balance(n, bm < 0 ? 1 : 0);
        set_balance(l, bm > 0 ? -1 : 0);
        set_balance(m, 0);
        *lower = true;
    }
    return m;
}

/*
 * n's subtree on the right (or left) side grew (or shrank when grew is
 * false) by one level; n's children are linked and its slot for that side is
 * set, and fits tells whether that slot's fits changed. Adjusts balance
 * factors and rotates up the tree while the height keeps changing,
 * refreshing each parent's slot on the way (the gap alone while the fits
 * stay), then hands over to walk_up().
 */
static void rebalance(struct avl_tree *t, struct avl_node *n, bool right, bool grew, bool fits,
                      struct pending *pd)
{
    while (n) {
        int b = avl_balance(n) + (right == grew ? 1 : -1);
        bool changed; /* whether n's subtree height changed in all */
        struct avl_node *p;

        if (n == pd->succ) {
            fits = fits || pd->fits;
            pd->succ = NULL;
        }
        if (b > 1 || b < -1) {
            bool lower;

            n = b > 1 ? fix_right_heavy(t, n, &lower) : fix_left_heavy(t, n, &lower);
            /* After an insert the rotation restores the old height; after an erase it may not. */
            changed = !grew && lower;
        } else {
            set_balance(n, b);
            changed = grew ? b != 0 : b == 0;
        }
        if (!changed) {
            walk_up(n, fits, pd);
            return;
        }
        p = avl_parent(n);
        if (!p)
            return;
        right = p->right == n;
        if (fits) {
            struct fits f = subtree_fits(n);

            fits = fits_differ(slot_fits(p, right), f);
            set_slot(p, right, f);
        } else {
            set_slot_gap(p, right, avl_max_gap(n));
        }
        n = p;
    }
}

void avl_init(struct avl_tree *t)
{
    t->root = t->first = t->last = NULL;
    t->count = 0;
}

/*
 * Links node as parent's left or right child, an empty link, and sets the two
 * gaps that change; the caller fixes balance and slots above. succ is node's
 * successor once linked (NULL if it will be last): the parent itself for a
 * left child, the nearest ancestor reached from the left for a right one.
 * Sets *fits (whether the parent's slot gained fits) and *pd. Returns false
 * when node became the root (nothing to fix).
 */
static bool attach(struct avl_tree *t, struct avl_node *node, struct avl_node *parent, bool right,
                   struct avl_node *succ, bool *fits, struct pending *pd)
{
    struct fits f;

    node->left = node->right = NULL;
    node->parent_balance = (uintptr_t)parent;
    set_balance(node, 0);
    clear_slot(node, false);
    clear_slot(node, true);
    t->count++;
    if (!parent) {
        t->root = node;
        node->gap = 0;
        t->first = t->last = node;
        return false;
    }
    if (!right) {
        parent->left = node;
        if (parent == t->first) {
            node->gap = 0;
            t->first = node;
        } else {
            /* node takes the lower part of the parent's hole. */
            node->gap = node->start - (parent->start - parent->gap);
        }
    } else {
        parent->right = node;
        node->gap = node->start - parent->last - 1;
        if (!succ)
            t->last = node;
    }
    f = own_fits(node);
    set_slot(parent, right, f);
    *fits = f.at_2m != 0; /* the slot was empty; at_1g <= at_2m */
    pd->succ = succ;
    pd->fits = false;
    if (succ) {
        struct fits before = own_fits(succ);

        succ->gap = succ->start - node->last - 1;
        pd->fits = fits_differ(before, own_fits(succ));
    }
    return true;
}

void avl_insert_at(struct avl_tree *t, struct avl_node *node, struct avl_node *parent,
                   struct avl_node **link)
{
    bool right = parent && link == &parent->right, fits;
    struct avl_node *succ;
    struct pending pd;

    if (!right)
        succ = parent;
    else
        succ = parent == t->last ? NULL : next_above(parent);
    if (!attach(t, node, parent, right, succ, &fits, &pd))
        return;
    rebalance(t, parent, right, true, fits, &pd);
    finish(&pd);
}

void avl_insert_range(struct avl_tree *t, struct avl_node *node)
{
    struct avl_node *n = t->root, *parent = NULL, *succ = NULL;
    uint64_t start = node->start;
    bool right = false, fits;
    struct pending pd;

    /*
     * Without branches, as avl_child() says; the successor is the last node
     * the descent leaves to the left, so the insert needs no walk to find it.
     */
    while (n) {
        right = n->start <= start;
        parent = n;
        succ = right ? succ : n;
        n = avl_child(n, right);
    }
    if (!attach(t, node, parent, right, succ, &fits, &pd))
        return;
    rebalance(t, parent, right, true, fits, &pd);
    finish(&pd);
}

void avl_insert_next(struct avl_tree *t, struct avl_node *pos, struct avl_node *node)
{
    struct avl_node *parent = pos;
    struct avl_node **link = &pos->right;

    /* The successor slot is pos's right link, or the leftmost link below it. */
    while (*link) {
        parent = *link;
        link = &parent->left;
    }
    avl_insert_at(t, node, parent, link);
}

/*
 * Unlinks node, whose successor is succ (NULL if it is the last), sets the
 * successor's gap and the tree's first and last, and leaves node unlinked.
 * Returns the lowest node whose subtree lost a level (NULL if none), with
 * *right telling which of its subtrees and *fits whether that slot's fits
 * changed; balance factors and slots from there up are the caller's to fix,
 * and so is succ's new gap (*pd).
 */
static struct avl_node *unlink_node(struct avl_tree *t, struct avl_node *node,
                                    struct avl_node *succ, bool *right, bool *fits,
                                    struct pending *pd)
{
    struct avl_node *parent = avl_parent(node);
    struct avl_node *from;

    /*
     * The successor's hole absorbs node's hole and node's range. If that
     * leaves its fits as they were, node's fits were no bigger, and no
     * subtree holding both sees a change in its fits.
     */
    *fits = false;
    pd->succ = succ;
    pd->fits = false;
    if (succ) {
        struct fits before = own_fits(succ);

        succ->gap = node == t->first ? 0 : succ->gap + node->gap + (node->last - node->start) + 1;
        pd->fits = fits_differ(before, own_fits(succ));
    }
    if (node == t->first)
        t->first = succ;
    if (node == t->last)
        t->last = avl_prev(node); /* node is still linked here */

    if (!node->left || !node->right) {
        struct avl_node *child = node->left ? node->left : node->right;

        if (child)
            set_parent(child, parent);
        *right = parent && parent->right == node;
        replace_child(t, parent, node, child);
        from = parent;
        if (from) {
            struct fits f = {0, 0, 0}, old = slot_fits(from, *right);

            if (child)
                f = subtree_fits(child);
            set_slot(from, *right, f);
            *fits = fits_differ(old, f);
        }
    } else {
        /*
         * Two children: the successor takes node's place. It has no left
         * child; its right child moves up into its old slot.
         *
         *      node             succ
         *      /  \             / \
         *     a    r           a   r
         *         /     =>        /
         *      succ              x
         *         \
         *          x
         */
        if (succ == node->right) {
            from = succ; /* its right subtree, its own, is a level lower than node's was */
            *right = true;
        } else {
            struct avl_node *sp = avl_parent(succ);
            struct fits old = slot_fits(sp, false);

            sp->left = succ->right;
            copy_slot(sp, false, succ, true);
            *fits = fits_differ(old, slot_fits(sp, false));
            if (succ->right)
                set_parent(succ->right, sp);
            succ->right = node->right;
            /* node's slot: the walk from sp refreshes it on the way up. */
            copy_slot(succ, true, node, true);
            set_parent(node->right, succ);
            from = sp;
            *right = false;
        }
        succ->left = node->left;
        copy_slot(succ, false, node, false);
        set_parent(node->left, succ);
        succ->parent_balance = node->parent_balance; /* node's parent and balance factor */
        replace_child(t, parent, node, succ);
    }
    t->count--;
    node->left = node->right = NULL;
    node->parent_balance = 0;
    return from;
}

/*
 * Finds the successor, unlinks, then rebalances and walks upwards from
 * the node by parent links, stopping where nothing changes any more.
 */
void avl_erase(struct avl_tree *t, struct avl_node *node)
{
    struct avl_node *succ, *from;
    bool right, fits;
    struct pending pd;

    if (node->right) {
        succ = node->right;
        while (succ->left)
            succ = succ->left;
    } else {
        succ = node == t->last ? NULL : next_above(node);
    }
    from = unlink_node(t, node, succ, &right, &fits, &pd);
    rebalance(t, from, right, false, fits, &pd);
    finish(&pd);
}

void avl_adjust(struct avl_tree *t, struct avl_node *node, uint64_t start, uint64_t last)
{
    struct avl_node *succ = node == t->last ? NULL : avl_next(node);
    struct pending pd;

    /* The hole below keeps its lower end (mod 2^64: start may move down). */
    if (node != t->first)
        node->gap = node->gap + start - node->start;
    node->start = start;
    node->last = last;
    if (succ)
        succ->gap = succ->start - last - 1;
    /* Both holes changed, fits and all: each walk stops only where the values above agree. */
    pd.succ = succ;
    pd.fits = true;
    walk_up(node, true, &pd);
    finish(&pd);
}

struct avl_node *avl_first(const struct avl_tree *t)
{
    return t->first;
}

struct avl_node *avl_last(const struct avl_tree *t)
{
    return t->last;
}

struct avl_node *avl_next(const struct avl_node *n)
{
    if (n->right) {
        n = n->right;
        while (n->left)
            n = n->left;
        return (struct avl_node *)n;
    }
    return next_above(n);
}

struct avl_node *avl_prev(const struct avl_node *n)
{
    if (n->left) {
        n = n->left;
        while (n->right)
            n = n->right;
        return (struct avl_node *)n;
    }
    while (avl_parent(n) && avl_parent(n)->left == n)
        n = avl_parent(n);
    return avl_parent(n);
}

/* ---- gap search ---- */

/* Which values bound the fits of a subtree during a search. */
enum level { LEVEL_GAP, LEVEL_2M, LEVEL_1G };

struct gap_search {
    uint64_t size, mask; /* a hole must hold size bytes from a multiple of mask + 1 */
    enum level level;
    uint64_t visits, budget;
    bool over_budget; /* the budget ran out before the search ended */
};

/* Lowest address from a multiple of mask + 1 with size bytes inside [lo, hi] (lo <= hi). */
static bool fit_low(uint64_t mask, uint64_t size, uint64_t lo, uint64_t hi, uint64_t *addr)
{
    uint64_t a = lo;

    if (a & mask) {
        if (a > UINT64_MAX - mask)
            return false; /* rounding up would wrap past 2^64 */
        a = (a + mask) & ~mask;
    }
    if (a > hi || hi - a < size - 1)
        return false;
    *addr = a;
    return true;
}

/* Highest such address inside [lo, hi] (lo <= hi). */
static bool fit_high(uint64_t mask, uint64_t size, uint64_t lo, uint64_t hi, uint64_t *addr)
{
    uint64_t a;

    if (hi - lo < size - 1)
        return false;
    a = (hi - (size - 1)) & ~mask;
    if (a < lo)
        return false;
    *addr = a;
    return true;
}

/* The bound n's slot gives for one side's subtree at the search's level. */
static inline uint64_t slot_bound(const struct avl_node *n, bool right, enum level level)
{
    uint64_t m = n->child_max[right];
    uint32_t v;

    if (level == LEVEL_GAP)
        return m;
    v = level == LEVEL_2M ? n->fit_2m[right] : n->fit_1g[right];
    /* A saturated fit says only that it is big: the largest gap bounds it. */
    return v == FIT_SAT ? m : min_u64(m, (uint64_t)v << PAGE_SHIFT);
}

/*
 * Whether a subtree can hold a fit: its bound (from the parent's slot, so a
 * subtree that fails costs no read of its root) is big enough, and its span
 * [lo, hi] has an aligned place for the request.
 */
static bool worth_entering(const struct gap_search *g, uint64_t bound, uint64_t lo, uint64_t hi)
{
    uint64_t unused;

    return bound >= g->size && fit_low(g->mask, g->size, lo, hi, &unused);
}

/* Counts the read of one more node; false, and over_budget set, when the budget is spent. */
static bool visit(struct gap_search *g)
{
    if (g->visits == g->budget) {
        g->over_budget = true;
        return false;
    }
    g->visits++;
    return true;
}

/*
 * The lowest hole of subtree n that holds a fit, where [lo, hi] is the
 * window clipped to the addresses its holes can lie in (lo <= hi) and
 * worth_entering() holds for n; NULL if none (or the budget ran out).
 * Returns the node above that hole and its part inside the window in
 * span[]. n's hole is [n->start - n->gap, n->start - 1]; its left subtree's
 * holes lie below that, its right subtree's above n's range. A child is
 * entered only if worth_entering() holds for it too.
 */
static const struct avl_node *gap_lowest(struct gap_search *g, const struct avl_node *n,
                                         uint64_t lo, uint64_t hi, uint64_t span[2])
{
    for (;;) {
        uint64_t below = n->start - n->gap; /* the first byte of n's hole */
        uint64_t unused;

        if (n->left && below > lo &&
            worth_entering(g, slot_bound(n, false, g->level), lo, min_u64(below - 1, hi))) {
            const struct avl_node *r;

            if (!visit(g))
                return NULL;
            r = gap_lowest(g, n->left, lo, min_u64(below - 1, hi), span);
            if (r || g->over_budget)
                return r;
        }
        if (n->gap >= g->size && n->start > lo && below <= hi) {
            uint64_t a = max_u64(below, lo), b = min_u64(n->start - 1, hi);

            if (fit_low(g->mask, g->size, a, b, &unused)) {
                span[0] = a;
                span[1] = b;
                return n;
            }
        }
        if (!n->right || n->last >= hi ||
            !worth_entering(g, slot_bound(n, true, g->level), max_u64(n->last + 1, lo), hi))
            return NULL;
        lo = max_u64(n->last + 1, lo);
        n = n->right;
        if (!visit(g))
            return NULL;
    }
}

/* The mirror image of gap_lowest: right subtree first, the highest hole. */
static const struct avl_node *gap_highest(struct gap_search *g, const struct avl_node *n,
                                          uint64_t lo, uint64_t hi, uint64_t span[2])
{
    for (;;) {
        uint64_t below = n->start - n->gap;
        uint64_t unused;

        if (n->right && n->last < hi &&
            worth_entering(g, slot_bound(n, true, g->level), max_u64(n->last + 1, lo), hi)) {
            const struct avl_node *r;

            if (!visit(g))
                return NULL;
            r = gap_highest(g, n->right, max_u64(n->last + 1, lo), hi, span);
            if (r || g->over_budget)
                return r;
        }
        if (n->gap >= g->size && n->start > lo && below <= hi) {
            uint64_t a = max_u64(below, lo), b = min_u64(n->start - 1, hi);

            if (fit_high(g->mask, g->size, a, b, &unused)) {
                span[0] = a;
                span[1] = b;
                return n;
            }
        }
        if (!n->left || below <= lo ||
            !worth_entering(g, slot_bound(n, false, g->level), lo, min_u64(below - 1, hi)))
            return NULL;
        hi = min_u64(below - 1, hi);
        n = n->left;
        if (!visit(g))
            return NULL;
    }
}

/* One search of the tree's holes: reads the root, and descends if it is worth it. */
static inline const struct avl_node *tree_pass(struct gap_search *g, const struct avl_tree *t,
                                               const struct avl_gap_query *q, bool high,
                                               uint64_t span[2])
{
    const struct avl_node *root = t->root;
    uint64_t own = g->level == LEVEL_GAP ? root->gap
                                         : hole_fit(root, g->level == LEVEL_2M ? MASK_2M : MASK_1G);
    uint64_t bound =
        max_u64(own, max_u64(slot_bound(root, false, g->level), slot_bound(root, true, g->level)));

    if (!visit(g) || !worth_entering(g, bound, q->lo, q->hi))
        return NULL;
    return (high ? gap_highest : gap_lowest)(g, root, q->lo, q->hi, span);
}

uint64_t avl_gap_budget(size_t count)
{
    /* ceil(log2(count + 2)), and 1.5 times it bounds the height (avl.h) */
    uint64_t l = 64 - (uint64_t)__builtin_clzll((unsigned long long)count + 1);

    return 3 * ((3 * l + 1) / 2);
}

/*
 * The tree's holes, as avl_gap_find() describes: the hole found and its part
 * inside the window in span[], or NULL.
 *
 * Cost, counted in nodes read. A node is read when its span straddles an
 * edge of the window (the two root-to-leaf paths to the edges) or when its
 * subtree's bound passes and its span has an aligned place. Where the bound
 * is exact, a subtree that lies inside the window and passes holds a fit, so
 * the search finds it along one more path and never turns back: at most
 * 3h - 2 reads. Where it is only an upper bound, subtrees whose holes pass
 * it but have no aligned room are entered in vain, k of them up to
 * O(k log(n/k)) reads: the budget cuts that short. The over-asked search at
 * b is exact again in a page-grained tree (3h - 2 more); elsewhere it can
 * run out too, and the one at 1 always is exact.
 * If no hole in the tree passes the root's bound, the root is the one read.
 */
static inline const struct avl_node *tree_holes(const struct avl_tree *t,
                                                const struct avl_gap_query *q, bool high,
                                                struct avl_gap_result *r, uint64_t span[2])
{
    uint64_t a = q->align, budget = a == 1 ? UINT64_MAX : avl_gap_budget(t->count);
    enum level level = a >= AVL_ALIGN_1G ? LEVEL_1G : a >= AVL_ALIGN_2M ? LEVEL_2M : LEVEL_GAP;
    /* The over-ask's alignment: the level's, or a page below 2 MiB. */
    uint64_t b = level == LEVEL_1G ? AVL_ALIGN_1G : level == LEVEL_2M ? AVL_ALIGN_2M : 0x1000;
    struct gap_search g = {
        .size = q->size, .mask = a - 1, .level = level, .visits = 0, .budget = budget};
    const struct avl_node *n = tree_pass(&g, t, q, high, span);

    r->visits += g.visits;
    if (!g.over_budget)
        return n;
    /*
     * From a multiple of b, align - b more bytes reach a multiple of align,
     * so a hole with room for the over-ask has room for the request. At b
     * the level's bound is exact where the ranges are page-grained; where
     * they are not, that search too can run out, and the last one asks for
     * align - 1 more bytes at any address, which the largest gap bounds
     * exactly.
     */
    if (b < a) {
        r->over_align = b;
        if (q->size > UINT64_MAX - (a - b))
            return NULL; /* no hole is that big */
        g = (struct gap_search){.size = q->size + (a - b),
                                .mask = b - 1,
                                .level = level,
                                .visits = 0,
                                .budget = budget};
        n = tree_pass(&g, t, q, high, span);
        r->visits += g.visits;
        if (!g.over_budget)
            return n;
    }
    r->over_align = 1;
    if (q->size > UINT64_MAX - (a - 1))
        return NULL;
    g = (struct gap_search){.size = q->size + (a - 1),
                            .mask = 0,
                            .level = LEVEL_GAP,
                            .visits = 0,
                            .budget = UINT64_MAX};
    n = tree_pass(&g, t, q, high, span);
    r->visits += g.visits;
    return n;
}

/*
 * The holes below the first range and above the last, clipped to the
 * window; false (and *lo > *hi) when the clipped hole is empty.
 */
static bool head_hole(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *lo,
                      uint64_t *hi)
{
    *lo = q->lo;
    *hi = min_u64(t->first->start - 1, q->hi);
    return t->first->start > q->lo;
}

static bool tail_hole(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *lo,
                      uint64_t *hi)
{
    *lo = max_u64(t->last->last + 1, q->lo);
    *hi = q->hi;
    return t->last->last < q->hi;
}

/*
 * avl_gap_find(), for a constant high: the fit tests and edge holes are
 * called directly, so each entry point gets its own inlined copy.
 */
__attribute__((always_inline)) static inline bool gap_find(const struct avl_tree *t,
                                                           const struct avl_gap_query *q, bool high,
                                                           struct avl_gap_result *r)
{
    uint64_t mask = q->align - 1, lo, hi, span[2];
    const struct avl_node *n;

    r->next = NULL;
    r->visits = 0;
    r->over_align = 0;
    if (!t->root)
        return high ? fit_high(mask, q->size, q->lo, q->hi, &r->addr)
                    : fit_low(mask, q->size, q->lo, q->hi, &r->addr);
    /* The edge hole on the side the search favours, the tree, the other edge hole. */
    if (high ? tail_hole(t, q, &lo, &hi) && fit_high(mask, q->size, lo, hi, &r->addr)
             : head_hole(t, q, &lo, &hi) && fit_low(mask, q->size, lo, hi, &r->addr)) {
        r->next = high ? NULL : t->first;
        return true;
    }
    n = tree_holes(t, q, high, r, span);
    if (n && (high ? fit_high(mask, q->size, span[0], span[1], &r->addr)
                   : fit_low(mask, q->size, span[0], span[1], &r->addr))) {
        r->next = (struct avl_node *)n;
        return true;
    }
    if (high ? head_hole(t, q, &lo, &hi) && fit_high(mask, q->size, lo, hi, &r->addr)
             : tail_hole(t, q, &lo, &hi) && fit_low(mask, q->size, lo, hi, &r->addr)) {
        r->next = high ? t->first : NULL;
        return true;
    }
    return false;
}

bool avl_gap_find(const struct avl_tree *t, const struct avl_gap_query *q, unsigned flags,
                  struct avl_gap_result *r)
{
    return (flags & AVL_GAP_HIGHEST) ? gap_find(t, q, true, r) : gap_find(t, q, false, r);
}

bool avl_gap_lowest(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *addr,
                    uint64_t *visits)
{
    struct avl_gap_result r;
    bool found = gap_find(t, q, false, &r);

    if (found)
        *addr = r.addr;
    if (visits)
        *visits += r.visits;
    return found;
}

bool avl_gap_highest(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *addr,
                     uint64_t *visits)
{
    struct avl_gap_result r;
    bool found = gap_find(t, q, true, &r);

    if (found)
        *addr = r.addr;
    if (visits)
        *visits += r.visits;
    return found;
}

/* ---- checker ---- */

struct check {
    const char *why;
    const struct avl_node *first; /* the first node in order */
    const struct avl_node *prev;  /* the previous node in order */
    size_t count;
};

/*
 * The bytes that fit from a multiple of align in the hole [first, first +
 * size - 1], worked out apart from hole_fit(): round the first byte up
 * and see what is left.
 */
static uint64_t check_fit(uint64_t first, uint64_t size, uint64_t align)
{
    uint64_t last = first + (size - 1), a = first;

    if (size == 0)
        return 0;
    if (a % align != 0) {
        if (align - a % align > UINT64_MAX - a)
            return 0;
        a += align - a % align;
    }
    return a <= last ? last - a + 1 : 0;
}

/* The slot for a child matches what its subtree holds. */
static bool check_slot(struct check *c, const struct avl_node *n, bool right, struct fits f)
{
    if (n->child_max[right] != f.gap)
        c->why = right ? "right_max is wrong" : "left_max is wrong";
    else if (n->fit_2m[right] != f.at_2m)
        c->why = "fit_2m is wrong";
    else if (n->fit_1g[right] != f.at_1g)
        c->why = "fit_1g is wrong";
    return c->why == NULL;
}

/*
 * Checks the subtree at n (whose parent must be parent); returns its height,
 * or -1, and in *f what its holes hold, counted from the holes themselves.
 */
static int check_node(struct check *c, const struct avl_node *n, const struct avl_node *parent,
                      struct fits *f)
{
    struct fits fl = {0, 0, 0}, fr = {0, 0, 0};
    int hl, hr;

    *f = fl;
    if (!n)
        return 0;
    if (avl_parent(n) != parent) {
        c->why = "parent link does not match child link";
        return -1;
    }
    hl = check_node(c, n->left, n, &fl);
    if (hl < 0)
        return -1;
    /* In-order visit of n itself. */
    if (n->start > n->last) {
        c->why = "range start above its last byte";
        return -1;
    }
    if (c->prev && c->prev->last >= n->start) {
        c->why = "ranges out of order or overlapping";
        return -1;
    }
    if (n->gap != (c->prev ? n->start - c->prev->last - 1 : 0)) {
        c->why = "gap is wrong";
        return -1;
    }
    if (!c->prev)
        c->first = n;
    c->prev = n;
    c->count++;
    hr = check_node(c, n->right, n, &fr);
    if (hr < 0)
        return -1;
    if (hl - hr > 1 || hr - hl > 1) {
        c->why = "balance factor out of [-1, 1]";
        return -1;
    }
    if ((n->parent_balance & AVL_BALANCE_MASK) == AVL_BALANCE_MASK || avl_balance(n) != hr - hl) {
        c->why = "stored balance factor is wrong";
        return -1;
    }
    if (!check_slot(c, n, false, fl) || !check_slot(c, n, true, fr))
        return -1;
    *f = (struct fits){n->gap, fit_pages(check_fit(n->start - n->gap, n->gap, AVL_ALIGN_2M)),
                       fit_pages(check_fit(n->start - n->gap, n->gap, AVL_ALIGN_1G))};
    *f = max_fits(*f, max_fits(fl, fr));
    return 1 + (hl > hr ? hl : hr);
}

bool avl_check(const struct avl_tree *t, const char **why)
{
    struct check c = {.why = NULL, .first = NULL, .prev = NULL, .count = 0};
    struct fits f;

    if (check_node(&c, t->root, NULL, &f) >= 0) {
        if (c.count != t->count)
            c.why = "node count is wrong";
        else if (t->first != c.first)
            c.why = "first is wrong";
        else if (t->last != c.prev)
            c.why = "last is wrong";
    }
    if (c.why && why)
        *why = c.why;
    return c.why == NULL;
}

/* What the checker counts for n's own hole (as check_node, apart from own_fits()). */
static struct fits check_own_fits(const struct avl_node *n)
{
    return (struct fits){n->gap, fit_pages(check_fit(n->start - n->gap, n->gap, AVL_ALIGN_2M)),
                         fit_pages(check_fit(n->start - n->gap, n->gap, AVL_ALIGN_1G))};
}

/* n's links with its parent and children, and its two slots against its children's. */
static bool check_local(struct check *c, const struct avl_tree *t, const struct avl_node *n)
{
    const struct avl_node *p = avl_parent(n);

    if (p ? p->left != n && p->right != n : t->root != n)
        c->why = "parent link does not match child link";
    else if ((n->parent_balance & AVL_BALANCE_MASK) == AVL_BALANCE_MASK)
        c->why = "stored balance factor is wrong";
    for (int right = 0; right < 2 && !c->why; right++) {
        const struct avl_node *child = right ? n->right : n->left;
        struct fits f = {0, 0, 0};

        if (child && avl_parent(child) != n) {
            c->why = "parent link does not match child link";
            break;
        }
        if (child)
            f = max_fits(check_own_fits(child),
                         max_fits(slot_fits(child, false), slot_fits(child, true)));
        check_slot(c, n, right, f);
    }
    return c->why == NULL;
}

bool avl_check_path(const struct avl_tree *t, const struct avl_node *n, const char **why)
{
    struct check c = {.why = NULL, .first = NULL, .prev = NULL, .count = 0};
    const struct avl_node *prev = avl_prev(n);

    if (n->start > n->last)
        c.why = "range start above its last byte";
    else if (prev && prev->last >= n->start)
        c.why = "ranges out of order or overlapping";
    else if (n->gap != (prev ? n->start - prev->last - 1 : 0))
        c.why = "gap is wrong";
    else if (!prev && t->first != n)
        c.why = "first is wrong";
    else if (!avl_next(n) && t->last != n)
        c.why = "last is wrong";
    for (const struct avl_node *m = n; m && !c.why; m = avl_parent(m))
        check_local(&c, t, m);
    if (c.why && why)
        *why = c.why;
    return c.why == NULL;
}
