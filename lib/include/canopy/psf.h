/*
 * psf: a parser for PC Screen Font files (PSF1 and PSF2), the format of
 * Debian's console fonts. Pure code over a byte buffer: it validates every
 * size and offset against the buffer before using it.
 */
#ifndef CANOPY_PSF_H
#define CANOPY_PSF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PSF_NO_GLYPH UINT16_MAX

struct psf_font {
    const uint8_t *glyphs; /* glyph_count bitmaps, bytes_per_glyph each */
    uint32_t glyph_count;
    uint32_t bytes_per_glyph;
    uint32_t width, height; /* pixels */
    uint32_t row_bytes;     /* bytes per bitmap row: (width + 7) / 8 */
    uint16_t latin1[256];   /* glyph for each code point U+0000..U+00FF, or PSF_NO_GLYPH */
};

/*
 * Parses the font in data[0..size). Fills out and returns NULL on success,
 * else a short reason ("bad magic", "glyphs past the end", ...). Code points
 * come from the font's Unicode table when it has one, else glyph i is code
 * point i.
 */
const char *psf_parse(const void *data, size_t size, struct psf_font *out);

/* The glyph bitmap for a byte taken as a Latin-1 code point ('?' if none). */
const uint8_t *psf_glyph(const struct psf_font *font, uint8_t c);

#endif
