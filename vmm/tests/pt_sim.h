/*
 * pt_sim: a simulated physical memory for the page-table tests and fuzzer.
 *
 * A host buffer stands in for RAM at a non-zero physical base, so that a
 * missing virt_offset shows up at once. Frames come from a stack; every frame
 * the page-table code holds is marked, so double frees, foreign frees and
 * leaks are caught. An allocation failure can be injected after N successes.
 * Frames are filled with junk when handed out and when given back, so code
 * that forgets to zero a table or reads a freed one misbehaves visibly.
 */
#ifndef VMM_TESTS_PT_SIM_H
#define VMM_TESTS_PT_SIM_H

#include <vmm/pt.h>
#include <vmm/pte.h>

#include <canopy/page.h>
#include <canopy/vaddr.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_BASE 0x40000000ull /* simulated physical address of the buffer */

struct sim {
    uint8_t *mem;
    uint64_t frames;
    uint64_t *stack; /* free frame numbers */
    uint64_t free_count;
    bool *used;
    uint64_t held;      /* frames handed out and not returned */
    int64_t fail_after; /* successes left before alloc fails; -1: never fail */
    uint64_t bad_frees; /* frees of frames not handed out */
};

static inline bool sim_alloc(void *ctx, uint64_t *phys)
{
    struct sim *s = ctx;
    if (s->fail_after == 0 || s->free_count == 0)
        return false;
    if (s->fail_after > 0)
        s->fail_after--;
    uint64_t f = s->stack[--s->free_count];
    s->used[f] = true;
    s->held++;
    memset(s->mem + f * PAGE_SIZE, 0xa5, PAGE_SIZE);
    *phys = SIM_BASE + f * PAGE_SIZE;
    return true;
}

static inline void sim_free(void *ctx, uint64_t phys)
{
    struct sim *s = ctx;
    uint64_t off = phys - SIM_BASE;
    uint64_t f = off / PAGE_SIZE;
    if (phys < SIM_BASE || off % PAGE_SIZE != 0 || f >= s->frames || !s->used[f]) {
        s->bad_frees++;
        return;
    }
    s->used[f] = false;
    s->held--;
    memset(s->mem + f * PAGE_SIZE, 0x5a, PAGE_SIZE);
    s->stack[s->free_count++] = f;
}

static inline void sim_init(struct sim *s, uint64_t frames)
{
    s->mem = aligned_alloc(PAGE_SIZE, frames * PAGE_SIZE);
    s->stack = malloc(frames * sizeof(uint64_t));
    s->used = calloc(frames, sizeof(bool));
    if (!s->mem || !s->stack || !s->used) {
        fprintf(stderr, "sim: out of host memory\n");
        exit(2);
    }
    s->frames = frames;
    s->free_count = 0;
    /* Hand frames out from the low end first, so addresses are easy to read. */
    for (uint64_t f = frames; f-- > 0;)
        s->stack[s->free_count++] = f;
    s->held = 0;
    s->fail_after = -1;
    s->bad_frees = 0;
}

static inline void sim_fini(struct sim *s)
{
    free(s->mem);
    free(s->stack);
    free(s->used);
}

static inline struct pt_frames sim_frames(struct sim *s)
{
    return (struct pt_frames){.alloc = sim_alloc, .free = sim_free, .ctx = s};
}

static inline uint64_t sim_offset(const struct sim *s)
{
    return (uint64_t)(uintptr_t)s->mem - SIM_BASE;
}

/*
 * A fingerprint of every entry (with its table's address) of the tables on
 * the paths to [first, last], for "nothing changed": below an entry only if
 * its span meets the range. walk is the un-extended address of entry 0.
 */
__attribute__((no_sanitize("coverage"))) /* for the fuzzer: a check, not code under test */
static inline uint64_t
sim_hash_rec(const struct pt *pt, uint64_t tpa, unsigned level, uint64_t walk, uint64_t first,
             uint64_t last, uint64_t h)
{
    const uint64_t *t = (const uint64_t *)(uintptr_t)(tpa + pt->virt_offset);
    uint64_t size = pte_level_size(level);
    for (unsigned i = 0; i < PTE_ENTRIES; i++) {
        uint64_t v[3] = {tpa, i, t[i]};
        for (unsigned k = 0; k < 3; k++) {
            h ^= v[k];
            h *= 0x100000001b3ull;
            h ^= h >> 29;
        }
        uint64_t start = va_sign_extend(walk + i * size, pt->levels);
        if (pte_is_present(t[i]) && !pte_is_leaf(t[i], level) && start <= last &&
            start + (size - 1) >= first)
            h = sim_hash_rec(pt, pte_table_addr(t[i]), level - 1, walk + i * size, first, last, h);
    }
    return h;
}

/* The fingerprint of the tables on the paths to [first, last] (canonical, inclusive). */
static inline uint64_t sim_hash_range(const struct pt *pt, uint64_t first, uint64_t last)
{
    uint64_t h = 0xcbf29ce484222325ull ^ pt->table_count ^ pt->root;
    return sim_hash_rec(pt, pt->root, pt->levels, 0, first, last, h);
}

/* The fingerprint of every reachable table. */
static inline uint64_t sim_hash(const struct pt *pt)
{
    return sim_hash_range(pt, 0, UINT64_MAX);
}

#endif
