/*
 * elf: the kernel image validator and segment planner.
 *
 * A pure function over the bytes of the kernel file: it reads nothing but the
 * buffer it is given, allocates nothing and never trusts a field before it has
 * been range-checked. Stage 1 calls it while boot services are alive, before
 * anything else is touched; the host tests and the fuzzer call it directly.
 */
#ifndef STAGE1_LOAD_ELF_H
#define STAGE1_LOAD_ELF_H

#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <canopy/compiler.h>
#include <canopy/page.h>

/*
 * The validator's statuses, in the order its checks run, each with the short
 * name elf_status_str gives. The one list of them: the enum, the names and
 * the spellings the host tools print are all made from it.
 */
#define ELF_STATUSES(X)                                                                            \
    X(ELF_OK, "ok")                                                                                \
    X(ELF_ERR_TRUNCATED, "file too short for an ELF header")                                       \
    X(ELF_ERR_MAGIC, "not an ELF file")                                                            \
    X(ELF_ERR_CLASS, "not a 64-bit ELF file")                                                      \
    X(ELF_ERR_ENDIAN, "not little endian")                                                         \
    X(ELF_ERR_VERSION, "unknown ELF version") /* EI_VERSION or e_version */                        \
    X(ELF_ERR_MACHINE, "not an x86-64 ELF file")                                                   \
    X(ELF_ERR_TYPE, "not an ET_EXEC executable")                                                   \
    X(ELF_ERR_EHSIZE, "bad ELF header size")                                                       \
    X(ELF_ERR_PHENTSIZE, "bad program header entry size")                                          \
    X(ELF_ERR_PHNUM, "bad program header count") /* 0, or PN_XNUM (extended numbering) */          \
    X(ELF_ERR_PHDRS_OUTSIDE, "program headers outside the file")                                   \
    X(ELF_ERR_INTERP, "asks for a dynamic linker") /* PT_INTERP */                                 \
    X(ELF_ERR_DYNAMIC, "needs relocations")        /* PT_DYNAMIC */                                \
    X(ELF_ERR_TLS, "has thread-local storage")     /* PT_TLS */                                    \
    X(ELF_ERR_NO_LOAD, "no loadable segment")      /* no PT_LOAD with a non-zero size */           \
    X(ELF_ERR_TOO_MANY_SEGMENTS, "too many loadable segments") /* > CANOPY_MAX_SEGMENTS */         \
    X(ELF_ERR_SEG_OUTSIDE_FILE, "segment outside the file")                                        \
    X(ELF_ERR_FILESZ, "segment file size larger than its memory size")                             \
    X(ELF_ERR_ALIGN, "segment alignment not a power of two") /* nor 0 */                           \
    X(ELF_ERR_CONGRUENCE, "segment address and offset differ modulo the page size or p_align")     \
    X(ELF_ERR_WRAPS, "segment wraps past the top of the address space")                            \
    X(ELF_ERR_LOWER_HALF, "segment in the lower half")                                             \
    X(ELF_ERR_NONCANONICAL, "segment not canonical") /* starts in the non-canonical hole */        \
    X(ELF_ERR_OUTSIDE_KERNEL_AREA, "segment outside the kernel area") /* < CANOPY_KERNEL_BASE */   \
    X(ELF_ERR_WX, "segment writable and executable")                                               \
    X(ELF_ERR_NO_ACCESS, "segment neither readable, writable nor executable")                      \
    X(ELF_ERR_OVERLAP, "segments overlap")                                                         \
    X(ELF_ERR_SHARED_PAGE, "segments share a page") /* their permissions would merge */            \
    X(ELF_ERR_ENTRY_OUTSIDE, "entry point outside every segment")                                  \
    X(ELF_ERR_ENTRY_NOT_EXEC, "entry point in a non-executable segment")                           \
    X(ELF_ERR_ENTRY_IN_BSS, "entry point in a segment's zero-filled tail")                         \
    X(ELF_ERR_TOO_BIG, "kernel larger than the available memory")

enum elf_status {
#define ELF_STATUS_ENUM(name, text) name,
    ELF_STATUSES(ELF_STATUS_ENUM)
#undef ELF_STATUS_ENUM
        ELF_STATUS_COUNT
};

/* One PT_LOAD as stage 1 places it: frames for the whole pages it covers. */
struct elf_segment_plan {
    uint64_t vaddr;       /* page-aligned start: page_down(p_vaddr) */
    uint64_t page_count;  /* pages from vaddr to page_up(p_vaddr + p_memsz) */
    uint64_t page_offset; /* p_vaddr - vaddr: where the file bytes start in the first page */
    uint64_t file_offset; /* p_offset */
    uint64_t file_size;   /* p_filesz: bytes copied; everything else in the pages is zeroed */
    uint64_t mem_size;    /* p_memsz */
    uint32_t flags;       /* CANOPY_SEG_* (= ELF p_flags & 7) */
    uint32_t phdr_index;  /* the program header it came from */
};

struct elf_plan {
    struct elf_segment_plan seg[CANOPY_MAX_SEGMENTS]; /* sorted by p_vaddr (so by vaddr too) */
    uint32_t count;
    uint64_t entry;       /* e_entry */
    uint64_t total_pages; /* sum of page_count */
};

/* The reason a file was rejected: a status and one human-readable sentence. */
struct elf_error {
    enum elf_status status;
    char reason[160];
};

/*
 * Validates a kernel image completely and plans its segments.
 * => image[0..size) is the whole file; avail_bytes is the memory the segments
 *    may use (the conventional memory of the current map).
 * => on success fills *plan and returns ELF_OK; otherwise returns the first
 *    problem found, fills err (if not NULL) and leaves *plan unspecified.
 * => segments must be canonical, in [CANOPY_KERNEL_BASE, 2^64), and no two
 *    may share a page: permissions are per page, and merging two segments'
 *    permissions would silently grant one of them more than its ELF asks for.
 * => the file must be static: no PT_INTERP, PT_DYNAMIC or PT_TLS (stage 1
 *    links nothing, applies no relocations and sets up no TLS block).
 */
MUST_CHECK enum elf_status elf_validate(const void *image, size_t size, uint64_t avail_bytes,
                                        struct elf_plan *plan, struct elf_error *err);

/* A short fixed name for a status ("bad magic", ...). */
const char *elf_status_str(enum elf_status st);

#endif
