/*
 * bootinfo: validation of the boot info before the kernel relies on it.
 *
 * The boot info is data from another program, so it is checked like any
 * input: the magic, version and size first (a kernel booted by something
 * else, or by a stage 1 from another era, stops here with one clear line),
 * then every field the kernel uses, against the layout in
 * include/canopy/bootinfo.h and against what the CPU says. Accepts a newer
 * version whose structure extends this one (fields are only appended).
 * Called by kernel_main before anything else reads *bi.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/fmt.h>
#include <canopy/page.h>
#include <canopy/vaddr.h>
#include <kernel/bootinfo.h>

static char problem[160];

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fmt_snprintf(problem, sizeof(problem), __VA_ARGS__);                                       \
        return problem;                                                                            \
    } while (0)

static const char *check_segments(const struct canopy_bootinfo *bi)
{
    if (bi->segment_count == 0 || bi->segment_count > CANOPY_MAX_SEGMENTS)
        FAIL("segment count %u out of range 1..%u", bi->segment_count, CANOPY_MAX_SEGMENTS);
    for (uint32_t i = 0; i < bi->segment_count; i++) {
        const struct canopy_segment *s = &bi->segments[i];
        if (!page_is_aligned(s->vaddr) || !page_is_aligned(s->paddr))
            FAIL("segment %u not page aligned (va 0x%llx, pa 0x%llx)", i,
                 (unsigned long long)s->vaddr, (unsigned long long)s->paddr);
        if (s->vaddr < CANOPY_KERNEL_BASE || s->page_count == 0 ||
            s->page_count > (0 - s->vaddr) / PAGE_SIZE)
            FAIL("segment %u (va 0x%llx, %llu pages) outside the kernel area", i,
                 (unsigned long long)s->vaddr, (unsigned long long)s->page_count);
        if ((s->flags & CANOPY_SEG_W) && (s->flags & CANOPY_SEG_X))
            FAIL("segment %u is writable and executable", i);
        if (i > 0 &&
            s->vaddr < bi->segments[i - 1].vaddr + bi->segments[i - 1].page_count * PAGE_SIZE)
            FAIL("segment %u overlaps or precedes segment %u", i, i - 1);
    }
    return NULL;
}

const char *bootinfo_problem(const struct canopy_bootinfo *bi, const struct bootinfo_cpu *cpu)
{
    if (bi->magic != CANOPY_BOOTINFO_MAGIC)
        FAIL("bad magic 0x%016llx (expected 0x%016llx)", (unsigned long long)bi->magic,
             (unsigned long long)CANOPY_BOOTINFO_MAGIC);
    if (bi->version < CANOPY_BOOTINFO_VERSION)
        FAIL("version %u is older than this kernel's %u", bi->version, CANOPY_BOOTINFO_VERSION);
    if (bi->size < sizeof(struct canopy_bootinfo))
        FAIL("size %u is smaller than this kernel's %zu (version %u)", bi->size,
             sizeof(struct canopy_bootinfo), bi->version);
    if (bi->version == CANOPY_BOOTINFO_VERSION && bi->size != sizeof(struct canopy_bootinfo))
        FAIL("size %u does not match version %u's %zu", bi->size, bi->version,
             sizeof(struct canopy_bootinfo));

    if (bi->paging_levels != 4 && bi->paging_levels != 5)
        FAIL("paging levels %u (expected 4 or 5)", bi->paging_levels);
    if ((bi->paging_levels == 5) != cpu->la57)
        FAIL("paging levels %u but CR4.LA57 is %s", bi->paging_levels, cpu->la57 ? "on" : "off");
    uint64_t hhdm = bi->paging_levels == 5 ? CANOPY_HHDM_BASE_5L : CANOPY_HHDM_BASE_4L;
    if (bi->hhdm_base != hhdm)
        FAIL("HHDM base 0x%016llx (expected 0x%016llx)", (unsigned long long)bi->hhdm_base,
             (unsigned long long)hhdm);
    if (!page_is_aligned(bi->pt_root) || bi->pt_root != cpu->cr3_root)
        FAIL("page-table root 0x%llx is not the live CR3 (0x%llx)", (unsigned long long)bi->pt_root,
             (unsigned long long)cpu->cr3_root);
    if ((bi->cpu_flags & CANOPY_CPU_NX) && !cpu->nxe)
        FAIL("NX claimed but EFER.NXE is clear");
    if (bi->pmm == 0 || (bi->pmm & 7) != 0)
        FAIL("PMM state address 0x%llx is not valid", (unsigned long long)bi->pmm);

    const char *why = check_segments(bi);
    if (why != NULL)
        return why;

    uint64_t stack_low = bi->stack_top_va - CANOPY_BOOT_STACK_SIZE;
    if (!page_is_aligned(bi->stack_top_va) || bi->stack_top_va > CANOPY_DYNAMIC_END ||
        bi->stack_top_va < CANOPY_DYNAMIC_BASE + CANOPY_BOOT_STACK_SIZE + PAGE_SIZE ||
        stack_low - PAGE_SIZE < CANOPY_DYNAMIC_BASE)
        FAIL("boot stack top 0x%016llx is not in the dynamic area",
             (unsigned long long)bi->stack_top_va);
    if (!page_is_aligned(bi->trampoline_page) || bi->trampoline_page >= va_lower_end(4))
        FAIL("trampoline page 0x%llx is not a lower-half page",
             (unsigned long long)bi->trampoline_page);
    if (bi->mem_range_count == 0 || bi->mem_ranges == 0 ||
        bi->mem_range_count > bi->mem_range_capacity)
        FAIL("memory map of %u ranges (capacity %u) at 0x%llx is not valid", bi->mem_range_count,
             bi->mem_range_capacity, (unsigned long long)bi->mem_ranges);
    if (bi->mapping_count > bi->mapping_capacity || (bi->mapping_capacity && !bi->mappings))
        FAIL("mapping manifest of %u entries (capacity %u) is not valid", bi->mapping_count,
             bi->mapping_capacity);
    if (bi->fb.format > CANOPY_FB_BITMASK)
        FAIL("unknown framebuffer format %u", bi->fb.format);
    if (bi->fb.format != CANOPY_FB_NONE &&
        (bi->fb_va < CANOPY_DYNAMIC_BASE || bi->fb.size_bytes > CANOPY_DYNAMIC_END - bi->fb_va ||
         (bi->fb_va & (PAGE_SIZE - 1)) != (bi->fb.base & (PAGE_SIZE - 1))))
        FAIL("framebuffer mapping 0x%llx (%llu bytes of 0x%llx) is not in the dynamic area",
             (unsigned long long)bi->fb_va, (unsigned long long)bi->fb.size_bytes,
             (unsigned long long)bi->fb.base);

    bool terminated = false;
    for (size_t i = 0; i < sizeof(bi->cmdline); i++)
        if (bi->cmdline[i] == '\0')
            terminated = true;
    if (!terminated)
        FAIL("command line is not NUL terminated");

    /* Version 2: a verified kernel only under a verified configuration, with its hash. */
    if (bi->boot_flags & ~CANOPY_BOOT_FLAGS_KNOWN)
        FAIL("unknown boot flags 0x%x", bi->boot_flags & ~CANOPY_BOOT_FLAGS_KNOWN);
    if ((bi->boot_flags & CANOPY_BOOT_SECURE_BOOT) &&
        !(bi->boot_flags & CANOPY_BOOT_CONFIG_VERIFIED))
        FAIL("boot flags: Secure Boot on but the configuration not verified");
    if ((bi->boot_flags & CANOPY_BOOT_KERNEL_VERIFIED) &&
        !(bi->boot_flags & CANOPY_BOOT_CONFIG_VERIFIED))
        FAIL("boot flags: kernel verified against an unverified configuration");
    bool hash_zero = true;
    for (size_t i = 0; i < sizeof(bi->kernel_sha256); i++)
        if (bi->kernel_sha256[i] != 0)
            hash_zero = false;
    if (((bi->boot_flags & CANOPY_BOOT_KERNEL_VERIFIED) != 0) == hash_zero)
        FAIL("boot flags: kernel %s but its hash is %s",
             (bi->boot_flags & CANOPY_BOOT_KERNEL_VERIFIED) ? "verified" : "not verified",
             hash_zero ? "missing" : "set");
    return NULL;
}

uint64_t bootinfo_phys(const struct canopy_bootinfo *bi)
{
    return (uint64_t)(uintptr_t)bi - bi->hhdm_base;
}
