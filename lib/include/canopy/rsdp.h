/*
 * rsdp: the checks on an ACPI RSDP (Root System Description Pointer), in one
 * place for stage 1, which hands the pointer on, and the kernel, which reads
 * the tables under it.
 *
 *   offset 0   "RSD PTR "   8 bytes
 *          8   checksum     of bytes 0-19 (ACPI 1.0)
 *         15   revision     0 for ACPI 1.0, 2 and up for 2.0 and later
 *         16   RSDT address
 *         20   length       of the whole structure (2.0 and later), 36 today
 *         24   XSDT address
 *         32   extended checksum, of all `length` bytes
 */
#ifndef CANOPY_RSDP_H
#define CANOPY_RSDP_H

#include <stdint.h>

/* The sizes of the two parts; no real RSDP comes near the maximum, which bounds a bad length. */
#define RSDP_V1_BYTES  20
#define RSDP_V2_BYTES  36
#define RSDP_MAX_BYTES 4096

/* Reads `len` bytes at physical address `phys`; NULL if they cannot be read. */
typedef const void *(*rsdp_map_fn)(void *ctx, uint64_t phys, uint64_t len);

/*
 * Checks the RSDP at phys: its signature and 20-byte checksum and, for
 * revision 2 and up, a length in [RSDP_V2_BYTES, RSDP_MAX_BYTES] and the
 * extended checksum over that length. Returns NULL if all hold, else a short
 * reason ("bad extended checksum", ...).
 */
const char *rsdp_check(rsdp_map_fn map, void *ctx, uint64_t phys);

#endif
