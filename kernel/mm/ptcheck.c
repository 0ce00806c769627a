/*
 * ptcheck: `pt check`'s rules about physical frames and the direct map
 * (kernel/ptcheck.h).
 *
 * Runs: a walk of the leaves, merging each into the previous run when it
 * continues it (VA and PA contiguous, same permissions and memory type), so a
 * 1 GiB direct-map page, a 132 KiB .text and a 64 KiB stack are one run each.
 * The storage is the caller's; a first pass with no room counts.
 *
 * Frames: the runs sorted by physical address (heapsort: no recursion, no
 * allocation). For each run, every later run that starts before it ends
 * shares frames with it; the work is the number of such pairs, which is the
 * number of aliases, not the square of the run count:
 *
 *   pa ->   [======= direct map run (RW-, WB) ==========]
 *                [ .text (R-X) ]        [ fb (RW-, WC) ]
 *                 W here, X there        two memory types
 *
 * Called by the kernel's `pt check` (shellglue.c) and by the host tests.
 */
#include <kernel/ptcheck.h>

#include <canopy/fmt.h>
#include <canopy/page.h>
#include <pmm/pmm.h>
#include <vmm/ptdump.h>
#include <vmm/pte.h>

/* ---- runs ------------------------------------------------------------------------------------ */

struct collect {
    struct ptcheck_runs *r;
    uint64_t first, last;
    bool nx;
    bool have_last;            /* r->runs[r->count - 1] is this call's latest run (stored) */
    struct ptcheck_run latest; /* the latest run, stored or not */
    bool have_latest;
};

static void run_push(struct collect *c, const struct ptcheck_run *run)
{
    struct ptcheck_runs *r = c->r;
    r->needed++;
    if (r->count < r->cap)
        r->runs[r->count++] = *run;
}

static bool collect_leaf(void *ctx, const struct pt_leaf *leaf)
{
    struct collect *c = ctx;
    uint64_t leaf_last = leaf->va + (leaf->page_size - 1);
    uint64_t start = leaf->va > c->first ? leaf->va : c->first;
    uint64_t last = leaf_last < c->last ? leaf_last : c->last;
    struct ptcheck_run run = {
        .va = start,
        .pa = leaf->pa + (start - leaf->va),
        .size = last - start + 1,
        .perm = (uint8_t)(leaf->attrs & (PT_W | (c->nx ? PT_X : 0))),
        .type = (uint8_t)pte_memtype(leaf->entry, leaf->page_size, c->r->pat),
    };
    struct ptcheck_run *p = &c->latest;
    if (c->have_latest && p->va + p->size == run.va && p->pa + p->size == run.pa &&
        p->perm == run.perm && p->type == run.type) {
        p->size += run.size;
        if (c->have_last)
            c->r->runs[c->r->count - 1].size += run.size;
        return true;
    }
    size_t before = c->r->count;
    run_push(c, &run);
    c->latest = run;
    c->have_latest = true;
    c->have_last = c->r->count > before;
    return true;
}

void ptcheck_collect(struct ptcheck_runs *r, const struct pt *pt, uint64_t first, uint64_t last)
{
    struct collect c = {.r = r, .first = first, .last = last, .nx = pt->nx};
    /* Continue the previous call's last stored run if this one's first leaf extends it. */
    if (r->count > 0 && r->count == r->needed) {
        c.latest = r->runs[r->count - 1];
        c.have_latest = true;
        c.have_last = true;
    }
    pt_for_each_leaf(pt, first, last, collect_leaf, &c);
}

/* ---- sorting --------------------------------------------------------------------------------- */

static bool run_before(const struct ptcheck_run *a, const struct ptcheck_run *b)
{
    return a->pa < b->pa || (a->pa == b->pa && a->va < b->va);
}

static void sift_down(struct ptcheck_run *a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && run_before(&a[child], &a[child + 1]))
            child++;
        if (!run_before(&a[root], &a[child]))
            return;
        struct ptcheck_run t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

static void sort_by_pa(struct ptcheck_run *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t end = n; end > 1; end--) {
        struct ptcheck_run t = a[0];
        a[0] = a[end - 1];
        a[end - 1] = t;
        sift_down(a, 0, end - 1);
    }
}

/* ---- the frame rules ------------------------------------------------------------------------- */

struct frames {
    ptcheck_sink sink;
    void *ctx;
    unsigned max_lines, lines;
    uint64_t breaks;
};

/* Prints (or only counts, past max_lines) one broken rule over phys [lo, hi). */
static void frame_line(struct frames *f, uint64_t lo, uint64_t hi, const char *what_a,
                       uint64_t va_a, const char *what_b, uint64_t va_b)
{
    f->breaks++;
    if (f->lines >= f->max_lines)
        return;
    f->lines++;
    char size[16];
    ptdump_size_text(hi - lo, size, sizeof(size));
    fmt_format(f->sink, f->ctx, "pt check: frame %016llx-%016llx %s %s at %016llx, %s at %016llx\n",
               (unsigned long long)lo, (unsigned long long)hi, size, what_a,
               (unsigned long long)va_a, what_b, (unsigned long long)va_b);
}

/* The rules between runs a and b over their shared frames [lo, hi). */
static void frame_pair(struct frames *f, const struct ptcheck_run *a, const struct ptcheck_run *b,
                       uint64_t lo, uint64_t hi)
{
    uint64_t va_a = a->va + (lo - a->pa), va_b = b->va + (lo - b->pa);
    if ((a->perm & PT_W) && (b->perm & PT_X))
        frame_line(f, lo, hi, "writable", va_a, "executable", va_b);
    else if ((b->perm & PT_W) && (a->perm & PT_X))
        frame_line(f, lo, hi, "writable", va_b, "executable", va_a);
    if (a->type != b->type) {
        /* The lower virtual address first, whatever the physical order. */
        bool swap = va_b < va_a;
        const struct ptcheck_run *x = swap ? b : a, *y = swap ? a : b;
        frame_line(f, lo, hi, ptdump_memtype_name(x->type), swap ? va_b : va_a,
                   ptdump_memtype_name(y->type), swap ? va_a : va_b);
    }
}

uint64_t ptcheck_frames(struct ptcheck_run *runs, size_t n, unsigned max_lines, ptcheck_sink sink,
                        void *ctx)
{
    struct frames f = {.sink = sink, .ctx = ctx, .max_lines = max_lines};
    sort_by_pa(runs, n);
    for (size_t i = 0; i < n; i++) {
        const struct ptcheck_run *a = &runs[i];
        uint64_t a_end = a->pa + a->size;
        for (size_t j = i + 1; j < n && runs[j].pa < a_end; j++) {
            const struct ptcheck_run *b = &runs[j];
            uint64_t b_end = b->pa + b->size;
            frame_pair(&f, a, b, b->pa, b_end < a_end ? b_end : a_end);
        }
    }
    if (f.breaks > f.lines)
        fmt_format(sink, ctx, "pt check: frame rules broken %llu more times (not shown)\n",
                   (unsigned long long)(f.breaks - f.lines));
    return f.breaks;
}

/* ---- the direct map -------------------------------------------------------------------------- */

/* The first range of the sorted map whose end lies above pa (range_count if none). */
static size_t range_from(const struct canopy_mem_range *r, size_t n, uint64_t pa)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].base + r[mid].page_count * PAGE_SIZE <= pa)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * The first part of [pa, end) that is not direct-mapped memory: its start,
 * its end and what it is ("a hole" or the range's type). False if none.
 */
static bool first_not_ram(const struct canopy_mem_range *r, size_t n, uint64_t pa, uint64_t end,
                          uint64_t *bad_lo, uint64_t *bad_hi, const char **what)
{
    size_t i = range_from(r, n, pa);
    uint64_t at = pa;
    while (at < end) {
        if (i == n || r[i].base > at) {
            *bad_lo = at;
            *bad_hi = i == n || r[i].base > end ? end : r[i].base;
            *what = "a hole in the memory map";
            return true;
        }
        uint64_t r_end = r[i].base + r[i].page_count * PAGE_SIZE;
        if (!canopy_mem_is_direct_mapped(r[i].type)) {
            *bad_lo = at;
            *bad_hi = r_end < end ? r_end : end;
            *what = memmap_type_name(r[i].type);
            return true;
        }
        at = r_end;
        i++;
    }
    return false;
}

uint64_t ptcheck_direct_map(const struct ptcheck_run *runs, size_t n, uint64_t hhdm_base,
                            uint64_t reach, const struct canopy_mem_range *ranges,
                            size_t range_count, bool list_runs, ptcheck_sink sink, void *ctx)
{
    uint64_t breaks = 0, bytes = 0, count = 0;
    uint64_t hhdm_last = hhdm_base + (reach - 1);
    for (size_t i = 0; i < n; i++) {
        const struct ptcheck_run *run = &runs[i];
        if (run->va < hhdm_base || run->va > hhdm_last)
            continue;
        char size[16];
        ptdump_size_text(run->size, size, sizeof(size));
        uint64_t want_pa = run->va - hhdm_base, end = run->pa + run->size;
        if (list_runs)
            fmt_format(sink, ctx, "direct map: %016llx-%016llx %6s R%c%c %s\n",
                       (unsigned long long)want_pa, (unsigned long long)(want_pa + run->size), size,
                       (run->perm & PT_W) ? 'W' : '-', (run->perm & PT_X) ? 'X' : '-',
                       ptdump_memtype_name(run->type));
        count++;
        bytes += run->size;
        uint64_t lo, hi;
        const char *what;
        if (run->pa != want_pa) {
            fmt_format(sink, ctx,
                       "pt check: direct map %016llx-%016llx maps %016llx, not %016llx\n",
                       (unsigned long long)run->va, (unsigned long long)(run->va + run->size),
                       (unsigned long long)run->pa, (unsigned long long)want_pa);
            breaks++;
        } else if (first_not_ram(ranges, range_count, run->pa, end, &lo, &hi, &what)) {
            ptdump_size_text(hi - lo, size, sizeof(size));
            fmt_format(sink, ctx, "pt check: direct map %016llx-%016llx %s maps %s, not RAM\n",
                       (unsigned long long)lo, (unsigned long long)hi, size, what);
            breaks++;
        }
        if (run->type != PTE_MT_WB) {
            fmt_format(sink, ctx, "pt check: direct map %016llx-%016llx is %s, not write-back\n",
                       (unsigned long long)want_pa, (unsigned long long)(want_pa + run->size),
                       ptdump_memtype_name(run->type));
            breaks++;
        }
        if (run->perm & PT_X) {
            fmt_format(sink, ctx, "pt check: direct map %016llx-%016llx is executable\n",
                       (unsigned long long)want_pa, (unsigned long long)(want_pa + run->size));
            breaks++;
        }
    }
    char total[24];
    if (bytes >= (1ull << 20))
        fmt_snprintf(total, sizeof(total), "%llu MiB", (unsigned long long)bytes_to_mib(bytes));
    else
        ptdump_size_text(bytes, total, sizeof(total));
    fmt_format(sink, ctx, "direct map: %llu run%s, %s\n", (unsigned long long)count,
               count == 1 ? "" : "s", bytes ? total : "nothing mapped");
    return breaks;
}

uint64_t ptcheck_wx(const struct ptcheck_run *runs, size_t n, ptcheck_sink sink, void *ctx)
{
    uint64_t found = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ptcheck_run *r = &runs[i];
        if ((r->perm & (PT_W | PT_X)) != (PT_W | PT_X))
            continue;
        char size[16];
        ptdump_size_text(r->size, size, sizeof(size));
        fmt_format(sink, ctx, "pt check: W+X %016llx-%016llx %s (%llu pages)\n",
                   (unsigned long long)r->va, (unsigned long long)(r->va + r->size), size,
                   (unsigned long long)(r->size / PAGE_SIZE));
        found++;
    }
    return found;
}
