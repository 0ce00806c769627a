/*
 * fw_efi: what the files in stage1/efi/ share among themselves: the firmware's
 * tables and the conversions between EFI_STATUS and enum fw_status. Nothing
 * outside stage1/efi/ includes this header.
 */
#ifndef STAGE1_EFI_FW_EFI_H
#define STAGE1_EFI_FW_EFI_H

#include <efi.h>

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

#endif
