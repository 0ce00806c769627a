/*
 * space: an address space, the set of VMAs (virtual memory areas) handed out
 * in a range of virtual addresses, kept in the gap-augmented AVL tree.
 *
 * The space is page granular: every VMA starts on a 4 KiB boundary and covers
 * whole pages. It records who owns which range; mapping pages is the caller's
 * business (the kernel's mm code pairs each change here with pt_map/pt_unmap).
 *
 * Addresses that are never handed out, whatever the bounds of the space:
 *   - page 0 ([0, 0xfff]), so a NULL dereference always faults;
 *   - the non-canonical hole: 0x0000800000000000..0xffff7fffffffffff with
 *     48-bit virtual addresses, 0x0100000000000000..0xfeffffffffffffff with 57.
 *
 * Ranges are [start, last] with an inclusive last byte, so a VMA may end at
 * 2^64 - 1. Requests return a status; a found address comes back through an
 * out parameter, so no address (0 included) ever means "failure".
 *
 * The space never calls malloc: a VMA's storage comes from the node source
 * given at init (the kernel's VMA cache, malloc or the benchmarks' node
 * allocator on the host; VMM_VMA_ALIGN below), and splitting a
 * VMA asks it for a second node before anything is changed.
 */
#ifndef VMM_SPACE_H
#define VMM_SPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/compiler.h>
#include <vmm/avl.h>

enum vmm_status {
    VMM_OK = 0,
    VMM_ERR_INVALID,    /* a bad argument: zero or unaligned size, align not a power of two,
                           a range wrapping, outside the space, on page 0 or non-canonical */
    VMM_ERR_NO_SPACE,   /* no aligned hole of that size exists in the window */
    VMM_ERR_OVERLAP,    /* a fixed range intersects an existing VMA */
    VMM_ERR_NOT_MAPPED, /* part of the range is not covered by VMAs */
    VMM_ERR_NOMEM,      /* the node source gave no node; nothing was changed */
};

/* A short English name for a status, for error lines. */
const char *vmm_status_str(enum vmm_status st);

/* What a VMA carries besides its range. The space stores these and never interprets them. */
struct vmm_attrs {
    const char *name; /* for dumps and panics ("stack", ".text"); not copied */
    uint32_t prot;    /* protection flags, e.g. PT_W | PT_X */
    uint16_t kind;    /* the owner's small kind code (stack, heap, device, ...) */
    uint16_t flags;   /* the owner's flags (demand-zero, guard, ...) */
};

struct vmm_vma {
    struct avl_node node; /* node.start and node.last are the range */
    struct vmm_attrs attrs;
};

/*
 * The alignment the kernel's VMA cache gives a struct vmm_vma (96 bytes),
 * and the benchmarks' node allocator too (bench/nodes.h): 32, which packs
 * 42 VMAs to a slab page. At 64 (128-byte slots, the node's first 64 bytes,
 * all a 4 KiB search reads, always in one line) searches that miss the
 * caches were slower, not faster: docs/performance.md has the numbers.
 */
#define VMM_VMA_ALIGN 32

/* First and last byte of a VMA. */
static inline uint64_t vmm_vma_start(const struct vmm_vma *v)
{
    return v->node.start;
}
static inline uint64_t vmm_vma_last(const struct vmm_vma *v)
{
    return v->node.last;
}

/* Where VMA storage comes from and goes back to. alloc returns NULL when empty. */
struct vmm_node_source {
    struct vmm_vma *(*alloc)(void *ctx);
    void (*free)(void *ctx, struct vmm_vma *vma);
    void *ctx;
};

struct vmm_space {
    struct avl_tree tree;
    uint64_t start, last;      /* bounds of the space, inclusive */
    uint64_t canon_low_last;   /* last byte of the canonical lower half */
    uint64_t canon_high_start; /* first byte of the canonical upper half */
    struct vmm_node_source nodes;
    uint64_t last_visits;   /* tree nodes examined by the latest vmm_space_find/alloc */
    uint64_t total_visits;  /* ... and by all of them since init */
    unsigned last_searches; /* tree searches the latest vmm_space_find/alloc made */
};

/*
 * Makes an empty space over [start, last].
 * => start page aligned, last + 1 page aligned (or last = 2^64 - 1), start < last;
 *    va_bits is 48 or 57 (the paging depth's canonical width). VMM_ERR_INVALID otherwise.
 */
enum vmm_status vmm_space_init(struct vmm_space *s, uint64_t start, uint64_t last, unsigned va_bits,
                               struct vmm_node_source nodes) MUST_CHECK;

/* Returns every VMA to the node source; the space is empty (and still usable) afterwards. */
void vmm_space_clear(struct vmm_space *s);

/*
 * Records the fixed range [start, start + size) as a new VMA.
 * => start and size page aligned, size > 0; the range inside the space, canonical,
 *    not on page 0, not wrapping (else VMM_ERR_INVALID); VMM_ERR_OVERLAP if it
 *    intersects a VMA. *out (if not NULL) receives the VMA.
 */
enum vmm_status vmm_space_reserve(struct vmm_space *s, uint64_t start, uint64_t size,
                                  const struct vmm_attrs *attrs, struct vmm_vma **out) MUST_CHECK;

/* Where vmm_space_alloc looks. */
#define VMM_ALLOC_TOPDOWN 0x1u /* the highest fitting address instead of the lowest */

struct vmm_alloc_req {
    uint64_t size;  /* bytes, page aligned, > 0 */
    uint64_t align; /* a power of two; below 4 KiB means 4 KiB */
    uint64_t min;   /* the window: the VMA must lie inside [min, last]... */
    uint64_t last;  /* ...(inclusive: the window [min, max) has last = max - 1) */
    unsigned flags; /* VMM_ALLOC_* */
    /*
     * Bytes, page aligned (0: none), right below the address that must be
     * free and inside the window too: a guard. vmm_space_alloc records them
     * as a VMA of their own with guard_attrs (attrs if NULL). align applies
     * to the address, never to the guard's start.
     */
    uint64_t guard;
    const struct vmm_attrs *guard_attrs;
};

/*
 * A guarded request whose align is above the guard and does not divide it
 * makes at most this many tree searches before it over-asks (vmm_space_alloc).
 */
#define VMM_GUARD_SEARCHES 4

/*
 * Finds the lowest (or with VMM_ALLOC_TOPDOWN the highest) address a with
 * a % align == 0 such that [a, a + size) lies inside the window and the space,
 * avoids page 0, the non-canonical hole and every VMA; records it as a new VMA.
 * => exact for align up to 4 KiB, 2 MiB and 1 GiB: VMM_ERR_NO_SPACE only if
 *    no such address exists. For any other align the tree's holes are
 *    searched for the over-asked room that avl_gap_find() (vmm/avl.h)
 *    describes, as a piece's answer and for VMM_ERR_NO_SPACE alike.
 *    VMM_ERR_INVALID for a bad size/align or an empty window; *out (if not
 *    NULL) gets the VMA.
 * => s->last_visits counts the tree nodes the search examined.
 *
 * With req->guard, [a - guard, a) must be free and inside the window too,
 * and becomes a second VMA (req->guard_attrs); align applies to a, the
 * first usable byte, never to the guard. Where guard is a multiple of
 * align, one search for size + guard bytes finds it, exact as above. Else
 * a search for size bytes from guard past the window's start finds the
 * first fit unless the hole starts less than guard below it (a hole that
 * starts on a multiple of align): then the hole's next multiple is tried,
 * and the search goes on above the hole (below it, top-down), at most
 * VMM_GUARD_SEARCHES searches per window piece. After that it asks for
 * size + align_up(guard, align) bytes at align instead, and the guard and
 * the VMA take the top of them (the lowest or highest hole with that much
 * room). s->last_searches counts the tree searches.
 *
 * The VMA (and its guard) is linked at the hole the search found
 * (avl_insert_prev), without a second descent by address.
 */
enum vmm_status vmm_space_alloc(struct vmm_space *s, const struct vmm_alloc_req *req,
                                const struct vmm_attrs *attrs, struct vmm_vma **out) MUST_CHECK;

/*
 * The search of vmm_space_alloc alone: *addr gets the address it would use;
 * nothing is recorded. => the same statuses (never VMM_ERR_NOMEM) and visit count.
 */
enum vmm_status vmm_space_find(struct vmm_space *s, const struct vmm_alloc_req *req,
                               uint64_t *addr) MUST_CHECK;

/*
 * Releases [start, start + size): whole VMAs are removed, VMAs cut by an end
 * of the range are trimmed, a VMA containing the range strictly inside it is
 * split in two (one new node).
 * => start and size page aligned, size > 0, no wrap (VMM_ERR_INVALID); every
 *    byte of the range covered by VMAs (else VMM_ERR_NOT_MAPPED); on any error
 *    nothing changes.
 */
enum vmm_status vmm_space_free(struct vmm_space *s, uint64_t start, uint64_t size) MUST_CHECK;

/*
 * Sets the protection of [start, start + size) to prot, splitting the VMAs cut
 * by the ends of the range (at most two new nodes). Adjacent VMAs are never
 * merged. => preconditions and errors as vmm_space_free.
 */
enum vmm_status vmm_space_protect(struct vmm_space *s, uint64_t start, uint64_t size,
                                  uint32_t prot) MUST_CHECK;

/* The VMA containing addr, or NULL. O(log n). */
struct vmm_vma *vmm_space_lookup(const struct vmm_space *s, uint64_t addr);

/* The lowest VMA whose last byte is >= addr, or NULL: where an ordered walk from addr starts. */
struct vmm_vma *vmm_space_first_from(const struct vmm_space *s, uint64_t addr);

/* In-order iteration: for (v = vmm_space_first(s); v; v = vmm_space_next(v)). */
struct vmm_vma *vmm_space_first(const struct vmm_space *s);
struct vmm_vma *vmm_space_next(const struct vmm_vma *v);
struct vmm_vma *vmm_space_prev(const struct vmm_vma *v);

/* Number of VMAs. */
size_t vmm_space_count(const struct vmm_space *s);

/*
 * Verifies the tree (avl_check) and that every VMA is page aligned, inside
 * the space, canonical and off page 0.
 * => returns false and points *why (if not NULL) at a reason on the first violation.
 */
bool vmm_space_check(const struct vmm_space *s, const char **why);

#endif
