/*
 * pt_fuzz_check_test: pt_fuzz checks each step on the tables the step
 * reached (pt_check_range, the leaves in its range against the model) and
 * the whole hierarchy only every few steps. These tests run the fuzzer's own
 * driver (pt_fuzz_run.h) on a fixed input and corrupt an entry right after
 * one step: a fault in the step's tables is reported at that very step, one
 * elsewhere at the next full check.
 */
#include <canopy/check.h>

#include "pt_fuzz_run.h"

unsigned check_passed, check_failed;

#define STEPS 40

/*
 * STEPS maps of four 4 KiB pages, writable, each in its own 2 MiB of the
 * lowest window, except step 1, which maps in the upper half.
 */
static size_t make_input(uint8_t *buf)
{
    for (unsigned i = 0; i < STEPS; i++) {
        uint8_t *b = buf + 8 * i;
        uint32_t page = (i + 1) * 512; /* 2 MiB apart */
        b[0] = 0;                      /* map */
        b[1] = i == 1 ? 2 : 0;         /* window (0 or the upper half's), a few pages */
        b[2] = (uint8_t)page;
        b[3] = (uint8_t)(page >> 8);
        b[4] = (uint8_t)(page >> 16);
        b[5] = 3;    /* four pages */
        b[6] = PT_W; /* writable */
        b[7] = 0;    /* 4 KiB pages, pa = the offset */
    }
    return 8 * STEPS;
}

/* The entry that maps va with a 4 KiB page, or NULL. */
static uint64_t *leaf_slot(const struct pt *pt, uint64_t va)
{
    uint64_t tpa = pt->root;
    for (unsigned level = pt->levels; level >= 1; level--) {
        uint64_t *t = (uint64_t *)(uintptr_t)(tpa + pt->virt_offset);
        uint64_t *slot = &t[(va >> (PAGE_SHIFT + 9 * (level - 1))) & (PTE_ENTRIES - 1)];
        if (!pte_is_present(*slot))
            return NULL;
        if (level == 1)
            return slot;
        if (pte_is_leaf(*slot, level))
            return NULL;
        tpa = pte_table_addr(*slot);
    }
    return NULL;
}

enum { LEAF_IN_RANGE, JUNK_BESIDE_RANGE, LEAF_ELSEWHERE };

struct corruption {
    size_t at;
    int kind;
    uint64_t elsewhere; /* the va step 1 mapped */
    bool done;
};

static void corrupt(void *ctx, struct pt *pt, size_t step, uint64_t va, uint64_t last)
{
    struct corruption *c = ctx;
    if (step == 1)
        c->elsewhere = va;
    if (step != c->at)
        return;
    uint64_t *slot = leaf_slot(pt, c->kind == LEAF_ELSEWHERE ? c->elsewhere : va);
    if (!slot)
        return;
    if (c->kind == JUNK_BESIDE_RANGE) {
        /* The entry for the page after the step's four: unused, and in the range checked. */
        slot[4] = 0x1000; /* not present, not zero */
    } else {
        *slot &= ~(uint64_t)PTE_W;
    }
    c->done = true;
}

static bool run(unsigned every, struct corruption *c, struct ptz_result *res)
{
    uint8_t buf[8 * STEPS];
    size_t n = make_input(buf);
    struct ptz_opts o = {.full_every = every, .hook = c ? corrupt : NULL, .ctx = c};
    return pt_fuzz_run(buf, n, &o, res);
}

static void test_clean_input_passes_with_any_full_check_interval(void)
{
    struct ptz_result res;
    REQUIREF(run(1, NULL, &res), "%s", res.msg);
    CHECK_EQ(res.steps, STEPS);
    CHECK_EQ(res.full_checks, STEPS);
    REQUIREF(run(16, NULL, &res), "%s", res.msg);
    CHECK_EQ(res.steps, STEPS);
    CHECK_EQ(res.full_checks, 3); /* after steps 15 and 31, and at the end */
}

static void test_leaf_changed_in_the_steps_range_is_reported_at_that_step(void)
{
    struct corruption c = {.at = 10, .kind = LEAF_IN_RANGE};
    struct ptz_result res;
    CHECK(!run(16, &c, &res));
    REQUIRE(c.done);
    CHECK_EQ(res.step, 10);
    CHECK_EQ(res.by, PTZ_LOCAL);
    CHECKF(strncmp(res.msg, "local: ", 7) == 0 && strstr(res.msg, "differs"), "%s", res.msg);
}

/* A page past the step's range: the step check covers a page either side. */
static void test_junk_entry_beside_the_steps_range_is_reported_at_that_step(void)
{
    struct corruption c = {.at = 10, .kind = JUNK_BESIDE_RANGE};
    struct ptz_result res;
    CHECK(!run(16, &c, &res));
    REQUIRE(c.done);
    CHECK_EQ(res.step, 10);
    CHECK_EQ(res.by, PTZ_LOCAL);
    CHECKF(strstr(res.msg, "non-present entry is not zero") != NULL, "%s", res.msg);
}

/* In tables the step never reached: the step check cannot see it, the full check does. */
static void test_leaf_changed_elsewhere_is_caught_by_the_next_full_check(void)
{
    struct corruption c = {.at = 10, .kind = LEAF_ELSEWHERE};
    struct ptz_result res;
    CHECK(!run(16, &c, &res));
    REQUIRE(c.done);
    CHECK_EQ(res.step, 15);
    CHECK_EQ(res.by, PTZ_FULL);
    CHECKF(strncmp(res.msg, "full: ", 6) == 0 && strstr(res.msg, "differs"), "%s", res.msg);

    c = (struct corruption){.at = 10, .kind = LEAF_ELSEWHERE};
    CHECK(!run(1, &c, &res)); /* with a full check after every step: at once */
    CHECK_EQ(res.step, 10);
    CHECK_EQ(res.by, PTZ_FULL);
}

static void test_leaf_changed_after_the_last_full_check_is_caught_at_the_end(void)
{
    struct corruption c = {.at = 35, .kind = LEAF_ELSEWHERE};
    struct ptz_result res;
    CHECK(!run(16, &c, &res));
    REQUIRE(c.done);
    CHECK_EQ(res.step, STEPS - 1);
    CHECK_EQ(res.by, PTZ_FULL);
}

int main(void)
{
    RUN(test_clean_input_passes_with_any_full_check_interval);
    RUN(test_leaf_changed_in_the_steps_range_is_reported_at_that_step);
    RUN(test_junk_entry_beside_the_steps_range_is_reported_at_that_step);
    RUN(test_leaf_changed_elsewhere_is_caught_by_the_next_full_check);
    RUN(test_leaf_changed_after_the_last_full_check_is_caught_at_the_end);
    sim_fini(&ptz_sim);
    return check_finish();
}
