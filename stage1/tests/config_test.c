/*
 * Tests for the canopy.cfg parser: the settings a good file produces, and for
 * each kind of bad line the problem, its line number, and the setting left at
 * its previous value.
 */
#include <string.h>

#include "../load/config.h"
#include "check.h"

#define MAX_REPORTS 16

struct reports {
    unsigned count;
    unsigned line[MAX_REPORTS];
    char msg[MAX_REPORTS][200];
};

static void collect(void *ctx, unsigned line, const char *problem)
{
    struct reports *r = ctx;
    if (r->count < MAX_REPORTS) {
        r->line[r->count] = line;
        snprintf(r->msg[r->count], sizeof(r->msg[0]), "%s", problem);
    }
    r->count++;
}

/* Parses text over the defaults; returns the parser's problem count. */
static unsigned parse(const char *text, struct config *cfg, struct reports *r)
{
    memset(r, 0, sizeof(*r));
    config_defaults(cfg);
    unsigned n = config_parse(cfg, text, strlen(text), collect, r);
    CHECK(n == r->count);
    return n;
}

static bool mentions(const struct reports *r, unsigned i, const char *word)
{
    return i < r->count && strstr(r->msg[i], word) != NULL;
}

static void test_config_defaults(void)
{
    struct config cfg;
    config_defaults(&cfg);
    CHECK(strcmp(cfg.kernel, "/canopy/kernel.elf") == 0);
    CHECK(cfg.cmdline[0] == '\0');
    CHECK(cfg.serial == true);
    CHECK(cfg.verbose == 0);
    CHECK(cfg.fb_width == 0 && cfg.fb_height == 0);
}

static void test_config_full_file_with_comments_and_crlf(void)
{
    struct config cfg;
    struct reports r;
    const char *text = "# Canopy\r\n"
                       "\r\n"
                       "  kernel = /boot/k.elf  \r\n"
                       "\tcmdline=  log=debug # not a comment\r\n"
                       "serial=off\r\n"
                       "   # indented comment\n"
                       "verbose=3\n"
                       "resolution=1024x768"; /* no newline at the end */
    CHECK(parse(text, &cfg, &r) == 0);
    CHECK(strcmp(cfg.kernel, "/boot/k.elf") == 0);
    CHECK(strcmp(cfg.cmdline, "log=debug # not a comment") == 0);
    CHECK(cfg.serial == false);
    CHECK(cfg.verbose == 3);
    CHECK(cfg.fb_width == 1024 && cfg.fb_height == 768);
}

static void test_config_empty_file_keeps_defaults(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("", &cfg, &r) == 0);
    CHECK(strcmp(cfg.kernel, CONFIG_DEFAULT_KERNEL) == 0);
    CHECK(parse("\n\n   \n#x\n", &cfg, &r) == 0);
    CHECK(strcmp(cfg.kernel, CONFIG_DEFAULT_KERNEL) == 0);
}

static void test_config_unknown_key_names_line(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("verbose=1\n# c\ncolour=blue\nserial=off\n", &cfg, &r) == 1);
    CHECK(r.line[0] == 3);
    CHECK(mentions(&r, 0, "unknown key 'colour'"));
    CHECK(cfg.verbose == 1 && cfg.serial == false); /* the other lines still count */
}

static void test_config_malformed_lines(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("kernel /k.elf\n=value\nverbose=2\n", &cfg, &r) == 2);
    CHECK(r.line[0] == 1 && mentions(&r, 0, "malformed"));
    CHECK(r.line[1] == 2 && mentions(&r, 1, "no key"));
    CHECK(strcmp(cfg.kernel, CONFIG_DEFAULT_KERNEL) == 0);
    CHECK(cfg.verbose == 2);
}

static void test_config_overlong_values_keep_defaults(void)
{
    struct config cfg;
    struct reports r;
    char text[1024];
    char longpath[400];
    memset(longpath, 'a', sizeof(longpath));
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    snprintf(text, sizeof(text), "kernel=%s\n", longpath);
    CHECK(parse(text, &cfg, &r) == 1);
    CHECK(r.line[0] == 1 && mentions(&r, 0, "too long"));
    CHECK(strcmp(cfg.kernel, CONFIG_DEFAULT_KERNEL) == 0);

    /* cmdline: 255 bytes fit, 256 do not. */
    char cmd[300];
    memset(cmd, 'x', 255);
    cmd[255] = '\0';
    snprintf(text, sizeof(text), "cmdline=%s\n", cmd);
    CHECK(parse(text, &cfg, &r) == 0);
    CHECK(strlen(cfg.cmdline) == 255);
    memset(cmd, 'x', 256);
    cmd[256] = '\0';
    snprintf(text, sizeof(text), "\ncmdline=%s\n", cmd);
    CHECK(parse(text, &cfg, &r) == 1);
    CHECK(r.line[0] == 2 && mentions(&r, 0, "too long"));
    CHECK(cfg.cmdline[0] == '\0');
}

static void test_config_kernel_path_rules(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("kernel=\n", &cfg, &r) == 1 && mentions(&r, 0, "empty"));
    CHECK(parse("kernel=canopy/kernel.elf\n", &cfg, &r) == 1 && mentions(&r, 0, "absolute"));
    CHECK(parse("kernel=/canopy\\k.elf\n", &cfg, &r) == 1 && mentions(&r, 0, "separator"));
    CHECK(strcmp(cfg.kernel, CONFIG_DEFAULT_KERNEL) == 0);
}

static void test_config_bad_values(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("serial=maybe\n", &cfg, &r) == 1 && mentions(&r, 0, "serial="));
    CHECK(cfg.serial == true);
    CHECK(parse("serial=no\n", &cfg, &r) == 0 && cfg.serial == false);
    CHECK(parse("verbose=10\n", &cfg, &r) == 1 && mentions(&r, 0, "verbose="));
    CHECK(parse("verbose=-1\n", &cfg, &r) == 1 && cfg.verbose == 0);
    CHECK(parse("verbose=\n", &cfg, &r) == 1);
    CHECK(parse("resolution=1024\n", &cfg, &r) == 1 && mentions(&r, 0, "resolution="));
    CHECK(parse("resolution=0x768\n", &cfg, &r) == 1);
    CHECK(parse("resolution=800x600x\n", &cfg, &r) == 1);
    CHECK(cfg.fb_width == 0);
    CHECK(parse("resolution=800x600\nresolution=current\n", &cfg, &r) == 1); /* duplicate */
    CHECK(r.line[0] == 2 && mentions(&r, 0, "again"));
    CHECK(cfg.fb_width == 0 && cfg.fb_height == 0);
}

static void test_config_duplicate_key_later_wins(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("verbose=1\nverbose=2\n", &cfg, &r) == 1);
    CHECK(r.line[0] == 2 && mentions(&r, 0, "verbose= given again"));
    CHECK(cfg.verbose == 2);
}

/* A rejected later value keeps the earlier one, and nothing claims the later one counts. */
static void test_config_duplicate_key_with_bad_value_keeps_earlier(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("verbose=3\nverbose=12\n", &cfg, &r) == 1);
    CHECK(r.line[0] == 2 && mentions(&r, 0, "verbose= takes a number"));
    CHECK(!mentions(&r, 0, "again"));
    CHECK(cfg.verbose == 3);
    CHECK(parse("kernel=/a.elf\nkernel=b.elf\nkernel=/c.elf\n", &cfg, &r) == 2);
    CHECK(r.line[0] == 2 && mentions(&r, 0, "absolute path"));
    CHECK(r.line[1] == 3 && mentions(&r, 1, "kernel= given again; the later value counts"));
    CHECK(strcmp(cfg.kernel, "/c.elf") == 0);
}

static void test_config_debug_fault_takes_stage1_phases(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("", &cfg, &r) == 0 && cfg.debug_fault == CONFIG_NO_FAULT);
    CHECK(parse("debug_fault=before-ebs\n", &cfg, &r) == 0);
    CHECK(cfg.debug_fault == CANOPY_PHASE_BEFORE_EBS);
    CHECK(parse("debug_fault=kernel-entry\n", &cfg, &r) == 0);
    CHECK(cfg.debug_fault == CANOPY_PHASE_KERNEL_ENTRY);
    CHECK(parse("debug_fault=pmm-ready\ndebug_fault=off\n", &cfg, &r) == 1);
    CHECK(cfg.debug_fault == CONFIG_NO_FAULT);
    /* Before the config is read, or in the kernel: stage 1 cannot fault there. */
    CHECK(parse("debug_fault=stage1-entry\n", &cfg, &r) == 1 && mentions(&r, 0, "debug_fault="));
    CHECK(cfg.debug_fault == CONFIG_NO_FAULT);
    CHECK(parse("debug_fault=shell-ready\n", &cfg, &r) == 1 && cfg.debug_fault == CONFIG_NO_FAULT);
    CHECK(parse("debug_fault=before-ebsx\n", &cfg, &r) == 1);
    CHECK(parse("debug_fault=\n", &cfg, &r) == 1 && cfg.debug_fault == CONFIG_NO_FAULT);
}

static void test_config_debug_smash_takes_phases_stage1_runs(void)
{
    struct config cfg;
    struct reports r;
    CHECK(parse("", &cfg, &r) == 0 && cfg.debug_smash == CONFIG_NO_FAULT);
    CHECK(parse("debug_smash=config-read\n", &cfg, &r) == 0);
    CHECK(cfg.debug_smash == CANOPY_PHASE_CONFIG_READ && cfg.debug_fault == CONFIG_NO_FAULT);
    CHECK(parse("debug_smash=page-tables-built\n", &cfg, &r) == 0);
    CHECK(cfg.debug_smash == CANOPY_PHASE_PAGE_TABLES_BUILT);
    /* At kernel-entry stage 1 has jumped away: no stage 1 function runs there. */
    CHECK(parse("debug_smash=kernel-entry\n", &cfg, &r) == 1);
    CHECK(mentions(&r, 0,
                   "debug_smash= takes off or a stage 1 phase from config-read to "
                   "page-tables-built, not 'kernel-entry'"));
    CHECK(cfg.debug_smash == CONFIG_NO_FAULT);
    CHECK(parse("debug_smash=pmm-ready\ndebug_smash=off\n", &cfg, &r) == 1);
    CHECK(cfg.debug_smash == CONFIG_NO_FAULT);
    CHECK(parse("debug_smash=stage1-entry\n", &cfg, &r) == 1 && cfg.debug_smash == CONFIG_NO_FAULT);
    CHECK(parse("debug_smash=yes\n", &cfg, &r) == 1 && cfg.debug_smash == CONFIG_NO_FAULT);
}

static void test_config_unprintable_bytes_are_refused(void)
{
    struct config cfg;
    struct reports r;
    const char text[] = "cmdline=a\x01"
                        "b\nkernel=/k\0x\nverbose=1\n";
    memset(&r, 0, sizeof(r));
    config_defaults(&cfg);
    CHECK(config_parse(&cfg, text, sizeof(text) - 1, collect, &r) == 2);
    CHECK(r.line[0] == 1 && r.line[1] == 2);
    CHECK(mentions(&r, 0, "printable"));
    CHECK(cfg.cmdline[0] == '\0');
    CHECK(strcmp(cfg.kernel, CONFIG_DEFAULT_KERNEL) == 0);
    CHECK(cfg.verbose == 1);
    for (unsigned i = 0; i < r.count && i < MAX_REPORTS; i++)
        for (const char *c = r.msg[i]; *c; c++)
            CHECK(*c >= 0x20 && *c <= 0x7e);
}

static void test_config_bom_and_no_reporter(void)
{
    struct config cfg;
    config_defaults(&cfg);
    const char *text = "\xef\xbb\xbfverbose=4\nbogus\n";
    CHECK(config_parse(&cfg, text, strlen(text), NULL, NULL) == 1);
    CHECK(cfg.verbose == 4);
}

static void test_config_reads_only_len_bytes(void)
{
    struct config cfg;
    struct reports r;
    const char *text = "verbose=5\nverbose=6";
    memset(&r, 0, sizeof(r));
    config_defaults(&cfg);
    /* Only "verbose=5\nverbose=" is given: the second line has an empty value (one problem). */
    CHECK(config_parse(&cfg, text, 18, collect, &r) == 1);
    CHECK(r.line[0] == 2 && mentions(&r, 0, "verbose= takes"));
    CHECK(cfg.verbose == 5);
}

static void test_config_kernel_sha256_takes_64_hex_digits(void)
{
    struct config cfg;
    struct reports r;
    static const char hex[] = "BA7816BF8F01CFEA414140DE5DAE2223b00361a396177a9cb410ff61f20015ad";
    char line[128];
    snprintf(line, sizeof(line), "kernel_sha256= %s \n", hex);
    CHECK(parse(line, &cfg, &r) == 0);
    struct sha256_digest want;
    sha256_digest("abc", 3, &want);
    CHECK(cfg.kernel_pinned && sha256_equal(&cfg.kernel_sha256, &want));

    /* One digit short, one too many, a non-hex digit, empty: a problem each, no pin. */
    static const char *bad[] = {
        "kernel_sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a\n",
        "kernel_sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0\n",
        "kernel_sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015az\n",
        "kernel_sha256=\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECKF(parse(bad[i], &cfg, &r) == 1 && mentions(&r, 0, "kernel_sha256= takes"), "case %zu",
               i);
        CHECKF(!cfg.kernel_pinned, "case %zu pinned", i);
    }
}

/* A verified file: every debug_* line, valid, invalid or unknown, is counted and changes nothing.
 */
static void test_config_verified_ignores_debug_keys(void)
{
    struct config cfg;
    struct reports r;
    const char *text = "debug_fault=validated\n"
                       "debug_smash=config-read\n"
                       "debug_fault=nonsense\n"
                       "debug_whatever=1\n"
                       "verbose=2\n";
    memset(&r, 0, sizeof(r));
    config_defaults(&cfg);
    cfg.verified = true;
    CHECK(config_parse(&cfg, text, strlen(text), collect, &r) == 0);
    CHECK(cfg.debug_ignored == 4);
    CHECK(cfg.debug_fault == CONFIG_NO_FAULT && cfg.debug_smash == CONFIG_NO_FAULT);
    CHECK(cfg.verbose == 2);

    /* The same file unverified: the valid ones apply, the others are problems. */
    CHECK(parse(text, &cfg, &r) == 2);
    CHECK(cfg.debug_ignored == 0);
    CHECK(cfg.debug_fault == CANOPY_PHASE_VALIDATED && cfg.debug_smash == CANOPY_PHASE_CONFIG_READ);
}

void config_tests(void)
{
    RUN(test_config_defaults);
    RUN(test_config_full_file_with_comments_and_crlf);
    RUN(test_config_empty_file_keeps_defaults);
    RUN(test_config_unknown_key_names_line);
    RUN(test_config_malformed_lines);
    RUN(test_config_overlong_values_keep_defaults);
    RUN(test_config_kernel_path_rules);
    RUN(test_config_bad_values);
    RUN(test_config_duplicate_key_later_wins);
    RUN(test_config_duplicate_key_with_bad_value_keeps_earlier);
    RUN(test_config_debug_fault_takes_stage1_phases);
    RUN(test_config_debug_smash_takes_phases_stage1_runs);
    RUN(test_config_unprintable_bytes_are_refused);
    RUN(test_config_bom_and_no_reporter);
    RUN(test_config_reads_only_len_bytes);
    RUN(test_config_kernel_sha256_takes_64_hex_digits);
    RUN(test_config_verified_ignores_debug_keys);
}
