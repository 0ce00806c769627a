/*
 * font: the PSF console font for stage 1's last-words screen (efi/fbtext.c),
 * unpacked at build time from the same Debian console font as the kernel's
 * (see stage1/CMakeLists.txt) and embedded byte for byte in .rdata.
 */
    .section .rdata$font, "dr"
    .globl stage1_font_psf
    .globl stage1_font_psf_end
    .p2align 4
stage1_font_psf:
    .incbin "console.psf"
stage1_font_psf_end:
