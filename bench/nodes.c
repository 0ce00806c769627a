/*
 * nodes: the benchmarks' node allocator (nodes.h): the kernel's slab code
 * over host pages.
 *
 * Pages come in address order from 64 MiB chunks advised for huge pages; a
 * page given back goes on a free list and is handed out again first, as a
 * frame the PMM gets back would be. One cache per node size and alignment,
 * made on first use.
 */
#define _DEFAULT_SOURCE
#include "nodes.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <vmm/space.h>

#include "slab.h" /* kernel/mm */

#define CHUNK_BYTES ((size_t)64 << 20)
#define MAX_CACHES  8

static struct {
    char *chunk;     /* the chunk pages are carved from */
    size_t used;     /* bytes of it handed out */
    void *free_page; /* single pages given back, linked through their first word */
} arena;

static struct slab_cache caches[MAX_CACHES];
static unsigned cache_count;

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench nodes: %s\n", what);
    exit(1);
}

static bool page_alloc(void *ctx, uint64_t count, void **page)
{
    (void)ctx;
    if (count == 1 && arena.free_page) {
        *page = arena.free_page;
        arena.free_page = *(void **)arena.free_page;
        return true;
    }
    if (count > CHUNK_BYTES / PAGE_SIZE)
        return false;
    if (!arena.chunk || count > (CHUNK_BYTES - arena.used) / PAGE_SIZE) {
        void *c =
            mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (c == MAP_FAILED)
            return false;
        (void)madvise(c, CHUNK_BYTES, MADV_HUGEPAGE); /* advice: the nodes work without it */
        arena.chunk = c;
        arena.used = 0;
    }
    *page = arena.chunk + arena.used;
    arena.used += count * PAGE_SIZE;
    return true;
}

static void page_free(void *ctx, void *page, uint64_t count)
{
    (void)ctx;
    if (count == 1) { /* runs (no node needs one) are not reused */
        *(void **)page = arena.free_page;
        arena.free_page = page;
    }
}

static bool page_owned(void *ctx, const void *page)
{
    (void)ctx;
    (void)page;
    return true; /* the benchmarks free only what they allocated */
}

static const struct slab_pages pages = {
    .alloc = page_alloc, .free = page_free, .owns = page_owned, .ctx = NULL};

static struct slab_cache *cache_for(enum bench_place where, size_t size)
{
    size_t align = where == BENCH_PLACE_LINE ? SLAB_CACHE_ALIGN : VMM_VMA_ALIGN;
    struct slab_cache probe;

    /* A cache's object size and alignment say which request it serves. */
    if (!slab_cache_init(&probe, "bench nodes", size, align, pages))
        die("no cache for that node size");
    for (unsigned i = 0; i < cache_count; i++)
        if (caches[i].size == probe.size && caches[i].align == probe.align)
            return &caches[i];
    if (cache_count == MAX_CACHES)
        die("too many node sizes");
    caches[cache_count] = probe;
    return &caches[cache_count++];
}

void *bench_nodes_alloc_in(enum bench_place where, size_t size)
{
    void *p = slab_cache_alloc(cache_for(where, size));

    if (!p)
        die("out of memory");
    return p;
}

void bench_nodes_free_in(enum bench_place where, size_t size, void *p)
{
    enum slab_status st = slab_cache_free(cache_for(where, size), p);

    if (st != SLAB_OK)
        die(slab_status_str(st));
}
