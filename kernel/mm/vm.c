/*
 * vm: the kernel address space (kernel/vm.h).
 *
 * One vmm_space spans the canonical higher half, [0xffff800000000000, 2^64)
 * with 4-level paging and [0xff00000000000000, 2^64) with 5. At boot it gets
 * a VMA for everything stage 1 mapped, each marked VMA_FIXED:
 *
 *   hhdm_base + phys   "hhdm"         one VMA per run of RAM in the memory map
 *                                     (RAM-like ranges merged where they
 *                                     touch, as stage 1 maps them); holes,
 *                                     MMIO and firmware ranges stay holes
 *                      "hhdm: .text"  the read-only aliases of the read-only
 *                      "hhdm: .rodata"  segments' frames
 *   0xffffc00000000000 "boot stack"   guard page (VM_KIND_GUARD), then the
 *                                     64 KiB stack: inside the dynamic area
 *   fb_va              "framebuffer"  write-combining, in the dynamic area
 *   0xffffffff80000000 ".text" ".rodata" ".data"   one per kernel segment
 *
 * Device and firmware memory the direct map leaves out is mapped on request
 * (vm_map_phys) in the dynamic area, fixed from then on, with a memory type
 * that no other mapping of the same frames contradicts: a small table of
 * device maps (physical range, memory type) is consulted first, as Linux's
 * memtype reservations are.
 *
 * Allocations are restricted by window rather than by reservations: every
 * vm_alloc searches only [CANOPY_DYNAMIC_BASE, CANOPY_DYNAMIC_END), so the
 * rest of the higher half needs no placeholder VMA and a VMA anywhere else
 * always means something is mapped (or deliberately unmapped, for guards).
 *
 * Invariants (vm_check): the dynamic area is mapped with 4 KiB pages only,
 * each inside an area with that area's protection and memory type, on a frame
 * owned by CANOPY_OWNER_VMM (the boot stack's are CANOPY_OWNER_STACK; device
 * maps' are their own physical pages, not the PMM's); areas that are
 * not demand-zero are fully mapped; guards never are; vm.frames counts the
 * mapped VMM frames; nothing is ever both writable and executable; every
 * VMA is aligned as its cache places it (VMM_VMA_ALIGN). Using 4 KiB
 * pages only means unmap and protect never split a large page, so after the
 * VMA tree has accepted a change the page-table half of it cannot fail.
 *
 * Every change is made in the order that can be undone: the VMA first (the
 * tree fails without changing anything), then frames and mappings, each
 * mapping recorded in the manifest. Freed frames go back to the PMM only
 * after their TLB entries are gone.
 *
 * Single CPU, no locks: callers are kernel_main, the shell, the self-test and
 * (for demand-zero pages, with interrupts off) the page-fault handler.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <canopy/fmt.h>
#include <canopy/page.h>
#include <canopy/vaddr.h>
#include <kernel/console.h>
#include <kernel/kmalloc.h>
#include <kernel/kmm.h>
#include <kernel/manifest.h>
#include <kernel/panic.h>
#include <kernel/vm.h>
#include <vmm/pt.h>
#include <vmm/pte.h>

#define DYN_BASE CANOPY_DYNAMIC_BASE
#define DYN_LAST (CANOPY_DYNAMIC_END - 1)
#define MAX_RUN  512 /* frames per physically contiguous run when committing */
#define BATCH    64  /* pages unmapped per TLB flush */
/* Above this many pages one CR3 reload is cheaper than invlpg each (Linux's ceiling is 33). */
#define INVLPG_MAX 32
#define DEVICE_MAX 64 /* device maps: the framebuffer, ACPI tables and registers */

_Static_assert(VM_W == PT_W && VM_X == PT_X, "VMA protection is stored as PT_* bits");
_Static_assert(((PT_W | PT_X) & PT_CACHE_MASK) == 0, "a VMA's prot holds PT_W, PT_X and a type");

/* One device map: an area at va of size bytes onto the frames from pa, of one memory type. */
struct device_map {
    uint64_t va, size, pa;
    uint32_t cache; /* PT_CACHE_* */
};

static struct {
    struct vmm_space space;
    bool ready;
    uint64_t frames;
    uint64_t demand_faults;
    uint64_t manifest_misses;
    struct device_map devices[DEVICE_MAX];
    unsigned device_count;
} vm;

const char *vm_status_str(enum vm_status st)
{
    switch (st) {
    case VM_OK:
        return "ok";
    case VM_ERR_INVALID:
        return "invalid argument";
    case VM_ERR_WX:
        return "writable and executable at once";
    case VM_ERR_NO_SPACE:
        return "no hole big enough in the dynamic area";
    case VM_ERR_NOMEM:
        return "out of memory";
    case VM_ERR_NOT_MAPPED:
        return "range not covered by areas";
    case VM_ERR_FIXED:
        return "range touches an area the kernel did not hand out";
    case VM_ERR_RAM:
        return "the range is RAM, in the direct map";
    case VM_ERR_MEMTYPE:
        return "a frame is mapped with another memory type already";
    }
    return "unknown status";
}

const char *vm_kind_name(unsigned kind)
{
    /* A table, not a switch: scripts/gdb/canopy.py reads it through the DWARF. */
    static const char *const names[] = {
        [VM_KIND_IMAGE] = "image",
        [VM_KIND_HHDM] = "hhdm",
        [VM_KIND_FRAMEBUFFER] = "framebuffer",
        [VM_KIND_STACK] = "stack",
        [VM_KIND_GUARD] = "guard",
        [VM_KIND_ANON] = "anon",
        [VM_KIND_DEVICE] = "device",
    };
    return kind < sizeof(names) / sizeof(names[0]) && names[kind] ? names[kind] : "?";
}

static enum vm_status from_vmm(enum vmm_status st)
{
    switch (st) {
    case VMM_OK:
        return VM_OK;
    case VMM_ERR_NO_SPACE:
        return VM_ERR_NO_SPACE;
    case VMM_ERR_NOMEM:
        return VM_ERR_NOMEM;
    case VMM_ERR_NOT_MAPPED:
        return VM_ERR_NOT_MAPPED;
    case VMM_ERR_INVALID:
    case VMM_ERR_OVERLAP:
        break;
    }
    return VM_ERR_INVALID;
}

/*
 * VMAs come from a cache of their own, apart from kmalloc's classes (a
 * kfree of a VMA panics, and the audit counts the cache's frames), at
 * VMM_VMA_ALIGN: 96-byte slots, 42 to a page. A line-aligned cache (128-byte
 * slots, the node's first 64 bytes, all a 4 KiB search reads, always in one
 * line) was measured too and searches that miss the caches were slower
 * with it (docs/performance.md).
 */
_Static_assert(offsetof(struct vmm_vma, node) == 0, "the node's first line is the VMA's first");

static struct vmm_vma *node_alloc(void *ctx)
{
    return kcache_alloc(ctx);
}

static void node_free(void *ctx, struct vmm_vma *vma)
{
    kcache_free(ctx, vma);
}

static uint16_t map_flags(uint32_t prot)
{
    return (uint16_t)(((prot & PT_W) ? CANOPY_MAP_W : 0) | ((prot & PT_X) ? CANOPY_MAP_X : 0));
}

static bool manifest_on(void)
{
    return manifest_kernel() != NULL;
}

/* Invalidates n pages starting at va: invlpg each, or a CR3 reload for many. */
static void flush_range(uint64_t va, uint64_t pages)
{
    if (pages > INVLPG_MAX) {
        arch_write_cr3(arch_read_cr3());
        return;
    }
    for (uint64_t i = 0; i < pages; i++)
        arch_invlpg(va + i * PAGE_SIZE);
}

/* ---- mapping and unmapping the pages of an area ------------------------------------------- */

struct batch {
    uint64_t va[BATCH], pa[BATCH];
    unsigned n;
    uint64_t bad_va; /* a leaf that is not a 4 KiB page, or 0 */
};

static bool collect_leaf(void *ctx, const struct pt_leaf *leaf)
{
    struct batch *b = ctx;
    if (leaf->page_size != PAGE_SIZE) {
        b->bad_va = leaf->va;
        return false;
    }
    b->va[b->n] = leaf->va;
    b->pa[b->n] = leaf->pa;
    b->n++;
    return b->n < BATCH;
}

/*
 * Unmaps every mapped page of [va, va + size), flushes, then gives the frames
 * back, BATCH pages at a time; drops the range from the manifest. Holes
 * (untouched demand-zero pages, guards) are skipped. Cannot fail: the
 * dynamic area has no large pages to split.
 */
static void release_pages(uint64_t va, uint64_t size)
{
    struct pt *pt = kmm_pt();
    uint64_t last = va + size - 1, cur = va;
    for (;;) {
        struct batch b = {.n = 0, .bad_va = 0};
        pt_for_each_leaf(pt, cur, last, collect_leaf, &b);
        if (b.bad_va != 0)
            panic("vm: 0x%016llx in the dynamic area is mapped by a large page",
                  (unsigned long long)b.bad_va);
        if (b.n == 0)
            break;
        uint64_t end = b.va[b.n - 1] + PAGE_SIZE;
        enum pt_status st = pt_unmap(pt, va_init(b.va[0]), end - b.va[0]);
        if (st != PT_OK)
            panic("vm: unmapping 0x%016llx-0x%016llx: %s", (unsigned long long)b.va[0],
                  (unsigned long long)(end - 1), pt_status_str(st));
        if (b.n > INVLPG_MAX)
            arch_write_cr3(arch_read_cr3());
        else
            for (unsigned i = 0; i < b.n; i++)
                arch_invlpg(b.va[i]);
        for (unsigned i = 0; i < b.n; i++) {
            enum canopy_owner owner = pmm_owner_of(kmm_pmm(), b.pa[i]);
            enum pmm_status ps =
                owner == CANOPY_OWNER_VMM ? pmm_free(kmm_pmm(), b.pa[i], 0) : PMM_ERR_NOT_OWNED;
            if (ps != PMM_OK)
                panic("vm: freeing frame 0x%llx of page 0x%016llx (owner %u): %s",
                      (unsigned long long)b.pa[i], (unsigned long long)b.va[i], owner,
                      pmm_status_str(ps));
        }
        vm.frames -= b.n;
        if (end - 1 >= last)
            break;
        cur = end;
    }
    if (manifest_on() && !manifest_remove(va, size))
        vm.manifest_misses++;
}

/* One physically contiguous run of up to `want` frames (halving on fragmentation). */
static bool frames_alloc(uint64_t want, uint64_t *pa, uint64_t *got)
{
    for (uint64_t n = want; n >= 1; n /= 2) {
        enum pmm_status st = n == 1 ? pmm_alloc(kmm_pmm(), 0, CANOPY_OWNER_VMM, pa)
                                    : pmm_alloc_run(kmm_pmm(), n, CANOPY_OWNER_VMM, pa);
        if (st == PMM_OK) {
            *got = n;
            return true;
        }
    }
    return false;
}

static void frames_free(uint64_t pa, uint64_t n)
{
    enum pmm_status st = pmm_free_run(kmm_pmm(), pa, n);
    if (st != PMM_OK)
        panic("vm: freeing %llu frames at 0x%llx: %s", (unsigned long long)n,
              (unsigned long long)pa, pmm_status_str(st));
}

/*
 * Maps zeroed frames over [va, va + size) in contiguous runs, each recorded in
 * the manifest. On failure returns VM_ERR_NOMEM with the pages mapped so far
 * still mapped: the caller releases the whole range.
 */
static enum vm_status commit_pages(uint64_t va, uint64_t size, uint32_t prot)
{
    struct pt *pt = kmm_pt();
    uint64_t done = 0, run = MAX_RUN;
    while (done < size) {
        uint64_t left = (size - done) / PAGE_SIZE, pa, n;
        if (!frames_alloc(run < left ? run : left, &pa, &n))
            return VM_ERR_NOMEM;
        run = n; /* fragmentation is unlikely to improve during one allocation */
        __builtin_memset(kmm_phys_to_virt(pa), 0, n * PAGE_SIZE);
        uint64_t at = va + done, bytes = n * PAGE_SIZE;
        if (pt_map(pt, va_init(at), pa_init(pa), bytes, prot, PAGE_SIZE) != PT_OK) {
            frames_free(pa, n);
            return VM_ERR_NOMEM;
        }
        if (manifest_on() &&
            !manifest_add(at, pa, bytes, PAGE_SIZE, map_flags(prot), CANOPY_OWNER_VMM)) {
            if (pt_unmap(pt, va_init(at), bytes) != PT_OK)
                panic("vm: unmapping a run just mapped failed");
            flush_range(at, n);
            frames_free(pa, n);
            return VM_ERR_NOMEM;
        }
        vm.frames += n;
        done += bytes;
    }
    return VM_OK;
}

/* ---- the allocation API ------------------------------------------------------------------ */

static bool range_ok(uint64_t va, uint64_t size)
{
    return size != 0 && page_is_aligned(va) && page_is_aligned(size) && size - 1 <= UINT64_MAX - va;
}

/* VM_ERR_FIXED if an area in [va, last] is not the kernel's to change (or is a guard). */
static enum vm_status check_owned(uint64_t va, uint64_t last, bool guards_ok)
{
    for (const struct vmm_vma *v = vmm_space_first_from(&vm.space, va);
         v != NULL && vmm_vma_start(v) <= last; v = vmm_space_next(v)) {
        if (v->attrs.flags & VMA_FIXED)
            return VM_ERR_FIXED;
        if (!guards_ok && v->attrs.kind == VM_KIND_GUARD)
            return VM_ERR_FIXED;
    }
    return VM_OK;
}

enum vm_status vm_alloc(uint64_t size, uint64_t align, unsigned flags, const char *name,
                        uint64_t *va)
{
    if (!vm.ready || va == NULL || name == NULL)
        return VM_ERR_INVALID;
    if (flags & ~(VM_W | VM_X | VM_DEMAND | VM_GUARD))
        return VM_ERR_INVALID;
    if ((flags & VM_W) && (flags & VM_X))
        return VM_ERR_WX;
    if (size == 0 || size > CANOPY_DYNAMIC_END - CANOPY_DYNAMIC_BASE)
        return VM_ERR_INVALID;
    size = page_up(size);
    if (align < PAGE_SIZE)
        align = PAGE_SIZE;
    if (align & (align - 1))
        return VM_ERR_INVALID;

    uint64_t guard = (flags & VM_GUARD) ? PAGE_SIZE : 0;
    uint32_t prot = flags & (VM_W | VM_X);
    struct vmm_attrs attrs = {.name = name,
                              .prot = prot,
                              .kind = guard ? VM_KIND_STACK : VM_KIND_ANON,
                              .flags = (flags & VM_DEMAND) ? VMA_DEMAND : 0};
    struct vmm_attrs g = {.name = name, .prot = 0, .kind = VM_KIND_GUARD, .flags = 0};
    /* One search, and the area (and its guard, the page below) linked where it found the hole. */
    struct vmm_alloc_req req = {.size = size,
                                .align = align,
                                .min = DYN_BASE,
                                .last = DYN_LAST,
                                .flags = 0,
                                .guard = guard,
                                .guard_attrs = &g};
    struct vmm_vma *v;
    enum vmm_status vs = vmm_space_alloc(&vm.space, &req, &attrs, &v);
    if (vs != VMM_OK)
        return from_vmm(vs);
    uint64_t base = vmm_vma_start(v);

    if (!(flags & VM_DEMAND)) {
        enum vm_status st = commit_pages(base, size, prot);
        if (st != VM_OK) {
            release_pages(base, size);
            /* Removing whole VMAs (the area, its guard) needs no node: it cannot fail. */
            if (vmm_space_free(&vm.space, base - guard, size + guard) != VMM_OK)
                panic("vm: dropping a fresh area failed");
            return st;
        }
    }
    *va = base;
    return VM_OK;
}

enum vm_status vm_free(uint64_t va, uint64_t size)
{
    if (!vm.ready || !range_ok(va, size))
        return VM_ERR_INVALID;
    enum vm_status st = check_owned(va, va + size - 1, true);
    if (st != VM_OK)
        return st;
    enum vmm_status vs = vmm_space_free(&vm.space, va, size);
    if (vs != VMM_OK)
        return from_vmm(vs);
    release_pages(va, size);
    return VM_OK;
}

enum vm_status vm_protect(uint64_t va, uint64_t size, unsigned prot)
{
    if (!vm.ready || !range_ok(va, size) || (prot & ~(VM_W | VM_X)))
        return VM_ERR_INVALID;
    if ((prot & VM_W) && (prot & VM_X))
        return VM_ERR_WX;
    enum vm_status st = check_owned(va, va + size - 1, false);
    if (st != VM_OK)
        return st;
    enum vmm_status vs = vmm_space_protect(&vm.space, va, size, prot);
    if (vs != VMM_OK)
        return from_vmm(vs);
    enum pt_status ps = pt_protect(kmm_pt(), va_init(va), size, prot);
    if (ps != PT_OK)
        panic("vm: protecting 0x%016llx (+0x%llx): %s", (unsigned long long)va,
              (unsigned long long)size, pt_status_str(ps));
    flush_range(va, size / PAGE_SIZE);
    if (manifest_on() && !manifest_protect(va, size, map_flags(prot)))
        vm.manifest_misses++;
    return VM_OK;
}

/* ---- device and firmware memory ------------------------------------------------------------ */

/* The device map whose area starts at va, or NULL. */
static const struct device_map *device_at(uint64_t va)
{
    for (unsigned i = 0; i < vm.device_count; i++)
        if (vm.devices[i].va == va)
            return &vm.devices[i];
    return NULL;
}

/* True if a page of the frames [pa, pa + size) is mapped in the direct map. */
static bool in_direct_map(uint64_t pa, uint64_t size)
{
    const struct pt *pt = kmm_pt();
    uint64_t hhdm = pt->virt_offset, reach = CANOPY_DYNAMIC_BASE - hhdm;
    for (uint64_t at = pa; at - pa < size && at < reach; at += PAGE_SIZE) {
        struct pt_leaf leaf;
        if (pt_query(pt, va_init(hhdm + at), &leaf) == PT_OK)
            return true;
    }
    return false;
}

enum vm_status vm_map_phys(uint64_t pa, uint64_t size, unsigned prot, uint32_t cache,
                           const char *name, uint64_t *va)
{
    if (!vm.ready || va == NULL || name == NULL || (prot & ~VM_W) || (cache & ~PT_CACHE_MASK) ||
        size == 0 || pa + (size - 1) < pa || pa + (size - 1) > PTE_ADDR_MASK)
        return VM_ERR_INVALID;
    uint64_t first = page_down(pa), bytes = page_up(pa + (size - 1) + 1 - first);
    if (bytes == 0 || bytes > CANOPY_DYNAMIC_END - CANOPY_DYNAMIC_BASE)
        return VM_ERR_INVALID;
    if (in_direct_map(first, bytes))
        return VM_ERR_RAM;
    for (unsigned i = 0; i < vm.device_count; i++) {
        const struct device_map *d = &vm.devices[i];
        if (d->pa < first + bytes && first < d->pa + d->size && d->cache != cache)
            return VM_ERR_MEMTYPE;
    }
    if (vm.device_count == DEVICE_MAX)
        return VM_ERR_NOMEM;

    struct vmm_alloc_req req = {
        .size = bytes, .align = PAGE_SIZE, .min = DYN_BASE, .last = DYN_LAST, .flags = 0};
    struct vmm_attrs attrs = {
        .name = name, .prot = prot | cache, .kind = VM_KIND_DEVICE, .flags = VMA_FIXED};
    struct vmm_vma *v;
    enum vmm_status vs = vmm_space_alloc(&vm.space, &req, &attrs, &v);
    if (vs != VMM_OK)
        return from_vmm(vs);
    uint64_t base = vmm_vma_start(v);
    if (pt_map(kmm_pt(), va_init(base), pa_init(first), bytes, prot | cache, PAGE_SIZE) != PT_OK)
        goto undo_area;
    if (manifest_on() && !manifest_add(base, first, bytes, PAGE_SIZE,
                                       (uint16_t)(map_flags(prot) | cache), CANOPY_OWNER_DEVICE)) {
        if (pt_unmap(kmm_pt(), va_init(base), bytes) != PT_OK)
            panic("vm: unmapping a device map just made failed");
        flush_range(base, bytes / PAGE_SIZE);
        goto undo_area;
    }
    vm.devices[vm.device_count++] = (struct device_map){base, bytes, first, cache};
    *va = base + (pa - first);
    return VM_OK;

undo_area:
    /* Removing a whole VMA needs no node: it cannot fail. */
    if (vmm_space_free(&vm.space, base, bytes) != VMM_OK)
        panic("vm: dropping a fresh device area failed");
    return VM_ERR_NOMEM;
}

enum vm_status vm_unmap_phys(uint64_t va)
{
    if (!vm.ready)
        return VM_ERR_INVALID;
    uint64_t start = page_down(va);
    const struct vmm_vma *v = vm_lookup(start);
    unsigned i = 0;
    while (i < vm.device_count && vm.devices[i].va != start)
        i++;
    if (v == NULL || i == vm.device_count || v->attrs.kind != VM_KIND_DEVICE)
        return VM_ERR_NOT_MAPPED;
    uint64_t size = vm.devices[i].size;
    if (pt_unmap(kmm_pt(), va_init(start), size) != PT_OK)
        panic("vm: unmapping device map 0x%016llx: a 4 KiB mapping cannot need a split",
              (unsigned long long)start);
    flush_range(start, size / PAGE_SIZE);
    if (manifest_on() && !manifest_remove(start, size))
        vm.manifest_misses++;
    /* Removing a whole VMA needs no node: it cannot fail. */
    if (vmm_space_free(&vm.space, start, size) != VMM_OK)
        panic("vm: dropping device area 0x%016llx failed", (unsigned long long)start);
    vm.devices[i] = vm.devices[--vm.device_count];
    return VM_OK;
}

const void *vm_phys_view(uint64_t pa, uint64_t len, bool write, const char *name)
{
    if (!vm.ready || len == 0 || pa + (len - 1) < pa)
        return NULL;
    uint64_t hhdm = kmm_pt()->virt_offset;
    if (pa + (len - 1) < CANOPY_DYNAMIC_BASE - hhdm && kmm_range_is_mapped(hhdm + pa, len, write))
        return kmm_phys_to_virt(pa);
    for (unsigned i = 0; i < vm.device_count; i++) {
        const struct device_map *d = &vm.devices[i];
        const struct vmm_vma *v = vm_lookup(d->va);
        bool writable = v != NULL && (v->attrs.prot & PT_W);
        if (pa >= d->pa && pa - d->pa <= d->size - len && len <= d->size && (writable || !write))
            return (const void *)(uintptr_t)(d->va + (pa - d->pa));
    }
    uint64_t va;
    uint32_t cache = kmm_firmware_cache(pa, len);
    if (vm_map_phys(pa, len, write ? VM_W : 0, cache, name, &va) != VM_OK)
        return NULL;
    return (const void *)(uintptr_t)va;
}

const struct vmm_vma *vm_lookup(uint64_t va)
{
    return vm.ready ? vmm_space_lookup(&vm.space, va) : NULL;
}

bool vm_fault_demand(uint64_t va, enum vm_access access, const char **why)
{
    const struct vmm_vma *v = vm_lookup(va);
    if (v == NULL || !(v->attrs.flags & VMA_DEMAND))
        return false;
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    uint32_t prot = v->attrs.prot;
    if ((access == VM_ACCESS_WRITE && !(prot & PT_W)) ||
        (access == VM_ACCESS_EXEC && !(prot & PT_X))) {
        *why = "the area does not allow this access";
        return false;
    }
    uint64_t page = page_down(va), pa;
    if (pmm_alloc(kmm_pmm(), 0, CANOPY_OWNER_VMM, &pa) != PMM_OK) {
        *why = "no free frame";
        return false;
    }
    __builtin_memset(kmm_phys_to_virt(pa), 0, PAGE_SIZE);
    if (pt_map(kmm_pt(), va_init(page), pa_init(pa), PAGE_SIZE, prot, PAGE_SIZE) != PT_OK) {
        frames_free(pa, 1);
        *why = "no frame for a page table (or the page is mapped already)";
        return false;
    }
    if (manifest_on() &&
        !manifest_add(page, pa, PAGE_SIZE, PAGE_SIZE, map_flags(prot), CANOPY_OWNER_VMM)) {
        if (pt_unmap(kmm_pt(), va_init(page), PAGE_SIZE) != PT_OK)
            panic("vm: unmapping a page just mapped failed");
        arch_invlpg(page);
        frames_free(pa, 1);
        *why = "no room in the mapping manifest";
        return false;
    }
    vm.frames++;
    vm.demand_faults++;
    return true;
}

/* ---- boot ------------------------------------------------------------------------------- */

static void reserve_fixed(uint64_t start, uint64_t size, const char *name, unsigned kind,
                          uint32_t prot)
{
    struct vmm_attrs a = {.name = name, .prot = prot, .kind = (uint16_t)kind, .flags = VMA_FIXED};
    enum vmm_status st = vmm_space_reserve(&vm.space, start, size, &a, NULL);
    if (st != VMM_OK)
        panic("vm: cannot record %s at 0x%016llx-0x%016llx: %s", name, (unsigned long long)start,
              (unsigned long long)(start + size - 1), vmm_status_str(st));
}

/*
 * The direct map's VMAs for one run of RAM [base, end) (physical): "hhdm",
 * except over the frames of a read-only kernel segment, whose alias is
 * read-only too ("hhdm: .text", "hhdm: .rodata"). seg holds the read-only
 * segments sorted by paddr.
 */
static void reserve_hhdm_run(const struct canopy_bootinfo *bi, uint64_t base, uint64_t end,
                             const struct canopy_segment *seg, unsigned seg_count)
{
    static const char *const alias_names[] = {"hhdm: .text", "hhdm: .rodata"};
    uint64_t at = base;
    for (unsigned i = 0; i < seg_count && at < end; i++) {
        uint64_t s_lo = seg[i].paddr, s_hi = seg[i].paddr + seg[i].page_count * PAGE_SIZE;
        if (s_hi <= at || s_lo >= end)
            continue;
        if (s_lo > at)
            reserve_fixed(bi->hhdm_base + at, s_lo - at, "hhdm", VM_KIND_HHDM, PT_W);
        uint64_t lo = s_lo > at ? s_lo : at, hi = s_hi < end ? s_hi : end;
        reserve_fixed(bi->hhdm_base + lo, hi - lo,
                      alias_names[(seg[i].flags & CANOPY_SEG_X) ? 0 : 1], VM_KIND_HHDM, 0);
        at = hi;
    }
    if (at < end)
        reserve_fixed(bi->hhdm_base + at, end - at, "hhdm", VM_KIND_HHDM, PT_W);
    if (!kmm_range_is_mapped(bi->hhdm_base + base, end - base, false))
        kprintf("vm: hhdm run 0x%llx-0x%llx is not fully mapped\n", (unsigned long long)base,
                (unsigned long long)(end - 1));
}

/*
 * The direct map's VMAs: one run per stretch of RAM-like ranges that touch,
 * below the direct map's reach (as stage 1 maps it). Returns the run count.
 */
static unsigned reserve_hhdm(const struct canopy_bootinfo *bi, uint64_t *bytes)
{
    /* The read-only segments, by physical address (at most CANOPY_MAX_SEGMENTS). */
    struct canopy_segment ro[CANOPY_MAX_SEGMENTS];
    unsigned ro_count = 0;
    for (uint32_t i = 0; i < bi->segment_count; i++) {
        if (bi->segments[i].flags & CANOPY_SEG_W)
            continue;
        unsigned k = ro_count++;
        while (k > 0 && ro[k - 1].paddr > bi->segments[i].paddr) {
            ro[k] = ro[k - 1];
            k--;
        }
        ro[k] = bi->segments[i];
    }
    const struct canopy_mem_range *r = kmm_phys_to_virt(bi->mem_ranges);
    uint64_t reach = CANOPY_DYNAMIC_BASE - bi->hhdm_base;
    unsigned runs = 0;
    uint64_t run_base = 0, run_end = 0; /* [run_base, run_end) physical, empty when equal */
    *bytes = 0;
    for (uint32_t i = 0; i <= bi->mem_range_count; i++) {
        bool last = i == bi->mem_range_count;
        uint64_t base = last ? 0 : r[i].base, size = last ? 0 : r[i].page_count * PAGE_SIZE;
        if (!last && (size == 0 || !canopy_mem_is_direct_mapped(r[i].type) || base >= reach))
            continue;
        if (!last && size > reach - base)
            size = reach - base;
        if (!last && run_end != run_base && base == run_end) {
            run_end += size;
            continue;
        }
        if (run_end != run_base) {
            reserve_hhdm_run(bi, run_base, run_end, ro, ro_count);
            *bytes += run_end - run_base;
            runs++;
        }
        run_base = base;
        run_end = base + size;
    }
    return runs;
}

/* The framebuffer stage 1 mapped write-combining at fb_va: one device area. Returns 0 or 1. */
static unsigned reserve_framebuffer(const struct canopy_bootinfo *bi)
{
    const struct canopy_framebuffer *fb = &bi->fb;
    if (fb->format == CANOPY_FB_NONE || fb->size_bytes == 0 || bi->fb_va == 0)
        return 0;
    uint64_t va = page_down(bi->fb_va), pa = page_down(fb->base);
    uint64_t size = page_up(bi->fb_va + fb->size_bytes) - va;
    uint32_t prot = PT_W | PT_CACHE_WC;
    reserve_fixed(va, size, "framebuffer", VM_KIND_FRAMEBUFFER, prot);
    if (vm.device_count < DEVICE_MAX)
        vm.devices[vm.device_count++] = (struct device_map){va, size, pa, PT_CACHE_WC};
    return 1;
}

void vm_init(struct canopy_bootinfo *bi)
{
    kmm_early_close(); /* the early-map window is the VMM's from here on */
    kmalloc_init();
    unsigned levels = bi->paging_levels;
    struct vmm_node_source nodes = {
        .alloc = node_alloc,
        .free = node_free,
        .ctx = kcache_create("vma", sizeof(struct vmm_vma), VMM_VMA_ALIGN)};
    enum vmm_status st =
        vmm_space_init(&vm.space, va_upper_start(levels), UINT64_MAX, va_bits(levels), nodes);
    if (st != VMM_OK)
        panic("vm: cannot create the kernel address space: %s", vmm_status_str(st));

    for (uint32_t i = 0; i < bi->segment_count; i++) {
        const struct canopy_segment *s = &bi->segments[i];
        uint32_t prot =
            ((s->flags & CANOPY_SEG_W) ? PT_W : 0) | ((s->flags & CANOPY_SEG_X) ? PT_X : 0);
        reserve_fixed(s->vaddr, s->page_count * PAGE_SIZE, canopy_segment_name(s->flags),
                      VM_KIND_IMAGE, prot);
    }
    uint64_t hhdm_bytes;
    unsigned runs = reserve_hhdm(bi, &hhdm_bytes);
    unsigned fb_pieces = reserve_framebuffer(bi);
    uint64_t stack_low = bi->stack_top_va - CANOPY_BOOT_STACK_SIZE;
    reserve_fixed(stack_low - PAGE_SIZE, PAGE_SIZE, "boot stack", VM_KIND_GUARD, 0);
    reserve_fixed(stack_low, CANOPY_BOOT_STACK_SIZE, "boot stack", VM_KIND_STACK, PT_W);

    vm.ready = true;
    bi->phase_tsc[CANOPY_PHASE_VMM_READY] = arch_rdtsc();
    kprintf("vm: kernel address space: %zu areas (%u segments, %u hhdm runs of %llu MiB of RAM, "
            "%u framebuffer, boot stack + guard); allocations from 0x%016llx-0x%016llx\n",
            vmm_space_count(&vm.space), bi->segment_count, runs,
            (unsigned long long)bytes_to_mib(hhdm_bytes), fb_pieces, (unsigned long long)DYN_BASE,
            (unsigned long long)DYN_LAST);
}

bool vm_ready(void)
{
    return vm.ready;
}

const struct vmm_space *vm_space(void)
{
    return &vm.space;
}

void vm_stats(struct vm_stats *out)
{
    out->vmas = vm.ready ? vmm_space_count(&vm.space) : 0;
    out->frames = vm.frames;
    out->demand_faults = vm.demand_faults;
    out->manifest_misses = vm.manifest_misses;
    /*
     * The manifest starts in .bss and moves to a PMM run (owner HEAP) of
     * exactly capacity entries when it outgrows it (manifest_kernel.c).
     */
    const struct manifest *m = manifest_kernel();
    out->manifest_frames = 0;
    if (m != NULL && (uint64_t)(uintptr_t)m->entries < CANOPY_KERNEL_BASE)
        out->manifest_frames =
            pages_for_bytes((uint64_t)m->capacity * sizeof(struct canopy_mapping));
}

/* ---- checking and dumping ---------------------------------------------------------------- */

struct leaf_check {
    const struct vmm_vma *v; /* the area the walk is in */
    uint64_t vm_frames;      /* leaves in areas vm_alloc made */
    uint64_t committed;      /* leaves in areas that are not demand-zero */
    const char *why;
    uint64_t bad_va;
};

static bool check_leaf(void *ctx, const struct pt_leaf *leaf)
{
    struct leaf_check *c = ctx;
    c->bad_va = leaf->va;
    if (leaf->page_size != PAGE_SIZE) {
        c->why = "a large page maps part of the dynamic area";
        return false;
    }
    while (c->v != NULL && vmm_vma_last(c->v) < leaf->va)
        c->v = vmm_space_next(c->v);
    const struct vmm_vma *v = c->v;
    if (v == NULL || vmm_vma_start(v) > leaf->va) {
        c->why = "a page of the dynamic area is mapped outside every area";
        return false;
    }
    if (v->attrs.kind == VM_KIND_GUARD) {
        c->why = "a guard page is mapped";
        return false;
    }
    /* The leaf's memory type as a PT_CACHE_* value: its PAT index, wherever the PAT bit sits. */
    uint32_t cache = pte_pat_index(leaf->entry, leaf->page_size) << 4;
    _Static_assert(PT_CACHE_UC == 3u << 4, "PT_CACHE_* is the PAT index times 16");
    if ((leaf->attrs & (PT_W | PT_X)) != (v->attrs.prot & (PT_W | PT_X)) ||
        cache != (v->attrs.prot & PT_CACHE_MASK) || (leaf->attrs & PT_U)) {
        c->why = "a page's protection or memory type differs from its area's";
        return false;
    }
    c->committed += !(v->attrs.flags & VMA_DEMAND);
    if (v->attrs.kind == VM_KIND_DEVICE || v->attrs.kind == VM_KIND_FRAMEBUFFER) {
        const struct device_map *d = device_at(vmm_vma_start(v));
        if (d == NULL || leaf->pa != d->pa + (leaf->va - d->va)) {
            c->why = "a device page does not map its area's physical page";
            return false;
        }
        if (pmm_owner_of(kmm_pmm(), leaf->pa) != CANOPY_OWNER_NONE) {
            c->why = "a device page maps a frame the PMM has handed out";
            return false;
        }
        return true;
    }
    bool boot = (v->attrs.flags & VMA_FIXED) != 0;
    enum canopy_owner want = boot ? CANOPY_OWNER_STACK : CANOPY_OWNER_VMM;
    if (pmm_owner_of(kmm_pmm(), leaf->pa) != want) {
        c->why = boot ? "a boot stack page's frame is not owned by STACK"
                      : "a page's frame is not owned by VMM";
        return false;
    }
    c->vm_frames += !boot;
    return true;
}

bool vm_check(const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    if (!vm.ready) {
        *why = "the kernel address space is not set up";
        return false;
    }
    if (!vmm_space_check(&vm.space, why))
        return false;
    for (const struct vmm_vma *v = vmm_space_first(&vm.space); v; v = vmm_space_next(v))
        if ((uintptr_t)v % VMM_VMA_ALIGN != 0) {
            *why = "an area's node is not aligned as its cache places it";
            return false;
        }
    struct leaf_check c = {.v = vmm_space_first_from(&vm.space, DYN_BASE)};
    if (!pt_for_each_leaf(kmm_pt(), DYN_BASE, DYN_LAST, check_leaf, &c)) {
        *why = c.why;
        return false;
    }
    uint64_t want = 0;
    for (const struct vmm_vma *v = vmm_space_first_from(&vm.space, DYN_BASE);
         v != NULL && vmm_vma_start(v) <= DYN_LAST; v = vmm_space_next(v)) {
        if (vmm_vma_last(v) > DYN_LAST) {
            *why = "an area runs past the end of the dynamic area";
            return false;
        }
        if (v->attrs.kind == VM_KIND_GUARD && v->attrs.prot != 0) {
            *why = "a guard area has a protection";
            return false;
        }
        if ((v->attrs.prot & PT_W) && (v->attrs.prot & PT_X)) {
            *why = "an area is writable and executable";
            return false;
        }
        bool device = v->attrs.kind == VM_KIND_DEVICE || v->attrs.kind == VM_KIND_FRAMEBUFFER;
        if (device && device_at(vmm_vma_start(v)) == NULL) {
            *why = "a device area is missing from the device maps";
            return false;
        }
        if (v->attrs.kind != VM_KIND_GUARD && !(v->attrs.flags & VMA_DEMAND))
            want += (vmm_vma_last(v) - vmm_vma_start(v) + 1) / PAGE_SIZE;
    }
    if (c.committed != want) {
        *why = "an area that is not demand-zero has unmapped pages";
        return false;
    }
    if (c.vm_frames != vm.frames) {
        *why = "the mapped VMM frames differ from the frame counter";
        return false;
    }
    return true;
}

static void size_text(char *buf, size_t len, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (u + 1 < sizeof(units) / sizeof(units[0]) && bytes >= 1024 && bytes % 1024 == 0) {
        bytes /= 1024;
        u++;
    }
    fmt_snprintf(buf, len, "%llu %s", (unsigned long long)bytes, units[u]);
}

void vm_dump(void)
{
    if (!vm.ready) {
        kprintf("vm: the kernel address space is not set up\n");
        return;
    }
    for (const struct vmm_vma *v = vmm_space_first(&vm.space); v; v = vmm_space_next(v)) {
        char size[24];
        size_text(size, sizeof(size), vmm_vma_last(v) - vmm_vma_start(v) + 1);
        bool guard = v->attrs.kind == VM_KIND_GUARD;
        kprintf("  0x%016llx-0x%016llx %10s %c%c%c %-11s %s%s%s\n",
                (unsigned long long)vmm_vma_start(v), (unsigned long long)vmm_vma_last(v), size,
                guard ? '-' : 'r', (v->attrs.prot & PT_W) ? 'w' : '-',
                (v->attrs.prot & PT_X) ? 'x' : '-', vm_kind_name(v->attrs.kind), v->attrs.name,
                (v->attrs.flags & VMA_DEMAND) ? " (demand-zero)" : "",
                (v->attrs.flags & VMA_FIXED) ? " (fixed)" : "");
    }
    kprintf("  %zu areas, %llu frames mapped in the dynamic area, %llu demand-zero faults\n",
            vmm_space_count(&vm.space), (unsigned long long)vm.frames,
            (unsigned long long)vm.demand_faults);
}
