/*
 * pmm_fuzz_check_test: pmm_fuzz checks each step in time proportional to
 * what the step touched (pmm_fuzz_check.h) and runs pmm_check only every few
 * steps. These tests run the fuzzer's own driver (pmm_fuzz_run.h) on a fixed
 * input and corrupt the PMM right after one step, to show that a fault the
 * step check can see is reported at that very step, and that one it cannot
 * see is still reported, by pmm_check, at the next full check.
 */
#include "pmm_fuzz_run.h" /* first: pmm_sim.h asks for MAP_ANONYMOUS before any libc header */

#include <canopy/check.h>

unsigned check_passed, check_failed;

#define STEPS 100

/*
 * One conventional descriptor over frames 0..1022, then STEPS operations:
 * two allocations (orders 0..2, owner "page table") for every free of a
 * live block.
 */
static size_t make_input(uint8_t *buf)
{
    size_t n = 0;
    buf[n++] = 0;   /* one descriptor */
    buf[n++] = 0;   /* conventional */
    buf[n++] = 0;   /* from frame 0 */
    buf[n++] = 255; /* 255 + 3 * 256 frames */
    buf[n++] = 3;
    for (unsigned i = 0; i < STEPS; i++) {
        bool release = i % 3 == 2;
        buf[n++] = release ? 2 : 0;                /* free a live block, or alloc */
        buf[n++] = (uint8_t)(release ? i : i % 3); /* which block, or the order */
        buf[n++] = release ? 0 : 1;                /* owner 2 */
        buf[n++] = 0;
    }
    return n;
}

struct corruption {
    size_t at; /* the step after which to corrupt */
    int kind;  /* what to do, below */
    bool done;
    bool full_sees; /* pmm_check's verdict right after the corruption */
};

enum { FREE_BEHIND_MODEL, COUNTER_OFF, FAR_BYTE };

static void corrupt(void *ctx, struct pmm *p, const struct model *md, size_t step)
{
    struct corruption *c = ctx;
    if (step != c->at)
        return;
    if (c->kind == FREE_BEHIND_MODEL) {
        /* The block the step just allocated goes back to the PMM, not the model. */
        uint64_t a = md->live[md->live_count - 1];
        c->done = pmm_free(p, page_down(a), (unsigned)(a & (PAGE_SIZE - 1))) == PMM_OK;
    } else if (c->kind == COUNTER_OFF) {
        p->free_frames--;
        p->reserved_frames++; /* the four counters still add up */
        c->done = true;
    } else {
        /* Frame 0xff lies below 1 MiB: reserved, and no step touches it. */
        *state_byte(p, 0xff) = 0xff;
        c->done = true;
    }
    c->full_sees = pmm_check(p, NULL, 0) != PMM_OK;
}

static bool run(unsigned every, struct corruption *c, struct pfz_result *res)
{
    uint8_t buf[5 + 4 * STEPS];
    size_t n = make_input(buf);
    struct pfz_opts o = {.full_every = every, .hook = c ? corrupt : NULL, .ctx = c};
    return pmm_fuzz_run(buf, n, &o, res);
}

static void test_clean_input_passes_with_any_full_check_interval(void)
{
    struct pfz_result res;
    REQUIRE(run(1, NULL, &res));
    CHECK_EQ(res.steps, STEPS);
    CHECK_EQ(res.full_checks, 1 + STEPS); /* after init, and after every step */
    REQUIRE(run(64, NULL, &res));
    CHECK_EQ(res.steps, STEPS);
    CHECK_EQ(res.full_checks, 3); /* after init, after step 63, at the end */
}

/* The PMM stays consistent in itself; only the model can tell. */
static void test_block_freed_behind_the_models_back_is_reported_at_that_step(void)
{
    struct corruption c = {.at = 10, .kind = FREE_BEHIND_MODEL};
    struct pfz_result res;
    CHECK(!run(64, &c, &res));
    REQUIRE(c.done);
    CHECK(!c.full_sees); /* pmm_check alone would never see it */
    CHECK_EQ(res.step, 10);
    CHECK_EQ(res.by, PFZ_LOCAL);
    CHECKF(strstr(res.msg, "local:") != NULL, "%s", res.msg);
}

static void test_counter_off_by_one_is_reported_at_that_step(void)
{
    struct corruption c = {.at = 20, .kind = COUNTER_OFF};
    struct pfz_result res;
    CHECK(!run(64, &c, &res));
    REQUIRE(c.done);
    CHECK_EQ(res.step, 20); /* the full check would come only after step 63 */
    CHECK_EQ(res.by, PFZ_LOCAL);
    CHECKF(strstr(res.msg, "free") != NULL, "%s", res.msg);
}

/* A state byte no step touches: the step check cannot see it, pmm_check does. */
static void test_far_corruption_is_caught_by_the_next_full_check(void)
{
    struct corruption c = {.at = 20, .kind = FAR_BYTE};
    struct pfz_result res;
    CHECK(!run(64, &c, &res));
    REQUIRE(c.done);
    CHECK(c.full_sees);
    CHECK_EQ(res.step, 63); /* passed the step checks of 20..63 */
    CHECK_EQ(res.by, PFZ_FULL);
    CHECKF(strstr(res.msg, "0xff000") != NULL, "%s", res.msg);

    c = (struct corruption){.at = 20, .kind = FAR_BYTE};
    CHECK(!run(1, &c, &res)); /* with a full check after every step: at once */
    CHECK_EQ(res.step, 20);
    CHECK_EQ(res.by, PFZ_FULL);
}

/* Near the end of an input: the check at the end of the input finds it. */
static void test_far_corruption_after_the_last_full_check_is_caught_at_the_end(void)
{
    struct corruption c = {.at = 70, .kind = FAR_BYTE};
    struct pfz_result res;
    CHECK(!run(64, &c, &res));
    CHECK_EQ(res.step, STEPS - 1);
    CHECK_EQ(res.by, PFZ_FULL);
}

int main(void)
{
    RUN(test_clean_input_passes_with_any_full_check_interval);
    RUN(test_block_freed_behind_the_models_back_is_reported_at_that_step);
    RUN(test_counter_off_by_one_is_reported_at_that_step);
    RUN(test_far_corruption_is_caught_by_the_next_full_check);
    RUN(test_far_corruption_after_the_last_full_check_is_caught_at_the_end);
    sim_close(&pfz_sim);
    return check_finish();
}
