/*
 * vm: the kernel's address space, a vmm_space over the higher half.
 *
 * It names what stage 1 mapped (the kernel segments, the HHDM, the
 * framebuffer, the boot stack and its guard page) and hands out ranges of
 * the dynamic area [CANOPY_DYNAMIC_BASE, CANOPY_DYNAMIC_END): backed by PMM
 * frames at once or filled with zeroed frames on first touch, optionally with
 * an unmapped guard page below (kernel stacks), or mapping device and
 * firmware memory that the direct map leaves out (vm_map_phys).
 * docs/architecture.md has the picture (docs/memory-layout.svg).
 */
#ifndef KERNEL_VM_H
#define KERNEL_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <canopy/compiler.h>
#include <vmm/space.h>

enum vm_status {
    VM_OK = 0,
    VM_ERR_INVALID,    /* zero or absurd size, align not a power of two, unknown flags */
    VM_ERR_WX,         /* writable and executable at once: never granted */
    VM_ERR_NO_SPACE,   /* no hole of that size and alignment in the dynamic area */
    VM_ERR_NOMEM,      /* no frames, tables, nodes or manifest room; nothing was changed */
    VM_ERR_NOT_MAPPED, /* part of the range is not covered by areas */
    VM_ERR_FIXED,      /* the range touches an area the kernel did not hand out (image, HHDM,
                          boot stack, device maps, ...) or, for protect, a guard page */
    VM_ERR_RAM,        /* vm_map_phys: the range is RAM, reached through the direct map */
    VM_ERR_MEMTYPE,    /* vm_map_phys: a frame is mapped already with another memory type */
};

/* A short English name for a status. */
const char *vm_status_str(enum vm_status st);

/* Protection (the same bits as vmm/pt's PT_W and PT_X); every page is readable. */
#define VM_W 0x1u
#define VM_X 0x2u
/* vm_alloc flags, beside the protection. */
#define VM_DEMAND 0x10u /* no frames now: each page is zero-filled on first touch */
#define VM_GUARD  0x20u /* an unmapped guard page below, named after the area */

/* What a VMA is (vmm_attrs.kind). */
enum vm_kind {
    VM_KIND_IMAGE = 1,   /* a kernel segment */
    VM_KIND_HHDM,        /* a run of the direct map */
    VM_KIND_FRAMEBUFFER, /* the framebuffer, mapped by stage 1 write-combining */
    VM_KIND_STACK,       /* the boot stack, or a stack from vm_alloc(VM_GUARD) */
    VM_KIND_GUARD,       /* an unmapped page below a stack */
    VM_KIND_ANON,        /* anonymous memory from vm_alloc */
    VM_KIND_DEVICE,      /* device or firmware memory from vm_map_phys */
};
/* VMA flags (vmm_attrs.flags). */
#define VMA_DEMAND 0x1u /* pages are filled on first touch */
#define VMA_FIXED  0x2u /* stage 1's mappings and device maps: never freed or changed by vm_* */

/*
 * Builds the kernel address space from the boot info, starts kmalloc (which
 * gives the VMAs their nodes) and stamps CANOPY_PHASE_VMM_READY. Panics if a
 * fixed area cannot be recorded (the boot info contradicts itself).
 * => after kmm_adopt() and manifest_init(); once.
 */
void vm_init(struct canopy_bootinfo *bi);

/* True once vm_init has run. */
bool vm_ready(void);

/* The address space itself, for dumps and checks. => vm_ready(). */
const struct vmm_space *vm_space(void);

/*
 * Finds the lowest range of the dynamic area with size bytes (rounded up to
 * pages) at a multiple of align (4 KiB at least), records it as an area named
 * name with protection flags & (VM_W | VM_X), and either maps zeroed frames
 * (owner CANOPY_OWNER_VMM) at once or, with VM_DEMAND, on first touch. With
 * VM_GUARD one more page below it is recorded as its guard (never mapped);
 * align applies to the first usable byte, which *va gets, never to the
 * guard (vmm_space_alloc in vmm/space.h: exact at 4 KiB; above it the
 * first fit unless its searches, VMM_GUARD_SEARCHES of them, run out
 * stepping over holes that start on a multiple of align, and then a fit
 * with align more bytes of room).
 * => VM_ERR_WX for VM_W | VM_X; on any error nothing is left behind (areas,
 *    frames, mappings, manifest entries).
 */
enum vm_status vm_alloc(uint64_t size, uint64_t align, unsigned flags, const char *name,
                        uint64_t *va) MUST_CHECK;

/*
 * Frees [va, va + size), whole areas or parts of them (an area cut inside is
 * split): unmaps the pages, invalidates their TLB entries (invlpg, or one
 * CR3 reload for a larger batch) and gives the frames back.
 * => va and size page aligned, size > 0; every byte covered by areas from
 *    vm_alloc (guards included), else VM_ERR_NOT_MAPPED / VM_ERR_FIXED and
 *    nothing changes; VM_ERR_NOMEM (no change) if a split needs a node.
 */
enum vm_status vm_free(uint64_t va, uint64_t size) MUST_CHECK;

/*
 * Sets the protection of [va, va + size) to prot (VM_W, VM_X or neither),
 * splitting areas cut by the range, and updates and flushes the mapped pages.
 * => as vm_free, plus VM_ERR_WX for VM_W | VM_X and VM_ERR_FIXED for guards.
 */
enum vm_status vm_protect(uint64_t va, uint64_t size, unsigned prot) MUST_CHECK;

/*
 * Maps the physical pages holding [pa, pa + size) into the dynamic area as
 * an area named name (kind VM_KIND_DEVICE, never freed), with protection
 * prot (VM_W or 0: device memory is never executable) and memory type cache
 * (PT_CACHE_*), 4 KiB pages, recorded in the manifest (owner DEVICE). *va
 * gets the address of pa itself.
 * => VM_ERR_RAM if a page of it is in the direct map (RAM has one mapping
 *    type, write-back, and is reached there); VM_ERR_MEMTYPE if a device map
 *    holds one of its frames with another memory type (as Linux's memtype
 *    reservation); VM_ERR_NOMEM when out of frames, nodes or device slots;
 *    nothing changes on error.
 */
enum vm_status vm_map_phys(uint64_t pa, uint64_t size, unsigned prot, uint32_t cache,
                           const char *name, uint64_t *va) MUST_CHECK;

/*
 * Removes the device map vm_map_phys made whose area holds va: its pages are
 * unmapped and flushed, its manifest entries and its area dropped (the frames
 * were never the PMM's). VM_ERR_NOT_MAPPED if va is not in such an area (the
 * framebuffer's, stage 1's, stays).
 */
enum vm_status vm_unmap_phys(uint64_t va) MUST_CHECK;

/*
 * A pointer through which [pa, pa + len) can be read (and written if write):
 * the direct map's if it holds the range, else a device map that covers it,
 * else a new one (named name) with the memory type the firmware's memory map
 * allows (kmm_firmware_cache). NULL if none can be had.
 * => after vm_init(); for firmware tables and registers (ACPI), not for RAM
 *    the kernel owns.
 */
const void *vm_phys_view(uint64_t pa, uint64_t len, bool write, const char *name);

/* The area containing va, or NULL (also before vm_init). */
const struct vmm_vma *vm_lookup(uint64_t va);

/* Access kinds for vm_fault_demand. */
enum vm_access { VM_ACCESS_READ, VM_ACCESS_WRITE, VM_ACCESS_EXEC };

/*
 * The page-fault handler's question: is va a not-yet-touched page of a
 * demand-zero area that allows this access? If so, maps a zeroed frame there
 * with the area's protection and returns true (the access is retried).
 * Returns false otherwise, with *why (if not NULL) set to a reason when va
 * was in a demand-zero area but could not be filled.
 * => called with interrupts off, from the fault handler only.
 */
bool vm_fault_demand(uint64_t va, enum vm_access access, const char **why);

/* A short name for a VMA kind ("anon", "stack", ...). */
const char *vm_kind_name(unsigned kind);

/* What the address space holds, for the audit and the self-test. */
struct vm_stats {
    uint64_t vmas;            /* areas in the space */
    uint64_t frames;          /* frames mapped in dynamic-area allocations (owner VMM) */
    uint64_t demand_faults;   /* pages filled on first touch since boot */
    uint64_t manifest_misses; /* unmaps or protects the manifest could not record */
    uint64_t manifest_frames; /* HEAP frames holding the mapping manifest's entries */
};
void vm_stats(struct vm_stats *out);

/*
 * The whole-structure check: vmm_space_check, then every present leaf of
 * the dynamic area lies in an area with that area's protection and memory
 * type, as a 4 KiB page: on a frame owned by CANOPY_OWNER_VMM in areas
 * vm_alloc made, CANOPY_OWNER_STACK in the boot stack, and in the framebuffer
 * and device maps on the area's own physical page, which the PMM does not
 * own; areas that are not demand-zero are fully mapped; guards are not mapped
 * at all; the mapped frames equal the frame counter.
 * => false and a reason in *why on the first problem.
 */
bool vm_check(const char **why);

/* Prints the areas in address order, one per line (for the shell and the boot log). */
void vm_dump(void);

#endif
