/*
 * slab: the size-class allocator behind kmalloc, written against a page
 * source so the same code runs in the kernel (PMM frames seen through the
 * HHDM) and in host tests (aligned host memory).
 *
 * Small requests are rounded up to one of SLAB_CLASS_COUNT classes and carved
 * out of one-page slabs; everything else gets a run of whole pages. Every
 * page the allocator hands out starts with a 64-byte header, so the header of
 * any pointer it returned is at the pointer rounded down to PAGE_SIZE and no
 * metadata lives anywhere else.
 *
 * A cache (struct slab_cache) is one more size class of its own, kept apart
 * from the heap's, with an alignment of its own from 16 to 64 bytes: its
 * object size is the request rounded up to it. At 64 (SLAB_CACHE_ALIGN)
 * each object starts on a cache line, so its first 64 bytes are one line;
 * successive slabs shift their objects by the lines left over (colours),
 * so that the first lines spread over all of the cache's sets. The VMAs
 * have a cache (kernel/mm/vm.c says at which alignment, and why).
 */
#ifndef KERNEL_MM_SLAB_H
#define KERNEL_MM_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/page.h>

#define SLAB_HEADER_SIZE 64u
#define SLAB_ALIGN       16u /* every pointer returned is a multiple of this */
#define SLAB_CLASS_COUNT 13u
#define SLAB_MAX_OBJECTS 256u /* the most objects one slab holds (bitmap width) */

/* The biggest request a slab class serves; larger ones get whole pages. */
#define SLAB_MAX_SMALL 2016u

/* The largest alignment a cache gives its objects, a cache line; colours step by it. */
#define SLAB_CACHE_ALIGN 64u

enum slab_status {
    SLAB_OK = 0,
    SLAB_ERR_BAD_POINTER, /* not a pointer this heap returned (or its page was given back) */
    SLAB_ERR_DOUBLE_FREE, /* the object is already free */
};

/* A short English name for a status. */
const char *slab_status_str(enum slab_status st);

/*
 * Where pages come from. alloc gives `count` contiguous, 4 KiB aligned pages
 * or returns false; owns tells whether a page start is currently one the
 * source gave this heap (the kernel asks the PMM's owner byte), which lets
 * slab_free refuse foreign and already returned pages without reading them.
 */
struct slab_pages {
    bool (*alloc)(void *ctx, uint64_t count, void **page);
    void (*free)(void *ctx, void *page, uint64_t count);
    bool (*owns)(void *ctx, const void *page);
    void *ctx;
};

struct slab_hdr;

struct slab_heap {
    struct slab_pages pages;
    struct slab_hdr *partial[SLAB_CLASS_COUNT]; /* slabs with a free object, per class */
    struct slab_hdr *full[SLAB_CLASS_COUNT];    /* slabs without one */
    uint64_t slabs[SLAB_CLASS_COUNT];           /* slab pages per class */
    uint64_t objects[SLAB_CLASS_COUNT];         /* objects handed out per class */
    uint64_t large_allocs;                      /* live whole-page allocations */
    uint64_t large_pages;                       /* pages they hold */
    uint64_t page_count;                        /* every page held: slabs + large */
};

/*
 * A cache of objects of one size. Its slabs are one page each with the same
 * 64-byte header as the heap's, which names the cache, so an object goes
 * back only to the cache it came from.
 */
struct slab_cache {
    struct slab_pages pages;
    const char *name;
    uint32_t align;           /* every object's address is a multiple of it */
    uint32_t size;            /* object size: the request rounded up to align */
    uint32_t per_slab;        /* objects one slab page holds */
    uint32_t colours;         /* first-object offsets slabs take in turn, 64 bytes apart */
    uint32_t next_colour;     /* the next new slab's */
    struct slab_hdr *partial; /* slabs with a free object */
    struct slab_hdr *full;    /* slabs without one */
    uint64_t slabs;           /* slab pages */
    uint64_t objects;         /* objects handed out */
};

/* The class serving a request of size bytes (1..SLAB_MAX_SMALL); SLAB_CLASS_COUNT if none. */
unsigned slab_class_of(size_t size);

/* The object size of class c, and how many objects one slab page of it holds. => c < count. */
size_t slab_class_size(unsigned c);
unsigned slab_class_objects(unsigned c);

/* Pages a whole-page allocation of size bytes takes (header included). */
uint64_t slab_large_pages(size_t size);

/* Makes an empty heap over a page source. */
void slab_init(struct slab_heap *h, struct slab_pages pages);

/*
 * Returns size bytes aligned to SLAB_ALIGN, or NULL if size is 0, absurdly
 * large, or the page source is empty. The memory is not zeroed.
 */
void *slab_alloc(struct slab_heap *h, size_t size);

/*
 * Gives p back. NULL is accepted. A slab page whose last object is freed and
 * every whole-page allocation go back to the page source at once, so an idle
 * heap holds no pages.
 * => SLAB_ERR_BAD_POINTER / SLAB_ERR_DOUBLE_FREE (nothing changed) for what
 *    the header and the source's owns() can prove wrong.
 */
enum slab_status slab_free(struct slab_heap *h, void *p);

/* The usable size of an allocation (its class size or its pages minus the header). */
size_t slab_usable_size(const struct slab_heap *h, const void *p);

/*
 * Verifies every slab on the partial and full lists (header, class, owner,
 * links, bitmap population equal to its count, on the list its fill level
 * says) and that the per-class slab and object counters equal what the lists
 * hold. => false and a reason in *why on the first problem.
 */
bool slab_check(const struct slab_heap *h, const char **why);

/*
 * Makes an empty cache of objects of size bytes, rounded up to align, over
 * a page source. => false unless align is a power of two from SLAB_ALIGN to
 * SLAB_CACHE_ALIGN, size is not 0 and a slab page holds at least two
 * objects (at most 2016 bytes rounded up).
 */
bool slab_cache_init(struct slab_cache *c, const char *name, size_t size, size_t align,
                     struct slab_pages pages);

/*
 * One object, at a multiple of the cache's align, not zeroed; NULL if the
 * page source is empty. The lowest free object of the most recently started
 * partial slab, as the heap's classes do.
 */
void *slab_cache_alloc(struct slab_cache *c);

/*
 * Gives p back (NULL is accepted); an emptied slab goes back to the page
 * source at once. => SLAB_ERR_BAD_POINTER for a pointer that is not an
 * object of this cache (the heap's and other caches' included), or
 * SLAB_ERR_DOUBLE_FREE; nothing changed.
 */
enum slab_status slab_cache_free(struct slab_cache *c, void *p);

/* As slab_check, for a cache's slabs and counters. */
bool slab_cache_check(const struct slab_cache *c, const char **why);

#endif
