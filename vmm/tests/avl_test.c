/*
 * avl_test: unit tests of the intrusive gap-augmented AVL tree (vmm/avl.h).
 *
 * Nodes are embedded in a test struct and inserted with the test's own
 * descent, as a real caller would. Every test calls avl_check after every
 * change, except on the big trees, where the whole tree is checked every so
 * often. The gap searches are compared with a brute-force scan over all candidate addresses
 * on small trees, and their visit counts are measured on big ones.
 */
#include <vmm/avl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>
#include <canopy/rng.h>

unsigned check_passed, check_failed;

/* REQUIRE that avl_check finds t consistent, with its reason when it does not. */
#define REQUIRE_TREE(t)                                                                            \
    do {                                                                                           \
        const char *why_ = "";                                                                     \
        REQUIREF(avl_check((t), &why_), "avl_check: %s", why_);                                    \
    } while (0)

/* A seeded generator, so failures reproduce. */
static uint64_t rng_state = 0x5eed;
static uint64_t rnd(void)
{
    return splitmix64_next(&rng_state);
}

struct item {
    int tag; /* not first: the tree must not rely on the node being at offset 0 */
    struct avl_node node;
};

static struct item *item_of(struct avl_node *n)
{
    return n ? avl_entry(n, struct item, node) : NULL;
}

/* The caller's descent: compare starts, link where the new range belongs. */
static void insert_range(struct avl_tree *t, struct item *it, uint64_t start, uint64_t last)
{
    struct avl_node *parent = NULL, **link = &t->root;

    it->node.start = start;
    it->node.last = last;
    while (*link) {
        parent = *link;
        link = start < parent->start ? &parent->left : &parent->right;
    }
    avl_insert_at(t, &it->node, parent, link);
}

/* Fisher-Yates, with the tests' generator. */
static void shuffle(int *a, int count)
{
    for (int i = count - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint64_t)(i + 1)), x = a[i];

        a[i] = a[j];
        a[j] = x;
    }
}

/* The library's own descent. */
static void insert_range_lib(struct avl_tree *t, struct item *it, uint64_t start, uint64_t last)
{
    it->node.start = start;
    it->node.last = last;
    avl_insert_range(t, &it->node);
}

static struct avl_node *find_start(struct avl_tree *t, uint64_t start)
{
    struct avl_node *n = t->root;

    while (n && n->start != start)
        n = start < n->start ? n->left : n->right;
    return n;
}

/* Heights are not stored: counted here, the longest path from n down. */
static int subtree_height(const struct avl_node *n)
{
    int hl, hr;

    if (!n)
        return 0;
    hl = subtree_height(n->left);
    hr = subtree_height(n->right);
    return 1 + (hl > hr ? hl : hr);
}

static int tree_height(const struct avl_tree *t)
{
    return subtree_height(t->root);
}

/* log2 for bounds in tests: the smallest r with 2^r >= x. */
static unsigned ceil_log2(uint64_t x)
{
    unsigned r = 0;

    while ((1ull << r) < x && r < 63)
        r++;
    return r;
}

/* ---- structure ---- */

static void test_avl_empty_tree_checks_and_navigates(void)
{
    struct avl_tree t;

    avl_init(&t);
    REQUIRE_TREE(&t);
    REQUIRE(avl_first(&t) == NULL && avl_last(&t) == NULL);
}

/*
 * The four single-step imbalances, each fixed by one or two rotations so
 * that the middle key becomes the root:
 *
 *   LL: 3      RR: 1        LR: 3       RL: 1
 *      /          \            /           \
 *     2            2          1             3
 *    /              \          \           /
 *   1                3          2         2
 */
static void test_avl_insert_rotations_ll_rr_lr_rl(void)
{
    static const int orders[4][3] = {{3, 2, 1}, {1, 2, 3}, {3, 1, 2}, {1, 3, 2}};

    for (int o = 0; o < 4; o++) {
        struct avl_tree t;
        struct item it[3];

        avl_init(&t);
        for (int i = 0; i < 3; i++) {
            uint64_t k = (uint64_t)orders[o][i] * 0x10;

            insert_range(&t, &it[i], k, k + 7);
            REQUIRE_TREE(&t);
        }
        REQUIRE(t.root->start == 0x20);
        REQUIRE(t.root->left->start == 0x10 && t.root->right->start == 0x30);
        REQUIRE(tree_height(&t) == 2 && avl_balance(t.root) == 0);
        /* Gaps: 0x18..0x1f and 0x28..0x2f, 8 bytes each. */
        REQUIRE(avl_max_gap(t.root) == 8);
        REQUIRE(avl_first(&t)->start == 0x10 && avl_last(&t)->last == 0x37);
    }
}

static void test_avl_sequential_inserts_stay_balanced(void)
{
    enum { N = 4096 };
    static struct item it[N];
    struct avl_tree t;

    avl_init(&t);
    for (int i = 0; i < N; i++) {
        insert_range(&t, &it[i], (uint64_t)i * 0x2000, (uint64_t)i * 0x2000 + 0xfff);
        if (i % 97 == 0)
            REQUIRE_TREE(&t);
    }
    REQUIRE_TREE(&t);
    REQUIRE(t.count == N);
    /* An AVL tree of n nodes is at most 1.44 log2(n + 2) high. */
    REQUIRE(tree_height(&t) <= 1.4405 * 13.0 + 1);
    REQUIRE(avl_first(&t)->start == 0 && avl_last(&t)->last == (uint64_t)(N - 1) * 0x2000 + 0xfff);
    REQUIRE(avl_max_gap(t.root) == 0x1000);
}

/* In-order navigation visits every node once, in order, both ways. */
static void test_avl_next_prev_walk_in_order(void)
{
    enum { N = 500 };
    static struct item it[N];
    struct avl_tree t;
    struct avl_node *n;
    int count = 0;
    uint64_t prev = 0;

    avl_init(&t);
    for (int i = 0; i < N; i++) {
        uint64_t k = (uint64_t)((i * 7919) % N) * 0x100;

        it[i].tag = i;
        insert_range(&t, &it[i], k, k + 0x7f);
    }
    for (n = avl_first(&t); n; n = avl_next(n), count++) {
        /* avl_entry gets back to the embedding struct. */
        REQUIRE(n->start == (uint64_t)((item_of(n)->tag * 7919) % N) * 0x100);
        REQUIRE(count == 0 || n->start > prev);
        prev = n->start;
    }
    REQUIRE(count == N);
    count = 0;
    for (n = avl_last(&t); n; n = avl_prev(n), count++)
        REQUIRE(n->start == (uint64_t)(N - 1 - count) * 0x100);
    REQUIRE(count == N);
}

/*
 * Erasing the root with two children: its successor (the leftmost node of
 * the right subtree) takes its place, and the tree rebalances up from where
 * the successor came from.
 */
static void test_avl_erase_rebalances_root(void)
{
    enum { N = 64 };
    static struct item it[N];
    struct avl_tree t;

    avl_init(&t);
    for (int i = 0; i < N; i++)
        insert_range(&t, &it[i], (uint64_t)i * 0x10, (uint64_t)i * 0x10 + 3);
    while (t.root) {
        uint64_t old = t.root->start;
        struct avl_node *succ = t.root->right ? avl_next(t.root) : NULL;

        avl_erase(&t, t.root);
        REQUIRE_TREE(&t);
        REQUIRE(find_start(&t, old) == NULL);
        /* The successor is still there (and possibly the new root). */
        REQUIRE(!succ || find_start(&t, succ->start) == succ);
    }
    REQUIRE(t.count == 0);
}

/* Erasing every node in a random order, checking after each. */
static void test_avl_erase_random_order_keeps_invariants(void)
{
    enum { N = 2000 };
    static struct item it[N];
    static int order[N];
    struct avl_tree t;

    avl_init(&t);
    for (int i = 0; i < N; i++) {
        insert_range(&t, &it[i], (uint64_t)i << 20, ((uint64_t)i << 20) + (rnd() % 0xfffff));
        order[i] = i;
    }
    shuffle(order, N);
    for (int i = 0; i < N; i++) {
        avl_erase(&t, &it[order[i]].node);
        REQUIRE_TREE(&t);
        REQUIRE(t.count == (size_t)(N - 1 - i));
    }
}

/*
 * adjust changes a node's bounds in place; every ancestor's gap follows.
 *
 *   before: [0x1000,0x1fff]  gap 0x1000  [0x3000,0x3fff]  gap 0xc000  [0x10000,0x10fff]
 *   after:  [0x1000,0x1fff]  gap 0x1000  [0x3000,0xdfff]  gap 0x2000  [0x10000,0x10fff]
 */
static void test_avl_adjust_updates_gaps_to_root(void)
{
    struct avl_tree t;
    struct item a, b, c;

    avl_init(&t);
    insert_range(&t, &a, 0x1000, 0x1fff);
    insert_range(&t, &b, 0x3000, 0x3fff);
    insert_range(&t, &c, 0x10000, 0x10fff);
    REQUIRE(avl_max_gap(t.root) == 0xc000);
    avl_adjust(&t, &b.node, 0x3000, 0xdfff);
    REQUIRE_TREE(&t);
    REQUIRE(avl_max_gap(t.root) == 0x2000 && c.node.gap == 0x2000);
    avl_adjust(&t, &a.node, 0x0, 0x2fff); /* now touching b: gap 0 */
    REQUIRE_TREE(&t);
    REQUIRE(avl_first(&t)->start == 0 && avl_max_gap(t.root) == 0x2000 && b.node.gap == 0);
    avl_adjust(&t, &c.node, 0xe000, 0xffffffffffffffffull); /* ends at 2^64 - 1 */
    REQUIRE_TREE(&t);
    REQUIRE(avl_last(&t)->last == UINT64_MAX && avl_max_gap(t.root) == 0);
    avl_adjust(&t, &b.node, 0x5000, 0x5fff); /* moves down and up inside its old range */
    REQUIRE_TREE(&t);
    REQUIRE(b.node.gap == 0x2000 && c.node.gap == 0x8000 && avl_max_gap(t.root) == 0x8000);
}

/* A node whose range ends at the last byte of the address space breaks nothing. */
static void test_avl_range_ending_at_top_of_address_space(void)
{
    struct avl_tree t;
    struct item a, b;
    struct avl_gap_query q = {.size = 0x1000, .align = 0x1000, .lo = 0, .hi = UINT64_MAX};
    uint64_t addr = 1;

    avl_init(&t);
    insert_range(&t, &a, 0xfffffffffffff000ull, UINT64_MAX);
    insert_range(&t, &b, 0, 0xfff);
    REQUIRE_TREE(&t);
    REQUIRE(avl_max_gap(t.root) == 0xfffffffffffff000ull - 0x1000);
    REQUIRE(avl_gap_highest(&t, &q, &addr, NULL) && addr == 0xffffffffffffe000ull);
    REQUIRE(avl_gap_lowest(&t, &q, &addr, NULL) && addr == 0x1000);
}

/*
 * A range at address 0 has no hole below it, even where the search reads it
 * for one: here it is reached because its right child's hole has room.
 */
static void test_avl_range_at_zero_is_not_a_hole(void)
{
    struct avl_tree t;
    struct item r, r2, z, m;
    struct avl_gap_query q = {.size = 0x1000, .align = 0x1000, .lo = 0, .hi = UINT64_MAX};
    uint64_t addr = 1, visits = 0;

    avl_init(&t);
    insert_range(&t, &r, 0x100000, 0x100fff);
    insert_range(&t, &r2, 0x200000, 0x200fff);
    insert_range(&t, &z, 0, 0xfff);
    insert_range(&t, &m, 0x3000, 0x3fff);
    REQUIRE_TREE(&t);
    REQUIRE(t.root == &r.node && r.node.left == &z.node && z.node.right == &m.node);
    REQUIRE(avl_gap_lowest(&t, &q, &addr, &visits) && addr == 0x1000);
    REQUIRE(visits >= 2); /* the range at 0 was read */
}

/* avl_check notices each kind of corruption it promises to verify. */
static void test_avl_check_detects_each_corruption(void)
{
    enum { N = 15 };
    struct item it[N];
    struct avl_tree t;
    const char *why;
    struct avl_node *r, saved;

    avl_init(&t);
    for (int i = 0; i < N; i++)
        insert_range(&t, &it[i], (uint64_t)i * 0x100, (uint64_t)i * 0x100 + 0x3f);
    REQUIRE_TREE(&t);
    r = t.root;
    saved = *r;

    r->left_max++;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "left_max"));
    *r = saved;
    r->right_max--;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "right_max"));
    *r = saved;
    r->gap++;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "gap is wrong"));
    *r = saved;
    r->fit_2m[0]++;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "fit_2m"));
    *r = saved;
    r->fit_2m[1]--;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "fit_2m"));
    *r = saved;
    r->fit_1g[0]--;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "fit_1g"));
    *r = saved;
    r->fit_1g[1]++;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "fit_1g"));
    *r = saved;
    t.first->gap = 1; /* the hole below the first range is not a node's */
    REQUIRE(!avl_check(&t, &why) && strstr(why, "gap is wrong"));
    t.first->gap = 0;
    t.first = t.root;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "first"));
    t.first = &it[0].node;
    t.last = t.root;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "last"));
    t.last = &it[N - 1].node;
    REQUIRE_TREE(&t);
    /* A balance factor that is valid but wrong, then the unused bit pattern. */
    r->parent_balance = (r->parent_balance & ~AVL_BALANCE_MASK) | (avl_balance(r) == 0 ? 2 : 1);
    REQUIRE(!avl_check(&t, &why) && strstr(why, "balance factor is wrong"));
    r->parent_balance |= AVL_BALANCE_MASK;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "balance factor is wrong"));
    *r = saved;
    {
        uintptr_t keep = r->left->parent_balance;

        r->left->parent_balance = (uintptr_t)r->right | (keep & AVL_BALANCE_MASK);
        REQUIRE(!avl_check(&t, &why) && strstr(why, "parent"));
        r->left->parent_balance = keep;
    }
    r->last = avl_next(r)->start; /* overlaps its successor */
    REQUIRE(!avl_check(&t, &why) && strstr(why, "overlap"));
    *r = saved;
    r->start = r->last + 1;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "start above"));
    *r = saved;
    t.count++;
    REQUIRE(!avl_check(&t, &why) && strstr(why, "count"));
    t.count--;
    REQUIRE_TREE(&t);

    /* An unbalanced but otherwise consistent chain: 1 -> 2 -> 3 to the right. */
    {
        struct avl_tree u;
        struct item a, b, c;

        avl_init(&u);
        insert_range(&u, &a, 0x10, 0x1f);
        insert_range(&u, &b, 0x30, 0x3f);
        a.node.right = NULL; /* detach and rebuild as a chain by hand */
        u.root = &a.node;
        a.node.right = &b.node;
        b.node.parent_balance = (uintptr_t)&a.node | 2; /* balance +1 */
        b.node.right = &c.node;
        c.node = (struct avl_node){.parent_balance = (uintptr_t)&b.node | 1, /* balance 0 */
                                   .start = 0x50,
                                   .last = 0x5f,
                                   .gap = 0x10};
        /* No hole here has a 2 MiB- or 1 GiB-aligned byte: nothing fits there. */
        b.node.right_max = 0x10;
        a.node.parent_balance = 2; /* root, balance +1: the heights say +2 */
        a.node.right_max = 0x10;
        u.last = &c.node;
        u.count = 3;
        REQUIRE(!avl_check(&u, &why) && strstr(why, "balance"));
    }
}

/* ---- gap search ---- */

/* Brute force: every candidate address in the window, lowest or highest first. */
static bool brute_gap(struct avl_tree *t, const struct avl_gap_query *q, bool highest,
                      uint64_t *addr)
{
    uint64_t first = (q->lo + q->align - 1) / q->align * q->align;
    bool found = false;

    if (q->lo > UINT64_MAX - (q->align - 1))
        return false;
    for (uint64_t a = first; a <= q->hi; a += q->align) {
        bool free_range = q->hi - a >= q->size - 1;

        for (struct avl_node *n = avl_first(t); n && free_range; n = avl_next(n))
            if (n->start <= a + (q->size - 1) && a <= n->last)
                free_range = false;
        if (free_range) {
            *addr = a;
            found = true;
            if (!highest)
                return true;
        }
        if (a > UINT64_MAX - q->align)
            break;
    }
    return found;
}

/* Small trees with byte-granular ranges and odd windows against the brute force. */
static void test_avl_gap_search_matches_brute_force(void)
{
    enum { N = 12 };
    struct item it[N];

    for (int round = 0; round < 400; round++) {
        struct avl_tree t;
        uint64_t base = round % 3 == 0 ? UINT64_MAX - 255 : 0; /* some rounds at the very top */
        int n = (int)(rnd() % N);

        avl_init(&t);
        for (int i = 0; i < n; i++) {
            uint64_t s = base + rnd() % 250, len = rnd() % 8;
            uint64_t l = s + len < s || s + len > base + 255 ? base + 255 : s + len;
            struct avl_node *x;
            bool clash = false;

            for (x = avl_first(&t); x; x = avl_next(x))
                if (x->start <= l && s <= x->last)
                    clash = true;
            if (!clash)
                insert_range(&t, &it[i], s, l);
        }
        REQUIRE_TREE(&t);
        for (int qn = 0; qn < 40; qn++) {
            struct avl_gap_query q;
            uint64_t a = 0, b = 0, lo = base + rnd() % 256, hi = base + rnd() % 256;
            bool highest = rnd() & 1;

            q.size = 1 + rnd() % 40;
            q.align = 1ull << (rnd() % 6);
            q.lo = lo < hi ? lo : hi;
            q.hi = lo < hi ? hi : lo;
            bool got =
                highest ? avl_gap_highest(&t, &q, &a, NULL) : avl_gap_lowest(&t, &q, &a, NULL);
            bool want = brute_gap(&t, &q, highest, &b);

            REQUIRE(got == want);
            REQUIRE(!got || a == b);
        }
    }
}

/* Builds n ranges of 4 KiB with random small gaps (1..4 pages) from base. */
static struct item *build_swiss(struct avl_tree *t, size_t n, uint64_t base)
{
    struct item *it = calloc(n, sizeof(*it));
    uint64_t at = base;

    avl_init(t);
    for (size_t i = 0; i < n; i++) {
        insert_range(t, &it[i], at, at + 0xfff);
        at += 0x1000 * (2 + rnd() % 4);
    }
    return it;
}

/* When no hole is big enough, the root's augmentation says so: one node visited. */
static void test_avl_gap_failure_is_one_visit(void)
{
    enum { N = 100000 };
    struct avl_tree t;
    struct item *it = build_swiss(&t, N, 0x100000);
    /* The window starts at the first range and ends at the last, so no edge hole helps. */
    struct avl_gap_query q = {
        .size = 0x5000, .align = 0x1000, .lo = avl_first(&t)->start, .hi = avl_last(&t)->last};
    uint64_t visits = 0, addr = 0;

    REQUIRE_TREE(&t);
    REQUIRE(avl_max_gap(t.root) == 0x4000);
    REQUIRE(!avl_gap_lowest(&t, &q, &addr, &visits));
    REQUIRE(visits == 1);
    visits = 0;
    REQUIRE(!avl_gap_highest(&t, &q, &addr, &visits));
    REQUIRE(visits == 1);
    free(it);
}

/*
 * With alignment that every big-enough hole satisfies, a search walks about
 * two root-to-leaf paths: at most c * log2(n) nodes, whatever the answer.
 */
static void test_avl_gap_search_visits_logarithmic(void)
{
    enum { N = 1 << 17 };
    struct avl_tree t;
    struct item *it = build_swiss(&t, N, 0x100000);
    uint64_t worst = 0, bound = 4 * ceil_log2(N);

    /*
     * Holes are 1..4 pages. Erase 300 random ranges: each leaves a hole of
     * 3..9 pages, and only those can take the 6-page requests below.
     */
    for (int i = 0; i < 300; i++) {
        struct item *x = &it[1 + rnd() % (N - 2)];

        if (!x->tag) {
            avl_erase(&t, &x->node);
            x->tag = 1;
        }
    }
    REQUIRE_TREE(&t);
    for (int i = 0; i < 2000; i++) {
        uint64_t first = avl_first(&t)->start, last = avl_last(&t)->last;
        uint64_t lo = first + (rnd() % (last - first));
        struct avl_gap_query q = {.size = 0x6000, .align = 1, .lo = lo, .hi = last};
        uint64_t visits = 0, addr = 0;
        bool found = (i & 1) ? avl_gap_highest(&t, &q, &addr, &visits)
                             : avl_gap_lowest(&t, &q, &addr, &visits);

        (void)found;
        if (visits > worst)
            worst = visits;
    }
    printf("  gap search over %d nodes: at most %llu nodes visited (bound %llu)\n", N,
           (unsigned long long)worst, (unsigned long long)bound);
    REQUIRE(worst <= bound);
    free(it);
}

/* Ranges of 4 KiB every 8 KiB from base: 4 KiB holes. */
static struct item *build_comb(struct avl_tree *t, size_t n, uint64_t base)
{
    struct item *it = calloc(n, sizeof(*it));

    avl_init(t);
    for (size_t i = 0; i < n; i++)
        insert_range(t, &it[i], base + 0x2000 * i, base + 0x2000 * i + 0xfff);
    return it;
}

/* n's depth: 0 for the root. */
static unsigned depth_of(const struct avl_node *n)
{
    unsigned d = 0;

    while ((n = avl_parent(n)))
        d++;
    return d;
}

/*
 * With one hole big enough, a search reads the path to the node above that
 * hole and nothing else: every subtree off the path is ruled out from its
 * parent's slot, without reading its root. In the comb, erasing one range
 * leaves the only 12 KiB hole.
 */
static void test_avl_gap_search_reads_only_the_path(void)
{
    enum { N = 50000 };
    struct avl_tree t;
    struct item *it = build_comb(&t, N, 0x100000);
    struct avl_gap_query q = {
        .size = 0x3000, .align = 0x1000, .lo = avl_first(&t)->start, .hi = avl_last(&t)->last};

    for (int i = 0; i < 300; i++) {
        struct item *x = &it[1 + rnd() % (N - 2)];
        struct avl_node *above = avl_next(&x->node);
        uint64_t hole = x->node.start - 0x1000, start = x->node.start, last = x->node.last;
        uint64_t visits = 0, addr = 0;

        avl_erase(&t, &x->node);
        REQUIRE(avl_gap_lowest(&t, &q, &addr, &visits));
        REQUIRE(addr == hole);
        REQUIRE(visits == depth_of(above) + 1);
        visits = 0;
        REQUIRE(avl_gap_highest(&t, &q, &addr, &visits));
        REQUIRE(addr == hole);
        REQUIRE(visits == depth_of(above) + 1);
        insert_range(&t, x, start, last);
    }
    REQUIRE_TREE(&t);
    free(it);
}

/* ---- the holes in order: the oracle on big trees ---- */

typedef unsigned __int128 u128;

/* The lowest (highest) multiple of align with size bytes inside [lo, hi], in 128 bits. */
static bool span_fit(u128 lo, u128 hi, u128 size, u128 align, bool highest, uint64_t *addr)
{
    u128 a;

    if (lo > hi || hi - lo + 1 < size)
        return false;
    if (highest) {
        a = (hi + 1 - size) / align * align;
        if (a < lo)
            return false;
    } else {
        a = (lo + align - 1) / align * align;
        if (a + size - 1 > hi)
            return false;
    }
    *addr = (uint64_t)a;
    return true;
}

/*
 * The naive walk: every hole in address order (reverse for the highest),
 * the two edge holes included, clipped to the window. With b (not 0), a hole
 * between two ranges counts only if it holds size + align - b bytes from a
 * multiple of b, and the answer is the aligned fit in the first one that
 * does: what avl_gap_find() answers at an alignment its slots do not know.
 * *next gets the range above the answer.
 */
static bool walk_gap(struct avl_tree *t, const struct avl_gap_query *q, bool highest, uint64_t b,
                     uint64_t *addr, struct avl_node **next)
{
    struct avl_node *below = highest ? avl_last(t) : NULL, *above = highest ? NULL : avl_first(t);
    bool over_ask = b != 0;

    for (;;) {
        u128 lo = below ? (u128)below->last + 1 : 0,
             hi = above ? (u128)above->start - 1 : UINT64_MAX;
        bool edge = !below || !above, found;

        if (lo < q->lo)
            lo = q->lo;
        if (hi > q->hi)
            hi = q->hi;
        if (above && above->start == 0)
            hi = 0, lo = 1; /* no hole below a range at 0 */
        if (edge || !over_ask)
            found = span_fit(lo, hi, q->size, q->align, highest, addr);
        else
            found = span_fit(lo, hi, (u128)q->size + q->align - b, b, highest, addr) &&
                    span_fit(lo, hi, q->size, q->align, highest, addr);
        if (found) {
            *next = above;
            return true;
        }
        if (highest ? !below : !above)
            return false;
        if (highest) {
            above = below;
            below = avl_prev(below);
        } else {
            below = above;
            above = avl_next(above);
        }
    }
}

/*
 * Whether avl_gap_find's bound is exact for q (avl.h): align 1, or in a
 * page-grained tree, below 16 TiB, align up to 4 KiB, 2 MiB or 1 GiB.
 */
static bool bound_is_exact(const struct avl_gap_query *q, uint64_t grain)
{
    if (q->align == 1)
        return true;
    return grain % 0x1000 == 0 && q->size <= ((uint64_t)UINT32_MAX << 12) &&
           (q->align <= 0x1000 || q->align == AVL_ALIGN_2M || q->align == AVL_ALIGN_1G);
}

/* The over-ask's alignment for align (avl.h): 1 GiB, 2 MiB or 4 KiB, the largest below it. */
static uint64_t over_align(uint64_t align)
{
    return align > AVL_ALIGN_1G ? AVL_ALIGN_1G : align > AVL_ALIGN_2M ? AVL_ALIGN_2M : 0x1000;
}

/*
 * One search against the walk: the first fit where the bound is exact, the
 * over-asked answer at b at other alignments (or at 1, where the budget ran
 * out off the page grain); and within its reads: 3h - 2 wherever the bound
 * it searches by is exact, the budget and h more elsewhere (vmm/avl.h). grain divides every
 * range's start and end + 1. Records every check it makes and returns
 * whether all held.
 */
static bool search_agrees(struct avl_tree *t, const struct avl_gap_query *q, bool highest,
                          uint64_t grain, uint64_t *visits)
{
    struct avl_gap_result r;
    struct avl_node *next = NULL;
    uint64_t want = 0, h = (uint64_t)tree_height(t);
    bool got = avl_gap_find(t, q, highest ? AVL_GAP_HIGHEST : 0, &r);
    bool exact = bound_is_exact(q, grain);
    bool want_found = walk_gap(t, q, highest, r.over_align, &want, &next);
    uint64_t b = over_align(q->align), paths = h ? 3 * h - 2 : 0;
    unsigned failed_before = check_failed;
    /* The over-ask at b, in a page-grained tree and below the fits' saturation: exact too. */
    bool room_exact = grain % 0x1000 == 0 && b < q->align && q->size <= UINT64_MAX - q->align &&
                      q->size + (q->align - b) <= ((uint64_t)UINT32_MAX << 12);

    CHECK(!(exact && r.over_align));
    /* Over-asked at b, or at 1 if b is not below align or the ranges are not page-grained. */
    CHECK(!r.over_align || r.over_align == (b < q->align ? b : 1) || r.over_align == 1);
    CHECK(!(room_exact && r.over_align == 1));
    CHECK(got == want_found);
    CHECK(!got || (r.addr == want && r.next == next));
    if (exact || room_exact)
        CHECK(r.visits <= paths);
    else
        CHECK(r.visits <= avl_gap_budget(t->count) + h + paths);
    if (visits)
        *visits = r.visits;
    return check_failed == failed_before;
}

/* A random power of two from 1 to 4 GiB, mostly 4 KiB, 2 MiB, 1 GiB and their neighbours. */
static uint64_t random_align(void)
{
    static const unsigned shifts[] = {0,  3,  12, 12, 13, 14, 16, 20, 21,
                                      21, 22, 25, 29, 30, 30, 31, 32};

    return 1ull << (rnd() % 4 ? shifts[rnd() % (sizeof(shifts) / sizeof(shifts[0]))] : rnd() % 33);
}

/*
 * A hole or a range of random size in grains: small, near 2 MiB, near 1 GiB,
 * near 4 GiB, and rarely near 32 TiB, past where the fit fields saturate.
 */
static uint64_t random_length(uint64_t grain)
{
    uint64_t r = rnd() % 256;
    uint64_t around = r < 144   ? 0
                      : r < 208 ? AVL_ALIGN_2M
                      : r < 240 ? AVL_ALIGN_1G
                      : r < 254 ? 4 * AVL_ALIGN_1G
                                : (uint64_t)32 << 40;
    uint64_t spread = around ? around / 2 : 64 * grain;
    uint64_t len = around - (around ? spread : 0) + rnd() % (2 * spread);

    len = len / grain * grain;
    return len ? len : grain;
}

/*
 * Random layouts, inserted in random order with some erased and put back,
 * avl_check after every change; then searches with random sizes,
 * alignments and windows, lowest and highest, against the walk. Half the
 * layouts are page-grained, where 4 KiB is exact too; the others have
 * ranges and holes of any byte length. In the last two, 63 in 64 holes are
 * big enough but misaligned for one request (size, align) that half the
 * searches make, so that the first fit and the over-asked answer differ.
 */
static void test_avl_gap_search_matches_the_walk_on_random_layouts(void)
{
    enum { N = 1500, QUERIES = 300 };
    static struct item it[N];
    static int order[N];
    uint64_t over = 0, away = 0, total = 0;

    for (int layout = 0; layout < 8; layout++) {
        uint64_t grain = layout % 2 ? 1 : 0x1000;
        uint64_t at = (rnd() % (1ull << 40)) / grain * grain, span_lo = at;
        /* The request the last two layouts are made against: not an exact alignment. */
        uint64_t band_align = 1ull << (13 + rnd() % 17), band_size;
        struct avl_tree t;

        if (band_align == AVL_ALIGN_2M)
            band_align *= 2;
        band_size = (1 + rnd() % (band_align / 0x1000)) * 0x1000;
        avl_init(&t);
        for (int i = 0; i < N; i++) {
            if (layout >= 6 && rnd() % 64) {
                /* A hole of size + extra that starts pad below a multiple, pad > extra. */
                uint64_t extra = (rnd() % (band_align / 2)) / grain * grain;
                uint64_t pad =
                    extra + grain + (rnd() % (band_align - extra - grain)) / grain * grain;

                /* The range before grows to end where the hole must start. */
                at = ((at + band_align - 1) & ~(band_align - 1)) + band_align - pad;
                if (i > 0)
                    it[i - 1].node.last = at - 1;
                at += band_size + extra;
            } else {
                at += random_length(grain);
            }
            it[i].node.start = at;
            at += random_length(grain);
            it[i].node.last = at - 1;
            order[i] = i;
        }
        shuffle(order, N);
        for (int i = 0; i < N; i++) {
            struct item *x = &it[order[i]];

            insert_range_lib(&t, x, x->node.start, x->node.last);
            REQUIRE_TREE(&t);
        }
        for (int i = 0; i < N / 4; i++) {
            struct item *x = &it[order[i]];
            uint64_t start = x->node.start, last = x->node.last;

            avl_erase(&t, &x->node);
            REQUIRE_TREE(&t);
            for (int k = 0; k < 20; k++) {
                struct avl_gap_query q = {.size = random_length(grain) / (1 + rnd() % 4),
                                          .align = random_align()};
                uint64_t lo = span_lo + rnd() % (at - span_lo), hi = lo + rnd() % (at - lo);

                if (!q.size)
                    q.size = 1;
                q.lo = rnd() % 8 ? lo : 0;
                q.hi = rnd() % 8 ? hi : UINT64_MAX;
                REQUIRE(search_agrees(&t, &q, rnd() & 1, grain, NULL));
            }
            insert_range(&t, x, start, last);
            REQUIRE_TREE(&t);
        }
        for (int k = 0; k < QUERIES; k++) {
            struct avl_gap_query q = {.size = random_length(grain), .align = random_align()};
            struct avl_gap_result r;

            if (layout >= 6 && k % 2) {
                q.size = band_size;
                q.align = band_align;
            }
            q.lo = span_lo + rnd() % (at - span_lo);
            q.hi = rnd() % 2 ? UINT64_MAX : q.lo + rnd() % (at - q.lo);
            REQUIRE(search_agrees(&t, &q, k & 1, grain, NULL));
            if (avl_gap_find(&t, &q, k & 1 ? AVL_GAP_HIGHEST : 0, &r) && r.over_align) {
                uint64_t first = 0;
                struct avl_node *next;

                over++;
                /* The over-asked answer against the first fit, which it never passes. */
                REQUIRE(walk_gap(&t, &q, k & 1, 0, &first, &next));
                CHECK(k & 1 ? r.addr <= first : r.addr >= first);
                away += r.addr != first;
            }
            total++;
        }
    }
    printf("  random layouts: %llu of %llu searches over-asked, %llu of them away from the first "
           "fit\n",
           (unsigned long long)over, (unsigned long long)total, (unsigned long long)away);
}

/*
 * Misaligned holes. Range i ends where hole i starts, align / 2 past a
 * multiple of align, and the hole is size to size + align / 2 - grain long:
 * big enough for the request, but its first aligned byte leaves less than
 * size. With spread > 1 only every spread-th hole is like that, the others
 * a grain short of size. Hole i lies in cell i, cells of 2 (size + align)
 * rounded up to align from base. If fit_at < n, hole fit_at is size + align /
 * 2 long: the first aligned fit. With room_at < n, hole room_at is size +
 * align long, which the over-asked search takes.
 *
 *   base          + cell          + 2 cell
 *   |RRR.hole..RRRRRR|RRR.hole...RRRRRR|RRR.......
 *       ^ align / 2 past a multiple
 */
static struct item *build_misaligned(struct avl_tree *t, size_t n, uint64_t base, uint64_t align,
                                     uint64_t size, uint64_t grain, size_t spread, size_t fit_at,
                                     size_t room_at)
{
    struct item *it = calloc(n, sizeof(*it));
    uint64_t width = align * (2 + 2 * ((size + align - 1) / align));

    if (!it)
        return NULL;
    avl_init(t);
    for (size_t i = 0; i < n; i++) {
        uint64_t cell = base + width * i, hole_start = cell + align / 2, len;

        if (i == fit_at)
            len = size + align / 2;
        else if (i == room_at)
            len = size + align;
        else if (i % spread == 0)
            len = size + (rnd() % (align / 2 / grain)) * grain;
        else
            len = size - grain;
        /* Range i: from the end of hole i to just before hole i + 1. */
        insert_range_lib(t, &it[i], hole_start + len, cell + width + align / 2 - 1);
    }
    return it;
}

/*
 * The misaligned layouts at 16 KiB, 2 MiB and 1 GiB alignment, the holes
 * side by side or spread out, with the answer above the last range, in the
 * middle, or (at 16 KiB) in a hole only the exact search sees: lowest and
 * highest, over the whole space and a window cut through the ranges.
 * Every answer is the walk's (the over-asked one at 16 KiB); every search
 * reads at most 3h - 2 and 4 log2(n) nodes: at 2 MiB and 1 GiB the bound
 * is exact, and at 16 KiB the over-ask for 8 KiB + 12 KiB is exact too.
 */
static void test_avl_gap_misaligned_holes_read_log_n(void)
{
    static const struct {
        uint64_t align, size;
    } reqs[] = {{0x4000, 0x2000}, {AVL_ALIGN_2M, AVL_ALIGN_2M}, {AVL_ALIGN_1G, AVL_ALIGN_1G}};
    enum { N = 1 << 16 };

    for (size_t k = 0; k < 3; k++) {
        for (int variant = 0; variant < 8; variant++) {
            uint64_t align = reqs[k].align, size = reqs[k].size, base = align * 64;
            size_t spread = variant & 1 ? 64 : 1;
            size_t fit_at = (variant >> 1) % 4 == 1 ? N / 3 : SIZE_MAX;
            size_t room_at = (variant >> 1) % 4 == 2 ? 2 * N / 3 : SIZE_MAX;
            struct avl_tree t;
            struct item *it;
            uint64_t worst = 0, h, bound;

            if ((variant >> 1) % 4 == 3)
                fit_at = N / 3, room_at = 2 * N / 3;
            it = build_misaligned(&t, N, base, align, size, 0x1000, spread, fit_at, room_at);
            REQUIRE(it);
            REQUIRE_TREE(&t);
            h = (uint64_t)tree_height(&t);
            bound = 3 * h - 2;
            for (int w = 0; w < 4; w++) {
                struct avl_gap_query q = {.size = size, .align = align, .lo = 0, .hi = UINT64_MAX};
                uint64_t visits = 0;

                /* Not the hole below the first range (lowest) nor the one above the last (highest).
                 */
                if (w == 0)
                    q.lo = it[0].node.start;
                else if (w == 1)
                    q.hi = it[N - 1].node.last;
                else { /* a window from a quarter to three quarters of the ranges */
                    q.lo = it[N / 4].node.start - align / 4;
                    q.hi = it[3 * N / 4].node.last + align / 4;
                }
                REQUIRE(search_agrees(&t, &q, w & 1, 0x1000, &visits));
                CHECK(visits <= bound);
                CHECK(visits <= 4 * ceil_log2(N));
                if (visits > worst)
                    worst = visits;
            }
            printf("  %s holes at %7llu KiB alignment, %s: at most %llu nodes read (bound %llu)\n",
                   spread > 1 ? "spread" : "adjacent", (unsigned long long)(align >> 10),
                   fit_at < N && room_at < N ? "fit and room inside"
                   : fit_at < N              ? "a fit inside"
                   : room_at < N             ? "room inside"
                                             : "fit above the last",
                   (unsigned long long)worst, (unsigned long long)bound);
            free(it);
        }
    }
}

/*
 * The budget (vmm/avl.h), where no bound is exact: ranges off the page grain
 * at 4 KiB alignment. Every hole is 2 KiB to 4 KiB - 1 long and starts 2 KiB
 * past a page, so each passes the largest gap for a 2 KiB request and none
 * holds it aligned: the search enters every subtree in vain until it has
 * read the budget, then asks for 2 KiB + 4 KiB - 1 at any address, which no
 * hole holds either, and the hole above the last range answers. Checks that
 * the budget was spent, the answer, and the reads: the budget, h past it,
 * and one more search.
 */
static void test_avl_gap_budget_off_the_page_grain(void)
{
    enum { N = 1 << 16 };
    struct avl_tree t;
    struct item *it = build_misaligned(&t, N, 0x100000, 0x1000, 0x800, 1, 1, SIZE_MAX, SIZE_MAX);

    REQUIRE(it);
    REQUIRE_TREE(&t);
    for (int high = 0; high < 2; high++) {
        struct avl_gap_query q = {.size = 0x800, .align = 0x1000, .lo = 0, .hi = UINT64_MAX};
        uint64_t h = (uint64_t)tree_height(&t), budget = avl_gap_budget(t.count);
        struct avl_gap_result r;

        /* Not the edge hole the search tries first. */
        if (high)
            q.hi = it[N - 1].node.last;
        else
            q.lo = it[0].node.start;
        REQUIRE(avl_gap_find(&t, &q, high ? AVL_GAP_HIGHEST : 0, &r));
        CHECK_EQ(r.over_align, 1);
        CHECK(r.visits > budget);
        CHECK(r.visits <= budget + h + 3 * h - 2);
        CHECK(search_agrees(&t, &q, high, 1, NULL));
        printf("  %s: the budget %llu spent, %llu nodes read (bound %llu)\n",
               high ? "highest" : "lowest", (unsigned long long)budget,
               (unsigned long long)r.visits, (unsigned long long)(budget + 4 * h - 2));
    }
    free(it);
}

/*
 * The reproducer of the O(n) search, at 2^20 ranges: one-page ranges 16 KiB
 * apart, each 12 KiB hole starting 8 KiB past a multiple of 16 KiB, and a
 * request for 8 KiB at 16 KiB alignment, whose first fit lies above the last
 * range. It read every node; now the search asks for 8 KiB + 12 KiB from a
 * page, which no hole in the tree holds, as the root's slots show, and the
 * hole above the last range answers, which is still the first fit. The same
 * layout at 2 MiB (one 2 MiB range every 4 MiB, each hole starting 1 MiB
 * past a multiple of 2 MiB, a request for 2 MiB) is exact from the start.
 */
static void test_avl_gap_reproducer_at_2_20_ranges(void)
{
    enum { N = 1 << 20 };
    struct item *it = calloc(N, sizeof(*it));

    REQUIRE(it);
    for (int k = 0; k < 2; k++) {
        uint64_t stride = k ? 2 * AVL_ALIGN_2M : 0x4000, range = k ? AVL_ALIGN_2M : 0x1000;
        uint64_t align = k ? AVL_ALIGN_2M : 0x4000, size = k ? AVL_ALIGN_2M : 0x2000;
        /* Each range ends half an alignment before a multiple: the hole starts there. */
        uint64_t base = (1ull << 40) + align / 2 - range;
        struct avl_tree t;
        struct avl_gap_query q = {.size = size, .align = align, .lo = base, .hi = UINT64_MAX};
        struct avl_gap_result r;

        avl_init(&t);
        for (size_t i = 0; i < N; i++)
            insert_range_lib(&t, &it[i], base + stride * i, base + stride * i + range - 1);
        REQUIRE_TREE(&t);
        REQUIRE(avl_gap_find(&t, &q, 0, &r));
        REQUIRE(r.addr == ((it[N - 1].node.last + align) & ~(align - 1)) && r.next == NULL);
        CHECK_EQ(r.over_align, k ? 0 : 0x1000);
        printf("  reproducer, 2^20 ranges, %llu KiB at %llu KiB alignment: %llu nodes read\n",
               (unsigned long long)(size >> 10), (unsigned long long)(align >> 10),
               (unsigned long long)r.visits);
        CHECK(r.visits <= 4 * ceil_log2(N) && r.visits <= 3 * (uint64_t)tree_height(&t) - 2);
    }
    free(it);
}

/*
 * A large alignment skips every subtree whose span holds no aligned place,
 * however many big holes it has. The ranges lie between 1 GiB and 1.5 GiB,
 * so no hole among them holds a 1 GiB-aligned address: the search goes
 * straight to 2 GiB, even with 1024 big-enough holes on the way.
 */
static void test_avl_gap_large_alignment_skips_spans_without_boundary(void)
{
    enum { N = 1 << 16 };
    struct avl_tree t;
    struct item *it = build_comb(&t, N, 0x40001000);
    uint64_t visits = 0, addr = 0;
    struct avl_gap_query q = {
        .size = 0x2000, .align = 0x40000000, .lo = it[0].node.start, .hi = 0x80001fff};

    for (int j = 0; j < 1024; j++)
        avl_erase(&t, &it[N / 3 + 2 * j].node);
    REQUIRE_TREE(&t);
    REQUIRE(avl_gap_lowest(&t, &q, &addr, &visits));
    REQUIRE(addr == 0x80000000);
    printf("  1 GiB alignment past 1024 big holes: %llu nodes visited\n",
           (unsigned long long)visits);
    REQUIRE(visits <= 4 * ceil_log2(N));
    visits = 0;
    q.hi = 0x7fffffff; /* now nothing fits */
    REQUIRE(!avl_gap_highest(&t, &q, &addr, &visits));
    REQUIRE(visits <= 4 * ceil_log2(N));
    free(it);
}

/* Same shape, same ranges, same augmentation, node by node. */
static bool same_tree(const struct avl_node *a, const struct avl_node *b, const struct item *ia,
                      const struct item *ib)
{
    if (!a || !b)
        return a == b;
    if (a->start != b->start || a->last != b->last || a->gap != b->gap ||
        a->left_max != b->left_max || a->right_max != b->right_max ||
        a->fit_2m[0] != b->fit_2m[0] || a->fit_2m[1] != b->fit_2m[1] ||
        a->fit_1g[0] != b->fit_1g[0] || a->fit_1g[1] != b->fit_1g[1] ||
        avl_balance(a) != avl_balance(b))
        return false;
    /* The nodes are the same index in two arrays. */
    if (avl_entry(a, struct item, node) - ia != avl_entry(b, struct item, node) - ib)
        return false;
    return same_tree(a->left, b->left, ia, ib) && same_tree(a->right, b->right, ia, ib);
}

/*
 * avl_insert_range's descent puts every node where the caller's descent
 * would: the same shuffled inserts build the same tree both ways, and erasing
 * half of them keeps both the same too.
 */
static void test_avl_insert_range_matches_callers_descent(void)
{
    enum { N = 3000 };
    static struct item a[N], b[N];
    static int order[N];
    struct avl_tree ta, tb;

    avl_init(&ta);
    avl_init(&tb);
    for (int i = 0; i < N; i++)
        order[i] = i;
    shuffle(order, N);
    for (int i = 0; i < N; i++) {
        uint64_t s = (uint64_t)order[i] * 0x10000 + rnd() % 0x100;

        insert_range(&ta, &a[order[i]], s, s + rnd() % 0x8000);
        insert_range_lib(&tb, &b[order[i]], a[order[i]].node.start, a[order[i]].node.last);
        if (i % 97 == 0)
            REQUIRE_TREE(&tb);
    }
    REQUIRE_TREE(&tb);
    REQUIRE(tb.count == N && same_tree(ta.root, tb.root, a, b));
    REQUIRE(item_of(avl_first(&tb)) - b == 0 && item_of(avl_last(&tb)) - b == N - 1);
    for (int i = 0; i < N; i += 2) {
        avl_erase(&ta, &a[order[i]].node);
        avl_erase(&tb, &b[order[i]].node);
    }
    REQUIRE_TREE(&tb);
    REQUIRE(same_tree(ta.root, tb.root, a, b));
    /* Back in, the library's way only in tb: still the same shape. */
    for (int i = 0; i < N; i += 2) {
        insert_range(&ta, &a[order[i]], a[order[i]].node.start, a[order[i]].node.last);
        insert_range_lib(&tb, &b[order[i]], b[order[i]].node.start, b[order[i]].node.last);
    }
    REQUIRE_TREE(&tb);
    REQUIRE(tb.count == N && same_tree(ta.root, tb.root, a, b));
}

/*
 * avl_insert_prev at the hole a search found builds, node by node, the
 * tree that avl_insert_range builds from the same inserts: same shape, same
 * augmentation. Random page-grained layouts, searches at random sizes,
 * alignments (4 KiB, 2 MiB, 1 GiB among them) and windows, lowest and
 * highest, each answer checked against the walk (the oracle above) and then
 * linked both ways; some ranges are erased from both trees between rounds.
 */
static void test_avl_insert_prev_the_found_hole_matches_insert_range(void)
{
    enum { N = 1200, ADDS = 1500 };
    static struct item a[N + ADDS], b[N + ADDS];
    static int order[N];
    struct avl_tree ta, tb;
    uint64_t at = 0x1000, linked = 0;
    int count = 0;

    avl_init(&ta);
    avl_init(&tb);
    for (int i = 0; i < N; i++) {
        at += random_length(0x1000);
        a[i].node.start = at;
        at += random_length(0x1000);
        a[i].node.last = at - 1;
        order[i] = i;
    }
    shuffle(order, N);
    for (int i = 0; i < N; i++) {
        struct avl_node *x = &a[order[i]].node;

        insert_range_lib(&ta, &a[order[i]], x->start, x->last);
        insert_range_lib(&tb, &b[order[i]], x->start, x->last);
    }
    count = N;
    for (int k = 0; k < ADDS; k++) {
        struct avl_gap_query q = {.size = random_length(0x1000) / (1 + rnd() % 4),
                                  .align = random_align()};
        struct avl_gap_result r;
        bool high = rnd() & 1;

        q.size = q.size < 0x1000 ? 0x1000 : q.size & ~(uint64_t)0xfff;
        q.lo = rnd() % at;
        q.hi = rnd() % 4 ? q.lo + rnd() % (at - q.lo) : UINT64_MAX;
        REQUIRE(search_agrees(&ta, &q, high, 0x1000, NULL));
        if (!avl_gap_find(&ta, &q, high ? AVL_GAP_HIGHEST : 0, &r))
            continue;
        /* The search's node is where the answer's successor is, before and after. */
        REQUIRE(r.next == NULL ? ta.last == NULL || ta.last->last < r.addr
                               : r.next->start > r.addr + (q.size - 1) &&
                                     (!avl_prev(r.next) || avl_prev(r.next)->last < r.addr));
        a[count].node.start = r.addr;
        a[count].node.last = r.addr + (q.size - 1);
        avl_insert_prev(&ta, r.next, &a[count].node);
        insert_range_lib(&tb, &b[count], r.addr, r.addr + (q.size - 1));
        count++;
        linked++;
        REQUIRE_TREE(&ta);
        REQUIRE(ta.count == tb.count && same_tree(ta.root, tb.root, a, b));
        REQUIRE(avl_next(&a[count - 1].node) == r.next);
        if (k % 3 == 0) {
            int e = (int)(rnd() % (uint64_t)count);

            if (avl_parent(&a[e].node) || ta.root == &a[e].node) {
                avl_erase(&ta, &a[e].node);
                avl_erase(&tb, &b[e].node);
                a[e].node.parent_balance = b[e].node.parent_balance = 0;
                a[e].node.left = a[e].node.right = NULL;
                REQUIRE_TREE(&ta);
            }
        }
    }
    REQUIRE(same_tree(ta.root, tb.root, a, b));
    REQUIRE(linked > ADDS / 2);
    printf("  %llu ranges linked at the hole found\n", (unsigned long long)linked);
}

/* Linking before the first range, into an empty tree and after the last keeps first and last. */
static void test_avl_insert_prev_at_the_edges(void)
{
    static struct item it[4];
    struct avl_tree t;

    avl_init(&t);
    it[0].node.start = 0x5000;
    it[0].node.last = 0x5fff;
    avl_insert_prev(&t, NULL, &it[0].node); /* empty: the root */
    REQUIRE(t.root == &it[0].node && avl_first(&t) == t.root && avl_last(&t) == t.root);
    it[1].node.start = 0x1000;
    it[1].node.last = 0x1fff;
    avl_insert_prev(&t, &it[0].node, &it[1].node);
    REQUIRE(avl_first(&t) == &it[1].node && it[1].node.gap == 0 && it[0].node.gap == 0x3000);
    it[2].node.start = 0x9000;
    it[2].node.last = 0x9fff;
    avl_insert_prev(&t, NULL, &it[2].node);
    REQUIRE(avl_last(&t) == &it[2].node && it[2].node.gap == 0x3000);
    /* Between: the root's left subtree is not empty, so the slot is below it. */
    it[3].node.start = 0x3000;
    it[3].node.last = 0x3fff;
    avl_insert_prev(&t, &it[0].node, &it[3].node);
    REQUIRE_TREE(&t);
    REQUIRE(t.count == 4 && avl_next(&it[1].node) == &it[3].node &&
            avl_next(&it[3].node) == &it[0].node);
    REQUIRE(it[3].node.gap == 0x1000 && it[0].node.gap == 0x1000 && avl_max_gap(t.root) == 0x3000);
}

/*
 * A tree deeper than any valid one (a hand-made chain of 120 right children,
 * which no sequence of operations builds) still takes an insert at the
 * bottom, and erases at the bottom and in the middle: nothing in the tree
 * has a fixed depth limit (ASan watches).
 */
static void test_avl_insert_and_erase_survive_a_chain_too_deep(void)
{
    enum { N = 120 };
    static struct item chain[N + 1];
    struct avl_tree t;

    avl_init(&t);
    for (int i = 0; i < N; i++) {
        struct avl_node *n = &chain[i].node;

        n->start = (uint64_t)i * 0x100;
        n->last = n->start + 0xf;
        n->left = n->right = NULL;
        n->parent_balance = (uintptr_t)(i ? &chain[i - 1].node : NULL) | 1; /* balance 0 */
        n->gap = i ? 0xf0 : 0;
        n->left_max = n->right_max = 0;
        if (i)
            chain[i - 1].node.right = n;
    }
    t.root = &chain[0].node;
    t.first = &chain[0].node;
    t.last = &chain[N - 1].node;
    /* (The chain is no AVL tree; avl_check is not the point here.) */
    t.count = N;
    insert_range_lib(&t, &chain[N], (uint64_t)N * 0x100, (uint64_t)N * 0x100 + 0xf);
    REQUIRE(t.count == N + 1 && avl_last(&t) == &chain[N].node);
    REQUIRE(avl_prev(&chain[N].node) == &chain[N - 1].node);
    REQUIRE(chain[N].node.gap == 0xf0);
    avl_erase(&t, &chain[N].node);
    REQUIRE(t.count == N && avl_last(&t) == &chain[N - 1].node);
    REQUIRE(avl_next(&chain[N - 1].node) == NULL);
    /* In the middle: the successor's hole grows. */
    avl_erase(&t, &chain[60].node);
    REQUIRE(t.count == N - 1 && chain[59].node.right == &chain[61].node);
    REQUIRE(avl_parent(&chain[61].node) == &chain[59].node);
    REQUIRE(chain[61].node.gap == 0xf0 + 0x10 + 0xf0);
    REQUIRE(avl_next(&chain[59].node) == &chain[61].node);
}

/*
 * A randomized mix of inserts (the caller's descent, avl_insert_range and
 * avl_insert_prev), erases and adjusts against a plain array of ranges.
 */
static void test_avl_random_ops_against_array(void)
{
    enum { SLOTS = 256 };
    static struct item it[SLOTS];
    static bool used[SLOTS];
    struct avl_tree t;

    avl_init(&t);
    memset(used, 0, sizeof(used));
    /* Slot i owns [i * 0x1000, i * 0x1000 + 0xfff] at most, so ranges never collide. */
    for (int step = 0; step < 60000; step++) {
        int i = (int)(rnd() % SLOTS);
        uint64_t base = (uint64_t)i * 0x1000;
        uint64_t s = base + rnd() % 0x800, l = s + rnd() % 0x800;

        if (!used[i]) {
            uint64_t how = rnd() % 3;
            int j = i + 1;

            while (j < SLOTS && !used[j])
                j++;
            if (how == 0) {
                insert_range(&t, &it[i], s, l);
            } else if (how == 1) {
                insert_range_lib(&t, &it[i], s, l);
            } else {
                /* Before the next used slot's range, as the array says. */
                it[i].node.start = s;
                it[i].node.last = l;
                avl_insert_prev(&t, j < SLOTS ? &it[j].node : NULL, &it[i].node);
            }
            used[i] = true;
        } else if (rnd() & 1) {
            avl_erase(&t, &it[i].node);
            used[i] = false;
        } else {
            avl_adjust(&t, &it[i].node, s, l);
        }
        REQUIRE_TREE(&t);
        if (step % 1000 == 0) {
            /* The root's augmentation equals a plain scan. */
            uint64_t lo = UINT64_MAX, hi = 0, gap = 0, prev_last = 0;
            bool have_prev = false;

            for (int j = 0; j < SLOTS; j++) {
                if (!used[j])
                    continue;
                if (it[j].node.start < lo)
                    lo = it[j].node.start;
                hi = it[j].node.last;
                if (have_prev && it[j].node.start - prev_last - 1 > gap)
                    gap = it[j].node.start - prev_last - 1;
                prev_last = it[j].node.last;
                have_prev = true;
            }
            if (t.root)
                REQUIRE(avl_first(&t)->start == lo && avl_last(&t)->last == hi &&
                        avl_max_gap(t.root) == gap);
        }
    }
}

int main(void)
{
    RUN(test_avl_empty_tree_checks_and_navigates);
    RUN(test_avl_insert_rotations_ll_rr_lr_rl);
    RUN(test_avl_sequential_inserts_stay_balanced);
    RUN(test_avl_next_prev_walk_in_order);
    RUN(test_avl_erase_rebalances_root);
    RUN(test_avl_erase_random_order_keeps_invariants);
    RUN(test_avl_adjust_updates_gaps_to_root);
    RUN(test_avl_range_ending_at_top_of_address_space);
    RUN(test_avl_range_at_zero_is_not_a_hole);
    RUN(test_avl_check_detects_each_corruption);
    RUN(test_avl_gap_search_matches_brute_force);
    RUN(test_avl_gap_failure_is_one_visit);
    RUN(test_avl_gap_search_visits_logarithmic);
    RUN(test_avl_gap_search_matches_the_walk_on_random_layouts);
    RUN(test_avl_gap_misaligned_holes_read_log_n);
    RUN(test_avl_gap_budget_off_the_page_grain);
    RUN(test_avl_gap_reproducer_at_2_20_ranges);
    RUN(test_avl_gap_search_reads_only_the_path);
    RUN(test_avl_gap_large_alignment_skips_spans_without_boundary);
    RUN(test_avl_insert_range_matches_callers_descent);
    RUN(test_avl_insert_prev_the_found_hole_matches_insert_range);
    RUN(test_avl_insert_prev_at_the_edges);
    RUN(test_avl_insert_and_erase_survive_a_chain_too_deep);
    RUN(test_avl_random_ops_against_array);
    return check_finish();
}
