/*
 * config: parses canopy.cfg one line at a time into struct config.
 *
 * Invariant: a setting changes only when its whole line is valid; any problem
 * is reported once, with its line number, and the line is otherwise ignored.
 * The parser reads only text[0..len), never writes past a field and copies
 * nothing unprintable into a report, so a hostile file can only produce
 * bounded, printable messages.
 *
 * Called by stage 1 (main.c) on the file it read, and by the host tests.
 */
#include "config.h"

#include <canopy/compiler.h>
#include <canopy/fmt.h>
#include <canopy/phase.h>
#include <canopy/str.h>

struct parser {
    struct config *cfg;
    config_report_fn report;
    void *ctx;
    unsigned line;
    unsigned problems;
    bool seen[8]; /* keys already set, for the duplicate note */
};

PRINTF_LIKE(2, 3) static void problem(struct parser *p, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->problems++;
    if (p->report)
        p->report(p->ctx, p->line, msg);
}

/*
 * A NUL-terminated copy of s[0..n), cut at QUOTE_MAX bytes, for quoting a
 * bit of the offending line in a report.
 */
#define QUOTE_MAX 40
struct quote {
    char text[QUOTE_MAX + 1];
};

static struct quote quote(const char *s, size_t n)
{
    struct quote q;
    size_t k = n < QUOTE_MAX ? n : QUOTE_MAX;
    for (size_t i = 0; i < k; i++)
        q.text[i] = s[i];
    q.text[k] = '\0';
    return q;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_printable(char c)
{
    return c >= 0x20 && c <= 0x7e;
}

static bool all_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_printable(s[i]))
            return false;
    return true;
}

/* Case-sensitive comparison of s[0..n) with a NUL-terminated word. */
static bool word_is(const char *s, size_t n, const char *word)
{
    size_t i = 0;
    for (; i < n && word[i]; i++)
        if (s[i] != word[i])
            return false;
    return i == n && word[i] == '\0';
}

static void copy_value(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
    dst[n] = '\0';
}

static bool set_kernel(struct parser *p, const char *v, size_t n)
{
    if (n == 0) {
        problem(p, "kernel= is empty; keeping %s", p->cfg->kernel);
        return false;
    }
    if (n >= CONFIG_PATH_MAX) {
        problem(p, "kernel= value is too long (%zu bytes, at most %d)", n, CONFIG_PATH_MAX - 1);
        return false;
    }
    if (v[0] != '/') {
        problem(p, "kernel= must be an absolute path starting with '/'");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\\') {
            problem(p, "kernel= uses '/' as the separator, not '\\'");
            return false;
        }
    }
    copy_value(p->cfg->kernel, v, n);
    return true;
}

static bool set_cmdline(struct parser *p, const char *v, size_t n)
{
    if (n >= CONFIG_CMDLINE_MAX) {
        problem(p, "cmdline= value is too long (%zu bytes, at most %d)", n, CONFIG_CMDLINE_MAX - 1);
        return false;
    }
    copy_value(p->cfg->cmdline, v, n);
    return true;
}

static bool set_serial(struct parser *p, const char *v, size_t n)
{
    if (word_is(v, n, "on") || word_is(v, n, "yes") || word_is(v, n, "true") || word_is(v, n, "1"))
        p->cfg->serial = true;
    else if (word_is(v, n, "off") || word_is(v, n, "no") || word_is(v, n, "false") ||
             word_is(v, n, "0"))
        p->cfg->serial = false;
    else {
        problem(p, "serial= takes on or off, not '%s'", quote(v, n).text);
        return false;
    }
    return true;
}

static bool set_verbose(struct parser *p, const char *v, size_t n)
{
    uint64_t level;
    if (!str_parse_u64(v, n, &level) || level > CONFIG_VERBOSE_MAX) {
        problem(p, "verbose= takes a number from 0 to %d, not '%s'", CONFIG_VERBOSE_MAX,
                quote(v, n).text);
        return false;
    }
    p->cfg->verbose = (unsigned)level;
    return true;
}

static bool set_resolution(struct parser *p, const char *v, size_t n)
{
    if (word_is(v, n, "current")) {
        p->cfg->fb_width = p->cfg->fb_height = 0;
        return true;
    }
    size_t x = 0;
    while (x < n && v[x] != 'x')
        x++;
    uint64_t w, h;
    if (x == n || !str_parse_u64(v, x, &w) || !str_parse_u64(v + x + 1, n - x - 1, &h) || w == 0 ||
        h == 0 || w > 65535 || h > 65535) {
        problem(p, "resolution= takes WIDTHxHEIGHT or current, not '%s'", quote(v, n).text);
        return false;
    }
    p->cfg->fb_width = (uint32_t)w;
    p->cfg->fb_height = (uint32_t)h;
    return true;
}

/*
 * The test and debug aids (docs/stage1.md): "off", or the stage 1 phase
 * from CONFIG_FAULT_FIRST to last at which stage 1 fails on purpose.
 */
static bool set_fault_phase(struct parser *p, const char *key, const char *v, size_t n,
                            enum canopy_phase last, unsigned *out)
{
    enum canopy_phase ph;
    if (word_is(v, n, "off")) {
        *out = CONFIG_NO_FAULT;
        return true;
    }
    if (!phase_parse(v, n, &ph) || ph < CONFIG_FAULT_FIRST || ph > last) {
        problem(p, "%s= takes off or a stage 1 phase from %s to %s, not '%s'", key,
                phase_name(CONFIG_FAULT_FIRST), phase_name(last), quote(v, n).text);
        return false;
    }
    *out = ph;
    return true;
}

/* A page fault when stage 1 reaches the phase. */
static bool set_debug_fault(struct parser *p, const char *v, size_t n)
{
    return set_fault_phase(p, "debug_fault", v, n, CONFIG_FAULT_LAST, &p->cfg->debug_fault);
}

/* A stack overrun that the canary check catches, at the phase. */
static bool set_debug_smash(struct parser *p, const char *v, size_t n)
{
    return set_fault_phase(p, "debug_smash", v, n, CONFIG_SMASH_LAST, &p->cfg->debug_smash);
}

/* The kernel's SHA-256 as 64 hex digits (either case). */
static bool set_kernel_sha256(struct parser *p, const char *v, size_t n)
{
    if (!sha256_from_hex(v, n, &p->cfg->kernel_sha256)) {
        problem(p, "kernel_sha256= takes 64 hex digits, not '%s'", quote(v, n).text);
        return false;
    }
    p->cfg->kernel_pinned = true;
    return true;
}

static const struct {
    const char *name;
    bool (*set)(struct parser *p, const char *v, size_t n);
} keys[] = {
    {"kernel", set_kernel},           {"cmdline", set_cmdline},
    {"serial", set_serial},           {"verbose", set_verbose},
    {"resolution", set_resolution},   {"debug_fault", set_debug_fault},
    {"debug_smash", set_debug_smash}, {"kernel_sha256", set_kernel_sha256},
};
_Static_assert(sizeof(keys) / sizeof(keys[0]) <= sizeof(((struct parser *)0)->seen),
               "one seen flag per key");

/* Handles one line, s[0..n), without its newline. */
static void parse_line(struct parser *p, const char *s, size_t n)
{
    while (n > 0 && is_blank(*s))
        s++, n--;
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    if (n == 0 || s[0] == '#')
        return;
    if (!all_printable(s, n)) {
        problem(p, "line holds characters that are not printable ASCII; ignored");
        return;
    }
    size_t eq = 0;
    while (eq < n && s[eq] != '=')
        eq++;
    if (eq == n) {
        problem(p, "malformed line (expected key=value): '%s'", quote(s, n).text);
        return;
    }
    size_t klen = eq;
    while (klen > 0 && is_blank(s[klen - 1]))
        klen--;
    if (klen == 0) {
        problem(p, "malformed line (no key before '=')");
        return;
    }
    const char *v = s + eq + 1;
    size_t vlen = n - eq - 1;
    while (vlen > 0 && is_blank(*v))
        v++, vlen--;

    /* A verified file's test and debug aids, known or not, change nothing. */
    if (p->cfg->verified && klen >= 6 && word_is(s, 6, "debug_")) {
        p->cfg->debug_ignored++;
        return;
    }

    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        if (!word_is(s, klen, keys[k].name))
            continue;
        /*
         * A rejected value leaves the earlier setting in place, so the note
         * that a later value replaces an earlier one is only true, and only
         * given, when the later value was taken.
         */
        if (keys[k].set(p, v, vlen) && p->seen[k])
            problem(p, "%s= given again; the later value counts", keys[k].name);
        p->seen[k] = true;
        return;
    }
    problem(p, "unknown key '%s'", quote(s, klen).text);
}

void config_defaults(struct config *cfg)
{
    str_copy(cfg->kernel, CONFIG_DEFAULT_KERNEL, sizeof(cfg->kernel));
    cfg->cmdline[0] = '\0';
    cfg->serial = true;
    cfg->verbose = 0;
    cfg->fb_width = 0;
    cfg->fb_height = 0;
    cfg->debug_fault = CONFIG_NO_FAULT;
    cfg->debug_smash = CONFIG_NO_FAULT;
    cfg->kernel_pinned = false;
    for (size_t i = 0; i < sizeof(cfg->kernel_sha256.bytes); i++)
        cfg->kernel_sha256.bytes[i] = 0;
    cfg->verified = false;
    cfg->debug_ignored = 0;
}

unsigned config_parse(struct config *cfg, const char *text, size_t len, config_report_fn report,
                      void *ctx)
{
    struct parser p = {.cfg = cfg, .report = report, .ctx = ctx, .line = 0};
    size_t i = 0;
    /* A UTF-8 byte order mark, as some editors write one, is not part of the first key. */
    if (len >= 3 && (unsigned char)text[0] == 0xef && (unsigned char)text[1] == 0xbb &&
        (unsigned char)text[2] == 0xbf)
        i = 3;
    while (i < len) {
        size_t end = i;
        while (end < len && text[end] != '\n')
            end++;
        p.line++;
        parse_line(&p, text + i, end - i);
        i = end + 1;
    }
    return p.problems;
}
