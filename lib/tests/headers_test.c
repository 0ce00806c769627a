/*
 * headers_test: the header-only helpers every target shares, canopy/page.h
 * and canopy/vaddr.h, at the edges where a round-up wraps or an address
 * crosses into the non-canonical hole. Expected values are worked by hand.
 */
#include <canopy/check.h>
#include <canopy/page.h>
#include <canopy/vaddr.h>
#include <stdint.h>

#include "klib_test.h"

static void test_page_sizes_and_rounding(void)
{
    CHECK_EQ(PAGE_SIZE, 4096ull);
    CHECK_EQ(PAGE_SIZE_2M, 512 * PAGE_SIZE);
    CHECK_EQ(PAGE_SIZE_1G, 512 * PAGE_SIZE_2M);
    CHECK_EQ(page_up(0), 0ull);
    CHECK_EQ(page_up(1), 0x1000ull);
    CHECK_EQ(page_up(0x1000), 0x1000ull);
    CHECK_EQ(page_up(0x1001), 0x2000ull);
    CHECK_EQ(page_down(0x1fff), 0x1000ull);
    CHECK_EQ(page_down(UINT64_MAX), 0xfffffffffffff000ull);
    CHECK_EQ(align_up(0x200001, PAGE_SIZE_2M), 0x400000ull);
    CHECK_EQ(align_down(0x7fffffff, PAGE_SIZE_1G), 0x40000000ull);
    CHECK(is_aligned(0x40000000, PAGE_SIZE_1G) && !is_aligned(0x40001000, PAGE_SIZE_2M));
    CHECK(page_is_aligned(0) && page_is_aligned(0xfffffffffffff000ull) && !page_is_aligned(0x800));
}

static void test_page_counts_never_wrap(void)
{
    CHECK_EQ(pages_for_bytes(0), 0ull);
    CHECK_EQ(pages_for_bytes(1), 1ull);
    CHECK_EQ(pages_for_bytes(4096), 1ull);
    CHECK_EQ(pages_for_bytes(4097), 2ull);
    CHECK_EQ(pages_for_bytes(UINT64_MAX), 1ull << 52); /* (x + 4095) / 4096 would give 0 */
    CHECK_EQ(pages_to_kib(3), 12ull);
    CHECK_EQ(pages_to_mib(256), 1ull);
    CHECK_EQ(pages_to_mib(255), 0ull);
    CHECK_EQ(bytes_to_kib(2047), 1ull);
    CHECK_EQ(bytes_to_mib(3 << 20), 3ull);
}

static void test_canonical_edges_4_and_5_levels(void)
{
    CHECK_EQ(va_bits(4), 48u);
    CHECK_EQ(va_bits(5), 57u);
    CHECK_EQ(va_lower_end(4), 0x0000800000000000ull);
    CHECK_EQ(va_upper_start(4), 0xffff800000000000ull);
    CHECK_EQ(va_lower_end(5), 0x0100000000000000ull);
    CHECK_EQ(va_upper_start(5), 0xff00000000000000ull);
    CHECK(va_is_canonical(0x00007fffffffffffull, 4) && !va_is_canonical(0x0000800000000000ull, 4));
    CHECK(!va_is_canonical(0xffff7fffffffffffull, 4) && va_is_canonical(0xffff800000000000ull, 4));
    CHECK(va_is_canonical(0x0000800000000000ull, 5) && !va_is_canonical(0x0100000000000000ull, 5));
    CHECK(va_is_canonical(0, 4) && va_is_canonical(UINT64_MAX, 4));
    /* A walk address with bit 47 set becomes an upper-half address. */
    CHECK_EQ(va_sign_extend(0x0000800000000000ull, 4), 0xffff800000000000ull);
    CHECK_EQ(va_sign_extend(0x0000ffffffffffffull, 4), UINT64_MAX);
    CHECK_EQ(va_sign_extend(0x00007ffffffff000ull, 4), 0x00007ffffffff000ull);
    CHECK_EQ(va_sign_extend(0x0100000000000000ull, 5), 0xff00000000000000ull);
}

static void test_canonical_ranges_stay_in_one_half(void)
{
    CHECK(va_range_is_canonical(0x1000, 0x1fff, 4));
    CHECK(va_range_is_canonical(0xffff800000000000ull, UINT64_MAX, 4));
    CHECK(!va_range_is_canonical(0x00007ffffffff000ull, 0x0000800000000fffull,
                                 4)); /* into the hole */
    CHECK(!va_range_is_canonical(0x00007ffffffff000ull, 0xffff800000000fffull, 4)); /* across it */
    CHECK(!va_range_is_canonical(0x2000, 0x1fff, 4));                               /* wraps */
    CHECK(va_range_is_canonical(0x00007ffffffff000ull, 0x0000800000000fffull, 5));
}

void headers_tests(void)
{
    RUN(test_page_sizes_and_rounding);
    RUN(test_page_counts_never_wrap);
    RUN(test_canonical_edges_4_and_5_levels);
    RUN(test_canonical_ranges_stay_in_one_half);
}
