/*
 * pmm: a binary buddy allocator over 4 KiB frames with one state byte per
 * frame of every section that holds RAM, free lists threaded through the
 * free blocks themselves, a spinlock, and a cache of single frames per CPU.
 *
 * Stage 1 creates it from the normalised memory map after ExitBootServices
 * without free lists (pmm_create: only the state region, which it claimed
 * before the exit, is written) and hands the frames it claimed to their
 * owners (pmm_claim); the kernel adopts the same struct pmm (rebased to the
 * HHDM), threads the free lists through the free blocks (pmm_build_lists)
 * once it runs on its own tables, and frees the reclaimable frames later;
 * host tests, fuzzers and benchmarks run it over a buffer that stands in for
 * physical memory (pmm_init: create and build the lists at once).
 *
 * Tracked frames [base_frame, base_frame + frame_count): base_frame is
 * aligned to 2^PMM_MAX_ORDER, so buddy arithmetic on indices relative to it
 * is arithmetic on physical frame numbers, and the range ends at the highest
 * usable or reclaimable frame, so MMIO far above RAM costs nothing.
 *
 * Sections: the tracked frames are cut into sections of PMM_SECTION_FRAMES.
 * The state region starts with a table of one uint32_t per section: the
 * section's slot, or PMM_NO_SECTION if no RAM lies in it. Slot s's bytes
 * start at slots_offset + s * PMM_SECTION_FRAMES in the region (the last
 * slot is cut short at the last tracked frame). Slots are numbered in
 * address order. A section without a slot holds only reserved frames, and
 * no block reaches into it, so a hole in the map costs 4 bytes per 128 MiB:
 *
 *     region: | table: slot or none per section | slot 0 bytes | slot 1 bytes | ...
 *             | ... last slot's bytes | chunk index (from index_offset) |
 *
 * The frames are tiled by blocks: 2^k frames, naturally aligned. Free and
 * used blocks have any order; reserved and reclaimable frames are blocks of
 * order 0. The state byte of a block's first frame (its head) says what the
 * block is; the bytes of the other frames (its interior) hold no state:
 *
 *     0x00            interior
 *     0x01 .. 0x12    interior, the second frame of a used block of that order
 *     0x20 | k        head of a free block of order k
 *     0x40 | owner    head of a used block (owner 1..15; the order is the
 *                     next frame's byte if that is 0x01..0x12, else 0)
 *     0x60            reserved frame (also every frame of a section without a slot)
 *     0x61            reclaimable frame
 *     0x62            free frame waiting in a CPU's cache
 *
 * Invariant: a byte holds a head code exactly when its frame is a block head.
 * So pmm_free() proves in O(1) that an address is the head of a used block
 * of the order given (the double free, the free of an interior frame, a
 * wrong order and a reserved frame all fail before anything changes), and a
 * buddy is free and whole exactly when its head byte is 0x20 | k. Allocating
 * or freeing an order-k block writes O(k) bytes: split-off halves get a head,
 * merged buddies lose theirs; interiors are already interior.
 *
 * Finding free blocks below PMM_INDEX_ORDER (2 MiB): the chunk index, at
 * the end of the state region. Per 2 MiB chunk (512 frames, 64 words of
 * state bytes) it keeps the number of free blocks of each order 0..8 (packed
 * into one uint64_t: a chunk holds at most 256 >> k of order k) and a mask
 * of the words that hold such a free head; per slot, for each order, a mask
 * of its chunks with one; and per order a mask of the slots with one. An
 * allocation of order k takes the lowest free block of order k: the masks
 * give the lowest chunk, and a scan of the chunk's marked words (each
 * compared with the head code 8 bytes at a time) the block, starting at
 * scan_from[k] when that lies in the chunk (nothing of order k below it).
 * Adding or removing a block changes counts and mask bits. The index never
 * reads or writes a frame: a cold free frame costs no cache miss to merge
 * or to hand out. 1,152 bytes per 128 MiB section.
 * Free lists, for the blocks of PMM_INDEX_ORDER and above: one doubly-linked
 * list per order, the links (physical addresses) in the first 16 bytes of
 * each free block, reached through virt_offset. A list is touched once per
 * 512 frames at most, when a whole chunk is split off or merged back.
 * The index and the lists exist only once built (PMM_LISTS): until then
 * every head is PMM_NIL, every count and every index byte 0, and allocating
 * or freeing is refused, so nothing but the state region has been written.
 * A list head's prev link is stale by design (nothing reads it), so popping
 * touches only the block popped. Bit k of free_orders says some block of
 * order k is free, so an allocation finds its order with one bit scan.
 *
 * The lock: a spinlock (test-and-test-and-set, one atomic exchange) covers the free
 * lists, the counters in struct pmm, the bytes of free blocks and every
 * split, merge, claim and reclaim. It does not cover the CPUs' caches.
 *
 * The caches: CPU c frees a single frame by pushing it on its own LIFO stack
 * (struct pmm_cpu; the frame's byte becomes 0x62) and allocates one by
 * popping it, without the lock: a free-then-allocate pattern (page tables,
 * stacks) never splits or merges, takes no lock and reads or writes no
 * frame's memory, only state bytes. The counter changes go to the CPU's
 * deltas, folded in whenever it holds the lock. A full stack gives its
 * oldest PMM_CACHE_BATCH frames back to the buddy lists, merging, under one
 * lock hold; an empty one takes PMM_CACHE_BATCH frames at once. Another CPU
 * may read a cached frame's byte under the lock (a buddy check, or as one of
 * the 8 bytes of a word the index scans): 0x62, like the used byte it
 * replaced, is never a free head, so no merge and no search depends on the
 * race. State bytes are read and written with relaxed atomics (plain moves
 * on x86) so those reads are not data races. A cache is drained, with
 * full merging, when its CPU's request cannot be met otherwise, so it never
 * causes a failure on that CPU.
 */
#include <pmm/pmm.h>

#include <stdarg.h>
#include <stddef.h>

#include <canopy/compiler.h>
#include <canopy/fmt.h>
#include <canopy/page.h>

#define PMM_MAGIC 0x4d4d505950304e43ull /* "CN0PYPMM" little endian */

#define ST_INTERIOR 0x00u
#define ST_FREE     0x20u
#define ST_USED     0x40u
#define ST_RESERVED 0x60u
#define ST_RECLAIM  0x61u
#define ST_CACHED   0x62u
#define ST_CLASS    0xe0u
#define ST_VALUE    0x1fu

#define MAX_BLOCK_FRAMES (1ull << PMM_MAX_ORDER)
#define LOW_FRAMES       (PMM_LOW_RESERVED >> PAGE_SHIFT)
#define SECTION_MASK     (PMM_SECTION_FRAMES - 1)
#define CHUNK_FRAMES     (1ull << PMM_INDEX_ORDER)
#define SECTION_CHUNKS   (PMM_SECTION_FRAMES / CHUNK_FRAMES)
#define NO_FRAME         UINT64_MAX

_Static_assert(PMM_MAX_ORDER <= ST_VALUE, "an order must fit in the state byte");
_Static_assert(PMM_MAX_ORDER < 64, "free_orders is a 64-bit mask");
_Static_assert(CANOPY_OWNER_COUNT <= 16, "an owner must fit in 4 bits");
_Static_assert(PMM_SECTION_SHIFT <= PMM_MAX_ORDER,
               "a section is at most a largest block, so base_frame aligns sections too");
/* tests/faultfw reads these fields from a dump of physical memory. */
_Static_assert(offsetof(struct pmm, base_frame) == 16 && offsetof(struct pmm, frame_count) == 24 &&
                   offsetof(struct pmm, state) == 32 && offsetof(struct pmm, slots_offset) == 72,
               "struct pmm's header offsets");
_Static_assert(PMM_CACHE_BATCH >= 1 && PMM_CACHE_BATCH <= PMM_CACHE_FRAMES, "batch size");
_Static_assert(SECTION_CHUNKS == 64, "a section's chunks are the bits of one uint64_t");
_Static_assert(PMM_INDEX_ORDER == 9 && PMM_INDEX_ORDER <= PMM_MAX_ORDER,
               "a chunk is 64 words of state bytes, its counts fit one uint64_t (below)");

/*
 * One chunk in the index. counts: how many free blocks of each order k below
 * PMM_INDEX_ORDER the chunk holds, packed: at most 256 >> k (two free
 * buddies would have merged), so 9 bits for order 0, 8 for order 1, ... 1 for
 * order 8, 45 in all (COUNT_SHIFT says where each starts). words: bit w says
 * word w of the chunk's 512 state bytes (frames 8w .. 8w + 7) holds the head
 * of a free block below PMM_INDEX_ORDER, so a search reads only such words.
 */
struct chunk_index {
    uint64_t counts;
    uint64_t words;
};

/*
 * One slot's part of the chunk index: its 64 chunks, and for each order k
 * below PMM_INDEX_ORDER a mask of the chunks with at least one free block of
 * order k.
 */
struct slot_index {
    _Alignas(64) uint64_t has[PMM_INDEX_ORDER]; /* bit c: chunk c holds a free block of order k */
    uint64_t section;                           /* the section this slot holds */
    struct chunk_index chunk[SECTION_CHUNKS];
};

static const uint8_t COUNT_SHIFT[PMM_INDEX_ORDER + 1] = {0, 9, 17, 24, 30, 35, 39, 42, 44, 45};

/* The links at the start of every free block. */
struct free_link {
    uint64_t next; /* physical address of the next block, or PMM_NIL */
    uint64_t prev; /* meaningful only when the block is not the list head */
};

typedef struct canopy_mem_range range_t;

/* The state region as seen through virt_offset: the section table and slot 0's bytes. */
struct view {
    uint32_t *table;
    uint8_t *slots;
};

static inline struct view view_of(const struct pmm *p)
{
    uint8_t *region = (uint8_t *)(uintptr_t)(p->state + p->virt_offset);
    return (struct view){(uint32_t *)(void *)region, region + p->slots_offset};
}

/*
 * The chunk index as seen through virt_offset: one struct slot_index per
 * slot, then for each order below PMM_INDEX_ORDER a mask of the slots whose
 * `has` for that order is not 0 (`words` uint64_t per order).
 */
struct index_view {
    struct slot_index *slot;
    uint64_t *summary;
    uint64_t words;
};

static inline uint64_t summary_words(uint64_t slots)
{
    return (slots + 63) / 64;
}

static inline struct index_view index_of(const struct pmm *p)
{
    uint8_t *region = (uint8_t *)(uintptr_t)(p->state + p->virt_offset);
    struct slot_index *si = (struct slot_index *)(void *)(region + p->index_offset);
    return (struct index_view){si, (uint64_t *)(void *)(si + p->section_slots),
                               summary_words(p->section_slots)};
}

/* Whether frame idx's section has state bytes. */
static inline bool has_bytes(struct view v, uint64_t idx)
{
    return v.table[idx >> PMM_SECTION_SHIFT] != PMM_NO_SECTION;
}

/* The state byte of frame idx. => its section has bytes. */
static inline uint8_t *byte_of(struct view v, uint64_t idx)
{
    uint64_t slot = v.table[idx >> PMM_SECTION_SHIFT];
    return v.slots + (slot << PMM_SECTION_SHIFT) + (idx & SECTION_MASK);
}

/* Frame idx's state (idx tracked): reserved in a section without bytes. */
static inline unsigned st_get(struct view v, uint64_t idx)
{
    uint32_t slot = v.table[idx >> PMM_SECTION_SHIFT];
    if (slot == PMM_NO_SECTION)
        return ST_RESERVED;
    return __atomic_load_n(v.slots + ((uint64_t)slot << PMM_SECTION_SHIFT) + (idx & SECTION_MASK),
                           __ATOMIC_RELAXED);
}

/* Sets frame idx's state. => its section has bytes. */
static inline void st_set(struct view v, uint64_t idx, unsigned b)
{
    __atomic_store_n(byte_of(v, idx), (uint8_t)b, __ATOMIC_RELAXED);
}

/*
 * Sets the bytes of frames [a, b), a section at a time. => every section has
 * bytes, and no other CPU reads them (a block that the caller holds whole).
 */
static void st_fill(struct view v, uint64_t a, uint64_t b, unsigned val)
{
    while (a < b) {
        uint64_t end = (a | SECTION_MASK) + 1;
        if (end > b)
            end = b;
        __builtin_memset(byte_of(v, a), (int)val, end - a);
        a = end;
    }
}

/* The first frame index of the next section after idx's. */
static inline uint64_t next_section(uint64_t idx)
{
    return (idx | SECTION_MASK) + 1;
}

static inline struct free_link *link_of(const struct pmm *p, uint64_t phys)
{
    return (struct free_link *)(uintptr_t)(phys + p->virt_offset);
}

static inline uint64_t phys_of(const struct pmm *p, uint64_t idx)
{
    return (p->base_frame + idx) << PAGE_SHIFT;
}

static inline uint64_t idx_of(const struct pmm *p, uint64_t phys)
{
    return (phys >> PAGE_SHIFT) - p->base_frame;
}

/* Owners a caller may allocate for (the PMM's own frames come only from pmm_init). */
static inline bool owner_ok(unsigned owner)
{
    return owner > CANOPY_OWNER_NONE && owner < CANOPY_OWNER_COUNT && owner != CANOPY_OWNER_PMM;
}

/* Owners that may appear in the state array. */
static inline bool owner_valid(unsigned owner)
{
    return owner > CANOPY_OWNER_NONE && owner < CANOPY_OWNER_COUNT;
}

/* ---- the lock ------------------------------------------------------------ */

/*
 * A test-and-test-and-set spinlock: one atomic exchange when it is free;
 * while it is held, waiters spin on a plain load (the line stays shared in
 * their caches) and try again once it reads free. Not fair, but the lock is
 * held for a split, a merge or a batch of PMM_CACHE_BATCH frames, and the
 * per-CPU caches keep most operations away from it. Free, it is 0 again, so
 * a call that failed leaves struct pmm byte for byte as it was. The __atomic
 * builtins compile to plain instructions on every target (no library call,
 * no SSE).
 */
static inline void lock(struct pmm *p)
{
    while (__atomic_exchange_n(&p->lock, 1, __ATOMIC_ACQUIRE) != 0)
        while (__atomic_load_n(&p->lock, __ATOMIC_RELAXED) != 0)
            __builtin_ia32_pause();
}

static inline void unlock(struct pmm *p)
{
    __atomic_store_n(&p->lock, 0, __ATOMIC_RELEASE);
}

/* ---- free lists ---------------------------------------------------------- */

static ALWAYS_INLINE void list_push(struct pmm *p, uint64_t phys, unsigned k)
{
    struct free_link *l = link_of(p, phys);
    uint64_t head = p->free_head[k];
    l->next = head;
    l->prev = PMM_NIL;
    if (head != PMM_NIL)
        link_of(p, head)->prev = phys;
    else
        p->free_orders |= 1ull << k;
    p->free_head[k] = phys;
    p->free_blocks[k]++;
}

static ALWAYS_INLINE uint64_t list_pop(struct pmm *p, unsigned k)
{
    uint64_t phys = p->free_head[k];
    uint64_t next = link_of(p, phys)->next;
    p->free_head[k] = next;
    if (next == PMM_NIL)
        p->free_orders &= ~(1ull << k);
    p->free_blocks[k]--;
    return phys;
}

static ALWAYS_INLINE void list_unlink(struct pmm *p, uint64_t phys, unsigned k)
{
    struct free_link *l = link_of(p, phys);
    if (p->free_head[k] == phys) {
        p->free_head[k] = l->next;
        if (l->next == PMM_NIL)
            p->free_orders &= ~(1ull << k);
    } else {
        link_of(p, l->prev)->next = l->next;
        if (l->next != PMM_NIL)
            link_of(p, l->next)->prev = l->prev;
    }
    p->free_blocks[k]--;
}

/* ---- the chunk index ----------------------------------------------------- */

/*
 * Free blocks below PMM_INDEX_ORDER are not listed: their state byte is the
 * record, and the index says which 2 MiB chunks hold one of each order (the
 * file comment has the layout). To find a block of order k, the summary
 * gives the lowest slot with such a chunk, its mask the lowest chunk, and a
 * scan of that chunk's marked words the block. Adding or removing a block
 * changes a count, and a mask bit when a count or a word passes 0.
 */

/* The chunk's count of free blocks of order k. */
static ALWAYS_INLINE unsigned ix_count(const struct chunk_index *ci, unsigned k)
{
    return (unsigned)(ci->counts >> COUNT_SHIFT[k]) &
           ((1u << (COUNT_SHIFT[k + 1] - COUNT_SHIFT[k])) - 1);
}

/* State bytes read 8 at a time; the type may alias the bytes. */
typedef uint64_t __attribute__((may_alias)) state_word;

#define BYTES_01 0x0101010101010101ull
#define BYTES_7F 0x7f7f7f7f7f7f7f7full
#define BYTES_80 0x8080808080808080ull

/* 0x80 in each byte of x that is 0, else 0: exact, no borrow from byte to byte. */
static ALWAYS_INLINE uint64_t zero_bytes(uint64_t x)
{
    return ~(((x & BYTES_7F) + BYTES_7F) | x | BYTES_7F);
}

/*
 * The bytes of the state word that holds frame idx's byte that are frames'
 * (0x80 in each): all 8 but in the top chunk's last word, where RAM may end
 * mid-word and the bytes after the last frame belong to no frame.
 */
static ALWAYS_INLINE uint64_t frame_bytes(const struct pmm *p, uint64_t idx)
{
    uint64_t left = p->frame_count - (idx & ~7ull);
    return left >= 8 ? BYTES_80 : BYTES_80 & ((1ull << left * 8) - 1);
}

/* The state word (8 bytes) that holds frame idx's byte. => its section has bytes. */
static ALWAYS_INLINE uint64_t state_word_of(struct view v, uint64_t idx)
{
    return __atomic_load_n((const state_word *)(const void *)byte_of(v, idx & ~7ull),
                           __ATOMIC_RELAXED);
}

/* 0x80 in each byte of the state word w that is the head of a free block below PMM_INDEX_ORDER. */
static ALWAYS_INLINE uint64_t indexed_heads(uint64_t w)
{
    uint64_t free_class = zero_bytes((w & (BYTES_01 * ST_CLASS)) ^ (BYTES_01 * ST_FREE));
    uint64_t low_order =
        ~((w & (BYTES_01 * ST_VALUE)) + BYTES_01 * (0x80 - PMM_INDEX_ORDER)) & BYTES_80;
    return free_class & low_order;
}

/* The index entry of idx's chunk, and its slot. => idx's section has bytes. */
static ALWAYS_INLINE struct slot_index *slot_index_of(const struct pmm *p, uint64_t idx,
                                                      uint32_t *slot)
{
    *slot = view_of(p).table[idx >> PMM_SECTION_SHIFT];
    return &index_of(p).slot[*slot];
}

/*
 * Counts the free block at idx (of order k < PMM_INDEX_ORDER) in its chunk,
 * whose slot is `slot` and its index si. => the lock is held.
 */
static ALWAYS_INLINE void ix_add_at(struct pmm *p, struct slot_index *si, uint32_t slot,
                                    uint64_t idx, unsigned k)
{
    unsigned c = (unsigned)(idx >> PMM_INDEX_ORDER) & (SECTION_CHUNKS - 1);
    struct chunk_index *ci = &si->chunk[c];
    ci->counts += 1ull << COUNT_SHIFT[k];
    ci->words |= 1ull << ((idx & (CHUNK_FRAMES - 1)) / 8);
    uint64_t from = p->scan_from[k];
    if (from != PMM_NIL && idx < from && (idx ^ from) < CHUNK_FRAMES)
        p->scan_from[k] = idx; /* a block below where a scan of its chunk would start */
    if (si->has[k] == 0) {
        struct index_view x = index_of(p);
        x.summary[k * x.words + slot / 64] |= 1ull << (slot % 64);
    }
    si->has[k] |= 1ull << c;
    if (p->free_blocks[k]++ == 0)
        p->free_orders |= 1ull << k;
}

/* As ix_add_at, finding the chunk's index. */
static ALWAYS_INLINE void ix_add(struct pmm *p, uint64_t idx, unsigned k)
{
    uint32_t slot;
    struct slot_index *si = slot_index_of(p, idx, &slot);
    ix_add_at(p, si, slot, idx, k);
}

/*
 * Uncounts the free block at idx (of order k < PMM_INDEX_ORDER) in its
 * chunk (slot `slot`, index si), but leaves the word mask to the caller: a
 * merge clears the bits of every word its block covers once, at the end
 * (ix_cover_at).
 */
static ALWAYS_INLINE void ix_uncount_at(struct pmm *p, struct slot_index *si, uint32_t slot,
                                        uint64_t idx, unsigned k)
{
    unsigned c = (unsigned)(idx >> PMM_INDEX_ORDER) & (SECTION_CHUNKS - 1);
    struct chunk_index *ci = &si->chunk[c];
    ci->counts -= 1ull << COUNT_SHIFT[k];
    if (ix_count(ci, k) == 0) {
        si->has[k] &= ~(1ull << c);
        if (si->has[k] == 0) {
            struct index_view x = index_of(p);
            x.summary[k * x.words + slot / 64] &= ~(1ull << (slot % 64));
        }
    }
    if (--p->free_blocks[k] == 0)
        p->free_orders &= ~(1ull << k);
}

/*
 * Takes the free block at idx (of order k < PMM_INDEX_ORDER) out of the
 * index. => the lock is held, and idx's byte still says free (the caller
 * rewrites it after).
 */
static ALWAYS_INLINE void ix_remove(struct pmm *p, uint64_t idx, unsigned k)
{
    uint32_t slot;
    struct slot_index *si = slot_index_of(p, idx, &slot);
    ix_uncount_at(p, si, slot, idx, k);
    /* The word keeps its bit while another byte in it is an indexed free head. */
    uint64_t others = indexed_heads(state_word_of(view_of(p), idx)) & frame_bytes(p, idx) &
                      ~(0x80ull << (idx & 7) * 8);
    if (others == 0)
        si->chunk[(idx >> PMM_INDEX_ORDER) & (SECTION_CHUNKS - 1)].words &=
            ~(1ull << ((idx & (CHUNK_FRAMES - 1)) / 8));
}

/*
 * The merged block at idx of order k (>= 3) covers whole words of the chunk
 * of frame `at` (one of its frames; si is its slot's index): none of them
 * holds a head any more but idx's own, which free_push marks again.
 */
static ALWAYS_INLINE void ix_cover_at(struct slot_index *si, uint64_t at, uint64_t idx, unsigned k)
{
    struct chunk_index *ci = &si->chunk[(at >> PMM_INDEX_ORDER) & (SECTION_CHUNKS - 1)];
    if (k >= PMM_INDEX_ORDER) {
        ci->words = 0;
        return;
    }
    unsigned first = (unsigned)(idx & (CHUNK_FRAMES - 1)) / 8, n = 1u << (k - 3);
    ci->words &= ~(((n == 64 ? 0 : 1ull << n) - 1) << first);
}

/* The first frame of the lowest chunk that holds a free block of order k. => one does. */
static uint64_t ix_first_chunk(const struct pmm *p, unsigned k)
{
    struct index_view x = index_of(p);
    const uint64_t *sum = x.summary + k * x.words;
    uint64_t w = 0;
    while (sum[w] == 0)
        w++;
    const struct slot_index *si = &x.slot[w * 64 + (uint64_t)__builtin_ctzll(sum[w])];
    uint64_t c = (uint64_t)__builtin_ctzll(si->has[k]);
    return (si->section << PMM_SECTION_SHIFT) | (c << PMM_INDEX_ORDER);
}

/*
 * A scan of one chunk for the heads of its free blocks of order k (<
 * PMM_INDEX_ORDER), lowest first: only the words the chunk's mask marks are
 * read, and of those only the ones where an order-k head can start (every
 * 2^k / 8th word from order 3 up); each is compared with the head code 8
 * bytes at once, `align` keeping the bytes at multiples of 2^k. A refill
 * takes block after block from one scan: each word is read once, and the
 * chunk is looked up once.
 */
struct head_scan {
    const uint8_t *bytes; /* the chunk's state bytes */
    uint64_t base;        /* the chunk's first frame */
    uint64_t words;       /* the marked words not read yet */
    uint64_t heads;       /* 0x80 in each byte of word `at` that is a head not yet returned */
    uint64_t at;          /* the first frame of the word read last */
    uint64_t code, align; /* the head code in every byte; which bytes can hold a head */
    uint64_t tail_word;   /* the word where RAM ends mid-word (64: none in this chunk) */
    uint64_t tail_bytes;  /* frame_bytes() of that word */
};

/* The order-k heads of word w of s's chunk, past RAM's end none. */
static ALWAYS_INLINE uint64_t scan_word(const struct head_scan *s, uint64_t w)
{
    uint64_t x =
        __atomic_load_n((const state_word *)(const void *)(s->bytes + w * 8), __ATOMIC_RELAXED);
    uint64_t z = zero_bytes(x ^ s->code) & s->align;
    return w == s->tail_word ? z & s->tail_bytes : z;
}

/*
 * Starts a scan of the chunk at `base` for order k from frame `from` on. =>
 * from is aligned to 2^k and inside the chunk, whose section has bytes.
 */
static ALWAYS_INLINE void scan_init(const struct pmm *p, struct view v, uint64_t base,
                                    uint64_t from, unsigned k, struct head_scan *s)
{
    static const uint64_t word_stride[PMM_INDEX_ORDER] = {~0ull,
                                                          ~0ull,
                                                          ~0ull,
                                                          ~0ull,
                                                          0x5555555555555555ull,
                                                          0x1111111111111111ull,
                                                          0x0101010101010101ull,
                                                          0x0001000100010001ull,
                                                          0x0000000100000001ull};
    uint32_t slot;
    const struct chunk_index *ci =
        &slot_index_of(p, base, &slot)->chunk[(base >> PMM_INDEX_ORDER) & (SECTION_CHUNKS - 1)];
    uint64_t off = from - base, first = off / 8, left = p->frame_count - base;

    s->bytes = byte_of(v, base);
    s->base = base;
    s->words = ci->words & word_stride[k] & (~0ull << first);
    s->code = BYTES_01 * (ST_FREE | k);
    s->align = k == 0   ? BYTES_80
               : k == 1 ? 0x0080008000800080ull
               : k == 2 ? 0x0000008000000080ull
                        : 0x80ull;
    s->tail_word = left < CHUNK_FRAMES ? left / 8 : 64;
    s->tail_bytes = frame_bytes(p, base + s->tail_word * 8);
    s->heads = 0;
    s->at = base;
    if (s->words & (1ull << first)) {
        /* The word of `from`: its bytes before `from` are not looked at. */
        s->words &= ~(1ull << first);
        s->heads = scan_word(s, first) & (~0ull << (off & 7) * 8);
        s->at = base + first * 8;
    }
}

/* The scan's next head, or NO_FRAME past the chunk's last. */
static ALWAYS_INLINE uint64_t scan_next(struct head_scan *s)
{
    while (s->heads == 0) {
        if (s->words == 0)
            return NO_FRAME;
        uint64_t w = (uint64_t)__builtin_ctzll(s->words);
        s->words &= s->words - 1;
        s->heads = scan_word(s, w);
        s->at = s->base + w * 8;
    }
    uint64_t b = (uint64_t)__builtin_ctzll(s->heads) / 8;
    s->heads &= s->heads - 1;
    return s->at + b;
}

/* Makes idx the head of a free block of order k and records it (list or index). */
static ALWAYS_INLINE void free_push(struct pmm *p, uint64_t idx, unsigned k)
{
    st_set(view_of(p), idx, ST_FREE | k);
    if (k < PMM_INDEX_ORDER)
        ix_add(p, idx, k);
    else
        list_push(p, phys_of(p, idx), k);
}

/* Takes the free block at idx, of order k, out of its list or the index. */
static ALWAYS_INLINE void free_unlink(struct pmm *p, uint64_t idx, unsigned k)
{
    if (k < PMM_INDEX_ORDER)
        ix_remove(p, idx, k);
    else
        list_unlink(p, phys_of(p, idx), k);
}

/*
 * Where a scan of the chunk at `base` for order k starts: scan_from[k] if it
 * lies in that chunk (nothing of order k below it there), else the chunk's start.
 */
static inline uint64_t scan_start(const struct pmm *p, uint64_t base, unsigned k)
{
    uint64_t from = p->scan_from[k];
    return from != PMM_NIL && (from & ~(CHUNK_FRAMES - 1)) == base ? from : base;
}

/* The lowest free block of order k < PMM_INDEX_ORDER. => one is free. */
static uint64_t first_head(const struct pmm *p, unsigned k)
{
    struct head_scan sc;
    uint64_t base = ix_first_chunk(p, k);
    scan_init(p, view_of(p), base, scan_start(p, base, k), k, &sc);
    return scan_next(&sc);
}

/*
 * A free block of order k, not yet taken: the lowest below PMM_INDEX_ORDER,
 * else the list head. Changes nothing (a caller may not take it).
 */
static inline uint64_t free_first(const struct pmm *p, unsigned k)
{
    if (k >= PMM_INDEX_ORDER)
        return idx_of(p, p->free_head[k]);
    return first_head(p, k);
}

/*
 * Takes a free block of order k off (free_orders bit k set); returns its
 * index. Below PMM_INDEX_ORDER it is the lowest, so the next search of its
 * chunk may start there.
 */
static ALWAYS_INLINE uint64_t free_pop(struct pmm *p, unsigned k)
{
    if (k >= PMM_INDEX_ORDER)
        return idx_of(p, list_pop(p, k));
    uint64_t idx = free_first(p, k);
    ix_remove(p, idx, k);
    p->scan_from[k] = idx;
    return idx;
}

/* ---- blocks -------------------------------------------------------------- */

/* The order of the used block whose head is idx. */
static inline unsigned used_order(const struct pmm *p, struct view v, uint64_t idx)
{
    if (idx + 1 < p->frame_count) {
        unsigned m = st_get(v, idx + 1);
        if (m >= 1 && m <= PMM_MAX_ORDER)
            return m;
    }
    return 0;
}

/* The order of the block whose head is idx (whose byte is a head code). */
static unsigned head_order(const struct pmm *p, struct view v, uint64_t idx)
{
    unsigned b = st_get(v, idx);
    switch (b & ST_CLASS) {
    case ST_FREE:
        return b & ST_VALUE;
    case ST_USED:
        return used_order(p, v, idx);
    default:
        return 0;
    }
}

/*
 * The head of the block holding frame idx: the first of idx aligned down to
 * 2^0, 2^1, ... whose byte is a head code (those in between are interior).
 */
static uint64_t block_head(struct view v, uint64_t idx)
{
    for (unsigned m = 0; m <= PMM_MAX_ORDER; m++) {
        uint64_t c = idx & ~((1ull << m) - 1);
        if ((st_get(v, c) & ST_CLASS) != ST_INTERIOR)
            return c;
    }
    return idx & ~(MAX_BLOCK_FRAMES - 1); /* unreachable while the invariant holds */
}

/*
 * Splits the block at idx of order m, already taken off, down to `order`:
 * the upper halves go back, those below PMM_INDEX_ORDER all into idx's chunk.
 */
static ALWAYS_INLINE void block_split(struct pmm *p, uint64_t idx, unsigned m, unsigned order)
{
    struct view v = view_of(p);
    for (; m > order && m > PMM_INDEX_ORDER; m--) {
        st_set(v, idx + (1ull << (m - 1)), ST_FREE | (m - 1));
        list_push(p, phys_of(p, idx + (1ull << (m - 1))), m - 1);
    }
    if (m > order) {
        uint32_t slot;
        struct slot_index *si = slot_index_of(p, idx, &slot);
        for (; m > order; m--) {
            st_set(v, idx + (1ull << (m - 1)), ST_FREE | (m - 1));
            ix_add_at(p, si, slot, idx + (1ull << (m - 1)), m - 1);
        }
    }
}

/*
 * Hands out the block at idx, of order m, already taken off: splits it down
 * to `order` and marks the rest used by `owner`. => the lock is held.
 */
static inline void block_take(struct pmm *p, uint64_t idx, unsigned m, unsigned order,
                              unsigned owner)
{
    struct view v = view_of(p);
    block_split(p, idx, m, order);
    st_set(v, idx, ST_USED | owner);
    if (order)
        st_set(v, idx + 1, order);
    uint64_t n = 1ull << order;
    p->free_frames -= n;
    p->used_frames += n;
    p->owner_frames[owner] += n;
}

/*
 * The merges of block_release() below PMM_INDEX_ORDER, where the block and
 * every buddy it can merge with lie in one chunk, so in idx's section: its
 * bytes and its index are looked up once, not at every merge. Marks the
 * block's head byte (and the next, for k > 0) interior first. Returns true
 * when the block is recorded free; false when it has grown to
 * PMM_INDEX_ORDER, its head in *idxp, for merge_above(). => k <
 * PMM_INDEX_ORDER.
 */
static ALWAYS_INLINE bool merge_in_chunk(struct pmm *p, struct view v, uint64_t *idxp, unsigned k)
{
    uint64_t idx = *idxp, at = idx;
    unsigned k0 = k;
    uint32_t slot;
    struct slot_index *si = slot_index_of(p, idx, &slot);
    uint8_t *sec = byte_of(v, idx) - (idx & SECTION_MASK);
    if (k)
        __atomic_store_n(sec + (idx & SECTION_MASK) + 1, (uint8_t)ST_INTERIOR, __ATOMIC_RELAXED);
    __atomic_store_n(sec + (idx & SECTION_MASK), (uint8_t)ST_INTERIOR, __ATOMIC_RELAXED);
    for (; k < PMM_INDEX_ORDER; k++) {
        uint64_t buddy = idx ^ (1ull << k);
        uint8_t *b = sec + (buddy & SECTION_MASK);
        if (buddy >= p->frame_count || __atomic_load_n(b, __ATOMIC_RELAXED) != (ST_FREE | k))
            break;
        ix_uncount_at(p, si, slot, buddy, k); /* its word's bit: below, or kept by the new head */
        __atomic_store_n(b, (uint8_t)ST_INTERIOR, __ATOMIC_RELAXED);
        idx &= ~(1ull << k);
    }
    if (k >= 3 && k > k0)
        ix_cover_at(si, at, idx, k);
    *idxp = idx;
    if (k == PMM_INDEX_ORDER)
        return false;
    __atomic_store_n(sec + (idx & SECTION_MASK), (uint8_t)(ST_FREE | k), __ATOMIC_RELAXED);
    ix_add_at(p, si, slot, idx, k);
    return true;
}

/* The merges of block_release() from order k >= PMM_INDEX_ORDER up, through the lists. */
static void merge_above(struct pmm *p, uint64_t idx, unsigned k)
{
    struct view v = view_of(p);
    while (k < PMM_MAX_ORDER) {
        uint64_t buddy = idx ^ (1ull << k);
        if (buddy >= p->frame_count || st_get(v, buddy) != (ST_FREE | k))
            break;
        list_unlink(p, phys_of(p, buddy), k);
        st_set(v, buddy, ST_INTERIOR);
        idx &= ~(1ull << k);
        k++;
    }
    free_push(p, idx, k);
}

/*
 * Makes the block at idx of order k free, merging it with its buddy while the
 * buddy is a whole free block of the same order. The caller has taken the
 * block out of the used or reclaimable counts. => the lock is held.
 */
static inline void block_release(struct pmm *p, uint64_t idx, unsigned k)
{
    struct view v = view_of(p);
    p->free_frames += 1ull << k;
    if (k < PMM_INDEX_ORDER) {
        if (merge_in_chunk(p, v, &idx, k))
            return;
        k = PMM_INDEX_ORDER;
    } else {
        st_set(v, idx + 1, ST_INTERIOR);
        st_set(v, idx, ST_INTERIOR);
    }
    merge_above(p, idx, k);
}

/*
 * Tiles [a, b) (indices) with the largest aligned blocks, free or used by
 * owner. Free blocks get no list links here (pmm_build_lists threads them), so
 * tiling writes state bytes only.
 */
static void tile(struct pmm *p, uint64_t a, uint64_t b, unsigned owner)
{
    struct view v = view_of(p);
    while (a < b) {
        unsigned o = a ? (unsigned)__builtin_ctzll(a) : PMM_MAX_ORDER;
        if (o > PMM_MAX_ORDER)
            o = PMM_MAX_ORDER;
        while (b - a < (1ull << o))
            o--;
        uint64_t n = 1ull << o;
        st_fill(v, a + 1, a + n, ST_INTERIOR);
        if (owner == CANOPY_OWNER_NONE) {
            st_set(v, a, ST_FREE | o);
            p->free_frames += n;
        } else {
            st_set(v, a, ST_USED | owner);
            if (o)
                st_set(v, a + 1, o);
            p->used_frames += n;
            p->owner_frames[owner] += n;
        }
        a += n;
    }
}

/* ---- the CPUs' caches ------------------------------------------------------ */

/* The cache of CPU cpu; NULL for PMM_NO_CPU. => cpu checked by cpu_ok. */
static inline struct pmm_cpu *cache_of(struct pmm *p, unsigned cpu)
{
    return cpu == PMM_NO_CPU ? NULL : &p->cpu[cpu];
}

static inline bool cpu_ok(unsigned cpu)
{
    return cpu < PMM_MAX_CPUS || cpu == PMM_NO_CPU;
}

/* Adds c's counter deltas into struct pmm's counters. => the lock is held. */
static void fold(struct pmm *p, struct pmm_cpu *c)
{
    p->free_frames += (uint64_t)c->free_delta;
    p->used_frames -= (uint64_t)c->free_delta;
    c->free_delta = 0;
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++) {
        p->owner_frames[o] += (uint64_t)c->owner_delta[o];
        c->owner_delta[o] = 0;
    }
}

/*
 * Gives c's oldest n frames back to the buddy lists (merging) and moves the
 * rest down. => the lock is held, n <= c->count.
 */
static void cache_spill(struct pmm *p, struct pmm_cpu *c, uint64_t n)
{
    struct view v = view_of(p);
    /* block_release(idx, 0) of each, inline: cached frames are counted free already. */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t idx = idx_of(p, c->frames[i]);
        if (!merge_in_chunk(p, v, &idx, 0))
            merge_above(p, idx, PMM_INDEX_ORDER);
    }
    uint64_t count = c->count; /* in a register: the frames' stores could alias it */
    for (uint64_t i = n; i < count; i++)
        c->frames[i - n] = c->frames[i];
    c->count = count - n;
}

/* Puts every frame of the block at idx, of order o and taken off, in c (still counted free). */
static inline void cache_take(struct pmm *p, struct pmm_cpu *c, uint64_t idx, unsigned o)
{
    uint8_t *b = byte_of(view_of(p), idx); /* a block below a section: its bytes are in a row */
    uint64_t phys = phys_of(p, idx), count = c->count;
    for (uint64_t j = 0; j < (1ull << o); j++) {
        __atomic_store_n(b + j, (uint8_t)ST_CACHED, __ATOMIC_RELAXED);
        c->frames[count++] = phys + (j << PAGE_SHIFT);
    }
    c->count = count;
}

/*
 * Fills an empty cache with up to PMM_CACHE_BATCH frames, smallest blocks
 * first: every block of the smallest free order in the lowest chunk that has
 * one, in one pass over its bytes, while whole blocks fit; else a block split
 * down to what still fits. => the lock is held.
 */
static void cache_refill(struct pmm *p, struct pmm_cpu *c)
{
    while (c->count < PMM_CACHE_BATCH && p->free_orders != 0) {
        unsigned m = (unsigned)__builtin_ctzll(p->free_orders);
        uint64_t room = PMM_CACHE_BATCH - c->count;
        if (m < PMM_INDEX_ORDER && (1ull << m) <= room) {
            struct head_scan sc;
            uint64_t base = ix_first_chunk(p, m), j;
            scan_init(p, view_of(p), base, scan_start(p, base, m), m, &sc);
            for (j = scan_next(&sc); j != NO_FRAME && (1ull << m) <= room; j = scan_next(&sc)) {
                ix_remove(p, j, m);
                cache_take(p, c, j, m);
                room -= 1ull << m;
            }
            /* Nothing of order m is left below j in the chunk. */
            p->scan_from[m] = j != NO_FRAME ? j : PMM_NIL;
            continue;
        }
        unsigned o = 63 - (unsigned)__builtin_clzll(room); /* the largest block that fits */
        if (o > m)
            o = m;
        uint64_t idx = free_pop(p, m);
        block_split(p, idx, m, o);
        cache_take(p, c, idx, o);
    }
}

/*
 * Under the lock: a block of `order` from the buddy lists; if there is none,
 * drains c (the caller's own cache; NULL for none) and tries once more.
 */
static bool buddy_alloc(struct pmm *p, struct pmm_cpu *c, unsigned order, unsigned owner,
                        uint64_t *phys)
{
    uint64_t avail = p->free_orders >> order;
    if (avail == 0) {
        if (c == NULL || c->count == 0)
            return false;
        cache_spill(p, c, c->count);
        avail = p->free_orders >> order;
        if (avail == 0)
            return false;
    }
    unsigned m = order + (unsigned)__builtin_ctzll(avail);
    uint64_t idx = free_pop(p, m);
    block_take(p, idx, m, order, owner);
    *phys = phys_of(p, idx);
    return true;
}

/* ---- public -------------------------------------------------------------- */

const char *pmm_status_str(enum pmm_status st)
{
    switch (st) {
    case PMM_OK:
        return "ok";
    case PMM_ERR_NOMEM:
        return "out of memory";
    case PMM_ERR_INVALID:
        return "invalid argument";
    case PMM_ERR_DOUBLE_FREE:
        return "double free";
    case PMM_ERR_NOT_OWNED:
        return "frame not allocated by the pmm";
    case PMM_ERR_BAD_MAP:
        return "bad memory map";
    case PMM_ERR_NO_SPACE:
        return "output buffer too small";
    case PMM_ERR_CORRUPT:
        return "pmm state corrupt";
    case PMM_ERR_NO_LISTS:
        return "free lists not built";
    }
    return "unknown status";
}

const char *pmm_owner_name(unsigned owner)
{
    static const char *const names[CANOPY_OWNER_COUNT] = {
        [CANOPY_OWNER_NONE] = "none",
        [CANOPY_OWNER_KERNEL_IMAGE] = "kernel image",
        [CANOPY_OWNER_PAGE_TABLE] = "page table",
        [CANOPY_OWNER_BOOTINFO] = "boot info",
        [CANOPY_OWNER_STACK] = "stack",
        [CANOPY_OWNER_PMM] = "pmm",
        [CANOPY_OWNER_HHDM] = "hhdm",
        [CANOPY_OWNER_FRAMEBUFFER] = "framebuffer",
        [CANOPY_OWNER_TRAMPOLINE] = "trampoline",
        [CANOPY_OWNER_HEAP] = "heap",
        [CANOPY_OWNER_VMM] = "vmm",
        [CANOPY_OWNER_RUNTIME] = "runtime",
        [CANOPY_OWNER_TEST] = "test",
        [CANOPY_OWNER_DEVICE] = "device",
    };
    return owner < CANOPY_OWNER_COUNT && names[owner] ? names[owner] : "unknown";
}

static bool is_ram(uint32_t type)
{
    return type == CANOPY_MEM_USABLE || type == CANOPY_MEM_RECLAIMABLE;
}

/* The end frame of the run of adjacent usable ranges starting at r[*i]; advances *i past it. */
static uint64_t usable_run_end(const range_t *r, uint32_t n, uint32_t *i)
{
    uint64_t end = (r[*i].base >> PAGE_SHIFT) + r[*i].page_count;
    while (*i + 1 < n && r[*i + 1].type == CANOPY_MEM_USABLE &&
           (r[*i + 1].base >> PAGE_SHIFT) == end) {
        (*i)++;
        end += r[*i].page_count;
    }
    return end;
}

enum pmm_status pmm_init(struct pmm *p, const struct canopy_mem_range *r, uint32_t n,
                         uint64_t virt_offset)
{
    return pmm_init_below(p, r, n, virt_offset, UINT64_MAX);
}

/* Where the pieces of a PMM over a map go. */
struct shape {
    uint64_t base, count;  /* tracked frames [base, base + count) */
    uint64_t sections;     /* section table entries */
    uint64_t slots;        /* sections with RAM */
    uint64_t slots_offset; /* the first slot's bytes, in the region */
    uint64_t index_offset; /* the chunk index, in the region */
    uint64_t region_bytes; /* the whole region, in whole pages */
};

/*
 * The sections of [base, base + count) that hold RAM of r[0..n) below `reach`,
 * in address order. Returns how many; with a table (section count entries,
 * all PMM_NO_SECTION), numbers them there 0, 1, ... by address.
 */
static uint64_t number_sections(const range_t *r, uint32_t n, uint64_t reach, uint64_t base,
                                uint64_t count, uint32_t *table)
{
    uint64_t slots = 0, next = 0; /* next: the first section not yet numbered */
    for (uint32_t i = 0; i < n; i++) {
        uint64_t a = r[i].base >> PAGE_SHIFT, b = a + r[i].page_count;
        if (!is_ram(r[i].type))
            continue;
        if (b > reach)
            b = reach;
        if (b > base + count)
            b = base + count;
        if (a < base)
            a = base;
        if (b <= a)
            continue;
        uint64_t first = (a - base) >> PMM_SECTION_SHIFT,
                 last = (b - 1 - base) >> PMM_SECTION_SHIFT;
        if (first < next)
            first = next;
        for (uint64_t s = first; s <= last; s++) {
            if (table)
                table[s] = (uint32_t)slots;
            slots++;
        }
        if (last + 1 > next)
            next = last + 1;
    }
    return slots;
}

/* The chunk index's size for `slots` slots: their struct slot_index, then the summary. */
static inline uint64_t index_bytes(uint64_t slots)
{
    return slots * sizeof(struct slot_index) + PMM_INDEX_ORDER * summary_words(slots) * 8;
}

/* The frames a PMM over r[0..n) below `reach` tracks, and its state region's layout. */
static enum pmm_status layout(const range_t *r, uint32_t n, uint64_t reach, struct shape *sh)
{
    if (r == NULL || n == 0)
        return PMM_ERR_BAD_MAP;
    /* The map comes from the normaliser, but it crossed a boundary: check it. */
    uint64_t lo = UINT64_MAX, hi = 0, prev_end = 0;
    const uint64_t frame_limit = UINT64_MAX >> PAGE_SHIFT;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t f = r[i].base >> PAGE_SHIFT;
        if (!page_is_aligned(r[i].base) || r[i].page_count == 0 ||
            r[i].page_count > frame_limit - f || f < prev_end)
            return PMM_ERR_BAD_MAP;
        prev_end = f + r[i].page_count;
        if (is_ram(r[i].type) && f < reach) {
            if (f < lo)
                lo = f;
            hi = prev_end < reach ? prev_end : reach;
        }
    }
    if (hi <= LOW_FRAMES)
        return PMM_ERR_BAD_MAP; /* no RAM the PMM may hand out */
    sh->base = lo & ~(MAX_BLOCK_FRAMES - 1);
    sh->count = hi - sh->base;
    sh->sections = (sh->count + SECTION_MASK) >> PMM_SECTION_SHIFT;
    if (sh->sections >= PMM_NO_SECTION)
        return PMM_ERR_BAD_MAP; /* beyond 2^32 sections (2^59 bytes): not a real machine */
    sh->slots = number_sections(r, n, reach, sh->base, sh->count, NULL);
    sh->slots_offset = align_up(sh->sections * sizeof(uint32_t), 64);
    /* Every slot is a whole section but the last, the top one, which ends at the last frame. */
    uint64_t top = sh->count - ((sh->sections - 1) << PMM_SECTION_SHIFT);
    sh->index_offset =
        align_up(sh->slots_offset + ((sh->slots - 1) << PMM_SECTION_SHIFT) + top, 64);
    sh->region_bytes = page_up(sh->index_offset + index_bytes(sh->slots));
    return PMM_OK;
}

uint64_t pmm_state_bytes(const struct canopy_mem_range *r, uint32_t n, uint64_t phys_limit)
{
    struct shape sh;
    if (layout(r, n, phys_limit >> PAGE_SHIFT, &sh) != PMM_OK)
        return 0;
    return sh.region_bytes;
}

/* Whether every frame of [a, b) lies in a usable or reclaimable range (sorted, disjoint). */
static bool frames_are_ram(const range_t *r, uint32_t n, uint64_t a, uint64_t b)
{
    uint64_t covered = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t ra = r[i].base >> PAGE_SHIFT, rb = ra + r[i].page_count;
        if (!is_ram(r[i].type) || rb <= a || b <= ra)
            continue;
        covered += (rb < b ? rb : b) - (ra > a ? ra : a);
    }
    return covered == b - a;
}

/*
 * Types every tracked frame in the state region at p->state (p's header is
 * set): the section table, then reserved, reclaimable, free blocks (without
 * lists) and the region itself, whose frames [sa, sb) (indices) are taken out
 * of whatever range holds them.
 */
static void build_state(struct pmm *p, const range_t *r, uint32_t n, uint64_t reach)
{
    uint64_t base = p->base_frame, count = p->frame_count;
    uint64_t sa = (p->state >> PAGE_SHIFT) - base, sb = sa + (p->state_bytes >> PAGE_SHIFT);
    struct view v = view_of(p);
    __builtin_memset(v.table, 0xff, p->section_count * sizeof(uint32_t));
    number_sections(r, n, reach, base, count, v.table);
    __builtin_memset(index_of(p).slot, 0, index_bytes(p->section_slots)); /* built with the lists */
    for (uint64_t s = 0; s < p->section_count; s++) {
        uint64_t a = s << PMM_SECTION_SHIFT, b = a + PMM_SECTION_FRAMES;
        if (has_bytes(v, a))
            st_fill(v, a, b < count ? b : count, ST_RESERVED);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t a = r[i].base >> PAGE_SHIFT, b;
        if (r[i].type == CANOPY_MEM_USABLE)
            b = usable_run_end(r, n, &i);
        else if (r[i].type == CANOPY_MEM_RECLAIMABLE)
            b = a + r[i].page_count;
        else
            continue;
        if (a < LOW_FRAMES)
            a = LOW_FRAMES;
        if (b > reach)
            b = reach;
        if (b <= a)
            continue;
        a -= base;
        b -= base;
        /* A run minus the state region: at most two pieces. */
        uint64_t pieces[2][2] = {{a, b < sa ? b : sa}, {a > sb ? a : sb, b}};
        for (unsigned k = 0; k < 2; k++) {
            uint64_t pa = pieces[k][0], pb = pieces[k][1];
            if (pa >= pb)
                continue;
            if (r[i].type == CANOPY_MEM_USABLE) {
                tile(p, pa, pb, CANOPY_OWNER_NONE);
            } else {
                st_fill(v, pa, pb, ST_RECLAIM);
                p->reclaimable_frames += pb - pa;
            }
        }
    }
    tile(p, sa, sb, CANOPY_OWNER_PMM);
    p->reserved_frames = count - p->free_frames - p->used_frames - p->reclaimable_frames;
}

/* An empty header: no lists, no counts, no caches, the lock free, not valid (no magic). */
static void header_clear(struct pmm *p)
{
    __builtin_memset(p, 0, sizeof(*p));
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++)
        p->free_head[k] = PMM_NIL;
    for (unsigned k = 0; k < PMM_INDEX_ORDER; k++)
        p->scan_from[k] = PMM_NIL;
}

enum pmm_status pmm_create(struct pmm *p, const struct canopy_mem_range *r, uint32_t n,
                           uint64_t virt_offset, uint64_t phys_limit, uint64_t state_phys,
                           uint64_t state_capacity)
{
    header_clear(p);
    const uint64_t reach = phys_limit >> PAGE_SHIFT; /* the first frame not tracked */
    struct shape sh;
    enum pmm_status s = layout(r, n, reach, &sh);
    if (s != PMM_OK)
        return s;
    uint64_t state_pages = sh.region_bytes >> PAGE_SHIFT;
    uint64_t sf = state_phys >> PAGE_SHIFT;
    if (!page_is_aligned(state_phys) || sf < LOW_FRAMES || sf > reach || reach - sf < state_pages)
        return PMM_ERR_INVALID;
    if (state_capacity < sh.region_bytes)
        return PMM_ERR_NO_SPACE;
    if (!frames_are_ram(r, n, sf, sf + state_pages))
        return PMM_ERR_INVALID;

    p->virt_offset = virt_offset;
    p->base_frame = sh.base;
    p->frame_count = sh.count;
    p->state = state_phys;
    p->state_bytes = sh.region_bytes;
    p->section_count = sh.sections;
    p->section_slots = sh.slots;
    p->slots_offset = sh.slots_offset;
    p->index_offset = sh.index_offset;
    build_state(p, r, n, reach);
    p->magic = PMM_MAGIC;
    return PMM_OK;
}

enum pmm_status pmm_init_below(struct pmm *p, const struct canopy_mem_range *r, uint32_t n,
                               uint64_t virt_offset, uint64_t phys_limit)
{
    header_clear(p);
    const uint64_t reach = phys_limit >> PAGE_SHIFT;
    struct shape sh;
    enum pmm_status s = layout(r, n, reach, &sh);
    if (s != PMM_OK)
        return s;
    uint64_t state_pages = sh.region_bytes >> PAGE_SHIFT;

    /* The state region goes at the top of the highest usable run that holds it. */
    uint64_t state_frame = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (r[i].type != CANOPY_MEM_USABLE)
            continue;
        uint64_t a = r[i].base >> PAGE_SHIFT;
        uint64_t b = usable_run_end(r, n, &i);
        if (a < LOW_FRAMES)
            a = LOW_FRAMES;
        if (b > reach)
            b = reach;
        if (b > a && b - a >= state_pages)
            state_frame = b - state_pages;
    }
    if (state_frame == 0)
        return PMM_ERR_NOMEM;
    s = pmm_create(p, r, n, virt_offset, phys_limit, state_frame << PAGE_SHIFT,
                   state_pages << PAGE_SHIFT);
    if (s != PMM_OK)
        return s;
    return pmm_build_lists(p);
}

enum pmm_status pmm_build_lists(struct pmm *p)
{
    lock(p);
    if (p->flags & PMM_LISTS) {
        unlock(p);
        return PMM_ERR_INVALID;
    }
    p->flags |= PMM_LISTS;
    struct view v = view_of(p);
    struct index_view x = index_of(p);
    for (uint64_t s = 0; s < p->section_count; s++)
        if (v.table[s] != PMM_NO_SECTION)
            x.slot[v.table[s]].section = s;
    for (uint64_t idx = 0; idx < p->frame_count;) {
        if (!has_bytes(v, idx)) {
            idx = next_section(idx);
            continue;
        }
        unsigned o = head_order(p, v, idx);
        if ((st_get(v, idx) & ST_CLASS) == ST_FREE)
            free_push(p, idx, o);
        idx += 1ull << o;
    }
    unlock(p);
    return PMM_OK;
}

bool pmm_has_lists(const struct pmm *p)
{
    return (p->flags & PMM_LISTS) != 0;
}

enum pmm_status pmm_claim(struct pmm *p, uint64_t phys, uint64_t page_count,
                          enum canopy_owner owner)
{
    if (!owner_ok(owner) || page_count == 0 || !page_is_aligned(phys))
        return PMM_ERR_INVALID;
    uint64_t f = phys >> PAGE_SHIFT;
    if (f < p->base_frame || f - p->base_frame >= p->frame_count ||
        page_count > p->frame_count - (f - p->base_frame))
        return PMM_ERR_NOT_OWNED;
    uint64_t idx = f - p->base_frame;
    struct view v = view_of(p);
    lock(p);
    /* Reclaimable frames are order-0 blocks, never below 1 MiB: each one is a whole block. */
    for (uint64_t j = 0; j < page_count; j++) {
        if (st_get(v, idx + j) != ST_RECLAIM) {
            unlock(p);
            return PMM_ERR_NOT_OWNED;
        }
    }
    st_fill(v, idx, idx + page_count, ST_USED | owner);
    p->reclaimable_frames -= page_count;
    p->used_frames += page_count;
    p->owner_frames[owner] += page_count;
    unlock(p);
    return PMM_OK;
}

void pmm_rebase(struct pmm *pmm, uint64_t virt_offset)
{
    pmm->virt_offset = virt_offset;
}

/* Takes c's newest frame for owner into *phys. => c is not empty. */
static ALWAYS_INLINE void cache_get(struct pmm *p, struct pmm_cpu *c, unsigned owner,
                                    uint64_t *phys)
{
    uint64_t frame = c->frames[--c->count];
    st_set(view_of(p), idx_of(p, frame), ST_USED | owner);
    c->free_delta--;
    c->owner_delta[owner]++;
    *phys = frame;
}

/*
 * pmm_cpu_alloc() of a frame through c when c is empty: a batch under the
 * lock first. Out of line, as every path of pmm_cpu_alloc() and
 * pmm_cpu_free() that calls anything: the cache paths, with no call left in
 * them, save no registers.
 */
static __attribute__((noinline)) enum pmm_status cache_alloc_slow(struct pmm *p, struct pmm_cpu *c,
                                                                  unsigned owner, uint64_t *phys)
{
    lock(p);
    cache_refill(p, c);
    if (c->count > 0)
        fold(p, c);
    unlock(p);
    if (c->count == 0)
        return PMM_ERR_NOMEM; /* nothing free, and this CPU's cache is empty */
    cache_get(p, c, owner, phys);
    return PMM_OK;
}

/*
 * pmm_cpu_alloc() of a block that does not come from a cache: from the buddy
 * lists under the lock. Out of line, as cache_alloc_slow().
 */
static __attribute__((noinline)) enum pmm_status
alloc_locked(struct pmm *p, struct pmm_cpu *c, unsigned order, unsigned owner, uint64_t *phys)
{
    lock(p);
    bool ok = buddy_alloc(p, c, order, owner, phys);
    if (ok && c)
        fold(p, c);
    unlock(p);
    return ok ? PMM_OK : PMM_ERR_NOMEM;
}

enum pmm_status pmm_alloc(struct pmm *p, unsigned order, enum canopy_owner owner, uint64_t *phys)
{
    return pmm_cpu_alloc(p, 0, order, owner, phys);
}

enum pmm_status pmm_cpu_alloc(struct pmm *p, unsigned cpu, unsigned order, enum canopy_owner owner,
                              uint64_t *phys)
{
    if (order > PMM_MAX_ORDER || !owner_ok(owner) || !cpu_ok(cpu))
        return PMM_ERR_INVALID;
    if (!(p->flags & PMM_LISTS))
        return PMM_ERR_NO_LISTS;
    struct pmm_cpu *c = cache_of(p, cpu);
    if (order == 0 && c != NULL) {
        if (c->count == 0)
            return cache_alloc_slow(p, c, owner, phys);
        cache_get(p, c, owner, phys);
        return PMM_OK;
    }
    return alloc_locked(p, c, order, owner, phys);
}

static bool alloc_below(struct pmm *p, unsigned order, uint64_t limit, unsigned owner,
                        uint64_t *phys);

enum pmm_status pmm_alloc_below(struct pmm *p, unsigned order, uint64_t phys_limit,
                                enum canopy_owner owner, uint64_t *phys)
{
    if (order > PMM_MAX_ORDER || !owner_ok(owner))
        return PMM_ERR_INVALID;
    if (!(p->flags & PMM_LISTS))
        return PMM_ERR_NO_LISTS;
    uint64_t limit = phys_limit >> PAGE_SHIFT; /* first frame not allowed */
    if (limit <= p->base_frame)
        return PMM_ERR_NOMEM;
    limit -= p->base_frame;
    if (limit >= p->frame_count)
        return pmm_alloc(p, order, owner, phys);
    struct pmm_cpu *c = &p->cpu[0];
    lock(p);
    bool ok = alloc_below(p, order, limit, owner, phys);
    /* Cached frames are free but unmerged: merge them and look once more. */
    if (!ok && c->count > 0) {
        cache_spill(p, c, c->count);
        ok = alloc_below(p, order, limit, owner, phys);
    }
    if (ok)
        fold(p, c);
    unlock(p);
    return ok ? PMM_OK : PMM_ERR_NOMEM;
}

/* The search behind pmm_alloc_below over the buddy lists; limit is a frame index. */
static bool alloc_below(struct pmm *p, unsigned order, uint64_t limit, unsigned owner,
                        uint64_t *phys)
{
    uint64_t need = 1ull << order;

    /* Cheap first: the block each order would give (the lowest, below the index order). */
    for (uint64_t avail = p->free_orders >> order; avail; avail &= avail - 1) {
        unsigned m = order + (unsigned)__builtin_ctzll(avail);
        uint64_t head = free_first(p, m);
        if (head + need <= limit) {
            free_unlink(p, head, m);
            block_take(p, head, m, order, owner);
            *phys = phys_of(p, head);
            return true;
        }
    }

    /* Then walk the blocks from the bottom (reads state bytes only). */
    struct view v = view_of(p);
    for (uint64_t idx = 0; idx + need <= limit;) {
        if (!has_bytes(v, idx)) {
            idx = next_section(idx);
            continue;
        }
        unsigned b = st_get(v, idx), o = head_order(p, v, idx);
        if ((b & ST_CLASS) == ST_FREE && o >= order) {
            free_unlink(p, idx, o);
            block_take(p, idx, o, order, owner);
            *phys = phys_of(p, idx);
            return true;
        }
        idx += 1ull << o;
    }
    return false;
}

/*
 * free_check()'s verdict where its first test does not settle it: PMM_OK,
 * or what is wrong with freeing the block at idx.
 */
static __attribute__((noinline)) enum pmm_status free_verdict(const struct pmm *p, uint64_t idx,
                                                              unsigned order)
{
    struct view v = view_of(p);
    unsigned b = st_get(v, idx);
    switch (b & ST_CLASS) {
    case ST_FREE:
        return PMM_ERR_DOUBLE_FREE;
    case ST_USED:
        if ((b & ST_VALUE) == CANOPY_OWNER_PMM)
            return PMM_ERR_NOT_OWNED; /* the state region is never given back */
        return used_order(p, v, idx) == order ? PMM_OK : PMM_ERR_INVALID;
    case ST_RESERVED:
        return b == ST_CACHED ? PMM_ERR_DOUBLE_FREE : PMM_ERR_NOT_OWNED;
    default: /* inside a block: of a free one is a double free, else a bad address */
        b = st_get(v, block_head(v, idx));
        if ((b & ST_CLASS) == ST_FREE)
            return PMM_ERR_DOUBLE_FREE;
        return b == (ST_USED | CANOPY_OWNER_PMM) ? PMM_ERR_NOT_OWNED : PMM_ERR_INVALID;
    }
}

/*
 * Whether the block at idx of the given order may surely be freed: the
 * answer a correct caller gets, a used block of that order that the PMM
 * does not own itself, read from idx's byte and the next (used_order()'s)
 * when both are in one section. false says only that free_verdict() must
 * look.
 */
static ALWAYS_INLINE bool free_surely_ok(const struct pmm *p, uint64_t idx, unsigned order)
{
    struct view v = view_of(p);
    if (!has_bytes(v, idx) || ((idx + 1) & SECTION_MASK) == 0)
        return false;
    const uint8_t *b = byte_of(v, idx);
    unsigned st = __atomic_load_n(b, __ATOMIC_RELAXED);
    unsigned m = idx + 1 < p->frame_count ? __atomic_load_n(b + 1, __ATOMIC_RELAXED) : 0;
    return (st & ST_CLASS) == ST_USED && (st & ST_VALUE) != CANOPY_OWNER_PMM &&
           (m >= 1 && m <= PMM_MAX_ORDER ? m : 0) == order;
}

/* Whether the block at idx of the given order may be freed; changes nothing. */
static ALWAYS_INLINE enum pmm_status free_check(const struct pmm *p, uint64_t idx, unsigned order)
{
    return free_surely_ok(p, idx, order) ? PMM_OK : free_verdict(p, idx, order);
}

/* The index of phys if it is a tracked frame address, else a status in *st. */
static bool frame_index(const struct pmm *p, uint64_t phys, uint64_t *idx, enum pmm_status *st)
{
    if (!page_is_aligned(phys)) {
        *st = PMM_ERR_INVALID;
        return false;
    }
    uint64_t f = phys >> PAGE_SHIFT;
    if (f < p->base_frame || f - p->base_frame >= p->frame_count) {
        *st = PMM_ERR_NOT_OWNED;
        return false;
    }
    *idx = f - p->base_frame;
    return true;
}

/* Puts frame idx, which may be freed, in c, which has room. */
static ALWAYS_INLINE void cache_put(struct pmm *p, struct pmm_cpu *c, uint64_t idx)
{
    uint8_t *b = byte_of(view_of(p), idx);
    unsigned owner = __atomic_load_n(b, __ATOMIC_RELAXED) & ST_VALUE;
    __atomic_store_n(b, (uint8_t)ST_CACHED, __ATOMIC_RELAXED);
    c->frames[c->count++] = phys_of(p, idx);
    c->free_delta++;
    c->owner_delta[owner]--;
}

/*
 * pmm_cpu_free() of frame idx into c, the rest of it: free_check's whole
 * verdict, and c's oldest batch given back under the lock first when c is
 * full. Out of line, as cache_alloc_slow().
 */
static __attribute__((noinline)) enum pmm_status cache_free_slow(struct pmm *p, struct pmm_cpu *c,
                                                                 uint64_t idx)
{
    enum pmm_status s = free_check(p, idx, 0);
    if (s != PMM_OK)
        return s;
    if (c->count == PMM_CACHE_FRAMES) {
        lock(p);
        fold(p, c);
        cache_spill(p, c, PMM_CACHE_BATCH);
        unlock(p);
    }
    cache_put(p, c, idx);
    return PMM_OK;
}

/*
 * pmm_cpu_free() of a block that does not go into a cache: checked and
 * merged under the lock. Out of line, as cache_alloc_slow().
 */
static __attribute__((noinline)) enum pmm_status free_locked(struct pmm *p, struct pmm_cpu *c,
                                                             uint64_t idx, unsigned order)
{
    lock(p);
    enum pmm_status s = free_check(p, idx, order);
    if (s == PMM_OK) {
        if (c)
            fold(p, c);
        unsigned owner = st_get(view_of(p), idx) & ST_VALUE;
        uint64_t n = 1ull << order;
        p->used_frames -= n;
        p->owner_frames[owner] -= n;
        block_release(p, idx, order);
    }
    unlock(p);
    return s;
}

enum pmm_status pmm_free(struct pmm *p, uint64_t phys, unsigned order)
{
    return pmm_cpu_free(p, 0, phys, order);
}

enum pmm_status pmm_cpu_free(struct pmm *p, unsigned cpu, uint64_t phys, unsigned order)
{
    uint64_t idx;
    enum pmm_status s;
    if (order > PMM_MAX_ORDER || !cpu_ok(cpu))
        return PMM_ERR_INVALID;
    if (!frame_index(p, phys, &idx, &s))
        return s;
    if (!(p->flags & PMM_LISTS))
        return PMM_ERR_NO_LISTS;
    struct pmm_cpu *c = cache_of(p, cpu);
    if (order == 0 && c != NULL) {
        /*
         * The frame is the caller's: no other CPU writes its bytes, so no
         * lock to check them. The path with no call in it: a frame that
         * surely may be freed, and room in the cache.
         */
        if (free_surely_ok(p, idx, 0) && c->count < PMM_CACHE_FRAMES) {
            cache_put(p, c, idx);
            return PMM_OK;
        }
        return cache_free_slow(p, c, idx);
    }
    return free_locked(p, c, idx, order);
}

uint64_t pmm_cpu_drain(struct pmm *p, unsigned cpu)
{
    if (cpu >= PMM_MAX_CPUS)
        return 0;
    struct pmm_cpu *c = &p->cpu[cpu];
    lock(p);
    fold(p, c);
    uint64_t n = c->count;
    cache_spill(p, c, n);
    unlock(p);
    return n;
}

uint64_t pmm_drain(struct pmm *p)
{
    uint64_t n = 0;
    for (unsigned cpu = 0; cpu < PMM_MAX_CPUS; cpu++)
        n += pmm_cpu_drain(p, cpu);
    return n;
}

void pmm_counts(const struct pmm *p, struct pmm_counts *out)
{
    int64_t free_delta = 0, owner_delta[CANOPY_OWNER_COUNT] = {0};
    uint64_t cached = 0;
    for (unsigned cpu = 0; cpu < PMM_MAX_CPUS; cpu++) {
        const struct pmm_cpu *c = &p->cpu[cpu];
        free_delta += c->free_delta;
        cached += c->count;
        for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++)
            owner_delta[o] += c->owner_delta[o];
    }
    out->free = p->free_frames + (uint64_t)free_delta;
    out->used = p->used_frames - (uint64_t)free_delta;
    out->reclaimable = p->reclaimable_frames;
    out->reserved = p->reserved_frames;
    out->cached = cached;
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++)
        out->owner[o] = p->owner_frames[o] + (uint64_t)owner_delta[o];
}

enum pmm_status pmm_alloc_run(struct pmm *p, uint64_t page_count, enum canopy_owner owner,
                              uint64_t *phys)
{
    if (page_count == 0 || page_count > MAX_BLOCK_FRAMES || !owner_ok(owner))
        return PMM_ERR_INVALID;
    if (!(p->flags & PMM_LISTS))
        return PMM_ERR_NO_LISTS;
    if (page_count == 1)
        return pmm_alloc(p, 0, owner, phys);
    unsigned order = 64 - (unsigned)__builtin_clzll(page_count - 1);
    uint64_t block;
    struct pmm_cpu *c = &p->cpu[0];
    lock(p);
    if (!buddy_alloc(p, c, order, owner, &block)) {
        unlock(p);
        return PMM_ERR_NOMEM;
    }
    fold(p, c);
    /* Each frame of the run becomes an order-0 block; the tail goes back. */
    struct view v = view_of(p);
    uint64_t idx = idx_of(p, block);
    st_fill(v, idx, idx + page_count, ST_USED | owner);
    uint64_t a = idx + page_count, b = idx + (1ull << order);
    while (a < b) {
        unsigned o = (unsigned)__builtin_ctzll(a);
        while (b - a < (1ull << o))
            o--;
        p->used_frames -= 1ull << o;
        p->owner_frames[owner] -= 1ull << o;
        block_release(p, a, o);
        a += 1ull << o;
    }
    unlock(p);
    *phys = block;
    return PMM_OK;
}

enum pmm_status pmm_free_run(struct pmm *p, uint64_t phys, uint64_t page_count)
{
    uint64_t idx;
    enum pmm_status s;
    if (page_count == 0)
        return PMM_ERR_INVALID;
    if (!frame_index(p, phys, &idx, &s))
        return s;
    if (page_count > p->frame_count - idx)
        return PMM_ERR_NOT_OWNED;
    if (!(p->flags & PMM_LISTS))
        return PMM_ERR_NO_LISTS;
    lock(p);
    for (uint64_t j = 0; j < page_count; j++) {
        s = free_check(p, idx + j, 0);
        if (s != PMM_OK) {
            unlock(p);
            return s;
        }
    }
    struct view v = view_of(p);
    for (uint64_t j = 0; j < page_count; j++) {
        unsigned owner = st_get(v, idx + j) & ST_VALUE;
        p->used_frames--;
        p->owner_frames[owner]--;
        block_release(p, idx + j, 0);
    }
    unlock(p);
    return PMM_OK;
}

uint64_t pmm_reclaim(struct pmm *p)
{
    if (!(p->flags & PMM_LISTS))
        return 0;
    struct view v = view_of(p);
    uint64_t freed = 0;
    lock(p);
    /* Merges only rewrite free heads, never a reclaimable byte still ahead. */
    for (uint64_t idx = 0; idx < p->frame_count; idx++) {
        if (!has_bytes(v, idx)) {
            idx = next_section(idx) - 1;
            continue;
        }
        if (st_get(v, idx) != ST_RECLAIM)
            continue;
        p->reclaimable_frames--;
        block_release(p, idx, 0);
        freed++;
    }
    unlock(p);
    return freed;
}

bool pmm_is_free(const struct pmm *p, uint64_t phys)
{
    uint64_t idx;
    enum pmm_status s;
    if (!frame_index(p, page_down(phys), &idx, &s))
        return false;
    struct view v = view_of(p);
    unsigned b = st_get(v, block_head(v, idx));
    return (b & ST_CLASS) == ST_FREE || b == ST_CACHED;
}

enum canopy_owner pmm_owner_of(const struct pmm *p, uint64_t phys)
{
    uint64_t idx;
    enum pmm_status s;
    if (!frame_index(p, page_down(phys), &idx, &s))
        return CANOPY_OWNER_NONE;
    struct view v = view_of(p);
    unsigned b = st_get(v, block_head(v, idx));
    if ((b & ST_CLASS) != ST_USED)
        return CANOPY_OWNER_NONE;
    return (enum canopy_owner)(b & ST_VALUE);
}

/* ---- the checker --------------------------------------------------------- */

/*
 * pmm_check runs five steps, each a function that returns false after
 * writing the first problem it finds through corrupt():
 *
 *   check_header    the fixed fields: magic, base alignment, frame count,
 *                   the lock, where the state region lies, the section table
 *   check_frames    every state byte, block by block, tallying the frames
 *                   (check_block for free and used blocks, check_single for
 *                   reserved, reclaimable and cached frames; a section
 *                   without bytes as reserved frames)
 *   check_counters  the recorded counters plus the CPUs' deltas against the tally
 *   check_caches    the CPUs' caches against the cached frames
 *   check_lists     the chunk index (check_index) and each free list against
 *                   the free heads of its order (without lists: every list
 *                   empty and uncounted, the index zero)
 */

typedef unsigned long long ull;

/* Where pmm_check's one line goes. */
struct check_report {
    char *msg;
    size_t msg_size;
};

/* Writes the problem into the report (if it has room) and returns false. */
PRINTF_LIKE(2, 3) static bool corrupt(struct check_report *r, const char *fmt, ...)
{
    if (r->msg_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        fmt_vsnprintf(r->msg, r->msg_size, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* What check_frames counts, for the steps after it. */
struct check_tally {
    uint64_t sa, sb; /* the state array's frames, [sa, sb), as indices */
    uint64_t low;    /* indices below this are under 1 MiB */
    uint64_t free, used, recl, res, cached;
    uint64_t owners[CANOPY_OWNER_COUNT];
    uint64_t heads[PMM_ORDER_COUNT]; /* free blocks of each order */
};

/* The section table: slots dense and in address order, the top section with one. */
static bool check_sections(const struct pmm *p, struct check_report *r)
{
    if (p->section_count != (p->frame_count + PMM_SECTION_FRAMES - 1) >> PMM_SECTION_SHIFT ||
        p->section_slots == 0 || p->section_slots > p->section_count ||
        p->slots_offset < p->section_count * sizeof(uint32_t) || (p->slots_offset & 63))
        return corrupt(r, "pmm: section table of %llu entries, %llu slots at +%llu is misshapen",
                       (ull)p->section_count, (ull)p->section_slots, (ull)p->slots_offset);
    uint64_t top = p->frame_count - ((p->section_count - 1) << PMM_SECTION_SHIFT);
    uint64_t need = p->slots_offset + ((p->section_slots - 1) << PMM_SECTION_SHIFT) + top;
    if (p->index_offset < need || (p->index_offset & 63) ||
        p->index_offset + index_bytes(p->section_slots) > p->state_bytes)
        return corrupt(r,
                       "pmm: %llu slots need %llu bytes of state and an index at +%llu, the "
                       "region has %llu",
                       (ull)p->section_slots, (ull)need, (ull)p->index_offset, (ull)p->state_bytes);
    const uint32_t *table = view_of(p).table;
    uint64_t slots = 0;
    for (uint64_t s = 0; s < p->section_count; s++) {
        if (table[s] == PMM_NO_SECTION)
            continue;
        if (table[s] != slots)
            return corrupt(r, "pmm: section %llu has slot %u, expected %llu", (ull)s, table[s],
                           (ull)slots);
        slots++;
    }
    if (slots != p->section_slots || table[p->section_count - 1] == PMM_NO_SECTION)
        return corrupt(r, "pmm: %llu sections have slots, %llu recorded, the top one %s",
                       (ull)slots, (ull)p->section_slots,
                       table[p->section_count - 1] == PMM_NO_SECTION ? "without" : "with one");
    return true;
}

/* The fixed fields; fills t->sa, t->sb and t->low. */
static bool check_header(const struct pmm *p, struct check_report *r, struct check_tally *t)
{
    if (p->magic != PMM_MAGIC)
        return corrupt(r, "pmm: bad magic 0x%llx", (ull)p->magic);
    if (p->flags & ~PMM_LISTS)
        return corrupt(r, "pmm: unknown flags 0x%llx", (ull)p->flags);
    if (p->base_frame & (MAX_BLOCK_FRAMES - 1))
        return corrupt(r, "pmm: base frame 0x%llx not aligned to the largest block",
                       (ull)p->base_frame);
    if (p->frame_count == 0 || p->frame_count > (UINT64_MAX >> PAGE_SHIFT) - p->base_frame)
        return corrupt(r, "pmm: bad frame count %llu", (ull)p->frame_count);
    if (p->lock != 0)
        return corrupt(r, "pmm: the lock is held (0x%llx)", (ull)p->lock);
    uint64_t sf = p->state >> PAGE_SHIFT;
    if (!page_is_aligned(p->state) || !page_is_aligned(p->state_bytes) || p->state_bytes == 0 ||
        sf < p->base_frame || (p->state_bytes >> PAGE_SHIFT) > p->frame_count ||
        sf - p->base_frame > p->frame_count - (p->state_bytes >> PAGE_SHIFT))
        return corrupt(r, "pmm: state region 0x%llx (%llu bytes) misplaced", (ull)p->state,
                       (ull)p->state_bytes);
    if (!check_sections(p, r))
        return false;
    t->sa = sf - p->base_frame;
    t->sb = t->sa + (p->state_bytes >> PAGE_SHIFT);
    t->low = p->base_frame < LOW_FRAMES ? LOW_FRAMES - p->base_frame : 0;
    return true;
}

/* The free or used block whose head is idx; its order goes to *order. */
static bool check_block(const struct pmm *p, struct view v, uint64_t idx, struct check_report *r,
                        struct check_tally *t, unsigned *order)
{
    unsigned b = st_get(v, idx), o;
    bool is_free = (b & ST_CLASS) == ST_FREE;
    ull at = (ull)phys_of(p, idx);
    if (is_free) {
        o = b & ST_VALUE;
        if (o > PMM_MAX_ORDER)
            return corrupt(r, "pmm: frame 0x%llx: free block of order %u", at, o);
    } else {
        if (!owner_valid(b & ST_VALUE))
            return corrupt(r, "pmm: frame 0x%llx: used with bad owner %u", at, b & ST_VALUE);
        o = used_order(p, v, idx);
    }
    *order = o;
    if (idx & ((1ull << o) - 1))
        return corrupt(r, "pmm: frame 0x%llx: block of order %u misaligned", at, o);
    if ((1ull << o) > p->frame_count - idx)
        return corrupt(r, "pmm: frame 0x%llx: block of order %u runs past the end", at, o);
    if (idx < t->low)
        return corrupt(r, "pmm: frame 0x%llx: below 1 MiB but not reserved", at);
    /* A used block's second byte holds its order (when it is above 0): skip it. */
    for (uint64_t j = !is_free && o > 0 ? 2 : 1; j < (1ull << o); j++)
        if (st_get(v, idx + j) != ST_INTERIOR)
            return corrupt(r, "pmm: frame 0x%llx: byte 0x%x inside the block at 0x%llx",
                           (ull)phys_of(p, idx + j), st_get(v, idx + j), at);
    bool in_state_array = idx < t->sb && idx + (1ull << o) > t->sa;
    if (is_free) {
        uint64_t buddy = idx ^ (1ull << o);
        if (o < PMM_MAX_ORDER && buddy < p->frame_count && st_get(v, buddy) == (ST_FREE | o))
            return corrupt(r, "pmm: frame 0x%llx: free buddies of order %u not merged", at, o);
        if (in_state_array)
            return corrupt(r, "pmm: frame 0x%llx: free block inside the state region", at);
        t->heads[o]++;
        t->free += 1ull << o;
    } else {
        if (in_state_array && (b & ST_VALUE) != CANOPY_OWNER_PMM)
            return corrupt(r, "pmm: frame 0x%llx: state region frame used by owner %u", at,
                           b & ST_VALUE);
        t->owners[b & ST_VALUE] += 1ull << o;
        t->used += 1ull << o;
    }
    return true;
}

/* The reserved, reclaimable or cached frame idx (a block of order 0). */
static bool check_single(const struct pmm *p, struct view v, uint64_t idx, struct check_report *r,
                         struct check_tally *t)
{
    unsigned b = st_get(v, idx);
    ull at = (ull)phys_of(p, idx);
    if (b != ST_RESERVED && b != ST_RECLAIM && b != ST_CACHED)
        return corrupt(r, "pmm: frame 0x%llx: bad state byte 0x%x", at, b);
    if (idx >= t->sa && idx < t->sb)
        return corrupt(r, "pmm: frame 0x%llx: state region frame not owned by the pmm", at);
    if (b == ST_CACHED) {
        if (idx < t->low)
            return corrupt(r, "pmm: frame 0x%llx: cached below 1 MiB", at);
        t->cached++;
        t->free++;
    } else if (b == ST_RECLAIM) {
        if (idx < t->low)
            return corrupt(r, "pmm: frame 0x%llx: reclaimable below 1 MiB", at);
        t->recl++;
    } else {
        t->res++;
    }
    return true;
}

/*
 * Every state byte, a block at a time: each block head, then past its
 * interior; a section without bytes at once, as reserved frames.
 */
static bool check_frames(const struct pmm *p, struct check_report *r, struct check_tally *t)
{
    struct view v = view_of(p);
    for (uint64_t idx = 0; idx < p->frame_count;) {
        if (!has_bytes(v, idx)) {
            uint64_t end = next_section(idx);
            if (idx < t->sb && end > t->sa)
                return corrupt(r, "pmm: frame 0x%llx: state region in a section without bytes",
                               (ull)phys_of(p, idx));
            t->res += (end < p->frame_count ? end : p->frame_count) - idx;
            idx = end;
            continue;
        }
        unsigned b = st_get(v, idx), o = 0;
        switch (b & ST_CLASS) {
        case ST_FREE:
        case ST_USED:
            if (!check_block(p, v, idx, r, t, &o))
                return false;
            break;
        case ST_RESERVED:
            if (!check_single(p, v, idx, r, t))
                return false;
            break;
        default:
            return corrupt(r, "pmm: frame 0x%llx: byte 0x%x where a block should start",
                           (ull)phys_of(p, idx), b);
        }
        idx += 1ull << o;
    }
    return true;
}

/* The recorded counters, each CPU's deltas added, against the tally. */
static bool check_counters(const struct pmm *p, struct check_report *r, const struct check_tally *t)
{
    struct pmm_counts c;
    pmm_counts(p, &c);
    const struct {
        const char *what;
        uint64_t counted, recorded;
    } kinds[] = {
        {"free", t->free, c.free},
        {"used", t->used, c.used},
        {"reclaimable", t->recl, c.reclaimable},
        {"reserved", t->res, c.reserved},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].counted != kinds[i].recorded)
            return corrupt(r, "pmm: %llu %s frames counted, %llu recorded", (ull)kinds[i].counted,
                           kinds[i].what, (ull)kinds[i].recorded);
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++)
        if (t->owners[o] != c.owner[o])
            return corrupt(r, "pmm: owner %u: %llu frames counted, %llu recorded", o,
                           (ull)t->owners[o], (ull)c.owner[o]);
    if (t->owners[CANOPY_OWNER_PMM] < t->sb - t->sa)
        return corrupt(r, "pmm: state region frames not all owned by the pmm");
    return true;
}

/*
 * The caches: as many entries in all as cached bytes, each a cached frame
 * and no two the same (across every CPU), so the entries are exactly the
 * cached frames.
 */
static bool check_caches(const struct pmm *p, struct check_report *r, const struct check_tally *t)
{
    struct view v = view_of(p);
    uint64_t total = 0;
    for (unsigned cpu = 0; cpu < PMM_MAX_CPUS; cpu++) {
        const struct pmm_cpu *c = &p->cpu[cpu];
        if (c->count > PMM_CACHE_FRAMES)
            return corrupt(r, "pmm: cpu %u: %llu frames cached, at most %u", cpu, (ull)c->count,
                           PMM_CACHE_FRAMES);
        total += c->count;
        for (uint64_t i = 0; i < c->count; i++) {
            uint64_t node = c->frames[i];
            uint64_t f = node >> PAGE_SHIFT, idx = f - p->base_frame;
            if (!page_is_aligned(node) || f < p->base_frame || idx >= p->frame_count ||
                st_get(v, idx) != ST_CACHED)
                return corrupt(r, "pmm: cpu %u cache: 0x%llx is not a cached frame", cpu,
                               (ull)node);
            for (unsigned c2 = 0; c2 <= cpu; c2++)
                for (uint64_t j = 0; j < (c2 == cpu ? i : p->cpu[c2].count); j++)
                    if (p->cpu[c2].frames[j] == node)
                        return corrupt(r, "pmm: cpu %u cache: 0x%llx listed twice", cpu, (ull)node);
        }
    }
    if (total != t->cached)
        return corrupt(r, "pmm: %llu frames cached, %llu in the caches", (ull)t->cached,
                       (ull)total);
    return true;
}

/* Without lists: nothing listed or indexed, nothing counted as listed, nothing cached, no deltas.
 */
static bool check_no_lists(const struct pmm *p, struct check_report *r)
{
    const uint8_t *ix = (const uint8_t *)index_of(p).slot;
    for (uint64_t i = 0; i < index_bytes(p->section_slots); i++)
        if (ix[i] != 0)
            return corrupt(r, "pmm: no free lists, but byte %llu of the chunk index is 0x%x",
                           (ull)i, ix[i]);
    if (p->free_orders != 0)
        return corrupt(r, "pmm: no free lists, but the non-empty mask is 0x%llx",
                       (ull)p->free_orders);
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++)
        if (p->free_head[k] != PMM_NIL || p->free_blocks[k] != 0)
            return corrupt(r, "pmm: no free lists, but order %u lists 0x%llx (%llu blocks)", k,
                           (ull)p->free_head[k], (ull)p->free_blocks[k]);
    for (unsigned cpu = 0; cpu < PMM_MAX_CPUS; cpu++) {
        const struct pmm_cpu *c = &p->cpu[cpu];
        bool deltas = c->free_delta != 0;
        for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++)
            deltas |= c->owner_delta[o] != 0;
        if (c->count != 0 || deltas)
            return corrupt(r, "pmm: no free lists, but cpu %u caches %llu frames%s", cpu,
                           (ull)c->count, deltas ? " and has counter deltas" : "");
    }
    return true;
}

/*
 * The chunk index against the state bytes (check_frames has shown that every
 * byte with a free code is a block head): each slot names its section, each
 * chunk's counts are its free heads of each order, each mask bit says its
 * count is not 0, each summary bit says its mask is not 0, and the counts add
 * up to free_blocks and to the tally.
 */
static bool check_index(const struct pmm *p, struct check_report *r, const struct check_tally *t)
{
    struct view v = view_of(p);
    struct index_view x = index_of(p);
    uint64_t total[PMM_INDEX_ORDER] = {0};
    for (uint64_t sec = 0; sec < p->section_count; sec++) {
        uint32_t slot = v.table[sec];
        if (slot == PMM_NO_SECTION)
            continue;
        const struct slot_index *si = &x.slot[slot];
        if (si->section != sec)
            return corrupt(r, "pmm: index slot %u names section %llu, the table %llu", slot,
                           (ull)si->section, (ull)sec);
        for (unsigned c = 0; c < SECTION_CHUNKS; c++) {
            unsigned count[PMM_INDEX_ORDER] = {0};
            uint64_t a = (sec << PMM_SECTION_SHIFT) + ((uint64_t)c << PMM_INDEX_ORDER), words = 0;
            for (uint64_t j = a; j < a + CHUNK_FRAMES && j < p->frame_count; j++) {
                unsigned b = st_get(v, j);
                if ((b & ST_CLASS) == ST_FREE && (b & ST_VALUE) < PMM_INDEX_ORDER) {
                    count[b & ST_VALUE]++;
                    words |= 1ull << ((j - a) / 8);
                }
            }
            const struct chunk_index *ci = &si->chunk[c];
            if (ci->counts >> COUNT_SHIFT[PMM_INDEX_ORDER] || ci->words != words)
                return corrupt(r,
                               "pmm: chunk 0x%llx: index counts 0x%llx, word mask 0x%llx; the "
                               "bytes give word mask 0x%llx",
                               (ull)phys_of(p, a), (ull)ci->counts, (ull)ci->words, (ull)words);
            for (unsigned k = 0; k < PMM_INDEX_ORDER; k++) {
                if (ix_count(ci, k) != count[k] || ((si->has[k] >> c) & 1) != (count[k] != 0))
                    return corrupt(r,
                                   "pmm: chunk 0x%llx: index has %u free blocks of order %u "
                                   "(mask bit %u), the bytes %u",
                                   (ull)phys_of(p, a), ix_count(ci, k), k,
                                   (unsigned)((si->has[k] >> c) & 1), count[k]);
                total[k] += count[k];
            }
        }
    }
    for (unsigned k = 0; k < PMM_INDEX_ORDER; k++) {
        for (uint64_t w = 0; w < x.words; w++) {
            uint64_t want = 0;
            for (uint64_t b = 0; b < 64 && w * 64 + b < p->section_slots; b++)
                if (x.slot[w * 64 + b].has[k] != 0)
                    want |= 1ull << b;
            if (x.summary[k * x.words + w] != want)
                return corrupt(r,
                               "pmm: order %u: summary word %llu is 0x%llx, the masks say 0x%llx",
                               k, (ull)w, (ull)x.summary[k * x.words + w], (ull)want);
        }
        if (p->free_head[k] != PMM_NIL)
            return corrupt(r, "pmm: order %u is indexed, but its list holds 0x%llx", k,
                           (ull)p->free_head[k]);
        uint64_t from = p->scan_from[k];
        if (from != PMM_NIL) {
            uint64_t base = from & ~(CHUNK_FRAMES - 1);
            bool bad = from >= p->frame_count || (from & ((1ull << k) - 1)) || !has_bytes(v, from);
            for (uint64_t j = base; !bad && j < from; j++)
                bad = st_get(v, j) == (ST_FREE | k);
            if (bad)
                return corrupt(
                    r, "pmm: order %u: a scan would start at frame 0x%llx, past a free block", k,
                    (ull)from);
        }
        if (total[k] != p->free_blocks[k] || total[k] != t->heads[k] ||
            ((p->free_orders >> k) & 1) != (total[k] != 0))
            return corrupt(r,
                           "pmm: order %u: %llu blocks indexed, %llu recorded, %llu free (bit %u)",
                           k, (ull)total[k], (ull)p->free_blocks[k], (ull)t->heads[k],
                           (unsigned)((p->free_orders >> k) & 1));
    }
    return true;
}

/* Lists: each node a free head of its order (checked before it is read). */
static bool check_lists(const struct pmm *p, struct check_report *r, const struct check_tally *t)
{
    if (!(p->flags & PMM_LISTS))
        return check_no_lists(p, r);
    if (!check_index(p, r, t))
        return false;
    struct view v = view_of(p);
    for (unsigned k = PMM_INDEX_ORDER; k < PMM_ORDER_COUNT; k++) {
        if (((p->free_orders >> k) & 1) != (p->free_head[k] != PMM_NIL))
            return corrupt(r, "pmm: order %u: non-empty bit disagrees with the list", k);
        uint64_t steps = 0, prev = PMM_NIL;
        for (uint64_t node = p->free_head[k]; node != PMM_NIL; node = link_of(p, node)->next) {
            uint64_t f = node >> PAGE_SHIFT, idx = f - p->base_frame;
            if (!page_is_aligned(node) || f < p->base_frame || idx >= p->frame_count ||
                st_get(v, idx) != (ST_FREE | k))
                return corrupt(r, "pmm: order %u list: 0x%llx is not a free block of that order", k,
                               (ull)node);
            if (prev != PMM_NIL && link_of(p, node)->prev != prev)
                return corrupt(r, "pmm: order %u list: 0x%llx has a bad back link", k, (ull)node);
            if (++steps > p->free_blocks[k])
                return corrupt(r, "pmm: order %u list: longer than its %llu blocks", k,
                               (ull)p->free_blocks[k]);
            prev = node;
        }
        if (steps != p->free_blocks[k])
            return corrupt(r, "pmm: order %u list: %llu blocks listed, %llu recorded", k,
                           (ull)steps, (ull)p->free_blocks[k]);
        if (steps != t->heads[k])
            return corrupt(r, "pmm: order %u: %llu blocks listed, %llu free in the state array", k,
                           (ull)steps, (ull)t->heads[k]);
    }
    return true;
}

enum pmm_status pmm_check(const struct pmm *p, char *msg, size_t msg_size)
{
    struct check_report r = {.msg = msg, .msg_size = msg_size};
    struct check_tally t = {0};
    if (msg_size > 0)
        msg[0] = '\0';
    /* Each step relies on the ones before it (the header before any state byte is read). */
    if (!check_header(p, &r, &t) || !check_frames(p, &r, &t) || !check_counters(p, &r, &t) ||
        !check_caches(p, &r, &t) || !check_lists(p, &r, &t))
        return PMM_ERR_CORRUPT;
    return PMM_OK;
}
