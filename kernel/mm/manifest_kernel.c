/*
 * manifest_kernel: the kernel's one mapping manifest.
 *
 * Storage starts as an array in .bss, large enough for what stage 1 maps on
 * any machine we have seen; when a change needs more, a run of PMM frames
 * twice the size takes over (owner CANOPY_OWNER_HEAP, reached through the
 * HHDM) and the previous run, if it came from the PMM, goes back. Stage 1's
 * copy in the boot info is left as it was written: a record of the hand-off.
 *
 * A manifest from stage 1 that breaks the invariants is reported and not
 * adopted; `pt check` then shows every mapping as unrecorded, which says
 * plainly what went wrong, where a panic would hide the rest of the boot.
 *
 * Called by kernel_main (manifest_init), kmm.c and the kernel's VMM (every
 * map, unmap and protect), and the shell (`pt check`).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/page.h>
#include <kernel/console.h>
#include <kernel/kmm.h>
#include <kernel/manifest.h>

#define STATIC_CAPACITY 512 /* entries: 16 KiB; stage 1 writes a few dozen */

static struct canopy_mapping static_entries[STATIC_CAPACITY];
static struct manifest kernel_manifest;
static bool initialised;
static uint64_t heap_phys; /* the PMM run holding the entries, 0 while in .bss */
static uint64_t heap_pages;

static bool grow(void *ctx, struct manifest *m, uint32_t need)
{
    (void)ctx;
    uint64_t cap = (uint64_t)m->capacity * 2;
    if (cap < need)
        cap = need;
    uint64_t pages = pages_for_bytes(cap * sizeof(struct canopy_mapping));
    uint64_t pa;
    if (pmm_alloc_run(kmm_pmm(), pages, CANOPY_OWNER_HEAP, &pa) != PMM_OK) {
        kprintf("manifest: no %llu contiguous frames to grow to %llu entries\n",
                (unsigned long long)pages, (unsigned long long)cap);
        return false;
    }
    struct canopy_mapping *e = kmm_phys_to_virt(pa);
    for (uint32_t i = 0; i < m->count; i++)
        e[i] = m->entries[i];
    if (heap_phys != 0 && pmm_free_run(kmm_pmm(), heap_phys, heap_pages) != PMM_OK)
        kprintf("manifest: could not free the old entries at 0x%llx\n",
                (unsigned long long)heap_phys);
    heap_phys = pa;
    heap_pages = pages;
    m->entries = e;
    m->capacity = (uint32_t)(pages * PAGE_SIZE / sizeof(struct canopy_mapping));
    return true;
}

void manifest_init(struct canopy_bootinfo *bi)
{
    kernel_manifest =
        (struct manifest){.entries = static_entries, .capacity = STATIC_CAPACITY, .grow = grow};
    initialised = true;
    const struct canopy_mapping *from = kmm_phys_to_virt(bi->mappings);
    /* Built in a scratch manifest over the same storage, checked before it is kept. */
    struct manifest m = kernel_manifest;
    for (uint32_t i = 0; i < bi->mapping_count; i++) {
        if (m.count == m.capacity && !grow(NULL, &m, m.count + 1))
            break;
        m.entries[m.count++] = from[i];
    }
    const char *why = m.count < bi->mapping_count ? "no room for its entries" : NULL;
    if (!why)
        (void)manifest_set_check(&m, &why);
    if (why) {
        kprintf("manifest: stage 1's manifest (%u entries) is not usable: %s; starting empty\n",
                bi->mapping_count, why);
        m.count = 0;
    }
    kernel_manifest = m;
    kprintf("manifest: %u mappings recorded by stage 1\n", kernel_manifest.count);
}

bool manifest_add(uint64_t va, uint64_t pa, uint64_t size, uint32_t page_size, uint16_t flags,
                  uint16_t owner)
{
    return initialised && manifest_set_add(&kernel_manifest, va, pa, size, page_size, flags, owner);
}

bool manifest_remove(uint64_t va, uint64_t size)
{
    return initialised && manifest_set_remove(&kernel_manifest, va, size);
}

bool manifest_protect(uint64_t va, uint64_t size, uint16_t flags)
{
    return initialised && manifest_set_protect(&kernel_manifest, va, size, flags);
}

const struct manifest *manifest_kernel(void)
{
    return initialised ? &kernel_manifest : NULL;
}
