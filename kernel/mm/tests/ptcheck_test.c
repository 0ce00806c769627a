/*
 * Host tests for `pt check`'s frame and direct-map rules (kernel/mm/ptcheck.c):
 * address spaces built with vmm/pt over a host buffer, each rule made to
 * fire by a mapping that breaks it, and a random set of aliases checked
 * against a brute-force comparison of every pair of runs.
 *
 * Page tables live in a host buffer standing in for physical memory at
 * TABLE_BASE (host_pt.h); the mapped frames are only numbers.
 */
#include <kernel/ptcheck.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>
#include <canopy/page.h>
#include <canopy/rng.h>
#include <vmm/ptdump.h>
#include <vmm/pte.h>

#include "host_pt.h"

unsigned check_passed, check_failed;

#define K4 PAGE_SIZE
#define M2 PAGE_SIZE_2M
#define G1 PAGE_SIZE_1G

#define HHDM   CANOPY_HHDM_BASE_4L
#define REACH  (CANOPY_DYNAMIC_BASE - CANOPY_HHDM_BASE_4L)
#define KERNEL CANOPY_KERNEL_BASE

/* Simulated physical address of the table buffer (host_pt.h). */
#define TABLE_BASE 0x4000000000ull

static void new_pt(struct pt *pt)
{
    host_pt_new(pt, true);
}

static void map(struct pt *pt, uint64_t va, uint64_t pa, uint64_t size, uint32_t attrs,
                uint64_t max_page)
{
    enum pt_status st = pt_map(pt, va_init(va), pa_init(pa), size, attrs, max_page);
    if (st != PT_OK) {
        fprintf(stderr, "pt_map 0x%llx: %s\n", (unsigned long long)va, pt_status_str(st));
        exit(2);
    }
}

/* Sets PAT index `index` on every leaf of [va, va + size): pt_map only encodes PWT and PCD. */
static void set_pat_index(struct pt *pt, uint64_t va, uint64_t size, unsigned index)
{
    for (uint64_t at = va; at < va + size;) {
        struct pt_walk w;
        pt_walk(pt, va_init(at), &w);
        if (!w.present) {
            fprintf(stderr, "set_pat_index: 0x%llx not mapped\n", (unsigned long long)at);
            exit(2);
        }
        uint64_t ps = w.leaf.page_size;
        uint64_t e = w.level[w.depth - 1].entry & ~(PTE_PWT | PTE_PCD | pte_pat_bit(ps));
        e |= pte_pat_bits(index, ps);
        /* Find the slot again through the tables: the walk kept the entries, not their places. */
        uint64_t tpa = pt->root;
        for (unsigned level = pt->levels;; level--) {
            uint64_t *t = (uint64_t *)(uintptr_t)(tpa + pt->virt_offset);
            uint64_t *slot = &t[pte_index(at, level)];
            if (pte_is_leaf(*slot, level)) {
                *slot = e;
                break;
            }
            tpa = pte_table_addr(*slot);
        }
        at = w.leaf.va + ps;
    }
}

/* ---- the output and the runs (host_pt.h captures the output) ------------------------------- */

#define OUT_HAS(want)                                                                              \
    CHECKF(strstr(out, (want)) != NULL, "output\n---\n%s--- lacks\n%s", out, (want))
#define OUT_LACKS(want)                                                                            \
    CHECKF(strstr(out, (want)) == NULL, "output\n---\n%s--- has\n%s", out, (want))

static struct ptcheck_run run_store[4096];

/* Collects every leaf of pt (counting first, as the kernel does) into run_store. */
static size_t collect_all(const struct pt *pt, uint64_t pat)
{
    struct ptcheck_runs counting = {.pat = pat};
    ptcheck_collect(&counting, pt, 0, UINT64_MAX);
    struct ptcheck_runs r = {.runs = run_store, .cap = counting.needed, .pat = pat};
    ptcheck_collect(&r, pt, 0, UINT64_MAX);
    CHECK(r.count == r.needed && r.needed == counting.needed);
    return r.count;
}

static uint64_t frames(const struct pt *pt, uint64_t pat)
{
    size_t n = collect_all(pt, pat);
    out_clear();
    return ptcheck_frames(run_store, n, 32, sink, NULL);
}

/* A memory map: RAM at 0-640K, 1M-512M; ACPI NVS, runtime data, MMIO, RAM above 4 GiB. */
static const struct canopy_mem_range mem_map[] = {
    {0x0, 0xa0, CANOPY_MEM_RECLAIMABLE, 3, 0xf},
    {0x100000, 0x700, CANOPY_MEM_USABLE, 7, 0xf},
    {0x800000, 0x8, CANOPY_MEM_ACPI_NVS, 10, 0xf},
    {0x808000, 0x1f7f8, CANOPY_MEM_USABLE, 7, 0xf},
    {0x20000000, 0x100, CANOPY_MEM_RUNTIME, 6, 0x800000000000000full},
    {0x20100000, 0x1ff00, CANOPY_MEM_USABLE, 7, 0xf},
    {0xb0000000, 0x10000, CANOPY_MEM_RESERVED, 0, 0x1},
    {0xffc00000, 0x400, CANOPY_MEM_RUNTIME, 11, 0x8000000000000001ull},
    {0x100000000, 0x40000, CANOPY_MEM_USABLE, 7, 0xf},
};
#define MAP_COUNT (sizeof(mem_map) / sizeof(mem_map[0]))

static uint64_t direct_map(const struct pt *pt)
{
    size_t n = collect_all(pt, CANOPY_PAT);
    out_clear();
    return ptcheck_direct_map(run_store, n, HHDM, REACH, mem_map, MAP_COUNT, true, sink, NULL);
}

/* The RAM-like parts of mem_map at their direct-map addresses, each as large as it allows. */
static void map_ram(struct pt *pt)
{
    map(pt, HHDM, 0, 0xa0000, PT_W, G1);
    map(pt, HHDM + 0x100000, 0x100000, 0x20000000 - 0x100000, PT_W, G1);
    map(pt, HHDM + 0x20100000, 0x20100000, 0x40000000 - 0x20100000, PT_W, G1);
    map(pt, HHDM + 0x100000000, 0x100000000, G1, PT_W, G1);
}

/* ---- directed tests ------------------------------------------------------------------------ */

static void test_memtype_of_reads_pat_index(void)
{
    /* 4 KiB: PAT is bit 7; 2 MiB: bit 12. Index 5 is WC under Canopy's PAT, WT at power-on. */
    uint64_t e4 = pte_make_leaf_4k(0x1000, PTE_PAT_4K | PTE_PWT);
    uint64_t e2 = pte_make_leaf_2m(0x200000, PTE_PAT_LARGE | PTE_PWT);
    CHECK(pte_memtype(e4, K4, CANOPY_PAT) == PTE_MT_WC);
    CHECK(pte_memtype(e2, M2, CANOPY_PAT) == PTE_MT_WC);
    CHECK(pte_memtype(e4, K4, PTDUMP_PAT_POWER_ON) == PTE_MT_WT);
    /* In a 2 MiB leaf bit 7 is PS, not PAT: index 1 (WT) under both. */
    uint64_t ps_only = pte_make_leaf_2m(0x200000, PTE_PWT);
    CHECK(pte_memtype(ps_only, M2, CANOPY_PAT) == PTE_MT_WT);
    CHECK(pte_memtype(pte_make_leaf_4k(0, PTE_PCD | PTE_PWT), K4, CANOPY_PAT) == PTE_MT_UC);
    CHECK(pte_memtype(pte_make_leaf_4k(0, 0), K4, CANOPY_PAT) == PTE_MT_WB);
    CHECK(strcmp(ptdump_memtype_name(PTE_MT_UCM), "UC-") == 0);
    CHECK(strcmp(ptdump_memtype_name(2), "??") == 0);
}

static void test_runs_merge_and_clip(void)
{
    struct pt pt;
    new_pt(&pt);
    /* 4K, 2M and 4K pages that continue each other: one run; then a read-only piece. */
    map(&pt, HHDM + M2 - K4, M2 - K4, K4 + M2 + K4, PT_W, M2);
    map(&pt, HHDM + 2 * M2 + K4, 2 * M2 + K4, K4, 0, K4);
    size_t n = collect_all(&pt, CANOPY_PAT);
    CHECK(n == 2);
    CHECK(run_store[0].va == HHDM + M2 - K4 && run_store[0].size == M2 + 2 * K4);
    CHECK(run_store[0].perm == PT_W && run_store[0].type == PTE_MT_WB);
    CHECK(run_store[1].perm == 0 && run_store[1].pa == 2 * M2 + K4);

    /* A window inside the 2 MiB page: the leaf is clipped to it. */
    struct ptcheck_runs r = {.runs = run_store, .cap = 8, .pat = CANOPY_PAT};
    ptcheck_collect(&r, &pt, HHDM + M2 + 3 * K4, HHDM + M2 + 5 * K4 - 1);
    CHECK(r.count == 1 && run_store[0].va == HHDM + M2 + 3 * K4 && run_store[0].size == 2 * K4);
    CHECK(run_store[0].pa == M2 + 3 * K4);

    /* Two windows that meet: the second call continues the first call's run. */
    r = (struct ptcheck_runs){.runs = run_store, .cap = 8, .pat = CANOPY_PAT};
    ptcheck_collect(&r, &pt, HHDM, HHDM + M2 - 1);
    ptcheck_collect(&r, &pt, HHDM + M2, HHDM + 2 * M2 + K4 - 1);
    CHECK(r.count == 1 && r.needed == 1 && run_store[0].size == M2 + 2 * K4);

    /* Too little room: the count goes on, the storage stops. */
    r = (struct ptcheck_runs){.runs = run_store, .cap = 1, .pat = CANOPY_PAT};
    ptcheck_collect(&r, &pt, 0, UINT64_MAX);
    CHECK(r.count == 1 && r.needed == 2);
    pt_destroy(&pt);
}

static void test_clean_layout_passes(void)
{
    struct pt pt;
    new_pt(&pt);
    map_ram(&pt);
    /* .text's and .rodata's aliases read-only, .data's writable, as stage 1 maps them. */
    uint64_t text = 0x1e00000, rodata = 0x1e21000, data = 0x1c80000;
    CHECK(pt_protect(&pt, va_init(HHDM + text), 0x21000, 0) == PT_OK);
    CHECK(pt_protect(&pt, va_init(HHDM + rodata), 0x9000, 0) == PT_OK);
    map(&pt, KERNEL, text, 0x21000, PT_X, K4);
    map(&pt, KERNEL + 0x21000, rodata, 0x9000, 0, K4);
    map(&pt, KERNEL + 0x2a000, data, 0x3f000, PT_W, K4);
    /* A device mapping in the dynamic area: UC, outside the direct map. */
    map(&pt, CANOPY_DYNAMIC_BASE + M2, 0xfee00000, K4, PT_W | PT_CACHE_UC, K4);
    CHECK(frames(&pt, CANOPY_PAT) == 0);
    CHECKF(out_len == 0, "%s", out);
    CHECK(direct_map(&pt) == 0);
    OUT_HAS("direct map: 0000000000000000-00000000000a0000   640K RW- WB\n");
    OUT_HAS("direct map: 0000000001e00000-0000000001e2a000   168K R-- WB\n");
    OUT_HAS("direct map: 0000000001e2a000-0000000020000000");
    OUT_HAS("direct map: 0000000100000000-0000000140000000     1G RW- WB\n");
    OUT_HAS("direct map: 6 runs, ");
    OUT_LACKS("pt check:");
    pt_destroy(&pt);
}

static void test_writable_alias_of_code_fires(void)
{
    struct pt pt;
    new_pt(&pt);
    map_ram(&pt);
    uint64_t text = 0x1e00000;
    map(&pt, KERNEL, text, 0x21000, PT_X, K4); /* the direct map still writes it */
    CHECK(frames(&pt, CANOPY_PAT) == 1);
    OUT_HAS("pt check: frame 0000000001e00000-0000000001e21000 132K writable at ffff800001e00000, "
            "executable at ffffffff80000000\n");
    /* Read-only through the direct map: the rule holds. */
    CHECK(pt_protect(&pt, va_init(HHDM + text), 0x21000, 0) == PT_OK);
    CHECK(frames(&pt, CANOPY_PAT) == 0);
    /* A writable mapping elsewhere (a stray vm mapping of the same frame) fires again. */
    map(&pt, CANOPY_DYNAMIC_BASE, text + 0x3000, K4, PT_W, K4);
    CHECK(frames(&pt, CANOPY_PAT) == 1);
    OUT_HAS("pt check: frame 0000000001e03000-0000000001e04000 4K writable at ffffc00000000000, "
            "executable at ffffffff80003000\n");
    pt_destroy(&pt);
}

static void test_two_memory_types_fire(void)
{
    struct pt pt;
    new_pt(&pt);
    /* The EFI runtime tables' case: the flash UC through its identity map, WB through an HHDM. */
    map(&pt, 0xffc00000, 0xffc00000, 0x400000, PT_W | PT_CACHE_UC, M2);
    map(&pt, HHDM + 0xc0000000, 0xc0000000, G1, PT_W, G1);
    CHECK(frames(&pt, CANOPY_PAT) == 1);
    OUT_HAS("pt check: frame 00000000ffc00000-0000000100000000 4M UC at 00000000ffc00000, WB at "
            "ffff8000ffc00000\n");
    /* UC and UC- are different types too. */
    CHECK(pt_protect(&pt, va_init(0xffc00000), M2, PT_W | PT_CACHE_UCM) == PT_OK);
    CHECK(frames(&pt, CANOPY_PAT) == 2);
    OUT_HAS("pt check: frame 00000000ffc00000-00000000ffe00000 2M UC- at 00000000ffc00000, WB at "
            "ffff8000ffc00000\n");
    OUT_HAS("pt check: frame 00000000ffe00000-0000000100000000 2M UC at 00000000ffe00000, WB at "
            "ffff8000ffe00000\n");
    pt_destroy(&pt);

    /* A framebuffer mapped write-combining twice agrees; WC against UC does not. */
    new_pt(&pt);
    map(&pt, CANOPY_DYNAMIC_BASE, 0xc0000000, 16 * K4, PT_W, K4);
    map(&pt, CANOPY_DYNAMIC_BASE + M2, 0xc0000000, 16 * K4, PT_W, K4);
    set_pat_index(&pt, CANOPY_DYNAMIC_BASE, 16 * K4, CANOPY_PAT_WC_INDEX);
    set_pat_index(&pt, CANOPY_DYNAMIC_BASE + M2, 16 * K4, CANOPY_PAT_WC_INDEX);
    CHECK(frames(&pt, CANOPY_PAT) == 0);
    CHECK(pt_protect(&pt, va_init(CANOPY_DYNAMIC_BASE + M2 + 4 * K4), K4, PT_W | PT_CACHE_UC) ==
          PT_OK);
    CHECK(frames(&pt, CANOPY_PAT) == 1);
    OUT_HAS("pt check: frame 00000000c0004000-00000000c0005000 4K WC at ffffc00000004000, UC at "
            "ffffc00000204000\n");
    /* Read through the power-on PAT, index 5 is WT, not WC. */
    CHECK(frames(&pt, PTDUMP_PAT_POWER_ON) == 1);
    OUT_HAS(" WT at ffffc00000004000, UC at ffffc00000204000\n");
    pt_destroy(&pt);
}

static void test_aliases_that_agree_pass(void)
{
    struct pt pt;
    new_pt(&pt);
    map_ram(&pt);
    /* .data and a stack seen through the direct map as well: both writable, neither executable. */
    map(&pt, KERNEL, 0x1c80000, 0x3f000, PT_W, K4);
    map(&pt, CANOPY_DYNAMIC_BASE + K4, 0x1b00000, 16 * K4, PT_W, K4);
    /* Code mapped twice, executable both times, written through neither. */
    CHECK(pt_protect(&pt, va_init(HHDM + 0x1e00000), 0x21000, 0) == PT_OK);
    map(&pt, KERNEL + M2, 0x1e00000, 0x21000, PT_X, K4);
    map(&pt, 0x1e00000, 0x1e00000, K4, PT_X, K4); /* a trampoline-like identity page */
    CHECK(frames(&pt, CANOPY_PAT) == 0);
    CHECKF(out_len == 0, "%s", out);
    pt_destroy(&pt);
}

static void test_without_nx_x_is_not_judged(void)
{
    struct pt pt;
    host_pt_new(&pt, false);
    map(&pt, HHDM, 0, M2, PT_W, M2);
    map(&pt, KERNEL, 0x1000, K4, PT_X, K4);
    /* Every page is executable without NX: the rule cannot tell code from data, so it is quiet. */
    CHECK(frames(&pt, CANOPY_PAT) == 0);
    pt_destroy(&pt);
}

static void test_line_cap(void)
{
    struct pt pt;
    new_pt(&pt);
    map(&pt, HHDM, 0, M2, PT_W, K4);
    /* 40 separate executable aliases of writable frames. */
    for (unsigned i = 0; i < 40; i++)
        map(&pt, KERNEL + 2 * i * K4, 2 * i * K4, K4, PT_X, K4);
    size_t n = collect_all(&pt, CANOPY_PAT);
    out_clear();
    CHECK(ptcheck_frames(run_store, n, 5, sink, NULL) == 40);
    unsigned lines = 0;
    for (const char *p = out; (p = strstr(p, "pt check: frame 0")) != NULL; p++)
        lines++;
    CHECK(lines == 5);
    OUT_HAS("pt check: frame rules broken 35 more times (not shown)\n");
    pt_destroy(&pt);
}

static void test_direct_map_rules_fire(void)
{
    struct pt pt;

    /* One 2 MiB page over RAM and the first page of ACPI NVS is fine (NVS is RAM-like)... */
    new_pt(&pt);
    map(&pt, HHDM + 0x800000, 0x800000, M2, PT_W, M2);
    CHECK(direct_map(&pt) == 0);
    pt_destroy(&pt);

    /* ...but a 2 MiB page over the runtime range is not: the large page must stop at its edge. */
    new_pt(&pt);
    map(&pt, HHDM + 0x1e000000, 0x1e000000, 0x2200000, PT_W, M2);
    CHECK(direct_map(&pt) == 1);
    OUT_HAS("pt check: direct map 0000000020000000-0000000020100000 1M maps runtime, not RAM\n");
    pt_destroy(&pt);

    /* The legacy VGA hole (not in the map at all) and PCIe configuration space. */
    new_pt(&pt);
    map(&pt, HHDM, 0, 0x100000, PT_W, K4);
    map(&pt, HHDM + 0xb0000000, 0xb0000000, M2, PT_W, M2);
    CHECK(direct_map(&pt) == 2);
    OUT_HAS("pt check: direct map 00000000000a0000-0000000000100000 384K maps a hole in the memory "
            "map, not RAM\n");
    OUT_HAS("pt check: direct map 00000000b0000000-00000000b0200000 2M maps reserved, not RAM\n");
    pt_destroy(&pt);

    /* Beyond the end of the map. */
    new_pt(&pt);
    map(&pt, HHDM + 0x140000000, 0x140000000, K4, PT_W, K4);
    CHECK(direct_map(&pt) == 1);
    OUT_HAS("maps a hole in the memory map, not RAM\n");
    pt_destroy(&pt);

    /* Not at hhdm_base + phys, not write-back, executable. */
    new_pt(&pt);
    map(&pt, HHDM + 0x200000, 0x400000, K4, PT_W, K4);
    map(&pt, HHDM + 0x300000, 0x300000, K4, PT_W | PT_CACHE_UC, K4);
    map(&pt, HHDM + 0x500000, 0x500000, K4, PT_X, K4);
    CHECK(direct_map(&pt) == 3);
    OUT_HAS("pt check: direct map ffff800000200000-ffff800000201000 maps 0000000000400000, not "
            "0000000000200000\n");
    OUT_HAS("pt check: direct map 0000000000300000-0000000000301000 is UC, not write-back\n");
    OUT_HAS("pt check: direct map 0000000000500000-0000000000501000 is executable\n");
    /* Outside the window nothing is judged: a UC device page in the dynamic area. */
    map(&pt, CANOPY_DYNAMIC_BASE, 0xb0000000, K4, PT_W | PT_CACHE_UC, K4);
    CHECK(direct_map(&pt) == 3);
    OUT_HAS("direct map: 3 runs, 12K\n");
    pt_destroy(&pt);

    /* The summary alone, as the boot prints it; breaks are named all the same. */
    new_pt(&pt);
    map(&pt, HHDM, 0, 0xa0000, PT_W, K4);
    map(&pt, HHDM + 0xb0000000, 0xb0000000, K4, PT_W, K4);
    size_t n = collect_all(&pt, CANOPY_PAT);
    out_clear();
    CHECK(ptcheck_direct_map(run_store, n, HHDM, REACH, mem_map, MAP_COUNT, false, sink, NULL) ==
          1);
    OUT_LACKS("direct map: 0000000000000000-");
    OUT_HAS("pt check: direct map 00000000b0000000-00000000b0001000 4K maps reserved, not RAM\n");
    OUT_HAS("direct map: 2 runs, 644K\n");
    pt_destroy(&pt);

    /* Nothing at all. */
    new_pt(&pt);
    CHECK(direct_map(&pt) == 0);
    OUT_HAS("direct map: 0 runs, nothing mapped\n");
    pt_destroy(&pt);
}

static void test_wx_runs(void)
{
    struct pt pt;
    new_pt(&pt);
    map(&pt, 0x1000, 0x1000, 2 * K4, PT_W | PT_X, K4);
    map(&pt, 0x10000, 0x10000, K4, PT_X, K4);
    size_t n = collect_all(&pt, CANOPY_PAT);
    out_clear();
    CHECK(ptcheck_wx(run_store, n, sink, NULL) == 1);
    OUT_HAS("pt check: W+X 0000000000001000-0000000000003000 8K (2 pages)\n");
    pt_destroy(&pt);
}

/* ---- random aliases against a brute-force pair comparison ---------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    return xorshift64_next(&rng_state);
}

/* Every pair of runs that share frames, judged directly: the count ptcheck_frames must give. */
static uint64_t brute_force(const struct ptcheck_run *r, size_t n)
{
    uint64_t breaks = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            uint64_t lo = r[i].pa > r[j].pa ? r[i].pa : r[j].pa;
            uint64_t hi_i = r[i].pa + r[i].size, hi_j = r[j].pa + r[j].size;
            if (lo >= (hi_i < hi_j ? hi_i : hi_j))
                continue;
            if (((r[i].perm & PT_W) && (r[j].perm & PT_X)) ||
                ((r[j].perm & PT_W) && (r[i].perm & PT_X)))
                breaks++;
            if (r[i].type != r[j].type)
                breaks++;
        }
    return breaks;
}

static void test_random_aliases_match_brute_force(void)
{
    static const uint32_t attrs[] = {PT_W, 0, PT_X, PT_W | PT_CACHE_UC, PT_CACHE_UCM, PT_W};
    static struct ptcheck_run copy[4096];
    for (unsigned round = 0; round < 200; round++) {
        struct pt pt;
        new_pt(&pt);
        /* Up to 40 mappings of 1-8 pages onto 64 frames, at distinct virtual addresses. */
        unsigned count = 1 + (unsigned)(rng() % 40);
        for (unsigned i = 0; i < count; i++) {
            uint64_t pages = 1 + rng() % 8, frame = rng() % 64;
            uint64_t va = CANOPY_DYNAMIC_BASE + (uint64_t)i * 16 * K4;
            map(&pt, va, frame * K4, pages * K4, attrs[rng() % 6], K4);
        }
        size_t n = collect_all(&pt, CANOPY_PAT);
        memcpy(copy, run_store, n * sizeof(copy[0]));
        uint64_t want = brute_force(copy, n);
        out_clear();
        uint64_t got = ptcheck_frames(run_store, n, 1000, sink, NULL);
        CHECKF(got == want, "round %u: ptcheck_frames %llu, brute force %llu", round,
               (unsigned long long)got, (unsigned long long)want);
        for (size_t i = 1; i < n; i++)
            CHECK(run_store[i - 1].pa <= run_store[i].pa);
        pt_destroy(&pt);
    }
}

int main(void)
{
    host_pt_open(TABLE_BASE);
    RUN(test_memtype_of_reads_pat_index);
    RUN(test_runs_merge_and_clip);
    RUN(test_clean_layout_passes);
    RUN(test_writable_alias_of_code_fires);
    RUN(test_two_memory_types_fire);
    RUN(test_aliases_that_agree_pass);
    RUN(test_without_nx_x_is_not_judged);
    RUN(test_line_cap);
    RUN(test_direct_map_rules_fire);
    RUN(test_wx_runs);
    RUN(test_random_aliases_match_brute_force);
    host_pt_close();
    return check_finish();
}
