/*
 * kernel_test: host tests for the kernel's pure code (the PSF parser, the
 * boot-info check). Usage: kernel_test FONT.psf
 */
#include <stdio.h>

#include "check.h"

unsigned check_passed, check_failed;

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FONT.psf\n", argv[0]);
        return 2;
    }
    psf_tests(argv[1]);
    bootinfo_tests();
    cmdline_tests();
    printf("%u passed, %u failed\n", check_passed, check_failed);
    return check_failed != 0;
}
