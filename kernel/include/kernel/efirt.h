/*
 * efirt: calling UEFI runtime services after ExitBootServices: ResetSystem,
 * and SetVariable to delete stage 1's fault record.
 *
 * SetVirtualAddressMap is never called, so the firmware's runtime code
 * expects its regions at their physical addresses. The kernel's own address
 * space keeps its lower half empty; calls run on a separate page table (the
 * "EFI address space") that shares the kernel's upper half and adds identity
 * mappings of the EFI_MEMORY_RUNTIME regions, loaded into CR3 only for the
 * duration of a call.
 */
#ifndef KERNEL_EFIRT_H
#define KERNEL_EFIRT_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <vmm/pt.h>

/* EFI_RESET_TYPE */
enum efirt_reset_type {
    EFIRT_RESET_COLD = 0,
    EFIRT_RESET_WARM = 1,
    EFIRT_RESET_SHUTDOWN = 2,
};

/*
 * Validates the EFI memory map copy, the system table and the runtime
 * services table, copies the firmware's memory attributes table (which lies
 * in boot-services memory) and reads its RT properties table and vendor
 * name. Checks that the EFI address space could be built, but builds
 * nothing. Returns NULL if runtime services look callable, else one line
 * saying why not.
 * => after kmm_early_init() and before kmm_reclaim(); bi stays valid.
 */
const char *efirt_init(const struct canopy_bootinfo *bi);

/* The firmware vendor's name ("" if unreadable) and revisions, as efirt_init read them. */
const char *efirt_firmware(uint32_t *fw_revision, uint32_t *uefi_revision);

/*
 * Why ResetSystem(type) will not be used, or NULL if it will: efirt_init's
 * verdict, the firmware's RT properties table, and what is known of the
 * firmware (U-Boot's x86 ResetSystem resets on EfiResetShutdown).
 * => after efirt_init().
 */
const char *efirt_reset_problem(enum efirt_reset_type type);

/*
 * Builds the EFI address space, once (later calls return the first result).
 * Returns NULL when runtime services can be called, else one line saying why not.
 * => after efirt_init() and kmm_adopt().
 */
const char *efirt_prepare(void);

/*
 * Calls ResetSystem(type, EFI_SUCCESS, 0, NULL) on the EFI address space and
 * a stack of the kernel's own, with interrupts off. It returns only if the
 * firmware did not reset the machine: the CR3 and interrupt flag are then
 * as before, and the result is one line saying what happened.
 * => efirt_prepare() returned NULL.
 */
const char *efirt_reset(enum efirt_reset_type type);

/*
 * The EFI address space's own hierarchy, built first if it was not (as
 * efirt_prepare), for `pt check efi`: its lower half holds the runtime
 * regions' identity maps; its upper half is empty except during a call, when
 * it is the kernel's. NULL, with the reason in *why, if it cannot be built.
 */
const struct pt *efirt_pt(const char **why);

/*
 * At `canopy: ready`: when stage 1 left a fault record (the boot info's
 * failed_boots), deletes it through SetVariable, so the count of failed
 * boots in a row starts again; one line says what happened. Does nothing
 * (and writes no flash) when there is no record.
 * => after efirt_init().
 */
void efirt_fault_record_clear(void);

/* Page-table frames the EFI address space holds (owner CANOPY_OWNER_RUNTIME); 0 before it is built.
 */
uint64_t efirt_table_frames(void);

#endif
