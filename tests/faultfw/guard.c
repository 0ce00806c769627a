/*
 * guard: makes ranges of an identity-mapped hierarchy not-present, splitting
 * large pages at the edges.
 *
 * Entries are x86-64 PTEs at levels 1 (4 KiB leaves) to 4 or 5; levels 2
 * and 3 hold 2 MiB and 1 GiB leaves when PS is set. A split keeps every bit
 * of the large leaf (W, U, PWT, PCD, A, D, G, NX, protection keys) in each
 * smaller one; only the PAT bit moves, from bit 12 in large leaves to bit 7
 * (where PS was) in 4 KiB ones. The new directory entry is P|W plus the
 * leaf's U, so the leaves alone decide the access rights, as before.
 *
 * Called by hooks.c after a successful ExitBootServices, and by the host test.
 */
#include "guard.h"

#include <canopy/page.h>
#include <vmm/pte.h>

static uint64_t *table(const struct guard *g, uint64_t pa)
{
    return (uint64_t *)(uintptr_t)(pa + g->virt_offset);
}

/* log2 of the bytes one entry at `level` maps. */
static unsigned shift_of(unsigned level)
{
    return 12 + 9 * (level - 1);
}

static bool is_leaf(uint64_t e, unsigned level)
{
    return level == 1 || ((level == 2 || level == 3) && (e & PTE_PS));
}

/* The large leaf e at level 2 or 3 as a directory entry for a new table of 512 smaller leaves. */
static uint64_t split(struct guard *g, uint64_t e, unsigned level)
{
    if (g->pool_used == g->pool_frames)
        return 0;
    uint64_t tpa = g->pool + (uint64_t)g->pool_used++ * PAGE_SIZE;
    uint64_t *t = table(g, tpa);
    uint64_t size = 1ull << shift_of(level), child = size >> 9;
    uint64_t addr_bits = PTE_ADDR_MASK & ~(size - 1);
    uint64_t base = e & addr_bits, flags = e & ~addr_bits;
    if (level == 2) /* to 4 KiB leaves: no PS, the PAT bit at bit 7 */
        flags = (flags & ~(PTE_PS | PTE_PAT_LARGE)) | ((flags & PTE_PAT_LARGE) ? PTE_PAT_4K : 0);
    for (uint64_t i = 0; i < 512; i++)
        t[i] = (base + i * child) | flags;
    return tpa | PTE_P | PTE_W | (e & PTE_U);
}

/* Hides [lo, hi) in the table at tpa, which maps [base, base + 512 entries) at `level`. */
static bool hide_in(struct guard *g, uint64_t tpa, unsigned level, uint64_t base, uint64_t lo,
                    uint64_t hi)
{
    uint64_t *t = table(g, tpa);
    unsigned sh = shift_of(level);
    uint64_t size = 1ull << sh;
    for (uint64_t i = (lo - base) >> sh; i <= (hi - 1 - base) >> sh; i++) {
        uint64_t e = t[i];
        if (!(e & PTE_P))
            continue;
        uint64_t e_lo = base + (i << sh), e_hi = e_lo + size;
        uint64_t a = lo > e_lo ? lo : e_lo, b = hi < e_hi ? hi : e_hi;
        if (a == e_lo && b == e_hi) {
            t[i] = e & ~PTE_P; /* the whole entry, leaf or table, goes */
            continue;
        }
        if (is_leaf(e, level)) {
            uint64_t d = split(g, e, level);
            if (d == 0)
                return false;
            t[i] = d;
        }
        if (!hide_in(g, t[i] & PTE_ADDR_MASK, level - 1, e_lo, a, b))
            return false;
    }
    return true;
}

bool guard_hide(struct guard *g, uint64_t start, uint64_t end)
{
    uint64_t top = 1ull << (shift_of(g->levels) + 9); /* what the hierarchy can map */
    if (start >= top)
        return true;
    if (end > top)
        end = top;
    if (!hide_in(g, g->root, g->levels, 0, start, end))
        return false;
    g->pages_hidden += (end - start) / PAGE_SIZE;
    return true;
}

bool guard_lookup(const struct guard *g, uint64_t va, uint64_t *pa, uint64_t *leaf,
                  uint64_t *page_size)
{
    uint64_t tpa = g->root;
    for (unsigned level = g->levels; level >= 1; level--) {
        unsigned sh = shift_of(level);
        uint64_t e = table(g, tpa)[(va >> sh) & 511];
        if (!(e & PTE_P))
            return false;
        if (is_leaf(e, level)) {
            uint64_t size = 1ull << sh, addr_bits = PTE_ADDR_MASK & ~(size - 1);
            uint64_t flags = e & ~addr_bits;
            if (level > 1)
                flags = (flags & ~(PTE_PS | PTE_PAT_LARGE)) |
                        ((flags & PTE_PAT_LARGE) ? PTE_PAT_4K : 0);
            *pa = (e & addr_bits) + (va & (size - 1));
            *leaf = flags;
            *page_size = size;
            return true;
        }
        tpa = e & PTE_ADDR_MASK;
    }
    return false;
}
