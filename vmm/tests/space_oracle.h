/*
 * space_oracle: a naive model of an address space for differential tests.
 *
 * The model keeps its VMAs in a sorted array and finds holes with the
 * classic in-order walk, corrected: every hole (including the ones before the
 * first and after the last VMA) is clipped to the window, the space, page 0
 * and the canonical halves, and tested with 128-bit arithmetic so nothing can
 * overflow. It shares no code with vmm/src/space.c or vmm/src/avl.c.
 *
 * The diff_* harness drives a real vmm_space and the model with the same
 * operations and reports the first disagreement. The unit test's random
 * sequence and the fuzzer both use it.
 */
#ifndef VMM_SPACE_ORACLE_H
#define VMM_SPACE_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmm/space.h>

struct oracle_vma {
    uint64_t start, last;
    struct vmm_attrs attrs;
};

struct oracle {
    struct oracle_vma *v; /* sorted by start, disjoint */
    size_t n, cap;
    uint64_t start, last; /* the space's bounds */
    uint64_t low_last;    /* last byte of the canonical lower half */
    uint64_t high_start;  /* first byte of the canonical upper half */
};

void oracle_init(struct oracle *o, uint64_t start, uint64_t last, unsigned va_bits);
void oracle_fini(struct oracle *o);

/*
 * The model's versions of the space commands. budget is the number of nodes
 * the node source would still hand out: a command needing more reports
 * VMM_ERR_NOMEM and changes nothing, as the space must.
 */
enum vmm_status oracle_reserve(struct oracle *o, uint64_t start, uint64_t size,
                               const struct vmm_attrs *attrs, size_t budget);
/*
 * over_asked: bit j set makes window piece j (in search order) find as the
 * tree does once its search budget has run out (vmm/avl.h): a hole between
 * two VMAs counts only with room for size + align - b from a multiple of b.
 * req->guard bytes below the address must be free too (the exact first fit;
 * the model has no reading of a guarded over-ask) and become a second VMA.
 */
enum vmm_status oracle_alloc(struct oracle *o, const struct vmm_alloc_req *req,
                             const struct vmm_attrs *attrs, size_t budget, unsigned over_asked,
                             uint64_t *addr);
enum vmm_status oracle_free(struct oracle *o, uint64_t start, uint64_t size, size_t budget);
enum vmm_status oracle_protect(struct oracle *o, uint64_t start, uint64_t size, uint32_t prot,
                               size_t budget);
/* The VMA containing addr, or NULL. */
const struct oracle_vma *oracle_lookup(const struct oracle *o, uint64_t addr);

/* ---- the differential harness ---- */

#define DIFF_UNLIMITED SIZE_MAX

struct diff;
/* Called after each changing command, before its checks, with the range it touched. */
typedef void diff_hook_fn(struct diff *d, uint64_t lo, uint64_t hi);

struct diff {
    struct vmm_space space;
    struct oracle model;
    size_t budget;     /* nodes the space's source will still give (DIFF_UNLIMITED) */
    size_t live_nodes; /* nodes given out and not returned */
    bool check_visits; /* assert the visit bound after each successful find */
    /*
     * 0 or 1: after every command, the whole space against the model and
     * vmm_space_check. N: after each command only what it touched (the VMAs
     * in its range and one either side, against the model, and avl_check_path
     * from each), the whole space every N commands and in diff_fini.
     */
    unsigned full_every;
    diff_hook_fn *hook; /* a test's corruption; NULL otherwise */
    void *hook_ctx;
    uint64_t ops, finds, found, full_checks;
    bool err_local; /* the step check, not the whole-space one, found err */
    char err[256];  /* the first disagreement */
};

/* => false (with d->err) if the space refuses the bounds. */
bool diff_init(struct diff *d, uint64_t start, uint64_t last, unsigned va_bits);
/* Compares the whole space (with full_every > 1), returns every node; false if any leaked. */
bool diff_fini(struct diff *d);

/* Each runs the command on both sides, then compares statuses, results and whole states. */
bool diff_reserve(struct diff *d, uint64_t start, uint64_t size, const struct vmm_attrs *attrs);
bool diff_alloc(struct diff *d, const struct vmm_alloc_req *req, const struct vmm_attrs *attrs);
bool diff_free(struct diff *d, uint64_t start, uint64_t size);
bool diff_protect(struct diff *d, uint64_t start, uint64_t size, uint32_t prot);
bool diff_lookup(struct diff *d, uint64_t addr);

/* A random address near the interesting places of the space (VMA edges, holes, bounds). */
uint64_t diff_pick_addr(const struct diff *d, uint64_t r1, uint64_t r2);

/* A source of random 64-bit words: an RNG in the unit test, the input bytes in the fuzzer. */
struct diff_rand {
    uint64_t (*next)(void *ctx);
    void *ctx;
};

/*
 * Draws one operation (reserve, bottom-up or top-down alloc with a random
 * size, alignment 4 KiB..1 GiB and window, whole/partial/multi-VMA free,
 * protect, lookup), sometimes with a node source that runs dry, keeping
 * about target_vmas VMAs alive, and runs it on both sides.
 * => false with d->err on the first disagreement.
 */
bool diff_random_op(struct diff *d, struct diff_rand *r, size_t target_vmas);

/* The spaces the random sequences run in (bounds and paging depth), by index. */
#define DIFF_SCENARIOS 4
bool diff_init_scenario(struct diff *d, unsigned scenario);

#endif
