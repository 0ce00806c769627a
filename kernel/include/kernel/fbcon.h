/*
 * fbcon: a text console drawn with a PSF font on the GOP framebuffer.
 * Handles 32-bit RGB and BGR, bitmask formats of 16, 24 and 32 bits per
 * pixel, and any pitch. Output is buffered in a character grid and drawn by
 * fbcon_flush(), which repaints only the cells that changed.
 */
#ifndef KERNEL_FBCON_H
#define KERNEL_FBCON_H

#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>

/*
 * Starts the console on the framebuffer `fb` describes, whose bytes are
 * reachable at `pixels` (read-write), and clears the screen.
 * Returns NULL on success, else why the framebuffer or the font is unusable
 * (the console then stays off).
 */
const char *fbcon_init(const struct canopy_framebuffer *fb, void *pixels);

/* Puts n bytes into the grid (Latin-1; \n, \r, \b, \t understood). */
void fbcon_write(const char *s, size_t n);

/* Draws what changed since the last flush, and the cursor. */
void fbcon_flush(void);

/* The console's size in characters (0 x 0 when it is off). */
void fbcon_size(uint32_t *cols, uint32_t *rows);

#endif
