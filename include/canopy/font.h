/*
 * font: the console font the build embeds (font/console_font.S) in stage 1
 * and in the kernel: a whole PSF file, for lib's psf_parse.
 */
#ifndef CANOPY_FONT_H
#define CANOPY_FONT_H

#include <stdint.h>

/* The file's first byte and the byte after its last. */
extern const uint8_t canopy_font_psf[];
extern const uint8_t canopy_font_psf_end[];

#endif
