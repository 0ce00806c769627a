/*
 * pmm_fuzz_run: the body of pmm_fuzz, shared with its host test
 * (pmm_fuzz_check_test.c), which corrupts the PMM between two steps and
 * checks at which step, and by which check, the fault is reported.
 *
 * bytes -> a UEFI map inside 4 MiB of simulated memory -> the normaliser ->
 * pmm_init -> a sequence of operations, each mirrored in the frame model
 * (pmm_model.h).
 *
 * Input: byte 0 = descriptor count (1..16), then 4 bytes per descriptor
 *   [0] type selector   [1] start (in 4-page units)   [2] pages   [3] extra pages * 256
 * then 4 bytes per operation: opcode, and three argument bytes.
 *
 * After every step: every status is the one the model predicts, a failed
 * call changes nothing, and pmm_check_local (pmm_fuzz_check.h) compares the
 * frames the step touched and the counters with the model. Every full_every
 * steps, after a reclaim (which touches every frame anyway) and after the
 * last step, pmm_check checks the whole structure.
 */
#ifndef PMM_TESTS_PMM_FUZZ_RUN_H
#define PMM_TESTS_PMM_FUZZ_RUN_H

#include "pmm_fuzz_check.h"
#include "pmm_model.h"

#define PFZ_SIM_FRAMES 1024u /* 4 MiB */
#define PFZ_FULL_EVERY 64u   /* pmm_fuzz's full check interval */

/* Which check reported the fault. */
enum pfz_check {
    PFZ_MODEL, /* a status or a result the model does not allow */
    PFZ_LOCAL, /* pmm_check_local after the step */
    PFZ_FULL,  /* pmm_check */
};

/* Called after each step's operation, before its checks (the test's corruption). */
typedef void pfz_hook_fn(void *ctx, struct pmm *p, const struct model *md, size_t step);

struct pfz_opts {
    unsigned full_every; /* 1: pmm_check after every step */
    pfz_hook_fn *hook;   /* NULL in the fuzzer */
    void *ctx;
};

struct pfz_result {
    size_t steps;       /* operations decoded and run */
    size_t full_checks; /* pmm_check calls */
    bool failed;
    size_t step; /* the failing step; SIZE_MAX: at init */
    enum pfz_check by;
    char msg[200];
};

/* The frames a step touched, [lo, hi), and whether it wants the full check. */
struct pfz_touch {
    uint64_t lo, hi;
    bool full;
};

static struct sim pfz_sim;

PRINTF_LIKE(4, 5)
static bool pfz_fail(struct pfz_result *res, size_t step, enum pfz_check by, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
    va_end(ap);
    res->failed = true;
    res->step = step;
    res->by = by;
    return false;
}

static bool pfz_same_state(const struct pmm *a, const struct pmm *b, const unsigned char *saved)
{
    return memcmp(a, b, sizeof(*a)) == 0 &&
           memcmp(saved, (void *)(uintptr_t)(b->state + b->virt_offset), b->state_bytes) == 0;
}

/* What a call that is expected to fail must leave behind: the struct and the state bytes. */
struct pfz_snapshot {
    struct pmm before;
    unsigned char *state;
};

static void pfz_take_snapshot(struct pfz_snapshot *s, const struct pmm *p)
{
    s->before = *p;
    memcpy(s->state, (void *)(uintptr_t)(p->state + p->virt_offset), p->state_bytes);
}

static void pfz_touch_block(struct pfz_touch *t, uint64_t phys, uint64_t frames)
{
    t->lo = phys >> PAGE_SHIFT;
    t->hi = t->lo + frames;
}

/* One operation from op[0..3], against the model. */
static bool pfz_step(struct pmm *p, struct model *md, struct pfz_snapshot *snap, const uint8_t *op,
                     size_t step, struct pfz_result *res, struct pfz_touch *t)
{
    uint64_t a, phys;
    unsigned order = op[1] % 12, owner = 1 + op[2] % 15;
    enum pmm_status st;
    switch (op[0] % 8) {
    case 0:
    case 1: {
        bool can = model_has_block(md, order, UINT64_MAX);
        st = pmm_alloc(p, order, owner, &a);
        if (owner == CANOPY_OWNER_PMM) {
            if (st != PMM_ERR_INVALID)
                return pfz_fail(res, step, PFZ_MODEL, "alloc for the pmm's owner: %d", st);
        } else if (can) {
            if (st != PMM_OK || a % (PAGE_SIZE << order))
                return pfz_fail(res, step, PFZ_MODEL, "alloc order %u: %d", order, st);
            for (uint64_t j = 0; j < (1ull << order); j++)
                if (md->state[(a >> PAGE_SHIFT) + j] != M_FREE)
                    return pfz_fail(res, step, PFZ_MODEL, "alloc handed out a frame not free");
            model_take(md, a, order, owner);
            pfz_touch_block(t, a, 1ull << order);
        } else if (st != PMM_ERR_NOMEM) {
            return pfz_fail(res, step, PFZ_MODEL, "alloc order %u: %d, not out of memory", order,
                            st);
        }
        return true;
    }
    case 2:
    case 3:
        if (md->live_count == 0)
            return true;
        a = md->live[(op[1] | (unsigned)op[2] << 8) % md->live_count];
        phys = page_down(a);
        order = (unsigned)(a & (PAGE_SIZE - 1));
        if (pmm_free(p, phys, order) != PMM_OK)
            return pfz_fail(res, step, PFZ_MODEL, "free of a live block failed");
        model_release(md, phys, order);
        pfz_touch_block(t, phys, 1ull << order);
        return true;
    case 4: {
        phys = ((uint64_t)op[1] | (uint64_t)(op[2] & 0x07) << 8) << PAGE_SHIFT;
        if (op[2] & 0x10)
            phys += op[3];
        order = op[3] % 20;
        enum pmm_status want = model_free_status(md, phys, order);
        if (want != PMM_OK)
            pfz_take_snapshot(snap, p);
        st = pmm_free(p, phys, order);
        if (st != want)
            return pfz_fail(res, step, PFZ_MODEL, "free 0x%llx order %u: %d, the model %d",
                            (unsigned long long)phys, order, st, want);
        if (st == PMM_OK) {
            model_release(md, phys, order);
            pfz_touch_block(t, phys, 1ull << order);
        } else if (!pfz_same_state(&snap->before, p, snap->state)) {
            return pfz_fail(res, step, PFZ_MODEL, "a refused free changed the pmm");
        }
        return true;
    }
    case 5: {
        uint64_t limit = ((uint64_t)op[2] | (uint64_t)(op[3] & 0x07) << 8) << PAGE_SHIFT;
        unsigned who = owner == CANOPY_OWNER_PMM ? 1 : owner;
        bool can = model_has_block(md, order, limit >> PAGE_SHIFT);
        if (!can)
            pfz_take_snapshot(snap, p);
        st = pmm_alloc_below(p, order, limit, who, &a);
        if (can) {
            if (st != PMM_OK || a + (PAGE_SIZE << order) > limit || a % (PAGE_SIZE << order))
                return pfz_fail(res, step, PFZ_MODEL, "alloc below 0x%llx: %d",
                                (unsigned long long)limit, st);
            model_take(md, a, order, who);
            pfz_touch_block(t, a, 1ull << order);
        } else if (st != PMM_ERR_NOMEM) {
            return pfz_fail(res, step, PFZ_MODEL, "alloc below: %d, not out of memory", st);
        } else if (snap->before.cpu[0].count == 0 &&
                   !pfz_same_state(&snap->before, p, snap->state)) {
            /* A failure changes nothing, except that it drains the cache. */
            return pfz_fail(res, step, PFZ_MODEL, "a failed alloc below changed the pmm");
        }
        return true;
    }
    case 6: {
        uint64_t count = 1 + op[1] % 64;
        if (op[3] & 1 && md->live_count) {
            phys = page_down(md->live[op[2] % md->live_count]);
            count = 1 + op[1] % 4;
            enum pmm_status want = PMM_OK;
            if ((phys >> PAGE_SHIFT) + count > md->frames)
                want = PMM_ERR_NOT_OWNED;
            for (uint64_t j = 0; j < count && want == PMM_OK; j++)
                want = model_free_status(md, phys + j * PAGE_SIZE, 0);
            if (want != PMM_OK)
                pfz_take_snapshot(snap, p);
            st = pmm_free_run(p, phys, count);
            if (st != want)
                return pfz_fail(res, step, PFZ_MODEL, "free run: %d, the model %d", st, want);
            if (st == PMM_OK) {
                for (uint64_t j = 0; j < count; j++)
                    model_release(md, phys + j * PAGE_SIZE, 0);
                pfz_touch_block(t, phys, count);
            } else if (!pfz_same_state(&snap->before, p, snap->state)) {
                return pfz_fail(res, step, PFZ_MODEL, "a refused free run changed the pmm");
            }
            return true;
        }
        unsigned o = 0;
        while ((1ull << o) < count)
            o++;
        bool can = model_has_block(md, o, UINT64_MAX);
        st = pmm_alloc_run(p, count, CANOPY_OWNER_VMM, &a);
        if (can) {
            if (st != PMM_OK)
                return pfz_fail(res, step, PFZ_MODEL, "alloc run of %llu: %d",
                                (unsigned long long)count, st);
            for (uint64_t j = 0; j < count; j++)
                model_take(md, a + j * PAGE_SIZE, 0, CANOPY_OWNER_VMM);
            pfz_touch_block(t, a, 1ull << o); /* the run and the tail given back */
        } else if (st != PMM_ERR_NOMEM) {
            return pfz_fail(res, step, PFZ_MODEL, "alloc run: %d, not out of memory", st);
        }
        return true;
    }
    default:
        if (op[1] == 0xff) {
            uint64_t want = model_reclaim(md);
            if (pmm_reclaim(p) != want)
                return pfz_fail(res, step, PFZ_MODEL, "reclaim freed another count");
            t->full = true;
            return true;
        }
        uint64_t f = ((uint64_t)op[2] | (uint64_t)op[3] << 8) % md->frames;
        if (pmm_is_free(p, f << PAGE_SHIFT) != (md->state[f] == M_FREE) ||
            pmm_owner_of(p, f << PAGE_SHIFT) != model_owner(md, f))
            return pfz_fail(res, step, PFZ_MODEL, "lookup of frame 0x%llx disagrees",
                            (unsigned long long)f);
        return true;
    }
}

static bool pfz_full_check(const struct pmm *p, size_t step, struct pfz_result *res)
{
    char msg[160];
    res->full_checks++;
    if (pmm_check(p, msg, sizeof(msg)) != PMM_OK)
        return pfz_fail(res, step, PFZ_FULL, "%s", msg);
    return true;
}

/* The operations after the map; the PMM and the model are ready. */
static bool pfz_ops(struct pmm *p, struct model *md, const uint8_t *data, size_t size,
                    const struct pfz_opts *opts, struct pfz_result *res)
{
    const struct pmm init = *p;
    struct pfz_snapshot snap = {.state = malloc(p->state_bytes)};
    unsigned every = opts->full_every ? opts->full_every : 1;
    bool ok = true;
    for (size_t i = 0; ok && i + 4 <= size; i += 4) {
        size_t step = res->steps++;
        struct pfz_touch t = {0};
        ok = pfz_step(p, md, &snap, data + i, step, res, &t);
        if (!ok)
            break;
        if (opts->hook)
            opts->hook(opts->ctx, p, md, step);
        char msg[160];
        if (!pmm_check_local(p, &init, md, t.lo, t.hi, msg, sizeof(msg)))
            ok = pfz_fail(res, step, PFZ_LOCAL, "%s", msg);
        else if (t.full || (step + 1) % every == 0)
            ok = pfz_full_check(p, step, res);
    }
    /* The end of the input: the whole structure, unless the last step just did. */
    if (ok && res->steps > 0 && res->steps % every != 0)
        ok = pfz_full_check(p, res->steps - 1, res);
    free(snap.state);
    return ok;
}

/* Runs one input. => false with res filled on the first fault. */
static bool pmm_fuzz_run(const uint8_t *data, size_t size, const struct pfz_opts *opts,
                         struct pfz_result *res)
{
    static const uint32_t types[] = {EFI_CONVENTIONAL, EFI_CONVENTIONAL, EFI_CONVENTIONAL,
                                     EFI_BS_DATA,      EFI_LOADER_CODE,  EFI_RESERVED,
                                     EFI_ACPI_NVS,     EFI_MMIO};
    memset(res, 0, sizeof(*res));
    if (size < 1)
        return true;
    if (pfz_sim.buf == NULL)
        sim_open(&pfz_sim, 0, PFZ_SIM_FRAMES * PAGE_SIZE);
    size_t nd = 1 + data[0] % 16;
    data++;
    size--;
    if (size < 4 * nd)
        return true;

    struct efimap m;
    efimap_init(&m, 48);
    for (size_t i = 0; i < nd; i++) {
        const uint8_t *d = data + 4 * i;
        uint32_t type = types[d[0] % 8];
        uint64_t start = (uint64_t)d[1] * 4;
        uint64_t pages = d[2] + (uint64_t)(d[3] % 4) * 256;
        if (d[0] & 0x80)
            type = EFI_MMIO, start += 0x100000000ull; /* far above: never touched */
        else if (start + pages > PFZ_SIM_FRAMES)
            pages = PFZ_SIM_FRAMES - start; /* RAM stays inside the simulated memory */
        efimap_add(&m, type, start * PAGE_SIZE, pages, 0);
    }
    data += 4 * nd;
    size -= 4 * nd;

    struct canopy_mem_range *r;
    uint32_t n;
    bool ok = true;
    if (efimap_normalise(&m, &r, &n) != PMM_OK) {
        efimap_free(&m);
        return pfz_fail(res, SIZE_MAX, PFZ_MODEL, "the normaliser refused the map");
    }
    struct pmm p;
    enum pmm_status st = pmm_init(&p, r, n, pfz_sim.offset);
    if (st != PMM_OK) {
        if (st != PMM_ERR_BAD_MAP && st != PMM_ERR_NOMEM)
            ok = pfz_fail(res, SIZE_MAX, PFZ_MODEL, "pmm_init: %d", st);
    } else if (pfz_full_check(&p, SIZE_MAX, res)) {
        struct model md;
        if (!model_init(&md, p.frame_count, r, n, &p) || p.base_frame != 0)
            ok = pfz_fail(res, SIZE_MAX, PFZ_MODEL, "the state array is not in free memory");
        else
            ok = pfz_ops(&p, &md, data, size, opts, res);
        model_free(&md);
    } else {
        ok = false;
    }
    free(r);
    efimap_free(&m);
    return ok;
}

#endif
