/*
 * psf_test: the PSF parser on the very font the kernel embeds, on
 * hand-built PSF1/PSF2 files with Unicode tables, and on every truncation
 * and on random corruptions of the real font (under ASan: no read outside
 * the buffer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>
#include <canopy/psf.h>

#include "klib_test.h"

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    uint8_t *buf = malloc(1 << 20);
    *size = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static bool glyph_blank(const struct psf_font *font, const uint8_t *g)
{
    for (uint32_t i = 0; i < font->bytes_per_glyph; i++)
        if (g[i] != 0)
            return false;
    return true;
}

static void test_psf_real_font_maps_ascii_and_latin1(const uint8_t *data, size_t size)
{
    struct psf_font font;
    CHECK(psf_parse(data, size, &font) == NULL);
    CHECK(font.width == 8 && font.height == 16 && font.row_bytes == 1);
    CHECK(font.glyph_count >= 256);
    for (unsigned c = 0x20; c < 0x7f; c++)
        CHECK(font.latin1[c] != PSF_NO_GLYPH && font.latin1[c] < font.glyph_count);
    CHECK(font.latin1[0xe9] != PSF_NO_GLYPH); /* é: the Lat15 set covers Latin-1 */
    CHECK(glyph_blank(&font, psf_glyph(&font, ' ')));
    CHECK(!glyph_blank(&font, psf_glyph(&font, 'A')));
    CHECK(memcmp(psf_glyph(&font, 'A'), psf_glyph(&font, 'B'), font.bytes_per_glyph) != 0);
    /* The file's glyph order is not Latin-1 order: the table was needed. */
    unsigned moved = 0;
    for (unsigned c = 0; c < 256; c++)
        moved += font.latin1[c] != c;
    CHECK(moved > 0);
}

static void test_psf_every_truncation_is_rejected(const uint8_t *data, size_t size)
{
    struct psf_font font;
    size_t glyph_end = 4 + 256 * 16; /* PSF1 header + glyphs */
    unsigned rejected = 0, accepted_short = 0;
    for (size_t n = 0; n < glyph_end; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, data, n);
        if (psf_parse(copy, n, &font) != NULL)
            rejected++;
        else
            accepted_short++;
        free(copy);
    }
    CHECK(rejected == glyph_end && accepted_short == 0);
    /* A truncated Unicode table is fine: fewer code points mapped, no overrun. */
    for (size_t n = glyph_end; n <= size; n += 7) {
        uint8_t *copy = malloc(n);
        memcpy(copy, data, n);
        CHECK(psf_parse(copy, n, &font) == NULL);
        free(copy);
    }
}

static void test_psf_random_corruption_stays_in_bounds(const uint8_t *data, size_t size)
{
    srand(1234);
    uint8_t *copy = malloc(size);
    unsigned parsed = 0;
    for (int round = 0; round < 3000; round++) {
        memcpy(copy, data, size);
        int flips = 1 + rand() % 8;
        for (int i = 0; i < flips; i++) {
            /* Hit the header often: that is where sizes live. */
            size_t at = (rand() % 2) ? (size_t)(rand() % 32) : (size_t)rand() % size;
            copy[at] = (uint8_t)rand();
        }
        struct psf_font font;
        if (psf_parse(copy, size, &font) != NULL)
            continue;
        parsed++;
        bool inside = true;
        for (unsigned c = 0; c < 256; c++) {
            const uint8_t *g = psf_glyph(&font, (uint8_t)c);
            inside = inside && g >= copy && g + font.bytes_per_glyph <= copy + size;
        }
        CHECK(inside);
    }
    CHECK(parsed > 0);
    free(copy);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A PSF2 file with 4 glyphs of 10x3 pixels (2 bytes per row) and a UTF-8 table. */
static size_t build_psf2(uint8_t *buf, uint32_t width, uint32_t bytes_per_glyph)
{
    memset(buf, 0, 256);
    put32(buf + 0, 0x864ab572u);
    put32(buf + 4, 0);
    put32(buf + 8, 32);
    put32(buf + 12, 1); /* has a Unicode table */
    put32(buf + 16, 4);
    put32(buf + 20, bytes_per_glyph);
    put32(buf + 24, 3);
    put32(buf + 28, width);
    for (int g = 0; g < 4; g++)
        memset(buf + 32 + g * 6, 0x10 * (g + 1), 6);
    uint8_t table[] = {
        'A',  0xff,                   /* glyph 0: A */
        'B',  0xfe, 'x',  'y',  0xff, /* glyph 1: B, and the sequence "xy" */
        0xc3, 0xa9, 'e',  0xff,       /* glyph 2: é (U+00E9) and e */
        0xe2, 0x82, 0xac, '?',  0xff, /* glyph 3: € (not Latin-1) and ? */
    };
    memcpy(buf + 32 + 24, table, sizeof(table));
    return 32 + 24 + sizeof(table);
}

static void test_psf2_unicode_table_is_decoded(void)
{
    uint8_t buf[256];
    size_t n = build_psf2(buf, 10, 6);
    struct psf_font font;
    CHECK(psf_parse(buf, n, &font) == NULL);
    CHECK(font.width == 10 && font.height == 3 && font.row_bytes == 2);
    CHECK(font.latin1['A'] == 0);
    CHECK(font.latin1['B'] == 1);
    CHECK(font.latin1['x'] == PSF_NO_GLYPH && font.latin1['y'] == PSF_NO_GLYPH);
    CHECK(font.latin1[0xe9] == 2 && font.latin1['e'] == 2);
    CHECK(font.latin1['?'] == 3);
    CHECK(psf_glyph(&font, 'Z') == psf_glyph(&font, '?')); /* unmapped falls back to '?' */
    CHECK(psf_glyph(&font, 'B')[0] == 0x20);
}

static void test_psf2_inconsistent_header_is_rejected(void)
{
    uint8_t buf[256];
    struct psf_font font;
    size_t n = build_psf2(buf, 10, 4); /* 10 px need 2 bytes per row: 6, not 4 */
    CHECK(psf_parse(buf, n, &font) != NULL);
    n = build_psf2(buf, 0, 0);
    CHECK(psf_parse(buf, n, &font) != NULL);
    n = build_psf2(buf, 10, 6);
    put32(buf + 8, 4000); /* header larger than the file */
    CHECK(psf_parse(buf, n, &font) != NULL);
    n = build_psf2(buf, 10, 6);
    put32(buf + 16, 0x10000000); /* more glyphs than bytes */
    CHECK(psf_parse(buf, n, &font) != NULL);
    n = build_psf2(buf, 10, 6);
    buf[0] ^= 1;
    CHECK(psf_parse(buf, n, &font) != NULL);
}

static void test_psf1_without_table_maps_identity(void)
{
    static uint8_t buf[4 + 256 * 8];
    buf[0] = 0x36;
    buf[1] = 0x04;
    buf[2] = 0; /* 256 glyphs, no table */
    buf[3] = 8;
    for (int g = 0; g < 256; g++)
        buf[4 + g * 8] = (uint8_t)g;
    struct psf_font font;
    CHECK(psf_parse(buf, sizeof(buf), &font) == NULL);
    CHECK(font.glyph_count == 256 && font.height == 8 && font.width == 8);
    for (int c = 0; c < 256; c++)
        CHECK(font.latin1[c] == c && psf_glyph(&font, (uint8_t)c)[0] == c);
    buf[3] = 0; /* zero height */
    CHECK(psf_parse(buf, sizeof(buf), &font) != NULL);
}

void psf_tests(const char *font_path)
{
    size_t size = 0;
    uint8_t *data = read_file(font_path, &size);
    CHECK(data != NULL && size > 4096);
    if (data != NULL && size > 4096) {
        RUN_ARGS(test_psf_real_font_maps_ascii_and_latin1, data, size);
        RUN_ARGS(test_psf_every_truncation_is_rejected, data, size);
        RUN_ARGS(test_psf_random_corruption_stays_in_bounds, data, size);
    }
    free(data);
    RUN(test_psf2_unicode_table_is_decoded);
    RUN(test_psf2_inconsistent_header_is_rejected);
    RUN(test_psf1_without_table_maps_identity);
}
