/*
 * pmm: a binary buddy allocator over 4 KiB frames with one state byte per
 * frame and free lists threaded through the free blocks themselves.
 *
 * Stage 1 creates it from the normalised memory map after ExitBootServices
 * without free lists (pmm_create: only the state array, which it claimed
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
 *     0x60            reserved frame
 *     0x61            reclaimable frame
 *     0x62            free frame waiting in the order-0 cache
 *
 * Invariant: a byte holds a head code exactly when its frame is a block head.
 * So pmm_free() proves in O(1) that an address is the head of a used block
 * of the order given (the double free, the free of an interior frame, a
 * wrong order and a reserved frame all fail before anything changes), and a
 * buddy is free and whole exactly when its head byte is 0x20 | k. Allocating
 * or freeing an order-k block writes O(k) bytes: split-off halves get a head,
 * merged buddies lose theirs; interiors are already interior.
 *
 * Free lists: one doubly-linked list per order, the links (physical
 * addresses) in the first 16 bytes of each free block, reached through
 * virt_offset. They exist only once built (PMM_LISTS): until then every
 * head is PMM_NIL, every count 0, and allocating or freeing is refused, so
 * nothing but the state array has been written. A list head's prev link is stale by design (nothing
 * reads it), so popping touches only the block popped. Bit k of free_orders says list k is not
 * empty, so an allocation finds its order with one bit scan.
 *
 * The order-0 cache: a freed single frame is pushed on a LIFO stack (an
 * array of addresses in struct pmm; the frame's byte becomes 0x62) instead of
 * merging, up to PMM_CACHE_FRAMES; an order-0 allocation pops it first. A
 * free-then-allocate pattern (page tables, stacks, the churn benchmark) then
 * never splits or merges and reads or writes no frame's memory, only state
 * bytes: the frame freed is likely cold in the cache and the TLB, and a link
 * stored inside it cost a miss on the free and again on the allocation. The
 * cache is drained, with full merging, when a request cannot be met
 * otherwise, so it never causes a failure.
 */
#include <pmm/pmm.h>

#include <stdarg.h>

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

_Static_assert(PMM_MAX_ORDER <= ST_VALUE, "an order must fit in the state byte");
_Static_assert(PMM_MAX_ORDER < 64, "free_orders is a 64-bit mask");
_Static_assert(CANOPY_OWNER_COUNT <= 16, "an owner must fit in 4 bits");

/* The links at the start of every free block. */
struct free_link {
    uint64_t next; /* physical address of the next block, or PMM_NIL */
    uint64_t prev; /* meaningful only when the block is not the list head */
};

typedef struct canopy_mem_range range_t;

static inline uint8_t *state_of(const struct pmm *p)
{
    return (uint8_t *)(uintptr_t)(p->state + p->virt_offset);
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

/* ---- free lists ---------------------------------------------------------- */

static inline void list_push(struct pmm *p, uint64_t phys, unsigned k)
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

static inline uint64_t list_pop(struct pmm *p, unsigned k)
{
    uint64_t phys = p->free_head[k];
    uint64_t next = link_of(p, phys)->next;
    p->free_head[k] = next;
    if (next == PMM_NIL)
        p->free_orders &= ~(1ull << k);
    p->free_blocks[k]--;
    return phys;
}

static inline void list_unlink(struct pmm *p, uint64_t phys, unsigned k)
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

/* ---- blocks -------------------------------------------------------------- */

/* The order of the used block whose head is idx. */
static inline unsigned used_order(const struct pmm *p, const uint8_t *st, uint64_t idx)
{
    if (idx + 1 < p->frame_count) {
        unsigned m = st[idx + 1];
        if (m >= 1 && m <= PMM_MAX_ORDER)
            return m;
    }
    return 0;
}

/* The order of the block whose head is idx (whose byte is a head code). */
static unsigned head_order(const struct pmm *p, const uint8_t *st, uint64_t idx)
{
    unsigned b = st[idx];
    switch (b & ST_CLASS) {
    case ST_FREE:
        return b & ST_VALUE;
    case ST_USED:
        return used_order(p, st, idx);
    default:
        return 0;
    }
}

/*
 * The head of the block holding frame idx: the first of idx aligned down to
 * 2^0, 2^1, ... whose byte is a head code (those in between are interior).
 */
static uint64_t block_head(const struct pmm *p, const uint8_t *st, uint64_t idx)
{
    for (unsigned m = 0; m <= PMM_MAX_ORDER; m++) {
        uint64_t c = idx & ~((1ull << m) - 1);
        if ((st[c] & ST_CLASS) != ST_INTERIOR)
            return c;
    }
    return idx & ~(MAX_BLOCK_FRAMES - 1); /* unreachable while the invariant holds */
}

/*
 * Hands out the block at phys, of order m, already off its list: splits it
 * down to `order`, giving the upper halves back, and marks the rest used.
 */
static inline void block_take(struct pmm *p, uint64_t phys, unsigned m, unsigned order,
                              unsigned owner)
{
    uint8_t *st = state_of(p);
    uint64_t idx = idx_of(p, phys);
    while (m > order) {
        m--;
        st[idx + (1ull << m)] = (uint8_t)(ST_FREE | m);
        list_push(p, phys + (PAGE_SIZE << m), m);
    }
    st[idx] = (uint8_t)(ST_USED | owner);
    if (order)
        st[idx + 1] = (uint8_t)order;
    uint64_t n = 1ull << order;
    p->free_frames -= n;
    p->used_frames += n;
    p->owner_frames[owner] += n;
}

/*
 * Makes the block at idx of order k free, merging it with its buddy while the
 * buddy is a whole free block of the same order. The caller has taken the
 * block out of the used or reclaimable counts.
 */
static inline void block_release(struct pmm *p, uint64_t idx, unsigned k)
{
    uint8_t *st = state_of(p);
    p->free_frames += 1ull << k;
    if (k)
        st[idx + 1] = ST_INTERIOR;
    st[idx] = ST_INTERIOR;
    while (k < PMM_MAX_ORDER) {
        uint64_t buddy = idx ^ (1ull << k);
        if (buddy >= p->frame_count || st[buddy] != (ST_FREE | k))
            break;
        list_unlink(p, phys_of(p, buddy), k);
        st[buddy] = ST_INTERIOR;
        idx &= ~(1ull << k);
        k++;
    }
    st[idx] = (uint8_t)(ST_FREE | k);
    list_push(p, phys_of(p, idx), k);
}

/*
 * Tiles [a, b) (indices) with the largest aligned blocks, free or used by
 * owner. Free blocks get no list links here (pmm_build_lists threads them), so
 * tiling writes state bytes only.
 */
static void tile(struct pmm *p, uint64_t a, uint64_t b, unsigned owner)
{
    uint8_t *st = state_of(p);
    while (a < b) {
        unsigned o = a ? (unsigned)__builtin_ctzll(a) : PMM_MAX_ORDER;
        if (o > PMM_MAX_ORDER)
            o = PMM_MAX_ORDER;
        while (b - a < (1ull << o))
            o--;
        uint64_t n = 1ull << o;
        __builtin_memset(st + a + 1, ST_INTERIOR, n - 1);
        if (owner == CANOPY_OWNER_NONE) {
            st[a] = (uint8_t)(ST_FREE | o);
            p->free_frames += n;
        } else {
            st[a] = (uint8_t)(ST_USED | owner);
            if (o)
                st[a + 1] = (uint8_t)o;
            p->used_frames += n;
            p->owner_frames[owner] += n;
        }
        a += n;
    }
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

/* The frames a PMM over r[0..n) below `reach` tracks: [*base, *base + *count). */
static enum pmm_status layout(const range_t *r, uint32_t n, uint64_t reach, uint64_t *base,
                              uint64_t *count)
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
    *base = lo & ~(MAX_BLOCK_FRAMES - 1);
    *count = hi - *base;
    return PMM_OK;
}

uint64_t pmm_state_bytes(const struct canopy_mem_range *r, uint32_t n, uint64_t phys_limit)
{
    uint64_t base, count;
    if (layout(r, n, phys_limit >> PAGE_SHIFT, &base, &count) != PMM_OK)
        return 0;
    return pages_for_bytes(count) << PAGE_SHIFT;
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
 * Types every tracked frame in the state array at p->state (p's header is
 * set): reserved, reclaimable, free blocks (without lists) and the array
 * itself, whose frames [sa, sb) (indices) are taken out of whatever range
 * holds them.
 */
static void build_state(struct pmm *p, const range_t *r, uint32_t n, uint64_t reach)
{
    uint64_t base = p->base_frame, count = p->frame_count;
    uint64_t sa = (p->state >> PAGE_SHIFT) - base, sb = sa + (p->state_bytes >> PAGE_SHIFT);
    uint8_t *st = state_of(p);
    __builtin_memset(st, ST_RESERVED, count);
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
        /* A run minus the state array: at most two pieces. */
        uint64_t pieces[2][2] = {{a, b < sa ? b : sa}, {a > sb ? a : sb, b}};
        for (unsigned k = 0; k < 2; k++) {
            uint64_t pa = pieces[k][0], pb = pieces[k][1];
            if (pa >= pb)
                continue;
            if (r[i].type == CANOPY_MEM_USABLE) {
                tile(p, pa, pb, CANOPY_OWNER_NONE);
            } else {
                __builtin_memset(st + pa, ST_RECLAIM, pb - pa);
                p->reclaimable_frames += pb - pa;
            }
        }
    }
    tile(p, sa, sb, CANOPY_OWNER_PMM);
    p->reserved_frames = count - p->free_frames - p->used_frames - p->reclaimable_frames;
}

/* An empty header: no lists, no counts, not valid (no magic). */
static void header_clear(struct pmm *p)
{
    __builtin_memset(p, 0, sizeof(*p));
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++)
        p->free_head[k] = PMM_NIL;
}

enum pmm_status pmm_create(struct pmm *p, const struct canopy_mem_range *r, uint32_t n,
                           uint64_t virt_offset, uint64_t phys_limit, uint64_t state_phys,
                           uint64_t state_capacity)
{
    header_clear(p);
    const uint64_t reach = phys_limit >> PAGE_SHIFT; /* the first frame not tracked */
    uint64_t base, count;
    enum pmm_status s = layout(r, n, reach, &base, &count);
    if (s != PMM_OK)
        return s;
    uint64_t state_pages = pages_for_bytes(count);
    uint64_t sf = state_phys >> PAGE_SHIFT;
    if (!page_is_aligned(state_phys) || sf < LOW_FRAMES || sf > reach || reach - sf < state_pages)
        return PMM_ERR_INVALID;
    if (state_capacity < (state_pages << PAGE_SHIFT))
        return PMM_ERR_NO_SPACE;
    if (!frames_are_ram(r, n, sf, sf + state_pages))
        return PMM_ERR_INVALID;

    p->virt_offset = virt_offset;
    p->base_frame = base;
    p->frame_count = count;
    p->state = state_phys;
    p->state_bytes = state_pages << PAGE_SHIFT;
    build_state(p, r, n, reach);
    p->magic = PMM_MAGIC;
    return PMM_OK;
}

enum pmm_status pmm_init_below(struct pmm *p, const struct canopy_mem_range *r, uint32_t n,
                               uint64_t virt_offset, uint64_t phys_limit)
{
    header_clear(p);
    const uint64_t reach = phys_limit >> PAGE_SHIFT;
    uint64_t base, count;
    enum pmm_status s = layout(r, n, reach, &base, &count);
    if (s != PMM_OK)
        return s;
    uint64_t state_pages = pages_for_bytes(count);

    /* The state array goes at the top of the highest usable run that holds it. */
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
    if (p->flags & PMM_LISTS)
        return PMM_ERR_INVALID;
    p->flags |= PMM_LISTS;
    const uint8_t *st = state_of(p);
    for (uint64_t idx = 0; idx < p->frame_count;) {
        unsigned o = head_order(p, st, idx);
        if ((st[idx] & ST_CLASS) == ST_FREE)
            list_push(p, phys_of(p, idx), o);
        idx += 1ull << o;
    }
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
    uint8_t *st = state_of(p);
    /* Reclaimable frames are order-0 blocks, never below 1 MiB: each one is a whole block. */
    for (uint64_t j = 0; j < page_count; j++)
        if (st[idx + j] != ST_RECLAIM)
            return PMM_ERR_NOT_OWNED;
    __builtin_memset(st + idx, ST_USED | owner, page_count);
    p->reclaimable_frames -= page_count;
    p->used_frames += page_count;
    p->owner_frames[owner] += page_count;
    return PMM_OK;
}

void pmm_rebase(struct pmm *pmm, uint64_t virt_offset)
{
    pmm->virt_offset = virt_offset;
}

enum pmm_status pmm_alloc(struct pmm *p, unsigned order, enum canopy_owner owner, uint64_t *phys)
{
    if (order > PMM_MAX_ORDER || !owner_ok(owner))
        return PMM_ERR_INVALID;
    if (!(p->flags & PMM_LISTS))
        return PMM_ERR_NO_LISTS;
    if (order == 0 && p->cache_frames > 0) {
        uint64_t phys0 = p->cache[--p->cache_frames];
        state_of(p)[idx_of(p, phys0)] = (uint8_t)(ST_USED | owner);
        p->free_frames--;
        p->used_frames++;
        p->owner_frames[owner]++;
        *phys = phys0;
        return PMM_OK;
    }
    uint64_t avail = p->free_orders >> order;
    if (avail == 0) {
        if (p->cache_frames == 0 || (pmm_drain(p), avail = p->free_orders >> order) == 0)
            return PMM_ERR_NOMEM;
    }
    unsigned m = order + (unsigned)__builtin_ctzll(avail);
    uint64_t block = list_pop(p, m);
    block_take(p, block, m, order, owner);
    *phys = block;
    return PMM_OK;
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
    if (alloc_below(p, order, limit, owner, phys))
        return PMM_OK;
    /* Cached frames are free but unmerged: merge them and look once more. */
    if (p->cache_frames > 0 && pmm_drain(p) > 0 && alloc_below(p, order, limit, owner, phys))
        return PMM_OK;
    return PMM_ERR_NOMEM;
}

/* The search behind pmm_alloc_below over the buddy lists; limit is a frame index. */
static bool alloc_below(struct pmm *p, unsigned order, uint64_t limit, unsigned owner,
                        uint64_t *phys)
{
    uint64_t need = 1ull << order;

    /* Cheap first: a list head whose lowest 2^order frames lie below the limit. */
    for (uint64_t avail = p->free_orders >> order; avail; avail &= avail - 1) {
        unsigned m = order + (unsigned)__builtin_ctzll(avail);
        uint64_t head = p->free_head[m];
        if (idx_of(p, head) + need <= limit) {
            list_pop(p, m);
            block_take(p, head, m, order, owner);
            *phys = head;
            return true;
        }
    }

    /* Then walk the blocks from the bottom (reads state bytes only). */
    const uint8_t *st = state_of(p);
    for (uint64_t idx = 0; idx + need <= limit;) {
        unsigned b = st[idx], o = head_order(p, st, idx);
        if ((b & ST_CLASS) == ST_FREE && o >= order) {
            uint64_t block = phys_of(p, idx);
            list_unlink(p, block, o);
            block_take(p, block, o, order, owner);
            *phys = block;
            return true;
        }
        idx += 1ull << o;
    }
    return false;
}

/* Whether the block at idx of the given order may be freed; changes nothing. */
static enum pmm_status free_check(const struct pmm *p, uint64_t idx, unsigned order)
{
    const uint8_t *st = state_of(p);
    unsigned b = st[idx];
    switch (b & ST_CLASS) {
    case ST_FREE:
        return PMM_ERR_DOUBLE_FREE;
    case ST_USED:
        if ((b & ST_VALUE) == CANOPY_OWNER_PMM)
            return PMM_ERR_NOT_OWNED; /* the state array is never given back */
        return used_order(p, st, idx) == order ? PMM_OK : PMM_ERR_INVALID;
    case ST_RESERVED:
        return b == ST_CACHED ? PMM_ERR_DOUBLE_FREE : PMM_ERR_NOT_OWNED;
    default: /* inside a block: of a free one is a double free, else a bad address */
        b = st[block_head(p, st, idx)];
        if ((b & ST_CLASS) == ST_FREE)
            return PMM_ERR_DOUBLE_FREE;
        return b == (ST_USED | CANOPY_OWNER_PMM) ? PMM_ERR_NOT_OWNED : PMM_ERR_INVALID;
    }
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

enum pmm_status pmm_free(struct pmm *p, uint64_t phys, unsigned order)
{
    uint64_t idx;
    enum pmm_status s;
    if (order > PMM_MAX_ORDER)
        return PMM_ERR_INVALID;
    if (!frame_index(p, phys, &idx, &s))
        return s;
    if (!(p->flags & PMM_LISTS))
        return PMM_ERR_NO_LISTS;
    s = free_check(p, idx, order);
    if (s != PMM_OK)
        return s;
    uint8_t *st = state_of(p);
    unsigned owner = st[idx] & ST_VALUE;
    uint64_t n = 1ull << order;
    p->used_frames -= n;
    p->owner_frames[owner] -= n;
    if (order == 0 && p->cache_frames < PMM_CACHE_FRAMES) {
        st[idx] = ST_CACHED;
        p->cache[p->cache_frames++] = phys;
        p->free_frames++;
        return PMM_OK;
    }
    block_release(p, idx, order);
    return PMM_OK;
}

uint64_t pmm_drain(struct pmm *p)
{
    uint64_t n = 0;
    while (p->cache_frames > 0) {
        uint64_t phys = p->cache[--p->cache_frames];
        p->free_frames--; /* block_release counts it again */
        block_release(p, idx_of(p, phys), 0);
        n++;
    }
    return n;
}

enum pmm_status pmm_alloc_run(struct pmm *p, uint64_t page_count, enum canopy_owner owner,
                              uint64_t *phys)
{
    if (page_count == 0 || page_count > MAX_BLOCK_FRAMES || !owner_ok(owner))
        return PMM_ERR_INVALID;
    if (!(p->flags & PMM_LISTS))
        return PMM_ERR_NO_LISTS;
    unsigned order = page_count == 1 ? 0 : 64 - (unsigned)__builtin_clzll(page_count - 1);
    uint64_t block;
    enum pmm_status s = pmm_alloc(p, order, owner, &block);
    if (s != PMM_OK)
        return s;
    /* Each frame of the run becomes an order-0 block; the tail goes back. */
    uint8_t *st = state_of(p);
    uint64_t idx = idx_of(p, block);
    __builtin_memset(st + idx, ST_USED | owner, page_count);
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
    for (uint64_t j = 0; j < page_count; j++) {
        s = free_check(p, idx + j, 0);
        if (s != PMM_OK)
            return s;
    }
    uint8_t *st = state_of(p);
    for (uint64_t j = 0; j < page_count; j++) {
        unsigned owner = st[idx + j] & ST_VALUE;
        p->used_frames--;
        p->owner_frames[owner]--;
        block_release(p, idx + j, 0);
    }
    return PMM_OK;
}

uint64_t pmm_reclaim(struct pmm *p)
{
    if (!(p->flags & PMM_LISTS))
        return 0;
    uint8_t *st = state_of(p);
    uint64_t freed = 0;
    /* Merges only rewrite free heads, never a reclaimable byte still ahead. */
    for (uint64_t idx = 0; idx < p->frame_count; idx++) {
        if (st[idx] != ST_RECLAIM)
            continue;
        p->reclaimable_frames--;
        block_release(p, idx, 0);
        freed++;
    }
    return freed;
}

bool pmm_is_free(const struct pmm *p, uint64_t phys)
{
    uint64_t idx;
    enum pmm_status s;
    if (!frame_index(p, page_down(phys), &idx, &s))
        return false;
    const uint8_t *st = state_of(p);
    unsigned b = st[block_head(p, st, idx)];
    return (b & ST_CLASS) == ST_FREE || b == ST_CACHED;
}

enum canopy_owner pmm_owner_of(const struct pmm *p, uint64_t phys)
{
    uint64_t idx;
    enum pmm_status s;
    if (!frame_index(p, page_down(phys), &idx, &s))
        return CANOPY_OWNER_NONE;
    const uint8_t *st = state_of(p);
    unsigned b = st[block_head(p, st, idx)];
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
 *                   where the state array lies
 *   check_frames    every state byte, block by block, tallying the frames
 *                   (check_block for free and used blocks, check_single for
 *                   reserved, reclaimable and cached frames)
 *   check_counters  the recorded counters against the tally
 *   check_cache     the order-0 cache against the cached frames
 *   check_lists     each free list against the free heads of its order
 *                   (without lists: every list empty and uncounted)
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
    uint64_t sf = p->state >> PAGE_SHIFT;
    if (!page_is_aligned(p->state) || !page_is_aligned(p->state_bytes) ||
        p->state_bytes < p->frame_count || sf < p->base_frame ||
        sf - p->base_frame > p->frame_count - (p->state_bytes >> PAGE_SHIFT))
        return corrupt(r, "pmm: state array 0x%llx (%llu bytes) misplaced", (ull)p->state,
                       (ull)p->state_bytes);
    t->sa = sf - p->base_frame;
    t->sb = t->sa + (p->state_bytes >> PAGE_SHIFT);
    t->low = p->base_frame < LOW_FRAMES ? LOW_FRAMES - p->base_frame : 0;
    return true;
}

/* The free or used block whose head is idx; its order goes to *order. */
static bool check_block(const struct pmm *p, const uint8_t *st, uint64_t idx,
                        struct check_report *r, struct check_tally *t, unsigned *order)
{
    unsigned b = st[idx], o;
    bool is_free = (b & ST_CLASS) == ST_FREE;
    ull at = (ull)phys_of(p, idx);
    if (is_free) {
        o = b & ST_VALUE;
        if (o > PMM_MAX_ORDER)
            return corrupt(r, "pmm: frame 0x%llx: free block of order %u", at, o);
    } else {
        if (!owner_valid(b & ST_VALUE))
            return corrupt(r, "pmm: frame 0x%llx: used with bad owner %u", at, b & ST_VALUE);
        o = used_order(p, st, idx);
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
        if (st[idx + j] != ST_INTERIOR)
            return corrupt(r, "pmm: frame 0x%llx: byte 0x%x inside the block at 0x%llx",
                           (ull)phys_of(p, idx + j), st[idx + j], at);
    bool in_state_array = idx < t->sb && idx + (1ull << o) > t->sa;
    if (is_free) {
        uint64_t buddy = idx ^ (1ull << o);
        if (o < PMM_MAX_ORDER && buddy < p->frame_count && st[buddy] == (ST_FREE | o))
            return corrupt(r, "pmm: frame 0x%llx: free buddies of order %u not merged", at, o);
        if (in_state_array)
            return corrupt(r, "pmm: frame 0x%llx: free block inside the state array", at);
        t->heads[o]++;
        t->free += 1ull << o;
    } else {
        if (in_state_array && (b & ST_VALUE) != CANOPY_OWNER_PMM)
            return corrupt(r, "pmm: frame 0x%llx: state array frame used by owner %u", at,
                           b & ST_VALUE);
        t->owners[b & ST_VALUE] += 1ull << o;
        t->used += 1ull << o;
    }
    return true;
}

/* The reserved, reclaimable or cached frame idx (a block of order 0). */
static bool check_single(const struct pmm *p, const uint8_t *st, uint64_t idx,
                         struct check_report *r, struct check_tally *t)
{
    unsigned b = st[idx];
    ull at = (ull)phys_of(p, idx);
    if (b != ST_RESERVED && b != ST_RECLAIM && b != ST_CACHED)
        return corrupt(r, "pmm: frame 0x%llx: bad state byte 0x%x", at, b);
    if (idx >= t->sa && idx < t->sb)
        return corrupt(r, "pmm: frame 0x%llx: state array frame not owned by the pmm", at);
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

/* Every state byte, a block at a time: each block head, then past its interior. */
static bool check_frames(const struct pmm *p, struct check_report *r, struct check_tally *t)
{
    const uint8_t *st = state_of(p);
    for (uint64_t idx = 0; idx < p->frame_count;) {
        unsigned b = st[idx], o = 0;
        switch (b & ST_CLASS) {
        case ST_FREE:
        case ST_USED:
            if (!check_block(p, st, idx, r, t, &o))
                return false;
            break;
        case ST_RESERVED:
            if (!check_single(p, st, idx, r, t))
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

/* The recorded counters against the tally. */
static bool check_counters(const struct pmm *p, struct check_report *r, const struct check_tally *t)
{
    const struct {
        const char *what;
        uint64_t counted, recorded;
    } kinds[] = {
        {"free", t->free, p->free_frames},
        {"used", t->used, p->used_frames},
        {"reclaimable", t->recl, p->reclaimable_frames},
        {"reserved", t->res, p->reserved_frames},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].counted != kinds[i].recorded)
            return corrupt(r, "pmm: %llu %s frames counted, %llu recorded", (ull)kinds[i].counted,
                           kinds[i].what, (ull)kinds[i].recorded);
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++)
        if (t->owners[o] != p->owner_frames[o])
            return corrupt(r, "pmm: owner %u: %llu frames counted, %llu recorded", o,
                           (ull)t->owners[o], (ull)p->owner_frames[o]);
    if (t->owners[CANOPY_OWNER_PMM] < t->sb - t->sa)
        return corrupt(r, "pmm: state array frames not all owned by the pmm");
    return true;
}

/*
 * The cache: as many entries as cached bytes, each a cached frame and no
 * two the same, so the entries are exactly the cached frames.
 */
static bool check_cache(const struct pmm *p, struct check_report *r, const struct check_tally *t)
{
    const uint8_t *st = state_of(p);
    if (p->cache_frames > PMM_CACHE_FRAMES || p->cache_frames != t->cached)
        return corrupt(r, "pmm: %llu frames cached, %llu recorded (at most %u)", (ull)t->cached,
                       (ull)p->cache_frames, PMM_CACHE_FRAMES);
    for (uint64_t i = 0; i < p->cache_frames; i++) {
        uint64_t node = p->cache[i];
        uint64_t f = node >> PAGE_SHIFT, idx = f - p->base_frame;
        if (!page_is_aligned(node) || f < p->base_frame || idx >= p->frame_count ||
            st[idx] != ST_CACHED)
            return corrupt(r, "pmm: cache: 0x%llx is not a cached frame", (ull)node);
        for (uint64_t j = 0; j < i; j++)
            if (p->cache[j] == node)
                return corrupt(r, "pmm: cache: 0x%llx listed twice", (ull)node);
    }
    return true;
}

/* Without lists: nothing listed, nothing counted as listed, nothing cached. */
static bool check_no_lists(const struct pmm *p, struct check_report *r)
{
    if (p->free_orders != 0 || p->cache_frames != 0)
        return corrupt(r,
                       "pmm: no free lists, but the non-empty mask is 0x%llx and %llu frames "
                       "are cached",
                       (ull)p->free_orders, (ull)p->cache_frames);
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++)
        if (p->free_head[k] != PMM_NIL || p->free_blocks[k] != 0)
            return corrupt(r, "pmm: no free lists, but order %u lists 0x%llx (%llu blocks)", k,
                           (ull)p->free_head[k], (ull)p->free_blocks[k]);
    return true;
}

/* Lists: each node a free head of its order (checked before it is read). */
static bool check_lists(const struct pmm *p, struct check_report *r, const struct check_tally *t)
{
    if (!(p->flags & PMM_LISTS))
        return check_no_lists(p, r);
    const uint8_t *st = state_of(p);
    for (unsigned k = 0; k < PMM_ORDER_COUNT; k++) {
        if (((p->free_orders >> k) & 1) != (p->free_head[k] != PMM_NIL))
            return corrupt(r, "pmm: order %u: non-empty bit disagrees with the list", k);
        uint64_t steps = 0, prev = PMM_NIL;
        for (uint64_t node = p->free_head[k]; node != PMM_NIL; node = link_of(p, node)->next) {
            uint64_t f = node >> PAGE_SHIFT, idx = f - p->base_frame;
            if (!page_is_aligned(node) || f < p->base_frame || idx >= p->frame_count ||
                st[idx] != (ST_FREE | k))
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
        !check_cache(p, &r, &t) || !check_lists(p, &r, &t))
        return PMM_ERR_CORRUPT;
    return PMM_OK;
}
