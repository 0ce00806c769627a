/*
 * pt_fuzz_run: the body of pt_fuzz, shared with its host test
 * (pt_fuzz_check_test.c), which corrupts the tables between two steps and
 * checks at which step, and by which check, the fault is reported.
 *
 * Bytes decode into pt_map / pt_unmap / pt_protect calls (with allocation
 * failures injected now and then), each mirrored in a naive model: what the
 * page tables should mean, page by page (which 4 KiB page maps to which
 * frame with which attributes), stored as a sorted array of runs (va, pa,
 * pages, attrs) so that gigabyte mappings stay cheap. Runs are normalised
 * (adjacent runs with contiguous va and pa and equal attributes merged)
 * before they are compared with the leaves pt_for_each_leaf reports,
 * normalised the same way. Page sizes are pt's business and are checked by
 * pt_check and the unit tests, not here.
 *
 * Each operation takes 8 bytes:
 *   b0  operation (map, map, map, unmap, protect); bit 7: inject a failure
 *   b1  window (bits 0-1), size class (bits 2-3)
 *   b2-b4 offset in the window, b5 size, b6 attributes, b7 max page size and pa choice
 * Four 4 GiB windows sit at the edges of both canonical halves (of the 48-bit
 * space; they are canonical with 5 levels too). A trailing odd byte after the
 * last whole operation selects 5-level paging.
 *
 * After every step, in time proportional to the tables the step reached:
 * the status is one the model allows; the leaves in the step's range (and a
 * page either side) equal the model's runs there; pt_check_range holds on
 * the tables on the way to the range; the frames held equal table_count; a
 * failed call changed no entry of those tables. Every full_every steps and
 * after the last one: every leaf against the model, pt_check, and lookups at
 * both ends of every run.
 */
#ifndef VMM_TESTS_PT_FUZZ_RUN_H
#define VMM_TESTS_PT_FUZZ_RUN_H

#include "pt_sim.h"

#include <stdarg.h>

#define PTZ_WINDOW     (4 * PAGE_SIZE_1G)
#define PTZ_MAX_OPS    64
#define PTZ_MAX_RUNS   1024
#define PTZ_FULL_EVERY 32u /* pt_fuzz's full check interval */

/* The model is the reference, not code under test: no coverage guidance from it. */
#define PTZ_MODEL_FN static __attribute__((noinline, unused, no_sanitize("coverage")))

struct run {
    uint64_t va, pa, pages;
    uint32_t attrs;
};

struct model {
    size_t n;
    bool full; /* a run did not fit (a harness limit, reported as a failure) */
    struct run r[PTZ_MAX_RUNS];
};

enum ptz_check {
    PTZ_MODEL, /* a status the model does not allow, or a failed call that changed entries */
    PTZ_LOCAL, /* the step check */
    PTZ_FULL,  /* the whole hierarchy */
};

/* Called after each step's call, before its checks, with the step's range. */
typedef void ptz_hook_fn(void *ctx, struct pt *pt, size_t step, uint64_t va, uint64_t last);

struct ptz_opts {
    unsigned full_every; /* 1: the full check after every step */
    ptz_hook_fn *hook;   /* NULL in the fuzzer */
    void *ctx;
};

struct ptz_result {
    size_t steps, full_checks;
    bool failed;
    size_t step;
    enum ptz_check by;
    char msg[160];
};

static struct sim ptz_sim;
static struct model ptz_model, ptz_seen, ptz_norm;

PRINTF_LIKE(4, 5)
static bool ptz_fail(struct ptz_result *res, size_t step, enum ptz_check by, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
    va_end(ap);
    res->failed = true;
    res->step = step;
    res->by = by;
    return false;
}

/* The first run that ends at or above va (runs are sorted and disjoint). */
PTZ_MODEL_FN size_t model_first_from(const struct model *m, uint64_t va)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->r[mid].va + (m->r[mid].pages * PAGE_SIZE - 1) < va)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

PTZ_MODEL_FN void model_insert_at(struct model *m, size_t i, struct run r)
{
    if (m->n == PTZ_MAX_RUNS) {
        m->full = true;
        return;
    }
    memmove(&m->r[i + 1], &m->r[i], (m->n - i) * sizeof(struct run));
    m->r[i] = r;
    m->n++;
}

/* Splits the run containing addr so that a run starts at addr. */
PTZ_MODEL_FN void model_split(struct model *m, uint64_t addr)
{
    size_t i = model_first_from(m, addr);
    if (i == m->n || m->r[i].va >= addr)
        return;
    struct run *r = &m->r[i];
    uint64_t off = addr - r->va;
    struct run tail = {addr, r->pa + off, r->pages - off / PAGE_SIZE, r->attrs};
    if (m->n == PTZ_MAX_RUNS) {
        m->full = true;
        return;
    }
    r->pages = off / PAGE_SIZE;
    model_insert_at(m, i + 1, tail);
}

PTZ_MODEL_FN bool model_any(const struct model *m, uint64_t va, uint64_t last)
{
    size_t i = model_first_from(m, va);
    return i < m->n && m->r[i].va <= last;
}

PTZ_MODEL_FN void model_insert(struct model *m, struct run r)
{
    model_insert_at(m, model_first_from(m, r.va), r);
}

/* Cuts the model at the range's edges; afterwards runs lie wholly in or out of it. */
PTZ_MODEL_FN void model_cut(struct model *m, uint64_t va, uint64_t last)
{
    model_split(m, va);
    if (last != UINT64_MAX)
        model_split(m, last + 1);
}

PTZ_MODEL_FN void model_unmap(struct model *m, uint64_t va, uint64_t last)
{
    model_cut(m, va, last);
    size_t a = model_first_from(m, va), b = a;
    while (b < m->n && m->r[b].va <= last)
        b++;
    memmove(&m->r[a], &m->r[b], (m->n - b) * sizeof(struct run));
    m->n -= b - a;
}

PTZ_MODEL_FN void model_protect(struct model *m, uint64_t va, uint64_t last, uint32_t attrs)
{
    model_cut(m, va, last);
    for (size_t i = model_first_from(m, va); i < m->n && m->r[i].va <= last; i++)
        m->r[i].attrs = attrs;
}

/* Appends a run, merging it into the last one when va, pa and attributes continue it. */
PTZ_MODEL_FN void runs_append(struct model *m, struct run r)
{
    if (m->n > 0) {
        struct run *p = &m->r[m->n - 1];
        uint64_t bytes = p->pages * PAGE_SIZE;
        if (p->va + bytes == r.va && p->va + bytes != 0 && p->pa + bytes == r.pa &&
            p->attrs == r.attrs) {
            p->pages += r.pages;
            return;
        }
    }
    if (m->n == PTZ_MAX_RUNS) {
        m->full = true;
        return;
    }
    m->r[m->n++] = r;
}

/* Appends the part of r inside [lo, hi] (page aligned bounds, hi inclusive). */
PTZ_MODEL_FN void runs_append_clipped(struct model *m, struct run r, uint64_t lo, uint64_t hi)
{
    uint64_t r_last = r.va + (r.pages * PAGE_SIZE - 1);
    if (r_last < lo || r.va > hi)
        return;
    if (r.va < lo) {
        r.pa += lo - r.va;
        r.pages -= (lo - r.va) / PAGE_SIZE;
        r.va = lo;
    }
    if (r_last > hi)
        r.pages = (hi - r.va) / PAGE_SIZE + 1;
    runs_append(m, r);
}

struct ptz_window {
    struct model *out;
    uint64_t lo, hi;
};

PTZ_MODEL_FN bool collect_leaf(void *ctx, const struct pt_leaf *leaf)
{
    struct ptz_window *w = ctx;
    struct run r = {leaf->va, leaf->pa, leaf->page_size / PAGE_SIZE, leaf->attrs};
    runs_append_clipped(w->out, r, w->lo, w->hi);
    return true;
}

/*
 * The leaves in [lo, hi] against the model's runs there, both clipped to it
 * and normalised, and lookups at both ends of every run. below: also that
 * nothing is mapped just below a run that the model leaves unmapped.
 */
PTZ_MODEL_FN bool ptz_compare_window(const struct pt *pt, uint64_t lo, uint64_t hi, bool below,
                                     const char **why, uint64_t *at)
{
    ptz_norm.n = 0;
    for (size_t i = model_first_from(&ptz_model, lo); i < ptz_model.n && ptz_model.r[i].va <= hi;
         i++)
        runs_append_clipped(&ptz_norm, ptz_model.r[i], lo, hi);
    ptz_seen.n = 0;
    struct ptz_window w = {&ptz_seen, lo, hi};
    pt_for_each_leaf(pt, lo, hi, collect_leaf, &w);
    *at = lo;
    if (ptz_seen.n != ptz_norm.n) {
        *why = "run count differs";
        return false;
    }
    for (size_t i = 0; i < ptz_norm.n; i++) {
        const struct run *a = &ptz_seen.r[i], *b = &ptz_norm.r[i];
        *at = b->va;
        if (a->va != b->va || a->pa != b->pa || a->pages != b->pages || a->attrs != b->attrs) {
            *why = "a run differs";
            return false;
        }
        /* pt_query agrees at the first and last page of every run. */
        struct pt_leaf l;
        uint64_t last_page = b->va + (b->pages - 1) * PAGE_SIZE;
        if (pt_query(pt, va_init(b->va), &l) != PT_OK || l.attrs != b->attrs ||
            l.pa + (b->va - l.va) != b->pa) {
            *why = "a lookup at a run's start differs";
            return false;
        }
        if (pt_query(pt, va_init(last_page + 0xfff), &l) != PT_OK ||
            l.pa + (last_page - l.va) != b->pa + (b->pages - 1) * PAGE_SIZE) {
            *why = "a lookup at a run's end differs";
            return false;
        }
        if (below && b->va != 0 && va_is_canonical(b->va - 1, pt->levels) &&
            !model_any(&ptz_model, b->va - PAGE_SIZE, b->va - 1) &&
            pt_query(pt, va_init(b->va - 1), &l) == PT_OK) {
            *why = "mapped below a run";
            return false;
        }
    }
    return true;
}

/* Frames held against table_count, and no bad free. */
static bool ptz_frames_ok(const struct pt *pt)
{
    return ptz_sim.held == pt->table_count && ptz_sim.bad_frees == 0;
}

/* The whole hierarchy against the whole model. */
static bool ptz_full_check(const struct pt *pt, size_t step, struct ptz_result *res)
{
    const char *why = NULL;
    uint64_t at;
    res->full_checks++;
    if (!ptz_compare_window(pt, 0, UINT64_MAX, true, &why, &at))
        return ptz_fail(res, step, PTZ_FULL, "full: %s at 0x%llx", why, (unsigned long long)at);
    if (!pt_check(pt, &why))
        return ptz_fail(res, step, PTZ_FULL, "full: pt_check: %s", why);
    if (!ptz_frames_ok(pt))
        return ptz_fail(res, step, PTZ_FULL, "full: %llu frames held, %llu tables",
                        (unsigned long long)ptz_sim.held, (unsigned long long)pt->table_count);
    return true;
}

/* [va, last] and one page either side where that stays canonical and in the same half. */
static void ptz_widen(const struct pt *pt, uint64_t va, uint64_t last, uint64_t *lo, uint64_t *hi)
{
    *lo = va >= PAGE_SIZE && va_is_canonical(va - PAGE_SIZE, pt->levels) ? va - PAGE_SIZE : va;
    *hi = last <= UINT64_MAX - PAGE_SIZE && va_is_canonical(last + PAGE_SIZE, pt->levels)
              ? last + PAGE_SIZE
              : last;
}

/* The step check: what the step could have touched, in time proportional to it. */
static bool ptz_local_check(const struct pt *pt, uint64_t va, uint64_t last, size_t step,
                            struct ptz_result *res)
{
    const char *why = NULL;
    uint64_t lo, hi, at;
    ptz_widen(pt, va, last, &lo, &hi);
    if (!ptz_compare_window(pt, lo, hi, false, &why, &at))
        return ptz_fail(res, step, PTZ_LOCAL, "local: %s at 0x%llx", why, (unsigned long long)at);
    if (!pt_check_range(pt, lo, hi, &why))
        return ptz_fail(res, step, PTZ_LOCAL, "local: pt_check_range: %s", why);
    if (!ptz_frames_ok(pt))
        return ptz_fail(res, step, PTZ_LOCAL, "local: %llu frames held, %llu tables",
                        (unsigned long long)ptz_sim.held, (unsigned long long)pt->table_count);
    return true;
}

/* One operation: the call, the model, the status. Sets *va and *last to its range. */
static bool ptz_step(struct pt *pt, const uint8_t *b, size_t step, struct ptz_result *res,
                     uint64_t *va_out, uint64_t *last_out)
{
    static const uint64_t windows[4] = {0, 0x00007fff00000000ull, 0xffff800000000000ull,
                                        0xffffffff00000000ull};
    unsigned kind = (b[0] & 0x7f) % 5;
    uint64_t win = windows[b[1] & 3];
    unsigned cls = (b[1] >> 2) & 3;
    uint64_t off24 = b[2] | (uint64_t)b[3] << 8 | (uint64_t)b[4] << 16;
    uint64_t off, len;
    switch (cls) {
    case 0: /* a few pages anywhere */
        off = (off24 % (PTZ_WINDOW / PAGE_SIZE)) * PAGE_SIZE;
        len = (b[5] % 16 + 1) * PAGE_SIZE;
        break;
    case 1: /* 2M-aligned megabytes */
        off = (off24 % (PTZ_WINDOW / PAGE_SIZE_2M)) * PAGE_SIZE_2M;
        len = (b[5] % 8 + 1) * PAGE_SIZE_2M;
        break;
    case 2: /* gigabytes */
        off = (off24 % 4) * PAGE_SIZE_1G;
        len = (b[5] % 3 + 1) * PAGE_SIZE_1G;
        break;
    default: /* unaligned, up to 4 MiB */
        off = (off24 % (PTZ_WINDOW / PAGE_SIZE)) * PAGE_SIZE;
        len = (b[5] + 1) * 4 * PAGE_SIZE;
        break;
    }
    if (off + len > PTZ_WINDOW)
        len = PTZ_WINDOW - off;
    uint64_t va = win + off, last = va + (len - 1);
    *va_out = va;
    *last_out = last;
    uint32_t attrs = b[6] & (PT_W | PT_X | PT_U | PT_G | PT_CACHE_MASK);
    uint64_t maxes[4] = {PAGE_SIZE, PAGE_SIZE_2M, PAGE_SIZE_1G, PAGE_SIZE_1G};
    uint64_t max = maxes[b[7] & 3];
    /*
     * pa shares va's alignment within 1G (large pages possible) or is
     * shifted by pages. Only ranges up to 4 MiB get 4K pages throughout,
     * to keep a step's leaf count bounded.
     */
    uint64_t pa = ((uint64_t)(b[7] >> 4) << 32) + off;
    if (len > 2 * PAGE_SIZE_2M && max == PAGE_SIZE)
        max = PAGE_SIZE_2M;
    if ((b[7] & 4) && len <= 2 * PAGE_SIZE_2M)
        pa += (uint64_t)((b[6] >> 6) + 1) * PAGE_SIZE;
    bool inject = (b[0] & 0x80) != 0;
    if (inject)
        ptz_sim.fail_after = b[7] & 3;

    /* Only a map (EXISTS) or an injected failure (NOMEM) can fail: fingerprint only then. */
    bool may_fail = inject || kind < 3;
    uint64_t before = may_fail ? sim_hash_range(pt, va, last) : 0;
    uint64_t held = ptz_sim.held;
    enum pt_status st;
    if (kind < 3) {
        st = pt_map(pt, va_init(va), pa_init(pa), len, attrs, max);
        if (st == PT_OK) {
            if (model_any(&ptz_model, va, last))
                return ptz_fail(res, step, PTZ_MODEL, "map succeeded over a mapping");
            model_insert(&ptz_model, (struct run){va, pa, len / PAGE_SIZE, attrs});
        } else if (st == PT_ERR_EXISTS && !model_any(&ptz_model, va, last)) {
            return ptz_fail(res, step, PTZ_MODEL, "map said EXISTS over nothing");
        }
    } else if (kind == 3) {
        st = pt_unmap(pt, va_init(va), len);
        if (st == PT_OK)
            model_unmap(&ptz_model, va, last);
    } else {
        st = pt_protect(pt, va_init(va), len, attrs);
        if (st == PT_OK)
            model_protect(&ptz_model, va, last, attrs);
    }
    ptz_sim.fail_after = -1;
    if (st == PT_ERR_NOMEM && !inject)
        return ptz_fail(res, step, PTZ_MODEL, "NOMEM without an injected failure");
    if (st != PT_OK &&
        (!may_fail || sim_hash_range(pt, va, last) != before || ptz_sim.held != held))
        return ptz_fail(res, step, PTZ_MODEL, "a failed operation changed the tables");
    if (st != PT_OK && st != PT_ERR_EXISTS && st != PT_ERR_NOMEM)
        return ptz_fail(res, step, PTZ_MODEL, "unexpected status %d", st);
    return true;
}

/* Runs one input. => false with res filled on the first fault. */
static bool pt_fuzz_run(const uint8_t *data, size_t size, const struct ptz_opts *opts,
                        struct ptz_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!ptz_sim.mem)
        sim_init(&ptz_sim, 16384);
    struct pt pt;
    ptz_sim.fail_after = -1;
    unsigned levels = (size % 8 != 0 && (data[size - 1] & 1)) ? 5 : 4;
    if (pt_init(&pt, levels, true, sim_offset(&ptz_sim), sim_frames(&ptz_sim)) != PT_OK)
        return ptz_fail(res, SIZE_MAX, PTZ_MODEL, "init");
    ptz_model.n = 0;
    ptz_model.full = false;
    unsigned every = opts->full_every ? opts->full_every : 1;
    bool ok = true;
    for (size_t op = 0; ok && op < PTZ_MAX_OPS && (op + 1) * 8 <= size; op++) {
        size_t step = res->steps++;
        uint64_t va, last;
        ok = ptz_step(&pt, data + op * 8, step, res, &va, &last);
        if (!ok)
            break;
        if (ptz_model.full || ptz_seen.full || ptz_norm.full) {
            ok = ptz_fail(res, step, PTZ_MODEL, "more runs than the model holds");
            break;
        }
        if (opts->hook)
            opts->hook(opts->ctx, &pt, step, va, last);
        ok = ptz_local_check(&pt, va, last, step, res);
        if (ok && (step + 1) % every == 0)
            ok = ptz_full_check(&pt, step, res);
    }
    if (ok && res->steps > 0 && res->steps % every != 0)
        ok = ptz_full_check(&pt, res->steps - 1, res);
    pt_destroy(&pt);
    ptz_seen.full = ptz_norm.full = false;
    if (ok && (ptz_sim.held != 0 || ptz_sim.bad_frees != 0))
        ok = ptz_fail(res, res->steps, PTZ_FULL, "frames left after destroy");
    return ok;
}

#endif
