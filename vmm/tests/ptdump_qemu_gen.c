/*
 * ptdump_qemu_gen: builds a page-table hierarchy with pt.c into a 1 MiB image
 * that QEMU loads at physical 0x200000 (see ptdump_qemu_stub.S), and writes
 * what ptdump says QEMU's `info mem` and `info tlb` will print for it.
 * ptdump_qemu_test.py then boots the stub and compares with the monitor.
 *
 * Usage: ptdump_qemu_gen LEVELS TABLES.bin MEM.txt TLB.txt
 */
#include <vmm/pt.h>
#include <vmm/ptdump.h>
#include <vmm/pte.h>

#include <canopy/page.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE     0x200000ull /* where QEMU loads the image; the root is its first frame */
#define FRAMES   256u
#define CR4_WORD 0xff000u /* offset of the CR4 bits the stub sets */
#define CR4_PAE  0x20u
#define CR4_LA57 0x1000u

static uint8_t *image;
static unsigned next_frame;

/* Frames from the bottom of the image upwards; the last frame holds the CR4 word. */
static bool image_alloc(void *ctx, uint64_t *phys)
{
    (void)ctx;
    if (next_frame == FRAMES - 1)
        return false;
    *phys = BASE + PAGE_SIZE * next_frame++;
    return true;
}

static void image_free(void *ctx, uint64_t phys)
{
    (void)ctx;
    (void)phys;
}

static void file_sink(void *ctx, const char *s, size_t n)
{
    fwrite(s, 1, n, ctx);
}

static struct pt pt;

static void map(uint64_t va, uint64_t pa, uint64_t size, uint32_t attrs, uint64_t max)
{
    enum pt_status st = pt_map(&pt, va_init(va), pa_init(pa), size, attrs, max);
    if (st != PT_OK) {
        fprintf(stderr, "ptdump_qemu_gen: map %llx: %s\n", (unsigned long long)va,
                pt_status_str(st));
        exit(1);
    }
}

static uint64_t *leaf_slot(uint64_t va)
{
    struct pt_walk w;
    pt_walk(&pt, va_init(va), &w);
    uint64_t table = w.depth == 1 ? pt.root : pte_table_addr(w.level[w.depth - 2].entry);
    return (uint64_t *)(uintptr_t)(table + pt.virt_offset) + w.level[w.depth - 1].index;
}

/* Every kind of leaf and range edge the formatters care about. */
static void layout(unsigned levels)
{
    map(0x100000, 0x100000, PAGE_SIZE, PT_W | PT_X, PAGE_SIZE); /* the stub, identity mapped */
    map(0x1000, 0x5000, PAGE_SIZE, PT_U | PT_W, PAGE_SIZE);
    map(0x2000, 0x6000, 2 * PAGE_SIZE, PT_U | PT_G | PT_CACHE_WT, PAGE_SIZE);
    map(0x5000, 0x9000, PAGE_SIZE, PT_U | PT_W | PT_X, PAGE_SIZE);
    map(0x400000, 0x400000, 3 * PAGE_SIZE_2M, PT_W | PT_CACHE_UCM, PAGE_SIZE_1G);
    map(0x40000000, 0x80000000, 2 * PAGE_SIZE_1G, PT_U | PT_W, PAGE_SIZE_1G);
    map(0x00007ffffffff000ull, 0x000c000000007000ull, PAGE_SIZE, PT_W,
        PAGE_SIZE); /* bits 50-51 in pa */
    map(0xffffc00000001000ull, 0x700000, 3 * PAGE_SIZE, PT_W, PAGE_SIZE);
    map(0xffffffff80000000ull, 0x200000, 3 * PAGE_SIZE, PT_X | PT_G, PAGE_SIZE);
    map(0xffffffff80003000ull, 0x203000, PAGE_SIZE, PT_G, PAGE_SIZE);
    map(0xffffffff80004000ull, 0x204000, 2 * PAGE_SIZE, PT_W | PT_G, PAGE_SIZE);
    map(0xffffffff40000000ull, 0x40000000, PAGE_SIZE_1G, PT_W, PAGE_SIZE_1G);
    map(0xfffffffffffff000ull, 0x1000, PAGE_SIZE, PT_W, PAGE_SIZE); /* info mem ends at 2^48 */
    if (levels == 5) {
        map(0x0000800000000000ull, 0x3000, PAGE_SIZE, PT_W, PAGE_SIZE);
        map(0x00fffffffffff000ull, 0x4000, PAGE_SIZE, PT_U, PAGE_SIZE);
        map(0xff00000000000000ull, 0, 2 * PAGE_SIZE_2M, PT_W | PT_G, PAGE_SIZE_2M);
    } else {
        map(0xffff800000000000ull, 0, 2 * PAGE_SIZE_2M, PT_W | PT_G, PAGE_SIZE_2M);
        map(0xffff800000400000ull, 0x400000, PAGE_SIZE, PT_W | PT_CACHE_UC, PAGE_SIZE);
    }
    /* PAT bits set by hand: bit 7 of a 4K leaf, bit 12 of a 2M leaf. */
    *leaf_slot(0x3000) |= PTE_PAT_4K;
    *leaf_slot(0x800000) |= PTE_PAT_LARGE;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (argv[1][0] != '4' && argv[1][0] != '5')) {
        fprintf(stderr, "usage: ptdump_qemu_gen 4|5 TABLES.bin MEM.txt TLB.txt\n");
        return 2;
    }
    unsigned levels = (unsigned)(argv[1][0] - '0');
    image = aligned_alloc(PAGE_SIZE, FRAMES * PAGE_SIZE);
    if (!image)
        return 2;
    memset(image, 0, FRAMES * PAGE_SIZE);
    struct pt_frames frames = {image_alloc, image_free, NULL};
    if (pt_init(&pt, levels, true, (uint64_t)(uintptr_t)image - BASE, frames) != PT_OK ||
        pt.root != BASE)
        return 1;
    layout(levels);
    uint32_t cr4 = CR4_PAE | (levels == 5 ? CR4_LA57 : 0);
    memcpy(image + CR4_WORD, &cr4, sizeof(cr4));

    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(image, 1, FRAMES * PAGE_SIZE, f) != FRAMES * PAGE_SIZE || fclose(f) != 0)
        return 2;
    f = fopen(argv[3], "w");
    if (!f)
        return 2;
    ptdump_qemu_mem(&pt, file_sink, f);
    fclose(f);
    f = fopen(argv[4], "w");
    if (!f)
        return 2;
    ptdump_qemu_tlb(&pt, file_sink, f);
    fclose(f);
    free(image);
    return 0;
}
