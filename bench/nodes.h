/*
 * nodes: where the host benchmarks' tree nodes come from, placed as the
 * kernel places them. The allocator is the kernel's own (kernel/mm/slab.c,
 * compiled for the host with the bench flags) over 4 KiB pages handed out
 * in address order from chunks advised for transparent huge pages, as the
 * kernel reaches its heap through the direct map's large pages.
 *
 * By default a node comes from a cache of its own size at VMM_VMA_ALIGN
 * (vmm/space.h), as the kernel's VMAs do: 96-byte VMAs 42 to a slab page
 * after its 64-byte header, VMA i at 64 + 96 i, where kmalloc's 96-byte
 * class put them before they had a cache. BENCH_PLACE_LINE puts it in a
 * cache at 64 bytes instead (every node on its own cache lines, 128 bytes
 * for a VMA, slabs coloured), for comparisons.
 */
#ifndef BENCH_NODES_H
#define BENCH_NODES_H

#include <stddef.h>

/* Where a node is placed: as the kernel places VMAs, or line-aligned. */
enum bench_place { BENCH_PLACE_CACHE, BENCH_PLACE_LINE };

/*
 * size bytes for one node, placed so; never NULL (the program ends with a
 * message when memory runs out).
 */
void *bench_nodes_alloc_in(enum bench_place where, size_t size);

/* Gives a node back. => p came from bench_nodes_alloc_in(where, size). */
void bench_nodes_free_in(enum bench_place where, size_t size, void *p);

/* A node placed as the kernel places its VMAs, and its return. */
static inline void *bench_nodes_alloc(size_t size)
{
    return bench_nodes_alloc_in(BENCH_PLACE_CACHE, size);
}

static inline void bench_nodes_free(size_t size, void *p)
{
    bench_nodes_free_in(BENCH_PLACE_CACHE, size, p);
}

#endif
