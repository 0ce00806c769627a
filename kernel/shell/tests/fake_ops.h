/*
 * A fake kernel for the shell's host tests and fuzzer: struct shell_ops
 * callbacks over a small, fixed machine (a PMM snapshot, a memory map, a few
 * VMAs, two mapped pages), recording every output byte and every call.
 */
#ifndef SHELL_TESTS_FAKE_OPS_H
#define SHELL_TESTS_FAKE_OPS_H

#include <kernel/shell.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fake's only readable memory: two pages, [FAKE_MEM_VA, FAKE_MEM_VA + 8 KiB). */
#define FAKE_MEM_VA    0xffff800000010000ull
#define FAKE_MEM_BYTES 8192u

struct fake {
    /* Output captured since the last fake_clear; bytes beyond out_cap are counted, not kept. */
    char *out;
    size_t out_len, out_cap, out_total;
    unsigned writes; /* calls of ops->write */

    struct pmm pmm;
    struct canopy_mem_range map[4];
    size_t map_count;
    struct shell_vma vmas[4];
    size_t vma_count;
    uint64_t space_start, space_last;
    uint8_t mem[FAKE_MEM_BYTES];
    struct shell_boottime boot;
    bool selftest_result;
    bool pt_direct; /* pt also prints straight to the console, as a kprintf would */

    /* What the shell asked for. */
    unsigned pt_calls, walk_calls, peek_calls, selftest_calls, reboot_calls, poweroff_calls;
    enum shell_pt_mode pt_mode;
    uint64_t pt_start, pt_last, walk_va;
    bool peek_crossed_page; /* a peek ever spanned two pages (a contract violation) */
    size_t out_at_reboot;   /* output length when reboot or poweroff was called */
};

/* Fills f with the default machine and ops with every callback pointing at it. */
void fake_init(struct fake *f, struct shell_ops *ops, size_t out_cap);
void fake_free(struct fake *f);
/* Forgets captured output. */
void fake_clear(struct fake *f);
/* Feeds a NUL-terminated string to the shell byte by byte. */
void fake_type(struct shell *sh, const char *s);
/* Feeds n bytes. */
void fake_type_n(struct shell *sh, const uint8_t *s, size_t n);

#endif
