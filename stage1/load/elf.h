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
#include <canopy/page.h>

enum elf_status {
    ELF_OK = 0,
    ELF_ERR_TRUNCATED,           /* shorter than an ELF header */
    ELF_ERR_MAGIC,               /* no \x7fELF */
    ELF_ERR_CLASS,               /* not ELFCLASS64 */
    ELF_ERR_ENDIAN,              /* not little endian */
    ELF_ERR_VERSION,             /* EI_VERSION or e_version is not 1 */
    ELF_ERR_MACHINE,             /* not EM_X86_64 */
    ELF_ERR_TYPE,                /* not ET_EXEC */
    ELF_ERR_EHSIZE,              /* e_ehsize is not the size of an ELF64 header */
    ELF_ERR_PHENTSIZE,           /* e_phentsize is not the size of an ELF64 program header */
    ELF_ERR_PHNUM,               /* no program headers, or PN_XNUM (extended numbering) */
    ELF_ERR_PHDRS_OUTSIDE,       /* the program header table runs past the end of the file */
    ELF_ERR_NO_LOAD,             /* no PT_LOAD segment with a non-zero size */
    ELF_ERR_TOO_MANY_SEGMENTS,   /* more than CANOPY_MAX_SEGMENTS PT_LOAD segments */
    ELF_ERR_SEG_OUTSIDE_FILE,    /* p_offset + p_filesz runs past the end of the file */
    ELF_ERR_FILESZ,              /* p_filesz > p_memsz */
    ELF_ERR_ALIGN,               /* p_align is not 0, 1 or a power of two */
    ELF_ERR_CONGRUENCE,          /* p_vaddr and p_offset differ modulo the page size */
    ELF_ERR_WRAPS,               /* p_vaddr + p_memsz wraps past 2^64 */
    ELF_ERR_LOWER_HALF,          /* the segment starts in the lower half */
    ELF_ERR_NONCANONICAL,        /* the segment starts in the non-canonical hole */
    ELF_ERR_OUTSIDE_KERNEL_AREA, /* higher half, but below CANOPY_KERNEL_BASE */
    ELF_ERR_WX,                  /* writable and executable */
    ELF_ERR_OVERLAP,             /* two segments overlap */
    ELF_ERR_SHARED_PAGE,         /* two segments share a page (their permissions would merge) */
    ELF_ERR_ENTRY_OUTSIDE,       /* the entry point is in no segment */
    ELF_ERR_ENTRY_NOT_EXEC,      /* the entry point is in a segment without PF_X */
    ELF_ERR_TOO_BIG,             /* the segments need more memory than is available */
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
    struct elf_segment_plan seg[CANOPY_MAX_SEGMENTS]; /* sorted by vaddr */
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
 */
enum elf_status elf_validate(const void *image, size_t size, uint64_t avail_bytes,
                             struct elf_plan *plan, struct elf_error *err);

/* A short fixed name for a status ("bad magic", ...). */
const char *elf_status_str(enum elf_status st);

#endif
