/*
 * shellglue: the debug shell (kernel/shell/) connected to the machine: its
 * callbacks over the kernel's PMM, page tables and boot info, input from
 * COM1 and the PS/2 keyboard, and the kernel's idle loop around it.
 */
#ifndef KERNEL_SHELLGLUE_H
#define KERNEL_SHELLGLUE_H

#include <canopy/bootinfo.h>

/*
 * Prepares the shell and its inputs (keyboard, the UART's receive interrupt),
 * runs `pt check` once, stamps CANOPY_PHASE_SHELL_READY and prints
 * `canopy: ready`. => after kmm_reclaim(), manifest_init() and the timer.
 */
void shellglue_start(struct canopy_bootinfo *bi);

/*
 * Prints the prompt and serves input for ever: serial and keyboard bytes go to
 * the shell; the CPU halts only when neither had anything.
 * => after shellglue_start().
 */
_Noreturn void shellglue_run(void);

#endif
