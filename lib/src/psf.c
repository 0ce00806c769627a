/*
 * psf: PC Screen Font parsing.
 *
 *   PSF1: 2-byte magic 36 04, mode, charsize (= height; width is 8);
 *         256 glyphs, or 512 with mode bit 0; a Unicode table follows the
 *         glyphs if mode bit 1 or 2 is set: per glyph, u16 code points up
 *         to 0xffff, with 0xfffe starting combining sequences.
 *   PSF2: 32-byte header (magic 72 b5 4a 86, version, headersize, flags,
 *         length, charsize, height, width); a Unicode table follows if flags
 *         bit 0 is set: per glyph, UTF-8 code points up to 0xff, with 0xfe
 *         starting sequences.
 *
 * Debian's Lat15 fonts do not store glyphs in code-point order, so the table
 * matters: this parser turns it into a 256-entry Latin-1 lookup, which is
 * all the console needs. Sequences are skipped. Every offset is checked
 * against the buffer; a malformed table ends the lookup early rather than
 * reading past the end. Called by the kernel's framebuffer console
 * (kernel/dev/fbcon.c) and stage 1's post-mortem screen (stage1/efi/fbtext.c).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/psf.h>

#define PSF1_MAGIC0      0x36
#define PSF1_MAGIC1      0x04
#define PSF1_MODE512     0x01
#define PSF1_MODEHASTAB  0x02
#define PSF1_MODEHASSEQ  0x04
#define PSF1_HEADER_SIZE 4
#define PSF1_SEPARATOR   0xffff
#define PSF1_STARTSEQ    0xfffe

#define PSF2_MAGIC       0x864ab572u
#define PSF2_HAS_UNICODE 0x01u
#define PSF2_HEADER_SIZE 32
#define PSF2_SEPARATOR   0xff
#define PSF2_STARTSEQ    0xfe

#define PSF_MAX_DIMENSION 64 /* pixels; larger fonts are not console fonts */

static uint32_t read_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void map_code_point(struct psf_font *font, uint32_t cp, uint32_t glyph)
{
    if (cp < 256 && font->latin1[cp] == PSF_NO_GLYPH)
        font->latin1[cp] = (uint16_t)glyph;
}

static void psf1_read_table(struct psf_font *font, const uint8_t *p, const uint8_t *end)
{
    for (uint32_t glyph = 0; glyph < font->glyph_count; glyph++) {
        bool in_sequence = false;
        for (;;) {
            if (end - p < 2)
                return;
            uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8;
            p += 2;
            if (v == PSF1_SEPARATOR)
                break;
            if (v == PSF1_STARTSEQ)
                in_sequence = true;
            else if (!in_sequence)
                map_code_point(font, v, glyph);
        }
    }
}

/* Decodes one UTF-8 code point at *pp; returns false on a malformed one. */
static bool utf8_next(const uint8_t **pp, const uint8_t *end, uint32_t *cp)
{
    const uint8_t *p = *pp;
    uint32_t lead = p[0], len, v;
    if (lead < 0x80) {
        len = 1;
        v = lead;
    } else if ((lead & 0xe0) == 0xc0) {
        len = 2;
        v = lead & 0x1f;
    } else if ((lead & 0xf0) == 0xe0) {
        len = 3;
        v = lead & 0x0f;
    } else if ((lead & 0xf8) == 0xf0) {
        len = 4;
        v = lead & 0x07;
    } else {
        return false;
    }
    if ((size_t)(end - p) < len)
        return false;
    for (uint32_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return false;
        v = v << 6 | (p[i] & 0x3f);
    }
    *pp = p + len;
    *cp = v;
    return true;
}

static void psf2_read_table(struct psf_font *font, const uint8_t *p, const uint8_t *end)
{
    for (uint32_t glyph = 0; glyph < font->glyph_count; glyph++) {
        bool in_sequence = false;
        for (;;) {
            if (p >= end)
                return;
            if (*p == PSF2_SEPARATOR) {
                p++;
                break;
            }
            if (*p == PSF2_STARTSEQ) {
                in_sequence = true;
                p++;
                continue;
            }
            uint32_t cp;
            if (!utf8_next(&p, end, &cp))
                return;
            if (!in_sequence)
                map_code_point(font, cp, glyph);
        }
    }
}

const char *psf_parse(const void *data, size_t size, struct psf_font *out)
{
    const uint8_t *p = data;
    const uint8_t *end = p + size;
    bool psf2 = false, has_table = false;

    for (unsigned i = 0; i < 256; i++)
        out->latin1[i] = PSF_NO_GLYPH;

    if (size >= PSF1_HEADER_SIZE && p[0] == PSF1_MAGIC0 && p[1] == PSF1_MAGIC1) {
        uint8_t mode = p[2];
        out->width = 8;
        out->height = p[3];
        out->row_bytes = 1;
        out->bytes_per_glyph = p[3];
        out->glyph_count = (mode & PSF1_MODE512) ? 512 : 256;
        out->glyphs = p + PSF1_HEADER_SIZE;
        has_table = (mode & (PSF1_MODEHASTAB | PSF1_MODEHASSEQ)) != 0;
    } else if (size >= PSF2_HEADER_SIZE && read_le32(p) == PSF2_MAGIC) {
        uint32_t header_size = read_le32(p + 8);
        uint32_t flags = read_le32(p + 12);
        psf2 = true;
        out->glyph_count = read_le32(p + 16);
        out->bytes_per_glyph = read_le32(p + 20);
        out->height = read_le32(p + 24);
        out->width = read_le32(p + 28);
        if (header_size < PSF2_HEADER_SIZE || header_size > size)
            return "bad header size";
        if (out->width == 0 || out->width > PSF_MAX_DIMENSION)
            return "bad glyph width";
        out->row_bytes = (out->width + 7) / 8;
        if (out->height > PSF_MAX_DIMENSION || out->bytes_per_glyph != out->row_bytes * out->height)
            return "glyph size does not match width and height";
        if (out->glyph_count == 0 || out->glyph_count > 65535)
            return "bad glyph count";
        out->glyphs = p + header_size;
        has_table = (flags & PSF2_HAS_UNICODE) != 0;
    } else {
        return "bad magic (neither PSF1 nor PSF2)";
    }

    if (out->height == 0 || out->height > PSF_MAX_DIMENSION)
        return "bad glyph height";
    if ((size_t)(end - out->glyphs) / out->bytes_per_glyph < out->glyph_count)
        return "glyphs past the end of the file";

    const uint8_t *table = out->glyphs + (size_t)out->glyph_count * out->bytes_per_glyph;
    if (!has_table) {
        for (uint32_t cp = 0; cp < 256 && cp < out->glyph_count; cp++)
            out->latin1[cp] = (uint16_t)cp;
    } else if (psf2) {
        psf2_read_table(out, table, end);
    } else {
        psf1_read_table(out, table, end);
    }
    return NULL;
}

const uint8_t *psf_glyph(const struct psf_font *font, uint8_t c)
{
    uint16_t g = font->latin1[c];
    if (g == PSF_NO_GLYPH)
        g = font->latin1['?'];
    if (g == PSF_NO_GLYPH)
        g = 0;
    return font->glyphs + (size_t)g * font->bytes_per_glyph;
}
