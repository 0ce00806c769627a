/*
 * faultrec: the record a failed boot leaves in the firmware's non-volatile
 * variable store, shared by stage 1 (which writes it when a boot fails, shows
 * it on the next boot and counts failed boots in a row with it) and the
 * kernel (which deletes it once a boot reaches `canopy: ready`). The layout
 * is stored in flash: it only changes with a new version number.
 * docs/stage1.md ("Post-mortem", "No endless reset loop") has the reasons.
 */
#ifndef CANOPY_FAULTREC_H
#define CANOPY_FAULTREC_H

#include <stddef.h>
#include <stdint.h>

/* A GUID as UEFI lays it out (EFI_GUID). */
struct canopy_guid {
    uint32_t data1;
    uint16_t data2, data3;
    uint8_t data4[8];
};

/* Canopy's vendor GUID for its UEFI variables: 3c1f5a2e-8d47-4b9e-a61d-527e90c34f18. */
#define CANOPY_VENDOR_GUID_INIT                                                                    \
    {                                                                                              \
        0x3c1f5a2e, 0x8d47, 0x4b9e,                                                                \
        {                                                                                          \
            0xa6, 0x1d, 0x52, 0x7e, 0x90, 0xc3, 0x4f, 0x18                                         \
        }                                                                                          \
    }

/* The variables' names (UCS-2, as UEFI wants them). */
#define CANOPY_FAULT_RECORD_NAME u"CanopyLastFault" /* non-volatile: the record below */
#define CANOPY_PHASE_VAR_NAME    u"CanopyPhase"     /* volatile: the phase reached */

#define CANOPY_FAULT_RECORD_MAGIC     0x54524f4d59504f4eull /* "NOPYMORT" little endian */
#define CANOPY_FAULT_RECORD_VERSION   2                     /* 2: failed_boots */
#define CANOPY_FAULT_RECORD_EXCEPTION 1                     /* a CPU exception */
#define CANOPY_FAULT_RECORD_FATAL     2                     /* an error after ExitBootServices */

/* After this many failed boots in a row, stage 1 stops before the kernel. */
#define CANOPY_FAILED_BOOTS_MAX 3

struct canopy_fault_record {
    uint64_t magic;   /* CANOPY_FAULT_RECORD_MAGIC */
    uint32_t version; /* CANOPY_FAULT_RECORD_VERSION */
    uint32_t kind;    /* CANOPY_FAULT_RECORD_EXCEPTION or _FATAL */
    uint32_t phase;   /* enum canopy_phase */
    uint32_t vector;
    uint64_t error_code;
    uint64_t rip;
    uint64_t cr2;
    uint32_t failed_boots; /* failed boots in a row, this one included (>= 1) */
    uint32_t reserved;
    char message[96]; /* _FATAL: the line shown, NUL terminated */
};

_Static_assert(sizeof(struct canopy_guid) == 16, "EFI_GUID layout");
_Static_assert(offsetof(struct canopy_fault_record, failed_boots) == 48, "fault record layout");
_Static_assert(sizeof(struct canopy_fault_record) == 152, "fault record layout");

#endif
