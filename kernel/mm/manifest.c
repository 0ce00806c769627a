/*
 * manifest: the mapping manifest as a sorted array, and `pt check`.
 *
 * Invariant (manifest_set_check): entries sorted by va, not overlapping, each
 * [va, va + size_bytes) a whole number of pages of its page_size with va and
 * pa aligned to it. Neighbours that continue each other (VA, PA, page size,
 * flags and owner) are merged after every change, so the array stays short.
 *
 * Changes mirror vmm/src/pt.c exactly: pt_map picks the largest page the
 * alignment of va and pa and the remaining size allow; pt_unmap and
 * pt_protect split a large page cut by the range into 512 pages of the next
 * size down, recursively only where the cut is (a 1 GiB page cut at a 4 KiB
 * boundary leaves 2 MiB pages around one 2 MiB page split into 4 KiB ones).
 * So every present leaf matches one entry's page size, and `pt check` can
 * compare leaf by leaf.
 *
 * Every change first makes room for exactly what it adds and then cannot
 * fail, so a failed call changes nothing, and a change that adds nothing (an
 * unmap of whole entries) never needs more room.
 *
 * Called by the kernel (manifest_kernel.c wraps one instance) and the host
 * tests.
 */
#include <kernel/manifest.h>

#include <canopy/fmt.h>
#include <canopy/page.h>
#include <canopy/str.h>
#include <pmm/pmm.h>
#include <vmm/ptdump.h>
#include <vmm/pte.h>

#define MAP_FLAGS                                                                                  \
    (CANOPY_MAP_W | CANOPY_MAP_X | CANOPY_MAP_U | CANOPY_MAP_G | CANOPY_MAP_CACHE_MASK)
#define SPLIT_ROOM 5 /* entries one cut can add: 1G | 2M | 4K... | 4K... | 2M | 1G from one */

static uint64_t entry_last(const struct canopy_mapping *e)
{
    return e->va + (e->size_bytes - 1);
}

static bool is_page_size(uint64_t ps)
{
    return ps == PAGE_SIZE || ps == PAGE_SIZE_2M || ps == PAGE_SIZE_1G;
}

static uint64_t smaller_page(uint64_t ps)
{
    return ps == PAGE_SIZE_1G ? PAGE_SIZE_2M : PAGE_SIZE;
}

/* pt_map's choice: the largest page <= max that va, pa and the remaining size allow. */
static uint64_t page_for(uint64_t va, uint64_t pa, uint64_t remaining, uint64_t max)
{
    static const uint64_t sizes[] = {PAGE_SIZE_1G, PAGE_SIZE_2M};
    for (unsigned i = 0; i < 2; i++)
        if (sizes[i] <= max && ((va | pa) & (sizes[i] - 1)) == 0 && remaining >= sizes[i])
            return sizes[i];
    return PAGE_SIZE;
}

/* [va, va + size) is a valid range: aligned, non-empty, not wrapping. */
static bool range_ok(uint64_t va, uint64_t size)
{
    return size > 0 && page_is_aligned(va | size) && va + (size - 1) >= va;
}

static bool reserve(struct manifest *m, uint32_t more)
{
    if (m->count > UINT32_MAX - more)
        return false;
    uint32_t need = m->count + more;
    if (need <= m->capacity)
        return true;
    return m->grow && m->grow(m->grow_ctx, m, need) && m->capacity >= need;
}

static void insert_at(struct manifest *m, uint32_t i, struct canopy_mapping e)
{
    for (uint32_t k = m->count; k > i; k--)
        m->entries[k] = m->entries[k - 1];
    m->entries[i] = e;
    m->count++;
}

static void erase_at(struct manifest *m, uint32_t i)
{
    for (uint32_t k = i; k + 1 < m->count; k++)
        m->entries[k] = m->entries[k + 1];
    m->count--;
}

/* The first entry whose last byte is >= va (count if none). */
static uint32_t first_from(const struct manifest *m, uint64_t va)
{
    uint32_t lo = 0, hi = m->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (entry_last(&m->entries[mid]) < va)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct canopy_mapping *manifest_lookup(const struct manifest *m, uint64_t va)
{
    uint32_t i = first_from(m, va);
    return i < m->count && m->entries[i].va <= va ? &m->entries[i] : NULL;
}

/* Two entries that continue each other and could be one. */
static bool continues(const struct canopy_mapping *a, const struct canopy_mapping *b)
{
    return entry_last(a) + 1 == b->va && a->pa + a->size_bytes == b->pa &&
           a->page_size == b->page_size && a->flags == b->flags && a->owner == b->owner;
}

static void merge_all(struct manifest *m)
{
    uint32_t out = 0;
    for (uint32_t i = 0; i < m->count; i++) {
        if (out > 0 && continues(&m->entries[out - 1], &m->entries[i]))
            m->entries[out - 1].size_bytes += m->entries[i].size_bytes;
        else
            m->entries[out++] = m->entries[i];
    }
    m->count = out;
}

/*
 * Makes b the start of an entry if an entry holds b strictly inside, splitting
 * large pages around b as pt.c does. Adds at most SPLIT_ROOM entries.
 * => room for them was reserved.
 */
static void split_at(struct manifest *m, uint64_t b)
{
    uint32_t i = first_from(m, b);
    if (i == m->count || m->entries[i].va >= b)
        return; /* b is not strictly inside an entry */
    struct canopy_mapping e = m->entries[i];
    uint64_t ps = e.page_size;
    uint64_t cut = b & ~(ps - 1); /* start of the page holding b */
    if (cut == b) {
        /* On a page boundary: two entries of the same page size. */
        m->entries[i].size_bytes = b - e.va;
        struct canopy_mapping hi = e;
        hi.va = b;
        hi.pa = e.pa + (b - e.va);
        hi.size_bytes = e.size_bytes - (b - e.va);
        insert_at(m, i + 1, hi);
        return;
    }
    /* Inside a page: that page becomes 512 smaller ones, then split again among them. */
    uint32_t at = i;
    erase_at(m, i);
    if (cut > e.va) {
        struct canopy_mapping lo = e;
        lo.size_bytes = cut - e.va;
        insert_at(m, at++, lo);
    }
    struct canopy_mapping mid = e;
    mid.va = cut;
    mid.pa = e.pa + (cut - e.va);
    mid.size_bytes = ps;
    mid.page_size = (uint32_t)smaller_page(ps);
    insert_at(m, at++, mid);
    if (entry_last(&e) > cut + (ps - 1)) {
        struct canopy_mapping hi = e;
        hi.va = cut + ps;
        hi.pa = e.pa + (hi.va - e.va);
        hi.size_bytes = entry_last(&e) - hi.va + 1;
        insert_at(m, at, hi);
    }
    split_at(m, b);
}

/*
 * Entries the splits at a (if do_a) and then at b (if do_b) would add: the
 * splits are run on copies of the (at most two) entries involved, so a change
 * asks for exactly the room it needs and succeeds without growing whenever it
 * can (an unmap under memory pressure must not fail for want of slack).
 */
static uint32_t split_growth(const struct manifest *m, uint64_t a, bool do_a, uint64_t b, bool do_b)
{
    struct canopy_mapping local[2 + 2 * SPLIT_ROOM];
    struct manifest t = {.entries = local, .capacity = sizeof(local) / sizeof(local[0])};
    const struct canopy_mapping *ea = do_a ? manifest_lookup(m, a) : NULL;
    const struct canopy_mapping *eb = do_b ? manifest_lookup(m, b) : NULL;
    if (ea)
        local[t.count++] = *ea;
    if (eb && eb != ea)
        local[t.count++] = *eb;
    uint32_t before = t.count;
    if (do_a)
        split_at(&t, a);
    if (do_b)
        split_at(&t, b);
    return t.count - before;
}

bool manifest_set_add(struct manifest *m, uint64_t va, uint64_t pa, uint64_t size,
                      uint32_t page_size, uint16_t flags, uint16_t owner)
{
    if (!range_ok(va, size) || !page_is_aligned(pa) || pa + (size - 1) < pa ||
        !is_page_size(page_size) || (flags & ~MAP_FLAGS) != 0)
        return false;
    uint64_t last = va + (size - 1);
    uint32_t i = first_from(m, va);
    if (i < m->count && m->entries[i].va <= last)
        return false; /* overlaps entry i */
    /* The runs pt_map would use: count them, make room, then insert them in order at i. */
    uint32_t runs = 0;
    uint64_t prev = 0;
    for (uint64_t off = 0; off < size;) {
        uint64_t ps = page_for(va + off, pa + off, size - off, page_size);
        if (ps != prev)
            runs++;
        prev = ps;
        off += ps;
    }
    if (!reserve(m, runs))
        return false;
    prev = 0;
    for (uint64_t off = 0; off < size;) {
        uint64_t ps = page_for(va + off, pa + off, size - off, page_size);
        if (ps == prev) {
            m->entries[i - 1].size_bytes += ps;
        } else {
            insert_at(m, i++,
                      (struct canopy_mapping){.va = va + off,
                                              .pa = pa + off,
                                              .size_bytes = ps,
                                              .page_size = (uint32_t)ps,
                                              .flags = flags,
                                              .owner = owner});
        }
        prev = ps;
        off += ps;
    }
    merge_all(m);
    return true;
}

bool manifest_set_remove(struct manifest *m, uint64_t va, uint64_t size)
{
    if (!range_ok(va, size))
        return false;
    uint64_t last = va + (size - 1);
    if (!reserve(m, split_growth(m, va, true, last + 1, last != UINT64_MAX)))
        return false;
    split_at(m, va);
    if (last != UINT64_MAX)
        split_at(m, last + 1);
    uint32_t i = first_from(m, va);
    while (i < m->count && entry_last(&m->entries[i]) <= last)
        erase_at(m, i);
    merge_all(m);
    return true;
}

bool manifest_set_protect(struct manifest *m, uint64_t va, uint64_t size, uint16_t flags)
{
    if (!range_ok(va, size) || (flags & ~MAP_FLAGS) != 0)
        return false;
    uint64_t last = va + (size - 1);
    /* pt_protect leaves a page alone when its bits would not change: so must the manifest. */
    const struct canopy_mapping *lo = manifest_lookup(m, va);
    const struct canopy_mapping *hi = last != UINT64_MAX ? manifest_lookup(m, last + 1) : NULL;
    bool cut_lo = lo && lo->flags != flags, cut_hi = hi && hi->flags != flags;
    if (!reserve(m, split_growth(m, va, cut_lo, last + 1, cut_hi)))
        return false;
    if (cut_lo)
        split_at(m, va);
    if (cut_hi)
        split_at(m, last + 1);
    for (uint32_t i = first_from(m, va); i < m->count && m->entries[i].va <= last; i++)
        if (m->entries[i].va >= va && entry_last(&m->entries[i]) <= last)
            m->entries[i].flags = flags;
    merge_all(m);
    return true;
}

bool manifest_set_check(const struct manifest *m, const char **why)
{
    const char *problem = NULL;
    for (uint32_t i = 0; i < m->count && !problem; i++) {
        const struct canopy_mapping *e = &m->entries[i];
        if (!is_page_size(e->page_size))
            problem = "an entry has an unknown page size";
        else if (e->size_bytes == 0 || e->size_bytes % e->page_size != 0)
            problem = "an entry is not a whole number of its pages";
        else if (((e->va | e->pa) & (e->page_size - 1)) != 0)
            problem = "an entry's va or pa is not aligned to its page size";
        else if (entry_last(e) < e->va || e->pa + (e->size_bytes - 1) < e->pa)
            problem = "an entry wraps around";
        else if ((e->flags & ~MAP_FLAGS) != 0)
            problem = "an entry has unknown flags";
        else if (i > 0 && entry_last(&m->entries[i - 1]) >= e->va)
            problem = "entries overlap or are out of order";
    }
    if (why)
        *why = problem;
    return problem == NULL;
}

/* ---- pt check ---------------------------------------------------------------------------- */

enum diff_kind {
    DIFF_NONE,
    DIFF_MISSING, /* recorded, not mapped */
    DIFF_EXTRA,   /* mapped, not recorded */
    DIFF_PA,      /* mapped elsewhere */
    DIFF_SIZE,    /* mapped with other pages */
    DIFF_FLAGS,   /* mapped with other flags */
    DIFF_WX,      /* writable and executable */
};

/* One difference over [start, last]; neighbours with equal details merge. */
struct diff {
    enum diff_kind kind;
    uint64_t start, last;
    uint64_t have, want; /* PA (have - want is what merges), page size or flags */
    uint16_t owner;
};

struct compare {
    const struct manifest *m;
    const struct pt *pt;
    manifest_sink sink;
    void *ctx;
    uint32_t i;             /* the entry being covered */
    uint64_t next;          /* its first byte no leaf has covered yet */
    bool done;              /* entries exhausted (or next wrapped past 2^64) */
    struct diff pending;    /* the latest manifest difference, not yet printed */
    struct diff pending_wx; /* the latest W+X range, not yet printed */
    uint64_t differences;
};

static void size_text(char *buf, size_t len, uint64_t bytes)
{
    if (bytes == 0) /* the whole 64-bit space */
        str_copy(buf, "16E", len);
    else
        ptdump_size_text(bytes, buf, len);
}

/* The name of the memory type a manifest entry's PAT index selects under CANOPY_PAT. */
static const char *cache_name(uint64_t f)
{
    unsigned index = (unsigned)((f & CANOPY_MAP_CACHE_MASK) >> CANOPY_MAP_CACHE_SHIFT);
    return ptdump_memtype_name(pte_pat_memtype(CANOPY_PAT, index));
}

static void flags_text(char *buf, size_t len, uint64_t f, bool with_x)
{
    fmt_snprintf(buf, len, "R%c%c %s%s %s", (f & CANOPY_MAP_W) ? 'W' : '-',
                 !with_x              ? '?'
                 : (f & CANOPY_MAP_X) ? 'X'
                                      : '-',
                 (f & CANOPY_MAP_U) ? "user" : "kernel", (f & CANOPY_MAP_G) ? " G" : "",
                 cache_name(f));
}

static void diff_print(struct compare *c, const struct diff *d)
{
    char size[16], have[40], want[40];
    size_text(size, sizeof(size), d->last - d->start + 1);
    const char *owner = pmm_owner_name(d->owner);
    unsigned long long s = d->start, e = d->last + 1;
    switch (d->kind) {
    case DIFF_NONE:
        return;
    case DIFF_MISSING:
        fmt_format(c->sink, c->ctx, "pt check: missing %016llx-%016llx %s (%s): not mapped\n", s, e,
                   size, owner);
        break;
    case DIFF_EXTRA:
        fmt_format(c->sink, c->ctx,
                   "pt check: extra   %016llx-%016llx %s: mapped to %016llx, not in the manifest\n",
                   s, e, size, (unsigned long long)d->have);
        break;
    case DIFF_PA:
        fmt_format(c->sink, c->ctx,
                   "pt check: wrong PA %016llx-%016llx %s (%s): maps %016llx, manifest %016llx\n",
                   s, e, size, owner, (unsigned long long)d->have, (unsigned long long)d->want);
        break;
    case DIFF_SIZE:
        size_text(have, sizeof(have), d->have);
        size_text(want, sizeof(want), d->want);
        fmt_format(c->sink, c->ctx,
                   "pt check: wrong page size %016llx-%016llx %s (%s): %s pages, manifest %s\n", s,
                   e, size, owner, have, want);
        break;
    case DIFF_FLAGS:
        flags_text(have, sizeof(have), d->have, c->pt->nx);
        flags_text(want, sizeof(want), d->want, c->pt->nx);
        fmt_format(c->sink, c->ctx,
                   "pt check: wrong flags %016llx-%016llx %s (%s): %s, manifest %s\n", s, e, size,
                   owner, have, want);
        break;
    case DIFF_WX:
        fmt_format(c->sink, c->ctx, "pt check: W+X %016llx-%016llx %s (%llu pages)\n", s, e, size,
                   (unsigned long long)((d->last - d->start) / PAGE_SIZE + 1));
        break;
    }
    c->differences++;
}

/* Records a difference, merging it into the pending one when it continues it. */
static void diff_add(struct compare *c, struct diff d)
{
    struct diff *p = d.kind == DIFF_WX ? &c->pending_wx : &c->pending;
    bool merge =
        p->kind == d.kind && p->last != UINT64_MAX && p->last + 1 == d.start &&
        p->owner == d.owner &&
        (d.kind == DIFF_PA || d.kind == DIFF_EXTRA
             ? d.have - p->have == d.start - p->start && d.want - p->want == d.start - p->start
             : p->have == d.have && p->want == d.want);
    if (merge) {
        p->last = d.last;
        return;
    }
    diff_print(c, p);
    *p = d;
}

/* Reports what is left of the current entry from c->next up to (not including) va as missing. */
static void missing_before(struct compare *c, uint64_t va, bool to_end)
{
    while (!c->done && c->i < c->m->count) {
        const struct canopy_mapping *e = &c->m->entries[c->i];
        uint64_t last = entry_last(e);
        if (!to_end && last >= va) {
            if (c->next < va)
                diff_add(c, (struct diff){.kind = DIFF_MISSING,
                                          .start = c->next,
                                          .last = va - 1,
                                          .owner = e->owner});
            return;
        }
        if (c->next <= last)
            diff_add(c,
                     (struct diff){
                         .kind = DIFF_MISSING, .start = c->next, .last = last, .owner = e->owner});
        c->i++;
        if (c->i < c->m->count)
            c->next = c->m->entries[c->i].va;
    }
}

/* Marks everything up to and including last as seen. */
static void covered_upto(struct compare *c, uint64_t last)
{
    if (last == UINT64_MAX) {
        c->done = true;
        return;
    }
    while (c->i < c->m->count && entry_last(&c->m->entries[c->i]) <= last) {
        c->i++;
        if (c->i < c->m->count)
            c->next = c->m->entries[c->i].va;
    }
    if (c->i < c->m->count && c->next <= last)
        c->next = last + 1;
}

static bool compare_leaf(void *ctx, const struct pt_leaf *leaf)
{
    struct compare *c = ctx;
    uint64_t va = leaf->va, last = va + (leaf->page_size - 1);
    uint64_t mask = CANOPY_MAP_W | CANOPY_MAP_U | CANOPY_MAP_G | CANOPY_MAP_CACHE_MASK |
                    (c->pt->nx ? CANOPY_MAP_X : 0);
    /* The same bits, and the PAT index read from the entry (its PAT bit moves with the size). */
    uint64_t have_flags = (leaf->attrs & (PT_W | PT_X | PT_U | PT_G)) |
                          (uint64_t)pte_pat_index(leaf->entry, leaf->page_size)
                              << CANOPY_MAP_CACHE_SHIFT;
    _Static_assert(PT_W == CANOPY_MAP_W && PT_X == CANOPY_MAP_X && PT_U == CANOPY_MAP_U &&
                       PT_G == CANOPY_MAP_G,
                   "PT_* and CANOPY_MAP_* flags agree");

    if ((leaf->attrs & (PT_W | PT_X)) == (PT_W | PT_X))
        diff_add(c, (struct diff){.kind = DIFF_WX, .start = va, .last = last});

    missing_before(c, va, false);
    const struct canopy_mapping *e = c->done || c->i == c->m->count ? NULL : &c->m->entries[c->i];
    if (!e || e->va > last) {
        diff_add(c, (struct diff){.kind = DIFF_EXTRA, .start = va, .last = last, .have = leaf->pa});
        return true;
    }
    if (e->va > va || entry_last(e) < last || leaf->page_size != e->page_size) {
        /* The leaf does not fit the entry's pages: a different page size. */
        if (e->va > va)
            diff_add(c, (struct diff){
                            .kind = DIFF_EXTRA, .start = va, .last = e->va - 1, .have = leaf->pa});
        diff_add(c, (struct diff){.kind = DIFF_SIZE,
                                  .start = e->va > va ? e->va : va,
                                  .last = entry_last(e) < last ? entry_last(e) : last,
                                  .have = leaf->page_size,
                                  .want = e->page_size,
                                  .owner = e->owner});
    } else if (leaf->pa != e->pa + (va - e->va)) {
        diff_add(c, (struct diff){.kind = DIFF_PA,
                                  .start = va,
                                  .last = last,
                                  .have = leaf->pa,
                                  .want = e->pa + (va - e->va),
                                  .owner = e->owner});
    } else if ((have_flags & mask) != (e->flags & mask)) {
        diff_add(c, (struct diff){.kind = DIFF_FLAGS,
                                  .start = va,
                                  .last = last,
                                  .have = have_flags,
                                  .want = e->flags,
                                  .owner = e->owner});
    }
    covered_upto(c, last);
    return true;
}

uint64_t manifest_set_diff(const struct manifest *m, const struct pt *pt, manifest_sink sink,
                           void *ctx)
{
    struct compare c = {
        .m = m, .pt = pt, .sink = sink, .ctx = ctx, .next = m->count ? m->entries[0].va : 0};
    pt_for_each_leaf(pt, 0, UINT64_MAX, compare_leaf, &c);
    missing_before(&c, 0, true);
    diff_print(&c, &c.pending);
    diff_print(&c, &c.pending_wx);
    return c.differences;
}

void manifest_verdict(uint64_t differences, uint64_t mappings, manifest_sink sink, void *ctx)
{
    if (differences == 0)
        fmt_format(sink, ctx, "pt check: OK (%llu mappings)\n", (unsigned long long)mappings);
    else
        fmt_format(sink, ctx, "pt check: %llu differences\n", (unsigned long long)differences);
}

uint64_t manifest_set_compare(const struct manifest *m, const struct pt *pt, manifest_sink sink,
                              void *ctx)
{
    uint64_t differences = manifest_set_diff(m, pt, sink, ctx);
    manifest_verdict(differences, m->count, sink, ctx);
    return differences;
}
