/*
 * kmalloc: the kernel heap. Size classes on one-page slabs and whole-page
 * runs, all on PMM frames (owner CANOPY_OWNER_HEAP) reached through the HHDM,
 * so it never needs the VMM, which takes its VMA nodes from here: from a
 * cache of their own (kcache_create).
 */
#ifndef KERNEL_KMALLOC_H
#define KERNEL_KMALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Starts the heap on the kernel's PMM. => after kmm_adopt(). */
void kmalloc_init(void);

/*
 * size bytes aligned to 16, not zeroed; NULL if size is 0 or memory is short.
 * Requests above 2016 bytes take whole frames (64 bytes of them for the header).
 */
void *kmalloc(size_t size);

/* As kmalloc, zeroed. */
void *kzalloc(size_t size);

/*
 * Gives p (from kmalloc; NULL is fine) back. Panics on a pointer the heap did
 * not hand out or already took back, as far as its headers and the PMM's
 * owner bytes can tell (a programmer error).
 */
void kfree(void *p);

/*
 * A cache of objects of one size on the heap's frames, apart from
 * kmalloc's size classes, at an alignment of its own from 16 to 64 bytes
 * (at 64 every object starts on a cache line).
 */
struct kcache;

/*
 * A new cache of size-byte objects (rounded up to align, at most 2016),
 * named for panics. Panics if the kernel's few cache slots are taken or
 * size or align is out of range (a programmer error). => after
 * kmalloc_init().
 */
struct kcache *kcache_create(const char *name, size_t size, size_t align);

/* One object, aligned as the cache says, not zeroed; NULL if memory is short. */
void *kcache_alloc(struct kcache *c);

/* Gives p (from kcache_alloc(c); NULL is fine) back. Panics as kfree does. */
void kcache_free(struct kcache *c, void *p);

/* What the heap holds, caches included, for the audit and the self-test. */
struct kmalloc_stats {
    uint64_t frames;       /* PMM frames held: slab pages + large runs + cache slabs */
    uint64_t objects;      /* live small objects, cached ones included */
    uint64_t large_allocs; /* live whole-frame allocations */
};
void kmalloc_stats(struct kmalloc_stats *out);

/* Runs the heap's and every cache's consistency check; false and a reason in *why on a problem. */
bool kmalloc_check(const char **why);

#endif
