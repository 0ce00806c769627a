/*
 * avl: the intrusive, gap-augmented AVL tree declared in vmm/avl.h.
 *
 * Heights are not stored: each node keeps its balance factor in the two low
 * bits of its parent link, so the node fits one 64-byte cache line. Every
 * change ends with a walk from the lowest node whose children changed towards
 * the root, in two phases. While the subtree below has changed height
 * (rebalance()), the walk adjusts each node's balance factor, rotates where it
 * reaches +-2, and recomputes the node's augmentation from its two children.
 * A rotation recomputes the node it lowers first, then the one it raises.
 * Once heights stop changing (augment_up()), only the augmentation can still
 * change: a node is finished from the child the walk came from alone (the
 * sibling is read only when that child held the largest hole and it shrank),
 * and the walk stops at the first node whose augmentation comes out
 * unchanged, since every ancestor is a function of its children's values
 * only. O(log n) at worst.
 *
 * The gap search (gap_lowest/gap_highest) descends with the span of free
 * bytes a subtree can own, [lo, hi]: the bytes between its in-order
 * neighbours outside it, clipped to the query window. A subtree is entered
 * only if the largest hole it could hold (its max_gap or one of its two edge
 * holes) is big enough; a subtree lying wholly outside the window means the
 * span is entirely free and is answered without entering it.
 *
 * Callers: vmm/space.c (the address space), the host tests and benchmarks.
 */
#include <vmm/avl.h>

_Static_assert(_Alignof(struct avl_node) > AVL_BALANCE_MASK, "no room for the balance bits");

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
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

/* Recomputes n's augmentation from n and its children. */
static void update(struct avl_node *n)
{
    struct avl_node *l = n->left, *r = n->right;
    uint64_t gap = 0;

    n->sub_start = l ? l->sub_start : n->start;
    n->sub_last = r ? r->sub_last : n->last;
    /* Ranges are disjoint, so start - sub_last - 1 never underflows. */
    if (l)
        gap = max_u64(l->max_gap, n->start - l->sub_last - 1);
    if (r)
        gap = max_u64(gap, max_u64(r->max_gap, r->sub_start - n->last - 1));
    n->max_gap = gap;
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

/*
 * Relinks and recomputes the augmentation; balance factors are the caller's.
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
    if (r->left)
        set_parent(r->left, n);
    r->left = n;
    set_parent(n, r);
    set_parent(r, p);
    replace_child(t, p, n, r);
    update(n);
    update(r);
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
    if (l->right)
        set_parent(l->right, n);
    l->right = n;
    set_parent(n, l);
    set_parent(l, p);
    replace_child(t, p, n, l);
    update(n);
    update(l);
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

/* What a parent reads of a subtree's augmentation. */
struct summary {
    uint64_t sub_start, sub_last, max_gap;
};

static struct summary summary_of(const struct avl_node *n)
{
    return (struct summary){n->sub_start, n->sub_last, n->max_gap};
}

static bool summary_equal(const struct summary *a, const struct summary *b)
{
    return a->sub_start == b->sub_start && a->sub_last == b->sub_last && a->max_gap == b->max_gap;
}

/* The largest hole in n's left part: inside its left subtree or just before n. */
static uint64_t left_part(const struct avl_node *n, const struct summary *l)
{
    return max_u64(l->max_gap, n->start - l->sub_last - 1);
}

/* The largest hole in n's right part: just after n or inside its right subtree. */
static uint64_t right_part(const struct avl_node *n, const struct summary *r)
{
    return max_u64(r->max_gap, r->sub_start - n->last - 1);
}

/*
 * Updates n after only its child c changed from summary was to now, with the
 * same height: its augmentation follows from c's new summary and n's stored
 * one, without reading the other child unless c's side held n's largest hole
 * and shrank.
 * => n's stored values were computed from `was` and the other child's summary.
 */
static void update_from_child(struct avl_node *n, const struct avl_node *c,
                              const struct summary *was, const struct summary *now)
{
    uint64_t part_now, part_was, gap = n->max_gap;
    struct summary other;

    if (c == n->left) {
        n->sub_start = now->sub_start;
        part_now = left_part(n, now);
        part_was = left_part(n, was);
    } else {
        n->sub_last = now->sub_last;
        part_now = right_part(n, now);
        part_was = right_part(n, was);
    }
    if (part_now >= gap) {
        gap = part_now; /* the other side's part is at most the old maximum */
    } else if (part_was == gap) {
        /* c's side held the maximum and shrank: the other side decides. */
        gap = part_now;
        if (c == n->left && n->right) {
            other = summary_of(n->right);
            gap = max_u64(gap, right_part(n, &other));
        } else if (c == n->right && n->left) {
            other = summary_of(n->left);
            gap = max_u64(gap, left_part(n, &other));
        }
    } /* else the maximum lies on the other side and stays */
    n->max_gap = gap;
}

/*
 * The second phase: c's height is unchanged and its augmentation has been
 * recomputed; `was` is its summary before. Finishes each ancestor from the
 * child below until one comes out unchanged. full (or NULL) is an erased
 * node's successor that took its place: its stored values were the erased
 * node's, so it is recomputed from both children.
 */
static void augment_up(struct avl_node *c, struct summary was, const struct avl_node *full)
{
    struct summary now = summary_of(c);

    while (!summary_equal(&was, &now)) {
        struct avl_node *n = avl_parent(c);

        if (!n)
            return;
        struct summary before = summary_of(n);

        if (n == full)
            update(n);
        else
            update_from_child(n, c, &was, &now);
        was = before;
        now = summary_of(n);
        c = n;
    }
}

/*
 * The first phase: n's subtree on the right (or left) side grew (or shrank
 * when grew is false) by one level, and n's children are linked. Adjusts
 * balance factors and rotates up the tree while the height keeps changing,
 * then hands over to augment_up(). full is as there.
 */
static void rebalance(struct avl_tree *t, struct avl_node *n, bool right, bool grew,
                      const struct avl_node *full)
{
    while (n) {
        struct summary old = summary_of(n); /* a rotated subtree holds the same nodes */
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
            update(n);
            changed = grew ? b != 0 : b == 0;
        }
        if (!changed) {
            augment_up(n, old, full);
            return;
        }
        p = avl_parent(n);
        if (p)
            right = p->right == n;
        n = p;
    }
}

void avl_init(struct avl_tree *t)
{
    t->root = NULL;
    t->count = 0;
}

void avl_insert_at(struct avl_tree *t, struct avl_node *node, struct avl_node *parent,
                   struct avl_node **link)
{
    node->left = node->right = NULL;
    node->parent_balance = (uintptr_t)parent;
    set_balance(node, 0);
    node->sub_start = node->start;
    node->sub_last = node->last;
    node->max_gap = 0;
    *link = node;
    t->count++;
    if (parent)
        rebalance(t, parent, link == &parent->right, true, NULL);
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

void avl_erase(struct avl_tree *t, struct avl_node *node)
{
    struct avl_node *parent = avl_parent(node);
    struct avl_node *from; /* the lowest node whose subtree changed */
    struct avl_node *s = NULL;
    bool right; /* which of from's subtrees lost a level */

    if (!node->left || !node->right) {
        struct avl_node *child = node->left ? node->left : node->right;

        if (child)
            set_parent(child, parent);
        right = parent && parent->right == node;
        replace_child(t, parent, node, child);
        from = parent;
    } else {
        /*
         * Two children: the successor s (leftmost of the right subtree) takes
         * node's place. s has no left child; its right child moves up into
         * s's old slot.
         *
         *      node              s
         *      /  \             / \
         *     a    r           a   r
         *         /     =>        /
         *        s               x
         *         \
         *          x
         */
        s = node->right;
        while (s->left)
            s = s->left;
        if (s == node->right) {
            from = s; /* s's right subtree, s's old one, is a level lower than node's was */
            right = true;
        } else {
            struct avl_node *sp = avl_parent(s);

            sp->left = s->right;
            if (s->right)
                set_parent(s->right, sp);
            s->right = node->right;
            set_parent(node->right, s);
            from = sp;
            right = false;
        }
        s->left = node->left;
        set_parent(node->left, s);
        s->parent_balance = node->parent_balance; /* node's parent and balance factor */
        replace_child(t, parent, node, s);
        /*
         * s inherits node's stored summary, the old one of the subtree it now
         * roots, which is what the walk compares against (and what s's parent
         * was computed from). The walk cannot stop below s: every node from
         * `from` up to node->right lost its minimum, s.
         */
        s->sub_start = node->sub_start;
        s->sub_last = node->sub_last;
        s->max_gap = node->max_gap;
    }
    t->count--;
    node->left = node->right = NULL;
    node->parent_balance = 0;
    rebalance(t, from, right, false, s);
}

void avl_adjust(struct avl_tree *t, struct avl_node *node, uint64_t start, uint64_t last)
{
    struct summary was = summary_of(node);

    (void)t;
    node->start = start;
    node->last = last;
    update(node);
    augment_up(node, was, NULL);
}

struct avl_node *avl_first(const struct avl_tree *t)
{
    struct avl_node *n = t->root;

    while (n && n->left)
        n = n->left;
    return n;
}

struct avl_node *avl_last(const struct avl_tree *t)
{
    struct avl_node *n = t->root;

    while (n && n->right)
        n = n->right;
    return n;
}

struct avl_node *avl_next(const struct avl_node *n)
{
    if (n->right) {
        n = n->right;
        while (n->left)
            n = n->left;
        return (struct avl_node *)n;
    }
    while (avl_parent(n) && avl_parent(n)->right == n)
        n = avl_parent(n);
    return avl_parent(n);
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
 * Could subtree n, owning the free span [lo, hi], hold the request anywhere?
 * No, if even the whole span, ignoring the ranges in it, has no aligned
 * place for size bytes (this skips whole subtrees between two boundaries of a
 * large alignment). No, if no hole in it is big enough: the two edge holes
 * (clipped to the span) and the internal max_gap all fall short.
 */
static bool may_fit(const struct gap_search *g, const struct avl_node *n, uint64_t lo, uint64_t hi)
{
    uint64_t size = g->q->size, unused;

    if (!fit_low(g, lo, hi, &unused))
        return false;
    if (n->max_gap >= size)
        return true;
    if (n->sub_start > lo && n->sub_start - lo >= size)
        return true;
    return n->sub_last < hi && hi - n->sub_last >= size;
}

/*
 * The lowest fit among the free bytes of [lo, hi] not covered by subtree n,
 * where [lo, hi] lies between n's outside neighbours.
 */
static bool gap_lowest(struct gap_search *g, const struct avl_node *n, uint64_t lo, uint64_t hi,
                       uint64_t *addr)
{
    if (!n)
        return fit_low(g, lo, hi, addr);
    g->visits++;
    /* Wholly outside the span: the span is one free hole. */
    if (n->sub_last < lo || n->sub_start > hi)
        return fit_low(g, lo, hi, addr);
    if (!may_fit(g, n, lo, hi))
        return false;
    /* Left part: [lo, n->start - 1]. */
    if (n->start > lo && gap_lowest(g, n->left, lo, n->start - 1 < hi ? n->start - 1 : hi, addr))
        return true;
    /* Right part: [n->last + 1, hi]. */
    if (n->last < hi)
        return gap_lowest(g, n->right, n->last + 1 > lo ? n->last + 1 : lo, hi, addr);
    return false;
}

/* The mirror image of gap_lowest: right part first, highest fit. */
static bool gap_highest(struct gap_search *g, const struct avl_node *n, uint64_t lo, uint64_t hi,
                        uint64_t *addr)
{
    if (!n)
        return fit_high(g, lo, hi, addr);
    g->visits++;
    if (n->sub_last < lo || n->sub_start > hi)
        return fit_high(g, lo, hi, addr);
    if (!may_fit(g, n, lo, hi))
        return false;
    if (n->last < hi && gap_highest(g, n->right, n->last + 1 > lo ? n->last + 1 : lo, hi, addr))
        return true;
    if (n->start > lo)
        return gap_highest(g, n->left, lo, n->start - 1 < hi ? n->start - 1 : hi, addr);
    return false;
}

/*
 * Cost. A node is entered when its subtree straddles an edge of the window
 * (two root-to-leaf paths, O(log n)) or when it may hold a big-enough hole
 * and its span contains an aligned address with room after it. Below the
 * answer's path, the only subtrees entered in vain are those holding a hole
 * that is big enough but cannot take the alignment; with k such holes the
 * search enters O(log n + k log(n/k)) nodes, O(log n + k) when they are
 * neighbours in address order. If no hole anywhere is big enough, the root's
 * check fails and the search stops after one node.
 */
bool avl_gap_lowest(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *addr,
                    uint64_t *visits)
{
    struct gap_search g = {.q = q, .mask = q->align - 1, .visits = 0};
    bool found = gap_lowest(&g, t->root, q->lo, q->hi, addr);

    if (visits)
        *visits += g.visits;
    return found;
}

bool avl_gap_highest(const struct avl_tree *t, const struct avl_gap_query *q, uint64_t *addr,
                     uint64_t *visits)
{
    struct gap_search g = {.q = q, .mask = q->align - 1, .visits = 0};
    bool found = gap_highest(&g, t->root, q->lo, q->hi, addr);

    if (visits)
        *visits += g.visits;
    return found;
}

/* ---- checker ---- */

struct check {
    const char *why;
    const struct avl_node *prev; /* the previous node in order */
    size_t count;
};

/* Checks the subtree at n (whose parent must be parent); returns its height or -1. */
static int check_node(struct check *c, const struct avl_node *n, const struct avl_node *parent)
{
    int hl, hr;
    uint64_t gap = 0;

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
    if (n->sub_start != (n->left ? n->left->sub_start : n->start)) {
        c->why = "sub_start is wrong";
        return -1;
    }
    if (n->sub_last != (n->right ? n->right->sub_last : n->last)) {
        c->why = "sub_last is wrong";
        return -1;
    }
    if (n->left)
        gap = max_u64(n->left->max_gap, n->start - n->left->sub_last - 1);
    if (n->right)
        gap = max_u64(gap, max_u64(n->right->max_gap, n->right->sub_start - n->last - 1));
    if (n->max_gap != gap) {
        c->why = "max_gap is wrong";
        return -1;
    }
    return 1 + (hl > hr ? hl : hr);
}

bool avl_check(const struct avl_tree *t, const char **why)
{
    struct check c = {.why = NULL, .prev = NULL, .count = 0};

    if (check_node(&c, t->root, NULL) >= 0 && c.count != t->count)
        c.why = "node count is wrong";
    if (c.why && why)
        *why = c.why;
    return c.why == NULL;
}
