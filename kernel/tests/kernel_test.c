/*
 * kernel_test: host tests for the kernel's pure code (the boot-info check,
 * the command line).
 */
#include <stdio.h>

#include "check.h"

unsigned check_passed, check_failed;

int main(void)
{
    bootinfo_tests();
    cmdline_tests();
    return check_finish();
}
