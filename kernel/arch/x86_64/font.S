/*
 * font: the framebuffer console's PSF font, unpacked at build time from
 * Debian's console-setup-linux package (see kernel/CMakeLists.txt) and
 * embedded here byte for byte. dev/psf.c parses it at run time.
 */
    .section .rodata.font, "a", @progbits
    .globl kernel_font_psf
    .globl kernel_font_psf_end
    .balign 16
kernel_font_psf:
    .incbin "console.psf"
kernel_font_psf_end:

    .section .note.GNU-stack, "", @progbits
