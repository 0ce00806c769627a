/*
 * manifest: the record of every mapping the page tables are meant to hold,
 * and `pt check`, which compares it with the live tables.
 *
 * Stage 1 writes a manifest of what it maps into the boot info (struct
 * canopy_mapping[]: VA, PA, size, page size, flags, owner). The kernel adopts
 * a copy with manifest_init and keeps it current: whoever changes the kernel's
 * page tables (pt_map / pt_unmap / pt_protect) states the same change here.
 * `pt check` then walks CR3 and reports every difference, which catches
 * mappings nobody meant to make as well as ones that went missing.
 *
 * Entries are kept sorted by VA, never overlap, and each covers whole pages of
 * one size, split the way pt_map and pt_unmap/pt_protect split them, so that
 * every present leaf lies inside exactly one entry of its own page size.
 *
 * Two layers: struct manifest and the manifest_set_* functions are plain data
 * and pure code (host-tested), the manifest_* functions below them are the
 * kernel's one manifest, with storage in .bss and grown from the PMM.
 */
#ifndef KERNEL_MANIFEST_H
#define KERNEL_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <vmm/pt.h>

/* A set of mapping entries with caller-provided storage. */
struct manifest {
    struct canopy_mapping *entries; /* sorted by va, non-overlapping */
    uint32_t count;
    uint32_t capacity;
    /* Makes room for at least `need` entries (copying the old ones); false if it cannot. */
    bool (*grow)(void *ctx, struct manifest *m, uint32_t need);
    void *grow_ctx;
};

/* Where `pt check` output goes; a fmt_sink fits. */
typedef void (*manifest_sink)(void *ctx, const char *s, size_t n);

/*
 * Records that [va, va + size) maps [pa, pa + size) with flags (CANOPY_MAP_*)
 * for owner, using pages no larger than page_size, split into runs of equal
 * page size exactly as pt_map(..., max_page_size = page_size) splits it.
 * => va, pa, size 4 KiB aligned, size > 0, no wrap, page_size 4 KiB, 2 MiB or
 *    1 GiB; false (nothing changed) if not, if the range overlaps an entry or
 *    if no room can be had.
 */
bool manifest_set_add(struct manifest *m, uint64_t va, uint64_t pa, uint64_t size,
                      uint32_t page_size, uint16_t flags, uint16_t owner);

/*
 * Records that [va, va + size) is unmapped: entries inside go, entries cut by
 * an end are trimmed, a large page cut inside is split into smaller pages the
 * way pt_unmap splits it. Unrecorded parts of the range are skipped.
 * => va and size 4 KiB aligned, size > 0, no wrap; false (nothing changed)
 *    otherwise or if the splits need room that cannot be had.
 */
bool manifest_set_remove(struct manifest *m, uint64_t va, uint64_t size);

/*
 * Records that every recorded page of [va, va + size) now has flags,
 * splitting large pages cut by the range whose flags change (pt_protect
 * leaves pages that already have the flags whole). Preconditions as
 * manifest_set_remove.
 */
bool manifest_set_protect(struct manifest *m, uint64_t va, uint64_t size, uint16_t flags);

/*
 * Verifies the set's invariants: sorted, non-overlapping, 4 KiB aligned,
 * each entry a whole number of its pages with va and pa aligned to them,
 * known flags. Returns false and a static reason in *why (if not NULL).
 */
bool manifest_set_check(const struct manifest *m, const char **why);

/*
 * `pt check`: walks pt and prints one line per difference from m (a range
 * mapped but not recorded, recorded but not mapped, mapped with another
 * physical address, page size, flags or memory type) and per range of pages both writable
 * and executable, merging neighbouring pages with the same difference. Ends
 * with "pt check: OK (N mappings)" or "pt check: N differences". X is only
 * compared when pt->nx is set (without NX every page is executable).
 * Returns the number of differences.
 */
uint64_t manifest_set_compare(const struct manifest *m, const struct pt *pt, manifest_sink sink,
                              void *ctx);

/* manifest_set_compare's difference lines alone, without the verdict; returns their count. */
uint64_t manifest_set_diff(const struct manifest *m, const struct pt *pt, manifest_sink sink,
                           void *ctx);

/*
 * `pt check`'s last line: "pt check: OK (N mappings)" when differences is 0,
 * else "pt check: N differences".
 */
void manifest_verdict(uint64_t differences, uint64_t mappings, manifest_sink sink, void *ctx);

/* ---- the kernel's manifest ------------------------------------------------------------- */

/*
 * Adopts stage 1's manifest from the boot info (copied into the kernel's own
 * storage; bi's copy stays as stage 1 wrote it). Panics if it breaks the
 * invariants above. => after kmm_early_init().
 */
void manifest_init(struct canopy_bootinfo *bi);

/* manifest_set_add on the kernel's manifest. => after manifest_init(). */
bool manifest_add(uint64_t va, uint64_t pa, uint64_t size, uint32_t page_size, uint16_t flags,
                  uint16_t owner);

/* manifest_set_remove on the kernel's manifest. => after manifest_init(). */
bool manifest_remove(uint64_t va, uint64_t size);

/* manifest_set_protect on the kernel's manifest. => after manifest_init(). */
bool manifest_protect(uint64_t va, uint64_t size, uint16_t flags);

/* The kernel's manifest (read only), or NULL before manifest_init. */
const struct manifest *manifest_kernel(void);

/* The manifest entry containing va, or NULL. */
const struct canopy_mapping *manifest_lookup(const struct manifest *m, uint64_t va);

#endif
