/*
 * The kernel host tests' shared declarations; the assertion macros come from
 * tests/include/canopy/check.h.
 */
#ifndef KERNEL_TESTS_CHECK_H
#define KERNEL_TESTS_CHECK_H

#include <canopy/check.h>

void bootinfo_tests(void);
void cmdline_tests(void);

#endif
