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
 * Invariants (slab_check): each slab is on exactly one list of its class,
 * partial iff 0 < used < objects (an empty slab is given back at once), its
 * bitmap has `used` bits set; the per-class counters equal the lists.
 *
 * Callers: kmalloc.c (the kernel heap on PMM frames), the host tests.
 */
#include "slab.h"

#define SLAB_MAGIC  0x42414c53u /* "SLAB" */
#define LARGE_MAGIC 0x4752414cu /* "LARG" */
#define DEAD_MAGIC  0x44414544u /* "DEAD": written when a page goes back */
#define POISON_FREE 0xdb

struct slab_hdr {
    uint32_t magic;
    uint16_t cls;
    uint16_t used;
    struct slab_hdr *prev, *next; /* the class's partial or full list */
    uint64_t pages;               /* large allocations: pages in the run */
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
    unsigned objects = slab_class_objects(c);
    unsigned i = 0;
    for (unsigned w = 0; w < SLAB_MAX_OBJECTS / 64; w++) {
        if (s->bitmap[w] != UINT64_MAX) {
            i = w * 64 + (unsigned)__builtin_ctzll(~s->bitmap[w]);
            break;
        }
    }
    /* A partial slab has a clear bit below `objects`: bits past it are never set. */
    s->bitmap[i / 64] |= 1ull << (i % 64);
    s->used++;
    h->objects[c]++;
    if (s->used == objects) {
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
    size_t size = class_sizes[c];
    size_t i = (off - SLAB_HEADER_SIZE) / size;
    if ((off - SLAB_HEADER_SIZE) % size != 0 || i >= slab_class_objects(c))
        return SLAB_ERR_BAD_POINTER;
    uint64_t bit = 1ull << (i % 64);
    if (!(s->bitmap[i / 64] & bit))
        return SLAB_ERR_DOUBLE_FREE;

    __builtin_memset(p, POISON_FREE, size);
    if (s->used == slab_class_objects(c)) {
        list_remove(&h->full[c], s);
        list_push(&h->partial[c], s);
    }
    s->bitmap[i / 64] &= ~bit;
    s->used--;
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

/* Checks one list of class c; adds its slabs and objects to the totals. */
static bool check_list(const struct slab_heap *h, const struct slab_hdr *head, unsigned c,
                       bool full, uint64_t *slabs, uint64_t *objects, const char **why)
{
    unsigned cap = slab_class_objects(c);
    const struct slab_hdr *prev = NULL;
    for (const struct slab_hdr *s = head; s; prev = s, s = s->next) {
        if (*slabs > h->page_count) {
            *why = "a slab list is longer than the heap's page count (a cycle?)";
            return false;
        }
        if (!page_is_aligned((uintptr_t)s) || !h->pages.owns(h->pages.ctx, s)) {
            *why = "a listed slab is not a page the heap owns";
            return false;
        }
        if (s->magic != SLAB_MAGIC || s->cls != c) {
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
        if (!check_list(h, h->partial[c], c, false, &slabs, &objects, why) ||
            !check_list(h, h->full[c], c, true, &slabs, &objects, why))
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
