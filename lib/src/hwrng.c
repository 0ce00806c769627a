/*
 * hwrng: the checks on RDSEED's and RDRAND's values (canopy/hwrng.h). Pure:
 * the instructions come in as functions, so the same code runs in stage 1,
 * the kernel (both through lib/src/rt.c) and the host tests.
 */
#include <canopy/fmt.h>
#include <canopy/hwrng.h>

/* One value in at most HWRNG_TRIES tries; false if none came. */
static bool draw_one(hwrng_try_fn try_once, uint64_t *v)
{
    for (int i = 0; i < HWRNG_TRIES; i++)
        if (try_once(v))
            return true;
    return false;
}

enum hwrng_verdict hwrng_draw(hwrng_try_fn try_once, uint64_t *out)
{
    if (!try_once)
        return HWRNG_ABSENT;
    uint64_t first, second;
    if (!draw_one(try_once, &first))
        return HWRNG_EMPTY;
    if (first == UINT64_MAX)
        return HWRNG_ALL_ONES;
    if (!draw_one(try_once, &second))
        return HWRNG_EMPTY;
    if (second == UINT64_MAX)
        return HWRNG_ALL_ONES;
    if (second == first)
        return HWRNG_REPEATS;
    *out = second;
    return HWRNG_OK;
}

bool hwrng_pick(hwrng_try_fn rdseed, hwrng_try_fn rdrand, uint64_t *out, struct hwrng_result *res)
{
    struct hwrng_result r = {.used = HWRNG_NONE, .rdrand = HWRNG_UNTRIED};
    r.rdseed = hwrng_draw(rdseed, out);
    if (r.rdseed == HWRNG_OK)
        r.used = HWRNG_RDSEED;
    else if ((r.rdrand = hwrng_draw(rdrand, out)) == HWRNG_OK)
        r.used = HWRNG_RDRAND;
    if (res)
        *res = r;
    return r.used != HWRNG_NONE;
}

const char *hwrng_source_name(enum hwrng_source s)
{
    switch (s) {
    case HWRNG_RDSEED:
        return "RDSEED";
    case HWRNG_RDRAND:
        return "RDRAND";
    case HWRNG_NONE:
        break;
    }
    return "no CPU source";
}

const char *hwrng_verdict_name(enum hwrng_verdict v)
{
    switch (v) {
    case HWRNG_ABSENT:
        return "absent";
    case HWRNG_UNTRIED:
        return "not tried";
    case HWRNG_OK:
        return "ok";
    case HWRNG_EMPTY:
        return "gave no value in 10 tries";
    case HWRNG_ALL_ONES:
        return "returned all ones";
    case HWRNG_REPEATS:
        return "repeated its last value";
    }
    return "unknown";
}

/* A verdict worth a line: the source is there and gave something unusable. */
static bool discarded(enum hwrng_verdict v)
{
    return v == HWRNG_EMPTY || v == HWRNG_ALL_ONES || v == HWRNG_REPEATS;
}

char *hwrng_discarded(const struct hwrng_result *res, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    bool seed = discarded(res->rdseed), rand = discarded(res->rdrand);
    if (seed && rand)
        fmt_snprintf(buf, cap, "RDSEED %s and RDRAND %s: both discarded",
                     hwrng_verdict_name(res->rdseed), hwrng_verdict_name(res->rdrand));
    else if (seed || rand)
        fmt_snprintf(buf, cap, "%s discarded: it %s", seed ? "RDSEED" : "RDRAND",
                     hwrng_verdict_name(seed ? res->rdseed : res->rdrand));
    return buf;
}
