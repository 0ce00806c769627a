/*
 * elf: validates a kernel ELF64 image and turns its PT_LOAD segments into a
 * placement plan, the way a program loader would before mapping a program.
 *
 * Invariant: every multi-byte field is copied out of the buffer with memcpy
 * (no alignment assumed) and only after the bytes it occupies were shown to lie
 * inside the buffer; every sum of two file-controlled values is checked for
 * overflow before it is compared. The checks run in a fixed order and the first
 * failure wins, so one broken file always gives the same single reason.
 *
 * Called by stage 1 (main.c) on the file it read, by the host tests and by the
 * fuzzer. Nothing here allocates or touches anything but *plan and *err.
 */
#include "elf.h"

#include <stdbool.h>

#include <canopy/compiler.h>
#include <canopy/fmt.h>
#include <canopy/vaddr.h>

/* The ELF64 structures, as the System V gABI lays them out. */
struct elf64_ehdr {
    unsigned char ident[16];
    uint16_t type;
    uint16_t machine;
    uint32_t version;
    uint64_t entry;
    uint64_t phoff;
    uint64_t shoff;
    uint32_t flags;
    uint16_t ehsize;
    uint16_t phentsize;
    uint16_t phnum;
    uint16_t shentsize;
    uint16_t shnum;
    uint16_t shstrndx;
};

struct elf64_phdr {
    uint32_t type;
    uint32_t flags;
    uint64_t offset;
    uint64_t vaddr;
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
    uint64_t align;
};

_Static_assert(sizeof(struct elf64_ehdr) == 64, "ELF64 header size");
_Static_assert(sizeof(struct elf64_phdr) == 56, "ELF64 program header size");

#define EI_CLASS    4
#define EI_DATA     5
#define EI_VERSION  6
#define ELFCLASS64  2
#define ELFDATA2LSB 1
#define EV_CURRENT  1
#define ET_DYN      3
#define ET_EXEC     2
#define EM_X86_64   62
#define PN_XNUM     0xffff
#define PT_LOAD     1
#define PT_DYNAMIC  2
#define PT_INTERP   3
#define PT_TLS      7
#define PF_X        0x1
#define PF_W        0x2
#define PF_R        0x4

/*
 * Segments must be canonical under 4-level paging, which makes them canonical
 * under 5-level paging too: one kernel file boots either way.
 */
#define ELF_PAGING_LEVELS 4

static const char *const status_names[ELF_STATUS_COUNT] = {
#define ELF_STATUS_NAME(name, text) [name] = text,
    ELF_STATUSES(ELF_STATUS_NAME)
#undef ELF_STATUS_NAME
};

const char *elf_status_str(enum elf_status st)
{
    if ((unsigned)st >= ELF_STATUS_COUNT)
        return "unknown ELF status";
    return status_names[st];
}

/* Records the failure and returns its status, so checks read `return fail(...)`. */
PRINTF_LIKE(3, 4)
static enum elf_status fail(struct elf_error *err, enum elf_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = st;
        fmt_vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
        va_end(ap);
    }
    return st;
}

/* "" or "s", for "%llu byte%s": a count of one reads "1 byte". */
static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

static const char *flag_string(uint32_t flags)
{
    static const char *const names[8] = {"---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"};
    return names[flags & 7];
}

/* The checks that concern one PT_LOAD on its own. */
static enum elf_status check_segment(const struct elf64_phdr *ph, unsigned index, size_t size,
                                     struct elf_error *err)
{
    if (ph->offset > size || ph->filesz > size - ph->offset)
        return fail(err, ELF_ERR_SEG_OUTSIDE_FILE,
                    "segment %u (offset 0x%llx, %llu byte%s) runs past the end of the file "
                    "(%zu byte%s)",
                    index, (unsigned long long)ph->offset, (unsigned long long)ph->filesz,
                    plural(ph->filesz), size, plural(size));
    if (ph->filesz > ph->memsz)
        return fail(err, ELF_ERR_FILESZ,
                    "segment %u has a file size (%llu) larger than its memory size (%llu)", index,
                    (unsigned long long)ph->filesz, (unsigned long long)ph->memsz);
    if (ph->align > 1 && (ph->align & (ph->align - 1)) != 0)
        return fail(err, ELF_ERR_ALIGN,
                    "segment %u has an alignment (0x%llx) that is not a power "
                    "of two",
                    index, (unsigned long long)ph->align);
    if (!page_is_aligned(ph->vaddr ^ ph->offset))
        return fail(err, ELF_ERR_CONGRUENCE,
                    "segment %u: address 0x%llx and file offset 0x%llx differ modulo %llu", index,
                    (unsigned long long)ph->vaddr, (unsigned long long)ph->offset, PAGE_SIZE);
    /* The gABI's rule; with 4 KiB pages only its page-size part matters to the mapping. */
    if (ph->align > PAGE_SIZE && ((ph->vaddr ^ ph->offset) & (ph->align - 1)) != 0)
        return fail(err, ELF_ERR_CONGRUENCE,
                    "segment %u: address 0x%llx and file offset 0x%llx differ modulo its p_align "
                    "(0x%llx)",
                    index, (unsigned long long)ph->vaddr, (unsigned long long)ph->offset,
                    (unsigned long long)ph->align);
    if ((ph->flags & (PF_W | PF_X)) == (PF_W | PF_X))
        return fail(err, ELF_ERR_WX, "segment %u at 0x%llx is both writable and executable", index,
                    (unsigned long long)ph->vaddr);
    if ((ph->flags & (PF_R | PF_W | PF_X)) == 0)
        return fail(err, ELF_ERR_NO_ACCESS,
                    "segment %u at 0x%llx has no R, W or X flag: nothing could use its pages",
                    index, (unsigned long long)ph->vaddr);
    if (ph->memsz == 0)
        return ELF_OK; /* occupies no memory: its address does not matter */
    uint64_t last = ph->vaddr + ph->memsz - 1;
    if (last < ph->vaddr)
        return fail(err, ELF_ERR_WRAPS,
                    "segment %u (0x%llx + 0x%llx bytes) wraps past the top of the address space",
                    index, (unsigned long long)ph->vaddr, (unsigned long long)ph->memsz);
    if (ph->vaddr < va_lower_end(ELF_PAGING_LEVELS))
        return fail(err, ELF_ERR_LOWER_HALF,
                    "segment %u at 0x%llx is in the lower half; a kernel belongs at 0x%llx and up",
                    index, (unsigned long long)ph->vaddr, (unsigned long long)CANOPY_KERNEL_BASE);
    if (!va_is_canonical(ph->vaddr, ELF_PAGING_LEVELS))
        return fail(err, ELF_ERR_NONCANONICAL, "segment %u at 0x%llx is not a canonical address",
                    index, (unsigned long long)ph->vaddr);
    if (ph->vaddr < CANOPY_KERNEL_BASE)
        return fail(err, ELF_ERR_OUTSIDE_KERNEL_AREA,
                    "segment %u at 0x%llx is below the kernel area (0x%llx and up)", index,
                    (unsigned long long)ph->vaddr, (unsigned long long)CANOPY_KERNEL_BASE);
    return ELF_OK;
}

/* First byte of a planned segment's contents (the original p_vaddr). */
static uint64_t seg_start(const struct elf_segment_plan *s)
{
    return s->vaddr + s->page_offset;
}

/*
 * Sorts the plan by p_vaddr (at most CANOPY_MAX_SEGMENTS entries: insertion
 * sort). By p_vaddr, not by its page: two segments in one page then meet in
 * the order of their bytes, so check_neighbours calls them what they are
 * (sharing a page) rather than overlapping.
 */
static void sort_plan(struct elf_plan *plan)
{
    for (uint32_t i = 1; i < plan->count; i++) {
        struct elf_segment_plan s = plan->seg[i];
        uint32_t j = i;
        while (j > 0 && seg_start(&plan->seg[j - 1]) > seg_start(&s)) {
            plan->seg[j] = plan->seg[j - 1];
            j--;
        }
        plan->seg[j] = s;
    }
}

/* The ELF header: identity, machine, type, sizes, and a program header table inside the file. */
static enum elf_status check_header(const unsigned char *bytes, size_t size, struct elf64_ehdr *eh,
                                    struct elf_error *err)
{
    if (size < sizeof(*eh))
        return fail(err, ELF_ERR_TRUNCATED, "the file has %zu byte%s, too few for an ELF header",
                    size, plural(size));
    __builtin_memcpy(eh, bytes, sizeof(*eh));
    if (__builtin_memcmp(eh->ident,
                         "\x7f"
                         "ELF",
                         4) != 0)
        return fail(err, ELF_ERR_MAGIC, "not an ELF file (bad magic bytes)");
    if (eh->ident[EI_CLASS] != ELFCLASS64)
        return fail(err, ELF_ERR_CLASS, "not a 64-bit ELF file (class %u)", eh->ident[EI_CLASS]);
    if (eh->ident[EI_DATA] != ELFDATA2LSB)
        return fail(err, ELF_ERR_ENDIAN, "not a little-endian ELF file (data encoding %u)",
                    eh->ident[EI_DATA]);
    /* Two fields carry a version; the reason names the one that is wrong. */
    if (eh->ident[EI_VERSION] != EV_CURRENT)
        return fail(err, ELF_ERR_VERSION,
                    "unknown ELF version %u in e_ident[EI_VERSION], expected 1",
                    eh->ident[EI_VERSION]);
    if (eh->version != EV_CURRENT)
        return fail(err, ELF_ERR_VERSION, "unknown ELF version %u in e_version, expected 1",
                    (unsigned)eh->version);
    if (eh->machine != EM_X86_64)
        return fail(err, ELF_ERR_MACHINE, "built for machine %u, not x86-64 (62)", eh->machine);
    if (eh->type != ET_EXEC)
        return fail(err, ELF_ERR_TYPE, "ELF type %u%s; a kernel must be ET_EXEC (2)", eh->type,
                    eh->type == ET_DYN ? " (position independent)" : "");
    if (eh->ehsize != sizeof(struct elf64_ehdr))
        return fail(err, ELF_ERR_EHSIZE, "ELF header size %u, expected 64", eh->ehsize);
    if (eh->phnum == 0 || eh->phnum == PN_XNUM)
        return fail(err, ELF_ERR_PHNUM, "program header count %u is unusable", eh->phnum);
    if (eh->phentsize != sizeof(struct elf64_phdr))
        return fail(err, ELF_ERR_PHENTSIZE, "program header entry size %u, expected 56",
                    eh->phentsize);
    uint64_t table_bytes = (uint64_t)eh->phnum * sizeof(struct elf64_phdr);
    if (eh->phoff > size || table_bytes > size - eh->phoff)
        return fail(err, ELF_ERR_PHDRS_OUTSIDE,
                    "program header table (offset 0x%llx, %u entr%s) runs past the end of the "
                    "file (%zu byte%s)",
                    (unsigned long long)eh->phoff, eh->phnum, eh->phnum == 1 ? "y" : "ies", size,
                    plural(size));
    return ELF_OK;
}

/*
 * The program header types that a static kernel has no use for and that
 * stage 1 could only ignore, leaving the kernel broken in ways that show
 * much later: each gets its own reason.
 */
static enum elf_status check_type(const struct elf64_phdr *ph, unsigned index,
                                  struct elf_error *err)
{
    switch (ph->type) {
    case PT_INTERP:
        return fail(err, ELF_ERR_INTERP,
                    "program header %u is PT_INTERP: the kernel asks for a dynamic linker, and "
                    "there is no dynamic linking at boot; link it static",
                    index);
    case PT_DYNAMIC:
        return fail(err, ELF_ERR_DYNAMIC,
                    "program header %u is PT_DYNAMIC: the kernel needs relocations, and stage 1 "
                    "applies none; link it static, without -pie",
                    index);
    case PT_TLS:
        return fail(err, ELF_ERR_TLS,
                    "program header %u is PT_TLS: the kernel has thread-local storage, and stage "
                    "1 sets up no TLS block",
                    index);
    default:
        return ELF_OK;
    }
}

/*
 * Checks every program header's type and every PT_LOAD on its own and adds those that occupy memory
 * to the plan, in file order. => check_header accepted *eh.
 */
static enum elf_status plan_segments(const unsigned char *bytes, size_t size,
                                     const struct elf64_ehdr *eh, struct elf_plan *plan,
                                     struct elf_error *err)
{
    plan->count = 0;
    plan->entry = eh->entry;
    plan->total_pages = 0;
    unsigned loads = 0;
    for (unsigned i = 0; i < eh->phnum; i++) {
        struct elf64_phdr ph;
        __builtin_memcpy(&ph, bytes + eh->phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        enum elf_status st = check_type(&ph, i, err);
        if (st != ELF_OK)
            return st;
        if (ph.type != PT_LOAD)
            continue;
        loads++;
        st = check_segment(&ph, i, size, err);
        if (st != ELF_OK)
            return st;
        if (ph.memsz == 0)
            continue; /* occupies no memory: nothing to place */
        if (plan->count == CANOPY_MAX_SEGMENTS)
            return fail(err, ELF_ERR_TOO_MANY_SEGMENTS, "more than %u loadable segments",
                        CANOPY_MAX_SEGMENTS);
        struct elf_segment_plan *s = &plan->seg[plan->count];
        uint64_t last = ph.vaddr + ph.memsz - 1;
        s->vaddr = page_down(ph.vaddr);
        s->page_count = ((last - s->vaddr) >> PAGE_SHIFT) + 1;
        s->page_offset = ph.vaddr - s->vaddr;
        s->file_offset = ph.offset;
        s->file_size = ph.filesz;
        s->flags = ph.flags & (PF_R | PF_W | PF_X);
        s->phdr_index = i;
        s->mem_size = ph.memsz;
        plan->total_pages += s->page_count;
        plan->count++;
    }
    if (plan->count == 0)
        return fail(err, ELF_ERR_NO_LOAD, "no loadable segment (%u program headers, %u PT_LOAD)",
                    eh->phnum, loads);
    return ELF_OK;
}

/* Neighbours in the sorted plan neither overlap nor share a page. */
static enum elf_status check_neighbours(const struct elf_plan *plan, struct elf_error *err)
{
    for (uint32_t i = 0; i + 1 < plan->count; i++) {
        const struct elf_segment_plan *a = &plan->seg[i], *b = &plan->seg[i + 1];
        uint64_t a_last = seg_start(a) + a->mem_size - 1;
        uint64_t a_last_page = a->vaddr + (a->page_count - 1) * PAGE_SIZE;
        if (a_last >= seg_start(b))
            return fail(err, ELF_ERR_OVERLAP,
                        "segments %u (0x%llx-0x%llx) and %u (from 0x%llx) overlap", a->phdr_index,
                        (unsigned long long)seg_start(a), (unsigned long long)a_last, b->phdr_index,
                        (unsigned long long)seg_start(b));
        if (a_last_page >= b->vaddr)
            return fail(err, ELF_ERR_SHARED_PAGE,
                        "segments %u (%s) and %u (%s) share a page (0x%llx); each segment needs "
                        "pages of its own",
                        a->phdr_index, flag_string(a->flags), b->phdr_index, flag_string(b->flags),
                        (unsigned long long)b->vaddr);
    }
    return ELF_OK;
}

/*
 * The entry point lies in a segment, that segment is executable, and the
 * entry is among its file bytes: the zero-filled tail holds no code.
 */
static enum elf_status check_entry(const struct elf_plan *plan, struct elf_error *err)
{
    const struct elf_segment_plan *home = NULL;
    for (uint32_t i = 0; i < plan->count; i++) {
        uint64_t start = seg_start(&plan->seg[i]);
        if (plan->entry >= start && plan->entry - start < plan->seg[i].mem_size)
            home = &plan->seg[i];
    }
    if (!home)
        return fail(err, ELF_ERR_ENTRY_OUTSIDE, "entry point 0x%llx is outside every segment",
                    (unsigned long long)plan->entry);
    if (!(home->flags & PF_X))
        return fail(err, ELF_ERR_ENTRY_NOT_EXEC,
                    "entry point 0x%llx is in segment %u (%s), which is not executable",
                    (unsigned long long)plan->entry, home->phdr_index, flag_string(home->flags));
    if (plan->entry - seg_start(home) >= home->file_size)
        return fail(err, ELF_ERR_ENTRY_IN_BSS,
                    "entry point 0x%llx is in segment %u's zero-filled tail (past its %llu file "
                    "byte%s): there is no code there",
                    (unsigned long long)plan->entry, home->phdr_index,
                    (unsigned long long)home->file_size, plural(home->file_size));
    return ELF_OK;
}

/* The segments' pages fit the memory the caller has. */
static enum elf_status check_size(const struct elf_plan *plan, uint64_t avail_bytes,
                                  struct elf_error *err)
{
    uint64_t need = plan->total_pages * PAGE_SIZE;
    if (need > avail_bytes)
        return fail(err, ELF_ERR_TOO_BIG,
                    "the segments need %llu KiB but only %llu KiB of memory is available",
                    (unsigned long long)bytes_to_kib(need),
                    (unsigned long long)bytes_to_kib(avail_bytes));
    return ELF_OK;
}

enum elf_status elf_validate(const void *image, size_t size, uint64_t avail_bytes,
                             struct elf_plan *plan, struct elf_error *err)
{
    struct elf64_ehdr eh;
    if (err) {
        err->status = ELF_OK;
        err->reason[0] = '\0';
    }
    /* The checks in their fixed order; the first failure is the one reported. */
    enum elf_status st = check_header(image, size, &eh, err);
    if (st == ELF_OK)
        st = plan_segments(image, size, &eh, plan, err);
    if (st == ELF_OK) {
        sort_plan(plan);
        st = check_neighbours(plan, err);
    }
    if (st == ELF_OK)
        st = check_entry(plan, err);
    if (st == ELF_OK)
        st = check_size(plan, avail_bytes, err);
    return st;
}
