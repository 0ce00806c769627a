/*
 * kmm: taking over physical memory and the page tables from stage 1.
 *
 * The PMM: stage 1 built it after ExitBootServices, without free lists
 * (it could write only memory it had claimed from the firmware); the kernel
 * copies its struct (plain data holding only physical addresses, see pmm.h)
 * into kernel .data, rebases it to the HHDM, checks it, and threads the free
 * lists through the free blocks, which the direct map makes writable now
 * that the kernel runs on its own tables. The copy keeps working whatever
 * stage 1 does with the memory of the original.
 *
 * The page tables: stage 1's hierarchy is the kernel's from the first
 * instruction (every table is a PMM frame owned by CANOPY_OWNER_PAGE_TABLE).
 * pt_adopt() takes it over with a frame source on the PMM that zeroes new
 * tables through the HHDM.
 *
 * Order at boot (kernel_main): kmm_adopt -> kmm_drop_identity ->
 * kmm_reclaim -> kmm_audit. Reclaiming is only safe once the kernel runs on
 * its own GDT, IDT, stack and page tables, and only if nothing it still
 * reads lies in reclaimable memory; kmm_reclaim checks the latter.
 *
 * The direct map holds RAM only. Firmware tables outside it (the EFI system
 * table in runtime-services data) that must be read before the kernel
 * address space exists go through early maps: read-only pages in a window at
 * the top of the dynamic area, all dropped again before vm_init (as Linux's
 * early_memremap before its ioremap works):
 *
 *   CANOPY_DYNAMIC_END - 1 MiB                       CANOPY_DYNAMIC_END
 *   | early map | early map | ...  (bump, 4 KiB pages) |
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <canopy/page.h>
#include <canopy/vaddr.h>
#include <kernel/bootinfo.h>
#include <kernel/console.h>
#include <kernel/kmm.h>
#include <kernel/manifest.h>
#include <kernel/panic.h>

#include "kmm_internal.h"

#define KMM_PAT_POWER_ON 0x0007040600070406ull /* WB, WT, UC-, UC, twice */
#define EARLY_PAGES      256                   /* the early-map window: 1 MiB */
#define EARLY_BASE       (CANOPY_DYNAMIC_END - EARLY_PAGES * PAGE_SIZE)
#define EFI_MMIO         11
#define EFI_MMIO_PORT    12
#define EFI_MEMORY_WB_AT 0x8ull

_Static_assert(PT_CACHE_UC == CANOPY_MAP_UC && PT_CACHE_WB == CANOPY_MAP_WB,
               "PT_CACHE_* and CANOPY_MAP_* memory types agree");

struct kmm_state kmm;
static uint64_t early_pages; /* pages of the window in use */
static bool early_closed;    /* vm_init has run: the window is the VMM's now */

static bool pt_frame_alloc(void *ctx, uint64_t *phys)
{
    (void)ctx;
    if (pmm_alloc(&kmm.pmm, 0, CANOPY_OWNER_PAGE_TABLE, phys) != PMM_OK)
        return false;
    __builtin_memset(kmm_phys_to_virt(*phys), 0, PAGE_SIZE);
    return true;
}

static void pt_frame_free(void *ctx, uint64_t phys)
{
    (void)ctx;
    enum pmm_status st = pmm_free(&kmm.pmm, phys, 0);
    if (st != PMM_OK)
        panic("kmm: freeing page-table frame 0x%llx: %s", (unsigned long long)phys,
              pmm_status_str(st));
}

void *kmm_phys_to_virt(uint64_t phys)
{
    return (void *)(uintptr_t)(phys + kmm.hhdm);
}

struct pmm *kmm_pmm(void)
{
    return &kmm.pmm;
}

struct pt *kmm_pt(void)
{
    return &kmm.pt;
}

/*
 * Every memory type the kernel's tables name (the framebuffer's
 * write-combining above all) is read through CANOPY_PAT, which stage 1 sets
 * at hand-off (CANOPY_CPU_PAT). A kernel started with another value sets it
 * itself: no leaf uses the changed entry 5 before, so no cached line can hold
 * an older meaning of it, and the CR3 reload drops any TLB entry that did.
 * Without PAT (stage 1 found none in CPUID) PCD and PWT keep their meaning
 * and no leaf sets the PAT bit: the power-on table describes them.
 */
static void pat_init(const struct canopy_bootinfo *bi)
{
    if (!(bi->cpu_flags & CANOPY_CPU_PAT)) {
        kmm.pat = KMM_PAT_POWER_ON;
        kprintf("kmm: no PAT; the framebuffer is uncached\n");
        return;
    }
    kmm.pat = arch_rdmsr(ARCH_MSR_PAT);
    if (kmm.pat == CANOPY_PAT)
        return;
    kprintf("kmm: IA32_PAT is 0x%016llx, not 0x%016llx as the boot protocol says; setting it\n",
            (unsigned long long)kmm.pat, (unsigned long long)CANOPY_PAT);
    arch_wrmsr(ARCH_MSR_PAT, CANOPY_PAT);
    arch_write_cr3(arch_read_cr3());
    kmm.pat = CANOPY_PAT;
}

void kmm_early_init(struct canopy_bootinfo *bi)
{
    kmm.bi = bi;
    kmm.hhdm = bi->hhdm_base;
    kmm.levels = bi->paging_levels;
    pat_init(bi);
}

uint64_t kmm_pat(void)
{
    return kmm.pat;
}

void kmm_adopt(struct canopy_bootinfo *bi)
{
    kmm_early_init(bi);
    kmm.pmm = *(const struct pmm *)kmm_phys_to_virt(bi->pmm);
    pmm_rebase(&kmm.pmm, kmm.hhdm);

    char msg[160];
    if (pmm_check(&kmm.pmm, msg, sizeof(msg)) != PMM_OK)
        panic("pmm_check failed on the PMM handed over by stage 1: %s", msg);
    if (!pmm_has_lists(&kmm.pmm)) {
        enum pmm_status ps = pmm_build_lists(&kmm.pmm);
        if (ps != PMM_OK)
            panic("kmm: building the PMM's free lists: %s", pmm_status_str(ps));
        if (pmm_check(&kmm.pmm, msg, sizeof(msg)) != PMM_OK)
            panic("pmm_check failed once the free lists were built: %s", msg);
        uint64_t blocks = 0;
        for (unsigned k = 0; k < PMM_ORDER_COUNT; k++)
            blocks += kmm.pmm.free_blocks[k];
        kprintf("kmm: built the PMM's free lists (%llu free blocks)\n", (unsigned long long)blocks);
    }

    struct pt_frames frames = {.alloc = pt_frame_alloc, .free = pt_frame_free, .ctx = NULL};
    pt_adopt(&kmm.pt, pa_init(bi->pt_root), bi->paging_levels, (bi->cpu_flags & CANOPY_CPU_NX) != 0,
             kmm.hhdm, frames);
    kmm.adopted = true;
    if (kmm.pt.table_count != bi->pt_frames_used)
        kprintf("kmm: stage 1 reported %u page-table frames, the hierarchy has %llu tables\n",
                bi->pt_frames_used, (unsigned long long)kmm.pt.table_count);
    struct pmm_counts c;
    pmm_counts(&kmm.pmm, &c);
    kprintf("kmm: adopted the PMM (%llu frames tracked: %llu free, %llu used, %llu reclaimable, "
            "%llu reserved)\n",
            (unsigned long long)kmm.pmm.frame_count, (unsigned long long)c.free,
            (unsigned long long)c.used, (unsigned long long)c.reclaimable,
            (unsigned long long)c.reserved);
    kprintf("kmm: adopted the page tables (%u levels, root 0x%llx, %llu tables)\n", kmm.pt.levels,
            (unsigned long long)kmm.pt.root, (unsigned long long)kmm.pt.table_count);
}

uint64_t kmm_lower_half_last(void)
{
    return va_lower_end(kmm.levels) - 1;
}

static bool count_leaf(void *ctx, const struct pt_leaf *leaf)
{
    uint64_t *n = ctx;
    if (++*n <= 4)
        kprintf("kmm: lower half still maps 0x%016llx -> 0x%llx (%llu KiB)\n",
                (unsigned long long)leaf->va, (unsigned long long)leaf->pa,
                (unsigned long long)bytes_to_kib(leaf->page_size));
    return true;
}

/* Stage 1's identity pages, as drop_identity finds them. */
#define IDENTITY_PAGES_MAX 8
struct identity_pages {
    struct pt_leaf leaf[IDENTITY_PAGES_MAX];
    unsigned count;
};

static bool collect_identity(void *ctx, const struct pt_leaf *leaf)
{
    struct identity_pages *ids = ctx;
    if (ids->count < IDENTITY_PAGES_MAX)
        ids->leaf[ids->count++] = *leaf;
    return true;
}

/*
 * The trampoline frame's direct-map alias was read-only while the frame was
 * also mapped executable; with the identity page gone it is RAM like any
 * other, about to be reclaimed: RW and NX again.
 */
static bool trampoline_alias_writable(uint64_t pa)
{
    uint64_t alias = kmm.hhdm + pa;
    struct pt_leaf leaf;
    if (pt_query(&kmm.pt, va_init(alias), &leaf) != PT_OK || (leaf.attrs & PT_W))
        return false;
    enum pt_status st = pt_protect(&kmm.pt, va_init(alias), PAGE_SIZE, PT_W);
    if (st != PT_OK) {
        kprintf("kmm: the trampoline frame's direct-map alias stays read-only: %s\n",
                pt_status_str(st));
        return false;
    }
    arch_invlpg(alias);
    if (!manifest_protect(alias, PAGE_SIZE, CANOPY_MAP_W))
        kprintf("kmm: the manifest did not take the trampoline alias's protection\n");
    return true;
}

/*
 * Unmaps one of stage 1's identity pages, and frees its frame if it is the
 * trampoline's, whose direct-map alias becomes writable first.
 */
static void drop_identity_page(const struct pt_leaf *leaf)
{
    bool trampoline = leaf->va == kmm.bi->trampoline_page;
    enum pt_status st = pt_unmap(&kmm.pt, va_init(leaf->va), leaf->page_size);
    if (st != PT_OK)
        panic("kmm: unmapping stage 1's identity page 0x%llx: %s", (unsigned long long)leaf->va,
              pt_status_str(st));
    arch_invlpg(leaf->va);
    if (!manifest_remove(leaf->va, leaf->page_size))
        kprintf("kmm: the manifest did not take the removal of 0x%llx\n",
                (unsigned long long)leaf->va);
    bool alias_rw = trampoline && trampoline_alias_writable(leaf->pa);
    if (trampoline && pmm_owner_of(&kmm.pmm, leaf->pa) == CANOPY_OWNER_TRAMPOLINE) {
        enum pmm_status ps = pmm_free(&kmm.pmm, leaf->pa, 0);
        if (ps != PMM_OK)
            panic("kmm: freeing the trampoline frame 0x%llx: %s", (unsigned long long)leaf->pa,
                  pmm_status_str(ps));
    }
    kprintf("kmm: %s page 0x%llx unmapped%s\n", trampoline ? "trampoline" : "descriptor-table",
            (unsigned long long)leaf->va,
            alias_rw ? "; its direct-map alias is writable again" : "");
}

bool kmm_drop_identity(void)
{
    /*
     * Everything stage 1 maps in the lower half is an identity page of the
     * switch: the trampoline page and the pages of the GDT and IDT it loaded
     * across it (docs/boot-protocol.md). The kernel runs on its own tables by
     * now, so all of them go; at most IDENTITY_PAGES_MAX, and the check
     * below reports any that remain.
     */
    struct identity_pages ids = {.count = 0};
    pt_for_each_leaf(&kmm.pt, 0, kmm_lower_half_last(), collect_identity, &ids);
    for (unsigned i = 0; i < ids.count; i++)
        drop_identity_page(&ids.leaf[i]);
    if (kmm.bi->trampoline_page && ids.count == 0)
        kprintf("kmm: trampoline page 0x%llx was not mapped\n",
                (unsigned long long)kmm.bi->trampoline_page);

    uint64_t leaves = 0;
    pt_for_each_leaf(&kmm.pt, 0, kmm_lower_half_last(), count_leaf, &leaves);
    /* Empty tables would not show as leaves: the root's lower half must be clear too. */
    const uint64_t *root = kmm_phys_to_virt(kmm.pt.root);
    unsigned root_entries = 0;
    for (unsigned i = 0; i < 256; i++)
        root_entries += root[i] != 0;
    if (leaves != 0 || root_entries != 0) {
        kprintf("kmm: lower half NOT empty: %llu pages mapped, %u root entries in use\n",
                (unsigned long long)leaves, root_entries);
        return false;
    }
    kmm.identity_dropped = true;
    kprintf("kmm: lower half empty\n");
    return true;
}

/*
 * Finds the first frame of [phys, phys + size) that the PMM does not have as
 * used: such data would be freed (reclaimable) or is already lost (free).
 */
static bool region_is_owned(uint64_t phys, uint64_t size, uint64_t *bad)
{
    if (size == 0)
        return true;
    uint64_t first = page_down(phys);
    uint64_t last = page_down(phys + size - 1);
    for (uint64_t f = first; f <= last; f += PAGE_SIZE)
        if (pmm_owner_of(&kmm.pmm, f) == CANOPY_OWNER_NONE) {
            *bad = f;
            return false;
        }
    return true;
}

void kmm_bootinfo_regions(const struct canopy_bootinfo *bi,
                          struct kmm_region out[KMM_BOOTINFO_REGIONS])
{
    out[0] = (struct kmm_region){"boot info", bootinfo_phys(bi), sizeof(*bi)};
    out[1] =
        (struct kmm_region){"memory map", bi->mem_ranges,
                            (uint64_t)bi->mem_range_capacity * sizeof(struct canopy_mem_range)};
    out[2] = (struct kmm_region){"mapping manifest", bi->mappings,
                                 (uint64_t)bi->mapping_capacity * sizeof(struct canopy_mapping)};
    out[3] = (struct kmm_region){"EFI memory map", bi->efi_memmap, bi->efi_memmap_size};
}

uint64_t kmm_reclaim(void)
{
    /* What the kernel still reads: the boot info's memory and the PMM's state array. */
    struct kmm_region keep[KMM_BOOTINFO_REGIONS + 1];
    kmm_bootinfo_regions(kmm.bi, keep);
    keep[KMM_BOOTINFO_REGIONS] =
        (struct kmm_region){"PMM state array", kmm.pmm.state, kmm.pmm.state_bytes};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        uint64_t bad;
        if (!region_is_owned(keep[i].phys, keep[i].size, &bad)) {
            kprintf("kmm: the %s (0x%llx, %llu bytes) uses frame 0x%llx, which is not owned; "
                    "reclaim skipped\n",
                    keep[i].what, (unsigned long long)keep[i].phys,
                    (unsigned long long)keep[i].size, (unsigned long long)bad);
            return 0;
        }
    }
    uint64_t n = pmm_reclaim(&kmm.pmm);
    kmm.reclaimed = true;
    kprintf("kmm: reclaimed %llu frames (%llu KiB) of loader and boot-services memory\n",
            (unsigned long long)n, (unsigned long long)pages_to_kib(n));
    return n;
}

bool kmm_range_is_mapped(uint64_t va, uint64_t size, bool write)
{
    struct pt view = {
        .root = arch_read_cr3() & ARCH_CR3_ADDR,
        .levels = kmm.levels,
        .nx = true,
        .virt_offset = kmm.hhdm,
        .table_count = 1, /* a live hierarchy: pt_walk skips an empty one */
    };
    uint64_t end = va + size;
    while (va < end) {
        struct pt_leaf leaf;
        if (pt_query(&view, va_init(va), &leaf) != PT_OK)
            return false;
        if (write && !(leaf.attrs & PT_W))
            return false;
        va = leaf.va + leaf.page_size;
    }
    return true;
}

uint32_t kmm_firmware_cache(uint64_t pa, uint64_t size)
{
    const struct canopy_mem_range *r = kmm_phys_to_virt(kmm.bi->mem_ranges);
    uint64_t at = page_down(pa), end = pa + size;
    if (size == 0 || end < pa)
        return PT_CACHE_UC;
    /* Ranges are sorted: walk them alongside [at, end). */
    for (uint32_t i = 0; i < kmm.bi->mem_range_count && at < end; i++) {
        uint64_t r_end = r[i].base + r[i].page_count * PAGE_SIZE;
        if (r_end <= at)
            continue;
        if (r[i].base > at)
            return PT_CACHE_UC; /* a hole */
        if (r[i].type == CANOPY_MEM_MMIO || r[i].efi_type == EFI_MMIO ||
            r[i].efi_type == EFI_MMIO_PORT || !(r[i].efi_attr & EFI_MEMORY_WB_AT))
            return PT_CACHE_UC;
        at = r_end;
    }
    return at >= end ? PT_CACHE_WB : PT_CACHE_UC;
}

const void *kmm_early_map(uint64_t pa, uint64_t len)
{
    if (early_closed || len == 0 || pa + (len - 1) < pa || kmm.pt.table_count == 0)
        return NULL;
    uint64_t first = page_down(pa);
    uint64_t pages = (page_down(pa + (len - 1)) - first) / PAGE_SIZE + 1;
    if (pages > EARLY_PAGES - early_pages)
        return NULL;
    uint64_t va = EARLY_BASE + early_pages * PAGE_SIZE, size = pages * PAGE_SIZE;
    uint32_t cache = kmm_firmware_cache(first, size);
    if (pt_map(&kmm.pt, va_init(va), pa_init(first), size, cache, PAGE_SIZE) != PT_OK)
        return NULL;
    if (!manifest_add(va, first, size, PAGE_SIZE, (uint16_t)cache, CANOPY_OWNER_RUNTIME)) {
        if (pt_unmap(&kmm.pt, va_init(va), size) != PT_OK)
            panic("kmm: unmapping an early map just made failed");
        for (uint64_t i = 0; i < pages; i++)
            arch_invlpg(va + i * PAGE_SIZE);
        return NULL;
    }
    early_pages += pages;
    return (const void *)(uintptr_t)(va + (pa - first));
}

const void *kmm_direct_view(uint64_t pa, uint64_t len)
{
    uint64_t hhdm = kmm.hhdm;
    if (len == 0 || pa > UINT64_MAX - hhdm || len > UINT64_MAX - hhdm - pa ||
        !kmm_range_is_mapped(hhdm + pa, len, false))
        return NULL;
    return kmm_phys_to_virt(pa);
}

const void *kmm_boot_view(uint64_t pa, uint64_t len)
{
    const void *v = kmm_direct_view(pa, len);
    return v != NULL || len == 0 || pa + (len - 1) < pa ? v : kmm_early_map(pa, len);
}

void kmm_early_unmap_all(void)
{
    if (early_pages == 0)
        return;
    uint64_t size = early_pages * PAGE_SIZE;
    enum pt_status st = pt_unmap(&kmm.pt, va_init(EARLY_BASE), size);
    if (st != PT_OK)
        panic("kmm: unmapping the early maps: %s", pt_status_str(st));
    for (uint64_t i = 0; i < early_pages; i++)
        arch_invlpg(EARLY_BASE + i * PAGE_SIZE);
    if (!manifest_remove(EARLY_BASE, size))
        kprintf("kmm: the manifest did not take the early maps' removal\n");
    early_pages = 0;
}

void kmm_early_close(void)
{
    if (early_pages != 0)
        panic("kmm: %llu pages of early maps are still mapped", (unsigned long long)early_pages);
    early_closed = true;
}
