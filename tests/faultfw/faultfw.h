/*
 * faultfw: a test-only UEFI application that lies to Canopy's stage 1 on
 * behalf of a hostile firmware. It patches the real boot-services table,
 * starts stage 1 from the same volume and reports what came back.
 *
 * faultfw.c: entry, scenario file, loading stage 1, console.
 * hooks.c:   the boot-service wrappers and the scenario state they share.
 * mapx.c:    memory-map transformations (pure, host tested).
 * guard.c:   the free-memory guard's page-table editing (pure, host tested).
 */
#ifndef FAULTFW_FAULTFW_H
#define FAULTFW_FAULTFW_H

#include <efi.h>
/*
 * gnu-efi's eficompiler.h turns __attribute__(x) into nothing when the compiler
 * announces MS extensions, as clang does for the windows target. That would
 * silently drop every attribute after this point (no_stack_protector on the
 * entry path, format, noreturn, warn_unused_result), so it is undone here.
 */
#undef __attribute__
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "mapx.h"

enum ff_scenario {
    FF_NONE,             /* pass everything through */
    FF_EBS_STALE_KEY,    /* the first ExitBootServices meets a changed map */
    FF_EBS_FAIL_ALWAYS,  /* every ExitBootServices fails (stale key) */
    FF_EBS_STALE_GROW,   /* the first one meets a map grown by arg descriptors */
    FF_DESC_SIZE,        /* GetMemoryMap with a larger DescriptorSize (arg: bytes) */
    FF_UNSORTED,         /* shuffled descriptors */
    FF_REVERSED,         /* descriptors last first */
    FF_OVERLAP,          /* overlapping restricting descriptors */
    FF_MANY_DESCRIPTORS, /* conventional memory split (arg: pages per piece) */
    FF_ALLOC_FAIL_NTH,   /* only the Nth allocation from stage 1 fails (arg: N) */
    FF_ALLOC_FAIL_AFTER, /* every allocation after the first N fails (arg: N) */
    FF_PAGES_FAIL_OVER,  /* AllocatePages of more than N pages fails (arg: N) */
    FF_POOL_FAIL_OVER,   /* AllocatePool of more than N bytes fails (arg: N) */
    FF_NO_GOP,           /* the graphics output protocol is hidden */
    FF_NO_RNG,           /* the RNG protocol is hidden */
    FF_HIGH_MEMORY,      /* usable memory below 4 GiB taken before stage 1 starts */
    FF_MEMATTR_XP,       /* a memory attribute protocol that says every page is XP; the
                            Nth allocation fails (arg: N), so stage 1 returns */
    FF_ABOVE_MAXPHYADDR, /* 1 GiB of conventional memory listed at 2^MAXPHYADDR */
    FF_BROKEN_HANDLERS,  /* the firmware's vectors 0-31 broken, and its RNG faults */
    FF_FREE_GUARD,       /* after ExitBootServices, every free page not-present (guard.h) */
    FF_ADDRESS_REFUSE,   /* the first N AllocatePages at a given address fail: not found */
};

struct ff_config {
    enum ff_scenario scenario;
    const char *name;
    uint64_t arg;
};

extern EFI_SYSTEM_TABLE *ff_st;
extern EFI_BOOT_SERVICES ff_orig; /* the table as the firmware had it */

/* Prints to ConOut (boot services must be alive). */
void ff_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints to COM1 by port I/O: usable after ExitBootServices. */
void ff_serial_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A status's EFI name ("EFI_NOT_FOUND"). */
const char *ff_status_name(EFI_STATUS s);

/*
 * Prepares the scenario that must act before stage 1 is loaded (memory taken,
 * canary filled). Returns EFI_SUCCESS or why it could not.
 */
EFI_STATUS hooks_prepare(const struct ff_config *cfg);

/*
 * Replaces boot-service functions for calls from [image_lo, image_hi) (stage
 * 1's image) and recomputes the table's CRC32.
 */
void hooks_install(EFI_BOOT_SERVICES *bs, uint64_t image_lo, uint64_t image_hi);

/* Puts the original functions back (and the CRC). */
void hooks_remove(EFI_BOOT_SERVICES *bs);

/* One line on ConOut summing up what was injected. */
void hooks_report(void);

#endif
