/*
 * Tests for the kernel ELF validator. Each test assembles a valid kernel image
 * in memory (the shape ld.lld gives Canopy's kernel: text R+X, rodata R, data+bss
 * R+W, page aligned, plus a PT_GNU_STACK), breaks exactly one thing, and checks
 * that the validator names that problem.
 *
 *   0xffffffff80000000  text    r-x  1 page   file 0x1000
 *   0xffffffff80001000  rodata  r--  1 page   file 0x2000 (0x800 bytes)
 *   0xffffffff80002000  data    rw-  3 pages  file 0x3000 (0x100 bytes, rest bss)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../load/elf.h"
#include "check.h"

#define KB           0xffffffff80000000ull
#define PT_LOAD      1
#define PT_DYNAMIC   2
#define PT_INTERP    3
#define PT_NOTE      4
#define PT_TLS       7
#define PT_GNU_STACK 0x6474e551u

struct ehdr {
    unsigned char ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

#define MAX_PH 20

/* An image under construction: the headers are edited, then written into bytes. */
struct image {
    struct ehdr eh;
    struct phdr ph[MAX_PH];
    size_t size;
    unsigned char bytes[0x20000];
};

static struct image img;

static void add_ph(uint32_t type, uint32_t flags, uint64_t off, uint64_t va, uint64_t filesz,
                   uint64_t memsz)
{
    struct phdr *p = &img.ph[img.eh.phnum++];
    *p = (struct phdr){.type = type,
                       .flags = flags,
                       .offset = off,
                       .vaddr = va,
                       .paddr = va - KB,
                       .filesz = filesz,
                       .memsz = memsz,
                       .align = 0x1000};
}

/* Sets up the valid three-segment kernel described at the top of the file. */
static void build_valid(void)
{
    memset(&img, 0, sizeof(img));
    memcpy(img.eh.ident,
           "\x7f"
           "ELF",
           4);
    img.eh.ident[4] = 2; /* ELFCLASS64 */
    img.eh.ident[5] = 1; /* little endian */
    img.eh.ident[6] = 1; /* EV_CURRENT */
    img.eh.type = 2;     /* ET_EXEC */
    img.eh.machine = 62; /* x86-64 */
    img.eh.version = 1;
    img.eh.entry = KB + 0x10;
    img.eh.phoff = 64;
    img.eh.ehsize = 64;
    img.eh.phentsize = 56;
    add_ph(PT_LOAD, 5, 0x1000, KB, 0x1000, 0x1000);
    add_ph(PT_LOAD, 4, 0x2000, KB + 0x1000, 0x800, 0x800);
    add_ph(PT_LOAD, 6, 0x3000, KB + 0x2000, 0x100, 0x3000);
    add_ph(PT_GNU_STACK, 6, 0, 0, 0, 0);
    img.ph[3].paddr = 0;
    img.size = 0x3100;
}

/* Writes the headers into the byte image and validates it. */
static enum elf_status run(uint64_t avail, struct elf_plan *plan, struct elf_error *err)
{
    memset(img.bytes, 0xcc, sizeof(img.bytes));
    memcpy(img.bytes, &img.eh, sizeof(img.eh));
    unsigned n = img.eh.phnum < MAX_PH ? img.eh.phnum : MAX_PH; /* phnum may lie */
    if (img.eh.phoff < sizeof(img.bytes) - sizeof(img.ph))
        memcpy(img.bytes + img.eh.phoff, img.ph, sizeof(img.ph[0]) * n);
    return elf_validate(img.bytes, img.size, avail, plan, err);
}

#define PLENTY (512ull << 20)

/* Validates the current image and checks that it fails with `want`. */
static void expect(enum elf_status want, const char *what)
{
    struct elf_plan plan;
    struct elf_error err;
    enum elf_status st = run(PLENTY, &plan, &err);
    if (st != want)
        fprintf(stderr, "  %s: got %s (%s), want %s\n", what, elf_status_str(st), err.reason,
                elf_status_str(want));
    CHECK(st == want);
    CHECK(err.status == want);
    CHECK(err.reason[0] != '\0');
}

/* Like expect(), and the reason must contain `words`. */
static void expect_reason(enum elf_status want, const char *words)
{
    struct elf_plan plan;
    struct elf_error err;
    enum elf_status st = run(PLENTY, &plan, &err);
    if (st != want || !strstr(err.reason, words))
        fprintf(stderr, "  got %s (%s), want %s with '%s'\n", elf_status_str(st), err.reason,
                elf_status_str(want), words);
    CHECK(st == want);
    CHECK(strstr(err.reason, words) != NULL);
}

/* Each version field is named with its own value; a count of one is singular. */
static void test_elf_reasons_name_the_field_and_count(void)
{
    build_valid();
    img.eh.ident[6] = 0;
    expect_reason(ELF_ERR_VERSION, "version 0 in e_ident[EI_VERSION]");
    build_valid();
    img.eh.ident[6] = 0;
    img.eh.version = 1;
    expect_reason(ELF_ERR_VERSION, "version 0 in e_ident");
    build_valid();
    img.eh.version = 2;
    expect_reason(ELF_ERR_VERSION, "version 2 in e_version");
    build_valid();
    img.size = 1;
    expect_reason(ELF_ERR_TRUNCATED, "has 1 byte,");
    build_valid();
    img.size = 2;
    expect_reason(ELF_ERR_TRUNCATED, "has 2 bytes,");
}

static void test_elf_valid_kernel_gives_plan(void)
{
    struct elf_plan plan;
    struct elf_error err;
    build_valid();
    CHECK(run(PLENTY, &plan, &err) == ELF_OK);
    CHECK(err.status == ELF_OK);
    CHECK(plan.count == 3);
    CHECK(plan.entry == KB + 0x10);
    CHECK(plan.total_pages == 5);
    CHECK(plan.seg[0].vaddr == KB && plan.seg[0].page_count == 1);
    CHECK(plan.seg[0].flags == (CANOPY_SEG_R | CANOPY_SEG_X));
    CHECK(plan.seg[0].file_offset == 0x1000 && plan.seg[0].file_size == 0x1000);
    CHECK(plan.seg[1].vaddr == KB + 0x1000 && plan.seg[1].flags == CANOPY_SEG_R);
    CHECK(plan.seg[2].vaddr == KB + 0x2000 && plan.seg[2].page_count == 3);
    CHECK(plan.seg[2].flags == (CANOPY_SEG_R | CANOPY_SEG_W));
    CHECK(plan.seg[2].file_size == 0x100 && plan.seg[2].mem_size == 0x3000);
    CHECK(plan.seg[2].phdr_index == 2);
}

static void test_elf_plan_sorted_and_unaligned_start(void)
{
    struct elf_plan plan;
    build_valid();
    /* Data first in the table, and text starting 0x40 into its page. */
    struct phdr t = img.ph[0];
    img.ph[0] = img.ph[2];
    img.ph[2] = t;
    img.ph[2].vaddr += 0x40;
    img.ph[2].offset += 0x40;
    img.ph[2].filesz -= 0x40;
    img.ph[2].memsz -= 0x40;
    img.eh.entry = KB + 0x40;
    CHECK(run(PLENTY, &plan, NULL) == ELF_OK);
    CHECK(plan.count == 3);
    CHECK(plan.seg[0].vaddr == KB && plan.seg[0].page_offset == 0x40);
    CHECK(plan.seg[0].phdr_index == 2 && plan.seg[0].file_offset == 0x1040);
    CHECK(plan.seg[1].vaddr == KB + 0x1000);
    CHECK(plan.seg[2].vaddr == KB + 0x2000 && plan.seg[2].phdr_index == 0);
}

static void test_elf_segment_ending_at_top_is_accepted(void)
{
    struct elf_plan plan;
    build_valid();
    img.ph[2].vaddr = 0xfffffffffffff000ull;
    img.ph[2].memsz = 0x1000;
    CHECK(run(PLENTY, &plan, NULL) == ELF_OK);
    CHECK(plan.seg[2].vaddr == 0xfffffffffffff000ull && plan.seg[2].page_count == 1);
}

static void test_elf_empty_load_and_align_zero_are_accepted(void)
{
    struct elf_plan plan;
    build_valid();
    add_ph(PT_LOAD, 6, 0, 0x1000, 0, 0); /* zero-size PT_LOAD in the lower half: ignored */
    img.ph[1].align = 0;
    img.ph[0].align = 1;
    img.ph[2].vaddr = KB + 0x3000; /* congruent with its offset modulo 2 MiB */
    img.ph[2].align = 0x200000;
    add_ph(PT_NOTE, 4, 0x1000, 0, 0x10, 0); /* other types are ignored */
    CHECK(run(PLENTY, &plan, NULL) == ELF_OK);
    CHECK(plan.count == 3);
}

/* A static kernel only: each type stage 1 would have to act on gets its own reason. */
static void test_elf_interp_dynamic_tls_are_rejected(void)
{
    build_valid();
    add_ph(PT_INTERP, 4, 0x2000, KB + 0x1000, 0x10, 0x10);
    expect_reason(ELF_ERR_INTERP, "program header 4 is PT_INTERP");
    expect_reason(ELF_ERR_INTERP, "no dynamic linking");
    build_valid();
    add_ph(PT_DYNAMIC, 6, 0x3000, KB + 0x2000, 0x10, 0x10);
    expect_reason(ELF_ERR_DYNAMIC, "applies none");
    build_valid();
    add_ph(PT_TLS, 4, 0x3000, KB + 0x2000, 0x10, 0x20);
    expect_reason(ELF_ERR_TLS, "thread-local storage");
    /* Before the segments: the first header decides, whatever follows. */
    build_valid();
    img.ph[3].type = PT_DYNAMIC;
    img.ph[1].offset = 0x4000; /* rodata past the end of the file, listed earlier */
    expect(ELF_ERR_SEG_OUTSIDE_FILE, "rodata first");
}

static void test_elf_segment_without_permissions_is_rejected(void)
{
    build_valid();
    img.ph[1].flags = 0;
    expect_reason(ELF_ERR_NO_ACCESS, "segment 1 at 0xffffffff80001000 has no R, W or X");
    build_valid();
    img.ph[1].flags = 8; /* a flag bit outside R, W, X only */
    expect(ELF_ERR_NO_ACCESS, "only an unknown flag");
    build_valid();
    img.ph[1].flags = 1; /* execute only is a permission */
    img.eh.entry = KB + 0x1000;
    struct elf_plan plan;
    CHECK(run(PLENTY, &plan, NULL) == ELF_OK);
}

/* p_vaddr and p_offset agree modulo p_align when it is above the page size. */
static void test_elf_large_alignment_needs_congruence(void)
{
    build_valid();
    img.ph[2].align = 0x200000; /* KB + 0x2000 vs 0x3000 */
    expect_reason(ELF_ERR_CONGRUENCE, "modulo its p_align (0x200000)");
    build_valid();
    img.ph[2].align = 0x2000; /* 0x2000 vs 0x3000 modulo 8 KiB: 0 and 0x1000 */
    expect(ELF_ERR_CONGRUENCE, "modulo 8 KiB");
    build_valid();
    img.ph[2].align = 0x1000; /* the page size: only the page check applies */
    struct elf_plan plan;
    CHECK(run(PLENTY, &plan, NULL) == ELF_OK);
}

/* The zero-filled part of an executable segment holds no code to enter. */
static void test_elf_entry_in_zero_filled_tail(void)
{
    build_valid();
    img.ph[0].filesz = 0x800; /* text: 0x800 file bytes, then zeros to the page's end */
    img.eh.entry = KB + 0x800;
    expect_reason(ELF_ERR_ENTRY_IN_BSS, "segment 0's zero-filled tail (past its 2048 file bytes)");
    img.eh.entry = KB + 0xfff;
    expect(ELF_ERR_ENTRY_IN_BSS, "last byte of the tail");
    img.eh.entry = KB + 0x7ff; /* the last file byte */
    struct elf_plan plan;
    CHECK(run(PLENTY, &plan, NULL) == ELF_OK);
}

static void test_elf_size_limit_is_inclusive(void)
{
    struct elf_plan plan;
    struct elf_error err;
    build_valid();
    CHECK(run(5 * PAGE_SIZE, &plan, &err) == ELF_OK);
    CHECK(run(5 * PAGE_SIZE - 1, &plan, &err) == ELF_ERR_TOO_BIG);
    CHECK(err.status == ELF_ERR_TOO_BIG);
    CHECK(run(0, &plan, &err) == ELF_ERR_TOO_BIG);
}

static void test_elf_header_rejections(void)
{
    build_valid();
    img.size = 63;
    expect(ELF_ERR_TRUNCATED, "63 bytes");
    build_valid();
    img.size = 0;
    expect(ELF_ERR_TRUNCATED, "empty");
    build_valid();
    img.eh.ident[1] = 'X';
    expect(ELF_ERR_MAGIC, "magic");
    build_valid();
    img.eh.ident[4] = 1;
    expect(ELF_ERR_CLASS, "ELFCLASS32");
    build_valid();
    img.eh.ident[5] = 2;
    expect(ELF_ERR_ENDIAN, "big endian");
    build_valid();
    img.eh.ident[6] = 0;
    expect(ELF_ERR_VERSION, "ident version");
    build_valid();
    img.eh.version = 2;
    expect(ELF_ERR_VERSION, "e_version");
    build_valid();
    img.eh.machine = 3;
    expect(ELF_ERR_MACHINE, "i386");
    build_valid();
    img.eh.type = 3;
    expect(ELF_ERR_TYPE, "ET_DYN");
    build_valid();
    img.eh.type = 1;
    expect(ELF_ERR_TYPE, "ET_REL");
    build_valid();
    img.eh.ehsize = 52;
    expect(ELF_ERR_EHSIZE, "ehsize");
    build_valid();
    img.eh.phentsize = 32;
    expect(ELF_ERR_PHENTSIZE, "phentsize");
    build_valid();
    img.eh.phnum = 0;
    expect(ELF_ERR_PHNUM, "phnum 0");
    build_valid();
    img.eh.phnum = 0xffff;
    expect(ELF_ERR_PHNUM, "PN_XNUM");
}

static void test_elf_phdr_table_outside_file(void)
{
    build_valid();
    img.eh.phnum = 250; /* a lying count: 64 + 250 * 56 bytes run past 0x3100 */
    expect(ELF_ERR_PHDRS_OUTSIDE, "phnum lies");
    build_valid();
    img.eh.phoff = 0x3100 - 100;
    expect(ELF_ERR_PHDRS_OUTSIDE, "table straddles the end");
    build_valid();
    img.eh.phoff = 0xfffffffffffffff0ull; /* offset + size overflows */
    expect(ELF_ERR_PHDRS_OUTSIDE, "offset overflow");
}

static void test_elf_no_load(void)
{
    build_valid();
    for (int i = 0; i < 3; i++)
        img.ph[i].type = PT_NOTE;
    expect(ELF_ERR_NO_LOAD, "no PT_LOAD");
    build_valid();
    for (int i = 0; i < 3; i++)
        img.ph[i].filesz = img.ph[i].memsz = 0;
    expect(ELF_ERR_NO_LOAD, "only empty PT_LOADs");
}

static void test_elf_too_many_segments(void)
{
    build_valid();
    img.eh.phnum = 0;
    /* 17 one-page text segments, each with a page of its own. */
    for (int i = 0; i < CANOPY_MAX_SEGMENTS + 1; i++)
        add_ph(PT_LOAD, 5, 0x1000, KB + 0x2000ull * i, 0x10, 0x10);
    expect(ELF_ERR_TOO_MANY_SEGMENTS, "17 segments");
    /* Exactly the maximum is fine. */
    img.eh.phnum = CANOPY_MAX_SEGMENTS;
    struct elf_plan plan;
    struct elf_error err;
    img.eh.entry = KB + 0x8; /* inside the first 16-byte segment */
    CHECK(run(PLENTY, &plan, &err) == ELF_OK);
    CHECK(plan.count == CANOPY_MAX_SEGMENTS);
}

static void test_elf_segment_rejections(void)
{
    build_valid();
    img.ph[1].offset = 0x4000;
    expect(ELF_ERR_SEG_OUTSIDE_FILE, "offset past the end");
    build_valid();
    img.ph[2].filesz = 0x101; /* 0x3000 + 0x101: one byte past the end */
    img.ph[2].memsz = 0x3000;
    expect(ELF_ERR_SEG_OUTSIDE_FILE, "filesz one byte past the end");
    build_valid();
    img.ph[0].filesz = UINT64_MAX; /* offset + filesz overflows */
    img.ph[0].memsz = UINT64_MAX;
    expect(ELF_ERR_SEG_OUTSIDE_FILE, "filesz overflow");
    build_valid();
    img.ph[1].memsz = 0x7ff;
    expect(ELF_ERR_FILESZ, "filesz > memsz");
    build_valid();
    img.ph[1].align = 3000;
    expect(ELF_ERR_ALIGN, "align 3000");
    build_valid();
    img.ph[1].vaddr += 8;
    expect(ELF_ERR_CONGRUENCE, "vaddr off by 8");
    build_valid();
    img.ph[2].vaddr = 0xfffffffffffff000ull;
    img.ph[2].memsz = 0x2000;
    expect(ELF_ERR_WRAPS, "wraps by a page");
    build_valid();
    img.ph[2].memsz = UINT64_MAX - 0x1000;
    expect(ELF_ERR_WRAPS, "enormous memsz");
    build_valid();
    img.ph[1].vaddr = 0x401000;
    expect(ELF_ERR_LOWER_HALF, "lower half");
    build_valid();
    img.ph[1].vaddr = 0x0000900000001000ull;
    expect(ELF_ERR_NONCANONICAL, "non-canonical");
    build_valid();
    img.ph[1].vaddr = 0xffff800000001000ull;
    expect(ELF_ERR_OUTSIDE_KERNEL_AREA, "in the HHDM");
    build_valid();
    img.ph[1].vaddr = KB - 0x1000;
    img.ph[1].offset = 0x2000;
    expect(ELF_ERR_OUTSIDE_KERNEL_AREA, "a page below the kernel base");
    build_valid();
    img.ph[2].flags = 7;
    expect(ELF_ERR_WX, "rwx data");
    build_valid();
    img.ph[0].flags = 3;
    expect(ELF_ERR_WX, "wx text");
}

static void test_elf_overlap_and_shared_page(void)
{
    build_valid();
    img.ph[1].vaddr = KB + 0x800; /* inside text */
    img.ph[1].offset = 0x1800;
    expect(ELF_ERR_OVERLAP, "rodata inside text");
    build_valid();
    img.ph[2].vaddr = KB; /* same start, listed later */
    expect(ELF_ERR_OVERLAP, "same start");
    build_valid();
    img.ph[0].filesz = img.ph[0].memsz = 0x800; /* text ends mid-page ... */
    img.ph[1].vaddr = KB + 0x900;               /* ... and rodata starts on that page */
    img.ph[1].offset = 0x2900;
    img.ph[1].filesz = img.ph[1].memsz = 0x100;
    expect(ELF_ERR_SHARED_PAGE, "text and rodata share a page");
    build_valid();
    img.ph[2].vaddr = KB + 0x2100; /* data starts 0x100 into its page, with no file bytes */
    img.ph[2].offset = 0x3100;
    img.ph[2].filesz = 0;
    img.ph[2].memsz = 0x2f00;
    img.ph[1].memsz = 0x1001; /* rodata's last byte lands on that page, before data */
    expect(ELF_ERR_SHARED_PAGE, "rodata tail on data's page");
    /*
     * Both start in one page, the later bytes listed first: they share the
     * page, they do not overlap.
     */
    build_valid();
    img.ph[0].vaddr = KB + 0x800;
    img.ph[0].offset = 0x1800;
    img.ph[0].filesz = img.ph[0].memsz = 0x800;
    img.eh.entry = KB + 0x800;
    img.ph[1].vaddr = KB + 0x100;
    img.ph[1].offset = 0x2100;
    img.ph[1].filesz = img.ph[1].memsz = 0x100;
    expect_reason(ELF_ERR_SHARED_PAGE, "segments 1 (r--) and 0 (r-x) share a page (0x");
}

static void test_elf_entry_rejections(void)
{
    build_valid();
    img.eh.entry = KB + 0x5000; /* one past the end of data */
    expect(ELF_ERR_ENTRY_OUTSIDE, "after every segment");
    build_valid();
    img.eh.entry = 0;
    expect(ELF_ERR_ENTRY_OUTSIDE, "zero");
    build_valid();
    img.ph[1].memsz = img.ph[1].filesz = 0x10; /* a hole after rodata's 16 bytes */
    img.eh.entry = KB + 0x1010;
    expect(ELF_ERR_ENTRY_OUTSIDE, "in the gap after rodata");
    build_valid();
    img.eh.entry = KB + 0x1000;
    expect(ELF_ERR_ENTRY_NOT_EXEC, "first byte of rodata");
    build_valid();
    img.eh.entry = KB + 0x4fff;
    expect(ELF_ERR_ENTRY_NOT_EXEC, "last byte of bss");
}

/* Every prefix of a valid image is rejected, and none makes the validator misbehave. */
static void test_elf_every_truncation_is_rejected(void)
{
    struct elf_plan plan;
    build_valid();
    run(PLENTY, &plan, NULL); /* writes the bytes */
    unsigned ok = 0;
    for (size_t n = 0; n < img.size; n++) {
        /* A fresh heap copy of exactly n bytes, so ASan sees any read past it. */
        unsigned char *copy = malloc(n ? n : 1);
        memcpy(copy, img.bytes, n);
        if (elf_validate(copy, n, PLENTY, &plan, NULL) == ELF_OK)
            ok++;
        free(copy);
    }
    CHECK(ok == 0);
    CHECK(elf_validate(img.bytes, img.size, PLENTY, &plan, NULL) == ELF_OK);
}

static void test_elf_every_status_has_a_name(void)
{
    for (int st = 0; st < ELF_STATUS_COUNT; st++) {
        const char *name = elf_status_str((enum elf_status)st);
        CHECK(name != NULL && name[0] != '\0');
        for (int other = 0; other < st; other++)
            CHECK(strcmp(name, elf_status_str((enum elf_status)other)) != 0);
    }
    CHECK(strcmp(elf_status_str(ELF_STATUS_COUNT), "unknown ELF status") == 0);
}

void elf_tests(void)
{
    RUN(test_elf_valid_kernel_gives_plan);
    RUN(test_elf_reasons_name_the_field_and_count);
    RUN(test_elf_plan_sorted_and_unaligned_start);
    RUN(test_elf_segment_ending_at_top_is_accepted);
    RUN(test_elf_empty_load_and_align_zero_are_accepted);
    RUN(test_elf_size_limit_is_inclusive);
    RUN(test_elf_header_rejections);
    RUN(test_elf_phdr_table_outside_file);
    RUN(test_elf_no_load);
    RUN(test_elf_too_many_segments);
    RUN(test_elf_segment_rejections);
    RUN(test_elf_overlap_and_shared_page);
    RUN(test_elf_interp_dynamic_tls_are_rejected);
    RUN(test_elf_segment_without_permissions_is_rejected);
    RUN(test_elf_large_alignment_needs_congruence);
    RUN(test_elf_entry_in_zero_filled_tail);
    RUN(test_elf_entry_rejections);
    RUN(test_elf_every_truncation_is_rejected);
    RUN(test_elf_every_status_has_a_name);
}
