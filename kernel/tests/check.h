/*
 * check: assertion macros for the kernel's host tests. A failed check prints
 * its place and expression and the run goes on, so one run shows every
 * failure; kernel_test.c prints the final tally.
 */
#ifndef KERNEL_TESTS_CHECK_H
#define KERNEL_TESTS_CHECK_H

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

#define RUN(test)                                                                                  \
    do {                                                                                           \
        unsigned before = check_failed;                                                            \
        test();                                                                                    \
        if (check_failed != before)                                                                \
            fprintf(stderr, "FAIL %s\n", #test);                                                   \
    } while (0)

#define RUN_ARGS(test, ...)                                                                        \
    do {                                                                                           \
        unsigned before = check_failed;                                                            \
        test(__VA_ARGS__);                                                                         \
        if (check_failed != before)                                                                \
            fprintf(stderr, "FAIL %s\n", #test);                                                   \
    } while (0)

void psf_tests(const char *font_path);
void bootinfo_tests(void);
void cmdline_tests(void);

#endif
