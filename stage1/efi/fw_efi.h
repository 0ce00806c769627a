/*
 * fw_efi: what the files in stage1/efi/ share among themselves: the firmware's
 * tables and the conversions between EFI_STATUS and enum fw_status. Nothing
 * outside stage1/efi/ includes this header.
 */
#ifndef STAGE1_EFI_FW_EFI_H
#define STAGE1_EFI_FW_EFI_H

#include <efi.h>
/*
 * gnu-efi's eficompiler.h turns __attribute__(x) into nothing when the compiler
 * announces MS extensions, as clang does for the windows target. That would
 * silently drop every attribute after this point (no_stack_protector on the
 * entry path, format, noreturn, warn_unused_result), so it is undone here.
 */
#undef __attribute__

#include "fw.h"

extern EFI_HANDLE fw_image;
extern EFI_SYSTEM_TABLE *fw_st;
extern EFI_BOOT_SERVICES *fw_bs; /* NULL once boot services are gone */
extern EFI_RUNTIME_SERVICES *fw_rt;

/* Maps a firmware status to stage 1's. */
enum fw_status fw_from_efi(EFI_STATUS s);

/* Serial output by port I/O (serial.c): bounded waits, silent if no UART answers. */
void serial_init(void);
void serial_write(const char *s, size_t n);

/* Text rows at the top of the framebuffer, for last words (fbtext.c); no firmware calls. */
void fbtext_use(const struct canopy_framebuffer *fb);
void fbtext_line(const char *s);

/* gop.c: the GOP's current mode, for the post-mortem screen only (fbtext_use). */
void fw_framebuffer_for_reports(void);
/* memattr.c: clears XP and RP on the trampoline page where the memory attribute protocol can. */
void fw_trampoline_exec(void);
/* memattr.c: sets again what fw_trampoline_exec cleared (before returning to the firmware). */
void fw_trampoline_exec_undo(void);
/* time.c: the TSC rate fw_tsc_hz found, 0 before it ran; usable after ExitBootServices. */
uint64_t fw_tsc_hz_known(void);
/* reset.c: ResetSystem, then the resets without firmware (canopy/x86/reset.h). */
_Noreturn void fw_reset(void);

/*
 * fault.c: records a failure after ExitBootServices (the line shown) for the
 * next boot. NULL if it was stored, else why not.
 */
const char *fault_record_fatal(const char *message);
/*
 * fault.c: just before ExitBootServices, on firmware that keeps no variables
 * after it, deletes the previous boot's record: the kernel could not.
 */
void fault_before_exit(void);
/* serial.c: a byte received on COM1, if one is waiting (false without a UART). */
bool serial_read(uint8_t *byte);

#endif
