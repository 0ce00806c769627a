/*
 * avl: the intrusive, gap-augmented AVL tree declared in vmm/avl.h.
 *
 * Heights are not stored: each node keeps its balance factor in the two low
 * bits of its parent link, so the node fits one 64-byte cache line.
 *
 * The augmentation is split so that no update ever reads a sibling. A node
 * holds the hole just below its own range (gap) and one slot per child, the
 * largest gap in that child's subtree (left_max, right_max). A slot is a
 * function of its child alone, avl_max_gap(child), so after a change the walk
 * towards the root finishes each ancestor from the child it came from with
 * one compare and one store, and stops at the first slot that already holds
 * the child's new maximum: everything above was computed from that value.
 * (Keeping one largest gap per node instead, as a subtree summary, means a
 * shrinking maximum must be recomputed from both children at every level; on
 * a tree too big for the cache each of those sibling reads is a miss.)
 *
 * An insert or an erase changes at most two gaps, the node's own and its
 * successor's, and the successor always lies on the path the rebalancing walk
 * takes (an ancestor of the new leaf; on erase, the node that moves up or an
 * ancestor of the erased one). Gaps are set first, then the walk runs: while
 * the height below has changed (rebalance()) it adjusts balance factors,
 * rotates where one reaches +-2 (a rotation only moves slots between the two
 * nodes it turns) and refreshes each parent's slot; once heights stop
 * changing, propagate() carries the new maximum up until nothing changes. A
 * last propagate() from the successor covers a walk that stopped below it.
 * O(log n) at worst. avl_insert_range() does the same from the path its
 * descent recorded (grow_fixup()), so its walk up reads no parent links.
 *
 * The holes below the first range and above the last are not stored in any
 * node: the tree keeps first and last, and the gap search tries those two
 * holes directly.
 *
 * The gap search (gap_lowest/gap_highest) descends with the span of
 * addresses a subtree's holes can lie in, [lo, hi], clipped to the query
 * window: below a node's hole for its left subtree, above its range for its
 * right. A subtree is entered only if its largest gap is big enough and its
 * span has an aligned place for the request; both are known in the parent
 * (its slot for the child, and the span), so a subtree that fails them is
 * never read.
 *
 * Callers: vmm/src/space.c (the address space), the host tests and benchmarks.
 */
#include <vmm/avl.h>

_Static_assert(_Alignof(struct avl_node) > AVL_BALANCE_MASK, "no room for the balance bits");
_Static_assert(offsetof(struct avl_node, child_max[1]) == offsetof(struct avl_node, right_max),
               "child_max[] and the named slots must be the same storage");

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

/*
 * c's own values are right; makes each ancestor's slot for the child below
 * it match that child, stopping at the first one that already does. The
 * subtree maximum travels in a register: each level's is computed from the
 * one below and the parent's other two values, never read back from a store.
 */
static void propagate(struct avl_node *c)
{
    struct avl_node *p;
    uint64_t m = avl_max_gap(c);

    while ((p = avl_parent(c))) {
        bool right = p->right == c;
        uint64_t *slot = &p->child_max[right];
        uint64_t other = p->child_max[!right];

        if (*slot == m)
            return;
        *slot = m;
        m = max_u64(m, max_u64(other, p->gap));
        c = p;
    }
}

/*
 * Relinks and moves the slots; balance factors are the caller's. The
 * subtree's maximum is unchanged, so the parent's slot stays right.
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
    n->right_max = r->left_max;
    if (r->left)
        set_parent(r->left, n);
    r->left = n;
    r->left_max = avl_max_gap(n);
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
    n->left_max = l->right_max;
    if (l->right)
        set_parent(l->right, n);
    l->right = n;
    l->right_max = avl_max_gap(n);
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
 * set. Adjusts balance factors and rotates up the tree while the height keeps
 * changing, refreshing each parent's slot on the way, then hands over to
 * propagate().
 */
static void rebalance(struct avl_tree *t, struct avl_node *n, bool right, bool grew)
{
    while (n) {
        int b = avl_balance(n) + (right == grew ? 1 : -1);
        bool changed; /* whether n's subtree height changed in all */
        struct avl_node *p;

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
            propagate(n);
            return;
        }
        p = avl_parent(n);
        if (!p)
            return;
        right = p->right == n;
        p->child_max[right] = avl_max_gap(n);
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
 * Returns false when node became the root (nothing to fix).
 */
static bool attach(struct avl_tree *t, struct avl_node *node, struct avl_node *parent, bool right,
                   struct avl_node *succ)
{
    node->left = node->right = NULL;
    node->parent_balance = (uintptr_t)parent;
    set_balance(node, 0);
    node->left_max = node->right_max = 0;
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
        parent->left_max = node->gap;
    } else {
        parent->right = node;
        node->gap = node->start - parent->last - 1;
        if (!succ)
            t->last = node;
        parent->right_max = node->gap;
    }
    if (succ)
        succ->gap = succ->start - node->last - 1;
    return true;
}

void avl_insert_at(struct avl_tree *t, struct avl_node *node, struct avl_node *parent,
                   struct avl_node **link)
{
    bool right = parent && link == &parent->right;
    struct avl_node *succ;

    if (!right)
        succ = parent;
    else
        succ = parent == t->last ? NULL : next_above(parent);
    if (!attach(t, node, parent, right, succ))
        return;
    rebalance(t, parent, right, true);
    if (succ)
        propagate(succ);
}

/*
 * Deeper than any AVL tree in a 64-bit address space: height h needs at
 * least Fibonacci(h + 2) - 1 nodes, over 2^64 for h = 92.
 */
#define PATH_MAX_DEPTH 96

/*
 * The end of a fix-up from a recorded path (as propagate(), without parent
 * links): r, now at path[i + 1]'s place, is right, and above it only slots
 * change, and the successor's own gap if it is still above (path[s]). A
 * slot that already holds the new maximum ends the walk only once the
 * successor is below.
 */
static void refresh_slots(struct avl_node *const *path, const bool *dirs, int i,
                          const struct avl_node *r, int s)
{
    uint64_t m = avl_max_gap(r);

    for (; i >= 0; i--) {
        struct avl_node *p = path[i];
        uint64_t *slot = &p->child_max[dirs[i]];
        uint64_t other = p->child_max[!dirs[i]];

        if (*slot == m && s > i)
            return;
        *slot = m;
        m = max_u64(m, max_u64(other, p->gap));
    }
}

/*
 * The fix-up after an insert, from the path the descent recorded: path[0]
 * is the root, path[d - 1] the new node's parent, dirs[i] whether path[i + 1]
 * (or the new node) is path[i]'s right child; path[s] is the successor, s =
 * d if there is none. As rebalance() and propagate() do, but each ancestor
 * comes from the array instead of from the parent link of the node below,
 * so the walk up is not a chain of dependent loads.
 */
static void grow_fixup(struct avl_tree *t, struct avl_node *const *path, const bool *dirs, int d,
                       int s)
{
    struct avl_node *r;
    int i;

    /* While the subtree below keeps growing: balance factors and the slot above. */
    for (i = d - 1;; i--) {
        struct avl_node *n = path[i];
        int b = avl_balance(n) + (dirs[i] ? 1 : -1);

        if (b > 1 || b < -1) {
            bool lower;

            /* One rotation restores the height the subtree had before the insert. */
            r = b > 1 ? fix_right_heavy(t, n, &lower) : fix_left_heavy(t, n, &lower);
            break;
        }
        set_balance(n, b);
        if (b == 0) {
            r = n;
            break;
        }
        if (i == 0)
            return; /* the whole tree grew; every slot on the path is set */
        path[i - 1]->child_max[dirs[i - 1]] = avl_max_gap(n);
    }
    refresh_slots(path, dirs, i - 1, r, s);
}

void avl_insert_range(struct avl_tree *t, struct avl_node *node)
{
    struct avl_node *path[PATH_MAX_DEPTH];
    bool dirs[PATH_MAX_DEPTH];
    struct avl_node *n = t->root;
    uint64_t start = node->start;
    int d = 0, s = -1;

    /*
     * Without branches, as avl_child() says, recording the path; the
     * successor is the last node the descent leaves to the left.
     */
    while (n && d < PATH_MAX_DEPTH) {
        bool right = n->start <= start;

        path[d] = n;
        dirs[d] = right;
        s = right ? s : d;
        d++;
        n = avl_child(n, right);
    }
    if (n) {
        /* Only a corrupt tree is this deep: link without the array. */
        struct avl_node *parent = NULL, **link = &t->root;

        while (*link) {
            parent = *link;
            link = start < parent->start ? &parent->left : &parent->right;
        }
        avl_insert_at(t, node, parent, link);
        return;
    }
    if (!attach(t, node, d ? path[d - 1] : NULL, d && dirs[d - 1], s >= 0 ? path[s] : NULL))
        return;
    grow_fixup(t, path, dirs, d, s >= 0 ? s : d);
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
 * *right telling which of its subtrees; balance factors and slots from there
 * up are the caller's to fix, and so is propagating succ's new gap.
 */
static struct avl_node *unlink_node(struct avl_tree *t, struct avl_node *node,
                                    struct avl_node *succ, bool *right)
{
    struct avl_node *parent = avl_parent(node);
    struct avl_node *from;

    /* The successor's hole absorbs node's hole and node's range. */
    if (succ)
        succ->gap = node == t->first ? 0 : succ->gap + node->gap + (node->last - node->start) + 1;
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
        if (from)
            from->child_max[*right] = child ? avl_max_gap(child) : 0;
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

            sp->left = succ->right;
            sp->left_max = succ->right_max;
            if (succ->right)
                set_parent(succ->right, sp);
            succ->right = node->right;
            /* node's slot: the walk from sp refreshes it on the way up. */
            succ->right_max = node->right_max;
            set_parent(node->right, succ);
            from = sp;
            *right = false;
        }
        succ->left = node->left;
        succ->left_max = node->left_max;
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
 * Finds the successor, unlinks, then rebalances and propagates upwards from
 * the node by parent links, stopping where nothing changes any more.
 */
void avl_erase(struct avl_tree *t, struct avl_node *node)
{
    struct avl_node *succ, *from;
    bool right;

    if (node->right) {
        succ = node->right;
        while (succ->left)
            succ = succ->left;
    } else {
        succ = node == t->last ? NULL : next_above(node);
    }
    from = unlink_node(t, node, succ, &right);
    rebalance(t, from, right, false);
    if (succ)
        propagate(succ);
}

void avl_adjust(struct avl_tree *t, struct avl_node *node, uint64_t start, uint64_t last)
{
    struct avl_node *succ = node == t->last ? NULL : avl_next(node);

    /* The hole below keeps its lower end (mod 2^64: start may move down). */
    if (node != t->first)
        node->gap = node->gap + start - node->start;
    node->start = start;
    node->last = last;
    if (succ)
        succ->gap = succ->start - last - 1;
    /* Either order is right: each walk stops only where the values above already agree. */
    propagate(node);
    if (succ)
        propagate(succ);
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

struct gap_search {
    const struct avl_gap_query *q;
    uint64_t mask; /* align - 1 */
    uint64_t visits;
};

/* Lowest aligned fit inside the free span [lo, hi] (lo <= hi). */
static bool fit_low(const struct gap_search *g, uint64_t lo, uint64_t hi, uint64_t *addr)
{
    uint64_t a = lo;

    if (a & g->mask) {
        if (a > UINT64_MAX - g->mask)
            return false; /* rounding up would wrap past 2^64 */
        a = (a + g->mask) & ~g->mask;
    }
    if (a > hi || hi - a < g->q->size - 1)
        return false;
    *addr = a;
    return true;
}

/* Highest aligned fit inside the free span [lo, hi] (lo <= hi). */
static bool fit_high(const struct gap_search *g, uint64_t lo, uint64_t hi, uint64_t *addr)
{
    uint64_t a;

    if (hi - lo < g->q->size - 1)
        return false;
    a = (hi - (g->q->size - 1)) & ~g->mask;
    if (a < lo)
        return false;
    *addr = a;
    return true;
}

/*
 * Whether the subtree below a slot can hold a fit: its largest gap (the
 * parent's slot for it, so a subtree that fails costs no read of its root)
 * is big enough, and its span [lo, hi] has an aligned place for the request.
 */
static bool worth_entering(const struct gap_search *g, uint64_t max_gap, uint64_t lo, uint64_t hi)
{
    uint64_t unused;

    return max_gap >= g->q->size && fit_low(g, lo, hi, &unused);
}

/* Reads the root (one visit) and tells whether the tree is worth entering. */
static bool enter_root(struct gap_search *g, const struct avl_tree *t)
{
    g->visits++;
    return worth_entering(g, avl_max_gap(t->root), g->q->lo, g->q->hi);
}

/*
 * The lowest fit among the holes of subtree n, where [lo, hi] is the window
 * clipped to the addresses those holes can lie in (lo <= hi) and
 * worth_entering() holds for n. n's hole is [n->start - n->gap, n->start -
 * 1]; its left subtree's holes lie below that, its right subtree's above n's
 * range. A child is entered only if worth_entering() holds for it too.
 */
static bool gap_lowest(struct gap_search *g, const struct avl_node *n, uint64_t lo, uint64_t hi,
                       uint64_t *addr)
{
    for (;;) {
        uint64_t below = n->start - n->gap; /* the first byte of n's hole */

        if (n->left && below > lo && worth_entering(g, n->left_max, lo, min_u64(below - 1, hi))) {
            g->visits++;
            if (gap_lowest(g, n->left, lo, min_u64(below - 1, hi), addr))
                return true;
        }
        if (n->gap >= g->q->size && n->start > lo && below <= hi &&
            fit_low(g, max_u64(below, lo), min_u64(n->start - 1, hi), addr))
            return true;
        if (!n->right || n->last >= hi ||
            !worth_entering(g, n->right_max, max_u64(n->last + 1, lo), hi))
            return false;
        lo = max_u64(n->last + 1, lo);
        n = n->right;
        g->visits++;
    }
}

/* The mirror image of gap_lowest: right subtree first, highest fit. */
static bool gap_highest(struct gap_search *g, const struct avl_node *n, uint64_t lo, uint64_t hi,
                        uint64_t *addr)
{
    for (;;) {
        uint64_t below = n->start - n->gap;

        if (n->right && n->last < hi &&
            worth_entering(g, n->right_max, max_u64(n->last + 1, lo), hi)) {
            g->visits++;
            if (gap_highest(g, n->right, max_u64(n->last + 1, lo), hi, addr))
                return true;
        }
        if (n->gap >= g->q->size && n->start > lo && below <= hi &&
            fit_high(g, max_u64(below, lo), min_u64(n->start - 1, hi), addr))
            return true;
        if (!n->left || below <= lo || !worth_entering(g, n->left_max, lo, min_u64(below - 1, hi)))
            return false;
        hi = min_u64(below - 1, hi);
        n = n->left;
        g->visits++;
    }
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
 * Cost, counted in nodes read (visits). A node is read when its span
 * straddles an edge of the window (two root-to-leaf paths, O(log n)) or when
 * its subtree holds a big-enough hole and its span contains an aligned
 * address with room after it; both are known from the parent, so a child
 * that fails them is never read. Below the answer's path, the only subtrees
 * entered in vain are those holding a hole that is big enough but cannot
 * take the alignment; with k such holes the search reads O(log n + k
 * log(n/k)) nodes, O(log n + k) when they are neighbours in address order.
 * If no hole between two ranges is big enough, the root's check fails and
 * the search stops after one read; the two edge holes cost none.
 */
static bool gap_search(const struct avl_tree *t, const struct avl_gap_query *q, bool high,
                       uint64_t *addr, uint64_t *visits)
{
    struct gap_search g = {.q = q, .mask = q->align - 1, .visits = 0};
    bool (*fit)(const struct gap_search *, uint64_t, uint64_t, uint64_t *) =
        high ? fit_high : fit_low;
    /* The edge hole on the side the search favours, the tree, the other edge hole. */
    bool (*near)(const struct avl_tree *, const struct avl_gap_query *, uint64_t *, uint64_t *) =
        high ? tail_hole : head_hole;
    bool (*far)(const struct avl_tree *, const struct avl_gap_query *, uint64_t *, uint64_t *) =
        high ? head_hole : tail_hole;
    uint64_t lo, hi;
    bool found;

    if (!t->root)
        found = fit(&g, q->lo, q->hi, addr);
    else
        found = (near(t, q, &lo, &hi) && fit(&g, lo, hi, addr)) ||
                (enter_root(&g, t) &&
                 (high ? gap_highest : gap_lowest)(&g, t->root, q->lo, q->hi, addr)) ||
                (far(t, q, &lo, &hi) && fit(&g, lo, hi, addr));
    if (visits)
        *visits += g.visits;
    return found;
}

bool avl_gap_lowest(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *addr,
                    uint64_t *visits)
{
    return gap_search(t, q, false, addr, visits);
}

bool avl_gap_highest(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *addr,
                     uint64_t *visits)
{
    return gap_search(t, q, true, addr, visits);
}

/* ---- checker ---- */

struct check {
    const char *why;
    const struct avl_node *first; /* the first node in order */
    const struct avl_node *prev;  /* the previous node in order */
    size_t count;
};

/* Checks the subtree at n (whose parent must be parent); returns its height or -1. */
static int check_node(struct check *c, const struct avl_node *n, const struct avl_node *parent)
{
    int hl, hr;

    if (!n)
        return 0;
    if (avl_parent(n) != parent) {
        c->why = "parent link does not match child link";
        return -1;
    }
    hl = check_node(c, n->left, n);
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
    hr = check_node(c, n->right, n);
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
    if (n->left_max != (n->left ? avl_max_gap(n->left) : 0)) {
        c->why = "left_max is wrong";
        return -1;
    }
    if (n->right_max != (n->right ? avl_max_gap(n->right) : 0)) {
        c->why = "right_max is wrong";
        return -1;
    }
    return 1 + (hl > hr ? hl : hr);
}

bool avl_check(const struct avl_tree *t, const char **why)
{
    struct check c = {.why = NULL, .first = NULL, .prev = NULL, .count = 0};

    if (check_node(&c, t->root, NULL) >= 0) {
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
