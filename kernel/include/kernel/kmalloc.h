/*
 * kmalloc: the kernel heap. Size classes on one-page slabs and whole-page
 * runs, all on PMM frames (owner CANOPY_OWNER_HEAP) reached through the HHDM,
 * so it never needs the VMM, which takes its VMA nodes from here.
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

/* What the heap holds, for the audit and the self-test. */
struct kmalloc_stats {
    uint64_t frames;       /* PMM frames held: slab pages + large runs */
    uint64_t objects;      /* live small objects */
    uint64_t large_allocs; /* live whole-frame allocations */
};
void kmalloc_stats(struct kmalloc_stats *out);

/* Runs the heap's consistency check; false and a reason in *why on a problem. */
bool kmalloc_check(const char **why);

#endif
