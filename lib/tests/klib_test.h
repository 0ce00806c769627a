/*
 * The parts of klib_test kept in their own files: each runs its tests
 * through the checks of canopy/check.h.
 */
#ifndef LIB_TESTS_KLIB_TEST_H
#define LIB_TESTS_KLIB_TEST_H

/* The tests of canopy/page.h and canopy/vaddr.h, the headers every target shares (headers_test.c).
 */
void headers_tests(void);

/* The PSF parser's tests, on the font file at font_path and on hand-built fonts (psf_test.c). */
void psf_tests(const char *font_path);

/* The checks on RDSEED's and RDRAND's values, with scripted sources (hwrng_test.c). */
void hwrng_tests(void);

/* The ACPI RSDP's checks on hand-built RSDPs (rsdp_test.c). */
void rsdp_tests(void);

#endif
