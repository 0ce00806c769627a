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

#include "../load/config.h"

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

struct seen {
    unsigned reports;
    unsigned max_line;
};

static void report(void *ctx, unsigned line, const char *problem)
{
    struct seen *s = ctx;
    s->reports++;
    REQUIRE(line >= 1 && line <= s->max_line);
    size_t n = strlen(problem);
    REQUIRE(n > 0 && n < 160);
    for (size_t i = 0; i < n; i++)
        REQUIRE(problem[i] >= 0x20 && problem[i] <= 0x7e);
}

static void require_printable(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    REQUIRE(nul != NULL);
    size_t n = (size_t)(nul - s);
    for (size_t i = 0; i < n; i++)
        REQUIRE(s[i] >= 0x20 && s[i] <= 0x7e);
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
    REQUIRE(problems == seen.reports);
    require_printable(cfg.kernel, sizeof(cfg.kernel));
    require_printable(cfg.cmdline, sizeof(cfg.cmdline));
    REQUIRE(cfg.kernel[0] == '/' && strchr(cfg.kernel, '\\') == NULL);
    REQUIRE(cfg.verbose <= CONFIG_VERBOSE_MAX);
    REQUIRE((cfg.fb_width == 0) == (cfg.fb_height == 0));
    REQUIRE(cfg.debug_ignored == 0);

    struct config verified;
    struct seen seen2 = {.max_line = seen.max_line};
    config_defaults(&verified);
    verified.verified = true;
    text = malloc(size ? size : 1);
    memcpy(text, data, size);
    config_parse(&verified, text, size, report, &seen2);
    free(text);
    REQUIRE(verified.debug_fault == CONFIG_NO_FAULT && verified.debug_smash == CONFIG_NO_FAULT);
    REQUIRE(strcmp(verified.kernel, cfg.kernel) == 0 && strcmp(verified.cmdline, cfg.cmdline) == 0);
    REQUIRE(verified.serial == cfg.serial && verified.verbose == cfg.verbose);
    REQUIRE(verified.fb_width == cfg.fb_width && verified.fb_height == cfg.fb_height);
    REQUIRE(verified.kernel_pinned == cfg.kernel_pinned);
    REQUIRE(memcmp(&verified.kernel_sha256, &cfg.kernel_sha256, sizeof(cfg.kernel_sha256)) == 0);
    return 0;
}
