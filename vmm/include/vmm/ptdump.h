/*
 * ptdump: page-table dumps as text, pure formatters over a struct pt.
 *
 * The same code prints the kernel shell's `pt`, `pt qemu`, `pt tlb` and
 * `walk` output and the page walk of the kernel's page-fault report, and runs
 * in the host tests. Output goes to a sink with the
 * same shape as fmt_sink (lib/include/canopy/fmt.h), one call per line or
 * less. Lines end in "\n". The caller prints the `--- pt begin ---` and
 * `--- pt end ---` lines around a dump.
 */
#ifndef VMM_PTDUMP_H
#define VMM_PTDUMP_H

#include <stddef.h>
#include <stdint.h>

#include <vmm/pt.h>

/* Receives n bytes of output (not NUL terminated); a fmt_sink fits. */
typedef void (*ptdump_sink)(void *ctx, const char *s, size_t n);

/*
 * Prints what QEMU 7.2's monitor command `info mem` prints for this address
 * space, byte for byte (with "\n" where the monitor's QMP text has "\r\n"):
 * `%016llx-%016llx %016llx %c%c%c` per range of equal effective U and W,
 * sign-extended from bit 47 of the walk address, NX ignored.
 * For a 5-level hierarchy it prints nothing, as QEMU 7.2 does (its LA57 walk
 * tests the present bit of PDPT and PD entries the wrong way round and ends
 * up with no access rights anywhere while non-present entries are zero, which
 * pt.c guarantees).
 */
void ptdump_qemu_mem(const struct pt *pt, ptdump_sink sink, void *ctx);

/*
 * Prints what QEMU 7.2's `info tlb` prints: one line per present leaf,
 * `%016llx: %016llx XGPDACTUW` with the leaf's own bits (X = NX, P = PS,
 * C = PCD, T = PWT), the frame masked to the page size and to QEMU's 50
 * address bits, bit 7 (PAT) cleared on 4 KiB entries, the VA canonical.
 */
void ptdump_qemu_tlb(const struct pt *pt, ptdump_sink sink, void *ctx);

/* A section marker: printed as `---[ name ]---` where the walk reaches start. */
struct ptdump_marker {
    uint64_t start;
    const char *name;
};

/* Names the region va lies in (a VMA lookup in the kernel), or NULL. */
typedef const char *(*ptdump_label_fn)(void *ctx, uint64_t va);

/* The power-on value of IA32_PAT: WB, WT, UC-, UC, WB, WT, UC-, UC. */
#define PTDUMP_PAT_POWER_ON 0x0007040600070406ull

struct ptdump_options {
    uint64_t first, last;                /* inclusive VA range; 0 and UINT64_MAX for everything */
    const struct ptdump_marker *markers; /* sorted by start; may be NULL */
    size_t marker_count;
    ptdump_label_fn label; /* may be NULL */
    void *label_ctx;
    const uint64_t *pat; /* the IA32_PAT value; NULL means PTDUMP_PAT_POWER_ON */
};

/*
 * The human dump for `pt`: section markers, then one line per merged range:
 *
 *   ffffffff80000000-ffffffff80003000    12K 0000000000200000 4K x3     R-X kernel G WB  .text
 *
 * VA start and end (exclusive, modulo 2^64), size in K/M/G/T/P, the first
 * physical address or `not contiguous`, page size x count, effective
 * permissions (R always, W and X across all levels), user or kernel, G for
 * global, the cache type from PAT/PCD/PWT, and the label of the range's first
 * page. A range ends where the VA has a hole or any column but the physical
 * address would change, or at a marker. Leaves cut by [first, last] are
 * clipped. Ends with `W+X mappings: passed` or
 * `W+X mappings: FAILED, N pages` (N in 4 KiB pages) and returns N.
 * => opts may be NULL (everything, no markers, no labels, power-on PAT).
 */
uint64_t ptdump_human(const struct pt *pt, const struct ptdump_options *opts, ptdump_sink sink,
                      void *ctx);

/* The short name of a memory type (enum pte_memtype): "WB", "UC-", ...; "??" if reserved. */
const char *ptdump_memtype_name(unsigned type);

/*
 * A byte count as the dumps' size column writes it: the largest unit of K, M,
 * G, T, P, E that keeps it whole ("12K", "2M").
 * => bytes is a multiple of 1 KiB; len is at least 8
 */
void ptdump_size_text(uint64_t bytes, char *buf, size_t len);

/*
 * The report of a walk (pt_walk's result for va in a `levels`-level
 * hierarchy), as the shell's `walk VA` and the page-fault report print it
 * below their own first line: one line per entry read, with its table's name,
 * its index, the raw entry and its set bits by name (bit 7 is PAT in a PT
 * entry, PS elsewhere; "(empty)" for 0),
 *
 *   PML4[511] = 0000000040001003  P W
 *   PT  [  1] = 8000000000200103  P W G NX
 *
 * then the outcome: "  not mapped" if no entry was read (an empty hierarchy,
 * a non-canonical va), "  not mapped: the PD entry is not present", or
 *
 *   -> phys 0000000000200234 (4K page at 0000000000200000), effective rw- kernel
 *
 * with the permissions across all levels.
 * => levels is 4 or 5 (anything else is taken as 4); entries past the
 *    hierarchy's depth are not printed.
 */
void ptdump_walk(const struct pt_walk *w, uint64_t va, unsigned levels, ptdump_sink sink,
                 void *ctx);

#endif
