/*
 * shell: the kernel's debug shell, a line editor and command interpreter with
 * no access to the machine of its own.
 *
 * The kernel feeds it one input byte at a time (from COM1 and the PS/2
 * keyboard) with shell_input(). Everything the shell prints and everything it
 * learns about the machine goes through struct shell_ops, so the same code runs
 * in the kernel, in the host tests and under the fuzzer.
 *
 * Output uses "\n" line ends; a console that needs "\r\n" translates. Erasing a
 * character is echoed as "\b \b".
 */
#ifndef KERNEL_SHELL_H
#define KERNEL_SHELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <canopy/fmt.h>
#include <pmm/pmm.h>
#include <vmm/pt.h>

#define SHELL_PROMPT     "canopy> "
#define SHELL_LINE_MAX   256  /* buffer bytes: at most SHELL_LINE_MAX - 1 characters per line */
#define SHELL_MAX_TOKENS 8    /* a command and up to 7 arguments */
#define SHELL_PEEK_MAX   4096 /* largest LEN `peek` accepts */
#define SHELL_PEEK_LEN   64   /* LEN when none is given */
#define SHELL_VMAS_MAX   4096 /* `vmas` stops listing after this many VMAs */
#define SHELL_OUT_BUF    512  /* output is handed to `write` in pieces of at most this */

/* What `pt` is asked to print. */
enum shell_pt_mode {
    SHELL_PT_HUMAN,     /* merged ranges with permissions, cache type, labels and a W+X summary */
    SHELL_PT_QEMU,      /* byte for byte QEMU's `info mem` */
    SHELL_PT_TLB,       /* byte for byte QEMU's `info tlb` */
    SHELL_PT_CHECK,     /* the manifest against the tables, the direct map, the frame rules */
    SHELL_PT_CHECK_EFI, /* the frame rules over the EFI runtime tables (as during a call) */
};

/* One VMA of the kernel address space, as `vmas` lists it. */
struct shell_vma {
    uint64_t start;   /* first byte */
    uint64_t last;    /* last byte (inclusive) */
    uint32_t prot;    /* PT_W | PT_X | PT_U */
    const char *name; /* may be NULL */
};

/* A page-table walk for `walk VA`. */
struct shell_walk {
    uint64_t root;   /* the CR3 the walk started from */
    unsigned levels; /* 4 or 5 */
    struct pt_walk walk;
};

/* The boot phase timestamps and what stage 1 verified, for `boottime`. */
struct shell_boottime {
    uint64_t tsc_hz;                        /* 0 when unknown: cycles are printed instead */
    uint64_t phase_tsc[CANOPY_PHASE_COUNT]; /* 0 for a phase not reached */
    uint32_t pt_frames_used;    /* page-table frames stage 1's builder took (0: not reported) */
    uint32_t pt_frames_minimum; /* the fewest pt_map's page split needs (0: not computed) */
    bool secure_boot;           /* the firmware enforced Secure Boot */
    bool kernel_verified;       /* stage 1 checked the kernel against a verified hash */
};

/*
 * The kernel's side of the shell. `ctx` is passed back to every callback.
 * Only `write` is required; a command whose callback is NULL prints
 * "CMD: not available". The data callbacks (pmm, memmap, vma_*, walk, peek,
 * boottime) print nothing; the shell formats what they return. Output is
 * buffered and always handed to `write` before shell_input, shell_run and
 * shell_prompt return, and before pt, selftest, reboot and poweroff are called.
 */
struct shell_ops {
    void *ctx;
    /* Writes n bytes of text to every console. */
    void (*write)(void *ctx, const char *s, size_t n);
    /* Paging depth, for canonical address checks: 4 or 5 levels (0 means 4). */
    unsigned paging_levels;

    /* `mem`: the PMM to report on (read only). */
    const struct pmm *(*pmm)(void *ctx);
    /* `memmap`: the normalised boot memory map; *count receives its length. */
    const struct canopy_mem_range *(*memmap)(void *ctx, size_t *count);
    /* `vmas`: the bounds of the kernel address space... */
    void (*vma_bounds)(void *ctx, uint64_t *start, uint64_t *last);
    /* ...and the lowest VMA whose last byte is >= from; false when there is none. */
    bool (*vma_next)(void *ctx, uint64_t from, struct shell_vma *out);
    /*
     * `pt`: prints a dump of the live page tables for [start, last] into sink.
     * The shell prints the "--- pt begin ---" / "--- pt end ---" lines itself.
     */
    void (*pt)(void *ctx, enum shell_pt_mode mode, uint64_t start, uint64_t last, fmt_sink sink,
               void *sink_ctx);
    /* `walk`: walks the live page tables for va. */
    void (*walk)(void *ctx, uint64_t va, struct shell_walk *out);
    /*
     * `peek`: copies len bytes at va into buf without faulting; false if any of
     * them is not mapped readable. => [va, va + len) lies within one 4 KiB page.
     */
    bool (*peek)(void *ctx, uint64_t va, void *buf, size_t len);
    /* `selftest`: runs the kernel's self tests, printing into sink; true if all passed. */
    bool (*selftest)(void *ctx, fmt_sink sink, void *sink_ctx);
    /* `boottime`: fills in the phase timestamps. */
    void (*boottime)(void *ctx, struct shell_boottime *out);
    /* `reboot`, `poweroff`: do not return on success. */
    void (*reboot)(void *ctx);
    void (*poweroff)(void *ctx);
};

/* Why the line being typed will be discarded when it ends. */
enum shell_line_fault {
    SHELL_LINE_OK = 0,
    SHELL_LINE_CONTROL,  /* a control character or a non-ASCII byte was typed */
    SHELL_LINE_OVERLONG, /* more than SHELL_LINE_MAX - 1 characters */
};

/* The shell's state. Plain data; change it only through the functions below. */
struct shell {
    const struct shell_ops *ops;
    char line[SHELL_LINE_MAX]; /* the line being typed, line[len] == 0 */
    size_t len;
    enum shell_line_fault fault;
    uint8_t fault_byte;      /* the first offending byte (SHELL_LINE_CONTROL) */
    bool after_cr;           /* the previous byte was CR: a following LF ends nothing */
    uint64_t lines;          /* lines completed (empty ones included) */
    uint64_t rejected;       /* lines discarded for a fault */
    uint64_t commands;       /* lines dispatched as commands */
    char out[SHELL_OUT_BUF]; /* output not yet handed to ops->write */
    size_t out_len;
};

/*
 * Prepares sh to read lines; prints nothing.
 * => ops and ops->write are not NULL and ops outlives sh.
 */
void shell_init(struct shell *sh, const struct shell_ops *ops);

/* Prints the prompt; the kernel calls it once after "canopy: ready". */
void shell_prompt(struct shell *sh);

/*
 * Feeds one input byte: printable characters are echoed and buffered, 0x08 and
 * 0x7f erase, CR, LF or CRLF end the line, which is then run and followed by a
 * new prompt. A line with a control character or one that is too long is
 * discarded when it ends, with one error line.
 */
void shell_input(struct shell *sh, char c);

/* Runs one command line as if typed (no echo, no prompt); line is NUL terminated. */
void shell_run(struct shell *sh, const char *line);

#endif
