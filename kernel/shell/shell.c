/*
 * shell: line editor, tokenizer and commands of the kernel's debug shell.
 *
 * Invariants: line[len] == 0 and len < SHELL_LINE_MAX; once a line has a fault
 * (a control character or too many characters) nothing more of it is stored or
 * echoed, and when it ends it produces exactly one error line. Every completed
 * line, good or bad, is followed by exactly one prompt.
 *
 * Commands check their arguments before they touch the machine: each problem
 * gets one line "CMD: problem (usage: ...)" and the shell goes on. The tables
 * (mem, memmap, vmas, peek, boottime) are formatted here; the kernel's
 * callbacks in struct shell_ops only hand over data. The page-table dumps and
 * the `walk` report are vmm/ptdump's: the dumps through the `pt` callback,
 * the walk report from the walk the `walk` callback hands over.
 *
 * Called by the kernel's main loop (shell_input) and by the host tests and
 * fuzzer in tests/.
 */
#include <kernel/shell.h>

#include <canopy/compiler.h>
#include <canopy/page.h>
#include <canopy/phase.h>
#include <canopy/str.h>
#include <canopy/vaddr.h>
#include <vmm/ptdump.h>

#include <stdarg.h>

#define ARG_SHOWN   32 /* at most this many characters of a bad argument are quoted */
#define PEEK_COLUMN 16 /* bytes per `peek` line */

/* ---- output --------------------------------------------------------------- */

/* Hands the buffered output to the consoles. */
static void flush(struct shell *sh)
{
    if (sh->out_len)
        sh->ops->write(sh->ops->ctx, sh->out, sh->out_len);
    sh->out_len = 0;
}

/* Output is collected so that the consoles see a few large writes, not one per piece. */
static void put(struct shell *sh, const char *s, size_t n)
{
    while (n > 0) {
        if (sh->out_len == sizeof(sh->out))
            flush(sh);
        size_t k = sizeof(sh->out) - sh->out_len;
        if (k > n)
            k = n;
        for (size_t i = 0; i < k; i++)
            sh->out[sh->out_len + i] = s[i];
        sh->out_len += k;
        s += k;
        n -= k;
    }
}

static void shell_sink(void *ctx, const char *s, size_t n)
{
    put(ctx, s, n);
}

static void say(struct shell *sh, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void say(struct shell *sh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fmt_vformat(shell_sink, sh, fmt, ap);
    va_end(ap);
}

/*
 * Writes a byte count as an exact number of the largest unit that divides it:
 * 4096 -> "4K", 3 << 20 -> "3M", 1536 -> "1536"... The whole 64-bit space
 * (size 2^64, passed as 0 with whole = true) is "16E".
 */
static void size_text(char *buf, size_t size, uint64_t bytes, bool whole)
{
    static const struct {
        unsigned shift;
        char unit;
    } units[] = {{60, 'E'}, {50, 'P'}, {40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
    if (whole) {
        str_copy(buf, "16E", size);
        return;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t u = 1ull << units[i].shift;
        if (bytes >= u && bytes % u == 0) {
            fmt_snprintf(buf, size, "%llu%c", (unsigned long long)(bytes / u), units[i].unit);
            return;
        }
    }
    fmt_snprintf(buf, size, "%lluB", (unsigned long long)bytes);
}

/* The size of [start, last] as text. */
static void range_size_text(char *buf, size_t size, uint64_t start, uint64_t last)
{
    uint64_t n = last - start + 1; /* 0 only for the whole space */
    size_text(buf, size, n, n == 0);
}

/* The size of a number of 4 KiB frames as text ("?" if it does not fit 64 bits). */
static void frames_text(char *buf, size_t size, uint64_t frames)
{
    if (frames > UINT64_MAX / PAGE_SIZE)
        str_copy(buf, "?", size);
    else
        size_text(buf, size, frames * PAGE_SIZE, false);
}

/* ---- arguments ------------------------------------------------------------ */

struct args {
    size_t count;              /* tokens, the command included */
    char *v[SHELL_MAX_TOKENS]; /* NUL terminated, inside the line */
    bool too_many;             /* more than SHELL_MAX_TOKENS tokens */
};

/* Splits line at spaces, in place. */
static void tokenize(char *line, struct args *a)
{
    a->count = 0;
    a->too_many = false;
    char *p = line;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == 0)
            return;
        if (a->count == SHELL_MAX_TOKENS) {
            a->too_many = true;
            return;
        }
        a->v[a->count++] = p;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = 0;
    }
}

static size_t text_len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* Quoting length for an argument in an error line: long ones are cut. */
static int shown(const char *s)
{
    size_t n = text_len(s);
    return n > ARG_SHOWN ? ARG_SHOWN : (int)n;
}

static const char *ellipsis(const char *s)
{
    return text_len(s) > ARG_SHOWN ? "..." : "";
}

/* The paging depth addresses are checked against: 4 or 5 levels. */
static unsigned paging_levels(const struct shell *sh)
{
    return sh->ops->paging_levels == 5 ? 5 : 4;
}

static bool is_canonical(const struct shell *sh, uint64_t va)
{
    return va_is_canonical(va, paging_levels(sh));
}

/* Parses a hex address argument; on failure prints "CMD: WHAT 'tok' is not ..." */
static bool arg_hex(struct shell *sh, const char *cmd, const char *what, const char *tok,
                    uint64_t *out)
{
    if (str_parse_hex(tok, text_len(tok), out))
        return true;
    say(sh, "%s: %s '%.*s%s' is not a 64-bit hex number\n", cmd, what, shown(tok), tok,
        ellipsis(tok));
    return false;
}

/* Parses a canonical hex address argument. */
static bool arg_va(struct shell *sh, const char *cmd, const char *what, const char *tok,
                   uint64_t *out)
{
    if (!arg_hex(sh, cmd, what, tok, out))
        return false;
    if (!is_canonical(sh, *out)) {
        say(sh, "%s: %s %016llx is not canonical (%u-bit addresses)\n", cmd, what,
            (unsigned long long)*out, va_bits(paging_levels(sh)));
        return false;
    }
    return true;
}

/* ---- commands --------------------------------------------------------------- */

struct command {
    const char *name;
    const char *usage;
    const char *summary;
    unsigned min_args, max_args; /* arguments after the name */
    const char *arg_names[2];    /* for "missing ..." */
    void (*run)(struct shell *sh, struct args *a);
};

static void cmd_help(struct shell *sh, struct args *a);

static bool available(struct shell *sh, const char *cmd, const void *callback)
{
    if (callback)
        return true;
    say(sh, "%s: not available\n", cmd);
    return false;
}

static void mem_row(struct shell *sh, const char *what, uint64_t frames)
{
    char size[24];
    frames_text(size, sizeof(size), frames);
    say(sh, "  %-12s %12llu frames %8s\n", what, (unsigned long long)frames, size);
}

static void cmd_mem(struct shell *sh, struct args *a)
{
    if (!available(sh, "mem", sh->ops->pmm))
        return;
    const struct pmm *p = sh->ops->pmm(sh->ops->ctx);
    if (!p) {
        say(sh, "mem: no PMM\n");
        return;
    }
    char size[24];
    frames_text(size, sizeof(size), p->frame_count);
    say(sh, "mem: %llu frames tracked (%s) from frame 0x%llx\n", (unsigned long long)p->frame_count,
        size, (unsigned long long)p->base_frame);
    /* The counters with the per-CPU caches' deltas added. */
    struct pmm_counts c;
    pmm_counts(p, &c);
    mem_row(sh, "free", c.free);
    mem_row(sh, "used", c.used);
    mem_row(sh, "reclaimable", c.reclaimable);
    mem_row(sh, "reserved", c.reserved);
    uint64_t sum = c.free + c.used + c.reclaimable + c.reserved;
    if (sum != p->frame_count)
        say(sh, "mem: the counters add up to %llu frames, not %llu\n", (unsigned long long)sum,
            (unsigned long long)p->frame_count);

    say(sh, "  free blocks per order:\n");
    say(sh, "  %5s %6s %12s %12s\n", "order", "block", "blocks", "frames");
    uint64_t listed = 0;
    for (unsigned o = 0; o < PMM_ORDER_COUNT; o++) {
        frames_text(size, sizeof(size), 1ull << o);
        uint64_t frames = p->free_blocks[o] << o;
        listed += frames;
        say(sh, "  %5u %6s %12llu %12llu\n", o, size, (unsigned long long)p->free_blocks[o],
            (unsigned long long)frames);
    }
    /* Freed single frames may wait in the CPUs' caches instead of the lists. */
    if (c.cached)
        say(sh, "  %5s %6s %12s %12llu\n", "cache", "4K", "", (unsigned long long)c.cached);
    listed += c.cached;
    if (listed != c.free)
        say(sh, "mem: the free lists and cache hold %llu frames, not %llu\n",
            (unsigned long long)listed, (unsigned long long)c.free);

    say(sh, "  used frames per owner:\n");
    for (unsigned o = 0; o < CANOPY_OWNER_COUNT; o++) {
        if (c.owner[o] == 0)
            continue;
        frames_text(size, sizeof(size), c.owner[o]);
        say(sh, "  %-14s %12llu %8s\n", pmm_owner_name(o), (unsigned long long)c.owner[o], size);
    }
}

static void cmd_memmap(struct shell *sh, struct args *a)
{
    if (!available(sh, "memmap", sh->ops->memmap))
        return;
    size_t count = 0;
    const struct canopy_mem_range *r = sh->ops->memmap(sh->ops->ctx, &count);
    if (!r)
        count = 0;
    /* Pages per Canopy type, index 0 for types this shell does not know. */
    uint64_t totals[CANOPY_MEM_BAD + 1] = {0};
    char size[24];

    say(sh, "memmap: %llu ranges\n", (unsigned long long)count);
    say(sh, "  %-16s %-16s %8s %-12s %-13s %s\n", "start", "last", "size", "canopy", "efi",
        "attributes");
    for (size_t i = 0; i < count; i++) {
        uint64_t base = r[i].base, pages = r[i].page_count;
        if (pages == 0 || pages > UINT64_MAX / PAGE_SIZE ||
            base > UINT64_MAX - (pages * PAGE_SIZE - 1)) {
            say(sh, "  %016llx (bad range: %llu pages)\n", (unsigned long long)base,
                (unsigned long long)pages);
            continue;
        }
        uint64_t last = base + (pages * PAGE_SIZE - 1);
        frames_text(size, sizeof(size), pages);
        say(sh, "  %016llx-%016llx %8s %-12s %-13s 0x%llx\n", (unsigned long long)base,
            (unsigned long long)last, size, memmap_type_name(r[i].type),
            memmap_efi_type_name(r[i].efi_type), (unsigned long long)r[i].efi_attr);
        uint32_t t = r[i].type <= CANOPY_MEM_BAD ? r[i].type : 0;
        totals[t] += pages;
    }
    say(sh, "  totals:");
    for (uint32_t t = 0; t <= CANOPY_MEM_BAD; t++) {
        if (totals[t] == 0)
            continue;
        frames_text(size, sizeof(size), totals[t]);
        say(sh, " %s %s", memmap_type_name(t), size);
    }
    say(sh, "\n");
}

/* One `vmas` row: a VMA, or a hole when v is NULL. */
static void vma_row(struct shell *sh, uint64_t start, uint64_t last, const struct shell_vma *v)
{
    char size[24];
    range_size_text(size, sizeof(size), start, last);
    if (!v) {
        say(sh, "  %016llx-%016llx %12s  ---  (hole)\n", (unsigned long long)start,
            (unsigned long long)last, size);
        return;
    }
    say(sh, "  %016llx-%016llx %12s  r%c%c  %s%s\n", (unsigned long long)start,
        (unsigned long long)last, size, (v->prot & PT_W) ? 'w' : '-', (v->prot & PT_X) ? 'x' : '-',
        v->name ? v->name : "(unnamed)", (v->prot & PT_U) ? " [user]" : "");
}

static void cmd_vmas(struct shell *sh, struct args *a)
{
    if (!sh->ops->vma_bounds || !sh->ops->vma_next) {
        say(sh, "vmas: not available\n");
        return;
    }
    uint64_t start = 0, last = 0;
    sh->ops->vma_bounds(sh->ops->ctx, &start, &last);
    if (start > last) {
        say(sh, "vmas: the address space bounds are inverted\n");
        return;
    }
    say(sh, "vmas: kernel address space %016llx-%016llx\n", (unsigned long long)start,
        (unsigned long long)last);
    uint64_t from = start; /* the first byte not yet listed */
    size_t count = 0;
    for (;;) {
        struct shell_vma v;
        if (count == SHELL_VMAS_MAX) {
            say(sh, "vmas: listing stopped after %d VMAs\n", SHELL_VMAS_MAX);
            return;
        }
        if (!sh->ops->vma_next(sh->ops->ctx, from, &v) || v.start > last)
            break;
        /* A VMA before `from` would overlap the previous one: never loop on bad data. */
        if (v.start < from || v.last < v.start || v.last > last) {
            say(sh, "vmas: inconsistent VMA %016llx-%016llx, listing stopped\n",
                (unsigned long long)v.start, (unsigned long long)v.last);
            return;
        }
        if (v.start > from)
            vma_row(sh, from, v.start - 1, NULL);
        vma_row(sh, v.start, v.last, &v);
        count++;
        if (v.last == last) {
            say(sh, "  %llu VMAs\n", (unsigned long long)count);
            return;
        }
        from = v.last + 1;
    }
    vma_row(sh, from, last, NULL);
    say(sh, "  %llu VMAs\n", (unsigned long long)count);
}

static void cmd_pt(struct shell *sh, struct args *a)
{
    static const char usage[] = "(usage: pt [qemu|tlb|check [efi]|START END])";
    enum shell_pt_mode mode = SHELL_PT_HUMAN;
    uint64_t start = 0, last = UINT64_MAX;

    if (a->count == 3 && str_eq(a->v[1], "check") && str_eq(a->v[2], "efi")) {
        mode = SHELL_PT_CHECK_EFI;
    } else if (a->count == 2) {
        uint64_t ignored;
        if (str_eq(a->v[1], "qemu")) {
            mode = SHELL_PT_QEMU;
        } else if (str_eq(a->v[1], "tlb")) {
            mode = SHELL_PT_TLB;
        } else if (str_eq(a->v[1], "check")) {
            mode = SHELL_PT_CHECK;
        } else if (str_parse_hex(a->v[1], text_len(a->v[1]), &ignored)) {
            say(sh, "pt: missing END %s\n", usage);
            return;
        } else {
            say(sh, "pt: unknown mode '%.*s%s' %s\n", shown(a->v[1]), a->v[1], ellipsis(a->v[1]),
                usage);
            return;
        }
    } else if (a->count == 3 &&
               (str_eq(a->v[1], "qemu") || str_eq(a->v[1], "tlb") || str_eq(a->v[1], "check"))) {
        say(sh, "pt: unexpected argument '%.*s%s' %s\n", shown(a->v[2]), a->v[2], ellipsis(a->v[2]),
            usage);
        return;
    } else if (a->count == 3) {
        uint64_t end;
        if (!arg_va(sh, "pt", "START", a->v[1], &start) || !arg_hex(sh, "pt", "END", a->v[2], &end))
            return;
        if (end <= start) {
            say(sh, "pt: END %016llx is not above START %016llx\n", (unsigned long long)end,
                (unsigned long long)start);
            return;
        }
        last = end - 1;
        if (!is_canonical(sh, last)) {
            say(sh, "pt: END %016llx is not canonical (%u-bit addresses)\n",
                (unsigned long long)end, va_bits(paging_levels(sh)));
            return;
        }
    }
    if (!available(sh, "pt", sh->ops->pt))
        return;
    say(sh, "--- pt begin ---\n");
    flush(sh);
    sh->ops->pt(sh->ops->ctx, mode, start, last, shell_sink, sh);
    say(sh, "--- pt end ---\n");
}

static void cmd_walk(struct shell *sh, struct args *a)
{
    uint64_t va;
    if (!arg_va(sh, "walk", "VA", a->v[1], &va) || !available(sh, "walk", sh->ops->walk))
        return;
    struct shell_walk w = {0};
    sh->ops->walk(sh->ops->ctx, va, &w);
    unsigned levels = w.levels == 5 ? 5 : 4;
    say(sh, "walk %016llx: cr3 %016llx, %u-level paging\n", (unsigned long long)va,
        (unsigned long long)w.root, levels);
    ptdump_walk(&w.walk, va, levels, shell_sink, sh);
}

/* Prints one `peek` line of n (<= PEEK_COLUMN) bytes read at va. */
static void peek_line(struct shell *sh, uint64_t va, const uint8_t *b, size_t n)
{
    char text[PEEK_COLUMN * 3 + PEEK_COLUMN + 40];
    size_t k = fmt_snprintf(text, sizeof(text), "%016llx:", (unsigned long long)va);
    for (size_t i = 0; i < PEEK_COLUMN; i++) {
        if (i < n)
            k += fmt_snprintf(text + k, sizeof(text) - k, "%s%02x", i == 8 ? "  " : " ", b[i]);
        else
            k += fmt_snprintf(text + k, sizeof(text) - k, "%s", i == 8 ? "    " : "   ");
    }
    k += fmt_snprintf(text + k, sizeof(text) - k, "  |");
    for (size_t i = 0; i < n; i++)
        text[k++] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '.';
    text[k++] = '|';
    text[k++] = '\n';
    put(sh, text, k);
}

static void cmd_peek(struct shell *sh, struct args *a)
{
    uint64_t va, len = SHELL_PEEK_LEN;
    if (!arg_va(sh, "peek", "VA", a->v[1], &va))
        return;
    if (a->count == 3) {
        if (!str_parse_u64(a->v[2], text_len(a->v[2]), &len)) {
            say(sh, "peek: LEN '%.*s%s' is not a number (decimal, or hex with 0x)\n",
                shown(a->v[2]), a->v[2], ellipsis(a->v[2]));
            return;
        }
        if (len == 0 || len > SHELL_PEEK_MAX) {
            say(sh, "peek: LEN %llu is out of range (1 to %d)\n", (unsigned long long)len,
                SHELL_PEEK_MAX);
            return;
        }
    }
    if (va > UINT64_MAX - (len - 1)) {
        say(sh, "peek: %016llx + %llu wraps past the top of memory\n", (unsigned long long)va,
            (unsigned long long)len);
        return;
    }
    uint64_t last = va + (len - 1);
    if (!is_canonical(sh, last)) {
        say(sh, "peek: %016llx + %llu runs into non-canonical addresses\n", (unsigned long long)va,
            (unsigned long long)len);
        return;
    }
    if (!available(sh, "peek", sh->ops->peek))
        return;
    for (uint64_t done = 0; done < len;) {
        uint8_t b[PEEK_COLUMN];
        uint64_t line = va + done;
        size_t want = len - done < PEEK_COLUMN ? (size_t)(len - done) : PEEK_COLUMN;
        size_t got = 0;
        /* Read the line in pieces that stay within one page each. */
        while (got < want) {
            uint64_t at = line + got;
            size_t piece = want - got;
            uint64_t to_page_end = PAGE_SIZE - (at & (PAGE_SIZE - 1));
            if (piece > to_page_end)
                piece = (size_t)to_page_end;
            if (!sh->ops->peek(sh->ops->ctx, at, b + got, piece)) {
                if (got)
                    peek_line(sh, line, b, got);
                say(sh, "peek: %016llx is not mapped\n", (unsigned long long)at);
                return;
            }
            got += piece;
        }
        peek_line(sh, line, b, got);
        done += got;
    }
}

static void cmd_selftest(struct shell *sh, struct args *a)
{
    if (!available(sh, "selftest", sh->ops->selftest))
        return;
    flush(sh);
    bool ok = sh->ops->selftest(sh->ops->ctx, shell_sink, sh);
    say(sh, "selftest: %s\n", ok ? "passed" : "FAILED");
}

/* Writes cycles as milliseconds with three decimals, or as cycles if hz is unusable. */
static void ms_text(char *buf, size_t size, uint64_t cycles, uint64_t hz)
{
    /* Above 10^12 Hz the microsecond arithmetic below could overflow: not a TSC. */
    if (hz == 0 || hz > 1000000000000ull) {
        fmt_snprintf(buf, size, "%llu cyc", (unsigned long long)cycles);
        return;
    }
    uint64_t us = cycles / hz * 1000000 + cycles % hz * 1000000 / hz;
    fmt_snprintf(buf, size, "%llu.%03llu ms", (unsigned long long)(us / 1000),
                 (unsigned long long)(us % 1000));
}

static void cmd_boottime(struct shell *sh, struct args *a)
{
    if (!available(sh, "boottime", sh->ops->boottime))
        return;
    struct shell_boottime bt = {0};
    sh->ops->boottime(sh->ops->ctx, &bt);
    /* Time 0 is the first recorded phase (stage 1's entry when it was recorded). */
    uint64_t base = 0, prev = 0;
    bool any = false;
    for (unsigned p = 0; p < CANOPY_PHASE_COUNT && !any; p++) {
        if (bt.phase_tsc[p]) {
            base = bt.phase_tsc[p];
            any = true;
        }
    }
    if (!any) {
        say(sh, "boottime: no phase was recorded\n");
        return;
    }
    if (bt.tsc_hz == 0)
        say(sh, "boottime: TSC frequency unknown, times in cycles\n");
    else
        say(sh, "boottime: TSC at %llu Hz\n", (unsigned long long)bt.tsc_hz);
    say(sh, "  %-24s %16s %16s\n", "phase", "since start", "step");
    prev = base;
    for (unsigned p = 0; p < CANOPY_PHASE_COUNT; p++) {
        uint64_t t = bt.phase_tsc[p];
        if (t == 0) {
            say(sh, "  %-24s %16s\n", phase_name(p), "(not recorded)");
            continue;
        }
        if (t < prev) {
            say(sh, "  %-24s %16s\n", phase_name(p), "(out of order)");
            continue;
        }
        char since[32], step[32];
        ms_text(since, sizeof(since), t - base, bt.tsc_hz);
        ms_text(step, sizeof(step), t - prev, bt.tsc_hz);
        say(sh, "  %-24s %16s %16s\n", phase_name(p), since, step);
        prev = t;
    }
    /* Stage 1's page-table builder: frames taken against the fewest pt_map's page split needs. */
    if (bt.pt_frames_used == 0)
        say(sh, "page tables: not reported\n");
    else if (bt.pt_frames_minimum == 0)
        say(sh, "page tables: %u frames, minimum not computed\n", bt.pt_frames_used);
    else
        say(sh, "page tables: %u frames, minimum %u (%s)\n", bt.pt_frames_used,
            bt.pt_frames_minimum,
            bt.pt_frames_used == bt.pt_frames_minimum ? "equal" : "NOT the minimum");
    say(sh, "secure boot: %s, kernel verified: %s\n", bt.secure_boot ? "on" : "off",
        bt.kernel_verified ? "yes" : "no");
}

static void cmd_reboot(struct shell *sh, struct args *a)
{
    if (!available(sh, "reboot", sh->ops->reboot))
        return;
    say(sh, "rebooting\n");
    flush(sh);
    sh->ops->reboot(sh->ops->ctx);
    say(sh, "reboot: failed, the machine is still running\n");
}

static void cmd_poweroff(struct shell *sh, struct args *a)
{
    if (!available(sh, "poweroff", sh->ops->poweroff))
        return;
    say(sh, "powering off\n");
    flush(sh);
    sh->ops->poweroff(sh->ops->ctx);
    say(sh, "poweroff: failed, the machine is still running\n");
}

static const struct command commands[] = {
    {"help", "help", "this list", 0, 0, {0}, cmd_help},
    {"mem", "mem", "physical memory: totals, free blocks per order, owners", 0, 0, {0}, cmd_mem},
    {"memmap", "memmap", "the boot memory map with Canopy and EFI types", 0, 0, {0}, cmd_memmap},
    {"vmas", "vmas", "the kernel address space: VMAs and holes", 0, 0, {0}, cmd_vmas},
    {"pt",
     "pt [qemu|tlb|check [efi]|START END]",
     "page tables: dumps, QEMU forms, checks",
     0,
     2,
     {0},
     cmd_pt},
    {"walk", "walk VA", "walk the page tables for one address", 1, 1, {"VA"}, cmd_walk},
    {"peek",
     "peek VA [LEN]",
     "hex dump of LEN bytes (default 64, at most 4096)",
     1,
     2,
     {"VA", "LEN"},
     cmd_peek},
    {"selftest", "selftest", "run the kernel's self tests", 0, 0, {0}, cmd_selftest},
    {"boottime",
     "boottime",
     "boot phase times of stage 1 and the kernel, page-table frames",
     0,
     0,
     {0},
     cmd_boottime},
    {"reboot", "reboot", "restart the machine", 0, 0, {0}, cmd_reboot},
    {"poweroff", "poweroff", "switch the machine off", 0, 0, {0}, cmd_poweroff},
};
static const size_t command_count = sizeof(commands) / sizeof(commands[0]);

static void cmd_help(struct shell *sh, struct args *a)
{
    int width = 0; /* the longest usage: the summaries line up after it */
    for (size_t i = 0; i < command_count; i++)
        if ((int)text_len(commands[i].usage) > width)
            width = (int)text_len(commands[i].usage);
    say(sh, "commands:\n");
    for (size_t i = 0; i < command_count; i++)
        say(sh, "  %-*s %s\n", width, commands[i].usage, commands[i].summary);
}

/* Runs one line that passed the editor's checks; line is changed (tokenized). */
static void dispatch(struct shell *sh, char *line)
{
    struct args a;
    tokenize(line, &a);
    if (a.count == 0)
        return;
    const struct command *c = NULL;
    for (size_t i = 0; i < command_count && !c; i++)
        if (str_eq(a.v[0], commands[i].name))
            c = &commands[i];
    if (!c) {
        say(sh, "error: unknown command '%.*s%s', type help for the list\n", shown(a.v[0]), a.v[0],
            ellipsis(a.v[0]));
        return;
    }
    sh->commands++;
    size_t given = a.count - 1;
    if (given < c->min_args) {
        say(sh, "%s: missing %s (usage: %s)\n", c->name, c->arg_names[given], c->usage);
        return;
    }
    if (given > c->max_args || a.too_many) {
        const char *extra = given > c->max_args ? a.v[c->max_args + 1] : "...";
        say(sh, "%s: unexpected argument '%.*s%s' (usage: %s)\n", c->name, shown(extra), extra,
            ellipsis(extra), c->usage);
        return;
    }
    c->run(sh, &a);
}

/* ---- the line editor -------------------------------------------------------- */

void shell_init(struct shell *sh, const struct shell_ops *ops)
{
    *sh = (struct shell){.ops = ops};
}

void shell_prompt(struct shell *sh)
{
    say(sh, "%s", SHELL_PROMPT);
    flush(sh);
}

/* The one error line for a discarded line. */
static void report_fault(struct shell *sh, enum shell_line_fault fault, uint8_t byte)
{
    if (fault == SHELL_LINE_OVERLONG)
        say(sh, "error: line longer than %d characters, discarded\n", SHELL_LINE_MAX - 1);
    else if (byte >= 0x80)
        say(sh, "error: non-ASCII byte 0x%02x in the line, discarded\n", byte);
    else
        say(sh, "error: control character 0x%02x in the line, discarded\n", byte);
}

static void end_line(struct shell *sh)
{
    put(sh, "\n", 1);
    sh->lines++;
    if (sh->fault != SHELL_LINE_OK) {
        sh->rejected++;
        report_fault(sh, sh->fault, sh->fault_byte);
    } else {
        dispatch(sh, sh->line);
    }
    sh->len = 0;
    sh->line[0] = 0;
    sh->fault = SHELL_LINE_OK;
    sh->fault_byte = 0;
    shell_prompt(sh);
}

/* The editor proper: one byte, output left in the buffer. */
static void input_byte(struct shell *sh, uint8_t c)
{
    bool after_cr = sh->after_cr;
    sh->after_cr = c == '\r';
    if (c == '\n' && after_cr)
        return; /* the LF of a CRLF: the CR ended the line */
    if (c == '\r' || c == '\n') {
        end_line(sh);
        return;
    }
    if (c == 0x08 || c == 0x7f) {
        if (sh->fault == SHELL_LINE_OK && sh->len > 0) {
            sh->line[--sh->len] = 0;
            put(sh, "\b \b", 3);
        }
        return;
    }
    if (sh->fault != SHELL_LINE_OK)
        return;
    if (c < 0x20 || c > 0x7e) {
        sh->fault = SHELL_LINE_CONTROL;
        sh->fault_byte = c;
        return;
    }
    if (sh->len == SHELL_LINE_MAX - 1) {
        sh->fault = SHELL_LINE_OVERLONG;
        return;
    }
    sh->line[sh->len++] = (char)c;
    sh->line[sh->len] = 0;
    put(sh, (const char *)&c, 1);
}

void shell_input(struct shell *sh, char c)
{
    input_byte(sh, (uint8_t)c);
    flush(sh);
}

void shell_run(struct shell *sh, const char *line)
{
    char buf[SHELL_LINE_MAX];
    size_t n = 0;
    for (; line[n]; n++) {
        uint8_t c = (uint8_t)line[n];
        if (c < 0x20 || c > 0x7e) {
            report_fault(sh, SHELL_LINE_CONTROL, c);
            flush(sh);
            return;
        }
        if (n == SHELL_LINE_MAX - 1) {
            report_fault(sh, SHELL_LINE_OVERLONG, 0);
            flush(sh);
            return;
        }
        buf[n] = (char)c;
    }
    buf[n] = 0;
    dispatch(sh, buf);
    flush(sh);
}
