/*
 * slab: size classes on one-page slabs, whole-page runs above them.
 *
 * Page layout (every page the heap holds first-hand begins with a header):
 *
 *   slab page                          large allocation (n pages)
 *   +--------------------+ 0           +--------------------+ 0
 *   | header (64 bytes)  |             | header, pages = n  |
 *   +--------------------+ 64          +--------------------+ 64  <- pointer
 *   | object 0           |             | caller's bytes ... |
 *   | object 1 ...       |             |   ... n * 4096 - 64|
 *   +--------------------+ <= 4096     +--------------------+
 *
 * The classes are chosen so the 4032 bytes after the header divide with
 * little waste (336 x 12, 448 x 9, 672 x 6, 1008 x 4, 2016 x 2) and all are
 * multiples of 16. A slab tracks its objects in a 256-bit bitmap in the
 * header, never in the objects themselves, so a stray write into a freed
 * object cannot corrupt the allocator and a double free is one bit test.
 *
 * A cache's slab has the same header, with its own magic and a pointer to
 * the cache, and objects of the cache's size (a multiple of its alignment;
 * at 64, every object starts on a cache line). Where the objects leave lines over at the
 * end of the page, successive slabs start their first object that many
 * lines later in turn (their colour, kept in cls, as Linux's slab colours
 * its slabs): with 128-byte objects from offset 64 alone, every object's
 * first line would be an odd line of its page, and the first lines, the
 * ones a search reads, would share half the cache's sets.
 *
 *   cache slab, 128-byte objects (31 per page, one line left over)
 *   colour 0                           colour 1
 *   +--------------------+ 0           +--------------------+ 0
 *   | header (64 bytes)  |             | header (64 bytes)  |
 *   +--------------------+ 64          +- - - - - - - - - - + 64  (unused)
 *   | object 0: lines 1-2|             +--------------------+ 128
 *   | object 1: lines 3-4|             | object 0: lines 2-3|
 *   | ...                |             | ...                |
 *   +--------------------+ 4032        +--------------------+ 4096
 *
 * Invariants (slab_check, slab_cache_check): each slab is on exactly one list of its class,
 * partial iff 0 < used < objects (an empty slab is given back at once), its
 * bitmap has `used` bits set; the per-class counters equal the lists.
 *
 * Callers: kmalloc.c (the kernel heap and its caches on PMM frames), the
 * host tests and benchmarks.
 */
#include "slab.h"

#define SLAB_MAGIC  0x42414c53u /* "SLAB" */
#define LARGE_MAGIC 0x4752414cu /* "LARG" */
#define CACHE_MAGIC 0x48434143u /* "CACH": a cache's slab */
#define DEAD_MAGIC  0x44414544u /* "DEAD": written when a page goes back */
#define POISON_FREE 0xdb

struct slab_hdr {
    uint32_t magic;
    uint16_t cls;
    uint16_t used;
    struct slab_hdr *prev, *next; /* the class's (or cache's) partial or full list */
    union {
        uint64_t pages;           /* large allocations: pages in the run */
        struct slab_cache *cache; /* a cache's slabs: the cache */
    };
    uint64_t bitmap[SLAB_MAX_OBJECTS / 64];
};
_Static_assert(sizeof(struct slab_hdr) == SLAB_HEADER_SIZE, "the header is one 64-byte line");

static const uint16_t class_sizes[SLAB_CLASS_COUNT] = {
    16, 32, 48, 64, 96, 128, 192, 256, 336, 448, 672, 1008, 2016,
};
_Static_assert(SLAB_MAX_SMALL == 2016, "the largest class");
_Static_assert((PAGE_SIZE - SLAB_HEADER_SIZE) / 16 <= SLAB_MAX_OBJECTS, "bitmap width");

const char *slab_status_str(enum slab_status st)
{
    switch (st) {
    case SLAB_OK:
        return "ok";
    case SLAB_ERR_BAD_POINTER:
        return "not a heap pointer";
    case SLAB_ERR_DOUBLE_FREE:
        return "double free";
    }
    return "unknown status";
}

unsigned slab_class_of(size_t size)
{
    if (size == 0 || size > SLAB_MAX_SMALL)
        return SLAB_CLASS_COUNT;
    unsigned lo = 0, hi = SLAB_CLASS_COUNT - 1;
    while (lo < hi) { /* the first class >= size */
        unsigned mid = (lo + hi) / 2;
        if (class_sizes[mid] < size)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t slab_class_size(unsigned c)
{
    return c < SLAB_CLASS_COUNT ? class_sizes[c] : 0;
}

unsigned slab_class_objects(unsigned c)
{
    return c < SLAB_CLASS_COUNT ? (unsigned)((PAGE_SIZE - SLAB_HEADER_SIZE) / class_sizes[c]) : 0;
}

uint64_t slab_large_pages(size_t size)
{
    return pages_for_bytes((uint64_t)size + SLAB_HEADER_SIZE);
}

void slab_init(struct slab_heap *h, struct slab_pages pages)
{
    __builtin_memset(h, 0, sizeof(*h));
    h->pages = pages;
}

static struct slab_hdr *header_of(const void *p)
{
    return (struct slab_hdr *)(uintptr_t)page_down((uintptr_t)p);
}

static void list_push(struct slab_hdr **head, struct slab_hdr *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

static void list_remove(struct slab_hdr **head, struct slab_hdr *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* Marks the lowest free object of s (a partial slab) used and returns its index. */
static unsigned take_object(struct slab_hdr *s)
{
    unsigned i = 0;
    for (unsigned w = 0; w < SLAB_MAX_OBJECTS / 64; w++) {
        if (s->bitmap[w] != UINT64_MAX) {
            i = w * 64 + (unsigned)__builtin_ctzll(~s->bitmap[w]);
            break;
        }
    }
    /* A partial slab has a clear bit below its object count: bits past it are never set. */
    s->bitmap[i / 64] |= 1ull << (i % 64);
    s->used++;
    return i;
}

/*
 * The index of the object at offset off of slab s, whose objects are size
 * bytes from offset first, cap of them: SLAB_ERR_BAD_POINTER if off is not an object's
 * start, SLAB_ERR_DOUBLE_FREE if that object is free.
 */
static enum slab_status object_at(const struct slab_hdr *s, size_t off, size_t first, size_t size,
                                  unsigned cap, size_t *index)
{
    if (off < first)
        return SLAB_ERR_BAD_POINTER;
    size_t i = (off - first) / size;
    if ((off - first) % size != 0 || i >= cap)
        return SLAB_ERR_BAD_POINTER;
    if (!(s->bitmap[i / 64] & (1ull << (i % 64))))
        return SLAB_ERR_DOUBLE_FREE;
    *index = i;
    return SLAB_OK;
}

/* Poisons object i of s (size bytes at p) and marks it free; the caller moves s between lists. */
static void put_object(struct slab_hdr *s, void *p, size_t size, size_t i)
{
    __builtin_memset(p, POISON_FREE, size);
    s->bitmap[i / 64] &= ~(1ull << (i % 64));
    s->used--;
}

static void *large_alloc(struct slab_heap *h, size_t size)
{
    /* Sizes so large the page count overflows are refused before asking for pages. */
    if (size > UINT64_MAX / 2)
        return NULL;
    uint64_t n = slab_large_pages(size);
    void *page;
    if (!h->pages.alloc(h->pages.ctx, n, &page))
        return NULL;
    struct slab_hdr *s = page;
    __builtin_memset(s, 0, sizeof(*s));
    s->magic = LARGE_MAGIC;
    s->pages = n;
    h->large_allocs++;
    h->large_pages += n;
    h->page_count += n;
    return (char *)page + SLAB_HEADER_SIZE;
}

static struct slab_hdr *slab_new(struct slab_heap *h, unsigned c)
{
    void *page;
    if (!h->pages.alloc(h->pages.ctx, 1, &page))
        return NULL;
    struct slab_hdr *s = page;
    __builtin_memset(s, 0, sizeof(*s));
    s->magic = SLAB_MAGIC;
    s->cls = (uint16_t)c;
    h->slabs[c]++;
    h->page_count++;
    list_push(&h->partial[c], s);
    return s;
}

void *slab_alloc(struct slab_heap *h, size_t size)
{
    if (size == 0)
        return NULL;
    unsigned c = slab_class_of(size);
    if (c == SLAB_CLASS_COUNT)
        return large_alloc(h, size);
    struct slab_hdr *s = h->partial[c];
    if (s == NULL && (s = slab_new(h, c)) == NULL)
        return NULL;
    unsigned i = take_object(s);
    h->objects[c]++;
    if (s->used == slab_class_objects(c)) {
        list_remove(&h->partial[c], s);
        list_push(&h->full[c], s);
    }
    return (char *)s + SLAB_HEADER_SIZE + (size_t)i * class_sizes[c];
}

enum slab_status slab_free(struct slab_heap *h, void *p)
{
    if (p == NULL)
        return SLAB_OK;
    if ((uintptr_t)p % SLAB_ALIGN != 0)
        return SLAB_ERR_BAD_POINTER;
    struct slab_hdr *s = header_of(p);
    size_t off = (size_t)((char *)p - (char *)s);
    if (off < SLAB_HEADER_SIZE || !h->pages.owns(h->pages.ctx, s))
        return SLAB_ERR_BAD_POINTER;

    if (s->magic == LARGE_MAGIC) {
        if (off != SLAB_HEADER_SIZE || s->pages == 0 || s->pages > h->large_pages)
            return SLAB_ERR_BAD_POINTER;
        uint64_t n = s->pages;
        s->magic = DEAD_MAGIC;
        h->large_allocs--;
        h->large_pages -= n;
        h->page_count -= n;
        h->pages.free(h->pages.ctx, s, n);
        return SLAB_OK;
    }
    if (s->magic != SLAB_MAGIC || s->cls >= SLAB_CLASS_COUNT)
        return SLAB_ERR_BAD_POINTER;
    unsigned c = s->cls;
    size_t size = class_sizes[c], i;
    enum slab_status st = object_at(s, off, SLAB_HEADER_SIZE, size, slab_class_objects(c), &i);
    if (st != SLAB_OK)
        return st;

    if (s->used == slab_class_objects(c)) {
        list_remove(&h->full[c], s);
        list_push(&h->partial[c], s);
    }
    put_object(s, p, size, i);
    h->objects[c]--;
    if (s->used == 0) {
        list_remove(&h->partial[c], s);
        s->magic = DEAD_MAGIC;
        h->slabs[c]--;
        h->page_count--;
        h->pages.free(h->pages.ctx, s, 1);
    }
    return SLAB_OK;
}

size_t slab_usable_size(const struct slab_heap *h, const void *p)
{
    (void)h;
    const struct slab_hdr *s = header_of(p);
    if (s->magic == LARGE_MAGIC)
        return (size_t)(s->pages * PAGE_SIZE - SLAB_HEADER_SIZE);
    return s->magic == SLAB_MAGIC && s->cls < SLAB_CLASS_COUNT ? class_sizes[s->cls] : 0;
}

static unsigned popcount_bitmap(const struct slab_hdr *s)
{
    unsigned n = 0;
    for (unsigned w = 0; w < SLAB_MAX_OBJECTS / 64; w++)
        n += (unsigned)__builtin_popcountll(s->bitmap[w]);
    return n;
}

/* What every slab on a list must be: whose, and how many objects it holds. */
struct list_owner {
    const struct slab_pages *pages;
    uint64_t max_slabs; /* more slabs than this on one list means a cycle */
    uint32_t magic;
    uint16_t cls;                   /* the heap's class (heap slabs) */
                                    /* (a cache slab's cls is its colour, below colours) */
    const struct slab_cache *cache; /* the cache (cache slabs) */
    unsigned cap;                   /* objects per slab */
};

/* Checks one list; adds its slabs and objects to the totals. */
static bool check_list(const struct list_owner *o, const struct slab_hdr *head, bool full,
                       uint64_t *slabs, uint64_t *objects, const char **why)
{
    unsigned cap = o->cap;
    const struct slab_hdr *prev = NULL;
    for (const struct slab_hdr *s = head; s; prev = s, s = s->next) {
        if (*slabs > o->max_slabs) {
            *why = "a slab list is longer than the heap's page count (a cycle?)";
            return false;
        }
        if (!page_is_aligned((uintptr_t)s) || !o->pages->owns(o->pages->ctx, s)) {
            *why = "a listed slab is not a page the heap owns";
            return false;
        }
        if (s->magic != o->magic ||
            (o->magic == CACHE_MAGIC ? s->cache != o->cache || s->cls >= o->cache->colours
                                     : s->cls != o->cls)) {
            *why = "a listed slab has a bad magic or the wrong class";
            return false;
        }
        if (s->prev != prev) {
            *why = "a slab's back link is wrong";
            return false;
        }
        if (popcount_bitmap(s) != s->used) {
            *why = "a slab's bitmap disagrees with its used count";
            return false;
        }
        for (unsigned i = cap; i < SLAB_MAX_OBJECTS; i++)
            if (s->bitmap[i / 64] & (1ull << (i % 64))) {
                *why = "a slab's bitmap has a bit past its last object";
                return false;
            }
        if (full ? s->used != cap : (s->used == 0 || s->used >= cap)) {
            *why = full ? "a slab on the full list has a free object"
                        : "a slab on the partial list is empty or full";
            return false;
        }
        (*slabs)++;
        *objects += s->used;
    }
    return true;
}

bool slab_check(const struct slab_heap *h, const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    uint64_t pages = h->large_pages;
    for (unsigned c = 0; c < SLAB_CLASS_COUNT; c++) {
        uint64_t slabs = 0, objects = 0;
        struct list_owner o = {&h->pages,   h->page_count, SLAB_MAGIC,
                               (uint16_t)c, NULL,          slab_class_objects(c)};
        if (!check_list(&o, h->partial[c], false, &slabs, &objects, why) ||
            !check_list(&o, h->full[c], true, &slabs, &objects, why))
            return false;
        if (slabs != h->slabs[c] || objects != h->objects[c]) {
            *why = "a class's slab or object counter disagrees with its lists";
            return false;
        }
        pages += slabs;
    }
    if (pages != h->page_count) {
        *why = "the page count is not slabs + large pages";
        return false;
    }
    if ((h->large_allocs == 0) != (h->large_pages == 0) || h->large_pages < h->large_allocs) {
        *why = "the large-allocation counters disagree";
        return false;
    }
    return true;
}

/* ---- caches ---- */

/* Where a cache slab's first object starts: after the header, and its colour's lines. */
static size_t first_object(const struct slab_hdr *s)
{
    return SLAB_HEADER_SIZE + (size_t)s->cls * SLAB_CACHE_ALIGN;
}

bool slab_cache_init(struct slab_cache *c, const char *name, size_t size, size_t align,
                     struct slab_pages pages)
{
    __builtin_memset(c, 0, sizeof(*c));
    if (size == 0 || size > PAGE_SIZE || align < SLAB_ALIGN || align > SLAB_CACHE_ALIGN ||
        (align & (align - 1)))
        return false;
    size_t rounded = align_up(size, align);
    size_t per_slab = (PAGE_SIZE - SLAB_HEADER_SIZE) / rounded;
    if (per_slab < 2)
        return false;
    c->pages = pages;
    c->name = name;
    c->align = (uint32_t)align;
    c->size = (uint32_t)rounded;
    c->per_slab = (uint32_t)per_slab;
    c->colours =
        (uint32_t)((PAGE_SIZE - SLAB_HEADER_SIZE - per_slab * rounded) / SLAB_CACHE_ALIGN + 1);
    return true;
}

void *slab_cache_alloc(struct slab_cache *c)
{
    struct slab_hdr *s = c->partial;
    if (s == NULL) {
        void *page;
        if (!c->pages.alloc(c->pages.ctx, 1, &page))
            return NULL;
        s = page;
        __builtin_memset(s, 0, sizeof(*s));
        s->magic = CACHE_MAGIC;
        s->cache = c;
        s->cls = (uint16_t)c->next_colour;
        c->next_colour = (c->next_colour + 1) % c->colours;
        c->slabs++;
        list_push(&c->partial, s);
    }
    unsigned i = take_object(s);
    c->objects++;
    if (s->used == c->per_slab) {
        list_remove(&c->partial, s);
        list_push(&c->full, s);
    }
    return (char *)s + first_object(s) + (size_t)i * c->size;
}

enum slab_status slab_cache_free(struct slab_cache *c, void *p)
{
    if (p == NULL)
        return SLAB_OK;
    if ((uintptr_t)p % c->align != 0)
        return SLAB_ERR_BAD_POINTER;
    struct slab_hdr *s = header_of(p);
    size_t off = (size_t)((char *)p - (char *)s), i;
    if (off < SLAB_HEADER_SIZE || !c->pages.owns(c->pages.ctx, s) || s->magic != CACHE_MAGIC ||
        s->cache != c)
        return SLAB_ERR_BAD_POINTER;
    enum slab_status st = object_at(s, off, first_object(s), c->size, c->per_slab, &i);
    if (st != SLAB_OK)
        return st;

    if (s->used == c->per_slab) {
        list_remove(&c->full, s);
        list_push(&c->partial, s);
    }
    put_object(s, p, c->size, i);
    c->objects--;
    if (s->used == 0) {
        list_remove(&c->partial, s);
        s->magic = DEAD_MAGIC;
        c->slabs--;
        c->pages.free(c->pages.ctx, s, 1);
    }
    return SLAB_OK;
}

bool slab_cache_check(const struct slab_cache *c, const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    if (c->align < SLAB_ALIGN || c->align > SLAB_CACHE_ALIGN || (c->align & (c->align - 1)) ||
        c->size == 0 || c->size % c->align != 0 ||
        c->per_slab != (PAGE_SIZE - SLAB_HEADER_SIZE) / c->size ||
        SLAB_HEADER_SIZE + (c->colours - 1) * SLAB_CACHE_ALIGN + c->per_slab * c->size >
            PAGE_SIZE ||
        c->next_colour >= c->colours) {
        *why = "a cache's alignment, object size, objects per slab or colours are wrong";
        return false;
    }
    struct list_owner o = {&c->pages, c->slabs, CACHE_MAGIC, 0, c, c->per_slab};
    uint64_t slabs = 0, objects = 0;
    if (!check_list(&o, c->partial, false, &slabs, &objects, why) ||
        !check_list(&o, c->full, true, &slabs, &objects, why))
        return false;
    if (slabs != c->slabs || objects != c->objects) {
        *why = "a cache's slab or object counter disagrees with its lists";
        return false;
    }
    return true;
}
