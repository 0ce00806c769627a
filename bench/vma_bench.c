/*
 * vma_bench: the address-space half of the kernel's vm_alloc and vm_free,
 * and its search alone, over VMAs placed as the kernel places them.
 *
 * Operations (ns per operation, the median of the rounds):
 *   find          vmm_space_find
 *   alloc_free    vmm_space_alloc, then vmm_space_free of what it got: what
 *                 vm_alloc and vm_free ask of the space (the search, the
 *                 insert at the hole found; the lookup, the erase)
 *   reserve_free  vmm_space_find, vmm_space_reserve at the address found,
 *                 then vmm_space_free: what vm_alloc asked of the space
 *                 before it inserted at the search's result
 * Each pair leaves the space as it found it.
 *
 * The space: n VMAs of 1..16 pages with holes of 1..16 pages between them,
 * from 4 GiB up, reserved in random order, so a VMA's place in memory says
 * nothing about its place in the tree. Requests: 1..4 pages at 4 KiB, in the
 * window from a random VMA's start to the top, so the answer lies anywhere
 * in the tree, not above the last VMA.
 *   hot   8 windows, used in turn: their paths stay in the caches
 *   cold  65,536 windows, each once per pass: the paths come from memory
 *         for a big enough tree
 * A round repeats passes over its set for at least 20 ms.
 *
 * Nodes (bench/nodes.h): "cache", placed as the kernel's VMA cache places
 * them (96-byte slots, where kmalloc's class put them too), and "line", a
 * cache at 64 bytes (128-byte slots, each node's first 64 bytes one line):
 * each layout is built once with each, in the same order, and the two are
 * timed in paired rounds (each first in every other round), so that both
 * see the same load from the rest of the machine. Reported: each one's
 * median, and the median of the rounds' ratios line / cache.
 *
 * Every find's answer is checked against a reference (a sorted array and a
 * scan) before anything is timed; a mismatch ends the program with status 1.
 *
 * Usage: vma_bench [--quick] [--max-n N] [--rounds R]
 *   --quick  n up to 10^4, one short round (the test suite's smoke run)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/page.h>
#include <canopy/rng.h>
#include <vmm/space.h>

#include "nodes.h"
#include "support.h"

#define BASE       (1ull << 32)
#define TOP        ((1ull << 47) - 1)
#define HOT        8
#define COLD       65536
#define MAX_ROUNDS 15

struct range {
    uint64_t start, last;
};

static uint64_t rng_state = 0x7a5e;

static uint64_t rnd(void)
{
    return splitmix64_next(&rng_state);
}

static void *alloc_or_die(size_t bytes)
{
    void *p = malloc(bytes);

    if (!p) {
        fprintf(stderr, "vma_bench: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- the space and the requests ---- */

/* The same layout twice: nodes placed as the kernel's VMAs (cache), and line-aligned (line). */
enum { PLACES = 2 };
static const enum bench_place places[PLACES] = {BENCH_PLACE_CACHE, BENCH_PLACE_LINE};
static struct vmm_space spaces[PLACES];
static const struct vmm_attrs attrs = {.name = "bench", .prot = 3};

static struct vmm_vma *node_alloc(void *ctx)
{
    return bench_nodes_alloc_in(*(const enum bench_place *)ctx, sizeof(struct vmm_vma));
}

static void node_free(void *ctx, struct vmm_vma *v)
{
    bench_nodes_free_in(*(const enum bench_place *)ctx, sizeof(struct vmm_vma), v);
}

/* n ranges in address order, and a random order to reserve them in. */
static struct range *make_layout(size_t n, size_t **order)
{
    struct range *r = alloc_or_die(n * sizeof(*r));
    uint64_t at = BASE;

    *order = alloc_or_die(n * sizeof(**order));
    for (size_t i = 0; i < n; i++) {
        at += (1 + rnd() % 16) * PAGE_SIZE;
        r[i].start = at;
        at += (1 + rnd() % 16) * PAGE_SIZE;
        r[i].last = at - 1;
        (*order)[i] = i;
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rnd() % (i + 1)), t = (*order)[i];

        (*order)[i] = (*order)[j];
        (*order)[j] = t;
    }
    return r;
}

static bool build(struct vmm_space *space, const enum bench_place *where, const struct range *r,
                  const size_t *order, size_t n)
{
    if (vmm_space_init(space, 0, UINT64_MAX, 48,
                       (struct vmm_node_source){
                           .alloc = node_alloc, .free = node_free, .ctx = (void *)where}) != VMM_OK)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct range *x = &r[order[i]];

        if (vmm_space_reserve(space, x->start, x->last - x->start + 1, &attrs, NULL) != VMM_OK)
            return false;
    }
    return true;
}

static void make_requests(const struct range *r, size_t n, struct vmm_alloc_req *q, size_t count)
{
    for (size_t i = 0; i < count; i++)
        q[i] = (struct vmm_alloc_req){.size = (1 + rnd() % 4) * PAGE_SIZE,
                                      .align = PAGE_SIZE,
                                      .min = r[rnd() % n].start,
                                      .last = TOP};
}

/* The reference: the first hole at or above min with room, scanning the sorted ranges. */
static uint64_t ref_find(const struct range *r, size_t n, const struct vmm_alloc_req *q)
{
    size_t lo = 0, hi = n;
    uint64_t from = q->min;

    while (lo < hi) { /* the first range with last >= min */
        size_t mid = lo + (hi - lo) / 2;

        if (r[mid].last < q->min)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < n; i++) {
        if (r[i].start > from && r[i].start - from >= q->size)
            return from;
        if (r[i].last + 1 > from)
            from = r[i].last + 1;
    }
    return from;
}

/* ---- the operations ---- */

enum op { OP_FIND, OP_ALLOC_FREE, OP_RESERVE_FREE, OPS };
static const char *const op_names[OPS] = {"find", "alloc_free", "reserve_free"};

/* One operation; false if the space refused something it must not refuse. */
static inline bool run_one(struct vmm_space *space, enum op op, const struct vmm_alloc_req *q,
                           uint64_t *sink)
{
    uint64_t a = 0;
    struct vmm_vma *v;

    switch (op) {
    case OP_FIND:
        if (vmm_space_find(space, q, &a) != VMM_OK)
            return false;
        break;
    case OP_ALLOC_FREE:
        if (vmm_space_alloc(space, q, &attrs, &v) != VMM_OK)
            return false;
        a = vmm_vma_start(v);
        if (vmm_space_free(space, a, q->size) != VMM_OK)
            return false;
        break;
    case OP_RESERVE_FREE:
        if (vmm_space_find(space, q, &a) != VMM_OK ||
            vmm_space_reserve(space, a, q->size, &attrs, NULL) != VMM_OK ||
            vmm_space_free(space, a, q->size) != VMM_OK)
            return false;
        break;
    default:
        return false;
    }
    *sink += a;
    return true;
}

/* ns per operation over one pass of count requests, repeated passes until min_ns. */
static double round_ns(struct vmm_space *space, enum op op, const struct vmm_alloc_req *q,
                       size_t count, double min_ns)
{
    uint64_t sink = 0, done = 0;
    double t0 = bench_now_ns(), elapsed;

    do {
        for (size_t i = 0; i < count; i++)
            if (!run_one(space, op, &q[i], &sink)) {
                fprintf(stderr, "vma_bench: %s refused request %zu\n", op_names[op], i);
                exit(1);
            }
        done += count;
        elapsed = bench_now_ns() - t0;
    } while (elapsed < min_ns);
    if (sink == 42)
        printf(" "); /* keep the answers alive */
    return elapsed / (double)done;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--quick] [--max-n N] [--rounds R]\n", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {1000, 10000, 100000, 1000000};
    size_t max_n = 100000;
    int rounds = 7;
    bool quick = false;
    double min_ns = 2e7; /* per round: at least 20 ms, so a hot round repeats its 8 windows */

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
            max_n = 10000;
            rounds = 1;
            min_ns = 0;
        } else if (strcmp(argv[i], "--max-n") == 0 && i + 1 < argc) {
            max_n = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
            if (rounds < 1 || rounds > MAX_ROUNDS)
                usage(argv[0]);
        } else {
            usage(argv[0]);
        }
    }

    /* ns per op with each placement (bench/nodes.h), and the median ratio line / cache. */
    printf("%-12s %-5s %8s %10s %10s %6s %8s\n", "op", "temp", "n", "cache", "line", "ratio",
           "visits");
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]) && sizes[si] <= max_n; si++) {
        size_t n = sizes[si], *order, cold = quick ? 4096 : COLD;
        struct range *r = make_layout(n, &order);
        struct vmm_alloc_req *q = alloc_or_die((HOT + cold) * sizeof(*q));
        uint64_t visits[2] = {0, 0};

        make_requests(r, n, q, HOT + cold);
        for (int p = 0; p < PLACES; p++) {
            if (!build(&spaces[p], &places[p], r, order, n)) {
                fprintf(stderr, "vma_bench: building the space failed\n");
                return 1;
            }
            /* Every answer checked, and the visits of a find counted, before timing. */
            for (size_t i = 0; i < HOT + cold; i++) {
                uint64_t a = 0, want = ref_find(r, n, &q[i]);

                if (vmm_space_find(&spaces[p], &q[i], &a) != VMM_OK || a != want) {
                    fprintf(stderr, "vma_bench: find %zu gave %#llx, the reference %#llx\n", i,
                            (unsigned long long)a, (unsigned long long)want);
                    return 1;
                }
                if (p == 0)
                    visits[i >= HOT] += spaces[p].last_visits;
            }
        }
        for (int op = 0; op < OPS; op++) {
            for (int cold_set = 0; cold_set < 2; cold_set++) {
                const struct vmm_alloc_req *set = cold_set ? q + HOT : q;
                size_t count = cold_set ? cold : HOT;
                double per[PLACES][MAX_ROUNDS], ratio[MAX_ROUNDS];

                /* Paired rounds, each placement first in every other one: the same load for both.
                 */
                for (int k = 0; k < rounds; k++) {
                    for (int j = 0; j < PLACES; j++) {
                        int p = (k + j) % PLACES;

                        per[p][k] = round_ns(&spaces[p], (enum op)op, set, count, min_ns);
                    }
                    ratio[k] = per[1][k] / per[0][k];
                }
                double cache_ns = bench_median(per[0], rounds);
                double line_ns = bench_median(per[1], rounds);
                printf("%-12s %-5s %8zu %10.1f %10.1f %6.2f %8.1f\n", op_names[op],
                       cold_set ? "cold" : "hot", n, cache_ns, line_ns, bench_median(ratio, rounds),
                       (double)visits[cold_set] / (double)count);
                fflush(stdout);
            }
        }
        for (int p = 0; p < PLACES; p++) {
            if (vmm_space_count(&spaces[p]) != n) {
                fprintf(stderr, "vma_bench: the pairs changed the space\n");
                return 1;
            }
            vmm_space_clear(&spaces[p]);
        }
        free(q);
        free(r);
        free(order);
    }
    return 0;
}
