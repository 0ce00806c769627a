/*
 * rt: what the compiler's hardening calls into in stage 1 and the kernel.
 *
 * - The stack protector (-fstack-protector-strong). Clang's ELF targets read
 *   the canary from __stack_chk_guard and call __stack_chk_fail on a mismatch;
 *   its Windows (PE, MS ABI) target keeps __security_cookie XORed with the
 *   stack pointer in each frame and calls __security_check_cookie before the
 *   return. lib/src/rt.c defines both sets.
 * - UBSan (-fsanitize=undefined in the CANOPY_UBSAN build): the
 *   __ubsan_handle_* functions in lib/src/ubsan.c print one line per
 *   offending source location, `ubsan: FILE:LINE:COLUMN: what`, and carry on
 *   (the _abort variants stop).
 *
 * Each target says where reports go and how it stops (rt_set_sinks), and
 * seeds the canary (rt_canary_seed) before any protected function that is
 * already running returns. Until then the canary is a fixed value, and
 * reports go nowhere and stop with a trap.
 */
#ifndef CANOPY_RT_H
#define CANOPY_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hwrng_result; /* canopy/hwrng.h */

/* For the functions that run while the canary changes (the entry paths). */
#define RT_NO_STACK_PROTECTOR __attribute__((no_stack_protector))

/* Prints formatted text (one line per call from rt; the sink adds nothing). */
typedef void (*rt_report_fn)(const char *fmt, ...);
/* Prints one formatted line and stops: halts, resets or returns to the firmware. Never returns. */
typedef void (*rt_fatal_fn)(const char *fmt, ...);

/* Routes UBSan reports to report and stack-protector failures to fatal. */
void rt_set_sinks(rt_report_fn report, rt_fatal_fn fatal);

/* Where the canary came from. */
enum rt_seed {
    RT_SEED_CPU,           /* RDSEED or RDRAND only (hwrng_result.used says which) */
    RT_SEED_GIVEN,         /* the caller's seed only (the CPU has neither instruction) */
    RT_SEED_CPU_AND_GIVEN, /* both, mixed */
    RT_SEED_TSC,           /* neither: time stamp counter jitter, guessable */
};

/*
 * Sets a new random canary: RDSEED, else RDRAND (if CPUID offers them and
 * their values pass canopy/hwrng.h's checks) mixed with `given` when
 * given_ok, else time stamp counter readings. Returns which, and what each
 * CPU source gave in *hw (if not NULL).
 * => call it from a function built with RT_NO_STACK_PROTECTOR, with no
 *    protected function below it on the stack that will return: their frames
 *    hold the old canary.
 */
enum rt_seed rt_canary_seed(uint64_t given, bool given_ok, struct hwrng_result *hw);

/*
 * Where the canary came from, for the boot log: "RDSEED and the boot seed",
 * with what was discarded on the way ("RDRAND (RDSEED discarded: it repeated
 * its last value)"). => hw as rt_canary_seed filled it.
 */
void rt_seed_describe(enum rt_seed seed, const struct hwrng_result *hw, char *buf, size_t cap);

/*
 * A random value from RDSEED, else RDRAND (each checked in CPUID, and its
 * values checked by hwrng_pick); false if neither delivers one. *res (if not
 * NULL) says which source was used and what each gave.
 */
bool rt_cpu_random(uint64_t *out, struct hwrng_result *res);

#endif
