/*
 * libFuzzer target for the canopy.cfg parser. Any bytes are a config file;
 * afterwards every setting must still be one the boot can use (an absolute
 * kernel path, printable NUL-terminated strings, verbose within range), each
 * reported problem must be one printable line with a line number inside the
 * file, and the count returned must match the reports. Parsed again as a
 * verified file, the same bytes must give the same settings with every debug
 * aid off.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>

#include "../load/config.h"

struct seen {
    unsigned reports;
    unsigned max_line;
};

static void report(void *ctx, unsigned line, const char *problem)
{
    struct seen *s = ctx;
    s->reports++;
    if (!(line >= 1 && line <= s->max_line))
        FUZZ_FAIL();
    size_t n = strlen(problem);
    if (!(n > 0 && n < 160))
        FUZZ_FAIL();
    for (size_t i = 0; i < n; i++)
        if (!(problem[i] >= 0x20 && problem[i] <= 0x7e))
            FUZZ_FAIL();
}

static void require_printable(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    if (nul == NULL)
        FUZZ_FAIL();
    size_t n = (size_t)(nul - s);
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 0x20 && s[i] <= 0x7e))
            FUZZ_FAIL();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    struct seen seen = {.max_line = 1};
    for (size_t i = 0; i < size; i++)
        seen.max_line += data[i] == '\n';
    config_defaults(&cfg);
    /* A copy of exactly size bytes, so ASan catches any read past the end. */
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    unsigned problems = config_parse(&cfg, text, size, report, &seen);
    free(text);
    if (problems != seen.reports)
        FUZZ_FAIL();
    require_printable(cfg.kernel, sizeof(cfg.kernel));
    require_printable(cfg.cmdline, sizeof(cfg.cmdline));
    if (!(cfg.kernel[0] == '/' && strchr(cfg.kernel, '\\') == NULL))
        FUZZ_FAIL();
    if (cfg.verbose > CONFIG_VERBOSE_MAX)
        FUZZ_FAIL();
    if (!((cfg.fb_width == 0) == (cfg.fb_height == 0)))
        FUZZ_FAIL();
    if (cfg.debug_ignored != 0)
        FUZZ_FAIL();

    struct config verified;
    struct seen seen2 = {.max_line = seen.max_line};
    config_defaults(&verified);
    verified.verified = true;
    text = malloc(size ? size : 1);
    memcpy(text, data, size);
    config_parse(&verified, text, size, report, &seen2);
    free(text);
    if (!(verified.debug_fault == CONFIG_NO_FAULT && verified.debug_smash == CONFIG_NO_FAULT))
        FUZZ_FAIL();
    if (!(strcmp(verified.kernel, cfg.kernel) == 0 && strcmp(verified.cmdline, cfg.cmdline) == 0))
        FUZZ_FAIL();
    if (!(verified.serial == cfg.serial && verified.verbose == cfg.verbose))
        FUZZ_FAIL();
    if (!(verified.fb_width == cfg.fb_width && verified.fb_height == cfg.fb_height))
        FUZZ_FAIL();
    if (verified.kernel_pinned != cfg.kernel_pinned)
        FUZZ_FAIL();
    if (memcmp(&verified.kernel_sha256, &cfg.kernel_sha256, sizeof(cfg.kernel_sha256)) != 0)
        FUZZ_FAIL();
    return 0;
}
