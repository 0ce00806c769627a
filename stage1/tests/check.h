/*
 * check: the few assertion macros the stage 1 host tests share. A failed check
 * prints its place and expression and the run goes on, so one run shows every
 * failure; load_test.c prints the final tally.
 */
#ifndef STAGE1_TESTS_CHECK_H
#define STAGE1_TESTS_CHECK_H

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

/* Runs one test function and names it when it fails. */
#define RUN(test)                                                                                  \
    do {                                                                                           \
        unsigned before = check_failed;                                                            \
        test();                                                                                    \
        if (check_failed != before)                                                                \
            fprintf(stderr, "FAIL %s\n", #test);                                                   \
    } while (0)

void elf_tests(void);
void config_tests(void);
void mapplan_tests(void);
void manifest_pt_tests(void);

#endif
