/*
 * pmm: the physical memory manager, a buddy allocator over 4 KiB frames.
 *
 * One library for three targets: stage 1 creates the PMM after ExitBootServices
 * from the normalised memory map, the kernel adopts the very same state, and the
 * host tests drive it over a buffer that stands in for physical memory.
 *
 * The PMM touches physical memory only through `virt_offset` (virt = phys +
 * virt_offset): 0 in stage 1 (identity), the HHDM base in the kernel, a buffer's
 * address minus its simulated physical base on the host. Every address stored
 * inside struct pmm and inside free blocks is physical, so the structure is
 * plain data: it may be copied with memcpy and rebased with pmm_rebase().
 *
 * State: one byte per frame of every section that holds RAM. The tracked
 * frames are cut into sections of PMM_SECTION_FRAMES (128 MiB); a small table
 * gives each section's slot in the state region, or none for a section
 * without RAM, whose frames are all reserved and cost no byte (as Linux's
 * SPARSEMEM). The table and the bytes form one region owned as
 * CANOPY_OWNER_PMM: pmm_init carves it out of usable memory, pmm_create puts
 * it where the caller says. Free blocks below PMM_INDEX_ORDER (2 MiB) are
 * found through an index in the same region (per 2 MiB chunk, how many free
 * blocks of each order it holds), so allocating and freeing them never
 * touches the frames; larger free blocks are on lists threaded through the
 * blocks themselves, once built. Every frame is exactly one of: free, used
 * (with an owner), reclaimable (loader / boot-services memory still in use
 * at hand-off) or reserved.
 *
 * Several CPUs: a spinlock inside struct pmm covers the free lists, the
 * index, the counters and every change to a free block; each CPU has its own
 * cache of single frames (struct pmm_cpu) that only that CPU touches,
 * without the lock. The pmm_cpu_* calls take the caller's CPU index; the calls without it
 * are those of CPU 0 (stage 1 and the kernel run on one CPU today).
 *
 * Two states: with free lists (pmm_init, or pmm_build_lists) the PMM
 * allocates and frees; without them (pmm_create) it has every frame typed and
 * owned but has written nothing outside its state array, so it can be built
 * where free memory must not be touched (stage 1 after ExitBootServices, on
 * the firmware's page tables). Without lists it answers lookups, takes
 * claims of reclaimable frames (pmm_claim) and passes pmm_check; allocating
 * and freeing wait for pmm_build_lists.
 */
#ifndef PMM_PMM_H
#define PMM_PMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <canopy/compiler.h>

#define PMM_MAX_ORDER    18 /* orders 0..18: 4 KiB .. 1 GiB blocks */
#define PMM_ORDER_COUNT  (PMM_MAX_ORDER + 1)
#define PMM_LOW_RESERVED (1024 * 1024ull) /* the first 1 MiB is never handed out */
/*
 * Freed single frames wait in a per-CPU LIFO cache of at most this many
 * frames before they merge with their buddies (as Linux's per-CPU page
 * lists), so an order-0 free followed by an allocation on the same CPU costs
 * no lock, no split and no merge. A full cache gives its oldest
 * PMM_CACHE_BATCH frames back to the buddy lists under one lock hold; an
 * empty one takes PMM_CACHE_BATCH frames at once. The caches are arrays in
 * struct pmm, so they never touch the frames' own memory. A CPU's cache is
 * drained when that CPU's request could not be met otherwise.
 */
#define PMM_CACHE_FRAMES 64
#define PMM_CACHE_BATCH  (PMM_CACHE_FRAMES / 2)
/* CPU indices 0 .. PMM_MAX_CPUS - 1 have a cache; each costs sizeof(struct pmm_cpu). */
#define PMM_MAX_CPUS 8
/* A CPU index for a caller without a cache: straight to the buddy lists, under the lock. */
#define PMM_NO_CPU 0xffffffffu
/* Frames per section (128 MiB): the unit in which state bytes exist or not. */
#define PMM_SECTION_SHIFT  15
#define PMM_SECTION_FRAMES (1ull << PMM_SECTION_SHIFT)
/* A section table entry for a section without RAM (no state bytes). */
#define PMM_NO_SECTION 0xffffffffu
/*
 * Free blocks of orders below this (up to 1 MiB) are found through the index
 * of 2 MiB chunks in the state region, not through lists in their frames:
 * their free_head stays PMM_NIL. Blocks of this order and above are listed.
 */
#define PMM_INDEX_ORDER 9

enum pmm_status {
    PMM_OK = 0,
    PMM_ERR_NOMEM,       /* no block of that order (within the bound) is free */
    PMM_ERR_INVALID,     /* a bad argument: unaligned address, order too large, ... */
    PMM_ERR_DOUBLE_FREE, /* the block is already free */
    PMM_ERR_NOT_OWNED,   /* the frame is reserved, reclaimable or outside the PMM */
    PMM_ERR_BAD_MAP,     /* the memory map is unusable (no descriptors, bad sizes, ...) */
    PMM_ERR_NO_SPACE,    /* an output buffer is too small */
    PMM_ERR_CORRUPT,     /* pmm_check found an inconsistency */
    PMM_ERR_NO_LISTS,    /* the free lists are not built yet (pmm_create, pmm_build_lists) */
};

/* A short English name for a status, for error lines. */
const char *pmm_status_str(enum pmm_status st);

/* A short name for a frame or mapping owner ("kernel image", "page table", ...). */
const char *pmm_owner_name(unsigned owner);

/*
 * One CPU's cache of single frames and what its lock-free operations did to
 * the counters since they were last folded into struct pmm's (under the
 * lock: whenever the CPU takes it, and on a drain). Only that CPU writes it.
 * Its own cache lines, so two CPUs never share one.
 */
struct pmm_cpu {
    _Alignas(64) uint64_t count;             /* frames in frames[] (<= PMM_CACHE_FRAMES) */
    int64_t free_delta;                      /* free frames gained (used frames lost) */
    int64_t owner_delta[CANOPY_OWNER_COUNT]; /* used frames gained per owner */
    uint64_t frames[PMM_CACHE_FRAMES];       /* physical addresses, newest last */
};

/*
 * The PMM's state. Plain data; read the fields, change them only through the
 * functions below. The counters are exact once every CPU's deltas are folded
 * (pmm_drain); pmm_counts() adds the deltas in.
 */
struct pmm {
    uint64_t magic;
    uint64_t virt_offset;   /* virt = phys + virt_offset */
    uint64_t base_frame;    /* first tracked frame number */
    uint64_t frame_count;   /* tracked frames, [base_frame, base_frame + frame_count) */
    uint64_t state;         /* physical address of the state region (section table first) */
    uint64_t state_bytes;   /* the region's size (its frames are owned by CANOPY_OWNER_PMM) */
    uint64_t flags;         /* PMM_LISTS */
    uint64_t section_count; /* table entries (uint32_t): one per PMM_SECTION_FRAMES frames */
    uint64_t section_slots; /* sections with state bytes (slots 0 .. section_slots - 1) */
    uint64_t slots_offset;  /* where in the region slot 0's bytes start */
    uint64_t index_offset;  /* where in the region the chunk index starts (after the bytes) */
    uint64_t lock;          /* 0 free, 1 held: a test-and-test-and-set spinlock */
    uint64_t free_head[PMM_ORDER_COUNT];   /* from PMM_INDEX_ORDER up: a free block or PMM_NIL */
    uint64_t free_blocks[PMM_ORDER_COUNT]; /* free blocks of each order */
    uint64_t free_orders;                  /* bit k set iff free_blocks[k] != 0 */
    /*
     * For each indexed order k, a frame index from which a search for a block
     * of order k may start scanning if it lands in that frame's chunk: no free
     * block of order k lies below it there (PMM_NIL: none recorded).
     */
    uint64_t scan_from[PMM_INDEX_ORDER];
    uint64_t free_frames; /* including the frames in the CPUs' caches */
    uint64_t used_frames;
    uint64_t reclaimable_frames;
    uint64_t reserved_frames;                  /* including the frames of sections without RAM */
    uint64_t owner_frames[CANOPY_OWNER_COUNT]; /* used frames per owner */
    struct pmm_cpu cpu[PMM_MAX_CPUS];
};
#define PMM_NIL UINT64_MAX
/* flags: the free lists are built; without it every free_head is PMM_NIL and the caches empty. */
#define PMM_LISTS 1ull

/* The counters with every CPU's deltas added (pmm_counts). */
struct pmm_counts {
    uint64_t free, used, reclaimable, reserved;
    uint64_t cached; /* of free: frames waiting in the CPUs' caches */
    uint64_t owner[CANOPY_OWNER_COUNT];
};

/* ---- memory map normaliser ---------------------------------------------- */

/*
 * The output capacity memmap_normalise() needs for an EFI map of map_size
 * bytes with descriptors of desc_size bytes: room for the most ranges it can
 * produce (2n - 1 for n descriptors) plus its work space. Size the output by
 * this (3n; 0 if desc_size is below 40).
 */
uint32_t memmap_capacity_for(uint64_t map_size, uint64_t desc_size);

/*
 * Turns the firmware's memory map, as it is, into sorted, non-overlapping,
 * page-aligned ranges with Canopy types, adjacent equal ranges merged.
 * => desc_size >= 40 (walks by desc_size, never by sizeof), desc_version == 1,
 *    map_size a multiple of desc_size; otherwise PMM_ERR_BAD_MAP.
 * => overlapping entries: the more restrictive type wins for the overlap;
 *    usable/reclaimable ranges are trimmed inward to whole pages, others outward.
 * => returns PMM_ERR_NO_SPACE if out_capacity is too small (never writes past it).
 * => no descriptors, or more than UINT32_MAX / 3 of them: PMM_ERR_BAD_MAP.
 */
enum pmm_status memmap_normalise(const void *efi_map, uint64_t map_size, uint64_t desc_size,
                                 uint32_t desc_version, struct canopy_mem_range *out,
                                 uint32_t out_capacity, uint32_t *out_count) MUST_CHECK;

/* What memmap_normalise_stats() had to repair, for a boot log line. */
struct memmap_stats {
    uint32_t descriptors; /* descriptors in the map */
    uint32_t empty;       /* zero pages, or nothing left once partial pages were trimmed */
    uint32_t trimmed;     /* started inside a page: usable trimmed inward, others widened */
    uint32_t clipped;     /* ran past the top of the 64-bit address space: cut there */
    uint32_t overlaps;    /* began inside another descriptor (the more restrictive won) */
};

/*
 * As memmap_normalise, and reports the repairs in *stats (if not NULL).
 * => the output buffer is also the work space: out_capacity >=
 *    memmap_capacity_for() always suffices; a smaller buffer may give
 *    PMM_ERR_NO_SPACE even when the result alone would fit.
 */
enum pmm_status memmap_normalise_stats(const void *efi_map, uint64_t map_size, uint64_t desc_size,
                                       uint32_t desc_version, struct canopy_mem_range *out,
                                       uint32_t out_capacity, uint32_t *out_count,
                                       struct memmap_stats *stats) MUST_CHECK;

/*
 * Drops every byte of a normalised map at or above `limit`; a range that
 * straddles it is cut there. Returns the bytes dropped (of every type) and
 * updates *count. For ranges no address can reach: above the CPU's physical
 * address width (CPUID 0x80000008), which firmware sometimes reports.
 * => ranges sorted and non-overlapping (memmap_normalise's output); limit
 *    page aligned.
 */
uint64_t memmap_clip(struct canopy_mem_range *ranges, uint32_t *count, uint64_t limit);

/*
 * The rank of a Canopy type where ranges overlap (the higher rank wins):
 * usable < reclaimable < acpi-reclaim < persistent < bad < reserved < acpi-nvs
 * < mmio < runtime.
 */
unsigned memmap_restrictiveness(uint32_t canopy_type);

/* The Canopy type for an EFI memory type and attribute set. */
enum canopy_mem_type memmap_type_of(uint32_t efi_type, uint64_t efi_attr);

/* A short name for a Canopy type ("usable", "reclaimable", ...) and an EFI type. */
const char *memmap_type_name(uint32_t canopy_type);
const char *memmap_efi_type_name(uint32_t efi_type);

/* ---- the allocator ------------------------------------------------------ */

/*
 * Builds the PMM over a normalised map (as produced by memmap_normalise).
 * Usable frames become free (except below PMM_LOW_RESERVED), reclaimable
 * frames reclaimable, everything else and every hole reserved. The state array
 * is placed at the top of the highest usable run that holds it and owned by
 * CANOPY_OWNER_PMM; the free lists are built (pmm_create + pmm_build_lists),
 * so this writes into every free block.
 * => ranges sorted and non-overlapping; virt_offset makes phys reachable.
 */
enum pmm_status pmm_init(struct pmm *pmm, const struct canopy_mem_range *ranges,
                         uint32_t range_count, uint64_t virt_offset) MUST_CHECK;

/*
 * As pmm_init, for memory below phys_limit only: frames at or above it are
 * not tracked at all, as if the map ended there (memory the caller cannot
 * reach, such as RAM beyond the direct map's 64 TiB with 4-level paging), so
 * nothing is ever handed out or placed there. pmm_init is
 * pmm_init_below(..., UINT64_MAX).
 * => PMM_ERR_BAD_MAP if no usable memory lies below phys_limit.
 */
enum pmm_status pmm_init_below(struct pmm *pmm, const struct canopy_mem_range *ranges,
                               uint32_t range_count, uint64_t virt_offset,
                               uint64_t phys_limit) MUST_CHECK;

/*
 * The bytes of state (whole pages) a PMM over this map below phys_limit
 * needs: the section table (4 bytes per 128 MiB from the first RAM frame,
 * rounded down to the largest block, to the last RAM frame below the limit)
 * and one byte per frame of each section that holds RAM (the last section
 * only up to the last RAM frame). 0 if the map has no RAM there, or is not
 * sorted and non-overlapping.
 * => a map whose RAM (usable and reclaimable) only shrinks or changes between
 *    those two types never needs more.
 */
uint64_t pmm_state_bytes(const struct canopy_mem_range *ranges, uint32_t range_count,
                         uint64_t phys_limit);

/*
 * As pmm_init_below, but without free lists and with the state array at
 * state_phys: writes nothing but the array's first pmm_state_bytes() bytes,
 * which become CANOPY_OWNER_PMM's frames. The rest of [state_phys,
 * state_phys + state_capacity) keeps the type the map gives it.
 * => state_phys page aligned, at or above PMM_LOW_RESERVED, every frame of
 *    the array usable or reclaimable per the map and below phys_limit;
 *    PMM_ERR_INVALID otherwise. state_capacity < pmm_state_bytes():
 *    PMM_ERR_NO_SPACE. A map pmm_init_below refuses: PMM_ERR_BAD_MAP.
 * => the result passes pmm_check; allocations need pmm_build_lists first.
 */
enum pmm_status pmm_create(struct pmm *pmm, const struct canopy_mem_range *ranges,
                           uint32_t range_count, uint64_t virt_offset, uint64_t phys_limit,
                           uint64_t state_phys, uint64_t state_capacity) MUST_CHECK;

/*
 * Builds the chunk index (in the state region) and threads the free lists
 * through the free blocks of PMM_INDEX_ORDER and above (writing the first 16
 * bytes of each, through virt_offset): the PMM allocates and frees from then
 * on. The result is what pmm_init builds (each list by ascending address
 * pushed, so the highest block first). O(frames), one pass over the state.
 * => PMM_ERR_INVALID if the lists are built already (nothing changes).
 */
enum pmm_status pmm_build_lists(struct pmm *pmm) MUST_CHECK;

/* Whether the free lists are built (pmm_init, pmm_build_lists), so allocations work. */
bool pmm_has_lists(const struct pmm *pmm);

/*
 * Hands page_count reclaimable frames from phys on to `owner`: memory the
 * caller allocated from the firmware before the PMM existed (stage 1's
 * kernel segments, page tables, boot stack, boot info) becomes used, each
 * frame its own order-0 block as pmm_alloc_run makes them. Writes state
 * bytes only; with or without free lists.
 * => owner as for pmm_alloc (never CANOPY_OWNER_PMM); phys page aligned;
 *    page_count >= 1: PMM_ERR_INVALID otherwise.
 * => PMM_ERR_NOT_OWNED, and nothing changes, if a frame of the range is not
 *    reclaimable (free, used, reserved, below 1 MiB or not tracked).
 */
enum pmm_status pmm_claim(struct pmm *pmm, uint64_t phys, uint64_t page_count,
                          enum canopy_owner owner) MUST_CHECK;

/* Changes the phys-to-virt offset (stage 1 -> kernel hand-off). */
void pmm_rebase(struct pmm *pmm, uint64_t virt_offset);

/*
 * Allocates 2^order contiguous frames, naturally aligned, for `owner`, as
 * CPU 0 (pmm_cpu_alloc(pmm, 0, ...)).
 * => order <= PMM_MAX_ORDER, owner in (CANOPY_OWNER_NONE, CANOPY_OWNER_COUNT) and not
 *    CANOPY_OWNER_PMM (that owner marks only the state array); else PMM_ERR_INVALID.
 * => O(1) for one frame; order k: O(k) (splits write one head per level).
 * => PMM_ERR_NOMEM if no free block of that order or larger exists, even after
 *    draining the caller's own cache (the only change a failed call can
 *    make). Frames in other CPUs' caches (at most PMM_CACHE_FRAMES each) are
 *    not drained: only their own CPU may touch them.
 * => on success *phys is the first frame's address; the contents are not zeroed.
 * => PMM_ERR_NO_LISTS (nothing changes) until the free lists are built; the same
 *    holds for every allocation and free below.
 */
enum pmm_status pmm_alloc(struct pmm *pmm, unsigned order, enum canopy_owner owner,
                          uint64_t *phys) MUST_CHECK;

/*
 * pmm_alloc for the CPU `cpu`: an order-0 request is served from that CPU's
 * cache without the lock (the cache takes PMM_CACHE_BATCH frames under the
 * lock when it is empty); every other request takes the lock.
 * => cpu < PMM_MAX_CPUS is the caller's own CPU, which no other thread uses
 *    at the same time (nor an interrupt handler on that CPU); PMM_NO_CPU
 *    bypasses the caches (any caller, any time). Else PMM_ERR_INVALID.
 */
enum pmm_status pmm_cpu_alloc(struct pmm *pmm, unsigned cpu, unsigned order,
                              enum canopy_owner owner, uint64_t *phys) MUST_CHECK;

/*
 * As pmm_alloc, but the whole block lies below phys_limit (exclusive).
 * => tries each list's head first; otherwise walks the state bytes of the
 *    blocks below the limit (no block memory is read), lowest block first.
 */
enum pmm_status pmm_alloc_below(struct pmm *pmm, unsigned order, uint64_t phys_limit,
                                enum canopy_owner owner, uint64_t *phys) MUST_CHECK;

/*
 * Frees a block allocated with pmm_alloc*() with the same order.
 * => PMM_ERR_DOUBLE_FREE if it is free, PMM_ERR_NOT_OWNED if it is reserved,
 *    reclaimable, untracked or the PMM's own state array, PMM_ERR_INVALID if
 *    misaligned or not a block of that order; in every error case nothing
 *    changes. O(order): the buddies merge upwards.
 */
enum pmm_status pmm_free(struct pmm *pmm, uint64_t phys, unsigned order) MUST_CHECK;

/*
 * pmm_free for the CPU `cpu` (as for pmm_cpu_alloc): a single frame goes into
 * that CPU's cache without the lock (a full cache first gives its oldest
 * PMM_CACHE_BATCH frames back under the lock); anything else takes the lock.
 * => the same checks and statuses as pmm_free. One limit: the cache path
 *    checks and marks the frame without the lock, so two CPUs freeing the
 *    same frame at the same instant may both succeed; a double free on one
 *    CPU, or one that is not simultaneous, is always reported.
 */
enum pmm_status pmm_cpu_free(struct pmm *pmm, unsigned cpu, uint64_t phys,
                             unsigned order) MUST_CHECK;

/*
 * Allocates exactly page_count physically contiguous frames (no rounding to a
 * power of two: the rest of the buddy block goes back to the free lists).
 * Each frame of the run is then its own order-0 allocation, so the run can be
 * given back whole or in pieces with pmm_free_run (as Linux's alloc_pages_exact).
 * => page_count >= 1 and <= 2^PMM_MAX_ORDER
 */
enum pmm_status pmm_alloc_run(struct pmm *pmm, uint64_t page_count, enum canopy_owner owner,
                              uint64_t *phys) MUST_CHECK;

/* Frees page_count order-0 frames starting at phys; nothing changes on error. */
enum pmm_status pmm_free_run(struct pmm *pmm, uint64_t phys, uint64_t page_count) MUST_CHECK;

/*
 * Gives every frame of every CPU's cache back to the buddy lists, merging,
 * and folds each CPU's counter deltas in, so the counters in struct pmm are
 * exact. Returns the number of frames drained. Allocations drain their own
 * CPU's cache when they would fail otherwise; call this to see the fully
 * merged state (audits, hand-off).
 * => no other CPU is inside the PMM (it touches their caches).
 */
uint64_t pmm_drain(struct pmm *pmm);

/* pmm_drain for one CPU's cache only. => cpu is the caller's own (or the PMM is idle). */
uint64_t pmm_cpu_drain(struct pmm *pmm, unsigned cpu);

/*
 * The counters, each CPU's deltas added. Exact when no CPU is inside the
 * PMM; otherwise a snapshot that may miss the operations in flight.
 */
void pmm_counts(const struct pmm *pmm, struct pmm_counts *out);

/* Frees every reclaimable frame. Returns the number of frames freed (0 without free lists). */
uint64_t pmm_reclaim(struct pmm *pmm);

/*
 * Predicates and lookups for audits and shells. They take no lock: while
 * other CPUs allocate and free, the answer may already be stale.
 */
bool pmm_is_free(const struct pmm *pmm, uint64_t phys);
/* The owner of a used frame, CANOPY_OWNER_NONE if it is not used. */
enum canopy_owner pmm_owner_of(const struct pmm *pmm, uint64_t phys);

/*
 * Checks the whole structure: every frame in exactly one state, free lists
 * and the chunk index consistent with the state bytes (each block aligned,
 * listed or counted in its chunk,
 * buddies merged; only frames in a CPU's cache may sit unmerged beside a
 * free buddy), the caches consistent (each entry a distinct cached frame),
 * counters plus the CPUs' deltas equal to a recount, the section table
 * dense and in address order, the lock free; without free lists, every list
 * empty, its count 0, the chunk index zero and every cache empty. On
 * failure writes one line naming the first problem into msg (if msg_size >
 * 0) and returns PMM_ERR_CORRUPT.
 * => no CPU is inside the PMM (the caches and deltas are read without the lock).
 */
enum pmm_status pmm_check(const struct pmm *pmm, char *msg, size_t msg_size) MUST_CHECK;

#endif
