/*
 * space_oracle: the naive address-space model and the differential harness
 * (see space_oracle.h).
 *
 * Invariant of the model: v[0..n) sorted by start, disjoint. Every command is
 * written the plain way (linear scans, memmove, 128-bit arithmetic) so that a
 * mistake in the clever code is unlikely to be repeated here.
 *
 * Callers: space_test.c (the random differential sequence), space_fuzz.c.
 */
#include "space_oracle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/page.h>

typedef __int128 i128;

/*
 * The model and the comparisons are the reference, not code under test: no
 * coverage guidance from them (the fuzzer's edges and features are the
 * space's, the tree's and the decoding's), and not inlined into the
 * commands, which stay instrumented.
 */
#define MODEL_FN __attribute__((noinline, no_sanitize("coverage")))

#define TOP ((i128)UINT64_MAX)

MODEL_FN void oracle_init(struct oracle *o, uint64_t start, uint64_t last, unsigned va_bits)
{
    memset(o, 0, sizeof(*o));
    o->start = start;
    o->last = last;
    o->low_last = (1ull << (va_bits - 1)) - 1;
    o->high_start = 0 - (1ull << (va_bits - 1));
}

MODEL_FN void oracle_fini(struct oracle *o)
{
    free(o->v);
    memset(o, 0, sizeof(*o));
}

MODEL_FN static void insert_at(struct oracle *o, size_t i, uint64_t start, uint64_t last,
                               const struct vmm_attrs *attrs)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        o->v = realloc(o->v, o->cap * sizeof(*o->v));
        if (!o->v)
            abort();
    }
    memmove(&o->v[i + 1], &o->v[i], (o->n - i) * sizeof(*o->v));
    o->v[i] = (struct oracle_vma){.start = start, .last = last, .attrs = *attrs};
    o->n++;
}

MODEL_FN static void remove_at(struct oracle *o, size_t i)
{
    memmove(&o->v[i], &o->v[i + 1], (o->n - i - 1) * sizeof(*o->v));
    o->n--;
}

/* Index of the first VMA with start > addr (where a VMA starting at addr would go). */
MODEL_FN static size_t upper_index(const struct oracle *o, uint64_t addr)
{
    size_t i = 0;

    while (i < o->n && o->v[i].start <= addr)
        i++;
    return i;
}

/* Page-granular, non-empty, not wrapping; fills *last. */
MODEL_FN static bool valid_range(uint64_t start, uint64_t size, uint64_t *last)
{
    i128 end = (i128)start + size - 1;

    if (start % PAGE_SIZE || size % PAGE_SIZE || size == 0 || end > TOP)
        return false;
    *last = (uint64_t)end;
    return true;
}

/* Inside the space, off page 0, wholly in one canonical half. */
MODEL_FN static bool usable(const struct oracle *o, uint64_t start, uint64_t last)
{
    if (start < o->start || last > o->last || start < PAGE_SIZE)
        return false;
    return (start <= o->low_last && last <= o->low_last) ||
           (start >= o->high_start && last >= o->high_start);
}

MODEL_FN enum vmm_status oracle_reserve(struct oracle *o, uint64_t start, uint64_t size,
                                        const struct vmm_attrs *attrs, size_t budget)
{
    uint64_t last;
    size_t i;

    if (!valid_range(start, size, &last) || !usable(o, start, last))
        return VMM_ERR_INVALID;
    for (i = 0; i < o->n; i++)
        if (o->v[i].start <= last && start <= o->v[i].last)
            return VMM_ERR_OVERLAP;
    if (budget < 1)
        return VMM_ERR_NOMEM;
    insert_at(o, upper_index(o, start), start, last, attrs);
    return VMM_OK;
}

/* The usable pieces of a window, in address order: at most the two canonical halves. */
struct piece {
    i128 lo, hi;
};

MODEL_FN static int window_pieces(const struct oracle *o, const struct vmm_alloc_req *req,
                                  struct piece out[2])
{
    i128 lo = req->min, hi = req->last;
    int n = 0;

    if (lo < o->start)
        lo = o->start;
    if (lo < (i128)PAGE_SIZE)
        lo = PAGE_SIZE;
    if (hi > o->last)
        hi = o->last;
    if (lo <= hi && lo <= o->low_last)
        out[n++] = (struct piece){lo, hi < o->low_last ? hi : o->low_last};
    if (lo <= hi && hi >= o->high_start)
        out[n++] = (struct piece){lo > o->high_start ? lo : o->high_start, hi};
    return n;
}

/* The free bytes of hole i (between v[i-1] and v[i]); false if it is empty. */
MODEL_FN static bool hole(const struct oracle *o, size_t i, i128 *lo, i128 *hi)
{
    *lo = i == 0 ? 0 : (i128)o->v[i - 1].last + 1;
    *hi = i == o->n ? TOP : (i128)o->v[i].start - 1;
    return *lo <= *hi;
}

/* The tree's over-asked search's alignment (vmm/avl.h): 1 GiB, 2 MiB or a page, below align. */
MODEL_FN static i128 over_align(i128 align)
{
    return align > (i128)PAGE_SIZE_1G   ? (i128)PAGE_SIZE_1G
           : align > (i128)PAGE_SIZE_2M ? (i128)PAGE_SIZE_2M
                                        : (i128)PAGE_SIZE;
}

MODEL_FN enum vmm_status oracle_alloc(struct oracle *o, const struct vmm_alloc_req *req,
                                      const struct vmm_attrs *attrs, size_t budget,
                                      unsigned over_asked, uint64_t *addr)
{
    struct piece p[2];
    int pieces, j;
    i128 align = req->align < PAGE_SIZE ? (i128)PAGE_SIZE : (i128)req->align;
    i128 size = req->size, b = over_align(align), g = req->guard;
    bool topdown = req->flags & VMM_ALLOC_TOPDOWN;
    bool found = false;
    i128 a = 0;
    size_t step;

    if (req->size % PAGE_SIZE || req->size == 0 || req->align == 0 ||
        (req->align & (req->align - 1)) || req->min > req->last || req->guard % PAGE_SIZE ||
        req->size > UINT64_MAX - req->guard)
        return VMM_ERR_INVALID;
    pieces = window_pieces(o, req, p);
    /* The walk: holes in address order (or reverse), each clipped to each piece. */
    for (step = 0; step <= o->n && !found; step++) {
        size_t i = topdown ? o->n - step : step;
        i128 hlo, hhi;

        if (!hole(o, i, &hlo, &hhi))
            continue;
        for (j = 0; j < pieces && !found; j++) {
            const struct piece *pc = &p[topdown ? pieces - 1 - j : j];
            i128 lo = hlo > pc->lo ? hlo : pc->lo;
            i128 hi = hhi < pc->hi ? hhi : pc->hi;

            if (lo > hi)
                continue;
            if (topdown) {
                a = hi - size + 1;
                a = a < 0 ? -1 : a / align * align;
            } else {
                a = (lo + g + align - 1) / align * align; /* a guard's bytes below it */
            }
            if ((over_asked >> j & 1) && i > 0 && i < o->n &&
                (lo + b - 1) / b * b + size + align - b - 1 > hi)
                continue; /* between two VMAs, no room for the over-ask */
            if (a - g >= lo && a + size - 1 <= hi)
                found = true;
        }
    }
    if (!found)
        return VMM_ERR_NO_SPACE;
    *addr = (uint64_t)a;
    if (budget < (g ? 2u : 1u))
        return VMM_ERR_NOMEM;
    insert_at(o, upper_index(o, (uint64_t)a), (uint64_t)a, (uint64_t)(a + size - 1), attrs);
    if (g)
        insert_at(o, upper_index(o, (uint64_t)(a - g)), (uint64_t)(a - g), (uint64_t)(a - 1),
                  req->guard_attrs ? req->guard_attrs : attrs);
    return VMM_OK;
}

/* Finds [first, last_i] covering [start, last] with no gap; false if not covered. */
MODEL_FN static bool cover(const struct oracle *o, uint64_t start, uint64_t last, size_t *first,
                           size_t *last_i)
{
    size_t i;

    for (i = 0; i < o->n; i++)
        if (o->v[i].start <= start && start <= o->v[i].last)
            break;
    if (i == o->n)
        return false;
    *first = i;
    while (o->v[i].last < last) {
        if (i + 1 == o->n || o->v[i + 1].start != o->v[i].last + 1)
            return false;
        i++;
    }
    *last_i = i;
    return true;
}

MODEL_FN enum vmm_status oracle_free(struct oracle *o, uint64_t start, uint64_t size, size_t budget)
{
    uint64_t last;
    size_t first, last_i, i;

    if (!valid_range(start, size, &last))
        return VMM_ERR_INVALID;
    if (!cover(o, start, last, &first, &last_i))
        return VMM_ERR_NOT_MAPPED;
    if (first == last_i && o->v[first].start < start && o->v[first].last > last) {
        struct oracle_vma whole = o->v[first];

        if (budget < 1)
            return VMM_ERR_NOMEM;
        o->v[first].last = start - 1;
        insert_at(o, first + 1, last + 1, whole.last, &whole.attrs);
        return VMM_OK;
    }
    /* Walk backwards so removals do not shift the indices still to visit. */
    for (i = last_i + 1; i-- > first;) {
        struct oracle_vma *v = &o->v[i];

        if (v->start < start)
            v->last = start - 1;
        else if (v->last > last)
            v->start = last + 1;
        else
            remove_at(o, i);
    }
    return VMM_OK;
}

MODEL_FN enum vmm_status oracle_protect(struct oracle *o, uint64_t start, uint64_t size,
                                        uint32_t prot, size_t budget)
{
    uint64_t last;
    size_t first, last_i, i, need = 0;

    if (!valid_range(start, size, &last))
        return VMM_ERR_INVALID;
    if (!cover(o, start, last, &first, &last_i))
        return VMM_ERR_NOT_MAPPED;
    need += o->v[first].start < start;
    need += o->v[last_i].last > last;
    if (need > budget)
        return VMM_ERR_NOMEM;
    if (o->v[last_i].last > last) {
        struct oracle_vma tail = o->v[last_i];

        o->v[last_i].last = last;
        insert_at(o, last_i + 1, last + 1, tail.last, &tail.attrs);
    }
    if (o->v[first].start < start) {
        struct oracle_vma head = o->v[first];

        o->v[first].last = start - 1;
        insert_at(o, first + 1, start, head.last, &head.attrs);
        first++;
        last_i++;
    }
    for (i = first; i <= last_i; i++)
        o->v[i].attrs.prot = prot;
    return VMM_OK;
}

MODEL_FN const struct oracle_vma *oracle_lookup(const struct oracle *o, uint64_t addr)
{
    size_t i;

    for (i = 0; i < o->n; i++)
        if (o->v[i].start <= addr && addr <= o->v[i].last)
            return &o->v[i];
    return NULL;
}

/* ---- the differential harness ---- */

static struct vmm_vma *diff_node_alloc(void *ctx)
{
    struct diff *d = ctx;
    struct vmm_vma *v;

    if (d->budget == 0)
        return NULL;
    v = malloc(sizeof(*v));
    if (!v)
        abort();
    if (d->budget != DIFF_UNLIMITED)
        d->budget--;
    d->live_nodes++;
    return v;
}

static void diff_node_free(void *ctx, struct vmm_vma *v)
{
    struct diff *d = ctx;

    d->live_nodes--;
    free(v);
}

bool diff_init(struct diff *d, uint64_t start, uint64_t last, unsigned va_bits)
{
    struct vmm_node_source src = {.alloc = diff_node_alloc, .free = diff_node_free, .ctx = d};

    memset(d, 0, sizeof(*d));
    d->budget = DIFF_UNLIMITED;
    d->check_visits = true;
    oracle_init(&d->model, start, last, va_bits);
    if (vmm_space_init(&d->space, start, last, va_bits, src) != VMM_OK) {
        snprintf(d->err, sizeof(d->err), "init [%#llx, %#llx] refused", (unsigned long long)start,
                 (unsigned long long)last);
        return false;
    }
    return true;
}

static bool compare_state(struct diff *d);

bool diff_fini(struct diff *d)
{
    /* The end of the input: the whole space, unless a disagreement was already found. */
    bool ok = d->full_every <= 1 || d->err[0] != '\0' || compare_state(d);

    vmm_space_clear(&d->space);
    oracle_fini(&d->model);
    if (ok && d->live_nodes != 0) {
        snprintf(d->err, sizeof(d->err), "%zu nodes leaked", d->live_nodes);
        return false;
    }
    return ok;
}

static bool fail(struct diff *d, const char *what, unsigned long long a, unsigned long long b)
{
    if (!d->err[0])
        snprintf(d->err, sizeof(d->err), "op %llu: %s (%#llx vs %#llx)", (unsigned long long)d->ops,
                 what, a, b);
    return false;
}

MODEL_FN static bool attrs_equal(const struct vmm_attrs *a, const struct vmm_attrs *b)
{
    return a->name == b->name && a->prot == b->prot && a->kind == b->kind && a->flags == b->flags;
}

/* Compares the whole space with the model and runs the structure checker. */
MODEL_FN static bool compare_state(struct diff *d)
{
    const struct vmm_vma *v;
    const char *why = NULL;
    size_t i = 0;

    d->full_checks++;
    if (!vmm_space_check(&d->space, &why)) {
        snprintf(d->err, sizeof(d->err), "op %llu: vmm_space_check: %s", (unsigned long long)d->ops,
                 why);
        return false;
    }
    if (vmm_space_count(&d->space) != d->model.n)
        return fail(d, "VMA count differs", vmm_space_count(&d->space), d->model.n);
    if (d->live_nodes != d->model.n)
        return fail(d, "nodes held differ from VMA count", d->live_nodes, d->model.n);
    for (v = vmm_space_first(&d->space); v; v = vmm_space_next(v), i++) {
        const struct oracle_vma *m = &d->model.v[i];

        if (vmm_vma_start(v) != m->start)
            return fail(d, "VMA start differs", vmm_vma_start(v), m->start);
        if (vmm_vma_last(v) != m->last)
            return fail(d, "VMA last differs", vmm_vma_last(v), m->last);
        if (!attrs_equal(&v->attrs, &m->attrs))
            return fail(d, "VMA attributes differ", v->attrs.prot, m->attrs.prot);
    }
    return true;
}

/* The highest VMA of the space, or NULL. */
MODEL_FN static const struct vmm_vma *vma_last(const struct vmm_space *s)
{
    const struct avl_node *n = avl_last(&s->tree);

    return n ? avl_entry(n, const struct vmm_vma, node) : NULL;
}

/*
 * The space's and the model's VMA against each other; with path, the
 * space's from avl_check_path too.
 */
MODEL_FN static bool compare_vma(struct diff *d, const struct vmm_vma *v,
                                 const struct oracle_vma *m, bool path)
{
    const char *why = NULL;

    if (!v != !m)
        return fail(d, "local: VMA present on one side only", v ? vmm_vma_start(v) : 0,
                    m ? m->start : 0);
    if (!v)
        return true;
    if (vmm_vma_start(v) != m->start || vmm_vma_last(v) != m->last)
        return fail(d, "local: VMA differs", vmm_vma_start(v), m->start);
    if (!attrs_equal(&v->attrs, &m->attrs))
        return fail(d, "local: VMA attributes differ", v->attrs.prot, m->attrs.prot);
    if (path && !avl_check_path(&d->space.tree, &v->node, &why)) {
        snprintf(d->err, sizeof(d->err), "op %llu: local: avl_check_path: %s",
                 (unsigned long long)d->ops, why);
        return false;
    }
    return true;
}

/*
 * What a command that touched [lo, hi] (nothing if lo > hi) must leave: the
 * counts, the lowest and highest VMA, and the VMAs meeting [lo, hi] with one
 * neighbour either side equal on both sides, each of those with a sound path
 * to the root. O((k + 1) log n) for k VMAs in the range.
 */
MODEL_FN static bool compare_local(struct diff *d, uint64_t lo, uint64_t hi)
{
    const struct oracle *o = &d->model;
    const struct vmm_vma *v;
    size_t i = 0, lo_i, hi_i;

    if (vmm_space_count(&d->space) != o->n)
        return fail(d, "local: VMA count differs", vmm_space_count(&d->space), o->n);
    if (d->live_nodes != o->n)
        return fail(d, "local: nodes held differ from VMA count", d->live_nodes, o->n);
    if (o->n == 0)
        return true;
    if (!compare_vma(d, vmm_space_first(&d->space), &o->v[0], false) ||
        !compare_vma(d, vma_last(&d->space), &o->v[o->n - 1], false))
        return false;
    if (lo > hi)
        return true;
    /* The model's VMAs meeting [lo, hi], by binary search, widened by one each side. */
    lo_i = 0, hi_i = o->n;
    while (lo_i < hi_i) {
        size_t mid = lo_i + (hi_i - lo_i) / 2;

        if (o->v[mid].last < lo)
            lo_i = mid + 1;
        else
            hi_i = mid;
    }
    i = lo_i > 0 ? lo_i - 1 : 0;
    v = vmm_space_lookup(&d->space, o->v[i].start);
    for (; i < o->n; i++, v = v ? vmm_space_next(v) : NULL) {
        if (!compare_vma(d, v, &o->v[i], true))
            return false;
        if (o->v[i].start > hi)
            return true; /* the neighbour above */
    }
    return compare_vma(d, v, NULL, true); /* nothing above the last on either side */
}

/* After a changing command: the hook, then the step check, then the full one when due. */
static bool compare_after(struct diff *d, uint64_t lo, uint64_t hi)
{
    if (d->hook)
        d->hook(d, lo, hi);
    if (d->full_every > 1) {
        if (!compare_local(d, lo, hi)) {
            d->err_local = true;
            return false;
        }
        if (d->ops % d->full_every != 0)
            return true;
    }
    return compare_state(d);
}

/* [start, start + size - 1], or [start, UINT64_MAX] where that wraps; nothing for size 0. */
static void range_of(uint64_t start, uint64_t size, uint64_t *lo, uint64_t *hi)
{
    *lo = start;
    *hi = size == 0 ? 0 : size - 1 > UINT64_MAX - start ? UINT64_MAX : start + (size - 1);
    if (size == 0)
        *lo = 1;
}

static bool compare_status(struct diff *d, const char *op, enum vmm_status got,
                           enum vmm_status want)
{
    if (got != want) {
        snprintf(d->err, sizeof(d->err), "op %llu: %s: space says %s, model says %s",
                 (unsigned long long)d->ops, op, vmm_status_str(got), vmm_status_str(want));
        return false;
    }
    return true;
}

bool diff_reserve(struct diff *d, uint64_t start, uint64_t size, const struct vmm_attrs *attrs)
{
    struct vmm_vma *v = NULL;
    uint64_t lo, hi;
    enum vmm_status want = oracle_reserve(&d->model, start, size, attrs, d->budget);
    enum vmm_status got = vmm_space_reserve(&d->space, start, size, attrs, &v);

    d->ops++;
    if (!compare_status(d, "reserve", got, want))
        return false;
    if (got == VMM_OK && vmm_vma_start(v) != start)
        return fail(d, "reserve returned the wrong VMA", vmm_vma_start(v), start);
    range_of(start, size, &lo, &hi);
    return compare_after(d, lo, hi);
}

static unsigned ceil_log2(uint64_t x)
{
    unsigned r = 0;

    while ((1ull << r) < x && r < 63)
        r++;
    return r;
}

/* True if no VMA of the model touches [start, last]. */
static bool model_free(const struct oracle *o, uint64_t start, uint64_t last)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->v[i].start <= last && start <= o->v[i].last)
            return false;
    return true;
}

/*
 * A guarded request that ran out of its searches and over-asked
 * (vmm/space.h): its answer need not be the first fit, only a valid one
 * that never passes it (or none). Checks that, then makes the allocation on
 * both sides at the space's address.
 */
static bool guard_over_asked(struct diff *d, const struct vmm_alloc_req *req,
                             const struct vmm_attrs *attrs, enum vmm_status probed, uint64_t probe,
                             bool exact_found, uint64_t exact)
{
    struct vmm_alloc_req fixed = *req;
    struct vmm_vma *v = NULL;
    uint64_t align = req->align < PAGE_SIZE ? PAGE_SIZE : req->align, addr = 0;
    bool topdown = req->flags & VMM_ALLOC_TOPDOWN;
    enum vmm_status got, want;

    if (probed == VMM_OK) {
        if (probe % align || probe - req->guard < req->min || probe < req->guard ||
            probe + (req->size - 1) > req->last || probe + (req->size - 1) < probe)
            return fail(d, "an over-asked guarded find is misaligned or outside the window", probe,
                        align);
        if (!model_free(&d->model, probe - req->guard, probe + (req->size - 1)))
            return fail(d, "an over-asked guarded find overlaps an area", probe, req->guard);
        if (exact_found && (topdown ? probe > exact : probe < exact))
            return fail(d, "an over-asked guarded find passed the first fit", probe, exact);
    } else if (probed != VMM_ERR_NO_SPACE) {
        return fail(d, "an over-asked guarded find failed oddly", probed, VMM_ERR_NO_SPACE);
    }
    got = vmm_space_alloc(&d->space, req, attrs, &v);
    d->ops++;
    d->finds++;
    if (got != (probed == VMM_OK && d->budget < 2 ? VMM_ERR_NOMEM : probed))
        return fail(d, "vmm_space_find and vmm_space_alloc disagree", probed, got);
    if (got == VMM_OK) {
        d->found++;
        if (vmm_vma_start(v) != probe)
            return fail(d, "vmm_space_find found another address", probe, vmm_vma_start(v));
        /* The model records it where the space did: a one-address window. */
        fixed.min = probe - req->guard;
        fixed.last = probe + (req->size - 1);
        fixed.flags = 0;
        want = oracle_alloc(&d->model, &fixed, attrs, d->budget, 0, &addr);
        if (want != VMM_OK || addr != probe)
            return fail(d, "the model cannot record the over-asked guarded area", want, addr);
    }
    return compare_state(d);
}

bool diff_alloc(struct diff *d, const struct vmm_alloc_req *req, const struct vmm_attrs *attrs)
{
    struct vmm_vma *v = NULL;
    uint64_t want_addr = 0;
    size_t n = d->model.n;
    uint64_t probe = 0;
    enum vmm_status probed = vmm_space_find(&d->space, req, &probe);
    enum vmm_status got, want;
    uint64_t align = req->align < PAGE_SIZE ? PAGE_SIZE : req->align;
    unsigned over = 0;

    /*
     * At an alignment other than 4 KiB or less, 2 MiB and 1 GiB the tree
     * searches its holes for an over-asked room (vmm/avl.h) wherever it
     * searches them: the model reads each window piece either way and takes
     * the reading that matches the space.
     */
    for (over = 0; over < 4; over++) {
        /* With no node to give, the model finds without recording: NOMEM means found. */
        want = oracle_alloc(&d->model, req, attrs, 0, over, &want_addr);
        if ((want == VMM_ERR_NOMEM ? VMM_OK : want) == probed &&
            (want != VMM_ERR_NOMEM || want_addr == probe))
            break;
        if (align <= PAGE_SIZE || align == PAGE_SIZE_2M || align == PAGE_SIZE_1G)
            over = 3; /* exact: the first fit only */
    }
    if (req->guard && d->space.last_searches > VMM_GUARD_SEARCHES &&
        (want == VMM_ERR_NOMEM ? VMM_OK : want) != probed)
        return guard_over_asked(d, req, attrs, probed, probe, want == VMM_ERR_NOMEM, want_addr);
    if (req->guard && want == VMM_ERR_NOMEM && want_addr != probe &&
        d->space.last_searches > VMM_GUARD_SEARCHES)
        return guard_over_asked(d, req, attrs, probed, probe, true, want_addr);
    want = oracle_alloc(&d->model, req, attrs, d->budget, over < 4 ? over : 0, &want_addr);

    d->ops++;
    d->finds++;
    if (vmm_space_count(&d->space) != n)
        return fail(d, "vmm_space_find changed the space", vmm_space_count(&d->space), n);
    got = vmm_space_alloc(&d->space, req, attrs, &v);
    /* find is alloc's search: same outcome, same address, NOMEM aside. */
    if (probed != (got == VMM_ERR_NOMEM ? VMM_OK : got))
        return fail(d, "vmm_space_find and vmm_space_alloc disagree", probed, got);
    if (got == VMM_OK && probe != vmm_vma_start(v))
        return fail(d, "vmm_space_find found another address", probe, vmm_vma_start(v));
    if (!compare_status(d, req->flags & VMM_ALLOC_TOPDOWN ? "alloc top-down" : "alloc", got, want))
        return false;
    if (got == VMM_OK) {
        d->found++;
        if (vmm_vma_start(v) != want_addr)
            return fail(d, "alloc address differs", vmm_vma_start(v), want_addr);
    }
    /*
     * What vmm/avl.h promises per canonical piece, however many holes are
     * big enough but misaligned: 3h - 2 reads where the bound is exact, and
     * at most avl_gap_budget(n) + h more past 16 TiB, where it is not.
     */
    if (d->check_visits && (got == VMM_OK || got == VMM_ERR_NO_SPACE)) {
        uint64_t h = 2 * ceil_log2(n + 2) + 2; /* an AVL tree's height bound, rounded up */
        uint64_t bound = 2 * (avl_gap_budget(n) + 4 * h - 2);

        if (d->space.last_visits > bound)
            return fail(d, "search visited too many nodes", d->space.last_visits, bound);
    }
    /* A failed search touched nothing; the counts and the edges are still compared. */
    return got == VMM_OK ? compare_after(d, vmm_vma_start(v), vmm_vma_last(v))
                         : compare_after(d, 1, 0);
}

bool diff_free(struct diff *d, uint64_t start, uint64_t size)
{
    enum vmm_status want = oracle_free(&d->model, start, size, d->budget);
    enum vmm_status got = vmm_space_free(&d->space, start, size);
    uint64_t lo, hi;

    d->ops++;
    range_of(start, size, &lo, &hi);
    return compare_status(d, "free", got, want) && compare_after(d, lo, hi);
}

bool diff_protect(struct diff *d, uint64_t start, uint64_t size, uint32_t prot)
{
    enum vmm_status want = oracle_protect(&d->model, start, size, prot, d->budget);
    enum vmm_status got = vmm_space_protect(&d->space, start, size, prot);
    uint64_t lo, hi;

    d->ops++;
    range_of(start, size, &lo, &hi);
    return compare_status(d, "protect", got, want) && compare_after(d, lo, hi);
}

bool diff_lookup(struct diff *d, uint64_t addr)
{
    const struct vmm_vma *v = vmm_space_lookup(&d->space, addr);
    const struct oracle_vma *m = oracle_lookup(&d->model, addr);
    const struct vmm_vma *f = vmm_space_first_from(&d->space, addr);
    size_t i;

    d->ops++;
    if (!v != !m)
        return fail(d, "lookup found/not found differs", addr, !m);
    if (v && (vmm_vma_start(v) != m->start || vmm_vma_last(v) != m->last))
        return fail(d, "lookup found another VMA", vmm_vma_start(v), m->start);
    for (i = 0; i < d->model.n && d->model.v[i].last < addr; i++)
        ;
    if ((i == d->model.n) != !f)
        return fail(d, "first_from found/not found differs", addr, i);
    if (f && vmm_vma_start(f) != d->model.v[i].start)
        return fail(d, "first_from found another VMA", vmm_vma_start(f), d->model.v[i].start);
    return true;
}

uint64_t diff_pick_addr(const struct diff *d, uint64_t r1, uint64_t r2)
{
    const struct oracle *o = &d->model;
    uint64_t span = o->last - o->start;

    if (o->n == 0 || r1 % 4 == 0) {
        /* Anywhere in the space, page aligned. */
        return page_down(o->start + (span ? r2 % span : 0));
    } else {
        /* Near a VMA: its start, end, middle, or just outside. */
        const struct oracle_vma *v = &o->v[(r1 / 4) % o->n];
        uint64_t pages = (v->last - v->start) / PAGE_SIZE + 1;

        switch (r2 % 5) {
        case 0:
            return v->start;
        case 1:
            return v->last + 1;
        case 2:
            return v->start + (r2 / 8 % pages) * PAGE_SIZE;
        case 3:
            return v->start - PAGE_SIZE;
        default:
            return v->last + 1 + (r2 / 8 % 16) * PAGE_SIZE;
        }
    }
}

/* ---- random operations ---- */

static const char *const names[] = {"stack", "heap", "mmio", ".text", "guard"};

/* Scenario spaces: each puts edges (page 0, the canonical hole, 2^64) within reach. */
static const struct {
    uint64_t start, last;
    unsigned va_bits;
} scenarios[DIFF_SCENARIOS] = {
    {0, UINT64_MAX, 48},                                /* everything, 4-level */
    {0x40000000, 0x40000000 + (64ull << 30) - 1, 48},   /* 64 GiB: 1 GiB alignment bites */
    {0xffffc00000000000ull, 0xffffdfffffffffffull, 48}, /* the kernel's dynamic area */
    {0, UINT64_MAX, 57},                                /* everything, 5-level */
};

bool diff_init_scenario(struct diff *d, unsigned scenario)
{
    scenario %= DIFF_SCENARIOS;
    return diff_init(d, scenarios[scenario].start, scenarios[scenario].last,
                     scenarios[scenario].va_bits);
}

/* A size in pages, mostly small, sometimes up to 2 MiB, rarely up to 1 GiB. */
static uint64_t pick_size(uint64_t r)
{
    unsigned shift = (unsigned)(r % 100);

    if (shift < 70)
        shift = shift % 5; /* 1..16 pages */
    else if (shift < 97)
        shift = shift % 10; /* up to 512 pages: 2 MiB */
    else
        shift = shift % 19; /* up to 1 GiB */
    return ((r >> 8) % (1ull << shift) + 1) * PAGE_SIZE;
}

/*
 * Anchor points where bugs live: the space's ends, page 1, the canonical
 * edges and the top of the address space.
 */
static uint64_t pick_anchor(const struct diff *d, uint64_t r)
{
    const struct oracle *o = &d->model;

    switch (r % 6) {
    case 0:
        return o->start;
    case 1:
        return o->last - PAGE_SIZE + 1;
    case 2:
        return PAGE_SIZE;
    case 3:
        return o->low_last - PAGE_SIZE + 1;
    case 4:
        return o->high_start;
    default:
        return UINT64_MAX - PAGE_SIZE + 1;
    }
}

/* Moves a by up to +-1 GiB (r-dependent), saturating at the ends of the address space. */
static uint64_t nudge(uint64_t a, uint64_t r)
{
    uint64_t delta = ((r >> 4) % (1ull << ((r >> 40) % 31))) & ~(PAGE_SIZE - 1);

    if (r & 1)
        return a > UINT64_MAX - delta ? UINT64_MAX & ~(PAGE_SIZE - 1) : a + delta;
    return a < delta ? 0 : a - delta;
}

static uint64_t pick_point(const struct diff *d, struct diff_rand *r)
{
    uint64_t r1 = r->next(r->ctx), r2 = r->next(r->ctx);

    if (r1 % 3 == 0)
        return nudge(pick_anchor(d, r1 >> 3), r2);
    return diff_pick_addr(d, r1 >> 2, r2);
}

static struct vmm_attrs pick_attrs(uint64_t r)
{
    return (struct vmm_attrs){.name = names[r % 5],
                              .prot = (uint32_t)(r >> 8) & 7,
                              .kind = (uint16_t)((r >> 16) % 4),
                              .flags = (uint16_t)((r >> 24) % 3)};
}

/* A random [start, start + size) around the existing VMAs, for free and protect. */
static void pick_range(const struct diff *d, struct diff_rand *r, uint64_t *start, uint64_t *size)
{
    const struct oracle *o = &d->model;
    uint64_t r1 = r->next(r->ctx), r2 = r->next(r->ctx);

    if (o->n > 0 && r1 % 8 != 0) {
        size_t i = (size_t)(r2 % o->n), j = i;
        const struct oracle_vma *v = &o->v[i];

        switch (r1 / 8 % 4) {
        case 0: /* exactly one VMA */
            *start = v->start;
            *size = v->last - v->start + 1;
            return;
        case 1: { /* a page-aligned part of one VMA */
            uint64_t pages = (v->last - v->start) / PAGE_SIZE + 1;
            uint64_t first = (r2 >> 20) % pages, count = (r1 >> 20) % (pages - first) + 1;

            *start = v->start + first * PAGE_SIZE;
            *size = count * PAGE_SIZE;
            return;
        }
        case 2: /* from inside v[i] to inside a later VMA: may cross gaps */
            j = i + (size_t)((r1 >> 12) % 4);
            if (j >= o->n)
                j = o->n - 1;
            *start = v->start + ((r2 >> 20) % ((v->last - v->start) / PAGE_SIZE + 1)) * PAGE_SIZE;
            *size = o->v[j].last - (r1 >> 24) % 2 * PAGE_SIZE - *start + 1;
            if (*size == 0 || *size > o->v[j].last - *start + 1)
                *size = o->v[j].last - *start + 1;
            return;
        default: /* whole VMA plus one page on either side */
            *start = v->start - PAGE_SIZE;
            *size = v->last - v->start + 1 + 2 * PAGE_SIZE;
            return;
        }
    }
    *start = pick_point(d, r);
    *size = pick_size(r1 >> 8);
}

bool diff_random_op(struct diff *d, struct diff_rand *r, size_t target_vmas)
{
    uint64_t op = r->next(r->ctx) % 100;
    uint64_t ra = r->next(r->ctx);
    struct vmm_attrs attrs = pick_attrs(ra);
    bool shrink = d->model.n > target_vmas;
    bool ok;

    /* Now and then the node source holds only 0 or 1 nodes for this operation. */
    d->budget = (ra >> 32) % 32 == 0 ? (size_t)((ra >> 40) % 2) : DIFF_UNLIMITED;
    if (shrink && op < 55)
        op = 55 + op % 25; /* over target: free instead of allocating */

    if (op < 30) {
        struct vmm_alloc_req req = {.guard = 0};
        uint64_t r1 = r->next(r->ctx), r2 = r->next(r->ctx);

        req.size = pick_size(r1);
        req.align = 1ull << (12 + (r1 >> 32) % 19); /* 4 KiB .. 1 GiB */
        if ((r1 >> 40) % 8 == 0)
            req.align = 1ull << ((r1 >> 44) % 12); /* below a page: means a page */
        if ((r1 >> 48) % 4 == 0) {
            req.min = 0;
            req.last = UINT64_MAX;
        } else {
            uint64_t a = pick_point(d, r), b = pick_point(d, r);

            req.min = a < b ? a : b;
            req.last = (a < b ? b : a) - (r2 % 3 == 0 ? 0 : 1); /* [min, max) or [min, last] */
            if (req.last < req.min)
                req.last = req.min + (r2 >> 8) % (4 * req.size);
        }
        req.flags = (r2 >> 4) % 5 < 2 ? VMM_ALLOC_TOPDOWN : 0;
        if ((r2 >> 12) % 4 == 0) {
            /*
             * One or two guard pages, at the alignments the tree's search
             * is exact at (the model knows no over-ask of its own there).
             */
            static const struct vmm_attrs guard_attrs = {.name = "guard", .kind = 3};
            static const unsigned shifts[] = {0, 12, 12, 21, 21, 30};

            req.guard = (1 + (r2 >> 16) % 2) * PAGE_SIZE;
            req.guard_attrs = (r2 >> 18) % 2 ? &guard_attrs : NULL;
            req.align = 1ull << shifts[(r2 >> 20) % 6];
        }
        ok = diff_alloc(d, &req, &attrs);
    } else if (op < 40) {
        ok = diff_reserve(d, pick_point(d, r), pick_size(r->next(r->ctx)), &attrs);
    } else if (op < 55) {
        uint64_t start, size;

        pick_range(d, r, &start, &size);
        ok = diff_protect(d, start, size, attrs.prot);
    } else if (op < 80) {
        uint64_t start, size;

        pick_range(d, r, &start, &size);
        ok = diff_free(d, start, size);
    } else if (op < 92) {
        ok = diff_lookup(d, pick_point(d, r) + (ra >> 50) % PAGE_SIZE);
    } else {
        /* Invalid arguments: unaligned or zero sizes, wrapping ranges. */
        uint64_t start = pick_point(d, r) + (ra >> 52) % 2 * 0x800;
        uint64_t size = (ra >> 20) % 3 == 0 ? 0 : pick_size(ra >> 12) + (ra >> 53) % 2 * 0x10;

        ok = (ra >> 54) % 2 ? diff_free(d, start, size) : diff_reserve(d, start, size, &attrs);
    }
    d->budget = DIFF_UNLIMITED;
    return ok;
}
