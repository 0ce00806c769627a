/*
 * support: what the host benchmarks share: the one allocator their tree
 * nodes come from, the clock they time with, and medians.
 *
 * Nodes are allocated the way the kernel allocates a VMA: today kmalloc,
 * whose size class for the node is carved out of one-page slabs after a
 * 64-byte header (kernel/mm/slab.c, compiled in here unchanged). The pages
 * come from an arena of transparent huge pages, as the kernel reaches its
 * heap through an HHDM of large pages. When the kernel's VMAs get a cache
 * of their own, bench_node_alloc() is the line to change.
 */
#ifndef BENCH_SUPPORT_H
#define BENCH_SUPPORT_H

#include <stddef.h>

/*
 * size bytes for one tree node, from the node allocator; never NULL (the
 * program ends with a message if memory runs out). Successive calls fill
 * a slab page before starting the next, as kmalloc does.
 */
void *bench_node_alloc(size_t size);

/* Gives a node back. => p came from bench_node_alloc() (or is NULL). */
void bench_node_free(void *p);

/*
 * The CPU time this thread has used, in ns: on a shared machine, the time
 * other processes hold the core is not charged to the code measured (what
 * they do to the caches still is).
 */
double bench_now_ns(void);

/* The median of count values; sorts v. => count > 0 */
double bench_median(double *v, int count);

#endif
