/*
 * cmdline_test: command-line lookups: bare keys, values, prefixes that are
 * not matches, truncation, and the first of repeated keys.
 */
#include <string.h>

#include <kernel/cmdline.h>

#include "check.h"

static void test_cmdline_finds_values_and_bare_keys(void)
{
    char v[16];
    const char *line = "  verbose fault=overflow\tmem=64M  ";
    CHECK(cmdline_get(line, "fault", v, sizeof(v)) && strcmp(v, "overflow") == 0);
    CHECK(cmdline_get(line, "verbose", v, sizeof(v)) && strcmp(v, "") == 0);
    CHECK(cmdline_get(line, "mem", v, sizeof(v)) && strcmp(v, "64M") == 0);
    CHECK(!cmdline_get(line, "fau", v, sizeof(v)));    /* a prefix of a key is not the key */
    CHECK(!cmdline_get(line, "faults", v, sizeof(v))); /* nor is a longer name */
    CHECK(!cmdline_get("", "fault", v, sizeof(v)));
}

static void test_cmdline_truncates_and_takes_the_first(void)
{
    char v[4];
    CHECK(cmdline_get("k=abcdef k=x", "k", v, sizeof(v)) && strcmp(v, "abc") == 0);
    CHECK(cmdline_get("k= other", "k", v, sizeof(v)) && strcmp(v, "") == 0);
}

void cmdline_tests(void)
{
    RUN(test_cmdline_finds_values_and_bare_keys);
    RUN(test_cmdline_truncates_and_takes_the_first);
}
