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
 * holds a fit at that alignment; other alignments ask for enough room at the
 * one below them that every hole with it holds a fit (avl_gap_find() in
 * avl.h).
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
 * The gap search (search_holes()) is a walk in address order that skips
 * every subtree that cannot hold a fit: a child is entered only if the
 * parent's slot for it shows room and its holes can reach the window's fits,
 * both known in the parent, so a subtree that fails is never read; it backs
 * up by parent links. One loop per level and direction, its state in
 * registers; level_find() has the cost. A search that every hole is too small
 * for reads the root's largest gap and stops there.
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

void avl_insert_prev(struct avl_tree *t, struct avl_node *pos, struct avl_node *node)
{
    struct avl_node *parent;
    bool right, fits;
    struct pending pd;

    /*
     * The predecessor slot is pos's left link, or the rightmost link below
     * it; with no pos, the right link of the last range. Either way pos is
     * the successor, known without the walk up that avl_insert_at takes.
     */
    if (!pos) {
        parent = t->last;
        right = parent != NULL;
    } else if (!pos->left) {
        parent = pos;
        right = false;
    } else {
        for (parent = pos->left; parent->right; parent = parent->right)
            ;
        right = true;
    }
    if (!attach(t, node, parent, right, pos, &fits, &pd))
        return;
    rebalance(t, parent, right, true, fits, &pd);
    finish(&pd);
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

/*
 * What a search asks of a hole, for one size and alignment, worked out once
 * against the window [lo, hi]: a hole holds it if size bytes fit from a
 * multiple of mask + 1 in its part inside the window. Each fit in the window
 * ends at end_min or above and starts at start_max or below, so a subtree
 * whose holes all end below end_min, or all start above start_max, holds
 * none; need is what a child's slot must reach at the search's level
 * (bytes for the gap, pages for the fits).
 */
struct want {
    uint64_t size, mask, need;
    uint64_t end_min, start_max;
    uint64_t over; /* 0, or the b of an over-ask (avl_gap_result.over_align) */
};

/*
 * Sets w for size bytes from a multiple of align in [lo, hi]; false if no
 * such fit exists in the window at all (nor in any hole, then).
 */
static bool want_init(struct want *w, uint64_t size, uint64_t align, uint64_t lo, uint64_t hi,
                      enum level level)
{
    uint64_t mask = align - 1, first = lo;

    if (first & mask) {
        if (first > UINT64_MAX - mask)
            return false; /* rounding up would wrap past 2^64 */
        first = (first + mask) & ~mask;
    }
    if (first > hi || hi - first < size - 1)
        return false;
    w->size = size;
    w->mask = mask;
    w->need = level == LEVEL_GAP ? size : pages_for_bytes(size);
    w->end_min = first + (size - 1);
    w->start_max = (hi - (size - 1)) & ~mask;
    return true;
}

/*
 * Whether n's slot on one side shows room for need, at a level fixed when
 * inlined. An empty side's slot is 0, and need is at least 1, so a slot
 * that shows room has a child behind it.
 */
__attribute__((always_inline)) static inline bool slot_holds(const struct avl_node *n, bool right,
                                                             enum level level, uint64_t need)
{
    if (level == LEVEL_GAP)
        return n->child_max[right] >= need;
    if (level == LEVEL_2M)
        return n->fit_2m[right] >= need;
    return n->fit_1g[right] >= need;
}

/* How a search of the holes ended. */
enum search_end {
    FOUND, /* *np is the node just above the hole */
    NONE,  /* no hole from where it started on holds the request */
    SPENT, /* past limit at a climb: *np is the node it read last, where the search can go on */
};

/*
 * Searches the holes in order from node *np on (the lowest first, or with
 * high the highest), for w in the window [lo, hi]; level and high are
 * constants once inlined, so each combination is a loop of its own, its
 * state in registers. *np has been read and counted in *visits.
 *
 * n's hole is [n->start - n->gap, n->start - 1]; the holes of its left
 * subtree lie below it, those of its right subtree above its range. A child
 * is entered only if its slot (read in the parent, so a subtree turned down
 * costs no read) shows room and its holes can reach the window's fits.
 * When a subtree is done the search climbs by parent links to the nearest
 * ancestor it left in its direction: that one's hole and other subtree come
 * next. So from any node it has read, the search can go on with another w.
 */
__attribute__((always_inline)) static inline enum search_end
search_holes(const struct avl_node **np, const struct want *w, uint64_t lo, uint64_t hi,
             enum level level, bool high, uint64_t limit, uint64_t *visits)
{
    const struct avl_node *n = *np, *p;
    const uint64_t size = w->size, mask = w->mask, need = w->need;
    const uint64_t end_min = w->end_min, start_max = w->start_max;
    uint64_t v = *visits;
    enum search_end end;

    for (;;) {
        /* Down towards the end the search starts from, while the subtree there can hold a fit. */
        if (!high) {
            /* A left child means a range below n: its hole starts at 1 or above. */
            while (slot_holds(n, false, level, need) & (n->start - n->gap - 1 >= end_min)) {
                n = n->left;
                ++v;
            }
        } else {
            /* A right child means a range above n: its last byte is below 2^64 - 1. */
            while (slot_holds(n, true, level, need) & (n->last + 1 <= start_max)) {
                n = n->right;
                ++v;
            }
        }
        for (;;) {
            uint64_t below = n->start - n->gap; /* the first byte of n's hole */

            if (!high) {
                if (below > start_max) {
                    end = NONE; /* this hole and every later one start too high */
                    goto out;
                }
                /*
                 * below and lo are at most start_max: rounding up cannot
                 * wrap, and a + size - 1 is at most hi. a is in the hole or
                 * past it, so the fit from a is in the hole if it ends below
                 * n's range: one test, which fails at every hole but the
                 * last, where two (gap >= size and the end) mispredicted
                 * more often.
                 */
                uint64_t a = (max_u64(below, lo) + mask) & ~mask;

                if (a + (size - 1) < n->start) {
                    end = FOUND;
                    goto out;
                }
                if (slot_holds(n, true, level, need) & (n->last + 1 <= start_max)) {
                    n = n->right;
                    ++v;
                    break;
                }
                while ((p = avl_parent(n)) && p->right == n)
                    n = p;
            } else {
                if (n->start <= end_min) {
                    end = NONE; /* this hole and every earlier one end too low */
                    goto out;
                }
                /*
                 * top >= end_min >= size - 1: taking size - 1 off cannot
                 * wrap. The fit from a ends in the hole or below n's range,
                 * so it is in the hole if it starts there (one test, as above).
                 */
                uint64_t a = (min_u64(n->start - 1, hi) - (size - 1)) & ~mask;

                if (a >= max_u64(below, lo)) {
                    end = FOUND;
                    goto out;
                }
                if (slot_holds(n, false, level, need) & (below - 1 >= end_min)) {
                    n = n->left;
                    ++v;
                    break;
                }
                while ((p = avl_parent(n)) && p->left == n)
                    n = p;
            }
            if (!p) {
                end = NONE;
                goto out;
            }
            /*
             * The budget is checked on the way up, not at each step down:
             * between two climbs a search only descends, so it stops at most
             * h - 1 reads past the budget, and a descent costs no check.
             */
            if (v > limit)
                goto spent;
            n = p; /* reached from the side already searched: its hole is next */
        }
    }
spent:
    end = SPENT;
out:
    *np = n;
    *visits = v;
    return end;
}

uint64_t avl_gap_budget(size_t count)
{
    /* ceil(log2(count + 2)), and 1.5 times it bounds the height (avl.h) */
    uint64_t l = 64 - (uint64_t)__builtin_clzll((unsigned long long)count + 1);

    return 3 * ((3 * l + 1) / 2);
}

/*
 * The edge hole a search comes to last: above the last range for the
 * lowest, below the first for the highest. The window's fits end at end_min
 * or above and start at start_max or below. Fills r->addr (and r->next).
 */
static inline bool other_edge(const struct avl_tree *t, const struct avl_gap_query *q, bool high,
                              uint64_t end_min, uint64_t start_max, struct avl_gap_result *r)
{
    uint64_t mask = q->align - 1;

    if (!high) {
        uint64_t from = max_u64(t->last->last + 1, q->lo);

        if (t->last->last == UINT64_MAX || from > start_max)
            return false;
        r->addr = (from + mask) & ~mask;
        return true;
    }
    if (t->first->start <= end_min)
        return false;
    r->addr = (min_u64(t->first->start - 1, q->hi) - (q->size - 1)) & ~mask;
    r->next = t->first;
    return true;
}

/*
 * other_edge() past the tree's search, which has the request's window from
 * q alone: gap_start() found a fit in it, so neither bound wraps.
 */
static inline bool edge_after_search(const struct avl_tree *t, const struct avl_gap_query *q,
                                     bool high, struct avl_gap_result *r)
{
    uint64_t mask = q->align - 1;

    if (!high)
        return other_edge(t, q, false, 0, (q->hi - (q->size - 1)) & ~mask, r);
    return other_edge(t, q, true, ((q->lo + mask) & ~mask) + (q->size - 1), 0, r);
}

/* The request's own fit in the hole below n: the lowest or highest, as the search. */
static inline uint64_t fit_in_hole(const struct avl_node *n, const struct avl_gap_query *q,
                                   bool high)
{
    uint64_t mask = q->align - 1;

    if (!high)
        return (max_u64(n->start - n->gap, q->lo) + mask) & ~mask;
    return (min_u64(n->start - 1, q->hi) - (q->size - 1)) & ~mask;
}

/*
 * A search's end: the fit in hole n if the search found one (over_align
 * says at which over-ask), else the other edge hole. visits are those read.
 */
__attribute__((always_inline)) static inline bool
search_done(const struct avl_tree *t, const struct avl_gap_query *q, bool high, enum search_end end,
            const struct avl_node *n, uint64_t visits, uint64_t over, struct avl_gap_result *r)
{
    r->visits = visits;
    r->over_align = over;
    if (end != FOUND)
        return edge_after_search(t, q, high, r);
    r->addr = fit_in_hole(n, q, high);
    r->next = (struct avl_node *)n;
    return true;
}

/*
 * The search for size + align - 1 bytes at any address, which the largest
 * gap bounds exactly, from the root: where a search's bound is not exact
 * (ranges off the page grain, sizes past the fits' saturation) and it has
 * read avl_gap_budget() nodes. Then the other edge hole. visits are those
 * read so far.
 */
static __attribute__((noinline)) bool any_address(const struct avl_tree *t,
                                                  const struct avl_gap_query *q, bool high,
                                                  uint64_t visits, struct avl_gap_result *r)
{
    const struct avl_node *n = t->root;
    enum search_end end = NONE;
    struct want w;

    visits++;
    if (q->size <= UINT64_MAX - (q->align - 1) &&
        want_init(&w, q->size + (q->align - 1), 1, q->lo, q->hi, LEVEL_GAP))
        end = high ? search_holes(&n, &w, q->lo, q->hi, LEVEL_GAP, true, UINT64_MAX, &visits)
                   : search_holes(&n, &w, q->lo, q->hi, LEVEL_GAP, false, UINT64_MAX, &visits);
    return search_done(t, q, high, end, n, visits, 1, r);
}

/*
 * The tree's holes for w at one level and in one direction, both constants
 * once inlined, then the other edge hole: fills *r and returns whether the
 * request was found. w->over is 0 for the request itself, or the b of its
 * over-ask.
 *
 * Cost, counted in nodes read: a node is read when its subtree straddles an
 * edge of the window's fits (the two root-to-leaf paths to the edges) or
 * when its parent's slot for it shows room. Where the bound is exact, a
 * subtree that lies inside the window and shows room holds a fit, so the
 * search finds it along one more path and never turns back: at most 3h - 2
 * reads. Where it is only an upper bound (off the page grain, past the fits'
 * saturation), subtrees whose holes pass it but have no aligned room are
 * entered in vain, k of them up to O(k log(n/k)) reads: the budget cuts that
 * short, and any_address() starts over.
 */
__attribute__((always_inline)) static inline bool
level_find(const struct avl_tree *t, const struct avl_gap_query *q, bool high, enum level level,
           const struct want *w, struct avl_gap_result *r)
{
    const struct avl_node *n = t->root;
    uint64_t visits = 1, limit = q->align == 1 ? UINT64_MAX : avl_gap_budget(t->count);
    enum search_end end = search_holes(&n, w, q->lo, q->hi, level, high, limit, &visits);

    if (end == SPENT)
        return any_address(t, q, high, visits, r);
    return search_done(t, q, high, end, n, visits, w->over, r);
}

/*
 * level_find() for each level and direction, each out of line on its own:
 * a loop that shares its function with no other gets the registers to
 * itself, and the search's entry keeps no frame for them.
 */
static __attribute__((noinline)) bool low_gap(const struct avl_tree *t,
                                              const struct avl_gap_query *q, const struct want *w,
                                              struct avl_gap_result *r)
{
    return level_find(t, q, false, LEVEL_GAP, w, r);
}

static __attribute__((noinline)) bool low_2m(const struct avl_tree *t,
                                             const struct avl_gap_query *q, const struct want *w,
                                             struct avl_gap_result *r)
{
    return level_find(t, q, false, LEVEL_2M, w, r);
}

static __attribute__((noinline)) bool low_1g(const struct avl_tree *t,
                                             const struct avl_gap_query *q, const struct want *w,
                                             struct avl_gap_result *r)
{
    return level_find(t, q, false, LEVEL_1G, w, r);
}

static __attribute__((noinline)) bool high_gap(const struct avl_tree *t,
                                               const struct avl_gap_query *q, const struct want *w,
                                               struct avl_gap_result *r)
{
    return level_find(t, q, true, LEVEL_GAP, w, r);
}

static __attribute__((noinline)) bool high_2m(const struct avl_tree *t,
                                              const struct avl_gap_query *q, const struct want *w,
                                              struct avl_gap_result *r)
{
    return level_find(t, q, true, LEVEL_2M, w, r);
}

static __attribute__((noinline)) bool high_1g(const struct avl_tree *t,
                                              const struct avl_gap_query *q, const struct want *w,
                                              struct avl_gap_result *r)
{
    return level_find(t, q, true, LEVEL_1G, w, r);
}

/*
 * The search of the tree's holes for q at one level (b its alignment), whose
 * fits in the window end at end_min or above and start at start_max or
 * below, then of the other edge hole, for a constant high: works out what
 * to search for, and calls that level's loop.
 */
__attribute__((always_inline)) static inline bool
level_call(const struct avl_tree *t, const struct avl_gap_query *q, bool high, enum level level,
           uint64_t b, uint64_t end_min, uint64_t start_max, struct avl_gap_result *r)
{
    uint64_t a = q->align, size = q->size;
    struct want w = {size,    a - 1,     level == LEVEL_GAP ? size : pages_for_bytes(size),
                     end_min, start_max, 0};

    if (b < a) {
        /*
         * Not an alignment the slots know: size + align - b bytes from a
         * multiple of b, which the slots bound at b; from a multiple of b,
         * align - b more bytes reach a multiple of align.
         */
        r->over_align = b;
        if (size > UINT64_MAX - (a - b) || !want_init(&w, size + (a - b), b, q->lo, q->hi, level))
            return edge_after_search(t, q, high, r);
        w.over = b;
    }
    /* A saturated fit says only that it is big: sizes past it are bounded by the gap. */
    if (level != LEVEL_GAP && w.need > FIT_SAT) {
        w.need = w.size;
        return high ? high_gap(t, q, &w, r) : low_gap(t, q, &w, r);
    }
    if (level == LEVEL_GAP)
        return high ? high_gap(t, q, &w, r) : low_gap(t, q, &w, r);
    if (level == LEVEL_2M)
        return high ? high_2m(t, q, &w, r) : low_2m(t, q, &w, r);
    return high ? high_1g(t, q, &w, r) : low_1g(t, q, &w, r);
}

/* level_call() at the level q's alignment picks. */
__attribute__((always_inline)) static inline bool
tree_find(const struct avl_tree *t, const struct avl_gap_query *q, bool high, uint64_t end_min,
          uint64_t start_max, struct avl_gap_result *r)
{
    if (q->align < AVL_ALIGN_2M)
        return level_call(t, q, high, LEVEL_GAP, 0x1000, end_min, start_max, r);
    if (q->align < AVL_ALIGN_1G)
        return level_call(t, q, high, LEVEL_2M, AVL_ALIGN_2M, end_min, start_max, r);
    return level_call(t, q, high, LEVEL_1G, AVL_ALIGN_1G, end_min, start_max, r);
}

/*
 * avl_gap_find(), for a constant high: the window's fits, the edge hole on
 * the side the search favours, the tree (only if its largest gap could hold
 * the request, so that a search every hole is too small for reads the root
 * alone and costs little), the other edge hole.
 */
__attribute__((always_inline)) static inline bool gap_find(const struct avl_tree *t,
                                                           const struct avl_gap_query *q, bool high,
                                                           struct avl_gap_result *r)
{
    uint64_t mask = q->align - 1, size = q->size, first = q->lo, hi = q->hi, end_min, start_max;
    const struct avl_node *root = t->root;

    r->next = NULL;
    r->visits = 0;
    r->over_align = 0;
    /*
     * The window's first and last aligned fits; none, and nothing fits
     * anywhere. Rounding up is done whether lo is aligned or not (no branch
     * to mispredict), but near 2^64 where it would wrap.
     */
    if (first <= UINT64_MAX - mask)
        first = (first + mask) & ~mask;
    else if (first & mask)
        return false;
    if (first > hi || hi - first < size - 1)
        return false;
    end_min = first + (size - 1);
    start_max = (hi - (size - 1)) & ~mask;
    if (!root) {
        r->addr = high ? start_max : first;
        return true;
    }
    /* The edge hole on the favoured side: below the first range, or above the last. */
    if (!high && t->first->start > end_min) {
        r->addr = first;
        r->next = t->first;
        return true;
    }
    if (high && t->last->last < start_max) {
        r->addr = start_max;
        return true;
    }
    r->visits = 1;
    if (avl_max_gap(root) >= size)
        return tree_find(t, q, high, end_min, start_max, r);
    return other_edge(t, q, high, end_min, start_max, r);
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
