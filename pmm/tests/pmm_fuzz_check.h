/*
 * pmm_fuzz_check: the check pmm_fuzz runs after every step, in time
 * proportional to what the step touched rather than to the PMM's size.
 * pmm_check (the whole structure) runs every few steps and at the end of
 * each input; between those this one must see a fault at the step that made
 * it, as far as the step's own frames and the PMM's counters go.
 *
 * It reads only the public parts of struct pmm and the public lookups, and
 * compares them with the frame model (pmm_model.h):
 *   - the fields fixed at init are unchanged;
 *   - the free, reclaimable and per-owner counters equal the model's, the
 *     four frame counters add up to the frames tracked, the caches are within
 *     their bound, and each order's non-empty bit agrees with its list head and
 *     block count;
 *   - each frame of [lo, hi) (the frames the step handed out, gave back or
 *     was refused) is free, or used by the owner, exactly as in the model.
 * What it cannot see: a frame outside [lo, hi) changed without the counters
 * noticing, a state byte or a list link the lookups do not read. pmm_check
 * finds those at the next full check (pmm_fuzz_check_test shows both).
 *
 * Written against the PMM of sections, a lock and per-CPU caches (pmm.h):
 * when struct pmm changes shape, this is the place to follow it.
 */
#ifndef PMM_TESTS_PMM_FUZZ_CHECK_H
#define PMM_TESTS_PMM_FUZZ_CHECK_H

#include <stdarg.h>

#include "pmm_model.h"

PRINTF_LIKE(3, 4) static bool local_fail(char *msg, size_t msg_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
    return false;
}

/*
 * => init is a copy of the PMM taken right after pmm_init; [lo, hi) are
 *    frame numbers (hi <= the frames tracked).
 * Returns false with one line in msg on the first disagreement.
 */
__attribute__((noinline, no_sanitize("coverage"))) /* a check, not code under test */
static bool
pmm_check_local(const struct pmm *p, const struct pmm *init, const struct model *m, uint64_t lo,
                uint64_t hi, char *msg, size_t msg_size)
{
    typedef unsigned long long ull;
    if (p->magic != init->magic || p->virt_offset != init->virt_offset ||
        p->base_frame != init->base_frame || p->frame_count != init->frame_count ||
        p->state != init->state || p->state_bytes != init->state_bytes ||
        p->section_count != init->section_count || p->section_slots != init->section_slots ||
        p->slots_offset != init->slots_offset)
        return local_fail(msg, msg_size, "local: a field fixed at init changed");
    struct pmm_counts c;
    pmm_counts(p, &c); /* the counters with every CPU's deltas folded in */
    if (c.free != m->free_count || c.reclaimable != m->reclaim_count)
        return local_fail(msg, msg_size, "local: %llu free, %llu reclaimable; the model %llu, %llu",
                          (ull)c.free, (ull)c.reclaimable, (ull)m->free_count,
                          (ull)m->reclaim_count);
    uint64_t used = 0;
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++) {
        if (c.owner[o] != m->owner_count[o])
            return local_fail(msg, msg_size, "local: owner %u has %llu frames, the model %llu", o,
                              (ull)c.owner[o], (ull)m->owner_count[o]);
        used += c.owner[o];
    }
    if (c.used != used || c.free + used + c.reclaimable + c.reserved != p->frame_count)
        return local_fail(msg, msg_size, "local: the frame counters do not add up");
    for (unsigned k = 0; k < PMM_MAX_CPUS; k++)
        if (p->cpu[k].count > PMM_CACHE_FRAMES)
            return local_fail(msg, msg_size, "local: CPU %u has %llu frames cached", k,
                              (ull)p->cpu[k].count);
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++) {
        bool any = p->free_blocks[k] != 0;
        bool listed =
            k < PMM_INDEX_ORDER ? p->free_head[k] == PMM_NIL : (p->free_head[k] != PMM_NIL) == any;
        if (((p->free_orders >> k) & 1) != any || !listed)
            return local_fail(msg, msg_size, "local: order %u: bit, head and count disagree", k);
    }
    for (uint64_t f = lo; f < hi; f++) {
        uint64_t phys = f << PAGE_SHIFT;
        if (pmm_is_free(p, phys) != (m->state[f] == M_FREE) ||
            pmm_owner_of(p, phys) != model_owner(m, f))
            return local_fail(msg, msg_size,
                              "local: frame 0x%llx: free %d owner %u, the model %d %u", (ull)phys,
                              pmm_is_free(p, phys), pmm_owner_of(p, phys), m->state[f] == M_FREE,
                              model_owner(m, f));
    }
    return true;
}

#endif
