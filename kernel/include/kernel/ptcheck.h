/*
 * ptcheck: `pt check`'s rules about physical frames and the direct map.
 *
 * The manifest (manifest.h) says whether each virtual page is mapped as
 * intended. These rules look at the physical side, across every mapping of
 * a frame, in one hierarchy or in several walked together:
 *
 *   - no frame is writable through one mapping and executable through another
 *     (a writable alias undoes W^X as surely as a W+X page);
 *   - no frame is mapped with two different memory types (Intel SDM vol. 3,
 *     11.12.4: aliases with different types are undefined);
 *   - the direct map holds RAM, and only RAM: each of its leaves maps
 *     hhdm_base + p to p, write-back and not executable, and every byte of p
 *     lies in a range canopy_mem_is_direct_mapped() names.
 *
 * The leaves are first gathered into runs (leaves that continue each other in
 * virtual and physical address with the same permissions and memory type),
 * into storage the caller provides; then sorted by physical address, where a
 * sweep finds every pair of runs that share a frame.
 *
 * Pure code over vmm/pt: the kernel's shell and boot check and the host tests
 * run the same functions.
 */
#ifndef KERNEL_PTCHECK_H
#define KERNEL_PTCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <vmm/pt.h>

/* Where the lines go; a fmt_sink fits. */
typedef void (*ptcheck_sink)(void *ctx, const char *s, size_t n);

/* Leaves that continue each other in VA and PA with equal permissions and memory type. */
struct ptcheck_run {
    uint64_t va, pa, size;
    uint8_t perm; /* effective PT_W | PT_X; X is left out when the hierarchy does not use NX */
    uint8_t type; /* enum pte_memtype (vmm/pte.h) */
};

/* Storage for runs. `needed` counts every run seen, also those past cap. */
struct ptcheck_runs {
    struct ptcheck_run *runs;
    size_t count, cap;
    size_t needed;
    uint64_t pat; /* the IA32_PAT value the memory types are read through */
};

/*
 * Appends the runs of pt's present leaves that intersect [first, last], each
 * leaf clipped to the range, in address order. A run is only merged with the
 * last one appended by this call or an earlier one.
 * => the list is complete only if r->needed <= r->cap afterwards; with cap 0
 *    the call only counts (size the storage, then collect again).
 */
void ptcheck_collect(struct ptcheck_runs *r, const struct pt *pt, uint64_t first, uint64_t last);

/*
 * The two frame rules over runs[0..n) (from one or several collects): prints
 * one `pt check: frame ...` line per pair of runs that share frames and
 * break a rule, at most `max_lines` of them and then one line with the count
 * of the rest. Sorts runs by physical address. Returns the number of pairs
 * that break a rule (a pair breaking both counts twice).
 */
uint64_t ptcheck_frames(struct ptcheck_run *runs, size_t n, unsigned max_lines, ptcheck_sink sink,
                        void *ctx);

/*
 * The direct-map rule over the runs in [hhdm_base, hhdm_base + reach) of a
 * VA-sorted list (as ptcheck_collect leaves it): with list_runs, prints each
 * run as
 *
 *   direct map: 0000000000000000-00000000000a0000   640K RW- WB
 *
 * (physical range, size, permissions, memory type); then a summary line
 * `direct map: N runs, SIZE` (whole MiB, rounded down, from 1 MiB on), and one `pt check: direct
 * map ...` line per run that breaks the rule. ranges is the normalised memory map (sorted,
 * non-overlapping). Returns the number of breaks.
 */
uint64_t ptcheck_direct_map(const struct ptcheck_run *runs, size_t n, uint64_t hhdm_base,
                            uint64_t reach, const struct canopy_mem_range *ranges,
                            size_t range_count, bool list_runs, ptcheck_sink sink, void *ctx);

/* Prints one `pt check: W+X ...` line per run that is writable and executable; returns how many. */
uint64_t ptcheck_wx(const struct ptcheck_run *runs, size_t n, ptcheck_sink sink, void *ctx);

#endif
