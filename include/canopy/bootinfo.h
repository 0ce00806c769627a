/*
 * The boot-info contract between stage 1 and the kernel.
 *
 * Stage 1 fills one struct canopy_bootinfo in frames it takes from the PMM
 * (owner CANOPY_OWNER_BOOTINFO) and passes its HHDM address to the kernel entry
 * point in %rdi (SysV ABI):
 *
 *     void _start(struct canopy_bootinfo *bi);
 *
 * Every address inside the structure is PHYSICAL unless its name ends in _va.
 * The kernel reaches RAM at hhdm_base + phys: the direct map (HHDM) holds the
 * ranges canopy_mem_is_direct_mapped() names and nothing else. Device memory
 * (the framebuffer, MMIO) is mapped on request in the dynamic area.
 *
 * The layout is ABI: fields are only ever appended, `version` is bumped when
 * that happens, and every offset a consumer relies on is checked below.
 * docs/boot-protocol.md describes each field.
 */
#ifndef CANOPY_BOOTINFO_H
#define CANOPY_BOOTINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The version: 2 added boot_flags and kernel_sha256; 3 fb_va, the direct map of
 * RAM only and IA32_PAT; 4 hands the PMM over without free lists.
 */
#define CANOPY_BOOTINFO_MAGIC   0x4f464e4959504f4eull /* "NOPYINFO" little endian */
#define CANOPY_BOOTINFO_VERSION 4

/* Virtual memory layout (4-level paging). */
#define CANOPY_HHDM_BASE_4L    0xffff800000000000ull
#define CANOPY_HHDM_BASE_5L    0xff00000000000000ull
#define CANOPY_DYNAMIC_BASE    0xffffc00000000000ull
#define CANOPY_DYNAMIC_END     0xffffe00000000000ull /* exclusive */
#define CANOPY_KERNEL_BASE     0xffffffff80000000ull
#define CANOPY_BOOT_STACK_SIZE (64 * 1024) /* mapped above one unmapped guard page */

/* Canopy's classification of physical memory. The EFI type is kept beside it. */
enum canopy_mem_type {
    CANOPY_MEM_USABLE = 1,       /* conventional memory: free from the start */
    CANOPY_MEM_RECLAIMABLE = 2,  /* loader and boot-services code/data: freed by the kernel */
    CANOPY_MEM_ACPI_RECLAIM = 3, /* ACPI tables: kept (Linux never frees them either) */
    CANOPY_MEM_ACPI_NVS = 4,
    CANOPY_MEM_RUNTIME = 5, /* EFI runtime code/data, or anything with EFI_MEMORY_RUNTIME */
    CANOPY_MEM_MMIO = 6,
    CANOPY_MEM_RESERVED = 7, /* reserved, unusable, unknown types */
    CANOPY_MEM_PERSISTENT = 8,
    CANOPY_MEM_BAD = 9,
};

/*
 * The types the direct map holds: RAM, whatever it is used for. Everything
 * else (runtime services, MMIO, reserved, bad memory, holes) is left out, and
 * a large page of the direct map never covers a byte of it.
 */
static inline bool canopy_mem_is_direct_mapped(uint32_t type)
{
    switch (type) {
    case CANOPY_MEM_USABLE:
    case CANOPY_MEM_RECLAIMABLE:
    case CANOPY_MEM_ACPI_RECLAIM:
    case CANOPY_MEM_ACPI_NVS:
    case CANOPY_MEM_PERSISTENT:
        return true;
    default:
        return false;
    }
}

/* One range of the normalised memory map: page aligned, sorted, non-overlapping. */
struct canopy_mem_range {
    uint64_t base;       /* physical, 4 KiB aligned */
    uint64_t page_count; /* 4 KiB pages */
    uint32_t type;       /* enum canopy_mem_type */
    uint32_t efi_type;   /* the firmware's EFI_MEMORY_TYPE (the most restrictive, on overlap) */
    uint64_t efi_attr;   /* the firmware's attribute bits */
};

/* Segment permission bits, as in ELF p_flags. */
#define CANOPY_SEG_X 0x1u
#define CANOPY_SEG_W 0x2u
#define CANOPY_SEG_R 0x4u

/* The conventional name of a segment with these CANOPY_SEG_* permissions. */
static inline const char *canopy_segment_name(uint32_t flags)
{
    if (flags & CANOPY_SEG_X)
        return ".text";
    if (flags & CANOPY_SEG_W)
        return ".data";
    return ".rodata";
}

/* Where one kernel PT_LOAD segment was placed. */
struct canopy_segment {
    uint64_t vaddr;      /* page aligned start */
    uint64_t paddr;      /* physical start of its frames, contiguous */
    uint64_t page_count; /* pages mapped: [vaddr, vaddr + page_count * 4096) */
    uint32_t flags;      /* CANOPY_SEG_* */
    uint32_t reserved;
};
#define CANOPY_MAX_SEGMENTS 16

enum canopy_fb_format {
    CANOPY_FB_NONE = 0,    /* no framebuffer: serial only */
    CANOPY_FB_RGBX = 1,    /* byte 0 red, 1 green, 2 blue (PixelRedGreenBlueReserved8BitPerColor) */
    CANOPY_FB_BGRX = 2,    /* byte 0 blue, 1 green, 2 red */
    CANOPY_FB_BITMASK = 3, /* see the masks */
};

struct canopy_framebuffer {
    uint64_t base; /* physical; mapped at the boot info's fb_va, RW NX write-combining */
    uint64_t size_bytes;
    uint32_t width; /* pixels */
    uint32_t height;
    uint32_t pitch_bytes; /* bytes per scan line */
    uint32_t bpp;         /* bits per pixel */
    uint32_t format;      /* enum canopy_fb_format */
    uint32_t red_mask, green_mask, blue_mask, reserved_mask;
    uint32_t reserved;
};

/*
 * Boot phases with TSC stamps; stage 1 fills up to KERNEL_ENTRY, the kernel the
 * rest. The one list of them: X(ID, "name") per phase, in the order they
 * happen. The name is the one spelling everywhere (console lines, `boottime`,
 * canopy.cfg's debug_fault=): lowercase with dashes, so a name seen on the
 * console can be typed back into canopy.cfg unchanged.
 */
#define CANOPY_PHASES(X)                                                                           \
    X(STAGE1_ENTRY, "stage1-entry")                                                                \
    X(CONFIG_READ, "config-read")                                                                  \
    X(KERNEL_READ, "kernel-read")                                                                  \
    X(VALIDATED, "validated")                                                                      \
    X(BEFORE_EBS, "before-ebs")                                                                    \
    X(PMM_READY, "pmm-ready")                                                                      \
    X(PAGE_TABLES_BUILT, "page-tables-built")                                                      \
    X(KERNEL_ENTRY, "kernel-entry")                                                                \
    X(CONSOLES_UP, "consoles-up")                                                                  \
    X(PMM_RECLAIM, "pmm-reclaim")                                                                  \
    X(VMM_READY, "vmm-ready")                                                                      \
    X(SHELL_READY, "shell-ready")

enum canopy_phase {
#define CANOPY_PHASE_ENUM(id, name) CANOPY_PHASE_##id,
    CANOPY_PHASES(CANOPY_PHASE_ENUM)
#undef CANOPY_PHASE_ENUM
        CANOPY_PHASE_COUNT
};

/* Mapping owners, shared by the PMM (frame owners) and the mapping manifest. */
enum canopy_owner {
    CANOPY_OWNER_NONE = 0,
    CANOPY_OWNER_KERNEL_IMAGE = 1,
    CANOPY_OWNER_PAGE_TABLE = 2,
    CANOPY_OWNER_BOOTINFO = 3,
    CANOPY_OWNER_STACK = 4,
    CANOPY_OWNER_PMM = 5, /* the PMM's own state array */
    CANOPY_OWNER_HHDM = 6,
    CANOPY_OWNER_FRAMEBUFFER = 7,
    CANOPY_OWNER_TRAMPOLINE = 8,
    CANOPY_OWNER_HEAP = 9,
    CANOPY_OWNER_VMM = 10, /* frames backing kernel dynamic-area allocations */
    CANOPY_OWNER_RUNTIME = 11,
    CANOPY_OWNER_TEST = 12,
    CANOPY_OWNER_DEVICE = 13, /* a mapping of device or firmware memory (no PMM frame) */
    CANOPY_OWNER_COUNT = 16   /* owners fit in 4 bits */
};

/*
 * IA32_PAT as stage 1 leaves it: the power-on layout (WB, WT, UC-, UC in
 * entries 0-3, repeated in 4-7) with entry 5 (PAT | PWT) made write-combining,
 * as Limine does. A leaf's PAT index is PAT << 2 | PCD << 1 | PWT, so every
 * encoding that uses PWT and PCD alone keeps its power-on meaning.
 */
#define CANOPY_PAT          0x0007010600070406ull
#define CANOPY_PAT_WC_INDEX 5u

/* One entry of the mapping manifest: what stage 1 (and later the kernel) mapped. */
#define CANOPY_MAP_W 0x1u /* writable */
#define CANOPY_MAP_X 0x2u /* executable (NX clear) */
#define CANOPY_MAP_U 0x4u /* user */
#define CANOPY_MAP_G 0x8u /* global */
/* The memory type: the leaf's PAT index (0..7) << 4, read through CANOPY_PAT. */
#define CANOPY_MAP_CACHE_SHIFT 4
#define CANOPY_MAP_CACHE_MASK  0x70u
#define CANOPY_MAP_WB          0x00u /* index 0 */
#define CANOPY_MAP_UC          0x30u /* index 3: PCD | PWT */
#define CANOPY_MAP_WC          (CANOPY_PAT_WC_INDEX << CANOPY_MAP_CACHE_SHIFT)
struct canopy_mapping {
    uint64_t va;
    uint64_t pa;
    uint64_t size_bytes;
    uint32_t page_size; /* 4096, 2 MiB or 1 GiB */
    uint16_t flags;     /* CANOPY_MAP_* */
    uint16_t owner;     /* enum canopy_owner */
};

struct canopy_bootinfo {
    uint64_t magic;   /* CANOPY_BOOTINFO_MAGIC */
    uint32_t version; /* CANOPY_BOOTINFO_VERSION */
    uint32_t size;    /* sizeof(struct canopy_bootinfo) as stage 1 knew it */

    uint64_t hhdm_base;     /* virtual address of physical 0 */
    uint32_t paging_levels; /* 4 or 5 */
    uint32_t cpu_flags;     /* CANOPY_CPU_* */

    /* The normalised memory map. */
    uint64_t mem_ranges; /* physical address of struct canopy_mem_range[] */
    uint32_t mem_range_count;
    uint32_t mem_range_capacity;

    /* The PMM state (struct pmm) built by stage 1; the kernel rebases and adopts it. */
    uint64_t pmm;

    /* The kernel image. */
    struct canopy_segment segments[CANOPY_MAX_SEGMENTS];
    uint32_t segment_count;
    uint32_t reserved0;
    uint64_t kernel_entry_va;

    /* The boot stack: [stack_top_va - CANOPY_BOOT_STACK_SIZE, stack_top_va), guard page below. */
    uint64_t stack_top_va;

    /* Stage 1's identity-mapped page that switched CR3; the kernel unmaps it. */
    uint64_t trampoline_page;

    /* The page-table root stage 1 built (the kernel's CR3 at entry). */
    uint64_t pt_root;
    uint32_t pt_frames_used;    /* page-table frames stage 1 allocated */
    uint32_t pt_frames_minimum; /* the fewest pt_map's page split needs (pt_min_tables) */

    struct canopy_framebuffer fb;

    uint64_t rsdp;             /* ACPI RSDP (2.0 preferred), 0 if none */
    uint64_t efi_system_table; /* physical address of EFI_SYSTEM_TABLE */
    uint64_t efi_memmap;       /* the raw final EFI memory map, copied */
    uint64_t efi_memmap_size;
    uint64_t efi_desc_size;
    uint32_t efi_desc_version;
    /* Failed boots in a row that stage 1's fault record counts; the kernel deletes it at ready. */
    uint32_t failed_boots;

    /* Mapping manifest (see `pt check`). */
    uint64_t mappings; /* physical address of struct canopy_mapping[] */
    uint32_t mapping_count;
    uint32_t mapping_capacity;

    /* Boot timeline. */
    uint64_t tsc_hz; /* 0 when unknown */
    uint64_t phase_tsc[CANOPY_PHASE_COUNT];

    uint64_t random_seed; /* from RDSEED/RDRAND or the firmware RNG, 0 if none */

    char cmdline[256]; /* NUL terminated */

    /* Version 2: what stage 1 verified (docs/secure-boot.md). */
    uint32_t boot_flags; /* CANOPY_BOOT_* */
    uint32_t reserved2;
    uint8_t kernel_sha256[32]; /* the kernel file's SHA-256 if KERNEL_VERIFIED, else zeros */

    /* Version 3. */
    uint64_t fb_va; /* where fb is mapped (write-combining, dynamic area); 0 without one */
};

#define CANOPY_CPU_NX     0x1u /* EFER.NXE was set */
#define CANOPY_CPU_PDPE1G 0x2u /* 1 GiB pages available (used for the HHDM) */
#define CANOPY_CPU_LA57   0x4u /* 5-level paging active */
#define CANOPY_CPU_PAT    0x8u /* IA32_PAT is CANOPY_PAT (else no leaf sets the PAT bit) */

#define CANOPY_BOOT_SECURE_BOOT     0x1u /* the firmware enforces Secure Boot */
#define CANOPY_BOOT_CONFIG_VERIFIED 0x2u /* canopy.cfg matched the hash stage 1 pins */
#define CANOPY_BOOT_KERNEL_VERIFIED 0x4u /* the kernel file matched the verified kernel_sha256= */
#define CANOPY_BOOT_FLAGS_KNOWN     0x7u

_Static_assert(sizeof(struct canopy_mem_range) == 32, "mem_range ABI");
_Static_assert(sizeof(struct canopy_segment) == 32, "segment ABI");
_Static_assert(sizeof(struct canopy_framebuffer) == 56, "framebuffer ABI");
_Static_assert(sizeof(struct canopy_mapping) == 32, "mapping ABI");
_Static_assert(offsetof(struct canopy_bootinfo, hhdm_base) == 16, "bootinfo ABI");
_Static_assert(offsetof(struct canopy_bootinfo, segments) == 56, "bootinfo ABI");
_Static_assert(offsetof(struct canopy_bootinfo, boot_flags) ==
                   offsetof(struct canopy_bootinfo, cmdline) + 256,
               "bootinfo ABI: version 2 appends after the command line");
_Static_assert(offsetof(struct canopy_bootinfo, fb_va) ==
                   offsetof(struct canopy_bootinfo, kernel_sha256) + 32,
               "bootinfo ABI: version 3 appends after the kernel's hash");
_Static_assert(sizeof(struct canopy_bootinfo) % 8 == 0, "bootinfo ABI");

#endif
