/*
 * pt_fuzz: decodes bytes into pt_map / pt_unmap / pt_protect calls (with
 * allocation failures injected now and then), mirrors each in a naive model
 * and compares the two after every step.
 *
 * The model is what the page tables should mean, page by page: which 4 KiB
 * page maps to which frame with which attributes. It is stored as a sorted
 * array of runs (va, pa, pages, attrs) so that gigabyte mappings stay cheap,
 * and is normalised (adjacent runs with contiguous va and pa and equal
 * attributes merged) before comparing with the leaves pt_for_each_leaf
 * reports, normalised the same way. Page sizes are pt's business and are
 * checked by pt_check and the unit tests, not here.
 *
 * Each operation takes 8 bytes:
 *   b0  operation (map, map, map, unmap, protect); bit 7: inject a failure
 *   b1  window (bits 0-1), size class (bits 2-3)
 *   b2-b4 offset in the window, b5 size, b6 attributes, b7 max page size and pa choice
 * Four 4 GiB windows sit at the edges of both canonical halves (of the 48-bit
 * space; they are canonical with 5 levels too). A trailing odd byte after the
 * last whole operation selects 5-level paging.
 */
#include "pt_sim.h"

#include <canopy/check.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW   (4 * PAGE_SIZE_1G)
#define MAX_OPS  64
#define MAX_RUNS 1024

struct run {
    uint64_t va, pa, pages;
    uint32_t attrs;
};

struct model {
    size_t n;
    struct run r[MAX_RUNS];
};

static const uint64_t windows[4] = {0, 0x00007fff00000000ull, 0xffff800000000000ull,
                                    0xffffffff00000000ull};

static struct sim sim;
static struct model model, seen;

static void die(const char *what, uint64_t a, uint64_t b)
{
    fprintf(stderr, "pt_fuzz: %s (%llx, %llx)\n", what, (unsigned long long)a,
            (unsigned long long)b);
    abort();
}

/* Splits the run containing addr so that a run starts at addr. */
static void model_split(struct model *m, uint64_t addr)
{
    for (size_t i = 0; i < m->n; i++) {
        struct run *r = &m->r[i];
        uint64_t off = addr - r->va;
        if (addr > r->va && off / PAGE_SIZE < r->pages) {
            if (m->n == MAX_RUNS)
                die("model full", addr, 0);
            memmove(&m->r[i + 2], &m->r[i + 1], (m->n - i - 1) * sizeof(struct run));
            m->r[i + 1] = (struct run){addr, r->pa + off, r->pages - off / PAGE_SIZE, r->attrs};
            r->pages = off / PAGE_SIZE;
            m->n++;
            return;
        }
    }
}

static bool run_overlaps(const struct run *r, uint64_t va, uint64_t last)
{
    uint64_t r_last = r->va + (r->pages * PAGE_SIZE - 1);
    return r->va <= last && r_last >= va;
}

static bool model_any(const struct model *m, uint64_t va, uint64_t last)
{
    for (size_t i = 0; i < m->n; i++)
        if (run_overlaps(&m->r[i], va, last))
            return true;
    return false;
}

static void model_insert(struct model *m, struct run r)
{
    if (m->n == MAX_RUNS)
        die("model full", r.va, 0);
    size_t i = 0;
    while (i < m->n && m->r[i].va < r.va)
        i++;
    memmove(&m->r[i + 1], &m->r[i], (m->n - i) * sizeof(struct run));
    m->r[i] = r;
    m->n++;
}

/* Cuts the model at the range's edges; afterwards runs lie wholly in or out of it. */
static void model_cut(struct model *m, uint64_t va, uint64_t last)
{
    model_split(m, va);
    if (last != UINT64_MAX)
        model_split(m, last + 1);
}

static void model_unmap(struct model *m, uint64_t va, uint64_t last)
{
    model_cut(m, va, last);
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        if (!run_overlaps(&m->r[i], va, last))
            m->r[k++] = m->r[i];
    m->n = k;
}

static void model_protect(struct model *m, uint64_t va, uint64_t last, uint32_t attrs)
{
    model_cut(m, va, last);
    for (size_t i = 0; i < m->n; i++)
        if (run_overlaps(&m->r[i], va, last))
            m->r[i].attrs = attrs;
}

/* Appends a run, merging it into the last one when va, pa and attributes continue it. */
static void runs_append(struct model *m, struct run r)
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
    if (m->n == MAX_RUNS)
        die("runs full", r.va, 0);
    m->r[m->n++] = r;
}

static bool collect_leaf(void *ctx, const struct pt_leaf *leaf)
{
    runs_append(ctx, (struct run){leaf->va, leaf->pa, leaf->page_size / PAGE_SIZE, leaf->attrs});
    return true;
}

/* Compares the page tables with the model; aborts on the first difference. */
static void compare(const struct pt *pt)
{
    static struct model norm;
    norm.n = 0;
    for (size_t i = 0; i < model.n; i++)
        runs_append(&norm, model.r[i]);
    seen.n = 0;
    pt_for_each_leaf(pt, 0, UINT64_MAX, collect_leaf, &seen);
    if (seen.n != norm.n)
        die("run count differs (pt, model)", seen.n, norm.n);
    for (size_t i = 0; i < norm.n; i++) {
        const struct run *a = &seen.r[i], *b = &norm.r[i];
        if (a->va != b->va || a->pa != b->pa || a->pages != b->pages || a->attrs != b->attrs)
            die("run differs at (pt va, model va)", a->va, b->va);
        /* pt_query agrees at the first and last page of every run. */
        struct pt_leaf l;
        uint64_t last_page = b->va + (b->pages - 1) * PAGE_SIZE;
        if (pt_query(pt, va_init(b->va), &l) != PT_OK || l.attrs != b->attrs ||
            l.pa + (b->va - l.va) != b->pa)
            die("query at run start", b->va, l.pa);
        if (pt_query(pt, va_init(last_page + 0xfff), &l) != PT_OK ||
            l.pa + (last_page - l.va) != b->pa + (b->pages - 1) * PAGE_SIZE)
            die("query at run end", last_page, l.pa);
        if (b->va != 0 && va_is_canonical(b->va - 1, pt->levels) &&
            !model_any(&model, b->va - PAGE_SIZE, b->va - 1) &&
            pt_query(pt, va_init(b->va - 1), &l) == PT_OK)
            die("query below a run", b->va, 0);
    }
    const char *why = NULL;
    if (!pt_check(pt, &why))
        die(why, 0, 0);
    if (sim.held != pt->table_count || sim.bad_frees != 0)
        die("frames held vs table_count", sim.held, pt->table_count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!sim.mem)
        sim_init(&sim, 16384);
    struct pt pt;
    sim.fail_after = -1;
    unsigned levels = (size % 8 != 0 && (data[size - 1] & 1)) ? 5 : 4;
    if (pt_init(&pt, levels, true, sim_offset(&sim), sim_frames(&sim)) != PT_OK)
        die("init", 0, 0);
    model.n = 0;
    for (size_t op = 0; op < MAX_OPS && (op + 1) * 8 <= size; op++) {
        const uint8_t *b = data + op * 8;
        unsigned kind = (b[0] & 0x7f) % 5;
        uint64_t win = windows[b[1] & 3];
        unsigned cls = (b[1] >> 2) & 3;
        uint64_t off24 = b[2] | (uint64_t)b[3] << 8 | (uint64_t)b[4] << 16;
        uint64_t off, len;
        switch (cls) {
        case 0: /* a few pages anywhere */
            off = (off24 % (WINDOW / PAGE_SIZE)) * PAGE_SIZE;
            len = (b[5] % 16 + 1) * PAGE_SIZE;
            break;
        case 1: /* 2M-aligned megabytes */
            off = (off24 % (WINDOW / PAGE_SIZE_2M)) * PAGE_SIZE_2M;
            len = (b[5] % 8 + 1) * PAGE_SIZE_2M;
            break;
        case 2: /* gigabytes */
            off = (off24 % 4) * PAGE_SIZE_1G;
            len = (b[5] % 3 + 1) * PAGE_SIZE_1G;
            break;
        default: /* unaligned, up to 4 MiB */
            off = (off24 % (WINDOW / PAGE_SIZE)) * PAGE_SIZE;
            len = (b[5] + 1) * 4 * PAGE_SIZE;
            break;
        }
        if (off + len > WINDOW)
            len = WINDOW - off;
        uint64_t va = win + off, last = va + (len - 1);
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
            sim.fail_after = b[7] & 3;

        /* Only a map (EXISTS) or an injected failure (NOMEM) can fail: hash only then. */
        bool may_fail = inject || kind < 3;
        uint64_t before = may_fail ? sim_hash(&pt) : 0;
        enum pt_status st;
        if (kind < 3) {
            st = pt_map(&pt, va_init(va), pa_init(pa), len, attrs, max);
            if (st == PT_OK) {
                if (model_any(&model, va, last))
                    die("map succeeded over a mapping", va, len);
                model_insert(&model, (struct run){va, pa, len / PAGE_SIZE, attrs});
            } else if (st == PT_ERR_EXISTS) {
                if (!model_any(&model, va, last))
                    die("map said EXISTS over nothing", va, len);
            }
        } else if (kind == 3) {
            st = pt_unmap(&pt, va_init(va), len);
            if (st == PT_OK)
                model_unmap(&model, va, last);
        } else {
            st = pt_protect(&pt, va_init(va), len, attrs);
            if (st == PT_OK)
                model_protect(&model, va, last, attrs);
        }
        if (st == PT_ERR_NOMEM && !inject)
            die("NOMEM without an injected failure", va, len);
        if (st != PT_OK && (!may_fail || sim_hash(&pt) != before))
            die("a failed operation changed the tables", va, st);
        if (st != PT_OK && st != PT_ERR_EXISTS && st != PT_ERR_NOMEM)
            die("unexpected status", va, st);
        sim.fail_after = -1;
        compare(&pt);
    }
    pt_destroy(&pt);
    if (sim.held != 0 || sim.bad_frees != 0)
        die("frames left after destroy", sim.held, sim.bad_frees);
    return 0;
}
