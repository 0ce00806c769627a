/*
 * check: the assertion macros every host test uses, and the one for fuzzers.
 *
 * A check records its outcome in check_passed or check_failed (the test
 * executable defines both) and, when it fails, prints its place and
 * expression on stderr:
 *
 *   CHECK(cond)             record and go on, so one run shows every failure
 *   CHECKF(cond, fmt, ...)  ... with a printf-style message saying what was seen
 *   CHECK_EQ(a, b)          ... comparing two integers (or enums), printing both
 *   REQUIRE(cond)           record, and on failure return from the test, a void
 *   REQUIREF(cond, fmt, ...)  function: for a check the rest of the test stands
 *   REQUIRE_EQ(a, b)          on (a status before its result is used, a pointer)
 *
 * CHECK_EQ and REQUIRE_EQ evaluate each side once and compare them as `a == b`
 * would (the usual arithmetic conversions). RUN(test) names a test whose
 * checks failed; check_finish() prints the tally and gives main's status.
 * FUZZ_FAIL() stops a fuzzer at once (abort: libFuzzer keeps the input), and
 * LLVMFuzzerTestOneInput is declared here once for every fuzzer that defines it.
 */
#ifndef CANOPY_CHECK_H
#define CANOPY_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern unsigned check_passed, check_failed;

/* Counts one check; on failure prints "FILE:LINE: check failed: WHAT". Returns ok. */
static inline bool check_record_(bool ok, const char *file, int line, const char *what)
{
    if (ok) {
        check_passed++;
        return true;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    return false;
}

/* One side of a failed CHECK_EQ, in decimal (signed if its type is) and in hex. */
static inline void check_print_(const char *side, unsigned long long v, bool is_signed)
{
    if (is_signed)
        fprintf(stderr, "    %s = %lld (%#llx)\n", side, (long long)v, v);
    else
        fprintf(stderr, "    %s = %llu (%#llx)\n", side, v, v);
}
#define CHECK_PRINT_(side, v)                                                                      \
    check_print_(side, (unsigned long long)(v), (__typeof__(v))-1 < (__typeof__(v))0)

/*
 * The shared bodies: `what` is the check as written (stringified by the public
 * macro, before its macros expand), `fail` what a failure does once reported.
 */
#define CHECK_IMPL_(cond, what, fail)                                                              \
    do {                                                                                           \
        if (!check_record_((cond), __FILE__, __LINE__, what)) {                                    \
            fail;                                                                                  \
        }                                                                                          \
    } while (0)
#define CHECKF_IMPL_(cond, what, fail, ...)                                                        \
    do {                                                                                           \
        if (!check_record_((cond), __FILE__, __LINE__, what)) {                                    \
            fprintf(stderr, "    ");                                                               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            fail;                                                                                  \
        }                                                                                          \
    } while (0)
#define CHECK_EQ_IMPL_(a, b, what, fail)                                                           \
    do {                                                                                           \
        const __typeof__(a) check_a_ = (a);                                                        \
        const __typeof__(b) check_b_ = (b);                                                        \
        typedef __typeof__((a) + (b)) check_common_t_; /* as `a == b` converts */                  \
        if (!check_record_((check_common_t_)check_a_ == (check_common_t_)check_b_, __FILE__,       \
                           __LINE__, what)) {                                                      \
            CHECK_PRINT_("left ", check_a_);                                                       \
            CHECK_PRINT_("right", check_b_);                                                       \
            fail;                                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK(cond)         CHECK_IMPL_(cond, #cond, (void)0)
#define CHECKF(cond, ...)   CHECKF_IMPL_(cond, #cond, (void)0, __VA_ARGS__)
#define CHECK_EQ(a, b)      CHECK_EQ_IMPL_(a, b, #a " == " #b, (void)0)
#define REQUIRE(cond)       CHECK_IMPL_(cond, #cond, return )
#define REQUIREF(cond, ...) CHECKF_IMPL_(cond, #cond, return, __VA_ARGS__)
#define REQUIRE_EQ(a, b)    CHECK_EQ_IMPL_(a, b, #a " == " #b, return )

/* Runs one test function (with arguments, if any) and names it when it fails. */
#define RUN_ARGS(test, ...)                                                                        \
    do {                                                                                           \
        unsigned before = check_failed;                                                            \
        test(__VA_ARGS__);                                                                         \
        if (check_failed != before)                                                                \
            fprintf(stderr, "FAIL %s\n", #test);                                                   \
    } while (0)
#define RUN(test) RUN_ARGS(test)

/* Prints "N passed, M failed" (checks) and returns main's exit status. */
static inline int check_finish(void)
{
    printf("%u passed, %u failed\n", check_passed, check_failed);
    return check_failed != 0;
}

/* Stops a fuzzer's run naming the place of the property that broke. */
#define FUZZ_FAIL()                                                                                \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: property violated\n", __FILE__, __LINE__);                         \
        abort();                                                                                   \
    } while (0)

/* A fuzzer's entry point: libFuzzer calls it with each input; it returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
