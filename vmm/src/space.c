/*
 * space: address spaces over the gap-augmented AVL tree (vmm/space.h).
 *
 * Invariant: the tree holds the space's VMAs in address order, disjoint,
 * page aligned, inside [start, last], canonical and off page 0
 * (vmm_space_check). Every command validates first, then finds what it needs
 * (the hole, the covered VMAs, the nodes for splits) and only then changes
 * the tree, so a failed command leaves the space exactly as it was.
 *
 * Allocation is exact (for the alignments avl_gap_find() bounds exactly; see
 * vmm/space.h for the others, and for guards), and links the new VMA at the
 * hole the search found (avl_insert_prev on the result's next range). The usable part of the
 * request window is cut into at most two pieces (the canonical lower and upper halves, minus page 0
 * and the space's bounds) and each piece is searched with avl_gap_lowest/highest, which test each
 * hole with inclusive bounds and without rounding the size up to the alignment. That rules out, by
 * construction, the seven classic mistakes of the in-order walk (vmm/tests/space_test.c has a test
 * named after each).
 *
 * Callers: the kernel's mm code (the kernel address space), the host tests.
 */
#include <vmm/space.h>

#include <canopy/page.h>
#include <canopy/vaddr.h>

const char *vmm_status_str(enum vmm_status st)
{
    switch (st) {
    case VMM_OK:
        return "ok";
    case VMM_ERR_INVALID:
        return "invalid argument";
    case VMM_ERR_NO_SPACE:
        return "no hole big enough in the window";
    case VMM_ERR_OVERLAP:
        return "range overlaps an existing area";
    case VMM_ERR_NOT_MAPPED:
        return "range not covered by areas";
    case VMM_ERR_NOMEM:
        return "out of memory for area nodes";
    }
    return "unknown status";
}

static struct vmm_vma *vma_of(const struct avl_node *n)
{
    return n ? avl_entry(n, struct vmm_vma, node) : NULL;
}

enum vmm_status vmm_space_init(struct vmm_space *s, uint64_t start, uint64_t last, unsigned va_bits,
                               struct vmm_node_source nodes)
{
    if (!page_is_aligned(start) || !page_is_aligned(last + 1) || start >= last)
        return VMM_ERR_INVALID;
    if (va_bits != VA_BITS_4L && va_bits != VA_BITS_5L)
        return VMM_ERR_INVALID;
    if (!nodes.alloc || !nodes.free)
        return VMM_ERR_INVALID;
    avl_init(&s->tree);
    s->start = start;
    s->last = last;
    unsigned levels = va_bits == VA_BITS_5L ? 5 : 4;
    s->canon_low_last = va_lower_end(levels) - 1;
    s->canon_high_start = va_upper_start(levels);
    s->nodes = nodes;
    s->last_visits = 0;
    s->total_visits = 0;
    s->last_searches = 0;
    return VMM_OK;
}

void vmm_space_clear(struct vmm_space *s)
{
    struct avl_node *n = s->tree.root;

    /* Post-order teardown without rebalancing: free leaves, climbing back up. */
    while (n) {
        if (n->left) {
            n = n->left;
        } else if (n->right) {
            n = n->right;
        } else {
            struct avl_node *p = avl_parent(n);

            if (p) {
                if (p->left == n)
                    p->left = NULL;
                else
                    p->right = NULL;
            }
            s->nodes.free(s->nodes.ctx, vma_of(n));
            n = p;
        }
    }
    avl_init(&s->tree);
}

/* True if [start, last] is inside the space, off page 0 and in one canonical half. */
static bool range_usable(const struct vmm_space *s, uint64_t start, uint64_t last)
{
    if (start < s->start || last > s->last || start < PAGE_SIZE)
        return false;
    if (last <= s->canon_low_last)
        return true;
    return start >= s->canon_high_start;
}

/* Validates a page-granular [start, start + size) and returns its last byte in *last. */
static bool range_valid(uint64_t start, uint64_t size, uint64_t *last)
{
    if (!page_is_aligned(start) || !page_is_aligned(size) || size == 0)
        return false;
    if (size - 1 > UINT64_MAX - start)
        return false; /* wraps past 2^64 */
    *last = start + (size - 1);
    return true;
}

/* The area holding addr: the last one starting at or below it, if addr is not past its end. */
static struct avl_node *lookup_node(const struct vmm_space *s, uint64_t addr)
{
    struct avl_node *n = s->tree.root, *best = NULL;

    while (n) {
        bool right = n->start <= addr;

        best = right ? n : best;
        n = avl_child(n, right);
    }
    return best && addr <= best->last ? best : NULL;
}

static struct avl_node *first_from_node(const struct vmm_space *s, uint64_t addr)
{
    struct avl_node *n = s->tree.root, *best = NULL;

    while (n) {
        if (n->last >= addr) {
            best = n;
            n = n->left;
        } else {
            n = n->right;
        }
    }
    return best;
}

/* Takes a node from the source and fills it in; NULL if the source is empty. */
static struct vmm_vma *new_vma(struct vmm_space *s, uint64_t start, uint64_t last,
                               const struct vmm_attrs *attrs)
{
    struct vmm_vma *v = s->nodes.alloc(s->nodes.ctx);

    if (!v)
        return NULL;
    v->node.start = start;
    v->node.last = last;
    v->attrs = *attrs;
    return v;
}

enum vmm_status vmm_space_reserve(struct vmm_space *s, uint64_t start, uint64_t size,
                                  const struct vmm_attrs *attrs, struct vmm_vma **out)
{
    uint64_t last;
    struct avl_node *next;
    struct vmm_vma *v;

    if (!range_valid(start, size, &last) || !range_usable(s, start, last))
        return VMM_ERR_INVALID;
    next = first_from_node(s, start);
    if (next && next->start <= last)
        return VMM_ERR_OVERLAP;
    v = new_vma(s, start, last, attrs);
    if (!v)
        return VMM_ERR_NOMEM;
    /* next is the first range above: the new one links just before it. */
    avl_insert_prev(&s->tree, next, &v->node);
    if (out)
        *out = v;
    return VMM_OK;
}

/* One tree search; counts its reads and itself. */
static bool search(struct vmm_space *s, const struct avl_gap_query *q, bool topdown,
                   struct avl_gap_result *r, uint64_t *visits)
{
    bool found = avl_gap_find(&s->tree, q, topdown ? AVL_GAP_HIGHEST : 0, r);

    *visits += r->visits;
    s->last_searches++;
    return found;
}

/*
 * The guarded search of one window piece [lo, hi] (vmm_space_alloc says
 * what it returns): r->addr is the first usable byte, r->next the range
 * above it. => 0 < guard <= hi - lo, guard a multiple of 4 KiB and not of
 * align. Out of line: inlined in find(), the setup of its loop ran before
 * every search, guarded or not.
 */
static __attribute__((noinline)) bool find_guarded(struct vmm_space *s, uint64_t lo, uint64_t hi,
                                                   uint64_t size, uint64_t align, uint64_t guard,
                                                   bool topdown, struct avl_gap_result *r,
                                                   uint64_t *visits)
{
    struct avl_gap_query q = {.size = size, .align = align, .lo = lo + guard, .hi = hi};
    bool room = guard <= UINT64_MAX - (align - 1); /* guard rounded up to align does not wrap */

    for (unsigned n = 0; n < VMM_GUARD_SEARCHES; n++) {
        struct avl_node *prev;
        uint64_t hole_lo, hole_hi, a;

        if (!search(s, &q, topdown, r, visits))
            return false;
        prev = r->next ? avl_prev(r->next) : avl_last(&s->tree);
        if (!prev || prev->last < r->addr - guard)
            return true; /* the first fit has its guard's room: no fit with a guard comes first */
        /*
         * The hole starts less than guard below r->addr, which is then its
         * first multiple of align. Top-down, every lower multiple in it has
         * even less room: go on below the hole. Bottom-up, the next multiple
         * with guard bytes below it in the hole, or on above the hole.
         */
        if (topdown) {
            if (prev->start <= q.lo)
                return false;
            q.hi = prev->start - 1;
            continue;
        }
        hole_lo = prev->last + 1;
        hole_hi = r->next ? r->next->start - 1 : q.hi;
        hole_hi = hole_hi < q.hi ? hole_hi : q.hi;
        if (room && hole_lo <= UINT64_MAX - guard - (align - 1)) {
            a = align_up(hole_lo + guard, align);
            if (a <= hole_hi && hole_hi - a >= size - 1) {
                r->addr = a;
                return true;
            }
        }
        if (!r->next || r->next->last >= q.hi || q.hi - (r->next->last + 1) < guard)
            return false;
        q.lo = r->next->last + 1 + guard;
    }
    uint64_t extra;

    /* Still no fit with a guard: extra bytes at align, the guard at the top of them. */
    if (!room || size > UINT64_MAX - align_up(guard, align))
        return false;
    extra = align_up(guard, align);
    q.size = size + extra;
    q.lo -= guard;
    if (!search(s, &q, topdown, r, visits))
        return false;
    r->addr += extra;
    return true;
}

/*
 * vmm_space_find's and vmm_space_alloc's search: *addr is the first usable
 * byte, *next the range just above it (NULL: above the last).
 */
static enum vmm_status find(struct vmm_space *s, const struct vmm_alloc_req *req, uint64_t *addr,
                            struct avl_node **next)
{
    struct avl_gap_query piece[2];
    unsigned pieces = 0, i;
    uint64_t lo, hi, visits = 0, guard = req->guard;
    uint64_t align = req->align < PAGE_SIZE ? PAGE_SIZE : req->align;
    bool topdown = (req->flags & VMM_ALLOC_TOPDOWN) != 0;
    bool found = false;
    struct avl_gap_result r;

    s->last_visits = 0;
    s->last_searches = 0;
    if (!page_is_aligned(req->size) || req->size == 0 || !page_is_aligned(guard))
        return VMM_ERR_INVALID;
    /*
     * align must have one bit set. Not written as align & (align - 1): with
     * the test for 0 clang makes that a population count, which baseline
     * x86-64 lacks, and expands it to some 25 instructions.
     */
    if (req->align == 0 || req->align >> __builtin_ctzll(req->align) != 1)
        return VMM_ERR_INVALID;
    if (req->min > req->last || req->size > UINT64_MAX - guard)
        return VMM_ERR_INVALID;

    /* The window, clipped to the space and kept off page 0. */
    lo = req->min > s->start ? req->min : s->start;
    if (lo < PAGE_SIZE)
        lo = PAGE_SIZE;
    hi = req->last < s->last ? req->last : s->last;
    /* ...then cut into its canonical pieces, in the order they are tried. */
    if (lo <= hi && lo <= s->canon_low_last)
        piece[pieces++] =
            (struct avl_gap_query){.lo = lo, .hi = hi < s->canon_low_last ? hi : s->canon_low_last};
    if (lo <= hi && hi >= s->canon_high_start)
        piece[pieces++] = (struct avl_gap_query){
            .lo = lo > s->canon_high_start ? lo : s->canon_high_start, .hi = hi};
    for (i = 0; i < pieces && !found; i++) {
        struct avl_gap_query *q = &piece[topdown ? pieces - 1 - i : i];

        q->size = req->size;
        q->align = align;
        if (guard == 0) {
            found = search(s, q, topdown, &r, &visits);
        } else if (guard % align == 0) {
            /* A multiple of align guard bytes below a multiple of align: one request. */
            q->size += guard;
            found = search(s, q, topdown, &r, &visits);
            r.addr += found ? guard : 0;
        } else if (guard <= q->hi - q->lo) {
            found = find_guarded(s, q->lo, q->hi, req->size, align, guard, topdown, &r, &visits);
        }
    }
    s->last_visits = visits;
    s->total_visits += visits;
    if (!found)
        return VMM_ERR_NO_SPACE;
    *addr = r.addr;
    *next = r.next;
    return VMM_OK;
}

enum vmm_status vmm_space_find(struct vmm_space *s, const struct vmm_alloc_req *req, uint64_t *addr)
{
    struct avl_node *next;

    return find(s, req, addr, &next);
}

enum vmm_status vmm_space_alloc(struct vmm_space *s, const struct vmm_alloc_req *req,
                                const struct vmm_attrs *attrs, struct vmm_vma **out)
{
    uint64_t addr = 0;
    struct avl_node *next = NULL;
    enum vmm_status st = find(s, req, &addr, &next);
    struct vmm_vma *v, *g = NULL;

    if (st != VMM_OK)
        return st;
    v = new_vma(s, addr, addr + (req->size - 1), attrs);
    if (!v)
        return VMM_ERR_NOMEM;
    if (req->guard) {
        g = new_vma(s, addr - req->guard, addr - 1, req->guard_attrs ? req->guard_attrs : attrs);
        if (!g) {
            s->nodes.free(s->nodes.ctx, v);
            return VMM_ERR_NOMEM;
        }
    }
    /* Where the search found the hole: below next, and the guard below the VMA. */
    avl_insert_prev(&s->tree, next, &v->node);
    if (g)
        avl_insert_prev(&s->tree, &v->node, &g->node);
    if (out)
        *out = v;
    return VMM_OK;
}

/*
 * Finds the VMAs covering [start, last]: *first contains start, *lastv contains
 * last, and every byte between is covered. VMM_ERR_NOT_MAPPED otherwise.
 */
static enum vmm_status find_cover(const struct vmm_space *s, uint64_t start, uint64_t last,
                                  struct avl_node **first, struct avl_node **lastv)
{
    struct avl_node *n = lookup_node(s, start);

    if (!n)
        return VMM_ERR_NOT_MAPPED;
    *first = n;
    while (n->last < last) {
        struct avl_node *next = avl_next(n);

        if (!next || next->start != n->last + 1)
            return VMM_ERR_NOT_MAPPED;
        n = next;
    }
    *lastv = n;
    return VMM_OK;
}

/*
 * Cuts v at address at: v keeps [v->start, at - 1], tail (a fresh node) gets
 * [at, v->last] and v's attributes.
 *
 *     before:  |v.start ............................ v.last|
 *     after:   |v.start ...... at-1| |at ........... v.last|
 *               v                     tail
 */
static void split(struct vmm_space *s, struct vmm_vma *v, uint64_t at, struct vmm_vma *tail)
{
    uint64_t old_last = v->node.last;

    avl_adjust(&s->tree, &v->node, v->node.start, at - 1);
    tail->node.start = at;
    tail->node.last = old_last;
    tail->attrs = v->attrs;
    avl_insert_next(&s->tree, &v->node, &tail->node);
}

enum vmm_status vmm_space_free(struct vmm_space *s, uint64_t start, uint64_t size)
{
    uint64_t last;
    struct avl_node *first, *lastv, *n;
    struct vmm_vma *spare = NULL;
    enum vmm_status st;

    if (!range_valid(start, size, &last))
        return VMM_ERR_INVALID;
    st = find_cover(s, start, last, &first, &lastv);
    if (st != VMM_OK)
        return st;
    /* Only a hole punched strictly inside one VMA needs a second node. */
    if (first->start < start && lastv->last > last) {
        if (first == lastv) {
            spare = s->nodes.alloc(s->nodes.ctx);
            if (!spare)
                return VMM_ERR_NOMEM;
        }
    }

    n = first;
    for (;;) {
        struct avl_node *next = n == lastv ? NULL : avl_next(n);

        /*
         *   n:      |..........................|
         *   range:       |xxxxxxxxx|              -> split, then trim the head part
         *   range:  |xxxxxxxxx|                   -> trim the front
         *   range:                |xxxxxxxxxxxxxx -> trim the back
         *   range: x|xxxxxxxxxxxxxxxxxxxxxxxxxx|x -> remove
         */
        if (n->start < start && n->last > last) {
            split(s, vma_of(n), last + 1, spare);
            avl_adjust(&s->tree, n, n->start, start - 1);
        } else if (n->start < start) {
            avl_adjust(&s->tree, n, n->start, start - 1);
        } else if (n->last > last) {
            avl_adjust(&s->tree, n, last + 1, n->last);
        } else {
            avl_erase(&s->tree, n);
            s->nodes.free(s->nodes.ctx, vma_of(n));
        }
        if (!next)
            break;
        n = next;
    }
    return VMM_OK;
}

enum vmm_status vmm_space_protect(struct vmm_space *s, uint64_t start, uint64_t size, uint32_t prot)
{
    uint64_t last;
    struct avl_node *first, *lastv, *n;
    struct vmm_vma *head_tail = NULL, *tail_tail = NULL;
    enum vmm_status st;

    if (!range_valid(start, size, &last))
        return VMM_ERR_INVALID;
    st = find_cover(s, start, last, &first, &lastv);
    if (st != VMM_OK)
        return st;
    /* Take both split nodes up front so that running dry changes nothing. */
    if (first->start < start) {
        head_tail = s->nodes.alloc(s->nodes.ctx);
        if (!head_tail)
            return VMM_ERR_NOMEM;
    }
    if (lastv->last > last) {
        tail_tail = s->nodes.alloc(s->nodes.ctx);
        if (!tail_tail) {
            if (head_tail)
                s->nodes.free(s->nodes.ctx, head_tail);
            return VMM_ERR_NOMEM;
        }
    }

    if (head_tail) {
        split(s, vma_of(first), start, head_tail);
        if (lastv == first)
            lastv = &head_tail->node;
        first = &head_tail->node;
    }
    if (tail_tail)
        split(s, vma_of(lastv), last + 1, tail_tail);
    for (n = first;; n = avl_next(n)) {
        vma_of(n)->attrs.prot = prot;
        if (n == lastv)
            break;
    }
    return VMM_OK;
}

struct vmm_vma *vmm_space_lookup(const struct vmm_space *s, uint64_t addr)
{
    return vma_of(lookup_node(s, addr));
}

struct vmm_vma *vmm_space_first_from(const struct vmm_space *s, uint64_t addr)
{
    return vma_of(first_from_node(s, addr));
}

struct vmm_vma *vmm_space_first(const struct vmm_space *s)
{
    return vma_of(avl_first(&s->tree));
}

struct vmm_vma *vmm_space_next(const struct vmm_vma *v)
{
    return vma_of(avl_next(&v->node));
}

struct vmm_vma *vmm_space_prev(const struct vmm_vma *v)
{
    return vma_of(avl_prev(&v->node));
}

size_t vmm_space_count(const struct vmm_space *s)
{
    return s->tree.count;
}

bool vmm_space_check(const struct vmm_space *s, const char **why)
{
    const struct avl_node *n;

    if (!avl_check(&s->tree, why))
        return false;
    for (n = avl_first(&s->tree); n; n = avl_next(n)) {
        const char *bad = NULL;

        if (!page_is_aligned(n->start) || !page_is_aligned(n->last + 1))
            bad = "area not page aligned";
        else if (!range_usable(s, n->start, n->last))
            bad = "area outside the space, on page 0 or non-canonical";
        if (bad) {
            if (why)
                *why = bad;
            return false;
        }
    }
    return true;
}
