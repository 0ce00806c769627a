/*
 * selftest: the memory manager tested from inside the running kernel.
 *
 * A model of the test's own allocations (regions: start, pages, protection,
 * demand-zero, a tag byte) is kept beside the real thing and compared after
 * every operation; the random mix is
 *
 *   30%  vm_alloc: 1-16 pages (sometimes up to 256), alignment 4 KiB-2 MiB,
 *        R / RW / RX, a third demand-zero; committed pages must read zero
 *   12%  vm_free of a whole region
 *   10%  vm_free of a part (head, tail or middle: the area splits)
 *   10%  vm_protect of a part (splits up to three ways); W+X must be refused
 *   13%  a touch: read a page (zero or the region's tag), write the tag if
 *        writable; the first touch of a demand-zero page goes through the
 *        page-fault handler
 *   20%  kmalloc / kfree churn with a pattern checked before each free
 *    5%  requests that must fail without changing anything (W+X, a kernel
 *        segment, a hole, size 0), and a kernel stack used and freed
 *
 * Once per run, device maps (vm_map_phys): RAM is refused, a second memory
 * type for the framebuffer's frames is refused and the same one granted, and
 * a page the memory map leaves out is mapped with the firmware's type onto
 * its own frame and unmapped again, leaving nothing behind.
 *
 * Every 2,000 operations the model is compared with the VMA tree area by area
 * and with the page tables page by page (vm_check), and the heap, the PMM and
 * the page tables run their own checkers. At the start and the end an
 * allocation larger than free memory must fail and leave no trace (the undo
 * path). Finally everything is freed and the PMM's counts, the VMA tree
 * (count and a fingerprint of every area) and the page tables (table count,
 * pt_check, and a fingerprint of every leaf of the dynamic area) must be
 * exactly as before: no frame leaked, no mapping left.
 *
 * Callers: kselftest_boot (command line `selftest`), the shell's `selftest`.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <canopy/compiler.h>
#include <canopy/page.h>
#include <canopy/str.h>
#include <kernel/cmdline.h>
#include <kernel/console.h>
#include <kernel/kmalloc.h>
#include <kernel/kmm.h>
#include <kernel/kselftest.h>
#include <kernel/kstack.h>
#include <kernel/manifest.h>
#include <kernel/vm.h>
#include <vmm/pt.h>

#define MAX_REGIONS    160
#define HEAP_SLOTS     128
#define FULL_CHECK_OPS 2000
#define PMM_CHECK_OPS  20000
#define MAX_REPORTS    20
#define DEFAULT_SEED   0x5eed5eed0badcafeull

static const char region_name[] = "selftest";
static uint64_t tsc_hz;                    /* from the boot info, 0 if unknown */
static const struct canopy_bootinfo *boot; /* from kselftest_boot */
static const char stack_name[] = "selftest stack";

struct region {
    uint64_t va, pages;
    uint32_t prot;
    bool demand;
    uint8_t tag;
};

struct snapshot {
    uint64_t free_frames;
    uint64_t owner[CANOPY_OWNER_COUNT];
    uint64_t tables;
    uint64_t vmas, vma_print;
    uint64_t leaves, leaf_print;
    uint64_t vm_frames;
    struct kmalloc_stats heap;
    uint64_t manifest_frames;
};

static struct {
    uint64_t rng;
    uint64_t op;
    unsigned passed, failed, reported;
    struct region r[MAX_REGIONS];
    unsigned n;
    struct {
        uint8_t *p;
        size_t size;
        uint8_t tag;
    } heap[HEAP_SLOTS];
    uint64_t counts[8]; /* operations done per kind, for the summary */
} t;

static uint64_t rnd(void)
{
    /* xorshift64* */
    t.rng ^= t.rng >> 12;
    t.rng ^= t.rng << 25;
    t.rng ^= t.rng >> 27;
    return t.rng * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

PRINTF_LIKE(3, 4) static bool check(bool ok, int line, const char *fmt, ...)
{
    if (ok) {
        t.passed++;
        return true;
    }
    t.failed++;
    if (t.reported++ < MAX_REPORTS) {
        va_list ap;
        va_start(ap, fmt);
        kprintf("selftest: FAIL at op %llu (selftest.c:%d): ", (unsigned long long)t.op, line);
        kvprintf(fmt, ap);
        kprintf("\n");
        va_end(ap);
    }
    return false;
}
#define CHECK(cond, ...) check((cond), __LINE__, __VA_ARGS__)

/* ---- fingerprints of the state that must come back ---------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static bool leaf_print(void *ctx, const struct pt_leaf *leaf)
{
    uint64_t *s = ctx;
    s[0]++;
    s[1] = mix(mix(mix(s[1], leaf->va), leaf->pa), leaf->entry & ~0x60ull); /* minus A and D */
    return true;
}

/* The PMM's free frames, its CPU cache's deltas added. */
static uint64_t free_frames_now(void)
{
    struct pmm_counts c;
    pmm_counts(kmm_pmm(), &c);
    return c.free;
}

static void snapshot_take(struct snapshot *s)
{
    struct pmm_counts c;
    pmm_counts(kmm_pmm(), &c);
    s->free_frames = c.free;
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++)
        s->owner[o] = c.owner[o];
    s->tables = kmm_pt()->table_count;
    s->vmas = 0;
    s->vma_print = 0;
    for (const struct vmm_vma *v = vmm_space_first(vm_space()); v; v = vmm_space_next(v)) {
        s->vmas++;
        s->vma_print = mix(mix(s->vma_print, vmm_vma_start(v)), vmm_vma_last(v));
        s->vma_print = mix(s->vma_print, ((uint64_t)v->attrs.prot << 32) |
                                             ((uint64_t)v->attrs.kind << 16) | v->attrs.flags);
        s->vma_print = mix(s->vma_print, (uint64_t)(uintptr_t)v->attrs.name);
    }
    uint64_t lp[2] = {0, 0};
    pt_for_each_leaf(kmm_pt(), CANOPY_DYNAMIC_BASE, CANOPY_DYNAMIC_END - 1, leaf_print, lp);
    s->leaves = lp[0];
    s->leaf_print = lp[1];
    struct vm_stats vs;
    vm_stats(&vs);
    s->vm_frames = vs.frames;
    s->manifest_frames = vs.manifest_frames;
    kmalloc_stats(&s->heap);
}

/* ---- the model ------------------------------------------------------------------------------ */

static unsigned region_insert(struct region r)
{
    unsigned i = t.n;
    while (i > 0 && t.r[i - 1].va > r.va) {
        t.r[i] = t.r[i - 1];
        i--;
    }
    t.r[i] = r;
    t.n++;
    return i;
}

static void region_erase(unsigned i)
{
    for (unsigned j = i + 1; j < t.n; j++)
        t.r[j - 1] = t.r[j];
    t.n--;
}

/* Splits region i so that one region starts at page `at` of it (0 < at < pages). */
static void region_split(unsigned i, uint64_t at)
{
    struct region hi = t.r[i];
    hi.va += at * PAGE_SIZE;
    hi.pages -= at;
    t.r[i].pages = at;
    region_insert(hi);
}

static const char *prot_text(uint32_t prot)
{
    return (prot & VM_X) ? "r-x" : (prot & VM_W) ? "rw-" : "r--";
}

static uint32_t random_prot(void)
{
    static const uint32_t prots[] = {0, VM_W, VM_W, VM_X};
    return prots[rnd_below(4)];
}

static uint64_t region_end(const struct region *r)
{
    return r->va + r->pages * PAGE_SIZE;
}

/* ---- operations ------------------------------------------------------------------------------ */

static bool op_alloc(void)
{
    if (t.n + 3 > MAX_REGIONS)
        return false;
    uint64_t pages = rnd_below(16) == 0 ? 1 + rnd_below(256) : 1 + rnd_below(16);
    static const uint64_t aligns[] = {PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, 1 << 16, 1 << 21};
    uint64_t align = aligns[rnd_below(5)];
    uint32_t prot = random_prot();
    bool demand = rnd_below(3) == 0;
    /* An odd byte size must round up to whole pages. */
    uint64_t size = pages * PAGE_SIZE - rnd_below(PAGE_SIZE);
    uint64_t va = 0;
    enum vm_status st = vm_alloc(size, align, prot | (demand ? VM_DEMAND : 0), region_name, &va);
    if (!CHECK(st == VM_OK, "vm_alloc(%llu pages, align 0x%llx): %s", (unsigned long long)pages,
               (unsigned long long)align, vm_status_str(st)))
        return true;
    CHECK(va % align == 0 && va >= CANOPY_DYNAMIC_BASE &&
              va + pages * PAGE_SIZE <= CANOPY_DYNAMIC_END,
          "vm_alloc gave 0x%016llx for %llu pages aligned 0x%llx", (unsigned long long)va,
          (unsigned long long)pages, (unsigned long long)align);
    const struct vmm_vma *v = vm_lookup(va);
    CHECK(v != NULL && vmm_vma_start(v) == va && vmm_vma_last(v) == va + pages * PAGE_SIZE - 1 &&
              v->attrs.prot == prot,
          "the new area at 0x%016llx is not what was asked for", (unsigned long long)va);
    struct region r = {
        .va = va, .pages = pages, .prot = prot, .demand = demand, .tag = (uint8_t)(rnd() | 1)};
    if (!demand) {
        const volatile uint64_t *first = (const volatile uint64_t *)(uintptr_t)va;
        const volatile uint64_t *last =
            (const volatile uint64_t *)(uintptr_t)(va + pages * PAGE_SIZE - 8);
        CHECK(*first == 0 && *last == 0, "fresh pages at 0x%016llx are not zero",
              (unsigned long long)va);
    }
    region_insert(r);
    t.counts[0]++;
    return true;
}

static bool op_free(void)
{
    if (t.n == 0)
        return false;
    unsigned i = (unsigned)rnd_below(t.n);
    struct region r = t.r[i];
    enum vm_status st = vm_free(r.va, r.pages * PAGE_SIZE);
    if (!CHECK(st == VM_OK, "vm_free(0x%016llx, %llu pages): %s", (unsigned long long)r.va,
               (unsigned long long)r.pages, vm_status_str(st)))
        return true;
    region_erase(i);
    struct pt_leaf leaf;
    CHECK(vm_lookup(r.va) == NULL && vm_lookup(region_end(&r) - 1) == NULL &&
              pt_query(kmm_pt(), va_init(r.va), &leaf) == PT_ERR_NOT_MAPPED &&
              pt_query(kmm_pt(), va_init(region_end(&r) - PAGE_SIZE), &leaf) == PT_ERR_NOT_MAPPED,
          "0x%016llx is still an area or mapped after vm_free", (unsigned long long)r.va);
    t.counts[1]++;
    return true;
}

/* Picks [from, to) pages of region i, not the whole of it. False if it has one page. */
static bool pick_part(unsigned i, uint64_t *from, uint64_t *to)
{
    uint64_t pages = t.r[i].pages;
    if (pages < 2)
        return false;
    switch (rnd_below(3)) {
    case 0: /* head */
        *from = 0;
        *to = 1 + rnd_below(pages - 1);
        break;
    case 1: /* tail */
        *from = 1 + rnd_below(pages - 1);
        *to = pages;
        break;
    default: /* middle, or a head/tail if too small */
        *from = rnd_below(pages - 1);
        *to = *from + 1 + rnd_below(pages - *from - 1);
        if (*to == pages && *from == 0)
            *to = pages - 1;
        break;
    }
    return true;
}

static bool op_free_part(void)
{
    if (t.n == 0 || t.n + 2 > MAX_REGIONS)
        return false;
    unsigned i = (unsigned)rnd_below(t.n);
    uint64_t from, to;
    if (!pick_part(i, &from, &to))
        return false;
    uint64_t va = t.r[i].va + from * PAGE_SIZE, size = (to - from) * PAGE_SIZE;
    enum vm_status st = vm_free(va, size);
    if (!CHECK(st == VM_OK, "vm_free(part 0x%016llx, %llu pages): %s", (unsigned long long)va,
               (unsigned long long)(to - from), vm_status_str(st)))
        return true;
    /* Model: split off the tail, then the freed middle, and drop the middle. */
    if (to < t.r[i].pages)
        region_split(i, to);
    if (from > 0) {
        region_split(i, from);
        i++;
    }
    region_erase(i);
    CHECK(vm_lookup(va) == NULL && vm_lookup(va + size - 1) == NULL,
          "0x%016llx is still an area after a partial vm_free", (unsigned long long)va);
    t.counts[2]++;
    return true;
}

static bool op_protect(void)
{
    if (t.n == 0 || t.n + 2 > MAX_REGIONS)
        return false;
    unsigned i = (unsigned)rnd_below(t.n);
    uint64_t from = 0, to = t.r[i].pages;
    if (rnd_below(2) && !pick_part(i, &from, &to))
        return false;
    uint64_t va = t.r[i].va + from * PAGE_SIZE, size = (to - from) * PAGE_SIZE;
    if (rnd_below(16) == 0) {
        enum vm_status st = vm_protect(va, size, VM_W | VM_X);
        CHECK(st == VM_ERR_WX, "vm_protect(W+X) gave %s", vm_status_str(st));
        return true;
    }
    uint32_t prot = random_prot();
    enum vm_status st = vm_protect(va, size, prot);
    if (!CHECK(st == VM_OK, "vm_protect(0x%016llx, %llu pages, %s): %s", (unsigned long long)va,
               (unsigned long long)(to - from), prot_text(prot), vm_status_str(st)))
        return true;
    if (to < t.r[i].pages)
        region_split(i, to);
    if (from > 0) {
        region_split(i, from);
        i++;
    }
    t.r[i].prot = prot;
    struct pt_leaf leaf;
    if (pt_query(kmm_pt(), va_init(va), &leaf) == PT_OK)
        CHECK((leaf.attrs & (PT_W | PT_X)) == prot, "page 0x%016llx has %s%s after protect to %s",
              (unsigned long long)va, (leaf.attrs & PT_W) ? "W" : "-",
              (leaf.attrs & PT_X) ? "X" : "-", prot_text(prot));
    t.counts[3]++;
    return true;
}

static bool op_touch(void)
{
    if (t.n == 0)
        return false;
    const struct region *r = &t.r[rnd_below(t.n)];
    uint64_t va = r->va + rnd_below(r->pages) * PAGE_SIZE + rnd_below(PAGE_SIZE / 8) * 8;
    struct pt_leaf leaf;
    bool was_mapped = pt_query(kmm_pt(), va_init(va), &leaf) == PT_OK;
    CHECK(was_mapped || r->demand, "a page of a committed region is not mapped: 0x%016llx",
          (unsigned long long)va);
    /* Each word holds 0 or the region's tag in every byte. */
    uint64_t want = 0x0101010101010101ull * r->tag;
    uint64_t got = *(volatile uint64_t *)(uintptr_t)va;
    CHECK(got == 0 || got == want, "0x%016llx holds 0x%llx, not 0 or 0x%llx",
          (unsigned long long)va, (unsigned long long)got, (unsigned long long)want);
    if (r->prot & VM_W)
        *(volatile uint64_t *)(uintptr_t)va = want;
    CHECK(pt_query(kmm_pt(), va_init(va), &leaf) == PT_OK &&
              (leaf.attrs & (PT_W | PT_X)) == r->prot &&
              pmm_owner_of(kmm_pmm(), leaf.pa) == CANOPY_OWNER_VMM,
          "after a touch 0x%016llx is not mapped with %s on a VMM frame", (unsigned long long)va,
          prot_text(r->prot));
    t.counts[4]++;
    return true;
}

static bool op_heap(void)
{
    unsigned i = (unsigned)rnd_below(HEAP_SLOTS);
    if (t.heap[i].p) {
        unsigned bad = 0;
        for (size_t k = 0; k < t.heap[i].size; k++)
            bad += t.heap[i].p[k] != t.heap[i].tag;
        CHECK(bad == 0, "kmalloc block %p (%zu bytes) has %u changed bytes", (void *)t.heap[i].p,
              t.heap[i].size, bad);
        kfree(t.heap[i].p);
        t.heap[i].p = NULL;
    } else {
        size_t size = rnd_below(8) == 0 ? 1 + rnd_below(20000) : 1 + rnd_below(700);
        uint8_t *p = kmalloc(size);
        if (!CHECK(p != NULL && (uintptr_t)p % 16 == 0, "kmalloc(%zu) gave %p", size, (void *)p))
            return true;
        t.heap[i].p = p;
        t.heap[i].size = size;
        t.heap[i].tag = (uint8_t)rnd();
        __builtin_memset(p, t.heap[i].tag, size);
    }
    t.counts[5]++;
    return true;
}

__attribute__((noinline)) static uint64_t stack_work(uint64_t depth)
{
    volatile uint8_t frame[256];
    frame[0] = (uint8_t)depth;
    frame[255] = (uint8_t)(depth >> 8);
    uint64_t below = depth ? stack_work(depth - 1) : 0;
    return below + frame[0] + frame[255];
}

static void on_stack(void *arg)
{
    uint64_t *io = arg;
    uint64_t sp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
    io[1] = sp;
    io[0] = stack_work(io[0]);
}

static bool op_refusals_and_stack(void)
{
    size_t vmas = vmm_space_count(vm_space());
    uint64_t frames = free_frames_now(), va;
    enum vm_status st;
    switch (rnd_below(5)) {
    case 0:
        st = vm_alloc(PAGE_SIZE, 0, VM_W | VM_X, region_name, &va);
        CHECK(st == VM_ERR_WX, "vm_alloc(W+X) gave %s", vm_status_str(st));
        break;
    case 1:
        st = vm_free(CANOPY_KERNEL_BASE, PAGE_SIZE);
        CHECK(st == VM_ERR_FIXED, "vm_free of the kernel's first page gave %s", vm_status_str(st));
        st = vm_protect(CANOPY_KERNEL_BASE, PAGE_SIZE, VM_W);
        CHECK(st == VM_ERR_FIXED, "vm_protect of the kernel's first page gave %s",
              vm_status_str(st));
        break;
    case 2:
        st = vm_alloc(0, 0, VM_W, region_name, &va);
        CHECK(st == VM_ERR_INVALID, "vm_alloc(0) gave %s", vm_status_str(st));
        st = vm_alloc(PAGE_SIZE, 3 * PAGE_SIZE, VM_W, region_name, &va);
        CHECK(st == VM_ERR_INVALID, "vm_alloc(align 12 KiB) gave %s", vm_status_str(st));
        break;
    case 3: {
        /* The top page of the dynamic area is never handed out in this test: a hole. */
        uint64_t hole = CANOPY_DYNAMIC_END - PAGE_SIZE;
        st = vm_free(hole, PAGE_SIZE);
        CHECK(st == VM_ERR_NOT_MAPPED, "vm_free of a hole gave %s", vm_status_str(st));
        st = vm_protect(hole, PAGE_SIZE, 0);
        CHECK(st == VM_ERR_NOT_MAPPED, "vm_protect of a hole gave %s", vm_status_str(st));
        break;
    }
    default: {
        uint64_t top;
        uint64_t size = (2 + rnd_below(6)) * PAGE_SIZE;
        st = kstack_alloc(size, stack_name, &top);
        if (!CHECK(st == VM_OK, "kstack_alloc: %s", vm_status_str(st)))
            return true;
        const struct vmm_vma *guard = vm_lookup(top - size - PAGE_SIZE);
        struct pt_leaf leaf;
        CHECK(guard != NULL && guard->attrs.kind == VM_KIND_GUARD &&
                  pt_query(kmm_pt(), va_init(top - size - PAGE_SIZE), &leaf) == PT_ERR_NOT_MAPPED,
              "the stack below 0x%016llx has no unmapped guard page", (unsigned long long)top);
        uint64_t io[2] = {4, 0};
        kstack_call(top, on_stack, io);
        uint64_t want = 0;
        for (uint64_t d = 0; d <= 4; d++)
            want += d;
        CHECK(io[0] == want && io[1] < top && io[1] >= top - size,
              "a call on the stack at 0x%016llx gave %llu with rsp 0x%llx", (unsigned long long)top,
              (unsigned long long)io[0], (unsigned long long)io[1]);
        st = kstack_free(top);
        CHECK(st == VM_OK && vm_lookup(top - 1) == NULL &&
                  vm_lookup(top - size - PAGE_SIZE) == NULL,
              "kstack_free: %s", vm_status_str(st));
        /* VM_GUARD's align is the first usable byte's; the guard is the page below it. */
        uint64_t align = PAGE_SIZE << (2 + rnd_below(8)); /* 16 KiB .. 2 MiB */
        st = vm_alloc(size, align, VM_W | VM_GUARD | VM_DEMAND, stack_name, &va);
        if (CHECK(st == VM_OK, "vm_alloc(VM_GUARD, align 0x%llx): %s", (unsigned long long)align,
                  vm_status_str(st))) {
            guard = vm_lookup(va - PAGE_SIZE);
            const struct vmm_vma *area = vm_lookup(va);
            CHECK(va % align == 0 && area != NULL && vmm_vma_start(area) == va &&
                      area->attrs.kind == VM_KIND_STACK && guard != NULL &&
                      guard->attrs.kind == VM_KIND_GUARD &&
                      vmm_vma_start(guard) == va - PAGE_SIZE && vmm_vma_last(guard) == va - 1,
                  "vm_alloc(VM_GUARD, align 0x%llx) gave 0x%016llx without its guard below",
                  (unsigned long long)align, (unsigned long long)va);
            st = vm_free(va - PAGE_SIZE, size + PAGE_SIZE);
            CHECK(st == VM_OK && vm_lookup(va) == NULL && vm_lookup(va - PAGE_SIZE) == NULL,
                  "freeing a guarded area: %s", vm_status_str(st));
        }
        t.counts[6]++;
        return true;
    }
    }
    CHECK(vmm_space_count(vm_space()) == vmas && free_frames_now() == frames,
          "a refused request changed the areas or the free frames");
    t.counts[7]++;
    return true;
}

/* The first page below 4 GiB that no range of the memory map holds, or in a non-RAM range. */
static bool find_device_page(uint64_t *pa)
{
    const struct canopy_mem_range *r = kmm_phys_to_virt(boot->mem_ranges);
    uint64_t at = PAGE_SIZE;
    for (uint32_t i = 0; i < boot->mem_range_count && at < (1ull << 32); i++) {
        if (r[i].base > at || !canopy_mem_is_direct_mapped(r[i].type)) {
            *pa = r[i].base > at ? at : r[i].base;
            return true;
        }
        at = r[i].base + r[i].page_count * PAGE_SIZE;
    }
    *pa = at;
    return at < (1ull << 32);
}

/* vm_map_phys and vm_unmap_phys, each refusal changing nothing. */
static void check_device_maps(void)
{
    uint64_t va, pa;
    size_t vmas = vmm_space_count(vm_space());
    void *p = kmalloc(PAGE_SIZE);
    if (p != NULL) {
        pa = (uint64_t)(uintptr_t)p - kmm_pt()->virt_offset;
        enum vm_status st = vm_map_phys(pa, 16, 0, PT_CACHE_UC, region_name, &va);
        CHECK(st == VM_ERR_RAM, "vm_map_phys of a heap frame gave %s", vm_status_str(st));
        kfree(p);
    }
    if (boot->fb.format != CANOPY_FB_NONE && (boot->cpu_flags & CANOPY_CPU_PAT)) {
        enum vm_status st =
            vm_map_phys(boot->fb.base, PAGE_SIZE, VM_W, PT_CACHE_UC, region_name, &va);
        CHECK(st == VM_ERR_MEMTYPE, "an uncached map of the framebuffer gave %s",
              vm_status_str(st));
        st = vm_map_phys(boot->fb.base + 8, 8, 0, PT_CACHE_WC, region_name, &va);
        struct pt_leaf leaf;
        if (CHECK(st == VM_OK, "a write-combining map of the framebuffer: %s", vm_status_str(st))) {
            CHECK(page_down(va) != page_down(boot->fb_va) && (va & (PAGE_SIZE - 1)) == 8 &&
                      pt_query(kmm_pt(), va_init(va), &leaf) == PT_OK &&
                      leaf.pa == page_down(boot->fb.base) && leaf.attrs == PT_CACHE_WC,
                  "the framebuffer's second map at 0x%016llx", (unsigned long long)va);
            st = vm_unmap_phys(va);
            CHECK(st == VM_OK, "vm_unmap_phys: %s", vm_status_str(st));
        }
    }
    if (find_device_page(&pa)) {
        uint32_t cache = kmm_firmware_cache(pa, PAGE_SIZE);
        enum vm_status st = vm_map_phys(pa, PAGE_SIZE, 0, cache, region_name, &va);
        struct pt_leaf leaf;
        if (CHECK(st == VM_OK, "vm_map_phys(0x%llx): %s", (unsigned long long)pa,
                  vm_status_str(st))) {
            const struct vmm_vma *v = vm_lookup(va);
            CHECK(v != NULL && v->attrs.kind == VM_KIND_DEVICE &&
                      pt_query(kmm_pt(), va_init(va), &leaf) == PT_OK && leaf.pa == pa &&
                      leaf.attrs == cache && leaf.page_size == PAGE_SIZE,
                  "the map of 0x%llx at 0x%016llx", (unsigned long long)pa, (unsigned long long)va);
            const char *why = NULL;
            CHECK(vm_check(&why), "vm_check with a device map: %s", why);
            st = vm_unmap_phys(va);
            CHECK(st == VM_OK && vm_lookup(va) == NULL &&
                      pt_query(kmm_pt(), va_init(va), &leaf) == PT_ERR_NOT_MAPPED,
                  "vm_unmap_phys(0x%016llx): %s", (unsigned long long)va, vm_status_str(st));
            CHECK(vm_unmap_phys(va) == VM_ERR_NOT_MAPPED, "a second vm_unmap_phys succeeded");
        }
    }
    CHECK(vm_unmap_phys(CANOPY_KERNEL_BASE) == VM_ERR_NOT_MAPPED,
          "vm_unmap_phys of the kernel image did not refuse");
    CHECK(vmm_space_count(vm_space()) == vmas, "device maps left areas behind");
}

/* An allocation larger than free memory fails with VM_ERR_NOMEM and leaves nothing behind. */
static void check_undo(void)
{
    struct snapshot before, after;
    snapshot_take(&before);
    uint64_t va;
    uint64_t pages = free_frames_now() + 64;
    enum vm_status st = vm_alloc(pages * PAGE_SIZE, 0, VM_W, region_name, &va);
    snapshot_take(&after);
    /* A manifest that had to grow keeps its larger storage (owner HEAP). */
    uint64_t grown = after.manifest_frames - before.manifest_frames;
    CHECK(st == VM_ERR_NOMEM, "vm_alloc of %llu pages (more than free) gave %s",
          (unsigned long long)pages, vm_status_str(st));
    CHECK(after.free_frames + grown == before.free_frames && after.vmas == before.vmas &&
              after.vma_print == before.vma_print && after.leaves == before.leaves &&
              after.leaf_print == before.leaf_print && after.tables == before.tables &&
              after.vm_frames == before.vm_frames,
          "a failed allocation left something behind (free %llu -> %llu, areas %llu -> %llu, "
          "tables %llu -> %llu)",
          (unsigned long long)before.free_frames, (unsigned long long)after.free_frames,
          (unsigned long long)before.vmas, (unsigned long long)after.vmas,
          (unsigned long long)before.tables, (unsigned long long)after.tables);
}

/* ---- whole-structure comparisons ------------------------------------------------------------ */

/* `pt check` output during the test, kept (the first 2 KiB) and shown only if it differs. */
static char compare_text[2048];
static size_t compare_len;

static void compare_sink(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n && compare_len < sizeof(compare_text); i++)
        compare_text[compare_len++] = s[i];
}

static void full_check(void)
{
    const char *why = NULL;
    CHECK(vm_check(&why), "vm_check: %s", why ? why : "?");
    why = NULL;
    CHECK(kmalloc_check(&why), "kmalloc_check: %s", why ? why : "?");
    /* The test's areas, in order, are exactly the model's regions. */
    unsigned i = 0;
    bool same = true;
    for (const struct vmm_vma *v = vmm_space_first_from(vm_space(), CANOPY_DYNAMIC_BASE);
         v != NULL && vmm_vma_start(v) < CANOPY_DYNAMIC_END; v = vmm_space_next(v)) {
        if (v->attrs.name != region_name)
            continue;
        const struct region *r = i < t.n ? &t.r[i] : NULL;
        if (r == NULL || vmm_vma_start(v) != r->va || vmm_vma_last(v) != region_end(r) - 1 ||
            v->attrs.prot != r->prot || ((v->attrs.flags & VMA_DEMAND) != 0) != r->demand) {
            same = false;
            break;
        }
        i++;
    }
    CHECK(same && i == t.n, "the areas differ from the model at region %u of %u", i, t.n);
    /* The mapping manifest must still describe the live tables exactly (`pt check`). */
    const struct manifest *m = manifest_kernel();
    if (m != NULL) {
        compare_len = 0;
        uint64_t diffs = manifest_set_compare(m, kmm_pt(), compare_sink, NULL);
        if (!CHECK(diffs == 0, "the mapping manifest differs from the page tables in %llu places",
                   (unsigned long long)diffs) &&
            t.reported <= MAX_REPORTS)
            console_write(compare_text, compare_len);
    }
}

static void deep_check(void)
{
    char msg[160];
    CHECK(pmm_check(kmm_pmm(), msg, sizeof(msg)) == PMM_OK, "pmm_check: %s", msg);
    const char *why = NULL;
    CHECK(pt_check(kmm_pt(), &why), "pt_check: %s", why ? why : "?");
}

static void free_everything(void)
{
    while (t.n > 0) {
        struct region r = t.r[t.n - 1];
        enum vm_status st = vm_free(r.va, r.pages * PAGE_SIZE);
        CHECK(st == VM_OK, "freeing region 0x%016llx: %s", (unsigned long long)r.va,
              vm_status_str(st));
        t.n--;
    }
    for (unsigned i = 0; i < HEAP_SLOTS; i++)
        if (t.heap[i].p) {
            kfree(t.heap[i].p);
            t.heap[i].p = NULL;
        }
}

static void compare_with_start(const struct snapshot *a, const struct snapshot *b)
{
    uint64_t grown = b->manifest_frames - a->manifest_frames;
    if (grown)
        kprintf("selftest: the mapping manifest grew by %llu frames (kept, owner heap)\n",
                (unsigned long long)grown);
    CHECK(b->free_frames + grown == a->free_frames, "free frames %llu at the start, %llu now",
          (unsigned long long)a->free_frames, (unsigned long long)b->free_frames);
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++) {
        uint64_t expect = a->owner[o] + (o == CANOPY_OWNER_HEAP ? grown : 0);
        CHECK(b->owner[o] == expect, "owner %u holds %llu frames, %llu at the start", o,
              (unsigned long long)b->owner[o], (unsigned long long)a->owner[o]);
    }
    CHECK(b->tables == a->tables, "%llu page tables at the start, %llu now",
          (unsigned long long)a->tables, (unsigned long long)b->tables);
    CHECK(b->vmas == a->vmas && b->vma_print == a->vma_print,
          "the VMA tree differs from the start (%llu areas then, %llu now)",
          (unsigned long long)a->vmas, (unsigned long long)b->vmas);
    CHECK(b->leaves == a->leaves && b->leaf_print == a->leaf_print,
          "the dynamic area's mappings differ from the start (%llu pages then, %llu now)",
          (unsigned long long)a->leaves, (unsigned long long)b->leaves);
    CHECK(b->vm_frames == a->vm_frames, "vm frame counter %llu at the start, %llu now",
          (unsigned long long)a->vm_frames, (unsigned long long)b->vm_frames);
    CHECK(b->heap.frames == a->heap.frames && b->heap.objects == a->heap.objects &&
              b->heap.large_allocs == a->heap.large_allocs,
          "the heap holds %llu frames / %llu objects, %llu / %llu at the start",
          (unsigned long long)b->heap.frames, (unsigned long long)b->heap.objects,
          (unsigned long long)a->heap.frames, (unsigned long long)a->heap.objects);
}

int kselftest_run_ops(uint64_t ops, uint64_t seed)
{
    __builtin_memset(&t, 0, sizeof(t));
    t.rng = seed ? seed : DEFAULT_SEED;
    if (!vm_ready()) {
        kprintf("selftest: the kernel address space is not set up\n");
        kprintf("selftest: 0 passed, 1 failed\n");
        return 1;
    }
    kprintf("selftest: %llu operations, seed 0x%llx\n", (unsigned long long)ops,
            (unsigned long long)t.rng);
    uint64_t t0 = arch_rdtsc();
    struct vm_stats vs0;
    vm_stats(&vs0);
    full_check();
    deep_check();
    struct snapshot start, end;
    snapshot_take(&start);
    check_undo();
    if (boot != NULL)
        check_device_maps();

    for (t.op = 0; t.op < ops; t.op++) {
        /* An operation that does not apply (no room for a region, no region) is drawn again. */
        for (bool done = false; !done;) {
            uint64_t k = rnd_below(100);
            done = k < 30   ? op_alloc()
                   : k < 42 ? op_free()
                   : k < 52 ? op_free_part()
                   : k < 62 ? op_protect()
                   : k < 75 ? op_touch()
                   : k < 95 ? op_heap()
                            : op_refusals_and_stack();
        }
        if ((t.op + 1) % FULL_CHECK_OPS == 0)
            full_check();
        if ((t.op + 1) % PMM_CHECK_OPS == 0)
            deep_check();
    }
    full_check();
    check_undo();
    free_everything();
    full_check();
    deep_check();
    snapshot_take(&end);
    compare_with_start(&start, &end);
    CHECK(kmm_audit(), "the PMM audit found differences");

    struct vm_stats vs1;
    vm_stats(&vs1);
    uint64_t ticks = arch_rdtsc() - t0;
    kprintf("selftest: %llu allocs, %llu frees, %llu partial frees, %llu protects, %llu touches "
            "(%llu demand-zero faults), %llu heap ops, %llu stacks, %llu refusals\n",
            (unsigned long long)t.counts[0], (unsigned long long)t.counts[1],
            (unsigned long long)t.counts[2], (unsigned long long)t.counts[3],
            (unsigned long long)t.counts[4],
            (unsigned long long)(vs1.demand_faults - vs0.demand_faults),
            (unsigned long long)t.counts[5], (unsigned long long)t.counts[6],
            (unsigned long long)t.counts[7]);
    if (vs1.manifest_misses != vs0.manifest_misses)
        kprintf("selftest: the mapping manifest missed %llu changes\n",
                (unsigned long long)(vs1.manifest_misses - vs0.manifest_misses));
    if (tsc_hz >= 1000)
        kprintf("selftest: took %llu ms\n", (unsigned long long)(ticks / (tsc_hz / 1000)));
    kprintf("selftest: %u passed, %u failed\n", t.passed, t.failed);
    return (int)t.failed;
}

int kselftest_run(void)
{
    return kselftest_run_ops(KSELFTEST_OPS, 0);
}

static volatile bool keep_going = true;

__attribute__((noinline)) static uint64_t overflow(uint64_t depth)
{
    volatile uint8_t frame[512];
    frame[0] = (uint8_t)depth;
    uint64_t r = keep_going ? overflow(depth + 1) : 0;
    return r + frame[0];
}

static void overflow_entry(void *arg)
{
    *(volatile uint64_t *)arg = overflow(0);
}

void kselftest_boot(const struct canopy_bootinfo *bi)
{
    tsc_hz = bi->tsc_hz;
    boot = bi;
    char value[32];
    if (!cmdline_get(bi->cmdline, "selftest", value, sizeof(value)))
        return;
    if (value[0] == '\0') {
        (void)kselftest_run();
        return;
    }
    if (str_eq(value, "kstack-overflow")) {
        uint64_t top;
        enum vm_status st = kstack_alloc(4 * PAGE_SIZE, stack_name, &top);
        if (st != VM_OK) {
            kprintf("selftest: kstack_alloc: %s\n", vm_status_str(st));
            return;
        }
        kprintf("selftest: overflowing the %s (0x%016llx-0x%016llx, guard page below)\n",
                stack_name, (unsigned long long)(top - 4 * PAGE_SIZE),
                (unsigned long long)(top - 1));
        uint64_t sink;
        kstack_call(top, overflow_entry, &sink);
        kprintf("selftest: the %s did not overflow\n", stack_name);
        return;
    }
    uint64_t ops;
    size_t len = 0;
    while (value[len] != '\0')
        len++;
    if (!str_parse_u64(value, len, &ops)) {
        kprintf("selftest: unknown mode \"%s\" (selftest, selftest=N, "
                "selftest=kstack-overflow)\n",
                value);
        return;
    }
    (void)kselftest_run_ops(ops, bi->random_seed);
}
