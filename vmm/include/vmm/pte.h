/*
 * pte: the x86-64 page-table entry encoding, as tiny pure functions.
 *
 * Levels are numbered from the bottom: 1 = PT (4 KiB leaves), 2 = PD (2 MiB
 * leaves with PS), 3 = PDPT (1 GiB leaves with PS), 4 = PML4, 5 = PML5. Only
 * levels 1 to 3 can hold leaves; PS is reserved at levels 4 and 5.
 *
 * The PAT bit moves: it is bit 7 in a 4 KiB entry (where bit 7 is not PS) and
 * bit 12 in a 2 MiB or 1 GiB entry (where bits 12..20 or 12..29 are not part
 * of the frame address).
 */
#ifndef VMM_PTE_H
#define VMM_PTE_H

#include <stdbool.h>
#include <stdint.h>

#include <canopy/page.h>

#define PTE_P         (1ull << 0)  /* present */
#define PTE_W         (1ull << 1)  /* writable */
#define PTE_U         (1ull << 2)  /* user accessible */
#define PTE_PWT       (1ull << 3)  /* page write-through (PAT index bit 0) */
#define PTE_PCD       (1ull << 4)  /* page cache disable (PAT index bit 1) */
#define PTE_A         (1ull << 5)  /* accessed (set by the CPU) */
#define PTE_D         (1ull << 6)  /* dirty (set by the CPU, leaves only) */
#define PTE_PS        (1ull << 7)  /* page size: a leaf at level 2 or 3 */
#define PTE_PAT_4K    (1ull << 7)  /* PAT index bit 2 in a 4 KiB leaf */
#define PTE_G         (1ull << 8)  /* global (leaves only) */
#define PTE_PAT_LARGE (1ull << 12) /* PAT index bit 2 in a 2 MiB / 1 GiB leaf */
#define PTE_NX        (1ull << 63) /* no execute (needs EFER.NXE) */

/* Bits 12..51: the physical address of a table or a 4 KiB frame (MAXPHYADDR <= 52). */
#define PTE_ADDR_MASK 0x000ffffffffff000ull

#define PTE_ENTRIES 512u

/* Every flag a leaf may carry besides P, PS and the address. */
#define PTE_LEAF_FLAGS (PTE_W | PTE_U | PTE_PWT | PTE_PCD | PTE_A | PTE_D | PTE_G | PTE_NX)

/* The shift of the address bits that index a level-`level` table (12, 21, 30, 39, 48). */
static inline unsigned pte_level_shift(unsigned level)
{
    return 12 + 9 * (level - 1);
}

/* The bytes one entry of a level-`level` table covers. */
static inline uint64_t pte_level_size(unsigned level)
{
    return 1ull << pte_level_shift(level);
}

/* The index of va in a level-`level` table. */
static inline unsigned pte_index(uint64_t va, unsigned level)
{
    return (unsigned)(va >> pte_level_shift(level)) & (PTE_ENTRIES - 1);
}

static inline bool pte_is_present(uint64_t e)
{
    return (e & PTE_P) != 0;
}
static inline bool pte_is_writable(uint64_t e)
{
    return (e & PTE_W) != 0;
}
static inline bool pte_is_user(uint64_t e)
{
    return (e & PTE_U) != 0;
}
static inline bool pte_is_pwt(uint64_t e)
{
    return (e & PTE_PWT) != 0;
}
static inline bool pte_is_pcd(uint64_t e)
{
    return (e & PTE_PCD) != 0;
}
static inline bool pte_is_accessed(uint64_t e)
{
    return (e & PTE_A) != 0;
}
static inline bool pte_is_dirty(uint64_t e)
{
    return (e & PTE_D) != 0;
}
static inline bool pte_is_ps(uint64_t e)
{
    return (e & PTE_PS) != 0;
}
static inline bool pte_is_global(uint64_t e)
{
    return (e & PTE_G) != 0;
}
static inline bool pte_is_nx(uint64_t e)
{
    return (e & PTE_NX) != 0;
}

/* True if a present entry at `level` maps a page rather than pointing to a table. */
static inline bool pte_is_leaf(uint64_t e, unsigned level)
{
    return level == 1 || (level <= 3 && pte_is_ps(e));
}

/* The page size of a leaf at `level` (1, 2 or 3). */
static inline uint64_t pte_leaf_size(unsigned level)
{
    return pte_level_size(level);
}

/* The physical address of the table a non-leaf entry points to. */
static inline uint64_t pte_table_addr(uint64_t e)
{
    return e & PTE_ADDR_MASK;
}

/* The physical address of the frame a leaf of page_size maps (PAT bit 12 excluded). */
static inline uint64_t pte_leaf_addr(uint64_t e, uint64_t page_size)
{
    return e & PTE_ADDR_MASK & ~(page_size - 1);
}

/* The PAT bit of a leaf of page_size: bit 7 for 4 KiB, bit 12 for 2 MiB and 1 GiB. */
static inline uint64_t pte_pat_bit(uint64_t page_size)
{
    return page_size == PAGE_SIZE ? PTE_PAT_4K : PTE_PAT_LARGE;
}

/* The PAT entry (0..7) a leaf of page_size selects: PAT << 2 | PCD << 1 | PWT. */
static inline unsigned pte_pat_index(uint64_t e, uint64_t page_size)
{
    return ((e & pte_pat_bit(page_size)) ? 4u : 0u) | (pte_is_pcd(e) ? 2u : 0u) |
           (pte_is_pwt(e) ? 1u : 0u);
}

/* IA32_PAT's memory type encodings (Intel SDM Vol. 3, 11.12.2); 2 and 3 are reserved. */
enum pte_memtype {
    PTE_MT_UC = 0,
    PTE_MT_WC = 1,
    PTE_MT_WT = 4,
    PTE_MT_WP = 5,
    PTE_MT_WB = 6,
    PTE_MT_UCM = 7, /* UC- */
};

/* The memory type entry index (0..7) of the IA32_PAT value pat holds. */
static inline unsigned pte_pat_memtype(uint64_t pat, unsigned index)
{
    return (unsigned)(pat >> (8 * index)) & 7u;
}

/* The memory type a leaf entry of page_size selects under the IA32_PAT value pat. */
static inline unsigned pte_memtype(uint64_t e, uint64_t page_size, uint64_t pat)
{
    return pte_pat_memtype(pat, pte_pat_index(e, page_size));
}

/* The leaf bits that select PAT entry index (0..7) for a leaf of page_size. */
static inline uint64_t pte_pat_bits(unsigned index, uint64_t page_size)
{
    return ((index & 4u) ? pte_pat_bit(page_size) : 0) | ((index & 2u) ? PTE_PCD : 0) |
           ((index & 1u) ? PTE_PWT : 0);
}

/*
 * A non-leaf entry pointing at the table at pa: present and writable, user if
 * a user mapping lies below, so that the leaves alone decide permissions.
 */
static inline uint64_t pte_make_table(uint64_t pa, bool user)
{
    return (pa & PTE_ADDR_MASK) | PTE_P | PTE_W | (user ? PTE_U : 0);
}

/* A 4 KiB leaf; flags from PTE_LEAF_FLAGS and PTE_PAT_4K. */
static inline uint64_t pte_make_leaf_4k(uint64_t pa, uint64_t flags)
{
    return (pa & PTE_ADDR_MASK) | PTE_P | (flags & (PTE_LEAF_FLAGS | PTE_PAT_4K));
}

/* A 2 MiB leaf (PS set); flags from PTE_LEAF_FLAGS and PTE_PAT_LARGE. */
static inline uint64_t pte_make_leaf_2m(uint64_t pa, uint64_t flags)
{
    return (align_down(pa, PAGE_SIZE_2M) & PTE_ADDR_MASK) | PTE_P | PTE_PS |
           (flags & (PTE_LEAF_FLAGS | PTE_PAT_LARGE));
}

/* A 1 GiB leaf (PS set); flags from PTE_LEAF_FLAGS and PTE_PAT_LARGE. */
static inline uint64_t pte_make_leaf_1g(uint64_t pa, uint64_t flags)
{
    return (align_down(pa, PAGE_SIZE_1G) & PTE_ADDR_MASK) | PTE_P | PTE_PS |
           (flags & (PTE_LEAF_FLAGS | PTE_PAT_LARGE));
}

/* A leaf of page_size (4 KiB, 2 MiB or 1 GiB); the PAT bit in flags must suit that size. */
static inline uint64_t pte_make_leaf(uint64_t pa, uint64_t page_size, uint64_t flags)
{
    if (page_size == PAGE_SIZE_1G)
        return pte_make_leaf_1g(pa, flags);
    if (page_size == PAGE_SIZE_2M)
        return pte_make_leaf_2m(pa, flags);
    return pte_make_leaf_4k(pa, flags);
}

/*
 * The flag bits of a leaf of page_size, PAT kept at its place (bit 7 or 12),
 * without P, PS and the address.
 */
static inline uint64_t pte_leaf_flags(uint64_t e, uint64_t page_size)
{
    return e & (PTE_LEAF_FLAGS | pte_pat_bit(page_size));
}

/*
 * The flags of a leaf of from_size re-encoded for a leaf of to_size (the PAT
 * bit moves between bit 12 and bit 7); used when a large page is split.
 */
static inline uint64_t pte_leaf_flags_convert(uint64_t e, uint64_t from_size, uint64_t to_size)
{
    uint64_t f = e & PTE_LEAF_FLAGS;
    if (e & pte_pat_bit(from_size))
        f |= pte_pat_bit(to_size);
    return f;
}

#endif
