/*
 * kmm: the kernel's physical memory and page tables at boot.
 *
 * The kernel continues with the PMM stage 1 built (a copy of its struct,
 * rebased to the HHDM) and with stage 1's page tables (adopted through
 * vmm/pt with a frame source on that PMM). Then it drops the identity-mapped
 * trampoline page, reclaims loader and boot-services memory, and audits
 * that every used frame is accounted for by its owner.
 */
#ifndef KERNEL_KMM_H
#define KERNEL_KMM_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <pmm/pmm.h>
#include <vmm/pt.h>

/*
 * Records where the HHDM is and how deep the paging is, so that
 * kmm_range_is_mapped() and kmm_phys_to_virt() work before adoption, and
 * makes sure IA32_PAT is CANOPY_PAT (setting it, with one line, if the boot
 * info says the CPU has PAT and it is not).
 * => bi passed bootinfo_problem().
 */
void kmm_early_init(struct canopy_bootinfo *bi);

/* The IA32_PAT value the page tables' memory types are read through. => after kmm_early_init(). */
uint64_t kmm_pat(void);

/*
 * Adopts stage 1's PMM and page tables. Panics if the PMM fails pmm_check or
 * the page-table root is not the live CR3.
 * => bi passed bootinfo_problem(); runs on the kernel's GDT and IDT.
 */
void kmm_adopt(struct canopy_bootinfo *bi);

/* The kernel's PMM and page tables. => after kmm_adopt(). */
struct pmm *kmm_pmm(void);
struct pt *kmm_pt(void);

/* The HHDM address of a physical address. */
void *kmm_phys_to_virt(uint64_t phys);

/*
 * Unmaps stage 1's identity pages, all it maps in the lower half: the
 * trampoline page (freeing its frame if the PMM has it as
 * CANOPY_OWNER_TRAMPOLINE, and making the frame's direct-map alias writable
 * again: stage 1 maps it read-only while the page is executable) and the
 * pages of the GDT and IDT the trampoline loaded across the CR3 switch.
 * Checks that the lower half is then empty; returns true if it is.
 * => the kernel runs on its own GDT and IDT.
 */
bool kmm_drop_identity(void);

/*
 * Frees loader and boot-services memory, after checking that nothing the
 * kernel still reads (the boot info and what it points to) lies there.
 * Returns the number of frames freed (0 if the check failed; it says why).
 */
uint64_t kmm_reclaim(void);

/*
 * The PMM audit: every used frame accounted for by its owner (page tables
 * against a walk of the hierarchy, the kernel image against the segments,
 * the boot stack, the boot info, the PMM's own array). Prints
 * "pmm audit: OK (...)" or one line per difference and a count.
 * Returns true if there was no difference.
 */
bool kmm_audit(void);

/*
 * True if every page of [va, va + size) is mapped (and writable if `write`)
 * in the live page tables. => after kmm_early_init().
 */
bool kmm_range_is_mapped(uint64_t va, uint64_t size, bool write);

/*
 * The memory type the firmware's memory map allows for [pa, pa + size):
 * PT_CACHE_WB when every page lies in a range that is not MMIO and whose EFI
 * attributes include EFI_MEMORY_WB, PT_CACHE_UC otherwise (MMIO, holes,
 * ranges without WB). The same rule as the EFI runtime tables' (efirt.c) and
 * Linux's EFI runtime mappings.
 */
uint32_t kmm_firmware_cache(uint64_t pa, uint64_t size);

/*
 * Before the kernel address space exists: maps the pages holding
 * [pa, pa + len) read-only, NX, with kmm_firmware_cache's type, in the
 * early-map window at the top of the dynamic area, and returns the address
 * of pa there; NULL if the window (1 MiB) is full or a table is missing.
 * => after manifest_init(); every early map is dropped by
 *    kmm_early_unmap_all() before vm_init().
 */
const void *kmm_early_map(uint64_t pa, uint64_t len);

/* [pa, pa + len) through the direct map if it holds the whole range (RAM), else NULL. */
const void *kmm_direct_view(uint64_t pa, uint64_t len);

/*
 * Before the kernel address space exists: a read-only view of
 * [pa, pa + len) through the direct map if it holds the range (RAM), else an
 * early map (kmm_early_map); NULL if neither can. For firmware tables.
 */
const void *kmm_boot_view(uint64_t pa, uint64_t len);

/* Unmaps every early map (and flushes them). */
void kmm_early_unmap_all(void);

/*
 * Ends the early-map window: kmm_early_map returns NULL from now on. Panics
 * if an early map is still in place. => called by vm_init().
 */
void kmm_early_close(void);

#endif
