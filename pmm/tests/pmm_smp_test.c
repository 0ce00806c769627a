/*
 * pmm_smp_test: several threads, each with its own CPU index, hammer one
 * PMM with allocations and frees of random orders, through their caches
 * (pmm_cpu_*) and around them (PMM_NO_CPU), while holding what they got.
 *
 * Each thread writes its mark into every frame it holds and checks the mark
 * before it frees the frame, so a frame handed to two threads at once shows
 * up as a mark overwritten. Once the threads stop, with their blocks still
 * held: the blocks of all threads are disjoint, the PMM passes pmm_check
 * (caches in place), the counters with the CPUs' deltas say exactly the held
 * frames are used; then everything is freed, the caches drained, and the
 * free frames and the merged blocks are those of the start: nothing lost,
 * nothing doubled.
 */
#include "pmm_sim.h"

#include <canopy/rng.h>

#include <pthread.h>

unsigned check_passed, check_failed;

#define THREADS   4
#define STEPS     60000
#define HOLD      512 /* blocks a thread holds at most */
#define MAX_ORDER 4

struct block {
    uint64_t phys;
    unsigned order;
};

struct worker {
    pthread_t thread;
    struct pmm *p;
    unsigned cpu; /* a CPU index, or PMM_NO_CPU */
    uint64_t seed;
    pthread_barrier_t *start;
    struct block held[HOLD];
    unsigned n;
    /* What went wrong, for the main thread to report (checks are not thread safe). */
    unsigned bad_status, bad_marks;
    uint64_t allocs, frees, nomem;
};

static uint64_t *frame_at(const struct pmm *p, uint64_t phys)
{
    return (uint64_t *)(uintptr_t)(phys + p->virt_offset);
}

/* A thread's mark in a frame: which thread, and which frame, so a stale copy does not pass. */
static uint64_t mark_of(const struct worker *w, uint64_t phys)
{
    return ((uint64_t)(w->cpu & 0xff) << 56) ^ phys ^ 0x5a5a000000000000ull;
}

static void mark(struct worker *w, struct block b)
{
    /* Word 2 of each frame: a free block's links (words 0 and 1) are the PMM's. */
    for (uint64_t j = 0; j < (1ull << b.order); j++)
        frame_at(w->p, b.phys + j * PAGE_SIZE)[2] = mark_of(w, b.phys + j * PAGE_SIZE);
}

static bool marks_hold(const struct worker *w, struct block b)
{
    for (uint64_t j = 0; j < (1ull << b.order); j++)
        if (frame_at(w->p, b.phys + j * PAGE_SIZE)[2] != mark_of(w, b.phys + j * PAGE_SIZE))
            return false;
    return true;
}

static void put_back(struct worker *w, unsigned i)
{
    struct block b = w->held[i];
    if (!marks_hold(w, b))
        w->bad_marks++;
    if (pmm_cpu_free(w->p, w->cpu, b.phys, b.order) != PMM_OK)
        w->bad_status++;
    w->held[i] = w->held[--w->n];
    w->frees++;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    for (unsigned s = 0; s < STEPS; s++) {
        uint64_t r = xorshift64_next(&w->seed);
        /* Mostly single frames, the cache's case; sometimes larger blocks, under the lock. */
        unsigned order = (r & 7) < 6 ? 0 : 1 + (unsigned)((r >> 3) % MAX_ORDER);
        bool take = w->n == 0 || (w->n < HOLD && ((r >> 8) & 1));
        if (take) {
            struct block b = {0, order};
            enum pmm_status st = pmm_cpu_alloc(w->p, w->cpu, order, CANOPY_OWNER_TEST, &b.phys);
            if (st == PMM_ERR_NOMEM) {
                w->nomem++;
                continue;
            }
            if (st != PMM_OK || b.phys % (PAGE_SIZE << order) != 0) {
                w->bad_status++;
                continue;
            }
            mark(w, b);
            w->held[w->n++] = b;
            w->allocs++;
        } else {
            /* A random one, so frees come in another order than the allocations. */
            put_back(w, (unsigned)((r >> 16) % w->n));
        }
    }
    return NULL;
}

static int cmp_block(const void *a, const void *b)
{
    uint64_t x = ((const struct block *)a)->phys, y = ((const struct block *)b)->phys;
    return x < y ? -1 : x > y;
}

/*
 * RAM [1 MiB, 64 MiB): small enough that the threads run it nearly dry
 * (THREADS * HOLD blocks of up to 64 KiB), so allocations fail and caches
 * drain as well as fill.
 */
static void test_threads_lose_and_double_nothing(unsigned nthreads, bool last_without_cache)
{
    struct sim s;
    sim_open(&s, 0, 64 * MiB);
    struct canopy_mem_range r = {PMM_LOW_RESERVED, (64 * MiB - PMM_LOW_RESERVED) / PAGE_SIZE,
                                 CANOPY_MEM_USABLE, EFI_CONVENTIONAL, 0};
    static struct pmm p;
    REQUIRE_EQ(pmm_init(&p, &r, 1, s.offset), PMM_OK);
    REQUIRE_PMM(&p);
    const struct pmm start = p;

    static struct worker w[THREADS];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, nthreads);
    for (unsigned i = 0; i < nthreads; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].p = &p;
        w[i].cpu = last_without_cache && i == nthreads - 1 ? PMM_NO_CPU : i;
        w[i].seed = 0x9e3779b97f4a7c15ull * (i + 1);
        w[i].start = &barrier;
        REQUIRE(pthread_create(&w[i].thread, NULL, worker_main, &w[i]) == 0);
    }
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(w[i].thread, NULL);
    pthread_barrier_destroy(&barrier);

    /* Stopped, blocks held, caches as they are. */
    uint64_t held_frames = 0, blocks = 0;
    static struct block all[THREADS * HOLD];
    for (unsigned i = 0; i < nthreads; i++) {
        CHECKF(w[i].bad_status == 0 && w[i].bad_marks == 0,
               "thread %u: %u bad statuses, %u overwritten marks", i, w[i].bad_status,
               w[i].bad_marks);
        CHECKF(w[i].allocs > STEPS / 4 && w[i].frees > STEPS / 4,
               "thread %u did little: %llu allocations, %llu frees", i,
               (unsigned long long)w[i].allocs, (unsigned long long)w[i].frees);
        for (unsigned j = 0; j < w[i].n; j++) {
            all[blocks++] = w[i].held[j];
            held_frames += 1ull << w[i].held[j].order;
        }
    }
    qsort(all, blocks, sizeof(all[0]), cmp_block);
    for (uint64_t j = 1; j < blocks; j++)
        CHECKF(all[j - 1].phys + (PAGE_SIZE << all[j - 1].order) <= all[j].phys,
               "blocks 0x%llx (order %u) and 0x%llx overlap", (unsigned long long)all[j - 1].phys,
               all[j - 1].order, (unsigned long long)all[j].phys);
    REQUIRE_PMM(&p);
    struct pmm_counts c = counts_of(&p);
    CHECK_EQ(c.owner[CANOPY_OWNER_TEST], held_frames);
    CHECK_EQ(c.used, held_frames + counts_of(&start).used);
    CHECK_EQ(c.free + held_frames, counts_of(&start).free);

    /* Everything back, from each thread's own CPU, then drained: the start's free blocks. */
    for (unsigned i = 0; i < nthreads; i++)
        while (w[i].n > 0)
            put_back(&w[i], w[i].n - 1);
    for (unsigned i = 0; i < nthreads; i++)
        CHECK(w[i].bad_status == 0 && w[i].bad_marks == 0);
    pmm_drain(&p);
    REQUIRE_PMM(&p);
    CHECK_EQ(p.free_frames, start.free_frames);
    CHECK_EQ(p.used_frames, start.used_frames);
    CHECK_EQ(p.owner_frames[CANOPY_OWNER_TEST], 0u);
    CHECK(memcmp(p.free_blocks, start.free_blocks, sizeof(start.free_blocks)) == 0);
    sim_close(&s);
}

static void test_two_threads(void)
{
    test_threads_lose_and_double_nothing(2, false);
}

static void test_four_threads_one_without_a_cache(void)
{
    test_threads_lose_and_double_nothing(THREADS, true);
}

int main(void)
{
    RUN(test_two_threads);
    RUN(test_four_threads_one_without_a_cache);
    return check_finish();
}
