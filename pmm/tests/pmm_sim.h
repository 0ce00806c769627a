/*
 * Helpers shared by the pmm tests and fuzzers: a check of the whole PMM, a builder
 * for raw UEFI memory maps (any descriptor size, garbage in the padding), and
 * simulated physical memory (an anonymous mapping that is only touched where
 * the PMM writes, so a map of many GiB costs only what is used).
 */
#ifndef PMM_TESTS_PMM_SIM_H
#define PMM_TESTS_PMM_SIM_H

#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE under -std=c17 */

#include <pmm/pmm.h>

#include <canopy/check.h>
#include <canopy/page.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- checks ------------------------------------------------------------ */

/* REQUIRE that pmm_check finds p consistent, with its message when it does not. */
#define REQUIRE_PMM(p)                                                                             \
    do {                                                                                           \
        char check_msg_[160];                                                                      \
        REQUIREF(pmm_check((p), check_msg_, sizeof(check_msg_)) == PMM_OK, "pmm_check: %s",        \
                 check_msg_);                                                                      \
    } while (0)

/* The counters with every CPU's deltas added (pmm_counts), as a value. */
static inline struct pmm_counts counts_of(const struct pmm *p)
{
    struct pmm_counts c;
    pmm_counts(p, &c);
    return c;
}

/*
 * The state byte of frame f (a frame number), found through the section
 * table as the PMM finds it; NULL if f's section has no bytes.
 */
static inline unsigned char *state_byte(const struct pmm *p, uint64_t f)
{
    const unsigned char *region = (const unsigned char *)(uintptr_t)(p->state + p->virt_offset);
    uint64_t idx = f - p->base_frame;
    uint32_t slot = ((const uint32_t *)(const void *)region)[idx >> PMM_SECTION_SHIFT];
    if (slot == PMM_NO_SECTION)
        return NULL;
    return (unsigned char *)region + p->slots_offset + ((uint64_t)slot << PMM_SECTION_SHIFT) +
           (idx & (PMM_SECTION_FRAMES - 1));
}

/* ---- UEFI memory maps ------------------------------------------------- */

enum {
    EFI_RESERVED = 0,
    EFI_LOADER_CODE = 1,
    EFI_LOADER_DATA = 2,
    EFI_BS_CODE = 3,
    EFI_BS_DATA = 4,
    EFI_RT_CODE = 5,
    EFI_RT_DATA = 6,
    EFI_CONVENTIONAL = 7,
    EFI_UNUSABLE = 8,
    EFI_ACPI_RECLAIM = 9,
    EFI_ACPI_NVS = 10,
    EFI_MMIO = 11,
    EFI_MMIO_PORT = 12,
    EFI_PAL_CODE = 13,
    EFI_PERSISTENT = 14,
    EFI_UNACCEPTED = 15,
};
#define EFI_ATTR_RUNTIME (1ull << 63)
#define EFI_ATTR_WB      0x8ull
#define MiB              (1024ull * 1024)
#define GiB              (1024ull * MiB)

struct efimap {
    unsigned char *buf;
    size_t desc_size;
    size_t count, cap;
};

static inline void efimap_init(struct efimap *m, size_t desc_size)
{
    memset(m, 0, sizeof(*m));
    m->desc_size = desc_size;
}

static inline void efimap_free(struct efimap *m)
{
    free(m->buf);
    memset(m, 0, sizeof(*m));
}

/* Appends one descriptor; bytes past the 40 the spec defines are garbage. */
static inline void efimap_add(struct efimap *m, uint32_t type, uint64_t phys, uint64_t pages,
                              uint64_t attr)
{
    if (m->count == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->buf = realloc(m->buf, m->cap * m->desc_size);
        if (m->buf == NULL)
            abort();
    }
    unsigned char *d = m->buf + m->count * m->desc_size;
    memset(d, 0xa5, m->desc_size);
    memcpy(d + 0, &type, 4);
    uint64_t virt = 0;
    memcpy(d + 8, &phys, 8);
    memcpy(d + 16, &virt, 8);
    memcpy(d + 24, &pages, 8);
    memcpy(d + 32, &attr, 8);
    m->count++;
}

static inline size_t efimap_size(const struct efimap *m)
{
    return m->count * m->desc_size;
}

/* Normalises m into a malloc'ed array (*out), sized by memmap_capacity_for. */
static inline enum pmm_status efimap_normalise(const struct efimap *m,
                                               struct canopy_mem_range **out, uint32_t *count)
{
    uint32_t cap = memmap_capacity_for(efimap_size(m), m->desc_size);
    *out = calloc(cap ? cap : 1, sizeof(**out));
    if (*out == NULL)
        abort();
    return memmap_normalise(m->buf, efimap_size(m), m->desc_size, 1, *out, cap, count);
}

/* ---- simulated physical memory ---------------------------------------- */

struct sim {
    unsigned char *buf;
    uint64_t base; /* simulated physical address of buf[0] */
    uint64_t size;
    uint64_t offset; /* virt_offset for the PMM */
};

/* Backs [base, base + size) with lazily touched anonymous memory. */
static inline void sim_open(struct sim *s, uint64_t base, uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    s->buf = p;
    s->base = base;
    s->size = size;
    s->offset = (uint64_t)(uintptr_t)p - base;
}

static inline void sim_close(struct sim *s)
{
    munmap(s->buf, s->size);
    memset(s, 0, sizeof(*s));
}

#endif
