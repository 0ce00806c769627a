/*
 * pmm_bench: the PMM's paths on the host, over simulated physical memory.
 *
 * Measures, as medians over many short repeats, in the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID, as the other benchmarks): time the core spends on
 * other processes of a busy machine is not charged here, though what they do
 * to the caches still is. Every call takes the PMM's lock where its path does;
 * each line's "path" says which code it exercises:
 *   pmm_order0_pair           alloc(0) + free back to back on CPU 0: the
 *                             per-CPU cache, no lock, no split, no merge
 *   pmm_order0_pair_defeated  CPU 0 allocates 16 times as many frames as its
 *                             cache holds (1024), then frees them in a random
 *                             order: at most 1/16 of them can wait in the
 *                             cache, the rest are split off and merged back
 *                             by the buddy allocator under the lock (taken
 *                             once per batch of 32 frames)
 *   pmm_order0_pair_defeated_cold  the same with 1024 times the cache (65536
 *                             frames, 256 MiB): the free blocks' links, which
 *                             every merge reads and writes, are mostly
 *                             beyond the CPU's caches
 *   pmm_order9_pair           alloc(9) + free when the only free blocks are
 *                             1 GiB: 9 splits and 9 merges per pair, lock
 *   pmm_split_1g_pair         alloc(0) + free with no cache (PMM_NO_CPU) when
 *                             the only free blocks are 1 GiB: 18 splits and
 *                             18 merges per pair, lock
 *   pmm_mixed                 random orders 0..4 held in a ring of 4096 blocks
 *   pmm_churn                 4 GiB of frames, a random half held; each step
 *                             frees a random held frame and allocates one: the
 *                             free pushes it on CPU 0's cache, the allocation
 *                             pops the same frame (the cache path)
 *   pmm_smp_pair              2 threads, each its own CPU index: order-0
 *                             pairs through each thread's cache
 *   pmm_smp_pair_defeated     2 threads, each as pmm_order0_pair_defeated
 *                             (1024 frames each): both contend for the lock
 *   pmm_init                  pmm_init from a 64 GiB map (q35-like: 2 GiB low,
 *                             the rest at 4 GiB) over a lazily touched buffer
 * and the metadata per usable frame (the state region plus struct pmm over
 * the frames the map calls usable or reclaimable): on that q35-like map, and
 * on a sparse one (RAM at 0-2 GiB and at 64-66 GiB).
 *
 * The simulated memory asks for transparent huge pages: the kernel reaches
 * RAM through an HHDM mapped with 1 GiB (or 2 MiB) pages, so 4 KiB TLB
 * misses on the host would measure the host, not the allocator.
 *
 * Output: one JSON object per line ({"bench", "impl", "n", "ns_per_op",
 * "path"}), the format scripts/bench.sh collects. `--quick` runs every
 * measurement briefly, for the test suite.
 */
#define _DEFAULT_SOURCE
#include <canopy/page.h>
#include <canopy/rng.h>
#include <pmm/pmm.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

/*
 * Frames per round of the defeated-cache benchmarks, as multiples of what a
 * CPU's cache holds (ratios to the cache, not sizes picked for this
 * machine's caches): 16 times, so at most 1/16 of the frees can be absorbed,
 * and 1024 times, so the frames' own memory is far larger than any CPU cache.
 */
#define DEFEAT_FRAMES      (16u * PMM_CACHE_FRAMES)
#define DEFEAT_FRAMES_COLD (1024u * PMM_CACHE_FRAMES)

static int quick;
static uint64_t defeat_cold_frames = DEFEAT_FRAMES_COLD; /* --quick: 64 times the cache */

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

/* One measurement; path says which code it exercises. */
static void report(const char *bench, uint64_t n, double ns, const char *path)
{
    printf("{\"bench\": \"%s\", \"impl\": \"canopy\", \"n\": %llu, \"ns_per_op\": %.2f, "
           "\"path\": \"%s\"}\n",
           bench, (unsigned long long)n, ns, path);
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

static void check_or_die(const struct pmm *p, const char *when)
{
    char msg[160];
    if (pmm_check(p, msg, sizeof(msg)) != PMM_OK) {
        fprintf(stderr, "pmm_bench: %s: %s\n", when, msg);
        exit(1);
    }
}

/* alloc(order) + free back to back on CPU `cpu` (PMM_NO_CPU: no cache). */
static void bench_pair(struct pmm *p, unsigned cpu, unsigned order, const char *name,
                       const char *path)
{
    int reps = quick ? 3 : 31;
    uint64_t iters = quick ? 10000 : 200000;
    double v[31];
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        for (uint64_t i = 0; i < iters; i++) {
            uint64_t a;
            if (pmm_cpu_alloc(p, cpu, order, CANOPY_OWNER_TEST, &a) != PMM_OK ||
                pmm_cpu_free(p, cpu, a, order) != PMM_OK)
                die(name, PMM_ERR_CORRUPT);
        }
        v[r] = (now_ns() - t0) / (double)iters;
    }
    report(name, iters, median(v, reps), path);
}

/*
 * One round of the defeated cache on CPU `cpu`: n frames allocated (timed),
 * shuffled (not timed), freed (timed). Returns ns per alloc+free pair.
 */
static double defeat_round(struct pmm *p, unsigned cpu, uint64_t *held, uint64_t n, uint64_t *rs)
{
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (pmm_cpu_alloc(p, cpu, 0, CANOPY_OWNER_TEST, &held[i]) != PMM_OK)
            die("defeated alloc", PMM_ERR_NOMEM);
    double t_alloc = now_ns() - t0;
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = xorshift64_next(rs) % (i + 1), t = held[i];
        held[i] = held[j];
        held[j] = t;
    }
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (pmm_cpu_free(p, cpu, held[i], 0) != PMM_OK)
            die("defeated free", PMM_ERR_CORRUPT);
    return (t_alloc + now_ns() - t0) / (double)n;
}

static void bench_defeated(struct pmm *p, uint64_t n, const char *name)
{
    int reps = quick ? 3 : 15;
    uint64_t *held = malloc(n * sizeof(*held)), rs = 0x9e3779b97f4a7c15ull;
    double v[15];
    defeat_round(p, 0, held, n, &rs); /* touches every frame once, outside the timing */
    for (int r = 0; r < reps; r++)
        v[r] = defeat_round(p, 0, held, n, &rs);
    report(name, n, median(v, reps),
           "buddy split and merge under the lock, batches of 32 through the per-CPU cache");
    free(held);
    if (pmm_drain(p) > PMM_CACHE_FRAMES)
        die("defeated: more cached than a cache holds", PMM_ERR_CORRUPT);
    check_or_die(p, "after the defeated cache");
}

/*
 * Takes every free block smaller than 1 GiB (no cache) into held[] and
 * returns how many: from then on an allocation must split a 1 GiB block.
 */
static uint64_t pin_small_blocks(struct pmm *p, uint64_t *held, unsigned *orders, uint64_t cap)
{
    uint64_t n = 0;
    pmm_drain(p);
    while (p->free_orders & ((1ull << PMM_MAX_ORDER) - 1)) {
        unsigned o = (unsigned)__builtin_ctzll(p->free_orders);
        if (n == cap || pmm_cpu_alloc(p, PMM_NO_CPU, o, CANOPY_OWNER_TEST, &held[n]) != PMM_OK)
            die("pinning the small blocks", PMM_ERR_NOMEM);
        orders[n++] = o;
    }
    return n;
}

/* Over [1 MiB, 3 GiB): one whole 1 GiB block at [1 GiB, 2 GiB) once the rest is pinned. */
static void bench_splits(void)
{
    enum { CAP = 256 };
    uint64_t held[CAP];
    unsigned orders[CAP];
    unsigned char *mem = sim_map(3 * GiB);
    struct pmm pmm, *p = &pmm;
    build(p, mem, 3 * GiB);
    uint64_t n = pin_small_blocks(p, held, orders, CAP);
    if (p->free_orders != 1ull << PMM_MAX_ORDER)
        die("no 1 GiB block free", PMM_ERR_NOMEM);
    bench_pair(p, 0, 9, "pmm_order9_pair", "9 splits of a 1 GiB block and 9 merges, lock");
    bench_pair(p, PMM_NO_CPU, 0, "pmm_split_1g_pair",
               "18 splits of a 1 GiB block and 18 merges, no cache, lock");
    /* Every pair merged back: still nothing but 1 GiB blocks, so every pair split. */
    if (p->free_orders != 1ull << PMM_MAX_ORDER)
        die("a pair left a block behind", PMM_ERR_CORRUPT);
    for (uint64_t i = 0; i < n; i++)
        if (pmm_cpu_free(p, PMM_NO_CPU, held[i], orders[i]) != PMM_OK)
            die("unpinning", PMM_ERR_CORRUPT);
    check_or_die(p, "after the splits");
    munmap(mem, 3 * GiB);
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
    report("pmm_churn", total, median(v, reps),
           "per-CPU cache: the free pushes a random frame, the allocation pops it back");
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
    report("pmm_mixed", RING, median(v, reps),
           "order 0 through the per-CPU cache, orders 1-4 split and merged under the lock");
    for (int i = 0; i < RING; i++)
        if (pmm_free(p, ring[i], orders[i]) != PMM_OK)
            die("mixed teardown", PMM_ERR_CORRUPT);
}

/* ---- two threads ------------------------------------------------------- */

struct worker {
    pthread_t thread;
    struct pmm *p;
    unsigned cpu;
    int defeated;
    pthread_barrier_t *start;
    double ns; /* median ns per pair over the rounds */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int reps = quick ? 3 : 15;
    double v[15];
    uint64_t rs = 0x2545f4914f6cdd1dull + w->cpu, n = DEFEAT_FRAMES;
    uint64_t *held = w->defeated ? malloc(n * sizeof(*held)) : NULL;
    uint64_t iters = quick ? 10000 : 200000;
    pthread_barrier_wait(w->start);
    for (int r = 0; r < reps; r++) {
        if (w->defeated) {
            v[r] = defeat_round(w->p, w->cpu, held, n, &rs);
            continue;
        }
        double t0 = now_ns();
        for (uint64_t i = 0; i < iters; i++) {
            uint64_t a;
            if (pmm_cpu_alloc(w->p, w->cpu, 0, CANOPY_OWNER_TEST, &a) != PMM_OK ||
                pmm_cpu_free(w->p, w->cpu, a, 0) != PMM_OK)
                die("smp pair", PMM_ERR_CORRUPT);
        }
        v[r] = (now_ns() - t0) / (double)iters;
    }
    w->ns = median(v, reps);
    free(held);
    return NULL;
}

/*
 * Two threads on CPU indices 0 and 1 at once; reports the slower thread's
 * median. Afterwards the PMM must check out with every frame back.
 */
static void bench_two_threads(struct pmm *p, int defeated)
{
    struct worker w[2];
    pthread_barrier_t start;
    uint64_t free_before = p->free_frames;
    pthread_barrier_init(&start, NULL, 2);
    for (unsigned i = 0; i < 2; i++) {
        w[i] = (struct worker){.p = p, .cpu = i, .defeated = defeated, .start = &start};
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
            die("pthread_create", PMM_ERR_INVALID);
    }
    for (unsigned i = 0; i < 2; i++)
        pthread_join(w[i].thread, NULL);
    pthread_barrier_destroy(&start);
    pmm_drain(p);
    check_or_die(p, "after two threads");
    if (p->free_frames != free_before)
        die("two threads lost frames", PMM_ERR_CORRUPT);
    double ns = w[0].ns > w[1].ns ? w[0].ns : w[1].ns;
    if (defeated)
        report("pmm_smp_pair_defeated", DEFEAT_FRAMES, ns,
               "2 threads: buddy split and merge, both contending for the lock");
    else
        report("pmm_smp_pair", quick ? 10000 : 200000, ns,
               "2 threads: each its own per-CPU cache, no lock");
}

/* ---- metadata ---------------------------------------------------------- */

/* The frames of r[0..n) the PMM may hand out: usable or reclaimable. */
static uint64_t usable_frames(const struct canopy_mem_range *r, unsigned n)
{
    uint64_t f = 0;
    for (unsigned i = 0; i < n; i++)
        if (r[i].type == CANOPY_MEM_USABLE || r[i].type == CANOPY_MEM_RECLAIMABLE)
            f += r[i].page_count;
    return f;
}

/*
 * The PMM's metadata over a map: the state region (section table and state
 * bytes) per usable frame, and with struct pmm (its fixed part, the CPUs'
 * caches included) added.
 */
static void report_metadata(const char *name, const struct pmm *p, uint64_t usable)
{
    printf("{\"bench\": \"%s\", \"impl\": \"canopy\", \"n\": %llu, \"bytes_per_frame\": %.4f, "
           "\"fixed_bytes\": %zu, \"total_bytes_per_frame\": %.6f, \"state_bytes\": %llu, "
           "\"sections\": %llu, \"sections_with_bytes\": %llu}\n",
           name, (unsigned long long)usable, (double)p->state_bytes / (double)usable,
           sizeof(struct pmm), (double)(p->state_bytes + sizeof(struct pmm)) / (double)usable,
           (unsigned long long)p->state_bytes, (unsigned long long)p->section_count,
           (unsigned long long)p->section_slots);
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
    report("pmm_init", p.frame_count, median(v, reps), "state bytes, section table, free lists");
    report_metadata("pmm_metadata", &p, usable_frames(r, 3));
    check_or_die(&p, "after pmm_init");
    munmap(mem, top);
}

/*
 * The sparse map: RAM at [0, 2 GiB) and [64 GiB, 66 GiB), nothing between.
 * The simulated memory covers all 66 GiB but only the state region and the
 * free blocks' links are ever touched.
 */
static void bench_sparse(void)
{
    uint64_t top = 66 * GiB;
    unsigned char *mem = sim_map(top);
    struct canopy_mem_range r[2] = {
        {0, 2 * GiB / PAGE_SIZE, CANOPY_MEM_USABLE, 7, 0},
        {64 * GiB, 2 * GiB / PAGE_SIZE, CANOPY_MEM_USABLE, 7, 0},
    };
    struct pmm p;
    enum pmm_status st = pmm_init(&p, r, 2, (uint64_t)(uintptr_t)mem);
    if (st != PMM_OK)
        die("pmm_init sparse", st);
    check_or_die(&p, "after pmm_init (sparse)");
    report_metadata("pmm_metadata_sparse", &p, usable_frames(r, 2));
    munmap(mem, top);
}

int main(int argc, char **argv)
{
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    uint64_t ram_end = quick ? 256 * MiB : 4 * GiB; /* --quick: touch little memory */
    if (quick)
        defeat_cold_frames = 64 * PMM_CACHE_FRAMES;
    unsigned char *mem = sim_map(ram_end);
    struct pmm p;
    build(&p, mem, ram_end);

    bench_pair(&p, 0, 0, "pmm_order0_pair", "per-CPU cache, no lock");
    bench_defeated(&p, DEFEAT_FRAMES, "pmm_order0_pair_defeated");
    bench_defeated(&p, defeat_cold_frames, "pmm_order0_pair_defeated_cold");
    bench_splits();
    bench_two_threads(&p, 0);
    bench_two_threads(&p, 1);
    bench_mixed(&p);
    bench_churn(&p);
    pmm_drain(&p);
    check_or_die(&p, "at the end");
    munmap(mem, ram_end);
    bench_init();
    bench_sparse();
    return 0;
}
