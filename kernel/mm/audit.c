/*
 * audit: proves after reclaim that every used frame is accounted for.
 *
 * pmm_check proves the PMM consistent with itself. The audit compares it
 * with the rest of the machine state, owner by owner:
 *
 *   PAGE_TABLE    == tables found by walking the hierarchy from the root
 *                    (an independent walk, not pt's own counter), and every
 *                    table found is a PAGE_TABLE frame
 *   KERNEL_IMAGE  == the pages of the segments in the boot info, each mapped
 *                    at its virtual address onto its own frame with exactly
 *                    its permissions
 *   STACK         == the boot stack's pages, mapped, with the guard page
 *                    below unmapped
 *   PMM           == the pages of the PMM's state array
 *   BOOTINFO      covers the boot info and what it points to, and is not
 *                    much more than that
 *   HEAP          == the kmalloc heap's pages plus the mapping manifest's
 *                    storage once it outgrew .bss
 *   VMM           == the frames mapped in dynamic-area allocations, each of
 *                    them found by vm_check's walk on a VMM frame inside an
 *                    area with that area's protection
 *   RUNTIME       == the EFI address space's tables (efirt.c)
 *   anything else == 0 (trampoline freed, nothing else handed out yet)
 *
 * plus pt_check over the hierarchy (entry flags, no empty tables, counts),
 * and the totals: free + used + reclaimable + reserved == tracked frames,
 * used == the sum over owners, nothing reclaimable left after reclaim.
 * Called once by kernel_main after vm_init; by the self-test; by the shell.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/compiler.h>
#include <canopy/page.h>
#include <kernel/console.h>
#include <kernel/efirt.h>
#include <kernel/kmalloc.h>
#include <kernel/kmm.h>
#include <kernel/vm.h>
#include <vmm/pte.h>

#include "kmm_internal.h"

#define BOOTINFO_SLACK 2 /* pages: a separately allocated struct pmm, rounding */

struct audit {
    unsigned differences;
};

PRINTF_LIKE(2, 3) static void differ(struct audit *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kprintf("pmm audit: ");
    kvprintf(fmt, ap);
    kprintf("\n");
    va_end(ap);
    a->differences++;
}

/* Counts the tables below (and including) `table`, checking each one's owner. */
static uint64_t count_tables(struct audit *a, uint64_t table, unsigned level)
{
    uint64_t n = 1;
    enum canopy_owner owner = pmm_owner_of(&kmm.pmm, table);
    if (owner != CANOPY_OWNER_PAGE_TABLE)
        differ(a, "page table 0x%llx (level %u) is owned by %s", (unsigned long long)table, level,
               pmm_owner_name(owner));
    if (level == 1)
        return n;
    const uint64_t *e = kmm_phys_to_virt(table);
    for (unsigned i = 0; i < PTE_ENTRIES; i++) {
        if (!pte_is_present(e[i]))
            continue;
        if (pte_is_leaf(e[i], level))
            continue; /* a 1 GiB or 2 MiB leaf */
        n += count_tables(a, pte_table_addr(e[i]), level - 1);
    }
    return n;
}

/* Checks that [phys, phys + pages) are all used by `want`; reports the first that is not. */
static void check_frames(struct audit *a, const char *what, uint64_t phys, uint64_t pages,
                         enum canopy_owner want)
{
    for (uint64_t i = 0; i < pages; i++) {
        uint64_t f = page_down(phys) + i * PAGE_SIZE;
        enum canopy_owner got = pmm_owner_of(&kmm.pmm, f);
        if (got != want) {
            differ(a, "%s: frame 0x%llx is owned by %s, not %s", what, (unsigned long long)f,
                   pmm_owner_name(got), pmm_owner_name(want));
            return;
        }
    }
}

static uint64_t pages_of(uint64_t phys, uint64_t size)
{
    if (size == 0)
        return 0;
    return (page_up(phys + size) - page_down(phys)) / PAGE_SIZE;
}

static void audit_segments(struct audit *a, const struct canopy_bootinfo *bi)
{
    uint64_t pages = 0;
    for (uint32_t i = 0; i < bi->segment_count; i++) {
        const struct canopy_segment *s = &bi->segments[i];
        pages += s->page_count;
        check_frames(a, "kernel segment", s->paddr, s->page_count, CANOPY_OWNER_KERNEL_IMAGE);
        uint32_t want =
            ((s->flags & CANOPY_SEG_W) ? PT_W : 0) | ((s->flags & CANOPY_SEG_X) ? PT_X : 0);
        for (uint64_t p = 0; p < s->page_count; p++) {
            uint64_t va = s->vaddr + p * PAGE_SIZE;
            struct pt_leaf leaf;
            if (pt_query(&kmm.pt, va_init(va), &leaf) != PT_OK) {
                differ(a, "kernel segment %u: page 0x%016llx is not mapped", i,
                       (unsigned long long)va);
                break;
            }
            uint64_t pa = leaf.pa + (va - leaf.va);
            if (pa != s->paddr + p * PAGE_SIZE || (leaf.attrs & (PT_W | PT_X)) != want) {
                differ(a,
                       "kernel segment %u: page 0x%016llx maps 0x%llx with %s%s, expected 0x%llx "
                       "with %s%s",
                       i, (unsigned long long)va, (unsigned long long)pa,
                       (leaf.attrs & PT_W) ? "W" : "-", (leaf.attrs & PT_X) ? "X" : "-",
                       (unsigned long long)(s->paddr + p * PAGE_SIZE), (want & PT_W) ? "W" : "-",
                       (want & PT_X) ? "X" : "-");
                break;
            }
        }
    }
    if (kmm.pmm.owner_frames[CANOPY_OWNER_KERNEL_IMAGE] != pages)
        differ(a, "%llu kernel-image frames, but the segments cover %llu pages",
               (unsigned long long)kmm.pmm.owner_frames[CANOPY_OWNER_KERNEL_IMAGE],
               (unsigned long long)pages);
}

static void audit_stack(struct audit *a, const struct canopy_bootinfo *bi)
{
    uint64_t pages = CANOPY_BOOT_STACK_SIZE / PAGE_SIZE;
    uint64_t low = bi->stack_top_va - CANOPY_BOOT_STACK_SIZE;
    for (uint64_t p = 0; p < pages; p++) {
        struct pt_leaf leaf;
        uint64_t va = low + p * PAGE_SIZE;
        if (pt_query(&kmm.pt, va_init(va), &leaf) != PT_OK) {
            differ(a, "boot stack page 0x%016llx is not mapped", (unsigned long long)va);
            return;
        }
        check_frames(a, "boot stack", leaf.pa + (va - leaf.va), 1, CANOPY_OWNER_STACK);
    }
    struct pt_leaf guard;
    if (pt_query(&kmm.pt, va_init(low - PAGE_SIZE), &guard) == PT_OK)
        differ(a, "the boot stack's guard page 0x%016llx is mapped",
               (unsigned long long)(low - PAGE_SIZE));
    if (kmm.pmm.owner_frames[CANOPY_OWNER_STACK] != pages)
        differ(a, "%llu stack frames, but the boot stack has %llu pages",
               (unsigned long long)kmm.pmm.owner_frames[CANOPY_OWNER_STACK],
               (unsigned long long)pages);
}

static void audit_bootinfo(struct audit *a, const struct canopy_bootinfo *bi)
{
    struct kmm_region regions[KMM_BOOTINFO_REGIONS];
    kmm_bootinfo_regions(bi, regions);
    uint64_t most = BOOTINFO_SLACK;
    for (size_t i = 0; i < KMM_BOOTINFO_REGIONS; i++) {
        uint64_t pages = pages_of(regions[i].phys, regions[i].size);
        most += pages;
        check_frames(a, regions[i].what, regions[i].phys, pages, CANOPY_OWNER_BOOTINFO);
    }
    uint64_t have = kmm.pmm.owner_frames[CANOPY_OWNER_BOOTINFO];
    if (have == 0 || have > most)
        differ(a, "%llu boot-info frames, but the boot info accounts for at most %llu",
               (unsigned long long)have, (unsigned long long)most);
}

bool kmm_audit(void)
{
    struct audit a = {0};
    /* The frames in the CPU's cache back to the lists, its deltas folded: exact counters. */
    pmm_drain(&kmm.pmm);
    const struct pmm *p = &kmm.pmm;
    const struct canopy_bootinfo *bi = kmm.bi;

    if (p->free_frames + p->used_frames + p->reclaimable_frames + p->reserved_frames !=
        p->frame_count)
        differ(&a, "free %llu + used %llu + reclaimable %llu + reserved %llu != %llu tracked",
               (unsigned long long)p->free_frames, (unsigned long long)p->used_frames,
               (unsigned long long)p->reclaimable_frames, (unsigned long long)p->reserved_frames,
               (unsigned long long)p->frame_count);
    uint64_t owned = 0;
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++)
        owned += p->owner_frames[o];
    if (owned != p->used_frames)
        differ(&a, "the owners hold %llu frames, but %llu are used", (unsigned long long)owned,
               (unsigned long long)p->used_frames);
    if (kmm.reclaimed && p->reclaimable_frames != 0)
        differ(&a, "%llu frames still reclaimable after reclaim",
               (unsigned long long)p->reclaimable_frames);

    const char *problem = NULL;
    if (!pt_check(&kmm.pt, &problem))
        differ(&a, "the page tables fail pt_check: %s", problem ? problem : "?");
    uint64_t tables = count_tables(&a, kmm.pt.root, kmm.pt.levels);
    if (tables != p->owner_frames[CANOPY_OWNER_PAGE_TABLE] || tables != kmm.pt.table_count)
        differ(&a, "%llu page tables in the hierarchy, %llu page-table frames, pt counts %llu",
               (unsigned long long)tables,
               (unsigned long long)p->owner_frames[CANOPY_OWNER_PAGE_TABLE],
               (unsigned long long)kmm.pt.table_count);

    audit_segments(&a, bi);
    audit_stack(&a, bi);
    audit_bootinfo(&a, bi);

    uint64_t pmm_pages = pages_for_bytes(p->state_bytes);
    check_frames(&a, "pmm state array", p->state, pmm_pages, CANOPY_OWNER_PMM);
    if (p->owner_frames[CANOPY_OWNER_PMM] != pmm_pages)
        differ(&a, "%llu pmm frames, but its state array has %llu pages",
               (unsigned long long)p->owner_frames[CANOPY_OWNER_PMM],
               (unsigned long long)pmm_pages);

    struct kmalloc_stats heap;
    struct vm_stats vs;
    kmalloc_stats(&heap);
    vm_stats(&vs);
    if (p->owner_frames[CANOPY_OWNER_HEAP] != heap.frames + vs.manifest_frames)
        differ(&a, "%llu heap frames, but kmalloc holds %llu and the manifest %llu",
               (unsigned long long)p->owner_frames[CANOPY_OWNER_HEAP],
               (unsigned long long)heap.frames, (unsigned long long)vs.manifest_frames);
    if (p->owner_frames[CANOPY_OWNER_VMM] != vs.frames)
        differ(&a, "%llu vmm frames, but the dynamic area maps %llu",
               (unsigned long long)p->owner_frames[CANOPY_OWNER_VMM],
               (unsigned long long)vs.frames);
    if (p->owner_frames[CANOPY_OWNER_RUNTIME] != efirt_table_frames())
        differ(&a, "%llu runtime frames, but the EFI address space has %llu tables",
               (unsigned long long)p->owner_frames[CANOPY_OWNER_RUNTIME],
               (unsigned long long)efirt_table_frames());
    if (vm_ready() && !vm_check(&problem))
        differ(&a, "the kernel address space fails vm_check: %s", problem ? problem : "?");

    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++) {
        bool audited = o == CANOPY_OWNER_PAGE_TABLE || o == CANOPY_OWNER_KERNEL_IMAGE ||
                       o == CANOPY_OWNER_STACK || o == CANOPY_OWNER_PMM ||
                       o == CANOPY_OWNER_BOOTINFO || o == CANOPY_OWNER_HEAP ||
                       o == CANOPY_OWNER_VMM || o == CANOPY_OWNER_RUNTIME;
        if (!audited && p->owner_frames[o] != 0)
            differ(&a, "%llu frames owned by %s, which nothing accounts for",
                   (unsigned long long)p->owner_frames[o], pmm_owner_name(o));
    }

    if (a.differences != 0) {
        kprintf("pmm audit: %u differences\n", a.differences);
        return false;
    }
    kprintf("pmm audit: OK (page tables %llu, kernel image %llu, stack %llu, boot info %llu, "
            "pmm %llu, heap %llu, vmm %llu; %llu used, %llu free)\n",
            (unsigned long long)tables,
            (unsigned long long)p->owner_frames[CANOPY_OWNER_KERNEL_IMAGE],
            (unsigned long long)p->owner_frames[CANOPY_OWNER_STACK],
            (unsigned long long)p->owner_frames[CANOPY_OWNER_BOOTINFO],
            (unsigned long long)p->owner_frames[CANOPY_OWNER_PMM],
            (unsigned long long)p->owner_frames[CANOPY_OWNER_HEAP],
            (unsigned long long)p->owner_frames[CANOPY_OWNER_VMM],
            (unsigned long long)p->used_frames, (unsigned long long)p->free_frames);
    return true;
}
