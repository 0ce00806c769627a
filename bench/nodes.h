/*
 * nodes: where the host benchmarks' tree nodes come from, placed as the
 * kernel places them. The allocator is the kernel's own (kernel/mm/slab.c,
 * compiled for the host with the bench flags) over 4 KiB pages handed out
 * in address order from chunks advised for transparent huge pages, as the
 * kernel reaches its heap through the direct map's large pages.
 *
 * By default a node comes from a cache of its own size (one per size, as
 * the kernel's VMAs have one): rounded up to 64 bytes, every node starts on
 * a cache line, 31 of 128 bytes after each page's 64-byte header. With
 * bench_nodes_use_kmalloc(true) it comes from kmalloc's size classes
 * instead (aligned to 16: a 96-byte VMA at 64 + 96 i in its page), which is
 * how the kernel placed VMAs before they had a cache: for comparisons.
 */
#ifndef BENCH_NODES_H
#define BENCH_NODES_H

#include <stdbool.h>
#include <stddef.h>

/* size bytes for one node; never NULL (the program ends with a message when memory runs out). */
void *bench_nodes_alloc(size_t size);

/* Gives a node of size bytes back. => p came from bench_nodes_alloc(size), in the same mode. */
void bench_nodes_free(size_t size, void *p);

/* Places the nodes allocated from now on as kmalloc does (true) or in caches (false). */
void bench_nodes_use_kmalloc(bool on);

#endif
