/*
 * check: the assertion macros host tests share. A failed check prints its
 * place and expression and the run goes on, so one run shows every failure;
 * the test's main prints the tally as `N passed, M failed` and exits non-zero
 * on any failure. The test executable defines check_passed and check_failed.
 */
#ifndef CANOPY_CHECK_H
#define CANOPY_CHECK_H

#include <stdio.h>

extern unsigned check_passed, check_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

/* As CHECK, with a printf-style message saying what was seen. */
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* Runs one test function (with arguments, if any) and names it when it fails. */
#define RUN_ARGS(test, ...)                                                                        \
    do {                                                                                           \
        unsigned before = check_failed;                                                            \
        test(__VA_ARGS__);                                                                         \
        if (check_failed != before)                                                                \
            fprintf(stderr, "FAIL %s\n", #test);                                                   \
    } while (0)
#define RUN(test) RUN_ARGS(test)

#endif
