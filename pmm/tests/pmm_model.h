/*
 * A frame-by-frame model of the PMM for the randomized test and the fuzzer:
 * one byte of state per frame, the live allocations, and what each call must
 * answer. Deliberately naive (one byte per frame, no block structure), so it
 * is obviously right. Tracked frames start at physical 0.
 *
 * So that the fuzzer can afford a model answer after every step, the model
 * keeps, for each order k, how many free frames each aligned 2^k-frame block
 * holds and how many blocks are wholly free: whether a free block of order k
 * exists is then one counter, and a frame changing state costs one update
 * per order. State changes go through model_set() only.
 */
#ifndef PMM_TESTS_PMM_MODEL_H
#define PMM_TESTS_PMM_MODEL_H

#include "pmm_sim.h"

enum { M_FREE, M_RESERVED, M_RECLAIM, M_PMM, M_USED };

struct model {
    uint64_t frames;
    unsigned char *state; /* M_* */
    unsigned char *owner;
    unsigned char *head; /* order + 1 at the first frame of a live allocation, else 0 */
    uint64_t *live;      /* phys | order of live allocations */
    uint64_t *slot;      /* at an allocation's first frame: its index in live */
    uint64_t live_count;
    uint64_t free_count, reclaim_count;       /* frames in M_FREE and M_RECLAIM */
    uint64_t owner_count[CANOPY_OWNER_COUNT]; /* M_USED frames per owner (M_PMM: the PMM's) */
    unsigned orders;                          /* orders k with 2^k <= frames */
    uint32_t *free_in[PMM_ORDER_COUNT];       /* free frames in each aligned 2^k block */
    uint64_t whole[PMM_ORDER_COUNT];          /* aligned 2^k blocks wholly free (0 past orders) */
};

/*
 * The model is the reference, not code under test: the fuzzer's coverage
 * guidance should not count its branches, and it runs faster without.
 */
#define MODEL_FN static __attribute__((noinline, unused, no_sanitize("coverage")))

/* Moves frame f to state s (owner for M_USED), keeping every count. */
MODEL_FN void model_set(struct model *m, uint64_t f, unsigned char s, unsigned owner)
{
    unsigned char was = m->state[f];
    if (was == M_USED || was == M_PMM)
        m->owner_count[was == M_PMM ? CANOPY_OWNER_PMM : m->owner[f]]--;
    if (s == M_USED || s == M_PMM)
        m->owner_count[s == M_PMM ? CANOPY_OWNER_PMM : owner]++;
    m->owner[f] = s == M_USED ? (unsigned char)owner : 0;
    m->state[f] = s;
    m->reclaim_count += (s == M_RECLAIM) - (was == M_RECLAIM);
    if ((was == M_FREE) == (s == M_FREE))
        return;
    m->free_count += s == M_FREE ? 1 : -1;
    for (unsigned k = 0; k < m->orders; k++) {
        uint32_t *c = &m->free_in[k][f >> k];
        if (s != M_FREE && *c == 1u << k)
            m->whole[k]--;
        *c += s == M_FREE ? 1 : -1;
        if (s == M_FREE && *c == 1u << k)
            m->whole[k]++;
    }
}

/* Whether the model has 2^order free frames, naturally aligned, ending at or below limit. */
MODEL_FN bool model_has_block(const struct model *m, unsigned order, uint64_t limit)
{
    if (order >= PMM_ORDER_COUNT)
        return false;
    if (limit >= m->frames)
        return m->whole[order] > 0; /* a block past the last frame is never whole */
    for (uint64_t i = 0; (i + 1) << order <= limit; i++)
        if (m->free_in[order][i] == 1u << order)
            return true;
    return false;
}

MODEL_FN enum pmm_status model_free_status(const struct model *m, uint64_t phys, unsigned order)
{
    if (order > PMM_MAX_ORDER || !page_is_aligned(phys))
        return PMM_ERR_INVALID;
    uint64_t f = phys >> PAGE_SHIFT;
    if (f >= m->frames)
        return PMM_ERR_NOT_OWNED;
    switch (m->state[f]) {
    case M_FREE:
        return PMM_ERR_DOUBLE_FREE;
    case M_USED:
        return m->head[f] == order + 1 ? PMM_OK : PMM_ERR_INVALID;
    default:
        return PMM_ERR_NOT_OWNED;
    }
}

MODEL_FN void model_take(struct model *m, uint64_t phys, unsigned order, unsigned owner)
{
    uint64_t f = phys >> PAGE_SHIFT;
    for (uint64_t j = 0; j < (1ull << order); j++)
        model_set(m, f + j, M_USED, owner);
    m->head[f] = (unsigned char)(order + 1);
    m->slot[f] = m->live_count;
    m->live[m->live_count++] = phys | order;
}

MODEL_FN void model_release(struct model *m, uint64_t phys, unsigned order)
{
    uint64_t f = phys >> PAGE_SHIFT;
    for (uint64_t j = 0; j < (1ull << order); j++)
        model_set(m, f + j, M_FREE, 0);
    m->head[f] = 0;
    uint64_t i = m->slot[f], last = m->live[--m->live_count];
    m->live[i] = last;
    m->slot[page_down(last) >> PAGE_SHIFT] = i;
}

/*
 * Builds the model from the normalised map the PMM was built from: usable
 * frames from 1 MiB up are free, reclaimable ones reclaimable, the PMM's state
 * array its own; false if the state array is not in free usable memory.
 */
MODEL_FN bool model_init(struct model *m, uint64_t frames, const struct canopy_mem_range *r,
                         uint32_t n, const struct pmm *p)
{
    memset(m, 0, sizeof(*m));
    m->frames = frames;
    while (m->orders < PMM_ORDER_COUNT && (1ull << m->orders) <= frames)
        m->orders++;
    m->state = malloc(frames);
    m->owner = calloc(frames, 1);
    m->head = calloc(frames, 1);
    m->live = malloc(frames * sizeof(*m->live));
    m->slot = malloc(frames * sizeof(*m->slot));
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++)
        m->free_in[k] = calloc((frames >> k) + 1, sizeof(uint32_t));
    memset(m->state, M_RESERVED, frames);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t f = r[i].base >> PAGE_SHIFT;
        for (uint64_t j = 0; j < r[i].page_count && f + j < frames; j++) {
            if (f + j < (PMM_LOW_RESERVED >> PAGE_SHIFT))
                continue;
            if (r[i].type == CANOPY_MEM_USABLE)
                model_set(m, f + j, M_FREE, 0);
            else if (r[i].type == CANOPY_MEM_RECLAIMABLE)
                model_set(m, f + j, M_RECLAIM, 0);
        }
    }
    for (uint64_t a = p->state; a < p->state + p->state_bytes; a += PAGE_SIZE) {
        if ((a >> PAGE_SHIFT) >= frames || m->state[a >> PAGE_SHIFT] != M_FREE)
            return false;
        model_set(m, a >> PAGE_SHIFT, M_PMM, 0);
    }
    return true;
}

/* What pmm_reclaim does: every reclaimable frame becomes free; returns how many. */
MODEL_FN uint64_t model_reclaim(struct model *m)
{
    uint64_t n = 0;
    for (uint64_t f = 0; f < m->frames; f++)
        if (m->state[f] == M_RECLAIM) {
            model_set(m, f, M_FREE, 0);
            n++;
        }
    return n;
}

MODEL_FN void model_free(struct model *m)
{
    free(m->state);
    free(m->owner);
    free(m->head);
    free(m->live);
    free(m->slot);
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++)
        free(m->free_in[k]);
}

/* What pmm_owner_of must say about frame f. */
MODEL_FN unsigned model_owner(const struct model *m, uint64_t f)
{
    if (m->state[f] == M_USED)
        return m->owner[f];
    return m->state[f] == M_PMM ? CANOPY_OWNER_PMM : CANOPY_OWNER_NONE;
}

#endif
