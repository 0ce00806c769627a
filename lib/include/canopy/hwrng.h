/*
 * hwrng: random values from the CPU's RDSEED and RDRAND, checked before they
 * are trusted.
 *
 * Both instructions can fail quietly: some AMD CPUs return all ones with the
 * carry flag set (success) after a resume, and a broken or emulated generator
 * can return the same value every time. Linux draws a few values at boot and
 * stops using RDRAND when they do not change. Canopy checks every draw the same
 * way: a source's value is discarded if it is all ones or equals the one the
 * same source gave just before, and the next source is tried.
 *
 * The sources are passed in as functions (a NULL one is absent), so the host
 * tests drive this with scripted values; lib/src/rt.c passes the instructions.
 */
#ifndef CANOPY_HWRNG_H
#define CANOPY_HWRNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tries per value: both may come back empty (carry clear) for a while; Intel suggests 10. */
#define HWRNG_TRIES 10

/* What one source gave. */
enum hwrng_verdict {
    HWRNG_ABSENT,   /* CPUID does not offer the instruction */
    HWRNG_UNTRIED,  /* not needed: the source before it passed */
    HWRNG_OK,       /* a value that passed the checks */
    HWRNG_EMPTY,    /* no value in HWRNG_TRIES tries (carry flag clear) */
    HWRNG_ALL_ONES, /* all ones */
    HWRNG_REPEATS,  /* the same value twice in a row */
};

/* Which source a value came from. */
enum hwrng_source {
    HWRNG_NONE,
    HWRNG_RDSEED,
    HWRNG_RDRAND,
};

/* The outcome of hwrng_pick: the source used and what each source gave. */
struct hwrng_result {
    enum hwrng_source used;
    enum hwrng_verdict rdseed, rdrand;
};

/* One try of an instruction: true and *v when it delivered a value (carry set). */
typedef bool (*hwrng_try_fn)(uint64_t *v);

/*
 * Draws two values from one source (HWRNG_TRIES tries each) and checks them:
 * neither all ones, and the second differs from the first.
 * => HWRNG_OK: *out is the second value; otherwise *out is unchanged.
 * => try_once NULL: HWRNG_ABSENT.
 */
enum hwrng_verdict hwrng_draw(hwrng_try_fn try_once, uint64_t *out);

/*
 * RDSEED's value if it passes (a seed straight from the entropy source), else
 * RDRAND's; either may be NULL (absent). Fills *res (if not NULL) with the
 * source used and each source's verdict (RDRAND's is HWRNG_UNTRIED when
 * RDSEED passed). Returns false, *out unchanged, if neither passes.
 */
bool hwrng_pick(hwrng_try_fn rdseed, hwrng_try_fn rdrand, uint64_t *out, struct hwrng_result *res);

/* "RDSEED", "RDRAND" or "no CPU source". */
const char *hwrng_source_name(enum hwrng_source s);
/* A few words for a verdict: "absent", "ok", "returned all ones", ... */
const char *hwrng_verdict_name(enum hwrng_verdict v);

/*
 * One line's worth on what was discarded, for the boot log: "" when nothing
 * was (a source absent is not news), else e.g. "RDSEED discarded: it
 * repeated its last value". Returns buf (always NUL terminated).
 */
char *hwrng_discarded(const struct hwrng_result *res, char *buf, size_t cap);

#endif
