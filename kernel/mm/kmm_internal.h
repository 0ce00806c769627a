/*
 * kmm_internal: the state kmm.c and audit.c share. Not for other modules.
 */
#ifndef KMM_INTERNAL_H
#define KMM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <pmm/pmm.h>
#include <vmm/pt.h>

struct kmm_state {
    struct canopy_bootinfo *bi;
    uint64_t hhdm;
    unsigned levels;
    uint64_t pat;   /* IA32_PAT: what the tables' memory types mean (GDB's `pt` reads it) */
    struct pmm pmm; /* the kernel's copy of stage 1's PMM */
    struct pt pt;   /* the live hierarchy (CR3) */
    bool adopted;
    bool identity_dropped;
    bool reclaimed;
};

extern struct kmm_state kmm;

/* The last byte of the lower half for the current paging depth. */
uint64_t kmm_lower_half_last(void);

/* A piece of physical memory, named for messages. */
struct kmm_region {
    const char *what;
    uint64_t phys, size;
};

#define KMM_BOOTINFO_REGIONS 4

/*
 * The memory the boot info consists of, which stage 1 gave the owner
 * CANOPY_OWNER_BOOTINFO: the structure itself, the memory map, the mapping
 * manifest and the EFI memory map (each at its full capacity).
 */
void kmm_bootinfo_regions(const struct canopy_bootinfo *bi,
                          struct kmm_region out[KMM_BOOTINFO_REGIONS]);

#endif
