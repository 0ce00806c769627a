/*
 * fbtext: stage 1's last-words screen. Draws a few lines of text at the top
 * of the framebuffer, white on dark red, with the PSF console font the build
 * embeds (font/console_font.S, parsed by lib's psf.c): the kernel console's.
 *
 * It needs no firmware service, so it works while boot services run, after
 * ExitBootServices and from an exception handler: only the framebuffer's
 * physical address, identity-mapped in the firmware's page tables, is
 * written. Pixels are written, never read. Called by efi/fault.c (exception
 * reports) and efi/reset.c (the fatal line after ExitBootServices).
 */
#include <canopy/font.h>
#include <canopy/psf.h>

#include "fw_efi.h"

#define MARGIN 8 /* pixels around the text block */

static struct {
    struct canopy_framebuffer fb;
    struct psf_font font;
    bool font_ok, fb_ok;
    uint32_t row; /* the next text row to draw */
} fbt;

static void font_init(void)
{
    static bool tried;
    if (tried)
        return;
    tried = true;
    fbt.font_ok = psf_parse(canopy_font_psf, (size_t)(canopy_font_psf_end - canopy_font_psf),
                            &fbt.font) == NULL;
}

void fbtext_use(const struct canopy_framebuffer *fb)
{
    font_init();
    fbt.fb = *fb;
    fbt.row = 0;
    fbt.fb_ok = fb->format != CANOPY_FB_NONE && fb->base != 0 && fb->bpp >= 8 && fb->bpp <= 32 &&
                fb->bpp % 8 == 0 && fb->width != 0 && fb->height != 0 &&
                (uint64_t)fb->pitch_bytes * fb->height <= fb->size_bytes &&
                (uint64_t)fb->width * (fb->bpp / 8) <= fb->pitch_bytes;
}

/* An 8-bit channel value scaled into the bits of `mask`. */
static uint32_t channel(uint8_t v, uint32_t mask)
{
    if (mask == 0)
        return 0;
    unsigned shift = (unsigned)__builtin_ctz(mask);
    uint32_t max = mask >> shift;
    return (uint32_t)(((uint64_t)v * max + 127) / 255) << shift & mask;
}

static uint32_t colour(uint8_t r, uint8_t g, uint8_t b)
{
    return channel(r, fbt.fb.red_mask) | channel(g, fbt.fb.green_mask) |
           channel(b, fbt.fb.blue_mask);
}

static void put_pixel(uint32_t x, uint32_t y, uint32_t value)
{
    volatile uint8_t *p =
        (volatile uint8_t *)(uintptr_t)(fbt.fb.base + (uint64_t)y * fbt.fb.pitch_bytes +
                                        (uint64_t)x * (fbt.fb.bpp / 8));
    for (uint32_t i = 0; i < fbt.fb.bpp / 8; i++)
        p[i] = (uint8_t)(value >> (8 * i));
}

void fbtext_line(const char *s)
{
    if (!fbt.fb_ok || !fbt.font_ok)
        return;
    uint32_t cw = fbt.font.width, ch = fbt.font.height;
    uint32_t top = MARGIN + fbt.row * ch;
    if (top + ch + MARGIN > fbt.fb.height)
        return;
    uint32_t bg = colour(0x80, 0x00, 0x00), fg = colour(0xff, 0xff, 0xff);
    /* The band: the whole width, with a margin above the first row and below each row. */
    uint32_t band_top = fbt.row == 0 ? 0 : top, band_end = top + ch + MARGIN;
    for (uint32_t y = band_top; y < band_end; y++)
        for (uint32_t x = 0; x < fbt.fb.width; x++)
            put_pixel(x, y, bg);
    uint32_t x0 = MARGIN;
    for (const char *c = s; *c && x0 + cw + MARGIN <= fbt.fb.width; c++, x0 += cw) {
        const uint8_t *glyph = psf_glyph(&fbt.font, (uint8_t)*c);
        for (uint32_t gy = 0; gy < ch; gy++) {
            const uint8_t *bits = glyph + gy * fbt.font.row_bytes;
            for (uint32_t gx = 0; gx < cw; gx++)
                if (bits[gx / 8] & (0x80 >> (gx % 8)))
                    put_pixel(x0 + gx, top + gy, fg);
        }
    }
    fbt.row++;
}
