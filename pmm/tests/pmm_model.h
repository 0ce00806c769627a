/*
 * A frame-by-frame model of the PMM for the randomized test and the fuzzer:
 * one byte of state per frame, the live allocations, and what each call must
 * answer. Deliberately naive (linear scans), so it is obviously right.
 * Tracked frames start at physical 0.
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
    uint64_t live_count;
    uint64_t free_count, reclaim_count; /* frames in M_FREE and M_RECLAIM */
};

/* Whether the model has 2^order free frames, naturally aligned, ending at or below limit. */
static inline bool model_has_block(const struct model *m, unsigned order, uint64_t limit)
{
    uint64_t n = 1ull << order;
    for (uint64_t f = 0; f + n <= m->frames && f + n <= limit; f += n) {
        uint64_t j = 0;
        while (j < n && m->state[f + j] == M_FREE)
            j++;
        if (j == n)
            return true;
    }
    return false;
}

static inline enum pmm_status model_free_status(const struct model *m, uint64_t phys,
                                                unsigned order)
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

static inline void model_take(struct model *m, uint64_t phys, unsigned order, unsigned owner)
{
    uint64_t f = phys >> PAGE_SHIFT;
    for (uint64_t j = 0; j < (1ull << order); j++) {
        m->state[f + j] = M_USED;
        m->owner[f + j] = (unsigned char)owner;
    }
    m->head[f] = (unsigned char)(order + 1);
    m->live[m->live_count++] = phys | order;
    m->free_count -= 1ull << order;
}

static inline void model_release(struct model *m, uint64_t phys, unsigned order)
{
    uint64_t f = phys >> PAGE_SHIFT;
    for (uint64_t j = 0; j < (1ull << order); j++)
        m->state[f + j] = M_FREE;
    m->head[f] = 0;
    m->free_count += 1ull << order;
    for (uint64_t i = 0; i < m->live_count; i++)
        if (m->live[i] == (phys | order)) {
            m->live[i] = m->live[--m->live_count];
            return;
        }
}

static inline uint64_t model_count(const struct model *m, unsigned char state)
{
    uint64_t c = 0;
    for (uint64_t f = 0; f < m->frames; f++)
        c += m->state[f] == state;
    return c;
}

/*
 * Builds the model from the normalised map the PMM was built from: usable
 * frames from 1 MiB up are free, reclaimable ones reclaimable, the PMM's state
 * array its own; false if the state array is not in free usable memory.
 */
static inline bool model_init(struct model *m, uint64_t frames, const struct canopy_mem_range *r,
                              uint32_t n, const struct pmm *p)
{
    m->frames = frames;
    m->state = malloc(frames);
    m->owner = calloc(frames, 1);
    m->head = calloc(frames, 1);
    m->live = malloc(frames * sizeof(*m->live));
    m->live_count = 0;
    memset(m->state, M_RESERVED, frames);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t f = r[i].base >> PAGE_SHIFT;
        for (uint64_t j = 0; j < r[i].page_count && f + j < frames; j++) {
            if (f + j < (PMM_LOW_RESERVED >> PAGE_SHIFT))
                continue;
            if (r[i].type == CANOPY_MEM_USABLE)
                m->state[f + j] = M_FREE;
            else if (r[i].type == CANOPY_MEM_RECLAIMABLE)
                m->state[f + j] = M_RECLAIM;
        }
    }
    for (uint64_t a = p->state; a < p->state + p->state_bytes; a += PAGE_SIZE) {
        if ((a >> PAGE_SHIFT) >= frames || m->state[a >> PAGE_SHIFT] != M_FREE)
            return false;
        m->state[a >> PAGE_SHIFT] = M_PMM;
    }
    m->free_count = model_count(m, M_FREE);
    m->reclaim_count = model_count(m, M_RECLAIM);
    return true;
}

/* What pmm_reclaim does: every reclaimable frame becomes free; returns how many. */
static inline uint64_t model_reclaim(struct model *m)
{
    uint64_t n = 0;
    for (uint64_t f = 0; f < m->frames; f++)
        if (m->state[f] == M_RECLAIM) {
            m->state[f] = M_FREE;
            n++;
        }
    m->free_count += n;
    m->reclaim_count -= n;
    return n;
}

static inline void model_free(struct model *m)
{
    free(m->state);
    free(m->owner);
    free(m->head);
    free(m->live);
}

/* What pmm_owner_of must say about frame f. */
static inline unsigned model_owner(const struct model *m, uint64_t f)
{
    if (m->state[f] == M_USED)
        return m->owner[f];
    return m->state[f] == M_PMM ? CANOPY_OWNER_PMM : CANOPY_OWNER_NONE;
}

#endif
