/*
 * bootinfo_test: the kernel's boot-info check accepts what a correct stage 1
 * hands over, and rejects each way that can be wrong with a line that names
 * the problem.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <kernel/bootinfo.h>

#include "check.h"

static struct canopy_bootinfo bi;
static struct bootinfo_cpu cpu;

/* A boot info as stage 1 builds it for a 4-level machine with NX. */
static void make_valid(void)
{
    memset(&bi, 0, sizeof(bi));
    bi.magic = CANOPY_BOOTINFO_MAGIC;
    bi.version = CANOPY_BOOTINFO_VERSION;
    bi.size = sizeof(bi);
    bi.hhdm_base = CANOPY_HHDM_BASE_4L;
    bi.paging_levels = 4;
    bi.cpu_flags = CANOPY_CPU_NX | CANOPY_CPU_PDPE1G;
    bi.mem_ranges = 0x200000;
    bi.mem_range_count = 10;
    bi.mem_range_capacity = 20;
    bi.pmm = 0x201000;
    bi.segments[0] = (struct canopy_segment){0xffffffff80000000ull, 0x300000, 13,
                                             CANOPY_SEG_R | CANOPY_SEG_X, 0};
    bi.segments[1] = (struct canopy_segment){0xffffffff8000d000ull, 0x400000, 5, CANOPY_SEG_R, 0};
    bi.segments[2] = (struct canopy_segment){0xffffffff80012000ull, 0x500000, 44,
                                             CANOPY_SEG_R | CANOPY_SEG_W, 0};
    bi.segment_count = 3;
    bi.kernel_entry_va = 0xffffffff80000000ull;
    bi.stack_top_va = CANOPY_DYNAMIC_BASE + 0x100000;
    bi.trampoline_page = 0x7f000;
    bi.pt_root = 0x600000;
    bi.fb.format = CANOPY_FB_BGRX;
    bi.fb.base = 0xc0000000;
    bi.fb.size_bytes = 0x3e8000;
    bi.fb_va = CANOPY_DYNAMIC_BASE + 0x200000;
    bi.mappings = 0x700000;
    bi.mapping_count = 8;
    bi.mapping_capacity = 64;
    strcpy(bi.cmdline, "verbose=1");
    cpu = (struct bootinfo_cpu){.cr3_root = 0x600000, .la57 = false, .nxe = true};
}

/* True if the check fails and its message contains `word`. */
static bool rejected_for(const char *word)
{
    const char *why = bootinfo_problem(&bi, &cpu);
    if (why == NULL)
        return false;
    if (strstr(why, word) == NULL) {
        fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", why, word);
        return false;
    }
    return true;
}

static void test_bootinfo_valid_is_accepted(void)
{
    make_valid();
    CHECK(bootinfo_problem(&bi, &cpu) == NULL);
    /* 5-level paging with its own HHDM base. */
    bi.paging_levels = 5;
    bi.hhdm_base = CANOPY_HHDM_BASE_5L;
    cpu.la57 = true;
    CHECK(bootinfo_problem(&bi, &cpu) == NULL);
    /* No trampoline recorded, no framebuffer, no manifest. */
    make_valid();
    bi.trampoline_page = 0;
    bi.fb.format = CANOPY_FB_NONE;
    bi.mappings = 0;
    bi.mapping_count = bi.mapping_capacity = 0;
    CHECK(bootinfo_problem(&bi, &cpu) == NULL);
}

static void test_bootinfo_header_is_checked_first(void)
{
    make_valid();
    bi.magic ^= 1;
    CHECK(rejected_for("magic"));
    make_valid();
    bi.version = 0;
    CHECK(rejected_for("version 0"));
    make_valid();
    bi.size = sizeof(bi) - 8;
    CHECK(rejected_for("size"));
    make_valid();
    bi.size = sizeof(bi) + 8; /* same version, different size */
    CHECK(rejected_for("size"));
    /* A newer stage 1 that appended fields is accepted. */
    make_valid();
    bi.version = CANOPY_BOOTINFO_VERSION + 1;
    bi.size = sizeof(bi) + 64;
    CHECK(bootinfo_problem(&bi, &cpu) == NULL);
}

static void test_bootinfo_paging_must_match_the_cpu(void)
{
    make_valid();
    bi.paging_levels = 3;
    CHECK(rejected_for("paging levels"));
    make_valid();
    cpu.la57 = true;
    CHECK(rejected_for("LA57"));
    make_valid();
    bi.hhdm_base = 0xffff900000000000ull;
    CHECK(rejected_for("HHDM"));
    make_valid();
    cpu.cr3_root = 0x601000;
    CHECK(rejected_for("CR3"));
    make_valid();
    cpu.nxe = false;
    CHECK(rejected_for("NXE"));
    make_valid();
    bi.pmm = 0;
    CHECK(rejected_for("PMM"));
}

static void test_bootinfo_segments_are_checked(void)
{
    make_valid();
    bi.segment_count = 0;
    CHECK(rejected_for("segment count"));
    make_valid();
    bi.segment_count = CANOPY_MAX_SEGMENTS + 1;
    CHECK(rejected_for("segment count"));
    make_valid();
    bi.segments[1].flags = CANOPY_SEG_R | CANOPY_SEG_W | CANOPY_SEG_X;
    CHECK(rejected_for("writable and executable"));
    make_valid();
    bi.segments[2].vaddr += 8;
    CHECK(rejected_for("aligned"));
    make_valid();
    bi.segments[0].vaddr = 0xffff800000000000ull;
    CHECK(rejected_for("outside the kernel area"));
    make_valid();
    bi.segments[2].page_count = (1ull << 52); /* wraps past 2^64 */
    CHECK(rejected_for("outside the kernel area"));
    make_valid();
    bi.segments[1].vaddr = 0xffffffff8000c000ull; /* overlaps .text's last page */
    CHECK(rejected_for("overlaps"));
}

static void test_bootinfo_other_fields_are_checked(void)
{
    make_valid();
    bi.stack_top_va = 0xffffffff90000000ull;
    CHECK(rejected_for("stack"));
    make_valid();
    bi.stack_top_va = CANOPY_DYNAMIC_BASE + 0x1000; /* guard page would be below the area */
    CHECK(rejected_for("stack"));
    make_valid();
    bi.trampoline_page = 0xffff800000001000ull;
    CHECK(rejected_for("trampoline"));
    make_valid();
    bi.mem_range_count = 21;
    CHECK(rejected_for("memory map"));
    make_valid();
    bi.mem_range_count = 0;
    CHECK(rejected_for("memory map"));
    make_valid();
    bi.mapping_count = 65;
    CHECK(rejected_for("manifest"));
    make_valid();
    bi.fb.format = 9;
    CHECK(rejected_for("framebuffer format"));
    /* The framebuffer's mapping: in the dynamic area, at the same offset within a page. */
    make_valid();
    bi.fb_va = bi.fb.base + CANOPY_HHDM_BASE_4L; /* where version 1 reached it */
    CHECK(rejected_for("framebuffer mapping"));
    make_valid();
    bi.fb_va = CANOPY_DYNAMIC_END - 0x1000;
    CHECK(rejected_for("framebuffer mapping"));
    make_valid();
    bi.fb_va += 0x800;
    CHECK(rejected_for("framebuffer mapping"));
    make_valid();
    bi.fb_va = CANOPY_DYNAMIC_END - bi.fb.size_bytes;
    CHECK(bootinfo_problem(&bi, &cpu) == NULL);
    make_valid();
    memset(bi.cmdline, 'x', sizeof(bi.cmdline));
    CHECK(rejected_for("command line"));
}

/* Version 2's boot flags: each combination stage 1 can produce passes, the others fail. */
static void test_bootinfo_boot_flags_are_consistent(void)
{
    make_valid();
    bi.boot_flags =
        CANOPY_BOOT_SECURE_BOOT | CANOPY_BOOT_CONFIG_VERIFIED | CANOPY_BOOT_KERNEL_VERIFIED;
    memset(bi.kernel_sha256, 0xab, sizeof(bi.kernel_sha256));
    CHECK(bootinfo_problem(&bi, &cpu) == NULL);
    bi.boot_flags = CANOPY_BOOT_CONFIG_VERIFIED | CANOPY_BOOT_KERNEL_VERIFIED; /* pinned, SB off */
    CHECK(bootinfo_problem(&bi, &cpu) == NULL);
    bi.boot_flags = CANOPY_BOOT_KERNEL_VERIFIED;
    CHECK(rejected_for("unverified configuration"));
    bi.boot_flags = CANOPY_BOOT_CONFIG_VERIFIED; /* a hash without the flag */
    CHECK(rejected_for("hash is set"));
    make_valid();
    bi.boot_flags = CANOPY_BOOT_CONFIG_VERIFIED | CANOPY_BOOT_KERNEL_VERIFIED;
    CHECK(rejected_for("hash is missing"));
    make_valid();
    bi.boot_flags = CANOPY_BOOT_SECURE_BOOT;
    CHECK(rejected_for("configuration not verified"));
    make_valid();
    bi.boot_flags = 0x80;
    CHECK(rejected_for("unknown boot flags"));
}

void bootinfo_tests(void)
{
    RUN(test_bootinfo_valid_is_accepted);
    RUN(test_bootinfo_header_is_checked_first);
    RUN(test_bootinfo_paging_must_match_the_cpu);
    RUN(test_bootinfo_segments_are_checked);
    RUN(test_bootinfo_other_fields_are_checked);
    RUN(test_bootinfo_boot_flags_are_consistent);
}
