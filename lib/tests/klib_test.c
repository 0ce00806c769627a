/*
 * Host tests for lib/: fmt is checked against the host libc's snprintf, which
 * nobody here wrote, over fixed and random formats; str against hand-worked
 * cases; the PSF parser (psf_test.c) on the font the kernel embeds; the shared
 * page and address helpers of include/canopy (headers_test.c); the checks on
 * hardware random values with scripted sources (hwrng_test.c); the ACPI RSDP's
 * checks (rsdp_test.c).
 * Usage: klib_test FONT.psf
 */
#include <canopy/fmt.h>
#include <canopy/str.h>

#include <canopy/check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klib_test.h"

unsigned check_passed, check_failed;

/* Formats with both implementations and compares text and returned length. */
#define SAME(fmtstr, ...)                                                                          \
    do {                                                                                           \
        char a[256], b[256];                                                                       \
        size_t na = fmt_snprintf(a, sizeof(a), fmtstr, __VA_ARGS__);                               \
        int nb = snprintf(b, sizeof(b), fmtstr, __VA_ARGS__);                                      \
        CHECKF(strcmp(a, b) == 0 && na == (size_t)nb, "format \"%s\": got \"%s\" want \"%s\"",     \
               fmtstr, a, b);                                                                      \
    } while (0)

static void test_fmt_matches_libc_for_fixed_cases(void)
{
    SAME("%d %i %u", 0, -1, 4000000000u);
    SAME("%d", (int)-2147483647 - 1);
    SAME("%lld", (long long)INT64_MIN);
    SAME("%llu", (unsigned long long)UINT64_MAX);
    SAME("%016llx-%016llx %016llx %c%c%c", 0xffff800000000000ull, 0x0001000000000000ull,
         0x7fffffffffffull, 'u', 'r', 'w');
    SAME("%x %X %o", 0xdeadbeefu, 0xdeadbeefu, 0755u);
    SAME("[%5d] [%-5d] [%05d]", 42, 42, 42);
    SAME("[%5d] [%05d]", -42, -42);
    SAME("[%s] [%10s] [%-10s] [%.3s] [%.*s]", "abc", "abc", "abc", "abcdef", 2, "xyz");
    SAME("[%*d] [%-*d]", 6, 7, 6, 7);
    SAME("%zu %zx", (size_t)12345, (size_t)0xabc);
    SAME("%hhu %hu", (unsigned char)44, (unsigned short)4464);
    SAME("100%% %c", 'z');
    SAME("%lx", 0x123456789abcdefUL);
}

static void test_fmt_truncates_and_reports_full_length(void)
{
    char buf[8];
    size_t n = fmt_snprintf(buf, sizeof(buf), "%s", "0123456789");
    CHECKF(n == 10, "length %zu", n);
    CHECKF(strcmp(buf, "0123456") == 0, "truncated to \"%s\"", buf);
    n = fmt_snprintf(NULL, 0, "%d", 12345);
    CHECKF(n == 5, "size 0 length %zu", n);
}

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wformat"
#pragma clang diagnostic ignored "-Wformat-invalid-specifier"
/* %.*s must not read the byte at the precision limit: the buffer below has no NUL. */
static void test_fmt_precision_stops_before_reading_past_limit(void)
{
    char *raw = malloc(3);
    memcpy(raw, "abc", 3);
    char buf[8];
    fmt_snprintf(buf, sizeof(buf), "[%.*s]", 3, raw);
    CHECKF(strcmp(buf, "[abc]") == 0, "got \"%s\"", buf);
    free(raw);
}

static void test_fmt_prints_unknown_conversion_literally(void)
{
    char buf[32];
    fmt_snprintf(buf, sizeof(buf), "a%qb%d", 5);
    CHECKF(strcmp(buf, "a%qb5") == 0, "got \"%s\"", buf);
    fmt_snprintf(buf, sizeof(buf), "end%");
    CHECKF(strcmp(buf, "end%") == 0, "got \"%s\"", buf);
}
#pragma clang diagnostic pop

static void test_fmt_random_numbers_match_libc(void)
{
    srand(1);
    for (int i = 0; i < 20000; i++) {
        uint64_t v = ((uint64_t)rand() << 40) ^ ((uint64_t)rand() << 20) ^ (uint64_t)rand();
        int w = rand() % 24;
        SAME("%*llx|%0*llu|%-*lld", w, (unsigned long long)v, w, (unsigned long long)v, w,
             (long long)v);
    }
}

static void test_str_parse_accepts_decimal_and_hex(void)
{
    uint64_t v = 0;
    CHECKF(str_parse_u64("1234", 4, &v) && v == 1234, "decimal");
    CHECKF(str_parse_u64("0x1f", 4, &v) && v == 31, "hex with prefix");
    CHECKF(str_parse_hex("ffffffff80000000", 16, &v) && v == 0xffffffff80000000ull, "hex");
    CHECKF(str_parse_u64("18446744073709551615", 20, &v) && v == UINT64_MAX, "max");
}

static void test_str_parse_rejects_bad_input_and_leaves_output(void)
{
    uint64_t v = 77;
    CHECKF(!str_parse_u64("", 0, &v) && v == 77, "empty");
    CHECKF(!str_parse_u64("0x", 2, &v) && v == 77, "bare prefix");
    CHECKF(!str_parse_u64("12a", 3, &v) && v == 77, "bad digit");
    CHECKF(!str_parse_u64("18446744073709551616", 20, &v) && v == 77, "overflow");
    CHECKF(!str_parse_hex("10000000000000000", 17, &v) && v == 77, "hex overflow");
    CHECKF(!str_parse_hex("-1", 2, &v) && v == 77, "sign");
}

static void test_str_copy_and_compare(void)
{
    char buf[4];
    CHECKF(str_copy(buf, "hello", sizeof(buf)) == 5 && strcmp(buf, "hel") == 0, "copy truncates");
    CHECKF(str_eq("abc", "abc") && !str_eq("abc", "abd") && !str_eq("ab", "abc"), "eq");
    CHECKF(str_ncmp("abcx", "abcy", 3) == 0 && str_ncmp("abc", "abd", 3) < 0, "ncmp");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FONT.psf\n", argv[0]);
        return 2;
    }
    test_fmt_matches_libc_for_fixed_cases();
    test_fmt_truncates_and_reports_full_length();
    test_fmt_precision_stops_before_reading_past_limit();
    test_fmt_prints_unknown_conversion_literally();
    test_fmt_random_numbers_match_libc();
    test_str_parse_accepts_decimal_and_hex();
    test_str_parse_rejects_bad_input_and_leaves_output();
    test_str_copy_and_compare();
    psf_tests(argv[1]);
    headers_tests();
    hwrng_tests();
    rsdp_tests();
    return check_finish();
}
