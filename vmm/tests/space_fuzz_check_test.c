/*
 * space_fuzz_check_test: with full_every above 1 (as vmm_space_fuzz runs
 * it), the differential harness checks after each command only the VMAs the
 * command touched, against the model and with avl_check_path, and the whole
 * space every full_every commands and at the end. These tests corrupt the
 * space right after one command, through the harness's hook, to show that a
 * fault among the touched VMAs or on their paths to the root is reported at
 * that command, and one elsewhere at the next whole-space check.
 */
#include <canopy/check.h>
#include <canopy/page.h>

#include <stdio.h>
#include <string.h>

#include "space_oracle.h"

unsigned check_passed, check_failed;

#define COMMANDS 40
#define BASE     0x100000000ull

enum { ATTRS_OF_TOUCHED, ROOT_SLOT, ATTRS_ELSEWHERE };

struct corruption {
    uint64_t at; /* the command (d->ops) after which to corrupt */
    int kind;
    bool done;
};

static void corrupt(struct diff *d, uint64_t lo, uint64_t hi)
{
    struct corruption *c = d->hook_ctx;
    if (d->ops != c->at)
        return;
    if (c->kind == ATTRS_OF_TOUCHED) {
        vmm_space_lookup(&d->space, lo)->attrs.prot ^= 1;
    } else if (c->kind == ROOT_SLOT) {
        d->space.tree.root->child_max[0] += 0x1000; /* every node's path ends at the root */
    } else {
        /* The fourth VMA: neither the lowest, nor the highest, nor near this command. */
        vmm_space_lookup(&d->space, BASE + 3 * 0x200000)->attrs.prot ^= 1;
    }
    c->done = true;
}

/*
 * COMMANDS reservations of one page each, 2 MiB apart, in a 47-bit space;
 * true if the harness found nothing. d->err says what it found, if anything.
 */
static bool run(struct diff *d, unsigned every, struct corruption *c)
{
    static const struct vmm_attrs attrs = {.name = "test", .prot = 1};
    if (!diff_init(d, 0x1000, 0x00007fffffffffffull, 48))
        return false;
    d->full_every = every;
    d->hook = c ? corrupt : NULL;
    d->hook_ctx = c;
    bool ok = true;
    for (unsigned i = 0; ok && i < COMMANDS; i++)
        ok = diff_reserve(d, BASE + i * 0x200000ull, PAGE_SIZE, &attrs);
    return diff_fini(d) && ok; /* fini: the end-of-input check, and every node back */
}

static bool err_at(const struct diff *d, unsigned long long op)
{
    char want[32];
    snprintf(want, sizeof(want), "op %llu: ", op);
    return strncmp(d->err, want, strlen(want)) == 0;
}

static void test_clean_commands_pass_with_any_full_check_interval(void)
{
    struct diff d;
    REQUIREF(run(&d, 1, NULL), "%s", d.err);
    CHECK_EQ(d.full_checks, COMMANDS);
    REQUIREF(run(&d, 16, NULL), "%s", d.err);
    CHECK_EQ(d.full_checks, 3); /* after commands 16 and 32, and in diff_fini */
}

static void test_touched_vma_changed_is_reported_at_that_command(void)
{
    struct corruption c = {.at = 10, .kind = ATTRS_OF_TOUCHED};
    struct diff d;
    CHECK(!run(&d, 16, &c));
    REQUIRE(c.done);
    CHECKF(err_at(&d, 10) && strstr(d.err, "local: VMA attributes differ"), "%s", d.err);
    CHECK(d.err_local);
}

static void test_slot_on_the_path_to_the_root_is_reported_at_that_command(void)
{
    struct corruption c = {.at = 10, .kind = ROOT_SLOT};
    struct diff d;
    CHECK(!run(&d, 16, &c));
    REQUIRE(c.done);
    CHECKF(err_at(&d, 10) && strstr(d.err, "avl_check_path: left_max is wrong"), "%s", d.err);
    CHECK(d.err_local);
}

static void test_vma_changed_elsewhere_is_caught_by_the_next_full_check(void)
{
    struct corruption c = {.at = 10, .kind = ATTRS_ELSEWHERE};
    struct diff d;
    CHECK(!run(&d, 16, &c));
    REQUIRE(c.done);
    CHECKF(err_at(&d, 16) && strstr(d.err, "VMA attributes differ"), "%s", d.err);
    CHECK(!d.err_local);

    c = (struct corruption){.at = 10, .kind = ATTRS_ELSEWHERE};
    CHECK(!run(&d, 1, &c)); /* with the whole space after every command: at once */
    CHECKF(err_at(&d, 10), "%s", d.err);
}

static void test_vma_changed_after_the_last_full_check_is_caught_at_the_end(void)
{
    struct corruption c = {.at = 35, .kind = ATTRS_ELSEWHERE};
    struct diff d;
    CHECK(!run(&d, 16, &c));
    REQUIRE(c.done);
    CHECKF(err_at(&d, COMMANDS) && strstr(d.err, "VMA attributes differ"), "%s", d.err);
    CHECK(!d.err_local);
}

int main(void)
{
    RUN(test_clean_commands_pass_with_any_full_check_interval);
    RUN(test_touched_vma_changed_is_reported_at_that_command);
    RUN(test_slot_on_the_path_to_the_root_is_reported_at_that_command);
    RUN(test_vma_changed_elsewhere_is_caught_by_the_next_full_check);
    RUN(test_vma_changed_after_the_last_full_check_is_caught_at_the_end);
    return check_finish();
}
