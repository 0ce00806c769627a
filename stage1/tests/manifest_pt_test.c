/*
 * The manifest against the page-table code: the requests stage 1 makes for a
 * q35-like machine (the direct map of RAM with read-only aliases of .text,
 * .rodata and the trampoline page, the framebuffer write-combining in the
 * dynamic area) are mapped with pt_map into a hierarchy over simulated
 * physical memory, and every present leaf must be described by exactly one
 * manifest entry (same page size, same frame, same W/X and memory type), the
 * manifest must cover no byte the tables leave unmapped, no frame may be
 * writable in one mapping and executable in another, and the tables built
 * must be as few as pt_min_tables says.
 */
#include <stdlib.h>
#include <string.h>

#include <vmm/pt.h>

#include "../load/mapplan.h"
#include "check.h"

#define SIM_BASE   0x7000000ull /* simulated physical address of the first frame */
#define SIM_FRAMES 128
#define REQS       24

struct sim {
    uint8_t *mem;
    unsigned used;
};

static bool sim_alloc(void *ctx, uint64_t *phys)
{
    struct sim *s = ctx;
    if (s->used == SIM_FRAMES)
        return false;
    memset(s->mem + (uint64_t)s->used * PAGE_SIZE, 0, PAGE_SIZE);
    *phys = SIM_BASE + (uint64_t)s->used++ * PAGE_SIZE;
    return true;
}

static void sim_free(void *ctx, uint64_t phys)
{
    (void)ctx;
    (void)phys; /* a bump allocator: frees only happen on failure paths, not exercised here */
}

struct leaf_check {
    const struct canopy_mapping *m;
    uint32_t count;
    uint64_t leaf_bytes;
    unsigned bad;
};

static bool check_leaf(void *ctx, const struct pt_leaf *leaf)
{
    struct leaf_check *c = ctx;
    c->leaf_bytes += leaf->page_size;
    for (uint32_t i = 0; i < c->count; i++) {
        const struct canopy_mapping *e = &c->m[i];
        if (leaf->va < e->va || leaf->va - e->va >= e->size_bytes)
            continue;
        bool ok = e->page_size == leaf->page_size && leaf->pa == e->pa + (leaf->va - e->va) &&
                  !!(leaf->attrs & PT_W) == !!(e->flags & CANOPY_MAP_W) &&
                  !!(leaf->attrs & PT_X) == !!(e->flags & CANOPY_MAP_X) &&
                  (leaf->attrs & PT_CACHE_MASK) == (e->flags & CANOPY_MAP_CACHE_MASK);
        if (!ok) {
            fprintf(stderr, "  leaf 0x%llx (%llu) disagrees with entry %u\n",
                    (unsigned long long)leaf->va, (unsigned long long)leaf->page_size, i);
            c->bad++;
        }
        return true;
    }
    fprintf(stderr, "  leaf 0x%llx is in no manifest entry\n", (unsigned long long)leaf->va);
    c->bad++;
    return true;
}

static void run_case(uint64_t max_page, unsigned levels)
{
    static const struct canopy_mem_range map[] = {
        {.base = 0, .page_count = 0x9f, .type = CANOPY_MEM_USABLE},
        {.base = 0x100000, .page_count = 0x7ff00, .type = CANOPY_MEM_RECLAIMABLE},
        {.base = 0xb0000000, .page_count = 0x10000, .type = CANOPY_MEM_MMIO},
        {.base = 0x100000000ull, .page_count = 0x40100, .type = CANOPY_MEM_USABLE},
    };
    uint64_t hhdm = levels == 5 ? CANOPY_HHDM_BASE_5L : CANOPY_HHDM_BASE_4L;
    struct map_request req[REQS];
    uint32_t n = mapplan_hhdm(map, 4, va_init(hhdm), pa_init(CANOPY_DYNAMIC_BASE - hhdm), max_page,
                              req, REQS, NULL);
    CHECK(n == 3); /* the ECAM window is no RAM */
    /* The read-only aliases: .text, .rodata, the trampoline page. */
    CHECK(mapplan_hhdm_protect(req, &n, REQS, pa_init(0x1bb60000), 0xe000, 0));
    CHECK(mapplan_hhdm_protect(req, &n, REQS, pa_init(0x1dc30000), 0x5000, 0));
    CHECK(mapplan_hhdm_protect(req, &n, REQS, pa_init(0x1dc27000), PAGE_SIZE, 0));
    CHECK(n == 9);
    uint64_t fb_va;
    req[n++] = mapplan_framebuffer(pa_init(0xc0000000), 0x3e8000, true, &fb_va);
    /* Kernel text, rodata, data; the boot stack; the trampoline page. */
    req[n++] = mapplan_request_4k(va_init(0xffffffff80000000ull), pa_init(0x1bb60000), 0xe000,
                                  CANOPY_MAP_X, CANOPY_OWNER_KERNEL_IMAGE);
    req[n++] = mapplan_request_4k(va_init(0xffffffff8000e000ull), pa_init(0x1dc30000), 0x5000, 0,
                                  CANOPY_OWNER_KERNEL_IMAGE);
    req[n++] = mapplan_request_4k(va_init(0xffffffff80013000ull), pa_init(0x1fe00000), 0x2c000,
                                  CANOPY_MAP_W, CANOPY_OWNER_KERNEL_IMAGE);
    req[n++] = mapplan_request_4k(va_init(CANOPY_DYNAMIC_BASE + PAGE_SIZE), pa_init(0x1bb00000),
                                  0x10000, CANOPY_MAP_W, CANOPY_OWNER_STACK);
    req[n++] = mapplan_request_4k(va_init(0x1dc27000), pa_init(0x1dc27000), PAGE_SIZE, CANOPY_MAP_X,
                                  CANOPY_OWNER_TRAMPOLINE);
    mapplan_sort(req, n);
    CHECK(!mapplan_overlaps(req, n));

    struct sim sim = {.mem = aligned_alloc(PAGE_SIZE, SIM_FRAMES * PAGE_SIZE)};
    struct pt pt;
    struct pt_frames frames = {.alloc = sim_alloc, .free = sim_free, .ctx = &sim};
    CHECK(pt_init(&pt, levels, true, (uint64_t)(uintptr_t)sim.mem - SIM_BASE, frames) == PT_OK);
    struct canopy_mapping manifest[REQS * MAPPLAN_ENTRIES_PER_REQUEST];
    uint32_t count = 0;
    struct pt_span spans[REQS];
    uint64_t manifest_bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t attrs = ((req[i].flags & CANOPY_MAP_W) ? PT_W : 0) |
                         ((req[i].flags & CANOPY_MAP_X) ? PT_X : 0) |
                         (req[i].flags & CANOPY_MAP_CACHE_MASK);
        CHECK(pt_map(&pt, va_init(req[i].va), pa_init(req[i].pa), req[i].size, attrs,
                     req[i].max_page_size) == PT_OK);
        CHECK(mapplan_manifest_add(&req[i], manifest, REQS * MAPPLAN_ENTRIES_PER_REQUEST, &count));
        spans[i] = (struct pt_span){req[i].va, req[i].pa, req[i].size, req[i].max_page_size};
        manifest_bytes += req[i].size;
    }
    struct leaf_check c = {.m = manifest, .count = count};
    pt_for_each_leaf(&pt, 0, UINT64_MAX, check_leaf, &c);
    CHECK(c.bad == 0);
    CHECK(c.leaf_bytes == manifest_bytes);
    /* Every executable page's frame is read-only in the direct map. */
    for (uint32_t i = 0; i < n; i++) {
        if (!(req[i].flags & CANOPY_MAP_X))
            continue;
        for (uint64_t off = 0; off < req[i].size; off += PAGE_SIZE) {
            struct pt_leaf alias;
            CHECK(pt_query(&pt, va_init(hhdm + req[i].pa + off), &alias) == PT_OK &&
                  !(alias.attrs & (PT_W | PT_X)) && alias.page_size == PAGE_SIZE);
        }
    }
    /* The framebuffer: write-combining at MAPPLAN_FB_VA, not in the direct map. */
    struct pt_leaf fb;
    CHECK(pt_query(&pt, va_init(fb_va + 0x3e7000), &fb) == PT_OK && fb.pa == 0xc03e7000 &&
          fb.attrs == (PT_W | PT_CACHE_WC));
    CHECK(pt_query(&pt, va_init(hhdm + 0xc0000000), &fb) == PT_ERR_NOT_MAPPED);
    uint64_t min = 0;
    CHECK(pt_min_tables(spans, n, levels, &min) == PT_OK);
    CHECK(pt.table_count == min);
    CHECK(pt.table_count == sim.used);
    const char *problem = NULL;
    CHECK(pt_check(&pt, &problem));
    free(sim.mem);
}

static void test_manifest_matches_tables_with_1g_pages(void)
{
    run_case(PAGE_SIZE_1G, 4);
}

static void test_manifest_matches_tables_with_2m_pages(void)
{
    run_case(PAGE_SIZE_2M, 4);
}

static void test_manifest_matches_tables_with_5_levels(void)
{
    run_case(PAGE_SIZE_1G, 5);
}

void manifest_pt_tests(void)
{
    RUN(test_manifest_matches_tables_with_1g_pages);
    RUN(test_manifest_matches_tables_with_2m_pages);
    RUN(test_manifest_matches_tables_with_5_levels);
}
