/*
 * Host tests for ptdump.c. Every expected text below was written by hand from
 * the layout beside it, following QEMU 7.2's target/i386/monitor.c for the
 * `info mem` and `info tlb` forms (sign extension from bit 47 of the walk
 * address, prot = U|W|P ANDed over the levels, flags from the leaf alone), and
 * the documented formats of the human dump and the walk report (ptdump.h).
 * None is captured from ptdump's own output.
 */
#include "pt_sim.h"

#include <vmm/ptdump.h>

#include <stdint.h>
#include <canopy/check.h>
#include <canopy/page.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned check_passed, check_failed;

#define K4 PAGE_SIZE
#define M2 PAGE_SIZE_2M
#define G1 PAGE_SIZE_1G

static struct sim sim;

struct text {
    size_t len;
    char buf[1 << 16];
};
static struct text out;

static void text_sink(void *ctx, const char *s, size_t n)
{
    struct text *t = ctx;
    if (t->len + n >= sizeof(t->buf))
        n = sizeof(t->buf) - 1 - t->len;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void reset(void)
{
    out.len = 0;
    out.buf[0] = '\0';
}

#define SAME_TEXT(want, what)                                                                      \
    CHECKF(strcmp(out.buf, want) == 0, "%s:\n--- got ---\n%s--- want ---\n%s", what, out.buf, want)

static struct pt fresh(unsigned levels)
{
    struct pt pt;
    sim.fail_after = -1;
    if (pt_init(&pt, levels, true, sim_offset(&sim), sim_frames(&sim)) != PT_OK) {
        printf("pt_init failed\n");
        exit(1);
    }
    return pt;
}

static void map(struct pt *pt, uint64_t va, uint64_t pa, uint64_t size, uint32_t attrs,
                uint64_t max)
{
    enum pt_status st = pt_map(pt, va_init(va), pa_init(pa), size, attrs, max);
    CHECKF(st == PT_OK, "map %llx: %s", (unsigned long long)va, pt_status_str(st));
}

/* The raw leaf entry that maps va, for editing bits pt.c never sets (PAT, A, D). */
static uint64_t *leaf_slot(struct pt *pt, uint64_t va)
{
    struct pt_walk w;
    pt_walk(pt, va_init(va), &w);
    if (!w.present) {
        printf("no leaf at %llx\n", (unsigned long long)va);
        exit(1);
    }
    uint64_t table = w.depth == 1 ? pt->root : pte_table_addr(w.level[w.depth - 2].entry);
    return (uint64_t *)(uintptr_t)(table + pt->virt_offset) + w.level[w.depth - 1].index;
}

/* The entry at depth d (0 = top) on the way to va. */
static uint64_t *entry_slot(struct pt *pt, uint64_t va, unsigned d)
{
    struct pt_walk w;
    pt_walk(pt, va_init(va), &w);
    uint64_t table = d == 0 ? pt->root : pte_table_addr(w.level[d - 1].entry);
    return (uint64_t *)(uintptr_t)(table + pt->virt_offset) + w.level[d].index;
}

/* ---- info mem ------------------------------------------------------------------------------- */

static void test_mem_splits_on_protection_and_holes(void)
{
    struct pt pt = fresh(4);
    map(&pt, 0x1000, 0x10000, K4, PT_U | PT_W, K4);
    map(&pt, 0x2000, 0x20000, K4, PT_U, K4);
    map(&pt, 0x4000, 0x30000, 2 * K4, PT_W | PT_X, K4); /* hole at 0x3000 */
    map(&pt, 0xffff800000000000ull, 0, M2, PT_W, M2);
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("0000000000001000-0000000000002000 0000000000001000 urw\n"
              "0000000000002000-0000000000003000 0000000000001000 ur-\n"
              "0000000000004000-0000000000006000 0000000000002000 -rw\n"
              "ffff800000000000-ffff800000200000 0000000000200000 -rw\n",
              "basic info mem");
    pt_destroy(&pt);
}

static void test_mem_ignores_page_size_physical_address_and_nx(void)
{
    struct pt pt = fresh(4);
    map(&pt, 0x200000, 0x40000000, M2, PT_W | PT_X, M2);
    map(&pt, 0x400000, 0x1234000, K4, PT_W, K4); /* 4K, elsewhere in RAM, NX */
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("0000000000200000-0000000000401000 0000000000201000 -rw\n", "one merged range");

    /* U on a leaf under kernel-only parents stays invisible: U is ANDed. */
    *leaf_slot(&pt, 0x400000) |= PTE_U;
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("0000000000200000-0000000000401000 0000000000201000 -rw\n", "U ANDed");

    /* A read-only PDPT entry makes everything below it read-only. */
    uint64_t *pdpte = entry_slot(&pt, 0x200000, 1);
    *pdpte &= ~PTE_W;
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("0000000000200000-0000000000401000 0000000000201000 -r-\n", "W ANDed");
    *pdpte |= PTE_W;
    pt_destroy(&pt);
}

static void test_mem_sign_extends_at_the_lower_half_end(void)
{
    struct pt pt = fresh(4);
    /* Walk addresses 0x7ffffffff000 and 0x800000000000 touch: one range, its end
       0x800000001000 printed sign-extended. */
    map(&pt, 0x00007ffffffff000ull, 0x1000, K4, PT_W, K4);
    map(&pt, 0xffff800000000000ull, 0x2000, K4, PT_W, K4);
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("00007ffffffff000-ffff800000001000 0000000000002000 -rw\n", "across the hole");

    /* With different protections the first range ends at 2^47, printed ffff800000000000. */
    CHECKF(pt_protect(&pt, va_init(0xffff800000000000ull), K4, 0) == PT_OK, "protect");
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("00007ffffffff000-ffff800000000000 0000000000001000 -rw\n"
              "ffff800000000000-ffff800000001000 0000000000001000 -r-\n",
              "split at 2^47");

    /* Alone, the last lower-half page also ends at ffff800000000000. */
    CHECKF(pt_unmap(&pt, va_init(0xffff800000000000ull), K4) == PT_OK, "unmap");
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("00007ffffffff000-ffff800000000000 0000000000001000 -rw\n", "alone");
    pt_destroy(&pt);
}

static void test_mem_flushes_a_range_ending_at_2_48(void)
{
    struct pt pt = fresh(4);
    map(&pt, 0xfffffffffffff000ull, 0x5000, K4, PT_W, K4);
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    /* The final flush at 2^48 (bit 47 clear) prints end 0001000000000000. */
    SAME_TEXT("fffffffffffff000-0001000000000000 0000000000001000 -rw\n", "last page");
    pt_destroy(&pt);

    /* The whole upper half: the size 2^47 has bit 47 set and is sign-extended too. */
    pt = fresh(4);
    map(&pt, 0xffff800000000000ull, 0, 1ull << 47, PT_W, G1);
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("ffff800000000000-0001000000000000 ffff800000000000 -rw\n", "upper half");
    pt_destroy(&pt);

    /* Nothing mapped: nothing printed. */
    pt = fresh(4);
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("", "empty");
    pt_destroy(&pt);
}

static void test_mem_prints_nothing_for_five_levels(void)
{
    struct pt pt = fresh(5);
    map(&pt, 0x1000, 0x1000, K4, PT_W | PT_U, K4);
    map(&pt, 0xff00000000000000ull, 0, G1, PT_W, G1);
    reset();
    ptdump_qemu_mem(&pt, text_sink, &out);
    SAME_TEXT("", "QEMU 7.2 LA57 info mem");
    pt_destroy(&pt);
}

/* ---- info tlb ----------------------------------------------------------------------------------
 */

static void test_tlb_prints_each_leaf_with_its_own_bits(void)
{
    struct pt pt = fresh(4);
    /* 4K, user, writable, executable, global, write-through: P|W|U|PWT|G. */
    map(&pt, 0x1000, 0x5000, K4, PT_U | PT_W | PT_X | PT_G | PT_CACHE_WT, K4);
    /* 4K, NX, frame with bits 50 and 51 set (QEMU drops them), PAT bit 7, A and D by hand. */
    map(&pt, 0x2000, 0x000c000000006000ull, K4, 0, K4);
    *leaf_slot(&pt, 0x2000) |= PTE_PAT_4K | PTE_A | PTE_D;
    /* 2M, NX, global, PCD, PAT bit 12 by hand (masked out of the frame). */
    map(&pt, 0xffff800000000000ull, 0x40000000, M2, PT_W | PT_G | PT_CACHE_UCM, M2);
    *leaf_slot(&pt, 0xffff800000000000ull) |= PTE_PAT_LARGE;
    /* 1G, executable, PCD|PWT. */
    map(&pt, 0xffffffffc0000000ull, 0x80000000, G1, PT_X | PT_CACHE_UC, G1);
    reset();
    ptdump_qemu_tlb(&pt, text_sink, &out);
    SAME_TEXT("0000000000001000: 0000000000005000 -G----TUW\n"
              "0000000000002000: 0000000000006000 X--DA----\n"
              "ffff800000000000: 0000000040000000 XGP--C--W\n"
              "ffffffffc0000000: 0000000080000000 --P--CT--\n",
              "info tlb");
    pt_destroy(&pt);
}

static void test_tlb_sign_extends_from_bit_56_with_five_levels(void)
{
    struct pt pt = fresh(5);
    map(&pt, 0x00fffffffffff000ull, 0x3000, K4, PT_U, K4);
    map(&pt, 0xff00000000000000ull, 0, M2, PT_W, M2);
    map(&pt, 0xfffffffffffff000ull, 0x7000, K4, PT_W | PT_X, K4);
    reset();
    ptdump_qemu_tlb(&pt, text_sink, &out);
    SAME_TEXT("00fffffffffff000: 0000000000003000 X------U-\n"
              "ff00000000000000: 0000000000000000 X-P-----W\n"
              "fffffffffffff000: 0000000000007000 --------W\n",
              "5-level info tlb");
    pt_destroy(&pt);
}

/* ---- human dump -------------------------------------------------------------------------------
 */

static const struct ptdump_marker markers[] = {
    {0, "User space"},
    {0xffff800000000000ull, "HHDM"},
    {0xffffc00000000000ull, "Kernel dynamic area"},
    {0xffffffff80000000ull, "Kernel image"},
};

static const char *label_of(void *ctx, uint64_t va)
{
    (void)ctx;
    if (va >= 0xffff800000000000ull && va < 0xffffc00000000000ull)
        return "hhdm";
    if (va >= 0xffffc00000000000ull && va < 0xffffc00000100000ull)
        return "stack";
    if (va >= 0xffffc00000100000ull && va < 0xffffc00000200000ull)
        return "mmio";
    if (va >= 0xffffffff80000000ull && va < 0xffffffff80003000ull)
        return ".text";
    if (va >= 0xffffffff80003000ull && va < 0xffffffff80004000ull)
        return ".rodata";
    if (va >= 0xffffffff80004000ull && va < 0xffffffff80006000ull)
        return ".data";
    return NULL;
}

/* The layout of the human-dump tests. */
static struct pt human_layout(void)
{
    struct pt pt = fresh(4);
    map(&pt, 0x400000, 0x300000, K4, PT_U | PT_X, K4);
    map(&pt, 0xffff800000000000ull, 0, 2 * M2, PT_W, M2);
    map(&pt, 0xffff800000400000ull, 0x400000, K4, PT_W, K4);
    /* A stack page pair, W+X by mistake, in two frames that do not touch. */
    map(&pt, 0xffffc00000001000ull, 0x900000, K4, PT_W | PT_X, K4);
    map(&pt, 0xffffc00000002000ull, 0x700000, K4, PT_W | PT_X, K4);
    map(&pt, 0xffffc00000100000ull, 0xfebf0000ull, K4, PT_W | PT_CACHE_UC, K4);
    map(&pt, 0xffffffff80000000ull, 0x200000, 3 * K4, PT_X | PT_G, K4);
    map(&pt, 0xffffffff80003000ull, 0x203000, K4, PT_G, K4);
    map(&pt, 0xffffffff80004000ull, 0x204000, 2 * K4, PT_W | PT_G, K4);
    return pt;
}

static void test_human_dump_of_a_kernel_layout(void)
{
    struct pt pt = human_layout();
    struct ptdump_options o = {
        .first = 0,
        .last = UINT64_MAX,
        .markers = markers,
        .marker_count = 4,
        .label = label_of,
    };
    reset();
    uint64_t wx = ptdump_human(&pt, &o, text_sink, &out);
    SAME_TEXT(
        "---[ User space ]---\n"
        "0000000000400000-0000000000401000     4K 0000000000300000 4K x1     R-X user   - WB\n"
        "---[ HHDM ]---\n"
        "ffff800000000000-ffff800000400000     4M 0000000000000000 2M x2     RW- kernel - WB  "
        "hhdm\n"
        "ffff800000400000-ffff800000401000     4K 0000000000400000 4K x1     RW- kernel - WB  "
        "hhdm\n"
        "---[ Kernel dynamic area ]---\n"
        "ffffc00000001000-ffffc00000003000     8K not contiguous   4K x2     RWX kernel - WB  "
        "stack\n"
        "ffffc00000100000-ffffc00000101000     4K 00000000febf0000 4K x1     RW- kernel - UC  "
        "mmio\n"
        "---[ Kernel image ]---\n"
        "ffffffff80000000-ffffffff80003000    12K 0000000000200000 4K x3     R-X kernel G WB  "
        ".text\n"
        "ffffffff80003000-ffffffff80004000     4K 0000000000203000 4K x1     R-- kernel G WB  "
        ".rodata\n"
        "ffffffff80004000-ffffffff80006000     8K 0000000000204000 4K x2     RW- kernel G WB  "
        ".data\n"
        "W+X mappings: FAILED, 2 pages\n",
        "whole dump");
    CHECKF(wx == 2, "W+X pages %llu", (unsigned long long)wx);

    /* Fix the stack and the check passes. */
    CHECKF(pt_protect(&pt, va_init(0xffffc00000001000ull), 2 * K4, PT_W) == PT_OK, "protect");
    reset();
    wx = ptdump_human(&pt, &o, text_sink, &out);
    CHECKF(wx == 0 && strstr(out.buf, "W+X mappings: passed\n") != NULL &&
               strstr(out.buf, "8K not contiguous   4K x2     RW- kernel - WB  stack\n") != NULL,
           "after protect:\n%s", out.buf);
    pt_destroy(&pt);
}

static void test_human_dump_of_a_range(void)
{
    struct pt pt = human_layout();
    /* [ffff800000200000, ffffc00000001fff]: starts in the HHDM's second 2M page,
       ends inside the stack's first page. Markers before HHDM are skipped. */
    struct ptdump_options o = {
        .first = 0xffff800000200000ull,
        .last = 0xffffc00000001fffull,
        .markers = markers,
        .marker_count = 4,
        .label = label_of,
    };
    reset();
    uint64_t wx = ptdump_human(&pt, &o, text_sink, &out);
    SAME_TEXT(
        "---[ HHDM ]---\n"
        "ffff800000200000-ffff800000400000     2M 0000000000200000 2M x1     RW- kernel - WB  "
        "hhdm\n"
        "ffff800000400000-ffff800000401000     4K 0000000000400000 4K x1     RW- kernel - WB  "
        "hhdm\n"
        "---[ Kernel dynamic area ]---\n"
        "ffffc00000001000-ffffc00000002000     4K 0000000000900000 4K x1     RWX kernel - WB  "
        "stack\n"
        "W+X mappings: FAILED, 1 pages\n",
        "range dump");
    CHECKF(wx == 1, "W+X pages %llu", (unsigned long long)wx);

    /* A range with no mappings still prints its section and the summary. */
    o.first = 0xffffd00000000000ull;
    o.last = 0xffffe00000000000ull;
    reset();
    ptdump_human(&pt, &o, text_sink, &out);
    SAME_TEXT("---[ Kernel dynamic area ]---\nW+X mappings: passed\n", "empty range");
    pt_destroy(&pt);
}

static void test_human_dump_defaults_pat_and_merging(void)
{
    struct pt pt = fresh(4);
    /* Three 2M pages then 1G, in one contiguous block: the page size change splits. */
    map(&pt, 0x3fa00000, 0x3fa00000, 3 * M2 + G1, PT_W, G1);
    /* A 4K page with PAT bit 7: PAT entry 4, WB at power-on. */
    map(&pt, 0x100000000ull, 0x5000, K4, 0, K4);
    *leaf_slot(&pt, 0x100000000ull) |= PTE_PAT_4K;
    reset();
    uint64_t wx = ptdump_human(&pt, NULL, text_sink, &out);
    SAME_TEXT(
        "000000003fa00000-0000000040000000     6M 000000003fa00000 2M x3     RW- kernel - WB\n"
        "0000000040000000-0000000080000000     1G 0000000040000000 1G x1     RW- kernel - WB\n"
        "0000000100000000-0000000100001000     4K 0000000000005000 4K x1     R-- kernel - WB\n"
        "W+X mappings: passed\n",
        "defaults");
    CHECKF(wx == 0, "no W+X");

    /* A PAT programmed with WC in entry 0 and WP in entry 4. */
    uint64_t pat = 0x0007040500070401ull;
    struct ptdump_options o = {.first = 0, .last = UINT64_MAX, .pat = &pat};
    reset();
    ptdump_human(&pt, &o, text_sink, &out);
    SAME_TEXT(
        "000000003fa00000-0000000040000000     6M 000000003fa00000 2M x3     RW- kernel - WC\n"
        "0000000040000000-0000000080000000     1G 0000000040000000 1G x1     RW- kernel - WC\n"
        "0000000100000000-0000000100001000     4K 0000000000005000 4K x1     R-- kernel - WP\n"
        "W+X mappings: passed\n",
        "custom PAT");
    pt_destroy(&pt);
}

static void test_human_dump_to_the_top_of_the_address_space(void)
{
    struct pt pt = fresh(4);
    map(&pt, 0xffffffffffe00000ull, 0x200000, M2, PT_W | PT_X, M2);
    reset();
    uint64_t wx = ptdump_human(&pt, NULL, text_sink, &out);
    /* The exclusive end 2^64 prints as 0 (modulo 2^64); 2M = 512 W+X pages. */
    SAME_TEXT(
        "ffffffffffe00000-0000000000000000     2M 0000000000200000 2M x1     RWX kernel - WB\n"
        "W+X mappings: FAILED, 512 pages\n",
        "top");
    CHECKF(wx == 512, "W+X %llu", (unsigned long long)wx);
    pt_destroy(&pt);
}

/* ---- walk --------------------------------------------------------------------------------- */

/*
 * A hierarchy in a fresh simulated memory, which hands out frames from its
 * base upwards: the root at 40000000, the next table at 40001000, and so on.
 */
static struct pt fresh_in_new_memory(unsigned levels)
{
    sim_fini(&sim);
    sim_init(&sim, 64);
    return fresh(levels);
}

/* Checks the walk report of va in pt, as the shell's `walk` and the fault report print it. */
static void expect_walk(struct pt *pt, uint64_t va, const char *want, const char *what)
{
    struct pt_walk w;
    pt_walk(pt, va_init(va), &w);
    reset();
    ptdump_walk(&w, va, pt->levels, text_sink, &out);
    SAME_TEXT(want, what);
}

static void test_walk_report_of_a_page_and_a_hole(void)
{
    /* Root 40000000, PDPT 40001000, PD 40002000, PT 40003000. */
    struct pt pt = fresh_in_new_memory(4);
    map(&pt, 0xffffffff80201000ull, 0x200000, K4, PT_G, K4);
    expect_walk(&pt, 0xffffffff80201234ull,
                "  PML4[511] = 0000000040001003  P W\n"
                "  PDPT[510] = 0000000040002003  P W\n"
                "  PD  [  1] = 0000000040003003  P W\n"
                "  PT  [  1] = 8000000000200101  P G NX\n"
                "  -> phys 0000000000200234 (4K page at 0000000000200000), effective r-- kernel\n",
                "walk to a 4K page");
    expect_walk(&pt, 0xffffffff80400000ull,
                "  PML4[511] = 0000000040001003  P W\n"
                "  PDPT[510] = 0000000040002003  P W\n"
                "  PD  [  2] = 0000000000000000  (empty)\n"
                "  not mapped: the PD entry is not present\n",
                "walk to a hole");
    /* pt_walk reads no entry for a non-canonical address. */
    expect_walk(&pt, 0x0000800000000000ull, "  not mapped\n", "non-canonical");
    pt_destroy(&pt);
}

static void test_walk_report_names_five_levels_ps_and_pat(void)
{
    /* Root (PML5) 40000000, PML4 40001000, PDPT 40002000, PD 40003000, then a PT 40004000. */
    struct pt pt = fresh_in_new_memory(5);
    map(&pt, 0xff00000000200000ull, 0x600000, M2, PT_W, M2);
    /* Inside a 2 MiB page the offset is 21 bits wide; bit 7 of a PD entry is PS. */
    expect_walk(&pt, 0xff00000000212345ull,
                "  PML5[256] = 0000000040001003  P W\n"
                "  PML4[  0] = 0000000040002003  P W\n"
                "  PDPT[  0] = 0000000040003003  P W\n"
                "  PD  [  1] = 8000000000600083  P W PS NX\n"
                "  -> phys 0000000000612345 (2M page at 0000000000600000), effective rw- kernel\n",
                "walk to a 2M page under 5 levels");

    /* A user page, executable, read-only; bit 7 of a PT entry is PAT (A and D set by hand). */
    map(&pt, 0xff00000000400000ull, 0x800000, K4, PT_U | PT_X, K4);
    *leaf_slot(&pt, 0xff00000000400000ull) |= PTE_PAT_4K | PTE_A | PTE_D;
    expect_walk(&pt, 0xff00000000400abcull,
                "  PML5[256] = 0000000040001007  P W U\n"
                "  PML4[  0] = 0000000040002007  P W U\n"
                "  PDPT[  0] = 0000000040003007  P W U\n"
                "  PD  [  2] = 0000000040004007  P W U\n"
                "  PT  [  0] = 00000000008000e5  P U A D PAT\n"
                "  -> phys 0000000000800abc (4K page at 0000000000800000), effective r-x user\n",
                "walk to a user 4K page with PAT set");
    pt_destroy(&pt);
}

int main(void)
{
    sim_init(&sim, 4096);
    test_mem_splits_on_protection_and_holes();
    test_mem_ignores_page_size_physical_address_and_nx();
    test_mem_sign_extends_at_the_lower_half_end();
    test_mem_flushes_a_range_ending_at_2_48();
    test_mem_prints_nothing_for_five_levels();
    test_tlb_prints_each_leaf_with_its_own_bits();
    test_tlb_sign_extends_from_bit_56_with_five_levels();
    test_human_dump_of_a_kernel_layout();
    test_human_dump_of_a_range();
    test_human_dump_defaults_pat_and_merging();
    test_human_dump_to_the_top_of_the_address_space();
    test_walk_report_of_a_page_and_a_hole();
    test_walk_report_names_five_levels_ps_and_pat();
    CHECKF(sim.held == 0 && sim.bad_frees == 0, "frames left: %llu", (unsigned long long)sim.held);
    sim_fini(&sim);
    printf("%u passed, %u failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
