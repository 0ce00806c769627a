/*
 * support: the benchmarks' node allocator, clock, medians and target lines
 * (support.h).
 *
 * The allocator is the kernel's own slab code over host pages. Pages come
 * in address order from chunks of 256 MiB advised for transparent huge
 * pages; a slab page given back goes on a free list and is handed out again
 * first, like a frame the PMM gets back.
 */
#define _DEFAULT_SOURCE
#include "support.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "slab.h" /* kernel/mm */

#define CHUNK_BYTES ((size_t)256 << 20) /* pages are carved from chunks this big */
#define CHUNKS      256                 /* at most 64 GiB of nodes */

static struct {
    char *chunk[CHUNKS];
    int chunks;
    size_t used;     /* bytes handed out from the last chunk */
    void *free_page; /* single pages given back, linked through their first word */
} arena;

static struct slab_heap heap;
static bool heap_ready;

static _Noreturn void out_of_memory(void)
{
    fprintf(stderr, "bench: out of memory for tree nodes\n");
    exit(1);
}

/* A fresh chunk, advised for huge pages (advice only: without them the nodes still work). */
static bool chunk_new(void)
{
    void *base;

    if (arena.chunks == CHUNKS)
        return false;
    base = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return false;
    (void)madvise(base, CHUNK_BYTES, MADV_HUGEPAGE);
    arena.chunk[arena.chunks++] = base;
    arena.used = 0;
    return true;
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
    if ((arena.chunks == 0 || count > (CHUNK_BYTES - arena.used) / PAGE_SIZE) && !chunk_new())
        return false;
    *page = arena.chunk[arena.chunks - 1] + arena.used;
    arena.used += count * PAGE_SIZE;
    return true;
}

static void page_free(void *ctx, void *page, uint64_t count)
{
    (void)ctx;
    /* Runs of pages (none of the benchmarks' nodes needs one) are not reused. */
    if (count == 1) {
        *(void **)page = arena.free_page;
        arena.free_page = page;
    }
}

static bool page_owned(void *ctx, const void *page)
{
    (void)ctx;
    for (int i = 0; i < arena.chunks; i++)
        if ((const char *)page >= arena.chunk[i] &&
            (const char *)page < arena.chunk[i] + CHUNK_BYTES)
            return true;
    return false;
}

static void heap_init(void)
{
    slab_init(&heap, (struct slab_pages){
                         .alloc = page_alloc, .free = page_free, .owns = page_owned, .ctx = NULL});
    heap_ready = true;
}

void *bench_node_alloc(size_t size)
{
    void *p;

    if (!heap_ready)
        heap_init();
    p = slab_alloc(&heap, size);
    if (!p)
        out_of_memory();
    return p;
}

void bench_node_free(void *p)
{
    enum slab_status st = slab_free(&heap, p);

    if (st != SLAB_OK) {
        fprintf(stderr, "bench: freeing node %p: %s\n", p, slab_status_str(st));
        exit(1);
    }
}

double bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double bench_median(double *v, int count)
{
    qsort(v, (size_t)count, sizeof(*v), cmp_double);
    return v[count / 2];
}

void bench_target(FILE *out, const char *name, double value, enum bench_bound bound, double limit,
                  enum bench_runs runs)
{
    if (!out)
        return;
    fprintf(out, "{\"target\": \"%s\", \"value\": %.4f, \"%s\": %.4f, \"runs\": \"%s\"}\n", name,
            value, bound == BENCH_AT_MOST ? "at_most" : "at_least", limit,
            runs == BENCH_RUNS_WORST ? "worst" : "median");
}
