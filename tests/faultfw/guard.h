/*
 * guard: the fault layer's free-memory guard, as pure code over a page-table
 * hierarchy (no UEFI calls, no privileged instructions), so the host can test
 * it on tables in a buffer.
 *
 * EDK2's heap guard and freed-memory guard make freed pages not-present in
 * the firmware's page tables; a loader that writes memory it was never given
 * then faults on a real PC. The layer does the same, harder: once
 * ExitBootServices has succeeded it makes every page the final memory map
 * calls free (EfiConventionalMemory) not-present in the tables the CPU runs
 * on, which map memory 1:1 until the loader switches CR3.
 */
#ifndef FAULTFW_GUARD_H
#define FAULTFW_GUARD_H

#include <stdbool.h>
#include <stdint.h>

/* A hierarchy that maps virtual address x to physical x (x below 2^47 or 2^56). */
struct guard {
    uint64_t root;        /* physical address of the top table (CR3's) */
    unsigned levels;      /* 4 or 5 */
    uint64_t virt_offset; /* a table at physical p is read and written at p + virt_offset */
    uint64_t pool;        /* physical address of frames for split tables, 4 KiB each */
    uint32_t pool_frames;
    uint32_t pool_used;
    uint64_t pages_hidden; /* 4 KiB pages made not-present so far */
};

/*
 * Makes every page of [start, end) that is mapped not-present (clears P), so
 * any access faults; pages outside keep their mapping and every attribute. A
 * 1 GiB or 2 MiB page the range covers in part is first split into a table of
 * smaller pages with the same attributes (the PAT bit moved where 4 KiB
 * entries keep it), taken from the pool.
 * => start and end 4 KiB aligned, start < end; the tables are not in use by
 *    another CPU, and the caller flushes the TLB afterwards.
 * => false if the pool ran out (pages already hidden stay hidden).
 */
bool guard_hide(struct guard *g, uint64_t start, uint64_t end);

/*
 * Looks up va the way the CPU would: true and *pa, *leaf (the entry, with
 * the PAT bit where 4 KiB entries keep it and PS cleared) and *page_size if
 * it is mapped present at every level.
 */
bool guard_lookup(const struct guard *g, uint64_t va, uint64_t *pa, uint64_t *leaf,
                  uint64_t *page_size);

#endif
