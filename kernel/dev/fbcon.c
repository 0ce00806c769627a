/*
 * fbcon: the framebuffer console.
 *
 * Model: a grid of characters `want` (what the screen should show) and a
 * grid `shown` (what the pixels show now). Writing only touches `want`;
 * scrolling moves its rows. fbcon_flush() draws each cell where the two
 * differ and copies it over. The framebuffer is therefore only ever written,
 * never read: on real hardware it is uncached or write-combining and reads
 * are very slow. A scroll repaints the non-blank cells, not every pixel.
 *
 * Pixel formats: the colour of a pixel is computed once per colour from the
 * format (RGBX, BGRX or channel masks) and stored with 2, 3 or 4 bytes per
 * pixel. Rows are `pitch` bytes apart, whatever the width.
 *
 * Very large screens get the font scaled 2x so the text stays readable; the
 * grid is capped at FBCON_MAX_COLS x FBCON_MAX_ROWS cells.
 *
 * Called through core/console.c only; single CPU, no locking.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/font.h>
#include <kernel/fbcon.h>
#include <canopy/psf.h>

#define FBCON_MAX_COLS   320
#define FBCON_MAX_ROWS   160
#define FBCON_MAX_PIXELS 16384 /* per side */
#define FBCON_TAB        8
#define CURSOR_CELL      0 /* a grid value no glyph uses: forces a repaint of that cell */

static struct {
    bool up;
    uint8_t *pixels;
    uint32_t width, height, pitch, bytes_per_pixel;
    uint32_t fg, bg;
    uint32_t scale;
    uint32_t cell_w, cell_h; /* pixels per character cell */
    uint32_t cols, rows;
    uint32_t cx, cy;
    struct psf_font font;
} con;

static uint8_t want[FBCON_MAX_ROWS][FBCON_MAX_COLS];
static uint8_t shown[FBCON_MAX_ROWS][FBCON_MAX_COLS];

static bool mask_is_contiguous(uint32_t m)
{
    if (m == 0)
        return false;
    uint32_t low = m >> __builtin_ctz(m);
    return (low & (low + 1)) == 0;
}

/* An 8-bit channel value scaled into the bits of `mask`. */
static uint32_t channel(uint8_t v, uint32_t mask)
{
    unsigned shift = (unsigned)__builtin_ctz(mask);
    uint32_t max = mask >> shift;
    return (((uint32_t)v * max + 127) / 255) << shift;
}

static uint32_t colour(const struct canopy_framebuffer *fb, uint8_t r, uint8_t g, uint8_t b)
{
    switch (fb->format) {
    case CANOPY_FB_RGBX:
        return (uint32_t)r | (uint32_t)g << 8 | (uint32_t)b << 16;
    case CANOPY_FB_BGRX:
        return (uint32_t)b | (uint32_t)g << 8 | (uint32_t)r << 16;
    default:
        return channel(r, fb->red_mask) | channel(g, fb->green_mask) | channel(b, fb->blue_mask);
    }
}

/* Checks the framebuffer description; returns NULL or the problem. */
static const char *fbcon_check(const struct canopy_framebuffer *fb, uint32_t *bytes_per_pixel)
{
    uint32_t bpp = fb->bpp;
    switch (fb->format) {
    case CANOPY_FB_NONE:
        return "no framebuffer";
    case CANOPY_FB_RGBX:
    case CANOPY_FB_BGRX:
        if (bpp != 32)
            return "RGB/BGR framebuffer without 32 bits per pixel";
        break;
    case CANOPY_FB_BITMASK: {
        uint32_t r = fb->red_mask, g = fb->green_mask, b = fb->blue_mask;
        if (!mask_is_contiguous(r) || !mask_is_contiguous(g) || !mask_is_contiguous(b))
            return "bitmask framebuffer with an empty or split channel mask";
        if ((r & g) || (r & b) || (g & b))
            return "bitmask framebuffer with overlapping channel masks";
        if (bpp == 0) {
            uint32_t all = r | g | b | fb->reserved_mask;
            bpp = (32 - (uint32_t)__builtin_clz(all) + 7) / 8 * 8;
        }
        if (bpp != 16 && bpp != 24 && bpp != 32)
            return "bitmask framebuffer with an unsupported pixel size";
        if (bpp < 32 && ((r | g | b) >> bpp) != 0)
            return "bitmask framebuffer with masks wider than a pixel";
        break;
    }
    default:
        return "unknown framebuffer format";
    }
    *bytes_per_pixel = bpp / 8;
    if (fb->base == 0)
        return "framebuffer at physical address 0";
    if (fb->width == 0 || fb->height == 0 || fb->width > FBCON_MAX_PIXELS ||
        fb->height > FBCON_MAX_PIXELS)
        return "framebuffer size out of range";
    if ((uint64_t)fb->pitch_bytes < (uint64_t)fb->width * *bytes_per_pixel)
        return "framebuffer pitch smaller than a row of pixels";
    if ((uint64_t)fb->pitch_bytes * fb->height > fb->size_bytes)
        return "framebuffer rows extend past its size";
    return NULL;
}

static inline void put_pixel(uint8_t *p, uint32_t v)
{
    switch (con.bytes_per_pixel) {
    case 4:
        *(volatile uint32_t *)p = v;
        break;
    case 3:
        ((volatile uint8_t *)p)[0] = (uint8_t)v;
        ((volatile uint8_t *)p)[1] = (uint8_t)(v >> 8);
        ((volatile uint8_t *)p)[2] = (uint8_t)(v >> 16);
        break;
    default:
        *(volatile uint16_t *)p = (uint16_t)v;
        break;
    }
}

static void fill_rect(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t v)
{
    for (uint32_t row = y; row < y + h; row++) {
        uint8_t *p = con.pixels + (size_t)row * con.pitch + (size_t)x * con.bytes_per_pixel;
        for (uint32_t i = 0; i < w; i++, p += con.bytes_per_pixel)
            put_pixel(p, v);
    }
}

static void draw_cell(uint32_t col, uint32_t row, uint8_t c)
{
    const uint8_t *glyph = psf_glyph(&con.font, c);
    uint32_t x0 = col * con.cell_w, y0 = row * con.cell_h;
    for (uint32_t gy = 0; gy < con.font.height; gy++) {
        const uint8_t *bits = glyph + (size_t)gy * con.font.row_bytes;
        for (uint32_t sy = 0; sy < con.scale; sy++) {
            uint32_t y = y0 + gy * con.scale + sy;
            uint8_t *p = con.pixels + (size_t)y * con.pitch + (size_t)x0 * con.bytes_per_pixel;
            for (uint32_t gx = 0; gx < con.font.width; gx++) {
                bool on = bits[gx / 8] & (0x80u >> (gx % 8));
                for (uint32_t sx = 0; sx < con.scale; sx++, p += con.bytes_per_pixel)
                    put_pixel(p, on ? con.fg : con.bg);
            }
        }
    }
}

static void draw_cursor(void)
{
    uint32_t h = con.scale * 2;
    fill_rect(con.cx * con.cell_w, (con.cy + 1) * con.cell_h - h, con.cell_w, h, con.fg);
    shown[con.cy][con.cx] = CURSOR_CELL;
}

const char *fbcon_init(const struct canopy_framebuffer *fb, void *pixels)
{
    con.up = false;
    uint32_t bytes_per_pixel = 0;
    const char *why = fbcon_check(fb, &bytes_per_pixel);
    if (why != NULL)
        return why;
    why = psf_parse(canopy_font_psf, (size_t)(canopy_font_psf_end - canopy_font_psf), &con.font);
    if (why != NULL)
        return why;

    con.pixels = pixels;
    con.width = fb->width;
    con.height = fb->height;
    con.pitch = fb->pitch_bytes;
    con.bytes_per_pixel = bytes_per_pixel;
    con.fg = colour(fb, 0xc0, 0xc0, 0xc0);
    con.bg = colour(fb, 0x00, 0x00, 0x00);
    con.scale = (fb->width >= 2560 && fb->height >= 1600) ? 2 : 1;
    con.cell_w = con.font.width * con.scale;
    con.cell_h = con.font.height * con.scale;
    con.cols = fb->width / con.cell_w;
    con.rows = fb->height / con.cell_h;
    if (con.cols == 0 || con.rows == 0)
        return "framebuffer smaller than one character";
    if (con.cols > FBCON_MAX_COLS)
        con.cols = FBCON_MAX_COLS;
    if (con.rows > FBCON_MAX_ROWS)
        con.rows = FBCON_MAX_ROWS;
    con.cx = con.cy = 0;

    fill_rect(0, 0, con.width, con.height, con.bg);
    for (uint32_t r = 0; r < FBCON_MAX_ROWS; r++)
        for (uint32_t c = 0; c < FBCON_MAX_COLS; c++)
            want[r][c] = shown[r][c] = ' ';
    con.up = true;
    draw_cursor();
    return NULL;
}

static void scroll_up(void)
{
    for (uint32_t r = 1; r < con.rows; r++)
        for (uint32_t c = 0; c < con.cols; c++)
            want[r - 1][c] = want[r][c];
    for (uint32_t c = 0; c < con.cols; c++)
        want[con.rows - 1][c] = ' ';
}

static void newline(void)
{
    con.cx = 0;
    if (++con.cy == con.rows) {
        scroll_up();
        con.cy = con.rows - 1;
    }
}

void fbcon_write(const char *s, size_t n)
{
    if (!con.up)
        return;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        switch (c) {
        case '\n':
            newline();
            break;
        case '\r':
            con.cx = 0;
            break;
        case '\b':
            if (con.cx > 0)
                con.cx--;
            break;
        case '\t':
            do {
                want[con.cy][con.cx] = ' ';
                if (++con.cx == con.cols)
                    newline();
            } while (con.cx % FBCON_TAB != 0);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                c = '?'; /* a control character we do not interpret */
            want[con.cy][con.cx] = c;
            if (++con.cx == con.cols)
                newline();
            break;
        }
    }
}

void fbcon_flush(void)
{
    if (!con.up)
        return;
    for (uint32_t r = 0; r < con.rows; r++)
        for (uint32_t c = 0; c < con.cols; c++)
            if (want[r][c] != shown[r][c]) {
                draw_cell(c, r, want[r][c]);
                shown[r][c] = want[r][c];
            }
    draw_cursor();
}

void fbcon_size(uint32_t *cols, uint32_t *rows)
{
    *cols = con.up ? con.cols : 0;
    *rows = con.up ? con.rows : 0;
}
