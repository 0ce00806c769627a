/*
 * console_font: the PSF console font of stage 1's last-words screen
 * (stage1/efi/fbtext.c) and of the kernel's framebuffer console
 * (kernel/dev/fbcon.c), both parsed at run time by lib's psf.c. font.cmake
 * unpacks it at build time from Debian's console-setup-linux package, and
 * .incbin embeds it here byte for byte as read-only data. The one difference
 * between the two targets is how their object formats spell that section:
 * stage 1's (x86_64-unknown-windows, which defines _WIN32) is PE/COFF, the
 * kernel's ELF.
 */
#ifdef _WIN32
    .section .rdata$font, "dr" /* lld-link merges it into .rdata */
#else
    .section .rodata.font, "a", @progbits
#endif
    .globl canopy_font_psf
    .globl canopy_font_psf_end
    .balign 16
canopy_font_psf:
    .incbin "console.psf"
canopy_font_psf_end:

#ifndef _WIN32
    .section .note.GNU-stack, "", @progbits
#endif
