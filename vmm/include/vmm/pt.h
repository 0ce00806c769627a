/*
 * pt: x86-64 page tables (4- or 5-level), built and changed through a frame
 * source the caller passes in.
 *
 * Like pmm/, this code only reaches physical memory through virt_offset
 * (virt = phys + virt_offset): 0 in stage 1, the HHDM base in the kernel, a
 * buffer's address on the host. It never executes a privileged instruction:
 * loading CR3 and invalidating TLB entries are the caller's business.
 *
 * Attributes are given as PT_* flags; every mapping is present and readable.
 * Without PT_X the leaf gets NX (when the pt was created with nx = true).
 *
 * The entry points take virtual addresses as vaddr_t and physical ones as
 * paddr_t (canopy/addr.h), so a swapped va and pa does not compile; the
 * structures they fill in hold plain numbers.
 */
#ifndef VMM_PT_H
#define VMM_PT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/addr.h>
#include <canopy/compiler.h>

/* Mapping attributes. */
#define PT_W 0x01u /* writable */
#define PT_X 0x02u /* executable (no NX bit) */
#define PT_U 0x04u /* user accessible */
#define PT_G 0x08u /* global */
/*
 * The memory type: the leaf's PAT index (PAT << 2 | PCD << 1 | PWT) times 16.
 * The names are the types under Canopy's IA32_PAT, which is the power-on
 * table with entry 5 made write-combining (CANOPY_PAT in canopy/bootinfo.h);
 * entries 0-3 mean the same under both. The PAT bit moves between bit 7 (4 KiB
 * leaves) and bit 12 (2 MiB, 1 GiB) by itself.
 */
#define PT_CACHE_MASK 0x70u
#define PT_CACHE_WB   0x00u /* write-back (entry 0) */
#define PT_CACHE_WT   0x10u /* write-through (PWT, entry 1) */
#define PT_CACHE_UCM  0x20u /* UC- (PCD, entry 2) */
#define PT_CACHE_UC   0x30u /* UC (PCD|PWT, entry 3) */
#define PT_CACHE_WC   0x50u /* write-combining (PAT|PWT, entry 5; WT with the power-on PAT) */

enum pt_status {
    PT_OK = 0,
    PT_ERR_NOMEM,      /* the frame source ran dry; nothing was changed */
    PT_ERR_INVALID,    /* misaligned, zero size, wrapping or non-canonical range */
    PT_ERR_EXISTS,     /* part of the range is already mapped; nothing was changed */
    PT_ERR_NOT_MAPPED, /* the address is not mapped */
};

const char *pt_status_str(enum pt_status st);

/* Where page-table frames come from and go back to. alloc returns false when empty. */
struct pt_frames {
    bool (*alloc)(void *ctx, uint64_t *phys);
    void (*free)(void *ctx, uint64_t phys);
    void *ctx;
};

struct pt {
    uint64_t root;        /* physical address of the top-level table (the CR3 value) */
    unsigned levels;      /* 4 or 5 */
    bool nx;              /* set NX on non-executable leaves (EFER.NXE is on) */
    uint64_t virt_offset; /* virt = phys + virt_offset */
    struct pt_frames frames;
    uint64_t table_count; /* tables in the hierarchy, root included */
};

/*
 * Creates an empty hierarchy with a fresh, zeroed root table.
 * => levels is 4 or 5 (PT_ERR_INVALID otherwise); PT_ERR_NOMEM if no root frame.
 */
enum pt_status pt_init(struct pt *pt, unsigned levels, bool nx, uint64_t virt_offset,
                       struct pt_frames frames) MUST_CHECK;

/* Takes over an existing hierarchy (the kernel adopting stage 1's tables); counts its tables. */
void pt_adopt(struct pt *pt, paddr_t root, unsigned levels, bool nx, uint64_t virt_offset,
              struct pt_frames frames);

/*
 * Maps [va, va + size) to [pa, pa + size) with attrs, using the largest page
 * size <= max_page_size that va, pa and the remaining size allow.
 * => va, pa, size 4 KiB aligned, size > 0, the range canonical and not wrapping.
 * => PT_ERR_EXISTS if any page of the range is mapped, PT_ERR_NOMEM if tables
 *    cannot be allocated; in both cases the hierarchy is unchanged (prepare,
 *    then commit).
 */
enum pt_status pt_map(struct pt *pt, vaddr_t va, paddr_t pa, uint64_t size, uint32_t attrs,
                      uint64_t max_page_size) MUST_CHECK;

/*
 * Unmaps every mapped page in [va, va + size); unmapped holes are skipped.
 * Large pages cut by the range are split first. Tables left empty are freed.
 * Does not free the mapped frames and does not flush TLBs.
 * => PT_ERR_NOMEM (nothing changed) if a split needs a table that cannot be had.
 */
enum pt_status pt_unmap(struct pt *pt, vaddr_t va, uint64_t size) MUST_CHECK;

/*
 * Sets the attributes of every mapped page in [va, va + size), splitting large
 * pages cut by the range. PT_ERR_NOMEM leaves everything unchanged.
 */
enum pt_status pt_protect(struct pt *pt, vaddr_t va, uint64_t size, uint32_t attrs) MUST_CHECK;

/* One present leaf as the walker sees it. */
struct pt_leaf {
    uint64_t va;        /* start of the page (canonical) */
    uint64_t pa;        /* start of the frame */
    uint64_t page_size; /* 4 KiB, 2 MiB or 1 GiB */
    uint64_t entry;     /* the leaf's raw entry */
    uint32_t attrs;     /* effective PT_* across all levels: W and U ANDed, X if no NX anywhere,
                           the leaf's own G and memory type (its PAT index) */
};

/* Looks up va. => PT_ERR_NOT_MAPPED if no present leaf covers it. */
enum pt_status pt_query(const struct pt *pt, vaddr_t va, struct pt_leaf *out) MUST_CHECK;

/* A walk from the root, for `walk VA`: index and raw entry at each level. */
struct pt_walk {
    unsigned depth; /* levels visited (entries filled), top first */
    struct {
        unsigned index;
        uint64_t entry;
    } level[5];
    bool present; /* a present leaf was reached */
    struct pt_leaf leaf;
};
/*
 * Walks va from the root: level[0] is the top-level entry. depth counts the
 * entries read; the walk stops at a leaf or a non-present entry. A
 * non-canonical va gives depth 0 and present false.
 */
void pt_walk(const struct pt *pt, vaddr_t va, struct pt_walk *out);

/*
 * Calls fn for each present leaf intersecting [va_start, va_last] (va_last is
 * the inclusive last byte), in address order (lower half first). Each leaf is
 * reported whole, even if it sticks out of the range. Stops early and returns
 * false if fn does.
 */
typedef bool (*pt_leaf_fn)(void *ctx, const struct pt_leaf *leaf);
bool pt_for_each_leaf(const struct pt *pt, uint64_t va_start, uint64_t va_last, pt_leaf_fn fn,
                      void *ctx);

/* Frees every table (not the mapped frames). The pt is empty afterwards (root freed too). */
void pt_destroy(struct pt *pt);

/*
 * Checks every invariant of a hierarchy built by this code: table_count is
 * exact, no table but the root is empty, non-leaf entries are P|W (plus A if
 * the CPU set it) with U exactly when some entry below has U, no PS at levels
 * 4 and 5, large frames aligned. Returns false and a static description in
 * *problem (if not NULL) on the first violation.
 */
bool pt_check(const struct pt *pt, const char **problem);

/*
 * pt_check's rules for the entries whose span meets [va_first, va_last]
 * (canonical, inclusive) and the tables below them, but not table_count.
 * O(depth * 512) plus the entries in the range: for a check after each of
 * many small changes (vmm/tests/pt_fuzz).
 */
bool pt_check_range(const struct pt *pt, uint64_t va_first, uint64_t va_last, const char **problem);

/* One mapping as pt_map would be asked for it. */
struct pt_span {
    uint64_t va;
    uint64_t pa;
    uint64_t size;
    uint64_t max_page_size;
};

/*
 * Computes the fewest page-table frames (root included) that hold the given
 * mappings, each split into pages the way pt_map splits it. Mapping the spans
 * with pt_map into an empty hierarchy, in any order, gives exactly this
 * table_count.
 * => spans sorted by va and not overlapping, each valid for pt_map;
 *    PT_ERR_INVALID otherwise (*tables untouched).
 */
enum pt_status pt_min_tables(const struct pt_span *spans, size_t count, unsigned levels,
                             uint64_t *tables) MUST_CHECK;

#endif
