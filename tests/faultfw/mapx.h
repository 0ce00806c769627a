/*
 * mapx: the memory-map lies the fault-injecting firmware layer tells, as pure
 * functions over descriptor arrays (no UEFI calls), so the host can test them.
 *
 * Every transformation keeps the truth: memory the firmware really uses is
 * never reported usable. The only descriptors turned usable are those inside
 * `own`, a range the layer itself allocated and gives up at ExitBootServices,
 * and (MAPX_ADD_ABOVE) memory that cannot exist: above the CPU's physical
 * address width, which stage 1 must drop.
 */
#ifndef FAULTFW_MAPX_H
#define FAULTFW_MAPX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/page.h> /* descriptors count pages of PAGE_SIZE bytes */

#define MAPX_DESC_MIN 40u /* sizeof(EFI_MEMORY_DESCRIPTOR) */

/* EFI memory types the transformations use (UEFI 2.x numbering). */
enum {
    MAPX_EFI_RESERVED = 0,
    MAPX_EFI_LOADER_CODE = 1,
    MAPX_EFI_LOADER_DATA = 2,
    MAPX_EFI_BS_DATA = 4,
    MAPX_EFI_CONVENTIONAL = 7,
};

/* One descriptor, laid out as EFI_MEMORY_DESCRIPTOR. */
struct mapx_desc {
    uint32_t type;
    uint32_t pad;
    uint64_t phys;
    uint64_t virt;
    uint64_t pages;
    uint64_t attr;
};

enum mapx_kind {
    MAPX_IDENTITY,  /* unchanged (only the stride may differ) */
    MAPX_SHUFFLE,   /* the same descriptors in a fixed pseudo-random order */
    MAPX_REVERSE,   /* the same descriptors, last first */
    MAPX_SPLIT,     /* conventional descriptors cut into pieces of split_pages */
    MAPX_OVERLAP,   /* `own` reported conventional, with restricting descriptors laid over */
    MAPX_HIDE_LOW,  /* conventional memory below `limit` reported as boot-services data */
    MAPX_ADD_ABOVE, /* the map as it is, plus `above_pages` of conventional memory at `limit` */
};

struct mapx_params {
    enum mapx_kind kind;
    uint32_t out_stride; /* bytes per output descriptor, >= MAPX_DESC_MIN */
    uint64_t split_pages;
    uint64_t seed;
    uint64_t limit;       /* MAPX_HIDE_LOW, MAPX_ADD_ABOVE: bytes */
    uint64_t above_pages; /* MAPX_ADD_ABOVE */
    /* MAPX_OVERLAP: the layer's own allocation and the reserved window inside it. */
    uint64_t own_base, own_pages;
    uint64_t canary_base, canary_pages;
};

/* What MAPX_OVERLAP laid over the map, for the log and the test's checks. */
struct mapx_overlay {
    uint64_t bs_base, bs_pages;             /* boot-services data over a usable start */
    uint64_t dup_base, dup_pages;           /* an exact duplicate of a usable descriptor */
    uint64_t straddle_base, straddle_pages; /* reserved across a usable descriptor's end */
};

/*
 * Transforms `in` (count descriptors) into `out` (capacity entries) per p.
 * Returns the number of output descriptors, or UINT32_MAX if they do not fit.
 * => in and out do not overlap; ov may be NULL.
 */
uint32_t mapx_transform(const struct mapx_params *p, const struct mapx_desc *in, uint32_t count,
                        struct mapx_desc *out, uint32_t capacity, struct mapx_overlay *ov);

/*
 * Reads count descriptors from a raw firmware map with the given stride.
 * => stride >= MAPX_DESC_MIN.
 */
void mapx_decode(const void *raw, uint64_t stride, uint32_t count, struct mapx_desc *out);

/*
 * Writes count descriptors with the given stride; bytes past the struct are
 * filled with 0xA5 so that a reader walking by the wrong size sees garbage.
 * => stride >= MAPX_DESC_MIN; raw has count * stride bytes.
 */
void mapx_encode(const struct mapx_desc *d, uint32_t count, uint64_t stride, void *raw);

#endif
