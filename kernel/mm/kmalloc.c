/*
 * kmalloc: the kernel heap, mm/slab.c over the kernel's PMM.
 *
 * Pages are PMM frames owned by CANOPY_OWNER_HEAP and used at their HHDM
 * address: one frame per slab (pmm_alloc order 0, O(1)), a run of exactly
 * the frames needed for a large allocation (pmm_alloc_run). The PMM's owner
 * byte is the heap's proof of ownership, which lets kfree refuse pointers
 * into frames it does not hold (foreign memory, pages already given back)
 * without reading them.
 *
 * The caches (kcache_create) are slab.c's caches over the same frames, in
 * a small fixed table: the VMM's nodes have one.
 *
 * Invariant (kmm_audit checks it): the PMM's HEAP frame count equals the
 * heap's page count plus the caches' slabs. Single CPU, and no caller in
 * interrupt context, so no lock. Called by the VMM for its nodes and by
 * anything needing small memory.
 */
#include <stddef.h>
#include <stdint.h>

#include <kernel/kmalloc.h>
#include <kernel/kmm.h>
#include <kernel/panic.h>

#include "slab.h"

#define KCACHE_MAX 4

struct kcache {
    struct slab_cache slab;
};

static struct slab_heap heap;
static bool heap_ready;
static struct kcache caches[KCACHE_MAX];
static unsigned cache_count;

static bool heap_page_alloc(void *ctx, uint64_t count, void **page)
{
    (void)ctx;
    uint64_t phys;
    enum pmm_status st = count == 1 ? pmm_alloc(kmm_pmm(), 0, CANOPY_OWNER_HEAP, &phys)
                                    : pmm_alloc_run(kmm_pmm(), count, CANOPY_OWNER_HEAP, &phys);
    if (st != PMM_OK)
        return false;
    *page = kmm_phys_to_virt(phys);
    return true;
}

static uint64_t phys_of(const void *page)
{
    return (uint64_t)(uintptr_t)page - kmm_pmm()->virt_offset;
}

static void heap_page_free(void *ctx, void *page, uint64_t count)
{
    (void)ctx;
    enum pmm_status st = pmm_free_run(kmm_pmm(), phys_of(page), count);
    if (st != PMM_OK)
        panic("kmalloc: giving back %llu frames at 0x%llx: %s", (unsigned long long)count,
              (unsigned long long)phys_of(page), pmm_status_str(st));
}

static bool heap_page_owned(void *ctx, const void *page)
{
    (void)ctx;
    /* A pointer below the HHDM wraps to a huge "physical" address the PMM does not track. */
    return pmm_owner_of(kmm_pmm(), phys_of(page)) == CANOPY_OWNER_HEAP;
}

static const struct slab_pages heap_pages = {
    .alloc = heap_page_alloc, .free = heap_page_free, .owns = heap_page_owned, .ctx = NULL};

void kmalloc_init(void)
{
    slab_init(&heap, heap_pages);
    heap_ready = true;
}

struct kcache *kcache_create(const char *name, size_t size, size_t align)
{
    if (!heap_ready)
        panic("kcache_create(%s) before kmalloc_init", name);
    if (cache_count == KCACHE_MAX)
        panic("kcache_create(%s): all %u cache slots are taken", name, KCACHE_MAX);
    struct kcache *c = &caches[cache_count];
    if (!slab_cache_init(&c->slab, name, size, align, heap_pages))
        panic("kcache_create(%s): no cache of %zu-byte objects at %zu", name, size, align);
    cache_count++;
    return c;
}

void *kcache_alloc(struct kcache *c)
{
    return slab_cache_alloc(&c->slab);
}

void kcache_free(struct kcache *c, void *p)
{
    enum slab_status st = slab_cache_free(&c->slab, p);
    if (st != SLAB_OK)
        panic("kcache_free(%s, %p): %s", c->slab.name, p, slab_status_str(st));
}

void *kmalloc(size_t size)
{
    if (!heap_ready)
        panic("kmalloc(%zu) before kmalloc_init", size);
    return slab_alloc(&heap, size);
}

void *kzalloc(size_t size)
{
    void *p = kmalloc(size);
    if (p != NULL)
        __builtin_memset(p, 0, size);
    return p;
}

void kfree(void *p)
{
    enum slab_status st = slab_free(&heap, p);
    if (st != SLAB_OK)
        panic("kfree(%p): %s", p, slab_status_str(st));
}

void kmalloc_stats(struct kmalloc_stats *out)
{
    out->frames = heap.page_count;
    out->objects = 0;
    for (unsigned c = 0; c < SLAB_CLASS_COUNT; c++)
        out->objects += heap.objects[c];
    out->large_allocs = heap.large_allocs;
    for (unsigned i = 0; i < cache_count; i++) {
        out->frames += caches[i].slab.slabs;
        out->objects += caches[i].slab.objects;
    }
}

bool kmalloc_check(const char **why)
{
    if (!slab_check(&heap, why))
        return false;
    for (unsigned i = 0; i < cache_count; i++)
        if (!slab_cache_check(&caches[i].slab, why))
            return false;
    return true;
}
