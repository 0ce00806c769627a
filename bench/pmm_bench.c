/*
 * pmm_bench: the PMM's hot paths on the host, over simulated physical memory.
 *
 * Measures, as medians over many short repeats (single thread), in the
 * thread's CPU time (CLOCK_THREAD_CPUTIME_ID, as the other benchmarks): time
 * the core spends on other processes of a busy machine is not charged here,
 * though what they do to the caches still is:
 *   pmm_order0_pair   pmm_alloc(0) + pmm_free, back to back
 *   pmm_order9_pair   the same with 2 MiB blocks
 *   pmm_churn         4 GiB of frames, a random half held; each step frees a
 *                     random held frame and allocates one (ns per step)
 *   pmm_mixed         random orders 0..4 held in a ring of 4096 blocks
 *   pmm_init          pmm_init from a 64 GiB map (q35-like: 2 GiB low, the
 *                     rest at 4 GiB) over a lazily touched buffer
 * and the metadata the PMM keeps per tracked frame.
 *
 * The simulated memory asks for transparent huge pages: the kernel reaches
 * RAM through an HHDM mapped with 1 GiB (or 2 MiB) pages, so 4 KiB TLB
 * misses on the host would measure the host, not the allocator.
 *
 * Output: one JSON object per line ({"bench", "impl", "n", "ns_per_op"}),
 * the format scripts/bench.sh collects. `--quick` runs every measurement
 * briefly, for the test suite.
 */
#define _DEFAULT_SOURCE
#include <canopy/page.h>
#include <canopy/rng.h>
#include <pmm/pmm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static int quick;

/* The thread's CPU time in ns. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

static uint64_t rng_state = 0x853c49e6748fea9bull;
static inline uint64_t rng(void)
{
    return xorshift64_next(&rng_state);
}

static void report(const char *bench, uint64_t n, double ns)
{
    printf("{\"bench\": \"%s\", \"impl\": \"canopy\", \"n\": %llu, \"ns_per_op\": %.2f}\n", bench,
           (unsigned long long)n, ns);
}

static void die(const char *what, enum pmm_status st)
{
    fprintf(stderr, "pmm_bench: %s: %s\n", what, pmm_status_str(st));
    exit(1);
}

/* Lazily touched memory standing in for [0, size) physical. */
static unsigned char *sim_map(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    madvise(p, size, MADV_HUGEPAGE);
    return p;
}

/* A PMM over [1 MiB, ram_end) of conventional memory. */
static void build(struct pmm *p, unsigned char *mem, uint64_t ram_end)
{
    struct canopy_mem_range r = {PMM_LOW_RESERVED, (ram_end - PMM_LOW_RESERVED) / PAGE_SIZE,
                                 CANOPY_MEM_USABLE, 7, 0};
    enum pmm_status st = pmm_init(p, &r, 1, (uint64_t)(uintptr_t)mem);
    if (st != PMM_OK)
        die("pmm_init", st);
}

static void bench_pair(struct pmm *p, unsigned order, const char *name)
{
    int reps = quick ? 3 : 31;
    uint64_t iters = quick ? 10000 : 200000;
    double v[31];
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        for (uint64_t i = 0; i < iters; i++) {
            uint64_t a;
            if (pmm_alloc(p, order, CANOPY_OWNER_TEST, &a) != PMM_OK ||
                pmm_free(p, a, order) != PMM_OK)
                die(name, PMM_ERR_CORRUPT);
        }
        v[r] = (now_ns() - t0) / (double)iters;
    }
    report(name, iters, median(v, reps));
}

static void bench_churn(struct pmm *p)
{
    uint64_t total = p->free_frames;
    uint64_t *held = malloc(total * sizeof(*held));
    uint64_t n = 0, a;
    while (pmm_alloc(p, 0, CANOPY_OWNER_TEST, &a) == PMM_OK)
        held[n++] = a;
    /* Free a random half (Fisher-Yates on the first half's choice). */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t j = i + rng() % (n - i);
        uint64_t t = held[i];
        held[i] = held[j];
        held[j] = t;
    }
    uint64_t keep = n / 2;
    for (uint64_t i = keep; i < n; i++)
        if (pmm_free(p, held[i], 0) != PMM_OK)
            die("churn setup", PMM_ERR_CORRUPT);
    int reps = quick ? 3 : 31;
    uint64_t steps = quick ? 10000 : 100000;
    double v[31];
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        for (uint64_t s = 0; s < steps; s++) {
            uint64_t i = rng() % keep;
            if (pmm_free(p, held[i], 0) != PMM_OK ||
                pmm_alloc(p, 0, CANOPY_OWNER_TEST, &held[i]) != PMM_OK)
                die("churn", PMM_ERR_CORRUPT);
        }
        v[r] = (now_ns() - t0) / (double)steps;
    }
    report("pmm_churn", total, median(v, reps));
    for (uint64_t i = 0; i < keep; i++)
        if (pmm_free(p, held[i], 0) != PMM_OK)
            die("churn teardown", PMM_ERR_CORRUPT);
    free(held);
}

static void bench_mixed(struct pmm *p)
{
    enum { RING = 4096 };
    static uint64_t ring[RING];
    static unsigned orders[RING];
    for (int i = 0; i < RING; i++) {
        orders[i] = (unsigned)(rng() % 5);
        if (pmm_alloc(p, orders[i], CANOPY_OWNER_TEST, &ring[i]) != PMM_OK)
            die("mixed setup", PMM_ERR_NOMEM);
    }
    int reps = quick ? 3 : 31;
    uint64_t steps = quick ? 10000 : 100000;
    double v[31];
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        for (uint64_t s = 0; s < steps; s++) {
            unsigned i = (unsigned)(rng() % RING);
            if (pmm_free(p, ring[i], orders[i]) != PMM_OK)
                die("mixed free", PMM_ERR_CORRUPT);
            orders[i] = (unsigned)(rng() % 5);
            if (pmm_alloc(p, orders[i], CANOPY_OWNER_TEST, &ring[i]) != PMM_OK)
                die("mixed alloc", PMM_ERR_NOMEM);
        }
        v[r] = (now_ns() - t0) / (double)steps;
    }
    report("pmm_mixed", RING, median(v, reps));
    for (int i = 0; i < RING; i++)
        if (pmm_free(p, ring[i], orders[i]) != PMM_OK)
            die("mixed teardown", PMM_ERR_CORRUPT);
}

static void bench_init(void)
{
    uint64_t ram = quick ? 3 * GiB : 64 * GiB;
    uint64_t top = ram + 2 * GiB; /* 2 GiB low, the rest from 4 GiB up */
    unsigned char *mem = sim_map(top);
    struct canopy_mem_range r[3] = {
        {PMM_LOW_RESERVED, (2 * GiB - PMM_LOW_RESERVED) / PAGE_SIZE, CANOPY_MEM_USABLE, 7, 0},
        {2 * GiB, GiB / PAGE_SIZE, CANOPY_MEM_RESERVED, 0, 0},
        {4 * GiB, (top - 4 * GiB) / PAGE_SIZE, CANOPY_MEM_USABLE, 7, 0},
    };
    int reps = quick ? 2 : 7;
    double v[7];
    struct pmm p;
    for (int i = 0; i < reps; i++) {
        double t0 = now_ns();
        enum pmm_status st = pmm_init(&p, r, 3, (uint64_t)(uintptr_t)mem);
        v[i] = now_ns() - t0;
        if (st != PMM_OK)
            die("pmm_init 64 GiB", st);
    }
    report("pmm_init", p.frame_count, median(v, reps));
    /*
     * What grows with memory is the state array, one byte per tracked frame;
     * struct pmm is the same size for any amount of memory. Both are
     * reported, and the total over the frames too.
     */
    printf("{\"bench\": \"pmm_metadata\", \"impl\": \"canopy\", \"n\": %llu, "
           "\"bytes_per_frame\": %.4f, \"fixed_bytes\": %zu, \"total_bytes_per_frame\": %.6f}\n",
           (unsigned long long)p.frame_count, (double)p.state_bytes / (double)p.frame_count,
           sizeof(struct pmm),
           (double)(p.state_bytes + sizeof(struct pmm)) / (double)p.frame_count);
    char msg[160];
    if (pmm_check(&p, msg, sizeof(msg)) != PMM_OK) {
        fprintf(stderr, "pmm_bench: %s\n", msg);
        exit(1);
    }
    munmap(mem, top);
}

int main(int argc, char **argv)
{
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    uint64_t ram_end = quick ? 256 * MiB : 4 * GiB; /* --quick: touch little memory */
    unsigned char *mem = sim_map(ram_end);
    struct pmm p;
    build(&p, mem, ram_end);

    bench_pair(&p, 0, "pmm_order0_pair");
    bench_pair(&p, 9, "pmm_order9_pair");
    /* The same once one frame is held: its buddy then stays on the order-0 list. */
    uint64_t keep0, keep9;
    if (pmm_alloc(&p, 0, CANOPY_OWNER_TEST, &keep0) != PMM_OK ||
        pmm_alloc(&p, 9, CANOPY_OWNER_TEST, &keep9) != PMM_OK)
        die("keep", PMM_ERR_NOMEM);
    bench_pair(&p, 0, "pmm_order0_pair_warm");
    bench_pair(&p, 9, "pmm_order9_pair_warm");
    if (pmm_free(&p, keep0, 0) != PMM_OK || pmm_free(&p, keep9, 9) != PMM_OK)
        die("keep", PMM_ERR_CORRUPT);
    bench_mixed(&p);
    bench_churn(&p);
    char msg[160];
    if (pmm_check(&p, msg, sizeof(msg)) != PMM_OK) {
        fprintf(stderr, "pmm_bench: %s\n", msg);
        return 1;
    }
    munmap(mem, ram_end);
    bench_init();
    return 0;
}
