/*
 * Tests for canopy/hwrng.h: RDSEED and RDRAND stand-ins that replay a script
 * of tries (a value, or "carry clear"), so each failure mode a real CPU has
 * shown (all ones after a resume, a stuck generator, a source that never
 * delivers) is checked, with the fallback to the next source and the line
 * that reports it.
 */
#include <canopy/check.h>
#include <canopy/hwrng.h>
#include <string.h>

#include "klib_test.h"

#define EMPTY  0x1badull /* in a script: this try fails (carry clear) */
#define SCRIPT 24

/* A scripted source: its tries in order, then empty ones. */
struct script {
    uint64_t tries[SCRIPT];
    unsigned count, next;
};

static struct script seed_script, rand_script;

static bool replay(struct script *s, uint64_t *v)
{
    if (s->next >= s->count)
        return false;
    uint64_t t = s->tries[s->next++];
    if (t == EMPTY)
        return false;
    *v = t;
    return true;
}

static bool fake_rdseed(uint64_t *v)
{
    return replay(&seed_script, v);
}

static bool fake_rdrand(uint64_t *v)
{
    return replay(&rand_script, v);
}

static void set_script(struct script *s, const uint64_t *tries, unsigned n)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->tries, tries, n * sizeof(tries[0]));
    s->count = n;
}

#define SCRIPT_OF(s, ...)                                                                          \
    do {                                                                                           \
        const uint64_t t_[] = {__VA_ARGS__};                                                       \
        set_script(&(s), t_, sizeof(t_) / sizeof(t_[0]));                                          \
    } while (0)

static void test_hwrng_draw_takes_the_second_of_two_different_values(void)
{
    uint64_t v = 7;
    SCRIPT_OF(seed_script, 0x1111, 0x2222);
    CHECK_EQ(hwrng_draw(fake_rdseed, &v), HWRNG_OK);
    CHECK_EQ(v, 0x2222);
    CHECK_EQ(seed_script.next, 2);
    /* Empty tries are retried, HWRNG_TRIES of them per value. */
    SCRIPT_OF(seed_script, EMPTY, EMPTY, 0x1111, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
              EMPTY, EMPTY, 0x3333);
    CHECK_EQ(hwrng_draw(fake_rdseed, &v), HWRNG_OK);
    CHECK_EQ(v, 0x3333);
}

static void test_hwrng_draw_discards_all_ones_repeats_and_silence(void)
{
    uint64_t v = 7;
    SCRIPT_OF(seed_script, UINT64_MAX, UINT64_MAX);
    CHECK_EQ(hwrng_draw(fake_rdseed, &v), HWRNG_ALL_ONES);
    SCRIPT_OF(seed_script, 0x1234, UINT64_MAX); /* the second value too */
    CHECK_EQ(hwrng_draw(fake_rdseed, &v), HWRNG_ALL_ONES);
    SCRIPT_OF(seed_script, 0x5a5a, 0x5a5a);
    CHECK_EQ(hwrng_draw(fake_rdseed, &v), HWRNG_REPEATS);
    SCRIPT_OF(seed_script, 0, 0); /* zero repeated is as stuck as anything */
    CHECK_EQ(hwrng_draw(fake_rdseed, &v), HWRNG_REPEATS);
    SCRIPT_OF(seed_script, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
              0x1111, 0x2222); /* ten empty tries: given up before the values */
    CHECK_EQ(hwrng_draw(fake_rdseed, &v), HWRNG_EMPTY);
    CHECK_EQ(seed_script.next, HWRNG_TRIES);
    SCRIPT_OF(seed_script, 0x1111); /* a first value, then nothing */
    CHECK_EQ(hwrng_draw(fake_rdseed, &v), HWRNG_EMPTY);
    CHECK_EQ(v, 7); /* no verdict but OK writes a value */
    CHECK_EQ(hwrng_draw(NULL, &v), HWRNG_ABSENT);
}

static void test_hwrng_pick_falls_back_and_says_why(void)
{
    uint64_t v = 7;
    struct hwrng_result r;
    char line[96];

    SCRIPT_OF(seed_script, 1, 2);
    SCRIPT_OF(rand_script, 3, 4);
    CHECK(hwrng_pick(fake_rdseed, fake_rdrand, &v, &r));
    CHECK(v == 2 && r.used == HWRNG_RDSEED && r.rdseed == HWRNG_OK && r.rdrand == HWRNG_UNTRIED);
    CHECK_EQ(rand_script.next, 0); /* RDRAND not touched */
    CHECK(strcmp(hwrng_discarded(&r, line, sizeof(line)), "") == 0);

    SCRIPT_OF(seed_script, 9, 9);
    SCRIPT_OF(rand_script, 3, 4);
    CHECK(hwrng_pick(fake_rdseed, fake_rdrand, &v, &r));
    CHECK(v == 4 && r.used == HWRNG_RDRAND && r.rdseed == HWRNG_REPEATS && r.rdrand == HWRNG_OK);
    CHECK(strcmp(hwrng_discarded(&r, line, sizeof(line)),
                 "RDSEED discarded: it repeated its last value") == 0);
    CHECK(strcmp(hwrng_source_name(r.used), "RDRAND") == 0);

    /* No RDSEED (an older CPU) is not worth a line. */
    SCRIPT_OF(rand_script, 3, 4);
    CHECK(hwrng_pick(NULL, fake_rdrand, &v, &r));
    CHECK(r.used == HWRNG_RDRAND && r.rdseed == HWRNG_ABSENT);
    CHECK(strcmp(hwrng_discarded(&r, line, sizeof(line)), "") == 0);

    v = 7;
    SCRIPT_OF(seed_script, UINT64_MAX, UINT64_MAX);
    SCRIPT_OF(rand_script, UINT64_MAX, UINT64_MAX);
    CHECK(!hwrng_pick(fake_rdseed, fake_rdrand, &v, &r));
    CHECK(v == 7 && r.used == HWRNG_NONE && r.rdrand == HWRNG_ALL_ONES);
    CHECK(strcmp(hwrng_discarded(&r, line, sizeof(line)),
                 "RDSEED returned all ones and RDRAND returned all ones: both discarded") == 0);
    CHECK(strcmp(hwrng_source_name(r.used), "no CPU source") == 0);

    CHECK(!hwrng_pick(NULL, NULL, &v, &r));
    CHECK(r.rdseed == HWRNG_ABSENT && r.rdrand == HWRNG_ABSENT);
    CHECK(!hwrng_pick(NULL, NULL, &v, NULL)); /* the result is optional */
    /* A line that does not fit is cut, still terminated. */
    r = (struct hwrng_result){.rdseed = HWRNG_EMPTY, .rdrand = HWRNG_OK, .used = HWRNG_RDRAND};
    CHECK(strcmp(hwrng_discarded(&r, line, 8), "RDSEED ") == 0);
}

void hwrng_tests(void)
{
    RUN(test_hwrng_draw_takes_the_second_of_two_different_values);
    RUN(test_hwrng_draw_discards_all_ones_repeats_and_silence);
    RUN(test_hwrng_pick_falls_back_and_says_why);
}
