/*
 * ptdump: text dumps of a page-table hierarchy for people and for comparison
 * with QEMU's monitor.
 *
 * Everything here walks the hierarchy through pt_for_each_leaf / pt_walk and
 * formats into a caller's sink, so the kernel shell, the host tests and any
 * other caller get the same bytes. Nothing is allocated; state lives on the
 * stack of the formatter.
 *
 * The QEMU forms follow target/i386/monitor.c of QEMU 7.2 (mem_info_la48,
 * mem_print, tlb_info_la48/la57, print_pte), whose output the boot tests
 * compare against the live monitor:
 *   - `info mem` walks the un-extended address (0 .. 2^48) and calls its
 *     printer at every entry with prot = U|W|P ANDed over the levels, or 0
 *     for a hole; a line is printed whenever prot changes, and a final call
 *     at 2^48 with prot 0 flushes the last range. Start, end and size are
 *     each sign-extended from bit 47. Calling the same printer at every leaf
 *     and at every gap between leaves gives the same lines, since repeated
 *     calls with an unchanged prot print nothing.
 *   - `info tlb` prints each present leaf with its own flags.
 */
#include <vmm/pte.h>
#include <vmm/ptdump.h>

#include <canopy/fmt.h>
#include <canopy/page.h>
#include <canopy/str.h>
#include <canopy/vaddr.h>

#define WALK48_END (1ull << VA_BITS_4L) /* the end of a 4-level walk's un-extended addresses */

/* QEMU's physical address masks in print_pte's callers (50 address bits). */
#define QEMU_MASK_4K 0x3fffffffff000ull
#define QEMU_MASK_2M 0x3ffffffe00000ull
#define QEMU_MASK_1G 0x3ffffc0000000ull

/*
 * QEMU's addr_canonical for 4-level paging: bits 63..48 set when bit 47 is,
 * other bits left alone. Not vaddr.h's va_sign_extend: QEMU prints the end
 * 2^48 of a walk unchanged, as 0001000000000000.
 */
static uint64_t canon48(uint64_t a)
{
    if (a & (1ull << 47))
        a |= ~(WALK48_END - 1);
    return a;
}

/* ---- info mem ---------------------------------------------------------------------------- */

#define MEM_P 1u
#define MEM_W 2u
#define MEM_U 4u

struct mem_state {
    ptdump_sink sink;
    void *ctx;
    uint64_t start;  /* walk address where the current range began */
    bool have_start; /* QEMU's start != -1 */
    unsigned last_prot;
    uint64_t next; /* walk address just past the previous leaf */
};

/* QEMU's mem_print: prints the range that ends at `end` if prot differs from the last. */
static void mem_print(struct mem_state *s, uint64_t end, unsigned prot)
{
    if (prot == s->last_prot)
        return;
    if (s->have_start) {
        fmt_format(s->sink, s->ctx, "%016llx-%016llx %016llx %c%c%c\n",
                   (unsigned long long)canon48(s->start), (unsigned long long)canon48(end),
                   (unsigned long long)canon48(end - s->start), (s->last_prot & MEM_U) ? 'u' : '-',
                   'r', (s->last_prot & MEM_W) ? 'w' : '-');
    }
    s->have_start = prot != 0;
    s->start = end;
    s->last_prot = prot;
}

static bool mem_leaf(void *ctx, const struct pt_leaf *leaf)
{
    struct mem_state *s = ctx;
    uint64_t walk = leaf->va & (WALK48_END - 1);
    if (walk != s->next)
        mem_print(s, s->next, 0); /* the hole before this leaf */
    unsigned prot = MEM_P | ((leaf->attrs & PT_W) ? MEM_W : 0) | ((leaf->attrs & PT_U) ? MEM_U : 0);
    mem_print(s, walk, prot);
    s->next = walk + leaf->page_size;
    return true;
}

void ptdump_qemu_mem(const struct pt *pt, ptdump_sink sink, void *ctx)
{
    if (pt->levels != 4)
        return;
    struct mem_state s = {.sink = sink, .ctx = ctx};
    pt_for_each_leaf(pt, 0, UINT64_MAX, mem_leaf, &s);
    if (s.next != WALK48_END)
        mem_print(&s, s.next, 0);
    mem_print(&s, WALK48_END, 0);
}

/* ---- info tlb ----------------------------------------------------------------------------- */

struct sink_ref {
    ptdump_sink sink;
    void *ctx;
};

/* The nine flag letters QEMU prints, in its order: X G P D A C T U W. */
static void tlb_flags(uint64_t e, char out[10])
{
    out[0] = pte_is_nx(e) ? 'X' : '-';
    out[1] = pte_is_global(e) ? 'G' : '-';
    out[2] = pte_is_ps(e) ? 'P' : '-';
    out[3] = pte_is_dirty(e) ? 'D' : '-';
    out[4] = pte_is_accessed(e) ? 'A' : '-';
    out[5] = pte_is_pcd(e) ? 'C' : '-';
    out[6] = pte_is_pwt(e) ? 'T' : '-';
    out[7] = pte_is_user(e) ? 'U' : '-';
    out[8] = pte_is_writable(e) ? 'W' : '-';
    out[9] = '\0';
}

static bool tlb_leaf(void *ctx, const struct pt_leaf *leaf)
{
    const struct sink_ref *r = ctx;
    uint64_t e = leaf->entry, mask = QEMU_MASK_4K;
    if (leaf->page_size == PAGE_SIZE_1G)
        mask = QEMU_MASK_1G;
    else if (leaf->page_size == PAGE_SIZE_2M)
        mask = QEMU_MASK_2M;
    else
        e &= ~PTE_PAT_4K; /* QEMU passes a 4K entry with bit 7 cleared */
    char flags[10];
    tlb_flags(e, flags);
    fmt_format(r->sink, r->ctx, "%016llx: %016llx %s\n", (unsigned long long)leaf->va,
               (unsigned long long)(e & mask), flags);
    return true;
}

void ptdump_qemu_tlb(const struct pt *pt, ptdump_sink sink, void *ctx)
{
    struct sink_ref r = {sink, ctx};
    pt_for_each_leaf(pt, 0, UINT64_MAX, tlb_leaf, &r);
}

/* ---- the human dump ----------------------------------------------------------------------- */

const char *ptdump_memtype_name(unsigned type)
{
    switch (type) {
    case PTE_MT_UC:
        return "UC";
    case PTE_MT_WC:
        return "WC";
    case PTE_MT_WT:
        return "WT";
    case PTE_MT_WP:
        return "WP";
    case PTE_MT_WB:
        return "WB";
    case PTE_MT_UCM:
        return "UC-";
    }
    return "??";
}

static const char *size_name(uint64_t page_size)
{
    if (page_size == PAGE_SIZE_1G)
        return "1G";
    if (page_size == PAGE_SIZE_2M)
        return "2M";
    return "4K";
}

void ptdump_size_text(uint64_t bytes, char *buf, size_t len)
{
    static const char units[] = "KMGTPE";
    uint64_t v = bytes_to_kib(bytes);
    unsigned u = 0;
    while (v != 0 && (v & 1023) == 0 && units[u + 1] != '\0') {
        v >>= 10;
        u++;
    }
    fmt_snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
}

struct human {
    const struct ptdump_options *o;
    ptdump_sink sink;
    void *ctx;
    uint64_t pat;
    size_t next_marker; /* first marker not yet printed */
    uint64_t wx_pages;
    /* the open range */
    bool open;
    uint64_t start, last, pa_start, pa_next;
    bool contiguous;
    uint64_t page_size, count;
    uint32_t perm; /* PT_W | PT_X | PT_U, effective */
    bool global;
    const char *cache;
    const char *label;
};

static void human_line(struct human *h)
{
    char size[16], pa[20], line[256];
    ptdump_size_text(h->last - h->start + 1, size, sizeof(size));
    if (h->contiguous)
        fmt_snprintf(pa, sizeof(pa), "%016llx", (unsigned long long)h->pa_start);
    else
        str_copy(pa, "not contiguous", sizeof(pa));
    size_t n = fmt_snprintf(
        line, sizeof(line), "%016llx-%016llx %6s %-16s %s x%-5llu %c%c%c %-6s %c %-3s %.100s",
        (unsigned long long)h->start, (unsigned long long)(h->last + 1), size, pa,
        size_name(h->page_size), (unsigned long long)h->count, 'R', (h->perm & PT_W) ? 'W' : '-',
        (h->perm & PT_X) ? 'X' : '-', (h->perm & PT_U) ? "user" : "kernel", h->global ? 'G' : '-',
        h->cache, h->label ? h->label : "");
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    while (n > 0 && line[n - 1] == ' ')
        n--;
    line[n++] = '\n';
    h->sink(h->ctx, line, n);
}

static void human_close(struct human *h)
{
    if (!h->open)
        return;
    human_line(h);
    h->open = false;
}

/* Prints every marker not yet printed that starts at or below va. */
static void human_markers_upto(struct human *h, uint64_t va)
{
    while (h->next_marker < h->o->marker_count && h->o->markers[h->next_marker].start <= va) {
        fmt_format(h->sink, h->ctx, "---[ %s ]---\n", h->o->markers[h->next_marker].name);
        h->next_marker++;
    }
}

static bool same_label(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return a == b || str_eq(a, b);
}

static bool human_leaf(void *ctx, const struct pt_leaf *leaf)
{
    struct human *h = ctx;
    const struct ptdump_options *o = h->o;
    uint64_t leaf_last = leaf->va + (leaf->page_size - 1);
    uint64_t start = leaf->va > o->first ? leaf->va : o->first;
    uint64_t last = leaf_last < o->last ? leaf_last : o->last;
    uint64_t pa = leaf->pa + (start - leaf->va);
    uint32_t perm = leaf->attrs & (PT_W | PT_X | PT_U);
    bool global = pte_is_global(leaf->entry);
    const char *cache = ptdump_memtype_name(pte_memtype(leaf->entry, leaf->page_size, h->pat));
    const char *label = o->label ? o->label(o->label_ctx, start) : NULL;
    bool marker_due = h->next_marker < o->marker_count && o->markers[h->next_marker].start <= start;

    if ((perm & (PT_W | PT_X)) == (PT_W | PT_X))
        h->wx_pages += (last - start + 1) / PAGE_SIZE;

    if (h->open && !marker_due && h->last != UINT64_MAX && h->last + 1 == start &&
        h->page_size == leaf->page_size && h->perm == perm && h->global == global &&
        str_eq(h->cache, cache) && same_label(h->label, label)) {
        if (pa != h->pa_next)
            h->contiguous = false;
        h->pa_next = pa + (last - start + 1);
        h->last = last;
        h->count++;
        return true;
    }
    human_close(h);
    human_markers_upto(h, start);
    h->open = true;
    h->start = start;
    h->last = last;
    h->pa_start = pa;
    h->pa_next = pa + (last - start + 1);
    h->contiguous = true;
    h->page_size = leaf->page_size;
    h->count = 1;
    h->perm = perm;
    h->global = global;
    h->cache = cache;
    h->label = label;
    return true;
}

uint64_t ptdump_human(const struct pt *pt, const struct ptdump_options *opts, ptdump_sink sink,
                      void *ctx)
{
    static const struct ptdump_options all = {.first = 0, .last = UINT64_MAX};
    const struct ptdump_options *o = opts ? opts : &all;
    struct human h = {
        .o = o,
        .sink = sink,
        .ctx = ctx,
        .pat = o->pat ? *o->pat : PTDUMP_PAT_POWER_ON,
    };
    /* Start with the section the range begins in; markers before it are skipped. */
    while (h.next_marker + 1 < o->marker_count && o->markers[h.next_marker + 1].start <= o->first)
        h.next_marker++;
    if (o->first <= o->last) {
        human_markers_upto(&h, o->first);
        pt_for_each_leaf(pt, o->first, o->last, human_leaf, &h);
        human_close(&h);
        human_markers_upto(&h, o->last);
    }
    if (h.wx_pages == 0)
        fmt_format(sink, ctx, "W+X mappings: passed\n");
    else
        fmt_format(sink, ctx, "W+X mappings: FAILED, %llu pages\n", (unsigned long long)h.wx_pages);
    return h.wx_pages;
}

/* ---- walk ------------------------------------------------------------------------------------ */

/* The name of the table read at walk depth `depth` (0 = the root) of a `levels`-level hierarchy. */
static const char *level_name(unsigned levels, unsigned depth)
{
    static const char *const names[] = {"PML5", "PML4", "PDPT", "PD", "PT"};
    unsigned i = 5 - levels + depth;
    return i < 5 ? names[i] : "?";
}

/* Names the set bits of a paging entry; in a PT entry (pt_level) bit 7 is PAT, elsewhere PS. */
static void entry_bit_names(uint64_t e, bool pt_level, char *buf, size_t size)
{
    static const struct {
        uint64_t bit;
        const char *name;
    } bits[] = {{PTE_P, "P"}, {PTE_W, "W"}, {PTE_U, "U"},   {PTE_PWT, "PWT"}, {PTE_PCD, "PCD"},
                {PTE_A, "A"}, {PTE_D, "D"}, {PTE_PS, "PS"}, {PTE_G, "G"},     {PTE_NX, "NX"}};
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]) && n < size; i++) {
        if (!(e & bits[i].bit))
            continue;
        const char *name = bits[i].bit == PTE_PAT_4K && pt_level ? "PAT" : bits[i].name;
        n += fmt_snprintf(buf + n, size - n, "%s%s", n ? " " : "", name);
    }
}

void ptdump_walk(const struct pt_walk *w, uint64_t va, unsigned levels, ptdump_sink sink, void *ctx)
{
    levels = levels == 5 ? 5 : 4;
    unsigned depth = w->depth < levels ? w->depth : levels;
    for (unsigned i = 0; i < depth; i++) {
        char flags[64];
        entry_bit_names(w->level[i].entry, i == levels - 1, flags, sizeof(flags));
        fmt_format(sink, ctx, "  %-4s[%3u] = %016llx  %s\n", level_name(levels, i),
                   w->level[i].index, (unsigned long long)w->level[i].entry,
                   flags[0] ? flags : "(empty)");
    }
    if (!w->present) {
        if (depth == 0)
            fmt_format(sink, ctx, "  not mapped\n");
        else
            fmt_format(sink, ctx, "  not mapped: the %s entry is not present\n",
                       level_name(levels, depth - 1));
        return;
    }
    const struct pt_leaf *l = &w->leaf;
    char size[16];
    ptdump_size_text(l->page_size, size, sizeof(size));
    uint64_t offset = l->page_size ? (va - l->va) & (l->page_size - 1) : 0;
    fmt_format(sink, ctx, "  -> phys %016llx (%s page at %016llx), effective r%c%c %s\n",
               (unsigned long long)(l->pa + offset), size, (unsigned long long)l->pa,
               (l->attrs & PT_W) ? 'w' : '-', (l->attrs & PT_X) ? 'x' : '-',
               (l->attrs & PT_U) ? "user" : "kernel");
}
