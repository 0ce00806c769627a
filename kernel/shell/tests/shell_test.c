/*
 * Host tests for the debug shell: the line editor (echo, erase, line ends,
 * control characters, overlong lines), every command's argument checks and
 * tables against a fake kernel, and a long run of hostile input after which
 * `help` must still answer exactly as on a fresh shell.
 */
#include "fake_ops.h"

#include <canopy/check.h>
#include <canopy/rng.h>
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

unsigned check_passed, check_failed;

/* The output must be exactly `want`. */
#define OUT_IS(f, want)                                                                            \
    CHECKF(strcmp((f)->out, (want)) == 0, "output\n---\n%s\n--- want\n%s\n---", (f)->out, (want))
/* The output must contain `want`. */
#define OUT_HAS(f, want)                                                                           \
    CHECKF(strstr((f)->out, (want)) != NULL, "output\n---\n%s\n--- lacks\n%s\n---", (f)->out,      \
           (want))
#define OUT_LACKS(f, want)                                                                         \
    CHECKF(strstr((f)->out, (want)) == NULL, "output\n---\n%s\n--- has\n%s\n---", (f)->out, (want))

struct rig {
    struct fake f;
    struct shell_ops ops;
    struct shell sh;
};

static void rig_init(struct rig *r)
{
    fake_init(&r->f, &r->ops, 1 << 20);
    shell_init(&r->sh, &r->ops);
}

/* Types line + "\n" into a shell at a prompt, clearing output first. */
static void rig_type(struct rig *r, const char *line)
{
    fake_clear(&r->f);
    fake_type(&r->sh, line);
    fake_type(&r->sh, "\n");
}

/* The output a command line gives: its echo, a newline, `body`, the prompt. */
static void expect_reply(struct rig *r, const char *line, const char *body)
{
    char want[4096];
    snprintf(want, sizeof(want), "%s\n%s%s", line, body, SHELL_PROMPT);
    rig_type(r, line);
    CHECKF(strcmp(r->f.out, want) == 0, "line '%s' gave\n---\n%s\n--- want\n%s\n---", line,
           r->f.out, want);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- the line editor ----------------------------------------------------- */

static void test_prompt_and_echo(void)
{
    struct rig r;
    rig_init(&r);
    CHECKF(r.f.out_len == 0, "shell_init printed '%s'", r.f.out);
    shell_prompt(&r.sh);
    OUT_IS(&r.f, "canopy> ");
    fake_clear(&r.f);
    fake_type(&r.sh, "he");
    OUT_IS(&r.f, "he");
    CHECKF(r.sh.len == 2 && strcmp(r.sh.line, "he") == 0, "buffer '%s'", r.sh.line);
    fake_free(&r.f);
}

static void test_backspace_and_delete_erase(void)
{
    struct rig r;
    rig_init(&r);
    fake_type(&r.sh, "helx\b");
    CHECKF(strcmp(r.sh.line, "hel") == 0, "after 0x08: '%s'", r.sh.line);
    fake_clear(&r.f);
    fake_type(&r.sh, "pp\x7f");
    OUT_IS(&r.f, "pp\b \b");
    CHECKF(strcmp(r.sh.line, "help") == 0, "after 0x7f: '%s'", r.sh.line);
    fake_type(&r.sh, "\b\b\b\b\b\b\x7f");
    CHECKF(r.sh.len == 0, "erasing past the start left %zu", r.sh.len);
    fake_clear(&r.f);
    fake_type(&r.sh, "\b");
    CHECKF(r.f.out_len == 0, "erasing an empty line echoed '%s'", r.f.out);
    /* The erased characters are gone from the command too. */
    rig_type(&r, "memx\b");
    OUT_HAS(&r.f, "mem: 8192 frames tracked");
    fake_free(&r.f);
}

static void test_crlf_ends_one_line(void)
{
    struct rig r;
    rig_init(&r);
    fake_type(&r.sh, "help\r\n");
    CHECKF(r.sh.lines == 1 && r.sh.commands == 1, "CRLF: %llu lines, %llu commands",
           (unsigned long long)r.sh.lines, (unsigned long long)r.sh.commands);
    CHECKF(count(r.f.out, SHELL_PROMPT) == 1, "CRLF gave %d prompts", count(r.f.out, SHELL_PROMPT));
    fake_type(&r.sh, "help\r");
    CHECKF(r.sh.lines == 2, "CR alone: %llu lines", (unsigned long long)r.sh.lines);
    fake_type(&r.sh, "\n");
    CHECKF(r.sh.lines == 2, "the LF of a split CRLF counted");
    fake_type(&r.sh, "\n");
    CHECKF(r.sh.lines == 3, "LF after a CRLF: %llu lines", (unsigned long long)r.sh.lines);
    fake_type(&r.sh, "\r\r\n\n\r");
    CHECKF(r.sh.lines == 7, "CR CR LF LF CR: %llu lines", (unsigned long long)r.sh.lines);
    /* A CR followed by text and LF: the LF is a line end of its own. */
    fake_type(&r.sh, "\rx\n");
    CHECKF(r.sh.lines == 9, "CR x LF: %llu lines", (unsigned long long)r.sh.lines);
    fake_free(&r.f);
}

static void test_empty_line_gives_a_prompt_only(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "", "");
    expect_reply(&r, "    ", "");
    CHECKF(r.sh.commands == 0, "blank lines dispatched %llu commands",
           (unsigned long long)r.sh.commands);
    fake_free(&r.f);
}

static void test_control_character_discards_line_with_one_error(void)
{
    struct rig r;
    rig_init(&r);
    rig_type(&r, "he\x01lp\x02\x1b[A");
    OUT_IS(&r.f, "he\nerror: control character 0x01 in the line, discarded\ncanopy> ");
    CHECKF(r.sh.commands == 0 && r.sh.rejected == 1, "commands %llu rejected %llu",
           (unsigned long long)r.sh.commands, (unsigned long long)r.sh.rejected);
    rig_type(&r, "\tmem");
    OUT_IS(&r.f, "\nerror: control character 0x09 in the line, discarded\ncanopy> ");
    rig_type(&r, "mem\xc3\xa9");
    OUT_IS(&r.f, "mem\nerror: non-ASCII byte 0xc3 in the line, discarded\ncanopy> ");
    char nul_line[] = {'m', 0, 'e', '\n'};
    fake_clear(&r.f);
    fake_type_n(&r.sh, (const uint8_t *)nul_line, sizeof(nul_line));
    OUT_IS(&r.f, "m\nerror: control character 0x00 in the line, discarded\ncanopy> ");
    /* Erasing does not undo a fault: the line is already lost. */
    rig_type(&r, "x\x01\b\bhelp");
    OUT_HAS(&r.f, "error: control character 0x01");
    /* The next line is fine again. */
    rig_type(&r, "mem");
    OUT_HAS(&r.f, "mem: 8192 frames tracked");
    fake_free(&r.f);
}

static void test_overlong_line_is_discarded_to_its_end(void)
{
    struct rig r;
    rig_init(&r);
    char line[1200];
    memset(line, 'a', sizeof(line) - 1);
    line[sizeof(line) - 1] = 0;
    rig_type(&r, line);
    char want[400];
    memset(want, 'a', SHELL_LINE_MAX - 1);
    snprintf(want + SHELL_LINE_MAX - 1, sizeof(want) - (SHELL_LINE_MAX - 1),
             "\nerror: line longer than %d characters, discarded\ncanopy> ", SHELL_LINE_MAX - 1);
    OUT_IS(&r.f, want);
    CHECKF(r.sh.lines == 1 && r.sh.rejected == 1, "one overlong line counted as %llu lines",
           (unsigned long long)r.sh.lines);

    /* Exactly SHELL_LINE_MAX - 1 characters is allowed (and is an unknown command). */
    line[SHELL_LINE_MAX - 1] = 0;
    rig_type(&r, line);
    OUT_HAS(&r.f, "error: unknown command 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    OUT_LACKS(&r.f, "longer than");

    /* A command at the limit with spaces still runs. */
    char padded[SHELL_LINE_MAX];
    memset(padded, ' ', SHELL_LINE_MAX - 1);
    memcpy(padded + SHELL_LINE_MAX - 5, "help", 4);
    padded[SHELL_LINE_MAX - 1] = 0;
    rig_type(&r, padded);
    OUT_HAS(&r.f, "commands:");
    fake_free(&r.f);
}

static void test_unknown_command(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "frobnicate now",
                 "error: unknown command 'frobnicate', type help for the list\n");
    expect_reply(&r, "HELP", "error: unknown command 'HELP', type help for the list\n");
    fake_free(&r.f);
}

/* ---- commands ------------------------------------------------------------ */

static void test_help_lists_every_command(void)
{
    struct rig r;
    rig_init(&r);
    rig_type(&r, "help");
    const char *names[] = {
        "help",    "mem",           "memmap",   "vmas",     "pt [qemu|tlb|check [efi]|START END]",
        "walk VA", "peek VA [LEN]", "selftest", "boottime", "reboot",
        "poweroff"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "\n  %s ", names[i]);
        OUT_HAS(&r.f, want);
    }
    expect_reply(&r, "help me", "help: unexpected argument 'me' (usage: help)\n");
    fake_free(&r.f);
}

static void test_extra_arguments_are_named(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "mem x", "mem: unexpected argument 'x' (usage: mem)\n");
    expect_reply(&r, "memmap 1 2", "memmap: unexpected argument '1' (usage: memmap)\n");
    expect_reply(&r, "vmas all", "vmas: unexpected argument 'all' (usage: vmas)\n");
    expect_reply(&r, "selftest now", "selftest: unexpected argument 'now' (usage: selftest)\n");
    expect_reply(&r, "boottime ms", "boottime: unexpected argument 'ms' (usage: boottime)\n");
    expect_reply(&r, "reboot now", "reboot: unexpected argument 'now' (usage: reboot)\n");
    expect_reply(&r, "poweroff -f", "poweroff: unexpected argument '-f' (usage: poweroff)\n");
    expect_reply(&r, "walk 1000 2000", "walk: unexpected argument '2000' (usage: walk VA)\n");
    expect_reply(&r, "peek 1000 16 x", "peek: unexpected argument 'x' (usage: peek VA [LEN])\n");
    /* More tokens than the tokenizer keeps: the first extra one is still named. */
    expect_reply(&r, "pt 1 2 3 4 5 6 7 8 9 10",
                 "pt: unexpected argument '3' (usage: pt [qemu|tlb|check [efi]|START END])\n");
    expect_reply(&r, "mem 1 2 3 4 5 6 7 8 9 10", "mem: unexpected argument '1' (usage: mem)\n");
    CHECKF(r.f.reboot_calls == 0 && r.f.poweroff_calls == 0 && r.f.selftest_calls == 0,
           "a command with bad arguments ran");
    fake_free(&r.f);
}

static void test_walk_arguments(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "walk", "walk: missing VA (usage: walk VA)\n");
    expect_reply(&r, "walk zz", "walk: VA 'zz' is not a 64-bit hex number\n");
    expect_reply(&r, "walk 0x", "walk: VA '0x' is not a 64-bit hex number\n");
    expect_reply(&r, "walk 1ffffffffffffffff",
                 "walk: VA '1ffffffffffffffff' is not a 64-bit hex number\n");
    expect_reply(&r, "walk 0000800000000000",
                 "walk: VA 0000800000000000 is not canonical (48-bit addresses)\n");
    expect_reply(&r, "walk fffe000000000000",
                 "walk: VA fffe000000000000 is not canonical (48-bit addresses)\n");
    CHECKF(r.f.walk_calls == 0, "walk ran on a bad address");
    /* With 5-level paging the same address is canonical. */
    r.ops.paging_levels = 5;
    rig_type(&r, "walk 0000800000000000");
    CHECKF(r.f.walk_calls == 1 && r.f.walk_va == 0x0000800000000000ull, "57-bit walk not run");
    expect_reply(&r, "walk 0100000000000000",
                 "walk: VA 0100000000000000 is not canonical (57-bit addresses)\n");
    fake_free(&r.f);
}

static void test_walk_prints_levels_and_phys(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(
        &r, "walk 0xffff800000011234",
        "walk ffff800000011234: cr3 0000000000001000, 4-level paging\n"
        "  PML4[256] = 0000000000002003  P W\n"
        "  PDPT[  0] = 0000000000003003  P W\n"
        "  PD  [  0] = 0000000000004003  P W\n"
        "  PT  [ 17] = 8000000000201163  P W A D G NX\n"
        "  -> phys 0000000000201234 (4K page at 0000000000201000), effective rw- kernel\n");
    expect_reply(&r, "walk ffffffff80000000",
                 "walk ffffffff80000000: cr3 0000000000001000, 4-level paging\n"
                 "  PML4[511] = 0000000000002003  P W\n"
                 "  PDPT[510] = 0000000000003003  P W\n"
                 "  PD  [  0] = 0000000000000000  (empty)\n"
                 "  not mapped: the PD entry is not present\n");
    fake_free(&r.f);
}

static void test_peek_arguments(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "peek", "peek: missing VA (usage: peek VA [LEN])\n");
    expect_reply(&r, "peek g", "peek: VA 'g' is not a 64-bit hex number\n");
    expect_reply(&r, "peek 1000 ten",
                 "peek: LEN 'ten' is not a number (decimal, or hex with 0x)\n");
    expect_reply(&r, "peek 1000 0", "peek: LEN 0 is out of range (1 to 4096)\n");
    expect_reply(&r, "peek 1000 4097", "peek: LEN 4097 is out of range (1 to 4096)\n");
    expect_reply(&r, "peek 1000 0x1001", "peek: LEN 4097 is out of range (1 to 4096)\n");
    expect_reply(&r, "peek 1000 99999999999999999999999",
                 "peek: LEN '99999999999999999999999' is not a number (decimal, or hex with 0x)\n");
    expect_reply(&r, "peek ffffffffffffffff 2",
                 "peek: ffffffffffffffff + 2 wraps past the top of memory\n");
    expect_reply(&r, "peek 00007ffffffffff0 32",
                 "peek: 00007ffffffffff0 + 32 runs into non-canonical addresses\n");
    expect_reply(&r, "peek 8000000000000000",
                 "peek: VA 8000000000000000 is not canonical (48-bit addresses)\n");
    CHECKF(r.f.peek_calls == 0, "peek read memory for a bad request");
    fake_free(&r.f);
}

static void test_peek_dumps_and_reports_unmapped(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "peek ffff800000010000 20",
                 "ffff800000010000: 43 61 6e 6f 70 79 21 34  3b 42 49 50 57 5e 65 6c  "
                 "|Canopy!4;BIPW^el|\n"
                 "ffff800000010010: 73 7a 81 88                                       |sz..|\n");
    /* Running off the mapped pages: the bytes that could be read, then the first bad address. */
    expect_reply(&r, "peek ffff800000011ff8 0x20",
                 "ffff800000011ff8: cb d2 d9 e0 e7 ee f5 fc                           "
                 "|........|\n"
                 "peek: ffff800000012000 is not mapped\n");
    CHECKF(!r.f.peek_crossed_page, "a peek callback spanned two pages");
    expect_reply(&r, "peek ffff800000000000 1", "peek: ffff800000000000 is not mapped\n");
    /* The full 4096 bytes from a page-misaligned start: 256 lines, all in pieces within a page. */
    rig_type(&r, "peek ffff800000010008 4096");
    CHECKF(count(r.f.out, "|\n") == 256, "%d dump lines", count(r.f.out, "|\n"));
    CHECKF(!r.f.peek_crossed_page, "a peek callback spanned two pages");
    /* Default length. */
    rig_type(&r, "peek ffff800000010000");
    CHECKF(count(r.f.out, "|\n") == SHELL_PEEK_LEN / 16, "%d default lines", count(r.f.out, "|\n"));
    fake_free(&r.f);
}

static void test_pt_modes_and_ranges(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "pt",
                 "--- pt begin ---\ndump 0 0000000000000000 ffffffffffffffff\n--- pt end ---\n");
    expect_reply(&r, "pt qemu",
                 "--- pt begin ---\ndump 1 0000000000000000 ffffffffffffffff\n--- pt end ---\n");
    expect_reply(&r, "pt tlb",
                 "--- pt begin ---\ndump 2 0000000000000000 ffffffffffffffff\n--- pt end ---\n");
    expect_reply(&r, "pt check",
                 "--- pt begin ---\ndump 3 0000000000000000 ffffffffffffffff\n--- pt end ---\n");
    expect_reply(&r, "pt check efi",
                 "--- pt begin ---\ndump 4 0000000000000000 ffffffffffffffff\n--- pt end ---\n");
    expect_reply(&r, "pt ffffffff80000000 ffffffff80200000",
                 "--- pt begin ---\ndump 0 ffffffff80000000 ffffffff801fffff\n--- pt end ---\n");
    /* An END just past the lower half is fine: its last byte is canonical. */
    expect_reply(&r, "pt 0 0000800000000000",
                 "--- pt begin ---\ndump 0 0000000000000000 00007fffffffffff\n--- pt end ---\n");
    unsigned calls = r.f.pt_calls;
    expect_reply(&r, "pt qemux",
                 "pt: unknown mode 'qemux' (usage: pt [qemu|tlb|check [efi]|START END])\n");
    expect_reply(&r, "pt 1000", "pt: missing END (usage: pt [qemu|tlb|check [efi]|START END])\n");
    expect_reply(&r, "pt 2000 1000",
                 "pt: END 0000000000001000 is not above START 0000000000002000\n");
    expect_reply(&r, "pt 1000 1000",
                 "pt: END 0000000000001000 is not above START 0000000000001000\n");
    expect_reply(&r, "pt 1000 x", "pt: END 'x' is not a 64-bit hex number\n");
    expect_reply(&r, "pt y 1000", "pt: START 'y' is not a 64-bit hex number\n");
    expect_reply(&r, "pt 0000900000000000 ffff800000000000",
                 "pt: START 0000900000000000 is not canonical (48-bit addresses)\n");
    expect_reply(&r, "pt 1000 0000800000001000",
                 "pt: END 0000800000001000 is not canonical (48-bit addresses)\n");
    expect_reply(&r, "pt qemu tlb",
                 "pt: unexpected argument 'tlb' (usage: pt [qemu|tlb|check [efi]|START END])\n");
    expect_reply(&r, "pt check kernel",
                 "pt: unexpected argument 'kernel' (usage: pt [qemu|tlb|check [efi]|START END])\n");
    expect_reply(&r, "pt qemu efi",
                 "pt: unexpected argument 'efi' (usage: pt [qemu|tlb|check [efi]|START END])\n");
    CHECKF(r.f.pt_calls == calls, "pt dumped on bad arguments");
    fake_free(&r.f);
}

static void test_missing_callbacks_say_not_available(void)
{
    struct rig r;
    rig_init(&r);
    struct shell_ops bare = {.ctx = &r.f, .write = r.ops.write};
    struct shell sh;
    shell_init(&sh, &bare);
    const char *cmds[] = {"mem",       "memmap",   "vmas",     "pt",     "pt tlb",  "walk 1000",
                          "peek 1000", "selftest", "boottime", "reboot", "poweroff"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        fake_clear(&r.f);
        fake_type(&sh, cmds[i]);
        fake_type(&sh, "\n");
        char want[64];
        size_t n = strcspn(cmds[i], " ");
        snprintf(want, sizeof(want), "\n%.*s: not available\ncanopy> ", (int)n, cmds[i]);
        OUT_HAS(&r.f, want);
        CHECKF(count(r.f.out, "\n") == 2, "'%s' printed more than one line: %s", cmds[i], r.f.out);
    }
    /* Argument errors come before availability. */
    fake_clear(&r.f);
    fake_type(&sh, "walk nothex\n");
    OUT_HAS(&r.f, "walk: VA 'nothex' is not a 64-bit hex number");
    fake_free(&r.f);
}

static void test_mem_table(void)
{
    struct rig r;
    rig_init(&r);
    rig_type(&r, "mem");
    OUT_HAS(&r.f, "mem: 8192 frames tracked (32M) from frame 0x0\n");
    OUT_HAS(&r.f, "  free                 6000 frames   24000K\n");
    OUT_HAS(&r.f, "  reclaimable           192 frames     768K\n");
    OUT_HAS(&r.f, "     10     4M            5         5120\n");
    OUT_HAS(&r.f, "      0     4K            2            2\n");
    OUT_HAS(&r.f, "  kernel image            600    2400K\n");
    OUT_LACKS(&r.f, "add up");
    OUT_LACKS(&r.f, "free lists and cache hold");
    OUT_LACKS(&r.f, "  cache ");
    OUT_LACKS(&r.f, "  heap ");
    /* Inconsistent counters are pointed out, not hidden. */
    r.f.pmm.free_blocks[0] = 3;
    r.f.pmm.used_frames = 1001;
    rig_type(&r, "mem");
    OUT_HAS(&r.f, "mem: the counters add up to 8193 frames, not 8192\n");
    OUT_HAS(&r.f, "mem: the free lists and cache hold 6001 frames, not 6000\n");
    /* Frames in a CPU's cache count as free, and are shown. */
    r.f.pmm.free_blocks[0] = 1;
    r.f.pmm.cpu[0].count = 1;
    rig_type(&r, "mem");
    OUT_HAS(&r.f, "  cache     4K                         1\n");
    OUT_HAS(&r.f, "mem: the counters add up to 8193 frames, not 8192\n");
    fake_free(&r.f);
}

static void test_memmap_table(void)
{
    struct rig r;
    rig_init(&r);
    rig_type(&r, "memmap");
    OUT_HAS(&r.f, "memmap: 4 ranges\n");
    OUT_HAS(&r.f, "  0000000000000000-000000000009ffff     640K usable       conventional  0xf\n");
    OUT_HAS(&r.f, "  0000000002000000-00000000020fffff       1M reclaimable  boot-data     0xf\n");
    OUT_HAS(&r.f, "  00000000ffc00000-00000000ffffffff       4M mmio         mmio          "
                  "0x8000000000000001\n");
    OUT_HAS(&r.f, "  totals: usable 32384K reclaimable 1M mmio 4M\n");
    /* A range that would wrap is reported, not printed as if it were real. */
    r.f.map[1].base = 0xfffffffffffff000ull;
    r.f.map[1].page_count = 2;
    rig_type(&r, "memmap");
    OUT_HAS(&r.f, "  fffffffffffff000 (bad range: 2 pages)\n");
    fake_free(&r.f);
}

static void test_vmas_lists_holes(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "vmas",
                 "vmas: kernel address space ffff800000000000-ffffffffffffffff\n"
                 "  ffff800000000000-ffff80007fffffff           2G  rw-  hhdm\n"
                 "  ffff800080000000-ffffbfffffffffff       65534G  ---  (hole)\n"
                 "  ffffc00000000000-ffffc0000000ffff          64K  rw-  stack\n"
                 "  ffffc00000010000-ffffffff7fffffff 68717379520K  ---  (hole)\n"
                 "  ffffffff80000000-ffffffff80003fff          16K  r-x  .text\n"
                 "  ffffffff80004000-ffffffffffffffff     2097136K  ---  (hole)\n"
                 "  3 VMAs\n");
    /* A VMA reaching the end of the space: no trailing hole. */
    r.f.vmas[2].last = UINT64_MAX;
    rig_type(&r, "vmas");
    OUT_LACKS(&r.f, "ffffffff80004000");
    OUT_HAS(&r.f, "  3 VMAs\n");
    /* Overlapping VMAs are reported and the listing stops. */
    r.f.vmas[1].start = 0xffff800000001000ull;
    rig_type(&r, "vmas");
    OUT_HAS(&r.f, "vmas: inconsistent VMA ffff800000001000-ffffc0000000ffff, listing stopped\n");
    /* The whole 64-bit space with nothing in it. */
    r.f.space_start = 0;
    r.f.vma_count = 0;
    rig_type(&r, "vmas");
    OUT_HAS(&r.f, "  0000000000000000-ffffffffffffffff          16E  ---  (hole)\n  0 VMAs\n");
    fake_free(&r.f);
}

static void test_selftest_boottime_reboot_poweroff(void)
{
    struct rig r;
    rig_init(&r);
    expect_reply(&r, "selftest", "selftest: fake test ran\nselftest: passed\n");
    r.f.selftest_result = false;
    expect_reply(&r, "selftest", "selftest: fake test ran\nselftest: FAILED\n");

    rig_type(&r, "boottime");
    OUT_HAS(&r.f, "boottime: TSC at 1000000 Hz\n");
    OUT_HAS(&r.f, "  stage1-entry                     0.000 ms         0.000 ms\n");
    OUT_HAS(&r.f, "  config-read                     12.345 ms        12.345 ms\n");
    OUT_HAS(&r.f, "  kernel-read                (not recorded)\n");
    OUT_HAS(&r.f, "  kernel-entry                  1000.000 ms       987.655 ms\n");
    OUT_HAS(&r.f, "page tables: 9 frames, minimum 9 (equal)\n");
    OUT_HAS(&r.f, "secure boot: off, kernel verified: no\n");
    r.f.boot.secure_boot = true;
    r.f.boot.kernel_verified = true;
    rig_type(&r, "boottime");
    OUT_HAS(&r.f, "secure boot: on, kernel verified: yes\n");
    /* The page-table line in each other case: more than needed, no minimum, no report. */
    static const struct {
        uint32_t used, minimum;
        const char *want;
    } frames[] = {
        {10, 9, "page tables: 10 frames, minimum 9 (NOT the minimum)\n"},
        {10, 0, "page tables: 10 frames, minimum not computed\n"},
        {0, 0, "page tables: not reported\n"},
    };
    for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
        r.f.boot.pt_frames_used = frames[i].used;
        r.f.boot.pt_frames_minimum = frames[i].minimum;
        rig_type(&r, "boottime");
        OUT_HAS(&r.f, frames[i].want);
    }
    r.f.boot.tsc_hz = 0;
    rig_type(&r, "boottime");
    OUT_HAS(&r.f, "boottime: TSC frequency unknown, times in cycles\n");
    OUT_HAS(&r.f, "  kernel-entry                  1000000 cyc       987655 cyc\n");
    r.f.boot.phase_tsc[CANOPY_PHASE_SHELL_READY] = 1; /* earlier than the ones before */
    rig_type(&r, "boottime");
    OUT_HAS(&r.f, "  shell-ready                (out of order)\n");
    memset(r.f.boot.phase_tsc, 0, sizeof(r.f.boot.phase_tsc));
    expect_reply(&r, "boottime", "boottime: no phase was recorded\n");

    expect_reply(&r, "reboot", "rebooting\nreboot: failed, the machine is still running\n");
    CHECKF(r.f.out_at_reboot == strlen("reboot\nrebooting\n"),
           "reboot was called with %zu bytes written", r.f.out_at_reboot);
    expect_reply(&r, "poweroff", "powering off\npoweroff: failed, the machine is still running\n");
    CHECKF(r.f.reboot_calls == 1 && r.f.poweroff_calls == 1, "reboot %u poweroff %u",
           r.f.reboot_calls, r.f.poweroff_calls);
    fake_free(&r.f);
}

static void test_output_is_batched_and_in_order(void)
{
    struct rig r;
    rig_init(&r);
    fake_type(&r.sh, "hel");
    fake_clear(&r.f);
    fake_type(&r.sh, "p\n");
    /* The echo, then about 1 KiB of help text in pieces of at most SHELL_OUT_BUF. */
    unsigned most = 1 + (unsigned)(r.f.out_len / SHELL_OUT_BUF) + 1;
    CHECKF(r.f.writes <= most, "help took %u writes for %zu bytes", r.f.writes, r.f.out_len);
    CHECKF(r.f.out_len > SHELL_OUT_BUF, "help is only %zu bytes", r.f.out_len);
    /* What the shell printed before a callback reaches the console first. */
    r.f.pt_direct = true;
    expect_reply(
        &r, "pt tlb",
        "--- pt begin ---\ndirect\ndump 2 0000000000000000 ffffffffffffffff\n--- pt end ---\n");
    fake_free(&r.f);
}

static void test_shell_run_checks_like_the_editor(void)
{
    struct rig r;
    rig_init(&r);
    fake_clear(&r.f);
    shell_run(&r.sh, "pt check");
    OUT_IS(&r.f, "--- pt begin ---\ndump 3 0000000000000000 ffffffffffffffff\n--- pt end ---\n");
    fake_clear(&r.f);
    shell_run(&r.sh, "mem\x01");
    OUT_IS(&r.f, "error: control character 0x01 in the line, discarded\n");
    char line[400];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = 0;
    fake_clear(&r.f);
    shell_run(&r.sh, line);
    OUT_IS(&r.f, "error: line longer than 255 characters, discarded\n");
    /* A line being typed is not disturbed. */
    fake_type(&r.sh, "he");
    shell_run(&r.sh, "mem");
    fake_type(&r.sh, "lp\n");
    OUT_HAS(&r.f, "commands:");
    fake_free(&r.f);
}

/* ---- hostile input ------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    return xorshift64_next(&rng_state);
}

/* One hostile line body (no CR or LF) into buf; returns its length. */
static size_t hostile_line(uint8_t *buf, size_t cap)
{
    static const char *const words[] = {"help",   "mem",      "memmap",
                                        "vmas",   "pt",       "qemu",
                                        "tlb",    "check",    "walk",
                                        "peek",   "selftest", "boottime",
                                        "reboot", "poweroff", "ffffffffffffffff",
                                        "0",      "0x",       "ffff800000010000",
                                        "4096",   "4097",     "-1"};
    size_t n = 0;
    switch (rnd() % 6) {
    case 0: /* random bytes */
        n = rnd() % 300;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        break;
    case 1: /* very long printable lines */
        n = 200 + rnd() % (cap - 200);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)(0x20 + rnd() % 95);
        break;
    case 2: /* control characters and erases mixed into text */
        n = rnd() % 80;
        for (size_t i = 0; i < n; i++) {
            uint64_t k = rnd() % 4;
            buf[i] = k == 0 ? (uint8_t)(rnd() % 0x20) : k == 1 ? 0x7f : (uint8_t)('a' + rnd() % 26);
        }
        break;
    default: /* commands with random arguments */
        for (int w = 0, words_n = 1 + (int)(rnd() % 5); w < words_n; w++) {
            const char *s = words[rnd() % (sizeof(words) / sizeof(words[0]))];
            size_t len = strlen(s);
            if (n + len + 1 >= cap)
                break;
            memcpy(buf + n, s, len);
            n += len;
            buf[n++] = ' ';
        }
        break;
    }
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = 0x0b;
    return n;
}

static void test_ten_thousand_hostile_lines_then_help(void)
{
    /* The reference: help on a fresh shell. */
    struct rig ref;
    rig_init(&ref);
    rig_type(&ref, "help");
    char *want = dup_text(ref.f.out);
    fake_free(&ref.f);

    struct rig r;
    rig_init(&r);
    shell_prompt(&r.sh);
    static const char *const ends[] = {"\n", "\r", "\r\n"};
    uint8_t line[3000];
    int bad_shape = 0;
    for (int i = 0; i < 10000; i++) {
        size_t n = hostile_line(line, sizeof(line));
        uint64_t before = r.sh.lines;
        fake_clear(&r.f);
        fake_type_n(&r.sh, line, n);
        fake_type(&r.sh, ends[rnd() % 3]);
        /* Each line ends with exactly one prompt and at most one error line. */
        size_t len = r.f.out_len;
        size_t plen = strlen(SHELL_PROMPT);
        bool shape = r.sh.lines == before + 1 && r.sh.len == 0 && len >= plen &&
                     strcmp(r.f.out + len - plen, SHELL_PROMPT) == 0 &&
                     count(r.f.out, "error:") <= 1;
        if (!shape && bad_shape++ < 5)
            CHECKF(false, "line %d gave '%s'", i, r.f.out);
    }
    CHECKF(bad_shape == 0, "%d lines did not end with one prompt", bad_shape);
    CHECKF(r.sh.lines == 10000, "%llu lines counted", (unsigned long long)r.sh.lines);
    CHECKF(r.sh.rejected > 1000, "only %llu lines were rejected",
           (unsigned long long)r.sh.rejected);
    CHECKF(!r.f.peek_crossed_page, "a peek spanned two pages");
    rig_type(&r, "help");
    CHECKF(strcmp(r.f.out, want) == 0, "help after hostile input\n%s\n--- want\n%s", r.f.out, want);
    free(want);
    fake_free(&r.f);
}

int main(void)
{
    test_prompt_and_echo();
    test_backspace_and_delete_erase();
    test_crlf_ends_one_line();
    test_empty_line_gives_a_prompt_only();
    test_control_character_discards_line_with_one_error();
    test_overlong_line_is_discarded_to_its_end();
    test_unknown_command();
    test_help_lists_every_command();
    test_extra_arguments_are_named();
    test_walk_arguments();
    test_walk_prints_levels_and_phys();
    test_peek_arguments();
    test_peek_dumps_and_reports_unmapped();
    test_pt_modes_and_ranges();
    test_missing_callbacks_say_not_available();
    test_mem_table();
    test_memmap_table();
    test_vmas_lists_holes();
    test_selftest_boottime_reboot_poweroff();
    test_output_is_batched_and_in_order();
    test_shell_run_checks_like_the_editor();
    test_ten_thousand_hostile_lines_then_help();
    return check_finish();
}
