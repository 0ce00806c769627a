/*
 * The stage 1 host tests' shared declarations; the assertion macros come from
 * tests/include/canopy/check.h.
 */
#ifndef STAGE1_TESTS_CHECK_H
#define STAGE1_TESTS_CHECK_H

#include <canopy/check.h>

void elf_tests(void);
void config_tests(void);
void mapplan_tests(void);
void manifest_pt_tests(void);
void claim_tests(void);

#endif
