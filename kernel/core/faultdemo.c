/*
 * faultdemo: deliberate faults on request, so boot tests can see the
 * exception reports a real bug would produce. The command line word
 * `fault=KIND` triggers one after `canopy: ready`:
 *
 *   pagefault   a write to an unmapped lower-half address
 *   overflow    unbounded recursion into the boot stack's guard page
 *   ud          an invalid opcode
 *   gp          a non-canonical access (#GP)
 *   div         a division by zero
 *   rodata      a write to the kernel's read-only data (a protection fault)
 *   nx          a jump into the kernel's writable data (an NX fault)
 *   stack-smash a write past a local array, over the stack protector's canary
 *   ubsan       a signed overflow: reported by the CANOPY_UBSAN build, which goes on
 *
 * Every other kind ends in the fatal report and a halted CPU.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/page.h>
#include <canopy/vaddr.h>
#include <kernel/cmdline.h>
#include <kernel/console.h>
#include <kernel/faultdemo.h>

#define DEMO_UNMAPPED     PAGE_SIZE       /* page 1: the lower half is empty */
#define DEMO_NONCANONICAL va_lower_end(4) /* the hole's first address under 4-level paging */

static volatile uint64_t sink;
static volatile bool keep_going = true;

__attribute__((noinline)) static uint64_t recurse(uint64_t depth)
{
    volatile uint8_t frame[512]; /* eats the stack quickly */
    frame[0] = (uint8_t)depth;
    frame[sizeof(frame) - 1] = (uint8_t)depth;
    uint64_t r = keep_going ? recurse(depth + 1) : 0;
    return r + frame[0] + frame[sizeof(frame) - 1];
}

static const char *const kinds[] = {"pagefault", "overflow", "ud",          "gp",   "div",
                                    "rodata",    "nx",       "stack-smash", "ubsan"};
static const uint64_t read_only_word = 0x5a5a5a5a5a5a5a5aull;
static uint8_t data_code[16]; /* gets a ret: it would return, were it executable */

/* Overruns its own array; the canary check before its return stops the kernel. */
__attribute__((noinline)) static void smash_stack(void)
{
    volatile uint8_t buf[16];
    volatile uint8_t *p = buf;
    __asm__ volatile("" : "+r"(p)); /* hides p's bounds: a plain overrun, not a compile-time one */
    for (size_t i = 0; i < 64; i++)
        p[i] = 0xa5;
    sink = buf[0];
}

void faultdemo_run(const char *cmdline)
{
    char kind[16];
    if (!cmdline_get(cmdline, "fault", kind, sizeof(kind)))
        return;
    bool known = false;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        bool eq = true;
        for (size_t j = 0; eq && (kinds[i][j] != '\0' || kind[j] != '\0'); j++)
            eq = kinds[i][j] == kind[j];
        known = known || eq;
    }
    if (!known) {
        kprintf("faultdemo: unknown fault kind \"%s\" (pagefault, overflow, ud, gp, div, "
                "rodata, nx, stack-smash, ubsan)\n",
                kind);
        return;
    }
    kprintf("faultdemo: triggering \"%s\" as the command line asks\n", kind);
    switch (kind[0]) {
    case 'p':
        *(volatile uint64_t *)(uintptr_t)DEMO_UNMAPPED = 1;
        break;
    case 'o':
        sink = recurse(0);
        break;
    case 'u':
        if (kind[1] == 'b') {
            volatile int32_t big = INT32_MAX;
            sink = (uint64_t)(big + 1); /* faultdemo-ubsan: signed overflow */
        } else {
            __asm__ volatile("ud2");
        }
        break;
    case 's':
        smash_stack();
        break;
    case 'g':
        sink = *(volatile uint64_t *)(uintptr_t)DEMO_NONCANONICAL;
        break;
    case 'r':
        *(volatile uint64_t *)(uintptr_t)&read_only_word = 0;
        break;
    case 'n':
        /* The store at run time keeps the array in .bss (never-written data may become rodata). */
        *(volatile uint8_t *)data_code = 0xc3;
        ((void (*)(void))(uintptr_t)data_code)();
        break;
    case 'd': {
        volatile uint64_t zero = 0;
        sink = 1 / zero;
        break;
    }
    }
    kprintf("faultdemo: \"%s\" did not fault\n", kind);
}
