/*
 * main: the kernel's C entry point.
 */
#ifndef KERNEL_MAIN_H
#define KERNEL_MAIN_H

#include <canopy/bootinfo.h>

/*
 * Initialises the kernel in the order core/main.c describes and serves the
 * debug shell for ever; does not return.
 * => called once by arch/x86_64/entry.S on the boot stack, with stage 1's
 *    boot info (an HHDM address) as its argument.
 */
void kernel_main(struct canopy_bootinfo *bi);

#endif
