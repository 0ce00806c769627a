/*
 * slab_test: host tests of the kernel heap's size-class allocator and its
 * caches (kernel/mm/slab.c) over a page source of aligned host memory that records
 * which pages it lent out, so tests can prove that every page comes back.
 * Prints `N passed, M failed` and exits non-zero on failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>
#include <canopy/rng.h>

#include "../slab.h"

unsigned check_passed, check_failed;

/* ---- the page source: every run it lends, and a budget to make it fail ---- */

#define MAX_RUNS 4096

struct source {
    struct {
        void *page;
        uint64_t count;
    } runs[MAX_RUNS];
    unsigned run_count;
    uint64_t pages_out;
    uint64_t budget; /* pages it may still lend */
};

static bool src_alloc(void *ctx, uint64_t count, void **page)
{
    struct source *s = ctx;
    if (count > s->budget || s->run_count == MAX_RUNS)
        return false;
    void *p = aligned_alloc(PAGE_SIZE, count * PAGE_SIZE);
    if (p == NULL)
        return false;
    memset(p, 0xa5, count * PAGE_SIZE); /* the heap must not rely on zeroed pages */
    s->runs[s->run_count].page = p;
    s->runs[s->run_count].count = count;
    s->run_count++;
    s->budget -= count;
    s->pages_out += count;
    *page = p;
    return true;
}

static int run_index(const struct source *s, const void *page)
{
    for (unsigned i = 0; i < s->run_count; i++)
        if (s->runs[i].page == page)
            return (int)i;
    return -1;
}

static void src_free(void *ctx, void *page, uint64_t count)
{
    struct source *s = ctx;
    int i = run_index(s, page);
    if (i < 0 || s->runs[i].count != count) {
        fprintf(stderr, "page source: %p (%llu pages) was not lent out like that\n", page,
                (unsigned long long)count);
        check_failed++;
        return;
    }
    free(page);
    s->runs[i] = s->runs[--s->run_count];
    s->budget += count;
    s->pages_out -= count;
}

static bool src_owns(void *ctx, const void *page)
{
    return run_index(ctx, page) >= 0;
}

static struct source *source_new(uint64_t budget)
{
    struct source *s = calloc(1, sizeof(*s));
    s->budget = budget;
    return s;
}

static void heap_init(struct slab_heap *h, struct source *s)
{
    slab_init(
        h, (struct slab_pages){.alloc = src_alloc, .free = src_free, .owns = src_owns, .ctx = s});
}

static bool heap_ok(const struct slab_heap *h)
{
    const char *why = NULL;
    bool ok = slab_check(h, &why);
    if (!ok)
        fprintf(stderr, "slab_check: %s\n", why);
    return ok;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_classes_cover_sizes_in_order(void)
{
    CHECK(slab_class_of(0) == SLAB_CLASS_COUNT);
    CHECK(slab_class_of(1) == 0);
    CHECK(slab_class_size(slab_class_of(16)) == 16);
    CHECK(slab_class_size(slab_class_of(17)) == 32);
    CHECK(slab_class_size(slab_class_of(SLAB_MAX_SMALL)) == SLAB_MAX_SMALL);
    CHECK(slab_class_of(SLAB_MAX_SMALL + 1) == SLAB_CLASS_COUNT);
    size_t prev = 0;
    for (unsigned c = 0; c < SLAB_CLASS_COUNT; c++) {
        size_t size = slab_class_size(c);
        CHECK(size > prev && size % SLAB_ALIGN == 0);
        CHECK(SLAB_HEADER_SIZE + slab_class_objects(c) * size <= PAGE_SIZE);
        CHECK(slab_class_objects(c) >= 2 && slab_class_objects(c) <= SLAB_MAX_OBJECTS);
        /* every size between two classes goes to the upper one */
        CHECK(slab_class_of(prev + 1) == c && slab_class_of(size) == c);
        prev = size;
    }
    CHECK(slab_large_pages(PAGE_SIZE - SLAB_HEADER_SIZE) == 1);
    CHECK(slab_large_pages(PAGE_SIZE - SLAB_HEADER_SIZE + 1) == 2);
    CHECK(slab_large_pages(PAGE_SIZE) == 2);
}

static void test_one_slab_holds_exactly_its_objects(void)
{
    struct source *src = source_new(100);
    struct slab_heap h;
    heap_init(&h, src);
    unsigned c = slab_class_of(100);
    unsigned n = slab_class_objects(c);
    void *p[SLAB_MAX_OBJECTS + 1];
    for (unsigned i = 0; i < n; i++) {
        p[i] = slab_alloc(&h, 100);
        CHECK(p[i] != NULL && (uintptr_t)p[i] % SLAB_ALIGN == 0);
        CHECK(slab_usable_size(&h, p[i]) == slab_class_size(c));
    }
    CHECK(src->pages_out == 1 && h.slabs[c] == 1 && h.objects[c] == n);
    for (unsigned i = 1; i < n; i++) /* consecutive objects, no overlap */
        CHECK((char *)p[i] - (char *)p[i - 1] == (ptrdiff_t)slab_class_size(c));
    p[n] = slab_alloc(&h, 100);
    CHECK(p[n] != NULL && src->pages_out == 2);
    CHECK(heap_ok(&h));
    for (unsigned i = 0; i <= n; i++)
        CHECK(slab_free(&h, p[i]) == SLAB_OK);
    CHECK(src->pages_out == 0 && h.page_count == 0);
    CHECK(heap_ok(&h));
    free(src);
}

static void test_freed_slot_is_reused_first(void)
{
    struct source *src = source_new(10);
    struct slab_heap h;
    heap_init(&h, src);
    void *a = slab_alloc(&h, 40), *b = slab_alloc(&h, 40), *c = slab_alloc(&h, 40);
    CHECK(slab_free(&h, b) == SLAB_OK);
    CHECK(slab_alloc(&h, 33) == b); /* the lowest free object of the class */
    CHECK(slab_free(&h, a) == SLAB_OK && slab_free(&h, b) == SLAB_OK &&
          slab_free(&h, c) == SLAB_OK);
    CHECK(src->pages_out == 0);
    free(src);
}

static void test_large_allocations_take_whole_pages(void)
{
    struct source *src = source_new(100);
    struct slab_heap h;
    heap_init(&h, src);
    void *a = slab_alloc(&h, SLAB_MAX_SMALL + 1);
    void *b = slab_alloc(&h, 5 * PAGE_SIZE);
    CHECK(a != NULL && b != NULL);
    CHECK((uintptr_t)a % PAGE_SIZE == SLAB_HEADER_SIZE);
    CHECK(h.large_allocs == 2 && h.large_pages == 1 + 6 && src->pages_out == 7);
    CHECK(slab_usable_size(&h, b) == 6 * PAGE_SIZE - SLAB_HEADER_SIZE);
    memset(b, 0x11, 5 * PAGE_SIZE);
    CHECK(heap_ok(&h));
    CHECK(slab_free(&h, b) == SLAB_OK && slab_free(&h, a) == SLAB_OK);
    CHECK(src->pages_out == 0 && h.large_allocs == 0 && h.page_count == 0);
    free(src);
}

static void test_double_and_bad_frees_are_refused_without_change(void)
{
    struct source *src = source_new(100);
    struct slab_heap h;
    heap_init(&h, src);
    char *a = slab_alloc(&h, 64), *b = slab_alloc(&h, 64);
    char *big = slab_alloc(&h, 3 * PAGE_SIZE);
    static char foreign[2 * PAGE_SIZE];
    char *not_ours = (char *)(uintptr_t)page_up((uintptr_t)foreign) + 64;
    CHECK(slab_free(&h, a) == SLAB_OK);
    uint64_t objects = h.objects[slab_class_of(64)];
    CHECK(slab_free(&h, a) == SLAB_ERR_DOUBLE_FREE);
    CHECK(slab_free(&h, b + 16) == SLAB_ERR_BAD_POINTER);   /* inside an object */
    CHECK(slab_free(&h, b + 1) == SLAB_ERR_BAD_POINTER);    /* misaligned */
    CHECK(slab_free(&h, big + 16) == SLAB_ERR_BAD_POINTER); /* inside a large allocation */
    CHECK(slab_free(&h, not_ours) == SLAB_ERR_BAD_POINTER); /* a page the heap never had */
    CHECK(slab_free(&h, (char *)(uintptr_t)page_down((uintptr_t)b)) == SLAB_ERR_BAD_POINTER);
    CHECK(h.objects[slab_class_of(64)] == objects && heap_ok(&h));
    CHECK(slab_free(&h, big) == SLAB_OK);
    CHECK(slab_free(&h, big) == SLAB_ERR_BAD_POINTER); /* its pages went back */
    CHECK(slab_free(&h, b) == SLAB_OK);
    CHECK(slab_free(&h, b) == SLAB_ERR_BAD_POINTER); /* the slab page went back with b */
    CHECK(slab_free(&h, NULL) == SLAB_OK);
    CHECK(src->pages_out == 0 && heap_ok(&h));
    free(src);
}

static void test_empty_page_source_gives_null_and_no_change(void)
{
    struct source *src = source_new(1);
    struct slab_heap h;
    heap_init(&h, src);
    CHECK(slab_alloc(&h, 0) == NULL);
    CHECK(slab_alloc(&h, 2 * PAGE_SIZE) == NULL); /* needs 3 pages, 1 left */
    CHECK(slab_alloc(&h, SIZE_MAX) == NULL);
    CHECK(h.page_count == 0 && src->pages_out == 0);
    void *a = slab_alloc(&h, 16);
    CHECK(a != NULL);
    CHECK(slab_alloc(&h, 32) == NULL); /* a second class needs a second page */
    CHECK(heap_ok(&h) && h.page_count == 1);
    CHECK(slab_free(&h, a) == SLAB_OK && src->pages_out == 0);
    free(src);
}

/* Random sizes, each allocation filled with its own byte and checked before it is freed. */
static void test_random_churn_keeps_contents_and_returns_every_page(void)
{
    enum { SLOTS = 512, OPS = 200000 };
    struct source *src = source_new(UINT64_MAX);
    struct slab_heap h;
    heap_init(&h, src);
    static struct {
        unsigned char *p;
        size_t size;
        unsigned char tag;
    } slot[SLOTS];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    unsigned corrupt = 0, bad_free = 0, oom = 0, check_fail = 0;
    for (unsigned op = 0; op < OPS; op++) {
        xorshift64_next(&x);
        unsigned i = (unsigned)(x % SLOTS);
        if (slot[i].p) {
            for (size_t k = 0; k < slot[i].size; k++)
                corrupt += slot[i].p[k] != slot[i].tag;
            bad_free += slab_free(&h, slot[i].p) != SLAB_OK;
            slot[i].p = NULL;
        } else {
            size_t size = (x >> 20) % 8 == 0 ? 1 + (x >> 24) % 20000 : 1 + (x >> 24) % 600;
            slot[i].p = slab_alloc(&h, size);
            oom += slot[i].p == NULL;
            slot[i].size = size;
            slot[i].tag = (unsigned char)(op | 1);
            if (slot[i].p)
                memset(slot[i].p, slot[i].tag, size);
        }
        if (op % 4096 == 0)
            check_fail += !heap_ok(&h);
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (slot[i].p) {
            for (size_t k = 0; k < slot[i].size; k++)
                corrupt += slot[i].p[k] != slot[i].tag;
            bad_free += slab_free(&h, slot[i].p) != SLAB_OK;
        }
    CHECK(corrupt == 0 && bad_free == 0 && oom == 0 && check_fail == 0);
    CHECK(src->pages_out == 0 && h.page_count == 0 && heap_ok(&h));
    free(src);
}

/* ---- caches ---- */

static bool cache_init(struct slab_cache *c, struct source *s, size_t size)
{
    return slab_cache_init(
        c, "test", size, SLAB_CACHE_ALIGN,
        (struct slab_pages){.alloc = src_alloc, .free = src_free, .owns = src_owns, .ctx = s});
}

static bool cache_ok(const struct slab_cache *c)
{
    const char *why = NULL;
    bool ok = slab_cache_check(c, &why);
    if (!ok)
        fprintf(stderr, "slab_cache_check: %s\n", why);
    return ok;
}

static void test_cache_sizes_round_to_the_alignment(void)
{
    struct source *src = source_new(10);
    struct slab_cache c;
    CHECK(!cache_init(&c, src, 0));
    CHECK(!cache_init(&c, src, 1985)); /* 2048 bytes: one per page */
    CHECK(!cache_init(&c, src, SIZE_MAX));
    CHECK(cache_init(&c, src, 1984) && c.size == 1984 && c.per_slab == 2);
    CHECK(cache_init(&c, src, 1) && c.size == 64 && c.per_slab == 63);
    CHECK(cache_init(&c, src, 96) && c.size == 128 && c.per_slab == 31);
    CHECK(cache_init(&c, src, 128) && c.size == 128 && c.per_slab == 31);
    /* Other alignments: 16 to 64, powers of two. */
    struct slab_pages pages = {.alloc = src_alloc, .free = src_free, .owns = src_owns, .ctx = src};
    CHECK(slab_cache_init(&c, "t", 96, 32, pages) && c.size == 96 && c.per_slab == 42 &&
          c.colours == 1);
    CHECK(slab_cache_init(&c, "t", 80, 16, pages) && c.size == 80 && c.per_slab == 50);
    CHECK(slab_cache_init(&c, "t", 2016, 32, pages) && c.per_slab == 2);
    CHECK(!slab_cache_init(&c, "t", 96, 8, pages));
    CHECK(!slab_cache_init(&c, "t", 96, 128, pages));
    CHECK(!slab_cache_init(&c, "t", 96, 48, pages));
    CHECK(slab_cache_init(&c, "t", 80, 16, pages) && cache_ok(&c) && src->pages_out == 0);
    free(src);
}

/* Every object starts on a 64-byte line; a slab holds exactly per_slab of them. */
static void test_cache_objects_start_on_lines_and_fill_a_slab(void)
{
    struct source *src = source_new(10);
    struct slab_cache c;
    CHECK(cache_init(&c, src, 80));
    unsigned n = c.per_slab;
    char *p[64];
    for (unsigned i = 0; i <= n; i++) {
        p[i] = slab_cache_alloc(&c);
        CHECK(p[i] != NULL && (uintptr_t)p[i] % SLAB_CACHE_ALIGN == 0);
    }
    for (unsigned i = 1; i < n; i++)
        CHECK(p[i] - p[i - 1] == (ptrdiff_t)c.size);
    CHECK(page_down((uintptr_t)p[n - 1]) == page_down((uintptr_t)p[0]));
    CHECK(page_down((uintptr_t)p[n]) != page_down((uintptr_t)p[0])); /* the slab was full */
    CHECK(c.slabs == 2 && c.objects == n + 1 && src->pages_out == 2 && cache_ok(&c));
    memset(p[3], 0x5a, c.size);
    CHECK(slab_cache_free(&c, p[3]) == SLAB_OK);
    CHECK(slab_cache_alloc(&c) == p[3]); /* the lowest free object of the newest partial slab */
    for (unsigned i = 0; i <= n; i++)
        CHECK(slab_cache_free(&c, p[i]) == SLAB_OK);
    CHECK(c.slabs == 0 && c.objects == 0 && src->pages_out == 0 && cache_ok(&c));
    free(src);
}

/*
 * Where objects leave lines over, successive slabs start one line later in
 * turn (their colour), so the objects' first lines are odd lines of one
 * slab and even lines of the next; the unused line is no object.
 */
static void test_cache_slabs_take_colours_in_turn(void)
{
    struct source *src = source_new(10);
    struct slab_cache c;
    CHECK(cache_init(&c, src, 64) && c.colours == 1); /* 63 lines of objects: none left */
    CHECK(cache_init(&c, src, 1984) && c.colours == 2);
    CHECK(cache_init(&c, src, 96) && c.colours == 2 && c.per_slab == 31);
    char *first[3];
    char *all[3 * 31];
    for (unsigned k = 0; k < 3 * 31; k++) {
        all[k] = slab_cache_alloc(&c);
        CHECK(all[k] != NULL);
        if (k % 31 == 0)
            first[k / 31] = all[k];
    }
    CHECK(c.slabs == 3 && cache_ok(&c));
    CHECK((uintptr_t)first[0] % PAGE_SIZE == SLAB_HEADER_SIZE);
    CHECK((uintptr_t)first[1] % PAGE_SIZE == SLAB_HEADER_SIZE + SLAB_CACHE_ALIGN);
    CHECK((uintptr_t)first[2] % PAGE_SIZE == SLAB_HEADER_SIZE);
    /* The last object of a colour-1 slab ends at the page's end. */
    CHECK((uintptr_t)all[2 * 31 - 1] % PAGE_SIZE + c.size == PAGE_SIZE);
    /* Colour 1's unused line, and a colour-0 object's offset in it, are no objects there. */
    CHECK(slab_cache_free(&c, first[1] - SLAB_CACHE_ALIGN) == SLAB_ERR_BAD_POINTER);
    CHECK(slab_cache_free(&c, first[1] + SLAB_CACHE_ALIGN) == SLAB_ERR_BAD_POINTER);
    CHECK(c.objects == 3 * 31 && cache_ok(&c));
    for (unsigned k = 0; k < 3 * 31; k++)
        CHECK(slab_cache_free(&c, all[k]) == SLAB_OK);
    CHECK(c.slabs == 0 && src->pages_out == 0 && cache_ok(&c));
    free(src);
}

/* A cache at 32 bytes packs 96-byte objects as the heap's class does, apart from it. */
static void test_cache_at_32_packs_objects(void)
{
    struct source *src = source_new(10);
    struct slab_cache c;
    struct slab_pages pages = {.alloc = src_alloc, .free = src_free, .owns = src_owns, .ctx = src};
    CHECK(slab_cache_init(&c, "dense", 96, 32, pages));
    char *p[42];
    for (unsigned i = 0; i < 42; i++) {
        p[i] = slab_cache_alloc(&c);
        CHECK(p[i] != NULL && (uintptr_t)p[i] % 32 == 0);
        CHECK((uintptr_t)p[i] % PAGE_SIZE == SLAB_HEADER_SIZE + 96 * i);
    }
    CHECK(c.slabs == 1 && cache_ok(&c));
    CHECK(slab_cache_free(&c, p[1] + 32) == SLAB_ERR_BAD_POINTER); /* aligned, inside an object */
    CHECK(slab_cache_free(&c, p[1] + 16) == SLAB_ERR_BAD_POINTER);
    for (unsigned i = 0; i < 42; i++)
        CHECK(slab_cache_free(&c, p[i]) == SLAB_OK);
    CHECK(src->pages_out == 0 && cache_ok(&c));
    free(src);
}

/* A cache takes back only its own objects; the heap takes none of them. */
static void test_cache_refuses_what_is_not_its_own(void)
{
    struct source *src = source_new(100);
    struct slab_heap h;
    struct slab_cache c, other;
    heap_init(&h, src);
    CHECK(cache_init(&c, src, 96) && cache_init(&other, src, 96));
    char *a = slab_cache_alloc(&c), *b = slab_cache_alloc(&c);
    char *o = slab_cache_alloc(&other);
    char *k = slab_alloc(&h, 128); /* a heap object of the same size, line-aligned */
    CHECK(a && b && o && k && (uintptr_t)k % SLAB_CACHE_ALIGN == 0);
    CHECK(slab_cache_free(&c, a) == SLAB_OK);
    CHECK(slab_cache_free(&c, a) == SLAB_ERR_DOUBLE_FREE);
    CHECK(slab_cache_free(&c, b + 64) == SLAB_ERR_BAD_POINTER); /* inside an object */
    CHECK(slab_cache_free(&c, b + 16) == SLAB_ERR_BAD_POINTER); /* misaligned */
    CHECK(slab_cache_free(&c, o) == SLAB_ERR_BAD_POINTER);      /* another cache's */
    CHECK(slab_cache_free(&c, k) == SLAB_ERR_BAD_POINTER);      /* the heap's */
    CHECK(slab_free(&h, b) == SLAB_ERR_BAD_POINTER);            /* a cache's, to the heap */
    CHECK(slab_cache_free(&c, (char *)(uintptr_t)page_down((uintptr_t)b)) == SLAB_ERR_BAD_POINTER);
    CHECK(c.objects == 1 && other.objects == 1 && cache_ok(&c) && cache_ok(&other) && heap_ok(&h));
    CHECK(slab_cache_free(&c, b) == SLAB_OK);
    CHECK(slab_cache_free(&c, b) == SLAB_ERR_BAD_POINTER); /* the slab page went back with b */
    CHECK(slab_cache_free(&c, NULL) == SLAB_OK);
    CHECK(slab_cache_free(&other, o) == SLAB_OK && slab_free(&h, k) == SLAB_OK);
    CHECK(src->pages_out == 0);
    free(src);
}

static void test_cache_empty_page_source_gives_null_and_no_change(void)
{
    struct source *src = source_new(1);
    struct slab_cache c;
    CHECK(cache_init(&c, src, 1984));
    void *a = slab_cache_alloc(&c), *b = slab_cache_alloc(&c);
    CHECK(a != NULL && b != NULL);
    CHECK(slab_cache_alloc(&c) == NULL);
    CHECK(c.slabs == 1 && c.objects == 2 && src->pages_out == 1 && cache_ok(&c));
    CHECK(slab_cache_free(&c, a) == SLAB_OK && slab_cache_free(&c, b) == SLAB_OK);
    CHECK(src->pages_out == 0);
    free(src);
}

/* Random churn of one cache, each object filled with its own byte and checked before it goes. */
static void test_cache_churn_keeps_contents_and_returns_every_page(void)
{
    enum { SLOTS = 700, OPS = 200000 };
    struct source *src = source_new(UINT64_MAX);
    struct slab_cache c;
    CHECK(cache_init(&c, src, 96));
    static struct {
        unsigned char *p;
        unsigned char tag;
    } slot[SLOTS];
    uint64_t x = 0x2545f4914f6cdd1dull;
    unsigned corrupt = 0, bad_free = 0, oom = 0, misaligned = 0, check_fail = 0;
    for (unsigned op = 0; op < OPS; op++) {
        xorshift64_next(&x);
        unsigned i = (unsigned)(x % SLOTS);
        if (slot[i].p) {
            for (size_t k = 0; k < 96; k++)
                corrupt += slot[i].p[k] != slot[i].tag;
            bad_free += slab_cache_free(&c, slot[i].p) != SLAB_OK;
            slot[i].p = NULL;
        } else {
            slot[i].p = slab_cache_alloc(&c);
            oom += slot[i].p == NULL;
            slot[i].tag = (unsigned char)(op | 1);
            if (slot[i].p) {
                misaligned += (uintptr_t)slot[i].p % SLAB_CACHE_ALIGN != 0;
                memset(slot[i].p, slot[i].tag, 96);
            }
        }
        if (op % 4096 == 0)
            check_fail += !cache_ok(&c);
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (slot[i].p)
            bad_free += slab_cache_free(&c, slot[i].p) != SLAB_OK;
    CHECK(corrupt == 0 && bad_free == 0 && oom == 0 && misaligned == 0 && check_fail == 0);
    CHECK(src->pages_out == 0 && c.slabs == 0 && cache_ok(&c));
    free(src);
}

int main(void)
{
    test_classes_cover_sizes_in_order();
    test_one_slab_holds_exactly_its_objects();
    test_freed_slot_is_reused_first();
    test_large_allocations_take_whole_pages();
    test_double_and_bad_frees_are_refused_without_change();
    test_empty_page_source_gives_null_and_no_change();
    test_random_churn_keeps_contents_and_returns_every_page();
    test_cache_sizes_round_to_the_alignment();
    test_cache_objects_start_on_lines_and_fill_a_slab();
    test_cache_slabs_take_colours_in_turn();
    test_cache_at_32_packs_objects();
    test_cache_refuses_what_is_not_its_own();
    test_cache_empty_page_source_gives_null_and_no_change();
    test_cache_churn_keeps_contents_and_returns_every_page();
    return check_finish();
}
