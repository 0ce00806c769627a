/*
 * pt: x86-64 page tables (4- or 5-level) built and changed through a frame
 * source the caller passes in. Stage 1 builds the kernel's first address
 * space with it; the kernel adopts that hierarchy and keeps changing it; the
 * host tests run it over a buffer that stands in for physical memory.
 *
 * Invariants (pt_check proves them):
 *   - table_count is the number of tables reachable from the root, root included;
 *   - no table but the root is empty: a table whose last entry goes is freed;
 *   - a non-leaf entry is P|W, plus U exactly when some present entry in the
 *     table below has U, so the leaves alone decide what is allowed;
 *   - non-present entries are zero.
 *
 * Every change is prepare/commit: a first pass reads the hierarchy and counts
 * the tables the change needs, those frames are allocated up front (and given
 * back if one is missing), and only then does the second pass write. The
 * commit pass cannot fail, so a caller sees either the whole change or none.
 *
 * Physical memory is reached only through virt_offset; no privileged
 * instruction is executed (loading CR3 and flushing TLBs are the caller's).
 */
#include <vmm/pt.h>
#include <vmm/pte.h>

#include <canopy/page.h>
#include <canopy/vaddr.h>

/* Programmer errors only (a frame source handing out misaligned frames, a broken pool). */
#define PT_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* Frames a range change (unmap, protect) can need: two per cut large page, two cuts. */
#define PT_SPLIT_MAX 4

const char *pt_status_str(enum pt_status st)
{
    switch (st) {
    case PT_OK:
        return "ok";
    case PT_ERR_NOMEM:
        return "out of page-table frames";
    case PT_ERR_INVALID:
        return "invalid range or argument";
    case PT_ERR_EXISTS:
        return "already mapped";
    case PT_ERR_NOT_MAPPED:
        return "not mapped";
    }
    return "unknown page-table status";
}

/* ---- addresses and tables ------------------------------------------------- */

/* [va, va + size) is page aligned, not empty, canonical, not wrapping, in one half. */
static bool range_is_valid(uint64_t va, uint64_t size, unsigned levels)
{
    return size != 0 && page_is_aligned(va | size) &&
           va_range_is_canonical(va, va + size - 1, levels);
}

static uint64_t *table_at(const struct pt *pt, uint64_t pa)
{
    return (uint64_t *)(uintptr_t)(pa + pt->virt_offset);
}

/* Stores an entry in one 8-byte write, so a concurrent hardware walk sees old or new. */
static void entry_set(uint64_t *slot, uint64_t e)
{
    __atomic_store_n(slot, e, __ATOMIC_RELEASE);
}

static bool table_is_empty(const uint64_t *t)
{
    for (unsigned i = 0; i < PTE_ENTRIES; i++)
        if (pte_is_present(t[i]))
            return false;
    return true;
}

static bool table_has_user(const uint64_t *t)
{
    for (unsigned i = 0; i < PTE_ENTRIES; i++)
        if (pte_is_present(t[i]) && pte_is_user(t[i]))
            return true;
    return false;
}

static void table_zero(uint64_t *t)
{
    for (unsigned i = 0; i < PTE_ENTRIES; i++)
        t[i] = 0;
}

static void frame_free(struct pt *pt, uint64_t pa)
{
    pt->frames.free(pt->frames.ctx, pa);
}

/*
 * Frames allocated in the prepare step, chained through their first word
 * until the commit step takes them (and zeroes them).
 */
struct pool {
    uint64_t head; /* physical address of the first frame, or POOL_NIL */
    uint64_t tail; /* the last frame, valid when head is not POOL_NIL */
    uint64_t count;
};
#define POOL_NIL UINT64_MAX

static void pool_release(struct pt *pt, struct pool *pool)
{
    while (pool->head != POOL_NIL) {
        uint64_t pa = pool->head;
        pool->head = *table_at(pt, pa);
        frame_free(pt, pa);
        pool->count--;
    }
}

/* Fills the pool with n frames, or leaves it empty and returns false. */
static bool pool_fill(struct pt *pt, struct pool *pool, uint64_t n)
{
    pool->head = POOL_NIL;
    pool->count = 0;
    while (pool->count < n) {
        uint64_t pa;
        if (!pt->frames.alloc(pt->frames.ctx, &pa)) {
            pool_release(pt, pool);
            return false;
        }
        PT_ASSERT(page_is_aligned(pa));
        /* First in, first out: tables get frames in the order they were handed out. */
        *table_at(pt, pa) = POOL_NIL;
        if (pool->head == POOL_NIL)
            pool->head = pa;
        else
            *table_at(pt, pool->tail) = pa;
        pool->tail = pa;
        pool->count++;
    }
    return true;
}

/* Takes a zeroed table from the pool; the prepare step guaranteed there is one. */
static uint64_t pool_take(struct pt *pt, struct pool *pool)
{
    PT_ASSERT(pool->head != POOL_NIL);
    uint64_t pa = pool->head;
    uint64_t *t = table_at(pt, pa);
    pool->head = t[0];
    pool->count--;
    table_zero(t);
    pt->table_count++;
    return pa;
}

/*
 * The leaf bits (besides P, PS and the address) that PT_* attrs ask for, as
 * a 4 KiB leaf holds them: the PAT bit at bit 7. leaf_flags() moves it to
 * bit 12 for a large page.
 */
static uint64_t attrs_to_flags(const struct pt *pt, uint32_t attrs)
{
    uint64_t f = 0;
    if (attrs & PT_W)
        f |= PTE_W;
    if (attrs & PT_U)
        f |= PTE_U;
    if (attrs & PT_G)
        f |= PTE_G;
    f |= pte_pat_bits((attrs & PT_CACHE_MASK) >> 4, PAGE_SIZE);
    if (pt->nx && !(attrs & PT_X))
        f |= PTE_NX;
    return f;
}

/* attrs_to_flags' bits for a leaf of page_size. */
static uint64_t leaf_flags(uint64_t flags_4k, uint64_t page_size)
{
    return pte_leaf_flags_convert(flags_4k, PAGE_SIZE, page_size);
}

#define PT_ATTRS_ALL (PT_W | PT_X | PT_U | PT_G | PT_CACHE_MASK)

/* ---- init, adopt, destroy --------------------------------------------------- */

enum pt_status pt_init(struct pt *pt, unsigned levels, bool nx, uint64_t virt_offset,
                       struct pt_frames frames)
{
    if (levels != 4 && levels != 5)
        return PT_ERR_INVALID;
    pt->levels = levels;
    pt->nx = nx;
    pt->virt_offset = virt_offset;
    pt->frames = frames;
    pt->table_count = 0;
    pt->root = 0;
    uint64_t pa;
    if (!frames.alloc(frames.ctx, &pa))
        return PT_ERR_NOMEM;
    PT_ASSERT(page_is_aligned(pa));
    table_zero(table_at(pt, pa));
    pt->root = pa;
    pt->table_count = 1;
    return PT_OK;
}

static uint64_t count_tables(const struct pt *pt, uint64_t tpa, unsigned level)
{
    uint64_t n = 1;
    if (level == 1)
        return n;
    const uint64_t *t = table_at(pt, tpa);
    for (unsigned i = 0; i < PTE_ENTRIES; i++)
        if (pte_is_present(t[i]) && !pte_is_leaf(t[i], level))
            n += count_tables(pt, pte_table_addr(t[i]), level - 1);
    return n;
}

void pt_adopt(struct pt *pt, paddr_t root, unsigned levels, bool nx, uint64_t virt_offset,
              struct pt_frames frames)
{
    PT_ASSERT(levels == 4 || levels == 5);
    pt->root = pa_addr(root);
    pt->levels = levels;
    pt->nx = nx;
    pt->virt_offset = virt_offset;
    pt->frames = frames;
    pt->table_count = count_tables(pt, pt->root, levels);
}

static void free_tables(struct pt *pt, uint64_t tpa, unsigned level)
{
    if (level > 1) {
        uint64_t *t = table_at(pt, tpa);
        for (unsigned i = 0; i < PTE_ENTRIES; i++)
            if (pte_is_present(t[i]) && !pte_is_leaf(t[i], level))
                free_tables(pt, pte_table_addr(t[i]), level - 1);
    }
    frame_free(pt, tpa);
    pt->table_count--;
}

void pt_destroy(struct pt *pt)
{
    if (pt->table_count == 0)
        return;
    free_tables(pt, pt->root, pt->levels);
    PT_ASSERT(pt->table_count == 0);
    pt->root = 0;
}

/* ---- map ---------------------------------------------------------------------- */

/* One pt_map request, and the prepare pass's bookkeeping. */
struct map_req {
    uint64_t va, pa, last;
    uint64_t flags; /* leaf bits from the attrs, as a 4 KiB leaf holds them */
    bool user;
    uint64_t max_page_size;
    /* prepare: the region of the last new table counted per level (dedup in address order) */
    uint64_t new_region[6];
    bool new_valid[6];
    uint64_t new_tables;
};

/* The highest leaf level (3, 2 or 1) that va, pa, the remaining bytes and the cap allow. */
static unsigned leaf_level_for(uint64_t va, uint64_t pa, uint64_t remaining_minus_1,
                               uint64_t max_page_size)
{
    for (unsigned level = 3; level > 1; level--) {
        uint64_t ps = pte_level_size(level);
        if (ps <= max_page_size && ((va | pa) & (ps - 1)) == 0 && ps - 1 <= remaining_minus_1)
            return level;
    }
    return 1;
}

/*
 * The page of the plan that starts at va (mapping pa). In the prepare pass (pool == NULL) it
 * only reads: returns PT_ERR_EXISTS on a conflict and counts new tables. In
 * the commit pass it creates tables from the pool and writes the leaf.
 * Sets *page_size to the page it placed.
 */
static enum pt_status map_page(struct pt *pt, struct map_req *r, uint64_t va, uint64_t pa,
                               struct pool *pool, uint64_t *page_size)
{
    unsigned want = leaf_level_for(va, pa, r->last - va, r->max_page_size);
    uint64_t tpa = pt->root;
    bool fresh = false; /* prepare: the table at this level does not exist yet */
    for (unsigned level = pt->levels;; level--) {
        if (fresh) {
            /* Everything from here down is new: the leaf goes at the wanted level. */
            if (level == want)
                break;
            continue;
        }
        uint64_t *slot = &table_at(pt, tpa)[pte_index(va, level)];
        uint64_t e = *slot;
        if (level <= want && !pte_is_present(e)) {
            want = level;
            if (pool) /* the parents were given U on the way down */
                entry_set(slot, pte_make_leaf(pa, pte_level_size(level),
                                              leaf_flags(r->flags, pte_level_size(level))));
            *page_size = pte_level_size(level);
            return PT_OK;
        }
        if (pte_is_present(e) && pte_is_leaf(e, level))
            return PT_ERR_EXISTS;
        /* A table pointer (present) or a missing table above the leaf level. */
        PT_ASSERT(level > 1);
        if (!pte_is_present(e)) {
            if (pool) {
                uint64_t child = pool_take(pt, pool);
                entry_set(slot, pte_make_table(child, r->user));
                tpa = child;
            } else {
                fresh = true;
                /* Count the new tables at levels level-1 .. want, once per region. */
                for (unsigned k = level - 1; k >= want; k--) {
                    uint64_t region = va >> pte_level_shift(k + 1);
                    if (!r->new_valid[k] || r->new_region[k] != region) {
                        r->new_valid[k] = true;
                        r->new_region[k] = region;
                        r->new_tables++;
                    }
                    if (k == 1)
                        break;
                }
            }
            continue;
        }
        if (pool && r->user && !pte_is_user(e))
            entry_set(slot, e | PTE_U);
        if (level <= want)
            want = level - 1; /* a table sits where the large page would go: go smaller */
        tpa = pte_table_addr(e);
    }
    *page_size = pte_level_size(want);
    return PT_OK;
}

/* Runs the plan over the whole range, in address order. */
static enum pt_status map_pass(struct pt *pt, struct map_req *r, struct pool *pool)
{
    uint64_t va = r->va, pa = r->pa;
    for (;;) {
        uint64_t ps = 0;
        enum pt_status st = map_page(pt, r, va, pa, pool, &ps);
        if (st != PT_OK)
            return st;
        if (ps - 1 >= r->last - va)
            return PT_OK;
        va += ps;
        pa += ps;
    }
}

enum pt_status pt_map(struct pt *pt, vaddr_t va_at, paddr_t pa_at, uint64_t size, uint32_t attrs,
                      uint64_t max_page_size)
{
    uint64_t va = va_addr(va_at), pa = pa_addr(pa_at);
    if (!range_is_valid(va, size, pt->levels) || !page_is_aligned(pa) || pa + size - 1 < pa ||
        pa + size - 1 > (PTE_ADDR_MASK | (PAGE_SIZE - 1)) || max_page_size < PAGE_SIZE ||
        (attrs & ~PT_ATTRS_ALL) != 0)
        return PT_ERR_INVALID;
    struct map_req r = {
        .va = va,
        .pa = pa,
        .last = va + size - 1,
        .flags = attrs_to_flags(pt, attrs),
        .user = (attrs & PT_U) != 0,
        .max_page_size = max_page_size,
    };
    enum pt_status st = map_pass(pt, &r, NULL);
    if (st != PT_OK)
        return st;
    struct pool pool;
    if (!pool_fill(pt, &pool, r.new_tables))
        return PT_ERR_NOMEM;
    st = map_pass(pt, &r, &pool);
    PT_ASSERT(st == PT_OK && pool.count == 0);
    return PT_OK;
}

/* ---- unmap and protect ---------------------------------------------------------- */

/* What pt_unmap / pt_protect do to each fully covered leaf. */
struct range_op {
    bool unmap;
    uint64_t flags; /* protect: the new leaf bits, as a 4 KiB leaf holds them */
    struct pool pool;
};

/* The leaf a protect turns e (of page_size) into; A and D are the CPU's and are kept. */
static uint64_t protected_leaf(const struct range_op *op, uint64_t e, uint64_t page_size)
{
    return pte_make_leaf(pte_leaf_addr(e, page_size), page_size, leaf_flags(op->flags, page_size)) |
           (e & (PTE_A | PTE_D));
}

/* True if applying op to the leaf would change nothing (protect to the same bits). */
static bool op_is_noop(const struct range_op *op, uint64_t e, uint64_t page_size)
{
    return !op->unmap && protected_leaf(op, e, page_size) == e;
}

/*
 * Tables needed to carve [lo, hi] out of a leaf e at `level` starting at
 * start: one for the leaf itself plus what the sub-pages cut by lo or hi need.
 */
static uint64_t split_cost(unsigned level, uint64_t start, uint64_t lo, uint64_t hi)
{
    uint64_t size = pte_level_size(level);
    if (lo == start && hi == start + (size - 1))
        return 0;
    PT_ASSERT(level > 1);
    uint64_t sub = pte_level_size(level - 1);
    uint64_t lo_start = lo & ~(sub - 1), hi_start = hi & ~(sub - 1);
    uint64_t n =
        1 + split_cost(level - 1, lo_start, lo, lo_start == hi_start ? hi : lo_start + (sub - 1));
    if (hi_start != lo_start)
        n += split_cost(level - 1, hi_start, hi_start, hi);
    return n;
}

/* Finds the leaf covering va: its level, entry and first address. False if none. */
static bool find_leaf(const struct pt *pt, uint64_t va, unsigned *level_out, uint64_t *e_out)
{
    uint64_t tpa = pt->root;
    for (unsigned level = pt->levels; level >= 1; level--) {
        uint64_t e = table_at(pt, tpa)[pte_index(va, level)];
        if (!pte_is_present(e))
            return false;
        if (pte_is_leaf(e, level)) {
            *level_out = level;
            *e_out = e;
            return true;
        }
        tpa = pte_table_addr(e);
    }
    return false;
}

/* Tables a range op over [va, last] needs for splits; only the two end leaves can be cut. */
static uint64_t range_split_need(const struct pt *pt, const struct range_op *op, uint64_t va,
                                 uint64_t last)
{
    uint64_t n = 0, first_start = 0;
    bool first_cut = false;
    unsigned level;
    uint64_t e;
    if (find_leaf(pt, va, &level, &e)) {
        uint64_t size = pte_level_size(level), start = va & ~(size - 1);
        uint64_t hi = last - start < size ? last : start + (size - 1);
        if (!op_is_noop(op, e, size)) {
            n += split_cost(level, start, va, hi);
            first_cut = true;
            first_start = start;
        }
    }
    if (find_leaf(pt, last, &level, &e)) {
        uint64_t size = pte_level_size(level), start = last & ~(size - 1);
        if (!(first_cut && start == first_start) && start > va && !op_is_noop(op, e, size))
            n += split_cost(level, start, start, last);
    }
    return n;
}

/*
 * Replaces the leaf in *slot (at `level`, covering from start) by a table of
 * the next level down holding the same mapping in 512 smaller pages.
 */
static uint64_t split_leaf(struct pt *pt, struct range_op *op, uint64_t *slot, unsigned level)
{
    uint64_t e = *slot;
    uint64_t size = pte_level_size(level), sub = pte_level_size(level - 1);
    uint64_t pa = pte_leaf_addr(e, size);
    uint64_t flags = pte_leaf_flags_convert(e, size, sub);
    uint64_t child = pool_take(pt, &op->pool);
    uint64_t *t = table_at(pt, child);
    for (unsigned i = 0; i < PTE_ENTRIES; i++)
        t[i] = pte_make_leaf(pa + i * sub, sub, flags);
    entry_set(slot, pte_make_table(child, pte_is_user(e)));
    return child;
}

/*
 * Applies op to [lo, hi] inside the table at tpa (level `level`). The range
 * lies within this table's span. Returns nothing; frees emptied children.
 */
static void range_apply(struct pt *pt, struct range_op *op, uint64_t tpa, unsigned level,
                        uint64_t lo, uint64_t hi)
{
    uint64_t *t = table_at(pt, tpa);
    uint64_t size = pte_level_size(level);
    uint64_t start = lo & ~(size - 1);
    for (unsigned i = pte_index(lo, level);; i++, start += size) {
        uint64_t last = start + (size - 1);
        uint64_t a = lo > start ? lo : start, b = hi < last ? hi : last;
        uint64_t e = t[i];
        if (pte_is_present(e)) {
            bool whole = a == start && b == last;
            if (pte_is_leaf(e, level) && whole) {
                entry_set(&t[i], op->unmap ? 0 : protected_leaf(op, e, size));
            } else if (!pte_is_leaf(e, level) || !op_is_noop(op, e, size)) {
                uint64_t child =
                    pte_is_leaf(e, level) ? split_leaf(pt, op, &t[i], level) : pte_table_addr(e);
                range_apply(pt, op, child, level - 1, a, b);
                uint64_t *ct = table_at(pt, child);
                if (table_is_empty(ct)) {
                    entry_set(&t[i], 0);
                    frame_free(pt, child);
                    pt->table_count--;
                } else {
                    entry_set(&t[i], pte_make_table(child, table_has_user(ct)) | (t[i] & PTE_A));
                }
            }
        }
        if (last >= hi)
            break;
    }
}

static enum pt_status range_change(struct pt *pt, struct range_op *op, uint64_t va, uint64_t size)
{
    if (!range_is_valid(va, size, pt->levels))
        return PT_ERR_INVALID;
    uint64_t last = va + size - 1;
    if (!pool_fill(pt, &op->pool, range_split_need(pt, op, va, last)))
        return PT_ERR_NOMEM;
    range_apply(pt, op, pt->root, pt->levels, va, last);
    PT_ASSERT(op->pool.count == 0);
    return PT_OK;
}

enum pt_status pt_unmap(struct pt *pt, vaddr_t va, uint64_t size)
{
    struct range_op op = {.unmap = true};
    return range_change(pt, &op, va_addr(va), size);
}

enum pt_status pt_protect(struct pt *pt, vaddr_t va, uint64_t size, uint32_t attrs)
{
    if ((attrs & ~PT_ATTRS_ALL) != 0)
        return PT_ERR_INVALID;
    struct range_op op = {.unmap = false, .flags = attrs_to_flags(pt, attrs)};
    return range_change(pt, &op, va_addr(va), size);
}

/* ---- lookups ------------------------------------------------------------------------ */

/* Effective PT_* attrs of a leaf e reached through parents whose W/U were ANDed, NX ORed. */
static uint32_t effective_attrs(uint64_t e, uint64_t page_size, bool all_w, bool all_u, bool any_nx)
{
    uint32_t a = 0;
    if (all_w && pte_is_writable(e))
        a |= PT_W;
    if (all_u && pte_is_user(e))
        a |= PT_U;
    if (!any_nx && !pte_is_nx(e))
        a |= PT_X;
    if (pte_is_global(e))
        a |= PT_G;
    return a | pte_pat_index(e, page_size) << 4;
}

void pt_walk(const struct pt *pt, vaddr_t va_at, struct pt_walk *out)
{
    uint64_t va = va_addr(va_at);
    out->depth = 0;
    out->present = false;
    out->leaf = (struct pt_leaf){0};
    if (pt->table_count == 0 || !va_is_canonical(va, pt->levels))
        return;
    uint64_t tpa = pt->root;
    bool all_w = true, all_u = true, any_nx = false;
    for (unsigned level = pt->levels; level >= 1; level--) {
        unsigned idx = pte_index(va, level);
        uint64_t e = table_at(pt, tpa)[idx];
        out->level[out->depth].index = idx;
        out->level[out->depth].entry = e;
        out->depth++;
        if (!pte_is_present(e))
            return;
        if (pte_is_leaf(e, level)) {
            uint64_t size = pte_level_size(level);
            out->present = true;
            out->leaf.va = va & ~(size - 1);
            out->leaf.pa = pte_leaf_addr(e, size);
            out->leaf.page_size = size;
            out->leaf.entry = e;
            out->leaf.attrs = effective_attrs(e, size, all_w, all_u, any_nx);
            return;
        }
        all_w = all_w && pte_is_writable(e);
        all_u = all_u && pte_is_user(e);
        any_nx = any_nx || pte_is_nx(e);
        tpa = pte_table_addr(e);
    }
}

enum pt_status pt_query(const struct pt *pt, vaddr_t va, struct pt_leaf *out)
{
    struct pt_walk w;
    pt_walk(pt, va, &w);
    if (!w.present)
        return PT_ERR_NOT_MAPPED;
    *out = w.leaf;
    return PT_OK;
}

struct leaf_iter {
    const struct pt *pt;
    uint64_t first, last; /* canonical, inclusive */
    pt_leaf_fn fn;
    void *ctx;
};

/* walk is the un-extended address of the table's first entry. */
static bool leaves_rec(const struct leaf_iter *it, uint64_t tpa, unsigned level, uint64_t walk,
                       bool all_w, bool all_u, bool any_nx)
{
    const uint64_t *t = table_at(it->pt, tpa);
    uint64_t size = pte_level_size(level);
    /* From the entry holding first, if first is in this table: a small range reads a few entries.
     */
    unsigned i = it->first > va_sign_extend(walk, it->pt->levels)
                     ? (unsigned)((it->first / size) % PTE_ENTRIES)
                     : 0;
    for (; i < PTE_ENTRIES; i++) {
        uint64_t e = t[i];
        if (!pte_is_present(e))
            continue;
        uint64_t start = va_sign_extend(walk + i * size, it->pt->levels);
        if (start > it->last)
            break;
        if (start + (size - 1) < it->first)
            continue;
        if (pte_is_leaf(e, level)) {
            struct pt_leaf leaf = {
                .va = start,
                .pa = pte_leaf_addr(e, size),
                .page_size = size,
                .entry = e,
                .attrs = effective_attrs(e, size, all_w, all_u, any_nx),
            };
            if (!it->fn(it->ctx, &leaf))
                return false;
        } else if (!leaves_rec(it, pte_table_addr(e), level - 1, walk + i * size,
                               all_w && pte_is_writable(e), all_u && pte_is_user(e),
                               any_nx || pte_is_nx(e))) {
            return false;
        }
    }
    return true;
}

bool pt_for_each_leaf(const struct pt *pt, uint64_t va_start, uint64_t va_last, pt_leaf_fn fn,
                      void *ctx)
{
    if (pt->table_count == 0 || va_start > va_last)
        return true;
    struct leaf_iter it = {.pt = pt, .first = va_start, .last = va_last, .fn = fn, .ctx = ctx};
    return leaves_rec(&it, pt->root, pt->levels, 0, true, true, false);
}

/* ---- checks and sizing ----------------------------------------------------------------- */

/*
 * What check_rec looks at: the entries whose span meets [first, last]
 * (canonical addresses) and the tables below them; with the whole range,
 * every entry of every table. Tables are counted only in that case.
 */
struct check_range {
    uint64_t first, last;
    uint64_t tables;
    const char **problem;
};

/* walk is the un-extended address of the table's first entry. */
static bool check_rec(const struct pt *pt, struct check_range *c, uint64_t tpa, unsigned level,
                      uint64_t walk)
{
    const uint64_t *t = table_at(pt, tpa);
    uint64_t size = pte_level_size(level);
    /* The first entry meeting the range: first's index at this level, if first is in the table. */
    unsigned i = c->first > va_sign_extend(walk, pt->levels)
                     ? (unsigned)((c->first / size) % PTE_ENTRIES)
                     : 0;
    c->tables++;
    for (; i < PTE_ENTRIES; i++) {
        uint64_t e = t[i];
        uint64_t start = va_sign_extend(walk + i * size, pt->levels);
        if (start > c->last)
            break;
        if (!pte_is_present(e)) {
            if (e != 0) {
                *c->problem = "a non-present entry is not zero";
                return false;
            }
            continue;
        }
        if (pte_is_leaf(e, level)) {
            if ((e & PTE_ADDR_MASK & (size - 1) & ~pte_pat_bit(size)) != 0) {
                *c->problem = "a large page's frame is not aligned to its size";
                return false;
            }
            continue;
        }
        if (level == 1) {
            *c->problem = "a level-1 entry is not a leaf";
            return false;
        }
        const uint64_t *child = table_at(pt, pte_table_addr(e));
        if (table_is_empty(child)) {
            *c->problem = "an empty table below the root";
            return false;
        }
        uint64_t bits = e & ~PTE_ADDR_MASK & ~PTE_A;
        if (bits != (PTE_P | PTE_W | (table_has_user(child) ? PTE_U : 0))) {
            *c->problem = "a non-leaf entry is not P|W with U exactly when a user page is below";
            return false;
        }
        if (!check_rec(pt, c, pte_table_addr(e), level - 1, walk + i * size))
            return false;
    }
    return true;
}

static bool check_levels(const struct pt *pt, const char **problem)
{
    if (pt->levels != 4 && pt->levels != 5) {
        *problem = "levels is neither 4 nor 5";
        return false;
    }
    if (pt->table_count == 0) {
        *problem = "no root table";
        return false;
    }
    return true;
}

bool pt_check(const struct pt *pt, const char **problem)
{
    const char *dummy;
    if (!problem)
        problem = &dummy;
    *problem = NULL;
    struct check_range c = {.first = 0, .last = UINT64_MAX, .problem = problem};
    if (!check_levels(pt, problem) || !check_rec(pt, &c, pt->root, pt->levels, 0))
        return false;
    if (c.tables != pt->table_count) {
        *problem = "table_count differs from the tables reachable from the root";
        return false;
    }
    return true;
}

bool pt_check_range(const struct pt *pt, uint64_t va_first, uint64_t va_last, const char **problem)
{
    const char *dummy;
    if (!problem)
        problem = &dummy;
    *problem = NULL;
    struct check_range c = {.first = va_first, .last = va_last, .problem = problem};
    return check_levels(pt, problem) && check_rec(pt, &c, pt->root, pt->levels, 0);
}

enum pt_status pt_min_tables(const struct pt_span *spans, size_t count, unsigned levels,
                             uint64_t *tables)
{
    if (levels != 4 && levels != 5)
        return PT_ERR_INVALID;
    uint64_t region[6];
    bool seen[6] = {false};
    uint64_t n = 1; /* the root */
    for (size_t s = 0; s < count; s++) {
        const struct pt_span *sp = &spans[s];
        if (!range_is_valid(sp->va, sp->size, levels) || !page_is_aligned(sp->pa) ||
            sp->pa + sp->size - 1 < sp->pa || sp->max_page_size < PAGE_SIZE)
            return PT_ERR_INVALID;
        if (s > 0 && sp->va <= spans[s - 1].va + (spans[s - 1].size - 1))
            return PT_ERR_INVALID;
    }
    for (size_t s = 0; s < count; s++) {
        const struct pt_span *sp = &spans[s];
        uint64_t va = sp->va, pa = sp->pa, last = sp->va + sp->size - 1;
        /*
         * Runs of equal-size pages: a run ends where the range ends or where
         * the next larger size could start (va reaches its alignment).
         */
        for (;;) {
            unsigned leaf = leaf_level_for(va, pa, last - va, sp->max_page_size);
            uint64_t ps = pte_level_size(leaf);
            uint64_t pages = (last - va + 1) / ps; /* >= 1; the range is below 2^63 bytes */
            if (leaf < 3) {
                uint64_t big = pte_level_size(leaf + 1);
                uint64_t to_boundary = (big - (va & (big - 1))) & (big - 1);
                if (to_boundary != 0 && to_boundary / ps < pages)
                    pages = to_boundary / ps;
            }
            uint64_t run_last = va + (pages * ps - 1);
            for (unsigned k = leaf; k < levels; k++) {
                unsigned shift = pte_level_shift(k + 1);
                uint64_t first_r = va >> shift, last_r = run_last >> shift;
                if (seen[k] && region[k] >= first_r)
                    n += last_r - region[k];
                else
                    n += last_r - first_r + 1;
                seen[k] = true;
                region[k] = last_r;
            }
            if (run_last == last)
                break;
            va = run_last + 1;
            pa += pages * ps;
        }
    }
    *tables = n;
    return PT_OK;
}
