/*
 * libFuzzer target for the shell's line editor, tokenizer and commands: the
 * input bytes are typed into a shell over the fake kernel, one by one.
 *
 * After every byte the editor's state is compared with a naive model of the
 * documented rules (printable characters up to SHELL_LINE_MAX - 1, 0x08/0x7f
 * erase, CR, LF or CRLF end a line, any other byte poisons the line). At the
 * end a newline and `help` are typed and the reply must be exactly the one a
 * fresh shell gives. The sanitizers catch the rest.
 */
#include "fake_ops.h"

#include <canopy/check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A malloc'ed copy of s (strdup is not C17). */
static char *dup_text(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    memcpy(d, s, n);
    return d;
}

struct model {
    char line[SHELL_LINE_MAX];
    size_t len;
    bool bad;
    bool after_cr;
    uint64_t lines, rejected;
};

static void model_input(struct model *m, uint8_t c)
{
    bool crlf = c == '\n' && m->after_cr;
    m->after_cr = c == '\r';
    if (crlf)
        return;
    if (c == '\r' || c == '\n') {
        m->lines++;
        m->rejected += m->bad;
        m->len = 0;
        m->bad = false;
    } else if (c == 0x08 || c == 0x7f) {
        if (!m->bad && m->len)
            m->len--;
    } else if (m->bad) {
        /* nothing more of a bad line is kept */
    } else if (c >= 0x20 && c < 0x7f && m->len + 1 < SHELL_LINE_MAX) {
        m->line[m->len++] = (char)c;
    } else {
        m->bad = true;
    }
}

static void fail(const char *what)
{
    fprintf(stderr, "shell_fuzz: %s\n", what);
    abort();
}

static char *reference_help(void)
{
    static char *ref;
    if (!ref) {
        struct fake f;
        struct shell_ops ops;
        struct shell sh;
        fake_init(&f, &ops, 1 << 16);
        shell_init(&sh, &ops);
        fake_type(&sh, "help\n");
        ref = dup_text(f.out);
        fake_free(&f);
    }
    return ref;
}

/*
 * The fake machine is built once, and each input starts from a copy of that
 * baseline: fake_init's fill of the fake memory and its output buffer cost
 * more than a short input's commands. The copy restores every field (the
 * shell only reads the machine; the counters it bumps are plain data) and
 * shares the one output buffer, which fake_clear empties.
 */
static struct fake f, baseline;
static struct shell_ops baseline_ops;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!baseline.out) {
        fake_init(&f, &baseline_ops, 1 << 16); /* baseline_ops.ctx is &f */
        baseline = f;
    }
    f = baseline;
    fake_clear(&f);
    struct shell_ops ops = baseline_ops;
    struct shell sh;
    shell_init(&sh, &ops);
    shell_prompt(&sh);
    /* The first byte picks the paging depth, so both canonical rules get fuzzed. */
    if (size > 0 && (data[0] & 1))
        ops.paging_levels = 5;

    struct model m = {0};
    for (size_t i = 0; i < size; i++) {
        shell_input(&sh, (char)data[i]);
        model_input(&m, data[i]);
        if (sh.len != m.len || sh.line[sh.len] != 0 || memcmp(sh.line, m.line, m.len) != 0)
            fail("line buffer differs from the model");
        if ((sh.fault != SHELL_LINE_OK) != m.bad)
            fail("fault state differs from the model");
        if (sh.lines != m.lines || sh.rejected != m.rejected)
            fail("line counts differ from the model");
        if (f.peek_crossed_page)
            fail("a peek spanned two pages");
        if (f.out_len > (1 << 15))
            fake_clear(&f);
    }

    /* End whatever was typed (a CRLF's LF may be swallowed: the CR ended it already). */
    shell_input(&sh, '\n');
    fake_clear(&f);
    fake_type(&sh, "help\n");
    if (strcmp(f.out, reference_help()) != 0)
        fail("help does not answer as on a fresh shell");
    return 0;
}
